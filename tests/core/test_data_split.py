"""The "sample" split: ranks' batches k together are exactly batch k of a one-process run."""

from __future__ import annotations

import pytest

from domainclip.core.data.decode import SampleDecoder
from domainclip.core.data.reader import Source, build_loader
from domainclip.core.data.writer import write_shards


@pytest.fixture
def shards(tmp_path):
    samples = ({"text": f"caption {i}", "label": i, "meta": {"i": i}} for i in range(120))
    write_shards(samples, tmp_path, prefix="s", max_count=40, progress=False)
    return str(tmp_path / "s-{000000..000002}.tar")


def keys_of(loader, n):
    it = iter(loader)
    return [list(next(it)["label"].tolist()) for _ in range(n)]


@pytest.mark.parametrize("workers", [0, 2])
def test_sample_split_reassembles_the_global_batch(shards, workers):
    decode = SampleDecoder(required=("text",), text_choice="first")
    common = dict(batch_size=8, num_workers=workers, seed=3, shuffle_buffer=16)
    one = keys_of(build_loader(Source(shards), decode, **common), 12)
    halves = [
        keys_of(build_loader(Source(shards), decode, **{**common, "batch_size": 4}, rank=r, world_size=2,
                             split="sample"), 12)
        for r in range(2)
    ]
    for k in range(12):
        assert sorted(halves[0][k] + halves[1][k]) == sorted(one[k])
        assert not set(halves[0][k]) & set(halves[1][k])


def test_shard_split_gives_disjoint_ranks(shards):
    decode = SampleDecoder(required=("text",), text_choice="first")
    seen = [set(x for b in keys_of(build_loader(Source(shards), decode, batch_size=4, rank=r, world_size=2,
                                                  seed=0, shuffle_buffer=1, epochs=1), 10) for x in b)
            for r in range(2)]
    assert not seen[0] & seen[1]


def test_unknown_split_is_rejected(shards):
    with pytest.raises(ValueError, match="split must be one of shard, sample"):
        build_loader(Source(shards), SampleDecoder(required=("text",)), batch_size=2, split="rows")
