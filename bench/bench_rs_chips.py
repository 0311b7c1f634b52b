"""Chip cutting throughput: the reading path of prepare_chips against unaligned per-chip reads, same chips.

Usage::

    python -m bench.bench_rs_chips [--repeats 3] [--side 8000] [--bands 4] [--size 224] [--stride 224]
                                   [--layouts tiled striped] [--out FILE.json]

Scenes: a generated ``--side`` square, ``--bands``-band uint16 GeoTIFF (deflate; smooth fields plus
noise, with a nodata collar along two edges like a real scene's), once tiled (256 x 256) and once
in strips (GDAL's default of about 8 KiB per strip). Each side cuts every ``--size`` chip of the
grid, ``--stride`` apart, as stretched ``(size, size, 3)`` uint8 arrays in memory (bands 3, 2, 1),
one process, nodata masks included; encoding and shard writing, the same on every side, are left
out:

* ``domainclip``: the reading path of ``prepare_chips``: open, :func:`scene_stretch` once (sampled
  blocks), then :func:`iter_chips` (windows of whole block rows across the full width, each block
  read once, chips cut from memory, each row stretched once through a lookup table);
* ``per_chip_stretch`` (the naive baseline, as per-chip stretching is commonly written): one
  unaligned ``dataset.read(window=chip)`` per chip, then per band ``np.percentile`` of that chip's
  pixels with data and the linear stretch in float arithmetic;
* ``scene_stretch_unaligned``: the same unaligned per-chip reads with the scene's stretch
  (computed once as by ``domainclip``): the pixels must be identical to ``domainclip``'s; the
  benchmark checks every chip (max abs difference 0) and stops before timing anything otherwise.

Chips/s is wall-clock from opening the file to the last chip, median over ``--repeats``
interleaved runs (the order rotates each repeat), with CPU seconds (``time.process_time``, all
threads) beside it. Every run opens the file anew, so GDAL's block cache (``GDAL_CACHEMAX``,
by default 5% of RAM; reported) starts empty; the compressed file stays in the OS page cache.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS_DIR, load_average, machine_info, markdown_table, median, write_result

__all__ = ["GOAL", "domainclip_chips", "main", "per_chip_stretch", "scene_stretch_unaligned", "synthetic_scene"]

#: domainclip must reach at least this multiple of the naive baseline's chips/s.
GOAL = 2.0
BANDS = (3, 2, 1)


def synthetic_scene(path: Path, side: int, count: int, *, tiled: bool, seed: int = 0) -> Path:
    """A ``side`` square ``count``-band uint16 GeoTIFF (deflate), written block row by block row.

    Smooth per-band fields (sums of sines) plus Gaussian noise, values 200..12000; a nodata (0)
    collar along the left and top edges, a tenth of the side wide, slanted like a rotated scene.
    """
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    rng = np.random.default_rng(seed)
    profile: dict[str, Any] = {"driver": "GTiff", "width": side, "height": side, "count": count, "dtype": "uint16",
                               "crs": "EPSG:32633", "transform": Affine(10.0, 0, 500000.0, 0, -10.0, 6000000.0),
                               "nodata": 0, "compress": "deflate"}
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    xx = np.arange(side, dtype=np.float32)
    phases = rng.uniform(0, 2 * np.pi, (count, 4)).astype(np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, side, 256):
            rows = np.arange(top, min(side, top + 256), dtype=np.float32)[:, None]
            block = np.empty((count, len(rows), side), np.uint16)
            for b in range(count):
                field = (np.sin(xx / 700 + phases[b, 0]) + np.sin(rows / 500 + phases[b, 1])
                         + 0.5 * np.sin((xx + rows) / 90 + phases[b, 2])
                         + 0.3 * np.sin((xx - rows) / 37 + phases[b, 3]))
                values = 4000 + 1500 * b + 1800 * field + rng.normal(0, 300, field.shape).astype(np.float32)
                block[b] = np.clip(values, 200, 12000).astype(np.uint16)
            collar = xx[None, :] < side / 10 - (rows - side / 2) / 8  # slanted left edge
            collar |= rows < side / 10 - (xx[None, :] - side / 2) / 8  # slanted top edge
            block[:, collar] = 0
            dst.write(block, window=Window(0, top, side, len(rows)))
    return path


#: GDAL decoding threads of every side (prepare_chips gives each of its workers its share of the CPUs).
THREADS = os.cpu_count() or 1


def domainclip_chips(path: Path, size: int, stride: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(row_off, col_off, chip)`` of every chip by prepare_chips' reading path."""
    from domainclip.domains.remote_sensing.chips import iter_chips
    from domainclip.domains.remote_sensing.raster import open_raster, scene_stretch

    with open_raster(path, threads=THREADS) as dataset:
        stretch = scene_stretch(dataset, BANDS)
        for chip in iter_chips(dataset, BANDS, stretch, size, stride):
            yield chip.window.row_off, chip.window.col_off, chip.image


