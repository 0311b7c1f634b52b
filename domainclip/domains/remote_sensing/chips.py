"""Cut satellite and aerial scenes into georeferenced 8-bit RGB chips, written as shards with a preview per scene.

``domainclip prepare remote_sensing chips --scenes scenes/ --out chips/ --size 224 --preset sentinel2``

Each scene (a GeoTIFF, or any raster GDAL reads) is opened once. Its bands are chosen and its
stretch is computed once, from a sample of the scene (:mod:`~domainclip.domains.remote_sensing.raster`),
so that every chip of the scene is stretched alike. The chips form a grid of ``size``-pixel squares
``stride`` pixels apart, from the top-left corner, each entirely inside the scene. They are cut by
:func:`iter_chips` from reads aligned to the file's internal blocks: windows of whole block rows
across the full width, each block read and decoded once, the chips cut from memory. A chip with
more nodata than ``max_nodata`` (a fraction of its pixels) is skipped and counted.

Output, in ``out``:

* ``<scene>-000000.tar``, ... and ``<scene>-index.json`` per scene (``<scene>`` is the file name
  without its suffix, characters other than letters, digits, ``-`` and ``_`` replaced by ``_``): the
  same files for any number of workers. Each sample is ``{"__key__": "<scene>_r<row>_c<col>",
  "<png|jpg|webp>": chip, "json": meta}`` with meta ``source`` (the file), ``crs`` (WKT, ``None``
  for a file without georeferencing), ``epsg`` (when the CRS has one), ``transform`` (the chip's
  affine pixel-to-map transform, 6 numbers a, b, c, d, e, f as in rasterio's ``Affine``),
  ``bounds`` (left, bottom, right, top in the CRS), ``scene_transform``, ``bands`` (the 1-based
  band numbers shown as red, green, blue), ``stretch`` (percentiles and per-band ``low`` and
  ``high``), ``row`` and ``col`` (the chip's place in the grid), ``window`` (its pixels in the scene:
  ``col_off``, ``row_off``, ``width``, ``height``) and ``nodata_fraction``.
* ``previews/<scene>.png``: the stretched scene, at most :data:`PREVIEW_SIZE` pixels on its
  longest side, with the kept chips drawn as boxes (:data:`KEPT_COLOUR`) and the skipped ones as
  crossed boxes (:data:`SKIPPED_COLOUR`).
* ``chips-summary.json``: per scene its size, bands, stretch and counts; the scenes skipped, by
  reason: :class:`~domainclip.domains.remote_sensing.raster.RasterError` reasons (``unreadable``,
  ``bad_band``, ``all_nodata``), :data:`TOO_SMALL` and :data:`READ_ERROR` (the chips written
  before the error stay). When no scene gives a chip the command raises
  :class:`~domainclip.core.errors.NothingWrittenError`, counting those reasons and :data:`NO_CHIP`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np

from domainclip.core.errors import InputError, NothingWrittenError
from domainclip.core.io import atomic_write_bytes, find_inputs, safe_key
from domainclip.core.options import PositiveInt, Range, UnitFloat, entry_point
from domainclip.domains.remote_sensing.raster import (
    RASTER_SUFFIXES,
    BandPreset,
    RasterError,
    Stretch,
    band_masks,
    nodata_pixels,
    open_raster,
    scene_stretch,
    select_bands,
)

if TYPE_CHECKING:
    from rasterio.io import DatasetReader
    from rasterio.windows import Window

__all__ = [
    "KEPT_COLOUR",
    "NO_CHIP",
    "PREVIEW_SIZE",
    "READ_ERROR",
    "SKIPPED_COLOUR",
    "TOO_SMALL",
    "Chip",
    "ChipFormat",
    "ScenePreview",
    "SceneTooSmallError",
    "chip_grid",
    "iter_chips",
    "prepare_chips",
    "scene_key",
]

#: How chips are encoded.
ChipFormat = Literal["png", "jpg", "webp"]
#: Longest side of the preview PNGs.
PREVIEW_SIZE = 1024
#: Outline of a kept chip in the previews (yellow: apart from water, vegetation, soil and cloud).
KEPT_COLOUR = (255, 210, 0)
#: Outline and cross of a chip skipped for its nodata.
SKIPPED_COLOUR = (235, 40, 40)
#: Skip reasons of a scene besides :class:`RasterError`'s: smaller than one chip; failed while
#: being read (a damaged block).
TOO_SMALL, READ_ERROR = "too_small", "read_error"
#: Why a scene that was read gave no chip: every chip had more nodata than allowed.
NO_CHIP = "no_chip"


class SceneTooSmallError(RasterError):
    """A scene smaller than one chip."""

    reason = TOO_SMALL


def scene_key(path: Path) -> str:
    """The name of a scene's outputs: its file stem made safe (:func:`~domainclip.core.io.safe_key`)."""
    return safe_key(path.stem)


