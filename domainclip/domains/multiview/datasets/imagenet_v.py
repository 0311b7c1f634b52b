"""ImageNet-V and ImageNet-V+: ImageNet classes seen from adversarial viewpoints.

**ImageNet-V** (ViewFool, Dong et al., NeurIPS 2022): 10,000 renderings of 100 objects (NeRFs of
BlenderKit models in ImageNet classes), 400 x 400, found by the ViewFool attack. ViewFool's
renderer writes each object's views as ``NNN.png`` into a folder named after the object, with a
``_2``, ``_3`` ... suffix for a second, third object of a class (``apple_2``, ``sofa_5``,
``traffic_light``). **ImageNet-V+** (VIAT, Ruan et al., ICCV 2023): 100,000 adversarial viewpoints
of IM3D objects captured by GMVFool, 100 ImageNet classes.

**Layouts read.**

``layout="classes"`` (default): one folder per class, read like torchvision's ``ImageFolder``
(images anywhere below the class folder, classes sorted by folder name). This is how OVT evaluates
both sets (``dataset_source/imagenet-v/`` and ``dataset_source/imagenet-v+/`` through
``ImageFolder``), mapping the ``k``-th sorted folder to the ``k``-th line of its
``gt_label_imv.txt`` (79 short names) or ``gt_label_imv+.txt`` (100 names). Pass that file as
``class_names`` to get the same names. An image inside a sub-folder of its class folder gets that
sub-folder as its ``object_id``; one directly in the class folder has none.

``layout="objects"``: ViewFool's per-object folders ``<object>/.../NNN.png``. The class is the
folder name without a trailing ``_<number>`` (``apple_2`` -> ``apple``), the ``object_id`` the
folder name, and ``view_index`` the number of the file (``026.png`` -> 26). The 100 ViewFool
objects give 79 classes this way, as many as ``gt_label_imv.txt`` names.

**Items**: ``{"image": PIL RGB, "label": int, "meta": {"path", "class", "folder", "object_id",
"view_index", "viewpoint"}}``; ``classes`` lists the class names in label order.

**Licence.** Neither release states a licence (research benchmarks; the objects come from
BlenderKit, whose models carry their own licences, and IM3D).

**Citation.** Dong et al., "ViewFool: Evaluating the Robustness of Visual Recognition to Adversarial
Viewpoints", NeurIPS 2022; Ruan et al., "Towards Viewpoint-Invariant Visual Recognition via
Adversarial Training", ICCV 2023.

**Not verified here** (both sets are Google Drive archives that could not be downloaded): the
folder names inside the archives (the class-folder names of OVT's ``imagenet-v/``, which sort as its
``gt_label_imv.txt`` lines do only partly; the order of ``gt_label_imv+.txt`` matches ImageNet's
WordNet-id order, which suggests ``imagenet-v+/`` holds ``n0...`` folders), and whether any per-image
viewpoint parameters ship with the renderings. None could be found, so ``meta["viewpoint"]`` is
``None``; the ViewFool code writes renderings as ``{i:03d}.png``, which is where ``view_index`` comes from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from domainclip.core.data.labelled import LabelledImages, visible_dirs
from domainclip.core.errors import DatasetNotFoundError, InputError, InputNotFoundError
from domainclip.domains.multiview.datasets import IMAGE_SUFFIXES, natural_key, read_view

__all__ = ["ImageNetV", "object_class", "read_class_names"]

_COPY_SUFFIX = re.compile(r"^(.+?)_\d+$")


def object_class(folder: str) -> str:
    """The class of a ViewFool object folder: its name without a trailing ``_<number>`` (``apple_2`` -> ``apple``).

    Args:
        folder: the object folder's name.
    """
    match = _COPY_SUFFIX.match(folder)
    return match.group(1) if match else folder


def read_class_names(path: str | Path) -> list[str]:
    """Read a class-name list: one name per line, line ``k`` naming the ``k``-th class (OVT's ``gt_label_imv.txt``).

    Args:
        path: the text file (blank lines are ignored).

    Raises:
        InputNotFoundError: the file does not exist.
        InputError: it names no class.
    """
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    except FileNotFoundError:
        raise InputNotFoundError(f"class-name list {path} does not exist") from None
    if not names:
        raise InputError(f"{path} names no class; expected one class name per line")
    return names


def _images_below(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted((d for d in dirnames if not d.startswith((".", "__"))), key=natural_key)
        found += [Path(dirpath) / name for name in sorted(filenames, key=natural_key)
                  if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES]
    return found


class ImageNetV(LabelledImages, Dataset):
    """ImageNet-V / ImageNet-V+ (or any viewpoint set in their layouts) as labelled images with object ids.

    See the module docstring for the two layouts, the items, classes, licence, citation and what
    could not be verified.

    Args:
        root: the folder holding the class folders (``imagenet-v/``) or the object folders.
        layout: ``classes`` (one folder per class, OVT's layout) or ``objects`` (ViewFool's
            ``<object>_<n>/NNN.png``).
        class_names: a file of class names, one per line in sorted-folder (class) order, such as
            OVT's ``gt_label_imv.txt``; default: the folder names (``objects``: without the ``_<n>`` suffix).
        transform: applied to each image (e.g. a model's preprocess).

    Raises:
        DatasetNotFoundError: ``root`` is not a folder, has no sub-folder with images, or some
            class/object folders hold no image (they are named).
        InputError: ``class_names`` has another number of lines than there are classes.
        CorruptSampleError: from ``__getitem__``, an image that cannot be decoded.
    """

    #: the folder layouts, for messages
    expected = ("<class>/<image>.png (layout classes: OVT's imagenet-v/ and imagenet-v+/) or "
                "<object>_<n>/<NNN>.png (layout objects: ViewFool's renderings)")

    def __init__(
        self,
        root: str | Path,
        *,
        layout: Literal["classes", "objects"] = "classes",
        class_names: str | Path | None = None,
        transform: Callable[[Any], Any] | None = None,
    ) -> None:
        self.root = Path(root)
        if layout not in ("classes", "objects"):
            raise InputError(f"layout must be 'classes' or 'objects'; got {layout!r}")
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"ImageNet-V not found: {self.root} is not a folder; expected {self.expected}")
        self.layout = layout
        self.transform = transform
        self.loader = read_view
        folders = visible_dirs(self.root)
        if not folders:
            raise DatasetNotFoundError(f"ImageNet-V not found at {self.root}: no sub-folder; expected {self.expected}")
        images = {folder: _images_below(self.root / folder) for folder in folders}
        empty = [folder for folder, found in images.items() if not found]
        if empty:
            shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
            raise DatasetNotFoundError(f"ImageNet-V at {self.root}: no image ({'/'.join(IMAGE_SUFFIXES)}) in {shown}; "
                                       f"expected {self.expected}")
        keys = sorted({object_class(f) for f in folders}) if layout == "objects" else folders
        #: the folder name (``classes``) or folder class (``objects``) of each label
        self.folders = list(keys)
        names = read_class_names(class_names) if class_names is not None else list(keys)
        if len(names) != len(keys):
            raise InputError(f"{class_names} names {len(names)} classes but {self.root} has {len(keys)} "
                             f"({layout} layout: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''})")
        #: class names in label order
        self.classes = names
        label_of = {key: i for i, key in enumerate(keys)}
        self.samples: list[tuple[str, int]] = []
        self._objects: list[tuple[str, str | None, int | None]] = []  # folder, object id, view index per sample
        for folder in folders:
            label = label_of[object_class(folder) if layout == "objects" else folder]
            for path in images[folder]:
                self.samples.append((str(path), label))
                if layout == "objects":
                    self._objects.append((folder, folder, int(path.stem) if path.stem.isdigit() else None))
                else:
                    sub = path.parent.relative_to(self.root / folder)
                    self._objects.append((folder, sub.as_posix() if sub.parts else None, None))
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def object_ids(self) -> list[str | None]:
        """The ``object_id`` of every image, in item order (``None`` where the layout has none)."""
        return [object_id for _, object_id, _ in self._objects]

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Image ``index`` as ``{"image", "label", "meta"}``; meta adds folder, object_id, view_index, viewpoint."""
        item = super().__getitem__(index)
        folder, object_id, view_index = self._objects[index]
        item["meta"].update(folder=folder, object_id=object_id, view_index=view_index, viewpoint=None)
        return item
