"""Write small pathology benchmark fixtures in the public layouts (seeded, no network), and a lookup model.

* :func:`make_nct_crc`: NCT-CRC-HE-100K / CRC-VAL-HE-7K layout, ``root/<CLASS>/<CLASS>-<8 letters>.tif``
  (RGB TIFF patches, as in the Zenodo archives; real ones are 224x224).
* :func:`make_pcam`: the official PatchCamelyon pair ``camelyonpatch_level_2_split_<split>_{x,y}.h5``
  with dataset ``x`` ``(N, 96, 96, 3) uint8`` and ``y`` ``(N, 1, 1, 1) uint8``.
* :func:`write_patch_shards`: patch shards as the pathology prepare commands write them (``.png`` +
  ``.json`` meta with slide_id, x, y, level, mpp, tissue_fraction, patch_size), plus ``slides.csv``.
* :class:`LookupCLIP`: a CLIP-shaped model whose image embedding is looked up from a patch's
  (constant) colour and whose text embedding is looked up from the prompt, so a test can fix exactly
  which class must win.

Run ``python tests/domains/pathology/data.py OUT_DIR`` to write all three layouts by hand.
"""

from __future__ import annotations

import csv
import math
import random
import string
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from domainclip.core.data.writer import ShardWriter

NCT_CLASSES = ("ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM")

#: One distinct colour per NCT-CRC class (in class order).
NCT_COLOURS: dict[str, tuple[int, int, int]] = {
    c: (20 + 25 * i, 200 - 15 * i, 60 + 10 * i) for i, c in enumerate(NCT_CLASSES)
}
#: Colours of PatchCamelyon's normal (0) and metastasis (1) patches.
PCAM_COLOURS: tuple[tuple[int, int, int], tuple[int, int, int]] = ((230, 180, 200), (90, 40, 140))


def solid(colour: Sequence[int], size: int) -> np.ndarray:
    """A ``size x size`` RGB uint8 patch of one colour."""
    return np.broadcast_to(np.asarray(colour, dtype=np.uint8), (size, size, 3)).copy()


def make_nct_crc(
    root: Path,
    per_class: int = 2,
    size: int = 16,
    seed: int = 0,
    classes: Sequence[str] = NCT_CLASSES,
    colours: Mapping[str, tuple[int, int, int]] | None = None,
) -> dict[str, list[Path]]:
    """Write ``root/<class>/<class>-<8 letters>.tif`` patches of one colour per class; returns the files."""
    rng = random.Random(seed)
    colours = dict(NCT_COLOURS if colours is None else colours)
    written: dict[str, list[Path]] = {}
    order = list(classes)
    rng.shuffle(order)  # folder creation order must not matter
    for cls in order:
        folder = Path(root) / cls
        folder.mkdir(parents=True, exist_ok=True)
        written[cls] = []
        for _ in range(per_class):
            name = "".join(rng.choice(string.ascii_uppercase) for _ in range(8))
            path = folder / f"{cls}-{name}.tif"
            Image.fromarray(solid(colours[cls], size)).save(path, format="TIFF")
            written[cls].append(path)
    return written


def make_pcam(
    root: Path,
    split: str = "test",
    labels: Sequence[int] = (0, 1, 1, 0, 1, 0, 0, 1),
    colours: Sequence[tuple[int, int, int]] = PCAM_COLOURS,
    size: int = 96,
) -> tuple[Path, Path]:
    """Write the official HDF5 pair of ``split``; patch ``i`` has the colour of its label."""
    import h5py

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    x_path = root / f"camelyonpatch_level_2_split_{split}_x.h5"
    y_path = root / f"camelyonpatch_level_2_split_{split}_y.h5"
    x = np.stack([solid(colours[label], size) for label in labels])
    y = np.asarray(labels, dtype=np.uint8).reshape(-1, 1, 1, 1)
    with h5py.File(x_path, "w") as f:
        f.create_dataset("x", data=x, chunks=(1, size, size, 3))
    with h5py.File(y_path, "w") as f:
        f.create_dataset("y", data=y)
    return x_path, y_path


