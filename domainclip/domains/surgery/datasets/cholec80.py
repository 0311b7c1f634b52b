"""Cholec80: 80 laparoscopic cholecystectomy videos with phase and tool-presence annotations.

Layout (the CAMMA release)::

    root/
      videos/videoNN.mp4                     # 25 fps, NN = 01..80
      phase_annotations/videoNN-phase.txt    # "Frame<TAB>Phase", one row per frame at 25 fps
      tool_annotations/videoNN-tool.txt      # "Frame<TAB>Grasper<TAB>...<TAB>SpecimenBag", every 25 frames

Phase rows are numbered 0, 1, 2, ... and name one of :data:`~domainclip.domains.surgery.labels.CHOLEC80_PHASES`;
tool rows (frames 0, 25, 50, ...) hold 0/1 per tool. Splits (:data:`SPLITS`): ``train`` 1-40 and
``test`` 41-80 (the split of many works); ``camma_val`` 41-48 and ``camma_test`` 49-80 (the
TeCNO / SurgVLP protocol; zero-shot results are reported on ``camma_test``); ``all`` 1-80; or any
list of video numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from domainclip.domains.surgery.datasets import (
    AnnotationError,
    DatasetNotFoundError,
    VideoAnnotation,
    VideoFrameDataset,
    read_table,
    resolve_split,
)
from domainclip.domains.surgery.labels import CHOLEC80_PHASES, CHOLEC80_TOOLS

__all__ = ["ANNOTATION_FPS", "Cholec80", "SPLITS", "read_phase_annotation", "read_tool_annotation"]

#: Frame rate of the videos and of the phase annotation.
ANNOTATION_FPS = 25.0

#: Named splits: video numbers.
SPLITS: dict[str, tuple[int, ...]] = {
    "train": tuple(range(1, 41)),
    "test": tuple(range(41, 81)),
    "camma_val": tuple(range(41, 49)),
    "camma_test": tuple(range(49, 81)),
    "all": tuple(range(1, 81)),
}

_LAYOUT = (
    "expected videos/videoNN.mp4, phase_annotations/videoNN-phase.txt and (with tools) "
    "tool_annotations/videoNN-tool.txt"
)
_PHASE_INDEX = {name: i for i, name in enumerate(CHOLEC80_PHASES)}


def read_phase_annotation(path: Path) -> np.ndarray:
    """Read a ``videoNN-phase.txt`` file.

    Returns:
        ``(N,)`` int64 phase indices (into ``CHOLEC80_PHASES``), one per frame at 25 fps.

    Raises:
        AnnotationError: wrong header, frame numbers that are not 0, 1, 2, ..., or an unknown phase,
            naming the file and line.

    """
    rows = read_table(path, ("Frame", "Phase"))
    labels = np.empty(len(rows), dtype=np.int64)
    for i, (line, (frame, phase)) in enumerate(rows):
        if frame != str(i):
            raise AnnotationError(f"{path}:{line}: frame numbers must run 0, 1, 2, ...; expected {i}, got {frame!r}")
        if phase not in _PHASE_INDEX:
            raise AnnotationError(f"{path}:{line}: unknown phase {phase!r}; phases: {', '.join(CHOLEC80_PHASES)}")
        labels[i] = _PHASE_INDEX[phase]
    return labels


def read_tool_annotation(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``videoNN-tool.txt`` file.

    Returns:
        ``(frames, tools)``: ``(M,)`` increasing frame numbers (25 fps numbering) and ``(M, 7)`` uint8
        presence in :data:`~domainclip.domains.surgery.labels.CHOLEC80_TOOLS` order.

    Raises:
        AnnotationError: wrong header, a non-integer or non-increasing frame, or a value other than
            0/1, naming the file and line.

    """
    rows = read_table(path, ("Frame", *CHOLEC80_TOOLS))
    frames = np.empty(len(rows), dtype=np.int64)
    tools = np.empty((len(rows), len(CHOLEC80_TOOLS)), dtype=np.uint8)
    previous = -1
    for i, (line, fields) in enumerate(rows):
        try:
            frame = int(fields[0])
        except ValueError:
            raise AnnotationError(f"{path}:{line}: frame {fields[0]!r} is not an integer") from None
        if frame <= previous:
            raise AnnotationError(f"{path}:{line}: frame {frame} does not follow {previous} (must increase)")
        bad = [v for v in fields[1:] if v not in ("0", "1")]
        if bad:
            raise AnnotationError(f"{path}:{line}: tool presence must be 0 or 1, got {bad}")
        frames[i] = previous = frame
        tools[i] = [int(v) for v in fields[1:]]
    return frames, tools


