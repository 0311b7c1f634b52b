"""Slide-level labels (``slides.csv``) and a patch stream over pathology patch shards.

A slide-level benchmark is a folder holding the patch shards of its slides (written by the
pathology prepare commands: each sample an image plus ``.json`` metadata with ``slide_id``, ``x``,
``y``, ``level``, ``mpp``, ...) and a label file::

    slides.csv         slide_id,label
                       TCGA-05-4244-01Z,LUAD
                       TCGA-18-3406-01Z,LUSC
    patches-000000.tar
    patches-000001.tar

Extra columns in the CSV are ignored. :class:`PatchShardStream` reads the shards in order, one
sample at a time, so callers can pool patches per slide without holding a dataset in memory.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from domainclip.core.data import keys as K
from domainclip.core.data.corrupt import BAD_IMAGE, BAD_JSON, BAD_SHARD, CorruptTally, missing_key
from domainclip.core.data.reader import expand_urls, iter_shard
from domainclip.core.errors import InputError, InputNotFoundError

__all__ = [
    "IMAGE_MEMBERS",
    "MISSING_SLIDE_ID",
    "UNLABELLED_SLIDE",
    "PatchShardStream",
    "collate_patch_batch",
    "read_slide_labels",
    "slide_id_of",
]

#: Image members looked for in a patch sample, in order of preference.
IMAGE_MEMBERS: tuple[str, ...] = ("png", "jpg", "jpeg", "webp", "tif", "tiff")
#: Skip reason: the sample's metadata has no ``slide_id``.
MISSING_SLIDE_ID = "missing_slide_id"
#: Skip reason: the sample's slide is not among the slides asked for.
UNLABELLED_SLIDE = "unlabelled_slide"

_COLUMNS = ("slide_id", "label")


def read_slide_labels(path: str | os.PathLike) -> dict[str, str]:
    """Read a ``slide_id,label`` CSV into ``{slide_id: label}`` (file order).

    Cells are stripped of surrounding spaces; a UTF-8 byte-order mark is accepted; extra columns are
    ignored; a slide listed twice with the same label is kept once.

    Args:
        path: the CSV file.

    Returns:
        slide id -> label (both ``str``).

    Raises:
        InputNotFoundError: the file does not exist (a ``FileNotFoundError``).
        InputError: the file is not UTF-8, a column is missing, a row has an empty slide id or
            label, a slide is listed with two labels, or there are no rows; the message names the
            file and the line (a ``ValueError``).

    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(
            f"slide label file {path} does not exist (expected a CSV with columns slide_id,label)"
        )
    labels: dict[str, str] = {}
    lines: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in _COLUMNS if c not in header]
            if missing:
                raise InputError(
                    f"{path}: missing column(s) {', '.join(missing)}; the header is {header or '(empty)'}, "
                    "expected slide_id,label"
                )
            reader.fieldnames = header
            for row in reader:
                line = reader.line_num
                slide = (row.get("slide_id") or "").strip()
                label = (row.get("label") or "").strip()
                if not slide and not label and not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue  # a blank line
                if not slide:
                    raise InputError(f"{path}:{line}: empty slide_id")
                if not label:
                    raise InputError(f"{path}:{line}: slide {slide!r} has an empty label")
                if slide in labels and labels[slide] != label:
                    raise InputError(
                        f"{path}:{line}: slide {slide!r} is labelled {label!r} but line {lines[slide]} "
                        f"labels it {labels[slide]!r}"
                    )
                labels.setdefault(slide, label)
                lines.setdefault(slide, line)
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); expected slide_id,label") from None
    except csv.Error as e:
        raise InputError(f"{path}: not a readable CSV file ({e}); expected slide_id,label") from None
    if not labels:
        raise InputError(f"{path} lists no slides (expected rows of slide_id,label)")
    return labels


