"""Writing generated procedures: one video with its annotations, and a dataset (the ``synthetic`` command)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from domainclip.core.errors import InputError
from domainclip.core.io import atomic_output
from domainclip.core.options import NonNegativeInt, Parser, PositiveInt, Range, entry_point
from domainclip.core.parallel import map_unordered
from domainclip.core.plugins import UnknownNameError
from domainclip.domains.surgery.synthetic.annotations import LAYOUTS, write_levels_csv
from domainclip.domains.surgery.synthetic.render import render_frames
from domainclip.domains.surgery.synthetic.truth import (
    FRAME_SIZE,
    ProcedureTruth,
    check_size,
    plan_procedure,
    video_id_for,
)
from domainclip.domains.surgery.synthetic.vocabulary import LEVELS, PHASES, TOOLS

__all__ = ["GENERATOR", "LICENCE", "generate_procedure", "generate_procedures"]

#: Generator name recorded in summaries.
GENERATOR = "domainclip.domains.surgery.synthetic"
#: Licence of the generated data.
LICENCE = "CC0-1.0"


def _encode_video(truth: ProcedureTruth, path: Path, crf: int = 20) -> int:
    """Render and encode the frames straight into an H.264 MP4 (one frame in memory at a time)."""
    from domainclip.domains.surgery.video import ClipEncoder

    width, height = truth.size
    with atomic_output(path) as tmp:
        # no rate-control lookahead either: the same seed must give the same video
        encoder = ClipEncoder(width, height, truth.fps, crf=crf, target=tmp, options={"x264-params": "rc-lookahead=0"})
        try:
            for frame, _ in render_frames(truth):
                encoder.add(frame[None])
            encoder.finish()
        except BaseException:
            encoder.abort()
            raise
    return encoder.frames


def generate_procedure(
    out: str | Path,
    video_id: str,
    *,
    seed: int,
    size: tuple[int, int] = FRAME_SIZE,
    duration_s: float = 60.0,
    layout: str = "cholec80",
) -> ProcedureTruth:
    """Generate one procedure: its video, phase and tool annotations and narration transcript.

    ``levels.csv`` is written by :func:`generate_procedures` (or :func:`write_levels_csv`) for all
    videos at once; the rows of this video are ``truth.level_rows()``.

    Args:
        out: dataset root (created).
        video_id: e.g. ``"video01"``; names every file of this video.
        seed: everything in the video depends only on this seed.
        size: ``(width, height)``, even and at least 32.
        duration_s: length in seconds (at least 10).
        layout: on-disk layout, a key of :data:`LAYOUTS`; it sets the frame rate (Cholec80: 25 fps).

    Returns:
        The ground truth, with ``paths`` naming the written files.
    """
    from domainclip.domains.surgery.transcripts import Segment, write_srt

    if layout not in LAYOUTS:
        raise UnknownNameError("surgery synthetic layout", layout, list(LAYOUTS))
    fps, write_annotations = LAYOUTS[layout]
    out = Path(out)
    truth = plan_procedure(video_id, seed=seed, fps=fps, size=size, duration_s=duration_s)
    paths = write_annotations(out, truth)
    written = _encode_video(truth, paths["video"])
    if written != truth.num_frames:
        raise RuntimeError(f"{paths['video']}: encoded {written} frames, planned {truth.num_frames}")
    paths["transcript"] = write_srt(
        [Segment(n.start, n.end, n.text) for n in truth.narration], out / "transcripts" / f"{video_id}.srt"
    )
    return replace(truth, paths={k: str(v) for k, v in paths.items()})


def _video_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _generate_one(kwargs: dict[str, Any]) -> ProcedureTruth:
    return generate_procedure(**kwargs)


def _parse_size(text: str) -> tuple[int, int]:
    """``"160x120"`` -> ``(160, 120)``: the ``--size`` form."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"takes WIDTHxHEIGHT (e.g. 160x120); got {text!r}") from None
    return check_size((width, height))


def _show_size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


