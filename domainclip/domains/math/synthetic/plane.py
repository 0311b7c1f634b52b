"""Plane geometry: triangles, quadrilaterals, regular polygons and circles, composed edge by edge.

Each shape is built from the numbers it is labelled with (integer sides, integer-degree angles),
so marked values are exact where possible; everything else (the remaining sides and angles, chord
and tangent lengths, areas) is computed from the drawn coordinates. Shape classes are checked on
the coordinates too: a triangle is ``right`` when an angle is 90 degrees, ``equilateral`` when all
sides are equal, ``isosceles`` when exactly two are, ``scalene`` otherwise; builders reject draws
whose class would be ambiguous to the eye (sides within 8 %, angles within 5 degrees of 90).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from domainclip.domains.math.synthetic.canvas import DiagramCanvas, Style
from domainclip.domains.math.synthetic.formatting import format_number, is_round
from domainclip.domains.math.synthetic.registry import Diagram, Fact, register_diagram

__all__ = ["LETTERS", "pick_letters", "triangle_class", "polygon_angles"]

#: Letters for points; ``O`` is kept for circle centres and ``I`` is left out (reads as a line).
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"

_POLYGON_NAMES = {3: "triangle", 4: "quadrilateral", 5: "pentagon", 6: "hexagon", 7: "heptagon", 8: "octagon"}


# ---------------------------------------------------------------------------- geometry helpers
def pick_letters(rng: np.random.Generator, k: int) -> list[str]:
    """``k`` distinct vertex letters: usually consecutive (``ABC``, ``PQRS``), sometimes scattered."""
    if rng.random() < 0.75:
        start = int(rng.integers(0, len(LETTERS) - k + 1))
        return list(LETTERS[start : start + k])
    idx = rng.choice(len(LETTERS), size=k, replace=False)
    return [LETTERS[int(i)] for i in idx]


def _spare_letter(rng: np.random.Generator, used: Sequence[str]) -> str:
    free = [c for c in LETTERS if c not in used]
    return free[int(rng.integers(len(free)))]


def _dist(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.hypot(*(np.asarray(q) - np.asarray(p))))


def _angle_at(v: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    """Angle p-v-q in degrees."""
    a, b = np.asarray(p) - v, np.asarray(q) - v
    cos = float(np.dot(a, b) / (np.hypot(*a) * np.hypot(*b)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def polygon_angles(points: np.ndarray) -> list[float]:
    """Interior angles in degrees of a convex polygon, vertex by vertex."""
    n = len(points)
    return [_angle_at(points[i], points[i - 1], points[(i + 1) % n]) for i in range(n)]


def triangle_class(points: np.ndarray, tol: float = 1e-6) -> tuple[str, str]:
    """``(side class, angle class)`` of a triangle from its coordinates.

    Side class: ``equilateral``, ``isosceles`` or ``scalene``; angle class: ``acute``, ``right`` or
    ``obtuse``. ``tol`` is relative for sides and in degrees for angles.
    """
    sides = sorted(_dist(points[i], points[(i + 1) % 3]) for i in range(3))
    equal = [abs(sides[i] - sides[j]) <= tol * sides[j] for i, j in ((0, 1), (1, 2), (0, 2))]
    side_kind = "equilateral" if all(equal) else ("isosceles" if any(equal) else "scalene")
    biggest = max(polygon_angles(points))
    angle_kind = "right" if abs(biggest - 90) <= tol * 100 else ("obtuse" if biggest > 90 else "acute")
    return side_kind, angle_kind


def _rotate(points: np.ndarray, theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return points @ np.array([[c, s], [-s, c]])


def _place(rng: np.random.Generator, points: np.ndarray, *, upright: float = 0.5) -> np.ndarray:
    """Centre the shape and rotate it: kept as built with probability ``upright``, else at random."""
    pts = np.asarray(points, dtype=float)
    if rng.random() < 0.25:
        pts = pts * np.array([-1.0, 1.0])  # mirror image (marks and labels do not depend on orientation)
    if rng.random() >= upright:
        pts = _rotate(pts, float(rng.uniform(0, 2 * math.pi)))
    return pts - pts.mean(axis=0)


def _begin(
    canvas: DiagramCanvas, style: Style, rng: np.random.Generator, points: np.ndarray, pad: float = 0.28
) -> None:
    """Set square data limits around ``points`` with room for labels; draw the optional grid."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    half = float(max(hi - lo)) / 2 * (1 + pad) + 1e-9
    half *= float(rng.uniform(1.0, 1.15))
    shift = rng.uniform(-0.05, 0.05, size=2) * half
    x0, y0 = centre - half + shift
    canvas.begin(style, (x0, x0 + 2 * half), (y0, y0 + 2 * half))
    if style.grid:
        step = _grid_step(2 * half)
        xs = np.arange(math.floor(x0 / step) * step, x0 + 2 * half + step, step)
        ys = np.arange(math.floor(y0 / step) * step, y0 + 2 * half + step, step)
        segs = [((x, y0), (x, y0 + 2 * half)) for x in xs] + [((x0, y), (x0 + 2 * half, y)) for y in ys]
        canvas.segments(segs, width=0.5, color="#d9d9d9", zorder=0.5)


def _grid_step(span: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 20):
        if span / step <= 16:
            return float(step)
    return 50.0


