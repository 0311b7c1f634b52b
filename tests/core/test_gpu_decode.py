"""data.decode_device / data.pin_memory: JPEG bytes through the workers, batched decode + transform on the device.

The device path is run with ``device="cpu"`` (torchvision's ``decode_jpeg`` also decodes CPU tensors)
and compared with the CPU path on the same JPEGs. Tolerances, in 8-bit grey levels after undoing the
normalisation: the eval transform (shorter-side resize, centre crop) within 2 levels at most, since
torchvision's CPU JPEG decoder is the same libjpeg-turbo as PIL's and its antialiased resize follows
PIL's filter up to rounding; the train transform (random resized crop, bicubic) with the *same crop
boxes*, within 8 levels at most and 0.5 on average: upscaling a small crop is where torch's bicubic
(a = -0.75) and PIL's (a = -0.5) kernels differ most. On CUDA, nvJPEG's IDCT and chroma upsampling
differ from libjpeg-turbo's by a few levels; that test allows 2 levels on average.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from domainclip.core.data.corrupt import BAD_IMAGE, CorruptSampleError
from domainclip.core.data.decode import EncodedJpeg, SampleDecoder, _decode_image_bytes
from domainclip.core.data.gpu_decode import DeviceImageDecoder, DeviceImageTransform, EncodedImage
from domainclip.core.data.reader import Source, _seed_globals, build_loader
from domainclip.core.data.writer import ShardWriter
from domainclip.core.engine.distributed import DistInfo
from domainclip.core.engine.tasks import DeviceBatches, get_task, move_to_device
from domainclip.core.errors import RecipeError
from domainclip.core.recipe import load_recipe

CUDA = torch.cuda.is_available()


def _picture(height: int, width: int, seed: int) -> np.ndarray:
    """Gradients plus noise: detail at every scale, so resampling differences show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 3 % 256], -1)
    return (base + rng.normal(0, 20, base.shape)).clip(0, 255).astype(np.uint8)


def _jpeg(height: int, width: int, seed: int = 0, mode: str = "RGB") -> bytes:
    image = Image.fromarray(_picture(height, width, seed)).convert(mode)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png(height: int, width: int, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_picture(height, width, seed)).save(buf, "PNG")
    return buf.getvalue()


#: shard-sized patches of several shapes: square, landscape, portrait, one smaller than the model input
SIZES = [(224, 224), (260, 300), (300, 240), (500, 333), (180, 200)]


def _levels(a: torch.Tensor, b: torch.Tensor, std: tuple[float, ...]) -> torch.Tensor:
    """|a - b| in 8-bit grey levels (undoing the normalisation's division by std)."""
    return ((a - b) * torch.tensor(std).view(-1, 1, 1) * 255).abs()


def _transforms(is_train: bool, size: int = 224):
    from open_clip.transform import image_transform

    return image_transform(size, is_train=is_train)


# ----------------------------------------------------------------------------- recipe
def test_recipe_decode_device_and_pin_memory_are_checked_at_load():
    recipe = load_recipe({"domain": "core"})
    assert (recipe.data.decode_device, recipe.data.pin_memory) == ("cpu", "auto")
    assert load_recipe({"domain": "core", "data": {"pin_memory": False}}).data.pin_memory is False
    with pytest.raises(RecipeError, match="data.decode_device: must be one of cpu, cuda; got 'gpu'"):
        load_recipe({"domain": "core", "data": {"decode_device": "gpu"}})
    with pytest.raises(RecipeError, match="data.pin_memory: must be one of auto or true/false; got 'sometimes'"):
        load_recipe({"domain": "core", "data": {"pin_memory": "sometimes"}})
    with pytest.raises(RecipeError, match="data.decode_device is cuda but the run's device is cpu") as e:
        load_recipe({"domain": "core", "data": {"decode_device": "cuda"}, "train": {"device": "cpu"}})
    assert "\n" not in str(e.value)
    # the device may be CUDA (named), but the task's input is not the core decoder's image
    with pytest.raises(RecipeError, match="not task 'video_text''s input"):
        load_recipe({"domain": "core", "data": {"decode_device": "cuda"},
                     "train": {"device": "cuda", "task": "video_text"}})
    ok = load_recipe({"domain": "core", "data": {"decode_device": "cuda"}, "train": {"device": "cuda:0"}})
    assert ok.data.decode_device == "cuda"


