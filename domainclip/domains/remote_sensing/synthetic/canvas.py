"""Surface materials with four-band spectra, and the canvas land-cover painters draw on.

A scene is drawn as surface reflectance (0-1) in the bands of :data:`BANDS` (red, green, blue and
near infrared, in the order of NAIP's four-band files, so that a reader's default bands 1, 2, 3 show
true colour; Sentinel-2's B4, B3, B2 and B8) on a supersampled grid, so roads and roofs narrower
than a pixel mix with their surroundings when the canvas is averaged down. Geometry is given in
*scene units*: a scene spans :data:`SIDE` units whatever its pixel size, so a 128 px scene shows the
same layout as a 64 px one in finer detail.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["BANDS", "HAZE", "MATERIALS", "SIDE", "Canvas"]

#: Band names, in file order (Sentinel-2 B4, B3, B2, B8).
BANDS: tuple[str, ...] = ("R", "G", "B", "NIR")
#: Scene side in scene units.
SIDE = 64.0

#: Surface reflectance per band (R, G, B, NIR), roughly the spectral library values of each surface:
#: water is dark in the near infrared, vegetation bright, soil and sand rise slowly from blue to NIR.
MATERIALS: dict[str, tuple[float, float, float, float]] = {
    "deep_water": (0.022, 0.038, 0.045, 0.008),
    "water": (0.038, 0.062, 0.070, 0.012),
    "green_water": (0.040, 0.080, 0.068, 0.015),
    "shallow_water": (0.085, 0.125, 0.110, 0.030),
    "foam": (0.430, 0.430, 0.420, 0.320),
    "forest": (0.022, 0.042, 0.022, 0.280),
    "trees": (0.036, 0.062, 0.030, 0.360),
    "grass": (0.060, 0.085, 0.045, 0.380),
    "dry_grass": (0.120, 0.105, 0.075, 0.290),
    "crop_green": (0.045, 0.090, 0.035, 0.480),
    "crop_yellow": (0.170, 0.135, 0.095, 0.320),
    "crop_brown": (0.120, 0.090, 0.070, 0.200),
    "soil": (0.150, 0.115, 0.085, 0.230),
    "sand": (0.320, 0.250, 0.190, 0.380),
    "sand_white": (0.350, 0.335, 0.310, 0.380),
    "sand_orange": (0.330, 0.210, 0.140, 0.400),
    "rock": (0.075, 0.065, 0.055, 0.100),
    "asphalt": (0.095, 0.085, 0.075, 0.110),
    "concrete": (0.220, 0.210, 0.200, 0.250),
    "marking": (0.460, 0.460, 0.450, 0.450),
    "roof_red": (0.190, 0.080, 0.070, 0.240),
    "roof_grey": (0.150, 0.140, 0.130, 0.170),
    "roof_brown": (0.120, 0.090, 0.080, 0.160),
    "roof_white": (0.410, 0.400, 0.380, 0.420),
    "roof_blue": (0.080, 0.130, 0.200, 0.140),
    "cloud": (0.570, 0.560, 0.560, 0.590),
}
#: Path radiance added by haze (blue scatters most).
HAZE = np.array([0.14, 0.17, 0.20, 0.11], np.float32)


def _brightness(texture: float | np.ndarray, mask: np.ndarray) -> np.ndarray | float:
    """``1 + texture`` over ``mask`` (a column per sample), kept within 0.2 and 1.8."""
    if np.ndim(texture):
        return np.clip(1.0 + np.asarray(texture, np.float32)[mask], 0.2, 1.8)[:, None]
    return float(np.clip(1.0 + float(texture), 0.2, 1.8))


class Canvas:
    """A supersampled reflectance canvas with the geometry helpers land-cover painters use.

    Args:
        samples: canvas side in samples (pixels times the supersampling factor).
        rng: the scene's random generator; every draw of a painter goes through it.
    """

    def __init__(self, samples: int, rng: np.random.Generator) -> None:
        self.samples = samples
        self.rng = rng
        t = ((np.arange(samples, dtype=np.float32) + 0.5) * (SIDE / samples)).astype(np.float32)
        self.y, self.x = np.meshgrid(t, t, indexing="ij")
        self.image = np.zeros((samples, samples, len(BANDS)), np.float32)
        self._spectra: dict[str, np.ndarray] = {}
        fy, fx = np.fft.fftfreq(samples).astype(np.float32), np.fft.rfftfreq(samples).astype(np.float32)
        self._frequencies = fy[:, None] ** 2 + fx[None, :] ** 2  # squared, in cycles per sample

    # ------------------------------------------------------------------------------------- spectra
    def spectrum(self, material: str) -> np.ndarray:
        """The material's spectrum in this scene: the library value, scaled per band by up to 8 %."""
        if material not in self._spectra:
            jitter = self.rng.uniform(0.92, 1.08, len(BANDS)).astype(np.float32)
            self._spectra[material] = np.asarray(MATERIALS[material], np.float32) * jitter
        return self._spectra[material]

    def paint(self, material: str, mask: np.ndarray | None = None, texture: float | np.ndarray = 0.0) -> None:
        """Cover ``mask`` (everything when None) with ``material``, brightness times ``1 + texture`` (0.2 to 1.8)."""
        spec = self.spectrum(material)
        if mask is None:
            mask = np.ones((self.samples, self.samples), bool)
        self.image[mask] = spec * _brightness(texture, mask)

    def blend(self, near: str, far: str, weight: np.ndarray, mask: np.ndarray,
              texture: float | np.ndarray = 0.0) -> None:
        """Cover ``mask`` with a mix of two materials: ``near`` where ``weight`` is 0, ``far`` where it is 1."""
        w = np.clip(weight, 0.0, 1.0)[mask][:, None]
        self.image[mask] = (self.spectrum(near) * (1.0 - w) + self.spectrum(far) * w) * _brightness(texture, mask)

    # ------------------------------------------------------------------------------------ textures
    def noise(self, scale: float) -> np.ndarray:
        """Smooth Gaussian noise with features about ``scale`` scene units across, unit standard deviation.

        White noise low-pass filtered by a Gaussian of that width, in the Fourier domain (periodic
        edges; the cost does not grow with the scale).
        """
        field = self.rng.standard_normal((self.samples, self.samples), dtype=np.float32)
        sigma = scale * self.samples / SIDE
        if sigma >= 0.5:
            gain = np.exp(np.float32(-2 * np.pi**2 * sigma**2) * self._frequencies)
            field = np.fft.irfft2(np.fft.rfft2(field) * gain, s=field.shape).astype(np.float32)
        return field / max(float(field.std()), 1e-6)

    def cover(self, score: np.ndarray, fraction: float) -> np.ndarray:
        """The ``fraction`` of the canvas where ``score`` is highest."""
        return score > np.quantile(score, 1.0 - fraction)

    # ------------------------------------------------------------------------------------ geometry
    def frame(self, angle: float, cx: float = SIDE / 2, cy: float = SIDE / 2) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates ``(u, v)`` of every sample in a frame rotated by ``angle`` (radians) about ``(cx, cy)``."""
        dx, dy = self.x - cx, self.y - cy
        c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
        return dx * c + dy * s, -dx * s + dy * c

    def rect(self, cx: float, cy: float, length: float, width: float, angle: float) -> np.ndarray:
        """A rectangle centred on ``(cx, cy)``, ``length`` along ``angle`` and ``width`` across."""
        u, v = self.frame(angle, cx, cy)
        return (np.abs(u) < length / 2) & (np.abs(v) < width / 2)

    def disc(self, cx: float, cy: float, radius: float) -> np.ndarray:
        """A disc centred on ``(cx, cy)``."""
        return (self.x - cx) ** 2 + (self.y - cy) ** 2 < radius**2

    def inside(self, points: Sequence[tuple[float, float]], margin: float = 1.0) -> bool:
        """Whether every ``(x, y)`` point lies in the scene, at least ``margin`` units from its edges."""
        return all(margin <= x <= SIDE - margin and margin <= y <= SIDE - margin for x, y in points)

    def to_scene(self, u: float, v: float, angle: float, cx: float = SIDE / 2,
                 cy: float = SIDE / 2) -> tuple[float, float]:
        """Scene position of the point ``(u, v)`` of :meth:`frame` ``(angle, cx, cy)``."""
        c, s = np.cos(angle), np.sin(angle)
        return float(cx + u * c - v * s), float(cy + u * s + v * c)
