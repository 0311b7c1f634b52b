"""Locate the recipes and data cards that ship with domainclip.

In a wheel they are packaged as ``domainclip/_recipes`` and ``domainclip/_data_cards``; in a
source checkout (editable install) they are the top-level ``recipes/`` and ``data_cards/``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def _find(packaged: str, source: str) -> Path:
    for candidate in (_PACKAGE_ROOT / packaged, _PACKAGE_ROOT.parent / source):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"domainclip's {source}/ folder was not found: looked for {_PACKAGE_ROOT / packaged} (wheel) and "
        f"{_PACKAGE_ROOT.parent / source} (source checkout). Reinstall domainclip."
    )


def recipes_root() -> Path:
    """Folder holding ``<domain>/<recipe>.yaml``."""
    return _find("_recipes", "recipes")


def data_cards_root() -> Path:
    """Folder holding ``<domain>/<dataset>.md`` data cards."""
    return _find("_data_cards", "data_cards")


def list_recipes(domain: str | None = None) -> list[str]:
    """Recipe names as ``"<domain>/<name>"``, optionally for one domain."""
    root = recipes_root()
    names = sorted(f"{p.parent.name}/{p.stem}" for p in root.glob("*/*.yaml"))
    return [n for n in names if domain is None or n.split("/")[0] == domain]


def recipe_path(name: str) -> Path:
    """Resolve ``"<domain>/<name>"`` (or a path to a YAML file) to a recipe file."""
    from domainclip.core.errors import InputNotFoundError
    from domainclip.core.plugins import UnknownNameError

    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise InputNotFoundError(f"recipe file not found: {path}")
        return path
    candidate = recipes_root() / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    raise UnknownNameError("recipe", name, list_recipes())
