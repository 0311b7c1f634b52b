"""Cut whole-slide images into fixed-resolution tissue patches and write them as WebDataset shards.

Patches have a physical resolution (``PatchSpec.mpp``, microns per pixel) and a pixel size
(``PatchSpec.size``). For each slide, :func:`plan_patches` picks the pyramid level to read
(:meth:`Slide.best_level_for_mpp`: the coarsest level that is at least as fine as the target, so
reads are only ever downsampled), the read size at that level
(``round(size * target_mpp / level_mpp)``, resized to ``size``), lays a grid over the slide with
``overlap`` output pixels between neighbours, and keeps the cells whose tissue fraction
(:class:`~domainclip.domains.pathology.tissue.TissueMask`) is at least ``min_tissue``.

:func:`patch_slides` runs that over many slides with ``workers`` processes. Each worker takes the
next slide from a shared counter, opens it once, reads the kept patches straight from the stored
tiles in an order that decodes each tile about once (:func:`iter_patch_arrays`; the same pixels as
one :func:`read_patch` each), and writes its own shards (``<prefix>-wNN-000000.tar``, ...; just
``<prefix>-000000.tar`` with one worker) through :class:`~domainclip.core.data.writer.ShardWriter`.
Memory stays bounded by the tile cache (32 MiB) and one thumbnail per worker. A slide that cannot
be opened (:data:`UNREADABLE_SLIDE`), has no mpp (:data:`NO_MPP`), or fails while being read
(:data:`READ_ERROR`) is skipped and counted by reason; the others are processed. When no slide gives
a patch the run raises :class:`~domainclip.core.errors.NothingWrittenError` with those counts.

Each sample is ``{"__key__", "<jpg|png>": patch, "json": meta}`` with meta ``slide_id``, ``x``,
``y`` (level-0 top-left), ``level``, ``read_size``, ``size0`` (level-0 extent), ``mpp`` (of the
patch), ``slide_mpp``, ``tissue_fraction``, ``patch_size`` and ``source``. An ``annotate`` hook can
add a caption, a label and metadata per patch (see :data:`Annotate`).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
from PIL import Image

from domainclip.core.errors import InputError, NothingWrittenError
from domainclip.core.io import check_distinct_ids, find_inputs, safe_key
from domainclip.core.options import NonNegativeInt, PositiveFloat, PositiveInt, Range, UnitFloat, entry_point
from domainclip.core.parallel import run_workers, shared_add, shared_take
from domainclip.core.plugins import UnknownNameError
from domainclip.domains.pathology.slides import (
    DEFAULT_DECODE_THREADS,
    MissingMppError,
    Slide,
    SlideError,
    open_slide,
    read_mpp_table,
)
from domainclip.domains.pathology.tissue import TissueMask, detect_tissue

__all__ = [
    "NO_MPP",
    "NO_PATCH",
    "READ_ERROR",
    "RESAMPLE",
    "SLIDE_EXTENSIONS",
    "THUMBNAIL_SIZE",
    "UNANNOTATED",
    "UNREADABLE_SLIDE",
    "Annotate",
    "JpegQuality",
    "PatchFormat",
    "PatchLocation",
    "PatchSpec",
    "Resample",
    "find_slides",
    "iter_patch_arrays",
    "patch_slides",
    "plan_patches",
    "prepare_patches",
    "read_patch",
    "safe_key",
    "skip_reason",
    "write_thumbnail",
]

#: The name of a Pillow filter that resizes reads to the patch size.
Resample = Literal["lanczos", "bicubic", "bilinear", "box", "hamming", "nearest"]
#: Resampling filter name -> Pillow filter.
RESAMPLE: dict[str, Image.Resampling] = {name: Image.Resampling[name.upper()] for name in get_args(Resample)}
#: How the patch commands encode patches.
PatchFormat = Literal["jpg", "png"]
#: A JPEG quality.
JpegQuality = Annotated[int, Range(1, 100)]
#: Colour of the tissue mask's outline in thumbnails (green: apart from H&E pink, purple and glass).
MASK_OUTLINE_COLOR = (0, 190, 0)
#: Colour of the kept patches' boxes in thumbnails.
PATCH_BOX_COLOR = (30, 60, 220)
#: Longest side of the QC thumbnails written by :func:`patch_slides`.
THUMBNAIL_SIZE = 1024
#: File suffixes taken as slides when a folder is given (OpenSlide's formats and plain TIFF).
SLIDE_EXTENSIONS: tuple[str, ...] = (
    ".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".czi", ".dcm",
)
#: ``annotate(slide_id, x0, y0, size0) -> dict | None``: a picklable callable giving, per patch, a
#: dict with optional ``"text"`` (str or list of str), ``"label"`` (int) and ``"meta"`` (dict merged
#: into the patch metadata); ``None`` drops the patch (counted as ``unannotated``).
Annotate = Callable[[str, int, int, int], "dict[str, Any] | None"]
#: Skip reasons of a slide: it cannot be opened, it has no mpp and none was given, it failed while
#: being read (the patches it wrote before the failure stay).
UNREADABLE_SLIDE, NO_MPP, READ_ERROR = "unreadable_slide", "no_mpp", "read_error"
#: Why a slide that was read gave no patch: none had enough tissue (or fitted), or ``annotate``
#: dropped them all. Counted in the error of a run that wrote nothing.
NO_PATCH, UNANNOTATED = "no_patch", "unannotated"


# --------------------------------------------------------------------------- spec and plan
@dataclass(frozen=True)
class PatchSpec:
    """What patches to cut.

    Args:
        mpp: microns per pixel of the patches.
        size: patch side in pixels.
        overlap: pixels (at the patch resolution) shared by neighbouring patches.
        min_tissue: smallest tissue fraction of a kept patch, in [0, 1].
        resample: a key of :data:`RESAMPLE`, the filter used when reads are resized.
    """

    mpp: float = 0.5
    size: int = 224
    overlap: int = 0
    min_tissue: float = 0.5
    resample: str = "lanczos"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mpp) and self.mpp > 0):
            raise InputError(f"patch mpp must be a positive number; got {self.mpp!r}")
        if self.size < 1:
            raise InputError(f"patch size must be >= 1; got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise InputError(f"overlap must be in [0, size={self.size}); got {self.overlap}")
        if not 0.0 <= self.min_tissue <= 1.0:
            raise InputError(f"min_tissue must be in [0, 1]; got {self.min_tissue}")
        if self.resample not in RESAMPLE:
            raise UnknownNameError("resampling filter", self.resample, list(RESAMPLE))


@dataclass(frozen=True)
class PatchLocation:
    """One planned patch.

    Attributes:
        x0: left edge in level-0 pixels.
        y0: top edge in level-0 pixels.
        level: pyramid level read.
        read_size: side of the read in pixels of that level (resized to the patch size).
        size0: side of the patch in level-0 pixels.
        tissue_fraction: fraction of the patch that is tissue.
    """

    x0: int
    y0: int
    level: int
    read_size: int
    size0: int
    tissue_fraction: float


def _geometry(slide: Slide, spec: PatchSpec) -> tuple[int, int, int, int]:
    """``(level, read_size, step at that level, size0)`` of ``spec`` on ``slide``."""
    level = slide.best_level_for_mpp(spec.mpp)
    read_size = max(1, round(spec.size * spec.mpp / slide.level_mpp(level)))
    step = max(1, read_size - round(spec.overlap * read_size / spec.size))
    size0 = max(1, round(read_size * slide.level_downsamples[level]))
    return level, read_size, step, size0


def plan_patches(slide: Slide, mask: TissueMask | None, spec: PatchSpec) -> list[PatchLocation]:
    """Lay the patch grid over ``slide`` and keep the patches with enough tissue.

    The grid starts at the level-0 origin with a step of ``read_size - overlap`` pixels of the
    read level, so with an integer downsample every patch starts on a whole pixel of that level;
    only patches entirely inside the slide are planned.

    Args:
        slide: an open slide with an mpp.
        mask: its tissue mask; ``None`` keeps every grid cell (tissue fraction 1).
        spec: the patch specification.

    Returns:
        The kept patches in row-major order.

    Raises:
        MissingMppError: the slide has no mpp.
    """
    level, read_size, step, size0 = _geometry(slide, spec)
    width0, height0 = slide.dimensions
    downsample = slide.level_downsamples[level]
    xs = np.array([round(i * step * downsample) for i in range(max(0, math.ceil(width0 / (step * downsample))) + 1)])
    ys = np.array([round(j * step * downsample) for j in range(max(0, math.ceil(height0 / (step * downsample))) + 1)])
    xs, ys = xs[xs + size0 <= width0], ys[ys + size0 <= height0]
    if len(xs) == 0 or len(ys) == 0:
        return []
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    boxes = np.stack(
        [grid_x.ravel(), grid_y.ravel(), np.full(grid_x.size, size0), np.full(grid_x.size, size0)], axis=1
    )
    fractions = np.ones(len(boxes)) if mask is None else mask.tissue_fractions(boxes)
    keep = fractions >= spec.min_tissue - 1e-9
    return [
        PatchLocation(int(x), int(y), level, read_size, size0, round(float(f), 4))
        for (x, y, _, _), f in zip(boxes[keep], fractions[keep])
    ]


def _resize(image: Image.Image, spec: PatchSpec) -> Image.Image:
    if image.size == (spec.size, spec.size):
        return image
    return image.resize((spec.size, spec.size), RESAMPLE[spec.resample])


def read_patch(slide: Slide, loc: PatchLocation, spec: PatchSpec) -> Image.Image:
    """Read one planned patch (one :meth:`Slide.read_region`) and resize it to ``spec.size``.

    Args:
        slide: the open slide the patch was planned on.
        loc: the patch.
        spec: the specification it was planned with.

    Returns:
        ``spec.size`` x ``spec.size`` RGB image.
    """
    return _resize(slide.read_region((loc.x0, loc.y0), loc.level, (loc.read_size, loc.read_size)), spec)


def iter_patch_arrays(
    slide: Slide, locations: Sequence[PatchLocation], spec: PatchSpec, *, block: int = 4096
) -> Iterator[tuple[PatchLocation, Image.Image]]:
    """Yield ``(location, patch image)`` for many patches, in an order that decodes each stored tile once.

    Patches are read with :meth:`Slide.read_array` (for Aperio and generic TIFF slides a direct
    tile reader with a decoded-tile cache, :class:`~domainclip.domains.pathology.slides.TiffTileReader`),
    column strip by column strip (strips ``block`` pixels of their level wide, aligned to the
    stored tiles) and row by row inside a strip, so the tiles shared by neighbouring patches are
    still cached when the next patch needs them. While a row of patches is cut, resized and
    handed on, the tiles of the next row are decoded on the slide's decoding threads
    (:meth:`Slide.prefetch_array`). The pixels are those of :func:`read_patch`.
    Patches that do not start on a whole pixel of their level (a non-integer downsample) are read
    with :func:`read_patch`.

    Args:
        slide: the open slide.
        locations: planned patches.
        spec: the specification they were planned with.
        block: strip width in level pixels; the tiles of about two patch rows of a strip must fit
            the tile cache (two 4096-pixel rows of 256-pixel RGB tiles take 6 MiB of its 32 MiB).
    """
    order: list[tuple[int, int, int, int, PatchLocation]] = []
    single: list[PatchLocation] = []
    for loc in locations:
        downsample = slide.level_downsamples[loc.level]
        x, y = loc.x0 / downsample, loc.y0 / downsample
        if x != int(x) or y != int(y):
            single.append(loc)
            continue
        tile_w = (slide.level_tile_sizes[loc.level] or (256, 256))[0]
        width = max(tile_w, (block // tile_w) * tile_w)
        order.append((loc.level, int(x) // width, int(y), int(x), loc))
    order.sort(key=lambda item: item[:4])
    rows: list[list[tuple[int, int, int, int, PatchLocation]]] = []
    for item in order:  # patch rows: same level, strip and top edge
        if rows and rows[-1][0][:3] == item[:3]:
            rows[-1].append(item)
        else:
            rows.append([item])

    def prefetch(row: list[tuple[int, int, int, int, PatchLocation]]) -> None:
        first, last = row[0][4], row[-1][4]
        width = row[-1][3] - row[0][3] + last.read_size
        slide.prefetch_array((first.x0, first.y0), first.level, (width, first.read_size))

    if rows:
        prefetch(rows[0])
    for number, row in enumerate(rows):
        if number + 1 < len(rows):  # decoded on the slide's threads while this row is cut and encoded
            prefetch(rows[number + 1])
        for *_, loc in row:
            array = slide.read_array((loc.x0, loc.y0), loc.level, (loc.read_size, loc.read_size))
            yield loc, _resize(Image.fromarray(array), spec)
    for loc in single:
        yield loc, read_patch(slide, loc, spec)


# --------------------------------------------------------------------------- helpers
def find_slides(specs: Sequence[str | os.PathLike]) -> list[Path]:
    """Slide files named by paths, folders (files with a suffix in :data:`SLIDE_EXTENSIONS`) and globs.

    See :func:`domainclip.core.io.find_inputs`; slides are named by :func:`safe_key` of their stem.
    """
    return find_inputs(specs, SLIDE_EXTENSIONS, what="slide", key=lambda p: safe_key(p.stem))


def skip_reason(error: BaseException) -> str:
    """Why a slide that raised ``error`` was skipped: :data:`NO_MPP`, :data:`UNREADABLE_SLIDE` or :data:`READ_ERROR`."""
    if isinstance(error, MissingMppError):
        return NO_MPP
    if isinstance(error, SlideError):
        return UNREADABLE_SLIDE
    return READ_ERROR


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of ``mask`` within ``width`` pixels of its edge (outside the array counts as background)."""
    inner = mask.copy()
    for _ in range(width):
        padded = np.pad(inner, 1, constant_values=False)
        inner = (
            padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        )
    return mask & ~inner


