"""``domainclip prepare pathology synthetic``: a folder of synthetic slides, drawn in worker processes.

:func:`generate_slides` is the pathology domain's synthetic generator (its ``synthetic`` prepare
command): it writes slides, their label masks, ``slides.csv`` (slide-level labels ``tumor`` /
``normal`` for MI-Zero style evaluation) and ``slides.json`` (the full truth), the layout that
``synthetic-patches``, :class:`~domainclip.domains.pathology.synthetic.annotator.SyntheticAnnotator`
and the slide-level suite read.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from domainclip.core.io import atomic_write_text
from domainclip.core.options import NonNegativeInt, PositiveFloat, PositiveInt, UnitFloat, entry_point
from domainclip.core.parallel import map_unordered
from domainclip.domains.pathology.synthetic.slide import (
    GENERATOR,
    LICENCE,
    BackgroundFraction,
    Site,
    SlideSize,
    _slide_shape,
    generate_slide,
)
from domainclip.domains.pathology.synthetic.textures import BASE_MPP
from domainclip.domains.pathology.synthetic.vocabulary import SLIDE_LABELS, TISSUE_CLASSES

__all__ = ["CSV_FIELDS", "generate_slides"]

#: Columns of ``slides.csv``.
CSV_FIELDS: tuple[str, ...] = (
    "slide_id",
    "path",
    "mpp",
    "label",
    "classes",
    "width",
    "height",
    "mask",
    "mask_downsample",
    "tissue_fraction",
    "seed",
)


def _slide_plan(n_slides: int, seed: int, tumor_fraction: float) -> list[tuple[int, tuple[str, ...]]]:
    """Per slide: its seed and the classes it is asked to draw (tumour on a seeded subset)."""
    rng = np.random.default_rng([seed, 0x7A5])
    n_tumor = int(round(tumor_fraction * n_slides))
    with_tumor = set(rng.permutation(n_slides)[:n_tumor].tolist())
    others = [c for c in TISSUE_CLASSES if c != "tumor"]
    plan = []
    for i in range(n_slides):
        slide_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        if i in with_tumor:
            k = int(rng.integers(3, 7))
            chosen = ("tumor", *rng.choice(others, size=k, replace=False).tolist())
        else:
            k = int(rng.integers(4, 8))
            chosen = tuple(rng.choice(others, size=k, replace=False).tolist())
        plan.append((slide_seed, tuple(c for c in TISSUE_CLASSES if c in chosen)))
    return plan


def _generate_one(job: dict[str, Any]) -> dict[str, Any]:
    began = time.perf_counter()
    options = dict(job)
    truth = generate_slide(options.pop("path"), **options)
    out = truth.to_json()
    out["seconds"] = round(time.perf_counter() - began, 3)
    return out


@entry_point
def generate_slides(
    out: Path,
    n: PositiveInt = 20,
    *,
    seed: NonNegativeInt = 0,
    workers: PositiveInt = 1,
    progress: bool = True,
    size: SlideSize = 4096,
    mpp: PositiveFloat = BASE_MPP,
    tumor_fraction: UnitFloat = 0.5,
    background_fraction: BackgroundFraction = 0.4,
    site: Site = "a",
) -> dict[str, Any]:
    """Draw synthetic H&E whole-slide images (pyramidal TIFF, label mask, slides.csv) with 9 tissue classes.

    Slide ``i`` is drawn with a seed derived from ``(seed, i)``; which slides draw tumour is a seeded
    choice of ``round(tumor_fraction * n)`` of the ``n`` (tumour plus three to six other classes; the
    rest draw four to seven non-tumour classes). Any number of workers writes the same files.
    ``slides.csv`` (columns :data:`CSV_FIELDS`, ``path`` and ``mask`` relative to ``out``,
    ``classes`` joined by ``;``) labels a slide ``tumor`` exactly when its mask holds tumour. Every
    file is written atomically.

    Args:
        out: output folder for the slides (``slide_0000.tiff``, ``slide_0000_mask.png``, ...).
        n: number of slides.
        seed: run seed (held-out sets use another).
        workers: worker processes, each drawing one slide at a time.
        progress: show a progress bar.
        size: level-0 side N or WIDTHxHEIGHT, multiples of 16 (a 4096 x 4096 slide takes about 650 MB
            while it is drawn).
        mpp: microns per pixel at level 0.
        tumor_fraction: share of slides with tumour, in [0, 1].
        background_fraction: share of each slide left as glass, in [0, 0.95].
        site: stain and scanner distribution of every slide (``"b"``: a shifted second site, for
            held-out sets that test robustness to stain and scanner shift).

    Returns:
        Summary: output paths, counts per slide label and class, seconds and slides per minute.
    """
    from tqdm.auto import tqdm

    from domainclip.core.data.writer import write_json_atomic

    _slide_shape(size)  # refused here, before any worker starts
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        {
            "path": str(out / f"slide_{i:04d}.tiff"),
            "seed": slide_seed,
            "size": size,
            "mpp": mpp,
            "classes": chosen,
            "background_fraction": background_fraction,
            "site": site,
        }
        for i, (slide_seed, chosen) in enumerate(_slide_plan(n, seed, tumor_fraction))
    ]
    began = time.perf_counter()
    results: list[dict[str, Any]] = []
    with tqdm(total=n, disable=not progress, unit="slide", desc="synthetic slides") as bar:
        for _, result in map_unordered(_generate_one, jobs, workers):
            results.append(result)
            bar.update(1)
    results.sort(key=lambda r: r["slide_id"])
    seconds = time.perf_counter() - began

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_FIELDS), lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({**{k: r.get(k) for k in CSV_FIELDS}, "path": Path(r["path"]).name,
                         "classes": ";".join(r["classes"]), "width": r["size"][0], "height": r["size"][1],
                         "mask": Path(r["mask_path"]).name})
    csv_path = atomic_write_text(out / "slides.csv", buf.getvalue())
    json_path = out / "slides.json"
    write_json_atomic(json_path, {"generator": GENERATOR, "licence": LICENCE, "seed": seed, "slides": results})
    labels = [r["label"] for r in results]
    return {
        "out": str(out),
        "n": n,
        "seed": seed,
        "site": site,
        "size": list(results[0]["size"]),
        "mpp": mpp,
        "workers": workers,
        "slides_csv": str(csv_path),
        "slides_json": str(json_path),
        "counts_by_label": {label: labels.count(label) for label in SLIDE_LABELS},
        "slides_with_class": {c: sum(c in r["classes"] for r in results) for c in TISSUE_CLASSES},
        "seconds": round(seconds, 3),
        "slides_per_minute": round(60.0 * n / seconds, 2) if seconds > 0 else None,
        "generator": GENERATOR,
        "licence": LICENCE,
    }
