"""Fixture writers for the multi-view evaluation tests, with the truth built in.

* :func:`write_view_shards`: held-out objects in the multi-view shard layout
  (:mod:`domainclip.domains.multiview.views`, written through the core's ``ShardWriter``), each view a
  solid colour chosen by the caller, with its pose in the meta, and ``categories.json`` beside the shards;
* :func:`write_imagenet_v`: the same objects as an ImageNet-V-style folder, in ViewFool's per-object
  layout (``<category>_<n>/NNN.png``) or OVT's class folders (``<class>/[<object>/]<n>.png``);
* :data:`VIEWPOINT_SET`: the objects of the hand-computed test (which class each view shows, and where
  the camera stood).

A colour stands for a class (``PALETTE[name]``), so a model that reads the colour of a view (the tests'
oracle) predicts exactly the class the fixture says, and every metric is known in advance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from PIL import Image

from domainclip.core.data.writer import ShardWriter
from domainclip.domains.multiview.views import ViewPose, object_sample

#: The colour each class's views are painted (RGB).
PALETTE: dict[str, tuple[int, int, int]] = {
    "can": (230, 25, 75),
    "cone": (60, 180, 75),
    "coffee_mug": (0, 130, 200),
    "box": (245, 130, 48),
}
#: The categories.json of the hand-computed set: not sorted, and one category no object has.
CATEGORIES = ["cone", "can", "coffee_mug", "box"]


class FixtureObject(NamedTuple):
    """One held-out object: its id, true category, the class each view shows, and each view's camera."""

    object_id: str
    category: str
    shows: tuple[str, ...]
    azimuths: tuple[float, ...]
    elevations: tuple[float, ...]


def _posed(object_id: str, category: str, shows: Sequence[str]) -> FixtureObject:
    """View ``i`` at azimuth ``90 i + 10`` (azimuth bin ``i`` of four), elevation 10 for views 0-1, 40 for 2-3."""
    n = len(shows)
    return FixtureObject(object_id, category, tuple(shows), tuple(90.0 * i + 10.0 for i in range(n)),
                         tuple(10.0 if i < 2 else 40.0 for i in range(n)))


#: The hand-computed set (20 views, 6 objects). Right views: 4 + 3 + 3 + 0 + 2 + 1 = 13 (acc1 0.65);
#: objects all right: A, C, F (worst_view_acc1 3/6); consistent among the five multi-view objects: A, C, D
#: (consistency 3/5); pairwise agreement A 1, B 3/6, C 1, D 1, E 1/6 (mean 11/15).
VIEWPOINT_SET: tuple[FixtureObject, ...] = (
    _posed("A", "can", ["can", "can", "can", "can"]),
    _posed("B", "can", ["can", "can", "cone", "can"]),
    _posed("C", "cone", ["cone", "cone", "cone"]),
    _posed("D", "coffee_mug", ["cone", "cone", "cone", "cone"]),
    _posed("E", "coffee_mug", ["coffee_mug", "can", "cone", "coffee_mug"]),
    _posed("F", "cone", ["cone"]),
)


def solid_view(colour: Sequence[int], seed: int, size: int = 8) -> np.ndarray:
    """A ``size`` x ``size`` RGB view of ``colour`` with +-3 noise (seeded)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.asarray(colour, dtype=np.int16) + rng.integers(-3, 4, (size, size, 3)), 0, 255)
    return pixels.astype(np.uint8)


def write_view_shards(
    root: Path,
    objects: Sequence[FixtureObject] = VIEWPOINT_SET,
    *,
    categories: Sequence[str] | None = CATEGORIES,
    max_count: int = 4,
    with_poses: bool = True,
    corrupt: Mapping[str, int] | None = None,
) -> Path:
    """Write ``objects`` as multi-view shards under ``root`` (several shards of ``max_count`` objects).

    Args:
        root: the shard folder.
        objects: what to write.
        categories: written as ``categories.json`` (``None``: no file); ``cls`` is the index in it.
        max_count: objects per shard.
        with_poses: record each view's azimuth and elevation in the meta.
        corrupt: object id -> a view whose image bytes are cut short (an undecodable view).
    """
    root.mkdir(parents=True, exist_ok=True)
    if categories is not None:
        (root / "categories.json").write_text(json.dumps(list(categories)))
    with ShardWriter(root, prefix="heldout", max_count=max_count, mtime=0) as writer:
        for n, obj in enumerate(objects):
            views = [solid_view(PALETTE[cls], seed=100 * n + i) for i, cls in enumerate(obj.shows)]
            poses = [ViewPose(i, azimuth=a, elevation=e, distance=2.5, fov=40.0) if with_poses else ViewPose(i)
                     for i, (a, e) in enumerate(zip(obj.azimuths, obj.elevations, strict=True))]
            meta = {"object_id": obj.object_id, "category": obj.category, "source": "test fixture",
                    "license": "CC0-1.0", "views": [p.to_json() for p in poses], "caption_source": "template"}
            label = list(categories).index(obj.category) if categories is not None else None
            sample = object_sample(f"obj_{obj.object_id}", views, [f"a 3D render of a {obj.category}"], meta,
                                   label=label, image_format="png")
            if corrupt and obj.object_id in corrupt:
                member = f"{corrupt[obj.object_id]:03d}.view.png"
                sample[member] = sample[member][:40]
            writer.write(sample)
    return root


def write_imagenet_v(
    root: Path,
    objects: Sequence[FixtureObject] = VIEWPOINT_SET,
    *,
    layout: Literal["objects", "classes", "flat"] = "objects",
    folder_names: Mapping[str, str] | None = None,
) -> Path:
    """Write ``objects`` as ImageNet-V-style PNG files under ``root``.

    Args:
        root: the dataset folder.
        objects: what to write (poses are not written: the published sets have none).
        layout: ``objects`` (``<category>_<k>/NNN.png``, ``k`` counting a category's objects from 1),
            ``classes`` (``<class>/<object_id>/<i>.png``) or ``flat`` (``<class>/<object_id>_<i>.png``:
            no object folders).
        folder_names: category -> class-folder name (``classes`` and ``flat``; default the category).
    """
    seen: dict[str, int] = {}
    for n, obj in enumerate(objects):
        seen[obj.category] = seen.get(obj.category, 0) + 1
        folder = (folder_names or {}).get(obj.category, obj.category)
        for i, cls in enumerate(obj.shows):
            if layout == "objects":
                path = root / f"{obj.category}_{seen[obj.category]}" / f"{i:03d}.png"
            elif layout == "classes":
                path = root / folder / obj.object_id / f"{i}.png"
            else:
                path = root / folder / f"{obj.object_id}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(solid_view(PALETTE[cls], seed=100 * n + i)).save(path)
    return root
