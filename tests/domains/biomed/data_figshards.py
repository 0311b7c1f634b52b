"""Figure shards in the biomed layout (what ``prepare biomed figures`` writes), with the truth built in.

One sample per figure: ``__key__`` ``PMC<id>_<figure id>``, the image under ``png`` or ``jpg``,
``txt`` the caption, ``json`` the per-figure fields (``article``, ``figure_id``, ``label``,
``title``, ``caption``, ``graphic``, ``cited_by``, ``license``, ``fig_group``), and
``articles.jsonl`` beside the shards. The figures are seeded and of several kinds: matplotlib
charts (line and bar), microscopy-like textures, radiograph-like images, near-blank panels with a
faint mark, and multi-panel figures (a grid of panels with white gutters, and a caption labelling
each panel). Some figures come again later as duplicates: the same bytes, the same pixels saved
again, resized, JPEG-recompressed, or cropped by 3% of each side (half at each edge). Some charts have a *sibling*: the
same axes, style and size with other data, a distinct figure that must not be called a duplicate.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from domainclip.core.data.writer import FIXED_MTIME, ShardWriter

#: Duplicate kinds the fixture writes, and the kind dedup must report for each.
DUPLICATE_KINDS = {"same_bytes": "exact", "resaved": "exact", "resized": "near", "recompressed": "near",
                   "cropped": "near"}
_LICENSE = "CC BY 4.0"


@dataclass
class FigureTruth:
    """The truth of one written figure."""

    key: str
    kind: str
    duplicate_of: str | None = None
    duplicate_kind: str | None = None
    sibling_of: str | None = None
    panels: int = 1
    panel_labels: list[str] = field(default_factory=list)
    panel_boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    caption: str = ""


def chart(rng: np.random.Generator, data_seed: int | None = None, size: tuple[float, float] = (3.2, 2.4)) -> np.ndarray:
    """A matplotlib line or bar chart; ``data_seed`` draws its data apart from its style (siblings share the style)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    style = int(rng.integers(2))
    colour = ("tab:blue", "tab:red", "tab:green", "black")[int(rng.integers(4))]
    data = np.random.default_rng(data_seed if data_seed is not None else int(rng.integers(1 << 30)))
    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if style == 0:
        x = np.linspace(0, 10, 40)
        ax.plot(x, np.cumsum(data.normal(size=40)), color=colour)
        ax.plot(x, np.cumsum(data.normal(size=40)), color="grey", linestyle="--")
    else:
        ax.bar(range(6), data.uniform(1, 10, 6), color=colour)
        ax.set_xticks(range(6), [f"G{i}" for i in range(6)])
    ax.set_xlabel("time (h)")
    ax.set_ylabel("signal")
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def texture(rng: np.random.Generator, shape: tuple[int, int] = (220, 260)) -> np.ndarray:
    """A microscopy-like image: dark background with stained blobs."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.normal(size=shape), sigma=rng.uniform(3, 8))
    noise = (noise - noise.min()) / (np.ptp(noise) + 1e-9)
    tint = rng.uniform(0.3, 1.0, 3)
    return (np.clip(noise[..., None] * tint * 1.6 - 0.2, 0, 1) * 255).astype(np.uint8)


def radiograph(rng: np.random.Generator, shape: tuple[int, int] = (240, 240)) -> np.ndarray:
    """A radiograph-like grey image: a bright ellipse with a smooth falloff on black."""
    yy, xx = np.mgrid[: shape[0], : shape[1]] / np.array(shape).reshape(2, 1, 1)
    cy, cx, ry, rx = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.4)
    r = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    grey = np.clip(1.2 - r, 0, 1) * 200 + rng.normal(0, 6, shape)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def blank(rng: np.random.Generator, shape: tuple[int, int] = (200, 240)) -> np.ndarray:
    """A near-blank white panel with one faint small mark at a random place (low information)."""
    image = np.full((*shape, 3), 255, np.uint8)
    y, x = int(rng.integers(10, shape[0] - 20)), int(rng.integers(10, shape[1] - 20))
    image[y : y + 6, x : x + 6] = 235
    return image


def panel_grid(panels: list[np.ndarray], columns: int, gutter: int = 14, margin: int = 4
               ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Panels laid out in a grid on white, ``gutter`` pixels apart; the image and each panel's (top, left, h, w)."""
    rows = -(-len(panels) // columns)
    h = max(p.shape[0] for p in panels)
    w = max(p.shape[1] for p in panels)
    height = margin * 2 + rows * h + (rows - 1) * gutter
    width = margin * 2 + columns * w + (columns - 1) * gutter
    canvas = np.full((height, width, 3), 255, np.uint8)
    boxes = []
    for i, p in enumerate(panels):
        top = margin + (i // columns) * (h + gutter)
        left = margin + (i % columns) * (w + gutter)
        canvas[top : top + p.shape[0], left : left + p.shape[1]] = p
        boxes.append((top, left, p.shape[0], p.shape[1]))
    return canvas, boxes


def encode(image: np.ndarray, fmt: str, quality: int = 95, compress_level: int = 6) -> bytes:
    """PNG or JPEG bytes of an RGB array."""
    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(image).save(buf, format="PNG", compress_level=compress_level)
    else:
        Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def make_duplicate(image: np.ndarray, data: bytes, fmt: str, kind: str) -> tuple[bytes, str]:
    """The bytes and format of a duplicate of ``kind`` of a figure (see :data:`DUPLICATE_KINDS`)."""
    if kind == "same_bytes":
        return data, fmt
    if kind == "resaved":  # the same decoded pixels, other bytes
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        return encode(pixels, "png", compress_level=1 if fmt == "png" else 6), "png"
    if kind == "resized":
        h, w = image.shape[:2]
        small = Image.fromarray(image).resize((int(w * 0.6), int(h * 0.6)), Image.Resampling.LANCZOS)
        return encode(np.asarray(small), fmt), fmt
    if kind == "recompressed":
        return encode(image, "jpg", quality=70), "jpg"
    if kind == "cropped":
        h, w = image.shape[:2]
        dy, dx = max(1, round(h * 0.015)), max(1, round(w * 0.015))  # 3% of each side in all
        return encode(image[dy : h - dy, dx : w - dx], fmt), fmt
    raise ValueError(kind)


def _caption(labels: list[str], kind: str, index: int) -> str:
    lead = f"Figure {index}. Results of experiment {index} ({kind})."
    if not labels:
        return f"{lead} The {kind} shows the measured response of the samples over time."
    parts = [f"({label}) {kind} of condition {label.lower()}{index}." for label in labels]
    return " ".join([lead, *parts])


def _figure(rng: np.random.Generator, kind: str) -> np.ndarray:
    return {"chart": chart, "texture": texture, "radiograph": radiograph, "blank": blank}[kind](rng)


def write_figure_shards(
    out: Path,
    *,
    seed: int = 0,
    originals: int = 24,
    siblings: int = 4,
    blanks: int = 3,
    multi_panel: int = 4,
    duplicates: dict[str, int] | None = None,
    max_count: int = 16,
) -> list[FigureTruth]:
    """Write figure shards with known duplicates, siblings and multi-panel figures into ``out``.

    Args:
        out: the shard folder (``figures-000000.tar``, ..., ``figures-index.json``, ``articles.jsonl``).
        seed: everything is drawn from it.
        originals: single-panel figures (charts, textures, radiographs in turn).
        siblings: charts with another chart's style and size but other data.
        blanks: near-blank panels, each with its mark elsewhere.
        multi_panel: grid figures of 2 to 4 panels with a caption labelling them ``(A)``, ``(B)``, ...
        duplicates: kind -> how many duplicates of that kind (default: 3 of each), of originals in turn.
        max_count: figures per shard.

    Returns:
        The truth of every figure, in the order written.
    """
    rng = np.random.default_rng(seed)
    duplicates = {kind: 3 for kind in DUPLICATE_KINDS} if duplicates is None else duplicates
    figures: list[tuple[FigureTruth, bytes, str]] = []
    images: dict[str, tuple[np.ndarray, bytes, str]] = {}
    kinds = ("chart", "texture", "radiograph")
    chart_seeds: dict[str, int] = {}
    for i in range(originals):
        kind = kinds[i % 3]
        key = f"PMC{1000 + i}_F{i}"
        if kind == "chart":
            chart_seeds[key] = 10_000 * seed + i
            image = chart(np.random.default_rng(chart_seeds[key]))
        else:
            image = _figure(rng, kind)
        fmt = "jpg" if kind == "texture" else "png"
        data = encode(image, fmt)
        images[key] = (image, data, fmt)
        figures.append((FigureTruth(key, kind, caption=_caption([], kind, i)), data, fmt))
    for j, original in enumerate(list(chart_seeds)[:siblings]):
        image = chart(np.random.default_rng(chart_seeds[original]), data_seed=777_000 + 10 * seed + j)
        key = f"PMC{3000 + j}_S{j}"
        figures.append((FigureTruth(key, "chart", sibling_of=original, caption=_caption([], "chart", 50 + j)),
                        encode(image, "png"), "png"))
    for j in range(blanks):
        key = f"PMC{4000 + j}_B{j}"
        figures.append((FigureTruth(key, "blank", caption="Figure. Blank control panel."), encode(blank(rng), "png"),
                        "png"))
    for j in range(multi_panel):
        count = 2 + j % 3
        columns = 2 if count == 4 else count
        parts = [_figure(rng, kinds[(j + p) % 3]) for p in range(count)]
        parts = [np.asarray(Image.fromarray(p).resize((180, 150))) for p in parts]
        image, boxes = panel_grid(parts, columns)
        labels = [chr(ord("A") + p) for p in range(count)]
        key = f"PMC{5000 + j}_M{j}"
        figures.append((FigureTruth(key, "multi_panel", panels=count, panel_labels=labels, panel_boxes=boxes,
                                    caption=_caption(labels, "panels", 60 + j)), encode(image, "png"), "png"))
    order = [key for key in images]
    counter = 0
    for kind, count in duplicates.items():
        for _ in range(count):
            original = order[counter % len(order)]
            counter += 1
            image, data, fmt = images[original]
            dup_data, dup_fmt = make_duplicate(image, data, fmt, kind)
            key = f"PMC{6000 + counter}_D{counter}"
            truth = FigureTruth(key, "duplicate", duplicate_of=original, duplicate_kind=DUPLICATE_KINDS[kind],
                                caption=f"Figure. Reused figure ({kind}).")
            figures.append((truth, dup_data, dup_fmt))
    # interleave: duplicates always after their originals, spread over shards
    head, tail = figures[: originals + siblings + blanks + multi_panel], figures[originals + siblings + blanks
                                                                                 + multi_panel :]
    written: list[FigureTruth] = []
    out.mkdir(parents=True, exist_ok=True)
    articles = []
    with ShardWriter(out, prefix="figures", max_count=max_count, mtime=FIXED_MTIME) as writer:
        for truth, data, fmt in head + tail:
            article, figure_id = truth.key.split("_", 1)
            meta: dict[str, Any] = {"article": article, "figure_id": figure_id, "label": "Figure", "title": "",
                                    "caption": truth.caption, "graphic": figure_id.lower(), "cited_by": [],
                                    "license": _LICENSE, "fig_group": None}
            writer.write({"__key__": truth.key, fmt: data, "txt": truth.caption, "meta": meta})
            articles.append({"pmcid": article, "pmid": None, "doi": None, "title": f"Article {article}",
                             "journal": "J Test", "year": 2024, "license": _LICENSE, "license_url": None,
                             "keywords": [], "mesh": [], "figures": 1})
            written.append(truth)
    (out / "articles.jsonl").write_text("".join(json.dumps(a) + "\n" for a in articles), encoding="utf-8")
    return written
