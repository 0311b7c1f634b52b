"""AutoLaparo Task 1: 21 laparoscopic hysterectomy videos with phase annotations at 1 fps.

Layout (the AutoLaparo release)::

    root/
      videos/NN.mp4            # NN = 01..21
      labels/label_NN.txt      # "Frame<TAB>Phase", one row per second; phases numbered 1-7

The release names label files ``label_NN.txt``; ``labelNN.txt`` is accepted too. Frame numbers
count seconds and must be consecutive (the release starts at 1; a file starting at 0 is read the
same way): row ``i`` labels the frame at ``i`` seconds. Phase numbers index
:data:`~domainclip.domains.surgery.labels.AUTOLAPARO_PHASES` from 1. Splits (:data:`SPLITS`, as in
the AutoLaparo paper): ``train`` 1-10, ``val`` 11-14, ``test`` 15-21; ``all`` 1-21; or any list of
video numbers.
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
from domainclip.domains.surgery.labels import AUTOLAPARO_PHASES

__all__ = ["AutoLaparo", "LABEL_FPS", "SPLITS", "read_label_file"]

#: Rate of the phase labels (one row per second).
LABEL_FPS = 1.0

#: Named splits: video numbers.
SPLITS: dict[str, tuple[int, ...]] = {
    "train": tuple(range(1, 11)),
    "val": tuple(range(11, 15)),
    "test": tuple(range(15, 22)),
    "all": tuple(range(1, 22)),
}

_LAYOUT = "expected videos/NN.mp4 and labels/label_NN.txt"


def read_label_file(path: Path) -> np.ndarray:
    """Read an AutoLaparo ``label_NN.txt`` file.

    Returns:
        ``(N,)`` int64 phase indices (phase number minus one), one per second.

    Raises:
        AnnotationError: wrong header, non-consecutive frame numbers or a phase outside 1-7, naming the
            file and line.

    """
    rows = read_table(path, ("Frame", "Phase"))
    labels = np.empty(len(rows), dtype=np.int64)
    start = None
    for i, (line, (frame, phase)) in enumerate(rows):
        try:
            number, value = int(frame), int(phase)
        except ValueError:
            raise AnnotationError(f"{path}:{line}: frame and phase must be integers, got {frame!r} {phase!r}") from None
        if start is None:
            if number not in (0, 1):
                raise AnnotationError(f"{path}:{line}: frame numbers must start at 1 (or 0), got {number}")
            start = number
        if number != start + i:
            raise AnnotationError(
                f"{path}:{line}: frame numbers must be consecutive; expected {start + i}, got {number}"
            )
        if not 1 <= value <= len(AUTOLAPARO_PHASES):
            raise AnnotationError(f"{path}:{line}: phase must be 1-{len(AUTOLAPARO_PHASES)}, got {value}")
        labels[i] = value - 1
    return labels


class AutoLaparo(VideoFrameDataset):
    """AutoLaparo Task 1 frames at 1 fps with their phase label, decoded lazily.

    See the module docstring for the layout and splits. A sample is ``{"image", "label" (phase index),
    "meta": {"video_id": "NN", "frame" (row number from 0), "time_s"}}``.

    Args:
        root: the dataset folder (holding ``videos/`` and ``labels/``).
        split: a name in :data:`SPLITS` or a list of video numbers.
        transform: applied to each PIL frame.
        backend: video decoding backend (see ``domainclip.domains.surgery.video.open_video``).
        check_lengths: open each video when built and reject label files longer than it.

    Raises:
        DatasetNotFoundError: the folder, a sub-folder, or files of the split are missing (all are named).
        AnnotationError: a label file is malformed or longer than its video.

    """

    splits = SPLITS

    def __init__(
        self,
        root: str | Path,
        split: str | Sequence[int] = "test",
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        backend: str = "auto",
        check_lengths: bool = True,
    ):
        self.root = Path(root)
        self.split = split
        numbers = resolve_split(split, SPLITS, "AutoLaparo")
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"AutoLaparo not found: {self.root} is not a folder; {_LAYOUT}")
        for folder in ("videos", "labels"):
            if not (self.root / folder).is_dir():
                raise DatasetNotFoundError(f"AutoLaparo at {self.root} has no {folder}/ folder; {_LAYOUT}")
        missing: list[str] = []
        pairs: list[tuple[str, Path, Path]] = []
        for n in numbers:
            video = self.root / "videos" / f"{n:02d}.mp4"
            candidates = [self.root / "labels" / f"label_{n:02d}.txt", self.root / "labels" / f"label{n:02d}.txt"]
            label = next((p for p in candidates if p.is_file()), None)
            if not video.is_file():
                missing.append(str(video))
            if label is None:
                missing.append(str(candidates[0]))
            else:
                pairs.append((f"{n:02d}", video, label))
        if missing:
            shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
            raise DatasetNotFoundError(f"AutoLaparo split {split!r}: missing {len(missing)} file(s): {shown}")
        videos = []
        for name, video, label in pairs:
            labels = read_label_file(label)
            frames = np.arange(len(labels), dtype=np.int64)
            length = len(labels) / LABEL_FPS
            videos.append(VideoAnnotation(name, video, label, frames, frames / LABEL_FPS, labels, length_s=length))
        super().__init__(videos, transform, backend=backend, check_lengths=check_lengths)
