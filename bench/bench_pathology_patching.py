"""Slide patching throughput: domainclip's patch_slides against tiatoolbox, lazyslide and a CLAM-style loop.

Usage::

    python -m bench.bench_pathology_patching [--repeats 3] [--synthetic-size 12288] [--jp2k-size 8160]
                                             [--peers tiatoolbox,lazyslide,clam] [--mpp 0.5] [--size 224]
                                             [--min-tissue 0.25] [--quality 95] [--out FILE.json]

The job, on every side: patch one slide at ``--mpp`` um/px, ``--size`` px, tissue only (at least
``--min-tissue``), and write the patches as JPEG (``--quality``) into tar shards. Slides:

* ``CMU-1-Small-Region.svs`` from ``../shared/data/pathology`` (real Aperio JPEG, one level, 0.499
  mpp; skipped where the folder is absent);
* a synthetic pyramidal JPEG TIFF (:func:`synthetic_slide`, ``--synthetic-size`` square, 0.25 mpp,
  256-px tiles), so that 0.5 mpp patches are read from level 1;
* a synthetic Aperio JPEG 2000 SVS (:func:`jp2k_slide`, ``--jp2k-size`` square, 0.5 mpp, 240-px
  tiles, compression 33005, an ellipse of tissue tiles on glass; decode-bound), read at level 0.

Sides, each doing the whole job (open, tissue detection, grid, read, encode, write) in one process:

* ``domainclip``: :func:`~domainclip.domains.pathology.patching.patch_slides` (``workers=1``; it
  decodes tiles on its reader's threads, :data:`~domainclip.domains.pathology.slides.DEFAULT_DECODE_THREADS`);
* ``tiatoolbox`` and ``lazyslide``: :mod:`bench.peer_wsi_patching` in a subprocess whose
  ``PYTHONPATH`` starts with ``bench/.peer-wsi-<peer>`` (:data:`PEER_WSI_PACKAGES`, installed there
  on first use with ``pip install --no-deps --target``; torch, numpy, OpenSlide, tifffile and the
  rest come from the project's venv, newer than some of tiatoolbox's upper pins, which is why they
  are not installed with their dependencies); each uses its own tissue detection and grid, reads
  each patch through its own reader, and writes with the same shard writer and encoder;
* ``clam``: a CLAM-style loop, the same mask and plan as domainclip and one OpenSlide
  ``read_region`` per patch.

All sides read at the level domainclip reads (no resampling anywhere: the patches are ``--size``
pixels of that level), so pixels can be compared: before timing, every patch a peer wrote is read
again with domainclip's :meth:`Slide.read_array` at the peer's coordinates and encoded with the same
encoder; identical JPEG bytes mean identical pixels (else the largest pixel difference is reported).
Patch counts differ between sides (each has its own tissue detection), so the rate compared is
patches/s: wall-clock, median over ``--repeats`` interleaved runs, for the whole job and for the patch
phase alone (after tissue detection and the grid), with the one-minute load average before each run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.common import (
    BENCH_DIR,
    REPO_ROOT,
    RESULTS_DIR,
    load_average,
    machine_info,
    markdown_table,
    median,
    write_result,
)

__all__ = ["GOAL", "PEER_WSI_PACKAGES", "check_pixels", "clam_style", "ensure_peer_wsi", "jp2k_slide", "main",
           "run_peer", "synthetic_slide"]

#: domainclip must reach at least this multiple of the best peer's patches/s (whole job and patch phase).
GOAL = 1.5
SHARED_CMU = REPO_ROOT.parent / "shared" / "data" / "pathology" / "CMU-1-Small-Region.svs"
#: What each peer needs beyond the project's venv, installed with ``pip install --no-deps --target``
#: into ``bench/.peer-wsi-<peer>`` (the import-time dependencies the venv lacks, found by importing).
PEER_WSI_PACKAGES: dict[str, tuple[str, ...]] = {
    "tiatoolbox": (
        "tiatoolbox==2.1.3", "dask==2026.11.0", "importlib_metadata==10.2.0", "lazy_importer==0.1.0",
        "llvmlite==0.50.0", "numba==0.68.1", "opencv-python-headless==5.1.0.95", "pandas==3.1.1",
        "pathlib_abc==0.5.2", "pynndescent==0.7.0", "shapely==2.2.0", "SimpleITK==2.5.7", "toolz==1.2.0",
        "umap-learn==0.5.11", "universal-pathlib==0.3.11",
    ),
    "lazyslide": (
        "lazyslide==0.13.0", "wsidata==0.12.0", "anndata==0.12.19", "annsel==0.1.2", "dask==2026.11.0",
        "deprecated==1.3.1", "geopandas==1.2.0", "importlib_metadata==10.2.0", "itkwasm==1.0b201",
        "lazy_importer==0.1.0", "llvmlite==0.50.0", "more_itertools==11.2.1", "multiscale_spatial_image==2.1.0",
        "natsort==8.4.0", "ngff_zarr==0.50.0", "numba==0.68.1", "ome_zarr==0.18.0", "ome_zarr_models==1.7",
        "opencv-python-headless==5.1.0.95", "pandas==3.1.1", "pathlib_abc==0.5.2", "pyarrow==26.0.1",
        "pydantic_zarr==0.9.2", "scverse_misc==0.0.3", "shapely==2.2.0", "spatial_image==1.2.3",
        "spatialdata==0.7.3", "toolz==1.2.0", "universal-pathlib==0.3.11", "wasmtime==51.0.0", "wrapt==2.5.2",
        "xarray==2026.9.0", "xarray_dataclass==3.0.0",
    ),
}
_PEER_MODULES = {"tiatoolbox": "tiatoolbox.tools.patchextraction", "lazyslide": "lazyslide"}


def _peer_dir(peer: str) -> Path:
    return BENCH_DIR / f".peer-wsi-{peer}"


def _peer_env(peer: str) -> dict[str, str]:
    env = dict(os.environ)
    parts = [str(_peer_dir(peer)), str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def _peer_ready(peer: str) -> bool:
    probe = [sys.executable, "-c", f"import {_PEER_MODULES[peer]}"]
    return subprocess.run(probe, env=_peer_env(peer), capture_output=True, check=False).returncode == 0


def ensure_peer_wsi(peer: str) -> Path:
    """Install :data:`PEER_WSI_PACKAGES` of ``peer`` into ``bench/.peer-wsi-<peer>`` unless it imports already.

    Raises:
        RuntimeError: pip failed or the peer still does not import; the output is in the message.
    """
    target = _peer_dir(peer)
    if target.is_dir() and _peer_ready(peer):
        return target
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade", "--target", str(target),
           *PEER_WSI_PACKAGES[peer]]
    started = time.perf_counter()
    print(f"installing {peer} into {target} ({len(PEER_WSI_PACKAGES[peer])} packages)", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not _peer_ready(peer):
        raise RuntimeError(f"could not prepare {peer} in {target} ({' '.join(cmd)}):\n{done.stdout[-2000:]}\n"
                           f"{done.stderr[-2000:]}")
    print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    return target


def synthetic_slide(path: Path, side: int, seed: int = 0) -> Path:
    """A square 0.25-mpp pyramidal JPEG TIFF: glass with a large textured H&E-coloured ellipse.

    The texture is one 1024-pixel tile of Gaussian noise repeated (cheap to make for big slides,
    and as costly to decode as unique noise: JPEG tiles are coded independently).
    """
    from domainclip.domains.pathology.tiff import write_pyramidal_tiff

    rng = np.random.default_rng(seed)
    texture = np.clip(np.array([210.0, 120.0, 175.0]) + rng.normal(0, 28, (1024, 1024, 3)), 0, 255).astype(np.uint8)
    image = np.full((side, side, 3), 242, np.uint8)
    xx = (np.arange(side) - side / 2) / (0.47 * side)
    for row in range(0, side, 1024):  # in bands of 1024 rows to bound temporary memory
        rows = np.arange(row, min(side, row + 1024))
        inside = ((rows[:, None] - side / 2) / (0.47 * side)) ** 2 + xx[None, :] ** 2 < 1
        band = np.tile(texture, (1, -(-side // 1024), 1))[: len(rows), :side]
        image[rows[0] : rows[-1] + 1][inside] = band[inside]
    return write_pyramidal_tiff(path, image, 0.25, tile=256, quality=90)


def jp2k_slide(path: Path, side: int, seed: int = 0, tile: int = 240, psnr: float = 30.0) -> Path:
    """A square 0.5-mpp Aperio SVS with JPEG 2000 tiles (compression 33005, RGB codestreams), as OpenSlide reads it.

    Laid out as Aperio writes it: level 0 tiled, a stripped thumbnail as the second page, then
    tiled levels downsampled by 4 until one is under 1024 pixels, each page with an Aperio
    ``ImageDescription`` (``MPP = 0.5``). Tiles whose centre lies inside an ellipse hold one of 24
    textured H&E-coloured tiles (blurred noise plus fine noise, encoded at ``psnr`` dB, about 8:1),
    the others glass; tiles are encoded once and their bytes reused (each stored tile is still
    decoded on its own, so decoding costs what unique tiles would), which makes a large slide in
    seconds.
    """
    import imagecodecs
    import tifffile
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)

    def encode(array: np.ndarray) -> bytes:
        return imagecodecs.jpeg2k_encode(np.ascontiguousarray(array), level=psnr, codecformat=0)

    textures = []
    for _ in range(24):
        smooth = gaussian_filter(rng.normal(0, 1, (tile, tile, 3)), (1.5, 1.5, 0)) * 50
        noise = smooth + rng.normal(0, 8, (tile, tile, 3))
        textures.append(encode(np.clip(np.array([200.0, 120.0, 175.0]) + noise, 0, 255).astype(np.uint8)))
    glass = encode(np.full((tile, tile, 3), 242, np.uint8))
    head = f"Aperio Image Library v12.0.15\r\n{side}x{side}"
    with tifffile.TiffWriter(path) as writer:
        width, level = side, 0
        while True:
            across = -(-width // tile)
            centre = (np.arange(across) + 0.5) * tile / width - 0.5
            inside = (centre[:, None] / 0.47) ** 2 + (centre[None, :] / 0.47) ** 2 < 1
            tiles = [textures[(r * 7 + c * 3) % len(textures)] if inside[r, c] else glass
                     for r in range(across) for c in range(across)]
            description = (f"{head} [0,0 {side}x{side}] ({tile}x{tile}) J2K/KDU Q=70|AppMag = 20|MPP = 0.5"
                           if level == 0 else f"{head} -> {width}x{width} - |")
            writer.write(iter(tiles), shape=(width, width, 3), dtype=np.uint8, photometric="rgb", tile=(tile, tile),
                         compression=33005, description=description, metadata=None)
            if level == 0:  # Aperio's second page: a stripped thumbnail
                thumb = np.full((max(1, side // 32), max(1, side // 32), 3), 242, np.uint8)
                writer.write(thumb, photometric="rgb", compression="jpeg", metadata=None,
                             description=f"{head} -> {thumb.shape[1]}x{thumb.shape[0]} - |")
            if width < 1024:
                break
            width, level = width // 4, level + 1
    return path


def clam_style(slide_path: Path, out_dir: Path, spec: Any, image_format: str, quality: int) -> dict[str, Any]:
    """The CLAM-style job: same mask and plan, one OpenSlide ``read_region`` per patch, same shard format."""
    import openslide

    from domainclip.core.data.writer import ShardWriter
    from domainclip.core.io import safe_key
    from domainclip.domains.pathology.patching import plan_patches
    from domainclip.domains.pathology.slides import open_slide
    from domainclip.domains.pathology.tissue import detect_tissue

    began, cpu = time.perf_counter(), time.process_time()
    with open_slide(slide_path, fast_arrays=False) as slide:  # metadata, tissue and plan as domainclip
        mask = detect_tissue(slide)
        locations = plan_patches(slide, mask, spec)
        slide_id, slide_mpp = slide.slide_id, slide.mpp
    setup, setup_cpu = time.perf_counter() - began, time.process_time() - cpu
    handle = openslide.OpenSlide(str(slide_path))
    key_id = safe_key(slide_id)
    with ShardWriter(out_dir, prefix="patches", max_count=1000, image_format=image_format, quality=quality) as writer:
        for loc in locations:
            image = handle.read_region((loc.x0, loc.y0), loc.level, (loc.read_size, loc.read_size)).convert("RGB")
            if loc.read_size != spec.size:
                image = image.resize((spec.size, spec.size), Image.Resampling.LANCZOS)
            meta = {"slide_id": slide_id, "x": loc.x0, "y": loc.y0, "level": loc.level, "read_size": loc.read_size,
                    "size0": loc.size0, "mpp": spec.mpp, "slide_mpp": slide_mpp,
                    "tissue_fraction": loc.tissue_fraction, "patch_size": spec.size, "source": str(slide_path)}
            writer.write({"__key__": f"{key_id}_{loc.x0}_{loc.y0}", "image": image, "meta": meta})
    handle.close()
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {"patches": len(locations), "seconds": seconds, "setup_seconds": setup, "patch_seconds": seconds - setup,
            "patch_cpu_seconds": cpu - setup_cpu}


def ours(slide_path: Path, out_dir: Path, spec: Any, image_format: str, quality: int) -> dict[str, Any]:
    """domainclip's job: :func:`patch_slides` on one slide, one process, no thumbnail."""
    from domainclip.domains.pathology.patching import patch_slides

    began = time.perf_counter()
    summary = patch_slides([slide_path], out_dir, spec, workers=1, thumbnails=False, image_format=image_format,
                           quality=quality, progress=False)
    seconds = time.perf_counter() - began
    if summary["skipped"]:
        raise RuntimeError(f"domainclip skipped {slide_path}: {summary['skipped']}")
    [info] = summary["slides"]
    return {"patches": summary["num_patches"], "seconds": seconds, "setup_seconds": info["setup_seconds"],
            "patch_seconds": info["seconds"] - info["setup_seconds"],
            "patch_cpu_seconds": info["cpu_seconds"] - info["setup_cpu_seconds"]}