def per_chip_stretch(path: Path, size: int, stride: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """The naive baseline, as it is commonly written: one unaligned read per chip, each band of each chip
    stretched by its own 2nd and 98th percentiles (``np.percentile`` over its pixels with data) in float."""
    from rasterio.windows import Window

    from domainclip.domains.remote_sensing.chips import chip_grid
    from domainclip.domains.remote_sensing.raster import open_raster

    with open_raster(path, threads=THREADS) as dataset:
        nodata = dataset.nodata
        tops, lefts = chip_grid(dataset.height, dataset.width, size, stride)
        for y in tops:
            for x in lefts:
                data = dataset.read(list(BANDS), window=Window(x, y, size, size)).astype(np.float64)
                valid = data != nodata
                chip = np.zeros((size, size, len(BANDS)), np.uint8)
                for i in range(len(BANDS)):
                    values = data[i][valid[i]]
                    if values.size:
                        low, high = np.percentile(values, (2.0, 98.0))
                        scaled = np.clip((data[i] - low) / max(high - low, 1e-12), 0.0, 1.0) * 255.0
                        chip[..., i] = np.where(valid[i], np.rint(scaled), 0)
                yield y, x, chip


def scene_stretch_unaligned(path: Path, size: int, stride: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """One unaligned read per chip, stretched by the scene's stretch (the same pixels as domainclip's)."""
    from rasterio.windows import Window

    from domainclip.domains.remote_sensing.chips import chip_grid
    from domainclip.domains.remote_sensing.raster import band_masks, open_raster, scene_stretch

    with open_raster(path, threads=THREADS) as dataset:
        stretch = scene_stretch(dataset, BANDS)
        tops, lefts = chip_grid(dataset.height, dataset.width, size, stride)
        for y in tops:
            for x in lefts:
                window = Window(x, y, size, size)
                data = dataset.read(list(BANDS), window=window)
                yield y, x, stretch.apply(data, band_masks(dataset, BANDS, data, window=window))


SIDES: dict[str, Callable[[Path, int, int], Iterator[tuple[int, int, np.ndarray]]]] = {
    "domainclip": domainclip_chips,
    "per_chip_stretch": per_chip_stretch,
    "scene_stretch_unaligned": scene_stretch_unaligned,
}


def _timed(side: str, path: Path, size: int, stride: int) -> dict[str, Any]:
    began, cpu = time.perf_counter(), time.process_time()
    chips = sum(1 for _ in SIDES[side](path, size, stride))
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu
    return {"chips": chips, "seconds": seconds, "cpu_seconds": cpu_seconds, "chips_per_s": chips / seconds,
            "chips_per_cpu_s": chips / cpu_seconds}


def compare(path: Path, size: int, stride: int) -> dict[str, Any]:
    """domainclip's chips against the unaligned reads with the scene stretch: same windows, largest pixel difference."""
    ours = {(y, x): chip for y, x, chip in domainclip_chips(path, size, stride)}
    max_diff, identical, count = 0, 0, 0
    for y, x, chip in scene_stretch_unaligned(path, size, stride):
        count += 1
        other = ours.pop((y, x), None)
        if other is None:
            continue
        diff = int(np.abs(other.astype(np.int16) - chip.astype(np.int16)).max())
        identical += diff == 0
        max_diff = max(max_diff, diff)
    return {"chips": count, "identical_chips": identical, "only_domainclip": len(ours),
            "max_abs_pixel_difference": max_diff}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a markdown table and write the JSON result; returns the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per side and scene")
    parser.add_argument("--side", type=int, default=8000, help="side of the generated scenes in pixels")
    parser.add_argument("--bands", type=int, default=4, help="bands of the generated scenes")
    parser.add_argument("--size", type=int, default=224, help="chip side")
    parser.add_argument("--stride", type=int, default=224, help="pixels between neighbouring chips")
    parser.add_argument("--layouts", nargs="+", choices=("tiled", "striped"), default=["tiled", "striped"])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "rs_chips.json")
    args = parser.parse_args(argv)

    import rasterio

    runs: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rs-chips-") as tmp:
        scenes: dict[str, Path] = {}
        for layout in args.layouts:
            started = time.perf_counter()
            path = synthetic_scene(Path(tmp) / f"{layout}.tif", args.side, args.bands, tiled=layout == "tiled")
            with rasterio.open(path) as dataset:
                block = dataset.block_shapes[0]
            label = f"{args.side}x{args.side}x{args.bands} uint16 deflate, {layout} (blocks {block[0]}x{block[1]})"
            scenes[label] = path
            print(f"wrote {label} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s",
                  flush=True)
            checks[label] = check = compare(path, args.size, args.stride)  # also warms the page cache, imports
            print(f"  {check}", flush=True)
            if check["identical_chips"] != check["chips"] or check["only_domainclip"]:
                raise RuntimeError(f"{label}: chips differ from direct reads with the same stretch: {check}")
        for repeat in range(args.repeats):
            for label, path in scenes.items():
                order = list(SIDES)[repeat % len(SIDES):] + list(SIDES)[: repeat % len(SIDES)]
                for side in order:
                    load = load_average()
                    result = _timed(side, path, args.size, args.stride)
                    runs.append({"side": side, "scene": label, "repeat": repeat, "load_before": load, **result})
                    print(f"  repeat {repeat} {label[-28:]:<28} {side:<24} {result['chips']} chips "
                          f"{result['chips_per_s']:7.1f}/s ({result['seconds']:.2f} s, load {load})", flush=True)

    summary, table = [], []
    for label in scenes:
        def rate(side: str, key: str, label: str = label) -> float:
            return median([r[key] for r in runs if r["side"] == side and r["scene"] == label])

        check = checks[label]
        same = check["identical_chips"] == check["chips"] and not check["only_domainclip"]
        ours = rate("domainclip", "chips_per_s")
        for reference, what, goal in (("per_chip_stretch", "unaligned reads, per-chip percentiles (naive)", GOAL),
                                      ("scene_stretch_unaligned", "unaligned reads, scene stretch", None)):
            theirs = rate(reference, "chips_per_s")
            ratio = ours / theirs
            cpu_ratio = rate("domainclip", "chips_per_cpu_s") / rate(reference, "chips_per_cpu_s")
            summary.append({
                "benchmark": "rs_chips",
                "measurement": f"{label}: {check['chips']} chips of {args.size} px, stride {args.stride}, bands "
                               f"{list(BANDS)}, 1 process, vs {what}, chips/s",
                "domainclip": round(ours, 1), "reference": round(theirs, 1), "reference_name": reference,
                "ratio": round(ratio, 3), "cpu_ratio": round(cpu_ratio, 3), "goal": goal,
                "met": None if goal is None else ratio >= goal, "pixels_identical": same, "comparison": check,
            })
            table.append([label, what, check["chips"], ours, theirs, ratio, cpu_ratio,
                          "" if goal is None else ("met" if ratio >= goal else "NOT met"),
                          "identical" if same else f"max diff {check['max_abs_pixel_difference']}"])
    loads = [r["load_before"] for r in runs]
    result = {
        "benchmark": "remote sensing chips: prepare_chips' block-aligned reading path vs unaligned per-chip reads",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "gdal_cachemax": os.environ.get("GDAL_CACHEMAX", "unset (GDAL's default: 5% of RAM)"),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "rasterio": rasterio.__version__, "gdal": rasterio.__gdal_version__,
        "summary": summary,
        "load_average_range": [min(loads), max(loads)],
        "runs": runs,
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(markdown_table(["scene", "against", "chips", "domainclip chips/s", "reference chips/s", "ratio",
                          "per CPU s ratio", f"goal >= {GOAL}", "pixels (scene stretch)"], table))
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