def slide_id_of(raw: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """Parse a raw sample's ``.json`` metadata: ``(meta, slide_id, skip_reason)``.

    ``skip_reason`` is ``missing_key:meta`` (no ``.json``), ``bad_json`` or :data:`MISSING_SLIDE_ID`
    when the slide cannot be told, else ``None``.
    """
    data = raw.get("json")
    if data is None:
        return None, None, missing_key(K.META)
    try:
        meta = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, None, BAD_JSON
    if not isinstance(meta, dict):
        return None, None, BAD_JSON
    slide = meta.get("slide_id")
    if slide is None or str(slide) == "":
        return meta, None, MISSING_SLIDE_ID
    return meta, str(slide), None


def _decode_image(raw: dict[str, Any]) -> Image.Image:
    suffix = next((s for s in IMAGE_MEMBERS if s in raw), None)
    if suffix is None:
        raise ValueError(f"no image member (one of {', '.join(IMAGE_MEMBERS)}) among {sorted(raw)}")
    with Image.open(io.BytesIO(raw[suffix])) as img:
        img.load()
        return img.convert("RGB")


class PatchShardStream(IterableDataset):
    """Stream the patches of pathology patch shards with their slide ids, in shard order.

    Every raw sample gives one item ``{"image", "slide_id", "key", "url", "skip", "detail"}``: a
    decoded (and transformed) image with ``skip=None``, or ``image=None`` and a ``skip`` reason
    (``bad_image``, ``bad_json``, ``missing_key:meta``, :data:`MISSING_SLIDE_ID`,
    :data:`UNLABELLED_SLIDE`) with its ``detail``. A damaged shard gives one ``bad_shard`` item after
    the samples read before the damage. Callers choose which reasons are errors. With DataLoader
    workers the shards are dealt out round-robin, each worker keeping its shards' order.

    Args:
        urls: shard specs (see :func:`~domainclip.core.data.reader.expand_urls`: files, folders, globs).
        transform: applied to each RGB PIL image (e.g. a CLIP ``preprocess``).
        slide_ids: when given, samples of other slides are skipped without decoding their image.

    """

    def __init__(
        self,
        urls: str | os.PathLike | Sequence[str],
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        slide_ids: Collection[str] | None = None,
    ):
        self.urls = expand_urls(urls)
        self.transform = transform
        self.slide_ids = frozenset(slide_ids) if slide_ids is not None else None

    def _item(self, url: str, key: str | None, slide: str | None, skip: str | None, detail: str = "",
              image: Any = None) -> dict[str, Any]:
        return {"image": image, "slide_id": slide, "key": key, "url": url, "skip": skip, "detail": detail}

    def _samples(self, url: str) -> Iterator[dict[str, Any]]:
        tally = CorruptTally()
        for raw in iter_shard(url, tally):
            key = raw.get(K.KEY)
            _, slide, reason = slide_id_of(raw)
            if reason is not None:
                yield self._item(url, key, slide, reason, f"{url} key={key}: {reason}")
                continue
            if self.slide_ids is not None and slide not in self.slide_ids:
                yield self._item(url, key, slide, UNLABELLED_SLIDE, f"slide {slide!r} is not among those asked for")
                continue
            try:
                image: Any = _decode_image(raw)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                yield self._item(url, key, slide, BAD_IMAGE, f"{url} key={key}: {e}")
                continue
            if self.transform is not None:
                image = self.transform(image)
            yield self._item(url, key, slide, None, image=image)
        if tally.counts.get(BAD_SHARD):
            yield self._item(url, None, None, BAD_SHARD, tally.examples[BAD_SHARD])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        urls = self.urls if info is None else self.urls[info.id :: info.num_workers]
        for url in urls:
            yield from self._samples(url)


def collate_patch_batch(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate :class:`PatchShardStream` items: decoded patches stacked, skipped ones listed apart.

    Returns:
        ``{"image": (B, ...) tensor or None, "slide_id": [...], "key": [...], "url": [...],
        "skipped": [item without image, ...]}``; the lists describe the ``B`` decoded patches.

    """
    good = [item for item in items if item["skip"] is None]
    images = [item["image"] for item in good]
    if images and all(isinstance(image, torch.Tensor) for image in images):
        stacked: Any = torch.stack(images)
    else:
        stacked = images or None
    return {
        "image": stacked,
        "slide_id": [item["slide_id"] for item in good],
        "key": [item["key"] for item in good],
        "url": [item["url"] for item in good],
        "skipped": [{k: v for k, v in item.items() if k != "image"} for item in items if item["skip"] is not None],
    }
