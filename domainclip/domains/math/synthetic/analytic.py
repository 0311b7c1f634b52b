"""Analytic geometry: points, lines, circles, ellipses, parabolas and rectangles on a coordinate grid.

Objects have integer (or simple rational) parameters, so equations, slopes and intercepts are exact
(:class:`fractions.Fraction`); derived quantities (distances, foci, axis crossings) are computed and
written to two decimals. The view is square with equal x and y scales, so circles look round.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Any

import numpy as np

from domainclip.domains.math.synthetic.canvas import DiagramCanvas, Style, Tick, draw_coordinate_plane
from domainclip.domains.math.synthetic.formatting import (
    format_fraction,
    format_number,
    format_point,
    format_signed_constant,
    is_round,
)
from domainclip.domains.math.synthetic.plane import pick_letters
from domainclip.domains.math.synthetic.registry import Diagram, Fact, register_diagram

__all__ = ["quadrant", "line_equation"]


# ---------------------------------------------------------------------------- helpers
def quadrant(x: float, y: float) -> str:
    """``first``..``fourth``, or ``x-axis`` / ``y-axis`` / ``origin`` for points on an axis."""
    if x == 0 and y == 0:
        return "origin"
    if y == 0:
        return "x-axis"
    if x == 0:
        return "y-axis"
    if x > 0:
        return "first" if y > 0 else "fourth"
    return "second" if y > 0 else "third"


def _term(coef: Fraction, var: str) -> str:
    if coef == 1:
        return var
    if coef == -1:
        return "-" + var
    if coef.denominator == 1:
        return f"{coef.numerator}{var}"
    return f"({coef.numerator}/{coef.denominator}){var}".replace("(-", "-(")


def line_equation(p: tuple[int, int], q: tuple[int, int]) -> dict[str, Any]:
    """Exact equation, slope and intercepts of the line through integer points ``p`` and ``q``.

    Returns:
        ``{"equation", "slope", "y_intercept", "x_intercept", "direction"}``; ``slope`` and the
        intercepts are :class:`~fractions.Fraction` or ``None`` (vertical line: no slope, no
        y-intercept; horizontal line off the axis: no x-intercept).
    """
    (x1, y1), (x2, y2) = p, q
    if x1 == x2:
        return {
            "equation": f"x = {x1}",
            "slope": None,
            "y_intercept": None,
            "x_intercept": Fraction(x1),
            "direction": "vertical",
        }
    m = Fraction(y2 - y1, x2 - x1)
    b = Fraction(y1) - m * x1
    if m == 0:
        return {
            "equation": f"y = {format_fraction(b)}",
            "slope": m,
            "y_intercept": b,
            "x_intercept": None,
            "direction": "horizontal",
        }
    rhs = _term(m, "x")
    if b != 0:
        rhs += f" {'-' if b < 0 else '+'} {format_fraction(abs(b))}"
    return {
        "equation": f"y = {rhs}",
        "slope": m,
        "y_intercept": b,
        "x_intercept": -b / m,
        "direction": "rising" if m > 0 else "falling",
    }


def _view_around(
    rng: np.random.Generator, points: list[tuple[float, float]], *, include_origin: float = 0.85, margin: int = 1
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Square integer view containing ``points`` (and usually the origin)."""
    pts = list(points)
    if rng.random() < include_origin:
        pts.append((0.0, 0.0))
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = math.floor(min(xs)) - margin, math.ceil(max(xs)) + margin
    y0, y1 = math.floor(min(ys)) - margin, math.ceil(max(ys)) + margin
    span = max(x1 - x0, y1 - y0, 6)
    extra_x, extra_y = span - (x1 - x0), span - (y1 - y0)
    x0 -= extra_x // 2
    y0 -= extra_y // 2
    return (float(x0), float(x0 + span)), (float(y0), float(y0 + span))


