"""Open whole-slide images through a small backend registry (OpenSlide, tiffslide) with one API.

:func:`open_slide` returns a :class:`Slide`: level geometry, the microns per pixel (mpp) of level 0,
the objective power, the vendor, and reads of regions and thumbnails as RGB PIL images (transparent
or out-of-slide pixels composited on white). Backends:

* ``"openslide"``: openslide-python with the openslide-bin library (Aperio, Hamamatsu, Leica,
  MIRAX, Philips, Sakura, Ventana, Zeiss, DICOM, generic tiled TIFF);
* ``"tiffslide"``: pure-Python TIFF reader (tifffile + imagecodecs); the fallback for TIFF-based
  files that OpenSlide cannot open;
* ``"auto"`` (default) tries them in :data:`AUTO_ORDER` and keeps the first that opens the file.

:meth:`Slide.read_array` is the bulk read used for patching: for Aperio and generic TIFF files it
decodes the stored tiles directly (:class:`TiffTileReader`, with a decoded-tile cache), which gives
OpenSlide's pixels at a third of its cost per patch.

Physical resolution matters for patching at a fixed mpp, so a slide without an mpp in its metadata
raises :class:`MissingMppError` unless the user gives one (``mpp=``, ``--slide-mpp``, or an mpp
CSV read by :func:`read_mpp_table`) or passes ``require_mpp=False``.
"""

from __future__ import annotations

import csv
import math
import os
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from PIL import Image

from domainclip.core.errors import DomainClipError, InputError, InputNotFoundError
from domainclip.core.plugins import UnknownNameError, require

__all__ = [
    "ARRAY_READER_COMPRESSIONS",
    "ARRAY_READER_VENDORS",
    "AUTO_ORDER",
    "DEFAULT_DECODE_THREADS",
    "BACKENDS",
    "MissingMppError",
    "Slide",
    "SlideBackend",
    "SlideError",
    "SlideOpenError",
    "TiffTileReader",
    "open_slide",
    "read_mpp_table",
    "register_backend",
]

#: OpenSlide vendors whose files tifffile decodes to the same pixels (checked by the tests), and the
#: TIFF compressions for which that holds (none, LZW, JPEG, deflate, and Aperio's JPEG 2000 with RGB
#: codestreams, 33005, decoded by OpenJPEG on both sides): :meth:`Slide.read_array` reads those with
#: :class:`TiffTileReader`, several times faster than OpenSlide for large regions. Aperio's YCbCr JPEG
#: 2000 (33003) is left to OpenSlide, which converts the colours itself.
ARRAY_READER_VENDORS: tuple[str, ...] = ("aperio", "generic-tiff")
ARRAY_READER_COMPRESSIONS: tuple[int, ...] = (1, 5, 7, 8, 32946, 33005)
#: Threads that decode tiles in :class:`TiffTileReader` by default (the codecs release the GIL).
DEFAULT_DECODE_THREADS: int = min(4, os.cpu_count() or 1)
#: Most tiles :meth:`TiffTileReader.prefetch` keeps in flight before taking finished ones into the cache.
_MAX_PENDING = 256


# --------------------------------------------------------------------------- errors
class SlideError(DomainClipError):
    """Base class of the errors raised for a slide file that cannot be used."""


class SlideOpenError(SlideError):
    """A file could not be opened as a slide.

    Args:
        path: the file.
        reason: what is wrong (each backend's error, when several were tried).
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot open slide {self.path}: {reason}")


class MissingMppError(SlideError):
    """A slide has no microns-per-pixel in its metadata and none was given.

    Args:
        path: the slide file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        super().__init__(
            f"slide {self.path} has no microns-per-pixel (mpp) in its metadata; give it with --slide-mpp "
            f"(one value for all slides) or an --mpp-csv file with columns slide_id,mpp "
            f"(slide_id = {self.path.stem!r}), or mpp= in Python"
        )


