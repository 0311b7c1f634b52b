"""``domainclip prepare surgery clips``: build SurgLaVi-style clip-caption pairs into shards.

For every video (files found under the given paths, matched to captions by file stem):

1. **Captions.** Its transcript (``<stem>`` plus any of ``TRANSCRIPT_SUFFIXES``, in
   ``transcripts`` or next to the video) is merged into narration units of ``min_duration`` to
   ``max_duration`` seconds (:func:`~domainclip.domains.surgery.transcripts.merge_segments`); each
   unit becomes a pair of level ``"narration"``. Its hierarchical spans from a levels file (CSV,
   JSON or SurgLaVi SQLite, see :mod:`~domainclip.domains.surgery.levels`) become pairs of level
   ``task`` / ``step`` / ``phase`` with SurgLaVi's ``level_id`` 1 / 2 / 3; spans not flagged
   descriptive and surgical are dropped first, as SurgLaVi does.
2. **Filtering.** Each caption goes through the text rules
   (:func:`~domainclip.domains.surgery.filtering.check_text`; a repeat is judged against the
   previous caption of the same video, origin and level), then its span is checked against the
   duration limits and the video's length, then, with a
   :class:`~domainclip.domains.surgery.filtering.SimilarityFilter`, its clip is scored against its
   caption and dropped under the threshold. Every drop is counted by reason in a
   :class:`~domainclip.domains.surgery.filtering.FilterReport`.
3. **Writing.** A kept pair is one shard sample: the clip as ``.mp4`` (``encode="mp4"``: the span cut
   and re-encoded by :func:`~domainclip.domains.surgery.video.cut_clip`) or as ``.frames.npy``
   (``encode="frames"``: ``num_frames`` frames sampled uniformly over the span, ``uint8``
   ``(T, H, W, 3)``), the caption as ``.txt``, the level as ``.level.txt`` and provenance as
   ``.json`` (``video_id, video, start, end, duration, origin, source, level, level_id, ...``).

A video that cannot be decoded (``decode_error``), whose transcript is malformed
(``bad_transcript``) or that has no captions (``no_captions``) is skipped and counted by reason;
the others are processed. A run that writes no pair raises
:class:`~domainclip.core.errors.NothingWrittenError` with the skipped videos and dropped pairs
counted by reason, an example each. Each worker
process handles one video at a time and writes its own shards (``<prefix>-w00-000000.tar``, ...);
with one worker they are ``<prefix>-000000.tar``. A summary is written to ``<prefix>-summary.json``
and the filter table to ``<prefix>-filter-report.md``.
"""

from __future__ import annotations

import functools
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from PIL import Image

from domainclip.core.errors import InputError, InputNotFoundError, NothingWrittenError
from domainclip.core.io import find_inputs
from domainclip.core.options import (
    NonNegativeFloat,
    Parser,
    PositiveFloat,
    PositiveInt,
    Range,
    entry_point,
)
from domainclip.core.parallel import run_workers, shared_add
from domainclip.domains.surgery.filtering import (
    LOW_SIMILARITY,
    FilterReport,
    SimilarityFilter,
    TextRule,
    build_text_rules,
    check_text,
)
from domainclip.domains.surgery.levels import LevelSpan, group_by_video, read_level_table, span_flag_reason

__all__ = [
    "CLIP_ENCODERS",
    "NARRATION",
    "ClipCandidate",
    "find_transcript",
    "find_videos",
    "make_clip_pairs",
]

#: Level of pairs made from transcript units.
NARRATION = "narration"
#: Drop reasons of the span checks.
TOO_SHORT, TOO_LONG, OUTSIDE_VIDEO, DECODE_ERROR = "too_short", "too_long", "outside_video", "decode_error"
#: Skip reasons of a whole video (besides :data:`DECODE_ERROR`): a malformed transcript, no captions at all.
BAD_TRANSCRIPT, NO_CAPTIONS = "bad_transcript", "no_captions"


