"""MVCap (Multi-View Caption, Omniview-Tuning): objects seen from many viewpoints, one caption per view.

**Format** (as the OVT README describes its Hugging Face release ``RSW233/MVCap-4M``)::

    dataset_source/
      metadata.json          [{"path": "./views/54cadb86f3db4aa6920f673aeff0d1e3/026.png",
                               "caption": "The rocking chair in the image is made of metal ...",
                               "obj_id": 3177, "img_id": 317726}, ...]
      views/<uid>/NNN.png    Objaverse renderings (views.zip)
      im3d/...               IM3D renderings (im3ds.zip)
      mvimgnet/...           MVImgNet frames (mvimgnets.zip)

``metadata.json`` is one JSON list with one record per image; the images of an object share its
``obj_id`` and are put in ``img_id`` order. A relative ``path`` is read from the folder given as
``root`` (the folder holding ``metadata.json``; OVT's README says the paths may need to be made
absolute, and absolute ones are read as they are).

**Classes.** MVCap has no category field. A category comes from a record's optional ``category``
field or from a category map (``categories``: a JSON object ``{obj_id or object folder: category}``
or a CSV/TSV of ``obj_id,category`` rows); without either, objects have ``category: None``.

**Licence.** The OVT code is MIT; the release states no licence for the data that could be
checked here. The views come from Objaverse (per-object Creative Commons licences), IM3D and
MVImgNet (research use after a request form): their terms apply (see ``data_cards/multiview/mvcap.md``).

**Citation.** Ruan et al., "Omniview-Tuning: Boosting Viewpoint Invariance of Vision-Language
Pre-training Models", ECCV 2024 (arXiv:2404.12139).

**Not verified here** (the archives could not be downloaded): the folder names inside the three
zips (the README's tree shows ``views/``, ``im3d/`` and ``mvimgnet/`` while the archives are named
``views.zip``, ``im3ds.zip`` and ``mvimgnets.zip``), whether every record has all four fields, and
whether ``img_id`` is always ``obj_id * 100 + view`` as in the README's example. The adapter relies
only on the four fields and on ``path`` being readable from ``root``.

**Memory.** The index holds one ``(img_id, path, caption)`` entry per image (the whole of
``metadata.json`` has to be read to group images by object): about 250 bytes per image, so roughly
1 GB for the full 4.6 M images. Images are read one object at a time.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from domainclip.core.errors import DatasetNotFoundError, InputError, InputNotFoundError
from domainclip.core.io import safe_key
from domainclip.domains.multiview.datasets import even_indices, read_view

__all__ = ["LICENSE", "MVCAP_LAYOUT", "MVCap", "MVCapLayoutError", "MVCapObject", "MVCapView",
           "read_category_map", "read_mvcap_metadata", "subset_of"]

#: What a metadata file holds, for messages.
MVCAP_LAYOUT = ('a JSON list of {"path": "./views/<uid>/026.png", "caption": "...", "obj_id": 3177, '
                '"img_id": 317726}, one per image (MVCap metadata.json)')
#: The licence recorded in each object's meta.
LICENSE = "see the source dataset of each object (Objaverse per-object CC licences, IM3D, MVImgNet)"
#: The first folder of a view's path -> the dataset it was drawn from.
_SUBSETS = {"views": "objaverse", "im3d": "im3d", "im3ds": "im3d", "mvimgnet": "mvimgnet", "mvimgnets": "mvimgnet"}


class MVCapLayoutError(InputError):
    """A metadata or category file that is not in the layout MVCap publishes; the message names the file."""


@dataclass(frozen=True)
class MVCapView:
    """One image of an object, as its metadata record gives it.

    Args:
        path: the image file (resolved against the dataset root).
        relpath: ``path`` as the record writes it.
        caption: its caption (stripped; may be empty).
        img_id: the record's ``img_id``.
    """

    path: Path
    relpath: str
    caption: str
    img_id: int | str


@dataclass(frozen=True)
class MVCapObject:
    """One object: its id, views in ``img_id`` order and category.

    Args:
        obj_id: the records' ``obj_id``.
        views: its images, in ``img_id`` order.
        category: from the records' ``category`` field or the category map; ``None`` when neither has it.
        duplicates: records dropped because their ``img_id`` repeated an earlier one of this object.
    """

    obj_id: int | str
    views: tuple[MVCapView, ...]
    category: str | None
    duplicates: int = 0

    @property
    def folder(self) -> str:
        """The folder of the object's first view (the Objaverse uid for ``views/<uid>/NNN.png``)."""
        return Path(self.views[0].relpath).parent.name

    @property
    def subset(self) -> str:
        """The dataset its views were drawn from (``objaverse``, ``im3d``, ``mvimgnet``, or ``unknown``)."""
        return subset_of(self.views[0].relpath)


