"""Hostile shards: file names that look like commands, ``pipe:`` opt-in, and decompression bombs."""

from __future__ import annotations

import io
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from domainclip.core.data.corrupt import CorruptSampleError, CorruptTally
from domainclip.core.data.decode import MAX_IMAGE_PIXELS, SampleDecoder
from domainclip.core.data.reader import ShardUrl, Source, build_loader, expand_urls, iter_shard, open_url
from domainclip.core.data.writer import ShardWriter
from domainclip.core.errors import InputError

#: a file name that a shell would run: it creates ``pwned`` in the working folder
COMMAND_NAME = "pipe:touch pwned #.tar"


def _write(folder, n: int = 4, size: int = 8) -> list[str]:
    keys = []
    with ShardWriter(folder, image_format="png") as w:
        for i in range(n):
            keys.append(f"s{i}")
            w.write({"__key__": f"s{i}", "image": np.full((size, size, 3), i, np.uint8), "text": f"c{i}"})
    return keys


def _keys(loader) -> list[str]:
    return [k for batch in loader for k in batch["__key__"]]


# ----------------------------------------------------------------------------- names found on disk
def test_file_named_like_a_pipe_url_is_read_as_a_file(tmp_path, monkeypatch):
    keys = _write(tmp_path / "made")
    shutil.copy(tmp_path / "made" / "shard-000000.tar", tmp_path / COMMAND_NAME)
    monkeypatch.chdir(tmp_path)
    urls = expand_urls("*.tar")  # a glob relative to the working folder: names come back bare
    assert urls == [COMMAND_NAME] and type(urls[0]) is str
    loader = build_loader(Source("*.tar"), SampleDecoder(), batch_size=2, epochs=1, shuffle_buffer=0)
    assert _keys(loader) == keys and loader.corrupt_counts() == {}
    assert not (tmp_path / "pwned").exists()


def test_garbage_file_named_like_a_pipe_url_is_a_bad_shard_and_never_runs(tmp_path, monkeypatch):
    (tmp_path / COMMAND_NAME).write_bytes(b"this is not a tar file" * 100)
    monkeypatch.chdir(tmp_path)
    tally = CorruptTally()
    assert [s["__key__"] for url in expand_urls("*.tar") for s in iter_shard(url, tally)] == []
    assert tally.counts == {"bad_shard": 1}
    assert "not a tar header" in tally.examples["bad_shard"]  # its bytes were read
    with pytest.raises(FileNotFoundError):
        open_url("pipe:touch pwned")  # a plain string is always a file path
    assert not (tmp_path / "pwned").exists()


def test_shard_url_keeps_its_kind_through_pickle(tmp_path):
    url = ShardUrl("hf://datasets/org/name/a.tar")
    copy = pickle.loads(pickle.dumps(url))
    assert type(copy) is ShardUrl and copy == url and repr(copy) == repr(str(url))


def test_pipe_url_is_refused_before_anything_runs(tmp_path):
    _write(tmp_path)
    url = f"pipe:touch {tmp_path / 'ran'}; cat {tmp_path / 'shard-000000.tar'}"
    with pytest.raises(InputError) as info:
        build_loader([Source(str(tmp_path)), Source(url)], SampleDecoder(), batch_size=2)
    assert str(info.value) == (
        f"shard URL {url!r} is a shell command (pipe:), which is not run unless you set data.allow_pipe: true in "
        "the recipe (allow_pipe=True for build_loader)"
    )
    assert not (tmp_path / "ran").exists()
    loader = build_loader(Source(url), SampleDecoder(), batch_size=2, epochs=1, shuffle_buffer=0, allow_pipe=True)
    assert _keys(loader) == ["s0", "s1", "s2", "s3"] and (tmp_path / "ran").exists()


# ----------------------------------------------------------------------------- recipe wiring
def _info():
    from domainclip.core.engine.distributed import DistInfo

    return DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def test_train_loader_takes_allow_pipe_and_max_image_pixels_from_the_recipe(tmp_path):
    from domainclip.core.engine.tasks import get_task
    from domainclip.core.engine.train import _build_loader
    from domainclip.core.recipe import load_recipe

    _write(tmp_path, size=8)
    data = {"root": str(tmp_path), "train": [{"urls": f"pipe:cat {tmp_path / 'shard-000000.tar'}"}],
            "batch_size": 2, "num_workers": 0, "shuffle_buffer": 0}
    recipe = load_recipe({"domain": "core", "data": data | {"allow_pipe": True, "max_image_pixels": 64}})
    loader = _build_loader(recipe, get_task("image_text"), None, None, _info())
    assert loader.dataset.decode.max_image_pixels == 64
    assert next(iter(loader))["__key__"] == ["s0", "s1"]  # read through the pipe; 8x8 = 64 pixels pass
    with pytest.raises(InputError, match="data.allow_pipe: true"):
        _build_loader(load_recipe({"domain": "core", "data": data}), get_task("image_text"), None, None, _info())


