"""Streaming reader: URLs, rank/worker split, mixing, shuffling, resampling, SampleDecoder, collate."""

from __future__ import annotations

import io
import itertools
import sys
from collections import Counter

import numpy as np
import pytest
import torch
import webdataset.utils
from PIL import Image

from domainclip.core.data.corrupt import CorruptSampleError, CorruptTally
from domainclip.core.data.decode import SampleDecoder, collate_samples
from domainclip.core.data.reader import ShardUrl, Source, StreamingDataset, build_loader, expand_urls, open_url
from domainclip.core.data.writer import ShardWriter
from domainclip.core.errors import InputError
from domainclip.core.plugins import UnknownNameError


def _write(out_dir, n_shards: int, per_shard: int, tag: str = "s") -> list[str]:
    """Write ``n_shards`` x ``per_shard`` samples with keys ``<tag>00000``...; return the keys."""
    keys = []
    with ShardWriter(out_dir, max_count=per_shard, image_format="png") as w:
        for i in range(n_shards * per_shard):
            key = f"{tag}{i:05d}"
            image = np.full((8, 8, 3), i % 256, dtype=np.uint8)
            w.write({"__key__": key, "image": image, "text": f"caption {i}", "label": i % 5})
            keys.append(key)
    return keys


def _keys(loader) -> list[str]:
    return [k for batch in loader for k in batch["__key__"]]


def _loader(sources, **kw):
    kw.setdefault("batch_size", 4)
    return build_loader(sources, SampleDecoder(), **kw)


# ----------------------------------------------------------------------------- URLs
def test_expand_urls_braces_globs_folders(tmp_path):
    _write(tmp_path, 3, 2)
    names = [str(tmp_path / f"shard-00000{i}.tar") for i in range(3)]
    assert expand_urls(str(tmp_path / "shard-{000000..000002}.tar")) == names
    assert expand_urls(str(tmp_path / "shard-*.tar")) == names
    assert expand_urls(tmp_path) == names
    assert expand_urls(f"file://{tmp_path}/shard-*.tar") == names
    assert all(type(url) is str for url in expand_urls(tmp_path))  # local files, opened as files
    urls = expand_urls(["pipe:cat x.tar", "hf://datasets/org/name/a-{0..1}.tar"], allow_pipe=True)
    assert urls == ["pipe:cat x.tar", "hf://datasets/org/name/a-0.tar", "hf://datasets/org/name/a-1.tar"]
    assert all(type(url) is ShardUrl for url in urls)  # written by the user: opened by scheme
    with pytest.raises(FileNotFoundError, match="shard-000003.tar"):
        expand_urls(str(tmp_path / "shard-{000000..000003}.tar"))
    with pytest.raises(FileNotFoundError, match="matches no files"):
        expand_urls(str(tmp_path / "*.tgz"))


def test_reads_back_what_was_written_with_braces(tmp_path):
    keys = _write(tmp_path, 3, 4)
    loader = _loader(Source(str(tmp_path / "shard-{000000..000002}.tar")), epochs=1, shuffle_buffer=0)
    batches = list(loader)
    assert [k for b in batches for k in b["__key__"]] == keys
    first = batches[0]
    assert first["image"].dtype == torch.uint8 and first["image"].shape == (4, 3, 8, 8)
    assert torch.equal(first["image"][:, 0, 0, 0], torch.tensor([0, 1, 2, 3], dtype=torch.uint8))
    assert first["text"] == ["caption 0", "caption 1", "caption 2", "caption 3"]
    assert torch.equal(first["label"], torch.tensor([0, 1, 2, 3]))
    assert loader.samples_seen == 12 and loader.corrupt_counts() == {}


def test_pipe_url_runs_only_with_allow_pipe(tmp_path):
    keys = _write(tmp_path, 1, 5)
    url = f"pipe:cat {tmp_path / 'shard-000000.tar'}"
    loader = _loader(Source(url), epochs=1, shuffle_buffer=0, allow_pipe=True)
    assert _keys(loader) == keys
    with pytest.raises(InputError, match=r"data\.allow_pipe: true") as info:
        _loader(Source(url), epochs=1)
    assert url in str(info.value)


