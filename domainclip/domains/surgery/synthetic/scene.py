"""The operative scene: anatomy placed per video, and the keyframe canvases of what each phase shows.

:data:`LOOK` gives each phase its colour cast, texture, camera target and zoom.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from domainclip.domains.surgery.synthetic.drawing import (
    ARTERY,
    BLOOD,
    CLIP,
    DUCT,
    FAT,
    GALLBLADDER,
    LIVER,
    RAW_BED,
    STEEL,
    TISSUE,
    Grid,
    smooth_noise,
)
from domainclip.domains.surgery.synthetic.vocabulary import PHASES

#: Per-phase look: global tint, fine texture amplitude, camera zoom (scene pixels per frame pixel),
#: look-at point (fractions of the scene canvas) and number of progress keyframes.
LOOK: dict[str, dict[str, Any]] = {
    "Preparation": {"tint": (1.05, 0.92, 0.88), "grain": 0.03, "zoom": 1.18, "at": (0.50, 0.50), "keys": 1},
    "CalotTriangleDissection": {"tint": (1.00, 0.95, 0.68), "grain": 0.09, "zoom": 0.86, "at": (0.58, 0.42), "keys": 4},
    "ClippingCutting": {"tint": (0.95, 0.82, 0.86), "grain": 0.05, "zoom": 0.78, "at": (0.66, 0.36), "keys": 6},
    "GallbladderDissection": {"tint": (0.90, 1.05, 0.76), "grain": 0.05, "zoom": 0.95, "at": (0.45, 0.55), "keys": 4},
    "GallbladderPackaging": {"tint": (1.02, 1.00, 1.06), "grain": 0.03, "zoom": 1.05, "at": (0.50, 0.58), "keys": 1},
    "CleaningCoagulation": {"tint": (0.75, 0.88, 1.25), "grain": 0.02, "zoom": 1.00, "at": (0.42, 0.50), "keys": 4},
    "GallbladderRetraction": {"tint": (0.50, 0.45, 0.52), "grain": 0.03, "zoom": 1.12, "at": (0.36, 0.66), "keys": 1},
}


class Scene:
    """Per-video scene: anatomy positions and the keyframe canvases of every phase."""

    def __init__(self, rng: np.random.Generator, width: int, height: int):
        self.unit = width / 160.0
        self.ch, self.cw = int(round(height * 1.6)), int(round(width * 1.6))
        self.grid = Grid(self.ch, self.cw)
        ch, cw, u = self.ch, self.cw, self.unit
        jit = rng.uniform(-1, 1, 8)
        self.gb_center = (ch * (0.42 + 0.04 * jit[0]), cw * (0.56 + 0.04 * jit[1]))
        self.gb_radii = (ch * (0.15 + 0.02 * jit[2]), cw * (0.22 + 0.02 * jit[3]))
        self.gb_angle = -0.35 + 0.2 * jit[4]
        self.neck = (self.gb_center[0] + self.gb_radii[0] * 0.9, self.gb_center[1] - self.gb_radii[1] * 0.7)
        self.duct_end = (ch * (0.90 + 0.03 * jit[5]), cw * (0.22 + 0.04 * jit[6]))
        self.artery_end = (ch * (0.86 + 0.03 * jit[6]), cw * (0.40 + 0.04 * jit[7]))
        self.wobble = rng.uniform(0, 2 * math.pi, 5).astype(np.float32)
        self.pools = [
            (rng.uniform(-0.2, 0.35), rng.uniform(-0.3, 0.3), rng.uniform(0.04, 0.09), rng.uniform(0, 3))
            for _ in range(4)
        ]
        shape = (ch, cw)
        low = smooth_noise(rng, shape, 10 * u)
        mid = smooth_noise(rng, shape, 3 * u)
        ridge = smooth_noise(rng, shape, 6 * u)
        fatn = smooth_noise(rng, shape, 8 * u)
        self.fine = smooth_noise(rng, shape, 0.7 * u)
        self.fibres = np.abs(smooth_noise(rng, shape, 1.5 * u)) < 0.25
        base = TISSUE * (0.85 + 0.12 * low + 0.05 * mid)[..., None]
        vessels = np.abs(ridge) < 0.08
        base[vessels] *= np.array([0.75, 0.45, 0.45], dtype=np.float32)
        self.fat_field = fatn
        yy, xx = self.grid.yy, self.grid.xx
        edge = ch * (0.30 + 0.05 * np.sin(xx / cw * 5 + jit[0] * 3)) + 4 * u * mid
        liver = yy < edge
        base[liver] = (LIVER * (0.9 + 0.1 * low[liver])[:, None])
        self.liver = liver
        self.base = base
        self.keyframes: dict[str, list[np.ndarray]] = {}
        for phase in PHASES:
            look = LOOK[phase]
            keys = look["keys"]
            frames = []
            for k in range(keys):
                progress = (k + 0.5) / keys
                canvas = self._paint(phase, progress)
                canvas += look["grain"] * self.fine[..., None]
                canvas *= np.asarray(look["tint"], dtype=np.float32)
                frames.append(np.clip(canvas, 0.0, 1.0).astype(np.float32))
            self.keyframes[phase] = frames
        self.bag_rest = {
            "GallbladderPackaging": (ch * 0.55, cw * 0.66),
            "CleaningCoagulation": (ch * 0.22, cw * 0.70),
            "GallbladderRetraction": (ch * 0.40, cw * 0.62),
        }

    # -- anatomy painters -----------------------------------------------------------------------

    def _fat(self, canvas: np.ndarray, amount: float) -> None:
        fat = (self.fat_field > 1.0 - 1.6 * amount) & ~self.liver
        canvas[fat] = canvas[fat] * 0.3 + FAT * 0.7

    def _gallbladder(self, canvas: np.ndarray, color: np.ndarray, shift: float = 0.0, scale: float = 1.0) -> None:
        cy, cx = self.gb_center
        radii = (self.gb_radii[0] * scale, self.gb_radii[1] * scale)
        self.grid.ellipse(canvas, (cy - shift, cx), radii, self.gb_angle, color, wobble=self.wobble)
        hi = (cy - shift - radii[0] * 0.35, cx + radii[1] * 0.2)
        self.grid.ellipse(canvas, hi, (radii[0] * 0.18, radii[1] * 0.3), self.gb_angle, color * 1.25, alpha=0.6)

    def _tubes(self, canvas: np.ndarray, visible: float, cut: bool = False) -> None:
        u = self.unit
        for end, color, width in ((self.duct_end, DUCT, 4.0 * u), (self.artery_end, ARTERY, 2.6 * u)):
            p0 = self.neck
            p1 = (p0[0] + (end[0] - p0[0]) * visible, p0[1] + (end[1] - p0[1]) * visible)
            if cut:
                mid_a = (p0[0] + (end[0] - p0[0]) * 0.45, p0[1] + (end[1] - p0[1]) * 0.45)
                mid_b = (p0[0] + (end[0] - p0[0]) * 0.60, p0[1] + (end[1] - p0[1]) * 0.60)
                self.grid.segment(canvas, p0, mid_a, width, color)
                self.grid.segment(canvas, mid_b, end, width, color)
            else:
                self.grid.segment(canvas, p0, p1, width, color)

    def _clips(self, canvas: np.ndarray, count: int) -> None:
        u = self.unit
        slots = [(self.duct_end, 0.35), (self.artery_end, 0.38), (self.duct_end, 0.70), (self.artery_end, 0.72),
                 (self.duct_end, 0.80), (self.artery_end, 0.30)]
        for end, at in slots[:count]:
            p0 = self.neck
            cy, cx = p0[0] + (end[0] - p0[0]) * at, p0[1] + (end[1] - p0[1]) * at
            dy, dx = end[0] - p0[0], end[1] - p0[1]
            norm = math.hypot(dy, dx) or 1.0
            ny, nx = -dx / norm * 6 * u, dy / norm * 6 * u
            self.grid.segment(canvas, (cy - ny, cx - nx), (cy + ny, cx + nx), 1.4 * u, CLIP, shade=0.3)

    def _paint(self, phase: str, progress: float) -> np.ndarray:
        canvas = self.base.copy()
        _PAINTERS[phase](self, canvas, progress)
        return canvas

    def _liver_bed(self, canvas: np.ndarray, shade: float, grow: float = 1.0, dy: float = 0.0) -> None:
        radii = (self.gb_radii[0] * grow, self.gb_radii[1] * grow)
        self.grid.ellipse(canvas, (self.gb_center[0] + dy, self.gb_center[1]), radii, self.gb_angle,
                          RAW_BED * shade, wobble=self.wobble[::-1].copy())

# Phase painters: what the scene canvas shows at ``progress`` (0..1) through the phase.


def _paint_preparation(scene: Scene, canvas: np.ndarray, progress: float) -> None:
    scene._fat(canvas, 0.55)
    scene._gallbladder(canvas, GALLBLADDER * 0.4 + FAT * 0.6)  # still covered by fat


def _paint_calot(scene: Scene, canvas: np.ndarray, progress: float) -> None:
    scene._fat(canvas, 0.7)
    scene._gallbladder(canvas, GALLBLADDER)
    fibres = scene.fibres & ~scene.liver
    canvas[fibres] = canvas[fibres] * 0.5 + np.array([0.95, 0.9, 0.75], dtype=np.float32) * 0.5
    scene._tubes(canvas, 0.3 + 0.7 * progress)  # the duct and artery emerge as dissection goes on


def _paint_clipping(scene: Scene, canvas: np.ndarray, progress: float) -> None:
    scene._fat(canvas, 0.35)
    scene._gallbladder(canvas, GALLBLADDER)
    cut = progress > 0.8
    scene._tubes(canvas, 1.0, cut=cut)
    scene._clips(canvas, 6 if cut else int(round(progress / 0.8 * 5)))


def _paint_gallbladder_dissection(scene: Scene, canvas: np.ndarray, progress: float) -> None:
    scene._fat(canvas, 0.25)
    scene._liver_bed(canvas, 1.0, grow=0.4 + 0.6 * progress, dy=0.02 * scene.ch)
    scene._gallbladder(canvas, GALLBLADDER * 1.1, shift=0.12 * scene.ch * progress)
    scene._clips(canvas, 2)


def _paint_packaging(scene: Scene, canvas: np.ndarray, progress: float) -> None:
    scene._fat(canvas, 0.2)
    scene._liver_bed(canvas, 0.8)
    scene._gallbladder(canvas, GALLBLADDER * 1.1, shift=0.2 * scene.ch, scale=0.8)


def _paint_cleaning(scene: Scene, canvas: np.ndarray, progress: float) -> None:
    ch, cw, u = scene.ch, scene.cw, scene.unit
    scene._fat(canvas, 0.15)
    scene._liver_bed(canvas, 0.85)
    size = 1.0 - 0.8 * progress  # blood pools shrink as they are aspirated
    for dy, dx, r, angle in scene.pools:
        c = (scene.gb_center[0] + dy * ch, scene.gb_center[1] + dx * cw)
        radius = r * ch * size + u
        scene.grid.ellipse(canvas, c, (radius, radius * 1.4), angle, BLOOD, wobble=scene.wobble)
    canvas[scene.fine > 2.3] = np.array([0.98, 0.98, 1.0], dtype=np.float32)  # wet highlights
    canvas[:] = canvas * 0.85 + np.array([0.55, 0.62, 0.75], dtype=np.float32) * 0.15


def _paint_retraction(scene: Scene, canvas: np.ndarray, progress: float) -> None:
    ch, cw = scene.ch, scene.cw
    scene._fat(canvas, 0.2)
    scene._liver_bed(canvas, 0.6)
    scene._clips(canvas, 2)
    port = (ch * 0.16, cw * 0.80)  # the umbilical port the bag is pulled into, seen from inside
    scene.grid.ellipse(canvas, port, (0.16 * ch, 0.13 * cw), 0.3, STEEL * 0.45)
    scene.grid.ellipse(canvas, port, (0.12 * ch, 0.10 * cw), 0.3, np.zeros(3, dtype=np.float32))


_PAINTERS: dict[str, Callable[[Scene, np.ndarray, float], None]] = {
    "Preparation": _paint_preparation,
    "CalotTriangleDissection": _paint_calot,
    "ClippingCutting": _paint_clipping,
    "GallbladderDissection": _paint_gallbladder_dissection,
    "GallbladderPackaging": _paint_packaging,
    "CleaningCoagulation": _paint_cleaning,
    "GallbladderRetraction": _paint_retraction,
}

