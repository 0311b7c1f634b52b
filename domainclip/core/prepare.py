"""``domainclip prepare``: find prepare commands (the core's and the domains') and run them.

A prepare command is a typed function ``command(out: Path, ..., progress: bool = True) -> dict``
with a Google-style ``Args:`` docstring, decorated with :func:`~domainclip.core.options.entry_point`.
Its flags, help and defaults on the command line, and the check of a recipe's prepare ``args``,
come from that one signature (:mod:`domainclip.core.options`). It writes into ``out`` and returns a
JSON-serialisable summary (what it wrote, what it skipped and why). The core runs every command in
its locked output folder (:class:`~domainclip.core.outputs.OutputFolder`), with ``--overwrite``.

The core owns one command, ``core/shapes``, which writes the generated shapes image-text set used
by the core demo and tests. Domains declare theirs in their :class:`DomainSpec` (``prepare``).
"""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from domainclip.core.errors import InputError
from domainclip.core.options import (
    NonNegativeInt,
    PositiveInt,
    Range,
    add_options,
    check_options,
    docstring_summary,
    entry_point,
)
from domainclip.core.outputs import LOCK_NAME, OutputFolder, read_manifest, same_arguments
from domainclip.core.plugins import UnknownNameError, get_domain, resolve

if TYPE_CHECKING:
    from domainclip.core.recipe import PrepareStep

