"""Class lists and zero-shot prompt templates for math diagrams.

Three label spaces, all importable without matplotlib:

* :data:`DIAGRAM_TYPES`: the 27 diagram types drawn by the synthetic engine
  (:mod:`domainclip.domains.math.synthetic`). A generated sample's ``label`` is the index of its type
  here and ``meta["diagram_type"]`` its name. The classes are mutually exclusive: triangles are
  split first by the right angle (``right_triangle``, isosceles right triangles included), then by
  sides (``equilateral_triangle``; ``isosceles_triangle``: exactly two equal sides, no right angle;
  ``scalene_triangle``: three different sides, no right angle); squares are not counted as
  rectangles or rhombi, rhombi not as parallelograms or kites.
* :data:`FUNCTION_FAMILIES`: the function family of a ``function_plot`` diagram
  (``meta["function_family"]``).
* :data:`GEOMETRY3K_SHAPES`: the coarse shape label that
  :class:`~domainclip.domains.math.datasets.geometry3k.Geometry3K` derives for real problems.

Each space has display names and a pool of prompt templates; ``*_templates()`` expands them into
``{class name: [prompt, ...]}`` for zero-shot classification.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "FAMILIES",
    "DIAGRAM_TYPES",
    "DIAGRAM_TYPE_FAMILY",
    "DIAGRAM_TYPE_NAMES",
    "DIAGRAM_TEMPLATES",
    "FUNCTION_FAMILIES",
    "FUNCTION_FAMILY_NAMES",
    "FUNCTION_TEMPLATES",
    "GEOMETRY3K_SHAPES",
    "GEOMETRY3K_SHAPE_NAMES",
    "GEOMETRY3K_TEMPLATES",
    "diagram_type_templates",
    "function_family_templates",
    "geometry3k_shape_templates",
    "diagram_type_label",
    "function_family_label",
]

#: The three families the engine draws, in the order used for proportions.
FAMILIES: tuple[str, ...] = ("plane_geometry", "analytic_geometry", "function_plot")

#: Diagram type -> family. Its key order is the class order of :data:`DIAGRAM_TYPES`.
DIAGRAM_TYPE_FAMILY: dict[str, str] = {
    "equilateral_triangle": "plane_geometry",
    "isosceles_triangle": "plane_geometry",
    "right_triangle": "plane_geometry",
    "scalene_triangle": "plane_geometry",
    "square": "plane_geometry",
    "rectangle": "plane_geometry",
    "parallelogram": "plane_geometry",
    "rhombus": "plane_geometry",
    "trapezoid": "plane_geometry",
    "kite": "plane_geometry",
    "regular_polygon": "plane_geometry",
    "circle_chord": "plane_geometry",
    "circle_tangent": "plane_geometry",
    "inscribed_polygon": "plane_geometry",
    "coordinate_points": "analytic_geometry",
    "coordinate_line": "analytic_geometry",
    "coordinate_circle": "analytic_geometry",
    "coordinate_ellipse": "analytic_geometry",
    "coordinate_parabola": "analytic_geometry",
    "coordinate_rectangle": "analytic_geometry",
    "polynomial_plot": "function_plot",
    "sine_plot": "function_plot",
    "cosine_plot": "function_plot",
    "tangent_plot": "function_plot",
    "exponential_plot": "function_plot",
    "logarithm_plot": "function_plot",
    "absolute_value_plot": "function_plot",
}

#: The diagram-type classes, in label order.
DIAGRAM_TYPES: tuple[str, ...] = tuple(DIAGRAM_TYPE_FAMILY)

#: What each diagram type is called in a prompt.
DIAGRAM_TYPE_NAMES: dict[str, str] = {
    "equilateral_triangle": "an equilateral triangle",
    "isosceles_triangle": "an isosceles triangle",
    "right_triangle": "a right triangle",
    "scalene_triangle": "a scalene triangle",
    "square": "a square",
    "rectangle": "a rectangle",
    "parallelogram": "a parallelogram",
    "rhombus": "a rhombus",
    "trapezoid": "a trapezoid",
    "kite": "a kite",
    "regular_polygon": "a regular polygon",
    "circle_chord": "a circle with a chord",
    "circle_tangent": "a circle with a tangent line",
    "inscribed_polygon": "a polygon inscribed in a circle",
    "coordinate_points": "points plotted on a coordinate plane",
    "coordinate_line": "a straight line on a coordinate plane",
    "coordinate_circle": "a circle on a coordinate plane",
    "coordinate_ellipse": "an ellipse on a coordinate plane",
    "coordinate_parabola": "a parabola on a coordinate plane",
    "coordinate_rectangle": "a rectangle on a coordinate grid",
    "polynomial_plot": "the graph of a polynomial function",
    "sine_plot": "the graph of a sine function",
    "cosine_plot": "the graph of a cosine function",
    "tangent_plot": "the graph of a tangent function",
    "exponential_plot": "the graph of an exponential function",
    "logarithm_plot": "the graph of a logarithmic function",
    "absolute_value_plot": "the graph of an absolute value function",
}

#: Prompt templates for diagram types; ``{}`` receives a display name.
DIAGRAM_TEMPLATES: tuple[str, ...] = (
    "a diagram of {}.",
    "a math diagram showing {}.",
    "a figure of {}.",
    "a textbook illustration of {}.",
    "a black and white drawing of {}.",
    "a math problem figure with {}.",
    "{}.",
)

#: Function families of ``function_plot`` diagrams, in label order.
FUNCTION_FAMILIES: tuple[str, ...] = (
    "polynomial",
    "sine",
    "cosine",
    "tangent",
    "exponential",
    "logarithm",
    "absolute_value",
)

#: What each function family is called in a prompt.
FUNCTION_FAMILY_NAMES: dict[str, str] = {
    "polynomial": "a polynomial function",
    "sine": "a sine function",
    "cosine": "a cosine function",
    "tangent": "a tangent function",
    "exponential": "an exponential function",
    "logarithm": "a logarithmic function",
    "absolute_value": "an absolute value function",
}

#: Prompt templates for function families; ``{}`` receives a display name.
FUNCTION_TEMPLATES: tuple[str, ...] = (
    "a plot of {}.",
    "the graph of {}.",
    "a function plot of {}.",
    "a coordinate plane showing the curve of {}.",
    "a math figure with the graph of {}.",
)

#: Coarse shape classes derived for Geometry3K problems (see the adapter for the rules).
GEOMETRY3K_SHAPES: tuple[str, ...] = ("line", "triangle", "quadrilateral", "polygon", "circle")

#: What each Geometry3K shape class is called in a prompt.
GEOMETRY3K_SHAPE_NAMES: dict[str, str] = {
    "line": "lines and angles",
    "triangle": "a triangle",
    "quadrilateral": "a quadrilateral",
    "polygon": "a polygon with five or more sides",
    "circle": "a circle",
}

#: Prompt templates for Geometry3K shapes.
GEOMETRY3K_TEMPLATES: tuple[str, ...] = (
    "a geometry diagram of {}.",
    "a geometry problem figure showing {}.",
    "a textbook diagram with {}.",
    "{}.",
)


def _expand(classes: tuple[str, ...], names: Mapping[str, str], templates: tuple[str, ...]) -> dict[str, list[str]]:
    return {c: [t.format(names[c]) for t in templates] for c in classes}


def diagram_type_templates() -> dict[str, list[str]]:
    """Zero-shot prompts for diagram-type classification.

    Returns:
        ``{diagram type: [prompt, ...]}`` in :data:`DIAGRAM_TYPES` (label) order; average each class's
        text embeddings to build the classifier.
    """
    return _expand(DIAGRAM_TYPES, DIAGRAM_TYPE_NAMES, DIAGRAM_TEMPLATES)


def function_family_templates() -> dict[str, list[str]]:
    """Zero-shot prompts for function-family classification of function plots.

    Returns:
        ``{function family: [prompt, ...]}`` in :data:`FUNCTION_FAMILIES` (label) order.
    """
    return _expand(FUNCTION_FAMILIES, FUNCTION_FAMILY_NAMES, FUNCTION_TEMPLATES)


def geometry3k_shape_templates() -> dict[str, list[str]]:
    """Zero-shot prompts for the coarse shape label of Geometry3K problems.

    Returns:
        ``{shape: [prompt, ...]}`` in :data:`GEOMETRY3K_SHAPES` (label) order.
    """
    return _expand(GEOMETRY3K_SHAPES, GEOMETRY3K_SHAPE_NAMES, GEOMETRY3K_TEMPLATES)


def diagram_type_label(meta: Mapping[str, Any]) -> int:
    """Class index of a generated sample in :data:`DIAGRAM_TYPES`, read from its ``meta``.

    Raises:
        KeyError: ``meta`` has no ``diagram_type`` or names an unknown type.
    """
    from domainclip.core.plugins import UnknownNameError

    name = meta["diagram_type"]
    if name not in DIAGRAM_TYPE_FAMILY:
        raise UnknownNameError("diagram type", str(name), list(DIAGRAM_TYPES))
    return DIAGRAM_TYPES.index(name)


def function_family_label(meta: Mapping[str, Any]) -> int | None:
    """Class index in :data:`FUNCTION_FAMILIES` of a generated function plot, ``None`` for other diagrams."""
    family = meta.get("function_family")
    if family is None:
        return None
    return FUNCTION_FAMILIES.index(family)