def test_security_flag_is_honoured_for_pipes_and_local_files_still_read(tmp_path, monkeypatch):
    keys = _write(tmp_path, 1, 5)
    monkeypatch.setattr(webdataset.utils, "enforce_security", True, raising=False)
    with pytest.raises(InputError, match="WDS_SECURE=1 forbids"):
        _loader(Source(f"pipe:cat {tmp_path / 'shard-000000.tar'}"), allow_pipe=True)
    with pytest.raises(ValueError, match="cannot open pipe URLs"):  # gopen refuses it too: never lifted
        open_url(ShardUrl(f"pipe:cat {tmp_path / 'shard-000000.tar'}"))
    assert webdataset.utils.enforce_security is True
    assert _keys(_loader(Source(str(tmp_path)), epochs=1, shuffle_buffer=0)) == keys  # plain open()


def test_hf_url_goes_through_webdataset_gopen(tmp_path, monkeypatch):
    keys = _write(tmp_path, 1, 3)
    opened = []

    def fake_hf(url, mode="rb", bufsize=8192, **kw):
        opened.append(url)
        return open(tmp_path / "shard-000000.tar", "rb")

    gopen_module = sys.modules["webdataset.gopen"]
    monkeypatch.setitem(gopen_module.gopen_schemes, "hf", fake_hf)
    loader = _loader(
        Source("hf://datasets/org/name/shard-000000.tar"), batch_size=1, epochs=1, shuffle_buffer=0
    )
    assert _keys(loader) == keys
    assert opened == ["hf://datasets/org/name/shard-000000.tar"]


# ----------------------------------------------------------------------------- splitting
def _slot_keys(ds: StreamingDataset) -> list[list[str]]:
    return [[k for b in ds.iter_logical(r) for k in b.get("__key__", [])] for r in range(ds.logical_workers)]


@pytest.mark.parametrize(("n_shards", "per_shard"), [(8, 5), (3, 7)])
def test_rank_and_worker_split_disjoint_and_covering(tmp_path, n_shards, per_shard):
    keys = _write(tmp_path, n_shards, per_shard)
    seen: list[str] = []
    for rank in range(2):
        ds = StreamingDataset(
            Source(str(tmp_path)),
            SampleDecoder(),
            batch_size=2,
            num_workers=2,
            rank=rank,
            world_size=2,
            epochs=1,
            shuffle_buffer=4,
        )
        for slot in _slot_keys(ds):
            assert slot, "a worker got no samples"
            seen += slot
    assert len(seen) == len(set(seen)) == len(keys)  # disjoint
    assert set(seen) == set(keys)  # covering


def test_rank_split_through_loaders(tmp_path):
    keys = _write(tmp_path, 4, 3)
    parts = [set(_keys(_loader(Source(str(tmp_path)), rank=r, world_size=2, epochs=1))) for r in range(2)]
    assert parts[0].isdisjoint(parts[1])
    assert parts[0] | parts[1] == set(keys)


def test_worker_split_fewer_shards_than_workers_through_dataloader(tmp_path):
    keys = _write(tmp_path, 1, 9)
    loader = _loader(Source(str(tmp_path)), batch_size=2, num_workers=2, epochs=1, shuffle_buffer=0)
    batches = list(loader)
    got = [k for b in batches for k in b["__key__"]]
    assert sorted(got) == keys
    assert {k for b in batches[0::2][:2] for k in b["__key__"]} <= set(keys[0::2])  # worker 0: even samples
    assert set(batches[1]["__key__"]) <= set(keys[1::2])


def test_endless_stream_with_fewer_shards_than_workers_and_interleaved_epochs(tmp_path):
    """Two workers share one shard; with 8 epochs' streams interleaved each keeps samples of alternate
    epochs only. That is no starvation (every slot still reads every sample): the stream goes on."""
    keys = _write(tmp_path, 1, 9)
    loader = _loader(Source(str(tmp_path)), batch_size=2, num_workers=2, shuffle_buffer=4, shard_interleave=8)
    got = [k for batch in itertools.islice(iter(loader), 45) for k in batch["__key__"]]  # 90 samples: 10 epochs
    assert len(got) == 90
    assert set(got) == set(keys)