def _outward(points: np.ndarray, i: int) -> np.ndarray:
    """External bisector direction at vertex ``i`` (where its label goes)."""
    n = len(points)
    v = points[i]
    a, b = points[i - 1] - v, points[(i + 1) % n] - v
    d = -(a / np.hypot(*a) + b / np.hypot(*b))
    if np.hypot(*d) < 1e-6:
        d = v - points.mean(axis=0)
    return d / np.hypot(*d)


def _jitter(rng: np.random.Generator, d: np.ndarray, degrees: float = 25.0) -> np.ndarray:
    t = math.radians(float(rng.uniform(-degrees, degrees)))
    return _rotate(d[None, :], -t)[0]


def _fmt_len(v: float) -> tuple[str, bool]:
    """Length as written on the diagram (one decimal) and whether that is an approximation."""
    return format_number(v, 1), not is_round(v, 1)


def _fmt_deg(v: float) -> tuple[str, bool]:
    return format_number(v, 1), not is_round(v, 1)


def _seg(letters: Sequence[str], i: int, j: int) -> str:
    return letters[i] + letters[j]


def _label_vertices(
    canvas: DiagramCanvas, rng: np.random.Generator, pts: np.ndarray, letters: Sequence[str], dots: bool
) -> None:
    for i, name in enumerate(letters):
        canvas.point_label(pts[i], name, _jitter(rng, _outward(pts, i)))
        if dots:
            canvas.dot(pts[i], radius_px=2.5)


def _mark_length(
    canvas: DiagramCanvas, pts: np.ndarray, i: int, j: int, text: str, centre: np.ndarray | None = None
) -> None:
    """Write a length beside edge ``i-j``, on the side away from ``centre``."""
    p, q = pts[i], pts[j]
    mid = (p + q) / 2
    d = q - p
    n = np.array([-d[1], d[0]]) / np.hypot(*d)
    ref = pts.mean(axis=0) if centre is None else centre
    if np.dot(n, mid - ref) < 0:
        n = -n
    style = canvas.style
    assert style is not None
    dist = style.font_px * 0.95
    canvas.label(mid, text, offset_px=(n[0] * dist, n[1] * dist), scale=0.9)


def _mark_angle(canvas: DiagramCanvas, pts: np.ndarray, i: int, text: str | None) -> None:
    """Arc at vertex ``i`` of a convex polygon, with its value written inside when given."""
    n = len(pts)
    angle = _angle_at(pts[i], pts[i - 1], pts[(i + 1) % n])
    radius = 13.0 + max(0.0, 45.0 - angle) * 0.5
    bis = canvas.angle_arc(pts[i], pts[i - 1], pts[(i + 1) % n], radius_px=radius)
    if text is not None:
        style = canvas.style
        assert style is not None
        dist = radius + style.font_px * 1.1
        canvas.label(pts[i], text, offset_px=(bis[0] * dist, bis[1] * dist), scale=0.8)


def _right_mark(canvas: DiagramCanvas, pts: np.ndarray, i: int, size_px: float = 10.0) -> None:
    n = len(pts)
    canvas.right_angle(pts[i], pts[i - 1] - pts[i], pts[(i + 1) % n] - pts[i], size_px)


def _side_facts(letters: Sequence[str], pts: np.ndarray, edges: Sequence[tuple[int, int]]) -> list[Fact]:
    facts = []
    for i, j in edges:
        val, approx = _fmt_len(_dist(pts[i], pts[j]))
        facts.append(Fact("side_length", {"seg": _seg(letters, i, j), "val": val, "approx": approx}))
    return facts


def _angle_fact(letters: Sequence[str], pts: np.ndarray, i: int) -> Fact:
    n = len(pts)
    val, approx = _fmt_deg(_angle_at(pts[i], pts[i - 1], pts[(i + 1) % n]))
    name = letters[i - 1] + letters[i] + letters[(i + 1) % n]
    return Fact("angle_value", {"vertex": letters[i], "angle": name, "val": val, "approx": approx})


def _polygon_meta(shape: str, letters: Sequence[str], pts: np.ndarray, **extra: Any) -> dict[str, Any]:
    n = len(pts)
    return {
        "shape": shape,
        "vertex_count": n,
        "labels": list(letters),
        "vertices": {letters[i]: [float(pts[i][0]), float(pts[i][1])] for i in range(n)},
        "side_lengths": {_seg(letters, i, (i + 1) % n): _dist(pts[i], pts[(i + 1) % n]) for i in range(n)},
        "angles": {letters[i]: a for i, a in enumerate(polygon_angles(pts))},
        **extra,
    }


