"""Fixture writers for the biomed evaluation tests, in the layouts the adapters read.

* :func:`write_class_folders`: ``root/<class>/<n>.png`` (optionally nested one level deeper, as
  BreakHis and SIPaKMeD are), each image a solid colour of its class with a little noise;
* :func:`write_label_csv`: a label table with its images, columns and image folder as given;
* :func:`write_dicom`: a DICOM file (pydicom, explicit VR little endian, rescale slope/intercept);
* :func:`write_nifti`: a NIfTI file (nibabel) of any 2-D or 3-D array, identity affine;
* :func:`write_figure_shards`: held-out figure shards (``png``, ``txt``, ``json``) through the core writer.

Every writer is seeded; the truth (class of each file, caption of each figure) is what the caller passes.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

#: Distinct class colours (RGB); class ``k`` of a fixture is ``PALETTE[k]``.
PALETTE: list[tuple[int, int, int]] = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
    (128, 0, 0), (0, 0, 128), (128, 128, 0),
]


def solid_image(colour: Sequence[int], seed: int, size: int = 16) -> Image.Image:
    """A ``size`` x ``size`` RGB image of ``colour`` with +-3 noise (seeded)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.asarray(colour, dtype=np.int16) + rng.integers(-3, 4, (size, size, 3)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def write_class_folders(root: Path, classes: Sequence[str], per_class: int, colours: Sequence[Sequence[int]] = PALETTE,
                        *, nested: bool = False, suffix: str = ".png") -> Path:
    """``root/<class>/[sub/]<n><suffix>``: ``per_class`` images of class ``k`` coloured ``colours[k]``."""
    for k, name in enumerate(classes):
        folder = root / name / ("sub" if nested else "")
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            solid_image(colours[k], seed=k * 1000 + n).save(folder / f"{n:03d}{suffix}")
    return root


def write_label_csv(root: Path, rows: Sequence[tuple[str, str, Sequence[int] | None]], *, csv_name: str = "labels.csv",
                    path_column: str = "path", label_column: str = "label", image_dir: str = "", suffix: str = "",
                    extra_columns: dict[str, str] | None = None) -> Path:
    """A CSV of ``(path, label)`` rows in ``root`` and, for rows with a colour, the image at ``image_dir/path+suffix``.

    A row whose colour is ``None`` is listed without an image file (a missing image).
    """
    root.mkdir(parents=True, exist_ok=True)
    extra = extra_columns or {}
    with (root / csv_name).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*extra, path_column, label_column])
        for i, (path, label, colour) in enumerate(rows):
            writer.writerow([*extra.values(), path, label])
            if colour is not None:
                target = root / image_dir / f"{path}{suffix}"
                target.parent.mkdir(parents=True, exist_ok=True)
                solid_image(colour, seed=i).save(target)
    return root / csv_name


def write_dicom(path: Path, pixels: np.ndarray, *, slope: float = 1.0, intercept: float = 0.0) -> Path:
    """A single-frame uint16 MONOCHROME2 DICOM holding ``pixels`` (rows, columns) with a rescale slope and intercept."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_nifti(path: Path, data: np.ndarray) -> Path:
    """A NIfTI file (``.nii`` or ``.nii.gz``) holding ``data`` in nibabel's ``(x, y[, z])`` order, identity affine."""
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4)), str(path))
    return path


def write_figure_shards(out: Path, colours: Sequence[Sequence[int]], captions: Sequence[str],
                        broken: Sequence[int] = ()) -> Path:
    """Held-out figure shards as ``prepare biomed figures`` writes them: figure ``i`` coloured ``colours[i]``.

    Figures in ``broken`` get bytes that are not an image.
    """
    from domainclip.core.data.writer import ShardWriter

    with ShardWriter(out, prefix="figures", max_count=5, image_format="png", mtime=0) as writer:
        for i, (colour, caption) in enumerate(zip(colours, captions)):
            key = f"PMC{1000 + i}_F{i}"
            fields = {"article": f"PMC{1000 + i}", "figure_id": f"F{i}", "caption": caption}
            if i in broken:
                writer.write({"__key__": key, "png": b"not a png", "txt": caption, "json": fields})
            else:
                writer.write({"__key__": key, "image": solid_image(colour, seed=i), "text": caption, "json": fields})
    return out
