"""Data-loader throughput: domainclip's streaming loader against a bare tarfile + PIL loop on the same shards.

Usage::

    python -m bench.bench_loader [--model dc-test-vit] [--workers 0 2] [--batch-size 64]
                                 [--repeats 4] [--samples 2048] [--out FILE.json]

Both sides turn the same generated shapes shards (png + txt + cls + json, 64 px) into batches of
``--batch-size`` (image tensors from the model's validation transform, caption tokens from its
tokenizer), with the same number of worker processes:

* ``domainclip``: :func:`~domainclip.core.data.reader.build_loader` with
  :class:`~domainclip.core.data.decode.SampleDecoder` and one pass (``epochs=1``), i.e. with
  everything the training reader does: seeded shard order and shuffle buffer (``--shuffle-buffer``),
  per-sample RNG seeding, corrupt-sample accounting, position bookkeeping for exact resume, and
  decoding of every member (label and metadata too);
* ``bare``: ``tarfile.open`` + ``extractfile`` per member, grouped by key, ``PIL.Image.open`` ->
  RGB -> the same transform, the same tokenizer, ``torch.stack`` per batch; with workers, a plain
  ``torch.utils.data.DataLoader`` over an ``IterableDataset`` that gives each worker every
  ``num_workers``-th shard of the list.

Samples/s is wall-clock from creating the iterator to the last batch (worker start-up included on
both sides), median over ``--repeats`` interleaved passes. The main process runs with
``torch.set_num_threads(--threads)``; workers use one thread each (torch's default in workers).
"""

from __future__ import annotations

import argparse
import io
import re
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from bench.common import (
    RESULTS_DIR,
    load_average,
    machine_info,
    markdown_table,
    median,
    shapes_shards,
    write_result,
)

__all__ = ["GOAL", "BareShardBatches", "bare_batches", "domainclip_loader", "main", "time_pass"]

#: domainclip's loader must reach at least this fraction of the bare loop's samples/s.
GOAL = 0.9
_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's key/suffix split


def bare_batches(
    shards: list[str], transform: Callable[[Any], torch.Tensor], tokenizer: Callable[..., torch.Tensor],
    batch_size: int,
) -> Iterator[dict[str, torch.Tensor]]:
    """The bare loop: tarfile -> group by key -> PIL -> transform / tokenizer -> stacked batches."""
    images: list[torch.Tensor] = []
    texts: list[torch.Tensor] = []

    def add(sample: dict[str, bytes]) -> dict[str, torch.Tensor] | None:
        image = Image.open(io.BytesIO(sample["png"]))
        images.append(transform(image.convert("RGB")))
        texts.append(tokenizer(sample["txt"].decode("utf-8").strip())[0])
        if len(images) < batch_size:
            return None
        batch = {"image": torch.stack(images), "text": torch.stack(texts)}
        images.clear()
        texts.clear()
        return batch

    for shard in shards:
        with tarfile.open(shard) as tar:
            key, sample = None, {}
            for member in tar:
                if not member.isreg():
                    continue
                match = _KEY_EXT.match(member.name)
                if match is None:
                    continue
                extracted = tar.extractfile(member)
                assert extracted is not None
                if match[1] != key and sample:
                    batch = add(sample)
                    if batch is not None:
                        yield batch
                    sample = {}
                key = match[1]
                sample[match[2]] = extracted.read()
            if sample:
                batch = add(sample)
                if batch is not None:
                    yield batch
    if images:
        yield {"image": torch.stack(images), "text": torch.stack(texts)}


class BareShardBatches(IterableDataset):
    """The bare loop as an ``IterableDataset``: worker ``i`` of ``n`` reads shards ``i, i+n, ...``."""

    def __init__(self, shards: list[str], transform: Callable, tokenizer: Callable, batch_size: int):
        super().__init__()
        self.shards = shards
        self.transform = transform
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        shards = self.shards if info is None else self.shards[info.id :: info.num_workers]
        return bare_batches(shards, self.transform, self.tokenizer, self.batch_size)


