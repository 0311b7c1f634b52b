"""Scene classification benchmarks in their folder-per-class layouts: EuroSAT (RGB), RESISC45, AID, WHU-RS19.

Every adapter is torchvision's :class:`~torchvision.datasets.ImageFolder` over one folder per class,
with the class folders the dataset is distributed with, in :data:`~..labels.DATASET_CLASSES` order
(label ``k`` is the ``k``-th folder there). ``root`` is the folder holding the class folders, or a
folder holding the dataset's unpacked top folder (``EuroSAT_RGB/``, ``NWPU-RESISC45/``, ...).

==========  ===========================================  ==========================================
adapter     layout as unpacked                           images
==========  ===========================================  ==========================================
EuroSAT     ``EuroSAT_RGB/<Class>/<Class>_<n>.jpg``      27,000 RGB jpgs, 64 x 64, 10 classes
            (Zenodo ``EuroSAT_RGB.zip``) or ``2750/...``
            (the original ``EuroSAT.zip``)
RESISC45    ``NWPU-RESISC45/<class>/<class>_NNN.jpg``    31,500 jpgs, 256 x 256, 45 classes x 700
AID         ``AID/<Class>/<class>_<n>.jpg``              10,000 jpgs, 600 x 600, 30 classes
WHU-RS19    ``WHU-RS19/<Class>/<prefix>_NN.jpg``         1,005 jpgs, 600 x 600, 19 classes
==========  ===========================================  ==========================================

:class:`SceneFolder` reads any other folder-per-class layout (the generated held-out scenes,
UC Merced, ...), its classes sorted by folder name. Images are read with PIL (any format torchvision's
``IMG_EXTENSIONS`` lists); a GeoTIFF PIL cannot give as 8-bit RGB (16-bit, multi-band) is read with
rasterio through :func:`~domainclip.domains.remote_sensing.raster.read_image` and its ``bands``.
Hidden entries (``.DS_Store``, ``__MACOSX``, macOS ``._*`` files) are ignored. An image that cannot
be decoded raises :class:`~domainclip.core.data.corrupt.CorruptSampleError` (``bad_image``) from
``__getitem__``, so an evaluation can skip and count it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from domainclip.core.data.corrupt import BAD_IMAGE, CorruptSampleError
from domainclip.core.data.labelled import LabelledImages, visible_dirs
from domainclip.core.errors import DatasetNotFoundError, InputError
from domainclip.domains.remote_sensing.labels import DATASET_CLASSES, scene_of

__all__ = ["AID", "RESISC45", "SCENE_DATASETS", "WHURS19", "EuroSAT", "SceneFolder", "detect_scene_dataset"]

#: PIL modes read as they are (converted to RGB); other modes of a GeoTIFF go through rasterio.
_PIL_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
_GEOTIFF = (".tif", ".tiff")
_UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _is_image(path: str) -> bool:
    name = os.path.basename(path)
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def load_scene_image(path: str, bands: Sequence[int] | None = None) -> Image.Image:
    """Read one scene image as RGB: with PIL, or a GeoTIFF PIL cannot give as 8-bit RGB with rasterio.

    Args:
        path: the image file.
        bands: the (red, green, blue) band numbers of a GeoTIFF, 1-based (default: what
            :func:`~domainclip.domains.remote_sensing.raster.read_image` takes: 1, 2, 3); given,
            every GeoTIFF is read with rasterio.

    Raises:
        CorruptSampleError: ``bad_image``, the file cannot be decoded.
    """
    geotiff = path.lower().endswith(_GEOTIFF)
    if not (geotiff and bands is not None):
        try:
            with Image.open(path) as image:
                mode = image.mode
                if mode in _PIL_MODES:
                    image.load()
                    return image.convert("RGB")
            problem = f"PIL mode {mode} is not an 8-bit image"
        except _UNREADABLE as e:
            problem = f"cannot be decoded: {e}"
        if not geotiff:
            raise CorruptSampleError(BAD_IMAGE, problem)
    from domainclip.domains.remote_sensing.raster import RasterError, read_image

    try:
        return Image.fromarray(read_image(path, bands=bands))
    except RasterError as e:
        raise CorruptSampleError(BAD_IMAGE, str(e)) from None


class SceneFolder(LabelledImages, ImageFolder):
    """Labelled scenes in any folder-per-class layout: ``root/<class>/<image>``, classes sorted by folder name.

    Args:
        root: the folder holding one folder per class (or, for a named dataset, a folder holding
            its unpacked top folder, see :attr:`top_folders`).
        transform: applied to each RGB PIL image (e.g. a CLIP ``preprocess``); ``None`` keeps the image.
        bands: the (red, green, blue) band numbers of GeoTIFF scenes, 1-based (see :func:`load_scene_image`).

    Items are ``{"image", "label", "meta": {"path", "class"}}``.

    Attributes:
        classes: class folder names in label order.
        samples: ``(path, label)`` per image, by class folder name, then by path (torchvision's order).
        scenes: the scene of each class in :data:`~..labels.SCENE_NAMES` (``None`` for a folder the
            tables do not name; only a plain folder-per-class set has such classes).

    Raises:
        DatasetNotFoundError: ``root`` is not a folder, holds no class folders (or not the dataset's), or a
            class folder holds no image.
    """

    #: The dataset's name, in messages and plot titles.
    title: ClassVar[str] = "folder-per-class scenes"
    #: Class folder -> scene, in label order, as the dataset is distributed; empty: any folders.
    class_folders: ClassVar[Mapping[str, str]] = {}
    #: The folders the dataset's archives unpack to (``root`` may be their parent).
    top_folders: ClassVar[tuple[str, ...]] = ()
    #: What ``root`` must hold, for messages.
    layout: ClassVar[str] = "one folder per class holding its images (root/<class>/*.jpg)"

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        bands: Sequence[int] | None = None,
    ):
        self.bands = tuple(bands) if bands is not None else None
        folder = self.locate(root)
        try:
            super().__init__(str(folder), transform=transform, loader=self._load, is_valid_file=_is_image)
        except FileNotFoundError as e:  # a class folder without images
            raise DatasetNotFoundError(f"{self.title} at {folder}: {str(e).strip()} (images are "
                                       f"{'/'.join(IMG_EXTENSIONS)} files); expected {self.layout}") from None
        self.scenes: tuple[str | None, ...] = tuple(self.class_folders.get(c) or scene_of(c) for c in self.classes)

    @classmethod
    def locate(cls, root: str | os.PathLike) -> Path:
        """The folder holding the class folders: ``root`` itself, or the dataset's top folder inside it.

        Args:
            root: what the user named.

        Raises:
            DatasetNotFoundError: ``root`` is not a folder.
        """
        root = Path(root)
        if not root.is_dir():
            raise DatasetNotFoundError(f"{cls.title} not found: {root} is not a folder; expected {cls.layout}")
        holds_classes = bool(cls.class_folders) and set(cls.class_folders) <= set(visible_dirs(root))
        for name in cls.top_folders:
            if (root / name).is_dir() and not holds_classes:
                return root / name
        return root

    def find_classes(self, directory: str | os.PathLike) -> tuple[list[str], dict[str, int]]:
        """The class folders in label order (torchvision's hook), checked against the published ones.

        Args:
            directory: the folder holding the class folders.

        Raises:
            DatasetNotFoundError: no class folder, or (for a named dataset) a published class folder
                missing or one it does not have.
        """
        present = visible_dirs(Path(directory))
        if not present:
            raise DatasetNotFoundError(f"{self.title} not found: {directory} holds no class folders; "
                                       f"expected {self.layout}")
        if not self.class_folders:
            return present, {name: i for i, name in enumerate(present)}
        missing = [c for c in self.class_folders if c not in present]
        extra = [c for c in present if c not in self.class_folders]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"lacks class folder(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
            for name in extra[:3]:
                close = difflib.get_close_matches(name, list(self.class_folders), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else " (not one of its classes)"
                parts.append(f"has {name!r}{hint}")
            raise DatasetNotFoundError(f"{self.title} at {directory} {'; '.join(parts)}; expected {self.layout}")
        classes = list(self.class_folders)
        return classes, {name: i for i, name in enumerate(classes)}

    def _load(self, path: str) -> Image.Image:
        return load_scene_image(path, self.bands)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r}, {len(self.classes)} classes, {len(self)} images)"


class EuroSAT(SceneFolder):
    """EuroSAT (RGB): Sentinel-2 land use and land cover patches of 34 European countries.

    27,000 patches of 64 x 64 pixels (10 m) in 10 classes (2,000-3,000 each), the RGB version as
    JPEGs: ``EuroSAT_RGB/<Class>/<Class>_<n>.jpg`` (Zenodo record 7711810) or ``2750/<Class>/...``
    (the original ``EuroSAT.zip``, torchvision's layout), ``n`` from 1. Classes: AnnualCrop, Forest,
    HerbaceousVegetation, Highway, Industrial, Pasture, PermanentCrop, Residential, River, SeaLake.
    No official split. Licence: MIT. Citation: Helber, Bischke, Dengel and Borth, "EuroSAT: A Novel
    Dataset and Deep Learning Benchmark for Land Use and Land Cover Classification", IEEE JSTARS 12(7),
    2019. The 13-band GeoTIFF version (``EuroSAT_MS``) reads as a plain folder with ``bands`` (4, 3, 2).
    """

    title = "EuroSAT"
    class_folders = DATASET_CLASSES["eurosat"]
    top_folders = ("EuroSAT_RGB", "2750")
    layout = "EuroSAT_RGB/ (or 2750/) holding AnnualCrop/ Forest/ ... SeaLake/ with <Class>_<n>.jpg"


class RESISC45(SceneFolder):
    """NWPU-RESISC45: Google Earth scenes of over 100 countries, 0.2-30 m per pixel.

    31,500 RGB JPEGs of 256 x 256 pixels, 700 in each of 45 classes:
    ``NWPU-RESISC45/<class>/<class>_NNN.jpg`` (``airplane/airplane_001.jpg`` ... ``wetland_700.jpg``),
    class folders in lower case with underscores (``baseball_diamond``, ``thermal_power_station``).
    No official split (torchgeo reads the 60/20/20 split of Neumann et al. 2019 from separate lists).
    Licence: none stated by the authors (torchgeo's mirror lists CC BY-NC 4.0); research use.
    Citation: Cheng, Han and Lu, "Remote Sensing Image Scene Classification: Benchmark and State of
    the Art", Proceedings of the IEEE 105(10), 2017.
    """

    title = "RESISC45"
    class_folders = DATASET_CLASSES["resisc45"]
    top_folders = ("NWPU-RESISC45",)
    layout = "NWPU-RESISC45/ holding airplane/ airport/ ... wetland/ with <class>_NNN.jpg"


class AID(SceneFolder):
    """AID, the Aerial Image Dataset: Google Earth scenes from China and other countries, 0.5-8 m per pixel.

    10,000 RGB JPEGs of 600 x 600 pixels in 30 classes (220-420 each): ``AID/<Class>/<class>_<n>.jpg``
    (``Airport/airport_1.jpg``, ``StorageTanks/storagetanks_1.jpg``), class folders in CamelCase.
    No official split (papers sample 20% or 50% for training). Licence: none stated; free for
    research. Citation: Xia, Hu, Hu, Shi, Bai, Zhong, Zhang and Lu, "AID: A Benchmark Data Set for
    Performance Evaluation of Aerial Scene Classification", IEEE TGRS 55(7), 2017.
    """

    title = "AID"
    class_folders = DATASET_CLASSES["aid"]
    top_folders = ("AID",)
    layout = "AID/ holding Airport/ BareLand/ ... Viaduct/ with <class>_<n>.jpg"


class WHURS19(SceneFolder):
    """WHU-RS19: Google Earth scenes of 19 classes, up to 0.5 m per pixel.

    1,005 RGB JPEGs of 600 x 600 pixels, about 50 per class: ``WHU-RS19/<Class>/<prefix>_NN.jpg``.
    The class folders are as distributed, mostly capitalised with two in camelCase
    (``footballField``, ``railwayStation``); file prefixes vary (``airport_01.jpg``,
    ``beach-01.jpg``, ``Desert_01.jpg``, ``Farmland-01.jpg``). No official split. Licence: none
    stated; free for research. Citation: Xia, Yang, Delon, Gousseau, Sun and Maître, "Structural
    High-resolution Satellite Image Indexing", ISPRS TC VII Symposium, 2010; Dai and Yang,
    "Satellite Image Classification via Two-Layer Sparse Coding With Biased Image Representation",
    IEEE GRSL 8(1), 2011.
    """

    title = "WHU-RS19"
    class_folders = DATASET_CLASSES["whu_rs19"]
    top_folders = ("WHU-RS19",)
    layout = "WHU-RS19/ holding Airport/ Beach/ ... footballField/ ... Viaduct/ with <prefix>_NN.jpg"


#: ``dataset`` option value -> adapter.
SCENE_DATASETS: dict[str, type[SceneFolder]] = {
    "eurosat": EuroSAT,
    "resisc45": RESISC45,
    "aid": AID,
    "whu_rs19": WHURS19,
    "folder": SceneFolder,
}


def detect_scene_dataset(root: str | os.PathLike) -> str:
    """Which named dataset ``root`` holds (its top folder, or exactly its class folders), else ``"folder"``.

    Args:
        root: the folder given as the suite's data.

    Raises:
        DatasetNotFoundError: ``root`` is not a folder.
        InputError: ``root`` holds the top folders of several datasets.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"scene dataset not found: {root} is not a folder; expected EuroSAT_RGB/ "
                                   "(or 2750/), NWPU-RESISC45/, AID/, WHU-RS19/, a folder holding one, or one "
                                   "folder per class")
    present = set(visible_dirs(root))
    found = [name for name, cls in SCENE_DATASETS.items()
             if cls.class_folders and (set(cls.class_folders) == present or present & set(cls.top_folders))]
    if len(found) > 1:
        raise InputError(f"{root} holds several scene datasets ({', '.join(found)}); name one with the dataset option")
    return found[0] if found else "folder"
