"""Import PathGen-1.6M patch-caption pairs: cut the captioned patches from local TCGA slides into shards.

PathGen-1.6M (Sun et al., 2024, "PathGen-1.6M: 1.6 Million Pathology Image-text Pairs Generation
through Multi-agent Collaboration") publishes captions, not pixels. Each record names a TCGA
diagnostic slide and the level-0 top-left corner of a 672 x 672 patch::

    {"wsi_id": "TCGA-A7-A0CE-01Z-00-DX1", "position": ["21600", "9408"], "caption": "The image shows ..."}

Records come as a JSON list or as JSON lines. Slides are looked up in ``slides_dir`` (searched
recursively, as the GDC client stores each slide in a folder named by its file uuid) by file name:
``<wsi_id>.svs`` or ``<wsi_id>.<anything>.svs`` (TCGA names slides ``<wsi_id>.<uuid>.svs``).

:func:`import_pathgen` groups records by slide, reads every patch once per slide in worker
processes (one slide per task, each worker with its own shards, as in
:mod:`~domainclip.domains.pathology.patching`), optionally resizes it to ``out_size``, and writes
``{"__key__": record index, "<jpg|png>": patch, "txt": caption, "json": meta}``. Records whose slide
is not in ``slides_dir`` are listed in the summary and in ``missing_slides.txt``; bad records (no
caption, no slide id, a position that is not two non-negative integers, a patch outside the slide)
and the records of slides that cannot be read are counted by reason. Neither stops the import; an
import that writes no patch at all raises :class:`~domainclip.core.errors.NothingWrittenError` with
those counts.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from domainclip.core.errors import InputError, InputNotFoundError, NothingWrittenError
from domainclip.core.options import PositiveInt, entry_point
from domainclip.core.parallel import run_workers, shared_add, shared_take
from domainclip.domains.pathology.patching import (
    RESAMPLE,
    SLIDE_EXTENSIONS,
    JpegQuality,
    PatchFormat,
    Resample,
    skip_reason,
)
from domainclip.domains.pathology.slides import SlideError, open_slide

__all__ = [
    "PATHGEN_PATCH_SIZE",
    "PathGenRecord",
    "import_pathgen",
    "index_slides",
    "load_pathgen_records",
    "parse_records",
]

#: Side in level-0 pixels of the PathGen-1.6M patches.
PATHGEN_PATCH_SIZE = 672


@dataclass(frozen=True)
class PathGenRecord:
    """One valid PathGen record.

    Attributes:
        index: position of the record in the input (0-based); the sample key.
        wsi_id: slide id (``TCGA-...-DX1``).
        x: level-0 left edge.
        y: level-0 top edge.
        caption: the caption.
    """

    index: int
    wsi_id: str
    x: int
    y: int
    caption: str


def load_pathgen_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read PathGen records from a JSON file holding a list, or from a JSON-lines file.

    Args:
        path: the records file.

    Returns:
        The raw records, in file order.

    Raises:
        InputNotFoundError: the file does not exist (a ``FileNotFoundError``).
        InputError: the file is not UTF-8, or neither a JSON list nor JSON lines; names the file
            (and line) (a ``ValueError``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"PathGen records file {path} does not exist or is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); expected PathGen JSON") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(records, list):
            raise InputError(f"{path}: expected a JSON list of records")
        return records
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg}); expected a JSON list or JSON lines") from None
    return records


def _position(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    out = []
    for item in value:
        if isinstance(item, bool):
            return None
        try:
            number = float(item) if isinstance(item, str) else item
        except ValueError:
            return None
        if not isinstance(number, int | float) or number != int(number) or number < 0:
            return None
        out.append(int(number))
    return out[0], out[1]


def parse_records(records: Iterable[Any]) -> tuple[list[PathGenRecord], Counter[str]]:
    """Validate raw records.

    Args:
        records: raw record dicts.

    Returns:
        ``(valid records, counts of rejected records by reason)``; reasons are ``not_an_object``,
        ``no_wsi_id``, ``no_caption`` and ``bad_position``.
    """
    valid: list[PathGenRecord] = []
    bad: Counter[str] = Counter()
    for index, record in enumerate(records):
        problem = _record_problem(record)
        if problem is not None:
            bad[problem] += 1
            continue
        x, y = _position(record["position"]) or (0, 0)  # valid: never the fallback
        valid.append(PathGenRecord(index, record["wsi_id"].strip(), x, y, record["caption"].strip()))
    return valid, bad


def _record_problem(record: Any) -> str | None:
    """Why a raw record is rejected (a reason of :func:`parse_records`), or ``None`` for a valid one."""
    if not isinstance(record, Mapping):
        return "not_an_object"
    wsi_id = record.get("wsi_id")
    if not isinstance(wsi_id, str) or not wsi_id.strip():
        return "no_wsi_id"
    caption = record.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        return "no_caption"
    if _position(record.get("position")) is None:
        return "bad_position"
    return None


def index_slides(slides_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """Map every dot-separated prefix of each slide file name under ``slides_dir`` to the files.

    ``TCGA-X.uuid.svs`` is found under ``TCGA-X`` and ``TCGA-X.uuid``; ``TCGA-X.svs`` under ``TCGA-X``.

    Raises:
        InputNotFoundError: ``slides_dir`` is not a folder (a ``FileNotFoundError``).
    """
    root = Path(slides_dir)
    if not root.is_dir():
        raise InputNotFoundError(f"slides folder {root} does not exist or is not a folder")
    index: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in SLIDE_EXTENSIONS:
            continue
        parts = path.name[: -len(path.suffix)].split(".")
        for k in range(1, len(parts) + 1):
            index.setdefault(".".join(parts[:k]), []).append(path)
    return index


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs (picklable)."""

    groups: tuple[tuple[str, str, tuple[PathGenRecord, ...]], ...]
    out: str
    prefix: str
    patch_size: int
    out_size: int | None
    resample: str
    max_count: int
    image_format: str
    quality: int
    backend: str