def _integer_ticks(lo: float, hi: float) -> list[Tick]:
    span = hi - lo
    step = 1 if span <= 12 else (2 if span <= 24 else 5)
    values = list(range(math.ceil(lo / step) * step, math.floor(hi / step) * step + 1, step))
    every = 1 if len(values) <= 10 else 2
    return [Tick(float(v), format_number(v, label=True) if (v // step) % every == 0 else "") for v in values]


def _plane(
    rng: np.random.Generator, canvas: DiagramCanvas, style: Style, view: tuple[tuple[float, float], tuple[float, float]]
) -> dict[str, Any]:
    (x0, x1), (y0, y1) = view
    return draw_coordinate_plane(canvas, style, rng, (x0, x1), (y0, y1), _integer_ticks(x0, x1), _integer_ticks(y0, y1))


def _pt(x: float, y: float, *, label: bool = False) -> str:
    return format_point(x, y, label=label)


def _val(v: float) -> dict[str, Any]:
    return {"val": format_number(v), "approx": not is_round(v)}


def _intro_facts(style: Style) -> list[Fact]:
    return [Fact("grid")] if style.grid else []


def _name_point(
    canvas: DiagramCanvas, rng: np.random.Generator, p: tuple[float, float], name: str, with_coords: bool
) -> None:
    text = name + (_pt(*p, label=True) if with_coords else "")
    d = np.array([float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.3, 1.0))]) * np.array(
        [1 if rng.random() < 0.6 else -1, 1 if rng.random() < 0.7 else -1]
    )
    canvas.point_label(p, text, d, scale=0.9)


def _distinct_points(rng: np.random.Generator, k: int, lo: int, hi: int) -> list[tuple[int, int]]:
    pts: list[tuple[int, int]] = []
    while len(pts) < k:
        p = (int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1)))
        if p != (0, 0) and p not in pts:
            pts.append(p)
    return pts


