"""Read satellite and aerial scenes (GeoTIFF or any raster GDAL reads) as 8-bit RGB through rasterio.

A scene is read in three steps that the chip cutter (:mod:`~domainclip.domains.remote_sensing.chips`)
and :func:`read_image` share:

1. **Bands.** :func:`select_bands` picks the red, green and blue bands by their 1-based numbers in
   the file, or by a preset of :data:`BAND_PRESETS` (one band is shown as grey). A band the file
   lacks is one line naming the file and its band count.
2. **Nodata.** :func:`band_masks` says which pixels of each band hold data: from the file's nodata
   value, its internal or alpha mask (GDAL's mask flags), and non-finite values of float bands. A
   pixel is nodata when every selected band is; such pixels are black in the output.
3. **Stretch.** :class:`Stretch` maps each band linearly from its ``low`` and ``high`` percentiles
   (2 and 98 by default) to 0..255, clipping outside. The percentiles are computed once per scene
   over the pixels that hold data (:func:`scene_stretch` reads a small scene whole and a large one
   by a sample of whole blocks), so every chip of a scene is stretched alike and one chip's
   brightness can be compared with its neighbour's. 8- and 16-bit integer bands go
   through a lookup table; float bands through the same formula.

:func:`write_geotiff` writes arrays as tiled GeoTIFFs, for generators and tests.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.io import atomic_output
from domainclip.core.plugins import UnknownNameError

if TYPE_CHECKING:
    from rasterio.io import DatasetReader
    from rasterio.windows import Window

__all__ = [
    "BAND_PRESETS",
    "RASTER_SUFFIXES",
    "BandError",
    "BandPreset",
    "EmptySceneError",
    "RasterError",
    "Stretch",
    "band_masks",
    "nodata_pixels",
    "open_raster",
    "read_image",
    "scene_stretch",
    "select_bands",
    "write_geotiff",
]

#: Names of the band presets.
BandPreset = Literal["rgb", "sentinel2", "landsat8", "landsat9", "landsat7", "landsat5"]
#: Preset -> the (red, green, blue) band numbers (1-based) of a file that stacks the sensor's
#: bands in their usual order:
#:
#: * ``sentinel2``: B4, B3, B2 of a stacked Sentinel-2 MSI product in the order B1, B2, ..., B8,
#:   B8A, B9, B10, B11, B12 (torchgeo's ``Sentinel2.all_bands``; L1C has 13 bands, L2A 12 without
#:   B10). B8A comes after B8, so red, green and blue are band numbers 4, 3, 2 in both, and in
#:   EuroSAT's 13-band files too.
#: * ``landsat8``, ``landsat9``: OLI bands B4, B3, B2 (band 1 is coastal aerosol).
#: * ``landsat7`` (ETM+) and ``landsat5`` (TM): bands B3, B2, B1.
#: * ``rgb``: bands 1, 2, 3 (an RGB image, or NAIP's R, G, B, NIR).
BAND_PRESETS: dict[str, tuple[int, int, int]] = {
    "rgb": (1, 2, 3),
    "sentinel2": (4, 3, 2),
    "landsat8": (4, 3, 2),
    "landsat9": (4, 3, 2),
    "landsat7": (3, 2, 1),
    "landsat5": (3, 2, 1),
}
#: Suffixes taken as rasters when a folder is searched (a file named directly may be any raster GDAL reads).
RASTER_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".vrt", ".img", ".jp2")
#: :func:`scene_stretch` samples blocks when at least this many fit in its pixel budget.
_MIN_BLOCKS = 16
#: Strips are sampled a few at a time, at least this many pixels per read.
_MIN_READ_PIXELS = 1 << 14


class RasterError(InputError):
    """A file that cannot be used as a scene (GDAL cannot read it, ...); the message names it.

    Attributes:
        reason: the skip reason a batch command counts it under.
    """

    reason = "unreadable"


class BandError(RasterError):
    """A band number the file does not have; the message names the file and its band count."""

    reason = "bad_band"


class EmptySceneError(RasterError):
    """Every pixel of the selected bands is nodata: there is nothing to stretch or cut."""

    reason = "all_nodata"


def _one_line(text: object, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- opening and bands
@contextlib.contextmanager
def open_raster(path: str | os.PathLike, *, threads: int = 1) -> Iterator[DatasetReader]:
    """Open a raster with rasterio; a file GDAL cannot read is one :class:`RasterError` line.

    Files without georeferencing (a plain PNG) open too, without rasterio's warning: their CRS is
    ``None`` and their transform the identity.

    Args:
        path: the raster file.
        threads: threads GDAL may decode compressed blocks with (the ``NUM_THREADS`` open option:
            GeoTIFF and a few other drivers use them when one read spans several blocks).

    Raises:
        InputNotFoundError: the file does not exist.
        RasterError: GDAL cannot read it as a raster.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"raster {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(path, **({"num_threads": str(threads)} if threads > 1 else {}))
    except RasterioIOError as e:
        detail = _one_line(str(e).replace(f"'{path}' ", "").replace(f"{path}: ", ""))
        raise RasterError(f"{path} is not a raster GDAL can read ({detail})") from None
    with dataset:
        yield dataset


