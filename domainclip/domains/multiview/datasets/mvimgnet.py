"""MVImgNet: real objects filmed around, one folder of frames per object (video).

**Format** (the MVImgNet README's folder structure, unzipped)::

    ROOT/
      <class_label>/                 an integer label ("0", "1", ... "267"; 238 are used)
        <instance_id>/               8 hex digits ("0000251e", as in MVPNet/split/*.json)
          images/*.jpg               the frames, in capture order
          sparse/0/cameras.bin ...   COLMAP cameras, images and points (not read)
      mvimgnet_category.txt          optional copy of the repository's class list

``mvimgnet_category.txt`` (in the MVImgNet GitHub repository, not in the archives) maps labels to
names, one ``label,name`` line each (``0,bag``, ``1,bottle``, ``12,remote control``; some names carry
trailing spaces, which are stripped; labels 80, 81, 84, ... are absent). Without it, the class label
itself is the category.

**Classes.** 238 (6.5 M frames of 219,188 videos). ``classes`` is the sorted list of the categories
of the objects found.

**Licence.** Research use after a request form (the download link and password come by e-mail); no
open licence is stated. The frames are real captures of everyday objects, some in homes.

**Citation.** Yu et al., "MVImgNet: A Large-scale Dataset of Multi-view Images", CVPR 2023.

**Not verified here** (the 3.4 TB archives could not be downloaded): the frame file names inside
``images/`` (the adapter orders them by the numbers in their names, so ``000.jpg`` ... or
``frame_10.jpg`` both come in capture order if numbered) and whether every object folder has
``images/``; an object without frames is left out and counted in :attr:`MVImgNet.skipped`. COLMAP
poses are not read (``meta["views"]`` records the frame file of each view, not its pose).

**Memory.** The index holds one ``(class label, instance id)`` entry per object; frames are listed
when an object is read.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from domainclip.core.data.labelled import visible_dirs
from domainclip.core.errors import DatasetNotFoundError, InputError, InputNotFoundError
from domainclip.core.io import safe_key
from domainclip.domains.multiview.datasets import IMAGE_SUFFIXES, even_indices, natural_key, read_view

__all__ = ["CATEGORY_FILE", "LICENSE", "NO_FRAMES", "MVImgNet", "MVImgNetObject", "read_mvimgnet_categories"]

#: The class list's file name in the MVImgNet repository.
CATEGORY_FILE = "mvimgnet_category.txt"
#: The licence recorded in each object's meta.
LICENSE = "MVImgNet terms of use (research, by request form)"
#: Skip reason of an object folder without frames in ``images/``.
NO_FRAMES = "no_frames"


@dataclass(frozen=True)
class MVImgNetObject:
    """One object (one video): where its frames are and its category.

    Args:
        class_label: the class folder's name.
        instance_id: the object folder's name.
        folder: the object folder.
        category: the class name (from the class list) or the class label.
    """

    class_label: str
    instance_id: str
    folder: Path
    category: str

    @property
    def object_id(self) -> str:
        """``<class_label>/<instance_id>``: unique in the dataset."""
        return f"{self.class_label}/{self.instance_id}"

    def frames(self) -> list[Path]:
        """The object's frame files in ``images/``, in the order of the numbers in their names."""
        images = self.folder / "images"
        if not images.is_dir():
            return []
        return sorted((p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                       and p.is_file()), key=lambda p: natural_key(p.name))