class _SkipVideo(Exception):
    """A whole video is skipped (unreadable video or transcript); ``reason`` goes to the summary."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ClipCandidate:
    """A caption and the time span it describes, before filtering.

    Args:
        video_id: the video's id (its file stem).
        start: span start in seconds.
        end: span end in seconds.
        text: the caption.
        level: ``"narration"``, ``"task"``, ``"step"`` or ``"phase"``.
        level_id: SurgLaVi level id (1 task, 2 step, 3 phase); None for narration.
        origin: ``"transcript"`` or ``"levels"``.
        source: the transcript or levels file it came from.
        caption_id: the caption's id in a SurgLaVi database, if any.

    """

    video_id: str
    start: float
    end: float
    text: str
    level: str
    level_id: int | None
    origin: str
    source: str
    caption_id: int | None = None


@dataclass(frozen=True)
class _Options:
    """Per-run settings shipped to the workers."""

    encode: str
    num_frames: int
    max_side: int | None
    clip_fps: float | None
    min_duration: float
    max_duration: float
    level_max_duration: float
    max_gap: float
    rules: tuple[TextRule, ...]
    similarity: SimilarityFilter | None
    out: str
    max_count: int


@dataclass(frozen=True)
class _Task:
    """One video to turn into pairs."""

    index: int
    path: str
    video_id: str
    transcript: str | None
    spans: tuple[LevelSpan, ...]
    levels_file: str | None


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------- finding inputs
def find_videos(sources: str | Path | Iterable[str | Path]) -> list[Path]:
    """Video files named by ``sources`` (files, folders searched recursively, globs); their stems are the video ids.

    See :func:`domainclip.core.io.find_inputs`.
    """
    from domainclip.domains.surgery.video import VIDEO_SUFFIXES

    return find_inputs(sources, VIDEO_SUFFIXES, what="video")


def find_transcript(video: str | Path, transcripts_dir: str | Path | None = None) -> Path | None:
    """The transcript of ``video``: ``<stem><suffix>`` in ``transcripts_dir`` (or the video's folder).

    Suffixes are tried in the order of ``TRANSCRIPT_SUFFIXES``; None when there is none.
    """
    from domainclip.domains.surgery.transcripts import TRANSCRIPT_SUFFIXES

    video = Path(video)
    folder = Path(transcripts_dir) if transcripts_dir is not None else video.parent
    for suffix in TRANSCRIPT_SUFFIXES:
        candidate = folder / f"{video.stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------- clip encoders
def _shrink(frames: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale ``(T, H, W, 3)`` frames so the longer side is at most ``max_side`` (never upscale)."""
    height, width = frames.shape[1:3]
    if max_side is None or max(height, width) <= max_side:
        return frames
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR)) for f in frames])


def _uniform_frames(video: Any, start: float, end: float, n: int, max_side: int | None) -> np.ndarray:
    from domainclip.domains.surgery.video import sample_indices

    indices = sample_indices("uniform", video.num_frames, start, end, video.fps, n=n)
    return _shrink(video.get_frames(indices), max_side)


def _encode_mp4(video: Any, cand: ClipCandidate, opts: _Options) -> tuple[dict[str, Any], dict[str, Any]]:
    from domainclip.domains.surgery.video import cut_clip

    data = cut_clip(video, cand.start, cand.end, max_side=opts.max_side, fps=opts.clip_fps)
    return {"mp4": data}, {"clip_fps": opts.clip_fps or video.fps}


def _encode_frames(video: Any, cand: ClipCandidate, opts: _Options) -> tuple[dict[str, Any], dict[str, Any]]:
    from domainclip.domains.surgery.video import frames_to_npy

    frames = _uniform_frames(video, cand.start, cand.end, opts.num_frames, opts.max_side)
    return {"frames.npy": frames_to_npy(frames)}, {"num_frames": int(frames.shape[0])}


#: ``encode`` name -> ``(video, candidate, options) -> ({member suffix: data}, extra meta)``.
CLIP_ENCODERS: dict[str, Callable[[Any, ClipCandidate, _Options], tuple[dict[str, Any], dict[str, Any]]]] = {
    "mp4": _encode_mp4,
    "frames": _encode_frames,
}


# --------------------------------------------------------------------------- one video
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _candidates(task: _Task, opts: _Options) -> list[ClipCandidate]:
    """Narration units of the video's transcript, then its level spans."""
    out: list[ClipCandidate] = []
    if task.transcript is not None:
        from domainclip.domains.surgery.transcripts import merge_segments, read_transcript

        units = merge_segments(
            read_transcript(task.transcript),
            min_duration=opts.min_duration,
            max_duration=opts.max_duration,
            max_gap=opts.max_gap,
        )
        for unit in units:
            out.append(
                ClipCandidate(
                    video_id=task.video_id,
                    start=float(unit.start),
                    end=float(unit.end),
                    text=unit.text.strip(),
                    level=NARRATION,
                    level_id=None,
                    origin="transcript",
                    source=task.transcript,
                )
            )
    for span in task.spans:
        out.append(
            ClipCandidate(
                video_id=task.video_id,
                start=span.start,
                end=span.end,
                text=span.text,
                level=span.level,
                level_id=span.level_id,
                origin="levels",
                source=task.levels_file or "",
                caption_id=span.caption_id,
            )
        )
    return out


