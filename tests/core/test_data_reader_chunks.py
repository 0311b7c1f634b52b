"""The chunked tar reader gives the samples, order, decode seeds and damage accounting of the reader before it.

The reader parses tar streams from chunks of up to ``_CHUNK`` bytes and groups members into samples
itself (the rules of webdataset's ``group_by_keys``); these tests hold it to webdataset's own
grouping on the same bytes, at every chunk size, on streams that deliver a few bytes at a time,
on truncated shards, and to the exact stream (keys, order, decode seeds) of the reader before the
change for a fixed seed.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from webdataset.tariterators import group_by_keys, tar_file_expander

from domainclip.core.data import reader
from domainclip.core.data.corrupt import BAD_SHARD, CorruptTally
from domainclip.core.data.decode import EPOCH, SOURCE, derive_rng
from domainclip.core.data.reader import Source, StreamingDataset, build_loader, iter_shard
from domainclip.core.data.writer import ShardWriter


def _tar(members: list[tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT, compression: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


#: members of several samples: sizes around the block size, upper-case suffixes, a directory,
#: a __meta__ member, a name without suffix, a key with dots in its folder, a long name
MEMBERS = [
    ("__meta__.json", b"{}"),
    ("000000.jpg", bytes(range(256)) * 2),
    ("000000.TXT", b"caption zero"),
    ("000000.cls", b"3"),
    ("dir/", b""),
    ("README", b"no suffix: skipped"),
    ("000001.jpg", b"\xff" * 511),
    ("000001.txt", b"caption one"),
    ("a.b/000002.jpg", b"\x01" * 513),
    ("a.b/000002.txt", b""),
    ("x/" + "long_key_" * 15 + ".seg.npy", b"\x02" * 5000),
    ("x/" + "long_key_" * 15 + ".txt", b"long"),
    ("000003.txt", b"last"),
]


def _reference(data: bytes, url: str) -> list[dict[str, Any]]:
    """webdataset's own reading of the same bytes: tarfile + ``group_by_keys``."""
    samples = group_by_keys(tar_file_expander([{"stream": io.BytesIO(data), "url": url}]))
    return [{k: v for k, v in s.items() if k != "__local_path__"} for s in samples]


def _read(path: Path) -> tuple[list[dict[str, Any]], CorruptTally]:
    tally = CorruptTally()
    return list(iter_shard(str(path), tally)), tally


@pytest.mark.parametrize("chunk", [512, 700, 4096, 1 << 20])
@pytest.mark.parametrize(("fmt", "compression"), [(tarfile.GNU_FORMAT, ""), (tarfile.PAX_FORMAT, ""),
                                                  (tarfile.GNU_FORMAT, "gz")])
def test_samples_equal_webdataset_grouping_at_every_chunk_size(tmp_path, monkeypatch, chunk, fmt, compression):
    data = _tar(MEMBERS, fmt, compression)
    path = tmp_path / "s.tar"
    path.write_bytes(data)
    monkeypatch.setattr(reader, "_CHUNK", chunk)
    got, tally = _read(path)
    expected = _reference(data, str(path))
    assert got == expected
    assert [list(s) for s in got] == [list(s) for s in expected]  # same key order in each sample dict
    # __meta__.json is no meta member for webdataset's rule (__meta__ followed by the end or a slash)
    assert [s["__key__"] for s in got] == ["__meta__", "000000", "000001", "a.b/000002", "x/" + "long_key_" * 15,
                                           "000003"]
    assert got[1]["txt"] == b"caption zero" and "TXT" not in got[1]  # suffixes lower-cased
    assert tally.corrupt == 0


