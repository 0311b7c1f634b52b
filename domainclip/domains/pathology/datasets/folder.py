"""Class-per-folder patch datasets: NCT-CRC-HE-100K, CRC-VAL-HE-7K and any set laid out like them.

Layout (as the Zenodo archives of Kather et al., 2019 unpack)::

    root/
      ADI/   ADI-AAAFLCLY.tif  ADI-AAAMHQMK.tif  ...
      BACK/  BACK-AAAKSHFL.tif ...
      ...
      TUM/   TUM-AAALPREY.tif  ...

One folder per class, each holding the class's patches as ``.tif``/``.tiff``, ``.png`` or
``.jpg``/``.jpeg`` files (suffixes in any case). Other files (``Thumbs.db``, ``.DS_Store``) and
hidden entries are ignored. When every class folder is one of the nine NCT-CRC codes the classes
are ordered as :data:`~domainclip.domains.pathology.labels.NCT_CRC_CLASSES`, so label ``k`` means
the same class in NCT-CRC-HE-100K and CRC-VAL-HE-7K; other sets are ordered by folder name.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from domainclip.core.data.labelled import LabelledImages
from domainclip.core.errors import DatasetNotFoundError, InputError
from domainclip.domains.pathology.labels import NCT_CRC_CLASSES

__all__ = ["IMAGE_SUFFIXES", "PatchFolder", "find_class_folders"]

#: File suffixes (lower case) read as patches.
IMAGE_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

_LAYOUT = "expected one folder per class holding .tif/.png/.jpg patches (root/ADI/*.tif, root/BACK/*.tif, ...)"


def _visible_dirs(root: Path) -> list[str]:
    with os.scandir(root) as entries:
        return [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]


def find_class_folders(root: str | os.PathLike) -> list[str]:
    """The class folders under ``root``, in label order.

    NCT-CRC codes come in :data:`~domainclip.domains.pathology.labels.NCT_CRC_CLASSES` order when
    every folder is one of them; otherwise folders are sorted by name.

    Raises:
        DatasetNotFoundError: ``root`` is not a folder (a ``FileNotFoundError``).
        InputError: ``root`` holds no class folders (a ``ValueError``).

    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"patch folder {root} does not exist or is not a folder; {_LAYOUT}")
    folders = _visible_dirs(root)
    if not folders:
        raise InputError(f"{root} holds no class folders; {_LAYOUT}")
    if set(folders) <= set(NCT_CRC_CLASSES):
        return [c for c in NCT_CRC_CLASSES if c in folders]
    return sorted(folders)


def _patch_files(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        names = [
            e.name
            for e in entries
            if not e.name.startswith(".") and e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
        ]
    return sorted(names)


def _load_rgb(path: str) -> Image.Image:
    """Open a patch as RGB; TIFFs PIL cannot decode are read with tifffile."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        pil_error = e
    if os.path.splitext(path)[1].lower() in (".tif", ".tiff"):
        try:
            import numpy as np
            import tifffile

            array = np.asarray(tifffile.imread(path))
            if array.ndim == 3 and array.shape[2] >= 3:
                return Image.fromarray(np.ascontiguousarray(array[:, :, :3]).astype(np.uint8))
        except Exception:  # noqa: BLE001 - report PIL's error, the reader users expect
            pass
    raise InputError(f"patch {path} cannot be read as an image: {pil_error}") from pil_error


class PatchFolder(LabelledImages, Dataset):
    """Labelled patches in a class-per-folder layout (NCT-CRC-HE-100K, CRC-VAL-HE-7K, ...).

    Args:
        root: the folder holding one sub-folder per class (see the module docstring).
        classes: the class folders to use, in label order (default: all, see
            :func:`find_class_folders`).
        transform: applied to each RGB PIL image (e.g. a CLIP ``preprocess``); ``None`` keeps the image.

    Items are ``{"image", "label", "meta": {"path", "class"}}``.

    Attributes:
        classes: class folder names in label order.
        samples: ``(path, label)`` per patch, sorted by class then file name.

    Raises:
        DatasetNotFoundError: ``root`` or a requested class folder does not exist (a ``FileNotFoundError``).
        InputError: ``root`` holds no class folders, or a class folder holds no patches (a ``ValueError``).

    """

    def __init__(
        self,
        root: str | os.PathLike,
        classes: Sequence[str] | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
    ):
        self.root = Path(root)
        self.transform, self.loader = transform, _load_rgb
        if classes is None:
            self.classes: tuple[str, ...] = tuple(find_class_folders(self.root))
        else:
            if isinstance(classes, str):
                raise TypeError("classes must be a list of class folder names, not a single string")
            if not self.root.is_dir():
                raise DatasetNotFoundError(f"patch folder {self.root} does not exist or is not a folder; {_LAYOUT}")
            if len(set(classes)) != len(classes):
                raise ValueError(f"classes for {self.root} name a folder twice: {list(classes)}")
            present = _visible_dirs(self.root)
            for name in classes:
                if not (self.root / name).is_dir():
                    close = difflib.get_close_matches(name, present, n=3, cutoff=0.4)
                    hint = f" Did you mean: {', '.join(close)}?" if close else ""
                    raise DatasetNotFoundError(
                        f"class folder {self.root / name} does not exist.{hint} "
                        f"Folders in {self.root}: {', '.join(sorted(present)) or '(none)'}"
                    )
            self.classes = tuple(classes)
        if not self.classes:
            raise ValueError(f"PatchFolder({self.root}) needs at least one class")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = []
        for label, name in enumerate(self.classes):
            folder = self.root / name
            files = _patch_files(folder)
            if not files:
                nested = sorted(_visible_dirs(folder))
                hint = f" It holds folders ({', '.join(nested[:5])}): is {folder} the dataset root?" if nested else ""
                raise InputError(
                    f"class folder {folder} holds no patches ({'/'.join(IMAGE_SUFFIXES)} files); {_LAYOUT}.{hint}"
                )
            self.samples.extend((os.path.join(folder, f), label) for f in files)

    @property
    def targets(self) -> list[int]:
        """The label of every patch, in sample order (no image is read)."""
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)


    def __repr__(self) -> str:
        return f"PatchFolder({str(self.root)!r}, {len(self.classes)} classes, {len(self)} patches)"
