"""The stain model and the smooth random fields every texture is drawn from.

Colours follow a Beer-Lambert stain model: every pixel holds haematoxylin, eosin and mucin
densities and its RGB is ``background * exp(-(density @ OD vectors))``. Each slide draws its own
stain and scanner (H&E optical-density vectors scattered around a published reference matrix,
concentration scales, glass brightness and tint, sensor noise, focus blur, JPEG quality, whether it
has pen marks or a tissue fold) from its site's distribution (:data:`SITES`: site ``"b"`` is a
shifted second site), so one pixel's colour does not give the class away; the texture does. Fields
are vectorised numpy, upsampled bilinearly or bicubically with Pillow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

#: Level-0 pixels per cell of the low-resolution field grid (region boundaries, noise).
_FIELD = 4

#: Published H&E optical-density directions (R, G, B), unit rows. Site ``"a"`` draws its stains around
#: Macenko et al. (2009)'s reference matrix (``HERef`` of their normalisation code, as in staintools
#: and torchstain), site ``"b"`` around Ruifrok & Johnston (2001)'s colour-deconvolution vectors
#: (scikit-image's ``hed_from_rgb``): a more magenta eosin and a bluer haematoxylin.
MACENKO_HE = np.array([[0.5626, 0.7201, 0.4062], [0.2159, 0.8012, 0.5581]], dtype=np.float32)
RUIFROK_HE = np.array([[0.650, 0.704, 0.286], [0.072, 0.990, 0.105]], dtype=np.float32)
#: Optical-density direction of mucin (pale blue-grey), the third stain channel of every slide.
MUCIN_OD = np.array([0.80, 0.55, 0.22], dtype=np.float32)
#: Scanner sites a slide may come from (``"b"``: the shifted "second site").
SITES: tuple[str, ...] = ("a", "b")


@dataclass(frozen=True)
class _SiteProfile:
    """How one site's stains and scanner settings are drawn (uniform ranges unless noted)."""

    reference: np.ndarray  # (2, 3) H and E OD rows the slide's vectors scatter around
    od_spread: tuple[float, float]  # normal standard deviation added to the H and E rows
    scales: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]  # H, E, mucin concentration
    background: tuple[float, float]  # glass brightness
    tint: tuple[float, float, float]  # mean offset of the glass (R, G, B)
    noise: tuple[float, float]  # sensor noise standard deviation (8-bit levels)
    blur: tuple[float, float]  # Gaussian focus blur sigma, level-0 pixels
    jpeg_quality: tuple[int, int]  # JPEG quality of the slide's tiles (inclusive)
    pen: float  # probability of pen marks on the slide
    fold: float  # probability of a tissue fold


_SITES: dict[str, _SiteProfile] = {
    "a": _SiteProfile(
        reference=MACENKO_HE, od_spread=(0.035, 0.045), scales=((0.8, 1.2), (0.8, 1.2), (0.85, 1.2)),
        background=(236.0, 250.0), tint=(0.0, 0.0, 0.0), noise=(1.5, 3.0), blur=(0.0, 0.6), jpeg_quality=(80, 95),
        pen=0.25, fold=0.3,
    ),
    "b": _SiteProfile(
        reference=RUIFROK_HE, od_spread=(0.05, 0.06), scales=((1.1, 1.5), (0.55, 0.85), (0.9, 1.3)),
        background=(222.0, 240.0), tint=(3.0, 1.0, -9.0), noise=(3.0, 5.0), blur=(0.8, 1.4), jpeg_quality=(45, 65),
        pen=0.4, fold=0.4,
    ),
}
# Standard deviation of white noise after Pillow's bicubic upsampling (measured), used to normalise.
_BICUBIC_STD = 0.815


@dataclass(frozen=True)
class _Stain:
    """One slide's stain and scanner: OD vectors (rows H, E, M), concentrations, glass, noise, blur, JPEG, artefacts."""

    od: np.ndarray
    scales: np.ndarray
    background: np.ndarray
    noise: float
    site: str = "a"
    blur: float = 0.0
    jpeg_quality: int = 90
    pen: bool = False
    fold: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "od_vectors": {k: [round(float(v), 4) for v in row] for k, row in zip(("H", "E", "M"), self.od)},
            "scales": {k: round(float(v), 4) for k, v in zip(("H", "E", "M"), self.scales)},
            "background": [round(float(v), 2) for v in self.background],
            "noise": round(self.noise, 3),
            "blur": round(self.blur, 3),
            "jpeg_quality": self.jpeg_quality,
            "pen_marks": self.pen,
            "tissue_fold": self.fold,
        }


def _random_stain(rng: np.random.Generator, site: str = "a") -> _Stain:
    """Draw one slide's stain and scanner settings from a site's distribution (:data:`SITES`)."""
    p = _SITES[site]
    he = p.reference + rng.normal(0.0, [[p.od_spread[0]], [p.od_spread[1]]], size=(2, 3)).astype(np.float32)
    od = np.concatenate([he, MUCIN_OD[None] + rng.normal(0.0, 0.04, (1, 3)).astype(np.float32)])
    od = np.clip(od, 0.02, None)
    od /= np.linalg.norm(od, axis=1, keepdims=True)
    scales = np.array([rng.uniform(*r) for r in p.scales], np.float32)
    background = np.clip(rng.uniform(*p.background) + np.array(p.tint) + rng.normal(0.0, 2.5, 3), 200.0, 255.0)
    return _Stain(
        od=od.astype(np.float32),
        scales=scales,
        background=background.astype(np.float32),
        noise=float(rng.uniform(*p.noise)),
        site=site,
        blur=float(rng.uniform(*p.blur)),
        jpeg_quality=int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1)),
        pen=bool(rng.random() < p.pen),
        fold=bool(rng.random() < p.fold),
    )


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


def _focus_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """The scanner's focus blur: a Gaussian of ``sigma`` level-0 pixels on a uint8 RGB image (Pillow)."""
    if sigma < 0.05:
        return image
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=sigma)))
