"""Video clip decoding: domainclip's backends against torchcodec's own clip sampling, frames checked exact.

Usage::

    python -m bench.bench_video [--clips 8] [--repeats 3] [--frames 16] [--long-seconds 60]
                                [--shard-clips 16] [--out FILE.json]

What is measured, on two H.264 videos: ``cockatoo.mp4`` from ``../shared/data/video`` (real
footage, 1280x720 yuv444p, 20 fps, 14 s, keyframes at frames 0/76/145, few B-frames) and a
longer video generated here with :func:`~domainclip.domains.surgery.video.encode_clip` (640x360
yuv420p, 25 fps, ``--long-seconds``, a keyframe every 5 s, x264's B-frames, smooth moving texture):

* **clips/s from the source video**, ``--frames`` consecutive frames from a random position, as
  ``torchcodec.samplers.clips_at_random_indices`` picks them: each clip's start is drawn by that
  sampler (seeded), and every side reads the same frames. Each clip opens the file and decodes its
  frames, as a data-loader worker does for a dataset of many videos. The sides:

  - ``pyav``, ``torchcodec``, ``decord``: domainclip's
    :func:`~domainclip.domains.surgery.video.open_video` + ``get_frames`` with that backend;
  - ``tc_sampler``: torchcodec's ``VideoDecoder(path, num_ffmpeg_threads=1)`` +
    ``clips_at_random_indices(num_clips=1, num_frames_per_clip=16)``, torchcodec as its docs use it;
  - ``tc_frames_at``: the same decoder + ``get_frames_at(indices)``.

* **clips/s from shards**: ``--shard-clips`` random spans cut with
  :func:`~domainclip.domains.surgery.video.cut_clip` into WebDataset shards, read by
  :func:`~domainclip.core.data.reader.build_loader` with
  :class:`~domainclip.domains.surgery.decoder.VideoClipDecoder` (16 frames, jittered uniform
  sampling, batch 4, no workers), the recipe's data path (``--shard-clips 0`` leaves it out).

Before timing, every side's frames are compared with a reference that decodes the video from its
first frame in order with PyAV (no seeking): domainclip's sides must be identical (the bench stops
otherwise); torchcodec's sides are timed either way and the clips where they are not are counted
and reported. All decoders run with one thread (``--threads``); wall-clock and CPU time per side,
median over ``--repeats`` interleaved passes. Clips per CPU-second give the data-loader workers
(one core each) needed to feed :data:`MODEL_CLIPS_PER_S`, the surgery recipe's measured speed.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO_ROOT, RESULTS_DIR, load_average, machine_info, markdown_table, median, write_result

__all__ = ["GOAL_VS_TORCHCODEC", "MODEL_CLIPS_PER_S", "long_video", "main", "random_spans", "reference_frames"]

#: domainclip's fastest exact backend must read clips at least this many times as fast as torchcodec's best side.
GOAL_VS_TORCHCODEC = 1.0
#: The surgery recipe's measured training speed on one H100 (RESULTS.md): clips/s the loader must feed.
MODEL_CLIPS_PER_S = 76.0
#: domainclip's sides (``open_video`` backends), then torchcodec's.
DC_SIDES = ("pyav", "torchcodec", "decord")
TC_SIDES = ("tc_sampler", "tc_frames_at")
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


def reference_frames(path: str, indices: set[int]) -> dict[int, np.ndarray]:
    """Decode the whole video in order with PyAV (no seeking, one thread); keep the frames at ``indices``."""
    import av

    kept: dict[int, np.ndarray] = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for i, frame in enumerate(container.decode(stream)):
            if i in indices:
                kept[i] = frame.to_ndarray(format="rgb24")
    return kept


def _tc_decoder(path: str, threads: int) -> Any:
    from domainclip.domains.surgery.video import _import_torchcodec

    return _import_torchcodec().VideoDecoder(path, num_ffmpeg_threads=threads, dimension_order="NHWC")


def _sampler_clip(path: str, seed: int, frames: int, threads: int) -> tuple[list[int], np.ndarray]:
    """torchcodec's ``clips_at_random_indices`` on a fresh decoder, seeded: (frame indices, frames)."""
    import torch

    decoder = _tc_decoder(path, threads)  # first: exposes PyAV's FFmpeg before torchcodec is imported
    from torchcodec.samplers import clips_at_random_indices

    torch.manual_seed(seed)
    clip = clips_at_random_indices(decoder, num_clips=1, num_frames_per_clip=frames)
    meta = decoder.metadata
    start = float(meta.begin_stream_seconds or 0.0)
    indices = np.rint((clip.pts_seconds[0].numpy() - start) * float(meta.average_fps)).astype(int).tolist()
    return indices, clip.data[0].numpy()


