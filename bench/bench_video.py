"""Video clip decoding: domainclip's decord / PyAV backends against "decode every frame, then index".

Usage::

    python -m bench.bench_video [--clips 12] [--naive-clips 3] [--repeats 3] [--frames 16]
                                [--long-seconds 60] [--shard-clips 24] [--out FILE.json]

What is measured, on two H.264 videos: ``cockatoo.mp4`` from ``../shared/data/video`` (real
footage, 1280x720, 20 fps, 14 s, keyframes at frames 0/76/145) and a longer video generated here
with :func:`~domainclip.domains.surgery.video.encode_clip` (640x360, 25 fps, ``--long-seconds``,
a keyframe every 5 s, smooth moving texture):

* **clips/s from the source video**: ``--frames`` frames sampled uniformly (segment centres)
  from a random span of 4-16 s (the whole video when shorter), the same seeded spans for every
  side. Each clip opens the file and decodes its frames, as a dataset of many videos does:
  ``decord`` and ``pyav`` are :func:`~domainclip.domains.surgery.video.open_video` +
  ``get_frames``; ``naive`` decodes and converts every frame of the video with PyAV (what
  ``torchvision.io.read_video`` does) and keeps the sampled ones.
* **clips/s from shards**: ``--shard-clips`` random spans cut with
  :func:`~domainclip.domains.surgery.video.cut_clip` (same resolution, H.264) into WebDataset
  shards, then read by :func:`~domainclip.core.data.reader.build_loader` with
  :class:`~domainclip.domains.surgery.decoder.VideoClipDecoder` (``--frames`` frames, jittered
  uniform sampling, no image transform, batch 4, no workers), against decord on the source video.

All decoders run with one thread (``--threads``), as in a data-loader worker; wall-clock per side,
median over ``--repeats`` interleaved passes. Before timing, the sides are checked to return the
same frames.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO_ROOT, RESULTS_DIR, load_average, machine_info, markdown_table, median, write_result

__all__ = ["GOAL_BACKEND", "GOAL_SHARDS", "long_video", "main", "naive_clip", "random_spans"]

#: The faster of domainclip's backends must decode clips at least this many times as fast as the naive loop.
GOAL_BACKEND = 1.5
#: The shard loader (with its bookkeeping) must reach this fraction of decord's clips/s on the source video.
GOAL_SHARDS = 0.9
_COCKATOO = REPO_ROOT.parent / "shared" / "data" / "video" / "cockatoo.mp4"


def _shown(path: Path) -> str:
    """``path`` as results files record it: relative to the repository when it is beside it, never a machine path."""
    try:
        return os.path.relpath(path.resolve(), REPO_ROOT)
    except ValueError:  # another drive
        return path.name


def long_video(seconds: float, fps: int = 25, width: int = 640, height: int = 360, seed: int = 0) -> bytes:
    """A generated H.264 video: a smooth random texture scrolling right, keyframe every 5 s."""
    from PIL import Image

    from domainclip.domains.surgery.video import encode_clip

    n = int(seconds * fps)
    rng = np.random.default_rng(seed)
    step = 3
    coarse = rng.integers(0, 256, size=(height // 4 + 1, (width + step * n) // 4 + 2, 3), dtype=np.uint8)
    texture = np.asarray(Image.fromarray(coarse).resize((coarse.shape[1] * 4, coarse.shape[0] * 4),
                                                        Image.BICUBIC))[:height]
    frames = np.stack([texture[:, step * i : step * i + width] for i in range(n)])
    return encode_clip(frames, fps, codec="h264", crf=23, keyframe_interval=5 * fps)


def random_spans(duration: float, count: int, seed: int) -> list[tuple[float, float]]:
    """``count`` seeded spans of 4-16 s (the whole video when it is shorter than the span)."""
    rng = random.Random(seed)
    spans = []
    for _ in range(count):
        length = min(duration, rng.uniform(4.0, 16.0))
        start = rng.uniform(0.0, duration - length)
        spans.append((start, start + length))
    return spans


def naive_clip(path: str, indices: list[int], threads: int) -> np.ndarray:
    """Decode and convert every frame with PyAV, keep the ``indices`` (duplicates allowed)."""
    import av

    wanted = set(indices)
    kept: dict[int, np.ndarray] = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        for i, frame in enumerate(container.decode(stream)):
            rgb = frame.to_ndarray(format="rgb24")
            if i in wanted:
                kept[i] = rgb
    return np.stack([kept[i] for i in indices])


def _clip_indices(num_frames: int, fps: float, span: tuple[float, float], frames: int) -> list[int]:
    from domainclip.domains.surgery.video import sample_indices

    return sample_indices("uniform", num_frames, span[0], span[1], fps, n=frames)


def _backend_side(path: str, backend: str, frames: int, threads: int) -> Callable[[tuple[float, float]], np.ndarray]:
    from domainclip.domains.surgery.video import open_video

    def clip(span: tuple[float, float]) -> np.ndarray:
        with open_video(path, backend=backend, threads=threads) as video:
            return video.get_frames(_clip_indices(video.num_frames, video.fps, span, frames))

    return clip


def _naive_side(path: str, frames: int, threads: int) -> Callable[[tuple[float, float]], np.ndarray]:
    from domainclip.domains.surgery.video import open_video

    with open_video(path, backend="pyav") as probe:  # the sampled indices need the frame count and rate
        num_frames, fps = probe.num_frames, probe.fps

    def clip(span: tuple[float, float]) -> np.ndarray:
        return naive_clip(path, _clip_indices(num_frames, fps, span, frames), threads)

    return clip


def _time_clips(side: Callable[[tuple[float, float]], np.ndarray], spans: list[tuple[float, float]]) -> dict:
    started = time.perf_counter()
    for span in spans:
        side(span)
    seconds = time.perf_counter() - started
    return {"clips": len(spans), "seconds": round(seconds, 3), "clips_per_s": len(spans) / seconds}


def _write_clip_shards(path: str, spans: list[tuple[float, float]], out_dir: Path, threads: int) -> list[str]:
    from domainclip.core.data.writer import ShardWriter
    from domainclip.domains.surgery.video import cut_clip, open_video

    with open_video(path, backend="pyav", threads=threads) as video, ShardWriter(
        out_dir, prefix="clips", max_count=8
    ) as writer:
        for k, (start, end) in enumerate(spans):
            writer.write({"__key__": f"clip{k:04d}", "mp4": cut_clip(video, start, end), "text": f"clip {k}",
                          "meta": {"start": start, "end": end}})
    return [str(p) for p in writer.written]


def _time_shards(shards: list[str], frames: int, threads: int) -> dict:
    from domainclip.core.data.reader import Source, build_loader
    from domainclip.domains.surgery.decoder import VideoClipDecoder

    decoder = VideoClipDecoder(None, num_frames=frames, train=True, threads=threads, backend="decord")
    loader = build_loader(Source(shards), decoder, batch_size=4, epochs=1, shuffle_buffer=16)
    started = time.perf_counter()
    clips = 0
    for batch in loader:
        clips += int(batch["video"].shape[0])
    seconds = time.perf_counter() - started
    if loader.corrupt_counts():
        raise RuntimeError(f"the shard loader skipped corrupt clips: {loader.corrupt_report()}")
    return {"clips": clips, "seconds": round(seconds, 3), "clips_per_s": clips / seconds}


def _check_same_frames(sides: dict[str, Callable], span: tuple[float, float], name: str) -> None:
    frames = {side: fn(span).astype(np.float32) for side, fn in sides.items()}
    reference = frames["naive"]
    for side, got in frames.items():
        diff = float(np.abs(got - reference).mean())
        if got.shape != reference.shape or diff > 1.0:
            raise RuntimeError(f"{name}: {side} returns other frames than the naive loop (mean abs diff {diff:.2f})")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a markdown table and write the JSON result; returns the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12, help="clips per pass for decord and pyav")
    parser.add_argument("--naive-clips", type=int, default=3, help="clips per pass for the naive loop (slow)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved passes per side")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--long-seconds", type=float, default=60.0, help="length of the generated video")
    parser.add_argument("--shard-clips", type=int, default=24, help="clips cut into shards per video")
    parser.add_argument("--threads", type=int, default=1, help="decoder threads")
    parser.add_argument("--video", type=Path, default=_COCKATOO, help="the real H.264 video")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "video.json")
    args = parser.parse_args(argv)

    from domainclip.domains.surgery.video import open_video

    runs: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    table: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        started = time.perf_counter()
        generated = Path(tmp) / "generated.mp4"
        generated.write_bytes(long_video(args.long_seconds))
        print(f"generated {generated.stat().st_size / 1e6:.1f} MB H.264 in {time.perf_counter() - started:.1f} s",
              flush=True)
        videos: dict[str, Path] = {}
        if args.video.is_file():
            videos[args.video.name] = args.video
        else:
            print(f"{args.video} is absent: measuring the generated video only", flush=True)
        videos[f"generated {args.long_seconds:g} s"] = generated
        for vi, (name, path) in enumerate(videos.items()):
            with open_video(path, backend="pyav") as video:
                info = f"{video.width}x{video.height}, {video.num_frames} frames, {video.fps:g} fps"
                duration = video.duration
            spans = random_spans(duration, args.clips, seed=vi)
            sides = {
                "decord": _backend_side(str(path), "decord", args.frames, args.threads),
                "pyav": _backend_side(str(path), "pyav", args.frames, args.threads),
                "naive": _naive_side(str(path), args.frames, args.threads),
            }
            _check_same_frames(sides, spans[0], name)
            shards = _write_clip_shards(str(path), random_spans(duration, args.shard_clips, seed=100 + vi),
                                        Path(tmp) / f"shards{vi}", args.threads)
            _time_shards(shards, args.frames, args.threads)  # warm-up: imports, file cache
            for repeat in range(args.repeats):
                order = ["decord", "pyav", "naive", "shards"]
                if repeat % 2:
                    order.reverse()
                for side in order:
                    load = load_average()
                    if side == "shards":
                        result = _time_shards(shards, args.frames, args.threads)
                    else:
                        result = _time_clips(sides[side], spans if side != "naive" else spans[: args.naive_clips])
                    runs.append({"video": name, "side": side, "repeat": repeat, "load_before": load, **result})
                    print(f"  {name:<16} repeat {repeat} {side:<7} {result['clips_per_s']:8.2f} clips/s "
                          f"(load {load})", flush=True)
            rate = {side: median([r["clips_per_s"] for r in runs if r["video"] == name and r["side"] == side])
                    for side in ("decord", "pyav", "naive", "shards")}
            best = max(rate["decord"], rate["pyav"])
            for side in ("decord", "pyav"):
                ratio = rate[side] / rate["naive"]
                summary.append({
                    "benchmark": "video",
                    "measurement": f"{name} ({info}): {args.frames}-frame clips/s, {side} vs decode-all-then-index",
                    "domainclip": round(rate[side], 2),
                    "reference": round(rate["naive"], 2),
                    "reference_name": "PyAV decode every frame, then index",
                    "ratio": round(ratio, 2),
                    "goal": GOAL_BACKEND if rate[side] == best else None,
                    "met": (best / rate["naive"] >= GOAL_BACKEND) if rate[side] == best else None,
                })
            shard_ratio = rate["shards"] / rate["decord"]
            summary.append({
                "benchmark": "video",
                "measurement": f"{name}: {args.frames}-frame clips/s, cut_clip shards + build_loader + "
                               "VideoClipDecoder vs decord on the source video",
                "domainclip": round(rate["shards"], 2),
                "reference": round(rate["decord"], 2),
                "reference_name": "decord open_video + get_frames on the source video",
                "ratio": round(shard_ratio, 2),
                "goal": GOAL_SHARDS,
                "met": shard_ratio >= GOAL_SHARDS,
            })
            table.append([name, info, rate["decord"], rate["pyav"], rate["naive"], rate["shards"],
                          rate["decord"] / rate["naive"], rate["pyav"] / rate["naive"], shard_ratio])

    loads = [r["load_before"] for r in runs]
    result = {
        "benchmark": "video clip decoding: decord / PyAV backends and shard loading vs decode-all-then-index",
        "settings": {k: _shown(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "out"},
        "summary": summary,
        "load_average_range": [min(loads), max(loads)],
        "runs": runs,
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(markdown_table(
        ["video", "format", "decord clips/s", "pyav clips/s", "naive clips/s", "shards clips/s",
         "decord / naive", "pyav / naive", "shards / decord"], table))
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
