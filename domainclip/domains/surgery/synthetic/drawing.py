"""Drawing on float RGB canvases: the colour palette, smooth noise and a vectorised shape painter."""

from __future__ import annotations

import math

import numpy as np

#: A float32 ``(H, W, 3)`` canvas, values in [0, 1] (scene) or [0, 255] (frame).
RGB = np.ndarray

# The palette (RGB in [0, 1]).
TISSUE = np.array([0.80, 0.40, 0.36], dtype=np.float32)
FAT = np.array([0.92, 0.78, 0.38], dtype=np.float32)
LIVER = np.array([0.45, 0.13, 0.10], dtype=np.float32)
GALLBLADDER = np.array([0.45, 0.58, 0.38], dtype=np.float32)
RAW_BED = np.array([0.88, 0.16, 0.12], dtype=np.float32)
BLOOD = np.array([0.32, 0.02, 0.03], dtype=np.float32)
DUCT = np.array([0.92, 0.86, 0.66], dtype=np.float32)
ARTERY = np.array([0.80, 0.28, 0.26], dtype=np.float32)
CLIP = np.array([0.90, 0.90, 0.95], dtype=np.float32)
STEEL = np.array([0.62, 0.63, 0.66], dtype=np.float32)
DARK_STEEL = np.array([0.30, 0.31, 0.34], dtype=np.float32)
BAND = np.array([0.20, 0.35, 0.75], dtype=np.float32)
BAG = np.array([0.90, 0.90, 0.86], dtype=np.float32)
CLIP_LOADED = np.array([0.95, 0.85, 0.55], dtype=np.float32)
SPRAY = np.array([0.85, 0.92, 1.0], dtype=np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian-filtered white noise (FFT), ``sigma`` in pixels."""
    noise = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    kernel = np.exp(-2.0 * (math.pi * sigma) ** 2 * (fy**2 + fx**2))
    out = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=shape)
    out -= out.mean()
    return (out / (out.std() + 1e-8)).astype(np.float32)


class Grid:
    """Pixel coordinate grids of an image, for vectorised drawing in bounding boxes."""

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)

    def box(self, y0: float, y1: float, x0: float, x1: float) -> tuple[slice, slice] | None:
        """The slices of the pixels in ``[y0, y1] x [x0, x1]`` inside the image (None when empty)."""
        ys, ye = max(int(y0), 0), min(int(math.ceil(y1)) + 1, self.height)
        xs, xe = max(int(x0), 0), min(int(math.ceil(x1)) + 1, self.width)
        if ys >= ye or xs >= xe:
            return None
        return slice(ys, ye), slice(xs, xe)

    def segment(
        self, img: RGB, p0: tuple[float, float], p1: tuple[float, float], width: float, color: np.ndarray,
        shade: float = 0.45,
    ) -> None:
        """Draw a thick segment (a cylinder, darker at its rims) from ``p0`` to ``p1`` (y, x)."""
        (y0, x0), (y1, x1) = p0, p1
        box = self.box(min(y0, y1) - width, max(y0, y1) + width, min(x0, x1) - width, max(x0, x1) + width)
        if box is None:
            return
        yy, xx = self.yy[box], self.xx[box]
        dy, dx = y1 - y0, x1 - x0
        t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / max(dy * dy + dx * dx, 1e-6), 0.0, 1.0)
        d2 = (yy - y0 - t * dy) ** 2 + (xx - x0 - t * dx) ** 2
        inside = d2 < width * width
        if inside.any():
            region = img[box]
            region[inside] = color * (1.0 - shade * d2[inside] / (width * width))[:, None]

    def ellipse(
        self, img: RGB, center: tuple[float, float], radii: tuple[float, float], angle: float,
        color: np.ndarray, alpha: float = 1.0, wobble: np.ndarray | None = None,
    ) -> None:
        """Fill a rotated ellipse (``radii`` = (ry, rx), ``angle`` in radians), optionally with a wavy rim."""
        cy, cx = center
        r = max(radii) * (1.3 if wobble is not None else 1.0)
        box = self.box(cy - r, cy + r, cx - r, cx + r)
        if box is None:
            return
        yy, xx = self.yy[box] - cy, self.xx[box] - cx
        c, s = math.cos(angle), math.sin(angle)
        u, v = (xx * c + yy * s) / radii[1], (-xx * s + yy * c) / radii[0]
        rho = u * u + v * v
        if wobble is not None:  # wavy rim: the radius varies with the angle, read from a 256-entry table
            table = np.linspace(-math.pi, math.pi, 257, dtype=np.float32)[:, None] * np.arange(1, len(wobble) + 1)
            rim = (1.0 + 0.15 * np.sin(table + wobble).mean(-1)) ** 2
            rho = rho / rim[((np.arctan2(v, u) + math.pi) * (256 / (2 * math.pi))).astype(np.intp)]
        inside = rho < 1.0
        if inside.any():
            region = img[box]
            if alpha >= 1.0:
                region[inside] = color
            else:
                region[inside] = region[inside] * (1 - alpha) + color * alpha

