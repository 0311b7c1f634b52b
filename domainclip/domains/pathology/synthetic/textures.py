"""Per-class texture renderers: what each of the nine synthetic tissue classes looks like.

=========== ==== ====================================================================================
class       code what is drawn
=========== ==== ====================================================================================
adipose     ADI  large white polygonal cells (Voronoi cells 40-65 um across) with thin, rarely broken
                 pink membranes and a few flattened nuclei on them
background  BACK glass with a faint uneven film, out-of-focus smudges, dust specks, now and then an air
                 bubble's rim
debris      DEB  granular eosinophilic necrotic material with nuclear dust and pyknotic nuclei; on half
                 the regions ghost outlines of glands with a few viable atypical nuclei (like necrotic
                 tumour)
lymphocytes LYM  dense small round dark-purple nuclei (4-6 um) on a thin pink-purple background
mucus       MUC  pale blue-grey wispy streaks with few floating cells
muscle      MUS  straight eosinophilic fibres in crossing fascicles with dense blunt-ended nuclei (spacing
                 and waviness overlap the stroma's ranges)
normal      NORM regular crypts lined by one row of small basal nuclei, mucin-filled goblet vacuoles, a
                 lamina propria with lymphocytes between them
stroma      STR  pink, wavy eosinophilic fibre streaks with clefts and sparse elongated spindle nuclei
tumor       TUM  back-to-back irregular glands: crowded, large, pleomorphic, radially elongated nuclei
                 around lumens that may hold dirty necrosis (eosinophilic debris with nuclear dust)
=========== ==== ====================================================================================

Rendering is physical-scale: lengths are set in micrometres at :data:`BASE_MPP` (0.5 um/px, the
NCT-CRC-HE scale) and converted with the slide's ``mpp``, so a 224-px patch at 0.5 mpp shows
112 um of tissue with clear texture. A renderer returns haematoxylin, eosin and mucin densities
(:mod:`~domainclip.domains.pathology.synthetic.stain` turns them into colour); Worley distances come
from :class:`scipy.spatial.cKDTree`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from PIL import Image

from domainclip.core.options import NonNegativeInt, PositiveFloat, Range, entry_point
from domainclip.domains.pathology.synthetic.nuclei import _oriented_ids, _sprite_bank, _stamp
from domainclip.domains.pathology.synthetic.stain import (
    _FIELD,
    SITES,
    _compose,
    _focus_blur,
    _jittered_grid,
    _noise,
    _random_stain,
    _resize,
    _soft_step,
    _uniform_points,
)
from domainclip.domains.pathology.synthetic.vocabulary import check_class

__all__ = ["BASE_MPP", "render_tissue"]

#: Microns per pixel at which the texture sizes are defined.
BASE_MPP = 0.5


@dataclass
class _Region:
    """What a class renderer gets: level-0 shape (multiples of the field step), rng and pixel scale."""

    rng: np.random.Generator
    shape: tuple[int, int]
    scale: float

    @property
    def field_shape(self) -> tuple[int, int]:
        return (self.shape[0] // _FIELD, self.shape[1] // _FIELD)

    def field_points(self) -> np.ndarray:
        """Level-0 ``(y, x)`` centres of the field-grid cells."""
        fh, fw = self.field_shape
        ys = np.arange(fh, dtype=np.float32) * _FIELD + _FIELD / 2
        xs = np.arange(fw, dtype=np.float32) * _FIELD + _FIELD / 2
        return np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)

    def up(self, field: np.ndarray) -> np.ndarray:
        """Bilinear upsampling of a field-grid array to level 0."""
        return _resize(field, self.shape, Image.Resampling.BILINEAR)

    def noise(self, feature_px: float, octaves: int = 1) -> np.ndarray:
        """Level-0 smooth noise with blobs about ``feature_px`` base pixels across."""
        return self.up(_noise(self.rng, self.field_shape, feature_px * self.scale / _FIELD, octaves))

    def fine_noise(self, feature_px: float) -> np.ndarray:
        """Level-0 noise for features a few pixels across (computed at level 0)."""
        return _noise(self.rng, self.shape, max(feature_px * self.scale, 1.0))

    def stripe_phase(self, theta: float, wavelength: float, warp: np.ndarray) -> np.ndarray:
        """Phase (radians) of stripes running along ``theta``, bent by a ``warp`` field (pixels)."""
        h, w = self.shape
        ys = np.arange(h, dtype=np.float32)[:, None]
        xs = np.arange(w, dtype=np.float32)[None, :]
        across = ys * math.cos(theta) - xs * math.sin(theta)
        return (across + warp) * np.float32(2 * np.pi / wavelength)

    def lookup(self, level0: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Values of a level-0 array at ``points`` (rounded, clipped to the array)."""
        y = np.clip(np.round(points[:, 0]).astype(np.intp), 0, self.shape[0] - 1)
        x = np.clip(np.round(points[:, 1]).astype(np.intp), 0, self.shape[1] - 1)
        return level0[y, x]


