"""Reading back what a prepare command wrote: every raw sample of a shard folder, by key."""

from __future__ import annotations

from pathlib import Path

from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.reader import expand_urls, iter_shard


def shard_samples(folder: str | Path) -> dict[str, dict]:
    """Every raw sample (member suffix -> bytes, ``__key__``, ``__url__``) of the shards in ``folder``, by key.

    Args:
        folder: a folder of ``.tar`` shards; every shard must read without a damaged sample.
    """
    tally = CorruptTally()
    samples = {}
    for url in expand_urls(str(folder)):
        for raw in iter_shard(url, tally):
            samples[raw["__key__"]] = raw
    assert not tally.counts, tally.counts
    return samples