def write_thumbnail(
    path: str | os.PathLike,
    mask: TissueMask,
    locations: Sequence[PatchLocation],
    *,
    image: Image.Image | np.ndarray | None = None,
    max_size: int = 1024,
) -> Path:
    """Write a PNG of the slide thumbnail with the tissue mask's outline and the kept patches as boxes.

    The slide keeps its own colours: the mask is drawn as its outline (:data:`MASK_OUTLINE_COLOR`,
    about 1 pixel per 512 of the longest side), not as a tint, so what the mask calls tissue can be
    checked against the stain (a filled hole shows as the glass it is, inside the outline); each
    kept patch is a box in :data:`PATCH_BOX_COLOR`, drawn over the outline.

    Args:
        path: output PNG (written atomically).
        mask: the tissue mask.
        locations: patches to draw as boxes.
        image: the thumbnail to draw on (default: the view the mask was computed from).
        max_size: longest side of the PNG.

    Returns:
        The path written.
    """
    from PIL import ImageDraw

    from domainclip.core.io import atomic_write_bytes

    view = mask.image if image is None else image
    if view is None:
        raise ValueError("no thumbnail: the tissue mask carries no image and none was given")
    picture = view if isinstance(view, Image.Image) else Image.fromarray(np.asarray(view))
    scale = min(1.0, max_size / max(picture.size))
    if scale < 1.0:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    tissue = np.asarray(Image.fromarray(mask.mask).resize(picture.size, Image.Resampling.NEAREST))
    base = np.asarray(picture.convert("RGB")).copy()
    base[_outline(tissue, max(1, round(max(picture.size) / 512)))] = MASK_OUTLINE_COLOR
    picture = Image.fromarray(base)
    sx = picture.width / mask.level0_size[0]
    sy = picture.height / mask.level0_size[1]
    draw = ImageDraw.Draw(picture)
    for loc in locations:
        draw.rectangle(
            [loc.x0 * sx, loc.y0 * sy, (loc.x0 + loc.size0) * sx - 1, (loc.y0 + loc.size0) * sy - 1],
            outline=PATCH_BOX_COLOR,
        )
    buf = io.BytesIO()
    picture.save(buf, format="PNG", compress_level=1)
    return atomic_write_bytes(path, buf.getvalue())


