"""Nuclei: banks of pre-rendered, anti-aliased sprites stamped in bulk into a density field."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from domainclip.domains.pathology.synthetic.stain import _soft_step


@dataclass(frozen=True)
class _Sprite:
    dy: np.ndarray
    dx: np.ndarray
    value: np.ndarray


def _make_sprite(
    rng: np.random.Generator,
    a: float,
    b: float,
    angle: float,
    *,
    irregularity: float,
    chromatin: float,
    rim: float,
    nucleolus: float = 0.0,
) -> _Sprite:
    """One nucleus: an irregular ellipse (semi-axes ``a`` along ``angle``, ``b`` across), anti-aliased."""
    from skimage.filters import gaussian

    r = int(math.ceil(max(a, b) * (1.0 + 2.0 * irregularity))) + 2
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    u, v = xx * c + yy * s, -xx * s + yy * c
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2) + 1e-6
    phi = np.arctan2(v / b, u / a)
    wobble = np.ones_like(phi)
    for k in (2, 3, 4, 5):
        wobble += irregularity * rng.normal(0.0, 1.0 / k) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    radius = np.hypot(u, v) / rho  # the ellipse radius in this direction, in pixels
    inside = (wobble - rho) * radius  # approximate distance to the boundary, positive inside
    alpha = _soft_step(inside)
    speckle = gaussian(rng.random(alpha.shape), sigma=0.9)
    speckle = (speckle - speckle.mean()) / (speckle.std() + 1e-6)
    value = 1.0 + 0.25 * chromatin * speckle + rim * np.exp(-0.5 * np.clip(inside, 0, None) ** 2)
    if nucleolus > 0:
        ny, nx = rng.uniform(-0.4, 0.4, 2) * min(a, b)
        value += nucleolus * np.exp(-((yy - ny) ** 2 + (xx - nx) ** 2) / 2.0)
    value = np.clip(value, 0.3, None) * alpha
    keep = alpha > 0.03
    return _Sprite(
        dy=yy[keep].astype(np.intp), dx=xx[keep].astype(np.intp), value=value[keep].astype(np.float32)
    )


_ANGLE_BINS = 12
#: Round kinds: count, radius range (base px), least aspect ratio, irregularity, chromatin, rim.
_ROUND = {
    "lymph": (48, (4.3, 6.0), 0.82, 0.04, 0.5, 0.15),
    "small": (24, (3.5, 5.5), 0.7, 0.08, 0.6, 0.2),
    "fragment": (32, (1.2, 2.8), 0.45, 0.35, 0.8, 0.1),  # karyorrhectic nuclear dust of necrosis
    "pyknotic": (16, (2.5, 3.8), 0.75, 0.15, 0.2, 0.05),  # shrunken, dense nuclei
}


@lru_cache(maxsize=32)
def _sprite_bank(kind: str, scale: float) -> tuple[_Sprite, ...]:
    """Deterministic nucleus sprites of one kind at ``scale`` level-0 px per base px.

    Oriented kinds (``spindle``, ``tumor``, ``flat``, ``basal``, ``muscle``) are ordered by angle bin:
    sprite ``k`` has the angle of bin ``k % _ANGLE_BINS``.
    """
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    sprites: list[_Sprite] = []
    if kind in _ROUND:
        count, radius, aspect, irregularity, chromatin, rim = _ROUND[kind]
        for _ in range(count):
            rad = rng.uniform(*radius) * scale
            sprites.append(
                _make_sprite(rng, rad, rad * rng.uniform(aspect, 1.0), rng.uniform(0, np.pi),
                             irregularity=irregularity, chromatin=chromatin, rim=rim)
            )
    else:
        shapes = {
            "spindle": dict(a=(8.0, 13.0), b=(1.7, 2.7), irregularity=0.05, chromatin=0.4, rim=0.1, nucleolus=0.0),
            "tumor": dict(a=(7.0, 11.5), b=(4.2, 7.0), irregularity=0.13, chromatin=1.0, rim=0.45, nucleolus=0.6),
            "flat": dict(a=(6.0, 9.0), b=(1.4, 2.2), irregularity=0.05, chromatin=0.3, rim=0.1, nucleolus=0.0),
            # normal crypt epithelium: small, regular, elongated basal nuclei
            "basal": dict(a=(4.5, 6.5), b=(2.0, 3.0), irregularity=0.04, chromatin=0.35, rim=0.15, nucleolus=0.0),
            # smooth muscle: long cigar-shaped nuclei with blunt ends, plumper than fibroblasts
            "muscle": dict(a=(9.0, 14.0), b=(2.2, 3.3), irregularity=0.03, chromatin=0.3, rim=0.1, nucleolus=0.0),
        }[kind]
        per_bin = 6
        for k in range(per_bin * _ANGLE_BINS):
            angle = (k % _ANGLE_BINS) * np.pi / _ANGLE_BINS + rng.uniform(-0.12, 0.12)
            sprites.append(
                _make_sprite(
                    rng,
                    rng.uniform(*shapes["a"]) * scale,
                    rng.uniform(*shapes["b"]) * scale,
                    angle,
                    irregularity=shapes["irregularity"],
                    chromatin=shapes["chromatin"],
                    rim=shapes["rim"],
                    nucleolus=shapes["nucleolus"] if rng.random() < 0.5 else 0.0,
                )
            )
    return tuple(sprites)


def _oriented_ids(rng: np.random.Generator, angles: np.ndarray, bank_size: int) -> np.ndarray:
    """Sprite ids of an oriented bank whose angle bin is nearest to ``angles`` (radians, mod pi)."""
    bins = np.round(np.mod(angles, np.pi) / (np.pi / _ANGLE_BINS)).astype(np.intp) % _ANGLE_BINS
    variant = rng.integers(0, bank_size // _ANGLE_BINS, len(angles))
    return bins + variant * _ANGLE_BINS


def _stamp(
    canvas: np.ndarray, points: np.ndarray, ids: np.ndarray, gains: np.ndarray, bank: Sequence[_Sprite]
) -> None:
    """Draw nuclei into ``canvas`` (max-composited): sprite ``bank[ids[n]]`` times ``gains[n]`` at ``points[n]``."""
    if len(points) == 0:
        return
    h, w = canvas.shape
    flat = canvas.reshape(-1)
    cy = np.round(points[:, 0]).astype(np.intp)
    cx = np.round(points[:, 1]).astype(np.intp)
    order = np.argsort(ids, kind="stable")
    bounds = np.searchsorted(ids[order], np.arange(len(bank) + 1))
    for k in range(len(bank)):
        members = order[bounds[k]:bounds[k + 1]]
        if len(members) == 0:
            continue
        sprite = bank[k]
        yy = cy[members, None] + sprite.dy[None, :]
        xx = cx[members, None] + sprite.dx[None, :]
        vals = gains[members, None] * sprite.value[None, :]
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        index = yy[ok] * w + xx[ok]
        flat[index] = np.maximum(flat[index], vals[ok])

