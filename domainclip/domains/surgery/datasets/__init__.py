"""Dataset adapters of the surgery domain, and the frame-dataset machinery they share.

Surgical phase benchmarks (Cholec80, AutoLaparo) annotate long videos frame by frame; evaluation
samples frames at a fixed rate (1 fps in the CAMMA protocol) and classifies each. The adapters
parse and check the annotation files when built, keep only small per-video arrays (sampled times
and labels), and decode a frame only when it is indexed, through
:func:`domainclip.domains.surgery.video.open_video`. Each process keeps one video open at a time
(the one it read last), so memory does not grow with the dataset and a ``DataLoader`` worker
reading the frames of one video in order opens it once.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, get_worker_info

from domainclip.core.errors import DatasetNotFoundError, InputError

__all__ = [
    "AnnotationError",
    "DatasetNotFoundError",
    "LENGTH_TOLERANCE_S",
    "VideoAnnotation",
    "VideoFrameDataset",
    "read_table",
    "resolve_split",
]

#: How much longer (seconds) an annotation may run than its video before the pair is rejected.
LENGTH_TOLERANCE_S = 1.0


#: Datasets holding an open decoder; closed before the process forks (decord readers crash in a
#: forked child that inherits them, e.g. a DataLoader worker).
_HOLDERS: weakref.WeakSet[VideoFrameDataset] = weakref.WeakSet()


def _close_before_fork() -> None:
    for dataset in list(_HOLDERS):
        dataset.close()


os.register_at_fork(before=_close_before_fork)


class AnnotationError(InputError):
    """An annotation file is malformed or does not fit its video."""


def read_table(path: Path, header: Sequence[str]) -> list[tuple[int, list[str]]]:
    """Read a whitespace-separated annotation table with a fixed header line.

    Args:
        path: the text file.
        header: the expected column names of the first line.

    Returns:
        ``(line number, fields)`` for every non-blank data line; each has ``len(header)`` fields.

    Raises:
        AnnotationError: the header differs, a line has the wrong number of fields, or the file is empty.

    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path} is not UTF-8 text: {e}") from None
    lines = text.splitlines()
    if not lines or lines[0].split() != list(header):
        found = lines[0].split() if lines else []
        raise AnnotationError(f"{path}: header must be {' '.join(header)!r} (tab-separated), found {found}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(header):
            raise AnnotationError(f"{path}:{number}: expected {len(header)} fields {list(header)}, got {fields}")
        rows.append((number, fields))
    if not rows:
        raise AnnotationError(f"{path} has a header but no annotation rows")
    return rows


def resolve_split(split: str | Sequence[int], presets: dict[str, Sequence[int]], dataset: str) -> list[int]:
    """Video numbers of a split: a preset name from ``presets`` or an explicit sequence of numbers.

    Raises:
        UnknownNameError: an unknown preset name (the message lists close matches).
        ValueError: an empty or non-positive list of numbers.

    """
    from domainclip.core.plugins import UnknownNameError

    if isinstance(split, str):
        if split not in presets:
            raise UnknownNameError(f"{dataset} split", split, list(presets))
        return list(presets[split])
    numbers = [int(n) for n in split]
    if not numbers or any(n < 1 for n in numbers) or len(set(numbers)) != len(numbers):
        raise ValueError(f"{dataset} split must name distinct positive video numbers, got {list(split)}")
    return numbers


@dataclass(frozen=True)
class VideoAnnotation:
    """The sampled frames of one annotated video.

    Args:
        video_id: the video's name in the dataset (e.g. ``"video49"``).
        path: the video file.
        annotation: the annotation file the labels come from (named in errors).
        frames: ``(N,)`` frame numbers in the annotation's own frame numbering.
        times: ``(N,)`` time of each sampled frame in seconds from the start of the video.
        labels: ``(N,)`` class indices.
        tools: ``(N, C)`` 0/1 tool presence, or ``None`` when not loaded.
        length_s: how many seconds of video the annotation covers (rows / annotation rate); default
            the last sampled time.

    """

    video_id: str
    path: Path
    annotation: Path
    frames: np.ndarray
    times: np.ndarray
    labels: np.ndarray
    tools: np.ndarray | None = None
    length_s: float | None = None

    def __post_init__(self) -> None:
        n = len(self.frames)
        if len(self.times) != n or len(self.labels) != n or (self.tools is not None and len(self.tools) != n):
            raise ValueError(f"{self.video_id}: frames, times, labels and tools must have one entry per frame")


class VideoFrameDataset(Dataset):
    """Frames sampled from annotated videos, decoded lazily one frame per index.

    A sample is ``{"image": PIL RGB image (or transform(image)), "label": int, "meta": {"video_id",
    "frame", "time_s"}}`` plus ``"tools"`` (a float ``(C,)`` multi-hot tensor) when the annotations
    carry tools. Indices run through the videos in order and through each video's frames in time.

    Args:
        videos: the annotated videos (see :class:`VideoAnnotation`).
        transform: applied to the PIL frame (e.g. an open_clip preprocess).
        backend: video decoding backend passed to ``open_video``.
        check_lengths: open every video once when built and reject an annotation that runs more than
            :data:`LENGTH_TOLERANCE_S` past the end of its video.

    """

    def __init__(
        self,
        videos: Sequence[VideoAnnotation],
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        backend: str = "auto",
        check_lengths: bool = True,
    ):
        if not videos:
            raise ValueError(f"{type(self).__name__}: no videos")
        self.videos = list(videos)
        self.transform = transform
        self.backend = backend
        self._offsets = np.cumsum([0] + [len(v.frames) for v in self.videos]).tolist()
        self._open: tuple[int, int, Any, contextlib.ExitStack] | None = None  # (pid, video, Video, stack)
        if check_lengths:
            for video in self.videos:
                self._check_length(video)

    # ------------------------------------------------------------------ index
    def __len__(self) -> int:
        return self._offsets[-1]

    @property
    def video_ids(self) -> list[str]:
        """The videos' ids, in dataset order."""
        return [v.video_id for v in self.videos]

    @property
    def labels(self) -> np.ndarray:
        """Class index of every sample, in index order (no decoding)."""
        return np.concatenate([v.labels for v in self.videos]).astype(np.int64)

    @property
    def sample_video(self) -> np.ndarray:
        """Position (in :attr:`videos`) of the video each sample comes from, in index order."""
        return np.repeat(np.arange(len(self.videos)), [len(v.frames) for v in self.videos])

    def locate(self, index: int) -> tuple[int, int]:
        """Map a dataset index to ``(video position, frame position within that video)``."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        video = bisect.bisect_right(self._offsets, index) - 1
        return video, index - self._offsets[video]

    # ------------------------------------------------------------------ decoding
    def _video(self, position: int) -> Any:
        """The open ``Video`` of ``self.videos[position]``, opening it (and closing the previous) if needed."""
        from domainclip.domains.surgery.video import open_video

        pid = os.getpid()
        if self._open is not None and self._open[0] == pid and self._open[1] == position:
            return self._open[2]
        self.close()
        stack = contextlib.ExitStack()
        threads = 1 if get_worker_info() is not None else 0  # one decoder thread per loader worker
        video = stack.enter_context(open_video(self.videos[position].path, backend=self.backend, threads=threads))
        self._open = (pid, position, video, stack)
        _HOLDERS.add(self)
        return video

    def close(self) -> None:
        """Close the video this process holds open (a later index reopens what it needs)."""
        if self._open is not None:
            held, self._open = self._open, None
            if held[0] == os.getpid():  # a forked copy must not close its parent's decoder
                held[3].close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = None  # decoders do not travel to worker processes
        return state

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def _check_length(self, annotated: VideoAnnotation) -> None:
        from domainclip.domains.surgery.video import VideoDecodeError, open_video

        try:
            with open_video(annotated.path, backend=self.backend) as video:
                duration = float(video.duration)
        except VideoDecodeError as e:
            raise AnnotationError(f"{annotated.path}: cannot read the video: {e}") from None
        length = annotated.length_s
        if length is None:
            length = float(annotated.times[-1]) if len(annotated.times) else 0.0
        if length > duration + LENGTH_TOLERANCE_S:
            raise AnnotationError(
                f"{annotated.annotation} annotates {length:.2f} s but the video {annotated.path} lasts "
                f"{duration:.2f} s: the annotation is longer than the video (wrong file pairing?)"
            )

    def frame(self, index: int) -> np.ndarray:
        """Decode the frame of a dataset index: ``(H, W, 3)`` uint8 RGB."""
        position, offset = self.locate(index)
        annotated = self.videos[position]
        video = self._video(position)
        time_s = min(float(annotated.times[offset]), float(video.duration))  # within the length tolerance
        return np.asarray(video.get_frames_at([time_s])[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        position, offset = self.locate(index)
        annotated = self.videos[position]
        image: Any = Image.fromarray(self.frame(index))
        if self.transform is not None:
            image = self.transform(image)
        sample: dict[str, Any] = {
            "image": image,
            "label": int(annotated.labels[offset]),
            "meta": {
                "video_id": annotated.video_id,
                "frame": int(annotated.frames[offset]),
                "time_s": float(annotated.times[offset]),
            },
        }
        if annotated.tools is not None:
            sample["tools"] = torch.from_numpy(annotated.tools[offset].astype(np.float32))
        return sample
