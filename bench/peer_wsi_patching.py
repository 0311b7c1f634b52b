"""Run one whole-slide patching peer (tiatoolbox or lazyslide) on one slide, the job of bench_pathology_patching.

Usage (run by :mod:`bench.bench_pathology_patching` with the peer's packages on ``PYTHONPATH``)::

    python -m bench.peer_wsi_patching {tiatoolbox,lazyslide} SLIDE OUT_DIR --level L --size 224
                                      [--min-tissue 0.25] [--quality 95]

The peer does what its documentation shows: tissue detection with its own method, a grid of
``--size`` patches read at pyramid level ``--level`` (the level domainclip reads for the same mpp,
so that neither side resamples and the pixels can be compared), the patches with at least
``--min-tissue`` tissue kept; then each patch is read through the peer's own reader and written
with domainclip's :class:`~domainclip.core.data.writer.ShardWriter` (JPEG, ``--quality``) under the
key ``<x0>_<y0>`` (level-0 top-left), so both sides pay the same encoding and write cost.

* ``tiatoolbox``: ``get_patch_extractor("slidingwindow", input_mask="otsu", min_mask_ratio=...)`` on
  an ``OpenSlideWSIReader`` and iteration over the extractor (one ``read_rect`` per patch);
* ``lazyslide``: ``wsidata.open_wsi``, ``zs.pp.find_tissues``, ``zs.pp.tile_tissues`` and
  ``wsi.iter.tile_images("tiles")`` (one reader ``read_region`` per tile); its grid starts at each
  tissue piece's bounding box, not at the slide origin.

Prints one JSON line: ``patches``, ``seconds`` (whole job), ``setup_seconds`` (open, tissue,
plan), ``patch_seconds``, ``patch_cpu_seconds`` and ``versions``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "run_lazyslide", "run_tiatoolbox"]


def run_tiatoolbox(slide: Path, level: int, size: int, min_tissue: float) -> tuple[Iterator[tuple[int, int, Any]], Any]:
    """tiatoolbox's sliding-window extractor with its Otsu tissue mask; yields ``(x0, y0, patch)``."""
    from tiatoolbox.tools.patchextraction import get_patch_extractor
    from tiatoolbox.wsicore.wsireader import OpenSlideWSIReader

    # OpenSlide's reader: WSIReader.open takes a generic .tif for a one-level TIFFWSIReader, which would
    # make level 1 unreadable (and reading level 0 and resizing is another job)
    reader = OpenSlideWSIReader(slide)
    extractor = get_patch_extractor(
        "slidingwindow", input_img=reader, input_mask="otsu", patch_size=(size, size), stride=(size, size),
        resolution=level, units="level", min_mask_ratio=min_tissue, within_bound=True,
    )
    downsample = reader.info.level_downsamples[level]
    xs, ys = extractor.locations_df["x"].to_numpy(), extractor.locations_df["y"].to_numpy()

    def patches() -> Iterator[tuple[int, int, Any]]:
        for i, patch in enumerate(extractor):
            yield round(xs[i] * downsample), round(ys[i] * downsample), patch

    return patches(), reader


def run_lazyslide(slide: Path, level: int, size: int, min_tissue: float) -> tuple[Iterator[tuple[int, int, Any]], Any]:
    """lazyslide's find_tissues + tile_tissues, then its tile iterator; yields ``(x0, y0, patch)``."""
    import lazyslide as zs
    from wsidata import open_wsi

    wsi = open_wsi(slide)
    zs.pp.find_tissues(wsi)
    downsample = wsi.properties.level_downsample[level]
    mpp = wsi.properties.mpp * downsample
    zs.pp.tile_tissues(wsi, size, mpp=mpp, background_fraction=1.0 - min_tissue)

    def patches() -> Iterator[tuple[int, int, Any]]:
        for tile in wsi.iter.tile_images("tiles"):
            yield int(tile.x), int(tile.y), tile.image

    return patches(), wsi


#: Peer -> (job, distribution name, modules imported before the clock starts).
PEERS = {
    "tiatoolbox": (run_tiatoolbox, "tiatoolbox", ("tiatoolbox.tools.patchextraction",)),
    "lazyslide": (run_lazyslide, "lazyslide", ("lazyslide", "wsidata")),
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the peer, print and return its timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("slide", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--level", type=int, required=True)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--min-tissue", type=float, default=0.25)
    parser.add_argument("--quality", type=int, default=95)
    args = parser.parse_args(argv)

    from domainclip.core.data.writer import ShardWriter

    run, package, modules = PEERS[args.peer]
    for module in modules:  # imports are start-up, not the job
        importlib.import_module(module)
    began, cpu = time.perf_counter(), time.process_time()
    patches, handle = run(args.slide, args.level, args.size, args.min_tissue)
    setup, setup_cpu = time.perf_counter() - began, time.process_time() - cpu
    count = 0
    with ShardWriter(args.out, prefix="patches", max_count=1000, image_format="jpg", quality=args.quality) as writer:
        for x0, y0, patch in patches:
            array = np.ascontiguousarray(np.asarray(patch)[..., :3], dtype=np.uint8)
            writer.write({"__key__": f"{x0}_{y0}", "image": array, "meta": {"x": x0, "y": y0}})
            count += 1
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    result = {"patches": count, "seconds": seconds, "setup_seconds": setup, "patch_seconds": seconds - setup,
              "patch_cpu_seconds": cpu - setup_cpu, "versions": {package: version(package)}}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
