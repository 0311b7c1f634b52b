"""The 7 Cholec80 tools as drawn instruments: shafts entering from the image border, moving tips.

Grasper jaws, a blue-banded bipolar, an L-hook, scissor blades, a clip applier holding a clip and a
thin irrigator with spray; the specimen bag is drawn by the renderer, since it lies in the scene.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from domainclip.domains.surgery.synthetic.drawing import BAND, CLIP_LOADED, DARK_STEEL, SPRAY, STEEL, Grid


class ToolRig:
    """Per-video instrument geometry: entry points on the image border, tip rest positions and motion."""

    # (entry y, entry x, tip y, tip x) as fractions of the image height/width.
    _PORTS: dict[str, tuple[float, float, float, float]] = {
        "Grasper": (-0.15, 0.95, 0.35, 0.66),
        "Bipolar": (0.15, 1.15, 0.48, 0.60),
        "Hook": (1.15, 0.12, 0.56, 0.45),
        "Scissors": (0.95, -0.15, 0.60, 0.48),
        "Clipper": (1.15, 0.30, 0.60, 0.42),
        "Irrigator": (1.15, 0.85, 0.55, 0.52),
    }

    def __init__(self, rng: np.random.Generator, width: int, height: int):
        self.unit = width / 160.0
        self.motion: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.ports: dict[str, tuple[float, float, float, float]] = {}
        for tool, (ey, ex, ty, tx) in self._PORTS.items():
            j = rng.uniform(-0.06, 0.06, 4)
            self.ports[tool] = ((ey + j[0]) * height, (ex + j[1]) * width, (ty + j[2]) * height, (tx + j[3]) * width)
            self.motion[tool] = (
                rng.uniform(0.15, 0.6, 2),  # frequencies (Hz)
                rng.uniform(0, 2 * math.pi, 2),  # phases
                rng.uniform(0.04, 0.09, 2) * np.array([height, width]),  # amplitudes
            )

    def tip(self, tool: str, t: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """``(entry, tip)`` (y, x) of ``tool`` at time ``t``: the tip sways around its rest position."""
        ey, ex, ty, tx = self.ports[tool]
        freq, phase, amp = self.motion[tool]
        wave = np.sin(2 * math.pi * freq * t + phase) * amp
        return (ey, ex), (ty + float(wave[0]), tx + float(wave[1]))

    def draw(self, grid: Grid, img: np.ndarray, tool: str, t: float) -> None:
        """Draw ``tool`` at time ``t``: its shaft from the border to the tip, then its tip."""
        entry, tip = self.tip(tool, t)
        width, color = _SHAFTS[tool]
        grid.segment(img, entry, tip, width * self.unit, color)
        _TIPS[tool](grid, img, _Pose(entry, tip, self.unit, t))


@dataclass(frozen=True)
class _Pose:
    """Where an instrument is: entry point and tip (y, x), pixel unit and time."""

    entry: tuple[float, float]
    tip: tuple[float, float]
    unit: float
    t: float

    @property
    def direction(self) -> tuple[float, float]:
        dy, dx = self.tip[0] - self.entry[0], self.tip[1] - self.entry[1]
        norm = math.hypot(dy, dx) or 1.0
        return dy / norm, dx / norm

    def ahead(self, length: float, turn: float = 0.0) -> tuple[float, float]:
        """The point ``length`` units beyond the tip, turned by ``turn`` radians from the shaft axis."""
        dy, dx = self.direction
        c, s = math.cos(turn), math.sin(turn)
        step = length * self.unit
        return self.tip[0] + (dy * c + dx * s) * step, self.tip[1] + (dx * c - dy * s) * step

    def behind(self, length: float) -> tuple[float, float]:
        """The point ``length`` units back along the shaft."""
        dy, dx = self.direction
        return self.tip[0] - dy * length * self.unit, self.tip[1] - dx * length * self.unit

    @property
    def opening(self) -> float:
        """Jaw opening angle, slowly opening and closing."""
        return 0.25 + 0.15 * math.sin(3 * self.t)


def _tip_grasper(grid: Grid, img: np.ndarray, pose: _Pose) -> None:
    for side in (-1, 1):
        grid.segment(img, pose.tip, pose.ahead(8, side * pose.opening), 1.5 * pose.unit, DARK_STEEL, shade=0.2)


def _tip_bipolar(grid: Grid, img: np.ndarray, pose: _Pose) -> None:
    grid.segment(img, pose.behind(8), pose.tip, 3.4 * pose.unit, BAND, shade=0.3)  # blue insulation
    for side in (-1, 1):
        grid.segment(img, pose.tip, pose.ahead(6, side * pose.opening * 0.6), 1.3 * pose.unit, DARK_STEEL, shade=0.2)


def _tip_hook(grid: Grid, img: np.ndarray, pose: _Pose) -> None:
    bend = pose.ahead(5)
    dy, dx = pose.direction
    grid.segment(img, pose.tip, bend, 1.2 * pose.unit, DARK_STEEL, shade=0.2)
    grid.segment(img, bend, (bend[0] + dx * 4 * pose.unit, bend[1] - dy * 4 * pose.unit), 1.2 * pose.unit,
                 DARK_STEEL, shade=0.2)


def _tip_scissors(grid: Grid, img: np.ndarray, pose: _Pose) -> None:
    for side in (-1, 1):
        grid.segment(img, pose.behind(2), pose.ahead(10, side * 0.18), 1.0 * pose.unit, STEEL * 1.3, shade=0.2)


def _tip_clipper(grid: Grid, img: np.ndarray, pose: _Pose) -> None:
    for side in (-1, 1):
        grid.segment(img, pose.tip, pose.ahead(8, side * 0.2), 2.2 * pose.unit, DARK_STEEL, shade=0.2)
    grid.segment(img, pose.ahead(4), pose.ahead(9), 1.2 * pose.unit, CLIP_LOADED, shade=0.2)


def _tip_irrigator(grid: Grid, img: np.ndarray, pose: _Pose) -> None:
    for k in range(3):
        spray = pose.ahead(4 + 3 * k, 0.3 * math.sin(7 * pose.t + k))
        grid.ellipse(img, spray, (1.2 * pose.unit, 1.2 * pose.unit), 0.0, SPRAY, 0.7)


#: Instrument shafts: (width in units of 1/160 of the frame width, colour).
_SHAFTS: dict[str, tuple[float, np.ndarray]] = {
    "Grasper": (3.2, STEEL),
    "Bipolar": (3.2, STEEL),
    "Hook": (3.2, STEEL),
    "Scissors": (3.2, STEEL),
    "Clipper": (3.2, STEEL),
    "Irrigator": (2.2, STEEL * 1.25),
}
#: Instrument tips, drawn after the shaft.
_TIPS: dict[str, Callable[[Grid, np.ndarray, _Pose], None]] = {
    "Grasper": _tip_grasper,
    "Bipolar": _tip_bipolar,
    "Hook": _tip_hook,
    "Scissors": _tip_scissors,
    "Clipper": _tip_clipper,
    "Irrigator": _tip_irrigator,
}