def _choose(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _subset(rng: np.random.Generator, n: int, lo: int, hi: int) -> list[int]:
    k = int(rng.integers(lo, hi + 1))
    return sorted(int(i) for i in rng.choice(n, size=min(k, n), replace=False))


# ---------------------------------------------------------------------------- triangles
def _triangle_from_angles(a_deg: float, b_deg: float, c_len: float) -> np.ndarray:
    """Vertices of triangle ABC with angles A, B (degrees) and side AB = ``c_len``."""
    c_deg = 180.0 - a_deg - b_deg
    b_len = c_len * math.sin(math.radians(b_deg)) / math.sin(math.radians(c_deg))
    a = math.radians(a_deg)
    return np.array([[0.0, 0.0], [c_len, 0.0], [b_len * math.cos(a), b_len * math.sin(a)]])


def _draw_triangle(
    rng: np.random.Generator,
    canvas: DiagramCanvas,
    style: Style,
    built: np.ndarray,
    kind: str,
    *,
    apex: int | None = None,
) -> Diagram:
    """Draw a triangle and state its class, sides and angles.

    Args:
        rng: the diagram's generator.
        canvas: the canvas to draw on.
        style: the diagram's rendering style.
        built: the three vertices as constructed (placed, rotated and mirrored here).
        kind: class word for the caption (``equilateral``, ``isosceles``, ``right``, ``scalene``).
        apex: for isosceles triangles, the vertex between the two equal sides.
    """
    pts = _place(rng, built, upright=0.55)
    letters = pick_letters(rng, 3)
    side_kind, angle_kind = triangle_class(pts)
    _begin(canvas, style, rng, pts)
    canvas.polygon(pts, fill=style.fill_color)
    _label_vertices(canvas, rng, pts, letters, dots=bool(rng.random() < 0.3))
    name = "".join(letters)
    facts = [Fact("tri_intro", {"name": name, "kind_w": kind}, required=True)]
    angles = polygon_angles(pts)
    right = [i for i, a in enumerate(angles) if abs(a - 90) < 1e-6]
    if angle_kind != "right":
        facts.append(Fact("tri_angle_kind", {"name": name, "kind_w": angle_kind}))
    if angle_kind == "obtuse":
        i = int(np.argmax(angles))
        facts.append(Fact("obtuse_angle_at", {"vertex": letters[i]}))
    # lengths written on edges
    edges = [(0, 1), (1, 2), (2, 0)]
    marked = [edges[k] for k in _subset(rng, 3, 1, 3)]
    for i, j in marked:
        _mark_length(canvas, pts, i, j, _fmt_len(_dist(pts[i], pts[j]))[0])
    facts += _side_facts(letters, pts, marked)
    # angle arcs with values, right-angle squares
    candidates = [i for i in range(3) if i not in right]
    valued = [candidates[k] for k in _subset(rng, len(candidates), 0, min(2, len(candidates)))]
    for i in valued:
        _mark_angle(canvas, pts, i, _fmt_deg(angles[i])[0] + "°")
        facts.append(_angle_fact(letters, pts, i))
    for i in right:
        _right_mark(canvas, pts, i)
        hyp = [e for e in edges if i not in e][0]
        facts.append(
            Fact("right_angle_at", {"vertex": letters[i], "angle": letters[i - 1] + letters[i] + letters[(i + 1) % 3]})
        )
        facts.append(Fact("right_mark", {"vertex": letters[i]}))
        facts.append(Fact("hypotenuse", {"seg": _seg(letters, *hyp)}))
    if kind == "equilateral":
        facts.append(Fact("all_sides_equal", {"name": name}))
        facts.append(Fact("all_angles_60", {"name": name}))
    if apex is not None:
        b1, b2 = [k for k in range(3) if k != apex]
        facts.append(Fact("equal_sides", {"seg1": _seg(letters, apex, b1), "seg2": _seg(letters, apex, b2)}))
        facts.append(Fact("base_angles_equal", {"v1": letters[b1], "v2": letters[b2]}))
    hashes = bool(rng.random() < 0.5) and (kind == "equilateral" or apex is not None)
    if hashes:
        if kind == "equilateral":
            for i, j in edges:
                canvas.hash_marks(pts[i], pts[j], 1)
        else:
            assert apex is not None
            for k in range(3):
                if k != apex:
                    canvas.hash_marks(pts[apex], pts[k], 1)
        facts.append(Fact("equal_marks"))
    # an altitude onto the longest side, with its foot and right-angle mark
    altitude = None
    if rng.random() < 0.25:
        longest = max(edges, key=lambda e: _dist(pts[e[0]], pts[e[1]]))
        top = [k for k in range(3) if k not in longest][0]
        if top not in right:
            p, q = pts[longest[0]], pts[longest[1]]
            t = float(np.dot(pts[top] - p, q - p) / np.dot(q - p, q - p))
            foot = p + t * (q - p)
            foot_name = _spare_letter(rng, letters)
            canvas.segment(pts[top], foot, dashed=bool(rng.random() < 0.5), width=style.line_width * 0.8)
            canvas.right_angle(foot, q - foot, pts[top] - foot, 9.0)
            away = foot - pts[top]
            canvas.point_label(foot, foot_name, _jitter(rng, away / np.hypot(*away), 10))
            altitude = {"from": letters[top], "foot": foot_name, "onto": _seg(letters, *longest)}
            facts.append(
                Fact("altitude", {"seg": letters[top] + foot_name, "base": _seg(letters, *longest), "foot": foot_name})
            )
    meta = _polygon_meta("triangle", letters, pts, side_kind=side_kind, angle_kind=angle_kind, altitude=altitude)
    if altitude is not None:
        meta["labels"].append(altitude["foot"])
    return Diagram(facts, meta)


@register_diagram("equilateral_triangle")
def equilateral_triangle(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """An equilateral triangle with integer side."""
    side = float(rng.integers(2, 13))
    return _draw_triangle(rng, canvas, style, _triangle_from_angles(60, 60, side), "equilateral")


@register_diagram("isosceles_triangle")
def isosceles_triangle(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """An isosceles, non-right, non-equilateral triangle; the apex angle is an even number of degrees."""
    while True:
        apex_angle = float(2 * rng.integers(12, 69))
        if abs(apex_angle - 60) >= 12 and abs(apex_angle - 90) >= 6:
            break
    base_angle = (180 - apex_angle) / 2
    base = float(rng.integers(3, 13))
    built = _triangle_from_angles(base_angle, base_angle, base)  # apex is vertex 2
    return _draw_triangle(rng, canvas, style, built, "isosceles", apex=2)


_TRIPLES = ((3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25), (20, 21, 29))


@register_diagram("right_triangle")
def right_triangle(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A right triangle: a Pythagorean triple, integer legs, or an integer acute angle."""
    mode = rng.random()
    if mode < 0.35:
        p, q, _ = _choose(rng, _TRIPLES)
        k = 1 if p > 6 else int(rng.integers(1, 3))
        legs = (float(p * k), float(q * k)) if rng.random() < 0.5 else (float(q * k), float(p * k))
    elif mode < 0.7:
        a = float(rng.integers(2, 11))
        legs = (a, a) if rng.random() < 0.2 else (a, float(rng.integers(2, 11)))
    else:
        angle = math.radians(float(rng.integers(20, 71)))
        hyp = float(rng.integers(4, 13))
        legs = (hyp * math.cos(angle), hyp * math.sin(angle))
    built = np.array([[0.0, 0.0], [legs[0], 0.0], [0.0, legs[1]]])  # right angle at vertex 0
    iso = abs(legs[0] - legs[1]) < 1e-9
    return _draw_triangle(rng, canvas, style, built, "right", apex=0 if iso else None)


@register_diagram("scalene_triangle")
def scalene_triangle(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A scalene triangle, acute or obtuse, with integer angles differing by at least 8 degrees."""
    while True:
        a, b = float(rng.integers(20, 121)), float(rng.integers(20, 121))
        c = 180 - a - b
        angles = sorted((a, b, c))
        if c < 20 or any(abs(x - 90) < 5 for x in angles) or min(np.diff(angles)) < 8:
            continue
        sides = sorted(math.sin(math.radians(x)) for x in angles)
        if min(sides[1] / sides[0], sides[2] / sides[1]) >= 1.08:
            break
    built = _triangle_from_angles(a, b, float(rng.integers(4, 13)))
    return _draw_triangle(rng, canvas, style, built, "scalene")


# ---------------------------------------------------------------------------- quadrilaterals
def _draw_quadrilateral(
    rng: np.random.Generator,
    canvas: DiagramCanvas,
    style: Style,
    built: np.ndarray,
    kind: str,
    *,
    parallel: Sequence[tuple[int, int, int, int]] = (),
    equal_groups: Sequence[Sequence[tuple[int, int]]] = (),
    right: Sequence[int] = (),
    diagonal_facts: Sequence[str] = (),
    area: float | None = None,
    subtype: str | None = None,
) -> Diagram:
    pts = _place(rng, built, upright=0.6)
    letters = pick_letters(rng, 4)
    name = "".join(letters)
    _begin(canvas, style, rng, pts)
    canvas.polygon(pts, fill=style.fill_color)
    _label_vertices(canvas, rng, pts, letters, dots=bool(rng.random() < 0.3))
    facts = [Fact("quad_intro", {"name": name, "kind_w": kind}, required=True)]
    if subtype is not None:
        facts.append(Fact("trapezoid_kind", {"name": name, "kind_w": subtype}))
    edges = [(0, 1), (1, 2), (2, 3), (3, 0)]
    marked = [edges[k] for k in _subset(rng, 4, 1, 2)]
    for i, j in marked:
        _mark_length(canvas, pts, i, j, _fmt_len(_dist(pts[i], pts[j]))[0])
    facts += _side_facts(letters, pts, marked)
    angles = polygon_angles(pts)
    if len(right) == 4:
        facts.append(Fact("all_right_angles", {"name": name}))
    for i in right:
        if len(right) < 4:
            facts.append(
                Fact(
                    "right_angle_at",
                    {"vertex": letters[i], "angle": letters[i - 1] + letters[i] + letters[(i + 1) % 4]},
                )
            )
    right_marks = [i for i in right if rng.random() < 0.7]
    for i in right_marks:
        _right_mark(canvas, pts, i)
    if right_marks:
        facts.append(Fact("right_mark", {"vertex": letters[right_marks[0]]}))
    others = [i for i in range(4) if i not in right]
    valued = [others[k] for k in _subset(rng, len(others), 0, min(2, len(others)))] if others else []
    for i in valued:
        _mark_angle(canvas, pts, i, _fmt_deg(angles[i])[0] + "°")
        facts.append(_angle_fact(letters, pts, i))
    for a, b, c, d in parallel:
        facts.append(Fact("parallel", {"seg1": _seg(letters, a, b), "seg2": _seg(letters, c, d)}))
    if parallel and rng.random() < 0.4:
        for count, (a, b, c, d) in enumerate(parallel, start=1):
            canvas.parallel_marks(pts[a], pts[b], count)
            canvas.parallel_marks(pts[c], pts[d], count)
        facts.append(Fact("parallel_marks"))
    for group in equal_groups:
        if len(group) == 4:
            facts.append(Fact("all_sides_equal", {"name": name}))
        else:
            facts.append(Fact("equal_sides", {"seg1": _seg(letters, *group[0]), "seg2": _seg(letters, *group[1])}))
    if equal_groups and rng.random() < 0.5:
        for count, group in enumerate(equal_groups, start=1):
            for i, j in group:
                canvas.hash_marks(pts[i], pts[j], count)
        facts.append(Fact("equal_marks"))
    diagonals = None
    if rng.random() < 0.3:
        dashed = bool(rng.random() < 0.5)
        canvas.segment(pts[0], pts[2], dashed=dashed, width=style.line_width * 0.8)
        canvas.segment(pts[1], pts[3], dashed=dashed, width=style.line_width * 0.8)
        d1, d2 = _seg(letters, 0, 2), _seg(letters, 1, 3)
        facts.append(Fact("diagonals", {"d1": d1, "d2": d2}))
        for kind_fact in diagonal_facts:
            facts.append(Fact(kind_fact, {"d1": d1, "d2": d2}))
        diagonals = [d1, d2]
    perimeter = sum(_dist(pts[i], pts[j]) for i, j in edges)
    val, approx = _fmt_len(perimeter)
    facts.append(Fact("perimeter", {"name": name, "val": val, "approx": approx}))
    if area is not None:
        val, approx = _fmt_len(area)
        facts.append(Fact("area", {"name": name, "val": val, "approx": approx}))
    meta = _polygon_meta(
        "quadrilateral", letters, pts, quadrilateral_kind=kind, trapezoid_kind=subtype, diagonals=diagonals, area=area
    )
    return Diagram(facts, meta)


_PARALLELOGRAM_PAIRS = ((0, 1, 3, 2), (1, 2, 0, 3))


@register_diagram("square")
def square(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A square with integer side."""
    s = float(rng.integers(2, 13))
    built = np.array([[0, 0], [s, 0], [s, s], [0, s]], dtype=float)
    return _draw_quadrilateral(
        rng,
        canvas,
        style,
        built,
        "square",
        parallel=_PARALLELOGRAM_PAIRS,
        equal_groups=[[(0, 1), (1, 2), (2, 3), (3, 0)]],
        right=(0, 1, 2, 3),
        diagonal_facts=("diagonals_equal", "diagonals_perpendicular", "diagonals_bisect"),
        area=s * s,
    )


@register_diagram("rectangle")
def rectangle(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A non-square rectangle with integer sides."""
    while True:
        w, h = float(rng.integers(2, 15)), float(rng.integers(2, 15))
        if max(w, h) / min(w, h) >= 1.25:
            break
    built = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=float)
    return _draw_quadrilateral(
        rng,
        canvas,
        style,
        built,
        "rectangle",
        parallel=_PARALLELOGRAM_PAIRS,
        right=(0, 1, 2, 3),
        diagonal_facts=("diagonals_equal", "diagonals_bisect"),
        area=w * h,
    )


def _slanted(a: float, b: float, angle_deg: float) -> np.ndarray:
    t = math.radians(angle_deg)
    return np.array([[0, 0], [a, 0], [a + b * math.cos(t), b * math.sin(t)], [b * math.cos(t), b * math.sin(t)]])


def _oblique_angle(rng: np.random.Generator, lo: int = 40, hi: int = 80) -> float:
    return float(rng.integers(lo, hi + 1))


@register_diagram("parallelogram")
def parallelogram(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A parallelogram that is neither a rectangle nor a rhombus, with an integer-degree angle."""
    while True:
        a, b = float(rng.integers(3, 14)), float(rng.integers(2, 11))
        if max(a, b) / min(a, b) >= 1.2:
            break
    angle = _oblique_angle(rng, 40, 80)
    area = a * b * math.sin(math.radians(angle))
    return _draw_quadrilateral(
        rng,
        canvas,
        style,
        _slanted(a, b, angle),
        "parallelogram",
        parallel=_PARALLELOGRAM_PAIRS,
        equal_groups=(),
        diagonal_facts=("diagonals_bisect",),
        area=area,
    )


@register_diagram("rhombus")
def rhombus(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A rhombus that is not a square, with an integer-degree angle."""
    s = float(rng.integers(2, 12))
    angle = _oblique_angle(rng, 40, 78)
    area = s * s * math.sin(math.radians(angle))
    return _draw_quadrilateral(
        rng,
        canvas,
        style,
        _slanted(s, s, angle),
        "rhombus",
        parallel=_PARALLELOGRAM_PAIRS,
        equal_groups=[[(0, 1), (1, 2), (2, 3), (3, 0)]],
        diagonal_facts=("diagonals_perpendicular", "diagonals_bisect"),
        area=area,
    )


@register_diagram("trapezoid")
def trapezoid(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A trapezoid (exactly one pair of parallel sides): isosceles, right or general."""
    b1 = float(rng.integers(6, 15))
    b2 = float(rng.integers(2, int(b1 * 0.75) + 1))
    h = float(rng.integers(max(2, int(b1) // 3), 10))
    sub = str(_choose(rng, ("isosceles", "right", "general")))
    if sub == "isosceles":
        off = (b1 - b2) / 2
    elif sub == "right":
        off = 0.0
    else:
        while True:
            off = float(rng.uniform(-0.4 * b2, b1 - 0.6 * b2))
            if abs(off) > 0.15 * b1 and abs(off - (b1 - b2) / 2) > 0.15 * b1 and abs(off - (b1 - b2)) > 0.15 * b1:
                break
        off = round(off, 1)
    built = np.array([[0, 0], [b1, 0], [off + b2, h], [off, h]])
    right = (0, 3) if sub == "right" else ()
    groups = [[(1, 2), (3, 0)]] if sub == "isosceles" else []
    diag = ("diagonals_equal",) if sub == "isosceles" else ()
    return _draw_quadrilateral(
        rng,
        canvas,
        style,
        built,
        "trapezoid",
        parallel=((0, 1, 3, 2),),
        equal_groups=groups,
        right=right,
        diagonal_facts=diag,
        area=(b1 + b2) / 2 * h,
        subtype=None if sub == "general" else sub,
    )


@register_diagram("kite")
def kite(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A convex kite that is not a rhombus: two pairs of equal adjacent sides."""
    w = float(rng.integers(2, 7))
    while True:
        top, bottom = float(rng.integers(2, 10)), float(rng.integers(3, 14))
        if max(top, bottom) / min(top, bottom) >= 1.4:
            break
    built = np.array([[0, top], [-w, 0], [0, -bottom], [w, 0]])
    return _draw_quadrilateral(
        rng,
        canvas,
        style,
        built,
        "kite",
        equal_groups=[[(0, 1), (3, 0)], [(1, 2), (2, 3)]],
        diagonal_facts=("diagonals_perpendicular",),
        area=w * (top + bottom),
    )


# ---------------------------------------------------------------------------- regular polygons
@register_diagram("regular_polygon")
def regular_polygon(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A regular pentagon, hexagon, heptagon or octagon with integer side."""
    n = int(rng.integers(5, 9))
    side = float(rng.integers(2, 11))
    radius = side / (2 * math.sin(math.pi / n))
    start = float(rng.uniform(0, 2 * math.pi)) if rng.random() < 0.5 else -math.pi / 2 + math.pi / n  # flat bottom edge
    t = start + 2 * math.pi * np.arange(n) / n
    pts = np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)
    letters = pick_letters(rng, n)
    name = "".join(letters)
    _begin(canvas, style, rng, pts)
    canvas.polygon(pts, fill=style.fill_color)
    _label_vertices(canvas, rng, pts, letters, dots=bool(rng.random() < 0.3))
    shape_w = _POLYGON_NAMES[n]
    interior = 180.0 * (n - 2) / n
    facts = [Fact("regpoly_intro", {"name": name, "shape_w": shape_w, "n": str(n)}, required=True)]
    facts.append(Fact("all_sides_equal", {"name": name}))
    val, approx = _fmt_deg(interior)
    facts.append(Fact("interior_angle", {"val": val, "approx": approx}))
    facts.append(Fact("angle_sum", {"val": format_number(180.0 * (n - 2)), "name": name}))
    val, approx = _fmt_deg(360.0 / n)
    facts.append(Fact("exterior_angle", {"val": val, "approx": approx}))
    _mark_length(canvas, pts, 0, 1, _fmt_len(side)[0], centre=np.zeros(2))
    facts += _side_facts(letters, pts, [(0, 1)])
    val, approx = _fmt_len(n * side)
    facts.append(Fact("perimeter", {"name": name, "val": val, "approx": approx}))
    if rng.random() < 0.3:
        k = int(rng.integers(n))
        _mark_angle(canvas, pts, k, _fmt_deg(interior)[0] + "°")
        facts.append(_angle_fact(letters, pts, k))
    centre = None
    if rng.random() < 0.4:
        canvas.dot((0.0, 0.0))
        canvas.point_label((0.0, 0.0), "O", _jitter(rng, np.array([0.0, -1.0]), 30))
        canvas.segment((0.0, 0.0), pts[0], dashed=True, width=style.line_width * 0.7)
        val, approx = _fmt_len(radius)
        facts.append(Fact("centre_radius", {"centre": "O", "seg": "O" + letters[0], "val": val, "approx": approx}))
        centre = "O"
    meta = _polygon_meta("regular_polygon", letters, pts, polygon_name=shape_w, circumradius=radius, centre=centre)
    if centre is not None:
        meta["labels"].append(centre)
    return Diagram(facts, meta)


# ---------------------------------------------------------------------------- circles
def _circle_frame(rng: np.random.Generator, canvas: DiagramCanvas, style: Style, r: float, extra: np.ndarray) -> None:
    pts = np.concatenate([np.array([[-r, -r], [r, r]]), extra.reshape(-1, 2)])
    _begin(canvas, style, rng, pts, pad=0.22)
    canvas.circle((0.0, 0.0), r, fill=style.fill_color)


def _centre(canvas: DiagramCanvas, rng: np.random.Generator, direction: np.ndarray | None = None) -> None:
    canvas.dot((0.0, 0.0))
    d = direction if direction is not None else np.array([-0.6, -0.8])
    canvas.point_label((0.0, 0.0), "O", _jitter(rng, d / np.hypot(*d), 20))


def _on_circle(r: float, theta: float) -> np.ndarray:
    return np.array([r * math.cos(theta), r * math.sin(theta)])


@register_diagram("circle_chord")
def circle_chord(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A circle with centre O and a chord (or a diameter), the perpendicular from O and a radius."""
    r = float(rng.integers(3, 11))
    diameter = bool(rng.random() < 0.25)
    d = 0.0 if diameter else round(float(rng.uniform(0.2, 0.8)) * r, 1)
    phi = float(rng.uniform(0, 2 * math.pi))
    half = math.acos(d / r)
    a, b = _on_circle(r, phi - half), _on_circle(r, phi + half)
    used = ["O"]
    la, lb = pick_letters(rng, 2)
    used += [la, lb]
    _circle_frame(rng, canvas, style, r, np.stack([a, b]))
    _centre(canvas, rng, -_on_circle(1.0, phi))
    canvas.segment(a, b)
    canvas.point_label(a, la, _jitter(rng, a / r))
    canvas.point_label(b, lb, _jitter(rng, b / r))
    chord = la + lb
    chord_len = 2 * math.sqrt(r * r - d * d)
    facts = [Fact("circle_intro", {"centre": "O"}, required=True)]
    if diameter:
        facts.append(Fact("diameter", {"seg": chord, "centre": "O"}, required=True))
        val, approx = _fmt_len(chord_len)
        facts.append(Fact("segment_length", {"seg": chord, "val": val, "approx": approx}))
    else:
        facts.append(Fact("chord", {"seg": chord}, required=True))
    meta: dict[str, Any] = {
        "shape": "circle",
        "vertex_count": 0,
        "labels": ["O", la, lb],
        "radius": r,
        "chords": [{"name": chord, "length": chord_len, "distance_from_centre": d}],
        "diameter": diameter,
    }
    if rng.random() < 0.7:  # a radius to one endpoint, with its length
        canvas.segment((0.0, 0.0), a, width=style.line_width * 0.8)
        _mark_length(canvas, np.stack([np.zeros(2), a]), 0, 1, _fmt_len(r)[0], centre=b)
        facts.append(Fact("radius_val", {"seg": "O" + la, "val": _fmt_len(r)[0]}))
    else:
        facts.append(Fact("radius_plain", {"val": _fmt_len(r)[0]}))
    if not diameter:
        m = (a + b) / 2
        perpendicular = bool(rng.random() < 0.65)
        if perpendicular:
            lm = _spare_letter(rng, used)
            used.append(lm)
            canvas.segment((0.0, 0.0), m, dashed=bool(rng.random() < 0.4), width=style.line_width * 0.8)
            canvas.right_angle(m, a - m, -m, 9.0)
            canvas.point_label(m, lm, _jitter(rng, m / max(np.hypot(*m), 1e-9), 15))
            facts.append(Fact("perp_bisect", {"foot": lm, "perp": "O" + lm, "chord": chord}))
            facts.append(Fact("right_mark", {"vertex": lm}))
            val, approx = _fmt_len(d)
            facts.append(Fact("centre_distance", {"seg": "O" + lm, "val": val, "approx": approx}))
            if rng.random() < 0.5:
                _mark_length(canvas, np.stack([np.zeros(2), m]), 0, 1, val, centre=a)
            meta["labels"].append(lm)
        val, approx = _fmt_len(chord_len)
        facts.append(Fact("chord_length", {"seg": chord, "val": val, "approx": approx}))
        meta["perpendicular_from_centre"] = perpendicular
    if rng.random() < 0.3:  # a second chord
        while True:
            t1, t2 = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi))
            if 0.5 < abs(t1 - t2) < 2 * math.pi - 0.5:
                break
        c, e = _on_circle(r, t1), _on_circle(r, t2)
        lc = _spare_letter(rng, used)
        used.append(lc)
        le = _spare_letter(rng, used)
        used.append(le)
        canvas.segment(c, e)
        canvas.point_label(c, lc, _jitter(rng, c / r))
        canvas.point_label(e, le, _jitter(rng, e / r))
        length = _dist(c, e)
        val, approx = _fmt_len(length)
        facts.append(Fact("second_chord", {"seg": lc + le, "val": val, "approx": approx}))
        meta["chords"].append(
            {
                "name": lc + le,
                "length": length,
                "distance_from_centre": math.sqrt(max(r * r - length * length / 4, 0.0)),
            }
        )
        meta["labels"] += [lc, le]
    return Diagram(facts, meta)


@register_diagram("circle_tangent")
def circle_tangent(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A circle with centre O, an external point P and the tangent from P touching at T."""
    if rng.random() < 0.5:
        p, q, hyp = _choose(rng, ((3, 4, 5), (5, 12, 13), (8, 15, 17), (6, 8, 10), (4, 3, 5)))
        r, dist = float(p), float(hyp)
    else:
        r = float(rng.integers(2, 9))
        dist = float(rng.integers(int(r * 1.5) + 1, int(r * 3) + 2))
    phi = float(rng.uniform(0, 2 * math.pi))
    p_pt = _on_circle(dist, phi)
    alpha = math.acos(r / dist)
    t_pt = _on_circle(r, phi + alpha)
    u_pt = _on_circle(r, phi - alpha)
    tangent_len = math.sqrt(dist * dist - r * r)
    lp, lt = pick_letters(rng, 2)
    two = bool(rng.random() < 0.4)
    lu = _spare_letter(rng, [lp, lt]) if two else None
    extend = 0.35 * tangent_len
    t_dir = (t_pt - p_pt) / tangent_len
    far = t_pt + t_dir * extend
    extra = [p_pt, far]
    if two:
        extra.append(u_pt + (u_pt - p_pt) / tangent_len * extend)
    _circle_frame(rng, canvas, style, r, np.stack(extra))
    _centre(canvas, rng, -_on_circle(1.0, phi))
    canvas.segment(p_pt, far)
    canvas.segment((0.0, 0.0), t_pt, width=style.line_width * 0.8)
    canvas.right_angle(t_pt, -t_pt, p_pt - t_pt, 9.0)
    canvas.point_label(p_pt, lp, _jitter(rng, p_pt / dist))
    canvas.point_label(t_pt, lt, _jitter(rng, t_pt / r))
    facts = [
        Fact("circle_intro", {"centre": "O"}, required=True),
        Fact("tangent", {"line": lp + lt, "point": lt, "external": lp}, required=True),
        Fact("radius_perp", {"radius": "O" + lt, "tangent": lp + lt}),
        Fact("right_mark", {"vertex": lt}),
    ]
    draw_op = bool(rng.random() < 0.6)
    if draw_op:
        canvas.segment((0.0, 0.0), p_pt, dashed=bool(rng.random() < 0.5), width=style.line_width * 0.8)
    shown = _subset(rng, 3, 1, 2)
    values = [("O" + lt, r), ("O" + lp, dist), (lp + lt, tangent_len)]
    ends = [(np.zeros(2), t_pt), (np.zeros(2), p_pt), (p_pt, t_pt)]
    for k in shown:
        if k == 1 and not draw_op:
            continue
        seg_pts = np.stack(ends[k])
        _mark_length(canvas, seg_pts, 0, 1, _fmt_len(values[k][1])[0], centre=u_pt if k != 2 else np.zeros(2))
    for seg, value in values:
        val, approx = _fmt_len(value)
        facts.append(Fact("segment_length", {"seg": seg, "val": val, "approx": approx}))
    labels = ["O", lp, lt]
    if two:
        assert lu is not None
        canvas.segment(p_pt, u_pt + (u_pt - p_pt) / tangent_len * extend)
        canvas.point_label(u_pt, lu, _jitter(rng, u_pt / r))
        facts.append(Fact("two_tangents", {"seg1": lp + lt, "seg2": lp + lu}))
        labels.append(lu)
    meta = {
        "shape": "circle",
        "vertex_count": 0,
        "labels": labels,
        "radius": r,
        "external_point_distance": dist,
        "tangent_length": tangent_len,
        "tangent_points": 2 if two else 1,
    }
    return Diagram(facts, meta)


@register_diagram("inscribed_polygon")
def inscribed_polygon(rng: np.random.Generator, canvas: DiagramCanvas, style: Style) -> Diagram:
    """A triangle (possibly on a diameter), cyclic quadrilateral, square or regular polygon in a circle."""
    r = float(rng.integers(3, 11))
    kind = str(_choose(rng, ("triangle", "triangle", "thales", "quadrilateral", "square", "regular")))
    if kind in ("triangle", "quadrilateral"):
        n = 3 if kind == "triangle" else 4
        while True:
            t = np.sort(rng.uniform(0, 2 * math.pi, size=n))
            gaps = np.diff(np.concatenate([t, [t[0] + 2 * math.pi]]))
            if gaps.min() > math.radians(40) and (n == 3 or gaps.max() < math.radians(160)):
                break
    elif kind == "thales":
        n = 3
        base = float(rng.uniform(0, 2 * math.pi))
        t = np.array([base, base + math.pi, base + math.pi + float(rng.uniform(0.5, math.pi - 0.5))])
    elif kind == "square":
        n = 4
        t = float(rng.uniform(0, math.pi / 2)) + np.arange(4) * math.pi / 2
    else:
        n = int(rng.integers(5, 9))
        t = float(rng.uniform(0, 2 * math.pi)) + np.arange(n) * 2 * math.pi / n
    pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    letters = pick_letters(rng, n)
    name = "".join(letters)
    _circle_frame(rng, canvas, style, r, pts)
    canvas.polygon(pts, fill=None)
    _label_vertices(canvas, rng, pts, letters, dots=bool(rng.random() < 0.5))
    shape_w = {"thales": "triangle", "triangle": "triangle", "quadrilateral": "quadrilateral", "square": "square"}.get(
        kind, _POLYGON_NAMES[n]
    )
    show_centre = bool(rng.random() < 0.8) or kind == "thales"
    if show_centre:
        facts = [Fact("inscribed_intro", {"name": name, "shape_w": shape_w, "centre": "O"}, required=True)]
    else:
        facts = [Fact("inscribed_intro_plain", {"name": name, "shape_w": shape_w}, required=True)]
    if show_centre:
        _centre(canvas, rng, pts[0] - pts[1] if kind != "thales" else pts[2] * -1)
    angles = polygon_angles(pts)
    if kind == "thales":
        facts.append(
            Fact(
                "thales",
                {"diam": letters[0] + letters[1], "vertex": letters[2], "angle": letters[0] + letters[2] + letters[1]},
                required=True,
            )
        )
        if rng.random() < 0.6:
            _right_mark(canvas, pts, 2)
            facts.append(Fact("right_mark", {"vertex": letters[2]}))
    if kind in ("triangle", "thales", "quadrilateral"):
        candidates = [i for i in range(n) if abs(angles[i] - 90) > 1e-6]
        for k in _subset(rng, len(candidates), 1, 2):
            i = candidates[k]
            _mark_angle(canvas, pts, i, _fmt_deg(angles[i])[0] + "°")
            facts.append(_angle_fact(letters, pts, i))
    if kind == "quadrilateral":
        facts.append(Fact("cyclic_opposite", {"v1": letters[0], "v2": letters[2]}))
        facts.append(Fact("cyclic_opposite", {"v1": letters[1], "v2": letters[3]}))
    if kind in ("square", "regular"):
        facts.append(Fact("all_sides_equal", {"name": name}))
    if show_centre and rng.random() < 0.4:
        k = int(rng.integers(n))
        canvas.segment((0.0, 0.0), pts[k], dashed=True, width=style.line_width * 0.7)
        facts.append(Fact("radius_val", {"seg": "O" + letters[k], "val": _fmt_len(r)[0]}))
        _mark_length(canvas, np.stack([np.zeros(2), pts[k]]), 0, 1, _fmt_len(r)[0], centre=pts[(k + 1) % n])
    meta = _polygon_meta(
        "inscribed_polygon", letters, pts, inscribed_kind=kind, polygon_name=shape_w, radius=r, centre_shown=show_centre
    )
    meta["labels"] = list(letters) + (["O"] if show_centre else [])
    return Diagram(facts, meta)