def test_task_decoders_get_the_pixel_limit_or_refuse_it_at_load(tmp_path, monkeypatch):
    import domainclip.core.engine.tasks as tasks
    from domainclip.core.engine.tasks import Task
    from domainclip.core.engine.train import _build_loader
    from domainclip.core.recipe import RecipeError, load_recipe

    def limited(preprocess, tokenizer, *, seed: int, text_choice: str, max_image_pixels: int | None = None):
        """A decoder that applies the limit.

        Args:
            preprocess: image transform.
            tokenizer: text tokenizer.
            seed: seed.
            text_choice: caption policy.
            max_image_pixels: the limit.
        """
        return SampleDecoder(max_image_pixels=max_image_pixels)

    monkeypatch.setitem(tasks._TASKS, "own", Task("own", make_decoder=lambda *a, **k: SampleDecoder()))
    monkeypatch.setitem(tasks._TASKS, "limited", Task("limited", make_decoder=limited))
    data = {"train": [{"urls": str(tmp_path)}], "max_image_pixels": 1000}
    _write(tmp_path)
    with pytest.raises(RecipeError, match="data.max_image_pixels is set but task 'own' has its own decoder"):
        load_recipe({"domain": "core", "data": data, "train": {"task": "own"}})
    recipe = load_recipe({"domain": "core", "data": data, "train": {"task": "limited"}})
    loader = _build_loader(recipe, tasks.get_task("limited"), None, None, _info())
    assert loader.dataset.decode.max_image_pixels == 1000


# ----------------------------------------------------------------------------- decompression bombs
def _bomb_png(side: int = 12000) -> bytes:
    """A real ``side`` x ``side`` PNG of one colour: small on disk, hundreds of MB once decoded."""
    buf = io.BytesIO()
    Image.new("1", (side, side), 1).save(buf, format="PNG")  # 18 MB in memory while it is written
    return buf.getvalue()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_oversized_image_is_counted_from_its_header_and_never_decoded(tmp_path, monkeypatch):
    bomb = _bomb_png()
    assert len(bomb) < 1_000_000
    with ShardWriter(tmp_path, image_format="png") as w:
        for i in range(4):
            if i == 2:
                w.write({"__key__": "s2", "png": bomb, "txt": "bomb"})
            else:
                w.write({"__key__": f"s{i}", "image": np.full((8, 8, 3), i, np.uint8), "text": f"c{i}"})
    loaded: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def spy(self):
        loaded.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    limit_before = Image.MAX_IMAGE_PIXELS
    loader = build_loader(Source(str(tmp_path)), SampleDecoder(), batch_size=1, epochs=1, shuffle_buffer=0,
                          max_corrupt_fraction=0.5)
    assert _keys(loader) == ["s0", "s1", "s3"]
    assert loader.corrupt_counts() == {"bad_image": 1}
    assert "key=s2: .png is 12000x12000 = 144000000 pixels, more than max_image_pixels=50000000; not decoded" in (
        loader.corrupt_report()
    )
    assert (12000, 12000) not in loaded and (8, 8) in loaded  # the bomb's pixels were never decoded
    assert Image.MAX_IMAGE_PIXELS == limit_before


def test_pixel_limit_is_a_decoder_argument(tmp_path):
    def raw(side: int) -> dict:
        buf = io.BytesIO()
        Image.new("RGB", (side, side)).save(buf, format="PNG")
        return {"__key__": "k", "png": buf.getvalue(), "txt": b"c"}

    decoder = SampleDecoder(max_image_pixels=100)
    assert decoder(raw(10))["image"].shape == (3, 10, 10)  # exactly at the limit
    with pytest.raises(CorruptSampleError, match="11x11 = 121 pixels, more than max_image_pixels=100") as info:
        decoder(raw(11))
    assert info.value.reason == "bad_image"
    assert SampleDecoder(max_image_pixels=None)(raw(11))["image"].shape == (3, 11, 11)
    assert SampleDecoder().max_image_pixels == MAX_IMAGE_PIXELS == 50_000_000
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_image_pixels must be an integer >= 1"):
            SampleDecoder(max_image_pixels=bad)

