"""Write tiled pyramidal TIFF files that OpenSlide (``generic-tiff``) and tiffslide both open.

Used to make test and benchmark slides of known content and resolution. The layout is the one
OpenSlide's generic-TIFF driver reads: every level is a tiled RGB page in the main IFD chain
(level 0 first, then each reduced level marked ``NewSubfileType = 1``), and the resolution is
stored as ``XResolution``/``YResolution`` in pixels per centimetre (``ResolutionUnit = 3``), from
which both readers derive ``mpp-x``/``mpp-y``.

JPEG 2000 tiles are read by OpenSlide's Aperio driver only, so ``compression="jpeg2000"`` writes
the layout of an Aperio SVS instead: each page has an Aperio ``ImageDescription`` (level 0's with
``MPP = ...``), and a small stripped thumbnail is the second page, as Aperio scanners write it.
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

#: Compression name -> function ``quality -> (tifffile compression, compressionargs)``. ``"jpeg2000"`` is
#: Aperio's JPEG 2000 with RGB codestreams (TIFF compression 33005), ``quality`` its target PSNR in dB.
COMPRESSIONS: dict[str, Callable[[int], tuple[str | int | None, dict[str, Any] | None]]] = {
    "jpeg": lambda quality: ("jpeg", {"level": int(quality)}),
    "jpeg2000": lambda quality: (33005, {"level": float(quality)}),
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
        compression: a key of :data:`COMPRESSIONS` (``"jpeg"``, ``"jpeg2000"``, ``"deflate"``, ``"none"``);
            ``"jpeg2000"`` writes an Aperio SVS layout (see the module's description).
        quality: JPEG quality (1-100), used by ``"jpeg"``; for ``"jpeg2000"``, the target PSNR in dB.

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
    aperio = compression == "jpeg2000"
    path = Path(path)
    height, width = image.shape[:2]
    head = f"Aperio Image Library (domainclip)\r\n{width}x{height}"
    with atomic_output(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=image.nbytes > 2**31) as writer:
            for k, level in enumerate(pyramid_levels(image, min_size)):
                options: dict[str, Any] = {}
                if aperio:
                    mpp_text = "" if mpp is None else f"|MPP = {mpp}"
                    options = {"description": f"{head} [0,0 {width}x{height}] ({tile}x{tile}) J2K/KDU{mpp_text}"
                               if k == 0 else f"{head} -> {level.shape[1]}x{level.shape[0]} - |"}
                elif mpp is not None:
                    per_cm = 1e4 / (mpp * 2**k)
                    options = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
                writer.write(
                    level,
                    photometric="rgb",
                    tile=(tile, tile),
                    compression=codec,
                    compressionargs=codec_args,
                    subfiletype=1 if k and not aperio else 0,
                    metadata=None,
                    **options,
                )
                if aperio and k == 0:  # Aperio's second page: a stripped thumbnail (an associated image)
                    thumb = pyramid_levels(image, 65)[-1]
                    writer.write(thumb, photometric="rgb", compression="jpeg", metadata=None,
                                 description=f"{head} -> {thumb.shape[1]}x{thumb.shape[0]} - |")
    return path
