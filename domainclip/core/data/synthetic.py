"""Generated coloured-shapes image-text set: the core's own data for tests, demos and the core eval.

Each sample is one shape (circle, square, triangle, cross) in one colour (red, green, blue, yellow)
drawn large on a dark or grey noisy background, at a random position, size and (small) rotation,
with a caption built from one of several templates, e.g. ``"a small red circle on a dark background"``.

Classes are the 16 ``(shape, colour)`` pairs: ``label = shape_index * len(COLORS) + color_index``
and :func:`class_names` gives ``"red circle"``, ``"green circle"``, ... in that order. Size and
background appear in captions (so retrieval has more to match than the class) but not in labels.

Sample ``i`` of seed ``s`` depends only on ``(s, i)`` (a NumPy ``Generator`` seeded from both), so
it is the same whatever ``n`` is and however the set is sliced or sharded.

Built to be learnable by a tiny CLIP on a CPU in a minute or two: colours are far apart, shapes
fill a good part of the image (so a ViT with 8-pixel patches at 32 pixels sees their outline),
rotations stay within +-20 degrees (a square stays a square, not a diamond) and backgrounds are
always darker than the shapes. Colour is learned within tens of steps; shape takes a few hundred.

Licence: generated here, no third-party content (Apache-2.0 like the code).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from domainclip.core.errors import InputError
from domainclip.core.io import atomic_write_bytes, read_jsonl

__all__ = [
    "BACKGROUNDS",
    "CAPTION_TEMPLATES",
    "COLORS",
    "HELDOUT_SEED",
    "SHAPES",
    "SIZES",
    "ShapesDataset",
    "ShapesFolder",
    "class_names",
    "generate_shapes",
    "make_shape_sample",
    "prompt_templates",
    "write_shapes_folder",
]

SHAPES: list[str] = ["circle", "square", "triangle", "cross"]
COLORS: list[str] = ["red", "green", "blue", "yellow"]
SIZES: list[str] = ["small", "large"]
BACKGROUNDS: list[str] = ["dark", "grey"]

#: Seed of the held-out set used by the ``core/synthetic`` eval suite; train on other seeds.
HELDOUT_SEED = 20_240_917

_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 230),
    "yellow": (240, 205, 30),
}
#: Shape radius as a fraction of the image side, per size word.
_RADIUS: dict[str, tuple[float, float]] = {"small": (0.25, 0.32), "large": (0.36, 0.45)}
#: Background grey level range per background word.
_BACKGROUND_LEVEL: dict[str, tuple[float, float]] = {"dark": (8.0, 45.0), "grey": (75.0, 110.0)}
#: Rotation range in degrees (either way) of the polygons; small enough that a square stays a square.
_MAX_ROTATION = 20.0
_SUPERSAMPLE = 4

CAPTION_TEMPLATES: list[str] = [
    "a {size} {color} {shape} on a {background} background",
    "a {color} {shape}",
    "a photo of a {size} {color} {shape}",
    "a {shape} in {color} on a {background} background",
    "{size} {color} {shape}",
]


def class_names() -> list[str]:
    """Class names for zero-shot classification, indexed by ``label`` (``"red circle"``, ...)."""
    return [f"{color} {shape}" for shape in SHAPES for color in COLORS]


def prompt_templates() -> list[str]:
    """Prompt templates (``str.format`` with the class name) for the zero-shot classifier."""
    return [
        "a {}.",
        "a photo of a {}.",
        "a {} on a plain background.",
        "a drawing of a {}.",
    ]


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Vertices of a rotated polygon shape centred at ``(cx, cy)`` with circumradius ``r``."""
    if shape == "square":
        base = [(1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0)]
        base = [(x / np.sqrt(2.0), y / np.sqrt(2.0)) for x, y in base]
    elif shape == "triangle":
        base = [(np.cos(a), np.sin(a)) for a in np.deg2rad([90.0, 210.0, 330.0])]
    else:  # cross: a plus sign whose arms are a third of the span wide
        t, o = 1.0 / 3.0, 1.0
        base = [(t, o), (-t, o), (-t, t), (-o, t), (-o, -t), (-t, -t),
                (-t, -o), (t, -o), (t, -t), (o, -t), (o, t), (t, t)]
    c, s = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in base]