_Densities = tuple[np.ndarray, np.ndarray, np.ndarray]


def _render_adipose(r: _Region) -> _Densities:
    from scipy.spatial import cKDTree

    s, rng = r.scale, r.rng
    spacing = rng.uniform(85.0, 130.0) * s
    seeds = _jittered_grid(rng, r.shape, spacing, 0.33, margin=spacing)
    dist, _ = cKDTree(seeds).query(r.field_points(), k=2)
    gap = (dist[:, 1] - dist[:, 0]).astype(np.float32).reshape(r.field_shape)  # 2 x distance to a cell wall
    gap += _noise(rng, r.field_shape, 6.0) * 1.2 * s
    wall = r.up(gap)
    thickness = rng.uniform(4.2, 5.8) * s
    membrane = _soft_step(thickness - wall, 1.5)
    membrane *= _soft_step(r.noise(40.0) + 2.3, 0.6)  # a few torn walls
    tone = 0.85 + 0.15 * r.noise(25.0)
    eosin = 0.03 + 1.2 * membrane * tone
    haem = 0.02 + 0.15 * membrane
    nuclei = _uniform_points(rng, r.shape, spacing * 1.4)
    nuclei = nuclei[r.lookup(wall, nuclei) < thickness]
    bank = _sprite_bank("flat", round(s, 3))
    ids = _oriented_ids(rng, rng.uniform(0, np.pi, len(nuclei)), len(bank))
    _stamp(haem, nuclei, ids, rng.uniform(1.2, 1.8, len(nuclei)).astype(np.float32), bank)
    return haem, eosin, np.zeros_like(haem)


def _render_lymphocytes(r: _Region) -> _Densities:
    s, rng = r.scale, r.rng
    spacing = rng.uniform(12.5, 15.0) * s
    centres = _jittered_grid(rng, r.shape, spacing, 0.3, margin=spacing)
    clumps = r.noise(60.0)
    drop = rng.uniform(0.05, 0.2)
    keep = rng.random(len(centres)) > drop * (1.0 + 0.8 * r.lookup(clumps, centres))
    centres = centres[keep]
    bank = _sprite_bank("lymph", round(s, 3))
    haem = 0.2 + 0.06 * r.noise(20.0)
    eosin = 0.22 + 0.07 * r.noise(30.0)
    ids = rng.integers(0, len(bank), len(centres))
    _stamp(haem, centres, ids, rng.uniform(1.7, 2.4, len(centres)).astype(np.float32), bank)
    return haem, eosin, np.zeros_like(haem)


def _fibres(r: _Region, theta: float, wavelength: float, warp_px: float, sharpness: float) -> np.ndarray:
    """Parallel fibre streaks in [0, 1] along ``theta``, bent by ``warp_px`` of smooth warp."""
    warp = r.noise(70.0, octaves=2) * warp_px
    phase = r.stripe_phase(theta, wavelength, warp) + 0.6 * r.fine_noise(10.0)
    return (0.5 + 0.5 * np.sin(phase)) ** sharpness