@entry_point
def generate_procedures(
    out: Path,
    n: PositiveInt = 8,
    *,
    seed: NonNegativeInt = 0,
    workers: PositiveInt = 1,
    progress: bool = True,
    size: Annotated[tuple[int, int], Parser(_parse_size, "WxH", _show_size)] = FRAME_SIZE,
    min_duration: Annotated[float, Range(10)] = 40.0,
    max_duration: Annotated[float, Range(10)] = 90.0,
) -> dict[str, Any]:
    """Generate synthetic cholecystectomy-like procedures: Cholec80 layout, narration, task/step/phase levels.

    Writes ``n`` videos (``video01``, ``video02``, ...) with their annotations and transcripts, and
    ``levels.csv``. Video ``i`` depends only on ``(seed, i)`` (its seed and its duration, uniform in
    ``[min_duration, max_duration]``), so any number of workers writes the same files.

    Args:
        out: dataset root (Cholec80 layout, transcripts, levels.csv).
        n: number of procedures.
        seed: run seed (held-out sets use another).
        workers: processes generating videos in parallel.
        progress: show a progress bar.
        size: frame size, WIDTHxHEIGHT with even sides of at least 32.
        min_duration: shortest video in seconds (at least 10).
        max_duration: longest video in seconds.

    Returns:
        Summary (also written to ``synthetic-summary.json``): videos with their seeds, durations
        and phases, frames per phase, tool presence rates, level row counts, paths, seconds.
    """
    from tqdm.auto import tqdm

    from domainclip.core.data.writer import write_json_atomic

    if min_duration > max_duration:
        raise InputError(f"min_duration {min_duration} is above max_duration {max_duration}")
    size = check_size(size)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for i in range(n):
        vseed = _video_seed(seed, i)
        duration = float(np.random.default_rng(vseed).uniform(min_duration, max_duration))
        jobs.append({"out": str(out), "video_id": video_id_for(i), "seed": vseed, "size": size,
                     "duration_s": round(duration, 2)})
    began = time.perf_counter()
    truths: list[ProcedureTruth | None] = [None] * n
    with tqdm(total=n, disable=not progress, unit="video", desc="surgery procedures") as bar:
        for i, truth in map_unordered(_generate_one, jobs, workers):
            truths[i] = truth
            bar.update(1)
    done = [t for t in truths if t is not None]
    seconds = time.perf_counter() - began
    levels = write_levels_csv(out / "levels.csv", done)
    frames_per_phase: Counter[str] = Counter()
    tool_blocks = np.zeros(len(TOOLS))
    n_blocks = 0
    level_counts: Counter[str] = Counter()
    for t in done:
        for span in t.phases:
            frames_per_phase[span.phase] += span.end_frame - span.start_frame
        tool_blocks += np.asarray(t.tool_schedule).sum(0)
        n_blocks += len(t.tool_schedule)
        level_counts.update(r["level"] for r in t.level_rows())
    total_frames = sum(t.num_frames for t in done)
    summary = {
        "out": str(out),
        "n": n,
        "seed": seed,
        "fps": LAYOUTS["cholec80"][0],
        "size": list(size),
        "layout": "cholec80",
        "workers": workers,
        "videos": [
            {"video_id": t.video_id, "seed": t.seed, "duration_s": round(t.duration, 3), "num_frames": t.num_frames,
             "phases": [s.phase for s in t.phases], "narration_segments": len(t.narration),
             "procedure_caption": t.procedure_caption}
            for t in done
        ],
        "num_frames": total_frames,
        "frames_per_phase": {p: frames_per_phase.get(p, 0) for p in PHASES},
        "tool_presence": {tool: round(float(v) / max(n_blocks, 1), 4) for tool, v in zip(TOOLS, tool_blocks)},
        "level_rows": {lv: level_counts.get(lv, 0) for lv in LEVELS},
        "levels_csv": str(levels),
        "seconds": round(seconds, 3),
        "frames_per_second": round(total_frames / seconds, 1) if seconds > 0 else None,
        "generator": GENERATOR,
        "licence": LICENCE,
    }
    write_json_atomic(out / "synthetic-summary.json", summary)
    summary["summary"] = str(out / "synthetic-summary.json")
    return summary
