"""The stain model and the smooth random fields every texture is drawn from.

Colours follow a Beer-Lambert stain model: every pixel holds haematoxylin, eosin and mucin
densities and its RGB is ``background * exp(-(density @ OD vectors))``. Each slide draws its own
stain (optical-density vectors, concentration scales, glass brightness and tint, sensor noise), so
one pixel's colour does not give the class away; the texture does. Fields are vectorised numpy,
upsampled bilinearly or bicubically with Pillow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

#: Level-0 pixels per cell of the low-resolution field grid (region boundaries, noise).
_FIELD = 4

#: Reference optical-density directions (R, G, B) of haematoxylin, eosin and mucin.
_OD_REFERENCE = np.array(
    [
        [0.60, 0.75, 0.30],  # haematoxylin: purple-blue
        [0.18, 0.86, 0.48],  # eosin: pink
        [0.80, 0.55, 0.22],  # mucin: pale blue-grey
    ],
    dtype=np.float32,
)
# Standard deviation of white noise after Pillow's bicubic upsampling (measured), used to normalise.
_BICUBIC_STD = 0.815


@dataclass(frozen=True)
class _Stain:
    """One slide's stain: OD vectors (rows H, E, M), concentration scales, glass colour and noise."""

    od: np.ndarray
    scales: np.ndarray
    background: np.ndarray
    noise: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "od_vectors": {k: [round(float(v), 4) for v in row] for k, row in zip(("H", "E", "M"), self.od)},
            "scales": {k: round(float(v), 4) for k, v in zip(("H", "E", "M"), self.scales)},
            "background": [round(float(v), 2) for v in self.background],
            "noise": round(self.noise, 3),
        }


def _random_stain(rng: np.random.Generator) -> _Stain:
    od = _OD_REFERENCE + rng.normal(0.0, [[0.05], [0.06], [0.05]], size=(3, 3)).astype(np.float32)
    od = np.clip(od, 0.02, None)
    od /= np.linalg.norm(od, axis=1, keepdims=True)
    scales = np.array([rng.uniform(0.75, 1.25), rng.uniform(0.7, 1.3), rng.uniform(0.8, 1.25)], np.float32)
    background = np.clip(rng.uniform(232.0, 250.0) + rng.normal(0.0, 2.5, 3), 215.0, 255.0).astype(np.float32)
    return _Stain(od=od, scales=scales, background=background, noise=float(rng.uniform(1.5, 3.5)))


def _resize(a: np.ndarray, shape: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """Resize a float32 field to ``shape`` (rows, cols) with Pillow (pixel-centre aligned)."""
    image = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))
    return np.asarray(image.resize((shape[1], shape[0]), resample), dtype=np.float32)


def _noise(rng: np.random.Generator, shape: tuple[int, int], feature: float, octaves: int = 1) -> np.ndarray:
    """Smooth noise of about unit standard deviation whose blobs are ``feature`` cells across."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    total = 0.0
    for k in range(octaves):
        f = max(feature / 2**k, 1.0)
        gh, gw = int(math.ceil(h / f)) + 2, int(math.ceil(w / f)) + 2
        coarse = rng.standard_normal((gh, gw)).astype(np.float32)
        big = _resize(coarse, (int(round(gh * f)), int(round(gw * f))), Image.Resampling.BICUBIC)
        oy, ox = int(rng.integers(0, max(1, big.shape[0] - h))), int(rng.integers(0, max(1, big.shape[1] - w)))
        amp = 0.5**k
        out += amp * big[oy:oy + h, ox:ox + w]
        total += amp * amp
    out /= _BICUBIC_STD * math.sqrt(total)
    return out


def _soft_step(x: np.ndarray, width: float = 1.0) -> np.ndarray:
    """0 below ``-width/2``, 1 above ``+width/2``, linear between (anti-aliased edges)."""
    return np.clip(x / width + 0.5, 0.0, 1.0)


def _jittered_grid(
    rng: np.random.Generator, shape: tuple[int, int], spacing: float, jitter: float, margin: float = 0.0
) -> np.ndarray:
    """Points ``(y, x)`` on a grid of ``spacing`` moved by up to ``jitter * spacing``, covering ``shape`` + margin."""
    h, w = shape
    ys = np.arange(-margin, h + margin + spacing, spacing, dtype=np.float32)
    xs = np.arange(-margin, w + margin + spacing, spacing, dtype=np.float32)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    grid += rng.uniform(-jitter, jitter, grid.shape).astype(np.float32) * spacing
    return grid


def _uniform_points(rng: np.random.Generator, shape: tuple[int, int], spacing: float) -> np.ndarray:
    """About one uniformly placed point ``(y, x)`` per ``spacing**2`` pixels of ``shape``."""
    n = int(rng.poisson(shape[0] * shape[1] / spacing**2))
    return rng.uniform(0.0, 1.0, (n, 2)).astype(np.float32) * np.array(shape, np.float32)



def _compose(
    haem: np.ndarray, eosin: np.ndarray, mucin: np.ndarray, stain: _Stain, rng: np.random.Generator, rows: int = 512
) -> np.ndarray:
    """Beer-Lambert colour: ``background * exp(-densities @ OD)`` plus sensor noise, as uint8 RGB."""
    h, w = haem.shape
    out = np.empty((h, w, 3), np.uint8)
    od = (stain.od * stain.scales[:, None]).astype(np.float32)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        grain = rng.standard_normal((r1 - r0, w), dtype=np.float32) * np.float32(stain.noise) + np.float32(0.5)
        for c in range(3):
            density = haem[r0:r1] * od[0, c] + eosin[r0:r1] * od[1, c] + mucin[r0:r1] * od[2, c]
            channel = np.exp(-density) * stain.background[c] + grain
            out[r0:r1, :, c] = np.clip(channel, 0, 255)
    return out