def _render_stroma(r: _Region) -> _Densities:
    s, rng = r.scale, r.rng
    theta = rng.uniform(0, np.pi)
    fibre = _fibres(r, theta, rng.uniform(9.0, 15.0) * s, rng.uniform(8.0, 30.0) * s, 1.6)
    fibre *= 0.55 + 0.45 * _soft_step(r.fine_noise(14.0) + 0.3, 1.5)  # streaks break up along their length
    clefts = _soft_step(r.noise(30.0) - rng.uniform(1.1, 1.6), 0.4)
    fibre *= 1.0 - 0.75 * clefts
    tone = 0.85 + 0.15 * r.noise(40.0)
    eosin = (rng.uniform(0.3, 0.45) + rng.uniform(0.6, 0.85) * fibre) * tone
    haem = 0.04 + 0.04 * fibre
    spindle = _uniform_points(rng, r.shape, rng.uniform(30.0, 55.0) * s)
    bank = _sprite_bank("spindle", round(s, 3))
    angles = theta + rng.normal(0.0, 0.18, len(spindle))
    ids = _oriented_ids(rng, angles, len(bank))
    _stamp(haem, spindle, ids, rng.uniform(1.3, 2.0, len(spindle)).astype(np.float32), bank)
    stray = _uniform_points(rng, r.shape, rng.uniform(60.0, 130.0) * s)  # scattered inflammatory cells
    small = _sprite_bank("small", round(s, 3))
    _stamp(haem, stray, rng.integers(0, len(small), len(stray)), np.full(len(stray), 1.6, np.float32), small)
    return haem, eosin, np.zeros_like(haem)


def _render_muscle(r: _Region) -> _Densities:
    s, rng = r.scale, r.rng
    # fascicles: two orientations, cut along a smooth boundary (bundles crossing at an angle)
    theta = rng.uniform(0, np.pi)
    theta2 = theta + rng.uniform(0.4, 1.2) * rng.choice([-1.0, 1.0])
    which = _soft_step(r.noise(140.0) + rng.uniform(-0.6, 0.6), 0.3)
    wavelength = rng.uniform(7.0, 12.0) * s
    fibre = (1.0 - which) * _fibres(r, theta, wavelength, rng.uniform(3.0, 14.0) * s, 1.0)
    fibre += which * _fibres(r, theta2, wavelength, rng.uniform(3.0, 14.0) * s, 1.0)
    seams = _soft_step(r.noise(50.0) - rng.uniform(1.3, 1.9), 0.3)  # thin clefts between bundles
    tone = 0.9 + 0.1 * r.noise(30.0)
    eosin = (rng.uniform(0.55, 0.75) + 0.3 * fibre) * tone * (1.0 - 0.7 * seams)
    haem = 0.06 + 0.03 * fibre
    cells = _uniform_points(rng, r.shape, rng.uniform(22.0, 38.0) * s)
    side = r.lookup(which, cells) > 0.5
    angles = np.where(side, theta2, theta) + rng.normal(0.0, 0.08, len(cells))
    bank = _sprite_bank("muscle", round(s, 3))
    _stamp(haem, cells, _oriented_ids(rng, angles, len(bank)),
           rng.uniform(1.2, 1.8, len(cells)).astype(np.float32), bank)
    return haem, eosin, np.zeros_like(haem)


def _glands(r: _Region, spacing: float, jitter: float, size: tuple[float, float], lumen: tuple[float, float],
            sep: float) -> dict[str, np.ndarray]:
    """Gland geometry on a jittered grid: depth in the epithelium (0 lumen edge, 1 outer edge), septa, lumens."""
    from scipy.spatial import cKDTree

    rng = r.rng
    centres = _jittered_grid(rng, r.shape, spacing, jitter, margin=spacing)
    outer = (spacing * rng.uniform(*size, len(centres))).astype(np.float32)
    inner = rng.uniform(*lumen, len(centres)).astype(np.float32)
    tree = cKDTree(centres)
    dist, idx = tree.query(r.field_points(), k=2)
    near = idx[:, 0]
    u = dist[:, 0].astype(np.float32) / outer[near]
    u += 0.1 * _noise(rng, r.field_shape, 5.0 * r.scale).reshape(-1)
    v = ((u - inner[near]) / (1.0 - inner[near])).reshape(r.field_shape)
    septum_gap = (dist[:, 1] - dist[:, 0]).astype(np.float32).reshape(r.field_shape)
    depth, wall = r.up(v), r.up(septum_gap)
    septum = np.maximum(_soft_step(sep - wall, 2.0), _soft_step(depth - 1.0, 0.08))
    lumen_mask = _soft_step(-depth, 0.08) * (1.0 - septum)
    epithelium = np.clip(1.0 - septum - lumen_mask, 0.0, 1.0)
    return {"centres": centres, "tree": tree, "depth": depth, "wall": wall, "septum": septum, "lumen": lumen_mask,
            "epithelium": epithelium}