def test_auto_device_without_cuda_refuses_decode_device_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RecipeError, match=r"device is cpu \(train.device: auto\)"):
        load_recipe({"domain": "core", "data": {"decode_device": "cuda"}})


# ----------------------------------------------------------------------------- the workers' side
def test_jpeg_bytes_pass_through_the_decoder_and_other_formats_are_decoded():
    jpg, gray, cmyk, png = _jpeg(40, 60), _jpeg(40, 60, mode="L"), _jpeg(40, 60, mode="CMYK"), _png(40, 60)
    decoder = SampleDecoder(required=("image",), keep_jpeg=True)
    out = decoder({"__key__": "a", "jpg": jpg})["image"]
    assert out.dtype == torch.uint8 and out.ndim == 1 and bytes(out.numpy()) == jpg
    assert bytes(decoder({"__key__": "g", "jpeg": gray})["image"].numpy()) == gray  # grayscale: decode_jpeg makes RGB
    assert decoder({"__key__": "c", "jpg": cmyk})["image"].shape == (3, 40, 60)  # CMYK: decoded in the worker
    assert decoder({"__key__": "p", "png": png})["image"].shape == (3, 40, 60)
    assert SampleDecoder(required=("image",))({"__key__": "a", "jpg": jpg})["image"].shape == (3, 40, 60)
    # the pixel limit is still checked from the header, before anything is passed on
    with pytest.raises(CorruptSampleError, match="2400 pixels, more than max_image_pixels=2000"):
        SampleDecoder(required=("image",), keep_jpeg=True, max_image_pixels=2000)({"__key__": "a", "jpg": jpg})
    with pytest.raises(CorruptSampleError, match="bad_image"):
        SampleDecoder(required=("image",), keep_jpeg=True)({"__key__": "a", "jpg": b"not a jpeg at all"})


def test_worker_side_carries_bytes_and_the_crop_box_the_cpu_transform_draws():
    cpu = _transforms(is_train=True)
    device_path = DeviceImageTransform.from_transform(cpu)
    assert [s.kind for s in device_path.steps] == ["random_resized_crop"]
    assert device_path.steps[0].scale == (0.9, 1.0) and device_path.steps[0].interpolation == "bicubic"
    for k, (h, w) in enumerate(SIZES):
        data = _jpeg(h, w, k)
        _seed_globals(1000 + k)
        sample = device_path(_decode_image_bytes(data, "jpg", None, keep_jpeg=True))
        assert isinstance(sample, EncodedImage) and bytes(sample.data.numpy()) == data
        _seed_globals(1000 + k)  # the CPU path: the transform's first draw is RandomResizedCrop.get_params
        expected = cpu.transforms[0].get_params(Image.open(io.BytesIO(data)), cpu.transforms[0].scale,
                                                cpu.transforms[0].ratio)
        assert sample.crop == tuple(expected)
    assert DeviceImageTransform.from_transform(_transforms(is_train=False))(EncodedJpeg(b"x", 10, 10)).crop is None


