"""A procedure's ground truth and how it is drawn: phases, steps, narration and tool schedule.

:func:`plan_procedure` draws everything a video shows from its seed alone, before any pixel is
rendered; :class:`ProcedureTruth` holds it and gives the per-frame phase and tool labels and the
rows of ``levels.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

import numpy as np

from domainclip.core.errors import InputError
from domainclip.core.options import NonNegativeInt, PositiveFloat, Range, entry_point
from domainclip.domains.surgery.synthetic.vocabulary import (
    FILLER,
    FILLER_RATE,
    NARRATION,
    PHASE_CAPTIONS,
    PHASE_SKIP,
    PHASE_TOOL_PROBS,
    PHASE_WEIGHTS,
    PHASES,
    READABLE_PHASES,
    SHORTEN_RATE,
    STEPS,
    TOOL_PERIOD,
    TOOLS,
)

__all__ = [
    "FRAME_SIZE",
    "NarrationLine",
    "PhaseSpan",
    "ProcedureTruth",
    "StepSpan",
    "check_size",
    "plan_procedure",
    "video_id_for",
]

#: Default ``(width, height)`` of generated frames.
FRAME_SIZE: tuple[int, int] = (160, 120)


@dataclass(frozen=True)
class PhaseSpan:
    """One phase occurrence: frames ``[start_frame, end_frame)``, seconds ``[start, end)``, its caption."""

    phase: str
    start_frame: int
    end_frame: int
    start: float
    end: float
    caption: str


@dataclass(frozen=True)
class StepSpan(PhaseSpan):
    """One step, named ``name``, inside its ``phase``: frames, seconds and caption as for a phase."""

    name: str = ""


@dataclass(frozen=True)
class NarrationLine:
    """One spoken sentence inside a step, ``start``/``end`` in seconds (whole milliseconds).

    ``caption`` describes the action (the ``task``-level text); filler remarks keep their own text
    as caption and carry SurgLaVi's flags unset.
    """

    start: float
    end: float
    text: str
    caption: str
    phase: str
    step: str
    is_descriptive: bool = True
    is_surgical_content: bool = True


@dataclass(frozen=True)
class ProcedureTruth:
    """Everything a generated procedure contains, as drawn before rendering.

    Args:
        video_id: e.g. ``"video01"``.
        seed: the seed that determines the whole procedure.
        fps: frames per second.
        size: ``(width, height)`` of the frames.
        num_frames: frames in the video.
        procedure_caption: caption of the whole video.
        phases: the phase occurrences, in order, covering every frame.
        steps: the steps, in order, covering every frame.
        narration: timed sentences, each inside its step (hence its phase), in order.
        tool_schedule: one row per :data:`TOOL_PERIOD` frames, one 0/1 column per tool of
            :data:`TOOLS`; row ``k`` holds for frames ``k*TOOL_PERIOD .. (k+1)*TOOL_PERIOD-1`` and is
            the tool annotation row of frame ``k*TOOL_PERIOD``.
        paths: files written (empty for a plan that was not generated).
    """

    video_id: str
    seed: int
    fps: float
    size: tuple[int, int]
    num_frames: int
    procedure_caption: str
    phases: tuple[PhaseSpan, ...]
    steps: tuple[StepSpan, ...]
    narration: tuple[NarrationLine, ...]
    tool_schedule: tuple[tuple[int, ...], ...]
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Length of the video in seconds."""
        return self.num_frames / self.fps

    def frame_phases(self) -> np.ndarray:
        """Phase index (into :data:`PHASES`) of every frame, ``(num_frames,)`` int8."""
        out = np.empty(self.num_frames, dtype=np.int8)
        for span in self.phases:
            out[span.start_frame : span.end_frame] = PHASES.index(span.phase)
        return out

    def tools_at(self, frame: int) -> tuple[int, ...]:
        """0/1 presence of each tool of :data:`TOOLS` in ``frame``."""
        return self.tool_schedule[frame // TOOL_PERIOD]

    def level_rows(self) -> list[dict[str, Any]]:
        """Rows of ``levels.csv`` for this video: each phase, then each of its steps and that step's tasks."""
        rows = []
        for span in self.phases:
            rows.append(_level_row(self.video_id, span.start, span.end, "phase", span.caption))
            for step in self.steps:
                if step.start_frame < span.start_frame or step.end_frame > span.end_frame:
                    continue
                rows.append(_level_row(self.video_id, step.start, step.end, "step", step.caption))
                rows.extend(
                    _level_row(self.video_id, n.start, n.end, "task", n.caption, n.is_descriptive,
                               n.is_surgical_content)
                    for n in self.narration
                    if step.start <= n.start < step.end
                )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists instead of tuples)."""
        return asdict(self)


def _level_row(
    video_id: str, start: float, end: float, level: str, text: str, descriptive: bool = True, surgical: bool = True
) -> dict[str, Any]:
    return {"video_id": video_id, "start": round(start, 3), "end": round(end, 3), "level": level, "text": text,
            "is_descriptive": int(descriptive), "is_surgical_content": int(surgical)}


def video_id_for(index: int) -> str:
    """Cholec80-style video id of the ``index``-th video (0-based): ``video01``, ``video02``, ..."""
    if index < 0:
        raise ValueError(f"video index must be >= 0, got {index}")
    return f"video{index + 1:02d}"


def check_size(size: Sequence[int]) -> tuple[int, int]:
    """``(width, height)`` of a frame, both even and at least 32 (H.264 4:2:0).

    Raises:
        InputError: another size (a ``ValueError``).
    """
    if len(size) != 2:
        raise InputError(f"size must be (width, height), got {size!r}")
    width, height = int(size[0]), int(size[1])
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise InputError(f"size must be even and at least 32x32 (H.264 4:2:0), got {width}x{height}")
    return width, height


def _allocate(total: int, weights: np.ndarray, minimum: int) -> list[int]:
    """Split ``total`` frames into parts proportional to ``weights``, each at least ``minimum``."""
    n = len(weights)
    extra = total - minimum * n
    if extra < 0:
        raise ValueError(f"cannot split {total} frames into {n} parts of at least {minimum}")
    share = weights / weights.sum() * extra
    parts = np.floor(share).astype(int)
    order = np.argsort(-(share - parts), kind="stable")
    parts[order[: extra - parts.sum()]] += 1
    return [int(p) + minimum for p in parts]


@entry_point
def plan_procedure(
    video_id: str,
    *,
    seed: NonNegativeInt,
    fps: PositiveFloat = 25,
    size: tuple[int, int] = FRAME_SIZE,
    duration_s: Annotated[float, Range(10)] = 60.0,
) -> ProcedureTruth:
    """Draw a procedure's timeline: phases, steps, captions, narration and tool schedule.

    Args:
        video_id: id written into annotations and ``levels.csv``.
        seed: everything drawn depends only on this seed.
        fps: frames per second.
        size: ``(width, height)`` of the frames (even, at least 32).
        duration_s: video length in seconds (at least 10).

    Returns:
        The procedure's ground truth (without ``paths``); :func:`render_frames` draws its pictures.
    """
    size = check_size(size)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
    num_frames = int(round(duration_s * fps))

    present = [i for i, p in enumerate(PHASE_SKIP) if rng.random() >= p]
    weights = np.array([PHASE_WEIGHTS[i] for i in present]) * rng.lognormal(0.0, 0.35, len(present))
    weights *= np.where(rng.random(len(present)) < SHORTEN_RATE, 0.35, 1.0)
    min_phase = max(1, int(round(min(2.0, duration_s / (2 * len(present))) * fps)))
    lengths = _allocate(num_frames, weights, min_phase)

    phases: list[PhaseSpan] = []
    steps: list[StepSpan] = []
    narration: list[NarrationLine] = []
    start = 0
    for index, length in zip(present, lengths):
        name = PHASES[index]
        end = start + length
        caption = PHASE_CAPTIONS[name][int(rng.integers(len(PHASE_CAPTIONS[name])))]
        phases.append(PhaseSpan(name, start, end, start / fps, end / fps, caption))
        phase_steps = _plan_steps(rng, name, start, end, fps)
        steps.extend(phase_steps)
        narration.extend(_plan_narration(rng, name, phase_steps, fps))
        start = end

    names = [READABLE_PHASES[p.phase] for p in phases]
    if rng.random() < 0.5:
        caption = f"Laparoscopic cholecystectomy in {len(names)} phases: {', '.join(names)}."
    else:
        skipped = [READABLE_PHASES[p] for p in PHASES if p not in {s.phase for s in phases}]
        tail = f", without {' or '.join(skipped)}" if skipped else ""
        caption = (
            "A laparoscopic cholecystectomy: the gallbladder is dissected from Calot's triangle and the liver "
            f"bed, clipped, cut and removed in a specimen bag{tail}."
        )
    return ProcedureTruth(
        video_id=video_id,
        seed=int(seed),
        fps=float(fps),
        size=size,
        num_frames=num_frames,
        procedure_caption=caption,
        phases=tuple(phases),
        steps=tuple(steps),
        narration=tuple(narration),
        tool_schedule=_plan_tools(rng, phases, num_frames),
    )


def _plan_steps(rng: np.random.Generator, phase: str, start: int, end: int, fps: float) -> list[StepSpan]:
    pool = STEPS[phase]
    min_step = max(1, int(round(0.5 * fps)))
    k = min(int(rng.integers(2, 4)), len(pool), max(1, (end - start) // min_step))
    chosen = sorted(rng.choice(len(pool), size=k, replace=False).tolist())
    lengths = _allocate(end - start, rng.dirichlet(np.full(k, 3.0)), min(min_step, (end - start) // k))
    out, t = [], start
    for i, length in zip(chosen, lengths):
        name, caption = pool[i]
        out.append(StepSpan(phase, t, t + length, t / fps, (t + length) / fps, caption, name))
        t += length
    return out


def _plan_narration(
    rng: np.random.Generator, phase: str, steps: list[StepSpan], fps: float
) -> list[NarrationLine]:
    """Sentences one after another inside each step, in whole milliseconds (SRT precision).

    Every phase gets at least one sentence (cut to fit its longest step when it is short).
    """
    pool = NARRATION[phase]
    order = rng.permutation(len(pool))
    out: list[NarrationLine] = []
    k = 0

    def line(lo: int, length: int, step: StepSpan) -> NarrationLine:
        nonlocal k
        if rng.random() < FILLER_RATE:
            text, descriptive, surgical = FILLER[int(rng.integers(len(FILLER)))]
            return NarrationLine(lo / 1000, (lo + length) / 1000, text, text, phase, step.name, descriptive, surgical)
        text, caption = pool[order[k % len(order)]]
        k += 1
        return NarrationLine(lo / 1000, (lo + length) / 1000, text, caption, phase, step.name)

    bounds = [(math.ceil(s.start_frame * 1000 / fps), math.floor(s.end_frame * 1000 / fps)) for s in steps]
    for step, (lo, hi) in zip(steps, bounds):
        t = lo + int(rng.integers(100, 700))
        while True:
            length = int(rng.integers(1800, 4200))
            if t + length > hi:
                break
            out.append(line(t, length, step))
            t += length + int(rng.integers(300, 1500))
    if not out:
        i = int(np.argmax([hi - lo for lo, hi in bounds]))
        lo, hi = bounds[i]
        out.append(line(lo, max(hi - lo, 1), steps[i]))
    return out


def _plan_tools(rng: np.random.Generator, phases: list[PhaseSpan], num_frames: int) -> tuple[tuple[int, ...], ...]:
    """Tool presence per block of :data:`TOOL_PERIOD` frames: a sticky Markov chain per tool and phase."""
    n_blocks = -(-num_frames // TOOL_PERIOD)
    phase_of = np.empty(num_frames, dtype=np.int16)
    for span in phases:
        phase_of[span.start_frame : span.end_frame] = PHASES.index(span.phase)
    rows: list[tuple[int, ...]] = []
    prev = np.zeros(len(TOOLS), dtype=bool)
    prev_phase = -1
    for k in range(n_blocks):
        p = int(phase_of[k * TOOL_PERIOD])
        probs = np.array(PHASE_TOOL_PROBS[PHASES[p]])
        fresh = rng.random(len(TOOLS)) < probs
        keep = (rng.random(len(TOOLS)) < 0.8) & (p == prev_phase)
        state = np.where(keep, prev, fresh) & (probs > 0)
        instruments = np.flatnonzero(state[:6])
        if len(instruments) > 3:  # at most three instruments through the trocars at a time
            drop = instruments[np.argsort(probs[instruments], kind="stable")[: len(instruments) - 3]]
            state[drop] = False
        rows.append(tuple(int(v) for v in state))
        prev, prev_phase = state, p
    return tuple(rows)