def _span_reason(cand: ClipCandidate, duration: float, fps: float, opts: _Options) -> tuple[str | None, float]:
    """``(drop reason or None, end clamped to the video)`` for a candidate's span."""
    if cand.start >= duration - 0.5 / fps:
        return OUTSIDE_VIDEO, cand.end
    end = min(cand.end, duration)
    length = end - cand.start
    if length < opts.min_duration - 1e-6:
        return TOO_SHORT, end
    limit = opts.max_duration if cand.level == NARRATION else opts.level_max_duration
    if length > limit + 1e-6:
        return TOO_LONG, end
    return None, end


def _describe(cand: ClipCandidate, note: str = "") -> str:
    """A report example: ``"<video> <start>-<end> s[ (note)]: <caption>"``."""
    return f"{cand.video_id} {cand.start:.1f}-{cand.end:.1f} s{f' ({note})' if note else ''}: {cand.text}"


def _screen(
    candidates: Sequence[ClipCandidate], video: Any, opts: _Options, report: FilterReport
) -> list[tuple[int, ClipCandidate]]:
    """Apply the text rules (per origin and level stream) and the span checks; ``(number, candidate)`` kept."""
    accepted: list[tuple[int, ClipCandidate]] = []
    previous: dict[tuple[str, str], str] = {}
    for n, cand in enumerate(candidates):
        stream = (cand.origin, cand.level)
        reason = check_text(cand.text, opts.rules, previous=previous.get(stream))
        previous[stream] = cand.text
        if reason is None:
            reason, end = _span_reason(cand, video.duration, video.fps, opts)
            cand = replace(cand, end=end)
        if reason is None:
            accepted.append((n, cand))
        else:
            report.drop(reason, _describe(cand))
    return accepted


def _score(
    chunk: Sequence[tuple[int, ClipCandidate]], video: Any, similarity: SimilarityFilter, report: FilterReport
) -> list[tuple[int, ClipCandidate, float]]:
    """Score a chunk of pairs with the similarity filter; ``(number, candidate, score)`` of those kept.

    Frames for scoring are sampled uniformly over each span and downscaled to at most 256 pixels
    (the filter's preprocess resizes them again), so a chunk stays small in memory.
    """
    from domainclip.domains.surgery.video import VideoDecodeError

    clips, readable = [], []
    for n, cand in chunk:
        try:
            clips.append(_uniform_frames(video, cand.start, cand.end, similarity.num_frames, 256))
        except VideoDecodeError as e:
            report.drop(DECODE_ERROR, _describe(cand, str(e)))
            continue
        readable.append((n, cand))
    if not readable:
        return []
    keep, values = similarity.keep(clips, [cand.text for _, cand in readable])
    kept = []
    for (n, cand), ok, value in zip(readable, keep.tolist(), values.tolist()):
        if ok:
            kept.append((n, cand, float(value)))
        else:
            report.drop(LOW_SIMILARITY, _describe(cand, f"similarity {value:.3f}"))
    return kept


