"""Registry of diagram types: each one draws itself and states the facts its caption is built from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from domainclip.core.plugins import UnknownNameError
from domainclip.domains.math.labels import DIAGRAM_TYPE_FAMILY, FAMILIES

if TYPE_CHECKING:
    from domainclip.domains.math.synthetic.canvas import DiagramCanvas, Style

__all__ = ["Fact", "Diagram", "DiagramType", "register_diagram", "get_diagram_type", "list_diagram_types"]


@dataclass(frozen=True)
class Fact:
    """One statement a caption may make about a diagram.

    Args:
        kind: template pool key in :mod:`~domainclip.domains.math.synthetic.captions`.
        values: what fills the template's placeholders. Keys ending in ``_w`` are vocabulary words
            translated per language; ``approx`` (bool) adds ``{rel}`` (``=``/``≈``) and ``{about}``.
        required: always stated (otherwise stated with the caption's inclusion probability).
    """

    kind: str
    values: dict[str, Any] = field(default_factory=dict)
    required: bool = False


@dataclass
class Diagram:
    """What a diagram builder returns after drawing on the canvas.

    Args:
        facts: caption facts; the first is the introduction and is always stated.
        meta: structured metadata (shape type, vertex count, labels, coefficients, computed values).
    """

    facts: list[Fact]
    meta: dict[str, Any]


#: A builder draws one diagram on the canvas (already styled) and returns its facts.
Builder = Callable[[np.random.Generator, "DiagramCanvas", "Style"], Diagram]


@dataclass(frozen=True)
class DiagramType:
    """A registered diagram type.

    Args:
        name: class name, one of :data:`~domainclip.domains.math.labels.DIAGRAM_TYPES`.
        family: one of :data:`~domainclip.domains.math.labels.FAMILIES`.
        build: the builder.
    """

    name: str
    family: str
    build: Builder


_REGISTRY: dict[str, DiagramType] = {}


def register_diagram(name: str) -> Callable[[Builder], Builder]:
    """Register a builder under a diagram-type name from ``labels.DIAGRAM_TYPES``.

    The name must be a class of the label space, so that every generated sample has a label; a new
    type is added to ``DIAGRAM_TYPE_FAMILY`` in :mod:`~domainclip.domains.math.labels` first.
    """
    if name not in DIAGRAM_TYPE_FAMILY:
        raise UnknownNameError("diagram type (add it to labels.DIAGRAM_TYPE_FAMILY)", name, list(DIAGRAM_TYPE_FAMILY))
    family = DIAGRAM_TYPE_FAMILY[name]
    if family not in FAMILIES:
        raise ValueError(f"diagram type {name!r} has unknown family {family!r}; families: {', '.join(FAMILIES)}")

    def decorator(build: Builder) -> Builder:
        _REGISTRY[name] = DiagramType(name, family, build)
        return build

    return decorator


def _load_builtin() -> None:
    # Importing the family modules runs their @register_diagram decorators.
    from domainclip.domains.math.synthetic import analytic, functions, plane  # noqa: F401


def get_diagram_type(name: str) -> DiagramType:
    """The registered :class:`DiagramType` called ``name`` (close matches listed when unknown)."""
    _load_builtin()
    if name not in _REGISTRY:
        raise UnknownNameError("diagram type", name, list(_REGISTRY))
    return _REGISTRY[name]


def list_diagram_types(family: str | None = None) -> list[str]:
    """Registered diagram types in label order, optionally of one family."""
    _load_builtin()
    if family is not None and family not in FAMILIES:
        raise UnknownNameError("diagram family", family, list(FAMILIES))
    order = list(DIAGRAM_TYPE_FAMILY)
    names = sorted(_REGISTRY, key=order.index)
    return [n for n in names if family is None or _REGISTRY[n].family == family]