def subset_of(relpath: str) -> str:
    """The source dataset of an MVCap image from the first folder of its path (``./views/...`` -> ``objaverse``).

    Args:
        relpath: the record's ``path``.
    """
    parts = [p for p in Path(relpath).parts if p not in (".", "/")]
    return _SUBSETS.get(parts[0].lower(), "unknown") if len(parts) > 1 else "unknown"


def _order(value: int | str) -> tuple[int, int | str]:
    return (0, value) if isinstance(value, int) else (1, str(value))


def _load_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputNotFoundError(f"{what} {path} does not exist") from None
    except UnicodeDecodeError as e:
        raise MVCapLayoutError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        problem = f"not valid JSON ({e.msg} at line {e.lineno})"
        raise MVCapLayoutError(f"{path}: {problem}; expected {MVCAP_LAYOUT}") from None


def read_category_map(path: str | Path) -> dict[str, str]:
    """Read a category map: ``{obj_id or object folder: category}`` as JSON, or ``obj_id,category`` CSV/TSV rows.

    Args:
        path: a ``.json`` file holding one object, or a ``.csv``/``.tsv``/``.txt`` file of two columns
            (a header row whose second cell is ``category`` is skipped).

    Returns:
        key (as text) -> category (stripped).

    Raises:
        InputNotFoundError: the file does not exist.
        MVCapLayoutError: it is not in either layout, or a category is empty.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = _load_json(path, "category map")
        if not isinstance(data, dict):
            raise MVCapLayoutError(f"{path}: a JSON category map must be an object {{obj_id: category}}; "
                                   f"got a {type(data).__name__}")
        rows = [(str(k), v) for k, v in data.items()]
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise InputNotFoundError(f"category map {path} does not exist") from None
        delimiter = "\t" if "\t" in text.split("\n", 1)[0] else ","
        rows = [tuple(cell.strip() for cell in row) for row in csv.reader(text.splitlines(), delimiter=delimiter)
                if row and any(cell.strip() for cell in row)]
        if rows and len(rows[0]) >= 2 and rows[0][1].lower() == "category":
            rows = rows[1:]
        for lineno, row in enumerate(rows, 1):
            if len(row) != 2:
                raise MVCapLayoutError(f"{path}: row {lineno} has {len(row)} cells; expected obj_id,category")
    mapping = {}
    for key, value in rows:
        if not isinstance(value, str) or not value.strip():
            raise MVCapLayoutError(f"{path}: the category of {key!r} is {value!r}, not a non-empty string")
        mapping[key] = value.strip()
    return mapping


def read_mvcap_metadata(
    path: str | Path, root: str | Path | None = None, categories: Mapping[str, str] | None = None
) -> list[MVCapObject]:
    """Read MVCap's ``metadata.json`` and group its images into objects.

    Args:
        path: the metadata file.
        root: the folder relative paths are read from (default: the metadata file's folder).
        categories: an object's category by ``obj_id`` (as text) or by its folder name; it overrides a
            record's ``category`` field.

    Returns:
        The objects sorted by ``obj_id`` (numbers first, in numeric order), each with its views in
        ``img_id`` order.

    Raises:
        InputNotFoundError: the file does not exist.
        MVCapLayoutError: it is not JSON, not a list, or a record lacks a field or has one of the
            wrong type (the first problem is named: which record, which field).
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    data = _load_json(path, "metadata file")
    if not isinstance(data, list):
        found = f"an object with keys {', '.join(sorted(data)[:6])}" if isinstance(data, dict) else (
            f"a JSON {type(data).__name__}")
        raise MVCapLayoutError(f"{path}: found {found}; expected {MVCAP_LAYOUT}")
    groups: dict[int | str, dict[int | str, MVCapView]] = {}
    named: dict[int | str, str] = {}
    duplicates: dict[int | str, int] = {}
    for position, record in enumerate(data):
        where = f"record {position}"
        if not isinstance(record, dict):
            raise MVCapLayoutError(f"{path}: {where} is a {type(record).__name__}, not an object; "
                                   f"expected {MVCAP_LAYOUT}")
        for key, kinds in (("path", (str,)), ("caption", (str,)), ("obj_id", (int, str)), ("img_id", (int, str))):
            value = record.get(key)
            if not isinstance(value, kinds) or isinstance(value, bool) or (key == "path" and not value.strip()):
                got = "missing" if key not in record else f"{value!r}"
                raise MVCapLayoutError(f"{path}: {where} field {key!r} is {got}; expected {MVCAP_LAYOUT}")
        obj_id, img_id, relpath = record["obj_id"], record["img_id"], record["path"]
        views = groups.setdefault(obj_id, {})
        if img_id in views:
            duplicates[obj_id] = duplicates.get(obj_id, 0) + 1
            continue
        file = Path(relpath)
        views[img_id] = MVCapView(file if file.is_absolute() else root / file, relpath, record["caption"].strip(),
                                  img_id)
        category = record.get("category")
        if isinstance(category, str) and category.strip():
            named.setdefault(obj_id, category.strip())
    del data
    objects = []
    for obj_id in sorted(groups, key=_order):
        views = tuple(groups[obj_id][i] for i in sorted(groups[obj_id], key=_order))
        folder = Path(views[0].relpath).parent.name
        category = None
        if categories is not None:
            category = categories.get(str(obj_id), categories.get(folder))
        objects.append(MVCapObject(obj_id, views, category or named.get(obj_id), duplicates.get(obj_id, 0)))
    return objects


class MVCap(Dataset):
    """MVCap objects from OVT's ``metadata.json``: every view of an object with its per-view captions.

    Item ``i`` is ``{"views": [PIL RGB images in img_id order], "text": [the views' non-empty
    captions, in view order], "meta": {"object_id", "category", "source", "license", "subset",
    "folder", "views": [{"index", "extra": {"file", "img_id", "caption"}}], "caption_source": "dataset"}}``.
    See the module docstring for the format, classes, licence, citation and what could not be verified.

    Args:
        root: the folder holding ``metadata.json`` and the image folders its paths name.
        metadata: the metadata file, if not ``root/metadata.json``.
        categories: a category map file (see :func:`read_category_map`).
        views: keep this many views per object, spread evenly over its ``img_id`` order (default: all).
        transforms: applied to each item dict.

    Raises:
        DatasetNotFoundError: ``root`` is not a folder or has no metadata file (the message says
            what the folder must hold).
        MVCapLayoutError: the metadata or category file is not in its layout.
        CorruptSampleError: from ``__getitem__``, a view that is missing or cannot be decoded.
    """

    #: the folder layout, for messages
    expected = "metadata.json (path, caption, obj_id, img_id per image) beside the image folders it names (views/ ...)"

    def __init__(
        self,
        root: str | Path,
        *,
        metadata: str | Path | None = None,
        categories: str | Path | None = None,
        views: int | None = None,
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"MVCap not found: {self.root} is not a folder; expected {self.expected}")
        self.metadata = Path(metadata) if metadata is not None else self.root / "metadata.json"
        if not self.metadata.is_file():
            raise DatasetNotFoundError(f"MVCap not found at {self.root}: no {self.metadata.name}; "
                                       f"expected {self.expected}")
        if views is not None and views < 1:
            raise InputError(f"views must be >= 1; got {views}")
        mapping = read_category_map(categories) if categories is not None else None
        self.objects = read_mvcap_metadata(self.metadata, self.root, mapping)
        self.views = views
        self.transforms = transforms
        #: the sorted categories of the objects (empty when none has one)
        self.classes = sorted({o.category for o in self.objects if o.category is not None})

    def __len__(self) -> int:
        return len(self.objects)

    def chosen_views(self, index: int) -> list[MVCapView]:
        """The views of object ``index`` the dataset gives (all, or ``views`` spread evenly).

        Args:
            index: the object's position.
        """
        views = self.objects[index].views
        return [views[i] for i in even_indices(len(views), self.views)]

    def view_path(self, view: MVCapView) -> Path:
        """The image file of a view given by :meth:`chosen_views`.

        Args:
            view: the view.
        """
        return view.path

    def captions(self, index: int, views: list[MVCapView]) -> list[str]:
        """The captions of object ``index`` with the given views: theirs, non-empty ones, in view order.

        Args:
            index: the object's position.
            views: the views kept, in order.
        """
        return [v.caption for v in views if v.caption]

    def object_key(self, index: int) -> str:
        """The shard key of object ``index`` (its ``obj_id``, made safe).

        Args:
            index: the object's position.
        """
        return safe_key(str(self.objects[index].obj_id))

    def available_views(self, index: int) -> int:
        """How many views object ``index`` has in the metadata.

        Args:
            index: the object's position.
        """
        return len(self.objects[index].views)

    def meta(self, index: int, views: list[MVCapView]) -> dict[str, Any]:
        """The meta of object ``index`` with the given views (the ``json`` member ``import_views`` writes).

        Args:
            index: the object's position.
            views: the views kept, in order.
        """
        obj = self.objects[index]
        return {
            "object_id": str(obj.obj_id), "category": obj.category, "source": f"mvcap:{obj.subset}",
            "license": LICENSE, "dataset": "mvcap", "subset": obj.subset, "folder": obj.folder,
            "caption_source": "dataset",
            "views": [{"index": i, "extra": {"file": v.relpath, "img_id": v.img_id, "caption": v.caption or None}}
                      for i, v in enumerate(views)],
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Object ``index`` as ``{"views", "text", "meta"}``."""
        views = self.chosen_views(index)
        item = {"views": [read_view(v.path) for v in views], "text": self.captions(index, views),
                "meta": self.meta(index, views)}
        return self.transforms(item) if self.transforms is not None else item