def test_transforms_the_device_path_cannot_reproduce_are_refused_in_one_line():
    from torchvision import transforms as T

    jitter = T.Compose([T.RandomResizedCrop(32), T.ColorJitter(0.4), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    with pytest.raises(RecipeError, match="cannot reproduce the model's image transform step ColorJitter") as e:
        DeviceImageTransform.from_transform(jitter)
    assert "\n" not in str(e.value)
    with pytest.raises(RecipeError, match="ends in ToTensor and Normalize"):
        DeviceImageTransform.from_transform(T.Compose([T.Resize(32), T.ToTensor()]))


# ----------------------------------------------------------------------------- batched decode vs the CPU path
def _both_paths(is_train: bool, device: str, images: list[bytes] | None = None):
    cpu = _transforms(is_train)
    device_path = DeviceImageTransform.from_transform(cpu)
    images = images or [_jpeg(h, w, k) for k, (h, w) in enumerate(SIZES)]
    expected, encoded = [], []
    for k, data in enumerate(images):
        _seed_globals(k)
        try:
            expected.append(cpu(_decode_image_bytes(data, "jpg", None)))
        except CorruptSampleError:  # the CPU path counts it: nothing to compare
            expected.append(torch.zeros(3, 224, 224))
        _seed_globals(k)
        encoded.append(device_path(_decode_image_bytes(data, "jpg", None, keep_jpeg=True)))
    batch = {"image": encoded, "text": torch.arange(len(images)), "__key__": [f"k{i}" for i in range(len(images))]}
    decoder = DeviceImageDecoder(device_path, device)
    return torch.stack(expected), decoder(batch), decoder, device_path


def test_eval_transform_on_the_device_path_matches_the_cpu_path():
    expected, batch, decoder, path = _both_paths(False, "cpu")
    assert [s.kind for s in path.steps] == ["resize", "center_crop"]
    assert batch["image"].shape == expected.shape == (len(SIZES), 3, 224, 224)
    diff = torch.stack([_levels(a, b, path.std) for a, b in zip(batch["image"], expected)])
    assert diff.max() <= 2.01 and diff.mean() < 0.05
    assert decoder.counts == {"decoded_on_device": len(SIZES), "decoded_in_workers": 0}
    assert torch.equal(batch["text"], torch.arange(len(SIZES)))


def test_train_transform_on_the_device_path_uses_the_same_crop_boxes():
    expected, batch, _, path = _both_paths(True, "cpu")
    diff = torch.stack([_levels(a, b, path.std) for a, b in zip(batch["image"], expected)])
    assert diff.max() <= 8 and diff.mean() < 0.5
    # the CPU path with another seed draws other boxes, and the comparison sees it
    cpu, others = _transforms(True), []
    for k, (h, w) in enumerate(SIZES):
        _seed_globals(k + 100)
        others.append(_levels(batch["image"][k], cpu(_decode_image_bytes(_jpeg(h, w, k), "jpg", None)), path.std))
    assert max(float(d.mean()) for d in others) > 5 * float(diff.mean())


def test_a_png_in_the_batch_is_decoded_in_the_worker_and_transformed_like_the_others():
    cpu = _transforms(False)
    path = DeviceImageTransform.from_transform(cpu)
    png, jpg = _png(260, 300, 3), _jpeg(260, 300, 3)
    batch = {"image": [path(_decode_image_bytes(jpg, "jpg", None, keep_jpeg=True)),
                       path(_decode_image_bytes(png, "png", None, keep_jpeg=True))], "__key__": ["j", "p"]}
    decoder = DeviceImageDecoder(path, "cpu")
    out = decoder(batch)["image"]
    assert decoder.counts == {"decoded_on_device": 1, "decoded_in_workers": 1}
    assert _levels(out[1], cpu(Image.open(io.BytesIO(png))), path.std).max() <= 1.01


def test_a_corrupt_jpeg_falls_back_to_per_image_decoding_and_is_dropped_and_counted():
    good = [_jpeg(h, w, k) for k, (h, w) in enumerate(SIZES)]
    broken = good[2][: len(good[2]) // 2]  # the header reads; the data ends halfway
    expected, batch, decoder, path = _both_paths(False, "cpu", images=[*good[:2], broken, *good[3:]])
    assert batch["__key__"] == ["k0", "k1", "k3", "k4"]
    assert torch.equal(batch["text"], torch.tensor([0, 1, 3, 4]))  # every per-sample value follows
    keep = [0, 1, 3, 4]
    assert _levels(batch["image"], expected[keep], path.std).max() <= 2.01
    assert decoder.tally.counts == {BAD_IMAGE: 1}
    assert "k2" in decoder.tally.examples[BAD_IMAGE] and "truncated" in decoder.tally.examples[BAD_IMAGE]
    assert decoder.counts["decoded_on_device"] == 4
    # a batch of only broken JPEGs gives no batch
    only_bad = {"image": [path(_decode_image_bytes(broken, "jpg", None, keep_jpeg=True))], "__key__": ["x"]}
    assert decoder(only_bad) is None and decoder.tally.counts == {BAD_IMAGE: 2}


# ----------------------------------------------------------------------------- loader, pinning, prefetching
def _shards(folder, n: int = 12, broken: tuple[int, ...] = ()) -> None:
    with ShardWriter(folder, max_count=6) as w:
        for i in range(n):
            data = _jpeg(*SIZES[i % len(SIZES)], seed=i)
            w.write({"__key__": f"s{i:02d}", "jpg": data[: len(data) // 2] if i in broken else data, "txt": f"c{i}"})


def _loader(folder, transform, keep_jpeg: bool, **kw):
    decoder = SampleDecoder(image_transform=transform, keep_jpeg=keep_jpeg, seed=5)
    return build_loader(Source(str(folder)), decoder, batch_size=4, seed=5, shuffle_buffer=8, **kw)


def test_loader_batches_decoded_on_the_device_path_match_the_cpu_path_sample_by_sample(tmp_path):
    _shards(tmp_path)
    cpu = _transforms(is_train=True, size=64)
    path = DeviceImageTransform.from_transform(cpu)
    plain = list(_loader(tmp_path, cpu, False, epochs=1))
    on_device = list(DeviceBatches(_loader(tmp_path, path, True, epochs=1), "cpu", DeviceImageDecoder(path, "cpu")))
    assert [b["__key__"] for b in on_device] == [b["__key__"] for b in plain]
    for a, b in zip(on_device, plain):
        diff = torch.stack([_levels(x, y, path.std) for x, y in zip(a["image"], b["image"])])
        assert diff.max() <= 8 and diff.mean() < 0.5  # the per-sample seeded boxes are the same


def test_corrupt_jpegs_found_on_the_device_join_the_loaders_corrupt_accounting(tmp_path):
    _shards(tmp_path, broken=(3, 7))
    path = DeviceImageTransform.from_transform(_transforms(False))
    batches = DeviceBatches(_loader(tmp_path, path, True, epochs=1, max_corrupt_fraction=0.5), "cpu",
                            DeviceImageDecoder(path, "cpu"))
    keys = [k for b in batches for k in b["__key__"]]
    assert len(keys) == 10 and "s03" not in keys and "s07" not in keys
    assert batches.corrupt_counts() == {BAD_IMAGE: 2}
    assert batches.state_dict()["device_corrupt"] == {BAD_IMAGE: 2}
    assert "and 2 more whose JPEG passed the workers' header check" in batches.corrupt_report()
    # over the limit: the same error the loader raises for corrupt samples it finds itself
    from domainclip.core.data.corrupt import TooManyCorruptSamplesError

    strict = DeviceBatches(_loader(tmp_path, path, True, epochs=1, max_corrupt_fraction=0.05,
                                   corrupt_check_after=1), "cpu", DeviceImageDecoder(path, "cpu"))
    with pytest.raises(TooManyCorruptSamplesError, match=r"(?s)too many corrupt samples: \d of \d+ .* bad_image: "):
        list(strict)


def test_pin_memory_reaches_the_dataloader(tmp_path):
    from domainclip.core.engine.train import _build_loader

    _shards(tmp_path, n=4)

    def pinned(value, device="cpu"):
        data = {"train": [{"urls": str(tmp_path)}], "num_workers": 0, "pin_memory": value}
        batches = _build_loader(load_recipe({"domain": "core", "data": data}), get_task("image_text"), lambda im: im,
                                None, DistInfo(0, 1, 0, torch.device(device)))
        assert isinstance(batches, DeviceBatches) and batches.prepare is None
        return batches.loader._dataloader().pin_memory

    assert pinned(True) is True and pinned(False) is False
    assert pinned("auto") is False  # auto: on only with CUDA
    assert pinned("auto", "cuda") is True


def test_the_engines_loader_hands_out_batches_decoded_by_the_device_stage(tmp_path):
    from domainclip.core.engine.train import _build_loader
    from domainclip.core.models import create_model_and_transforms, get_tokenizer

    _shards(tmp_path, n=8, broken=(6,))
    model, train_transform, _ = create_model_and_transforms("dc-test-vit")
    data = {"train": [{"urls": str(tmp_path)}], "num_workers": 0, "batch_size": 4, "decode_device": "cuda",
            "max_corrupt_fraction": 0.5}
    recipe = load_recipe({"domain": "core", "data": data, "train": {"device": "cuda"}})
    # the device stage runs where the step runs; here on CPU, with torchvision's CPU decoder
    batches = _build_loader(recipe, get_task("image_text"), train_transform, get_tokenizer(model),
                            DistInfo(0, 1, 0, torch.device("cpu")), one_pass=True)
    assert batches.dataset.decode.keep_jpeg and isinstance(batches.dataset.decode.image_transform,
                                                           DeviceImageTransform)
    got = list(batches)
    assert [tuple(b["image"].shape) for b in got] == [(4, 3, 32, 32), (3, 3, 32, 32)]
    assert got[0]["text"].shape[0] == 4 and got[1]["text"].shape[0] == 3
    assert batches.decode_counts() == {"decoded_on_device": 7, "decoded_in_workers": 0}
    assert batches.corrupt_counts() == {BAD_IMAGE: 1}


def test_device_batches_keep_order_contents_and_the_state_of_the_batch_handed_out(tmp_path):
    _shards(tmp_path, n=24)
    cpu = _transforms(is_train=False, size=32)
    reference = list(_loader(tmp_path, cpu, False, epochs=1))
    wrapped = DeviceBatches(_loader(tmp_path, cpu, False, epochs=1), "cpu")
    it = iter(wrapped)
    first = [next(it) for _ in range(3)]
    for got, want in zip(first, reference):
        assert got["__key__"] == want["__key__"] and torch.equal(got["image"], want["image"])
    # a checkpoint now resumes with batch 4
    state = wrapped.state_dict()
    resumed = DeviceBatches(_loader(tmp_path, cpu, False, epochs=1), "cpu")
    resumed.load_state_dict(state)
    assert [b["__key__"] for b in resumed] == [b["__key__"] for b in reference[3:]]
    assert wrapped.samples_seen == 12


def test_move_to_device_copies_every_tensor_and_keeps_the_rest():
    batch = {"image": torch.ones(2, 3), "text": [torch.zeros(2), torch.ones(1)], "__key__": ["a", "b"],
             "crop": EncodedImage(torch.arange(3), (1, 2, 3, 4))}
    moved = move_to_device(batch, torch.device("cpu"))
    assert moved["__key__"] == ["a", "b"] and isinstance(moved["crop"], EncodedImage)
    assert torch.equal(moved["text"][1], torch.ones(1)) and moved["crop"].crop == (1, 2, 3, 4)


# ----------------------------------------------------------------------------- CUDA (skipped without)
@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_nvjpeg_batched_decode_and_transform_match_the_cpu_path():
    expected, batch, decoder, path = _both_paths(False, "cuda")
    assert batch["image"].is_cuda
    diff = torch.stack([_levels(a, b, path.std) for a, b in zip(batch["image"].cpu(), expected)])
    assert diff.mean() < 2
    expected, batch, _, path = _both_paths(True, "cuda")
    diff = torch.stack([_levels(a, b, path.std) for a, b in zip(batch["image"].cpu(), expected)])
    assert diff.mean() < 2


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_prefetcher_gives_the_plain_iterators_batches_in_order(tmp_path):
    _shards(tmp_path, n=24, broken=(5,))
    path = DeviceImageTransform.from_transform(_transforms(True))
    plain = list(DeviceBatches(_loader(tmp_path, path, True, epochs=1, max_corrupt_fraction=0.5), "cuda",
                               DeviceImageDecoder(path, "cuda"), prefetch=False))
    ahead = DeviceBatches(_loader(tmp_path, path, True, epochs=1, max_corrupt_fraction=0.5), "cuda",
                          DeviceImageDecoder(path, "cuda"))
    got = []
    for b in ahead:
        got.append(b)
        torch.cuda.current_stream().synchronize()
    assert [b["__key__"] for b in got] == [b["__key__"] for b in plain]
    for a, b in zip(got, plain):
        assert a["image"].is_cuda and torch.equal(a["image"], b["image"]) and a["text"].is_cuda
    assert ahead.corrupt_counts() == {BAD_IMAGE: 1}


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_training_with_decode_device_cuda_runs_and_counts_what_it_decoded(tmp_path):
    import json

    from domainclip.core.engine.train import train

    _shards(tmp_path / "shards", n=16)
    recipe = load_recipe({
        "domain": "core",
        "data": {"train": [{"urls": str(tmp_path / "shards")}], "batch_size": 8, "num_workers": 1,
                 "decode_device": "cuda"},
        "train": {"steps": 2, "device": "cuda", "log_every": 1, "checkpoint_every": 2, "progress": False},
    })
    result = train(recipe, tmp_path / "run")
    assert result.steps == 2 and result.corrupt_counts == {}
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    corrupt = next(e for e in events if e.get("event") == "corrupt_samples")
    assert corrupt["decoded_on_device"] >= 16 and corrupt["decoded_in_workers"] == 0
