"""Video files and frame folders as random-access frame sources, frame samplers, and clip encoding.

* :func:`open_video` opens a video file (path or in-memory bytes) with a backend from
  :data:`BACKENDS`: ``"pyav"`` (PyAV: seeks to the keyframe before each requested frame, then
  decodes forward, skipping non-reference frames, and picks frames by presentation timestamp),
  ``"torchcodec"`` (torchcodec's ``VideoDecoder`` in exact seek mode, on PyAV's FFmpeg),
  ``"decord"`` (``decord.VideoReader``) or ``"auto"`` (the first of :data:`AUTO_ORDER` installed
  that opens the file). A folder path opens a :class:`FrameFolder` of pre-extracted frames
  (SurgLaVi ships WebP frames).
* Every source is a :class:`Video`: ``fps``, exact ``num_frames``, ``duration``, ``width``,
  ``height``, and :meth:`Video.get_frames` -> ``uint8`` ``(T, H, W, 3)`` RGB in the order asked.
* :func:`sample_indices` picks frame indices of a time span with a sampler from :data:`SAMPLERS`
  (``"uniform"``: N segment centres, jittered inside their segment for training; ``"fps"``: a fixed
  rate such as CAMMA's 1 fps; ``"all"``).
* :func:`encode_clip` encodes frames to an in-memory mp4/webm with PyAV (codecs in :data:`CODECS`);
  :func:`cut_clip` cuts a time span of a video into such a clip (optionally downscaled and
  resampled), streaming frames so long spans never sit in memory at once; :func:`frames_to_npy` /
  :func:`npy_to_frames` store raw frames as ``.frames.npy`` shard members instead.

Anything unreadable raises :class:`VideoDecodeError`, whose message names the file (``<bytes>`` plus
the given name for in-memory data) and what is wrong: not a video, truncated, no video stream, a
frame index out of range.
"""

from __future__ import annotations

import abc
import ctypes
import hashlib
import importlib
import importlib.util
import io
import json
import math
import os
import random
import re
import shutil
import struct
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.plugins import MissingExtraError, UnknownNameError, require

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "Backend",
    "CODECS",
    "FRAME_SUFFIXES",
    "ClipEncoder",
    "SAMPLERS",
    "VIDEO_SUFFIXES",
    "Sampler",
    "Codec",
    "FrameFolder",
    "Video",
    "VideoDecodeError",
    "clip_suffix",
    "cut_clip",
    "encode_clip",
    "frames_to_npy",
    "npy_to_frames",
    "open_frames",
    "open_video",
    "sample_indices",
]

#: File suffixes treated as video files (lower case, with the dot).
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv")
#: Image suffixes of pre-extracted frames read by :class:`FrameFolder`.
FRAME_SUFFIXES: tuple[str, ...] = (".webp", ".jpg", ".jpeg", ".png")

_EXTRA = "surgery"


class VideoDecodeError(InputError):
    """A video (or frame folder) cannot be read.

    Args:
        name: the file (path, or ``"<bytes>"`` / ``"<bytes NAME>"`` for in-memory data).
        problem: what is wrong (not a video, truncated, no video stream, index out of range, ...).

    """

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem

    def __reduce__(self):  # keep the two-argument constructor picklable (DataLoader workers)
        return (type(self), (self.name, self.problem))


# =========================================================================== sources and diagnosis
@dataclass
class _Input:
    """A path or bytes with its display name; reads byte ranges for diagnosis."""

    source: str | Path | bytes
    name: str

    @classmethod
    def of(cls, source: str | Path | bytes, name: str | None) -> _Input:
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
            return cls(data, f"<bytes {name}>" if name else "<bytes>")
        if not isinstance(source, str | Path):
            raise TypeError(f"video source must be a path or bytes, not {type(source).__name__}")
        path = Path(source)
        return cls(path, name or str(path))

    @property
    def size(self) -> int:
        if isinstance(self.source, bytes):
            return len(self.source)
        return Path(self.source).stat().st_size

    def read_at(self, offset: int, n: int) -> bytes:
        if isinstance(self.source, bytes):
            return self.source[offset : offset + n]
        with open(self.source, "rb") as f:
            f.seek(offset)
            return f.read(n)

    def opener(self) -> str | io.BytesIO:
        """What the decoding libraries take: a path string or a fresh ``BytesIO``."""
        return io.BytesIO(self.source) if isinstance(self.source, bytes) else str(self.source)


def _container_kind(head: bytes) -> str | None:
    """The container family a file's first bytes announce, or ``None`` when none is recognised."""
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska/webm"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:3] == b"FLV":
        return "flv"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "mpeg-ps"
    if head[:1] == b"\x47" and (len(head) < 189 or head[188:189] == b"\x47"):
        return "mpeg-ts"
    return None


def _mp4_problem(data: _Input, size: int) -> str | None:
    """Walk the top-level ISO-BMFF boxes; describe a truncation or a missing ``moov`` box."""
    pos = 0
    seen: list[str] = []
    while pos + 8 <= size:
        header = data.read_at(pos, 16)
        box_size = int.from_bytes(header[:4], "big")
        kind = header[4:8].decode("latin-1")
        if box_size == 1:
            if len(header) < 16:
                return f"truncated mp4: the header of the {kind!r} box at byte {pos} is cut off"
            box_size = int.from_bytes(header[8:16], "big")
        elif box_size == 0:
            box_size = size - pos
        if box_size < 8:
            return f"damaged mp4: the {kind!r} box at byte {pos} declares an invalid size of {box_size} bytes"
        if pos + box_size > size:
            return (
                f"truncated mp4: the {kind!r} box at byte {pos} declares {box_size} bytes but the file "
                f"ends {size - pos} bytes after its start ({size} bytes in all)"
            )
        seen.append(kind)
        pos += box_size
    if pos < size:
        return f"truncated mp4: {size - pos} stray bytes after the last complete box at byte {pos}"
    if "moov" not in seen:
        return f"truncated or unfinished mp4: no 'moov' box (top-level boxes: {', '.join(seen)})"
    return None


def _diagnose(data: _Input, error: BaseException | str) -> str:
    """Describe why a file could not be opened as a video: empty, not a video, truncated, ..."""
    size = data.size
    if size == 0:
        return "empty file (0 bytes), not a video"
    head = data.read_at(0, 512)
    kind = _container_kind(head)
    detail = " ".join(str(error).split())[:300]
    if kind is None:
        return f"not a video: no known video container signature (the data starts with {head[:16]!r})"
    if kind == "mp4":
        problem = _mp4_problem(data, size)
        if problem:
            return problem
    if "video stream" in detail.lower():
        return f"no video stream in this {kind} file ({detail})"
    return f"damaged or unsupported {kind} file, possibly truncated ({detail})"