def _annotation(result: Any, slide_id: str) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise TypeError(f"annotate() for slide {slide_id!r} must return a dict or None; got {type(result).__name__}")
    unknown = set(result) - {"text", "label", "meta"}
    if unknown:
        raise ValueError(f"annotate() for slide {slide_id!r} returned unknown keys {sorted(unknown)}")
    text = result.get("text")
    captions = [text] if isinstance(text, str) else text
    if text is not None and not (isinstance(captions, list) and all(isinstance(t, str) for t in captions)):
        raise TypeError(f"annotate() 'text' for slide {slide_id!r} must be a str or a list of str")
    meta = result.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise TypeError(f"annotate() 'meta' for slide {slide_id!r} must be a dict")
    return result


# --------------------------------------------------------------------------- one slide
@dataclass(frozen=True)
class _Job:
    """Everything a worker needs (picklable)."""

    paths: tuple[str, ...]
    out: str
    prefix: str
    spec: PatchSpec
    annotate: Any
    mpp_overrides: dict[str, float]
    slide_mpp: float | None
    thumbnails: bool
    max_count: int
    image_format: str
    quality: int
    backend: str
    tissue_options: dict[str, Any]
    block: int
    threads: int


def _encode_ahead(
    patches: Iterator[tuple[PatchLocation, Image.Image]], image_format: str, quality: int, threads: int
) -> Iterator[tuple[PatchLocation, bytes]]:
    """Encode patches with the shard writer's encoder on ``threads`` threads, yielding them in order.

    Pillow's encoders release the GIL, so patches are encoded while the next ones are read; at
    most ``2 * threads`` patches are in flight. The bytes are those the writer would make itself.
    """
    from domainclip.core.data.writer import IMAGE_ENCODERS

    encode = IMAGE_ENCODERS[image_format]
    if threads == 1:
        for loc, image in patches:
            yield loc, encode(image, quality)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    window: deque = deque()
    with ThreadPoolExecutor(threads, thread_name_prefix="patch-encode") as pool:
        for loc, image in patches:
            window.append((loc, pool.submit(encode, image, quality)))
            if len(window) >= 2 * threads:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()


