"""``domainclip prepare``: find prepare commands (the core's and the domains') and run them.

The core owns one command, ``core/shapes``, which writes the generated shapes image-text set used
by the core demo and tests. Domains declare theirs in their :class:`DomainSpec`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from domainclip.core.plugins import PrepareCommand, UnknownNameError, get_domain, resolve
from domainclip.core.recipe import PrepareStep

__all__ = ["SHAPES", "get_prepare_command", "list_prepare_commands", "run_prepare_step"]


def _shapes_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder for the shards")
    parser.add_argument("--n", type=int, default=2000, help="number of image-caption pairs")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (held-out sets use another)")
    parser.add_argument("--image-size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--max-count", type=int, default=500, help="samples per shard")


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


def run_prepare_step(step: PrepareStep, root: str | Path = "data") -> dict[str, Any]:
    """Run one recipe prepare step; ``{root}`` in string arguments becomes the recipe's data root."""
    domain, _, name = step.command.partition("/")
    if not name:
        raise ValueError(f"prepare command {step.command!r} must look like '<domain>/<command>'")
    command = get_prepare_command(domain, name)
    args = {k: (v.replace("{root}", str(root)) if isinstance(v, str) else v) for k, v in step.args.items()}
    parser = argparse.ArgumentParser(prog=f"domainclip prepare {domain} {name}")
    command.add_arguments(parser)
    namespace = parser.parse_args(args_to_argv(args))
    return command.run(namespace)
