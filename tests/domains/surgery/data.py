"""Write tiny Cholec80 / AutoLaparo fixtures in the public layouts, and held-out clip shards.

Loaded by the tests with importlib (test folders are not packages). Every video is an H.264 mp4
(PyAV) whose frames are one solid colour per phase (:data:`PALETTE`), so a decoded frame tells its
phase. Layouts:

* Cholec80: ``videos/videoNN.mp4`` (25 fps), ``phase_annotations/videoNN-phase.txt``
  (``Frame<TAB>Phase``, one row per frame, frames from 0), ``tool_annotations/videoNN-tool.txt``
  (``Frame<TAB>Grasper<TAB>...<TAB>SpecimenBag``, every 25 frames); tools follow the phase through
  :data:`PHASE_TOOLS`.
* AutoLaparo Task 1: ``videos/NN.mp4`` (25 fps), ``labels/label_NN.txt`` (``Frame<TAB>Phase``, one
  row per second, frames from 1, phases 1-7).

Run ``python tests/domains/surgery/data.py OUT_DIR`` to write both by hand.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

FPS = 25
WIDTH, HEIGHT = 64, 48

#: RGB colour of each phase index (Cholec80 and AutoLaparo alike).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 30, 30),
    (30, 200, 30),
    (30, 30, 230),
    (230, 230, 30),
    (230, 30, 230),
    (30, 230, 230),
    (128, 128, 128),
)

#: Cholec80 tools (column order) present during each phase index.
PHASE_TOOLS: tuple[tuple[int, ...], ...] = (
    (0, 0, 0, 0, 0, 0, 0),
    (1, 0, 1, 0, 0, 0, 0),
    (1, 0, 0, 1, 1, 0, 0),
    (1, 0, 1, 0, 0, 0, 0),
    (1, 0, 0, 0, 0, 0, 1),
    (1, 1, 0, 0, 0, 1, 0),
    (1, 0, 0, 0, 0, 0, 1),
)

CHOLEC80_PHASES = (
    "Preparation",
    "CalotTriangleDissection",
    "ClippingCutting",
    "GallbladderDissection",
    "GallbladderPackaging",
    "CleaningCoagulation",
    "GallbladderRetraction",
)
TOOLS = ("Grasper", "Bipolar", "Hook", "Scissors", "Clipper", "Irrigator", "SpecimenBag")

#: Default Cholec80 fixture: video number -> [(phase index, seconds)]; all 7 phases appear.
CHOLEC80_VIDEOS: dict[int, list[tuple[int, int]]] = {
    49: [(0, 1), (1, 2), (2, 1)],
    50: [(1, 1), (3, 2), (4, 1), (6, 1)],
    51: [(0, 1), (3, 1), (5, 2)],
}

#: Default AutoLaparo fixture: video number -> [(phase index, seconds)].
AUTOLAPARO_VIDEOS: dict[int, list[tuple[int, int]]] = {
    15: [(0, 1), (1, 2), (2, 1), (3, 1)],
    16: [(4, 1), (5, 2), (6, 1)],
}


def _encode(
    target: str | io.BytesIO, colours: Sequence[tuple[int, int, int]], fps: int, container_format: str | None
) -> None:
    import av

    with av.open(target, "w", format=container_format) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "8", "preset": "ultrafast", "g": str(fps)}
        for colour in colours:
            array = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
            array[:] = colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_video(path: Path, colours: Sequence[tuple[int, int, int]], fps: int = FPS) -> Path:
    """Write an mp4 whose frame ``i`` is the solid colour ``colours[i]``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _encode(str(path), colours, fps, None)
    return path


def clip_bytes(colour: tuple[int, int, int], num_frames: int = 10, fps: int = FPS) -> bytes:
    """An in-memory mp4 of ``num_frames`` frames of one colour."""
    buffer = io.BytesIO()
    _encode(buffer, [colour] * num_frames, fps, "mp4")
    return buffer.getvalue()


def _per_frame(segments: Sequence[tuple[int, int]], fps: int) -> list[int]:
    return [phase for phase, seconds in segments for _ in range(seconds * fps)]