# --------------------------------------------------------------------------- backends
@dataclass(frozen=True)
class SlideBackend:
    """A way to open slide files.

    Args:
        name: registry name.
        open: ``path -> handle``; the handle has OpenSlide's reading API (``level_count``,
            ``level_dimensions``, ``level_downsamples``, ``properties``, ``close()``).
        describe: ``handle -> {"vendor", "mpp_x", "mpp_y", "objective_power"}`` (values or ``None``).
        read: ``(handle, location_level0, level, size) -> (H, W, 3) uint8 RGB array`` on white.
    """

    name: str
    open: Callable[[Path], Any]
    describe: Callable[[Any], dict[str, Any]]
    read: Callable[[Any, tuple[int, int], int, tuple[int, int]], np.ndarray]


def _float_or_none(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _on_white(array: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from a grey, RGB or RGBA array, transparent pixels composited on white."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.shape[2] == 4:
        alpha = array[..., 3]
        if alpha.min(initial=255) == 255:
            return np.ascontiguousarray(array[..., :3])
        weight = alpha[..., None].astype(np.float32) / 255.0
        return np.round(array[..., :3] * weight + 255.0 * (1.0 - weight)).astype(np.uint8)
    return array[..., :3]


def _open_openslide(path: Path) -> Any:
    openslide = require("openslide", "pathology", "reading whole-slide images")
    return openslide.OpenSlide(str(path))


def _describe_openslide(handle: Any) -> dict[str, Any]:
    props = handle.properties
    return {
        "vendor": props.get("openslide.vendor"),
        "mpp_x": _float_or_none(props.get("openslide.mpp-x")),
        "mpp_y": _float_or_none(props.get("openslide.mpp-y")),
        "objective_power": _float_or_none(props.get("openslide.objective-power")),
    }


def _read_openslide(handle: Any, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
    # OpenSlide returns non-premultiplied RGBA; pixels outside the slide are transparent
    return _on_white(np.asarray(handle.read_region(location, level, size)))


def _open_tiffslide(path: Path) -> Any:
    tiffslide = require("tiffslide", "pathology", "reading TIFF-based whole-slide images")
    return tiffslide.TiffSlide(str(path))


def _describe_tiffslide(handle: Any) -> dict[str, Any]:
    props = handle.properties
    return {
        # tiffslide names no vendor for plain tiled TIFF files; OpenSlide calls them generic-tiff
        "vendor": props.get("tiffslide.vendor") or "generic-tiff",
        "mpp_x": _float_or_none(props.get("tiffslide.mpp-x")),
        "mpp_y": _float_or_none(props.get("tiffslide.mpp-y")),
        "objective_power": _float_or_none(props.get("tiffslide.objective-power")),
    }


def _read_tiffslide(handle: Any, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
    """Read through tiffslide with OpenSlide's semantics: pixels outside the level are white, not black."""
    width, height = size
    downsample = handle.level_downsamples[level]
    level_w, level_h = handle.level_dimensions[level]
    x, y = int(location[0] / downsample), int(location[1] / downsample)
    array = _on_white(handle.read_region(location, level, size, as_array=True, padding=False))
    if 0 <= x and 0 <= y and x + width <= level_w and y + height <= level_h:
        return array
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    x0, y0 = max(0, -x), max(0, -y)
    canvas[y0 : y0 + array.shape[0], x0 : x0 + array.shape[1]] = array
    return canvas


#: Backend name -> :class:`SlideBackend`.
BACKENDS: dict[str, SlideBackend] = {
    "openslide": SlideBackend("openslide", _open_openslide, _describe_openslide, _read_openslide),
    "tiffslide": SlideBackend("tiffslide", _open_tiffslide, _describe_tiffslide, _read_tiffslide),
}
#: Backends tried, in order, by ``backend="auto"``.
AUTO_ORDER: list[str] = ["openslide", "tiffslide"]


def register_backend(backend: SlideBackend, *, auto: bool = False) -> SlideBackend:
    """Add a backend to :data:`BACKENDS` (and to the end of :data:`AUTO_ORDER` when ``auto``)."""
    BACKENDS[backend.name] = backend
    if auto and backend.name not in AUTO_ORDER:
        AUTO_ORDER.append(backend.name)
    return backend


# --------------------------------------------------------------------------- direct tile reads
class TiffTileReader:
    """Read regions of a tiled pyramidal TIFF by decoding its tiles with tifffile, nothing in between.

    The fast path of :meth:`Slide.read_array` for Aperio and generic TIFF slides: it reads the
    byte ranges of the tiles a region touches (:meth:`tifffile.FileHandle.read_segments`), decodes
    each with the page's own decoder (:attr:`tifffile.TiffPage.decode`: libjpeg-turbo through
    imagecodecs for JPEG, OpenJPEG for JPEG 2000) and pastes it into the output. Decoded tiles are
    kept in a least-recently-used cache of ``cache_bytes``, so patches read in row order decode each
    tile once. A patch read costs about half of what it costs through tiffslide's zarr store and a
    third of an OpenSlide ``read_region``.

    Tiles are decoded on a pool of ``threads`` threads (the codecs release the GIL): the missing
    tiles of one read are decoded together, and :meth:`prefetch` starts decoding the tiles of a
    region that will be read next while the caller works on the current one (what
    :func:`~domainclip.domains.pathology.patching.iter_patch_arrays` does, a row of patches ahead).
    The file is read only by the calling thread; the pixels do not depend on ``threads``.

    Args:
        path: the slide file.
        level_dimensions: ``(width, height)`` of each level as OpenSlide reports them; the file's
            levels must match.
        cache_bytes: most bytes of decoded tiles kept (OpenSlide's default cache is 32 MiB too);
            tiles being prefetched count once they are taken into the cache.
        threads: decoding threads; 1 decodes in the calling thread, with no prefetching.

    Raises:
        ValueError: the file's levels do not match, a level is not tiled, uint8, chunky RGB(A)
            with a compression of :data:`ARRAY_READER_COMPRESSIONS`, or ``threads < 1``.
    """

    def __init__(
        self,
        path: Path,
        level_dimensions: tuple[tuple[int, int], ...],
        cache_bytes: int = 32 << 20,
        threads: int = DEFAULT_DECODE_THREADS,
    ):
        tifffile = require("tifffile", "pathology", "reading TIFF slides")
        if threads < 1:
            raise ValueError(f"threads must be >= 1; got {threads}")
        self._cache: OrderedDict[tuple[int, int], np.ndarray | None] = OrderedDict()
        self._pending: dict[tuple[int, int], Future] = {}
        self._cache_bytes = cache_bytes
        self._cached = 0
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._file = tifffile.TiffFile(str(path))
        try:
            pages = [series.pages[0] for series in self._file.series[0].levels]
            dims = tuple((int(page.imagewidth), int(page.imagelength)) for page in pages)
            if dims != tuple(level_dimensions):
                raise ValueError(f"levels {dims} differ from {level_dimensions}")
            for page in pages:
                if not (
                    isinstance(page, tifffile.TiffPage)
                    and page.is_tiled
                    and int(page.compression) in ARRAY_READER_COMPRESSIONS
                    and page.dtype == np.uint8
                    and page.samplesperpixel in (3, 4)
                    and int(page.planarconfig) == 1
                    and page.imagedepth == 1
                ):
                    raise ValueError(f"page {page.index} is not a tiled chunky uint8 RGB(A) page")
        except BaseException:
            self._file.close()
            raise
        self._pages = pages

    @property
    def threads(self) -> int:
        """Decoding threads."""
        return self._threads

    def close(self) -> None:
        """Wait for the decodes in flight, stop the threads, close the file and drop the cache."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()
        self._file.close()
        self._cache.clear()
        self._cached = 0

    def _indices(self, level: int, x0: int, y0: int, x1: int, y1: int) -> list[int]:
        """Indices of the tiles of ``level`` that the level-pixel box ``[x0, x1) x [y0, y1)`` touches."""
        page = self._pages[level]
        tile_w, tile_h = int(page.tilewidth), int(page.tilelength)
        across = -(-int(page.imagewidth) // tile_w)
        return [
            row * across + col
            for row in range(y0 // tile_h, (y1 - 1) // tile_h + 1)
            for col in range(x0 // tile_w, (x1 - 1) // tile_w + 1)
        ]

    def _decoder(self, level: int) -> Callable[[bytes | None, int], np.ndarray | None]:
        """``(data, index) -> tile (h, w, samples)`` or ``None`` for an empty tile, for ``level``."""
        page = self._pages[level]
        options: dict[str, Any] = {}
        if int(page.compression) == 7:
            options = {"jpegtables": page.jpegtables, "jpegheader": page.jpegheader}
        decode = page.decode

        def one(data: bytes | None, index: int) -> np.ndarray | None:
            tile = decode(data, index, **options)[0]
            return None if tile is None else tile[0]

        return one

    def _read(self, level: int, indices: list[int]) -> list[tuple[bytes | None, int]]:
        """The stored bytes of ``indices`` of ``level``, in file order (read by the calling thread)."""
        page = self._pages[level]
        offsets, counts = page.dataoffsets, page.databytecounts
        return list(
            self._file.filehandle.read_segments(
                [offsets[i] for i in indices], [counts[i] for i in indices], indices, sort=True
            )
        )

    def _submit(self, level: int, indices: list[int]) -> None:
        """Start decoding ``indices`` of ``level`` on the pool (they become pending)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="tile-decode")
        decode = self._decoder(level)
        for data, index in self._read(level, indices):
            self._pending[(level, index)] = self._pool.submit(decode, data, index)

    def prefetch(self, level: int, box: tuple[int, int, int, int]) -> None:
        """Start decoding, in the background, the tiles of the level-pixel box ``(x0, y0, x1, y1)``.

        Tiles already cached or pending are skipped; does nothing with ``threads == 1``.

        Args:
            level: pyramid level.
            box: left, top, right, bottom (exclusive) in pixels of ``level``, clipped to the level.
        """
        if self._threads == 1:
            return
        page = self._pages[level]
        x0, y0 = max(box[0], 0), max(box[1], 0)
        x1, y1 = min(box[2], int(page.imagewidth)), min(box[3], int(page.imagelength))
        if x1 <= x0 or y1 <= y0:
            return
        missing = [
            i
            for i in self._indices(level, x0, y0, x1, y1)
            if (level, i) not in self._cache and (level, i) not in self._pending
        ]
        while len(self._pending) > _MAX_PENDING:  # prefetched but never read: into the (bounded) cache
            key = next(iter(self._pending))
            self._keep(key, self._pending.pop(key).result())
        if missing:
            self._submit(level, missing)

    def _keep(self, key: tuple[int, int], tile: np.ndarray | None) -> None:
        self._cache[key] = tile
        self._cached += 0 if tile is None else tile.nbytes

    def _tiles(self, level: int, indices: list[int]) -> dict[int, np.ndarray | None]:
        """Decoded tiles ``index -> (h, w, samples)`` of ``level`` (``None`` for empty tiles), through the cache."""
        found: dict[int, np.ndarray | None] = {}
        missing = []
        for index in indices:
            key = (level, index)
            if key in self._cache:
                self._cache.move_to_end(key)
                found[index] = self._cache[key]
            elif key not in self._pending:
                missing.append(index)
        if missing:
            if self._threads > 1 and len(missing) > 1:
                self._submit(level, missing)
            else:
                decode = self._decoder(level)
                for data, index in self._read(level, missing):
                    found[index] = decode(data, index)
                    self._keep((level, index), found[index])
        for index in indices:
            future = self._pending.pop((level, index), None)
            if future is not None:
                found[index] = future.result()
                self._keep((level, index), found[index])
        while self._cached > self._cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached -= 0 if old is None else old.nbytes
        return found

    def read(self, location: tuple[int, int], level: int, size: tuple[int, int], downsample: float) -> np.ndarray:
        """Region of ``level`` at level-0 ``location`` (``int(location / downsample)`` in level pixels), white outside.

        Returns:
            ``(height, width, 3)`` uint8 RGB array.
        """
        page = self._pages[level]
        width, height = size
        x, y = int(location[0] / downsample), int(location[1] / downsample)
        level_w, level_h = int(page.imagewidth), int(page.imagelength)
        out = np.full((height, width, 3), 255, dtype=np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, level_w), min(y + height, level_h)
        if x1 <= x0 or y1 <= y0:
            return out
        tile_w, tile_h = int(page.tilewidth), int(page.tilelength)
        across = -(-level_w // tile_w)
        for index, tile in self._tiles(level, self._indices(level, x0, y0, x1, y1)).items():
            if tile is None:  # an empty tile: background
                continue
            top, left = (index // across) * tile_h, (index % across) * tile_w
            ty0, tx0 = max(y0, top), max(x0, left)
            ty1, tx1 = min(y1, top + tile.shape[0]), min(x1, left + tile.shape[1])
            if ty1 <= ty0 or tx1 <= tx0:
                continue
            piece = tile[ty0 - top : ty1 - top, tx0 - left : tx1 - left]
            out[ty0 - y : ty1 - y, tx0 - x : tx1 - x] = _on_white(piece)
        return out


# --------------------------------------------------------------------------- slide
def _tile_size(properties: dict[str, Any], prefix: str, level: int) -> tuple[int, int] | None:
    width = _float_or_none(properties.get(f"{prefix}.level[{level}].tile-width"))
    height = _float_or_none(properties.get(f"{prefix}.level[{level}].tile-height"))
    return (int(width), int(height)) if width and height else None


class Slide:
    """An open whole-slide image. Use as a context manager, or call :meth:`close`.

    Attributes:
        path: the slide file.
        slide_id: the file name without its last suffix (``TCGA-...-DX1.<uuid>`` for TCGA files).
        backend: name of the backend that opened it.
        vendor: format vendor (``"aperio"``, ``"generic-tiff"``, ...), or ``None``.
        level_count: number of pyramid levels.
        level_dimensions: ``(width, height)`` of each level.
        level_downsamples: downsample factor of each level relative to level 0.
        mpp: microns per pixel of level 0 (the user's value when given), or ``None`` when unknown
            (only with ``require_mpp=False``).
        mpp_source: ``"user"``, ``"slide"`` or ``None``.
        objective_power: scanning objective magnification, or ``None``.
        properties: the backend's metadata, as a plain dict.
        level_tile_sizes: ``(width, height)`` of the stored tiles of each level, ``None`` when unknown.
        array_backend: what :meth:`read_array` reads with: ``"tifffile"`` (:class:`TiffTileReader`) for
            OpenSlide-opened Aperio and generic TIFF files with the same geometry, else :attr:`backend`.
    """

    def __init__(
        self,
        path: Path,
        backend: SlideBackend,
        handle: Any,
        mpp: float | None,
        require_mpp: bool,
        fast_arrays: bool = True,
        decode_threads: int = DEFAULT_DECODE_THREADS,
    ):
        self.path = path
        self.slide_id = path.stem
        self.backend = backend.name
        self._backend = backend
        self._handle = handle
        described = backend.describe(handle)
        self.vendor: str | None = described["vendor"]
        self.level_count: int = int(handle.level_count)
        self.level_dimensions: tuple[tuple[int, int], ...] = tuple(
            (int(w), int(h)) for w, h in handle.level_dimensions
        )
        self.level_downsamples: tuple[float, ...] = tuple(float(d) for d in handle.level_downsamples)
        self.objective_power: float | None = described["objective_power"]
        self.properties: dict[str, Any] = dict(handle.properties)
        self.level_tile_sizes: tuple[tuple[int, int] | None, ...] = tuple(
            _tile_size(self.properties, backend.name, level) for level in range(self.level_count)
        )
        if mpp is not None:
            self.mpp: float | None = float(mpp)
            self.mpp_source: str | None = "user"
        else:
            values = [v for v in (described["mpp_x"], described["mpp_y"]) if v is not None]
            self.mpp = sum(values) / len(values) if values else None
            self.mpp_source = "slide" if values else None
        self._array_handle: Any = None
        self._array_reader = backend.read
        self.array_backend = backend.name
        if self.mpp is None and require_mpp:
            self.close()
            raise MissingMppError(path)
        if fast_arrays and backend.name == "openslide" and self.vendor in ARRAY_READER_VENDORS:
            self._open_array_reader(decode_threads)

    def _open_array_reader(self, threads: int) -> None:
        """Use :class:`TiffTileReader` for :meth:`read_array` where it sees the same levels."""
        try:
            reader = TiffTileReader(self.path, self.level_dimensions, threads=threads)
        except Exception:  # not a TIFF tifffile reads the same way: OpenSlide keeps reading
            return
        downsamples = self.level_downsamples
        self._array_handle = reader
        self._array_reader = lambda handle, location, level, size: handle.read(
            location, level, size, downsamples[level]
        )
        self.array_backend = "tifffile"

    # ------------------------------------------------------------- context manager
    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the backend's file handle; idempotent."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._array_handle is not None:
            self._array_handle.close()
            self._array_handle = None

    def __repr__(self) -> str:
        return (
            f"Slide({str(self.path)!r}, backend={self.backend!r}, levels={self.level_count}, "
            f"dimensions={self.dimensions}, mpp={self.mpp})"
        )

    # ------------------------------------------------------------- geometry
    @property
    def dimensions(self) -> tuple[int, int]:
        """``(width, height)`` of level 0."""
        return self.level_dimensions[0]

    def level_mpp(self, level: int) -> float:
        """Microns per pixel of ``level``.

        Raises:
            MissingMppError: the slide has no mpp.
        """
        if self.mpp is None:
            raise MissingMppError(self.path)
        self._check_level(level)
        return self.mpp * self.level_downsamples[level]

    def best_level_for_mpp(self, target_mpp: float, tolerance: float = 0.01) -> int:
        """The coarsest level whose mpp is at most ``target_mpp``: reads never upsample.

        Level 0 is returned when even it is coarser than the target. ``tolerance`` lets a level
        whose mpp exceeds the target by at most that fraction count as fine enough (scanner
        pyramids have downsamples such as 4.0003, which would otherwise push reads to a level
        four times larger).

        Args:
            target_mpp: wanted microns per pixel.
            tolerance: relative slack on the comparison.

        Raises:
            MissingMppError: the slide has no mpp.
            ValueError: ``target_mpp`` is not positive.
        """
        if not target_mpp > 0:
            raise ValueError(f"target mpp must be positive; got {target_mpp!r}")
        best = 0
        for level in range(self.level_count):
            if self.level_mpp(level) <= target_mpp * (1.0 + tolerance):
                best = level if self.level_downsamples[level] >= self.level_downsamples[best] else best
        return best

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample is at most ``downsample`` (level 0 if none)."""
        best = 0
        for level, value in enumerate(self.level_downsamples):
            if value <= downsample * (1.0 + 1e-6) and value >= self.level_downsamples[best]:
                best = level
        return best

    def _check_level(self, level: int) -> None:
        if not 0 <= level < self.level_count:
            raise IndexError(f"level {level} out of range for {self.path} ({self.level_count} levels)")

    # ------------------------------------------------------------- reading
    def _region_args(
        self, location_level0: tuple[int, int], level: int, size: tuple[int, int]
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        if self._handle is None:
            raise ValueError(f"slide {self.path} is closed")
        self._check_level(level)
        width, height = int(size[0]), int(size[1])
        if width < 1 or height < 1:
            raise ValueError(f"region size must be positive; got {size}")
        return (int(location_level0[0]), int(location_level0[1])), (width, height)

    def read_region(self, location_level0: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        """Read a region through the slide's backend as an RGB image; transparent and out-of-slide pixels are white.

        Args:
            location_level0: ``(x, y)`` of the top-left corner in level-0 pixels.
            level: pyramid level to read from.
            size: ``(width, height)`` in pixels of that level.

        Returns:
            RGB PIL image of ``size``.
        """
        location, size = self._region_args(location_level0, level, size)
        return Image.fromarray(self._backend.read(self._handle, location, level, size))

    def read_array(self, location_level0: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """Read a region as an ``(height, width, 3)`` uint8 RGB array, the same pixels as :meth:`read_region`.

        Regions are read through :attr:`array_backend` (:class:`TiffTileReader` where it decodes
        the file identically), the fast way to cut many patches from one read.

        Args:
            location_level0: ``(x, y)`` of the top-left corner in level-0 pixels.
            level: pyramid level to read from.
            size: ``(width, height)`` in pixels of that level.
        """
        location, size = self._region_args(location_level0, level, size)
        handle = self._array_handle if self._array_handle is not None else self._handle
        return self._array_reader(handle, location, level, size)

    def prefetch_array(self, location_level0: tuple[int, int], level: int, size: tuple[int, int]) -> None:
        """Start decoding the stored tiles of a region that :meth:`read_array` will read soon.

        Only :class:`TiffTileReader` prefetches (on its decoding threads); with other array
        backends this does nothing. The pixels later read do not depend on it.

        Args:
            location_level0: ``(x, y)`` of the top-left corner in level-0 pixels.
            level: pyramid level.
            size: ``(width, height)`` in pixels of that level.
        """
        location, size = self._region_args(location_level0, level, size)
        if isinstance(self._array_handle, TiffTileReader):
            downsample = self.level_downsamples[level]
            x, y = int(location[0] / downsample), int(location[1] / downsample)
            self._array_handle.prefetch(level, (x, y, x + size[0], y + size[1]))

    def get_thumbnail(
        self, max_size: int | tuple[int, int], resample: Image.Resampling = Image.Resampling.LANCZOS
    ) -> Image.Image:
        """The whole slide as an RGB image fitting in ``max_size``, aspect ratio kept.

        Reads the coarsest level that is at least as large as the thumbnail and resizes it.

        Args:
            max_size: longest side, or ``(max_width, max_height)``.
            resample: Pillow filter of the resize (``BOX`` averages areas and is the fastest
                good choice for masks).
        """
        box = (max_size, max_size) if isinstance(max_size, int) else (int(max_size[0]), int(max_size[1]))
        width, height = self.dimensions
        downsample = max(width / box[0], height / box[1], 1.0)
        level = self.best_level_for_downsample(downsample)
        image = Image.fromarray(self.read_array((0, 0), level, self.level_dimensions[level]))
        target = (max(1, round(width / downsample)), max(1, round(height / downsample)))
        if image.size != target:
            image = image.resize(target, resample)
        return image

    def info(self) -> dict[str, Any]:
        """A JSON-able description: vendor, levels, dimensions, downsamples, mpp, objective power, backend."""
        return {
            "path": str(self.path),
            "slide_id": self.slide_id,
            "backend": self.backend,
            "vendor": self.vendor,
            "level_count": self.level_count,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": list(self.level_downsamples),
            "mpp": self.mpp,
            "mpp_source": self.mpp_source,
            "objective_power": self.objective_power,
        }


def open_slide(
    path: str | os.PathLike,
    *,
    mpp: float | None = None,
    backend: str = "auto",
    require_mpp: bool = True,
    fast_arrays: bool = True,
    decode_threads: int = DEFAULT_DECODE_THREADS,
) -> Slide:
    """Open a whole-slide image.

    Args:
        path: the slide file.
        mpp: microns per pixel of level 0; overrides the slide's own value.
        backend: a key of :data:`BACKENDS`, or ``"auto"`` (try :data:`AUTO_ORDER` in turn).
        require_mpp: raise :class:`MissingMppError` when no mpp is known.
        fast_arrays: let :meth:`Slide.read_array` use :class:`TiffTileReader` for OpenSlide-opened
            files it decodes identically (see :data:`ARRAY_READER_VENDORS`).
        decode_threads: threads that decode tiles for :meth:`Slide.read_array` (see
            :class:`TiffTileReader`); the pixels do not depend on it.

    Returns:
        The open :class:`Slide`.

    Raises:
        SlideOpenError: the file is missing or no backend can open it (the message gives each
            backend's reason).
        MissingMppError: no mpp in the metadata, none given, and ``require_mpp``.
        UnknownNameError: unknown ``backend``.
        InputError: ``mpp`` is not a positive number or ``decode_threads < 1`` (a ``ValueError``).
    """
    path = Path(path)
    if mpp is not None and not (math.isfinite(mpp) and mpp > 0):
        raise InputError(f"mpp for {path} must be a positive number of microns per pixel; got {mpp!r}")
    if decode_threads < 1:
        raise InputError(f"decode_threads must be >= 1; got {decode_threads}")
    if backend == "auto":
        names = list(AUTO_ORDER)
    elif backend in BACKENDS:
        names = [backend]
    else:
        raise UnknownNameError("slide backend", backend, ["auto", *BACKENDS])
    if not path.exists():
        raise SlideOpenError(path, "file does not exist")
    if not path.is_file():
        raise SlideOpenError(path, "not a file")
    reasons = []
    for name in names:
        spec = BACKENDS[name]
        try:
            handle = spec.open(path)
        except ImportError as e:
            reasons.append(f"{name}: {e}")
            continue
        except Exception as e:  # each library raises its own types for unreadable files
            reasons.append(f"{name}: {type(e).__name__}: {e}".rstrip(": "))
            continue
        try:
            return Slide(path, spec, handle, mpp, require_mpp, fast_arrays, decode_threads)
        except SlideError:
            raise
        except Exception as e:  # metadata the backend opened but cannot describe
            handle.close()
            reasons.append(f"{name}: {type(e).__name__}: {e}")
    raise SlideOpenError(path, "; ".join(reasons) if reasons else "no backend")


# --------------------------------------------------------------------------- mpp tables
_ID_COLUMNS = ("slide_id", "slide", "path")


def read_mpp_table(csv_path: str | os.PathLike) -> dict[str, float]:
    """Read per-slide mpp values from a CSV file.

    The header names an id column (``slide_id``, ``slide`` or ``path``; a path is reduced to its
    slide id, the file name without its last suffix) and an ``mpp`` column. Blank rows are skipped.

    Args:
        csv_path: the CSV file.

    Returns:
        slide id -> mpp (at least one slide).

    Raises:
        InputNotFoundError: the file does not exist (a ``FileNotFoundError``).
        InputError: the file is empty or not UTF-8 text, a missing column, an empty id, an mpp
            that is not a positive number, one slide given two different values, or no rows; the
            message names the file and line (a ``ValueError``).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputNotFoundError(f"mpp table {csv_path} does not exist or is not a file")
    expected = f"expected a header with an id column ({', '.join(_ID_COLUMNS)}) and an 'mpp' column"
    table: dict[str, float] = {}
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise InputError(f"mpp table {csv_path} is empty; {expected}, then one row per slide")
            fields = [name.strip().lower() for name in reader.fieldnames]
            id_column = next((c for c in _ID_COLUMNS if c in fields), None)
            if id_column is None or "mpp" not in fields:
                raise InputError(f"mpp table {csv_path}: {expected}; got {reader.fieldnames}")
            for row in reader:
                line = reader.line_num
                values = {str(k).strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
                if not any(values.values()):
                    continue
                raw_id = values.get(id_column, "")
                if not raw_id:
                    raise InputError(f"{csv_path}:{line}: empty {id_column!r}")
                slide_id = Path(raw_id).stem if id_column == "path" else raw_id
                mpp = _float_or_none(values.get("mpp"))
                if mpp is None:
                    raise InputError(
                        f"{csv_path}:{line}: mpp {values.get('mpp')!r} of {raw_id!r} is not a positive number"
                    )
                if slide_id in table and table[slide_id] != mpp:
                    raise InputError(
                        f"{csv_path}:{line}: slide {slide_id!r} has two mpp values ({table[slide_id]} and {mpp})"
                    )
                table[slide_id] = mpp
    except UnicodeDecodeError as e:
        raise InputError(f"mpp table {csv_path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise InputError(f"mpp table {csv_path} is not a readable CSV file ({e})") from None
    if not table:
        raise InputError(f"mpp table {csv_path} has a header but no rows; {expected}, then one row per slide")
    return table