def _patch_one(job: _Job, path: Path, writer: Any, report: Callable[[int], Any] | None) -> dict[str, Any]:
    """Patch one slide into ``writer``; returns its summary. Raises SlideError before anything is written."""
    began, cpu = time.perf_counter(), time.process_time()
    slide_id = path.stem
    mpp = job.mpp_overrides.get(slide_id, job.slide_mpp)
    with open_slide(path, mpp=mpp, backend=job.backend, decode_threads=job.threads) as slide:
        mask = detect_tissue(slide, **job.tissue_options)
        level, read_size, _, size0 = _geometry(slide, job.spec)
        locations = plan_patches(slide, mask, job.spec)
        planned = len(locations)
        setup_seconds, setup_cpu = time.perf_counter() - began, time.process_time() - cpu
        unannotated = 0
        annotations: dict[tuple[int, int], dict[str, Any]] = {}
        if job.annotate is not None:
            kept = []
            for loc in locations:
                result = job.annotate(slide_id, loc.x0, loc.y0, loc.size0)
                if result is None:
                    unannotated += 1
                    continue
                annotations[(loc.x0, loc.y0)] = _annotation(result, slide_id)
                kept.append(loc)
            locations = kept
        key_id = safe_key(slide_id)
        slide_mpp = slide.mpp
        written = pending = 0
        patches = iter_patch_arrays(slide, locations, job.spec, block=job.block)
        for loc, encoded in _encode_ahead(patches, job.image_format, job.quality, job.threads):
            meta: dict[str, Any] = {
                "slide_id": slide_id,
                "x": loc.x0,
                "y": loc.y0,
                "level": loc.level,
                "read_size": loc.read_size,
                "size0": loc.size0,
                "mpp": job.spec.mpp,
                "slide_mpp": slide_mpp,
                "tissue_fraction": loc.tissue_fraction,
                "patch_size": job.spec.size,
                "source": str(path),
            }
            sample: dict[str, Any] = {"__key__": f"{key_id}_{loc.x0}_{loc.y0}", job.image_format: encoded}
            extra = annotations.get((loc.x0, loc.y0))
            if extra is not None:
                meta.update(extra.get("meta") or {})
                if extra.get("text") is not None:
                    sample["text"] = extra["text"]
                if extra.get("label") is not None:
                    sample["label"] = extra["label"]
            sample["meta"] = meta
            writer.write(sample)
            written += 1
            pending += 1
            if report is not None and pending >= 64:
                report(pending)
                pending = 0
        if report is not None and pending:
            report(pending)
        thumbnail = None
        if job.thumbnails:
            view = slide.get_thumbnail(THUMBNAIL_SIZE) if max(mask.mask.shape) < THUMBNAIL_SIZE else None
            target = Path(job.out) / "thumbnails" / f"{key_id}.png"
            thumbnail = str(write_thumbnail(target, mask, locations, image=view, max_size=THUMBNAIL_SIZE))
        return {
            "slide_id": slide_id,
            "path": str(path),
            "backend": slide.backend,
            "vendor": slide.vendor,
            "mpp": slide_mpp,
            "mpp_source": slide.mpp_source,
            "array_backend": slide.array_backend,
            "level": level,
            "read_size": read_size,
            "size0": size0,
            "tissue_fraction": round(mask.fraction, 4),
            "patches_kept": planned,
            "unannotated": unannotated,
            "patches_written": written,
            "thumbnail": thumbnail,
            "setup_seconds": round(setup_seconds, 3),
            "seconds": round(time.perf_counter() - began, 3),
            "setup_cpu_seconds": round(setup_cpu, 3),
            "cpu_seconds": round(time.process_time() - cpu, 3),
        }