def _process_video(task: _Task, opts: _Options, writer: Any, report: FilterReport) -> Counter[str]:
    """Write the kept pairs of one video; returns the pairs written per level.

    Raises:
        _SkipVideo: the transcript or the video cannot be read.

    """
    from domainclip.domains.surgery.video import VideoDecodeError, open_video

    try:
        candidates = _candidates(task, opts)
    except (ValueError, OSError) as e:
        raise _SkipVideo(BAD_TRANSCRIPT, str(e)) from None
    try:
        video = open_video(task.path)
    except (VideoDecodeError, OSError) as e:
        raise _SkipVideo(DECODE_ERROR, str(e)) from None
    by_level: Counter[str] = Counter()
    safe = _SAFE.sub("_", task.video_id).strip("_") or "video"
    with video:
        accepted = _screen(candidates, video, opts, report)
        batch = opts.similarity.batch_size if opts.similarity is not None else 16
        for begin in range(0, len(accepted), batch):
            chunk = accepted[begin : begin + batch]
            if opts.similarity is not None:
                scored: list[tuple[int, ClipCandidate, float | None]] = list(
                    _score(chunk, video, opts.similarity, report)
                )
            else:
                scored = [(n, cand, None) for n, cand in chunk]
            for n, cand, score in scored:
                try:
                    members, extra = CLIP_ENCODERS[opts.encode](video, cand, opts)
                except VideoDecodeError as e:
                    report.drop(DECODE_ERROR, _describe(cand, str(e)))
                    continue
                meta: dict[str, Any] = {
                    "video_id": task.video_id,
                    "video": task.path,
                    "start": round(cand.start, 3),
                    "end": round(cand.end, 3),
                    "duration": round(cand.end - cand.start, 3),
                    "origin": cand.origin,
                    "source": cand.source,
                    "level": cand.level,
                    "level_id": cand.level_id,
                    "fps": float(video.fps),
                    "encode": opts.encode,
                    **extra,
                }
                if cand.caption_id is not None:
                    meta["caption_id"] = cand.caption_id
                if score is not None:
                    meta["similarity"] = round(score, 5)
                key = f"{task.index:05d}_{safe}_{n:05d}"
                writer.write({"__key__": key, **members, "text": cand.text, "level": cand.level, "meta": meta})
                report.keep()
                by_level[cand.level] += 1
    return by_level


def _run_tasks(
    tasks: Sequence[_Task], opts: _Options, prefix: str, report_progress: Callable[[int], Any] | None = None
) -> dict[str, Any]:
    """Process ``tasks`` one video at a time into shards ``<prefix>-NNNNNN.tar``."""
    from domainclip.core.data.writer import FIXED_MTIME, ShardWriter, index_path

    report = FilterReport()
    by_level: Counter[str] = Counter()
    skipped: list[dict[str, str]] = []
    with_pairs = 0
    began = time.perf_counter()
    with ShardWriter(opts.out, prefix=prefix, max_count=opts.max_count, mtime=FIXED_MTIME) as writer:
        for task in tasks:
            try:
                written = _process_video(task, opts, writer, report)
            except _SkipVideo as e:  # unreadable video or transcript: skipped, the run goes on
                skipped.append({"video": task.path, "reason": e.reason, "error": e.detail})
            else:
                by_level.update(written)
                with_pairs += sum(written.values()) > 0
            if report_progress is not None:
                report_progress(1)
    return {
        "prefix": prefix,
        "shards": [p.name for p in writer.written],
        "index": index_path(opts.out, prefix).name,
        "num_samples": writer.num_samples,
        "report": report.to_dict(),
        "by_level": dict(by_level),
        "skipped": skipped,
        "videos_with_pairs": with_pairs,
        "seconds": time.perf_counter() - began,
    }


# --------------------------------------------------------------------------- the run
def _max_side(text: str) -> int | None:
    """``--max-side``: a number of pixels, or ``none`` to keep the size."""
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"takes a number of pixels or 'none'; got {text!r}") from None