# =========================================================================== the Video interface
class Video(abc.ABC):
    """A random-access source of RGB frames (a decoded video file or a folder of frames).

    Use as a context manager (or call :meth:`close`). Frame ``i`` is shown from
    ``frame_times()[i]`` seconds after the first frame, for ``1 / fps`` seconds.

    Attributes:
        name: the file or folder (``"<bytes NAME>"`` for in-memory data), used in errors.
        backend: which backend reads it (``"decord"``, ``"pyav"``, ``"torchcodec"``, ``"frames"``).
        fps: average frame rate.
        num_frames: exact number of frames.
        width: frame width in pixels.
        height: frame height in pixels.

    """

    name: str
    backend: str
    fps: float
    num_frames: int
    width: int
    height: int

    # ------------------------------------------------------------------ subclass hooks
    @abc.abstractmethod
    def _read(self, indices: np.ndarray) -> np.ndarray:
        """Frames at sorted, unique, in-range ``indices`` as ``uint8`` ``(N, H, W, 3)``."""

    def frame_times(self) -> np.ndarray:
        """Start time of every frame in seconds from the first frame, ``float64`` ``(num_frames,)``."""
        return np.arange(self.num_frames, dtype=np.float64) / self.fps

    @abc.abstractmethod
    def close(self) -> None:
        """Release the file handle and decoder (the object is unusable afterwards)."""

    # ------------------------------------------------------------------ public interface
    @property
    def duration(self) -> float:
        """Length in seconds: start of the last frame plus one frame period."""
        if self.num_frames == 0:
            return 0.0
        return float(self.frame_times()[-1]) + 1.0 / self.fps

    def __len__(self) -> int:
        return self.num_frames

    def __enter__(self) -> Video:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, backend={self.backend!r}, {self.width}x{self.height}, "
            f"{self.num_frames} frames, {self.fps:g} fps)"
        )

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Decode frames by index.

        Args:
            indices: frame indices in ``[0, num_frames)``, in any order; duplicates are allowed.

        Returns:
            ``uint8`` array ``(len(indices), height, width, 3)``, RGB, in the order of ``indices``.

        Raises:
            VideoDecodeError: an index is out of range, or a frame cannot be decoded.

        """
        wanted = np.asarray(indices)
        if wanted.size == 0:
            return np.empty((0, self.height, self.width, 3), dtype=np.uint8)
        if wanted.ndim != 1 or not (np.issubdtype(wanted.dtype, np.integer) or _all_integral(wanted)):
            raise TypeError(f"{self.name}: frame indices must be a 1-D sequence of integers, got {indices!r}")
        wanted = wanted.astype(np.int64)
        bad = wanted[(wanted < 0) | (wanted >= self.num_frames)]
        if bad.size:
            raise VideoDecodeError(
                self.name, f"frame index {int(bad[0])} out of range: the video has {self.num_frames} frames "
                f"(valid indices 0..{self.num_frames - 1})"
            )
        unique, inverse = np.unique(wanted, return_inverse=True)
        frames = self._read(unique)
        if frames.shape[0] != unique.size:
            raise VideoDecodeError(self.name, f"asked for {unique.size} frames, the decoder gave {frames.shape[0]}")
        if unique.size == wanted.size and np.array_equal(unique, wanted):
            return frames
        return frames[inverse.reshape(-1)]

    def index_at(self, times_s: Sequence[float] | np.ndarray) -> np.ndarray:
        """Index of the frame shown at each time (seconds from the first frame).

        Raises:
            VideoDecodeError: a time is negative or after :attr:`duration`.

        """
        times = np.asarray(times_s, dtype=np.float64).reshape(-1)
        bad = times[(times < 0) | (times > self.duration + 1e-9) | ~np.isfinite(times)]
        if bad.size:
            raise VideoDecodeError(
                self.name, f"time {float(bad[0])} s out of range: the video lasts {self.duration:.3f} s"
            )
        starts = self.frame_times()
        index = np.searchsorted(starts, times + 1e-9, side="right") - 1
        return np.clip(index, 0, self.num_frames - 1)

    def get_frames_at(self, times_s: Sequence[float] | np.ndarray) -> np.ndarray:
        """Decode the frames shown at the given times (seconds from the first frame).

        Returns:
            ``uint8`` array ``(len(times_s), height, width, 3)``, RGB, in the order given.

        """
        return self.get_frames(self.index_at(times_s))


def _all_integral(values: np.ndarray) -> bool:
    return np.issubdtype(values.dtype, np.floating) and bool(np.all(np.isfinite(values) & (values == np.round(values))))


def _rgb_batch(frames: Any) -> np.ndarray:
    array = frames.asnumpy() if hasattr(frames, "asnumpy") else np.asarray(frames)
    return np.ascontiguousarray(array, dtype=np.uint8)


# =========================================================================== decord backend
def _import_decord() -> Any:
    """Import decord, loading PyAV (when installed) first.

    decord's wheel bundles FFmpeg 4 with its own libvpx; loaded first, that libvpx takes over
    PyAV's symbols and PyAV's VP9 encoder then fails to open (``avcodec_open2("libvpx-vp9")``
    returns EINVAL). With PyAV loaded first both work.
    """
    try:
        importlib.import_module("av")
    except ImportError:
        pass
    return require("decord", _EXTRA, "decoding videos with decord")


class _DecordVideo(Video):
    """``decord.VideoReader`` behind the :class:`Video` interface.

    The first frame is decoded when the file is opened: decord 0.6.0 lands on the wrong frame
    when its very first access is a seek (``get_batch([140])`` on a fresh reader of
    ``cockatoo.mp4`` returns frame 161, with H.264 reference errors), and it seeks correctly once
    a frame was decoded. This also gives the frame size, which decord does not report.
    """

    backend = "decord"

    def __init__(self, data: _Input, threads: int):
        decord = _import_decord()
        self.name = data.name
        errors: tuple[type[BaseException], ...] = (RuntimeError, getattr(decord, "DECORDError", RuntimeError))
        try:
            self._reader = decord.VideoReader(data.opener(), ctx=decord.cpu(0), num_threads=threads)
            self.num_frames = len(self._reader)
            if self.num_frames == 0:
                raise VideoDecodeError(self.name, "the video stream has no frames")
            self._times = np.asarray(self._reader.get_frame_timestamp(range(self.num_frames)), dtype=np.float64)
            self._first = _rgb_batch(self._reader.get_batch([0]))
        except errors as e:
            raise VideoDecodeError(self.name, _diagnose(data, e)) from None
        self._errors = errors
        self.height, self.width = int(self._first.shape[1]), int(self._first.shape[2])
        self.fps = float(self._reader.get_avg_fps())
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise VideoDecodeError(self.name, f"the video stream has no usable frame rate ({self.fps})")

    def frame_times(self) -> np.ndarray:
        starts = self._times[:, 0]
        return np.round(starts - starts[0], 6)  # decord keeps float32 seconds

    def _read(self, indices: np.ndarray) -> np.ndarray:
        try:
            return _rgb_batch(self._reader.get_batch(indices.tolist()))
        except self._errors as e:
            raise VideoDecodeError(
                self.name, f"frames {indices[:8].tolist()} cannot be decoded (truncated or damaged video?): "
                f"{' '.join(str(e).split())[:300]}"
            ) from None

    def close(self) -> None:
        self._reader = None
        self._first = None


# =========================================================================== PyAV backend
#: Frame indexes of the files the PyAV backend opened last, by (path, size, mtime): read-only arrays.
_PYAV_INDEX: dict[tuple[str, int, int], tuple[Any, ...]] = {}
_PYAV_INDEX_SIZE = 256


class _PyAVVideo(Video):
    """PyAV behind the :class:`Video` interface, frame-accurate by presentation timestamp.

    Opening demuxes the video stream once (no decoding) to index every packet's timestamp and the
    keyframes, which makes ``num_frames`` exact whatever the container header claims, then passes
    the first packet through the decoder (:meth:`_prime`). That priming matters: H.264 streams may
    carry parameter sets in-band with their first frame, and FFmpeg decodes garbage when its first
    packet is a later keyframe
    (``cockatoo.mp4`` seeked to its keyframe 76 on a fresh decoder gives wrong frames; decord 0.6.0
    has the same problem). Reading sorted frames decodes forward from where the previous read
    stopped, seeking to a keyframe only when one lies between that position and the next wanted
    frame, or when a frame before it is wanted. Non-reference frames before a wanted frame are not
    decoded at all (see :meth:`_decode_packets`): about a third of the frames of a typical x264
    stream with B-frames, none of which any other frame needs. A file opened again (same path, size
    and modification time) reuses its index from the process's last 256 files.
    """

    backend = "pyav"

    def __init__(self, data: _Input, threads: int):
        av = require("av", _EXTRA, "decoding videos with PyAV")
        self.name = data.name
        self._av = av
        self._frames: Iterator[Any] | None = None  # the decode generator, positioned after _last
        self._last: Any = None  # the last decoded frame
        self._skip_below = -(2**62)  # pts below which non-reference frames are not decoded
        try:
            self._container = av.open(data.opener(), mode="r")
        except (av.FFmpegError, OSError) as e:
            raise VideoDecodeError(self.name, _diagnose(data, e)) from None
        try:
            streams = self._container.streams
            if not streams.video:
                kinds = ", ".join(sorted({s.type for s in streams})) or "no streams at all"
                raise VideoDecodeError(self.name, f"no video stream (the file has: {kinds})")
            self._stream = streams.video[0]
            self._stream.thread_type = "AUTO"
            self._stream.codec_context.thread_count = max(0, threads)
            self._index_cached(data)
            self._prime(data)
        except BaseException:
            self._container.close()
            raise

    def _index_cached(self, data: _Input) -> None:
        """:meth:`_index`, reused for a file already indexed by this process (same path, size and mtime).

        A data-loader worker reading several clips of one video demuxes it once: the scan costs about
        as much as decoding a clip on a minute-long video, and grows with the video's length.
        """
        key = None
        if isinstance(data.source, Path):
            stat = data.source.stat()
            key = (str(data.source.resolve()), stat.st_size, stat.st_mtime_ns)
            cached = _PYAV_INDEX.get(key)
            if cached is not None:
                (self._pts, self._keys, self.num_frames, self._time_base, self.fps, self.width,
                 self.height) = cached
                return
        self._index(data)
        self._pts.setflags(write=False)
        self._keys.setflags(write=False)
        if key is not None:
            if len(_PYAV_INDEX) >= _PYAV_INDEX_SIZE:
                _PYAV_INDEX.pop(next(iter(_PYAV_INDEX)))
            _PYAV_INDEX[key] = (self._pts, self._keys, self.num_frames, self._time_base, self.fps, self.width,
                                self.height)

    def _index(self, data: _Input) -> None:
        stream = self._stream
        pts: list[int] = []
        keys: list[int] = []
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0:
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    raise VideoDecodeError(self.name, "a video packet has no timestamp; cannot index frames")
                pts.append(int(stamp))
                if packet.is_keyframe:
                    keys.append(int(stamp))
        except self._av.FFmpegError as e:
            if not pts:
                raise VideoDecodeError(self.name, _diagnose(data, e)) from None
            # a damaged tail: keep the frames indexed before it (reads past it fail clearly)
        if not pts:
            raise VideoDecodeError(self.name, _diagnose(data, "the video stream has no frames"))
        order = np.asarray(sorted(pts), dtype=np.int64)
        if np.unique(order).size != order.size:
            raise VideoDecodeError(self.name, "several video frames share one timestamp; cannot index frames")
        self._pts = order
        self._keys = np.asarray(sorted(keys) or [int(order[0])], dtype=np.int64)
        self.num_frames = int(order.size)
        self._time_base = float(stream.time_base) if stream.time_base else 1.0
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if rate:
            self.fps = float(rate)
        elif order.size > 1:
            self.fps = 1.0 / float(np.median(np.diff(order)) * self._time_base)
        else:
            raise VideoDecodeError(self.name, "the video stream has no frame rate")
        context = stream.codec_context
        self.width, self.height = int(context.width), int(context.height)
        if self.width <= 0 or self.height <= 0:
            raise VideoDecodeError(self.name, f"the video stream has no frame size ({self.width}x{self.height})")

    def frame_times(self) -> np.ndarray:
        return (self._pts - self._pts[0]).astype(np.float64) * self._time_base

    def _prime(self, data: _Input) -> None:
        """Pass the first packet through the decoder without decoding its picture (``skip_frame = ALL``).

        The decoder still parses what the packet carries besides the picture (H.264/HEVC parameter
        sets, SEI), which is all that a later seek to another keyframe needs, at a fraction of the
        cost of decoding frame 0. The next read seeks.
        """
        context = self._stream.codec_context
        self._container.seek(int(self._keys[0]), stream=self._stream, backward=True, any_frame=False)
        context.skip_frame = "ALL"
        try:
            for packet in self._container.demux(self._stream):
                if packet.size > 0:
                    packet.decode()
                    break
        except self._av.FFmpegError as e:
            raise VideoDecodeError(self.name, _diagnose(data, e)) from None
        finally:
            context.skip_frame = "DEFAULT"
        self._frames, self._last = None, None

    # ------------------------------------------------------------------ decoding
    def _seek(self, key: int) -> None:
        self._container.seek(key, stream=self._stream, backward=True, any_frame=False)
        self._frames = self._decode_packets()
        self._last = None

    def _decode_packets(self) -> Iterator[Any]:
        """Decode forward from the demuxer's position, skipping non-reference frames before ``_skip_below``.

        A non-reference frame (most B-frames) is never used to predict another frame, so FFmpeg can
        drop it unseen (``skip_frame = NONREF``) when its timestamp is before the frame being sought:
        every decoded frame stays bit-identical. The switch is made per packet, by the packet's own
        timestamp, so a wanted frame is always decoded (its packet may come before earlier frames').
        """
        context = self._stream.codec_context
        skipping = False
        for packet in self._container.demux(self._stream):
            stamp = packet.pts if packet.pts is not None else packet.dts
            skip = packet.size > 0 and stamp is not None and stamp < self._skip_below
            if skip != skipping:
                context.skip_frame = "NONREF" if skip else "DEFAULT"
                skipping = skip
            yield from packet.decode()

    @property
    def _position(self) -> int | None:
        """Presentation timestamp of the last decoded frame (``None`` right after a seek)."""
        if self._last is None:
            return None
        return self._last.pts if self._last.pts is not None else self._last.dts

    def _next_frame(self, index: int) -> Any:
        assert self._frames is not None
        try:
            self._last = next(self._frames)
        except StopIteration:
            self._frames, self._last = None, None
            raise VideoDecodeError(
                self.name, f"frame {index} could not be decoded: the stream ends before it (truncated video?)"
            ) from None
        return self._last

    def _decode_to(self, target: int, index: int) -> Any:
        """Decode forward (seeking first when cheaper or needed) to the frame with pts ``target``."""
        position = self._position
        if position is not None and position == target:
            return self._last
        key = int(self._keys[max(0, np.searchsorted(self._keys, target, side="right") - 1)])
        self._skip_below = target
        if self._frames is None or position is None or position > target or key > position:
            self._seek(key)
        while True:
            frame = self._next_frame(index)
            position = self._position
            if position is None:
                continue
            if position == target:
                return frame
            if position > target:
                raise VideoDecodeError(
                    self.name, f"frame {index} (pts {target}) was skipped by the decoder (next decoded pts {position})"
                )

    def _read(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((indices.size, self.height, self.width, 3), dtype=np.uint8)
        try:
            for slot, index in enumerate(indices.tolist()):
                frame = self._decode_to(int(self._pts[index]), index)
                out[slot] = frame.to_ndarray(format="rgb24")
        except self._av.FFmpegError as e:
            self._frames, self._last = None, None
            raise VideoDecodeError(
                self.name, f"decoding failed (truncated or damaged video?): {' '.join(str(e).split())[:300]}"
            ) from None
        return out

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None
            self._frames = None
            self._last = None


# =========================================================================== torchcodec backend
#: FFmpeg libraries torchcodec links against, in load order (each needs only the ones before it).
_FFMPEG_LIBS: tuple[str, ...] = ("avutil", "swresample", "swscale", "avcodec", "avformat", "avfilter", "avdevice")
#: A library name as auditwheel mangles it in PyAV's wheel: ``libavutil-5809ad29.so.60.26.102``.
_MANGLED_NAME = re.compile(r"^(lib[A-Za-z0-9_]+)-[0-9a-f]{8}\.so\.(\d+)")
_loaded_ffmpeg: list[Any] = []  # the ctypes handles of the libraries exposed to torchcodec (kept loaded)
_torchcodec_decoders: Any = None


def _elf_dynamic_names(data: bytes | bytearray) -> list[int]:
    """File offsets of the ``DT_NEEDED`` and ``DT_SONAME`` strings of a 64-bit little-endian ELF library.

    Raises:
        ValueError: the data is not such a library.

    """
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads: list[tuple[int, int, int]] = []
    dynamic: tuple[int, int] | None = None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        raise ValueError("no dynamic section")
    entries = [struct.unpack_from("<qQ", data, dynamic[0] + k) for k in range(0, dynamic[1] - 15, 16)]
    strtab = next((value for tag, value in entries if tag == 5), None)  # DT_STRTAB (an address)
    base = next((offset + strtab - vaddr for vaddr, offset, size in loads
                 if strtab is not None and vaddr <= strtab < vaddr + size), None)
    if base is None:
        raise ValueError("no string table in a loaded segment")
    return [base + value for tag, value in entries if tag in (1, 14)]  # DT_NEEDED, DT_SONAME


def _pyav_ffmpeg_dir() -> Path | None:
    """The folder of the FFmpeg libraries bundled in PyAV's wheel, or ``None`` (no PyAV, or a PyAV without them)."""
    spec = importlib.util.find_spec("av")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    for folder in (package.parent / "av.libs", package / ".libs"):
        if folder.is_dir() and any(_MANGLED_NAME.match(f.name) for f in folder.glob("libavcodec-*")):
            return folder
    return None


def _expose_pyav_ffmpeg() -> Path | None:
    """Load PyAV's bundled FFmpeg under the canonical library names (``libavcodec.so.62``, ...).

    torchcodec ships no FFmpeg: its core library needs ``libavutil.so.N`` and friends from the
    system. PyAV's wheel bundles FFmpeg, under names auditwheel mangled (``libavutil-5809ad29.so.60``),
    which the dynamic loader never matches to ``libavutil.so.60``, and a running process cannot add
    a folder to its library path. So, once per PyAV build, copies of the seven FFmpeg libraries go
    to a cache folder (``$XDG_CACHE_HOME/domainclip/ffmpeg/<key>``, default ``~/.cache``) with their
    own name (``DT_SONAME``) and their links to each other (``DT_NEEDED``) rewritten in place to the
    canonical, shorter names; the codec libraries they need are symlinked beside them. Loading
    the copies here makes the loader resolve torchcodec's links to them by name. Nothing of PyAV
    changes; PyAV keeps its own copy, of the same FFmpeg build.

    Returns:
        The folder loaded from, or ``None`` when PyAV bundles no FFmpeg (or not on Linux).

    Raises:
        OSError: the copies cannot be written or loaded.
        ValueError: a bundled library is not the ELF file expected.

    """
    if _loaded_ffmpeg or not sys.platform.startswith("linux"):
        return None
    source = _pyav_ffmpeg_dir()
    if source is None:
        return None
    canonical: dict[str, str] = {}  # mangled file name -> canonical soname
    for file in sorted(source.iterdir()):
        match = _MANGLED_NAME.match(file.name)
        if match and match.group(1)[3:] in _FFMPEG_LIBS:
            canonical[file.name] = f"{match.group(1)}.so.{match.group(2)}"
    if len(set(canonical.values())) != len(_FFMPEG_LIBS):
        return None
    stamp = "|".join(f"{name}:{(source / name).stat().st_size}" for name in sorted(canonical))
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "domainclip" / "ffmpeg"
    folder = cache / hashlib.sha256(f"{source}|{stamp}".encode()).hexdigest()[:16]
    if not (folder / "complete").is_file():
        staging = cache / f".{folder.name}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for file in source.iterdir():
            if file.name not in canonical:
                (staging / file.name).symlink_to(file)
        for mangled, soname in canonical.items():
            data = bytearray((source / mangled).read_bytes())
            for offset in _elf_dynamic_names(data):
                name = bytes(data[offset : data.index(b"\0", offset)]).decode("latin-1")
                if name in canonical:  # the canonical name is shorter: overwrite in place, NUL-terminated
                    new = canonical[name].encode() + b"\0"
                    data[offset : offset + len(new)] = new
            (staging / soname).write_bytes(bytes(data))
        (staging / "complete").write_text(stamp, encoding="utf-8")
        try:
            staging.rename(folder)
        except OSError:  # another process (a data-loader worker) finished first
            shutil.rmtree(staging, ignore_errors=True)
    by_lib = {soname.split(".so.")[0][3:]: soname for soname in canonical.values()}
    for lib in _FFMPEG_LIBS:
        _loaded_ffmpeg.append(ctypes.CDLL(str(folder / by_lib[lib])))
    return folder


def _import_torchcodec() -> Any:
    """``torchcodec.decoders``, with PyAV's FFmpeg exposed to it first (see :func:`_expose_pyav_ffmpeg`).

    Raises:
        MissingExtraError: torchcodec is not installed, does not load with this torch, or found no
            FFmpeg libraries.

    """
    global _torchcodec_decoders
    if _torchcodec_decoders is not None:
        return _torchcodec_decoders
    why = ""
    if "torchcodec" in sys.modules:
        why = "; torchcodec was imported before domainclip could expose PyAV's FFmpeg to it"
    elif importlib.util.find_spec("torchcodec") is not None:
        try:
            _expose_pyav_ffmpeg()
        except (OSError, ValueError) as e:
            why = f"; PyAV's FFmpeg could not be exposed to it: {e}"
    try:
        decoders = require("torchcodec.decoders", _EXTRA, "decoding videos with torchcodec")
        ops = importlib.import_module("torchcodec._core.ops")
    except (OSError, RuntimeError) as e:  # a torchcodec build for another torch
        raise MissingExtraError(f"torchcodec is installed but does not load: {' '.join(str(e).split())[:300]}") from e
    if getattr(ops, "ffmpeg_major_version", 0) is None:
        raise MissingExtraError(
            "torchcodec is installed but found no FFmpeg libraries (it needs FFmpeg 4-8: install PyAV, "
            f"pip install \"domainclip[{_EXTRA}]\", and open a video with the torchcodec backend before "
            f"anything imports torchcodec{why})"
        )
    _torchcodec_decoders = decoders
    return decoders


class _TorchCodecVideo(Video):
    """torchcodec's ``VideoDecoder`` (exact seek mode, NHWC frames) behind the :class:`Video` interface.

    ``seek_mode="exact"`` scans the file once on opening, which makes ``num_frames`` and every
    frame's position exact. The first frame is decoded on opening: torchcodec 0.17 returns wrong
    frames when the first read of a fresh decoder is past the first keyframe (every frame from 76 on
    in ``cockatoo.mp4``, whose H.264 parameter sets come in-band with frame 0), the problem of
    decord and bare PyAV too; after one decoded frame its seeks are exact.
    """

    backend = "torchcodec"

    def __init__(self, data: _Input, threads: int):
        decoders = _import_torchcodec()
        self.name = data.name
        source = data.source if isinstance(data.source, bytes) else str(data.source)
        try:
            self._decoder = decoders.VideoDecoder(
                source, seek_mode="exact", dimension_order="NHWC", num_ffmpeg_threads=max(0, threads)
            )
            metadata = self._decoder.metadata
            self.num_frames = int(metadata.num_frames or 0)
            if self.num_frames == 0:
                raise VideoDecodeError(self.name, "the video stream has no frames")
            self._decoder.get_frame_at(0)
        except (RuntimeError, ValueError, OSError) as e:
            raise VideoDecodeError(self.name, _diagnose(data, e)) from None
        self.width, self.height = int(metadata.width), int(metadata.height)
        self.fps = float(metadata.average_fps or 0.0)
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise VideoDecodeError(self.name, f"the video stream has no usable frame rate ({self.fps})")

    def _read(self, indices: np.ndarray) -> np.ndarray:
        try:
            batch = self._decoder.get_frames_at(indices.tolist())
        except (RuntimeError, ValueError) as e:
            raise VideoDecodeError(
                self.name, f"frames {indices[:8].tolist()} cannot be decoded (truncated or damaged video?): "
                f"{' '.join(str(e).split())[:300]}"
            ) from None
        return np.ascontiguousarray(batch.data.numpy(), dtype=np.uint8)

    def close(self) -> None:
        self._decoder = None


# =========================================================================== frame folders
_NUMBER = re.compile(r"(\d+)(?!.*\d)")


class FrameFolder(Video):
    """A folder of pre-extracted frames behind the :class:`Video` interface.

    SurgLaVi (and most surgical datasets: Cholec80, CholecT50, ...) ship frames instead of videos,
    e.g. ``video01/000000.webp ... video01/001234.webp``. Files ending in one of
    :data:`FRAME_SUFFIXES` whose name holds a number are frames, sorted by the last number in the
    name (``frame_2.png`` before ``frame_10.png``); frame ``i`` is the ``i``-th file in that order.
    Other files are ignored.

    Args:
        path: the folder.
        fps: frames per second of the folder; when ``None``, read from ``fps.txt`` (one number)
            or ``meta.json`` (``{"fps": ...}``) in the folder.

    Raises:
        InputNotFoundError: the folder does not exist (a ``FileNotFoundError``).
        VideoDecodeError: no frames, two files with the same number, no frame rate, or an
            unreadable first frame.

    """

    backend = "frames"

    def __init__(self, path: str | Path, fps: float | None = None):
        from PIL import Image

        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.is_dir():
            raise InputNotFoundError(f"{self.path}: frame folder not found")
        numbered: dict[int, Path] = {}
        for file in self.path.iterdir():
            if file.suffix.lower() not in FRAME_SUFFIXES or not file.is_file():
                continue
            match = _NUMBER.search(file.stem)
            if match is None:
                continue
            number = int(match.group(1))
            if number in numbered:
                raise VideoDecodeError(
                    self.name, f"two frames have the number {number}: {numbered[number].name} and {file.name}"
                )
            numbered[number] = file
        if not numbered:
            raise VideoDecodeError(
                self.name, f"no frames: no {'/'.join(FRAME_SUFFIXES)} files with a number in their name"
            )
        self.files: list[Path] = [numbered[k] for k in sorted(numbered)]
        self.num_frames = len(self.files)
        self.fps = self._frame_rate(fps)
        try:
            with Image.open(self.files[0]) as first:
                self.width, self.height = first.size
        except (OSError, ValueError, SyntaxError) as e:
            raise VideoDecodeError(str(self.files[0]), f"not a readable image: {e}") from None

    def _frame_rate(self, fps: float | None) -> float:
        where = "the fps argument"
        if fps is None:
            text_file, meta_file = self.path / "fps.txt", self.path / "meta.json"
            if text_file.is_file():
                where = str(text_file)
                raw: Any = text_file.read_text(encoding="utf-8").strip()
            elif meta_file.is_file():
                where = str(meta_file)
                try:
                    meta = json.loads(meta_file.read_text(encoding="utf-8"))
                except json.JSONDecodeError as e:
                    raise VideoDecodeError(where, f"not valid JSON: {e}") from None
                if not isinstance(meta, dict) or "fps" not in meta:
                    raise VideoDecodeError(where, "must be a JSON object with an 'fps' number")
                raw = meta["fps"]
            else:
                raise VideoDecodeError(
                    self.name, "no frame rate: pass fps=..., or put fps.txt (a number) or meta.json "
                    '({"fps": ...}) in the folder'
                )
            try:
                fps = float(raw)
            except (TypeError, ValueError):
                raise VideoDecodeError(where, f"the frame rate {raw!r} is not a number") from None
        if not (math.isfinite(fps) and fps > 0):
            raise VideoDecodeError(self.name, f"the frame rate from {where} must be > 0, got {fps}")
        return float(fps)

    def _read(self, indices: np.ndarray) -> np.ndarray:
        from PIL import Image

        out = np.empty((indices.size, self.height, self.width, 3), dtype=np.uint8)
        for slot, index in enumerate(indices.tolist()):
            file = self.files[index]
            try:
                with Image.open(file) as image:
                    rgb = image.convert("RGB")
            except (OSError, ValueError, SyntaxError) as e:
                raise VideoDecodeError(str(file), f"frame {index} is not a readable image: {e}") from None
            if rgb.size != (self.width, self.height):
                raise VideoDecodeError(
                    str(file), f"frame {index} is {rgb.size[0]}x{rgb.size[1]}, the folder's first frame is "
                    f"{self.width}x{self.height}"
                )
            out[slot] = np.asarray(rgb)
        return out

    def close(self) -> None:
        """Nothing stays open between reads (each frame file is opened and closed when read)."""
        return None


def open_frames(path: str | Path, fps: float | None = None) -> FrameFolder:
    """Open a folder of pre-extracted frames (see :class:`FrameFolder`)."""
    return FrameFolder(path, fps=fps)


# =========================================================================== opening
def _open_decord(data: _Input, threads: int) -> Video:
    return _DecordVideo(data, threads)


def _open_pyav(data: _Input, threads: int) -> Video:
    return _PyAVVideo(data, threads)


def _open_torchcodec(data: _Input, threads: int) -> Video:
    return _TorchCodecVideo(data, threads)


#: The order in which ``"auto"`` tries the backends: fastest first, from ``bench/bench_video.py``
#: (16-frame clips, one decoder thread, every backend's frames exact).
AUTO_ORDER: tuple[str, ...] = ("pyav", "torchcodec", "decord")


def _open_auto(data: _Input, threads: int) -> Video:
    first_error: VideoDecodeError | None = None
    missing: MissingExtraError | None = None
    for backend in AUTO_ORDER:
        try:
            return BACKENDS[backend](data, threads)
        except MissingExtraError as e:
            missing = missing or e
        except VideoDecodeError as e:
            if first_error is None:
                first_error = e
            elif e.problem != first_error.problem:
                first_error.add_note(f"{backend} could not open it either: {e.problem}")
    if first_error is not None:
        raise first_error
    assert missing is not None
    raise missing


#: Names of the video backends.
Backend = Literal["auto", "decord", "pyav", "torchcodec"]
#: Backend name -> opener ``(input, threads) -> Video``.
BACKENDS: dict[Backend, Callable[[_Input, int], Video]] = {
    "auto": _open_auto,
    "decord": _open_decord,
    "pyav": _open_pyav,
    "torchcodec": _open_torchcodec,
}


def open_video(
    source: str | Path | bytes, *, backend: str = "auto", name: str | None = None, threads: int = 0
) -> Video:
    """Open a video file, in-memory video bytes, or a folder of frames for random frame access.

    Args:
        source: path of a video file, the file's bytes, or a folder of frames (a :class:`FrameFolder`).
        backend: one of :data:`BACKENDS`: ``"decord"``, ``"pyav"``, ``"torchcodec"`` or ``"auto"``
            (the first of :data:`AUTO_ORDER` that is installed and opens the file). Every backend
            returns the same, exact frames. Ignored for folders.
        name: name used in error messages for bytes (``"<bytes NAME>"``), or instead of the path.
        threads: decoder threads (0: the library's automatic choice; 1 in data-loader workers).

    Returns:
        A :class:`Video`; close it (or use it as a context manager) when done.

    Raises:
        InputNotFoundError: the path does not exist (a ``FileNotFoundError``).
        VideoDecodeError: the data is not a readable video (the message says why).
        MissingExtraError: the backend's library is not installed.

    """
    if backend not in BACKENDS:
        raise UnknownNameError("video backend", backend, list(BACKENDS))
    if isinstance(source, str | Path) and Path(source).is_dir():
        return FrameFolder(source)
    data = _Input.of(source, name)
    if isinstance(data.source, Path) and not data.source.is_file():
        raise InputNotFoundError(f"{data.source}: video file not found")
    return BACKENDS[backend](data, threads)


# =========================================================================== samplers
Rng = random.Random | np.random.Generator


def _uniform_draw(rng: Rng | None) -> float:
    return float(rng.random()) if rng is not None else random.random()


def _sample_uniform(first: int, stop: int, fps: float, n: int | None, target_fps: float | None,
                    jitter: bool, rng: Rng | None) -> list[int]:
    if n is None or n < 1:
        raise ValueError(f"the 'uniform' sampler needs n >= 1 frames; got n={n}")
    length = stop - first
    offsets = [_uniform_draw(rng) if jitter else 0.5 for _ in range(n)]
    return [min(stop - 1, first + int(math.floor((k + u) * length / n))) for k, u in enumerate(offsets)]


def _sample_fps(first: int, stop: int, fps: float, n: int | None, target_fps: float | None,
                jitter: bool, rng: Rng | None) -> list[int]:
    if target_fps is None or not (target_fps > 0 and math.isfinite(target_fps)):
        raise ValueError(f"the 'fps' sampler needs target_fps > 0; got {target_fps}")
    step = fps / target_fps  # frames between two samples (may be < 1: frames repeat)
    phase = _uniform_draw(rng) * step if jitter else 0.0
    count = max(1, math.ceil((stop - first - phase) / step - 1e-9))
    return [min(stop - 1, first + int(math.floor(phase + k * step + 1e-9))) for k in range(count)]


def _sample_all(first: int, stop: int, fps: float, n: int | None, target_fps: float | None,
                jitter: bool, rng: Rng | None) -> list[int]:
    return list(range(first, stop))


#: Names of the frame samplers.
Sampler = Literal["uniform", "fps", "all"]
#: Sampler name -> ``(first, stop, fps, n, target_fps, jitter, rng) -> indices`` over frames ``[first, stop)``.
SAMPLERS: dict[Sampler, Callable[..., list[int]]] = {
    "uniform": _sample_uniform,
    "fps": _sample_fps,
    "all": _sample_all,
}


def sample_indices(
    name: str,
    num_frames_in_span: int,
    start: float,
    end: float | None,
    fps: float,
    *,
    n: int | None = None,
    target_fps: float | None = None,
    jitter: bool = False,
    rng: Rng | None = None,
) -> list[int]:
    """Frame indices of the time span ``[start, end)`` of a video, chosen by a sampler.

    The span's frames are those whose start time ``i / fps`` lies in ``[start, end)`` (at least
    the frame shown at ``start``). Samplers (:data:`SAMPLERS`):

    * ``"uniform"``: split the span's frames into ``n`` equal segments and take each segment's
      centre frame (TSN-style); with ``jitter``, a random frame inside each segment instead.
      Spans with fewer than ``n`` frames repeat frames evenly.
    * ``"fps"``: one frame every ``1 / target_fps`` seconds from the span's first frame (e.g.
      ``target_fps=1`` as the CAMMA datasets); with ``jitter``, the whole grid starts at a random
      offset inside the first period.
    * ``"all"``: every frame of the span.

    Args:
        name: sampler name.
        num_frames_in_span: number of frames of the video (or clip) the span lies in; every
            returned index is below it.
        start: span start in seconds (``0`` for the whole video).
        end: span end in seconds (exclusive); ``None`` for the end of the video.
        fps: frame rate of the video.
        n: number of frames for ``"uniform"``.
        target_fps: sampling rate for ``"fps"``.
        jitter: random positions (training) instead of deterministic ones.
        rng: ``random.Random`` or ``numpy.random.Generator`` for the jitter; ``None`` uses the
            ``random`` module (which the streaming loader seeds per sample).

    Returns:
        Frame indices, in time order (duplicates when frames repeat).

    Raises:
        ValueError: an empty or inverted span, a span after the video's end, bad ``n``/``target_fps``.

    """
    if name not in SAMPLERS:
        raise UnknownNameError("frame sampler", name, list(SAMPLERS))
    if num_frames_in_span < 1:
        raise ValueError(f"cannot sample frames from {num_frames_in_span} frames")
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be > 0; got {fps}")
    stop_time = num_frames_in_span / fps if end is None else end
    if not (0 <= start < stop_time):
        raise ValueError(f"the span [{start}, {stop_time}) s is empty, inverted or starts before 0")
    first = math.ceil(start * fps - 1e-6)
    stop = min(num_frames_in_span, math.ceil(stop_time * fps - 1e-6))
    if first >= stop:  # no frame starts inside the span: take the frame shown at its start
        first = math.floor(start * fps + 1e-6)
        stop = first + 1
    if first >= num_frames_in_span:
        raise ValueError(
            f"the span [{start}, {stop_time}) s starts after the last of {num_frames_in_span} frames at {fps:g} fps"
        )
    return SAMPLERS[name](first, stop, float(fps), n, target_fps, jitter, rng)


# =========================================================================== encoding
@dataclass(frozen=True)
class Codec:
    """How :class:`ClipEncoder` writes one codec.

    Args:
        encoder: FFmpeg encoder name (``"libx264"``).
        container: FFmpeg muxer name (``"mp4"``, ``"webm"``).
        suffix: file/shard-member suffix of the result (``"mp4"``).
        options: encoder options; ``{crf}`` in a value is replaced by the ``crf`` argument.
        quality_by_crf: whether the ``crf`` argument applies (otherwise ``bit_rate`` does).
        container_options: muxer options (``fflags=+bitexact`` keeps a muxer that writes a random
            file id, as Matroska/WebM does, from making every file different).

    """

    encoder: str
    container: str
    suffix: str
    options: dict[str, str] = field(default_factory=dict)
    quality_by_crf: bool = True
    container_options: dict[str, str] = field(default_factory=dict)


#: Codec name -> :class:`Codec`.
CODECS: dict[str, Codec] = {
    "h264": Codec("libx264", "mp4", "mp4", {"crf": "{crf}", "preset": "veryfast"}),
    "mpeg4": Codec("mpeg4", "mp4", "mp4", {}, quality_by_crf=False),
    "vp9": Codec("libvpx-vp9", "webm", "webm", {"crf": "{crf}", "deadline": "realtime", "cpu-used": "8"},
                 container_options={"fflags": "+bitexact"}),
}


def _codec(name: str) -> Codec:
    if name not in CODECS:
        raise UnknownNameError("video codec", name, list(CODECS))
    return CODECS[name]


def clip_suffix(codec: str = "h264") -> str:
    """Shard-member suffix of clips that :func:`encode_clip` writes with ``codec`` (``"mp4"``, ``"webm"``)."""
    return _codec(codec).suffix


def _check_frames(frames: np.ndarray, what: str = "frames") -> np.ndarray:
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"{what} must be a uint8 array (T, H, W, 3); got {array.dtype} {array.shape}")
    return array


