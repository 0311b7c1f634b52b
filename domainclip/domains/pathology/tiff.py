"""Write tiled pyramidal TIFF files that OpenSlide (``generic-tiff``) and tiffslide both open.

Used to make test and benchmark slides of known content and resolution. The layout is the one
OpenSlide's generic-TIFF driver reads: every level is a tiled RGB page in the main IFD chain
(level 0 first, then each reduced level marked ``NewSubfileType = 1``), and the resolution is
stored as ``XResolution``/``YResolution`` in pixels per centimetre (``ResolutionUnit = 3``), from
which both readers derive ``mpp-x``/``mpp-y``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from domainclip.core.io import atomic_output
from domainclip.core.plugins import UnknownNameError

__all__ = ["COMPRESSIONS", "pyramid_levels", "write_pyramidal_tiff"]

#: Compression name -> function ``quality -> (tifffile compression, compressionargs)``.
COMPRESSIONS: dict[str, Callable[[int], tuple[str | None, dict[str, Any] | None]]] = {
    "jpeg": lambda quality: ("jpeg", {"level": int(quality)}),
    "deflate": lambda quality: ("zlib", None),
    "none": lambda quality: (None, None),
}


def _halve(image: np.ndarray) -> np.ndarray:
    """Downsample by 2 with a 2x2 box filter (an odd last row/column is dropped)."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    blocks = image[: 2 * h, : 2 * w].reshape(h, 2, w, 2, image.shape[2]).astype(np.uint16)
    return ((blocks.sum(axis=(1, 3)) + 2) // 4).astype(np.uint8)


def pyramid_levels(image: np.ndarray, min_size: int = 256) -> list[np.ndarray]:
    """Level 0 and its successive 2x box-filtered downsamples.

    A level is added by halving the previous one as long as the previous level's long side is
    at least ``min_size``, so the last level is the first one whose long side is below ``min_size``
    (an image already smaller than ``min_size`` gives one level). Level ``k`` has
    ``floor(W / 2**k) x floor(H / 2**k)`` pixels.

    Args:
        image: ``(H, W, 3)`` uint8 array.
        min_size: long-side size below which no further level is made.

    Returns:
        The levels, finest first.
    """
    levels = [image]
    while max(levels[-1].shape[:2]) >= min_size and min(levels[-1].shape[:2]) >= 2:
        levels.append(_halve(levels[-1]))
    return levels


def write_pyramidal_tiff(
    path: str | os.PathLike,
    image: np.ndarray,
    mpp: float | None,
    *,
    tile: int = 256,
    min_size: int = 256,
    compression: str = "jpeg",
    quality: int = 90,
) -> Path:
    """Write ``image`` as a tiled pyramidal TIFF readable by OpenSlide and tiffslide.

    The file is written to a temporary name in the same folder and renamed into place, so it is
    either complete or absent.

    Args:
        path: output file (``.tif``/``.tiff``).
        image: ``(H, W, 3)`` uint8 RGB array, level 0.
        mpp: microns per pixel of level 0, stored as the TIFF resolution in pixels per centimetre;
            ``None`` writes no resolution tags, so readers report no mpp.
        tile: tile side in pixels (a multiple of 16).
        min_size: halving stops once a level's long side is below this (see :func:`pyramid_levels`).
        compression: a key of :data:`COMPRESSIONS` (``"jpeg"``, ``"deflate"``, ``"none"``).
        quality: JPEG quality (1-100), used by ``"jpeg"``.

    Returns:
        The path written.

    Raises:
        ValueError: ``image`` is not ``(H, W, 3)`` uint8, or ``mpp``/``tile``/``quality`` are invalid.
        UnknownNameError: unknown ``compression``.
    """
    import tifffile

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 array; got shape {image.shape}, dtype {image.dtype}")
    if mpp is not None and not (np.isfinite(mpp) and mpp > 0):
        raise ValueError(f"mpp must be a positive number of microns per pixel or None; got {mpp!r}")
    if tile < 16 or tile % 16:
        raise ValueError(f"tile must be a positive multiple of 16; got {tile}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100; got {quality}")
    if compression not in COMPRESSIONS:
        raise UnknownNameError("TIFF compression", compression, list(COMPRESSIONS))
    codec, codec_args = COMPRESSIONS[compression](quality)
    path = Path(path)
    with atomic_output(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=image.nbytes > 2**31) as writer:
            for k, level in enumerate(pyramid_levels(image, min_size)):
                options: dict[str, Any] = {}
                if mpp is not None:
                    per_cm = 1e4 / (mpp * 2**k)
                    options = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
                writer.write(
                    level,
                    photometric="rgb",
                    tile=(tile, tile),
                    compression=codec,
                    compressionargs=codec_args,
                    subfiletype=1 if k else 0,
                    metadata=None,
                    **options,
                )
    return path
