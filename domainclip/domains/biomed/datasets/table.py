"""Labelled images listed in a CSV file: one row per image with its path and its label.

The layout of sets distributed with a label table (MHIST's ``annotations.csv``, HAM10000's
``HAM10000_metadata.csv``, PAD-UFES-20's ``metadata.csv``, APTOS 2019's ``train.csv``, RSNA
Pneumonia's ``stage_2_train_labels.csv`` with DICOM files), or of any set written as::

    labels.csv      path,label
                    images/0001.png,benign
                    images/0002.dcm,malignant

Paths are relative to the CSV's folder (joined with ``image_dir`` and ``suffix`` when the table
names images without their folder or file ending); the column names are arguments. A path listed
twice (RSNA lists a patient once per box) is read once, with its first row's label. Rows are read
when the dataset is made (the table is small); images when an item is asked for.
"""

from __future__ import annotations

import csv
import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from domainclip.core.data.corrupt import BAD_IMAGE, CorruptSampleError
from domainclip.core.data.labelled import LabelledImages
from domainclip.core.errors import DatasetNotFoundError, InputError
from domainclip.domains.biomed.datasets.medical_image import MedicalImageLoader

__all__ = ["LabelTable"]


class LabelTable(LabelledImages):
    """Images and labels from a CSV of path and label.

    Args:
        csv_path: the CSV file.
        classes: the label values in label order (a registry task's classes); a row whose label is
            not one of them is an error naming the row. ``None``: the sorted distinct labels.
        transform: applied to each RGB PIL image (e.g. a CLIP ``preprocess``).
        loader: path -> RGB image (default: :class:`MedicalImageLoader` with its defaults).
        path_column: the column holding the image path.
        label_column: the column holding the label.
        image_dir: folder of the images, relative to the CSV's folder.
        suffix: file ending added to every path (``".jpg"`` for a table of image ids).

    Items are ``{"image", "label", "meta": {"path", "class"}}``; a listed image that is missing or
    cannot be decoded raises :class:`~domainclip.core.data.corrupt.CorruptSampleError`
    (``bad_image``) from ``__getitem__``, so an evaluation skips and counts it.

    Raises:
        DatasetNotFoundError: the CSV does not exist.
        InputError: the CSV lacks a column, has no row, or a label that is not a class.
    """

    def __init__(
        self,
        csv_path: str | os.PathLike,
        classes: Sequence[str] | None = None,
        transform: Callable[[Any], Any] | None = None,
        loader: Callable[[str], Any] | None = None,
        *,
        path_column: str = "path",
        label_column: str = "label",
        image_dir: str = "",
        suffix: str = "",
    ):
        self.csv_path = Path(csv_path)
        self.transform = transform
        self.loader = loader or MedicalImageLoader()
        if not self.csv_path.is_file():
            raise DatasetNotFoundError(f"dataset not found: no label table {self.csv_path}; expected a CSV with "
                                       f"columns {path_column},{label_column} (paths relative to its folder)")
        rows = self._read_rows(path_column, label_column)
        self.classes: list[str] = list(classes) if classes is not None else sorted({label for _, label in rows})
        index = {name: i for i, name in enumerate(self.classes)}
        folder = self.csv_path.parent / image_dir
        seen: set[str] = set()
        self.samples: list[tuple[str, int]] = []
        for line, (path, label) in enumerate(rows, start=2):
            if label not in index:
                close = difflib.get_close_matches(label, self.classes, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InputError(f"{self.csv_path} line {line}: label {label!r}{hint} is not a class of this task "
                                 f"({', '.join(self.classes)})")
            full = str(folder / f"{path}{suffix}")
            if full not in seen:
                seen.add(full)
                self.samples.append((full, index[label]))

    def _read_rows(self, path_column: str, label_column: str) -> list[tuple[str, str]]:
        try:
            with self.csv_path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                missing = [c for c in (path_column, label_column) if c not in (reader.fieldnames or [])]
                if missing:
                    raise InputError(f"{self.csv_path} has no column {missing[0]!r} (its columns: "
                                     f"{', '.join(reader.fieldnames or []) or 'none'})")
                rows = [(str(r[path_column]).strip(), str(r[label_column]).strip()) for r in reader]
        except UnicodeDecodeError as e:
            raise InputError(f"{self.csv_path} is not a UTF-8 CSV: {e}") from None
        if not rows:
            raise InputError(f"{self.csv_path} lists no image")
        return rows

    @property
    def targets(self) -> list[int]:
        """The label of every image, in row order (no image is read)."""
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, path: str) -> Any:
        """The listed image at ``path``, untransformed; ``bad_image`` when it is missing or cannot be decoded.

        Args:
            path: the image file.
        """
        if not os.path.isfile(path):
            raise CorruptSampleError(BAD_IMAGE, f"{path} (listed in {self.csv_path.name}) does not exist")
        return self.loader(path)

    def __repr__(self) -> str:
        return f"LabelTable({str(self.csv_path)!r}, {len(self.classes)} classes, {len(self)} images)"
