"""Write tiny scene benchmarks in their public folder-per-class layouts, and held-out caption shards by language.

Loaded by the tests with importlib (test folders are not packages). Layouts, with the directory
and file names as distributed (images shrunk to :data:`SIDE` pixels):

* EuroSAT RGB: ``EuroSAT_RGB/<Class>/<Class>_<n>.jpg`` (Zenodo) or ``2750/<Class>/<Class>_<n>.jpg``
  (the original ``EuroSAT.zip``), ``n`` from 1.
* RESISC45: ``NWPU-RESISC45/<class>/<class>_NNN.jpg`` (``airplane_001.jpg``).
* AID: ``AID/<Class>/<class in lower case>_<n>.jpg`` (``StorageTanks/storagetanks_1.jpg``).
* WHU-RS19: ``WHU-RS19/<Class>/<prefix>NN.jpg`` with the distributed prefixes (:data:`WHU_RS19_PREFIXES`:
  ``beach-01.jpg``, ``Desert_01.jpg``, ``Farmland-01.jpg``, ``footballField_01.jpg``).

The truth is built in: every image of class ``k`` is the flat colour :data:`PALETTE` ``[k]`` with a
little noise, so a model that reads the mean colour (the tests' oracle) knows the class.

Run ``python tests/domains/remote_sensing/data_scenes.py OUT_DIR`` to write all four by hand.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from domainclip.domains.remote_sensing.labels import DATASET_CLASSES

#: Image side in pixels (the real sets have 64, 256 and 600).
SIDE = 16
#: Flat colours, well apart after JPEG compression: class ``k`` of any set is ``PALETTE[k]``.
PALETTE: tuple[tuple[int, int, int], ...] = tuple(itertools.product((20, 100, 180, 250), repeat=3))[:45]
#: The top folder each set unpacks to.
TOP_FOLDERS = {"eurosat": "EuroSAT_RGB", "resisc45": "NWPU-RESISC45", "aid": "AID", "whu_rs19": "WHU-RS19"}
#: WHU-RS19's file name prefixes as distributed (they differ in case and separator from class to class).
WHU_RS19_PREFIXES = {
    "Airport": "airport_", "Beach": "beach-", "Bridge": "bridge_", "Commercial": "commercial_", "Desert": "Desert_",
    "Farmland": "Farmland-", "footballField": "footballField_", "Forest": "forest_", "Industrial": "industrial_",
    "Meadow": "meadow_", "Mountain": "Mountain_", "Park": "Park_", "Parking": "parking_", "Pond": "pond_",
    "Port": "port_", "railwayStation": "railwayStation_", "Residential": "residential_", "River": "river_",
    "Viaduct": "viaduct_",
}


def file_name(dataset: str, folder: str, n: int) -> str:
    """The distributed file name of image ``n`` (from 1) of class ``folder`` of ``dataset``."""
    if dataset == "eurosat":
        return f"{folder}_{n}.jpg"
    if dataset == "resisc45":
        return f"{folder}_{n:03d}.jpg"
    if dataset == "aid":
        return f"{folder.lower()}_{n}.jpg"
    if dataset == "whu_rs19":
        return f"{WHU_RS19_PREFIXES[folder]}{n:02d}.jpg"
    raise ValueError(f"unknown dataset {dataset!r}")


def colour_image(colour: Sequence[int], rng: np.random.Generator, side: int = SIDE) -> Image.Image:
    """A flat ``colour`` with +-6 of noise."""
    pixels = np.asarray(colour, dtype=np.int16) + rng.integers(-6, 7, size=(side, side, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_class_folders(root: Path, folders: Sequence[str], per_class: int, names: Mapping[str, list[str]],
                        seed: int = 0) -> Path:
    """Write ``per_class`` JPEGs of colour ``PALETTE[k]`` into ``root/<folders[k]>/`` named ``names[folder]``."""
    rng = np.random.default_rng(seed)
    for k, folder in enumerate(folders):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names[folder][:per_class]:
            colour_image(PALETTE[k], rng).save(root / folder / name, quality=95)
    return root


def write_scene_dataset(parent: Path, dataset: str, per_class: int = 2, *, top: str | None = None,
                        seed: int = 0) -> Path:
    """Write ``dataset`` (``eurosat``, ``resisc45``, ``aid``, ``whu_rs19``) as unpacked into ``parent``.

    Args:
        parent: the folder the archive is unpacked into.
        dataset: which set.
        per_class: images per class.
        top: the top folder (default :data:`TOP_FOLDERS`; EuroSAT's original archive has ``2750``).
        seed: noise seed.

    Returns:
        The top folder (holding the class folders).
    """
    folders = list(DATASET_CLASSES[dataset])
    names = {f: [file_name(dataset, f, n) for n in range(1, per_class + 1)] for f in folders}
    return write_class_folders(parent / (top or TOP_FOLDERS[dataset]), folders, per_class, names, seed)


def write_caption_shards(out: Path, colours: Sequence[Sequence[int]], captions: Sequence[Mapping[str, list[str]]],
                         *, broken: Sequence[int] = ()) -> Path:
    """Held-out shards: sample ``i`` is a flat PNG of ``colours[i]`` with ``captions[i]`` by language.

    Args:
        out: the shard folder.
        colours: one colour per image.
        captions: one ``{language: [caption, ...]}`` per image.
        broken: samples whose image bytes are not an image (to be skipped and counted).
    """
    from domainclip.core.data.writer import ShardWriter

    rng = np.random.default_rng(0)
    with ShardWriter(out, prefix="heldout", max_count=4, image_format="png") as writer:
        for i, (colour, text) in enumerate(zip(colours, captions, strict=True)):
            writer.write({"__key__": f"scene-{i:04d}", "image": colour_image(colour, rng), "text": dict(text)})
    if broken:
        _break_images(out, {f"scene-{i:04d}" for i in broken})
    return out


def _break_images(out: Path, keys: set[str]) -> None:
    """Rewrite the shards of ``out`` with the PNG members of ``keys`` replaced by bytes that are not an image."""
    import io
    import tarfile

    for shard in sorted(out.glob("*.tar")):
        members = []
        with tarfile.open(shard) as tar:
            for info in tar.getmembers():
                data = tar.extractfile(info).read()
                if info.name.split(".", 1)[0] in keys and info.name.endswith(".png"):
                    data = b"not a png"
                members.append((info.name, data))
        with tarfile.open(shard, "w") as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "rs_scene_fixtures")
    for name in TOP_FOLDERS:
        print(write_scene_dataset(target, name))
