"""ShardWriter: encoding of canonical keys, atomic shards, rollover, index file."""

from __future__ import annotations

import io
import json
import os
import tarfile

import numpy as np
import pytest
import torch
import webdataset
from PIL import Image

from domainclip.core.data.decode import SampleDecoder
from domainclip.core.data.reader import Source, build_loader
from domainclip.core.data.writer import ShardWriter, encode_sample, read_index, write_shards
from domainclip.core.errors import OutputExistsError
from domainclip.core.plugins import UnknownNameError


def _image(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8)


def _members(path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def _read_all(out_dir, decoder=None):
    loader = build_loader(
        Source(str(out_dir)),
        decoder or SampleDecoder(required=()),
        batch_size=1,
        epochs=1,
        shuffle_buffer=0,
        collate=lambda samples: {"samples": samples},
    )
    return [b["samples"][0] for b in loader]


def test_roundtrip_all_canonical_keys(tmp_path):
    views = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    with ShardWriter(tmp_path, image_format="png") as w:
        w.write(
            {
                "__key__": "a0",
                "image": _image(0),
                "text": "a small cat",
                "label": 3,
                "level": "phase",
                "meta": {"source": "x.svs", "xy": [1, 2]},
                "mp4": b"\x00\x01raw-video",
            }
        )
        w.write(
            {
                "__key__": "a1",
                "image": _image(1),
                "text": ["one", "two"],
                "label": [0, 2],
                "level": ["step", "task"],
                "views": views,
            }
        )
        w.write({"__key__": "a2", "image": _image(2), "text": {"en": "cat", "de": "Katze"}})
    assert sorted(_members(tmp_path / "shard-000000.tar")) == sorted(
        [
            "a0.png",
            "a0.txt",
            "a0.cls",
            "a0.level.txt",
            "a0.json",
            "a0.mp4",
            "a1.png",
            "a1.text.json",
            "a1.label.json",
            "a1.level.json",
            "a1.views.npy",
            "a2.png",
            "a2.text.json",
        ]
    )
    got = {
        s["__key__"]: s
        for s in _read_all(tmp_path, SampleDecoder(required=(), text_choice="all", passthrough=("mp4",)))
    }
    assert sorted(got) == ["a0", "a1", "a2"]
    for i, key in enumerate(["a0", "a1", "a2"]):
        assert torch.equal(got[key]["image"], torch.from_numpy(_image(i)).permute(2, 0, 1))
    assert got["a0"]["text"] == "a small cat"
    assert got["a0"]["label"] == 3
    assert got["a0"]["level"] == "phase"
    assert got["a0"]["meta"] == {"source": "x.svs", "xy": [1, 2]}
    assert got["a0"]["mp4"] == b"\x00\x01raw-video"
    assert got["a1"]["text"] == ["one", "two"]
    assert got["a1"]["label"] == [0, 2]
    assert got["a1"]["level"] == ["step", "task"]
    assert torch.equal(got["a1"]["views"], torch.from_numpy(views))
    assert got["a2"]["text"] == {"en": "cat", "de": "Katze"}


def test_image_input_types_png_lossless(tmp_path):
    array = _image(5)
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255.0
    with ShardWriter(tmp_path, image_format="png") as w:
        w.write({"image": Image.fromarray(array), "text": "pil"})
        w.write({"image": array, "text": "numpy"})
        w.write({"image": tensor, "text": "tensor"})
    samples = _read_all(tmp_path)
    assert [s["__key__"] for s in samples] == ["000000000", "000000001", "000000002"]
    for s in samples:
        assert torch.equal(s["image"], torch.from_numpy(array).permute(2, 0, 1))


def test_jpeg_is_decodable_and_close(tmp_path):
    flat = np.full((8, 8, 3), 120, dtype=np.uint8)
    with ShardWriter(tmp_path, image_format="jpg") as w:
        w.write({"image": flat, "text": "gray"})
    (sample,) = _read_all(tmp_path)
    assert sample["image"].shape == (3, 8, 8)
    assert (sample["image"].int() - 120).abs().max() <= 2


def test_crash_leaves_only_complete_shards(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(tmp_path, max_count=3, image_format="png") as w:
            for i in range(7):
                w.write({"image": _image(i), "text": f"c{i}"})
            # the third shard is open: only its hidden temporary file, unique to this writer, exists
            (tmp,) = tmp_path.glob(".shard-000002.tar.*.tmp")
            assert tmp.name.startswith(f".shard-000002.tar.{os.getpid()}-")
            assert not (tmp_path / "shard-000002.tar").exists()
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "shard-000000.tar",
        "shard-000001.tar",
        "shard-index.json",
    ]
    index = read_index(tmp_path)
    assert index["complete"] is False
    assert [(s["name"], s["count"]) for s in index["shards"]] == [
        ("shard-000000.tar", 3),
        ("shard-000001.tar", 3),
    ]
    assert len(_members(tmp_path / "shard-000001.tar")) == 6  # complete: 3 samples x (png, txt)


def test_clean_close_count_rollover_and_index(tmp_path):
    with ShardWriter(tmp_path, prefix="train", max_count=3, image_format="png") as w:
        for i in range(7):
            w.write({"image": _image(i), "text": f"c{i}", "label": i})
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    assert [p.name for p in w.written] == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]
    index = json.loads((tmp_path / "train-index.json").read_text())
    assert index["complete"] is True
    assert index["num_samples"] == 7
    assert [s["count"] for s in index["shards"]] == [3, 3, 1]
    assert [s["size"] for s in index["shards"]] == [p.stat().st_size for p in w.written]
    with pytest.raises(RuntimeError, match="closed"):
        w.write({"text": "late"})