def domainclip_loader(shards: list[str], transform: Callable, tokenizer: Callable, *, batch_size: int,
                      workers: int, shuffle_buffer: int) -> Any:
    """domainclip's loader over ``shards``: one pass, the training reader's code path."""
    from domainclip.core.data.decode import SampleDecoder
    from domainclip.core.data.reader import Source, build_loader

    decoder = SampleDecoder(image_transform=transform, tokenizer=tokenizer, text_choice="first",
                            required=("image", "text"))
    return build_loader(Source(shards), decoder, batch_size=batch_size, num_workers=workers, epochs=1,
                        shuffle_buffer=shuffle_buffer)


def time_pass(make: Callable[[], Any]) -> dict[str, float]:
    """Iterate one freshly made loader to its end; returns samples, seconds and samples/s."""
    started = time.perf_counter()
    cpu = time.process_time()
    samples = 0
    for batch in make():
        samples += int(batch["image"].shape[0])
    seconds = time.perf_counter() - started
    return {"samples": samples, "seconds": round(seconds, 3), "samples_per_s": samples / seconds,
            "main_cpu_s": round(time.process_time() - cpu, 3)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a markdown table and write the JSON result; returns the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dc-test-vit", help="model whose val transform and tokenizer are used")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="worker counts to measure")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shuffle-buffer", type=int, default=1000, help="domainclip's shuffle buffer")
    parser.add_argument("--repeats", type=int, default=4, help="interleaved passes per side and worker count")
    parser.add_argument("--samples", type=int, default=2048, help="generated samples (8 shards at the default)")
    parser.add_argument("--image-size", type=int, default=64, help="side of the generated png images")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "loader.json")
    args = parser.parse_args(argv)

    from domainclip.core.models import create_model_and_transforms, get_tokenizer

    torch.set_num_threads(args.threads)
    model, _, transform = create_model_and_transforms(args.model)
    tokenizer = get_tokenizer(model)
    del model
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        shards = shapes_shards(Path(tmp) / "shards", args.samples, image_size=args.image_size,
                               per_shard=max(1, args.samples // 8))
        sides: dict[str, Callable[[int], Callable[[], Any]]] = {
            "domainclip": lambda w: lambda: domainclip_loader(
                shards, transform, tokenizer, batch_size=args.batch_size, workers=w,
                shuffle_buffer=args.shuffle_buffer),
            "bare": lambda w: lambda: DataLoader(
                BareShardBatches(shards, transform, tokenizer, args.batch_size), batch_size=None, num_workers=w),
        }
        for make in sides.values():  # warm-up: imports, tokenizer caches, file cache
            time_pass(make(0))
        for repeat in range(args.repeats):
            for workers in args.workers:
                order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
                for name in order:
                    load = load_average()
                    result = time_pass(sides[name](workers))
                    if result["samples"] != args.samples:
                        raise RuntimeError(f"{name} with {workers} workers gave {result['samples']} samples, "
                                           f"expected {args.samples}")
                    runs.append({"side": name, "workers": workers, "repeat": repeat, "load_before": load, **result})
                    print(f"  repeat {repeat} workers {workers} {name:<10} {result['samples_per_s']:8.1f} samples/s "
                          f"(load {load})", flush=True)

    summary, table = [], []
    for workers in args.workers:
        ours = median([r["samples_per_s"] for r in runs if r["side"] == "domainclip" and r["workers"] == workers])
        bare = median([r["samples_per_s"] for r in runs if r["side"] == "bare" and r["workers"] == workers])
        ratio = ours / bare
        summary.append({
            "benchmark": "loader",
            "measurement": f"{args.model} val transform + tokenizer, batch {args.batch_size}, "
                           f"{workers} workers, samples/s",
            "domainclip": round(ours, 1),
            "reference": round(bare, 1),
            "reference_name": "bare tarfile + PIL loop",
            "ratio": round(ratio, 3),
            "goal": GOAL,
            "met": ratio >= GOAL,
        })
        table.append([workers, ours, bare, ratio, "met" if ratio >= GOAL else "NOT met"])
    loads = [r["load_before"] for r in runs]
    result = {
        "benchmark": "data loader: build_loader + SampleDecoder vs a bare tarfile/PIL loop",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "summary": summary,
        "load_average_range": [min(loads), max(loads)],
        "runs": runs,
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(markdown_table(["workers", "domainclip samples/s", "bare loop samples/s", "ratio", f"goal >= {GOAL}"],
                         table))
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
