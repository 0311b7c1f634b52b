"""Tiny captured multi-view sets in their published layouts, truth built in: MVCap, MVImgNet, ImageNet-V.

- MVCap (OVT's release): ``metadata.json``, a list of ``{"path": "./views/<32-hex uid>/NNN.png",
  "caption", "obj_id", "img_id"}`` with ``img_id = obj_id * 100 + view`` as in the README's example,
  records shuffled (the reader must group and order them), beside ``views/<uid>/NNN.png`` (Objaverse
  renderings) and ``im3d/<name>/NNN.png``.
- MVImgNet: ``<class_label>/<8-hex instance_id>/images/<n>.jpg`` and ``mvimgnet_category.txt`` lines
  copied from the repository's file (``0,bag`` ... ``203,Toy butterfly `` with its trailing space).
- ImageNet-V: ViewFool's per-object folders (``apple_2/000.png``) or OVT's class folders, and a
  ``gt_label_imv.txt``-style name list.

Every view is one flat colour drawn from (seed, object, view), so a test can tell which view a
decoded image is: :func:`colour_of` gives it back. Views are PNG (MVCap, ImageNet-V) or high-quality
JPEG (MVImgNet, as released); sizes are small and not square so resizing is visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

#: Lines of MVImgNet's ``mvimgnet_category.txt`` the fixture uses (copied as published).
MVIMGNET_CATEGORY_LINES = ("0,bag", "1,bottle", "12,remote control", "17,mug", "203,Toy butterfly ")
#: The categories of the MVCap fixture's objects, in turn.
MVCAP_CATEGORIES = ("chair", "mug", "lamp")
_CAPTIONS = ("The {c} in the image is made of metal.", "A {c} seen from the side.", "A close view of a {c}.",
             "The {c} stands on a white background.", "A small {c} with a plain surface.")


def colour_of(seed: int, obj: int, view: int) -> tuple[int, int, int]:
    """The flat RGB colour of view ``view`` of object ``obj`` in the set ``seed``."""
    rng = np.random.default_rng([seed, obj, view])
    return tuple(int(v) for v in rng.integers(20, 236, size=3))


def _write_view(path: Path, colour: tuple[int, int, int], size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    if path.suffix == ".jpg":
        image.save(path, quality=98, subsampling=0)
    else:
        image.save(path)


@dataclass
class MVCapObjectTruth:
    """One MVCap object: its id, folder, category and views (relative path, caption, img_id, colour) in order."""

    obj_id: int
    folder: str
    subset: str
    category: str
    views: list[tuple[str, str, int, tuple[int, int, int]]] = field(default_factory=list)


@dataclass
class MVCapTruth:
    """An MVCap fixture: its root, metadata file and objects sorted by ``obj_id``."""

    root: Path
    metadata: Path
    objects: list[MVCapObjectTruth]


def write_mvcap(root: Path, *, n_objects: int = 4, views: int = 5, seed: int = 0, size: tuple[int, int] = (40, 32),
                with_category_field: bool = False) -> MVCapTruth:
    """Write an MVCap-layout set of ``n_objects`` objects of ``views`` views each under ``root``.

    Object ``k`` has ``obj_id = 3177 + 7 * k`` (ids are not consecutive), category
    ``MVCAP_CATEGORIES[k % 3]``; the last object comes from IM3D (``./im3d/...``), the others from
    Objaverse (``./views/<uid>/...``). ``with_category_field`` adds a ``category`` to each record
    (MVCap's own records have none).
    """
    rng = np.random.default_rng(seed)
    objects, records = [], []
    for k in range(n_objects):
        obj_id = 3177 + 7 * k
        subset = "im3d" if k == n_objects - 1 and n_objects > 1 else "objaverse"
        uid = f"{rng.integers(0, 2**63):016x}{rng.integers(0, 2**63):016x}"  # Objaverse uids: 32 hex digits
        folder = uid if subset == "objaverse" else f"im3d_{k:04d}"
        category = MVCAP_CATEGORIES[k % len(MVCAP_CATEGORIES)]
        truth = MVCapObjectTruth(obj_id, folder, subset, category)
        for v in range(views):
            relpath = f"./{'views' if subset == 'objaverse' else 'im3d'}/{folder}/{v:03d}.png"
            caption = _CAPTIONS[v % len(_CAPTIONS)].format(c=category)
            colour = colour_of(seed, k, v)
            _write_view(root / relpath, colour, size)
            truth.views.append((relpath, caption, obj_id * 100 + v, colour))
            record = {"path": relpath, "caption": caption, "obj_id": obj_id, "img_id": obj_id * 100 + v}
            if with_category_field:
                record["category"] = category
            records.append(record)
        objects.append(truth)
    order = rng.permutation(len(records))
    metadata = root / "metadata.json"
    metadata.write_text(json.dumps([records[i] for i in order], indent=1), encoding="utf-8")
    return MVCapTruth(root, metadata, objects)


def write_category_map(path: Path, truth: MVCapTruth, *, by: str = "obj_id") -> Path:
    """Write a category map of ``truth``'s objects keyed by ``obj_id`` or ``folder`` (JSON, or CSV for ``.csv``)."""
    rows = [(str(o.obj_id) if by == "obj_id" else o.folder, o.category) for o in truth.objects]
    if path.suffix == ".csv":
        path.write_text("obj_id,category\n" + "".join(f"{k},{c}\n" for k, c in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(dict(rows)), encoding="utf-8")
    return path


@dataclass
class MVImgNetObjectTruth:
    """One MVImgNet object: class label, instance id, category and frame colours in capture order."""

    class_label: str
    instance_id: str
    category: str
    frames: list[tuple[str, tuple[int, int, int]]] = field(default_factory=list)


def write_mvimgnet(root: Path, *, labels: tuple[str, ...] = ("0", "17", "203"), per_class: int = 2,
                   frames: int = 12, seed: int = 0, size: tuple[int, int] = (48, 36),
                   category_file: bool = True) -> list[MVImgNetObjectTruth]:
    """Write MVImgNet's layout under ``root``: ``per_class`` objects of ``frames`` frames per class label.

    Frames are named ``1.jpg`` ... ``12.jpg`` (so that capture order differs from name order) and
    ``mvimgnet_category.txt`` holds :data:`MVIMGNET_CATEGORY_LINES` unless ``category_file`` is false.

    Returns:
        The objects in (natural class label, instance id) order.
    """
    names = {line.split(",", 1)[0]: line.split(",", 1)[1].strip() for line in MVIMGNET_CATEGORY_LINES}
    rng = np.random.default_rng(seed)
    objects = []
    for c, label in enumerate(labels):
        instances = sorted(f"{int(rng.integers(0, 2**32)):08x}" for _ in range(per_class))
        for j, instance in enumerate(instances):
            truth = MVImgNetObjectTruth(label, instance, names[label] if category_file else label)
            for f in range(frames):
                colour = colour_of(seed, c * 100 + j, f)
                _write_view(root / label / instance / "images" / f"{f + 1}.jpg", colour, size)
                truth.frames.append((f"{f + 1}.jpg", colour))
            objects.append(truth)
    if category_file:
        (root / "mvimgnet_category.txt").write_text("\n".join(MVIMGNET_CATEGORY_LINES) + "\n", encoding="utf-8")
    return objects


#: ViewFool object folders the ImageNet-V fixture writes, and their classes.
IMAGENET_V_OBJECTS = {"apple_2": "apple", "sofa_2": "sofa", "sofa_3": "sofa", "traffic_light": "traffic_light",
                      "mic": "mic"}


def write_imagenet_v(root: Path, *, layout: str = "objects", renders: int = 3, seed: int = 0,
                     size: tuple[int, int] = (24, 24)) -> dict[str, list[tuple[int, int, int]]]:
    """Write an ImageNet-V-style folder: ViewFool's ``<object>/NNN.png`` or OVT's ``<class>/<object>_NNN.png``.

    Returns:
        folder name -> the colours of its images in file order.
    """
    colours: dict[str, list[tuple[int, int, int]]] = {}
    for k, (obj, cls) in enumerate(sorted(IMAGENET_V_OBJECTS.items())):
        folder = obj if layout == "objects" else cls
        for v in range(renders):
            colour = colour_of(seed, k, v)
            name = f"{v:03d}.png" if layout == "objects" else f"{obj}_{v:03d}.png"
            _write_view(root / folder / name, colour, size)
            colours.setdefault(folder, []).append(colour)
    return colours
