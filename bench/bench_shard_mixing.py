"""Topic mixing of training batches read from shards written in topic order (no wall-clock).

Usage::

    python -m bench.bench_shard_mixing [--topics 8] [--shards-per-topic 4] [--per-shard 1000]
                                       [--batch-size 64] [--shuffle-buffer 1000] [--workers 2]
                                       [--interleave 1 4 8] [--batches 60] [--out FILE.json]

Shard ``i`` holds only topic ``i // shards_per_topic`` (the order BIOMEDICA writes its shards in:
cluster by cluster). The samples go through :func:`~domainclip.core.data.reader.build_loader` with
the recipe's defaults (shuffle buffer 1000, 2 workers, per-epoch shard shuffle), once per
``--interleave`` value (``data.shard_interleave``: shards each worker reads at once). Per batch it
records the share of the most common topic and the number of distinct topics, and compares them
with i.i.d. batches (uniform over the whole set): ``E[distinct] = T (1 - (1 - 1/T)^B)`` exactly, and
the mean top share of simulated i.i.d. batches. The samples are a few bytes each, so the numbers
are about order only; nothing here is timed.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import tarfile
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, machine_info, markdown_table, write_result
from domainclip.core.data.reader import Source, build_loader

__all__ = ["iid_expectation", "main", "measure_mixing", "topic_ordered_shards", "topic_of"]


def topic_ordered_shards(out_dir: str | Path, topics: int, shards_per_topic: int, per_shard: int) -> list[str]:
    """Write ``topics * shards_per_topic`` tars of ``per_shard`` samples; shard i holds topic i // shards_per_topic.

    Args:
        out_dir: folder for ``shard-000000.tar``, ...
        topics: number of topics.
        shards_per_topic: consecutive shards per topic.
        per_shard: samples per shard (each a ``txt`` member naming its topic).

    Returns:
        The shard paths, in order.

    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard in range(topics * shards_per_topic):
        topic = shard // shards_per_topic
        path = out / f"shard-{shard:06d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(per_shard):
                data = f"topic {topic}".encode()
                info = tarfile.TarInfo(f"t{topic:02d}-{shard:06d}-{i:06d}.txt")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        paths.append(str(path))
    return paths


def topic_of(raw: dict[str, Any]) -> dict[str, Any]:
    """A loader ``decode``: ``{"__key__", "topic", "source"}`` of a raw sample of :func:`topic_ordered_shards`.

    Args:
        raw: a raw sample (suffix -> bytes).

    """
    return {"__key__": raw["__key__"], "topic": int(raw["txt"].split()[1]), "source": raw["__source__"]}


def iid_expectation(topics: int, batch_size: int, *, draws: int = 2000, seed: int = 0) -> dict[str, float]:
    """Expected distinct topics and top-topic share of a batch drawn i.i.d. from equally many samples per topic.

    Args:
        topics: number of topics (equally frequent).
        batch_size: samples per batch.
        draws: simulated batches for the top share (the distinct count is exact).
        seed: seed of the simulation.

    """
    rng = random.Random(seed)
    shares = [
        max(Counter(rng.randrange(topics) for _ in range(batch_size)).values()) / batch_size for _ in range(draws)
    ]
    return {
        "distinct_topics": topics * (1 - (1 - 1 / topics) ** batch_size),
        "top_share": statistics.fmean(shares),
    }


def measure_mixing(
    urls: Sequence[str],
    *,
    batch_size: int,
    batches: int,
    shuffle_buffer: int,
    num_workers: int,
    shard_interleave: int,
    seed: int = 0,
) -> dict[str, float]:
    """Mean distinct topics and mean top-topic share over the first ``batches`` batches of an endless stream.

    Args:
        urls: shard paths from :func:`topic_ordered_shards`.
        batch_size: samples per batch.
        batches: batches to look at.
        shuffle_buffer: the loader's sample shuffle buffer.
        num_workers: DataLoader workers.
        shard_interleave: shards each worker reads at once.
        seed: loader seed.

    """
    loader = build_loader(
        Source(list(urls)),
        topic_of,
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle_buffer=shuffle_buffer,
        shard_interleave=shard_interleave,
        seed=seed,
    )
    distinct, top = [], []
    for i, batch in enumerate(loader):
        counts = Counter(batch["topic"].tolist())
        distinct.append(len(counts))
        top.append(max(counts.values()) / batch_size)
        if i + 1 == batches:
            break
    return {
        "distinct_topics": statistics.fmean(distinct),
        "top_share": statistics.fmean(top),
        "worst_top_share": max(top),
    }