def make_cholec80(
    root: Path,
    videos: Mapping[int, Sequence[tuple[int, int]]] | None = None,
    *,
    extra_rows: int = 0,
) -> dict[int, list[int]]:
    """Write a Cholec80 fixture.

    Args:
        root: the dataset folder.
        videos: video number -> [(phase index, seconds)]; default :data:`CHOLEC80_VIDEOS`.
        extra_rows: phase rows written past the end of each video (to make a bad annotation).

    Returns:
        Video number -> phase index of every frame at 25 fps.

    """
    videos = CHOLEC80_VIDEOS if videos is None else videos
    out = {}
    for number, segments in videos.items():
        phases = _per_frame(segments, FPS)
        write_video(root / "videos" / f"video{number:02d}.mp4", [PALETTE[p] for p in phases])
        rows = phases + [phases[-1]] * extra_rows
        phase_file = root / "phase_annotations" / f"video{number:02d}-phase.txt"
        phase_file.parent.mkdir(parents=True, exist_ok=True)
        phase_file.write_text("Frame\tPhase\n" + "".join(f"{i}\t{CHOLEC80_PHASES[p]}\n" for i, p in enumerate(rows)))
        tool_file = root / "tool_annotations" / f"video{number:02d}-tool.txt"
        tool_file.parent.mkdir(parents=True, exist_ok=True)
        lines = ["Frame\t" + "\t".join(TOOLS)]
        lines += [f"{i}\t" + "\t".join(map(str, PHASE_TOOLS[phases[i]])) for i in range(0, len(phases), FPS)]
        tool_file.write_text("\n".join(lines) + "\n")
        out[number] = phases
    return out


def make_autolaparo(
    root: Path,
    videos: Mapping[int, Sequence[tuple[int, int]]] | None = None,
    *,
    label_name: str = "label_{:02d}.txt",
    first_frame: int = 1,
) -> dict[int, list[int]]:
    """Write an AutoLaparo Task 1 fixture.

    Args:
        root: the dataset folder.
        videos: video number -> [(phase index, seconds)]; default :data:`AUTOLAPARO_VIDEOS`.
        label_name: label file name pattern (the release uses ``label_NN.txt``).
        first_frame: number of the first label row (the release starts at 1).

    Returns:
        Video number -> phase index of every second.

    """
    videos = AUTOLAPARO_VIDEOS if videos is None else videos
    out = {}
    for number, segments in videos.items():
        write_video(root / "videos" / f"{number:02d}.mp4", [PALETTE[p] for p in _per_frame(segments, FPS)])
        seconds = _per_frame(segments, 1)
        label = root / "labels" / label_name.format(number)
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("Frame\tPhase\n" + "".join(f"{first_frame + i}\t{p + 1}\n" for i, p in enumerate(seconds)))
        out[number] = seconds
    return out


def write_clip_shards(out_dir: Path, captions: Sequence[str], *, per_shard: int = 4) -> list[int]:
    """Write held-out clip shards as ``prepare surgery clips`` does: ``.mp4`` + ``.txt`` + ``.json``.

    Clip ``i`` is a solid clip of colour ``PALETTE[i % 7]`` captioned ``captions[i]``.

    Returns:
        The palette index of every clip, in order.

    """
    from domainclip.core.data.writer import ShardWriter

    colours = []
    with ShardWriter(out_dir, max_count=per_shard, mtime=0) as writer:
        for i, caption in enumerate(captions):
            colour = i % len(PALETTE)
            writer.write({
                "__key__": f"clip{i:04d}",
                "mp4": clip_bytes(PALETTE[colour]),
                "text": caption,
                "meta": {"video_id": f"v{i}", "start": 0.0, "end": 0.4, "level": "step"},
            })
            colours.append(colour)
    return colours


if __name__ == "__main__":
    target = Path(sys.argv[1])
    make_cholec80(target / "cholec80")
    make_autolaparo(target / "autolaparo")
    print(f"wrote {target}/cholec80 and {target}/autolaparo")
