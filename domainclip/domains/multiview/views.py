"""The multi-view shard sample: one object, all its views, its captions and where each view was taken.

Every multi-view prepare command (``render``, ``import``) writes, and every multi-view decoder and
suite reads, one WebDataset sample per object:

==================  =====================================================================
member              content
==================  =====================================================================
``000.view.jpg``    view 0 (then ``001.view.jpg``, ...; ``.png`` and ``.webp`` also read)
``text.json``       the object's captions, a list of strings
``cls``             the category's index in the set's category list, when the set has one
``json``            meta: ``object_id``, ``category``, ``source``, ``license``, ``num_views``,
                    ``views`` (one :class:`ViewPose`-like dict per view, in member order),
                    ``caption_source`` and the writer's own provenance
==================  =====================================================================

Views are stored as separate compressed images rather than one ``.views.npy`` array (which the
core's generic decoder also reads), so a 12-view object at 224 px takes a few hundred kilobytes,
not 1.8 MB. WebDataset groups members by the part of the file name before the first dot, so the
view members of ``mug_0042`` are ``mug_0042.000.view.jpg``, ``mug_0042.001.view.jpg``, ...
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

from domainclip.core.data.corrupt import BAD_IMAGE, BAD_JSON, CorruptSampleError, missing_key
from domainclip.core.data.decode import MAX_IMAGE_PIXELS, _decode_image_bytes

__all__ = [
    "MAX_VIEWS",
    "VIEW_FORMATS",
    "ViewPose",
    "decode_views",
    "encode_views",
    "object_sample",
    "read_meta",
    "view_members",
]

#: Image formats a view member may have, in the writers' order of preference.
VIEW_FORMATS = ("jpg", "png", "webp")
#: Most views one object sample may hold (the member index has three digits).
MAX_VIEWS = 1000
_VIEW_MEMBER = re.compile(r"^(\d{3})\.view\.(jpg|png|webp)$")


@dataclass
class ViewPose:
    """Where one view was taken from: a camera on a sphere around the object, looking at its centre.

    Angles are in degrees: ``azimuth`` around the up axis (+Y), ``elevation`` above the equator.
    ``camera_to_world`` is the 4x4 pose (OpenGL convention: the camera looks down its -Z axis,
    +Y up) in the object's frame after centring and scaling to unit radius; ``distance`` is in
    those units. Captured views whose pose is unknown leave the fields ``None``.

    Args:
        index: position of the view in the sample (its member number).
        azimuth: degrees around the up axis.
        elevation: degrees above the horizontal plane.
        distance: camera distance from the object's centre.
        fov: vertical field of view in degrees.
        camera_to_world: 4x4 camera pose as nested lists.
        light: light settings of this view (renderer-specific: intensity, direction, ...).
        background: background RGB in 0..255.
        extra: anything else a writer records per view (frame number, original file name).
    """

    index: int
    azimuth: float | None = None
    elevation: float | None = None
    distance: float | None = None
    fov: float | None = None
    camera_to_world: list[list[float]] | None = None
    light: dict[str, Any] | None = None
    background: list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The pose as the JSON dict stored in ``meta["views"]`` (``None`` fields dropped)."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}


def _encode_image(image: np.ndarray | Image.Image, image_format: str, quality: int) -> bytes:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"a view array must be HxW or HxWxC uint8; got {image.dtype} {image.shape}")
        image = Image.fromarray(image)
    image = image.convert("RGB")
    buf = io.BytesIO()
    if image_format == "jpg":
        image.save(buf, format="JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    elif image_format == "png":
        image.save(buf, format="PNG", compress_level=6)
    else:
        image.save(buf, format="WEBP", quality=quality, method=4)
    return buf.getvalue()


def encode_views(
    images: Sequence[np.ndarray | Image.Image],
    image_format: Literal["jpg", "png", "webp"] = "jpg",
    quality: int = 92,
) -> dict[str, bytes]:
    """Encode an object's views as shard members ``{"000.view.jpg": bytes, ...}``.

    Args:
        images: the views in order, HxWx3 uint8 arrays or PIL images.
        image_format: ``jpg`` (renders and photographs), ``png`` (lossless) or ``webp``.
        quality: JPEG/WebP quality.

    Raises:
        ValueError: no views, more than :data:`MAX_VIEWS`, an unknown format or a malformed array.
    """
    if image_format not in VIEW_FORMATS:
        raise ValueError(f"view image_format must be one of {VIEW_FORMATS}; got {image_format!r}")
    if not images:
        raise ValueError("an object sample needs at least one view")
    if len(images) > MAX_VIEWS:
        raise ValueError(f"an object sample holds at most {MAX_VIEWS} views; got {len(images)}")
    return {f"{i:03d}.view.{image_format}": _encode_image(img, image_format, quality) for i, img in enumerate(images)}


def object_sample(
    key: str,
    views: Sequence[np.ndarray | Image.Image],
    captions: Sequence[str],
    meta: Mapping[str, Any],
    *,
    label: int | None = None,
    image_format: Literal["jpg", "png", "webp"] = "jpg",
    quality: int = 92,
) -> dict[str, Any]:
    """One object as a sample for :class:`~domainclip.core.data.writer.ShardWriter`.

    Args:
        key: the sample key (``core.io.safe_key`` of the object id; no dots).
        views: the object's views in order.
        captions: its captions (at least one, none empty).
        meta: ``object_id``, ``category``, ``source``, ``license``, ``views`` (one pose dict per
            view) and anything else; ``num_views`` is set here.
        label: the category's index, written as ``cls``, when the set has a category list.
        image_format: format of the view members.
        quality: JPEG/WebP quality.

    Raises:
        ValueError: no caption, an empty caption, or ``meta["views"]`` not one entry per view.
    """
    captions = [str(c) for c in captions]
    if not captions or not all(c.strip() for c in captions):
        raise ValueError(f"object {key!r}: captions must be a non-empty list of non-empty strings")
    poses = meta.get("views")
    if poses is not None and len(poses) != len(views):
        raise ValueError(f"object {key!r}: meta['views'] has {len(poses)} entries for {len(views)} views")
    sample: dict[str, Any] = {"__key__": key, "text": captions, "meta": {**meta, "num_views": len(views)}}
    if label is not None:
        sample["label"] = int(label)
    sample.update(encode_views(views, image_format, quality))
    return sample


def view_members(raw: Mapping[str, Any]) -> list[str]:
    """The view member suffixes of a raw sample, in view order (``["000.view.jpg", ...]``)."""
    found = sorted((int(m.group(1)), name) for name in raw if (m := _VIEW_MEMBER.match(name)))
    return [name for _, name in found]


def decode_views(
    raw: Mapping[str, Any],
    transform: Callable[[Any], Any] | None = None,
    indices: Sequence[int] | None = None,
    max_image_pixels: int | None = MAX_IMAGE_PIXELS,
) -> list[Any]:
    """Decode an object's views from a raw shard sample.

    Args:
        raw: the raw sample (member suffix -> bytes).
        transform: applied to each decoded PIL view (e.g. the model's preprocess); ``None`` keeps PIL.
        indices: which views, by position in view order (default: all); an index may repeat.
        max_image_pixels: largest view to decode (counted as ``bad_image`` from its header).

    Raises:
        CorruptSampleError: no view member (``missing_key:views``), an index out of range, or a view
            that cannot be decoded.
    """
    names = view_members(raw)
    if not names:
        members = sorted(k for k in raw if not k.startswith("__"))
        raise CorruptSampleError(missing_key("views"), f"no NNN.view.jpg/png/webp member; members present: {members}")
    chosen = range(len(names)) if indices is None else indices
    out = []
    for i in chosen:
        if not 0 <= i < len(names):
            raise CorruptSampleError(BAD_IMAGE, f"view {i} requested of an object with {len(names)} views")
        name = names[i]
        image = _decode_image_bytes(raw[name], name.rsplit(".", 1)[-1], max_image_pixels)
        out.append(transform(image) if transform is not None else image)
    return out


def read_meta(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The object's ``json`` meta as a dict (``{}`` when the sample has none).

    Args:
        raw: the raw sample.

    Raises:
        CorruptSampleError: the member is not a JSON object.
    """
    import json

    if "json" not in raw:
        return {}
    try:
        meta = json.loads(bytes(raw["json"]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptSampleError(BAD_JSON, f".json is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise CorruptSampleError(BAD_JSON, f".json must hold an object, got {type(meta).__name__}")
    return meta
