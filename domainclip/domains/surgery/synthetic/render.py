"""Rendering a procedure's frames: camera motion, instruments, smoke, vignette and sensor noise."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from domainclip.domains.surgery.synthetic.drawing import BAG, Grid, smooth_noise
from domainclip.domains.surgery.synthetic.instruments import ToolRig
from domainclip.domains.surgery.synthetic.scene import LOOK, Scene
from domainclip.domains.surgery.synthetic.truth import ProcedureTruth
from domainclip.domains.surgery.synthetic.vocabulary import PHASES, TOOLS

__all__ = ["render_frames"]


def render_frames(truth: ProcedureTruth) -> Iterator[tuple[np.ndarray, tuple[int, ...]]]:
    """Draw the procedure's frames one at a time.

    Args:
        truth: a plan from :func:`plan_procedure` (or a generated procedure's truth).

    Yields:
        ``(frame, tools)``: the ``(height, width, 3)`` uint8 RGB frame and the 0/1 presence of each
        tool of :data:`TOOLS` drawn in it (always the tool schedule row of the frame's block).
    """
    width, height = truth.size
    rng = np.random.default_rng(np.random.SeedSequence([truth.seed, 1]))
    scene = Scene(rng, width, height)
    rig = ToolRig(rng, width, height)
    grid = Grid(height, width)
    ch, cw = scene.ch, scene.cw
    yy, xx = grid.yy, grid.xx
    radius = np.sqrt(((yy - height / 2) / (height / 2)) ** 2 + ((xx - width / 2) / (width / 2)) ** 2)
    vignette = (255.0 * np.clip(1.25 - 0.55 * radius**2, 0.0, 1.0))[..., None].astype(np.float32)
    noise_bank = rng.normal(0.5, 0.012 * 255, (8, height, width, 3)).astype(np.float32)
    haze = np.clip(0.5 + 0.35 * smooth_noise(rng, (height, width), 6 * scene.unit), 0.0, 1.0)[..., None]
    cam = rng.uniform(0, 2 * math.pi, 3)
    cam_freq = rng.uniform(1 / 20, 1 / 8, 3)
    phase_of = truth.frame_phases()
    spans = {PHASES.index(s.phase): s for s in truth.phases}
    look_y, look_x, zoom = None, None, None
    alpha = 1.0 - math.exp(-1.0 / (0.5 * truth.fps))
    smoke_level = 0.0
    rows_base = (np.arange(height, dtype=np.float32) - height / 2)[:, None]
    cols_base = np.arange(width, dtype=np.float32) - width / 2
    for f in range(truth.num_frames):
        t = f / truth.fps
        p = int(phase_of[f])
        span = spans[p]
        name = PHASES[p]
        look = LOOK[name]
        progress = (f - span.start_frame) / max(span.end_frame - span.start_frame, 1)
        keys = scene.keyframes[name]
        canvas = keys[min(int(progress * len(keys)), len(keys) - 1)]
        ty, tx = look["at"][0] * ch, look["at"][1] * cw
        if look_y is None:
            look_y, look_x, zoom = ty, tx, look["zoom"]
        look_y += (ty - look_y) * alpha
        look_x += (tx - look_x) * alpha
        zoom += (look["zoom"] - zoom) * alpha
        s = zoom * (1.0 + 0.06 * math.sin(2 * math.pi * cam_freq[2] * t + cam[2]))
        cy = look_y + 0.05 * ch * math.sin(2 * math.pi * cam_freq[0] * t + cam[0])
        cx = look_x + 0.05 * cw * math.sin(2 * math.pi * cam_freq[1] * t + cam[1])
        rows = np.clip(cy + rows_base[:, 0] * s, 0, ch - 1).astype(np.intp)
        cols = np.clip(cx + cols_base * s, 0, cw - 1).astype(np.intp)
        frame = canvas.take(rows, axis=0).take(cols, axis=1)

        tools = truth.tools_at(f)
        if tools[6]:  # the specimen bag lies in the scene, so it moves with the camera
            by, bx = scene.bag_rest.get(name, (ch * 0.3, cw * 0.7))
            if name == "GallbladderRetraction":
                by, bx = by - 0.25 * ch * progress, bx + 0.3 * cw * progress
            center = ((by - cy) / s + height / 2, (bx - cx) / s + width / 2)
            radii = (0.16 * ch / s, 0.13 * cw / s)
            grid.ellipse(frame, center, (radii[0] * 1.08, radii[1] * 1.08), 0.4, BAG * 0.6, wobble=scene.wobble)
            grid.ellipse(frame, center, radii, 0.4, BAG, alpha=0.9, wobble=scene.wobble)
        for i, tool in enumerate(TOOLS[:6]):
            if tools[i]:
                rig.draw(grid, frame, tool, t)
        cautery = (tools[1] or tools[2]) and name in ("CalotTriangleDissection", "GallbladderDissection",
                                                       "CleaningCoagulation")
        smoke_level += ((0.45 if cautery else 0.0) - smoke_level) * 0.08
        if smoke_level > 0.02:
            a = smoke_level * haze
            frame = frame * (1.0 - a) + 0.85 * a
        frame *= vignette
        frame += noise_bank[int(rng.integers(len(noise_bank)))]
        yield (np.clip(frame, 0, 255, out=frame).astype(np.uint8), tools)

