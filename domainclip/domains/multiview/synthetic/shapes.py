"""The object categories of the generated meshes: one builder per category, from trimesh primitives.

Every builder takes a random generator and returns the object's parts (``trimesh.Trimesh``, +Y up,
resting on ``y = 0``, about one unit tall or wide) and the proportions it drew. The renderer
centres and scales each object to unit radius, so only proportions matter: a can and a coin are
both cylinders and differ in height over diameter only.

The categories come in pairs that share a silhouette from a few viewpoints and differ from the
others, so a classifier trained on rendered views must use shape and viewpoint robustness is
measurable (:data:`AMBIGUOUS_FROM` says from where):

========  ===========================================================  ================================
category  shape                                                        looks like, from
========  ===========================================================  ================================
can       cylinder, height 1.2-2.2 diameters                           coin, bottle, mug: above (a disc)
coin      cylinder, height 0.06-0.15 diameters, lying flat             can, bottle: above (a disc)
box       cuboid, sides 0.7-1.3 of each other                          table, chair: above (a rectangle)
table     top slab on four corner legs                                 box: above (a rectangle)
cone      circular cone                                                pyramid: the side (a triangle)
pyramid   square pyramid                                               cone: the side (a triangle)
mug       open cup (hollow cylinder with a bottom) and a ring handle   can: the side, handle behind
bottle    cylinder body, conical shoulder, narrow neck                 can, coin: above (a disc)
dumbbell  bar with a weight disc at each end, lying on its side        coin, can: along the bar (a disc)
chair     seat on four legs and a backrest                             table, box: above (a rectangle)
========  ===========================================================  ================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["AMBIGUOUS_FROM", "CATEGORIES", "SHAPES", "build_parts"]

#: Segments of a circle (cylinders, cones, handles).
SECTIONS = 48

#: Per category: the other categories it shares a silhouette with, and from where.
AMBIGUOUS_FROM: dict[str, dict[str, str]] = {
    "can": {"coin": "above", "bottle": "above", "mug": "the side, handle hidden"},
    "coin": {"can": "above", "bottle": "above", "dumbbell": "along the bar"},
    "box": {"table": "above", "chair": "above"},
    "table": {"box": "above", "chair": "above"},
    "cone": {"pyramid": "the side"},
    "pyramid": {"cone": "the side"},
    "mug": {"can": "the side, handle hidden"},
    "bottle": {"can": "above", "coin": "above"},
    "dumbbell": {"coin": "along the bar", "can": "along the bar"},
    "chair": {"table": "above", "box": "above"},
}


def _up(mesh: Any) -> Any:
    """Turn a mesh built along +Z (trimesh's primitives) to stand along +Y."""
    import trimesh

    mesh.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    return mesh


def _cylinder(radius: float, height: float, bottom: float = 0.0) -> Any:
    """A cylinder along +Y from ``bottom`` to ``bottom + height``."""
    import trimesh

    mesh = _up(trimesh.creation.cylinder(radius=radius, height=height, sections=SECTIONS))
    mesh.apply_translation([0, bottom + height / 2, 0])
    return mesh


def _box(size: tuple[float, float, float], centre: tuple[float, float, float]) -> Any:
    """An axis-aligned cuboid of ``size`` (x, y, z) centred at ``centre``."""
    import trimesh

    mesh = trimesh.creation.box(extents=size)
    mesh.apply_translation(centre)
    return mesh


def _cone(radius: float, height: float, sections: int) -> Any:
    """A cone (a pyramid when ``sections`` is 4) on ``y = 0`` with its apex at ``height``."""
    import trimesh

    return _up(trimesh.creation.cone(radius=radius, height=height, sections=sections))


def _legs(width: float, depth: float, height: float, thickness: float) -> list[Any]:
    """Four square legs under the corners of a ``width`` x ``depth`` top, from the floor to ``height``."""
    x, z = width / 2 - thickness / 2, depth / 2 - thickness / 2
    return [_box((thickness, height, thickness), (sx * x, height / 2, sz * z)) for sx in (-1, 1) for sz in (-1, 1)]


def _r(rng: np.random.Generator, lo: float, hi: float) -> float:
    return round(float(rng.uniform(lo, hi)), 4)


def can(rng: np.random.Generator) -> tuple[list[Any], dict[str, float]]:
    """A closed cylinder standing up, taller than wide."""
    p = {"radius": 0.5, "height": _r(rng, 1.2, 2.2)}
    return [_cylinder(p["radius"], p["height"])], p


def coin(rng: np.random.Generator) -> tuple[list[Any], dict[str, float]]:
    """A flat cylinder lying on its face."""
    p = {"radius": 0.5, "height": _r(rng, 0.06, 0.15)}
    return [_cylinder(p["radius"], p["height"])], p


def box(rng: np.random.Generator) -> tuple[list[Any], dict[str, float]]:
    """A chunky cuboid (no side under 0.7 of another)."""
    p = {"width": 1.0, "height": _r(rng, 0.7, 1.3), "depth": _r(rng, 0.75, 1.3)}
    return [_box((p["width"], p["height"], p["depth"]), (0, p["height"] / 2, 0))], p


def table(rng: np.random.Generator) -> tuple[list[Any], dict[str, float]]:
    """A thin top on four corner legs."""
    p = {"width": 1.0, "depth": _r(rng, 0.55, 1.0), "height": _r(rng, 0.5, 0.85), "top": _r(rng, 0.05, 0.09),
         "leg": _r(rng, 0.06, 0.1)}
    top = _box((p["width"], p["top"], p["depth"]), (0, p["height"] - p["top"] / 2, 0))
    return [top, *_legs(p["width"], p["depth"], p["height"] - p["top"], p["leg"])], p


def cone(rng: np.random.Generator) -> tuple[list[Any], dict[str, float]]:
    """A circular cone on its base."""
    p = {"radius": 0.5, "height": _r(rng, 0.8, 1.6)}
    return [_cone(p["radius"], p["height"], SECTIONS)], p


def pyramid(rng: np.random.Generator) -> tuple[list[Any], dict[str, float]]:
    """A square pyramid on its base."""
    p = {"radius": 0.5, "height": _r(rng, 0.8, 1.6)}
    return [_cone(p["radius"], p["height"], 4)], p


def mug(rng: np.random.Generator) -> tuple[list[Any], dict[str, float]]:
    """An open cup (a hollow cylinder with a bottom) and a ring handle on its side."""
    import trimesh

    p = {"radius": 0.5, "height": _r(rng, 0.9, 1.4), "wall": _r(rng, 0.05, 0.08), "handle": _r(rng, 0.22, 0.32),
         "grip": _r(rng, 0.045, 0.07)}
    wall = _up(trimesh.creation.annulus(r_min=p["radius"] - p["wall"], r_max=p["radius"], height=p["height"],
                                        sections=SECTIONS))
    wall.apply_translation([0, p["height"] / 2, 0])
    bottom = _cylinder(p["radius"] - p["wall"] / 2, p["wall"])
    handle = trimesh.creation.torus(major_radius=p["handle"], minor_radius=p["grip"], major_sections=32,
                                    minor_sections=12)  # in the XY plane: a ring seen from the side
    handle.apply_translation([p["radius"] + p["handle"] - 2 * p["grip"], p["height"] / 2, 0])
    return [wall, bottom, handle], p


def bottle(rng: np.random.Generator) -> tuple[list[Any], dict[str, float]]:
    """A cylinder body, a conical shoulder and a narrow neck."""
    p = {"radius": 0.5, "body": _r(rng, 1.0, 1.8), "shoulder": _r(rng, 0.25, 0.45), "neck_radius": _r(rng, 0.13, 0.2),
         "neck": _r(rng, 0.35, 0.6)}
    shoulder = _cone(p["radius"], p["shoulder"] * p["radius"] / (p["radius"] - p["neck_radius"]), SECTIONS)
    shoulder.apply_translation([0, p["body"], 0])
    neck = _cylinder(p["neck_radius"], p["neck"] + p["shoulder"], p["body"])
    return [_cylinder(p["radius"], p["body"]), shoulder, neck], p


def dumbbell(rng: np.random.Generator) -> tuple[list[Any], dict[str, float]]:
    """A bar along X with a weight disc at each end, lying on the floor."""
    import trimesh

    p = {"length": _r(rng, 1.4, 2.2), "bar": _r(rng, 0.07, 0.11), "radius": 0.5, "weight": _r(rng, 0.15, 0.35)}
    along_x = trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])
    bar = trimesh.creation.cylinder(radius=p["bar"], height=p["length"], sections=SECTIONS)
    parts = [bar]
    for side in (-1, 1):
        disc = trimesh.creation.cylinder(radius=p["radius"], height=p["weight"], sections=SECTIONS)
        disc.apply_translation([0, 0, side * (p["length"] / 2 - p["weight"] / 2)])
        parts.append(disc)
    for part in parts:
        part.apply_transform(along_x)
        part.apply_translation([0, p["radius"], 0])
    return parts, p


