import io
import json

import numpy as np
import pytest
import torch

from domainclip.core.data.corrupt import CorruptSampleError
from domainclip.core.data.reader import Source, build_loader
from domainclip.core.data.writer import ShardWriter
from domainclip.core.errors import InputError
from domainclip.domains.surgery.decoder import BAD_VIDEO, VideoClipDecoder, fit_length
from domainclip.domains.surgery.video import encode_clip, frames_to_npy


def coded_frames(n: int, width: int = 64, height: int = 48) -> np.ndarray:
    """Frame i shows the bits of i as black/white 8x8 blocks on its top row."""
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        frames[i] = 60 + (i % 120)
        for bit in range(width // 8):
            frames[i, :8, 8 * bit : 8 * bit + 8] = 235 if (i >> bit) & 1 else 16
    return frames


def ids(video: torch.Tensor) -> list[int]:
    """Frame indices read back from a uint8 (T, 3, H, W) clip of coded frames."""
    frames = video.permute(0, 2, 3, 1).numpy()
    bits = frames[:, 2:6, :, :].reshape(len(frames), 4, -1, 8, 3)[:, :, :, 2:6].mean(axis=(1, 3, 4)) > 128
    return [int(sum(1 << b for b in np.flatnonzero(row))) for row in bits]


@pytest.fixture(scope="module")
def clip40() -> bytes:
    return encode_clip(coded_frames(40), 10, crf=12)


def raw(clip: bytes, key: str = "s0", suffix: str = "mp4", epoch: int = 0, **members) -> dict:
    sample = {"__key__": key, "__url__": "shard-000000.tar", "__epoch__": epoch, suffix: clip,
              "txt": b"clip the artery"}
    sample.update(members)
    return sample


@pytest.fixture(scope="module")
def model_parts():
    from domainclip.core.models import create_model_and_transforms, get_tokenizer

    model, train_transform, val_transform = create_model_and_transforms("dc-test-video")
    return train_transform, val_transform, get_tokenizer(model)


def test_decodes_mp4_bytes_to_a_float_clip(clip40, model_parts):
    train_transform, val_transform, tokenizer = model_parts
    decoder = VideoClipDecoder(val_transform, tokenizer, num_frames=8, train=False)
    meta = json.dumps({"video": "v01", "start": 1.0}).encode()
    sample = decoder(raw(clip40, json=meta, cls=b"3"))
    video = sample["video"]
    assert video.shape == (8, 3, 32, 32) and video.dtype == torch.float32
    assert sample["text"].shape == (32,) and sample["text"].dtype == torch.long
    assert sample["meta"] == {"video": "v01", "start": 1.0} and sample["label"] == 3
    assert "mp4" not in sample and sample["__key__"] == "s0"
    # the frames really differ (the brightness ramps with the index), in time order
    means = video[:, :, 12:, :].mean(dim=(1, 2, 3))  # below the coded top row
    assert torch.all(means[1:] > means[:-1])


def test_deterministic_sampling_takes_segment_centres(clip40):
    decoder = VideoClipDecoder(None, num_frames=8, train=False)
    video = decoder(raw(clip40))["video"]
    assert video.dtype == torch.uint8 and video.shape == (8, 3, 48, 64)
    assert ids(video) == [2, 7, 12, 17, 22, 27, 32, 37]


def test_training_jitter_is_seeded_per_sample(clip40):
    decoder = VideoClipDecoder(None, num_frames=8, train=True, seed=0)
    first = ids(decoder(raw(clip40))["video"])
    assert [i // 5 for i in first] == list(range(8))  # one frame inside each 5-frame segment
    assert ids(decoder(raw(clip40))["video"]) == first  # same sample, same frames
    assert ids(VideoClipDecoder(None, num_frames=8, seed=0)(raw(clip40))["video"]) == first  # a fresh decoder too
    others = {tuple(ids(decoder(raw(clip40, key=f"s{k}"))["video"])) for k in range(1, 6)}
    others |= {tuple(ids(decoder(raw(clip40, epoch=1))["video"])), tuple(ids(VideoClipDecoder(
        None, num_frames=8, seed=1)(raw(clip40))["video"]))}
    assert len(others - {tuple(first)}) >= 5


def test_short_clips_repeat_frames_and_npy_members():
    short = encode_clip(coded_frames(3), 10)
    decoder = VideoClipDecoder(None, num_frames=8, train=False)
    assert ids(decoder(raw(short))["video"]) == [0, 0, 0, 1, 1, 2, 2, 2]
    frames = coded_frames(16)
    thwc = decoder(raw(frames_to_npy(frames), suffix="frames.npy"))["video"]
    assert ids(thwc) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert torch.equal(thwc[0], torch.from_numpy(frames[1]).permute(2, 0, 1))  # raw frames are exact
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
    assert torch.equal(decoder(raw(buffer.getvalue(), suffix="frames.npy"))["video"], thwc)


def test_fps_sampling_fits_the_length(clip40):
    decoder = VideoClipDecoder(None, num_frames=3, sampling="fps", target_fps=2.0, train=False)
    # 2 fps over a 10 fps clip of 40 frames: 0, 5, ..., 35 (8 frames); the centred window of 3
    assert ids(decoder(raw(clip40))["video"]) == [10, 15, 20]
    import random

    assert fit_length([4, 5, 6], 6, random.Random(0), train=False) == [4, 4, 5, 5, 6, 6]
    windows = {tuple(fit_length(list(range(10)), 3, random.Random(s), train=True)) for s in range(30)}
    assert all(w[1] == w[0] + 1 and w[2] == w[0] + 2 for w in windows) and len(windows) > 3


def test_same_augmentation_for_every_frame(clip40):
    def noisy(image):  # a "random augmentation": a random brightness shift from the torch RNG
        return torch.zeros(3, 2, 2) + torch.rand(())

    same = VideoClipDecoder(noisy, num_frames=4, train=True)(raw(clip40))["video"]
    assert torch.all(same == same[0, 0, 0, 0])
    different = VideoClipDecoder(noisy, num_frames=4, train=True, same_augmentation=False)(raw(clip40))["video"]
    assert len(set(different[:, 0, 0, 0].tolist())) == 4


def test_corrupt_video_raises_bad_video(clip40):
    decoder = VideoClipDecoder(None, num_frames=4)
    with pytest.raises(CorruptSampleError, match=r"bad_video: <bytes s0.mp4>: not a video") as info:
        decoder(raw(b"<html>not found</html>"))
    assert info.value.reason == BAD_VIDEO == "bad_video"
    with pytest.raises(CorruptSampleError, match="truncated") as info:
        decoder(raw(clip40[: len(clip40) // 3]))
    assert info.value.reason == BAD_VIDEO
    with pytest.raises(CorruptSampleError, match="not a .npy array") as info:
        decoder(raw(b"garbage", suffix="frames.npy"))
    assert info.value.reason == BAD_VIDEO
    with pytest.raises(CorruptSampleError) as info:
        decoder({"__key__": "s9", "txt": b"caption only"})
    assert info.value.reason == "missing_key:video"
    with pytest.raises(InputError, match="sampling must be one of uniform, fps, all; got 'uniformly'"):
        VideoClipDecoder(None, sampling="uniformly")


def test_an_image_member_over_max_image_pixels_is_refused_from_its_header(clip40):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buf, format="PNG")
    sample = raw(clip40, png=buf.getvalue())
    decoder = VideoClipDecoder(None, num_frames=2, max_image_pixels=1200, required=("video", "text", "image"))
    assert tuple(decoder(sample)["image"].shape) == (3, 30, 40)
    with pytest.raises(CorruptSampleError, match="max_image_pixels=1199") as info:
        VideoClipDecoder(None, num_frames=2, max_image_pixels=1199)(sample)
    assert info.value.reason == "bad_image"
    with pytest.raises(InputError, match="max_image_pixels must be an integer >= 1"):
        VideoClipDecoder(None, max_image_pixels=0)


def test_through_the_streaming_loader(tmp_path, clip40, model_parts):
    _, val_transform, tokenizer = model_parts
    with ShardWriter(tmp_path, prefix="clips", max_count=3) as writer:
        for k in range(6):
            clip = b"\x00\x00\x00\x18ftypmp42 broken" if k == 4 else clip40
            writer.write({"__key__": f"c{k:03d}", "mp4": clip, "text": f"step {k}", "meta": {"k": k}})

    def run(train: bool) -> tuple[list, dict]:
        decoder = VideoClipDecoder(val_transform, tokenizer, num_frames=4, train=train, seed=3)
        loader = build_loader(Source(str(tmp_path / "clips-{000000..000001}.tar")), decoder, batch_size=2,
                              epochs=1, shuffle_buffer=4, max_corrupt_fraction=0.5)
        return list(loader), loader.corrupt_counts()

    batches, corrupt = run(train=True)
    assert corrupt == {"bad_video": 1}
    assert sum(len(b["__key__"]) for b in batches) == 5
    assert all(b["video"].shape[1:] == (4, 3, 32, 32) and b["text"].shape[1] == 32 for b in batches)
    assert sorted(m["k"] for b in batches for m in b["meta"]) == [0, 1, 2, 3, 5]
    again, _ = run(train=True)
    for a, b in zip(batches, again):
        assert a["__key__"] == b["__key__"] and torch.equal(a["video"], b["video"])


def test_resumed_stream_decodes_the_same_clips(tmp_path, clip40):
    with ShardWriter(tmp_path, prefix="clips", max_count=4) as writer:
        for k in range(8):
            writer.write({"__key__": f"c{k:03d}", "mp4": clip40, "text": f"step {k}"})

    def loader():
        decoder = VideoClipDecoder(None, num_frames=4, train=True, seed=5)
        return build_loader(Source(str(tmp_path / "clips-{000000..000001}.tar")), decoder, batch_size=2,
                            epochs=1, shuffle_buffer=4)

    full = [ids(v) for b in loader() for v in b["video"]]
    first = loader()
    stream = iter(first)
    head = [ids(v) for _ in range(2) for v in next(stream)["video"]]
    state = first.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    tail = [ids(v) for b in resumed for v in b["video"]]
    assert head + tail == full and len(full) == 8
    assert len({tuple(f) for f in full}) > 3  # jittered differently per sample
