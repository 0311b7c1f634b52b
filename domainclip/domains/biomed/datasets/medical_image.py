"""Read one benchmark image as RGB: PNG/JPEG/TIFF with PIL, DICOM and NIfTI through MONAI.

Clinical groups read DICOM and NIfTI with MONAI (``monai.transforms.LoadImage`` with
``PydicomReader`` / ``NibabelReader``, intensities windowed with ``ScaleIntensityRange``); so does
:class:`MedicalImageLoader`. A 2-D image (a radiograph, one CT slice) is used as it is; a volume
(a CT or MRI series saved as one ``.nii.gz``, a multi-frame DICOM) becomes one 2-D view chosen by
:data:`VolumeView`: its middle slice in a plane, or a maximum or mean intensity projection across
that plane. Intensities are scaled to 0-255 (a window ``(low, high)`` in the file's units, Hounsfield
units for CT, or the image's own minimum and maximum) and the grey image is repeated into three
channels, so the model's usual transform applies.

Orientation: MONAI returns arrays indexed ``(x, y[, z])`` (pydicom's rows and columns swapped, nibabel's
voxel order); the 2-D view is shown with ``y`` down the rows and ``x`` along the columns, so a DICOM
comes out exactly as ``pydicom``'s ``pixel_array`` and an axial NIfTI slice ``k`` as ``data[:, :, k].T``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from domainclip.core.data.corrupt import BAD_IMAGE, CorruptSampleError
from domainclip.core.plugins import require

__all__ = [
    "IMAGE_SUFFIXES",
    "MONAI_SUFFIXES",
    "MedicalImageLoader",
    "Plane",
    "VolumeView",
    "is_image_file",
    "volume_to_2d",
]

#: File endings read through MONAI (lower case).
MONAI_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom", ".nii", ".nii.gz")
#: Every file ending read as an image (lower case).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", *MONAI_SUFFIXES)
#: How a volume becomes one 2-D image: the middle slice, or the maximum or mean intensity projection.
VolumeView = Literal["middle", "max", "mean"]
#: The plane of the slice (or of the projection): axial (across ``z``), coronal (``y``) or sagittal (``x``).
Plane = Literal["axial", "coronal", "sagittal"]
_PLANE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}
_UNREADABLE = (OSError, ValueError, SyntaxError, RuntimeError, Image.DecompressionBombError)


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` ends like an image :class:`MedicalImageLoader` reads (hidden files are not images).

    Args:
        path: a file path.
    """
    name = Path(path).name.lower()
    return not name.startswith(".") and name.endswith(IMAGE_SUFFIXES)


def volume_to_2d(data: np.ndarray, view: VolumeView = "middle", plane: Plane = "axial") -> np.ndarray:
    """One 2-D view of a MONAI ``(x, y[, z])`` array, as rows ``y`` and columns ``x`` (see the module docstring).

    Args:
        data: 2-D ``(x, y)`` or 3-D ``(x, y, z)`` array; a 3-D array with one slice counts as 2-D.
        view: for a volume, the middle slice (index ``n // 2``) or the maximum or mean projection.
        plane: the plane the slice lies in, or across which the projection is taken.

    Raises:
        ValueError: ``data`` has another number of dimensions.
    """
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    if data.ndim == 2:
        return data.T
    if data.ndim != 3:
        raise ValueError(f"expected a 2-D image or a 3-D volume, got an array of shape {data.shape}")
    axis = _PLANE_AXIS[plane]
    if view == "middle":
        flat = np.take(data, data.shape[axis] // 2, axis=axis)
    elif view == "max":
        flat = data.max(axis=axis)
    else:
        flat = data.mean(axis=axis, dtype=np.float64)
    return flat.T


@dataclass(frozen=True)
class MedicalImageLoader:
    """Path -> RGB PIL image, for every benchmark adapter of the biomed registry.

    Args:
        view: how a volume becomes one image (:data:`VolumeView`).
        plane: the plane of that view (:data:`Plane`).
        window: ``(low, high)`` intensities mapped to black and white for DICOM/NIfTI (e.g. a lung
            window in Hounsfield units, ``(-1350, 150)``); ``None`` scales each image's own minimum
            and maximum.
    """

    view: VolumeView = "middle"
    plane: Plane = "axial"
    window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.window is not None and not self.window[0] < self.window[1]:
            raise ValueError(f"window must be (low, high) with low < high, got {self.window}")

    def __call__(self, path: str | Path) -> Image.Image:
        """Read ``path`` as an RGB image.

        Raises:
            CorruptSampleError: ``bad_image``, the file cannot be decoded.
        """
        name = str(path).lower()
        if name.endswith(MONAI_SUFFIXES):
            return self.read_monai(path)
        try:
            with Image.open(path) as image:
                image.load()
                return image.convert("RGB")
        except _UNREADABLE as e:
            raise CorruptSampleError(BAD_IMAGE, f"{path} cannot be decoded: {e}") from None

    def read_monai(self, path: str | Path) -> Image.Image:
        """Read a DICOM or NIfTI file through MONAI, take its 2-D view, window it and make it RGB.

        Args:
            path: a ``.dcm`` / ``.dicom`` or ``.nii`` / ``.nii.gz`` file.

        Raises:
            CorruptSampleError: ``bad_image``, MONAI cannot read it or it is not 2-D or 3-D.
        """
        grey = self.read_array(path)
        scale = _scaler(self.window)
        scaled = np.asarray(scale(grey[None].astype(np.float32)))[0]
        pixels = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(pixels[:, :, None], 3, axis=2), mode="RGB")

    def read_array(self, path: str | Path) -> np.ndarray:
        """The file's 2-D view (rows, columns) in its own intensity units, before windowing.

        Args:
            path: a ``.dcm`` / ``.dicom`` or ``.nii`` / ``.nii.gz`` file.

        Raises:
            CorruptSampleError: ``bad_image``, MONAI cannot read it or it is not 2-D or 3-D.
        """
        require("monai", "biomed", "reading DICOM and NIfTI images")
        from monai.data import NibabelReader, PydicomReader
        from monai.transforms import LoadImage

        name = str(path).lower()
        reader = NibabelReader() if name.endswith((".nii", ".nii.gz")) else PydicomReader()
        try:
            with warnings.catch_warnings():  # missing orientation tags, optional GPU decoders: not ours to report
                warnings.simplefilter("ignore")
                data = np.asarray(LoadImage(reader=reader, image_only=True)(str(path)))
        except Exception as e:  # noqa: BLE001 - MONAI and its readers raise many types for a bad file
            raise CorruptSampleError(BAD_IMAGE, f"{path} cannot be read by MONAI: {e}") from None
        try:
            return volume_to_2d(data, self.view, self.plane)
        except ValueError as e:
            raise CorruptSampleError(BAD_IMAGE, f"{path}: {e}") from None


def _scaler(window: tuple[float, float] | None) -> Any:
    """MONAI's intensity transform to 0-255: a fixed window, or the image's own range."""
    from monai.transforms import ScaleIntensity, ScaleIntensityRange

    if window is None:
        return ScaleIntensity(minv=0.0, maxv=255.0)
    return ScaleIntensityRange(a_min=window[0], a_max=window[1], b_min=0.0, b_max=255.0, clip=True)