def _sides(path: str, frames: int, threads: int, seeds: list[int],
           starts: list[list[int]]) -> dict[str, Callable[[int], np.ndarray]]:
    """Side name -> ``read(k)``: clip ``k`` (its seed and indices fixed) read as that side reads it."""
    from domainclip.domains.surgery.video import open_video

    def backend(name: str) -> Callable[[int], np.ndarray]:
        def read(k: int) -> np.ndarray:
            with open_video(path, backend=name, threads=threads) as video:
                return video.get_frames(starts[k])
        return read

    def frames_at(k: int) -> np.ndarray:
        return _tc_decoder(path, threads).get_frames_at(starts[k]).data.numpy()

    def sampler(k: int) -> np.ndarray:
        return _sampler_clip(path, seeds[k], frames, threads)[1]

    return {**{name: backend(name) for name in DC_SIDES}, "tc_sampler": sampler, "tc_frames_at": frames_at}


def _time_side(read: Callable[[int], np.ndarray], clips: int) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(clips):
        read(k)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"clips": clips, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), "clips_per_s": clips / wall,
            "clips_per_cpu_s": clips / cpu}


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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print markdown tables and write the JSON result; returns the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8, help="clips per pass and side")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved passes per side")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--long-seconds", type=float, default=60.0, help="length of the generated video")
    parser.add_argument("--shard-clips", type=int, default=16, help="clips cut into shards per video (0: none)")
    parser.add_argument("--threads", type=int, default=1, help="decoder threads")
    parser.add_argument("--video", type=Path, default=_COCKATOO, help="the real H.264 video")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "video.json")
    args = parser.parse_args(argv)

    from domainclip.domains.surgery.video import open_video

    runs: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    exactness: list[dict[str, Any]] = []
    table: list[list[Any]] = []
    workers_table: list[list[Any]] = []
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
            seeds = [1000 * vi + k for k in range(args.clips)]
            starts = [_sampler_clip(str(path), seed, args.frames, args.threads)[0] for seed in seeds]
            sides = _sides(str(path), args.frames, args.threads, seeds, starts)
            reference = reference_frames(str(path), {i for clip in starts for i in clip})
            for side, read in sides.items():  # every clip of every side, each on a fresh decoder
                wrong = []
                for k in range(args.clips):
                    got = np.asarray(read(k))
                    want = np.stack([reference[i] for i in starts[k]])
                    if got.shape != want.shape or not np.array_equal(got, want):
                        wrong.append(starts[k][0])
                if wrong and side in DC_SIDES:
                    raise RuntimeError(f"{name}: domainclip's {side} backend returned other frames than the "
                                       f"in-order reference for the clips starting at {wrong}")
                exactness.append({"video": name, "side": side, "clips": args.clips, "wrong_clips": len(wrong),
                                  "wrong_starts": wrong})
                print(f"  {name:<16} {side:<13} frames exact in {args.clips - len(wrong)}/{args.clips} clips"
                      + (f" (wrong: clips starting at {wrong})" if wrong else ""), flush=True)
            del reference
            shards: list[str] = []
            if args.shard_clips:
                shards = _write_clip_shards(str(path), random_spans(duration, args.shard_clips, seed=100 + vi),
                                            Path(tmp) / f"shards{vi}", args.threads)
                _time_shards(shards, args.frames, args.threads)  # warm-up: imports, file cache
            order = [*sides, *(["shards"] if shards else [])]
            for repeat in range(args.repeats):
                for side in order if repeat % 2 == 0 else order[::-1]:
                    load = load_average()
                    result = (_time_shards(shards, args.frames, args.threads) if side == "shards"
                              else _time_side(sides[side], args.clips))
                    runs.append({"video": name, "side": side, "repeat": repeat, "load_before": load, **result})
                    print(f"  {name:<16} repeat {repeat} {side:<13} {result['clips_per_s']:8.2f} clips/s "
                          f"(load {load})", flush=True)
            rate = {side: median([r["clips_per_s"] for r in runs if r["video"] == name and r["side"] == side])
                    for side in order}
            per_cpu = {side: median([r["clips_per_cpu_s"] for r in runs if r["video"] == name and r["side"] == side])
                       for side in sides}
            best_dc = max(DC_SIDES, key=lambda side: rate[side])
            best_tc = max(TC_SIDES, key=lambda side: rate[side])
            ratio = rate[best_dc] / rate[best_tc]
            summary.append({
                "benchmark": "video",
                "measurement": f"{name} ({info}): {args.frames}-frame clips at random positions, clips/s, "
                               f"domainclip {best_dc} (exact) vs torchcodec {best_tc}",
                "domainclip": round(rate[best_dc], 2),
                "reference": round(rate[best_tc], 2),
                "reference_name": f"torchcodec {best_tc}",
                "ratio": round(ratio, 2),
                "goal": GOAL_VS_TORCHCODEC,
                "met": ratio >= GOAL_VS_TORCHCODEC,
            })
            if shards:
                summary.append({
                    "benchmark": "video",
                    "measurement": f"{name}: {args.frames}-frame clips/s, cut_clip shards + build_loader + "
                                   f"VideoClipDecoder vs domainclip {best_dc} on the source video",
                    "domainclip": round(rate["shards"], 2),
                    "reference": round(rate[best_dc], 2),
                    "reference_name": f"domainclip {best_dc} open_video + get_frames on the source video",
                    "ratio": round(rate["shards"] / rate[best_dc], 2),
                    "goal": None,
                    "met": None,
                })
            wrong = {e["side"]: e["wrong_clips"] for e in exactness if e["video"] == name}
            table.append([name, info, *(rate[side] for side in sides), rate.get("shards", float("nan")), ratio,
                          f"{wrong['tc_sampler']}/{args.clips}"])
            for side in sides:
                workers_table.append([name, side, per_cpu[side], math.ceil(MODEL_CLIPS_PER_S / per_cpu[side])])

    loads = [r["load_before"] for r in runs]
    result = {
        "benchmark": "video clip decoding: domainclip's backends vs torchcodec's clip sampling, frames checked",
        "settings": {k: _shown(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "out"},
        "summary": summary,
        "exactness": exactness,
        "workers_for_model_speed": [
            {"video": v, "side": s, "clips_per_cpu_s": round(c, 3), "model_clips_per_s": MODEL_CLIPS_PER_S,
             "workers": w} for v, s, c, w in workers_table
        ],
        "load_average_range": [min(loads), max(loads)],
        "runs": runs,
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(markdown_table(
        ["video", "format", *(f"{side} clips/s" for side in DC_SIDES + TC_SIDES), "shards clips/s",
         "best dc / best tc", "tc_sampler wrong clips"], table))
    print(markdown_table(["video", "side", "clips per CPU-second", f"workers for {MODEL_CLIPS_PER_S:g} clips/s"],
                         workers_table))
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