def _run_worker(
    job: _Job,
    prefix: str,
    take: Callable[[], int],
    report: Callable[[int], Any] | None,
    finished: Callable[[], Any],
) -> dict[str, Any]:
    """Patch slides taken from ``take()`` until it runs past the list; one shard writer for all of them.

    ``report(k)`` counts written patches and ``finished()`` slides, for the progress bar.
    """
    from domainclip.core.data.writer import ShardWriter, index_path

    done: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    with ShardWriter(
        job.out, prefix=prefix, max_count=job.max_count, image_format=job.image_format, quality=job.quality
    ) as writer:
        while (index := take()) < len(job.paths):
            path = Path(job.paths[index])
            before = writer.num_samples
            try:
                done.append(_patch_one(job, path, writer, report))
            except SlideError as e:  # its message names the slide
                skipped.append({"slide_id": path.stem, "path": str(path), "reason": skip_reason(e), "error": str(e)})
            except Exception as e:  # a slide failing mid-read must not stop the batch; it is counted
                skipped.append(
                    {
                        "slide_id": path.stem,
                        "path": str(path),
                        "reason": READ_ERROR,
                        "error": f"{path}: {type(e).__name__}: {e}",
                        "patches_written_before_error": writer.num_samples - before,
                    }
                )
            finished()
    return {
        "prefix": prefix,
        "slides": done,
        "skipped": skipped,
        "shards": [p.name for p in writer.written],
        "index": index_path(job.out, prefix).name,
        "num_samples": writer.num_samples,
    }