def measure_weights(
    folders: Sequence[str | Path],
    weights: Sequence[float],
    *,
    batch_size: int,
    batches: int,
    num_workers: int,
    shard_interleave: int,
    seed: int = 0,
) -> dict[str, float]:
    """Share of the samples each source gave in the first ``batches`` batches of a weighted mixture.

    Args:
        folders: one shard folder per source (named ``s0``, ``s1``, ... in the result).
        weights: the sources' weights.
        batch_size: samples per batch.
        batches: batches to count.
        num_workers: DataLoader workers.
        shard_interleave: shards each worker reads at once per source.
        seed: loader seed.

    """
    sources = [Source(str(f), weight=w, name=f"s{i}") for i, (f, w) in enumerate(zip(folders, weights))]
    loader = build_loader(
        sources,
        topic_of,
        batch_size=batch_size,
        num_workers=num_workers,
        shard_interleave=shard_interleave,
        seed=seed,
    )
    counts: Counter[str] = Counter()
    for i, batch in enumerate(loader):
        counts.update(batch["source"])
        if i + 1 == batches:
            break
    total = sum(counts.values())
    return {source.name: counts[source.name] / total for source in sources}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure batch topic mixing for each ``--interleave`` value and print a table.

    Args:
        argv: command-line arguments (default: ``sys.argv``).

    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=8)
    parser.add_argument("--shards-per-topic", type=int, default=4)
    parser.add_argument("--per-shard", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shuffle-buffer", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--interleave", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--weights", type=float, nargs="+", default=[5, 3, 2])
    parser.add_argument("--weight-batches", type=int, default=400)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--out", default=str(RESULTS_DIR / "shard_mixing.json"))
    args = parser.parse_args(argv)
    iid = iid_expectation(args.topics, args.batch_size)
    rows = []
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = topic_ordered_shards(tmp, args.topics, args.shards_per_topic, args.per_shard)
        for k in args.interleave:
            got = measure_mixing(
                urls,
                batch_size=args.batch_size,
                batches=args.batches,
                shuffle_buffer=args.shuffle_buffer,
                num_workers=args.workers,
                shard_interleave=k,
            )
            results.append({"shard_interleave": k, **got})
            rows.append(
                [k, f"{got['distinct_topics']:.2f}", f"{got['top_share']:.3f}", f"{got['worst_top_share']:.3f}"]
            )
        # realised mix of weighted sources (each a copy of the topic-ordered set), recipe interleave
        folders = []
        for i in range(len(args.weights)):
            topic_ordered_shards(Path(tmp) / f"s{i}", 2, 2, args.per_shard // 2)
            folders.append(Path(tmp) / f"s{i}")
        realised = measure_weights(
            folders,
            args.weights,
            batch_size=args.batch_size,
            batches=args.weight_batches,
            num_workers=args.workers,
            shard_interleave=8,
        )
    rows.append(["i.i.d.", f"{iid['distinct_topics']:.2f}", f"{iid['top_share']:.3f}", ""])
    table = markdown_table(["shard_interleave", "distinct topics / batch", "top-topic share", "worst batch"], rows)
    total = sum(args.weights)
    samples = args.batch_size * args.weight_batches
    weight_rows = [
        [name, f"{w / total:.3f}", f"{realised[name]:.4f}", f"{(w / total * (1 - w / total) / samples) ** 0.5:.4f}"]
        for name, w in zip(realised, args.weights)
    ]
    weight_table = markdown_table(
        ["source", "weight share", f"realised share ({samples} samples)", "binomial sd"], weight_rows
    )
    print(table)
    print()
    print(weight_table)
    payload = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "iid": iid,
        "results": results,
        "realised_weights": realised,
        "weight_table": weight_table,
        "machine": machine_info(),
        "table": table,
    }
    write_result(args.out, payload)
    return payload


if __name__ == "__main__":
    json.dumps(main())