def read_mvimgnet_categories(path: str | Path) -> dict[str, str]:
    """Read MVImgNet's class list: ``label,name`` lines (``mvimgnet_category.txt``).

    Args:
        path: the class list (a header line whose first cell is not a number is skipped).

    Returns:
        class label (as text) -> class name (stripped).

    Raises:
        InputNotFoundError: the file does not exist.
        InputError: a line is not ``label,name`` or a label repeats; the message names the file and line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputNotFoundError(f"MVImgNet class list {path} does not exist") from None
    names: dict[str, str] = {}
    for lineno, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or not "".join(row).strip():
            continue
        label = row[0].strip()
        if not label.isdigit():
            if lineno == 1:
                continue  # a header
            raise InputError(f"{path}:{lineno}: {','.join(row)!r} is not 'label,name' (e.g. '0,bag')")
        name = ",".join(row[1:]).strip()
        if not name:
            raise InputError(f"{path}:{lineno}: class {label} has no name; expected 'label,name' (e.g. '0,bag')")
        if label in names:
            raise InputError(f"{path}:{lineno}: class {label} is listed twice ({names[label]!r} and {name!r})")
        names[label] = name
    if not names:
        raise InputError(f"{path}: no 'label,name' line (e.g. '0,bag')")
    return names


class MVImgNet(Dataset):
    """MVImgNet objects: the frames of each video as views, with a caption made from the class name.

    Item ``i`` is ``{"views": [PIL RGB frames], "text": [caption_template with the category],
    "meta": {"object_id", "category", "class_label", "instance_id", "source", "license", "views":
    [{"index", "extra": {"file"}}], "caption_source": "template"}}``. See the module
    docstring for the format, classes, licence, citation and what could not be verified.

    Args:
        root: the folder holding the class folders.
        categories: the class list (default: ``root/mvimgnet_category.txt`` when present).
        views: keep this many frames per object, spread evenly over the video (default: all).
        caption_template: the objects' caption, ``{category}`` filled in (MVImgNet has no captions).
        transforms: applied to each item dict.

    Raises:
        DatasetNotFoundError: ``root`` is not a folder, or holds no ``<class>/<object>/images/``.
        InputError: the class list is malformed, or ``caption_template`` lacks ``{category}``.
        CorruptSampleError: from ``__getitem__``, a frame that cannot be decoded.
    """

    #: the folder layout, for messages
    expected = "<class_label>/<instance_id>/images/*.jpg (MVImgNet's unzipped layout)"

    def __init__(
        self,
        root: str | Path,
        *,
        categories: str | Path | None = None,
        views: int | None = None,
        caption_template: str = "a photo of a {category}.",
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"MVImgNet not found: {self.root} is not a folder; expected {self.expected}")
        if "{category}" not in caption_template:
            raise InputError(f"caption_template must contain '{{category}}'; got {caption_template!r}")
        if views is not None and views < 1:
            raise InputError(f"views must be >= 1; got {views}")
        if categories is None and (self.root / CATEGORY_FILE).is_file():
            categories = self.root / CATEGORY_FILE
        self.category_file = Path(categories) if categories is not None else None
        names = read_mvimgnet_categories(self.category_file) if self.category_file is not None else {}
        self.views = views
        self.caption_template = caption_template
        self.transforms = transforms
        #: object folders left out, by reason (``no_frames``: no ``images/`` folder or no frame in it)
        self.skipped: Counter[str] = Counter()
        self.objects: list[MVImgNetObject] = []
        for label in sorted(visible_dirs(self.root), key=natural_key):
            for instance in visible_dirs(self.root / label):
                folder = self.root / label / instance
                if not (folder / "images").is_dir():
                    self.skipped[NO_FRAMES] += 1
                    continue
                self.objects.append(MVImgNetObject(label, instance, folder, names.get(label, label)))
        if not self.objects:
            raise DatasetNotFoundError(f"MVImgNet not found at {self.root}: no object folder with images/; "
                                       f"expected {self.expected}")
        #: the sorted categories of the objects found
        self.classes = sorted({o.category for o in self.objects})

    def __len__(self) -> int:
        return len(self.objects)

    def caption(self, index: int) -> str:
        """The caption of object ``index``: ``caption_template`` with its category.

        Args:
            index: the object's position.
        """
        return self.caption_template.format(category=self.objects[index].category)

    def chosen_views(self, index: int) -> list[Path]:
        """The frames of object ``index`` the dataset gives (all, or ``views`` spread evenly).

        Args:
            index: the object's position.
        """
        frames = self.objects[index].frames()
        return [frames[i] for i in even_indices(len(frames), self.views)]

    def view_path(self, view: Path) -> Path:
        """The image file of a view given by :meth:`chosen_views` (the frame itself).

        Args:
            view: the frame.
        """
        return view

    def captions(self, index: int, views: list[Path]) -> list[str]:
        """The captions of object ``index``: its one caption from ``caption_template``, whatever the views.

        Args:
            index: the object's position.
            views: the frames kept (unused: every frame shares the caption).
        """
        return [self.caption(index)]

    def object_key(self, index: int) -> str:
        """The shard key of object ``index``: ``<class_label>_<instance_id>``, made safe.

        Args:
            index: the object's position.
        """
        obj = self.objects[index]
        return safe_key(f"{obj.class_label}_{obj.instance_id}")

    def available_views(self, index: int) -> int:
        """How many frames object ``index`` has.

        Args:
            index: the object's position.
        """
        return len(self.objects[index].frames())

    def meta(self, index: int, frames: list[Path]) -> dict[str, Any]:
        """The meta of object ``index`` with the given frames (the ``json`` member ``import_views`` writes).

        Args:
            index: the object's position.
            frames: the frames kept, in order.
        """
        obj = self.objects[index]
        return {
            "object_id": obj.object_id, "category": obj.category, "class_label": obj.class_label,
            "instance_id": obj.instance_id, "source": "mvimgnet", "license": LICENSE, "dataset": "mvimgnet",
            "caption_source": "template",
            "views": [{"index": i, "extra": {"file": f"{obj.class_label}/{obj.instance_id}/images/{f.name}"}}
                      for i, f in enumerate(frames)],
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Object ``index`` as ``{"views", "text", "meta"}``."""
        frames = self.chosen_views(index)
        item = {"views": [read_view(f) for f in frames], "text": [self.caption(index)],
                "meta": self.meta(index, frames)}
        return self.transforms(item) if self.transforms is not None else item