def _sampled_frames(num_frames: int, fps: float) -> np.ndarray:
    step = ANNOTATION_FPS / fps
    return np.unique(np.floor(np.arange(0.0, num_frames, step) + 1e-9).astype(np.int64))


class Cholec80(VideoFrameDataset):
    """Cholec80 frames sampled at ``fps`` with their phase label (and tool presence), decoded lazily.

    See the module docstring for the layout and splits. A sample is ``{"image", "label" (phase
    index), "meta": {"video_id": "videoNN", "frame" (25 fps number), "time_s"}}`` plus ``"tools"``
    (``(7,)`` float multi-hot) when ``tools=True``.

    Args:
        root: the dataset folder.
        split: a name in :data:`SPLITS` or a list of video numbers.
        fps: sampling rate in frames per second, at most 25 (1 fps is the CAMMA protocol).
        transform: applied to each PIL frame.
        tools: also load the tool annotation; then only sampled frames that have a tool row are kept
            (at 1 fps that is every frame, as tools are annotated once a second).
        backend: video decoding backend (see ``domainclip.domains.surgery.video.open_video``).
        check_lengths: open each video when built and reject annotations longer than it.

    Raises:
        DatasetNotFoundError: the folder, a sub-folder, or files of the split are missing (all are named).
        AnnotationError: an annotation file is malformed or longer than its video.

    """

    splits = SPLITS

    def __init__(
        self,
        root: str | Path,
        split: str | Sequence[int] = "test",
        fps: float = 1.0,
        transform: Callable[[Image.Image], Any] | None = None,
        tools: bool = False,
        *,
        backend: str = "auto",
        check_lengths: bool = True,
    ):
        if not 0 < fps <= ANNOTATION_FPS:
            raise ValueError(f"Cholec80 fps must lie in (0, {ANNOTATION_FPS:g}], got {fps}")
        self.root = Path(root)
        self.split = split
        self.fps = float(fps)
        numbers = resolve_split(split, SPLITS, "Cholec80")
        folders = ["videos", "phase_annotations"] + (["tool_annotations"] if tools else [])
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"Cholec80 not found: {self.root} is not a folder; {_LAYOUT}")
        for folder in folders:
            if not (self.root / folder).is_dir():
                raise DatasetNotFoundError(f"Cholec80 at {self.root} has no {folder}/ folder; {_LAYOUT}")
        files = {}
        missing = []
        for n in numbers:
            name = f"video{n:02d}"
            paths = [
                self.root / "videos" / f"{name}.mp4",
                self.root / "phase_annotations" / f"{name}-phase.txt",
            ]
            if tools:
                paths.append(self.root / "tool_annotations" / f"{name}-tool.txt")
            missing.extend(str(p) for p in paths if not p.is_file())
            files[name] = paths
        if missing:
            shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
            raise DatasetNotFoundError(f"Cholec80 split {split!r}: missing {len(missing)} file(s): {shown}")
        videos = [self._annotate(name, paths, tools) for name, paths in files.items()]
        super().__init__(videos, transform, backend=backend, check_lengths=check_lengths)

    def _annotate(self, name: str, paths: list[Path], tools: bool) -> VideoAnnotation:
        phase_labels = read_phase_annotation(paths[1])
        frames = _sampled_frames(len(phase_labels), self.fps)
        tool_rows = None
        if tools:
            tool_frames, presence = read_tool_annotation(paths[2])
            if tool_frames[-1] >= len(phase_labels) + ANNOTATION_FPS:
                raise AnnotationError(
                    f"{paths[2]} annotates frame {tool_frames[-1]} but {paths[1]} has only {len(phase_labels)} "
                    "frames: the tool and phase annotations do not belong to the same video"
                )
            position = np.searchsorted(tool_frames, frames)
            position = np.minimum(position, len(tool_frames) - 1)
            keep = tool_frames[position] == frames
            frames, tool_rows = frames[keep], presence[position[keep]]
            if not len(frames):
                raise AnnotationError(f"{paths[2]}: no tool row falls on a frame sampled at {self.fps:g} fps")
        return VideoAnnotation(
            video_id=name,
            path=paths[0],
            annotation=paths[1],
            frames=frames,
            times=frames / ANNOTATION_FPS,
            labels=phase_labels[frames],
            tools=tool_rows,
            length_s=len(phase_labels) / ANNOTATION_FPS,
        )