def test_size_rollover_bounds_member_bytes(tmp_path):
    # each sample: png (<512 B) + txt = 2 x (512 header + 512 data) = 2048 tar bytes
    with ShardWriter(tmp_path, max_size=5000, image_format="png") as w:
        for i in range(5):
            w.write({"image": _image(i), "text": f"c{i}"})
    assert [s["count"] for s in read_index(tmp_path)["shards"]] == [2, 2, 1]
    with tarfile.open(tmp_path / "shard-000000.tar") as tar:
        assert not any(m.pax_headers for m in tar.getmembers())  # plain ustar: no per-member PAX block
    big = b"x" * 6000
    with ShardWriter(tmp_path / "big", max_size=5000) as w:
        w.write({"bin": big})  # larger than max_size: a shard of its own
        w.write({"bin": b"y"})
    assert [s["count"] for s in read_index(tmp_path / "big")["shards"]] == [1, 1]


def test_index_lists_exactly_this_run_and_an_old_index_is_refused(tmp_path):
    first = write_shards(({"text": f"a{i}"} for i in range(8)), tmp_path, max_count=2, progress=False)
    assert first["num_shards"] == 4
    with pytest.raises(OutputExistsError, match="already holds shards of prefix 'shard'"):
        write_shards([{"text": "b"}], tmp_path, progress=False)
    assert read_index(tmp_path)["num_samples"] == 8  # the refused run changed nothing
    second = write_shards(
        [{"text": f"b{i}"} for i in range(3)], tmp_path, max_count=2, progress=False, overwrite=True
    )
    assert second == {
        "out_dir": str(tmp_path),
        "index": str(tmp_path / "shard-index.json"),
        "shards": ["shard-000000.tar", "shard-000001.tar"],
        "num_shards": 2,
        "num_samples": 3,
    }
    index = read_index(tmp_path / "shard-index.json")
    assert [s["count"] for s in index["shards"]] == [2, 1] and index["num_samples"] == 3
    # the old run's shards 2 and 3 are gone with its index: no stale shard is left to be globbed
    assert sorted(p.name for p in tmp_path.glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    texts = sorted(s["txt"].decode() for s in webdataset.WebDataset(
        [str(p) for p in sorted(tmp_path.glob("*.tar"))], shardshuffle=False))
    assert texts == ["b0", "b1", "b2"]


def test_two_writers_in_one_folder_never_share_a_temporary_file(tmp_path):
    with ShardWriter(tmp_path, prefix="a") as a, ShardWriter(tmp_path, prefix="a-b") as b:
        a.write({"text": "from a"})
        b.write({"text": "from b"})
        tmps = sorted(p.name for p in tmp_path.glob(".*.tmp"))
        assert len(tmps) == 2 and len(set(tmps)) == 2


def test_full_disk_reports_the_original_error_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    import builtins
    import errno

    import domainclip.core.data.writer as writer_module

    class FullDisk:
        """A file that takes 3000 bytes, then fails every write and flush with ENOSPC."""

        def __init__(self, path, mode):
            self._f = builtins.open(path, mode)
            self.written = 0

        def write(self, data):
            self.written += len(data)
            if self.written > 3000:
                raise OSError(errno.ENOSPC, "No space left on device (write)")
            return self._f.write(data)

        def flush(self):
            if self.written > 3000:
                raise OSError(errno.ENOSPC, "No space left on device (flush)")
            self._f.flush()

        def fileno(self):
            return self._f.fileno()

        @property
        def closed(self):
            return self._f.closed

        def close(self):
            self.flush()
            self._f.close()

        def tell(self):
            return self._f.tell()

    monkeypatch.setattr(writer_module, "open", FullDisk, raising=False)
    with pytest.raises(OSError) as err:
        write_shards(({"bin": bytes(700)} for i in range(50)), tmp_path, max_count=10, progress=False)
    assert err.value.errno == errno.ENOSPC and "(write)" in str(err.value)  # not the cleanup's failure
    # the temporary shard is gone although closing it failed too
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    index = read_index(tmp_path)
    assert index["complete"] is False and index["shards"] == []


def test_shards_readable_by_plain_webdataset(tmp_path):
    with ShardWriter(tmp_path, image_format="png") as w:
        for i in range(3):
            w.write({"image": _image(i), "text": f"c{i}", "label": i})
    ds = webdataset.WebDataset(str(tmp_path / "shard-000000.tar"), shardshuffle=False)
    samples = list(ds)
    assert [s["__key__"] for s in samples] == ["000000000", "000000001", "000000002"]
    assert [s["txt"] for s in samples] == [b"c0", b"c1", b"c2"]
    assert [int(s["cls"]) for s in samples] == [0, 1, 2]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(samples[1]["png"]))), _image(1))


def test_bad_input_errors_are_clear(tmp_path):
    with pytest.raises(UnknownNameError, match="png"):
        ShardWriter(tmp_path, image_format="pgn")
    with ShardWriter(tmp_path) as w:
        with pytest.raises(ValueError, match=r"__key__ 'a\.b'"):
            w.write({"__key__": "a.b", "text": "x"})
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            w.write({"image": torch.full((3, 4, 4), 2.0), "text": "normalised"})
        with pytest.raises(TypeError, match="'text' must be"):
            w.write({"text": 5})
        with pytest.raises(ValueError, match="already set"):
            w.write({"text": "a", "txt": "b"})
        with pytest.raises(TypeError, match="explicit suffix"):
            w.write({"video": b"\x00"})
    assert encode_sample({"label": np.int64(4)}) == {"cls": b"4"}
