"""The torchcodec backend of ``open_video``, ``auto`` backend selection, and exact frames in every access pattern."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from domainclip.core.plugins import MissingExtraError, UnknownNameError
from domainclip.domains.surgery import video as video_module
from domainclip.domains.surgery.video import (
    AUTO_ORDER,
    BACKENDS,
    VideoDecodeError,
    _elf_dynamic_names,
    encode_clip,
    open_video,
)

# cockatoo.mp4 reads: fresh decoders whose first read is past the first GOP (frames 0-75), where
# torchcodec 0.17 itself returns wrong frames, then reads on the same decoder going back and forth.
FRESH_STARTS = (0, 100, 150, 264)
REUSED = ([230, 231, 232], [3, 90, 91, 150], [279, 0, 140, 140, 75], [100, 101, 102, 103])


def _torchcodec_or_skip() -> None:
    try:
        video_module._import_torchcodec()
    except MissingExtraError as e:
        pytest.skip(f"torchcodec is not usable here: {e}")


def in_order_frames(source: Path | bytes, wanted: set[int]) -> dict[int, np.ndarray]:
    """Decode from the first frame in order with PyAV (no seeking) and keep the frames at ``wanted``."""
    import io

    import av

    kept = {}
    with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                kept[i] = frame.to_ndarray(format="rgb24")
    return kept


@pytest.fixture(scope="module")
def cockatoo(shared_data):
    return shared_data / "video" / "cockatoo.mp4"


@pytest.fixture(scope="module")
def cockatoo_reference(cockatoo):
    wanted = {i for start in FRESH_STARTS for i in range(start, start + 16)} | {i for read in REUSED for i in read}
    return in_order_frames(cockatoo, wanted)


@pytest.fixture(scope="module")
def bframes_h264() -> bytes:
    """150 frames of moving noise at 25 fps, x264 with B-frames (non-reference frames to skip), keyframe every 50."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, size=(64, 64 + 150, 3), dtype=np.uint8)
    frames = np.stack([base[:, i : i + 64] for i in range(150)])
    return encode_clip(frames, 25, codec="h264", crf=18, keyframe_interval=50)


# ----------------------------------------------------------------------------- exact frames
@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torchcodec", "pyav"])
def test_cockatoo_frames_exact_in_every_access_pattern(cockatoo, cockatoo_reference, backend):
    if backend == "torchcodec":
        _torchcodec_or_skip()
    for start in FRESH_STARTS:  # the first read of a fresh decoder, 16 consecutive frames
        with open_video(cockatoo, backend=backend, threads=1) as video:
            assert video.backend == backend and video.num_frames == 280
            assert (video.width, video.height, video.fps) == (1280, 720, 20.0)
            got = video.get_frames(list(range(start, start + 16)))
            want = np.stack([cockatoo_reference[i] for i in range(start, start + 16)])
            assert got.dtype == np.uint8 and got.shape == (16, 720, 1280, 3)
            assert np.array_equal(got, want), f"{backend}: wrong frames for a fresh read from {start}"
    with open_video(cockatoo, backend=backend, threads=1) as video:  # one decoder, back and forth
        for read in REUSED:
            got = video.get_frames(read)
            assert np.array_equal(got, np.stack([cockatoo_reference[i] for i in read])), f"{backend}: {read}"


@pytest.mark.parametrize("backend", ["torchcodec", "pyav", "decord"])
def test_bframe_video_frames_exact(bframes_h264, backend):
    """Random index sets on a video with B-frames: PyAV's skipped non-reference frames change no output."""
    if backend == "torchcodec":
        _torchcodec_or_skip()
    rng = np.random.default_rng(0)
    reads = [list(range(s, s + 16)) for s in (0, 40, 57, 120, 134)]
    reads += [sorted(rng.choice(150, 10, replace=False).tolist()) for _ in range(4)] + [[149, 2, 77, 77, 50]]
    reference = in_order_frames(bframes_h264, set(range(150)))
    assert len(reference) == 150
    with open_video(bframes_h264, backend=backend, threads=1, name="bframes.mp4") as video:
        assert video.num_frames == 150
        for read in reads:
            assert np.array_equal(video.get_frames(read), np.stack([reference[i] for i in read])), read
    for start in (57, 120):  # fresh decoders
        with open_video(bframes_h264, backend=backend, threads=1) as video:
            got = video.get_frames([start, start + 1])
            assert np.array_equal(got, np.stack([reference[start], reference[start + 1]]))


def test_pyav_skips_nonreference_frames_before_the_wanted_one(bframes_h264, monkeypatch):
    """Reading frame 45 from keyframe 0 decodes fewer than 46 pictures: B-frames before it are dropped unseen."""
    with open_video(bframes_h264, backend="pyav", threads=1) as video:
        decoded = []
        original = video._next_frame

        def counting(index):
            frame = original(index)
            decoded.append(frame.pts)
            return frame

        monkeypatch.setattr(video, "_next_frame", counting)
        frame = video.get_frames([45])
        assert np.array_equal(frame[0], in_order_frames(bframes_h264, {45})[45])
        assert 0 < len(decoded) < 46
        skip = video._stream.codec_context.skip_frame
        assert getattr(skip, "name", skip) == "DEFAULT"  # wanted frames are decoded in full