# ----------------------------------------------------------------------------- mixing / shuffling
def test_mixing_weights_respected(tmp_path):
    _write(tmp_path / "a", 2, 10, tag="a")
    _write(tmp_path / "b", 2, 10, tag="b")
    ds = StreamingDataset(
        [
            Source(str(tmp_path / "a"), weight=3.0, name="A"),
            Source(str(tmp_path / "b"), weight=1.0, name="B"),
        ],
        SampleDecoder(),
        batch_size=4,
        shuffle_buffer=50,
    )
    raw = itertools.islice(ds.raw_stream(0, CorruptTally()), 4000)
    counts = Counter(s["__source__"] for s in raw)
    assert counts["A"] + counts["B"] == 4000
    assert abs(counts["A"] - 3000) < 150  # binomial sd ~27


def test_shuffle_deterministic_per_seed(tmp_path):
    keys = _write(tmp_path, 4, 6)

    def order(seed):
        return _keys(_loader(Source(str(tmp_path)), seed=seed, epochs=1, shuffle_buffer=10))

    a, b, c = order(0), order(0), order(1)
    assert a == b
    assert a != c
    assert sorted(a) == sorted(c) == keys
    assert a != keys


def test_epochs_reshuffle_and_loop_forever(tmp_path):
    _write(tmp_path, 4, 3)
    ds = StreamingDataset(Source(str(tmp_path)), SampleDecoder(), batch_size=4, shuffle_buffer=2)
    raw = list(itertools.islice(ds.raw_stream(0, CorruptTally()), 40))  # >3 epochs of 12
    epochs = [[s for s in raw if s["__epoch__"] == e] for e in range(3)]
    assert all(sorted(s["__key__"] for s in e) == sorted(s["__key__"] for s in epochs[0]) for e in epochs)
    assert all(len(e) == 12 for e in epochs)
    shard_orders = {tuple(dict.fromkeys(s["__url__"] for s in e)) for e in epochs}
    assert len(shard_orders) > 1  # the shard order changes between epochs


def test_resampled_sources(tmp_path):
    keys = _write(tmp_path, 4, 3)

    def stream(seed, rank):
        ds = StreamingDataset(
            Source(str(tmp_path), resampled=True),
            SampleDecoder(),
            batch_size=2,
            seed=seed,
            rank=rank,
            world_size=2,
        )
        return [s["__key__"] for s in itertools.islice(ds.raw_stream(0, CorruptTally()), 60)]

    a = stream(0, 0)
    assert a == stream(0, 0)
    assert a != stream(0, 1)
    assert set(a) <= set(keys)
    assert max(Counter(a).values()) > 1  # drawn with replacement
    with pytest.raises(ValueError, match="resampled"):
        build_loader(Source(str(tmp_path), resampled=True), SampleDecoder(), batch_size=2, epochs=1)