def _import_one(
    job: _Job, wsi_id: str, path: Path, records: Sequence[PathGenRecord], writer: Any, report: Callable[[int], Any]
) -> dict[str, Any]:
    """Write the patches of one slide; returns counts. Raises SlideError when the slide cannot be opened."""
    size = job.patch_size
    out_of_bounds = written = 0
    with open_slide(path, backend=job.backend, require_mpp=False) as slide:
        width, height = slide.dimensions
        for record in sorted(records, key=lambda r: (r.y, r.x)):
            if record.x + size > width or record.y + size > height:
                out_of_bounds += 1
                continue
            image = Image.fromarray(slide.read_array((record.x, record.y), 0, (size, size)))
            if job.out_size is not None and job.out_size != size:
                image = image.resize((job.out_size, job.out_size), RESAMPLE[job.resample])
            meta = {
                "wsi_id": wsi_id,
                "x": record.x,
                "y": record.y,
                "record": record.index,
                "patch_size": size,
                "image_size": image.width,
                "slide_mpp": slide.mpp,
                "mpp": None if slide.mpp is None else slide.mpp * size / image.width,
                "source": str(path),
            }
            writer.write({"__key__": f"{record.index:09d}", "image": image, "text": record.caption, "meta": meta})
            written += 1
            report(1)
    return {"wsi_id": wsi_id, "path": str(path), "records": len(records), "written": written,
            "out_of_bounds": out_of_bounds}


def _run_worker(job: _Job, prefix: str, take: Callable[[], int], report: Callable[[int], Any]) -> dict[str, Any]:
    from domainclip.core.data.writer import ShardWriter, index_path

    slides, failed = [], []
    with ShardWriter(
        job.out, prefix=prefix, max_count=job.max_count, image_format=job.image_format, quality=job.quality
    ) as writer:
        while (i := take()) < len(job.groups):
            wsi_id, path, records = job.groups[i]
            before = writer.num_samples
            try:
                slides.append(_import_one(job, wsi_id, Path(path), records, writer, report))
            except SlideError as e:  # its message names the slide
                failed.append({"wsi_id": wsi_id, "path": path, "records": len(records), "reason": skip_reason(e),
                               "error": str(e)})
            except Exception as e:  # a slide failing mid-read must not stop the import; it is counted
                failed.append({"wsi_id": wsi_id, "path": path, "records": len(records), "reason": skip_reason(e),
                               "error": f"{path}: {type(e).__name__}: {e}",
                               "written_before_error": writer.num_samples - before})
    return {"prefix": prefix, "slides": slides, "failed": failed, "shards": [p.name for p in writer.written],
            "index": index_path(job.out, prefix).name, "num_samples": writer.num_samples}


