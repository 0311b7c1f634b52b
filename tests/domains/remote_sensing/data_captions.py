"""Tiny caption sets in the published layouts of RSICD, UCM-Captions, Sydney-Captions and RSITMD, truth built in.

Every set is a Karpathy-format caption file beside an image folder, with the real file and folder
names (``RSICD_images/`` + ``dataset_rsicd.json``, ``imgs/`` + ``dataset.json``, ``images/`` +
``dataset_RSITMD.json``). Images are seeded random pixels (JPEG for RSICD, 8-bit RGB TIFF for the
others, as released); captions repeat as the real files do (RSICD pads fewer different sentences to
five by copying them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

#: dataset -> (caption file, image folder, image suffix, the folder name its release unpacks to)
LAYOUTS: dict[str, tuple[str, str, str, str]] = {
    "rsicd": ("dataset_rsicd.json", "RSICD_images", ".jpg", "RSICD"),
    "ucm_captions": ("dataset.json", "imgs", ".tif", "UCM_captions"),
    "sydney_captions": ("dataset.json", "imgs", ".tif", "Sydney_captions"),
    "rsitmd": ("dataset_RSITMD.json", "images", ".tif", "RSITMD"),
}
#: The splits of the images, in turn.
SPLIT_CYCLE = ("train", "train", "train", "val", "test")
_CLASSES = ("airport", "beach", "farmland", "forest", "harbor", "parking")
_PHRASES = ("many planes are parked near the terminal .", "a beach lies between the sea and the trees .",
            "pieces of farmland with different colors .", "a dense forest covers the hills .",
            "several boats are moored in the harbor .", "many cars are parked in the parking lot .",
            "a road runs beside the buildings .", "some green trees are around the area .")


@dataclass
class CaptionImage:
    """The truth of one image: its entry in the caption file and its pixels."""

    filename: str
    split: str
    imgid: int
    captions: list[str]
    distinct: int
    pixels: np.ndarray
    blank: int = 0


@dataclass
class CaptionSet:
    """A caption set written by :func:`write_caption_set`."""

    root: Path
    dataset: str
    caption_file: Path
    images: list[CaptionImage] = field(default_factory=list)

    def split(self, name: str) -> list[CaptionImage]:
        """The images of one split, in file order."""
        return [image for image in self.images if image.split == name]


def _captions(dataset: str, index: int, rng: np.random.Generator) -> tuple[list[str], int]:
    """Five sentences (copies included) and how many differ."""
    order = rng.permutation(len(_PHRASES))
    if dataset == "rsicd":
        distinct = 1 + index % 5  # 1 ... 5 different sentences, copied to make five
    else:
        distinct = 4 if index % 3 == 0 else 5  # a copy now and then
    different = [f"{_PHRASES[j]}" if k == 0 else f"{_PHRASES[j]} ({index})" for k, j in enumerate(order[:distinct])]
    return [different[k % distinct] for k in range(5)], distinct


def _smooth_pixels(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A colour gradient (JPEG keeps it close), different for every image."""
    yy, xx = np.mgrid[: size[0], : size[1]]
    base, gx, gy = rng.integers(40, 216, 3), rng.uniform(-3, 3, 3), rng.uniform(-3, 3, 3)
    return np.clip(base + gx * xx[..., None] + gy * yy[..., None], 0, 255).astype(np.uint8)


def _write_image(path: Path, pixels: np.ndarray) -> None:
    if path.suffix == ".jpg":
        Image.fromarray(pixels).save(path, format="JPEG", quality=90)
    else:
        Image.fromarray(pixels).save(path, format="TIFF")  # a plain 8-bit RGB TIFF, as the releases hold


def write_caption_set(
    parent: Path, dataset: str, n: int = 10, *, seed: int = 0, size: tuple[int, int] = (20, 28),
    blank_first: bool = False,
) -> CaptionSet:
    """Write ``n`` images of ``dataset``'s layout under ``parent/<release folder name>``.

    Args:
        parent: where the dataset folder is created.
        dataset: ``rsicd``, ``ucm_captions``, ``sydney_captions`` or ``rsitmd``.
        n: number of images.
        seed: seed of pixels and sentence order.
        size: image (height, width).
        blank_first: make the first image's last sentence blank (RSITMD's release once had four).
    """
    caption_name, image_folder, suffix, folder_name = LAYOUTS[dataset]
    root = parent / folder_name
    (root / image_folder).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    entries, images, sentid = [], [], 0
    for i in range(n):
        if dataset == "rsicd":
            filename = f"{_CLASSES[i % len(_CLASSES)]}_{i + 1}{suffix}" if i % 4 else f"{i + 1:05d}{suffix}"
        elif dataset == "rsitmd":
            filename = f"{_CLASSES[i % len(_CLASSES)]}_{100 + i}{suffix}"
        else:
            filename = f"{i + 1}{suffix}"
        split = SPLIT_CYCLE[i % len(SPLIT_CYCLE)]
        if dataset == "rsitmd" and split == "val":
            split = "train"  # the RSITMD file marks train and test only
        pixels = _smooth_pixels(rng, size)
        _write_image(root / image_folder / filename, pixels)
        captions, distinct = _captions(dataset, i, rng)
        raws = list(captions)
        blank = 0
        if blank_first and i == 0:
            raws[-1], blank = "  ", 1
            captions = captions[:-1]
            distinct = len(set(captions))
        sentences = [{"tokens": raw.split(), "raw": raw, "imgid": i, "sentid": sentid + k}
                     for k, raw in enumerate(raws)]
        entries.append({"filename": filename, "imgid": i, "sentids": [s["sentid"] for s in sentences],
                        "split": split, "sentences": sentences})
        sentid += len(sentences)
        images.append(CaptionImage(filename, split, i, captions, distinct, pixels, blank))
    caption_file = root / caption_name
    caption_file.write_text(json.dumps({"images": entries, "dataset": dataset.split("_")[0]}), encoding="utf-8")
    return CaptionSet(root, dataset, caption_file, images)
