"""Tiny multi-view training shards: coloured shapes at 32 px, several views per object, plus general image-text pairs.

Each object is one category's shape (disc, square, triangle) in one colour of a palette every
category shares, seen in ``views`` views that rotate and shift it (a stand-in for viewpoints);
samples are written with :func:`domainclip.domains.multiview.views.object_sample` and
``ShardWriter``, in the layout every multi-view reader expects.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from domainclip.core.data.writer import ShardWriter
from domainclip.domains.multiview.views import ViewPose, object_sample

CATEGORIES = ("disc", "square", "triangle")
PALETTE = ((220, 40, 40), (40, 170, 60), (40, 80, 220), (230, 200, 30))
SIZE = 32


def shape_view(category: str, colour: tuple[int, int, int], view: int, views: int) -> np.ndarray:
    """One 32 px view of a shape: rotated by ``view / views`` of a turn and shifted a little."""
    image = Image.new("RGB", (SIZE, SIZE), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    angle = 2 * math.pi * view / views
    cx, cy, r = 16 + 3 * math.cos(angle), 16 + 3 * math.sin(angle), 9 - 3 * (view % 2)
    if category == "disc":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        corners = 4 if category == "square" else 3
        turns = [angle + 2 * math.pi * i / corners for i in range(corners)]
        points = [(cx + r * math.cos(t), cy + r * math.sin(t)) for t in turns]
        draw.polygon(points, fill=colour)
    return np.asarray(image)


def write_object_shards(out: Path, objects: int, *, views: int = 6, per_shard: int = 8) -> list[str]:
    """``objects`` objects (category ``i % 3``) of ``views`` views each; returns their keys in order."""
    keys = []
    with ShardWriter(out, prefix="objects", max_count=per_shard, mtime=0) as writer:
        for i in range(objects):
            category = CATEGORIES[i % len(CATEGORIES)]
            colour = PALETTE[(i // len(CATEGORIES)) % len(PALETTE)]
            key = f"{category}_{i:04d}"
            images = [shape_view(category, colour, v, views) for v in range(views)]
            poses = [ViewPose(v, azimuth=360.0 * v / views, elevation=0.0).to_json() for v in range(views)]
            meta = {"object_id": key, "category": category, "source": "test shapes", "license": "CC0-1.0",
                    "views": poses, "caption_source": "template"}
            writer.write(object_sample(key, images, [f"a {category}", f"a 3D render of a {category}"], meta,
                                       label=i % len(CATEGORIES), image_format="png"))
            keys.append(key)
    return keys


def write_general_shards(out: Path, n: int, *, per_shard: int = 8) -> None:
    """``n`` general image-text pairs (one image, one caption): single shapes with plain captions."""
    with ShardWriter(out, prefix="general", max_count=per_shard, image_format="png", mtime=0) as writer:
        for i in range(n):
            category = CATEGORIES[(i + 1) % len(CATEGORIES)]
            image = shape_view(category, PALETTE[i % len(PALETTE)], i % 5, 5)
            writer.write({"__key__": f"photo_{i:04d}", "image": image, "text": f"a photo of a {category}"})