def select_bands(
    path: str | os.PathLike,
    count: int,
    bands: Sequence[int] | None = None,
    preset: str | None = None,
) -> tuple[int, int, int]:
    """The (red, green, blue) band numbers to read from a file with ``count`` bands.

    Args:
        path: the file, for messages.
        count: how many bands it has.
        bands: 1-based band numbers, three (red, green, blue) or one (grey); default: bands 1, 2, 3,
            or band 1 as grey in a one-band file.
        preset: a key of :data:`BAND_PRESETS`, instead of ``bands``.

    Raises:
        InputError: both ``bands`` and ``preset``, or not one or three bands.
        UnknownNameError: an unknown preset.
        BandError: a band the file does not have (or a two-band file without ``bands``).
    """
    if bands is not None and preset is not None:
        raise InputError("give band numbers or a band preset, not both")
    if preset is not None:
        if preset not in BAND_PRESETS:
            raise UnknownNameError("band preset", preset, list(BAND_PRESETS))
        bands = BAND_PRESETS[preset]
    if bands is None:
        if count == 2:
            raise BandError(f"{path} has 2 bands: say which to show as red, green and blue (e.g. bands 1 2 2)")
        bands = (1, 1, 1) if count == 1 else (1, 2, 3)
    chosen = tuple(int(b) for b in bands)
    if len(chosen) not in (1, 3):
        raise InputError(f"give 3 band numbers (red, green, blue) or 1 (grey); got {list(chosen)}")
    for band in chosen:
        if not 1 <= band <= count:
            raise BandError(
                f"{path} has no band {band}: it has {count} band{'s' if count != 1 else ''} (numbered 1 to {count})"
            )
    return chosen * 3 if len(chosen) == 1 else chosen  # type: ignore[return-value]


# --------------------------------------------------------------------------- nodata
def band_masks(
    dataset: DatasetReader,
    bands: Sequence[int],
    data: np.ndarray,
    *,
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
) -> np.ndarray | None:
    """Which pixels of each band hold data, for ``data`` read from ``dataset`` with the same window and shape.

    Args:
        dataset: the open raster.
        bands: the band numbers ``data`` was read from.
        data: the ``(bands, H, W)`` pixels.
        window: the window they were read from (default: the whole raster).
        out_shape: the ``(H, W)`` they were decimated to, if any.

    Returns:
        ``(bands, H, W)`` booleans, true where the band holds data; ``None`` when every pixel does
        (no nodata value, no mask, no non-finite float).
    """
    from rasterio.enums import MaskFlags

    masks: list[np.ndarray | None] = []
    for i, band in enumerate(bands):
        flags = dataset.mask_flag_enums[band - 1]
        values = data[i]
        if MaskFlags.nodata in flags:
            nodata = dataset.nodatavals[band - 1]
            valid = ~np.isnan(values) if math.isnan(nodata) else values != nodata
        elif MaskFlags.all_valid in flags:
            valid = None
        else:  # an internal (per-dataset) mask or an alpha band
            shape = None if out_shape is None else (1, *out_shape)
            valid = dataset.read_masks([band], window=window, out_shape=shape)[0] > 0
        if values.dtype.kind == "f":
            finite = np.isfinite(values)
            valid = finite if valid is None else valid & finite
        masks.append(valid)
    if all(m is None for m in masks):
        return None
    return np.stack([np.ones(data.shape[1:], bool) if m is None else m for m in masks])


