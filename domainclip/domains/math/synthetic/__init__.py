"""Synthetic math diagrams with computed captions: the MAVIS-style data engine.

Three families drawn with matplotlib (labels typeset with Pillow), each type a registered builder:

* ``plane_geometry``: triangles (equilateral, isosceles, right, scalene), square, rectangle,
  parallelogram, rhombus, trapezoid, kite, regular polygons, circles with chords or tangents,
  polygons inscribed in circles; lettered vertices, marked lengths, angle arcs, right-angle marks;
* ``analytic_geometry``: points, lines, circles, ellipses, parabolas and rectangles on a
  coordinate grid with axes and tick labels;
* ``function_plot``: polynomial, sine, cosine, tangent, exponential, logarithm and absolute value
  graphs whose zeros, extrema and asymptotes are computed.

Use :func:`generate_diagrams` for a stream of sample dicts and :func:`render_diagram` for one
diagram of a chosen type. Importing this package imports numpy and Pillow only; matplotlib is
imported when the first diagram is drawn.
"""

from domainclip.domains.math.synthetic.engine import (
    DEFAULT_IMAGE_SIZE,
    DEFAULT_PROPORTIONS,
    GENERATOR,
    LICENCE,
    EngineConfig,
    generate_diagrams,
    render_diagram,
    render_sample,
)
from domainclip.domains.math.synthetic.registry import (
    Diagram,
    DiagramType,
    Fact,
    get_diagram_type,
    list_diagram_types,
    register_diagram,
)

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_PROPORTIONS",
    "GENERATOR",
    "LICENCE",
    "Diagram",
    "DiagramType",
    "EngineConfig",
    "Fact",
    "generate_diagrams",
    "get_diagram_type",
    "list_diagram_types",
    "register_diagram",
    "render_diagram",
    "render_sample",
]