# ---------------------------------------------------------------------------- points
@register_diagram("coordinate_points")
def coordinate_points(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """Two to four labelled integer points, sometimes joined by a segment with its midpoint."""
    k = int(rng.integers(2, 5))
    pts = _distinct_points(rng, k, -6, 6)
    names = pick_letters(rng, k)
    plane = _plane(rng, canvas, style, _view_around(rng, [(float(x), float(y)) for x, y in pts]))
    coords = bool(rng.random() < 0.5)
    for p, name in zip(pts, names):
        canvas.dot(p, color=style.curve_color)
        _name_point(canvas, rng, p, name, coords)
    facts = [Fact("points_intro", {"names": names, "n": str(k)}, required=True), *_intro_facts(style)]
    for p, name in zip(pts, names):
        facts.append(Fact("point_coords", {"name": name, "pt": _pt(*p)}))
        where = quadrant(*p)
        if where in ("x-axis", "y-axis"):
            facts.append(Fact("on_axis", {"name": name, "axis_w": where}))
        else:
            facts.append(Fact("quadrant", {"name": name, "q_w": where}))
    (ax, ay), (bx, by) = pts[0], pts[1]
    dist = math.hypot(bx - ax, by - ay)
    seg = names[0] + names[1]
    segment = bool(rng.random() < 0.5)
    midpoint = None
    if segment:
        canvas.segment(pts[0], pts[1], color=style.curve_color)
        facts.append(Fact("segment_drawn", {"seg": seg}))
        mid = ((ax + bx) / 2, (ay + by) / 2)
        if rng.random() < 0.5:
            canvas.dot(mid, color=style.accent_color)
            canvas.point_label(mid, "M", np.array([0.7, -0.7]), scale=0.9)
            facts.append(Fact("midpoint_named", {"seg": seg, "name": "M", "pt": _pt(*mid)}))
            midpoint = "M"
        else:
            facts.append(Fact("midpoint", {"seg": seg, "pt": _pt(*mid)}))
    facts.append(Fact("distance", {"seg": seg, **_val(dist)}))
    meta = {
        "shape": "points",
        "vertex_count": k,
        "labels": names + ([midpoint] if midpoint else []),
        "points": {n: list(p) for n, p in zip(names, pts)},
        "segment": seg if segment else None,
        "distance": dist,
        "drawn": {**plane, "coordinates_written": coords},
    }
    return Diagram(facts, meta)


# ---------------------------------------------------------------------------- lines
def _two_points(rng: np.random.Generator) -> tuple[tuple[int, int], tuple[int, int]]:
    u = rng.random()
    while True:
        p, q = _distinct_points(rng, 2, -5, 5)
        if u < 0.1:
            q = (q[0], p[1])
        elif u < 0.2:
            q = (p[0], q[1])
        if p != q:
            return p, q


def _line_through_view(
    p: tuple[int, int], q: tuple[int, int], view: tuple[tuple[float, float], tuple[float, float]]
) -> np.ndarray:
    (x0, x1), (y0, y1) = view
    if p[0] == q[0]:
        return np.array([[p[0], y0], [p[0], y1]], dtype=float)
    m = (q[1] - p[1]) / (q[0] - p[0])
    xs = np.array([x0, x1], dtype=float)
    return np.stack([xs, p[1] + m * (xs - p[0])], axis=1)


@register_diagram("coordinate_line")
def coordinate_line(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A straight line through two integer points, sometimes with a second line.

    The second line is parallel, perpendicular or crossing; its relation and intersection are stated.
    """
    p, q = _two_points(rng)
    eq = line_equation(p, q)
    second = None
    u = rng.random()
    if u < 0.35 and eq["direction"] not in ("vertical", "horizontal"):
        r = (int(rng.integers(-4, 5)), int(rng.integers(-4, 5)))
        m: Fraction = eq["slope"]
        if u < 0.12:  # parallel through r
            s = (r[0] + m.denominator, r[1] + m.numerator)
        elif u < 0.24:  # perpendicular through r
            s = (r[0] - m.numerator, r[1] + m.denominator)
        else:
            s = (int(rng.integers(-5, 6)), int(rng.integers(-5, 6)))
        if s != r and line_equation(r, s)["equation"] != eq["equation"]:
            second = (r, s)
    view = _view_around(rng, [p, q] + (list(second) if second else []))
    plane = _plane(rng, canvas, style, view)
    clip = view
    seg = _line_through_view(p, q, view)
    canvas.line(seg[:, 0], seg[:, 1], color=style.curve_color, clip=clip)
    marked = bool(rng.random() < 0.6)
    names = pick_letters(rng, 2)
    if marked:
        for pt, name in zip((p, q), names):
            canvas.dot(pt, color=style.curve_color)
            _name_point(canvas, rng, pt, name, bool(rng.random() < 0.6))
    facts = [Fact("line_intro", {"eq": eq["equation"]}, required=True), *_intro_facts(style)]
    if marked:
        facts.append(Fact("through_named", {"p": names[0], "q": names[1], "pt1": _pt(*p), "pt2": _pt(*q)}))
    else:
        facts.append(Fact("through", {"pt1": _pt(*p), "pt2": _pt(*q)}))
    facts.append(Fact("line_dir", {"dir_w": eq["direction"]}))
    if eq["slope"] is not None:
        facts.append(Fact("slope", {"val": format_fraction(eq["slope"])}))
    else:
        facts.append(Fact("slope_undefined"))
    if eq["y_intercept"] is not None:
        facts.append(Fact("y_int", {"val": format_fraction(eq["y_intercept"])}))
    if eq["x_intercept"] is not None:
        facts.append(Fact("x_int", {"val": format_fraction(eq["x_intercept"])}))
    meta: dict[str, Any] = {
        "shape": "line",
        "vertex_count": 0,
        "labels": names[:2] if marked else [],
        "lines": [
            {
                "through": [list(p), list(q)],
                "equation": eq["equation"],
                "slope": _frac(eq["slope"]),
                "y_intercept": _frac(eq["y_intercept"]),
                "x_intercept": _frac(eq["x_intercept"]),
            }
        ],
        "drawn": {**plane, "points_marked": marked},
    }
    if second is not None:
        r, s = second
        eq2 = line_equation(r, s)
        seg2 = _line_through_view(r, s, view)
        canvas.line(seg2[:, 0], seg2[:, 1], color=style.accent_color, clip=clip)
        facts.append(Fact("second_line", {"eq": eq2["equation"]}, required=True))
        m1, m2 = eq["slope"], eq2["slope"]
        if m2 is not None and m1 == m2:
            facts.append(Fact("lines_parallel", {"eq1": eq["equation"], "eq2": eq2["equation"]}))
            relation = "parallel"
        else:
            if m2 is not None and m1 * m2 == -1:
                facts.append(Fact("lines_perpendicular", {"eq1": eq["equation"], "eq2": eq2["equation"]}))
                relation = "perpendicular"
            else:
                relation = "intersecting"
            if m2 is None:
                xi = Fraction(r[0])
            else:
                xi = (eq2["y_intercept"] - eq["y_intercept"]) / (m1 - m2)
            yi = m1 * xi + eq["y_intercept"]
            facts.append(Fact("lines_intersect", {"pt": f"({format_fraction(xi)}, {format_fraction(yi)})"}))
            meta["intersection"] = [float(xi), float(yi)]
        meta["lines"].append(
            {
                "through": [list(r), list(s)],
                "equation": eq2["equation"],
                "slope": _frac(m2),
                "y_intercept": _frac(eq2["y_intercept"]),
                "x_intercept": _frac(eq2["x_intercept"]),
            }
        )
        meta["relation"] = relation
    return Diagram(facts, meta)


def _frac(v: Fraction | None) -> float | None:
    return None if v is None else float(v)


# ---------------------------------------------------------------------------- conics
def _shifted(var: str, c: int) -> str:
    return var if c == 0 else f"({var}{format_signed_constant(-c)})"


def _axis_crossings(h: float, k: float, r: float, axis: str) -> list[tuple[float, float]]:
    """Where the circle (x-h)^2 + (y-k)^2 = r^2 meets an axis."""
    off = k if axis == "x-axis" else h
    centre = h if axis == "x-axis" else k
    disc = r * r - off * off
    if disc < 0:
        return []
    roots = sorted({centre - math.sqrt(disc), centre + math.sqrt(disc)})
    return [(x, 0.0) if axis == "x-axis" else (0.0, x) for x in roots]


@register_diagram("coordinate_circle")
def coordinate_circle(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A circle with integer centre and radius, its equation and where it meets the axes."""
    h, k = int(rng.integers(-4, 5)), int(rng.integers(-4, 5))
    r = int(rng.integers(1, 6))
    equation = f"{_shifted('x', h)}^2 + {_shifted('y', k)}^2 = {r * r}"
    plane = _plane(rng, canvas, style, _view_around(rng, [(h - r, k - r), (h + r, k + r)]))
    canvas.circle((h, k), r, color=style.curve_color)
    canvas.dot((h, k), color=style.curve_color)
    centre_name = str(rng.choice(["C", "P", "O'", "M"])) if (h, k) != (0, 0) else "O"
    _name_point(canvas, rng, (h, k), centre_name, bool(rng.random() < 0.5))
    facts = [Fact("circle_eq", {"eq": equation}, required=True), *_intro_facts(style)]
    facts.append(Fact("centre_at", {"name": centre_name, "pt": _pt(h, k)}))
    facts.append(Fact("radius_plain", {"val": str(r)}))
    radius_drawn = bool(rng.random() < 0.5)
    if radius_drawn:
        t = float(rng.uniform(0, 2 * math.pi))
        end = (h + r * math.cos(t), k + r * math.sin(t))
        canvas.segment((h, k), end, dashed=True, width=style.line_width * 0.7)
    crossings: dict[str, list[list[float]]] = {}
    for axis in ("x-axis", "y-axis"):
        pts = _axis_crossings(h, k, r, axis)
        crossings[axis] = [list(p) for p in pts]
        if not pts:
            facts.append(Fact("axis_no_cross", {"axis_w": axis}))
        elif len(pts) == 1:
            facts.append(Fact("axis_tangent", {"axis_w": axis, "pt": _pt(*pts[0])}))
        else:
            approx = any(not is_round(c) for p in pts for c in p)
            facts.append(Fact("axis_crossings", {"axis_w": axis, "pts": [_pt(*p) for p in pts], "approx": approx}))
    if h * h + k * k == r * r:
        facts.append(Fact("through_origin"))
    val = math.pi * r * r
    facts.append(Fact("circle_area", {"val": format_number(val), "approx": True}))
    meta = {
        "shape": "circle",
        "vertex_count": 0,
        "labels": [centre_name],
        "centre": [h, k],
        "radius": r,
        "equation": equation,
        "axis_crossings": crossings,
        "drawn": {**plane, "radius": radius_drawn},
    }
    return Diagram(facts, meta)


@register_diagram("coordinate_ellipse")
def coordinate_ellipse(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """An axis-aligned ellipse with integer centre and semi-axes, its foci and eccentricity."""
    h, k = int(rng.integers(-3, 4)), int(rng.integers(-3, 4))
    while True:
        a, b = int(rng.integers(1, 7)), int(rng.integers(1, 7))
        if max(a, b) / min(a, b) >= 1.25:
            break
    equation = f"{_shifted('x', h)}^2/{a * a} + {_shifted('y', k)}^2/{b * b} = 1"
    c = math.sqrt(abs(a * a - b * b))
    horizontal = a > b
    foci = [(h - c, float(k)), (h + c, float(k))] if horizontal else [(float(h), k - c), (float(h), k + c)]
    plane = _plane(rng, canvas, style, _view_around(rng, [(h - a, k - b), (h + a, k + b)]))
    canvas.ellipse((h, k), a, b, color=style.curve_color)
    canvas.dot((h, k), color=style.curve_color)
    facts = [Fact("ellipse_eq", {"eq": equation}, required=True), *_intro_facts(style)]
    facts.append(Fact("centre_at_plain", {"pt": _pt(h, k)}))
    facts.append(Fact("major_axis", {"dir_w": "horizontal" if horizontal else "vertical", "val": str(2 * max(a, b))}))
    facts.append(Fact("minor_axis", {"val": str(2 * min(a, b))}))
    foci_text = [_pt(*f) for f in foci]
    facts.append(Fact("foci", {"pts": foci_text, "approx": not is_round(c)}))
    e = c / max(a, b)
    facts.append(Fact("eccentricity", {"val": format_number(e), "approx": not is_round(e)}))
    foci_drawn = bool(rng.random() < 0.5)
    if foci_drawn:
        for i, f in enumerate(foci):
            canvas.dot(f, color=style.accent_color)
            canvas.point_label(f, ("F1", "F2")[i], np.array([0.3, -1.0]), scale=0.8)
        facts.append(Fact("foci_marked", {"n1": "F1", "n2": "F2"}))
    meta = {
        "shape": "ellipse",
        "vertex_count": 0,
        "labels": ["F1", "F2"] if foci_drawn else [],
        "centre": [h, k],
        "semi_axes": [a, b],
        "equation": equation,
        "foci": [list(f) for f in foci],
        "eccentricity": e,
        "drawn": {**plane, "foci": foci_drawn},
    }
    return Diagram(facts, meta)


@register_diagram("coordinate_parabola")
def coordinate_parabola(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A parabola opening up, down, left or right, with its vertex, focus, directrix and axis."""
    a = float(rng.choice([0.25, 0.5, 1.0, 2.0])) * float(rng.choice([1, -1]))
    h, k = int(rng.integers(-3, 4)), int(rng.integers(-3, 4))
    vertical = bool(rng.random() < 0.6)
    p = 1 / (4 * a)
    coef = "" if a == 1 else ("-" if a == -1 else format_number(a))
    if vertical:
        equation = f"y = {coef}{_shifted('x', h)}^2{format_signed_constant(k)}"
        focus, directrix, axis = (float(h), k + p), f"y = {format_number(k - p, 3)}", f"x = {h}"
        opens = "up" if a > 0 else "down"
    else:
        equation = f"x = {coef}{_shifted('y', k)}^2{format_signed_constant(h)}"
        focus, directrix, axis = (h + p, float(k)), f"x = {format_number(h - p, 3)}", f"y = {k}"
        opens = "right" if a > 0 else "left"
    half = float(rng.integers(3, 6))
    reach = min(abs(a) * half * half, 8.0)
    sgn = 1.0 if a > 0 else -1.0
    if vertical:
        ends = [(h - half, k + sgn * reach), (h + half, k + sgn * reach), (float(h), k - p)]
    else:
        ends = [(h + sgn * reach, k - half), (h + sgn * reach, k + half), (h - p, float(k))]
    view = _view_around(rng, [(float(h), float(k)), focus, *ends])
    plane = _plane(rng, canvas, style, view)
    (x0, x1), (y0, y1) = view
    t = np.linspace(-(x1 - x0), x1 - x0, 400)
    if vertical:
        xs, ys = h + t, k + a * t * t
    else:
        xs, ys = h + a * t * t, k + t
    canvas.line(xs, ys, color=style.curve_color, clip=view)
    canvas.dot((h, k), color=style.curve_color)
    vertex_name = "V" if rng.random() < 0.5 else ""
    if vertex_name:
        canvas.point_label(
            (h, k), "V", np.array([0.8, -0.8 * sgn]) if vertical else np.array([-0.8 * sgn, 0.8]), scale=0.9
        )
    facts = [Fact("parabola_eq", {"eq": equation}, required=True), *_intro_facts(style)]
    if vertex_name:
        facts.append(Fact("vertex_at_named", {"pt": _pt(h, k), "name": vertex_name}))
    else:
        facts.append(Fact("vertex_at", {"pt": _pt(h, k)}))
    facts.append(Fact("opens", {"dir_w": f"open_{opens}"}))
    facts.append(Fact("focus_at", {"pt": format_point(*focus, digits=3)}))
    facts.append(Fact("directrix", {"eq": directrix}))
    facts.append(Fact("symmetry_axis", {"eq": axis}))
    x_crossings: list[float] = []
    if vertical and -k / a >= 0:
        root = math.sqrt(-k / a)
        x_crossings = sorted({h - root, h + root})
        approx = any(not is_round(x) for x in x_crossings)
        facts.append(Fact("x_crossings", {"xs": [format_number(x) for x in x_crossings], "approx": approx}))
    marks = bool(rng.random() < 0.5)
    if marks:
        canvas.dot(focus, color=style.accent_color)
        canvas.point_label(focus, "F", np.array([1.0, 0.3]), scale=0.8)
        if vertical:
            canvas.segment(
                (x0, k - p), (x1, k - p), dashed=True, color=style.accent_color, width=style.line_width * 0.7
            )
        else:
            canvas.segment(
                (h - p, y0), (h - p, y1), dashed=True, color=style.accent_color, width=style.line_width * 0.7
            )
        facts.append(Fact("focus_directrix_drawn"))
    meta = {
        "shape": "parabola",
        "vertex_count": 0,
        "labels": (["V"] if vertex_name else []) + (["F"] if marks else []),
        "a": a,
        "vertex": [h, k],
        "orientation": "vertical" if vertical else "horizontal",
        "opens": opens,
        "focus": list(focus),
        "directrix": directrix,
        "directrix_value": k - p if vertical else h - p,
        "equation": equation,
        "x_crossings": x_crossings,
        "drawn": {**plane, "focus_directrix": marks},
    }
    return Diagram(facts, meta)


# ---------------------------------------------------------------------------- rectangles
@register_diagram("coordinate_rectangle")
def coordinate_rectangle(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A non-square rectangle with integer vertices on a grid, axis-aligned or tilted."""
    style = dataclasses.replace(style, grid=True)
    x0, y0 = int(rng.integers(-5, 3)), int(rng.integers(-5, 3))
    if rng.random() < 0.6:
        while True:
            w, h = int(rng.integers(1, 8)), int(rng.integers(1, 8))
            if w != h:
                break
        u, v = (w, 0), (0, h)
    else:
        p, q = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        m1, m2 = [(1, 2), (2, 1), (1, 3), (3, 1)][int(rng.integers(4))]
        u, v = (p * m1, q * m1), (-q * m2, p * m2)
    pts = [(x0, y0), (x0 + u[0], y0 + u[1]), (x0 + u[0] + v[0], y0 + u[1] + v[1]), (x0 + v[0], y0 + v[1])]
    names = pick_letters(rng, 4)
    name = "".join(names)
    plane = _plane(rng, canvas, style, _view_around(rng, [(float(a), float(b)) for a, b in pts]))
    arr = np.array(pts, dtype=float)
    canvas.polygon(arr, fill=style.fill_color, color=style.curve_color)
    centre = arr.mean(axis=0)
    coords = bool(rng.random() < 0.5)
    for pt, n in zip(pts, names):
        d = np.array(pt, dtype=float) - centre
        canvas.dot(pt, color=style.curve_color, radius_px=2.5)
        canvas.point_label(pt, n + (_pt(*pt, label=True) if coords else ""), d, scale=0.85)
    width, height = math.hypot(*u), math.hypot(*v)
    facts = [Fact("rect_intro", {"name": name}, required=True), Fact("grid")]
    for pt, n in zip(pts, names):
        facts.append(Fact("vertex_coords", {"name": n, "pt": _pt(*pt)}))
    facts.append(
        Fact(
            "rect_dims",
            {
                "w": format_number(width),
                "h": format_number(height),
                "approx": not (is_round(width) and is_round(height)),
            },
        )
    )
    facts.append(Fact("area", {"name": name, **_val(width * height)}))
    facts.append(Fact("perimeter", {"name": name, **_val(2 * (width + height))}))
    facts.append(Fact("rect_centre", {"pt": _pt(*centre)}))
    facts.append(Fact("diagonal_len", _val(math.hypot(width, height))))
    if u[1] == 0:
        facts.append(Fact("axis_aligned", {"name": name}))
    meta = {
        "shape": "rectangle",
        "vertex_count": 4,
        "labels": names,
        "vertices": {n: list(p) for n, p in zip(names, pts)},
        "width": width,
        "height": height,
        "area": width * height,
        "axis_aligned": u[1] == 0,
        "drawn": {**plane, "coordinates_written": coords},
    }
    return Diagram(facts, meta)
