"""Remote sensing caption sets in their published layouts: RSICD, UCM-Captions, Sydney-Captions and RSITMD.

All four ship one caption file in the format of Karpathy's image-captioning splits and a folder of
images::

    {"images": [{"filename": "airport_1.jpg", "imgid": 0, "split": "train",
                 "sentids": [0, 1, 2, 3, 4],
                 "sentences": [{"raw": "many planes are parked near a terminal .",
                                "tokens": ["many", "planes", ...], "imgid": 0, "sentid": 0}, ...]},
                ...],
     "dataset": "rsicd"}

Only ``images``, each image's ``filename``, ``split`` and ``sentences[*].raw`` are required; the
``imgid`` becomes the sample's image id (its position in the file when absent). A file in another
layout is one :class:`CaptionLayoutError` line naming the file and what was expected.

Each adapter is a ``torch.utils.data.Dataset`` of dict samples ``{"image": PIL RGB image, "text":
[every caption, in file order, duplicates kept], "meta": {...}}``. Images are JPEG (RSICD) or TIFF
(UCM-Captions, Sydney-Captions, RSITMD): :func:`read_caption_image` reads TIFFs through rasterio
(:mod:`~domainclip.domains.remote_sensing.raster`), 8-bit ones with their pixels as published and
deeper ones stretched to 8 bits by :func:`~domainclip.domains.remote_sensing.raster.read_image`.

Known quirk: the five sentences of an image are often copies of each other (most of all in RSICD,
whose annotators wrote fewer than five for most images and the release repeats them to make five).
Every caption is kept; :func:`distinct_captions` counts the different ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image
from torch.utils.data import Dataset

from domainclip.core.data.corrupt import BAD_IMAGE, CorruptSampleError
from domainclip.core.errors import DatasetNotFoundError, InputError
from domainclip.core.plugins import UnknownNameError

__all__ = [
    "CAPTION_DATASETS",
    "SyntheticCaptions",
    "MISSING_IMAGE",
    "RSICD",
    "RSITMD",
    "SPLITS",
    "CaptionLayoutError",
    "CaptionRecord",
    "KarpathyCaptions",
    "SydneyCaptions",
    "UCMCaptions",
    "detect_caption_dataset",
    "distinct_captions",
    "read_caption_image",
    "read_karpathy_json",
]

#: The splits a Karpathy caption file marks.
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Skip reason of an image the caption file lists but the image folder lacks.
MISSING_IMAGE = "missing_image"
#: What a Karpathy caption file holds, for messages.
KARPATHY_LAYOUT = (
    '{"images": [{"filename": "...", "split": "train|val|test", "sentences": [{"raw": "..."}, ...]}, ...]} '
    "(Karpathy format)"
)
_TIFF_SUFFIXES = (".tif", ".tiff")


class CaptionLayoutError(InputError):
    """A caption file that is not in the layout its dataset publishes; the message names the file."""


@dataclass(frozen=True)
class CaptionRecord:
    """One image of a caption file.

    Args:
        filename: the image's file name in the image folder.
        split: ``train``, ``val`` or ``test`` (as the file says).
        image_id: the file's ``imgid``, or the image's position in the file.
        captions: every non-blank sentence, stripped, in file order (copies kept).
        sentence_ids: the sentences' ``sentid`` values, where the file gives them.
        blank: sentences that were blank and left out.
    """

    filename: str
    split: str
    image_id: int | str
    captions: tuple[str, ...]
    sentence_ids: tuple[int | str, ...] = ()
    blank: int = 0


def distinct_captions(captions: Iterable[str]) -> int:
    """How many different captions there are, ignoring case and spacing (``"A road ."`` == ``"a  road ."``)."""
    return len({" ".join(c.lower().split()) for c in captions})


def _layout_error(path: Path, problem: str) -> CaptionLayoutError:
    return CaptionLayoutError(f"{path}: {problem}; expected {KARPATHY_LAYOUT}")


def read_karpathy_json(path: str | Path) -> list[CaptionRecord]:
    """Read and check a caption file in Karpathy's format.

    Args:
        path: ``dataset_rsicd.json``, ``dataset.json``, ``dataset_RSITMD.json`` or any file of that layout.

    Returns:
        The images in file order.

    Raises:
        InputNotFoundError: the file does not exist.
        CaptionLayoutError: it is not JSON, or not in the layout (the first problem is named: which
            image, which field).
    """
    from domainclip.core.errors import InputNotFoundError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputNotFoundError(f"caption file {path} does not exist") from None
    except UnicodeDecodeError as e:
        raise _layout_error(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise _layout_error(path, f"not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        found = f"an object with keys {', '.join(sorted(data)) or '(none)'}" if isinstance(data, dict) else (
            f"a JSON {type(data).__name__}")
        raise _layout_error(path, f"found {found}, no 'images' list")
    records: list[CaptionRecord] = []
    for position, item in enumerate(data["images"]):
        where = f"images[{position}]"
        if not isinstance(item, dict):
            raise _layout_error(path, f"{where} is a {type(item).__name__}, not an object")
        for key, kind in (("filename", str), ("split", str), ("sentences", list)):
            if not isinstance(item.get(key), kind):
                got = "missing" if key not in item else f"a {type(item[key]).__name__}"
                raise _layout_error(path, f"{where}.{key} is {got}, not a {kind.__name__}")
        captions, ids, blank = [], [], 0
        for j, sentence in enumerate(item["sentences"]):
            if not isinstance(sentence, dict) or not isinstance(sentence.get("raw"), str):
                raise _layout_error(path, f"{where}.sentences[{j}] has no 'raw' string")
            raw = sentence["raw"].strip()
            if not raw:
                blank += 1
                continue
            captions.append(raw)
            if "sentid" in sentence:
                ids.append(sentence["sentid"])
        image_id = item.get("imgid", position)
        records.append(CaptionRecord(item["filename"], item["split"], image_id, tuple(captions), tuple(ids), blank))
    if not records:
        raise _layout_error(path, "its 'images' list is empty")
    return records


def read_caption_image(path: str | Path) -> Image.Image:
    """Read one image of a caption set as an RGB PIL image.

    TIFFs are read through rasterio: 8-bit bands as they are (these sets publish display-ready
    8-bit images), deeper ones stretched per band to 8 bits. Other formats are read with PIL.

    Args:
        path: the image file.

    Raises:
        CorruptSampleError: ``missing_image`` when the file does not exist, ``bad_image`` when it
            cannot be read; the detail names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CorruptSampleError(MISSING_IMAGE, f"{path} does not exist")
    if path.suffix.lower() in _TIFF_SUFFIXES:
        from domainclip.domains.remote_sensing.raster import RasterError, open_raster, read_image, select_bands

        try:
            with open_raster(path) as dataset:
                bands = select_bands(path, dataset.count)
                if all(dataset.dtypes[b - 1] == "uint8" for b in set(bands)):
                    return Image.fromarray(dataset.read(list(bands)).transpose(1, 2, 0))
            return Image.fromarray(read_image(path))
        except RasterError as e:
            raise CorruptSampleError(BAD_IMAGE, str(e)) from None
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise CorruptSampleError(BAD_IMAGE, f"{path}: {type(e).__name__}: {e}") from None