def patch_meta(slide_id: str, index: int, patch_size: int = 16) -> dict[str, Any]:
    """Patch metadata as the pathology patcher writes it."""
    return {
        "slide_id": slide_id,
        "x": (index % 8) * patch_size,
        "y": (index // 8) * patch_size,
        "level": 0,
        "mpp": 0.5,
        "tissue_fraction": 0.9,
        "patch_size": patch_size,
        "source": f"{slide_id}.svs",
    }


def write_patch_shards(
    out: Path,
    patches: Iterable[tuple[str, tuple[int, int, int]]],
    *,
    max_count: int = 8,
    prefix: str = "patches",
    size: int = 16,
    slide_labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Write ``(slide_id, colour)`` patches (in the given order) to shards, and ``slides.csv``.

    Returns:
        One record per patch: ``key``, ``slide_id``, ``colour``.

    """
    out = Path(out)
    records: list[dict[str, Any]] = []
    counters: dict[str, int] = {}
    with ShardWriter(out, prefix=prefix, max_count=max_count, image_format="png", mtime=1_700_000_000) as writer:
        for slide, colour in patches:
            index = counters.get(slide, 0)
            counters[slide] = index + 1
            key = f"{slide}_{index:05d}"
            writer.write({"__key__": key, "image": solid(colour, size), "meta": patch_meta(slide, index, size)})
            records.append({"key": key, "slide_id": slide, "colour": tuple(colour)})
    if slide_labels is not None:
        write_slides_csv(out / "slides.csv", slide_labels)
    return records


def write_slides_csv(path: Path, slide_labels: Mapping[str, str], extra: bool = True) -> Path:
    """Write ``slide_id,label`` (plus a ``site`` column the reader must ignore)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["slide_id", "label", "site"] if extra else ["slide_id", "label"])
        for slide, label in slide_labels.items():
            writer.writerow([slide, label, "A1"] if extra else [slide, label])
    return path


def to_tensor(image: Image.Image) -> torch.Tensor:
    """``(3, H, W)`` float tensor in [0, 1]: the preprocess used with :class:`LookupCLIP`."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def one_hot(index: int, dim: int) -> list[float]:
    """A one-hot vector."""
    return [1.0 if i == index else 0.0 for i in range(dim)]


class LookupCLIP(torch.nn.Module):
    """CLIP-shaped model with fixed embeddings: image colour -> vector, prompt -> vector.

    ``encode_image`` reads the mean colour of each (constant-colour) image, rounds it to 0..255 and
    looks it up in ``image_vectors``; the tokenizer (:meth:`tokenize`) maps each prompt to its row
    in ``text_vectors`` and fails on an unknown prompt.
    """

    def __init__(self, image_vectors: Mapping[tuple[int, int, int], Sequence[float]],
                 text_vectors: Mapping[str, Sequence[float]]):
        super().__init__()
        self.image_vectors = {tuple(k): torch.tensor(v, dtype=torch.float32) for k, v in image_vectors.items()}
        self.prompts = {text: i for i, text in enumerate(text_vectors)}
        self.register_buffer("text_matrix", torch.tensor([list(v) for v in text_vectors.values()], dtype=torch.float32))
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(100.0)))
        self.images_seen = 0

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[self.prompts[t]] for t in texts], dtype=torch.long)

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        colours = (image.float().mean(dim=(2, 3)) * 255.0).round().long().tolist()
        self.images_seen += len(colours)
        out = torch.stack([self.image_vectors[tuple(c)] for c in colours])
        return F.normalize(out, dim=-1) if normalize else out

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        out = self.text_matrix[tokens[:, 0]]
        return F.normalize(out, dim=-1) if normalize else out


def class_lookup_model(
    prompts: Mapping[str, Sequence[str]], colours: Mapping[str, tuple[int, int, int]]
) -> LookupCLIP:
    """A :class:`LookupCLIP` where class ``c``'s prompts and colour share the one-hot direction ``c``."""
    classes = list(prompts)
    dim = len(classes)
    text = {p: one_hot(i, dim) for i, c in enumerate(classes) for p in prompts[c]}
    if len(text) != sum(len(v) for v in prompts.values()):
        raise ValueError("a prompt is shared by two classes; the lookup model needs distinct prompts")
    image = {colours[c]: one_hot(i, dim) for i, c in enumerate(classes) if c in colours}
    return LookupCLIP(image, text)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "pathology_fixtures")
    make_nct_crc(target / "CRC-VAL-HE-7K")
    make_pcam(target / "pcam")
    write_patch_shards(
        target / "slides",
        [("slide-a", (200, 0, 0))] * 4 + [("slide-b", (0, 0, 200))] * 4,
        slide_labels={"slide-a": "tumor", "slide-b": "normal"},
    )
    print(f"wrote fixtures under {target}")