class ClipEncoder:
    """Incremental encoder with PyAV: :meth:`add` frames, then :meth:`finish`; the same frames give the same bytes.

    The encoder runs on one thread: FFmpeg's automatic threading makes x264's output depend on the
    number of cores (and so differ from machine to machine), and WebM files are written with
    ``fflags=+bitexact`` (without it, every file gets a random id).

    Args:
        width: frame width in pixels (even: yuv420p); frames of another size are scaled to it.
        height: frame height in pixels (even).
        fps: frame rate of the clip.
        codec: one of :data:`CODECS`.
        crf: constant rate factor of h264 (0-51) and vp9 (0-63); lower is better quality.
        bit_rate: target bits per second of ``mpeg4`` (default: 0.25 bit per pixel per frame).
        keyframe_interval: frames between keyframes (the encoder's default when ``None``).
        target: file to write (``None``: in memory, returned by :meth:`finish`).
        options: encoder options added to the codec's own (e.g. ``{"x264-params": "rc-lookahead=0"}``).

    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        *,
        codec: str = "h264",
        crf: int = 23,
        bit_rate: int | None = None,
        keyframe_interval: int | None = None,
        target: str | Path | None = None,
        options: Mapping[str, str] | None = None,
    ):
        av = require("av", _EXTRA, "encoding video clips with PyAV")
        spec = _codec(codec)
        if width % 2 or height % 2:
            raise ValueError(f"{codec} clips need an even width and height (yuv420p); got {width}x{height}")
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"fps must be > 0; got {fps}")
        self._av = av
        self._buffer = io.BytesIO() if target is None else None
        self._container = av.open(self._buffer if target is None else str(target), mode="w", format=spec.container,
                                  options=spec.container_options)
        encoder_options = {**{k: v.format(crf=crf) for k, v in spec.options.items()}, "threads": "1", **(options or {})}
        if keyframe_interval is not None:
            encoder_options["g"] = str(int(keyframe_interval))
        try:
            rate = Fraction(fps).limit_denominator(1001 * 1000)
            self._stream = self._container.add_stream(spec.encoder, rate=rate, options=encoder_options)
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = "yuv420p"
            self._stream.codec_context.thread_count = 1  # the "threads" option alone leaves FFmpeg's own on
            # crf codecs: bit rate 0 makes libvpx's crf a constant-quality mode (libx264 ignores it)
            self._stream.bit_rate = (
                0 if spec.quality_by_crf else int(bit_rate or max(200_000, width * height * fps * 0.25))
            )
        except BaseException:
            self._container.close()
            raise
        self.width, self.height = width, height
        self.frames = 0

    def add(self, frames: np.ndarray) -> None:
        """Encode ``uint8`` ``(T, H, W, 3)`` RGB frames (or an iterable of ``(H, W, 3)`` ones)."""
        av = self._av
        for array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            if (frame.width, frame.height) != (self.width, self.height):
                frame = frame.reformat(width=self.width, height=self.height, interpolation="AREA")
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames += 1

    def finish(self) -> bytes:
        """Flush and close; returns the encoded bytes (empty when written to a ``target`` file)."""
        if self.frames == 0:
            self._container.close()
            raise ValueError("cannot encode a clip of 0 frames")
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        return b"" if self._buffer is None else self._buffer.getvalue()

    def abort(self) -> None:
        """Close without finishing (after another error)."""
        try:
            self._container.close()
        except Exception:  # the container is being thrown away after another error
            pass


def encode_clip(frames: np.ndarray, fps: float, **options: Any) -> bytes:
    """Encode RGB frames as an in-memory video file with PyAV (mp4 for h264/mpeg4, webm for vp9).

    Args:
        frames: ``uint8`` ``(T, H, W, 3)`` RGB; ``H`` and ``W`` must be even (yuv420p).
        fps: frame rate of the clip.
        **options: :class:`ClipEncoder` options (``codec``, ``crf``, ``bit_rate``, ``keyframe_interval``).

    Returns:
        The encoded file's bytes (their suffix: :func:`clip_suffix`).

    """
    array = _check_frames(frames)
    if array.shape[0] == 0:
        raise ValueError("cannot encode a clip of 0 frames")
    encoder = ClipEncoder(array.shape[2], array.shape[1], fps, **options)
    try:
        encoder.add(array)
        return encoder.finish()
    except BaseException:
        encoder.abort()
        raise


def _even_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    scale = 1.0
    if max_side is not None:
        if max_side < 2:
            raise ValueError(f"max_side must be >= 2; got {max_side}")
        scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2)


def cut_clip(
    video: Video,
    start_s: float,
    end_s: float,
    *,
    max_side: int | None = None,
    fps: float | None = None,
    chunk: int = 32,
    **options: Any,
) -> bytes:
    """Cut ``[start_s, end_s)`` of a video into an encoded clip (to store in a shard).

    Frames are decoded and encoded ``chunk`` at a time, so long spans are never all in memory.

    Args:
        video: an open :class:`Video`.
        start_s: clip start in seconds from the video's first frame.
        end_s: clip end in seconds (exclusive); clamped to the video's duration.
        max_side: downscale so the longer side is at most this many pixels (sizes are rounded
            down to even numbers, as yuv420p needs).
        fps: resample to this frame rate (``"fps"`` sampler); ``None`` keeps every frame.
        chunk: frames decoded per step.
        **options: :class:`ClipEncoder` options (``codec``, ``crf``, ...).

    Returns:
        The encoded clip's bytes (its suffix: :func:`clip_suffix`).

    Raises:
        ValueError: the span is empty or outside the video.
        VideoDecodeError: frames of the span cannot be decoded.

    """
    end = min(end_s, video.duration)
    if fps is None:
        indices = sample_indices("all", video.num_frames, start_s, end, video.fps)
        out_fps = video.fps
    else:
        indices = sample_indices("fps", video.num_frames, start_s, end, video.fps, target_fps=fps)
        out_fps = fps
    width, height = _even_size(video.width, video.height, max_side)
    encoder = ClipEncoder(width, height, out_fps, **options)
    try:
        for begin in range(0, len(indices), chunk):
            encoder.add(video.get_frames(indices[begin : begin + chunk]))
        return encoder.finish()
    except BaseException:
        encoder.abort()
        raise


# =========================================================================== raw frames
def frames_to_npy(frames: np.ndarray) -> bytes:
    """Serialise ``uint8`` ``(T, H, W, 3)`` frames as ``.npy`` bytes (a ``frames.npy`` shard member)."""
    array = np.ascontiguousarray(_check_frames(frames))
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_to_frames(data: bytes, name: str | None = None) -> np.ndarray:
    """Load ``frames.npy`` bytes as ``uint8`` ``(T, H, W, 3)``; ``(T, 3, H, W)`` arrays are transposed.

    Raises:
        VideoDecodeError: not a ``.npy`` array, or not ``uint8`` frames with 3 channels.

    """
    label = f"<bytes {name}>" if name else "<bytes>"
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as e:  # numpy raises ValueError/OSError/EOFError for bad .npy data
        raise VideoDecodeError(label, f"not a .npy array: {e}") from None
    if array.dtype != np.uint8 or array.ndim != 4 or 3 not in (array.shape[1], array.shape[3]):
        raise VideoDecodeError(label, f"frames must be uint8 (T, H, W, 3) or (T, 3, H, W); got {array.dtype} "
                               f"{array.shape}")
    if array.shape[0] == 0:
        raise VideoDecodeError(label, "the array holds no frames")
    if array.shape[3] != 3:
        array = array.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(array)