# ----------------------------------------------------------------------------- selection
def test_backend_selection_and_errors(bframes_h264):
    _torchcodec_or_skip()
    assert set(BACKENDS) == {"auto", "decord", "pyav", "torchcodec"}
    assert set(AUTO_ORDER) == set(BACKENDS) - {"auto"}
    with open_video(bframes_h264, backend="torchcodec", name="clip.mp4") as video:
        assert video.backend == "torchcodec" and video.name == "<bytes clip.mp4>"
        assert repr(video).startswith("_TorchCodecVideo('<bytes clip.mp4>', backend='torchcodec', 64x64, 150 frames")
        with pytest.raises(VideoDecodeError, match=r"frame index 150 out of range: the video has 150 frames"):
            video.get_frames([3, 150])
    with pytest.raises(UnknownNameError, match="Did you mean: torchcodec"):
        open_video(bframes_h264, backend="torchcodc")
    with pytest.raises(VideoDecodeError, match=r"^<bytes x>: not a video: no known video container signature"):
        open_video(b"plain text, no video" * 20, backend="torchcodec", name="x")
    with pytest.raises(VideoDecodeError, match="truncated mp4"):
        open_video(bframes_h264[: len(bframes_h264) // 2], backend="torchcodec")


def test_auto_picks_the_first_usable_backend_in_order(bframes_h264, monkeypatch):
    assert AUTO_ORDER[0] == "pyav"
    with open_video(bframes_h264) as video:
        assert video.backend == "pyav"

    def missing(data, threads):
        raise MissingExtraError("'av' is needed but is not installed")

    monkeypatch.setitem(BACKENDS, "pyav", missing)
    with open_video(bframes_h264) as video:  # the next one that is installed
        assert video.backend in ("torchcodec", "decord")
        assert video.backend == next(b for b in AUTO_ORDER[1:] if b in ("torchcodec", "decord"))
    for name in AUTO_ORDER:
        monkeypatch.setitem(BACKENDS, name, missing)
    with pytest.raises(MissingExtraError, match="'av' is needed"):
        open_video(bframes_h264)


def test_auto_reports_the_first_backends_diagnosis(monkeypatch):
    with pytest.raises(VideoDecodeError, match=r"^<bytes>: empty file \(0 bytes\), not a video$"):
        open_video(b"")


# ----------------------------------------------------------------------------- FFmpeg for torchcodec
@pytest.mark.real_data
@pytest.mark.slow
def test_fresh_process_exposes_pyavs_ffmpeg_to_torchcodec(cockatoo, tmp_path):
    """A new process with an empty cache: the canonical-name copies are written and torchcodec decodes with them."""
    _torchcodec_or_skip()
    code = (
        "import sys\n"
        "from domainclip.domains.surgery.video import open_video\n"
        f"with open_video({str(cockatoo)!r}, backend='torchcodec') as v:\n"
        "    print(v.num_frames, v.get_frames([200]).shape)\n"
        "import torchcodec._core.ops as ops\n"
        "print(ops.ffmpeg_major_version)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.split("\n")
    assert lines[0] == "280 (1, 720, 1280, 3)"
    major = int(lines[1])
    folders = list((tmp_path / "domainclip" / "ffmpeg").iterdir())
    assert len(folders) == 1 and (folders[0] / "complete").is_file()
    codec = next(folders[0].glob("libavcodec.so.*"))
    assert not codec.is_symlink()
    data = codec.read_bytes()
    names = {data[o : data.index(b"\0", o)].decode() for o in _elf_dynamic_names(data)}
    assert codec.name in names  # its own name (DT_SONAME) is the canonical one
    assert any(n.startswith("libavutil.so.") for n in names)  # and so is its link to libavutil
    assert not any(n.startswith("libavutil-") for n in names)
    assert major == {62: 8, 61: 7, 60: 6, 59: 5, 58: 4}[int(codec.name.split(".so.")[1])]


def test_elf_names_reject_other_files():
    with pytest.raises(ValueError, match="not a 64-bit little-endian ELF file"):
        _elf_dynamic_names(b"#!/bin/sh\n" + b"\0" * 100)


def test_pyav_reuses_a_files_index_until_the_file_changes(bframes_h264, tmp_path, monkeypatch):
    path = tmp_path / "clip.mp4"
    path.write_bytes(bframes_h264)
    calls = []
    original = video_module._PyAVVideo._index

    def counting(self, data):
        calls.append(data.name)
        return original(self, data)

    monkeypatch.setattr(video_module._PyAVVideo, "_index", counting)
    for _ in range(3):
        with open_video(path, backend="pyav") as video:
            assert video.num_frames == 150
            first = video.get_frames([100])
    assert calls == [str(path)]
    shorter = encode_clip(np.zeros((30, 64, 64, 3), dtype=np.uint8), 25, codec="h264")
    path.write_bytes(shorter)
    os.utime(path, ns=(1, 1))  # another size and mtime: indexed anew
    with open_video(path, backend="pyav") as video:
        assert video.num_frames == 30 and len(calls) == 2
        assert not np.array_equal(video.get_frames([29])[0], first[0])
