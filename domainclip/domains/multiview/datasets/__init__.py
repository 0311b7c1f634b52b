"""Adapters of public multi-view and viewpoint-robustness datasets, one class per file.

==============  ====================================================  ==========================================
adapter         layout read                                           items
==============  ====================================================  ==========================================
``MVCap``       ``metadata.json`` (path, caption, obj_id, img_id per  one object: ``{"views", "text", "meta"}``
                image) and the image folders it names (OVT's release)
``MVImgNet``    ``<class_label>/<instance_id>/images/*.jpg`` and      one object: ``{"views", "text", "meta"}``
                ``mvimgnet_category.txt``
``ImageNetV``   ``<class>/<image>`` (OVT's ImageNet-V / ImageNet-V+)   one image: ``{"image", "label", "meta"}``
                or ``<object>/<NNN>.png`` (ViewFool's renderings)
==============  ====================================================  ==========================================

This module holds what the three share: reading one view image (a missing or undecodable file is a
:class:`~domainclip.core.data.corrupt.CorruptSampleError` a batch counts and skips), the natural
order of frame files (``2.jpg`` before ``10.jpg``) and the even subsampling of an object's views.
"""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from domainclip.core.data.corrupt import CorruptSampleError
from domainclip.core.data.decode import MAX_IMAGE_PIXELS, _decode_image_bytes

__all__ = ["IMAGE_SUFFIXES", "MISSING_IMAGE", "even_indices", "natural_key", "read_view"]

#: Image files the adapters read (lower-case suffixes).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
#: Skip reason of an image a dataset names but its folder lacks.
MISSING_IMAGE = "missing_image"


def read_view(path: str | Path) -> Image.Image:
    """One view (or image) of a dataset as an RGB PIL image, fully decoded by the core's shard decoder.

    Like a shard member, an image larger than :data:`~domainclip.core.data.decode.MAX_IMAGE_PIXELS`
    is refused from its header, before decoding.

    Args:
        path: the image file.

    Raises:
        CorruptSampleError: ``missing_image`` when the file does not exist, ``bad_image`` when it
            cannot be decoded; the detail names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CorruptSampleError(MISSING_IMAGE, f"{path} does not exist")
    try:
        return _decode_image_bytes(path.read_bytes(), path.suffix.lower().lstrip(".") or "image", MAX_IMAGE_PIXELS)
    except CorruptSampleError as e:
        raise CorruptSampleError(e.reason, f"{path}: {e.detail}") from None


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key ordering numbered names by their numbers: ``frame2.jpg`` before ``frame10.jpg``.

    Args:
        name: a file or folder name.
    """
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part)


def even_indices(count: int, keep: int | None) -> list[int]:
    """Positions of ``keep`` views spread evenly over ``count`` (first and last included); all when fewer.

    Args:
        count: how many views the object has.
        keep: how many to keep (``None``: all).
    """
    if keep is None or count <= keep:
        return list(range(count))
    if keep == 1:
        return [0]
    return [round(i * (count - 1) / (keep - 1)) for i in range(keep)]
