"""Domain plugin contract and the lazy domain registry.

A domain is declared by a light :class:`DomainSpec` (only names and ``"module:attr"`` strings), so
listing domains never imports a domain's heavy dependencies. Every domain, built-in or third-party,
is found through the ``domainclip.domains`` entry-point group (``pyproject.toml``), each entry point
resolving to a :class:`DomainSpec`; :func:`register_domain` adds one at run time (notebooks, tests).
The contract each entry of a spec follows is in ``docs/adding_a_domain.md``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from domainclip.core.errors import DomainClipError

__all__ = [
    "DomainSpec",
    "MissingExtraError",
    "UnknownNameError",
    "get_domain",
    "list_domains",
    "missing_requirements",
    "register_domain",
    "resolve",
    "require",
]

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
class DomainSpec:
    """What a domain declares. Every callable is named as a lazy ``"module:attr"`` string.

    Args:
        name: domain name used on the command line and in recipe paths (``recipes/<name>/``).
        extra: pip extra that installs its dependencies (``pip install "domainclip[<extra>]"``).
        description: one line for ``domainclip domains``.
        papers: the papers whose recipes it reproduces (shown by ``domainclip domains``).
        prepare: prepare command name -> ``"module:function"`` of a typed prepare function
            (``function(out: Path, ..., progress: bool = True) -> dict``; see :mod:`domainclip.core.prepare`).
        eval_suites: suite name -> ``"module:function"`` of an eval suite
            (see :class:`~domainclip.core.eval.suites.EvalSuite`).
        datasets: dataset adapter name -> ``"module:Class"``.
        synthetic: the key of ``prepare`` whose command generates the domain's synthetic raw data
            (``function(out, n, *, seed, workers, progress, ...) -> dict``; what it writes depends only
            on its arguments, never on ``workers``), used by the quick recipes, the demo and the tests.
        demo: the recipe ``domainclip demo --domain <name>`` runs (``"<name>/quick"``).
        tasks: training task name -> ``"module:attr"`` of a :class:`~domainclip.core.engine.tasks.Task`
            (recipes name it ``train.task: <domain>/<name>``).
        towers: domain tower name -> ``"module:Class"`` of a
            :class:`~domainclip.core.models.registry.DomainCLIP` subclass registered under that name
            (``domainclip_cfg.tower``), imported when a model config or a saved model names it.
        requires: import names the domain needs beyond the core (``domainclip domains`` says which are missing).
        zoo: ``"package.module:file.yaml"``: the published models of the domain's field, listed by
            ``domainclip zoo`` and loaded as ``zoo:NAME`` (see :mod:`domainclip.core.zoo.registry`).
        model_formats: native checkpoint format name -> ``"module:function"`` of its converter
            (see :mod:`domainclip.core.zoo.formats`), for formats the core does not read itself.
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
    towers: dict[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    zoo: str | None = None
    model_formats: dict[str, str] = field(default_factory=dict)


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
    """Names of all known domains (entry points and registered ones), sorted."""
    return sorted(set(_entry_point_targets()) | set(_REGISTERED))


def get_domain(name: str) -> DomainSpec:
    """Return the :class:`DomainSpec` for ``name`` (imports only the light spec module)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    eps = _entry_point_targets()
    if name not in eps:
        raise UnknownNameError("domain", name, list_domains())
    spec = eps[name].load()
    if not isinstance(spec, DomainSpec):
        raise TypeError(f"domain {name!r} did not resolve to a DomainSpec (got {type(spec).__name__})")
    _REGISTERED[name] = spec
    return spec


def missing_requirements(spec: DomainSpec) -> list[str]:
    """The import names of ``spec.requires`` that are not installed (without importing them)."""
    return [module for module in spec.requires if importlib.util.find_spec(module) is None]