@entry_point
def make_clip_pairs(
    out: Path,
    videos: list[Path],
    *,
    transcripts: Path | None = None,
    levels: Path | None = None,
    min_duration: PositiveFloat = 4.0,
    max_duration: PositiveFloat = 30.0,
    level_max_duration: PositiveFloat = 500.0,
    max_gap: NonNegativeFloat = 2.0,
    encode: Literal["mp4", "frames"] = "mp4",
    num_frames: PositiveInt = 8,
    max_side: Annotated[int | None, Range(2), Parser(_max_side, "N|none")] = 224,
    clip_fps: PositiveFloat | None = None,
    text_rules: list[str] | None = None,
    descriptive_only: bool = True,
    surgical_only: bool = True,
    filter_model: str | None = None,
    filter_pretrained: str | None = None,
    filter_threshold: Annotated[float, Range(-1, 1)] | None = None,
    filter_frames: PositiveInt = 8,
    filter_batch_size: PositiveInt = 16,
    device: str = "cpu",
    workers: PositiveInt = 1,
    max_count: PositiveInt = 200,
    prefix: str = "surgery",
    progress: bool = True,
) -> dict[str, Any]:
    """Cut surgical videos into clip-caption pairs (transcript narration and task/step/phase spans) into shards.

    Args:
        out: output folder for shards, index, summary and filter report.
        videos: video files and/or folders (searched recursively); ids are file stems.
        transcripts: folder of <video stem>.srt/.vtt/.json transcripts (default: next to each video).
        levels: task/step/phase spans: CSV, JSON or SurgLaVi SQLite (.db/.sqlite); see
            :func:`~domainclip.domains.surgery.levels.read_level_table`.
        min_duration: shortest pair in seconds (narration units are merged up to it).
        max_duration: longest narration pair in seconds.
        level_max_duration: longest task/step/phase pair in seconds (SurgLaVi keeps spans up to 500 s).
        max_gap: longest silence in seconds bridged when merging transcript segments.
        encode: mp4 (the span cut and re-encoded) or frames (num_frames uniformly sampled frames as
            .frames.npy); see :data:`CLIP_ENCODERS`.
        num_frames: frames stored per pair with encode frames.
        max_side: longest clip side in pixels, 2 or more (none keeps the size).
        clip_fps: resample mp4 clips to this frame rate (default: the video's).
        text_rules: text rules applied to captions (default all: non_alphabetic, non_descriptive,
            min_words, max_words, duplicate; none turns text filtering off); see
            :func:`~domainclip.domains.surgery.filtering.check_text`.
        descriptive_only: drop level spans not flagged descriptive (SurgLaVi's filter).
        surgical_only: drop level spans not flagged surgical content (SurgLaVi's filter).
        filter_model: video CLIP scoring clip-caption similarity (a model name, hub id or local-dir:PATH);
            pairs under filter_threshold are dropped.
        filter_pretrained: weights of filter_model.
        filter_threshold: lowest clip-caption cosine similarity kept, in [-1, 1] (required with filter_model).
        filter_frames: frames per clip scored by the filter.
        filter_batch_size: clips scored per forward pass of the filter.
        device: device of the filter model.
        workers: worker processes, each writing its own shards, one video at a time.
        max_count: most pairs per shard.
        prefix: shard name prefix.
        progress: show a progress bar over videos.

    Returns:
        Summary: pair counts (by level, by origin), the filter report (kept, dropped by reason,
        examples), skipped videos with reasons (``videos_skipped``, ``videos_skipped_by_reason``),
        shards and their indexes, seconds.

    Raises:
        UnknownNameError: an unknown text rule.
        InputError: bad values, no videos, two videos with one id, a malformed levels file
            (:class:`~domainclip.domains.surgery.levels.LevelTableError`); all ``ValueError``.
        InputNotFoundError: a video source, ``transcripts`` or ``levels`` does not exist.
        NothingWrittenError: no pair was written; the message counts the skipped videos and the
            dropped pairs by reason, with an example each (the summary is written first).

    """
    from tqdm.auto import tqdm

    from domainclip.core.data.writer import write_json_atomic
    from domainclip.core.io import atomic_write_text

    if min_duration > max_duration:
        raise InputError(f"min_duration {min_duration} is above max_duration {max_duration}")
    if level_max_duration < min_duration:
        raise InputError(f"level_max_duration {level_max_duration} is below min_duration {min_duration}")
    if (filter_model is None) != (filter_threshold is None):
        raise InputError("filter_model and filter_threshold go together (similarity scales differ between models)")
    rules = build_text_rules(None if text_rules is None else [r for r in text_rules if r.lower() != "none"])
    if transcripts is not None and not transcripts.is_dir():
        raise InputNotFoundError(f"transcripts folder {transcripts} does not exist or is not a folder")
    paths = find_videos(videos)
    ids = {p.stem for p in paths}

    report = FilterReport()
    spans_by_video: dict[str, list[LevelSpan]] = {}
    unmatched: list[str] = []
    if levels is not None:
        all_spans = read_level_table(levels, descriptive_only=False, surgical_only=False)
        kept_spans = []
        for span in all_spans:
            reason = span_flag_reason(span, descriptive_only=descriptive_only, surgical_only=surgical_only)
            if reason is None:
                kept_spans.append(span)
            else:
                report.drop(reason, f"{span.video_id} {span.start:.1f}-{span.end:.1f} s: {span.text}")
        spans_by_video = group_by_video(kept_spans)
        unmatched = sorted(set(spans_by_video) - ids)
    similarity = None
    if filter_model is not None:
        similarity = SimilarityFilter.from_name(
            filter_model, filter_pretrained, threshold=filter_threshold, num_frames=filter_frames, device=device,
            batch_size=filter_batch_size,
        )
    out.mkdir(parents=True, exist_ok=True)

    tasks: list[_Task] = []
    skipped: list[dict[str, str]] = []
    for index, path in enumerate(paths):
        transcript = find_transcript(path, transcripts)
        spans = tuple(spans_by_video.get(path.stem, ()))
        if transcript is None and not spans:
            where = transcripts if transcripts is not None else path.parent
            problem = f"{path}: no transcript ({path.stem}.srt/.vtt/.json in {where}) and no level spans"
            skipped.append({"video": str(path), "reason": NO_CAPTIONS, "error": problem})
            continue
        tasks.append(_Task(index, str(path), path.stem, str(transcript) if transcript else None, spans,
                           str(levels) if levels is not None else None))
    opts = _Options(
        encode=encode, num_frames=num_frames, max_side=max_side, clip_fps=clip_fps, min_duration=min_duration,
        max_duration=max_duration, level_max_duration=level_max_duration, max_gap=max_gap, rules=tuple(rules),
        similarity=similarity, out=str(out), max_count=max_count,
    )

    workers = max(1, min(workers, len(tasks)))
    began = time.perf_counter()
    with tqdm(total=len(tasks), disable=not progress, unit="video", desc="surgery clips") as bar:
        if workers == 1:
            results = [_run_tasks(tasks, opts, prefix, bar.update)]
        else:
            parts = [tasks[k::workers] for k in range(workers)]  # round-robin: long and short videos mix
            calls = [
                (_run_tasks, (part, opts, f"{prefix}-w{k:02d}", functools.partial(shared_add, 0)))
                for k, part in enumerate(parts)
            ]
            results = run_workers(calls, bar)
    seconds = time.perf_counter() - began

    by_level: Counter[str] = Counter()
    for r in results:
        report.merge(r["report"])
        by_level.update(r["by_level"])
        skipped.extend(r["skipped"])
    num_pairs = sum(r["num_samples"] for r in results)
    summary: dict[str, Any] = {
        "out": str(out),
        "prefix": prefix,
        "encode": encode,
        "num_videos": len(paths),
        "videos_with_pairs": sum(r["videos_with_pairs"] for r in results),
        "videos_skipped": skipped,
        "videos_skipped_by_reason": dict(sorted(Counter(item["reason"] for item in skipped).items())),
        "num_pairs": num_pairs,
        "pairs_by_level": {k: by_level[k] for k in (NARRATION, "task", "step", "phase") if by_level[k]},
        "filter": report.to_dict(),
        "levels_file": str(levels) if levels is not None else None,
        "level_videos_without_file": unmatched,
        "transcripts_dir": str(transcripts) if transcripts is not None else None,
        "settings": {
            "min_duration": min_duration, "max_duration": max_duration, "level_max_duration": level_max_duration,
            "max_gap": max_gap, "num_frames": num_frames, "max_side": max_side, "clip_fps": clip_fps,
            "text_rules": [r.name for r in rules],
            "similarity_threshold": similarity.threshold if similarity is not None else None,
            "descriptive_only": descriptive_only, "surgical_only": surgical_only, "workers": workers,
        },
        "num_shards": sum(len(r["shards"]) for r in results),
        "shards": [s for r in results for s in r["shards"]],
        "indexes": [r["index"] for r in results],
        "seconds": round(seconds, 3),
    }
    write_json_atomic(out / f"{prefix}-summary.json", summary)
    title = f"# {prefix}: clip-caption filtering\n\n"
    atomic_write_text(out / f"{prefix}-filter-report.md", title + report.to_markdown())
    summary["summary"] = str(out / f"{prefix}-summary.json")
    summary["filter_report"] = str(out / f"{prefix}-filter-report.md")
    if num_pairs == 0:
        counts: Counter[str] = Counter(item["reason"] for item in skipped)
        examples = {item["reason"]: item["error"] for item in reversed(skipped)}  # the first of each reason
        counts.update(report.dropped)
        for reason, found in report.examples.items():
            if found:
                examples.setdefault(reason, found[0])
        inputs = f"{_plural(len(paths), 'video')} ({len(skipped)} skipped, {_plural(report.total, 'candidate pair')})"
        raise NothingWrittenError.from_counts("surgery/clips", "clip-caption pairs", inputs, counts, examples)
    return summary
