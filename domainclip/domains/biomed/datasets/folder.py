"""Labelled images in a folder-per-class layout: ``root/<class>/**/<image>``.

Most public biomedical classification sets unpack this way (LC25000, the Kermany chest X-ray and
OCT sets, the PBC blood cells, SIPaKMeD, the NIH malaria cells, the generated figure types). Images
may sit in nested folders inside a class folder (BreakHis' ``benign/SOB/adenosis/...``), as
torchvision's ``ImageFolder`` walks them; PNG, JPEG, TIFF, BMP and, through MONAI, DICOM and NIfTI
files are read (:class:`~domainclip.domains.biomed.datasets.medical_image.MedicalImageLoader`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torchvision.datasets import ImageFolder

from domainclip.core.data.labelled import LabelledImages, visible_dirs
from domainclip.core.errors import DatasetNotFoundError
from domainclip.domains.biomed.datasets.medical_image import IMAGE_SUFFIXES, MedicalImageLoader, is_image_file

__all__ = ["ClassFolder"]


class ClassFolder(LabelledImages, ImageFolder):
    """Images in one folder per class, labelled in the order of ``classes``.

    Args:
        root: the folder holding the class folders.
        classes: the class folder names in label order (a registry task's label values); a folder
            may be missing (a test split without that class) but every folder present must be one
            of them. ``None``: every folder, sorted by name.
        transform: applied to each RGB PIL image (e.g. a CLIP ``preprocess``).
        loader: path -> RGB image (default: :class:`MedicalImageLoader` with its defaults).
        exclude: file name endings left out (BUSI's segmentation masks, ``"_mask.png"``).

    Items are ``{"image", "label", "meta": {"path", "class"}}``; an undecodable file raises
    :class:`~domainclip.core.data.corrupt.CorruptSampleError` (``bad_image``) from ``__getitem__``.

    Raises:
        DatasetNotFoundError: ``root`` is not a folder, holds no class folder, holds a folder that is
            not a class (with close matches), or no image at all.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        classes: Sequence[str] | None = None,
        transform: Callable[[Any], Any] | None = None,
        loader: Callable[[str], Any] | None = None,
        exclude: Sequence[str] = (),
    ):
        self.exclude = tuple(exclude)
        self.expected = tuple(classes) if classes is not None else None
        root = Path(root)
        if not root.is_dir():
            raise DatasetNotFoundError(f"dataset not found: {root} is not a folder; expected one folder per class "
                                       f"({self._expected_text()})")
        super().__init__(str(root), transform=transform, loader=loader or MedicalImageLoader(),
                         is_valid_file=self._is_sample, allow_empty=True)
        if not self.samples:
            raise DatasetNotFoundError(f"dataset not found: the class folders of {root} hold no image "
                                       f"({'/'.join(IMAGE_SUFFIXES)} files)")

    def _is_sample(self, path: str) -> bool:
        return is_image_file(path) and not path.endswith(self.exclude)

    def _expected_text(self) -> str:
        if self.expected is None:
            return "root/<class>/<image>"
        shown = ", ".join(self.expected[:6]) + (" ..." if len(self.expected) > 6 else "")
        return f"folders {shown}"

    def find_classes(self, directory: str | os.PathLike) -> tuple[list[str], dict[str, int]]:
        """The classes in label order (torchvision's hook), checked against the folders present.

        Args:
            directory: the folder holding the class folders.

        Raises:
            DatasetNotFoundError: no class folder, or a folder that is not one of the classes.
        """
        present = visible_dirs(Path(directory))
        if not present:
            raise DatasetNotFoundError(f"dataset not found: {directory} holds no class folders; expected "
                                       f"{self._expected_text()}")
        if self.expected is None:
            return present, {name: i for i, name in enumerate(present)}
        unknown = [name for name in present if name not in self.expected]
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, list(self.expected), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DatasetNotFoundError(f"{directory} has folder {name!r}{hint}, which is not a class of this task; "
                                       f"expected {self._expected_text()}")
        classes = list(self.expected)
        return classes, {name: i for i, name in enumerate(classes)}

    def __repr__(self) -> str:
        return f"ClassFolder({self.root!r}, {len(self.classes)} classes, {len(self)} images)"