def _worker_entry(job: _Job, prefix: str) -> dict[str, Any]:
    # shared counters of run_workers: 0 slides finished (the bar), 1 patches written, 2 next slide to take
    return _run_worker(job, prefix, lambda: shared_take(2), lambda n: shared_add(1, n), lambda: shared_add(0))


# --------------------------------------------------------------------------- batch
def patch_slides(
    slide_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    spec: PatchSpec | None = None,
    *,
    workers: int = 1,
    annotate: Annotate | None = None,
    mpp_overrides: dict[str, float] | None = None,
    slide_mpp: float | None = None,
    thumbnails: bool = True,
    max_count: int = 1000,
    image_format: str = "jpg",
    quality: int = 95,
    prefix: str = "patches",
    backend: str = "auto",
    tissue: dict[str, Any] | None = None,
    block: int = 4096,
    threads: int = DEFAULT_DECODE_THREADS,
    progress: bool = True,
) -> dict[str, Any]:
    """Cut tissue patches from slides into WebDataset shards, one slide per task over worker processes.

    Args:
        slide_paths: slide files (see :func:`find_slides` to expand folders and globs).
        out_dir: output folder: shards, ``<prefix>-index.json`` per writer, ``thumbnails/``,
            ``<prefix>-summary.json``.
        spec: patch specification (default :class:`PatchSpec()`: 224 px at 0.5 mpp).
        workers: worker processes (each writes its own shards).
        annotate: per-patch hook, see :data:`Annotate`; must be picklable when ``workers > 1``.
        mpp_overrides: slide id -> mpp (e.g. from :func:`read_mpp_table`), over the slide's own;
            ids that name no slide are listed in the summary (``mpp_overrides_unused``).
        slide_mpp: mpp for every slide not in ``mpp_overrides``, over the slide's own.
        thumbnails: write ``thumbnails/<slide_id>.png`` with the mask and the kept patches.
        max_count: most samples per shard.
        image_format: ``"jpg"`` (quality ``quality``) or ``"png"``.
        quality: JPEG quality.
        prefix: shard name prefix.
        backend: slide backend (see :func:`~domainclip.domains.pathology.slides.open_slide`).
        tissue: keyword options of :func:`~domainclip.domains.pathology.tissue.detect_tissue`.
        block: strip width in level pixels of the read order (see :func:`iter_patch_arrays`).
        threads: threads per worker that decode stored tiles (see
            :class:`~domainclip.domains.pathology.slides.TiffTileReader`) and, as many again, that
            encode patches; the shards do not depend on it.
        progress: show a progress bar.

    Returns:
        Summary: ``slides`` (per slide: level, read size, patches written, ...), ``skipped`` (per
        slide: path, ``reason`` (:data:`UNREADABLE_SLIDE`, :data:`NO_MPP`, :data:`READ_ERROR`) and
        ``error``), ``skipped_by_reason``, ``num_slides_ok``, ``num_patches``, ``unannotated``,
        ``shards``, ``indexes``, ``seconds``, ``patches_per_second``; also written to
        ``<prefix>-summary.json``.

    Raises:
        InputError: no slides, two slides whose outputs would have the same name, an mpp that is
            not a positive number, or bad arguments (a ``ValueError``).
        NothingWrittenError: no slide gave a patch; the message counts the reasons, with an
            example each (the summary is written first).
    """
    from tqdm.auto import tqdm

    from domainclip.core.data.writer import IMAGE_ENCODERS, write_json_atomic

    spec = PatchSpec() if spec is None else spec
    paths = [Path(p) for p in slide_paths]
    if not paths:
        raise InputError("no slides to patch")
    if workers < 1:
        raise InputError(f"workers must be >= 1; got {workers}")
    if threads < 1:
        raise InputError(f"threads must be >= 1; got {threads}")
    if image_format not in IMAGE_ENCODERS:
        raise UnknownNameError("image format", image_format, list(IMAGE_ENCODERS))
    overrides = dict(mpp_overrides or {})
    for name, value in [("slide_mpp", slide_mpp), *((f"mpp of slide {k!r}", v) for k, v in overrides.items())]:
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a positive number of microns per pixel; got {value!r}")
    check_distinct_ids(paths, "slide", key=lambda p: safe_key(p.stem))
    workers = min(workers, len(paths))
    if annotate is not None and workers > 1:
        try:
            pickle.dumps(annotate)
        except Exception as e:  # lambdas, closures, bound methods of unpicklable objects
            raise TypeError(
                f"annotate must be picklable with workers > 1 (a module-level function or a picklable object): {e}"
            ) from e
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    job = _Job(
        paths=tuple(str(p) for p in paths),
        out=str(out),
        prefix=prefix,
        spec=spec,
        annotate=annotate,
        mpp_overrides=overrides,
        slide_mpp=slide_mpp,
        thumbnails=thumbnails,
        max_count=max_count,
        image_format=image_format,
        quality=quality,
        backend=backend,
        tissue_options=dict(tissue or {}),
        block=block,
        threads=threads,
    )
    began = time.perf_counter()
    with tqdm(total=len(paths), disable=not progress, unit="slide", desc="patching") as bar:
        if workers == 1:
            counter = iter(range(len(paths) + 1))
            written = [0]

            def report(count: int) -> None:
                written[0] += count
                bar.set_postfix(patches=written[0], refresh=False)

            results = [_run_worker(job, prefix, lambda: next(counter), report, lambda: bar.update(1))]
        else:
            prefixes = [f"{prefix}-w{k:02d}" for k in range(workers)]
            calls = [(_worker_entry, (job, p)) for p in prefixes]
            results = run_workers(calls, bar, counters=3, postfix={"patches": 1})
    seconds = time.perf_counter() - began
    order = {p: i for i, p in enumerate(job.paths)}
    slides = sorted((s for r in results for s in r["slides"]), key=lambda s: order[s["path"]])
    skipped = sorted((s for r in results for s in r["skipped"]), key=lambda s: order[s["path"]])
    num_patches = sum(r["num_samples"] for r in results)
    by_reason = Counter(s["reason"] for s in skipped)
    summary = {
        "out": str(out),
        "spec": asdict(spec),
        "workers": workers,
        "image_format": image_format,
        "num_slides": len(paths),
        "num_slides_ok": len(slides),
        "num_skipped": len(skipped),
        "skipped_by_reason": dict(sorted(by_reason.items())),
        "num_patches": num_patches,
        "unannotated": sum(s["unannotated"] for s in slides),
        "mpp_overrides_unused": sorted(set(overrides) - {p.stem for p in paths}),
        "slides": slides,
        "skipped": skipped,
        "shards": [name for r in results for name in r["shards"]],
        "indexes": [r["index"] for r in results],
        "seconds": round(seconds, 3),
        "patches_per_second": round(num_patches / seconds, 2) if seconds > 0 else None,
    }
    write_json_atomic(out / f"{prefix}-summary.json", summary)
    summary["summary"] = str(out / f"{prefix}-summary.json")
    if num_patches == 0:
        examples = {}
        for item in skipped:
            examples.setdefault(item["reason"], item["error"])
        for info in slides:  # read, but nothing kept
            reason = UNANNOTATED if info["patches_kept"] and info["unannotated"] else NO_PATCH
            by_reason[reason] += 1
            examples.setdefault(reason, _why_no_patch(info, spec, reason))
        inputs = _count(len(paths), "slide")
        raise NothingWrittenError.from_counts("pathology/patches", "patches", inputs, by_reason, examples)
    return summary


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _why_no_patch(info: Mapping[str, Any], spec: PatchSpec, reason: str) -> str:
    """An example line for a slide that was read but gave no patch."""
    if reason == UNANNOTATED:
        return f"{info['path']}: annotate() dropped all {info['unannotated']} planned patches"
    return (
        f"{info['path']}: no {spec.size}-px patch at {spec.mpp} um/px fits with a tissue fraction >= "
        f"{spec.min_tissue} (tissue covers {info['tissue_fraction']:.1%} of the slide)"
    )