def make_shape_sample(seed: int, index: int, image_size: int = 64) -> dict[str, Any]:
    """Render sample ``index`` of the set with ``seed``.

    Args:
        seed: set seed (non-negative); different seeds give independent sets.
        index: sample index (non-negative); the sample depends only on ``(seed, index)``.
        image_size: side of the square RGB image in pixels (at least 16).

    Returns:
        ``{"image": PIL RGB image, "text": caption, "label": class index, "meta": {...}}`` where meta
        holds ``shape``, ``color``, ``size``, ``background``, ``rotation``, ``center``, ``radius``,
        ``seed`` and ``index``.

    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    if image_size < 16:
        raise InputError(f"image_size must be at least 16 pixels, got {image_size}")
    rng = np.random.default_rng([seed, index])
    shape_idx = int(rng.integers(len(SHAPES)))
    color_idx = int(rng.integers(len(COLORS)))
    shape, color = SHAPES[shape_idx], COLORS[color_idx]
    size = SIZES[int(rng.integers(len(SIZES)))]
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    rotation = float(rng.uniform(-_MAX_ROTATION, _MAX_ROTATION))
    radius = float(rng.uniform(*_RADIUS[size])) * image_size
    margin = min(radius + 1.0, image_size / 2.0)  # keep the shape inside the image
    cx = float(rng.uniform(margin, image_size - margin))
    cy = float(rng.uniform(margin, image_size - margin))
    level = rng.uniform(*_BACKGROUND_LEVEL[background])
    bg = np.clip(level + rng.uniform(-10.0, 10.0, size=3), 0, 255).astype(np.uint8)
    fg = np.clip(np.array(_RGB[color]) + rng.integers(-15, 16, size=3), 0, 255).astype(np.uint8)
    template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    noise = rng.normal(0.0, 6.0, size=(image_size, image_size, 3))

    big = image_size * _SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), tuple(int(v) for v in bg))
    draw = ImageDraw.Draw(canvas)
    k = float(_SUPERSAMPLE)
    fill = tuple(int(v) for v in fg)
    if shape == "circle":
        draw.ellipse([(cx - radius) * k, (cy - radius) * k, (cx + radius) * k, (cy + radius) * k], fill=fill)
    else:
        draw.polygon(_polygon(shape, cx * k, cy * k, radius * k, rotation), fill=fill)
    small = canvas.resize((image_size, image_size), Image.Resampling.BOX)
    pixels = np.clip(np.asarray(small, dtype=np.float64) + noise, 0, 255).round().astype(np.uint8)

    text = template.format(size=size, color=color, shape=shape, background=background)
    meta = {
        "shape": shape,
        "color": color,
        "size": size,
        "background": background,
        "rotation": rotation,
        "center": [cx, cy],
        "radius": radius,
        "seed": seed,
        "index": index,
    }
    return {
        "image": Image.fromarray(pixels, mode="RGB"),
        "text": text,
        "label": shape_idx * len(COLORS) + color_idx,
        "meta": meta,
    }


def generate_shapes(n: int, seed: int, image_size: int = 64, start: int = 0) -> Iterator[dict[str, Any]]:
    """Yield samples ``start .. start + n - 1`` of the set with ``seed`` (see :func:`make_shape_sample`).

    Args:
        n: number of samples.
        seed: set seed; use :data:`HELDOUT_SEED` only for evaluation.
        image_size: image side in pixels.
        start: index of the first sample, so a set can be produced in slices.

    """
    if n < 0:
        raise InputError(f"n must be non-negative, got {n}")
    for index in range(start, start + n):
        yield make_shape_sample(seed, index, image_size)


class ShapesDataset(torch.utils.data.Dataset):
    """Map-style view of the generated shapes set, rendered on access.

    Args:
        n: number of samples.
        seed: set seed.
        image_size: image side in pixels.
        transform: applied to the PIL image (e.g. an open_clip ``preprocess``); ``None`` keeps PIL.

    """

    def __init__(
        self, n: int, seed: int, image_size: int = 64, transform: Callable[[Image.Image], Any] | None = None
    ):
        if n < 0:
            raise InputError(f"n must be non-negative, got {n}")
        self.n, self.seed, self.image_size, self.transform = n, seed, image_size, transform
        self.classes = class_names()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for ShapesDataset of length {self.n}")
        sample = make_shape_sample(self.seed, index, self.image_size)
        if self.transform is not None:
            sample["image"] = self.transform(sample["image"])
        return sample


def write_shapes_folder(root: Path, n: int, seed: int, image_size: int = 64) -> Path:
    """Write ``n`` samples as ``NNNNNN.png`` files plus ``metadata.jsonl`` (one record per image).

    Each metadata record is ``{"file": "000000.png", "text": ..., "label": ..., "meta": {...}}``.
    Every file is written atomically; the metadata file is written last, so a folder with metadata
    is complete. Read it back with :class:`ShapesFolder`.

    Returns:
        ``root``.

    """
    import io

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for sample in generate_shapes(n, seed, image_size):
        name = f"{sample['meta']['index']:06d}.png"
        buf = io.BytesIO()
        sample["image"].save(buf, format="PNG")
        atomic_write_bytes(root / name, buf.getvalue())
        record = {"file": name, "text": sample["text"], "label": sample["label"], "meta": sample["meta"]}
        lines.append(json.dumps(record))
    atomic_write_bytes(root / "metadata.jsonl", ("\n".join(lines) + "\n").encode())
    return root


class ShapesFolder(torch.utils.data.Dataset):
    """A shapes set written by :func:`write_shapes_folder`.

    Layout::

        root/metadata.jsonl   one JSON record per line: file, text, label, meta
        root/000000.png       RGB images named by the records

    Args:
        root: the folder.
        transform: applied to the PIL image; ``None`` keeps PIL.

    """

    def __init__(self, root: Path, transform: Callable[[Image.Image], Any] | None = None):
        self.root = Path(root)
        self.transform = transform
        self.classes = class_names()
        meta_path = self.root / "metadata.jsonl"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"shapes folder not found at {self.root}: expected metadata.jsonl and NNNNNN.png files "
                "written by domainclip.core.data.synthetic.write_shapes_folder"
            )
        self.records: list[dict[str, Any]] = []
        for lineno, record in read_jsonl(meta_path):
            missing = {"file", "text", "label"} - set(record)
            if missing:
                raise ValueError(f"{meta_path}:{lineno}: record lacks {sorted(missing)}")
            if not (self.root / record["file"]).is_file():
                raise FileNotFoundError(
                    f"{meta_path}:{lineno}: image {self.root / record['file']} is missing"
                )
            self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        with Image.open(self.root / record["file"]) as im:
            image = im.convert("RGB")
        return {
            "image": self.transform(image) if self.transform is not None else image,
            "text": record["text"],
            "label": int(record["label"]),
            "meta": dict(record.get("meta", {})),
        }