__all__ = [
    "get_prepare_command",
    "list_prepare_commands",
    "parse_prepare_args",
    "prepare_options",
    "prepare_shapes",
    "resumable",
    "run_prepare",
    "run_prepare_step",
    "step_options",
    "step_state",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Options that change how a prepare command runs, not what it writes (left out of the manifest).
_NOT_CONTENT = frozenset({"out", "overwrite", "progress"})


def resumable(fn: F) -> F:
    """Mark a prepare command whose rerun into its own earlier output continues it (skipping what is there).

    Without the mark, a rerun into a folder that holds an earlier output is refused unless ``--overwrite``.
    """
    fn.domainclip_resumable = True  # type: ignore[attr-defined]
    return fn


@entry_point
def prepare_shapes(
    out: Path,
    n: PositiveInt = 2000,
    *,
    seed: NonNegativeInt = 0,
    image_size: Annotated[int, Range(16)] = 64,
    max_count: PositiveInt = 500,
    progress: bool = True,
) -> dict[str, Any]:
    """Generated coloured-shape images with captions (the core demo's data).

    Args:
        out: output folder for the shards.
        n: number of image-caption pairs.
        seed: generator seed (held-out sets use another).
        image_size: image side in pixels (16 or more).
        max_count: samples per shard.
        progress: show a progress bar.
    """
    from domainclip.core.data.synthetic import generate_shapes
    from domainclip.core.data.writer import write_shards

    samples = generate_shapes(n, seed, image_size=image_size)
    return write_shards(samples, out, prefix="shapes", max_count=max_count, image_format="png", progress=progress,
                        total=n)


_CORE_COMMANDS: dict[str, str] = {"shapes": "domainclip.core.prepare:prepare_shapes"}


def list_prepare_commands(domain: str) -> list[str]:
    """Prepare command names of ``domain`` (``core`` for the core's)."""
    if domain == "core":
        return sorted(_CORE_COMMANDS)
    return sorted(get_domain(domain).prepare)


def get_prepare_command(domain: str, name: str) -> Callable[..., dict[str, Any]]:
    """Resolve ``domain``/``name`` to its typed prepare function."""
    table = _CORE_COMMANDS if domain == "core" else get_domain(domain).prepare
    if name not in table:
        raise UnknownNameError(f"prepare command of {domain}", name, list(table))
    command = resolve(table[name])
    if not callable(command) or "out" not in inspect.signature(command).parameters:
        raise TypeError(f"{table[name]} is not a prepare command: a function taking out: Path")
    return command


def prepare_options(command: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of ``command`` with its value, defaults filled in (what a run is recorded with)."""
    bound = inspect.signature(command).bind_partial(**options)
    bound.apply_defaults()
    return dict(bound.arguments)


def _content(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(options.items()) if k not in _NOT_CONTENT}


def parse_prepare_args(domain: str, name: str, argv: list[str]) -> tuple[Callable[..., Any], dict[str, Any], bool]:
    """Parse ``domainclip prepare DOMAIN NAME`` options: ``(command, its options, --overwrite)``."""
    command = get_prepare_command(domain, name)
    parser = argparse.ArgumentParser(prog=f"domainclip prepare {domain} {name}", description=docstring_summary(command))
    add_options(parser, command)
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace a dataset that domainclip wrote into --out before (never files it did not write)",
    )
    namespace = vars(parser.parse_args(argv))
    overwrite = namespace.pop("overwrite")
    return command, namespace, overwrite


def run_prepare(
    domain: str, name: str, command: Callable[..., Any], options: Mapping[str, Any], *, overwrite: bool = False
) -> dict[str, Any]:
    """Run a prepare command inside its locked output folder (see :class:`OutputFolder`).

    The folder must be new or empty, or hold an earlier output of a domainclip command, which
    ``overwrite`` replaces (a :func:`resumable` command continues its own earlier output instead);
    files domainclip did not write are never touched. While the command runs, a second command on
    the same folder is refused. When it fails, what it wrote is removed (a resumable command's is
    kept, to continue from); when it finishes, the folder's manifest records the command, its
    arguments and ``complete``.
    """
    full = prepare_options(command, options)
    resumable = getattr(command, "domainclip_resumable", False)  # what it wrote is its progress: kept on failure
    with OutputFolder(
        full["out"], kind="dataset", command=f"{domain}/{name}", args=_content(full), overwrite=overwrite,
        resume=resumable and not overwrite, keep_on_error=resumable,
    ):
        return command(**options)


def step_options(step: PrepareStep, root: str | Path) -> tuple[Callable[..., Any], dict]:
    """A recipe prepare step's command and checked options; ``{root}`` in strings becomes the data root.

    Strings inside lists and mappings (``articles: ["{root}/raw"]``) are substituted too.

    Raises:
        InputError: an unknown option, or a value of the wrong type or range.
        UnknownNameError: an unknown domain or command.
    """
    domain, _, name = step.command.partition("/")
    if not name:
        raise InputError(f"prepare command {step.command!r} must look like '<domain>/<command>'")
    command = get_prepare_command(domain, name)
    args = {k: _with_root(v, str(root)) for k, v in step.args.items()}
    return command, check_options(command, args, where=f"{step.command} args")


def _with_root(value: Any, root: str) -> Any:
    """``value`` with ``{root}`` replaced in every string it holds (lists and mappings included)."""
    if isinstance(value, str):
        return value.replace("{root}", root)
    if isinstance(value, list | tuple):
        return type(value)(_with_root(v, root) for v in value)
    if isinstance(value, dict):
        return {k: _with_root(v, root) for k, v in value.items()}
    return value


def step_state(step: PrepareStep, root: str | Path) -> str:
    """Whether a recipe prepare step's output is ready to use.

    Returns:
        ``"done"`` (complete, made by the same command with the same arguments), ``"missing"``,
        ``"partial"`` (its command did not finish), ``"different"`` (made with other arguments or
        by another command) or ``"foreign"`` (the folder holds files domainclip did not write).
    """
    command, options = step_options(step, root)
    full = prepare_options(command, options)
    out = Path(full["out"])
    manifest = read_manifest(out)
    if manifest is None:
        return "foreign" if out.is_dir() and any(n != LOCK_NAME for n in os.listdir(out)) else "missing"
    if not manifest.get("complete"):
        return "partial"
    return "done" if same_arguments(manifest, step.command, _content(full)) else "different"


def run_prepare_step(step: PrepareStep, root: str | Path = "data", *, overwrite: bool = False) -> dict[str, Any]:
    """Run one recipe prepare step; ``{root}`` in its arguments' strings becomes the recipe's data root.

    Args:
        step: the recipe's step.
        root: the recipe's ``data.root``.
        overwrite: replace an earlier domainclip output in the step's folder (a recipe rebuilds its
            own data when it is partial or was made with other arguments).
    """
    command, options = step_options(step, root)
    domain, _, name = step.command.partition("/")
    return run_prepare(domain, name, command, options, overwrite=overwrite)
