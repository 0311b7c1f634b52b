"""Land-cover classes: each painter draws one scene of its class and returns the facts its captions state.

A painter takes a :class:`~.canvas.Canvas` and draws with the canvas's random generator only, so a
scene depends on its seed alone. Facts are plain JSON values: counts of drawn objects (only objects
drawn inside the scene are counted), colour and layout words that :mod:`.captions` puts into words.
:data:`LAND_COVER` maps class names to painters in label order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from domainclip.domains.remote_sensing.synthetic.canvas import SIDE, Canvas

__all__ = ["LAND_COVER", "Facts", "land_cover", "paint_land"]

#: What a painter returns: the facts of the scene it drew.
Facts = dict[str, Any]
#: Class name -> painter, in label order.
LAND_COVER: dict[str, Callable[[Canvas], Facts]] = {}

_TAU = float(2 * np.pi)
#: Colour word of each crop material.
_CROP_COLOURS = {"crop_green": "green", "grass": "green", "crop_yellow": "yellow", "crop_brown": "brown"}


def land_cover(name: str) -> Callable[[Callable[[Canvas], Facts]], Callable[[Canvas], Facts]]:
    """Register a painter under the class ``name`` (label order is registration order)."""

    def register(painter: Callable[[Canvas], Facts]) -> Callable[[Canvas], Facts]:
        LAND_COVER[name] = painter
        return painter

    return register


def _pick(rng: np.random.Generator, options: tuple[str, ...], weights: tuple[float, ...] | None = None) -> str:
    p = None if weights is None else np.asarray(weights) / np.sum(weights)
    return options[int(rng.choice(len(options), p=p))]


def _direction(angle: float) -> str:
    """How a line at ``angle`` (radians from the x axis, y pointing down = south) runs on a north-up map."""
    a = float(np.mod(angle, np.pi))
    if a < np.pi / 8 or a > 7 * np.pi / 8:
        return "east-west"
    return "north-south" if 3 * np.pi / 8 < a < 5 * np.pi / 8 else "diagonal"


def _side(dx: float, dy: float) -> str:
    """The compass side that the image direction ``(dx, dy)`` points to (y down is south)."""
    if abs(dx) > abs(dy):
        return "east" if dx > 0 else "west"
    return "south" if dy > 0 else "north"


def _canopy(c: Canvas) -> np.ndarray:
    """Tree crowns: sunlit tops and shaded gaps a few metres across, over stands of lighter and darker trees."""
    return 0.35 * c.noise(0.7) + 0.12 * c.noise(6)


# ------------------------------------------------------------------------------ shared layouts
def paint_parcels(c: Canvas, crops: tuple[str, ...], sizes: tuple[float, float] = (6.0, 18.0)) -> dict[str, Any]:
    """Fields in parcels at a random angle: a crop per parcel, rows inside, grass or earth field margins.

    Args:
        c: the canvas.
        crops: materials the parcels are sown with.
        sizes: smallest and largest parcel side in scene units.

    Returns:
        ``fields`` (parcels with at least 30 square units visible) and ``colours`` (colour words of the
        crops covering at least a tenth of the scene, most first).
    """
    rng = c.rng
    u, v = c.frame(float(rng.uniform(0, np.pi)), *rng.uniform(16, 48, 2))

    def edges(low: float, high: float) -> np.ndarray:
        cuts = [-SIDE * 0.75 - float(rng.uniform(0, high))]
        while cuts[-1] < SIDE * 0.75:
            cuts.append(cuts[-1] + float(rng.uniform(low, high)))
        return np.asarray(cuts, np.float32)

    eu, ev = edges(*sizes), edges(sizes[0] * 1.3, sizes[1] * 1.3)
    parcel = np.searchsorted(eu, u) * (len(ev) + 1) + np.searchsorted(ev, v)
    ids, inverse = np.unique(parcel, return_inverse=True)
    inverse = inverse.reshape(parcel.shape)
    crop = rng.integers(len(crops), size=len(ids))[inverse]
    along_u = (rng.random(len(ids)) < 0.5)[inverse]
    period = float(rng.uniform(1.4, 2.4))
    rows = 0.1 * np.where(along_u, np.sin(_TAU * u / period), np.sin(_TAU * v / period))
    texture = rows + rng.uniform(-0.15, 0.15, len(ids)).astype(np.float32)[inverse] + 0.05 * c.noise(2)
    for k, material in enumerate(crops):
        c.paint(material, crop == k, texture)
    margin = float(rng.uniform(0.3, 0.55))
    border = (np.abs(u[..., None] - eu).min(-1) < margin) | (np.abs(v[..., None] - ev).min(-1) < margin)
    c.paint(_pick(rng, ("grass", "soil")), border, 0.05 * c.noise(1))
    unit = (SIDE / c.samples) ** 2
    _, area = np.unique(inverse[~border], return_counts=True)
    shares = {name: 0.0 for name in dict.fromkeys(_CROP_COLOURS.values())}
    for k, material in enumerate(crops):
        shares[_CROP_COLOURS[material]] += float(np.mean(crop == k))
    colours = sorted((w for w, s in shares.items() if s >= 0.1), key=lambda w: -shares[w])
    return {"fields": int(np.sum(area * unit >= 30)), "colours": colours}


def paint_houses(c: Canvas, density: float, roof: str) -> int:
    """A street grid at a random angle with up to four houses per block; returns how many houses show.

    Args:
        c: the canvas (its ground already painted: gardens show between houses).
        density: chance that a lot holds a house.
        roof: roof material of most houses (a quarter get another roof).
    """
    rng = c.rng
    u, v = c.frame(float(rng.uniform(0, np.pi)), *rng.uniform(0, SIDE, 2))
    block = rng.uniform(9, 14, 2).astype(np.float32)
    street = np.float32(rng.uniform(1.1, 1.7))
    lot = (np.mod(u, block[0]) - street) / ((block[0] - street) / 2), (np.mod(v, block[1]) - street) / (
        (block[1] - street) / 2)
    is_street = (lot[0] < 0) | (lot[1] < 0)
    c.paint("asphalt", is_street, 0.05 * c.noise(1))
    ku, kv = np.floor(np.maximum(lot[0], 0)), np.floor(np.maximum(lot[1], 0))
    fu, fv = lot[0] - ku, lot[1] - kv
    margin = rng.uniform(0.12, 0.28, 2)
    house = ~is_street & (np.abs(fu - 0.5) < 0.5 - margin[0]) & (np.abs(fv - 0.5) < 0.5 - margin[1])
    lot_id = ((np.floor(u / block[0]) * 64 + np.floor(v / block[1])) * 4 + ku * 2 + kv).astype(np.int64)
    ids, inverse = np.unique(lot_id, return_inverse=True)
    inverse = inverse.reshape(lot_id.shape)
    built = (rng.random(len(ids)) < density)[inverse] & house
    others = [m for m in ("roof_red", "roof_grey", "roof_brown") if m != roof]
    roof_of = np.where(rng.random(len(ids)) < 0.75, 0, rng.integers(1, 3, len(ids)))[inverse]
    gable = np.where(fu < 0.5, 0.12, -0.08).astype(np.float32)
    for k, material in enumerate((roof, *others)):
        c.paint(material, built & (roof_of == k), gable)
    _, area = np.unique(inverse[built], return_counts=True)
    return int(np.sum(area >= 0.6 * area.max())) if area.size else 0


def paint_land(c: Canvas, kind: str) -> None:
    """Cover the canvas with a surrounding land type: ``trees``, ``grass``, ``fields``, ``bare`` or ``buildings``."""
    rng = c.rng
    if kind == "trees":
        c.paint("trees", texture=_canopy(c))
        c.paint("grass", c.cover(c.noise(5), 0.15), 0.1 * c.noise(3))
    elif kind == "fields":
        paint_parcels(c, ("crop_green", "crop_yellow", "crop_brown", "grass"), sizes=(10.0, 24.0))
    elif kind == "buildings":
        c.paint("grass", texture=0.1 * c.noise(4))
        paint_houses(c, 0.8, _pick(rng, ("roof_red", "roof_grey", "roof_brown")))
    else:
        c.paint("grass" if kind == "grass" else "soil", texture=0.12 * c.noise(6) + 0.06 * c.noise(1))
        c.paint("dry_grass" if kind == "grass" else "crop_brown", c.cover(c.noise(8), float(rng.uniform(0.1, 0.4))),
                0.1 * c.noise(4))
        c.paint("trees", c.cover(c.noise(0.6), 0.06), 0.2 * c.noise(0.5))


def _path(c: Canvas, width: float) -> np.ndarray:
    """A gently winding line across the scene (a track, a path, a side road)."""
    rng = c.rng
    u, v = c.frame(float(rng.uniform(0, np.pi)), *rng.uniform(20, 44, 2))
    bend = float(rng.uniform(1, 4)) * np.sin(_TAU * u / float(rng.uniform(30, 60)) + float(rng.uniform(0, _TAU)))
    return np.abs(v - bend) < width / 2


def _blobs(c: Canvas, wanted: int, region: np.ndarray, radius: tuple[float, float], material: str,
           texture: float | np.ndarray = 0.0) -> int:
    """Paint up to ``wanted`` separate round patches lying wholly inside ``region``; return how many fit."""
    rng = c.rng
    taken = np.zeros_like(region)
    placed = 0
    for _ in range(wanted * 8):
        if placed == wanted:
            break
        x, y = rng.uniform(4, SIDE - 4, 2)
        r = float(rng.uniform(*radius))
        outer = c.disc(x, y, r + 1.2)
        if not outer.any() or not region[outer].all() or taken[outer].any():
            continue
        shape = (np.hypot(c.x - x, c.y - y) / r + 0.2 * c.noise(r)) < 1.0
        c.paint(material, shape & outer, texture)
        taken |= outer
        placed += 1
    return placed


# ------------------------------------------------------------------------------------ classes
@land_cover("airport")
def paint_airport(c: Canvas) -> Facts:
    """Mown grass, one or two runways with centre-line dashes, a taxiway, an apron, a terminal, planes."""
    rng = c.rng
    angle = float(rng.uniform(0, np.pi))
    u, v = c.frame(angle)
    c.paint("grass", texture=0.06 * np.sin(_TAU * u / 4) + 0.08 * c.noise(5))
    paved = _pick(rng, ("concrete", "asphalt"))
    offset, width = float(rng.uniform(-8, 8)), float(rng.uniform(3.2, 4.6))
    runways, crossing = (2 if rng.random() < 0.4 else 1), False
    second = None
    if runways == 2:
        crossing = bool(rng.random() < 0.5)
        second = (angle + float(rng.uniform(0.6, 1.4)), 0.0) if crossing else (
            angle, offset + float(rng.choice([-1, 1]) * rng.uniform(11, 15)))
    side = 1.0 if second is None or second[1] <= offset else -1.0
    taxiway = bool(rng.random() < 0.8)
    taxi = offset + side * float(rng.uniform(5.5, 7.5))
    if taxiway:
        c.paint("asphalt", np.abs(v - taxi) < 0.8, 0.05 * c.noise(1))
        for at in np.arange(float(rng.uniform(-40, -24)), 40, float(rng.uniform(14, 20))):
            c.paint("asphalt", (np.abs(u - at) < 0.7) & ((v - offset) * side > 0) & ((v - taxi) * side < 0))
    for a, o in [(angle, offset), *([second] if second else [])]:
        ru, rv = c.frame(a)
        c.paint(paved, np.abs(rv - o) < width / 2, 0.04 * c.noise(2))
        c.paint("marking", (np.abs(rv - o) < 0.22) & (np.mod(ru, 5.0) < 2.5))
    apron_len, apron_w = float(rng.uniform(16, 24)), float(rng.uniform(6, 9))
    au, av = float(rng.uniform(-12, 12)), taxi + side * (1.5 + apron_w / 2)
    c.paint("concrete", (np.abs(u - au) < apron_len / 2) & (np.abs(v - av) < apron_w / 2), 0.04 * c.noise(2))
    terminal_v = av + side * (apron_w / 2 + 1.5)
    c.paint(_pick(rng, ("roof_white", "roof_grey")),
            (np.abs(u - au) < 0.4 * apron_len) & (np.abs(v - terminal_v) < 1.5), 0.04 * c.noise(1))
    planes = 0
    for k in range(int(rng.integers(0, 7))):
        pu = au - apron_len / 2 + 2.5 + k * 3.6
        if pu > au + apron_len / 2 - 2.5:
            break
        x, y = c.to_scene(pu, av + side * float(rng.uniform(0, 1.5)), angle)
        if not c.inside([(x, y)], margin=2.0):
            continue
        heading = angle + np.pi / 2
        c.paint("marking", c.rect(x, y, 3.2, 0.7, heading) | c.rect(x, y, 0.8, 3.2, heading))
        planes += 1
    terminal = c.inside([c.to_scene(au, terminal_v, angle)], margin=0.0)
    return {"runways": runways, "crossing": crossing, "planes": planes, "taxiway": taxiway, "terminal": terminal,
            "direction": _direction(angle)}


@land_cover("beach")
def paint_beach(c: Canvas) -> Facts:
    """Sea on one side, a sand strip with breaking waves, and trees, meadows or houses behind."""
    rng = c.rng
    behind = _pick(rng, ("trees", "grass", "buildings"))
    paint_land(c, behind)
    angle = float(rng.uniform(0, _TAU))
    u, v = c.frame(angle)
    coast = float(rng.uniform(-12, 4)) + 2.0 * c.noise(8) + float(rng.uniform(-3, 3)) * (u / 32) ** 2
    width = float(rng.uniform(5, 15))
    sand, colour = _pick(rng, ("sand", "sand_white")), _pick(rng, ("blue", "dark"))
    c.paint(sand, (v >= coast) & (v < coast + width), 0.06 * c.noise(3) + 0.04 * c.noise(0.6))
    sea = v < coast
    c.blend("shallow_water", "deep_water" if colour == "dark" else "water", (coast - v) / float(rng.uniform(5, 12)),
            sea, 0.04 * c.noise(0.8))
    waves = bool(rng.random() < 0.7)
    if waves:
        c.paint("foam", sea & (coast - v < 0.6))
        c.paint("foam", sea & (np.abs(coast - v - 2.5) < 0.25) & (c.noise(2) > 0.3))
    return {"sand": "white" if sand == "sand_white" else "yellow", "colour": colour, "around": behind,
            "width": "narrow" if width < 9 else "wide", "waves": waves, "side": _side(np.sin(angle), -np.cos(angle))}


@land_cover("desert")
def paint_desert(c: Canvas) -> Facts:
    """Sand with wind ripples and dune swells, now and then dark rock outcrops or a track."""
    rng = c.rng
    material = _pick(rng, ("sand", "sand_orange", "sand_white"))
    angle = float(rng.uniform(0, np.pi))
    u, v = c.frame(angle)
    phase = _TAU * (v + 3.0 * c.noise(10)) / float(rng.uniform(3.5, 8.0))
    strength = 0.6 + 0.4 * np.abs(c.noise(12))
    ripples = 0.16 * (np.sin(phase) + 0.35 * np.sin(2 * phase)) * strength
    c.paint(material, texture=ripples + 0.08 * c.noise(12) + 0.03 * c.noise(0.6))
    rocks = bool(rng.random() < 0.35)
    if rocks:
        x, y = rng.uniform(8, 56, 2)
        near = np.exp(-((c.x - x) ** 2 + (c.y - y) ** 2) / (2 * float(rng.uniform(6, 12)) ** 2))
        c.paint("rock", c.cover(c.noise(1.5) + 3 * near, float(rng.uniform(0.04, 0.1))), 0.2 * c.noise(0.7))
    track = bool(rng.random() < 0.3)
    if track:
        c.paint("soil", _path(c, float(rng.uniform(0.7, 1.1))), 0.05 * c.noise(1))
    words = {"sand": "yellow", "sand_orange": "orange", "sand_white": "white"}
    return {"colour": words[material], "rocks": rocks, "track": track, "direction": _direction(angle)}


@land_cover("farmland")
def paint_farmland(c: Canvas) -> Facts:
    """Parcels of two to four crops (green, ripe yellow, ploughed brown, meadow), sometimes a road."""
    rng = c.rng
    options = ("crop_green", "crop_yellow", "crop_brown", "grass")
    crops = tuple(options[i] for i in sorted(rng.choice(4, size=int(rng.integers(2, 5)), replace=False)))
    scale = float(rng.uniform(0.8, 1.8))
    facts = paint_parcels(c, crops, sizes=(6.0 * scale, 18.0 * scale))
    road = bool(rng.random() < 0.4)
    if road:
        c.paint("asphalt", _path(c, float(rng.uniform(1.0, 1.6))), 0.05 * c.noise(1))
    return {**facts, "road": road}


@land_cover("forest")
def paint_forest(c: Canvas) -> Facts:
    """A closed canopy of dark or lighter trees in stands, sometimes clearings or a path."""
    rng = c.rng
    base = _pick(rng, ("forest", "trees"))
    c.paint(base, texture=_canopy(c))
    other = "trees" if base == "forest" else "forest"
    stand = c.cover(c.noise(6), float(rng.uniform(0.1, 0.35)))
    c.paint(other, stand, _canopy(c))
    wanted = int(rng.choice([0, 0, 1, 2, 3]))
    clearings = _blobs(c, wanted, np.ones_like(stand), (2.5, 5.0), "grass", 0.1 * c.noise(2))
    path = bool(rng.random() < 0.4)
    if path:
        c.paint("soil", _path(c, float(rng.uniform(0.8, 1.4))), 0.05 * c.noise(1))
    return {"colour": "dark" if base == "forest" else "green", "clearings": clearings, "path": path}


@land_cover("highway")
def paint_highway(c: Canvas) -> Facts:
    """A dual carriageway with a median across fields, meadows, trees or bare land, cars on it."""
    rng = c.rng
    around = _pick(rng, ("fields", "grass", "bare", "trees"))
    paint_land(c, around)
    crossing = bool(rng.random() < 0.4)
    if crossing:
        c.paint("asphalt", _path(c, float(rng.uniform(1.3, 1.9))), 0.05 * c.noise(1))
    angle = float(rng.uniform(0, np.pi))
    u, v = c.frame(angle)
    curved = bool(rng.random() < 0.35)
    offset, bend = float(rng.uniform(-10, 10)), float(rng.choice([-1, 1]) * rng.uniform(4, 9)) if curved else 0.0
    lane, median = float(rng.uniform(1.8, 2.6)), float(rng.uniform(0.6, 1.4))
    d = v - (offset + bend * (u / 32) ** 2)
    c.paint("concrete", np.abs(d) < median / 2 + lane + 0.4)
    c.paint("asphalt", np.abs(d) < median / 2 + lane, 0.04 * c.noise(1))
    c.paint(_pick(rng, ("grass", "concrete")), np.abs(d) < median / 2)
    cars = 0
    for _ in range(int(rng.integers(0, 18))):
        pu = float(rng.uniform(-40, 40))
        across = float(rng.choice([-1, 1])) * (median / 2 + lane * float(rng.uniform(0.25, 0.75)))
        x, y = c.to_scene(pu, offset + bend * (pu / 32) ** 2 + across, angle)
        if c.inside([(x, y)], margin=1.0):
            heading = angle + np.arctan(2 * bend * pu / 32**2)
            c.paint(_pick(rng, ("roof_white", "roof_red", "rock", "roof_blue")), c.rect(x, y, 1.1, 0.6, heading))
            cars += 1
    return {"around": around, "cars": cars, "crossing": crossing, "curved": curved, "direction": _direction(angle)}


@land_cover("industrial")
def paint_industrial(c: Canvas) -> Facts:
    """Large factory halls with ribbed roofs on paved ground, service roads, parking, storage tanks."""
    rng = c.rng
    c.paint("concrete", texture=0.1 * c.noise(4) + 0.05 * c.noise(0.8))
    c.paint("soil", c.cover(c.noise(6), float(rng.uniform(0.05, 0.2))), 0.1 * c.noise(2))
    c.paint("grass", c.cover(c.noise(3), float(rng.uniform(0.02, 0.1))), 0.1 * c.noise(2))
    angle = float(rng.uniform(0, np.pi))
    u, v = c.frame(angle)
    for at in rng.uniform(-20, 20, int(rng.integers(1, 3))):
        c.paint("asphalt", np.abs(v - at) < 0.9, 0.04 * c.noise(1))
    roof = _pick(rng, ("roof_white", "roof_grey", "roof_blue"), (0.5, 0.3, 0.2))
    taken = np.zeros((c.samples, c.samples), bool)
    buildings = 0
    for _ in range(40):
        length, width = float(rng.uniform(8, 18)), float(rng.uniform(5, 10))
        x, y = rng.uniform(0, SIDE, 2)
        corners = [c.to_scene(su * length / 2, sv * width / 2, angle, x, y) for su in (-1, 1) for sv in (-1, 1)]
        halo = c.rect(x, y, length + 2.5, width + 2.5, angle)
        if not c.inside(corners, margin=0.0) or taken[halo].any():
            continue
        material = roof if rng.random() < 0.75 else _pick(rng, ("roof_white", "roof_grey", "roof_blue"))
        c.paint(material, c.rect(x, y, length, width, angle), 0.06 * np.sin(_TAU * u / 1.5))
        taken |= halo
        buildings += 1
    parking = bool(rng.random() < 0.6) and not taken.all()
    if parking:
        lot = c.cover(np.where(taken, -9.0, c.noise(8)), float(rng.uniform(0.06, 0.14)))
        c.paint("asphalt", lot, 0.03 * c.noise(1))
        spots = lot & (np.mod(u, 1.6) < 0.9) & (np.mod(v, 2.4) < 1.0) & (c.noise(1) > 0)
        c.paint("roof_white", spots)
    tanks = _blobs(c, int(rng.integers(1, 7)) if rng.random() < 0.5 else 0, ~taken, (1.3, 2.2), "roof_white")
    return {"buildings": buildings, "colour": {"roof_white": "white", "roof_grey": "grey", "roof_blue": "blue"}[roof],
            "tanks": tanks, "parking": parking}


@land_cover("lake")
def paint_lake(c: Canvas) -> Facts:
    """A body of still water with an irregular shore in trees, meadows, fields or bare land, maybe islands."""
    rng = c.rng
    around = _pick(rng, ("trees", "grass", "fields", "bare"))
    paint_land(c, around)
    cx, cy = rng.uniform(22, 42, 2)
    score = 0.45 * c.noise(9) - np.hypot(c.x - cx, c.y - cy) / 32
    fraction = float(rng.uniform(0.45, 0.8))
    if rng.random() < 0.5:
        c.paint(_pick(rng, ("sand", "soil")), c.cover(score, fraction + 0.05), 0.05 * c.noise(1))
    water = c.cover(score, fraction)
    colour = _pick(rng, ("blue", "dark", "green"))
    c.paint({"blue": "water", "dark": "deep_water", "green": "green_water"}[colour], water, 0.05 * c.noise(0.8))
    islands = _blobs(c, int(rng.choice([0, 0, 1, 2, 3])), water, (1.2, 2.6), "trees", _canopy(c))
    return {"colour": colour, "around": around, "islands": islands}


@land_cover("residential")
def paint_residential(c: Canvas) -> Facts:
    """Houses in blocks along a street grid, gardens and trees between them, dense to sparse."""
    rng = c.rng
    density = _pick(rng, ("dense", "medium", "sparse"))
    c.paint("grass", texture=0.1 * c.noise(4) + 0.05 * c.noise(1))
    trees = bool(rng.random() < 0.7)
    if trees:
        c.paint("trees", c.cover(c.noise(1.5), float(rng.uniform(0.1, 0.3))), _canopy(c))
    roof = _pick(rng, ("roof_red", "roof_grey", "roof_brown"), (0.5, 0.3, 0.2))
    houses = paint_houses(c, {"dense": 0.95, "medium": 0.75, "sparse": 0.45}[density], roof)
    return {"density": density, "colour": roof.removeprefix("roof_"), "houses": houses, "trees": trees}


@land_cover("river")
def paint_river(c: Canvas) -> Facts:
    """A winding or straight river across trees, meadows or fields, sometimes with riverside trees and a bridge."""
    rng = c.rng
    around = _pick(rng, ("trees", "grass", "fields"))
    paint_land(c, around)
    angle = float(rng.uniform(0, np.pi))
    u, v = c.frame(angle, *rng.uniform(26, 38, 2))
    winding = bool(rng.random() < 0.6)
    amplitude = float(rng.uniform(4, 10)) if winding else float(rng.uniform(0, 1.5))
    centre = amplitude * np.sin(_TAU * u / float(rng.uniform(30, 60)) + float(rng.uniform(0, _TAU)))
    width = float(rng.uniform(3, 5.5)) if rng.random() < 0.5 else float(rng.uniform(6, 10))
    if around != "trees" and rng.random() < 0.5:
        c.paint("trees", (np.abs(v - centre) < width / 2 + float(rng.uniform(1, 3))) & (c.noise(1) > -0.5),
                _canopy(c))
    colour = _pick(rng, ("blue", "dark", "green"))
    material = {"blue": "water", "dark": "deep_water", "green": "green_water"}[colour]
    c.paint(material, np.abs(v - centre) < width / 2, 0.05 * c.noise(0.8))
    bridge = bool(rng.random() < 0.4)
    if bridge:
        at = float(rng.uniform(-15, 15))
        c.paint("concrete", (np.abs(u - at) < 0.8) & (np.abs(v - centre) < width / 2 + 2.5))
    return {"around": around, "colour": colour, "width": "narrow" if width < 6 else "wide",
            "winding": winding, "bridge": bridge, "direction": _direction(angle)}