class KarpathyCaptions(Dataset):
    """A caption set of images and a Karpathy-format caption file (the four public sets below derive from it).

    Args:
        root: the dataset folder, as its release unpacks.
        split: one of :data:`SPLITS`, several, or ``None`` for every image in the file.
        transforms: applied to each sample dict.

    Raises:
        DatasetNotFoundError: the folder, its caption file or its image folder is missing (the
            message lists what the folder must hold), or the split has no image.
        CaptionLayoutError: the caption file is not in the Karpathy layout.
        UnknownNameError: an unknown split.
    """

    #: short name (``domainclip`` dataset name, ``meta["dataset"]``)
    name: ClassVar[str] = "captions"
    #: how the dataset is called in messages
    title: ClassVar[str] = "caption set"
    #: where the caption file may be, relative to the root, in order of preference
    caption_files: ClassVar[tuple[str, ...]] = ("dataset.json",)
    #: the image folder, relative to the root
    image_folder: ClassVar[str] = "imgs"
    #: the images' licence, as far as the release states it
    licence: ClassVar[str] = "unspecified"

    def __init_subclass__(cls, *, name: str, title: str, caption_files: tuple[str, ...], image_folder: str,
                          licence: str, **kwargs: Any) -> None:
        """Declare a public caption set by its name, caption file(s), image folder and licence."""
        super().__init_subclass__(**kwargs)
        cls.name, cls.title, cls.caption_files, cls.image_folder, cls.licence = (
            name, title, caption_files, image_folder, licence)

    def __init__(
        self,
        root: str | Path,
        split: str | Sequence[str] | None = "test",
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.root = Path(root)
        wanted = (split,) if isinstance(split, str) else (tuple(SPLITS) if split is None else tuple(split))
        for name in wanted:
            if name not in SPLITS:
                raise UnknownNameError(f"{self.title} split", name, list(SPLITS))
        if not self.root.is_dir():
            raise DatasetNotFoundError(f"{self.title} not found: {self.root} is not a folder; {self.layout()}")
        self.caption_file = self.find_caption_file(self.root)
        if self.caption_file is None:
            raise DatasetNotFoundError(f"{self.title} not found at {self.root}: no {' or '.join(self.caption_files)}; "
                                       f"{self.layout()}")
        self.image_dir = self.root / self.image_folder
        if not self.image_dir.is_dir():
            raise DatasetNotFoundError(f"{self.title} not found at {self.root}: no {self.image_folder}/ folder; "
                                       f"{self.layout()}")
        records = read_karpathy_json(self.caption_file)
        self.records = [r for r in records if r.split in wanted]
        if not self.records:
            present = sorted({r.split for r in records})
            raise DatasetNotFoundError(f"{self.caption_file} has no image of split {', '.join(wanted)} "
                                       f"(its splits: {', '.join(present)})")
        self.split = split
        self.transforms = transforms

    @classmethod
    def layout(cls) -> str:
        """What the dataset folder must hold, in one phrase."""
        return f"expected {' or '.join(cls.caption_files)} and {cls.image_folder}/ with the images it names"

    @classmethod
    def find_caption_file(cls, root: str | Path) -> Path | None:
        """The caption file under ``root``, or ``None``."""
        for relative in cls.caption_files:
            if (Path(root) / relative).is_file():
                return Path(root) / relative
        return None

    @classmethod
    def holds(cls, root: str | Path) -> bool:
        """Whether ``root`` looks like this dataset (its caption file and image folder are there)."""
        return cls.find_caption_file(root) is not None and (Path(root) / cls.image_folder).is_dir()

    def __len__(self) -> int:
        """Number of images in the chosen splits."""
        return len(self.records)

    def image_path(self, index: int) -> Path:
        """The image file of sample ``index``."""
        return self.image_dir / self.records[index].filename

    def meta(self, index: int) -> dict[str, Any]:
        """Provenance of sample ``index``: dataset, file, split, ids and caption counts."""
        record = self.records[index]
        return {
            "dataset": self.name,
            "filename": record.filename,
            "split": record.split,
            "image_id": record.image_id,
            "sentence_ids": list(record.sentence_ids),
            "captions": len(record.captions),
            "distinct_captions": distinct_captions(record.captions),
            "blank_captions": record.blank,
            "licence": self.licence,
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Image ``index``: the RGB image, every caption, and :meth:`meta`.

        Raises:
            CorruptSampleError: the image is missing (``missing_image``) or unreadable (``bad_image``).
        """
        sample: dict[str, Any] = {
            "image": read_caption_image(self.image_path(index)),
            "text": list(self.records[index].captions),
            "meta": self.meta(index),
        }
        return self.transforms(sample) if self.transforms is not None else sample

    def plot(self, sample: Mapping[str, Any], show_titles: bool = True, suptitle: str | None = None) -> Any:
        """A matplotlib ``Figure`` of a sample's image, titled with its captions (each different one once).

        Args:
            sample: from :meth:`__getitem__`, before any tensor transform.
            show_titles: whether the captions are written above the image.
            suptitle: a title for the whole figure.
        """
        import textwrap

        from matplotlib.figure import Figure

        fig = Figure(figsize=(4.5, 5.5))
        ax = fig.add_subplot(xticks=[], yticks=[])
        ax.imshow(sample["image"])
        captions = dict.fromkeys(sample.get("text", [])) if show_titles else {}
        ax.set_title("\n".join(textwrap.fill(c, 60) for c in captions), fontsize=7)
        fig.suptitle(suptitle or "")
        return fig


class RSICD(
    KarpathyCaptions, name="rsicd", title="RSICD", image_folder="RSICD_images",
    caption_files=("dataset_rsicd.json", "annotations_rsicd/dataset_rsicd.json"),
    licence="unspecified (research use; imagery from Google Earth, Baidu Map, MapABC, Tianditu)",
):
    """RSICD: 10,921 aerial and satellite images with five English sentences each (Lu et al., 2017).

    Images of 224 x 224 pixels from Google Earth, Baidu Map, MapABC and Tianditu, in 30 scene
    classes. Karpathy splits: train 8,734, val 1,094, test 1,093 images. The 54,605 sentences hold
    only 24,333 different ones: 724 images have five different sentences, 1,495 four, 2,182 three,
    1,667 two and 4,853 one, the release repeating sentences to make five.

    Dataset format (the ``RSICD_optimal`` release)::

        root/
          RSICD_images/<filename>.jpg       the images the caption file names
          dataset_rsicd.json                Karpathy-format captions (or annotations_rsicd/dataset_rsicd.json)
          txtclasses_rsicd/                 class lists (not read)

    Licence: none stated by the release (research use); the imagery comes from commercial map services.

    Citation::

        @article{lu2017exploring,
          title = {Exploring Models and Data for Remote Sensing Image Caption Generation},
          author = {Lu, Xiaoqiang and Wang, Binqiang and Zheng, Xiangtao and Li, Xuelong},
          journal = {IEEE Transactions on Geoscience and Remote Sensing},
          volume = {56}, number = {4}, pages = {2183--2195}, year = {2018}
        }

    Args:
        root: the folder holding ``RSICD_images/`` and the caption file.
        split: one of :data:`SPLITS`, several, or ``None`` for all.
        transforms: applied to each sample dict.
    """


class UCMCaptions(
    KarpathyCaptions, name="ucm_captions", title="UCM-Captions", caption_files=("dataset.json",), image_folder="imgs",
    licence="images: USGS public domain; captions: unspecified",
):
    """UCM-Captions: the 2,100 UC Merced land-use images with five English sentences each (Qu et al., 2016).

    256 x 256 pixel RGB aerial orthophotos (about 0.3 m per pixel) of 21 land-use classes, 100
    images each, cut from the USGS National Map Urban Area Imagery. Karpathy splits: train 1,680,
    val 210, test 210 images; 10,500 sentences, many repeated within an image.

    Dataset format (``UCM_captions`` of the ``RSICD_optimal`` release)::

        root/
          imgs/<n>.tif          1.tif ... 2100.tif, 8-bit RGB TIFF
          dataset.json          Karpathy-format captions

    Licence: the images are USGS public-domain imagery; the captions come without a stated licence.

    Citation::

        @inproceedings{qu2016deep,
          title = {Deep semantic understanding of high resolution remote sensing image},
          author = {Qu, Bo and Li, Xuelong and Tao, Dacheng and Lu, Xiaoqiang},
          booktitle = {International Conference on Computer, Information and Telecommunication Systems (CITS)},
          pages = {1--5}, year = {2016}
        }

    Args:
        root: the folder holding ``imgs/`` and ``dataset.json``.
        split: one of :data:`SPLITS`, several, or ``None`` for all.
        transforms: applied to each sample dict.
    """


class SydneyCaptions(
    KarpathyCaptions, name="sydney_captions", title="Sydney-Captions", caption_files=("dataset.json",),
    image_folder="imgs", licence="unspecified (imagery: Google Earth terms)",
):
    """Sydney-Captions: 613 Google Earth images of Sydney with five English sentences each (Qu et al., 2016).

    500 x 500 pixel RGB images (about 0.5 m per pixel) cut from one 18,000 x 14,000 Google Earth
    scene of Sydney, Australia, in 7 classes (residential, airport, meadow, river, ocean,
    industrial, runway). Karpathy splits: train 497, val 58, test 58 images; 3,065 sentences.

    Dataset format (``Sydney_captions`` of the ``RSICD_optimal`` release)::

        root/
          imgs/<n>.tif          1.tif ... 613.tif, 8-bit RGB TIFF
          dataset.json          Karpathy-format captions

    Licence: none stated by the release; the imagery is Google Earth's (its terms apply).

    Citation: the paper of :class:`UCMCaptions` (Qu et al., CITS 2016), which made both sets.

    Args:
        root: the ``Sydney_captions`` folder.
        split: one of :data:`SPLITS`, several, or ``None`` for all.
        transforms: applied to each sample dict.
    """


class RSITMD(
    KarpathyCaptions, name="rsitmd", title="RSITMD", caption_files=("dataset_RSITMD.json",), image_folder="images",
    licence="unspecified (research use)",
):
    """RSITMD: 4,743 remote sensing images with five fine-grained English sentences each (Yuan et al., 2022).

    256 x 256 pixel images in 32 scene classes, written for image-text retrieval: its sentences
    differ more from image to image than RSICD's, and fewer are copies. 23,715 sentences. The caption
    file marks train and test images (retrieval is reported on the test split).

    Dataset format (the AMFMN repository's release)::

        root/
          images/<class>_<n>.tif        the images the caption file names
          dataset_RSITMD.json           Karpathy-format captions
          rsitmd_api.py                 parsing helper of the release (not read)

    Licence: none stated by the release (research use).

    Citation::

        @article{yuan2022exploring,
          title = {Exploring a Fine-Grained Multiscale Method for Cross-Modal Remote Sensing Image Retrieval},
          author = {Yuan, Zhiqiang and Zhang, Wenkai and Fu, Kun and Li, Xuan and Deng, Chubo and Wang, Hongqi
                    and Sun, Xian},
          journal = {IEEE Transactions on Geoscience and Remote Sensing},
          volume = {60}, pages = {1--19}, year = {2022}, doi = {10.1109/TGRS.2021.3078451}
        }

    Args:
        root: the folder holding ``images/`` and ``dataset_RSITMD.json``.
        split: one of :data:`SPLITS`, several, or ``None`` for all.
        transforms: applied to each sample dict.
    """


class SyntheticCaptions(
    KarpathyCaptions, name="synthetic", title="synthetic scenes", caption_files=("dataset_synthetic.json",),
    image_folder="images", licence="CC0-1.0",
):
    """The domain's generated scenes and their captions (``domainclip prepare remote_sensing synthetic``).

    4-band (R, G, B, NIR) 16-bit GeoTIFFs of ten land-cover classes with five English sentences each
    (see :func:`~domainclip.domains.remote_sensing.synthetic.generate_scenes` and the data card
    ``synthetic_scenes.md``); the translations of the sentences are in ``translations.json`` for the
    ``translate`` command's ``table:`` translator.

    Dataset format::

        root/
          images/<class>_<n>.tif        the scenes the caption file names
          dataset_synthetic.json        Karpathy-format captions, RSICD's layout

    Licence: CC0-1.0 (generated).

    Args:
        root: the generator's output folder.
        split: one of :data:`SPLITS`, several, or ``None`` for all.
        transforms: applied to each sample dict.
    """


#: Dataset name -> adapter class (the names ``domainclip prepare remote_sensing captions --dataset`` takes).
CAPTION_DATASETS: dict[str, type[KarpathyCaptions]] = {
    cls.name: cls for cls in (RSICD, UCMCaptions, SydneyCaptions, RSITMD, SyntheticCaptions)
}
_FOLDER_HINTS = {"ucm": UCMCaptions, "sydney": SydneyCaptions}


def detect_caption_dataset(root: str | Path) -> type[KarpathyCaptions]:
    """Which caption set a folder holds, from its caption file and image folder.

    UCM-Captions and Sydney-Captions share one layout (``dataset.json`` and ``imgs/``); they are told
    apart by the caption file's ``dataset`` field or else the folder's name (``UCM_captions``,
    ``Sydney_captions``).

    Args:
        root: the dataset folder.

    Raises:
        DatasetNotFoundError: the folder holds none of the layouts (each is listed), or a shared
            layout whose dataset cannot be told.
    """
    root = Path(root)
    layouts = "; ".join(f"{c.title}: {c.layout().removeprefix('expected ')}" for c in CAPTION_DATASETS.values())
    if not root.is_dir():
        raise DatasetNotFoundError(f"caption dataset not found: {root} is not a folder; expected one of {layouts}")
    found = [cls for cls in CAPTION_DATASETS.values() if cls.holds(root)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise DatasetNotFoundError(f"no caption dataset found at {root}: expected one of {layouts}")
    names = " or ".join(cls.name for cls in found)
    if len({(cls.caption_files, cls.image_folder) for cls in found}) == 1:  # UCM-Captions and Sydney-Captions
        caption_file = found[0].find_caption_file(root)
        assert caption_file is not None
        try:
            declared = json.loads(caption_file.read_text(encoding="utf-8-sig")).get("dataset")
        except (ValueError, AttributeError):
            declared = None
        for hint in (str(declared or "").lower(), root.name.lower()):
            matches = [cls for word, cls in _FOLDER_HINTS.items() if word in hint]
            if len(matches) == 1:
                return matches[0]
        raise DatasetNotFoundError(
            f"{root} holds {caption_file.name} and {found[0].image_folder}/, the layout of {names}; say which with "
            "--dataset"
        )
    raise DatasetNotFoundError(f"{root} holds the layouts of {names}; say which with --dataset")
