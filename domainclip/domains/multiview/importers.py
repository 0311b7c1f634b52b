"""``domainclip prepare multiview import``: captured multi-view image sets, read in their own layouts, into shards.

Two layouts are read (their adapters, with the formats and what could not be verified, are in
:mod:`~domainclip.domains.multiview.datasets`):

- ``mvcap``: OVT's MVCap release, a ``metadata.json`` list of ``{path, caption, obj_id, img_id}``
  (one record per image) beside the image folders; the images of an ``obj_id`` are one object, in
  ``img_id`` order, and their captions become the object's captions (``caption_source: "dataset"``).
  Categories come from a record's ``category`` field or a category map (``--categories``).
- ``mvimgnet``: MVImgNet's ``<class_label>/<instance_id>/images/*.jpg`` folders; the frames of a video
  are one object's views, the category comes from ``mvimgnet_category.txt`` (``--categories``, or
  the file in ``source``), and the caption is ``caption_template`` filled with it
  (``caption_source: "template"``; MVImgNet has no captions).

Each object becomes one sample in the multi-view layout of :mod:`~domainclip.domains.multiview.views`
(``NNN.view.jpg`` members, ``text.json``, ``cls`` when the object has a category, ``json`` meta with
the original file of every view). ``categories.json`` beside the shards lists the categories, the
``cls`` of an object being its category's position there. Views can be subsampled evenly
(``--views``) and resized (``--size``, shorter side). A view that is missing or cannot be decoded is
skipped and counted; an object left with fewer than ``--min-views`` views, or without a caption, is
skipped and counted; when no object could be written the command fails with the counts.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

from domainclip.core.data.corrupt import CorruptSampleError
from domainclip.core.data.writer import FIXED_MTIME, ShardWriter, resize_shorter_side
from domainclip.core.errors import InputError, NothingWrittenError
from domainclip.core.io import atomic_write_text
from domainclip.core.options import PositiveInt, Range, entry_point
from domainclip.domains.multiview.datasets import read_view
from domainclip.domains.multiview.datasets.mvcap import MVCap
from domainclip.domains.multiview.datasets.mvimgnet import NO_FRAMES, MVImgNet
from domainclip.domains.multiview.views import object_sample

__all__ = ["CATEGORIES_FILE", "DUPLICATE_KEY", "NO_CAPTION", "TOO_FEW_VIEWS", "import_views"]

#: The category list written beside the shards (a JSON list; ``cls`` indexes it).
CATEGORIES_FILE = "categories.json"
#: Skip reason of an object left with fewer views than ``min_views``.
TOO_FEW_VIEWS = "too_few_views"
#: Skip reason of an object none of whose kept views has a caption.
NO_CAPTION = "no_caption"
#: Skip reason of an object whose shard key repeats an earlier object's.
DUPLICATE_KEY = "duplicate_key"


@entry_point
def import_views(
    out: Path,
    source: Path,
    *,
    layout: Literal["mvcap", "mvimgnet"] = "mvcap",
    metadata: Path | None = None,
    categories: Path | None = None,
    views: PositiveInt | None = None,
    size: Annotated[int, Range(16)] | None = None,
    min_views: PositiveInt = 1,
    caption_template: str = "a photo of a {category}.",
    image_format: Literal["jpg", "png", "webp"] = "jpg",
    max_count: PositiveInt = 100,
    progress: bool = True,
) -> dict[str, Any]:
    """Import a captured multi-view set (MVCap metadata + images, or MVImgNet object folders) as one sample per object.

    Args:
        out: output folder for the shards and categories.json.
        source: the dataset folder (mvcap: the folder of metadata.json and the image folders it names;
            mvimgnet: the folder of the class folders).
        layout: mvcap (metadata JSON of path, caption, obj_id, img_id) or mvimgnet (<class>/<object>/images/).
        metadata: mvcap: the metadata file (default: <source>/metadata.json).
        categories: mvcap: a category map (JSON {obj_id: category} or obj_id,category CSV); mvimgnet: the
            class list mvimgnet_category.txt (default: the one in source, if any).
        views: keep this many views per object, spread evenly over its views (default: all).
        size: resize every view so that its shorter side has this many pixels (default: keep the size).
        min_views: skip an object left with fewer readable views than this.
        caption_template: mvimgnet: the caption of every object, with {category} filled in.
        image_format: format of the view members.
        max_count: objects per shard.
        progress: show a progress bar.

    Returns:
        ``{"out", "source", "layout", "objects", "views", "categories", "by_category", "shards",
        "skipped": {reason: objects}, "skipped_views": {reason: views}, "skipped_examples": {reason: detail}}``.

    Raises:
        DatasetNotFoundError: ``source`` is not a folder of the layout (what it must hold is named).
        MVCapLayoutError: the metadata or category map is not in its layout.
        InputError: a malformed MVImgNet class list, or ``caption_template`` without ``{category}``.
        NothingWrittenError: every object was skipped (counted by reason).
    """
    from tqdm.auto import tqdm

    if layout == "mvcap":
        dataset: MVCap | MVImgNet = MVCap(source, metadata=metadata, categories=categories, views=views)
    elif layout == "mvimgnet":
        dataset = MVImgNet(source, categories=categories, views=views, caption_template=caption_template)
    else:
        raise InputError(f"layout must be 'mvcap' or 'mvimgnet'; got {layout!r}")
    label_of = {name: i for i, name in enumerate(dataset.classes)}
    skipped: Counter[str] = Counter(getattr(dataset, "skipped", {}))
    examples: dict[str, str] = {}
    if skipped[NO_FRAMES]:
        examples[NO_FRAMES] = f"object folders under {source} without an images/ folder"
    skipped_views: Counter[str] = Counter()
    view_examples: dict[str, str] = {}
    by_category: Counter[str] = Counter()
    keys: set[str] = set()
    written_views = 0
    writer = ShardWriter(out, prefix=layout, max_count=max_count, image_format=image_format, mtime=FIXED_MTIME)
    try:
        for index in tqdm(range(len(dataset)), disable=not progress, unit="object", desc=f"multiview import {layout}"):
            key = dataset.object_key(index)
            if key in keys:
                skipped[DUPLICATE_KEY] += 1
                examples.setdefault(DUPLICATE_KEY, f"object {index} has the shard key {key!r} of an earlier object")
                continue
            picked = dataset.chosen_views(index)
            kept, images = [], []
            for view in picked:
                try:
                    image = read_view(dataset.view_path(view))
                except CorruptSampleError as e:
                    skipped_views[e.reason] += 1
                    view_examples.setdefault(e.reason, e.detail)
                    continue
                kept.append(view)
                images.append(resize_shorter_side(image, size) if size is not None else image)
            if len(images) < min_views or not images:
                skipped[TOO_FEW_VIEWS] += 1
                examples.setdefault(TOO_FEW_VIEWS, f"object {key}: {len(images)} readable of {len(picked)} views "
                                                   f"(min_views {min_views})")
                continue
            captions = dataset.captions(index, kept)
            if not captions:
                skipped[NO_CAPTION] += 1
                examples.setdefault(NO_CAPTION, f"object {key}: every caption of its views is empty")
                continue
            meta = {**dataset.meta(index, kept), "available_views": dataset.available_views(index)}
            writer.write(object_sample(key, images, captions, meta, label=label_of.get(meta["category"]),
                                       image_format=image_format))
            keys.add(key)
            written_views += len(images)
            by_category[str(meta["category"])] += 1
    except BaseException:
        writer.abort()
        raise
    writer.close()
    if not keys:
        counts = skipped + Counter({f"{reason} views": n for reason, n in skipped_views.items()})
        raise NothingWrittenError.from_counts(
            f"multiview/import ({layout})", "objects", f"{len(dataset)} objects of {source}", counts,
            {**examples, **{f"{reason} views": detail for reason, detail in view_examples.items()}},
        )
    if dataset.classes:
        atomic_write_text(Path(out) / CATEGORIES_FILE, json.dumps(dataset.classes, indent=1) + "\n")
    return {
        "out": str(out),
        "source": str(source),
        "layout": layout,
        "objects": len(keys),
        "views": written_views,
        "categories": len(dataset.classes),
        "by_category": dict(sorted(by_category.items())),
        "shards": [p.name for p in writer.written],
        "skipped": dict(sorted(skipped.items())),
        "skipped_views": dict(sorted(skipped_views.items())),
        "skipped_examples": dict(sorted({**examples, **view_examples}.items())),
    }