def chair(rng: np.random.Generator) -> tuple[list[Any], dict[str, float]]:
    """A square seat on four legs with a backrest rising from its back edge."""
    p = {"width": 1.0, "depth": _r(rng, 0.85, 1.1), "seat_height": _r(rng, 0.8, 1.1), "seat": _r(rng, 0.07, 0.1),
         "back": _r(rng, 0.9, 1.3), "leg": _r(rng, 0.07, 0.1)}
    top = p["seat_height"]
    seat = _box((p["width"], p["seat"], p["depth"]), (0, top - p["seat"] / 2, 0))
    back = _box((p["width"], p["back"], p["seat"]), (0, top + p["back"] / 2, -p["depth"] / 2 + p["seat"] / 2))
    return [seat, back, *_legs(p["width"], p["depth"], top - p["seat"], p["leg"])], p


#: Category name -> builder, in the order objects cycle through them.
SHAPES: dict[str, Callable[[np.random.Generator], tuple[list[Any], dict[str, float]]]] = {
    "can": can,
    "coin": coin,
    "box": box,
    "table": table,
    "cone": cone,
    "pyramid": pyramid,
    "mug": mug,
    "bottle": bottle,
    "dumbbell": dumbbell,
    "chair": chair,
}
#: The categories in their default order.
CATEGORIES: tuple[str, ...] = tuple(SHAPES)


def build_parts(category: str, rng: np.random.Generator) -> tuple[list[Any], dict[str, float]]:
    """Build the parts of one object of ``category`` with proportions drawn from ``rng``.

    Args:
        category: one of :data:`CATEGORIES`.
        rng: the object's random generator.

    Returns:
        The parts (+Y up, on the floor) and the drawn proportions.
    """
    return SHAPES[category](rng)