# ----------------------------------------------------------------------------- decoder / collate
def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_sample_decoder_text_choices_and_tokenizer():
    raw = {
        "__key__": "k1",
        "__url__": "u",
        "__epoch__": 0,
        "png": _png(7),
        "text.json": b'["a", "b", "c", "d"]',
    }
    assert SampleDecoder(text_choice="first")(raw)["text"] == "a"
    assert SampleDecoder(text_choice="all")(raw)["text"] == ["a", "b", "c", "d"]
    decoder = SampleDecoder(text_choice="random", seed=3)
    assert decoder(raw)["text"] == decoder(dict(raw))["text"]  # seeded from (seed, url, key, epoch)
    choices = {decoder({**raw, "__epoch__": e})["text"] for e in range(40)}
    assert choices == {"a", "b", "c", "d"}

    def tokenizer(text):
        return torch.tensor([[len(text), 1, 0]])

    out = SampleDecoder(tokenizer=tokenizer, image_transform=lambda im: torch.tensor(im.size))(
        {"__key__": "k2", "png": _png(1), "txt": b" hello ", "cls": b"4", "json": b'{"a": 1}'}
        | {"level.txt": b"phase"}
    )
    assert torch.equal(out["text"], torch.tensor([5, 1, 0]))
    assert torch.equal(out["image"], torch.tensor([8, 8]))
    assert out["label"] == 4 and out["meta"] == {"a": 1} and out["level"] == "phase"
    with pytest.raises(UnknownNameError, match="random"):
        SampleDecoder(text_choice="rand")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"png": _png(1)}, "missing_key:text"),
        ({"txt": b"x"}, "missing_key:image"),
        ({"png": _png(1)[:40], "txt": b"x"}, "bad_image"),
        ({"png": _png(1), "txt": b"   "}, "bad_text"),
        ({"png": _png(1), "txt": b"\xff\xfe"}, "bad_text"),
        ({"png": _png(1), "text.json": b"[1, 2]"}, "bad_text"),
        ({"png": _png(1), "txt": b"x", "json": b"{oops"}, "bad_json"),
        ({"png": _png(1), "txt": b"x", "json": b"[1]"}, "bad_json"),
        ({"png": _png(1), "txt": b"x", "cls": b"three"}, "bad_label"),
    ],
)
def test_sample_decoder_reasons(raw, reason):
    with pytest.raises(CorruptSampleError) as info:
        SampleDecoder()({"__key__": "k", **raw})
    assert info.value.reason == reason


def test_collate_samples():
    samples = [
        {"image": torch.zeros(3, 2, 2), "label": 1, "text": "a", "meta": {"i": 0}},
        {"image": torch.ones(3, 2, 2), "label": 2, "text": "b", "meta": {"i": 1}},
    ]
    batch = collate_samples(samples)
    assert batch["image"].shape == (2, 3, 2, 2) and torch.equal(batch["label"], torch.tensor([1, 2]))
    assert batch["text"] == ["a", "b"] and batch["meta"] == [{"i": 0}, {"i": 1}]
    with pytest.raises(ValueError, match="different keys"):
        collate_samples([{"a": 1}, {"b": 2}])


def test_hf_url_without_webdataset_handler_uses_hffilesystem(tmp_path, monkeypatch):
    keys = _write(tmp_path, 1, 2)
    import huggingface_hub

    class FakeFS:
        def open(self, url, mode):
            assert url == "hf://datasets/org/name/shard-000000.tar" and mode == "rb"
            return open(tmp_path / "shard-000000.tar", "rb")

    monkeypatch.delitem(sys.modules["webdataset.gopen"].gopen_schemes, "hf", raising=False)
    monkeypatch.setattr(huggingface_hub, "HfFileSystem", FakeFS)
    loader = _loader(
        Source("hf://datasets/org/name/shard-000000.tar"), batch_size=1, epochs=1, shuffle_buffer=0
    )
    assert _keys(loader) == keys


def test_loading_leaves_callers_global_rng_alone(tmp_path):
    _write(tmp_path, 2, 4)

    def noisy(image):
        return torch.rand(2) + float(np.random.rand())

    loader = build_loader(
        Source(str(tmp_path)), SampleDecoder(image_transform=noisy), batch_size=2, shuffle_buffer=4
    )
    torch.manual_seed(0)
    np.random.seed(0)
    expected = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(0)
    np.random.seed(0)
    stream = iter(loader)
    first = next(stream)
    after_one = (torch.rand(3), np.random.rand(3))
    next(stream)
    assert torch.equal(after_one[0], expected[0]) and np.array_equal(after_one[1], expected[1])
    # the augmentation itself is seeded per sample: the same batch again from a fresh loader
    again = next(
        iter(
            build_loader(
                Source(str(tmp_path)), SampleDecoder(image_transform=noisy), batch_size=2, shuffle_buffer=4
            )
        )
    )
    assert torch.equal(first["image"], again["image"])
    assert not torch.equal(first["image"][0], first["image"][1])