# --------------------------------------------------------------------------- the grid and the reads
def chip_grid(height: int, width: int, size: int, stride: int) -> tuple[range, range]:
    """The top rows and left columns of the chips of a ``height`` x ``width`` scene (each entirely inside it)."""
    return range(0, height - size + 1, stride), range(0, width - size + 1, stride)


@dataclass(frozen=True)
class Chip:
    """One chip of a scene's grid.

    Args:
        row: its row in the grid (0 at the top).
        col: its column in the grid.
        window: its pixels in the scene.
        nodata_fraction: the fraction of its pixels where no band holds data.
        image: the ``(size, size, 3)`` uint8 chip; ``None`` when it was skipped for its nodata.
    """

    row: int
    col: int
    window: Window
    nodata_fraction: float
    image: np.ndarray | None


def _row_reads(height: int, block_height: int, tops: range, size: int, every_row: bool) -> list[tuple[int, int]]:
    """The ``(start, stop)`` rows of the reads that cover the chip rows at ``tops``, in order, block-aligned.

    Each read starts where the previous one stopped (or, skipping rows no chip covers, at the block
    holding the next chip row's top) and stops at the first block boundary at or below the bottom
    of the chip row it is for; with ``every_row`` no row is skipped and a last read covers the rows
    below the last chip row.
    """
    reads, end = [], 0
    for y in tops:
        if end < y + size:
            start = end if every_row else max(end, y // block_height * block_height)
            end = min(height, -(-(y + size) // block_height) * block_height)
            reads.append((start, end))
    if every_row and end < height:
        reads.append((end, height))
    return reads


def _read_ahead(read: Callable[[int, int], Any], spans: Sequence[tuple[int, int]]) -> Iterator[Any]:
    """``read(*span)`` for each span in order, the next one running in a thread while the caller uses this one.

    GDAL decodes without Python's lock, so the next block rows are read while the chips of this
    one are cut, encoded and written.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="domainclip-raster-read") as pool:
        pending = None
        for span in spans:
            following = pool.submit(read, *span)
            if pending is not None:
                yield pending.result()
            pending = following
        if pending is not None:
            yield pending.result()


def iter_chips(
    dataset: DatasetReader,
    bands: Sequence[int],
    stretch: Stretch,
    size: int,
    stride: int,
    *,
    max_nodata: float = 1.0,
    on_rows: Callable[[int, np.ndarray], Any] | None = None,
) -> Iterator[Chip]:
    """Cut a scene's chips row by row from reads aligned to the file's blocks.

    Each read is a window across the full width from one block-row boundary to another (tiles
    or strips), so every stored block is read and decoded once, in one request with its
    neighbours (which GDAL can decode in parallel: :func:`open_raster`'s ``threads``). Its rows
    are stretched once and kept while chip rows still need them (a ``stride`` below ``size``
    shares rows between chip rows); the chips are cut from memory. The next read runs in a
    background thread while the chips of the current one are used. Memory holds about
    ``width x (size + 2 block heights)`` pixels. The pixels are those of one read of each chip's
    window, stretched by ``stretch``.

    The dataset must not be used by the caller while the iterator runs (one thread reads it).

    Args:
        dataset: the open scene.
        bands: its (red, green, blue) band numbers.
        stretch: the scene's stretch.
        size: chip side in pixels.
        stride: pixels between the tops (and lefts) of neighbouring chips.
        max_nodata: chips with a larger nodata fraction are yielded without an image.
        on_rows: called as ``on_rows(top, rgb)`` with each stretched read (the preview); then every
            row of the scene is read, also those no chip covers.

    Yields:
        The chips in row-major order.
    """
    from rasterio.windows import Window

    height, width = dataset.height, dataset.width
    tops, lefts = chip_grid(height, width, size, stride)

    def read(start: int, stop: int) -> tuple[int, np.ndarray, np.ndarray]:
        window = Window(0, start, width, stop - start)
        data = dataset.read(list(bands), window=window)
        valid = band_masks(dataset, bands, data, window=window)
        rgb = stretch.apply(data, valid)
        if on_rows is not None:
            on_rows(start, rgb)
        return start, rgb, nodata_pixels(valid, data.shape[1:])

    spans = _row_reads(height, dataset.block_shapes[bands[0] - 1][0], tops, size, on_rows is not None)
    reads = _read_ahead(read, spans)
    top, image, nodata = 0, np.zeros((0, width, 3), np.uint8), np.zeros((0, width), bool)  # rows top.. in memory
    try:
        for row, y in enumerate(tops):
            while top + len(image) < y + size:
                start, rgb, gaps = next(reads)
                if start > top + len(image):  # rows no chip covers were not read
                    top, image, nodata = start, image[:0], nodata[:0]
                image, nodata = np.concatenate([image, rgb]), np.concatenate([nodata, gaps])
            image, nodata, top = image[y - top :], nodata[y - top :], y
            for col, x in enumerate(lefts):
                fraction = float(nodata[:size, x : x + size].mean())
                chip = np.ascontiguousarray(image[:size, x : x + size]) if fraction <= max_nodata else None
                yield Chip(row, col, Window(x, y, size, size), fraction, chip)
        for _ in reads:  # the rows below the last chip row (for on_rows)
            pass
    finally:  # a consumer that stops early: the read in flight ends before the caller may close the dataset
        reads.close()


# --------------------------------------------------------------------------- previews
class ScenePreview:
    """The stretched scene, decimated to at most ``max_size`` pixels on its longest side, built from the reads.

    Args:
        height: scene height in pixels.
        width: scene width in pixels.
        max_size: longest side of the preview.
    """

    def __init__(self, height: int, width: int, max_size: int = PREVIEW_SIZE) -> None:
        self.step = max(1, math.ceil(max(height, width) / max_size))
        self.image = np.zeros((-(-height // self.step), -(-width // self.step), 3), np.uint8)

    def add(self, top: int, rgb: np.ndarray) -> None:
        """Take every ``step``-th row and column of the stretched rows ``top, top + 1, ...``."""
        first = -top % self.step
        rows = rgb[first :: self.step, :: self.step]
        start = (top + first) // self.step
        self.image[start : start + len(rows)] = rows

    def write(self, path: str | os.PathLike, kept: Sequence[Window], skipped: Sequence[Window]) -> Path:
        """Write the preview PNG with the kept chips as boxes and the skipped ones as crossed boxes (atomically)."""
        from PIL import Image, ImageDraw

        picture = Image.fromarray(self.image)
        draw = ImageDraw.Draw(picture)
        for windows, colour in ((skipped, SKIPPED_COLOUR), (kept, KEPT_COLOUR)):
            for w in windows:
                x0, y0 = w.col_off / self.step, w.row_off / self.step
                x1, y1 = (w.col_off + w.width) / self.step - 1, (w.row_off + w.height) / self.step - 1
                draw.rectangle([x0, y0, x1, y1], outline=colour)
                if colour == SKIPPED_COLOUR:
                    draw.line([x0, y0, x1, y1], fill=colour)
                    draw.line([x0, y1, x1, y0], fill=colour)
        buf = io.BytesIO()
        picture.save(buf, format="PNG", compress_level=1)
        return atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- one scene
@dataclass(frozen=True)
class _Job:
    """What every scene is cut with (picklable, for worker processes)."""

    out: str
    size: int
    stride: int
    bands: tuple[int, ...] | None
    preset: str | None
    stretch: tuple[float, float]
    max_nodata: float
    image_format: str
    max_count: int
    previews: bool
    threads: int


def _chip_scene(job: _Job, path: Path) -> dict[str, Any]:
    """Cut one scene into its own shards; its summary, or why it was skipped (with the chips written before)."""
    from rasterio.errors import RasterioError

    began = time.perf_counter()
    key = scene_key(path)
    written = [0]
    try:
        with open_raster(path, threads=job.threads) as dataset:
            return {**_cut(job, path, key, dataset, written), "seconds": round(time.perf_counter() - began, 3)}
    except RasterError as e:  # its message names the file
        return {"path": str(path), "key": key, "reason": e.reason, "error": str(e)}
    except RasterioError as e:  # a block that cannot be decoded, part way through the scene
        detail = " ".join(str(e.__cause__ or e).split())  # GDAL's own message ("IReadBlock failed at ...")
        return {"path": str(path), "key": key, "reason": READ_ERROR, "error": f"{path}: {detail}",
                "chips_written_before_error": written[0]}


def _cut(job: _Job, path: Path, key: str, dataset: DatasetReader, written: list[int]) -> dict[str, Any]:
    """Cut an open scene; ``written[0]`` counts the chips written so far."""
    from rasterio.windows import bounds
    from rasterio.windows import transform as window_transform

    from domainclip.core.data.writer import FIXED_MTIME, ShardWriter

    bands = select_bands(path, dataset.count, job.bands, job.preset)
    if dataset.height < job.size or dataset.width < job.size:
        raise SceneTooSmallError(
            f"{path} is {dataset.width}x{dataset.height} pixels, smaller than one {job.size}-pixel chip"
        )
    stretch = scene_stretch(dataset, bands, job.stretch)
    crs, transform = dataset.crs, dataset.transform  # read here: a thread reads the dataset while chips are cut
    scene = {"source": str(path), "crs": None if crs is None else crs.to_wkt(), "epsg": None if crs is None else
             crs.to_epsg(), "scene_transform": list(transform)[:6], "bands": list(bands), "stretch": stretch.as_meta()}
    info = {"width": dataset.width, "height": dataset.height, "band_count": dataset.count, "dtype": dataset.dtypes[0]}
    preview = ScenePreview(dataset.height, dataset.width) if job.previews else None
    kept: list[Window] = []
    skipped: list[Window] = []
    with contextlib.ExitStack() as stack:
        writer = None
        for chip in iter_chips(dataset, bands, stretch, job.size, job.stride, max_nodata=job.max_nodata,
                               on_rows=None if preview is None else preview.add):
            if chip.image is None:
                skipped.append(chip.window)
                continue
            if writer is None:  # opened on the first kept chip: a scene without one writes no index
                writer = stack.enter_context(ShardWriter(job.out, prefix=key, max_count=job.max_count,
                                                         image_format=job.image_format, mtime=FIXED_MTIME))
            window = chip.window
            meta = {**scene, "transform": list(window_transform(window, transform))[:6],
                    "bounds": list(bounds(window, transform)), "row": chip.row, "col": chip.col,
                    "window": {"col_off": window.col_off, "row_off": window.row_off, "width": window.width,
                               "height": window.height},
                    "nodata_fraction": round(chip.nodata_fraction, 6)}
            writer.write({"__key__": f"{key}_r{chip.row:04d}_c{chip.col:04d}", "image": chip.image, "meta": meta})
            kept.append(window)
            written[0] += 1
    target = None
    if preview is not None:
        target = str(preview.write(Path(job.out) / "previews" / f"{key}.png", kept, skipped))
    return {"path": str(path), "key": key, **info, "epsg": scene["epsg"], "bands": list(bands),
            "stretch": stretch.as_meta(), "chips_kept": len(kept), "chips_nodata": len(skipped),
            "shards": [] if writer is None else [p.name for p in writer.written], "preview": target}


# --------------------------------------------------------------------------- command
@entry_point
def prepare_chips(
    out: Path,
    scenes: list[str],
    *,
    size: PositiveInt = 224,
    stride: PositiveInt | None = None,
    bands: list[PositiveInt] | None = None,
    preset: BandPreset | None = None,
    stretch: Annotated[tuple[float, float], Range(0, 100)] = (2.0, 98.0),
    max_nodata: UnitFloat = 0.0,
    image_format: ChipFormat = "png",
    max_count: PositiveInt = 1000,
    workers: PositiveInt = 1,
    previews: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Cut GeoTIFF scenes (any GDAL raster) into georeferenced 8-bit RGB chips, written as shards with previews.

    Args:
        out: output folder for the shards, previews/ and chips-summary.json.
        scenes: scene files, folders (searched for .tif, .tiff, .vrt, .img, .jp2) or glob patterns.
        size: chip side in pixels.
        stride: pixels between neighbouring chips (default: ``size``, no overlap).
        bands: 1-based band numbers shown as red, green, blue (or one band as grey); default 1 2 3.
        preset: the sensor's true-colour bands instead of ``bands``: sentinel2 (4 3 2), landsat8 and
            landsat9 (4 3 2), landsat7 and landsat5 (3 2 1), rgb (1 2 3).
        stretch: the lower and upper percentile of each band (over the whole scene) mapped to 0 and 255.
        max_nodata: largest fraction of nodata pixels in a kept chip.
        image_format: chip encoding.
        max_count: most chips per shard.
        workers: worker processes, each cutting one scene at a time (the CPUs are shared out among them as
            threads that decode compressed blocks).
        previews: write previews/<scene>.png with the kept and skipped chips drawn on the scene.
        progress: show a progress bar.

    Returns:
        The summary (also written to chips-summary.json): per scene its size, bands, stretch, chips kept
        and skipped for nodata, shards and preview; the scenes skipped, with reason and error.

    Raises:
        InputError: bands and a preset, percentiles out of order, no scene files.
        NothingWrittenError: no scene gave a chip; the message counts the reasons, with an example each.
    """
    from tqdm.auto import tqdm

    from domainclip.core.data.writer import write_json_atomic
    from domainclip.core.parallel import map_unordered

    if not stretch[0] < stretch[1]:
        raise InputError(f"stretch: the lower percentile must be below the upper one; got {list(stretch)}")
    if bands is not None and preset is not None:
        raise InputError("give band numbers (--bands) or a band preset (--preset), not both")
    job = _Job(out=os.fspath(out), size=size, stride=stride or size, bands=None if bands is None else tuple(bands),
               preset=preset, stretch=(float(stretch[0]), float(stretch[1])), max_nodata=max_nodata,
               image_format=image_format, max_count=max_count, previews=previews,
               threads=max(1, (os.cpu_count() or 1) // workers))
    paths = find_inputs(scenes, RASTER_SUFFIXES, what="scene", key=scene_key)
    Path(out).mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    results: list[dict[str, Any]] = [{}] * len(paths)
    with tqdm(total=len(paths), disable=not progress, unit="scene", desc="chips") as bar:
        for index, result in map_unordered(functools.partial(_chip_scene, job), paths, workers):
            results[index] = result
            bar.update(1)
            bar.set_postfix(chips=sum(r.get("chips_kept", 0) for r in results), refresh=False)
    seconds = time.perf_counter() - began
    done = [r for r in results if "reason" not in r]
    skipped = [r for r in results if "reason" in r]
    num_chips = sum(r["chips_kept"] for r in done)
    by_reason = Counter(r["reason"] for r in skipped)
    summary = {
        "out": str(out), **{k: v for k, v in asdict(job).items() if k != "out"}, "num_scenes": len(paths),
        "num_scenes_ok": len(done), "num_skipped": len(skipped), "skipped_by_reason": dict(sorted(by_reason.items())),
        "num_chips": num_chips, "chips_skipped_nodata": sum(r["chips_nodata"] for r in done),
        "scenes": done, "skipped": skipped, "shards": [name for r in done for name in r["shards"]],
        "seconds": round(seconds, 3), "chips_per_second": round(num_chips / seconds, 2) if seconds > 0 else None,
    }
    write_json_atomic(Path(out) / "chips-summary.json", summary)
    if num_chips == 0:
        examples = {r["reason"]: r["error"] for r in reversed(skipped)}
        for r in done:
            by_reason[NO_CHIP] += 1
            examples.setdefault(NO_CHIP, f"{r['path']}: all {r['chips_nodata']} chips have more than "
                                         f"{max_nodata:.0%} nodata")
        inputs = f"{len(paths)} scene{'s' if len(paths) != 1 else ''}"
        raise NothingWrittenError.from_counts("remote_sensing/chips", "chips", inputs, by_reason, examples)
    return summary