def run_peer(peer: str, slide_path: Path, out_dir: Path, level: int, spec: Any, quality: int) -> dict[str, Any]:
    """Run :mod:`bench.peer_wsi_patching` for ``peer`` in its environment; returns its timings."""
    cmd = [sys.executable, "-m", "bench.peer_wsi_patching", peer, str(slide_path), str(out_dir), "--level", str(level),
           "--size", str(spec.size), "--min-tissue", str(spec.min_tissue), "--quality", str(quality)]
    done = subprocess.run(cmd, env=_peer_env(peer), cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{peer} failed on {slide_path}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def _members(folder: Path) -> dict[str, bytes]:
    members = {}
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                members[member.name] = tar.extractfile(member).read()
    return members


def check_pixels(slide_path: Path, folder: Path, level: int, spec: Any, quality: int) -> dict[str, Any]:
    """Read every patch in a shard folder again with domainclip at its ``<x0>_<y0>`` key and compare.

    Each patch is ``spec.size`` pixels of ``level`` at the level-0 corner of its key (the last two
    ``_``-separated fields); domainclip's :meth:`Slide.read_array` there, encoded with the same JPEG
    encoder, must give the same bytes (identical pixels before encoding).
    """
    from domainclip.core.data.writer import IMAGE_ENCODERS
    from domainclip.domains.pathology.slides import open_slide

    encode = IMAGE_ENCODERS["jpg"]
    images = {name: data for name, data in _members(folder).items() if name.endswith(".jpg")}
    identical, max_diff = 0, 0
    with open_slide(slide_path) as slide:
        for name, data in images.items():
            x0, y0 = (int(v) for v in name[: -len(".jpg")].split("_")[-2:])
            array = slide.read_array((x0, y0), level, (spec.size, spec.size))
            ours = encode(Image.fromarray(array), quality)
            if ours == data:
                identical += 1
                continue
            theirs = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
            mine = np.asarray(Image.open(io.BytesIO(ours)).convert("RGB"), dtype=np.int16)
            max_diff = max(max_diff, int(np.abs(theirs - mine).max()))
        backend = slide.array_backend
    return {"patches": len(images), "identical": identical, "max_abs_pixel_difference_after_jpeg": max_diff,
            "domainclip_array_backend": backend}


def _level_for(slide_path: Path, spec: Any) -> tuple[int, int]:
    """domainclip's read level and read size for ``spec`` on the slide."""
    from domainclip.domains.pathology.patching import _geometry
    from domainclip.domains.pathology.slides import open_slide

    with open_slide(slide_path) as slide:
        level, read_size, _, _ = _geometry(slide, spec)
    return level, read_size


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a markdown table and write the JSON result; returns the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per side and slide")
    parser.add_argument("--synthetic-size", type=int, default=12288, help="side of the synthetic 0.25-mpp JPEG slide")
    parser.add_argument("--jp2k-size", type=int, default=8160, help="side of the synthetic 0.5-mpp JPEG 2000 slide")
    parser.add_argument("--peers", default="tiatoolbox,lazyslide,clam", help="comma-separated peers to run")
    parser.add_argument("--mpp", type=float, default=0.5, help="patch mpp")
    parser.add_argument("--size", type=int, default=224, help="patch side")
    parser.add_argument("--min-tissue", type=float, default=0.25, help="smallest tissue fraction kept")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality, all sides")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "pathology_patching.json")
    args = parser.parse_args(argv)

    from domainclip.domains.pathology.patching import PatchSpec
    from domainclip.domains.pathology.slides import DEFAULT_DECODE_THREADS

    spec = PatchSpec(mpp=args.mpp, size=args.size, min_tissue=args.min_tissue)
    peers = [p for p in args.peers.split(",") if p]
    unknown = sorted(set(peers) - {*PEER_WSI_PACKAGES, "clam"})
    if unknown:
        parser.error(f"unknown peers {unknown}; choose from {[*PEER_WSI_PACKAGES, 'clam']}")
    versions: dict[str, str] = {}
    for peer in peers:
        if peer in PEER_WSI_PACKAGES:
            ensure_peer_wsi(peer)
            versions[peer] = next(p.split("==")[1] for p in PEER_WSI_PACKAGES[peer] if p.startswith(peer + "=="))
    runs: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-patching-") as tmp:
        root = Path(tmp)
        slides: dict[str, Path] = {}
        if SHARED_CMU.is_file():
            slides["CMU-1-Small-Region.svs (Aperio JPEG, 0.499 mpp, level 0)"] = SHARED_CMU
        started = time.perf_counter()
        slides[f"synthetic JPEG TIFF {args.synthetic_size} px (0.25 mpp, level 1)"] = synthetic_slide(
            root / "synthetic.tif", args.synthetic_size)
        slides[f"synthetic Aperio JPEG 2000 {args.jp2k_size} px (0.5 mpp, level 0)"] = jp2k_slide(
            root / "jp2k.svs", args.jp2k_size)
        print(f"wrote the synthetic slides in {time.perf_counter() - started:.1f} s", flush=True)

        def side(name: str, path: Path, out: Path) -> dict[str, Any]:
            level, read_size = geometry[path]
            if name == "domainclip":
                return ours(path, out, spec, "jpg", args.quality)
            if name == "clam":
                return clam_style(path, out, spec, "jpg", args.quality)
            return run_peer(name, path, out, level, spec, args.quality)

        geometry = {path: _level_for(path, spec) for path in slides.values()}
        for label, path in slides.items():  # warm-up (file cache, numba caches) and the pixel check
            level, read_size = geometry[path]
            if read_size != spec.size:
                raise RuntimeError(f"{label}: domainclip reads {read_size} px at level {level}, not {spec.size}; "
                                   f"the peers would resample and the pixels could not be compared")
            checks[label] = {}
            for name in ["domainclip", *peers]:
                out = root / f"check-{name}-{path.stem}"
                side(name, path, out)
                checks[label][name] = check_pixels(path, out, level, spec, args.quality)
                print(f"  {label}: {name} {checks[label][name]}", flush=True)
        names = ["domainclip", *peers]
        for repeat in range(args.repeats):
            for label, path in slides.items():
                order = names[repeat % len(names):] + names[: repeat % len(names)]  # rotate who goes first
                for name in order:
                    load = load_average()
                    result = side(name, path, root / f"r{repeat}-{name}-{path.stem}")
                    result["patches_per_s"] = result["patches"] / result["seconds"]
                    result["patch_phase_per_s"] = result["patches"] / result["patch_seconds"]
                    runs.append({"side": name, "slide": label, "repeat": repeat, "load_before": load, **result})
                    print(f"  repeat {repeat} {label[:30]:<30} {name:<10} {result['patches']:5d} patches "
                          f"{result['patches_per_s']:7.1f}/s whole job, {result['patch_phase_per_s']:7.1f}/s "
                          f"patch phase (setup {result['setup_seconds']:.2f} s) (load {load})", flush=True)

    summary, table = [], []
    for label in slides:
        def rate(side_name: str, key: str, label: str = label) -> float:
            return median([r[key] for r in runs if r["side"] == side_name and r["slide"] == label])

        def count(side_name: str, label: str = label) -> int:
            return next(r["patches"] for r in runs if r["side"] == side_name and r["slide"] == label)

        for key, what in [("patches_per_s", "whole job"), ("patch_phase_per_s", "patch phase")]:
            ours_rate = rate("domainclip", key)
            best = max(peers, key=lambda p: rate(p, key))
            for peer in peers:
                check = checks[label][peer]
                same = check["identical"] == check["patches"]
                ratio = ours_rate / rate(peer, key)
                summary.append({
                    "benchmark": "pathology_patching",
                    "measurement": f"{label}: {args.size} px patches at {args.mpp} mpp, jpg q{args.quality}, "
                                   f"1 process, {what}, patches/s",
                    "domainclip": round(ours_rate, 1),
                    "reference": round(rate(peer, key), 1),
                    "reference_name": peer if peer == "clam" else f"{peer} {versions[peer]}",
                    "ratio": round(ratio, 3),
                    "goal": GOAL if peer == best else None,
                    "met": ratio >= GOAL if peer == best else None,
                    "patches": {"domainclip": count("domainclip"), peer: count(peer)},
                    "pixels_identical": same,
                    "comparison": check,
                })
                table.append([label, what, peer, f"{count('domainclip')} / {count(peer)}", ours_rate,
                              rate(peer, key), ratio,
                              ("met" if ratio >= GOAL else "NOT met") if peer == best else "",
                              "identical" if same else f"max diff {check['max_abs_pixel_difference_after_jpeg']}"])
    loads = [r["load_before"] for r in runs]
    result = {
        "benchmark": "pathology patching: patch_slides vs tiatoolbox, lazyslide and a CLAM-style loop",
        "settings": {**{k: v for k, v in vars(args).items() if k != "out"},
                     "domainclip_decode_threads": DEFAULT_DECODE_THREADS, "peer_versions": versions},
        "summary": summary,
        "load_average_range": [min(loads), max(loads)],
        "runs": runs,
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(markdown_table(["slide", "timed", "peer", "patches (domainclip / peer)", "domainclip patches/s",
                          "peer patches/s", "ratio", f"goal >= {GOAL} vs best peer", "peer's pixels"], table))
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