def _render_tumor(r: _Region) -> _Densities:
    s, rng = r.scale, r.rng
    sep = rng.uniform(5.0, 10.0) * s
    g = _glands(r, rng.uniform(110.0, 175.0) * s, rng.uniform(0.22, 0.32), (0.5, 0.66), (0.15, 0.5), sep)
    epithelium, septum, lumen_mask, depth = g["epithelium"], g["septum"], g["lumen"], g["depth"]
    haem = 0.32 * epithelium + 0.05 * septum + 0.03 * lumen_mask
    eosin = (0.42 * epithelium + 0.55 * septum + 0.06 * lumen_mask) * (0.9 + 0.1 * r.noise(20.0))
    # "dirty necrosis": eosinophilic debris with nuclear dust in lumens, in some tumours abundantly
    necrotic = rng.uniform(0.0, 1.0) ** 2
    debris = _soft_step(r.noise(8.0) - 1.2 + 1.6 * necrotic, 0.3) * lumen_mask
    eosin += 0.35 * debris
    haem += 0.12 * debris
    dust = _uniform_points(rng, r.shape, 9.0 * s)
    dust = dust[r.lookup(debris, dust) > 0.5]
    frag = _sprite_bank("fragment", round(s, 3))
    _stamp(haem, dust, rng.integers(0, len(frag), len(dust)), rng.uniform(1.4, 2.4, len(dust)).astype(np.float32),
           frag)
    nuclei = _jittered_grid(rng, r.shape, rng.uniform(10.5, 13.5) * s, 0.35)
    at = r.lookup(depth, nuclei)
    on_wall = r.lookup(g["wall"], nuclei)
    nuclei = nuclei[(at > 0.08) & (at < 0.97) & (on_wall > sep + 2.0)]
    _, owner = g["tree"].query(nuclei, k=1)
    centres = g["centres"]
    radial = np.arctan2(nuclei[:, 0] - centres[owner, 0], nuclei[:, 1] - centres[owner, 1])
    bank = _sprite_bank("tumor", round(s, 3))
    ids = _oriented_ids(rng, radial + rng.normal(0.0, rng.uniform(0.15, 0.5), len(nuclei)), len(bank))
    gains = rng.uniform(1.0, 1.8, len(nuclei)).astype(np.float32)
    gains[rng.random(len(nuclei)) < 0.02] = 2.6  # mitotic figures
    _stamp(haem, nuclei, ids, gains, bank)
    return haem, eosin, np.zeros_like(haem)


