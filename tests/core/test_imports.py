"""The import graph of ``domainclip.core``, read from the source: no cycle, and no domain imported.

Every ``import`` / ``from ... import`` statement counts, at module level or inside a function
(a lazy import is still a dependency), except those under ``if TYPE_CHECKING:``. Importing
``a.b.c`` also runs the packages ``a.b`` and ``a`` that the importing module is not already inside,
so those are edges too: a package ``__init__`` that imports a module which imports that package
back is a cycle Python trips on when the module is imported first.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import domainclip

PACKAGE_ROOT = Path(domainclip.__file__).resolve().parent.parent
CORE = "domainclip.core"


def module_names(root: Path = PACKAGE_ROOT, package: str = CORE) -> dict[str, Path]:
    """Map each module of ``package`` (packages by their own name) to its source file.

    Args:
        root: the folder holding the top-level package.
        package: dotted name of the package to list.
    """
    folder = root.joinpath(*package.split("."))
    names = {}
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, at any depth, leaving out ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def imported_names(module: str, path: Path) -> set[str]:
    """Absolute dotted names a module imports (``from x import y`` gives ``x.y`` and ``x``).

    Args:
        module: the module's dotted name.
        path: its source file.
    """
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
            base = ".".join(anchor + ([base] if base else []))
        names.add(base)
        names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Edges between the given modules: each import, plus the packages an import runs on its way.

    Args:
        modules: dotted name -> source file, as from :func:`module_names`.
    """
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        if path.name == "__init__.py":
            own_packages.add(module)
        edges: set[str] = set()
        for name in imported_names(module, path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                if target in modules and target not in own_packages and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None when the graph has none.

    Args:
        graph: module -> modules it imports.
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_core_import_graph_has_no_cycle():
    graph = import_graph(module_names())
    assert "domainclip.core.hub" in graph and "domainclip.core.models.registry" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in domainclip.core: " + " -> ".join(cycle or [])


def test_core_never_imports_a_domain():
    offenders = {
        module: sorted(n for n in imported_names(module, path) if n == "domainclip.domains" or
                       n.startswith("domainclip.domains."))
        for module, path in module_names().items()
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def _write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return module_names(root, "pkg")


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        # a lazy import inside a function closes the loop as much as a module-level one
        (
            {"pkg/__init__.py": "", "pkg/a.py": "from pkg.b import f\n",
             "pkg/b.py": "def f():\n    from pkg import a\n"},
            ["pkg.a", "pkg.b", "pkg.a"],
        ),
        # importing pkg.sub.x runs pkg/sub/__init__.py, which imports pkg.y, which imports pkg.sub.x
        (
            {"pkg/__init__.py": "", "pkg/sub/__init__.py": "from .x import g\n", "pkg/sub/x.py": "g = 1\n",
             "pkg/y.py": "from pkg.sub.x import g\n", "pkg/sub/z.py": "from ..y import g\n",
             "pkg/sub/w.py": "from pkg.sub import z\n"},
            None,
        ),
        (
            {"pkg/__init__.py": "", "pkg/sub/__init__.py": "from pkg.y import g\n", "pkg/sub/x.py": "g = 1\n",
             "pkg/y.py": "from pkg.sub.x import g\n"},
            ["pkg.sub", "pkg.y", "pkg.sub"],
        ),
        # TYPE_CHECKING imports never run
        (
            {"pkg/__init__.py": "", "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
             "    from pkg.b import f\n", "pkg/b.py": "from pkg.a import g\n"},
            None,
        ),
    ],
)
def test_cycle_finder_sees_lazy_and_package_imports(tmp_path, files, cycle):
    assert find_cycle(import_graph(_write(tmp_path, files))) == cycle
