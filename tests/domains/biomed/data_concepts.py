"""Figure shards of clearly separable figure types (solid colours), in the biomed layout, with the truth built in.

Each type of :data:`COLOURS` is one colour with pixel noise and a small shift per figure, so any
image model, even a randomly initialised one, tells the types apart. Shards are written in type
order (all charts first, ...), as BIOMEDICA writes its shards cluster by cluster. Samples follow
the figures helper's layout: ``PMC<id>_<figure id>`` keys, ``png`` (or ``jpg``) image, ``txt``
caption, ``json`` per-figure fields, and ``articles.jsonl`` beside the shards.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from domainclip.core.data.writer import FIXED_MTIME, ShardWriter

#: Figure type -> RGB colour of its figures.
COLOURS = {
    "chart": (230, 40, 40),
    "microscopy": (40, 200, 60),
    "clinical_imaging": (40, 60, 220),
    "table": (240, 220, 40),
}


def colour_image(rng: np.random.Generator, colour: tuple[int, int, int], size: tuple[int, int] = (40, 48)) -> bytes:
    """PNG bytes of a noisy solid-colour image."""
    base = np.array(colour, dtype=np.float64) + rng.integers(-10, 11, 3)
    pixels = base + rng.normal(0, 8, (*size, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_colour_shards(
    out: Path, *, per_type: int = 12, seed: int = 0, max_count: int = 10, bad: bool = False
) -> dict[str, str]:
    """Write the figures into ``out`` (``figures-*.tar``, ``articles.jsonl``); return key -> true type.

    Args:
        out: the shard folder.
        per_type: figures per type.
        seed: pixel noise seed.
        max_count: figures per shard.
        bad: also write a figure whose image is not an image and one without json (to be skipped).
    """
    rng = np.random.default_rng(seed)
    truth: dict[str, str] = {}
    articles = []
    out.mkdir(parents=True, exist_ok=True)
    with ShardWriter(out, prefix="figures", max_count=max_count, mtime=FIXED_MTIME) as writer:
        number = 0
        for name, colour in COLOURS.items():
            for i in range(per_type):
                article, figure_id = f"PMC{9000 + number}", f"F{i}"
                key = f"{article}_{figure_id}"
                meta = {"article": article, "figure_id": figure_id, "label": f"Figure {i}", "title": "",
                        "caption": f"Figure {i}. A {name}.", "graphic": f"f{i}", "cited_by": [],
                        "license": "CC BY 4.0", "fig_group": None}
                writer.write({"__key__": key, "png": colour_image(rng, colour), "txt": meta["caption"],
                              "json": json.dumps(meta).encode()})
                truth[key] = name
                articles.append({"pmcid": article, "title": f"Article {article}", "license": "CC BY 4.0",
                                 "figures": 1})
                number += 1
        if bad:
            meta = {"article": "PMC1", "figure_id": "X", "caption": "broken"}
            writer.write({"__key__": "PMC1_X", "png": b"not a png", "json": json.dumps(meta).encode()})
            writer.write({"__key__": "PMC2_Y", "png": colour_image(rng, COLOURS["chart"]), "txt": "no json"})
    (out / "articles.jsonl").write_text("".join(json.dumps(a) + "\n" for a in articles), encoding="utf-8")
    return truth


def write_prototypes(out: Path, *, per_type: int = 3, seed: int = 1, types: tuple[str, ...] = tuple(COLOURS)) -> Path:
    """A prototypes folder: ``out/<type>/<i>.png`` for each type, other noise than the shards."""
    rng = np.random.default_rng(seed)
    for name in types:
        (out / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_type):
            (out / name / f"{i}.png").write_bytes(colour_image(rng, COLOURS[name], size=(36, 36)))
    return out
