"""Slide patching throughput: domainclip's patch_slides against a CLAM-style read_region loop, same patches.

Usage::

    python -m bench.bench_pathology_patching [--repeats 3] [--synthetic-size 16384] [--mpp 0.5] [--size 224]
                                             [--min-tissue 0.25] [--image-format jpg] [--out FILE.json]

Slides: ``CMU-1-Small-Region.svs`` from ``../shared/data/pathology`` (real Aperio, one level,
0.499 mpp; skipped where the folder is absent) and a synthetic pyramidal JPEG TIFF written with
:func:`~domainclip.domains.pathology.tiff.write_pyramidal_tiff` at 0.25 mpp
(``--synthetic-size`` square, tiles of 256, quality 90), so that 0.5 mpp patches are read from
level 1. Per slide, both sides do the whole job with one process (``workers=1`` each):

* ``domainclip``: :func:`~domainclip.domains.pathology.patching.patch_slides` (open, tissue
  detection, plan, block reads through :meth:`Slide.read_array` with patches cut from each block,
  shards), thumbnails off;
* ``clam``: the loop of CLAM-style pipelines: ``openslide.OpenSlide`` once per slide, the same
  tissue mask and patch plan (:func:`detect_tissue`, :func:`plan_patches`), then per patch
  ``read_region((x, y), level, (read_size, read_size))`` -> RGB -> resize to ``--size`` when the
  read is larger, written through the same :class:`ShardWriter` with the same key, metadata, image
  format and quality.

Patches/s is wall-clock, median over ``--repeats`` interleaved runs, for the whole job and for the
patch phase alone (everything after the tissue mask and the plan, which both sides share), and per
CPU second of the patch phase (``time.process_time``, all threads; steadier on a busy machine). The two
outputs are compared member by member: identical image bytes mean identical pixels (the same
encoder gets the same input); otherwise the largest absolute pixel difference is reported.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.common import REPO_ROOT, RESULTS_DIR, load_average, machine_info, markdown_table, median, write_result

__all__ = ["GOAL", "clam_style", "compare_shards", "main", "synthetic_slide"]

#: domainclip must reach at least this multiple of the CLAM-style loop's patches/s.
GOAL = 2.0
SHARED_CMU = REPO_ROOT.parent / "shared" / "data" / "pathology" / "CMU-1-Small-Region.svs"


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


def _members(folder: Path) -> dict[str, bytes]:
    members = {}
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                members[member.name] = tar.extractfile(member).read()
    return members


def compare_shards(a: Path, b: Path, image_format: str) -> dict[str, Any]:
    """Compare two shard folders: same members, identical image bytes, or the largest pixel difference."""
    left, right = _members(a), _members(b)
    if set(left) != set(right):
        return {"same_members": False, "only_domainclip": len(set(left) - set(right)),
                "only_clam": len(set(right) - set(left))}
    images = [name for name in left if name.endswith("." + image_format)]
    identical = sum(left[n] == right[n] for n in images)
    max_diff = 0
    for name in images:
        if left[name] != right[name]:
            x = np.asarray(Image.open(io.BytesIO(left[name])).convert("RGB"), dtype=np.int16)
            y = np.asarray(Image.open(io.BytesIO(right[name])).convert("RGB"), dtype=np.int16)
            max_diff = max(max_diff, int(np.abs(x - y).max()))
    meta_equal = all(json.loads(left[n]) == json.loads(right[n]) for n in left if n.endswith(".json"))
    return {"same_members": True, "images": len(images), "identical_images": identical,
            "max_abs_pixel_difference": max_diff, "meta_equal": meta_equal}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a markdown table and write the JSON result; returns the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per side and slide")
    parser.add_argument("--synthetic-size", type=int, default=16384, help="side of the synthetic 0.25-mpp slide")
    parser.add_argument("--mpp", type=float, default=0.5, help="patch mpp")
    parser.add_argument("--size", type=int, default=224, help="patch side")
    parser.add_argument("--min-tissue", type=float, default=0.25, help="smallest tissue fraction kept")
    parser.add_argument("--image-format", choices=("jpg", "png"), default="jpg", help="patch encoding, both sides")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality, both sides")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "pathology_patching.json")
    args = parser.parse_args(argv)

    from domainclip.domains.pathology.patching import PatchSpec

    spec = PatchSpec(mpp=args.mpp, size=args.size, min_tissue=args.min_tissue)
    sides = {"domainclip": ours, "clam": clam_style}
    runs: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-patching-") as tmp:
        root = Path(tmp)
        slides: dict[str, Path] = {}
        if SHARED_CMU.is_file():
            slides["CMU-1-Small-Region.svs (aperio, 1 level, 0.499 mpp)"] = SHARED_CMU
        started = time.perf_counter()
        synthetic = synthetic_slide(root / "synthetic.tif", args.synthetic_size)
        print(f"wrote the synthetic slide in {time.perf_counter() - started:.1f} s", flush=True)
        slides[f"synthetic {args.synthetic_size}px pyramid (0.25 mpp, reads level 1)"] = synthetic
        for label, path in slides.items():  # warm-up (imports, file cache) and the identity check
            outs = {}
            for name, run in sides.items():
                outs[name] = root / f"check-{name}-{path.stem}"
                run(path, outs[name], spec, args.image_format, args.quality)
            checks[label] = compare_shards(outs["domainclip"], outs["clam"], args.image_format)
            print(f"  {label}: {checks[label]}", flush=True)
        for repeat in range(args.repeats):
            for label, path in slides.items():
                order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
                for name in order:
                    load = load_average()
                    result = sides[name](path, root / f"r{repeat}-{name}-{path.stem}", spec, args.image_format,
                                         args.quality)
                    result["patches_per_s"] = result["patches"] / result["seconds"]
                    result["patch_phase_per_s"] = result["patches"] / result["patch_seconds"]
                    result["patch_phase_per_cpu_s"] = result["patches"] / result["patch_cpu_seconds"]
                    runs.append({"side": name, "slide": label, "repeat": repeat, "load_before": load, **result})
                    print(f"  repeat {repeat} {label[:24]:<24} {name:<10} {result['patches']:5d} patches "
                          f"{result['patches_per_s']:7.1f}/s whole job, {result['patch_phase_per_s']:7.1f}/s "
                          f"after mask+plan ({result['setup_seconds']:.2f} s) (load {load})", flush=True)

    summary, table = [], []
    for label in slides:
        def rate(side: str, key: str, label: str = label) -> float:
            return median([r[key] for r in runs if r["side"] == side and r["slide"] == label])

        patches = next(r["patches"] for r in runs if r["slide"] == label)
        check = checks[label]
        same = bool(check.get("same_members") and check.get("identical_images") == check.get("images"))
        for key, what in [("patches_per_s", "whole job (open, tissue mask, plan, read, encode, write)"),
                          ("patch_phase_per_s", "patch phase (read, resize, encode, write; after mask+plan)"),
                          ("patch_phase_per_cpu_s", "patch phase per CPU second (all threads)")]:
            ours_rate, clam_rate = rate("domainclip", key), rate("clam", key)
            ratio = ours_rate / clam_rate
            summary.append({
                "benchmark": "pathology_patching",
                "measurement": f"{label}: {patches} patches of {args.size} px at {args.mpp} mpp, "
                               f"{args.image_format}, 1 process, {what}, patches/s",
                "domainclip": round(ours_rate, 1),
                "reference": round(clam_rate, 1),
                "reference_name": "CLAM-style OpenSlide read_region loop",
                "ratio": round(ratio, 3),
                "goal": GOAL,
                "met": ratio >= GOAL,
                "pixels_identical": same,
                "comparison": check,
            })
            timed = {"patches_per_s": "whole job", "patch_phase_per_s": "patch phase",
                     "patch_phase_per_cpu_s": "patch phase, per CPU s"}[key]
            table.append([label, timed, patches, ours_rate, clam_rate, ratio,
                          "met" if ratio >= GOAL else "NOT met",
                          "identical" if same else f"max diff {check.get('max_abs_pixel_difference')}"])
    loads = [r["load_before"] for r in runs]
    result = {
        "benchmark": "pathology patching: patch_slides vs a CLAM-style read_region loop",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "summary": summary,
        "load_average_range": [min(loads), max(loads)],
        "runs": runs,
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(markdown_table(["slide", "timed", "patches", "domainclip patches/s", "CLAM-style patches/s", "ratio",
                          f"goal >= {GOAL}", "pixels"], table))
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