# --------------------------------------------------------------------------- command
@entry_point
def prepare_patches(
    out: Path,
    slides: list[str],
    *,
    mpp_target: PositiveFloat = 0.5,
    size: PositiveInt = 224,
    overlap: NonNegativeInt = 0,
    min_tissue: UnitFloat = 0.5,
    resample: Resample = "lanczos",
    slide_mpp: PositiveFloat | None = None,
    mpp_csv: Path | None = None,
    thumbnails: bool = True,
    workers: PositiveInt = 1,
    threads: PositiveInt = DEFAULT_DECODE_THREADS,
    max_count: PositiveInt = 1000,
    image_format: PatchFormat = "jpg",
    quality: JpegQuality = 95,
    backend: str = "auto",
    prefix: str = "patches",
    progress: bool = True,
) -> dict[str, Any]:
    """Cut whole-slide images into tissue patches at a fixed mpp and size, written as shards with thumbnails.

    Args:
        out: output folder for the shards, thumbnails/ and <prefix>-summary.json.
        slides: slide files, folders (searched for slide files) or glob patterns.
        mpp_target: microns per pixel of the patches.
        size: patch side in pixels.
        overlap: pixels (at the patch resolution) shared by neighbouring patches, below ``size``.
        min_tissue: smallest tissue fraction of a kept patch.
        resample: filter that resizes reads to the patch size.
        slide_mpp: mpp of level 0 for every slide, over the slide's own (``mpp_csv`` rows win).
        mpp_csv: CSV with columns slide_id (or path) and mpp, over the slides' own.
        thumbnails: write thumbnails/<slide_id>.png with the tissue outline and the kept patches.
        workers: worker processes, each patching one slide at a time into its own shards.
        threads: threads per worker decoding stored tiles, and as many encoding patches (the output does
            not depend on it; with several workers, workers x threads near the core count is enough).
        max_count: most patches per shard.
        image_format: patch encoding.
        quality: JPEG quality.
        backend: slide backend: auto, openslide or tiffslide.
        prefix: shard name prefix.
        progress: show a progress bar.

    Returns:
        The summary of :func:`patch_slides`.
    """
    spec = PatchSpec(mpp=mpp_target, size=size, overlap=overlap, min_tissue=min_tissue, resample=resample)
    return patch_slides(
        find_slides(slides), out, spec, workers=workers, threads=threads, slide_mpp=slide_mpp, thumbnails=thumbnails,
        mpp_overrides=None if mpp_csv is None else read_mpp_table(mpp_csv), max_count=max_count,
        image_format=image_format, quality=quality, prefix=prefix, backend=backend, progress=progress,
    )