def _render_normal(r: _Region) -> _Densities:
    s, rng = r.scale, r.rng
    sep = rng.uniform(14.0, 26.0) * s  # lamina propria between crypts
    g = _glands(r, rng.uniform(95.0, 150.0) * s, rng.uniform(0.08, 0.2), (0.45, 0.56), (0.3, 0.5), sep)
    epithelium, septum, lumen_mask, depth = g["epithelium"], g["septum"], g["lumen"], g["depth"]
    goblet_cells = _uniform_points(rng, r.shape, rng.uniform(9.0, 14.0) * s)
    goblet_cells = goblet_cells[(r.lookup(depth, goblet_cells) > 0.1) & (r.lookup(depth, goblet_cells) < 0.65)]
    goblet = np.zeros(r.shape, np.float32)
    vacuole = _sprite_bank("lymph", round(s * 1.1, 3))  # round vacuoles of about 5 um
    _stamp(goblet, goblet_cells, rng.integers(0, len(vacuole), len(goblet_cells)),
           np.ones(len(goblet_cells), np.float32), vacuole)
    goblet = np.clip(goblet, 0.0, 1.0) * epithelium
    haem = 0.14 * epithelium * (1.0 - goblet) + 0.1 * septum + 0.02 * lumen_mask
    eosin = (0.38 * epithelium * (1.0 - 0.8 * goblet) + 0.35 * septum + 0.04 * lumen_mask) * (0.9 + 0.1 * r.noise(20.0))
    mucin = 0.35 * goblet + 0.08 * lumen_mask
    nuclei = _jittered_grid(rng, r.shape, rng.uniform(7.0, 9.0) * s, 0.25)
    at = r.lookup(depth, nuclei)
    nuclei = nuclei[(at > 0.72) & (at < 0.97) & (r.lookup(g["wall"], nuclei) > sep + 2.0)]  # basal, in a row
    _, owner = g["tree"].query(nuclei, k=1)
    centres = g["centres"]
    radial = np.arctan2(nuclei[:, 0] - centres[owner, 0], nuclei[:, 1] - centres[owner, 1])
    bank = _sprite_bank("basal", round(s, 3))
    _stamp(haem, nuclei, _oriented_ids(rng, radial + rng.normal(0.0, 0.1, len(nuclei)), len(bank)),
           rng.uniform(1.3, 1.8, len(nuclei)).astype(np.float32), bank)
    # lamina propria: lymphocytes and plasma cells between the crypts
    cells = _uniform_points(rng, r.shape, rng.uniform(14.0, 22.0) * s)
    cells = cells[r.lookup(septum, cells) > 0.6]
    small = _sprite_bank("small", round(s, 3))
    _stamp(haem, cells, rng.integers(0, len(small), len(cells)), rng.uniform(1.4, 2.0, len(cells)).astype(np.float32),
           small)
    return haem, eosin, mucin


def _render_debris(r: _Region) -> _Densities:
    s, rng = r.scale, r.rng
    granular = 0.5 + 0.25 * r.fine_noise(3.0) + 0.25 * r.noise(25.0, octaves=2)
    holes = _soft_step(r.noise(35.0) - rng.uniform(0.6, 1.3), 0.5)  # pale cracks and spaces
    eosin = np.clip(rng.uniform(0.35, 0.6) * granular * (1.0 - 0.8 * holes), 0.02, None)
    haem = 0.08 + 0.06 * r.noise(15.0)
    mucin = rng.uniform(0.0, 0.12) * holes
    dust = _uniform_points(rng, r.shape, rng.uniform(6.0, 10.0) * s)
    dust = dust[r.lookup(holes, dust) < 0.5]
    frag = _sprite_bank("fragment", round(s, 3))
    _stamp(haem, dust, rng.integers(0, len(frag), len(dust)), rng.uniform(1.3, 2.6, len(dust)).astype(np.float32),
           frag)
    pyk = _uniform_points(rng, r.shape, rng.uniform(20.0, 35.0) * s)
    bank = _sprite_bank("pyknotic", round(s, 3))
    _stamp(haem, pyk, rng.integers(0, len(bank), len(pyk)), rng.uniform(1.8, 2.6, len(pyk)).astype(np.float32), bank)
    if rng.random() < 0.5:  # ghost outlines and a few viable atypical nuclei of necrotic tumour glands
        g = _glands(r, rng.uniform(120.0, 170.0) * s, 0.3, (0.5, 0.64), (0.3, 0.6), 6.0 * s)
        ghost = np.clip(g["epithelium"], 0.0, 1.0) * rng.uniform(0.1, 0.3)
        eosin += 0.6 * ghost
        nuclei = _uniform_points(rng, r.shape, rng.uniform(25.0, 45.0) * s)
        nuclei = nuclei[r.lookup(g["epithelium"], nuclei) > 0.5]
        tum = _sprite_bank("tumor", round(s, 3))
        _stamp(haem, nuclei, rng.integers(0, len(tum), len(nuclei)),
               rng.uniform(0.8, 1.4, len(nuclei)).astype(np.float32), tum)
    return haem, eosin, mucin


