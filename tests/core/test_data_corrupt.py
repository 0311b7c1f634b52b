"""Corrupt-sample accounting, the too-many-corrupt error, damaged shards, and the exact-resume guarantee."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import re
import tarfile
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from domainclip.core.data.corrupt import CorruptSampleError, CorruptTally, TooManyCorruptSamplesError
from domainclip.core.data.decode import SampleDecoder
from domainclip.core.data.reader import ShardUrl, Source, StreamingDataset, build_loader, iter_shard
from domainclip.core.data.writer import ShardWriter
from domainclip.core.errors import InputError

N_SAMPLES = 60
TRUNCATED_SHARD = 4  # samples 40..49; cut inside the header of sample 46
EXPECTED_COUNTS = {"bad_image": 2, "bad_json": 1, "bad_shard": 1, "missing_key:text": 1}
EXPECTED_GOOD = N_SAMPLES - 4 - 5  # 4 corrupt samples; 45 dropped (incomplete) and 46..49 lost


def _image(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8)


def _jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_image(i)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _truncate_inside_header(path, key: str) -> None:
    with tarfile.open(path) as tar:
        offset = min(m.offset for m in tar.getmembers() if m.name.startswith(key + "."))
    data = path.read_bytes()
    path.write_bytes(data[: offset + 100])


@pytest.fixture(scope="module")
def corrupt_root(tmp_path_factory):
    """60 samples in 6 shards: 2 truncated JPEGs, 1 bad JSON, 1 missing caption, 1 truncated tar."""
    root = tmp_path_factory.mktemp("corrupt")
    with ShardWriter(root, max_count=10, image_format="jpg") as w:
        for i in range(N_SAMPLES):
            sample = {"__key__": f"k{i:04d}", "image": _image(i), "text": f"caption {i}", "label": i % 4}
            sample["meta"] = {"i": i}
            if i in (3, 27):
                jpeg = _jpeg(i)
                sample = {
                    "__key__": sample["__key__"],
                    "jpg": jpeg[: len(jpeg) // 2],
                    "text": "cut",
                    "label": 0,
                }
            elif i == 14:
                del sample["meta"]
                sample["json"] = b"{not json"
            elif i == 38:
                del sample["text"]
            w.write(sample)
    _truncate_inside_header(root / f"shard-{TRUNCATED_SHARD:06d}.tar", "k0046")
    return root


def _noisy_transform(image: Image.Image) -> torch.Tensor:
    """A random augmentation: exact resume must reproduce it."""
    array = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0
    return array + 0.01 * torch.rand(())


# ----------------------------------------------------------------------------- counts and errors
def test_corrupt_counts_by_reason_exact(corrupt_root):
    loader = build_loader(
        Source(str(corrupt_root)), SampleDecoder(), batch_size=5, epochs=1, max_corrupt_fraction=1.0
    )
    keys = [k for batch in loader for k in batch["__key__"]]
    assert loader.corrupt_counts() == EXPECTED_COUNTS
    assert len(keys) == len(set(keys)) == EXPECTED_GOOD == loader.good_samples
    assert loader.samples_seen == EXPECTED_GOOD + 4
    assert {"k0003", "k0014", "k0027", "k0038", "k0045", "k0046"}.isdisjoint(keys)
    assert "k0044" in keys
    report = loader.corrupt_report()
    assert "5 corrupt of 56 samples" in report
    assert re.search(r"bad_shard: 1 \(e\.g\. .*shard-000004\.tar key=k0045: .*dropped", report)
    assert re.search(r"missing_key:text: 1 \(e\.g\. .*shard-000003\.tar key=k0038", report)


def test_too_many_corrupt_error_message(corrupt_root):
    loader = build_loader(
        Source(str(corrupt_root)), SampleDecoder(), batch_size=4, shuffle_buffer=8, corrupt_check_after=20
    )
    with pytest.raises(TooManyCorruptSamplesError) as info:
        for _ in loader:
            pass
    message = str(info.value)
    assert "exceed max_corrupt_fraction=0.01" in message
    for reason, n in info.value.counts.items():
        line = next(ln for ln in message.splitlines() if ln.strip().startswith(f"{reason}:"))
        assert f"{reason}: {n} (e.g. {corrupt_root}" in line
        assert "key=k00" in line
    assert sum(info.value.counts.values()) + loader.good_samples >= 20
    assert len(info.value.counts) >= 2


def test_too_many_corrupt_checked_at_end_of_finite_stream(tmp_path):
    with ShardWriter(tmp_path, image_format="png") as w:
        for i in range(10):
            w.write({"image": _image(i)} | ({} if i == 4 else {"text": f"c{i}"}))
    loader = build_loader(Source(str(tmp_path)), SampleDecoder(), batch_size=3, epochs=1, shuffle_buffer=0)
    batches = []
    with pytest.raises(TooManyCorruptSamplesError, match=r"missing_key:text: 1 \(e\.g\. .*key=000000004"):
        for batch in loader:
            batches.append(batch)
    assert sum(len(b["__key__"]) for b in batches) == 9  # everything was yielded before the check


def test_all_corrupt_stream_raises_instead_of_hanging(tmp_path):
    with ShardWriter(tmp_path, image_format="png") as w:
        for i in range(5):
            w.write({"image": _image(i)})
    loader = build_loader(Source(str(tmp_path)), SampleDecoder(), batch_size=2, corrupt_check_after=20)
    with pytest.raises(TooManyCorruptSamplesError, match="missing_key:text: 20"):
        next(iter(loader))


def _garbage_shards(folder, n: int = 2) -> None:
    for i in range(n):
        (folder / f"shard-{i:06d}.tar").write_bytes(b"this is not a tar file" * 100)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_source_of_only_damaged_shards_names_the_source_and_counts(tmp_path, num_workers):
    _garbage_shards(tmp_path)
    loader = build_loader(Source(str(tmp_path), name="broken"), SampleDecoder(), batch_size=2, num_workers=num_workers)
    with pytest.raises(TooManyCorruptSamplesError) as info:
        next(iter(loader))
    assert info.value.counts == {"bad_shard": 2}
    lines = str(info.value).splitlines()
    assert len(lines) == 2, lines  # from a worker too: no "Caught ... Original Traceback" wrapping
    assert lines[0] == (
        "source 'broken' gave no samples in a full pass over its 2 shard(s): its shards are damaged or unreadable "
        "(2 corrupt). Counts by reason, with an example shard:"
    )
    assert lines[1].startswith(f"  bad_shard: 2 (e.g. {tmp_path}/shard-00000") and "not a tar header" in lines[1]


def test_resampled_source_of_only_damaged_shards_names_the_source_and_counts(tmp_path):
    _garbage_shards(tmp_path)
    loader = build_loader(Source(str(tmp_path), resampled=True, name="broken"), SampleDecoder(), batch_size=2)
    with pytest.raises(TooManyCorruptSamplesError, match=r"^source 'broken' gave no samples in 100 shard draws in a "
                       r"row from its 2 shard\(s\)") as info:
        next(iter(loader))
    assert info.value.counts == {"bad_shard": 100}


def test_source_of_empty_shards_is_an_input_error(tmp_path):
    with tarfile.open(tmp_path / "shard-000000.tar", "w"):
        pass
    loader = build_loader(Source(str(tmp_path), name="empty"), SampleDecoder(), batch_size=2)
    with pytest.raises(InputError) as info:
        next(iter(loader))
    assert str(info.value) == (
        "source 'empty' gave no samples in a full pass over its 1 shard(s): its shards hold no samples"
    )


def test_custom_decode_reason_and_bug_propagation(tmp_path):
    with ShardWriter(tmp_path, image_format="png") as w:
        for i in range(6):
            w.write({"image": _image(i), "text": f"c{i}"})

    def picky(raw):
        if raw["__key__"].endswith("3"):
            raise CorruptSampleError("too_dark", "mean < 10")
        return {"key": raw["__key__"]}

    loader = build_loader(Source(str(tmp_path)), picky, batch_size=1, epochs=1, max_corrupt_fraction=1.0)
    assert len(list(loader)) == 5 and loader.corrupt_counts() == {"too_dark": 1}

    def buggy(raw):
        raise KeyError("oops")

    with pytest.raises(KeyError) as info:
        list(build_loader(Source(str(tmp_path)), buggy, batch_size=1, epochs=1))
    assert any("while decoding sample" in note for note in info.value.__notes__)


# ----------------------------------------------------------------------------- damaged shards
def _small_tar(tmp_path, n=4):
    with ShardWriter(tmp_path, image_format="png") as w:
        for i in range(n):
            w.write({"__key__": f"s{i}", "image": _image(i), "text": f"c{i}"})
    return tmp_path / "shard-000000.tar"


def _read(url):
    tally = CorruptTally()
    keys = [s["__key__"] for s in iter_shard(url, tally)]
    return keys, tally


def test_truncated_inside_header_is_bad_shard(tmp_path):
    path = _small_tar(tmp_path)
    _truncate_inside_header(path, "s2")
    keys, tally = _read(str(path))
    assert keys == ["s0"] and tally.counts == {"bad_shard": 1}  # s1 was being assembled: dropped
    assert "end-of-archive" in tally.examples["bad_shard"] and "key=s1" in tally.examples["bad_shard"]


@pytest.mark.parametrize(("member_name", "kept"), [("s2.png", ["s0"]), ("s2.txt", ["s0", "s1"])])
def test_truncated_inside_data_is_bad_shard(tmp_path, member_name, kept):
    path = _small_tar(tmp_path)
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers() if m.name == member_name)
    path.write_bytes(path.read_bytes()[: member.offset_data + 10])
    keys, tally = _read(str(path))
    assert keys == kept and tally.counts == {"bad_shard": 1}  # the sample being assembled is dropped


def test_unreadable_shards_are_bad_shard(tmp_path):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar file" * 100)
    for url in (str(garbage), ShardUrl("pipe:cat /nonexistent/shard.tar"), str(tmp_path / "missing.tar")):
        keys, tally = _read(url)
        assert keys == [] and tally.counts == {"bad_shard": 1}, url


def test_gzipped_shards(tmp_path):
    path = _small_tar(tmp_path)
    gz = tmp_path / "shard.tar.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert _read(str(gz)) == (["s0", "s1", "s2", "s3"], CorruptTally())
    gz.write_bytes(gz.read_bytes()[:-200])
    keys, tally = _read(str(gz))
    assert tally.counts == {"bad_shard": 1} and keys == ["s0", "s1", "s2"][: len(keys)]


# ----------------------------------------------------------------------------- exact resume
def _assert_same_batch(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize(("num_workers", "resume_at"), [(0, (1, 9)), (2, (1, 6, 13))])
def test_exact_resume_with_corrupt_samples(corrupt_root, num_workers, resume_at):
    total = 20  # 80 good samples: every logical worker crosses an epoch boundary (and the bad shard)

    def make():
        return build_loader(
            Source(str(corrupt_root)),
            SampleDecoder(image_transform=_noisy_transform),
            batch_size=4,
            num_workers=num_workers,
            seed=7,
            shuffle_buffer=16,
            max_corrupt_fraction=1.0,
        )

    reference = make()
    stream = iter(reference)
    batches, states = [], []
    for _ in range(total):
        batches.append(next(stream))
        states.append(reference.state_dict())
    del stream
    assert reference.corrupt_counts()["bad_shard"] >= 2  # the truncated shard was met in two epochs
    assert set(reference.corrupt_counts()) == set(EXPECTED_COUNTS)

    for k in resume_at:
        state = json.loads(json.dumps(states[k - 1]))
        assert state["batches"] == k
        resumed = make()
        resumed.load_state_dict(state)
        assert resumed.corrupt_counts() == states[k - 1]["corrupt"]
        stream = iter(resumed)
        for j in range(k, total):
            _assert_same_batch(next(stream), batches[j])
        del stream
        assert resumed.state_dict() == states[-1]
        assert resumed.corrupt_counts() == reference.corrupt_counts()
        assert resumed.samples_seen == reference.samples_seen


def test_new_iter_continues_and_state_is_checked(corrupt_root):
    def make(workers=0, seed=0):
        return build_loader(
            Source(str(corrupt_root)),
            SampleDecoder(),
            batch_size=4,
            seed=seed,
            num_workers=workers,
            shuffle_buffer=16,
            max_corrupt_fraction=1.0,
        )

    loader = make()
    first = [b["__key__"] for b in itertools.islice(loader, 3)]
    second = [b["__key__"] for b in itertools.islice(loader, 2)]
    uninterrupted = [b["__key__"] for b in itertools.islice(make(), 5)]
    assert first + second == uninterrupted  # a new iter() continues where the last one stopped

    with pytest.raises(ValueError, match="num_workers=1 but this loader has 2"):
        make(workers=2).load_state_dict(loader.state_dict())
    with pytest.raises(ValueError, match="not a StreamingLoader state"):
        make().load_state_dict({"positions": [0]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make(seed=1).load_state_dict(loader.state_dict())
    assert any("different arguments" in str(w.message) for w in caught)


def test_damaged_shard_counted_once_when_all_slots_read_it(tmp_path):
    _small_tar(tmp_path, n=9)
    _truncate_inside_header(tmp_path / "shard-000000.tar", "s7")
    total: Counter = Counter()
    keys = []
    for rank in range(2):
        ds = StreamingDataset(
            Source(str(tmp_path)),
            SampleDecoder(),
            batch_size=1,
            num_workers=2,
            rank=rank,
            world_size=2,
            epochs=1,
        )
        for logical in range(2):
            for item in ds.iter_logical(logical):
                total.update(item["__corrupt__"]["counts"])
                keys += item.get("__key__", [])
    assert total == {"bad_shard": 1}
    assert sorted(keys) == [f"s{i}" for i in range(6)]  # s6 was being assembled: dropped