def _worker_entry(job: _Job, prefix: str) -> dict[str, Any]:
    # shared counters of run_workers: 0 patches written (the bar), 1 next slide group to take
    return _run_worker(job, prefix, lambda: shared_take(1), lambda n: shared_add(0, n))


@entry_point
def import_pathgen(
    out: Path,
    records: Path | list[Any],
    slides_dir: Path,
    *,
    patch_size: PositiveInt = PATHGEN_PATCH_SIZE,
    out_size: PositiveInt | None = None,
    resample: Resample = "lanczos",
    image_format: PatchFormat = "jpg",
    quality: JpegQuality = 95,
    max_count: PositiveInt = 1000,
    prefix: str = "pathgen",
    workers: PositiveInt = 1,
    backend: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Import PathGen-1.6M captions: cut the captioned 672-px patches from local TCGA slides into shards.

    Args:
        out: output folder (shards, indexes, <prefix>-summary.json, missing_slides.txt).
        records: PathGen records file, a JSON list or JSON lines. From Python, also the list of records.
        slides_dir: folder with the TCGA slides, searched recursively for <wsi_id>[.<anything>].svs.
        patch_size: side of the level-0 patch read at each position.
        out_size: resize patches to this side (default: keep ``patch_size``).
        resample: filter that resizes patches to ``out_size``.
        image_format: patch encoding.
        quality: JPEG quality.
        max_count: most samples per shard.
        prefix: shard name prefix.
        workers: worker processes, each importing one slide at a time into its own shards.
        backend: slide backend: auto, openslide or tiffslide.
        progress: show a progress bar.

    Returns:
        Summary: ``num_records``, ``num_written``, ``bad_records`` (reason -> count, with
        ``out_of_bounds`` and ``slide_unreadable``), ``missing_slides`` (ids), ``records_missing_slide``,
        ``ambiguous_slides``, ``failed_slides`` (per slide: ``reason`` as in
        :func:`~domainclip.domains.pathology.patching.skip_reason`, ``error``), ``shards``,
        ``indexes``, ``seconds``.

    Raises:
        InputError: a value out of its range or a malformed records file (a ``ValueError``).
        InputNotFoundError: the records file or ``slides_dir`` does not exist.
        NothingWrittenError: no patch was written; the message counts the records by reason
            (bad records, records whose slide is missing or unreadable), with an example each
            (the summary is written first).
    """
    from tqdm.auto import tqdm

    from domainclip.core.data.writer import write_json_atomic
    from domainclip.core.io import atomic_write_text

    source = str(records) if isinstance(records, Path) else None
    raw = load_pathgen_records(records) if isinstance(records, Path) else records
    valid, bad = parse_records(raw)
    slide_index = index_slides(slides_dir)
    by_slide: dict[str, list[PathGenRecord]] = {}
    for record in valid:
        by_slide.setdefault(record.wsi_id, []).append(record)
    groups, missing, ambiguous = [], [], {}
    for wsi_id, items in by_slide.items():
        candidates = slide_index.get(wsi_id, [])
        if not candidates:
            missing.append(wsi_id)
            continue
        if len(candidates) > 1:
            ambiguous[wsi_id] = [str(p) for p in candidates]
        groups.append((wsi_id, str(candidates[0]), tuple(items)))
    out.mkdir(parents=True, exist_ok=True)
    job = _Job(
        groups=tuple(groups), out=str(out), prefix=prefix, patch_size=patch_size, out_size=out_size,
        resample=resample, max_count=max_count, image_format=image_format, quality=quality, backend=backend,
    )
    workers = max(1, min(workers, len(groups)))
    total = sum(len(g[2]) for g in groups)
    began = time.perf_counter()
    with tqdm(total=total, disable=not progress, unit="patch", desc="pathgen") as bar:
        if workers == 1:
            counter = iter(range(len(groups) + 1))
            results = [_run_worker(job, prefix, lambda: next(counter), bar.update)]
        else:
            prefixes = [f"{prefix}-w{k:02d}" for k in range(workers)]
            results = run_workers([(_worker_entry, (job, p)) for p in prefixes], bar, counters=2)
    seconds = time.perf_counter() - began
    slides = [s for r in results for s in r["slides"]]
    failed = [s for r in results for s in r["failed"]]
    bad_records: dict[str, int] = dict(bad)
    out_of_bounds = sum(s["out_of_bounds"] for s in slides)
    if out_of_bounds:
        bad_records["out_of_bounds"] = out_of_bounds
    unreadable = sum(f["records"] for f in failed)
    if unreadable:
        bad_records["slide_unreadable"] = unreadable
    missing.sort()
    missing_file = None
    if missing:
        missing_file = str(atomic_write_text(out / "missing_slides.txt", "".join(f"{m}\n" for m in missing)))
    num_written = sum(r["num_samples"] for r in results)
    summary = {
        "out": str(out),
        "records_source": source,
        "slides_dir": str(slides_dir),
        "patch_size": patch_size,
        "out_size": out_size or patch_size,
        "image_format": image_format,
        "workers": workers,
        "num_records": len(raw),
        "num_valid_records": len(valid),
        "num_written": num_written,
        "bad_records": bad_records,
        "num_slides": len(groups),
        "missing_slides": missing,
        "records_missing_slide": sum(len(by_slide[m]) for m in missing),
        "missing_slides_file": missing_file,
        "ambiguous_slides": ambiguous,
        "failed_slides": failed,
        "slides": slides,
        "shards": [name for r in results for name in r["shards"]],
        "indexes": [r["index"] for r in results],
        "seconds": round(seconds, 3),
        "patches_per_second": round(num_written / seconds, 2) if seconds > 0 else None,
    }
    write_json_atomic(out / f"{prefix}-summary.json", summary)
    summary["summary"] = str(out / f"{prefix}-summary.json")
    if num_written == 0:
        raise _nothing_written(summary, raw, source, by_slide)
    return summary


def _nothing_written(
    summary: Mapping[str, Any], raw: Sequence[Any], source: str | None, by_slide: Mapping[str, Sequence[PathGenRecord]]
) -> NothingWrittenError:
    """The error of an import that wrote no patch: its records counted by reason, with an example each."""
    where = source or "the records given"
    counts: Counter[str] = Counter(summary["bad_records"])
    examples: dict[str, str] = {}
    for index, record in enumerate(raw):
        problem = _record_problem(record)
        if problem is not None and problem not in examples:
            examples[problem] = f"{where}: record {index} ({problem}): {json.dumps(record, default=str)[:120]}"
    for item in summary["failed_slides"]:
        examples.setdefault("slide_unreadable", item["error"])
    if summary["records_missing_slide"]:
        counts["missing_slide"] = summary["records_missing_slide"]
        first = summary["missing_slides"][0]
        examples["missing_slide"] = (
            f"no slide {first}.svs or {first}.<uuid>.svs under {summary['slides_dir']} for "
            f"{len(by_slide[first])} record(s)"
        )
    if "out_of_bounds" in counts:
        slide = next(s for s in summary["slides"] if s["out_of_bounds"])
        examples["out_of_bounds"] = (
            f"{slide['path']}: {slide['out_of_bounds']} record(s) place a {summary['patch_size']}-px patch "
            "outside the slide"
        )
    noun = "record" if len(raw) == 1 else "records"
    inputs = f"{len(raw)} {noun} of {where}"
    return NothingWrittenError.from_counts("pathology/pathgen", "patches", inputs, counts, examples)