def _render_background(r: _Region) -> _Densities:
    s, rng = r.scale, r.rng
    zeros = np.zeros(r.shape, np.float32)
    # faint uneven film of mountant and stain on the glass, out-of-focus smudges, dust and bubbles
    film = np.clip(0.015 + 0.02 * r.noise(120.0, octaves=2), 0.0, None)
    smudge = _soft_step(r.noise(60.0) - rng.uniform(1.2, 2.2), 0.8) * rng.uniform(0.05, 0.3)
    haem = film * 0.5 + 0.6 * smudge
    eosin = film + 0.4 * smudge
    dust = _uniform_points(rng, r.shape, rng.uniform(60.0, 160.0) * s)
    frag = _sprite_bank("fragment", round(s, 3))
    _stamp(haem, dust, rng.integers(0, len(frag), len(dust)), rng.uniform(0.6, 2.0, len(dust)).astype(np.float32),
           frag)
    if rng.random() < 0.4:  # an air bubble's dark rim
        h, w = r.shape
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        radius = rng.uniform(40.0, 160.0) * s
        yy, xx = np.ogrid[:h, :w]
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2, dtype=np.float32)
        rim = _soft_step(2.5 * s - np.abs(d - radius), 2.0)
        haem, eosin = haem + 0.5 * rim, eosin + 0.5 * rim
    return haem, eosin, zeros


def _render_mucus(r: _Region) -> _Densities:
    s, rng = r.scale, r.rng
    theta = rng.uniform(0, np.pi)
    wavelength = rng.uniform(35.0, 70.0) * s
    warp = r.noise(60.0, octaves=3) * rng.uniform(40.0, 80.0) * s
    streak = (0.5 + 0.5 * np.sin(r.stripe_phase(theta, wavelength, warp))) ** 4
    body = 0.3 + 0.07 * r.noise(50.0)
    holes = _soft_step(r.noise(45.0) - 1.2, 0.5)
    mucin = (body + 0.5 * streak * (0.6 + 0.4 * r.noise(15.0))) * (1.0 - 0.6 * holes)
    eosin = 0.03 + 0.05 * streak
    haem = 0.02 + 0.03 * streak
    cells = _uniform_points(rng, r.shape, rng.uniform(130.0, 200.0) * s)
    small = _sprite_bank("small", round(s, 3))
    _stamp(haem, cells, rng.integers(0, len(small), len(cells)), rng.uniform(1.0, 1.6, len(cells)).astype(np.float32),
           small)
    return haem, eosin, mucin


#: Class -> texture renderer (a registry: add a class by adding a renderer and its captions).
_RENDERERS: dict[str, Callable[[_Region], _Densities]] = {
    "adipose": _render_adipose,
    "background": _render_background,
    "debris": _render_debris,
    "lymphocytes": _render_lymphocytes,
    "mucus": _render_mucus,
    "muscle": _render_muscle,
    "normal": _render_normal,
    "stroma": _render_stroma,
    "tumor": _render_tumor,
}


@entry_point
def render_tissue(
    tissue_class: str,
    size: Annotated[int | tuple[int, int], Range(8)] = 224,
    *,
    seed: NonNegativeInt,
    mpp: PositiveFloat = BASE_MPP,
    site: Literal[SITES] = "a",
) -> np.ndarray:
    """Render one patch of a single tissue class with a random stain and scanner blur (previews, tests, patch sets).

    Args:
        tissue_class: one of :data:`TISSUE_CLASSES`.
        size: patch side, or ``(width, height)``, in pixels (8 or more).
        seed: the patch depends only on ``(tissue_class, seed, size, mpp, site)``.
        mpp: microns per pixel the texture is drawn at.
        site: the stain and scanner distribution (:data:`~domainclip.domains.pathology.synthetic.stain.SITES`).

    Returns:
        ``(height, width, 3)`` uint8 RGB.

    Raises:
        UnknownNameError: the class is not known.
    """
    label = check_class(tissue_class)
    width, height = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng([seed, label, 7])
    stain = _random_stain(rng, site)
    shape = (-(-height // _FIELD) * _FIELD, -(-width // _FIELD) * _FIELD)
    region = _Region(rng=rng, shape=shape, scale=BASE_MPP / mpp)
    dens = [d * k for d, k in zip(_RENDERERS[tissue_class](region), rng.uniform(0.9, 1.1, 3))]
    return _focus_blur(_compose(*dens, stain, rng), stain.blur)[:height, :width]
