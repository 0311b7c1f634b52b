"""Shard loading: domainclip's streaming reader against litdata and mosaicml-streaming on the same samples.

Usage::

    python -m bench.bench_shard_peers [--samples 2048] [--image-size 224] [--batch-size 64]
                                      [--workers 0 2] [--repeats 3] [--out FILE.json]

The same generated 224-px patches (JPEG, quality 95, one caption each) are written three times,
from the same bytes: as WebDataset shards by :func:`~domainclip.core.data.writer.write_shards`
(``jpg`` + ``txt``, 256 samples a shard), as litdata chunks by ``litdata.optimize`` (256 samples a
chunk) and as MDS shards by mosaicml-streaming's ``MDSWriter`` (about 256 samples a shard). Each
side turns every sample into the same tensors: the JPEG decoded with PIL to RGB, open_clip's
224-px evaluation transform, the caption tokenized by the same tokenizer; batches of
``--batch-size``, collated by each library's own loader:

* ``domainclip``: :func:`~domainclip.core.data.reader.build_loader` +
  :class:`~domainclip.core.data.decode.SampleDecoder`, one pass (``epochs=1``), with what the
  training reader always does (per-sample seeded RNGs, corrupt-sample accounting, the position
  bookkeeping of exact resume); shuffling on is the recipe's shuffle buffer of 1000 samples and a
  seeded shard order, off is ``shuffle_buffer=0``;
* ``litdata``: ``litdata.StreamingDataset(shuffle=...)`` with the decoding as its ``transform``,
  ``litdata.StreamingDataLoader``;
* ``mosaicml``: ``streaming.StreamingDataset(shuffle=..., batch_size=...)`` (its default ``py1e``
  shuffle), decoding in ``__getitem__``, ``streaming.StreamingDataLoader``.

Before anything is timed, one pass of every side in every setting must yield the same multiset
of keys (each sample exactly once), and at 0 workers without shuffling every sample's image and
token tensors must be identical across the three sides (compared by a digest of their bytes).
Samples/s is wall-clock from building the dataset/loader to the last batch (worker start-up
included on every side), median over ``--repeats`` passes with the order of the sides rotated
between repeats. The main process runs with ``torch.set_num_threads(--threads)``.

The peers are installed on first use with ``pip install --no-deps --target bench/.peer-loaders``
(git-ignored) and appended to ``sys.path`` of this process only: mosaicml-streaming 0.13 pins
``numpy<2.2`` (the venv has numpy 2.x, with which the parts used here work), and both pull cloud
SDKs that local reads never use; :data:`PEER_LOADER_PACKAGES` lists exactly what their imports need.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from bench.common import BENCH_DIR, RESULTS_DIR, load_average, machine_info, markdown_table, median, write_result

__all__ = [
    "GOAL",
    "PEER_LOADERS",
    "PEER_LOADER_PACKAGES",
    "PatchDecode",
    "ensure_peer_loaders",
    "main",
    "write_peer_formats",
]

#: domainclip must reach at least this fraction of litdata's samples/s in every setting.
GOAL = 1.0
#: The peers and the modules their imports need that the venv lacks, pinned (installed without
#: dependencies; torch, torchvision, numpy, filelock, requests, tqdm, ... come from the venv).
PEER_LOADER_PACKAGES = (
    "litdata==0.2.76",
    "mosaicml-streaming==0.13.0",
    "lightning-utilities==0.15.3",
    "boto3==1.44.18",
    "botocore==1.44.18",
    "s3transfer==0.19.3",
    "jmespath==1.1.0",
    "obstore==0.12.1",
    "brotli==1.2.1",
    "python-snappy==0.7.3",
    "cramjam==2.14.0",
    "zstd==1.5.7.2",
    "xxhash==3.6.0",
    "catalogue==2.0.10",
)
#: Where :data:`PEER_LOADER_PACKAGES` are installed (git-ignored).
PEER_LOADERS = BENCH_DIR / ".peer-loaders"
_PROBE = ("import litdata, streaming, sys; "
          "sys.exit(0 if (litdata.__version__, streaming.__version__) == ('0.2.76', '0.13.0') else 1)")
SIDES = ("domainclip", "litdata", "mosaicml")


def ensure_peer_loaders() -> Path:
    """Install :data:`PEER_LOADER_PACKAGES` into :data:`PEER_LOADERS` unless present; append it to ``sys.path``.

    Raises:
        RuntimeError: pip failed, or the installed peers do not import; the output is in the message.

    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path[1:], str(PEER_LOADERS)])}

    def ready() -> bool:
        return subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, check=False).returncode == 0

    if not (PEER_LOADERS.is_dir() and ready()):
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade", "--target",
               str(PEER_LOADERS), *PEER_LOADER_PACKAGES]
        print(f"installing the peers into {PEER_LOADERS}: {' '.join(PEER_LOADER_PACKAGES)}", flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not ready():
            raise RuntimeError(f"could not install the peers ({' '.join(cmd)}):\n{done.stdout[-2000:]}\n"
                               f"{done.stderr[-2000:]}")
    if str(PEER_LOADERS) not in sys.path:
        sys.path.append(str(PEER_LOADERS))  # after the venv: nothing of the venv is shadowed
    return PEER_LOADERS


class PatchDecode:
    """What every side does per sample: JPEG bytes -> PIL RGB -> transform; caption -> token ids.

    The same steps as :class:`~domainclip.core.data.decode.SampleDecoder` for a ``jpg`` + ``txt``
    sample (``Image.open``, ``load``, ``convert("RGB")``, the transform; the stripped caption through
    the tokenizer, one row).

    Args:
        transform: PIL image -> image tensor.
        tokenizer: caption -> ``(1, L)`` token ids.

    """

    def __init__(self, transform: Callable[[Any], torch.Tensor], tokenizer: Callable[..., torch.Tensor]):
        self.transform = transform
        self.tokenizer = tokenizer

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        """Decode one stored item (``key``, ``jpg`` bytes, ``txt`` str) to ``__key__``, ``image``, ``text``."""
        with Image.open(io.BytesIO(item["jpg"])) as img:
            img.load()
            image = self.transform(img.convert("RGB"))
        return {"__key__": item["key"], "image": image, "text": self.tokenizer(item["txt"].strip())[0]}


def _patch_samples(n: int, image_size: int) -> Iterable[dict[str, Any]]:
    from domainclip.core.data.synthetic import generate_shapes

    for sample in generate_shapes(n, seed=0, image_size=image_size):
        yield {"image": sample["image"], "text": sample["text"]}


def _records(shards: list[str]) -> list[dict[str, Any]]:
    """The stored samples, read back from the WebDataset shards: ``key``, ``jpg`` bytes, ``txt``."""
    from domainclip.core.data.corrupt import CorruptTally
    from domainclip.core.data.reader import iter_shard

    tally = CorruptTally()
    records = [{"key": s["__key__"], "jpg": s["jpg"], "txt": s["txt"].decode("utf-8")}
               for shard in shards for s in iter_shard(shard, tally)]
    if tally.corrupt:
        raise RuntimeError(f"the generated shards are damaged: {tally.report()}")
    return records


def _litdata_item(record: dict[str, Any]) -> dict[str, Any]:
    return record


def write_peer_formats(records: list[dict[str, Any]], root: Path, per_shard: int) -> dict[str, Path]:
    """Write ``records`` as litdata chunks and MDS shards under ``root``; returns their folders."""
    import litdata
    from streaming import MDSWriter

    lit = root / "litdata"
    start_method = multiprocessing.get_start_method()
    try:
        litdata.optimize(fn=_litdata_item, inputs=records, output_dir=str(lit), chunk_size=per_shard, num_workers=1,
                         mode="overwrite")
    finally:  # optimize sets the process-wide start method to spawn; every side's loader uses the default (fork)
        multiprocessing.set_start_method(start_method, force=True)
    mds = root / "mds"
    size = sum(len(r["jpg"]) + len(r["txt"]) + len(r["key"]) + 32 for r in records[:per_shard])
    with MDSWriter(out=str(mds), columns={"key": "str", "jpg": "bytes", "txt": "str"}, size_limit=size) as out:
        for record in records:
            out.write(record)
    return {"litdata": lit, "mosaicml": mds}


class _MosaicPatches:
    """Factory of mosaicml-streaming datasets that decode in ``__getitem__`` (built after the import)."""

    def __init__(self, decode: PatchDecode):
        from streaming import StreamingDataset

        class Patches(StreamingDataset):
            def __getitem__(self, index: int) -> dict[str, Any]:
                return decode(super().__getitem__(index))

        self.cls = Patches


def _side_loader(side: str, *, shards: list[str], folders: dict[str, Path], decode: PatchDecode,
                 sample_decoder: Any, batch_size: int, workers: int, shuffle: bool,
                 mosaic: _MosaicPatches) -> Iterable[dict[str, Any]]:
    if side == "domainclip":
        from domainclip.core.data.reader import Source, build_loader

        return build_loader(Source(shards), sample_decoder, batch_size=batch_size, num_workers=workers, epochs=1,
                            shuffle_buffer=1000 if shuffle else 0)
    if side == "litdata":
        import litdata

        dataset = litdata.StreamingDataset(str(folders["litdata"]), shuffle=shuffle, seed=0, transform=decode)
        return litdata.StreamingDataLoader(dataset, batch_size=batch_size, num_workers=workers)
    from streaming import StreamingDataLoader
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    dataset = mosaic.cls(local=str(folders["mosaicml"]), shuffle=shuffle, shuffle_seed=0, batch_size=batch_size)
    return StreamingDataLoader(dataset, batch_size=batch_size, num_workers=workers)


def _digest(image: torch.Tensor, text: torch.Tensor) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(image.contiguous().numpy().tobytes())
    h.update(text.contiguous().numpy().tobytes())
    return h.hexdigest()


def _cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its waited-for children (the loaders' workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _one_pass(make: Callable[[], Iterable[dict[str, Any]]], *, digests: bool = False) -> dict[str, Any]:
    cpu = _cpu_seconds()
    started = time.perf_counter()
    keys: list[str] = []
    found: dict[str, str] = {}
    for batch in make():
        keys.extend(batch["__key__"])
        if digests:
            for key, image, text in zip(batch["__key__"], batch["image"], batch["text"]):
                found[key] = _digest(image, text)
    seconds = time.perf_counter() - started
    gc.collect()  # the loaders' worker processes are joined when their iterators go
    cpu = _cpu_seconds() - cpu
    return {"samples": len(keys), "seconds": seconds, "samples_per_s": len(keys) / seconds, "cpu_seconds": cpu,
            "samples_per_cpu_s": len(keys) / cpu, "keys": keys, "digests": found}


def _check_same(settings: list[tuple[bool, int]], passes: dict[tuple[str, bool, int], dict[str, Any]],
                expected: Counter) -> None:
    for (side, shuffle, workers), result in passes.items():
        got = Counter(result["keys"])
        if got != expected:
            missing = sum((expected - got).values())
            extra = sum((got - expected).values())
            raise RuntimeError(f"{side} (shuffle {shuffle}, {workers} workers) yielded {result['samples']} samples: "
                               f"{missing} expected keys missing, {extra} unexpected or repeated")
    reference = passes[("domainclip", False, 0)]["digests"]
    for side in SIDES[1:]:
        other = passes[(side, False, 0)]["digests"]
        differ = [k for k in reference if other.get(k) != reference[k]]
        if differ:
            raise RuntimeError(f"{side} decoded {len(differ)} samples to other tensors than domainclip "
                               f"(first: {differ[0]})")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison; returns (and writes) the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--per-shard", type=int, default=256, help="samples per shard / chunk")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    parser.add_argument("--tokenizer", default="dc-test-vit", help="model whose tokenizer tokenizes the captions")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "shard_peers.json")
    args = parser.parse_args(argv)

    ensure_peer_loaders()
    import litdata
    import streaming
    from open_clip.transform import image_transform

    from domainclip.core.data.decode import SampleDecoder
    from domainclip.core.data.writer import write_shards
    from domainclip.core.models import get_tokenizer

    torch.set_num_threads(args.threads)
    transform = image_transform(args.image_size, is_train=False)
    tokenizer = get_tokenizer(args.tokenizer)
    decode = PatchDecode(transform, tokenizer)
    sample_decoder = SampleDecoder(image_transform=transform, tokenizer=tokenizer, text_choice="first")
    mosaic = _MosaicPatches(decode)
    settings = [(shuffle, workers) for shuffle in (False, True) for workers in args.workers]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-shard-peers-") as tmp:
        root = Path(tmp)
        written = write_shards(_patch_samples(args.samples, args.image_size), root / "wds", prefix="patches",
                               max_count=args.per_shard, image_format="jpg", quality=95, progress=False)
        shards = [str(root / "wds" / name) for name in written["shards"]]
        records = _records(shards)
        folders = write_peer_formats(records, root, args.per_shard)
        expected = Counter(r["key"] for r in records)
        del records

        def make(side: str, shuffle: bool, workers: int) -> Callable[[], Iterable[dict[str, Any]]]:
            return lambda: _side_loader(side, shards=shards, folders=folders, decode=decode,
                                        sample_decoder=sample_decoder, batch_size=args.batch_size, workers=workers,
                                        shuffle=shuffle, mosaic=mosaic)

        print(f"checking that every side yields the same {args.samples} samples (and, at 0 workers without "
              "shuffling, the same tensors)", flush=True)
        checks = {(side, shuffle, workers): _one_pass(make(side, shuffle, workers),
                                                      digests=(shuffle, workers) == (False, 0))
                  for shuffle, workers in settings for side in SIDES}
        _check_same(settings, checks, expected)
        del checks
        for repeat in range(args.repeats):
            for shuffle, workers in settings:
                order = SIDES[repeat % 3:] + SIDES[: repeat % 3]
                for side in order:
                    gc.collect()
                    load = load_average()
                    result = _one_pass(make(side, shuffle, workers))
                    if result["samples"] != args.samples:
                        raise RuntimeError(f"{side} gave {result['samples']} samples, expected {args.samples}")
                    del result["keys"], result["digests"]
                    runs.append({"side": side, "shuffle": shuffle, "workers": workers, "repeat": repeat,
                                 "load_before": load, **result})
                    print(f"  repeat {repeat} shuffle {'on ' if shuffle else 'off'} workers {workers} {side:<10} "
                          f"{result['samples_per_s']:8.1f} samples/s {result['samples_per_cpu_s']:8.1f} per CPU-s "
                          f"(load {load})", flush=True)
        shutil.rmtree(root, ignore_errors=True)

    summary, table = [], []
    for shuffle, workers in settings:
        mine = [r for r in runs if (r["shuffle"], r["workers"]) == (shuffle, workers)]
        rate = {side: median([r["samples_per_s"] for r in mine if r["side"] == side]) for side in SIDES}
        per_cpu = {side: median([r["samples_per_cpu_s"] for r in mine if r["side"] == side]) for side in SIDES}
        loads = [r["load_before"] for r in mine]
        ratio = rate["domainclip"] / rate["litdata"]
        setting = f"shuffle {'on' if shuffle else 'off'}, {workers} workers"
        summary.append({
            "benchmark": "shard loading",
            "measurement": f"{args.samples} {args.image_size}-px JPEG patches, batch {args.batch_size}, {setting}, "
                           "samples/s",
            "domainclip": round(rate["domainclip"], 1),
            "reference": round(rate["litdata"], 1),
            "reference_name": f"litdata {litdata.__version__}",
            "mosaicml_streaming": round(rate["mosaicml"], 1),
            "ratio": round(ratio, 3),
            "ratio_mosaicml": round(rate["domainclip"] / rate["mosaicml"], 3),
            "per_cpu_s": {side: round(v, 1) for side, v in per_cpu.items()},
            "ratio_per_cpu_s": round(per_cpu["domainclip"] / per_cpu["litdata"], 3),
            "goal": GOAL,
            "met": ratio >= GOAL,
            "load_average_range": [min(loads), max(loads)],
        })
        table.append([setting, rate["domainclip"], rate["litdata"], rate["mosaicml"], ratio,
                      rate["domainclip"] / rate["mosaicml"], per_cpu["domainclip"] / per_cpu["litdata"],
                      per_cpu["domainclip"] / per_cpu["mosaicml"], f"{min(loads)}-{max(loads)}"])
    result = {
        "benchmark": "shard loading: build_loader + SampleDecoder vs litdata and mosaicml-streaming",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "peers": {"litdata": litdata.__version__, "mosaicml-streaming": streaming.__version__},
        "summary": summary,
        "runs": runs,
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(markdown_table(["setting", "domainclip samples/s", "litdata", "mosaicml-streaming", "vs litdata",
                          "vs mosaicml", "per CPU-s vs litdata", "per CPU-s vs mosaicml", "load average"], table))
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
