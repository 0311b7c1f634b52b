"""``domainclip prepare``: find prepare commands (the core's and the domains') and run them.

The core owns one command, ``core/shapes``, which writes the generated shapes image-text set used
by the core demo and tests. Domains declare theirs in their :class:`DomainSpec`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, NoReturn

from domainclip.core.arguments import bounded, non_negative_int, positive_int
from domainclip.core.outputs import LOCK_NAME, OutputFolder, read_manifest, same_arguments
from domainclip.core.plugins import PrepareCommand, UnknownNameError, get_domain, resolve
from domainclip.core.recipe import PrepareStep, RecipeError

__all__ = [
    "SHAPES",
    "get_prepare_command",
    "list_prepare_commands",
    "output_args",
    "parse_prepare_args",
    "run_prepare",
    "run_prepare_step",
    "step_state",
]


_shape_image_size = bounded(int, "an integer >= 16", lambda v: v >= 16)


def _shapes_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder for the shards")
    parser.add_argument("--n", type=positive_int, default=2000, help="number of image-caption pairs")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="generator seed (held-out sets use another)")
    parser.add_argument("--image-size", type=_shape_image_size, default=64, help="image side in pixels (16 or more)")
    parser.add_argument("--max-count", type=positive_int, default=500, help="samples per shard")


def _shapes_run(args: argparse.Namespace) -> dict[str, Any]:
    from domainclip.core.data.synthetic import generate_shapes
    from domainclip.core.data.writer import write_shards

    samples = generate_shapes(args.n, args.seed, image_size=args.image_size)
    return write_shards(samples, args.out, prefix="shapes", max_count=args.max_count, image_format="png")


#: ``domainclip prepare core shapes``: coloured shapes with captions, learnable by a tiny CLIP on CPU.
SHAPES = PrepareCommand(
    name="shapes",
    help="generated coloured-shape images with captions (the core demo's data)",
    add_arguments=_shapes_arguments,
    run=_shapes_run,
)

_CORE_COMMANDS: dict[str, str] = {"shapes": "domainclip.core.prepare:SHAPES"}


def list_prepare_commands(domain: str) -> list[str]:
    """Prepare command names of ``domain`` (``core`` for the core's)."""
    if domain == "core":
        return sorted(_CORE_COMMANDS)
    return sorted(get_domain(domain).prepare)


def get_prepare_command(domain: str, name: str) -> PrepareCommand:
    """Resolve ``domain``/``name`` to its :class:`PrepareCommand`."""
    table = _CORE_COMMANDS if domain == "core" else get_domain(domain).prepare
    if name not in table:
        raise UnknownNameError(f"prepare command of {domain}", name, list(table))
    command = resolve(table[name])
    if not isinstance(command, PrepareCommand):
        raise TypeError(f"{table[name]} is not a PrepareCommand")
    return command


def args_to_argv(args: dict[str, Any]) -> list[str]:
    """``{"n": 10, "image_size": 64, "grid": True}`` -> ``["--n", "10", "--image-size", "64", "--grid"]``."""
    argv: list[str] = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list | tuple):
            argv.append(flag)
            argv.extend(str(v) for v in value)
        else:
            argv.extend([flag, str(value)])
    return argv


#: Options that change how a prepare command runs, not what it writes (left out of the manifest).
_NOT_CONTENT = frozenset({"out", "overwrite", "no_progress", "progress"})


class _ArgumentParser(argparse.ArgumentParser):
    """An argparse parser that raises instead of exiting, for prepare steps run from a recipe."""

    def error(self, message: str) -> NoReturn:
        raise RecipeError(f"{self.prog}: {message}")


def parse_prepare_args(
    domain: str, name: str, argv: list[str], *, from_recipe: bool = False
) -> tuple[PrepareCommand, argparse.Namespace]:
    """Parse the options of ``domainclip prepare DOMAIN NAME`` (the command's own plus ``--overwrite``).

    Args:
        domain: the domain (``core`` for the core's commands).
        name: the command name.
        argv: its options.
        from_recipe: raise :class:`RecipeError` on a bad option instead of printing usage and exiting.
    """
    command = get_prepare_command(domain, name)
    parser_cls = _ArgumentParser if from_recipe else argparse.ArgumentParser
    parser = parser_cls(prog=f"domainclip prepare {domain} {name}", description=command.help)
    command.add_arguments(parser)
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace a dataset that domainclip wrote into --out before (never files it did not write)",
    )
    namespace = parser.parse_args(argv)
    if getattr(namespace, "out", None) is None:
        raise TypeError(f"prepare command {domain}/{name} has no --out option")
    return command, namespace


def output_args(namespace: argparse.Namespace) -> dict[str, Any]:
    """The options of a parsed prepare command that decide what it writes (recorded in the manifest)."""
    return {k: v for k, v in sorted(vars(namespace).items()) if k not in _NOT_CONTENT}


def run_prepare(domain: str, name: str, command: PrepareCommand, namespace: argparse.Namespace) -> dict[str, Any]:
    """Run a parsed prepare command inside its locked output folder (see :class:`OutputFolder`).

    The folder must be new or empty, or hold an earlier output of a domainclip command, which
    ``--overwrite`` replaces (a resumable command continues its own earlier output instead); files
    domainclip did not write are never touched. While the command
    runs, a second command on the same folder is refused. When it fails, what it wrote is removed;
    when it finishes, the folder's manifest records the command, its arguments and ``complete``.
    """
    with OutputFolder(
        namespace.out, kind="dataset", command=f"{domain}/{name}", args=output_args(namespace),
        overwrite=namespace.overwrite, resume=command.resumable and not namespace.overwrite,
    ):
        return command.run(namespace)


def prepare_step_output(step: PrepareStep, root: str | Path) -> tuple[PrepareCommand, argparse.Namespace]:
    """Parse one recipe prepare step; ``{root}`` in string arguments becomes the recipe's data root."""
    domain, _, name = step.command.partition("/")
    if not name:
        raise RecipeError(f"prepare command {step.command!r} must look like '<domain>/<command>'")
    args = {k: (v.replace("{root}", str(root)) if isinstance(v, str) else v) for k, v in step.args.items()}
    return parse_prepare_args(domain, name, args_to_argv(args), from_recipe=True)


def step_state(step: PrepareStep, root: str | Path) -> str:
    """Whether a recipe prepare step's output is ready to use.

    Returns:
        ``"done"`` (complete, made by the same command with the same arguments), ``"missing"``,
        ``"partial"`` (its command did not finish), ``"different"`` (made with other arguments or
        by another command) or ``"foreign"`` (the folder holds files domainclip did not write).
    """
    _, namespace = prepare_step_output(step, root)
    out = Path(namespace.out)
    manifest = read_manifest(out)
    if manifest is None:
        return "foreign" if out.is_dir() and any(n not in (LOCK_NAME,) for n in os.listdir(out)) else "missing"
    if not manifest.get("complete"):
        return "partial"
    return "done" if same_arguments(manifest, step.command, output_args(namespace)) else "different"


def run_prepare_step(step: PrepareStep, root: str | Path = "data", *, overwrite: bool = False) -> dict[str, Any]:
    """Run one recipe prepare step; ``{root}`` in string arguments becomes the recipe's data root.

    Args:
        step: the recipe's step.
        root: the recipe's ``data.root``.
        overwrite: replace an earlier domainclip output in the step's folder (a recipe rebuilds its
            own data when it is partial or was made with other arguments).
    """
    command, namespace = prepare_step_output(step, root)
    namespace.overwrite = overwrite
    domain, _, name = step.command.partition("/")
    return run_prepare(domain, name, command, namespace)