def nodata_pixels(valid: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Pixels where no selected band holds data, from :func:`band_masks` (all false when it gave ``None``)."""
    return np.zeros(shape, bool) if valid is None else ~valid.any(axis=0)


# --------------------------------------------------------------------------- stretch
def _stretch_values(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` mapped linearly from ``[low, high]`` to ``0..255`` (rounded, clipped) as uint8."""
    x = np.asarray(values, np.float64)
    if values.dtype.kind == "f":
        x = np.nan_to_num(x, nan=low, posinf=high, neginf=low)
    if high > low:
        return np.rint(np.clip((x - low) * 255.0 / (high - low), 0.0, 255.0)).astype(np.uint8)  # ties to even
    return np.where(x > low, 255, 0).astype(np.uint8)  # a constant band: black, brighter values white


def _percentiles(values: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """``np.percentile(values, percentiles)`` (linear interpolation); from a histogram for 8- and 16-bit values."""
    if values.dtype not in (np.uint8, np.uint16):
        low, high = np.percentile(values.astype(np.float64, copy=False), percentiles)
        return float(low), float(high)
    cumulative = np.cumsum(np.bincount(values.ravel(), minlength=1 << (8 * values.dtype.itemsize)))
    last = int(cumulative[-1]) - 1
    out = []
    for q in percentiles:
        position = q / 100 * last
        below = math.floor(position)
        a, b = np.searchsorted(cumulative, [below, min(below + 1, last)], side="right")  # sorted values below, below+1
        out.append(float(a) + (position - below) * float(b - a))
    return out[0], out[1]


@functools.lru_cache(maxsize=64)
def _lookup_table(low: float, high: float, bits: int) -> np.ndarray:
    """:func:`_stretch_values` of every ``bits``-bit unsigned value: the same bytes, by indexing."""
    return _stretch_values(np.arange(1 << bits), low, high)


@dataclass(frozen=True)
class Stretch:
    """A per-band linear stretch to 8 bits: ``low`` becomes 0, ``high`` 255, values outside are clipped.

    Args:
        low: per band, the value shown black (the lower percentile of the scene).
        high: per band, the value shown white (the upper percentile).
        percentiles: the percentiles ``low`` and ``high`` were taken at.
        statistics: how the scene was sampled to compute them (recorded in the chips' metadata).
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    percentiles: tuple[float, float] = (2.0, 98.0)
    statistics: str = "all pixels"

    @classmethod
    def from_pixels(
        cls,
        data: np.ndarray,
        valid: np.ndarray | None,
        percentiles: tuple[float, float] = (2.0, 98.0),
        statistics: str = "all pixels",
    ) -> Stretch:
        """The stretch of the pixels that hold data.

        Args:
            data: ``(bands, ...)`` pixel values.
            valid: the same shape, true where a band holds data (``None``: all of them).
            percentiles: the lower and upper percentile, in [0, 100].
            statistics: how ``data`` was sampled from the scene.

        Raises:
            ValueError: a band has no pixel with data (check :func:`nodata_pixels` first).
        """
        low, high = [], []
        for i in range(data.shape[0]):
            values = data[i] if valid is None else data[i][valid[i]]
            if values.size == 0:
                raise ValueError(f"band {i} has no pixel with data")
            lo, hi = _percentiles(values, percentiles)
            low.append(lo)
            high.append(hi)
        return cls(tuple(low), tuple(high), (float(percentiles[0]), float(percentiles[1])), statistics)

    def apply(self, data: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Stretch ``(bands, H, W)`` pixels to an ``(H, W, bands)`` uint8 image; pixels without data are 0.

        Args:
            data: the pixels, in the bands the stretch was computed for.
            valid: :func:`band_masks` of ``data`` (``None``: every pixel holds data).
        """
        out = np.empty((*data.shape[1:], data.shape[0]), np.uint8)
        for i in range(data.shape[0]):
            band = data[i]
            if band.dtype in (np.uint8, np.uint16):
                out[..., i] = _lookup_table(self.low[i], self.high[i], band.dtype.itemsize * 8)[band]
            else:
                out[..., i] = _stretch_values(band, self.low[i], self.high[i])
            if valid is not None:
                out[..., i][~valid[i]] = 0
        return out

    def as_meta(self) -> dict[str, Any]:
        """The stretch as JSON metadata: percentiles, per-band low and high, how they were sampled."""
        return {"percentiles": list(self.percentiles), "low": list(self.low), "high": list(self.high),
                "statistics": self.statistics}


def scene_stretch(
    dataset: DatasetReader,
    bands: Sequence[int],
    percentiles: tuple[float, float] = (2.0, 98.0),
    *,
    max_pixels: int = 1 << 20,
) -> Stretch:
    """The stretch of a whole scene, from at most about ``max_pixels`` of it, computed once per scene.

    A scene of at most ``max_pixels`` pixels is read whole. A larger one is sampled by whole
    internal blocks (tiles, or a few consecutive strips) spread evenly over the file, each an aligned read of pixels
    at full resolution, so the percentiles are those of the scene's own values; a file whose
    blocks are too large for that (fewer than 16 would fit in ``max_pixels``: a JPEG, a PNG) is
    read decimated instead (GDAL reads an overview when the file has one, whose averaged values
    spread less than the full-resolution ones). Nodata (:func:`band_masks`) is left out; when the
    sample holds only nodata, every block is read before the scene is called empty.

    Args:
        dataset: the open raster.
        bands: the band numbers, as :func:`select_bands` gives them.
        percentiles: the lower and upper percentile, in [0, 100].
        max_pixels: about how many pixels per band the statistics are computed from.

    Raises:
        EmptySceneError: no pixel of the sample holds data.
    """
    from rasterio.windows import Window

    height, width = dataset.height, dataset.width
    block_height, block_width = dataset.block_shapes[bands[0] - 1]
    if block_width >= width:  # strips: a few consecutive ones per read
        block_height *= math.ceil(_MIN_READ_PIXELS / (block_height * width))
    blocks = [Window(col, row, min(block_width, width - col), min(block_height, height - row))
              for row in range(0, height, block_height) for col in range(0, width, block_width)]
    per_block = block_height * min(block_width, width)
    reads: list[dict[str, Any]]
    if height * width <= max_pixels:
        reads, statistics = [{}], "all pixels"
    elif per_block * _MIN_BLOCKS <= max_pixels:
        picks = np.unique(np.linspace(0, len(blocks) - 1, min(len(blocks), max_pixels // per_block)).round())
        reads, statistics = [{"window": blocks[i]} for i in picks.astype(int)], f"{len(picks)} of {len(blocks)} blocks"
    else:
        factor = math.sqrt(height * width / max_pixels)
        shape = (max(1, round(height / factor)), max(1, round(width / factor)))
        reads = [{"out_shape": shape}]
        statistics = f"decimated read {shape[1]}x{shape[0]}" + (" (overviews)" if dataset.overviews(bands[0]) else "")
    parts = [_pixels_with_data(dataset, bands, **read) for read in reads]
    if not any(values.size for values, _ in parts) and statistics != "all pixels":
        statistics += ", then every block (the sample held only nodata)"
        parts = [_pixels_with_data(dataset, bands, window=window) for window in blocks]
    values = np.concatenate([values for values, _ in parts], axis=1)
    masks = np.concatenate([masks for _, masks in parts], axis=1)
    if values.shape[1] == 0:
        raise EmptySceneError(f"{dataset.name}: every pixel of bands {list(bands)} is nodata")
    masks[~masks.any(axis=1)] = True  # a band without data where the others have some: its whole range
    return Stretch.from_pixels(values, masks, percentiles, statistics)


def _pixels_with_data(
    dataset: DatasetReader,
    bands: Sequence[int],
    *,
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(values, masks)``, each ``(bands, N)``, of the pixels of one read where some band holds data."""
    from rasterio.enums import Resampling

    shape = None if out_shape is None else (len(bands), *out_shape)
    data = dataset.read(list(bands), window=window, out_shape=shape, resampling=Resampling.nearest)
    valid = band_masks(dataset, bands, data, window=window, out_shape=out_shape)
    values = data.reshape(len(bands), -1)
    if valid is None:
        return values, np.ones(values.shape, bool)
    valid = valid.reshape(len(bands), -1)
    keep = valid.any(axis=0)
    return values[:, keep], valid[:, keep]


# --------------------------------------------------------------------------- whole images
def read_image(
    path: str | os.PathLike,
    *,
    bands: Sequence[int] | None = None,
    stretch: tuple[float, float] = (2.0, 98.0),
) -> np.ndarray:
    """Read a whole raster as an ``(H, W, 3)`` uint8 RGB image, each band stretched over the whole image.

    Args:
        path: any raster GDAL reads.
        bands: the (red, green, blue) band numbers, 1-based, or one band for grey (default: 1, 2, 3;
            see :data:`BAND_PRESETS` for sensors).
        stretch: the lower and upper percentile mapped to 0 and 255.

    Raises:
        RasterError: the file is not a raster, lacks a band, or holds only nodata.
    """
    with open_raster(path) as dataset:
        chosen = select_bands(path, dataset.count, bands)
        data = dataset.read(list(chosen))
        valid = band_masks(dataset, chosen, data)
        if nodata_pixels(valid, data.shape[1:]).all():
            raise EmptySceneError(f"{path}: every pixel of bands {list(chosen)} is nodata")
        sampled = None if valid is None else valid.copy()
        if sampled is not None:  # a band without data where the others have some: its whole range
            sampled[~sampled.any(axis=(1, 2))] = True
        return Stretch.from_pixels(data, sampled, stretch).apply(data, valid)


def write_geotiff(
    path: str | os.PathLike,
    array: np.ndarray,
    *,
    crs: Any,
    transform: Any,
    nodata: float | None = None,
    tile: int | None = 256,
    compress: str | None = "deflate",
    overviews: Sequence[int] = (),
) -> Path:
    """Write a ``(bands, H, W)`` (or ``(H, W)``) array as a GeoTIFF, atomically.

    Args:
        path: the output file.
        array: the pixels, in any dtype GDAL writes (uint8, uint16, int16, float32, ...).
        crs: anything rasterio takes as a CRS (``"EPSG:32618"``, a WKT string, a ``CRS``).
        transform: the affine pixel-to-map transform (an ``Affine`` or its 6 numbers a, b, c, d, e, f).
        nodata: the nodata value, if any.
        tile: square tile side (a multiple of 16), or ``None`` for strips.
        compress: GDAL compression (``"deflate"``, ``"lzw"``, ``None``).
        overviews: decimation factors of overviews to build (e.g. ``(2, 4, 8)``).

    Returns:
        ``path``.
    """
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling

    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"array must be (bands, H, W) or (H, W); got shape {array.shape}")
    if tile is not None and (tile < 16 or tile % 16):
        raise ValueError(f"tile must be a multiple of 16; got {tile}")
    profile: dict[str, Any] = {
        "driver": "GTiff", "count": array.shape[0], "height": array.shape[1], "width": array.shape[2],
        "dtype": array.dtype, "crs": crs, "nodata": nodata,
        "transform": transform if isinstance(transform, Affine) else Affine(*transform),
    }
    if tile is not None:
        profile.update(tiled=True, blockxsize=tile, blockysize=tile)
    if compress is not None:
        profile["compress"] = compress
    with atomic_output(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(array)
        if overviews:
            dst.build_overviews(list(overviews), Resampling.average)
    return Path(path)