class _Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read (a network stream), with ``read1``."""

    def __init__(self, data: bytes, step: int):
        self._data = data
        self._pos = 0
        self.step = step
        self.requested: list[int] = []

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        self.requested.append(size)
        out = self._data[self._pos : self._pos + min(self.step, size if size >= 0 else self.step)]
        self._pos += len(out)
        return out

    def read(self, size: int = -1) -> bytes:
        out = b""
        while size < 0 or len(out) < size:
            more = self.read1(self.step if size < 0 else size - len(out))
            if not more:
                break
            out += more
        return out


class _NoRead1:
    """A stream with ``read`` only (like webdataset's ``Pipe`` for http and pipe: URLs); counts bytes read."""

    def __init__(self, data: bytes):
        self._f = io.BytesIO(data)
        self.read_so_far = 0

    def read(self, size: int = -1) -> bytes:
        out = self._f.read(size)
        self.read_so_far += len(out)
        return out

    def close(self) -> None:
        self._f.close()


def test_streams_that_trickle_or_lack_read1_give_the_same_samples(tmp_path, monkeypatch):
    data = _tar(MEMBERS)
    expected = _reference(data, "mem")
    trickle = _Trickle(data, 37)
    monkeypatch.setattr(reader, "open_url", lambda url: trickle)
    got, _ = _read(Path("mem"))
    assert got == expected
    plain = _NoRead1(data)
    monkeypatch.setattr(reader, "open_url", lambda url: plain)
    samples = iter_shard("mem", CorruptTally())
    first = next(samples)
    assert first == expected[0]
    # without read1 the parser reads no further than it needs: the first sample is complete when
    # the header of the next sample's first member has been read, not a chunk later
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        second = next(m for m in tar if m.name == "000001.jpg")
    assert plain.read_so_far <= second.offset_data + second.size + 511
    assert [first, *samples] == expected


def test_member_larger_than_a_chunk_is_read_whole(tmp_path, monkeypatch):
    big = bytes(range(256)) * 40  # 10240 bytes
    members = [("000000.npy", big), ("000000.txt", b"a"), ("000001.npy", big[:3000]), ("000001.txt", b"b")]
    path = tmp_path / "big.tar"
    path.write_bytes(_tar(members))
    monkeypatch.setattr(reader, "_CHUNK", 1024)
    got, tally = _read(path)
    assert [s["npy"] for s in got] == [big, big[:3000]] and tally.corrupt == 0


@pytest.mark.parametrize("chunk", [512, 1536, 1 << 20])
def test_truncated_shard_keeps_the_same_samples_and_counts_it_once(tmp_path, monkeypatch, chunk):
    data = _tar(MEMBERS)
    monkeypatch.setattr(reader, "_CHUNK", chunk)
    complete = [s["__key__"] for s in _reference(data, "x")]
    for cut in range(100, len(data) - 1024, 173):
        path = tmp_path / f"cut{cut}.tar"
        path.write_bytes(data[:cut])
        got, tally = _read(path)
        keys = [s["__key__"] for s in got]
        assert keys == complete[: len(keys)]  # a prefix of the whole shard's samples
        assert tally.counts == {BAD_SHARD: 1}, cut
        # the sample being assembled when the cut was found is dropped, never yielded
        assert all(f"key={key}:" not in tally.examples[BAD_SHARD] for key in keys)


def test_duplicate_member_drops_the_sample_and_counts_the_shard(tmp_path):
    path = tmp_path / "dup.tar"
    path.write_bytes(_tar([("000000.txt", b"a"), ("000001.txt", b"b"), ("000001.txt", b"c"), ("000002.txt", b"d")]))
    got, tally = _read(path)
    assert [s["__key__"] for s in got] == ["000000"]
    assert tally.counts == {BAD_SHARD: 1}
    assert "key=000001:" in tally.examples[BAD_SHARD] and "duplicate" in tally.examples[BAD_SHARD]


def test_decode_seed_is_derive_rng_of_the_sample(tmp_path):
    urls = [str(tmp_path / name) for name in write_set(tmp_path)]
    ds = StreamingDataset(Source(urls), lambda raw: raw, batch_size=4, seed=7, epochs=1)
    for raw in list(ds.raw_stream(0, CorruptTally()))[:20]:
        expected = derive_rng(7, "decode", raw[SOURCE], raw["__url__"], raw["__key__"], raw[EPOCH]).getrandbits(63)
        assert ds._decode_seed(raw) == expected


# ----------------------------------------------------------------------------- the stream before the change
def write_set(folder: Path) -> list[str]:
    """Three small shards (txt + cls + bin members), named relative to ``folder``."""
    names = []
    for shard in range(3):
        name = f"s-{shard:06d}.tar"
        with ShardWriter(str(folder / name)) as writer:
            for i in range(21):
                key = f"{shard:02d}{i:04d}"
                writer.write({"__key__": key, "txt": f"caption {key}".encode(), "cls": str(i % 5).encode(),
                              "bin": bytes([i]) * (300 + 97 * i)})
        names.append(name)
    return names


def stream_digest(urls: list[str], **kw: Any) -> str:
    """Digest of a loader's whole stream: keys in order, batch by batch, and each sample's decode seed."""
    import random

    def decode(raw: dict[str, Any]) -> dict[str, Any]:
        # the decoder sees the per-sample seeded global RNG, as augmentations do
        return {"__key__": raw["__key__"], "draw": random.getrandbits(32), "n": len(raw["bin"])}

    loader = build_loader(Source(urls), decode, batch_size=8, seed=3, epochs=2, shuffle_buffer=kw.pop("buffer"), **kw)
    h = hashlib.sha256()
    for batch in loader:
        h.update(repr((batch["__key__"], batch["draw"].tolist(), batch["n"].tolist())).encode())
    return h.hexdigest()[:16]


#: the streams of the reader before the chunked parser (commit 1505daf), for these arguments
BEFORE = {
    (0, 1): "677369a0aa89cdc5",
    (50, 1): "4ce49711d27e18b6",
    (50, 3): "ae444c5c07c64e52",
}


@pytest.mark.parametrize(("buffer", "interleave"), list(BEFORE))
def test_stream_is_the_one_before_the_change(tmp_path, monkeypatch, buffer, interleave):
    monkeypatch.chdir(tmp_path)  # relative shard names: the URLs (and so the seeds) do not depend on tmp_path
    urls = write_set(Path("."))
    assert stream_digest(urls, buffer=buffer, shard_interleave=interleave) == BEFORE[(buffer, interleave)]


def test_resume_mid_stream_is_exact(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    urls = write_set(Path("."))

    def loader():
        return build_loader(Source(urls), lambda raw: {"__key__": raw["__key__"]}, batch_size=5, seed=1,
                            shuffle_buffer=16, shard_interleave=2)

    whole = iter(loader())
    expected = [next(whole)["__key__"] for _ in range(30)]
    first = loader()
    it = iter(first)
    got = [next(it)["__key__"] for _ in range(11)]
    state = first.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    it = iter(resumed)
    got += [next(it)["__key__"] for _ in range(19)]
    assert got == expected
