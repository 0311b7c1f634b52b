"""PatchCamelyon (Veeling et al., 2018): 96x96 lymph-node patches from the official HDF5 files.

Layout (the files of the official release, unzipped with ``gunzip``)::

    root/
      camelyonpatch_level_2_split_train_x.h5   dataset "x": (262144, 96, 96, 3) uint8
      camelyonpatch_level_2_split_train_y.h5   dataset "y": (262144, 1, 1, 1) uint8
      camelyonpatch_level_2_split_valid_x.h5   (32768 patches)
      camelyonpatch_level_2_split_valid_y.h5
      camelyonpatch_level_2_split_test_x.h5    (32768 patches)
      camelyonpatch_level_2_split_test_y.h5

``y`` is 1 when the centre 32x32 region holds at least one pixel of metastatic tumour tissue. The
files are read lazily: only the lengths and shapes are checked when the dataset is made, and each
process (every DataLoader worker) opens its own read-only handles on first access, so memory does
not grow with the number of patches and the dataset pickles without open files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from domainclip.core.errors import DatasetNotFoundError, InputError
from domainclip.core.plugins import UnknownNameError, require

__all__ = ["PCAM_SPLITS", "PatchCamelyon", "pcam_files"]

#: Split names of the official release.
PCAM_SPLITS: tuple[str, ...] = ("train", "valid", "test")


def pcam_files(root: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """Paths of the ``x`` (images) and ``y`` (labels) HDF5 files of ``split`` under ``root``."""
    if split not in PCAM_SPLITS:
        raise UnknownNameError("PatchCamelyon split", split, list(PCAM_SPLITS))
    root = Path(root)
    stem = f"camelyonpatch_level_2_split_{split}"
    return root / f"{stem}_x.h5", root / f"{stem}_y.h5"


def _check_present(path: Path) -> None:
    if path.is_file():
        return
    gz = path.with_name(path.name + ".gz")
    if gz.is_file():
        raise DatasetNotFoundError(f"{path} does not exist but {gz} does: unzip it first (gunzip -k {gz})")
    if not path.parent.is_dir():
        raise DatasetNotFoundError(
            f"PatchCamelyon folder {path.parent} does not exist; expected a folder holding the official "
            "camelyonpatch_level_2_split_<split>_{x,y}.h5 files"
        )
    raise DatasetNotFoundError(
        f"PatchCamelyon file {path} does not exist; expected the official "
        "camelyonpatch_level_2_split_<split>_{x,y}.h5 files in that folder"
    )


def _open_h5(h5py: Any, path: Path) -> Any:
    """``h5py.File(path, "r")``; a file that is not HDF5 (truncated, still gzipped) is an :class:`InputError`."""
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"PatchCamelyon file {path} cannot be read as HDF5 ({e})") from None


def _dataset(h5: Any, name: str, path: Path) -> Any:
    if name not in h5:
        raise InputError(f"{path} has no dataset {name!r} (it holds: {', '.join(h5.keys()) or 'nothing'})")
    return h5[name]


class PatchCamelyon(Dataset):
    """PatchCamelyon patches and labels, read lazily from the official HDF5 pair of one split.

    Args:
        root: the folder holding the ``camelyonpatch_level_2_split_<split>_{x,y}.h5`` files.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        transform: applied to each RGB PIL image; ``None`` keeps the PIL image.

    Items are ``{"image", "label", "meta": {"index"}}`` with ``label`` 0 (normal) or 1 (metastasis).

    Raises:
        DatasetNotFoundError: the folder or a file is missing (the message says when only the
            ``.gz`` is there; a ``FileNotFoundError``).
        InputError: a file lacks its dataset, or the shapes or lengths do not match the layout
            (a ``ValueError``).

    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "test",
        transform: Callable[[Image.Image], Any] | None = None,
    ):
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.x_path, self.y_path = pcam_files(self.root, split)
        for path in (self.x_path, self.y_path):
            _check_present(path)
        h5py = require("h5py", "pathology", "reading PatchCamelyon")
        with _open_h5(h5py, self.x_path) as fx, _open_h5(h5py, self.y_path) as fy:
            x, y = _dataset(fx, "x", self.x_path), _dataset(fy, "y", self.y_path)
            if x.ndim != 4 or x.shape[3] != 3 or x.dtype != np.uint8:
                raise InputError(
                    f"{self.x_path}: dataset 'x' must be (N, H, W, 3) uint8 (96x96 patches), "
                    f"got {x.shape} {x.dtype}"
                )
            if y.ndim < 1 or int(np.prod(y.shape[1:], dtype=np.int64)) != 1:
                raise InputError(f"{self.y_path}: dataset 'y' must be (N, 1, 1, 1) labels, got {y.shape}")
            if x.shape[0] != y.shape[0]:
                raise InputError(
                    f"{self.x_path} holds {x.shape[0]} patches but {self.y_path} holds {y.shape[0]} labels"
                )
            self._length = int(x.shape[0])
        self._handles: tuple[Any, Any, Any, Any] | None = None
        self._pid: int | None = None

    def _open(self) -> tuple[Any, Any]:
        if self._handles is None or self._pid != os.getpid():
            h5py = require("h5py", "pathology", "reading PatchCamelyon")
            fx, fy = h5py.File(self.x_path, "r"), h5py.File(self.y_path, "r")
            self._handles = (fx, fy, fx["x"], fy["y"])
            self._pid = os.getpid()
        return self._handles[2], self._handles[3]

    def close(self) -> None:
        """Close this process's file handles (they are reopened on the next access)."""
        if self._handles is not None and self._pid == os.getpid():
            for handle in self._handles[:2]:
                handle.close()
        self._handles = None
        self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"] = None
        state["_pid"] = None
        return state

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"index {index} out of range for {self._length} PatchCamelyon {self.split} patches")
        x, y = self._open()
        label = int(np.asarray(y[index]).reshape(-1)[0])
        if label not in (0, 1):
            raise InputError(f"{self.y_path}: label {label} of patch {index} is not 0 or 1")
        image: Any = Image.fromarray(np.asarray(x[index]))
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "label": label, "meta": {"index": index}}

    def __repr__(self) -> str:
        return f"PatchCamelyon({str(self.root)!r}, split={self.split!r}, {self._length} patches)"
