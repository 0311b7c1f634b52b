"""Domain plugin contract and the lazy domain registry.

A domain is declared by a light :class:`DomainSpec` (only names and ``"module:attr"`` strings), so
listing domains never imports a domain's heavy dependencies. Built-in domains live in
``domainclip.domains``; third-party packages add theirs through the ``domainclip.domains``
entry-point group, each entry point resolving to a :class:`DomainSpec`.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from domainclip.core.errors import DomainClipError

__all__ = [
    "DomainSpec",
    "PrepareCommand",
    "MissingExtraError",
    "UnknownNameError",
    "get_domain",
    "list_domains",
    "register_domain",
    "resolve",
    "require",
]

#: Built-in domains: name -> "module:attr" of their :class:`DomainSpec`.
_BUILTIN: dict[str, str] = {
    "math": "domainclip.domains.math.domain:DOMAIN",
    "pathology": "domainclip.domains.pathology.domain:DOMAIN",
    "surgery": "domainclip.domains.surgery.domain:DOMAIN",
}
_REGISTERED: dict[str, DomainSpec] = {}


class UnknownNameError(DomainClipError, KeyError):
    """A registry lookup failed; the message lists the closest known names."""

    def __init__(self, kind: str, name: str, known: list[str]):
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known)) or '(none)'}")
        self.name = name

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class MissingExtraError(DomainClipError, ImportError):
    """An optional dependency of a domain is not installed."""


@dataclass(frozen=True)
class PrepareCommand:
    """A ``domainclip prepare DOMAIN NAME ...`` sub-command.

    Args:
        name: sub-command name, e.g. ``"synthetic"``.
        help: one-line description shown by ``--help``.
        add_arguments: adds the command's options to an argparse parser.
        run: does the work from parsed arguments; returns a JSON-serialisable summary
            (counts written, items skipped and why, output paths).
        resumable: a rerun into the output folder of an earlier run of this command continues it
            (the command skips what is already written) instead of being refused; ``--overwrite``
            still replaces it.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]
    resumable: bool = False


@dataclass(frozen=True)
class DomainSpec:
    """What a domain declares. Every callable is named as a lazy ``"module:attr"`` string.

    Args:
        name: domain name used on the command line and in recipe paths (``recipes/<name>/``).
        extra: pip extra that installs its dependencies (``pip install "domainclip[<extra>]"``).
        description: one line for ``domainclip domains``.
        papers: the papers whose recipes it reproduces.
        prepare: prepare sub-command name -> ``"module:attr"`` of a :class:`PrepareCommand`.
        eval_suites: suite name -> ``"module:attr"`` of an eval suite callable.
        datasets: dataset adapter name -> ``"module:attr"`` of its class.
        synthetic: ``"module:attr"`` of the generator used by tests and quick recipes.
        demo: ``"module:attr"`` of a callable ``demo(run_dir: Path) -> dict`` run by ``domainclip demo``.
        tasks: training task name -> ``"module:attr"`` of a :class:`~domainclip.core.engine.tasks.Task`
            (recipes name it ``train.task: <domain>/<name>``).
        requires: import names the domain needs beyond the core (checked by :func:`require`).
    """

    name: str
    extra: str
    description: str
    papers: tuple[str, ...] = ()
    prepare: dict[str, str] = field(default_factory=dict)
    eval_suites: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)
    synthetic: str | None = None
    demo: str | None = None
    tasks: dict[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()


def resolve(target: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def require(module: str, extra: str, purpose: str = "") -> Any:
    """Import an optional dependency, or fail naming the pip extra that provides it.

    Args:
        module: import name, e.g. ``"openslide"``.
        extra: domainclip extra that installs it, e.g. ``"pathology"``.
        purpose: what it is needed for, added to the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        why = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"{module!r} is needed{why} but is not installed: pip install \"domainclip[{extra}]\" ({e})"
        ) from e


def register_domain(spec: DomainSpec) -> DomainSpec:
    """Register a domain at run time (tests, notebooks); entry points are the packaged way."""
    _REGISTERED[spec.name] = spec
    return spec


def _entry_point_targets() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="domainclip.domains")}


def list_domains() -> list[str]:
    """Names of all known domains (built-in, entry points, registered), sorted."""
    return sorted(set(_BUILTIN) | set(_entry_point_targets()) | set(_REGISTERED))


def get_domain(name: str) -> DomainSpec:
    """Return the :class:`DomainSpec` for ``name`` (imports only the light spec module)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        spec = resolve(_BUILTIN[name])
    else:
        eps = _entry_point_targets()
        if name not in eps:
            raise UnknownNameError("domain", name, list_domains())
        spec = eps[name].load()
    if not isinstance(spec, DomainSpec):
        raise TypeError(f"domain {name!r} did not resolve to a DomainSpec (got {type(spec).__name__})")
    _REGISTERED[name] = spec
    return spec
