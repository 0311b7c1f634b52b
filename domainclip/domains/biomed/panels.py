"""``domainclip prepare biomed panels``: multi-panel figures flagged, and split where caption and image agree.

About half of the figures in biomedical papers are compound: several panels, labelled ``(A)``,
``(B)``, ... in the caption. :func:`split_panels` reads figure shards and looks at each figure
twice:

* **The caption** (:func:`caption_panels`): panel labels such as ``(A)``, ``(a)``, ``(A,B)``,
  ``(A-C)``, ``a)``, ``A,`` / ``A:`` at the start of a sentence or clause, ``Panel A`` /
  ``panels B and C``. The letters must run from A without a gap (``A, C`` alone is not a panel
  set), and a figure needs two of them to count as multi-panel.
* **The image** (:func:`image_panels`): recursive XY-cut on whitespace gutters. Rows (then
  columns) whose pixels are all light (grey >= :data:`LIGHT`) over the whole width (height) of the
  region, at least ``min_gutter`` pixels thick, cut the region; pieces are trimmed of their light
  margins and cut again, until none can be. A piece smaller than ``min_panel`` of the figure's
  side (an axis label cut off a chart by the white gap above it) is merged back into its neighbour.
  Panels are numbered in reading order: row by row, left to right.

Only where both agree (two or more panels, as many in the image as labels in the caption; a panel
with white space of its own is tried again at coarser gutter and panel sizes) is the
figure split: each panel becomes a sample keyed ``<parent key>_<label>`` with the panel's pixels,
its sub-caption (the caption's lead text, before the first label, followed by the text of each
label that names the panel) as ``txt``, and ``json`` the parent's fields plus ``parent``,
``panel_label``, ``panel_box`` (left, top, right, bottom in the parent's pixels) and the
sub-caption as ``caption``. Every other figure is written whole. Every sample gets
``json["panels"] = {"caption_labels": [...], "image_panels": <int>, "split": <bool>}``; the
summary counts figures flagged (either side sees several panels), split, caption-only (labels but
one panel in the image: insets, panels without gutters), image-only (gutters but no labels) and
disagreeing counts. ``panels-report.json``, ``panels-report.md`` and ``panels-examples.png`` (split
figures with their panel boxes) go beside the shards.

**Measured** (``prepare biomed synthetic`` 300 articles, seed 0, through ``prepare biomed
figures``; 1038 figures, 130 with 2 to 4 labelled panels): caption labels read right on all 1038;
125 of the 130 split into the right number of panels (0.96; 114 at the finest scale alone), 5
kept whole (a table or structure whose own white space still cuts it into more pieces); 2 of 16
insets (labels in the caption, one picture with a zoomed corner) split wrongly; 906 of 908
single-panel figures kept whole. 154 single-panel figures (tables, blots in strips, diagrams) cut
into pieces at the finest scale count as image-only flags. Seed 1: 156 of 167 split right, seed 2:
137 of 152, with no single-panel figure split.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from PIL import Image

from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.writer import FIXED_MTIME, ShardWriter, write_json_atomic
from domainclip.core.io import atomic_write_text
from domainclip.core.options import PositiveInt, Range, entry_point
from domainclip.domains.biomed.shards import copy_articles, input_shards, read_shards, require_written

__all__ = ["LIGHT", "CaptionPanels", "caption_panels", "image_panels", "split_panels", "sub_captions"]

#: Grey level (0-255) from which a pixel counts as light background in a gutter.
LIGHT = 225
_IMAGE_MEMBERS = ("png", "jpg", "jpeg", "webp", "tif", "tiff")
_LETTER = r"[A-Za-z](?![A-Za-z])"
_JOIN = r"\s*(?:[-\u2013\u2014,&]|and)\s*"
_GROUP = rf"{_LETTER}(?:{_JOIN}{_LETTER})*"
#: Panel label markers in captions: ``(A)``, ``(A-C)``, ``(a, b)``; ``a)``; ``A,`` / ``A:`` opening a
#: sentence or clause; ``Panel A`` / ``panels A and B``.
_MARKERS = re.compile(
    rf"\((?P<paren>{_GROUP})\)"
    rf"|(?:(?<=^)|(?<=[\s.;:]))(?P<half>[A-Za-z])\)"
    rf"|(?:(?<=^)|(?<=[.;]\s))(?P<lead>[A-Z])[,:]\s"
    rf"|\b[Pp]anels?\s+(?P<panel>[A-Z](?![A-Za-z])(?:{_JOIN}[A-Z](?![A-Za-z]))*)"
)
_MAX_PANELS = 26


@dataclass(frozen=True)
class CaptionPanels:
    """The panel labels of a caption and where each marker lies.

    Attributes:
        labels: the panel letters, upper case, A onwards without gaps (empty: not multi-panel).
        markers: ``(start, end, letters)`` of each label marker, in order.
    """

    labels: tuple[str, ...]
    markers: tuple[tuple[int, int, tuple[str, ...]], ...]


def _letters(group: str) -> tuple[str, ...]:
    """The letters a label group names: ``A-C`` -> A, B, C; ``A, B and D`` -> A, B, D."""
    letters: list[str] = []
    tokens = re.findall(r"[A-Za-z]{2,}|[A-Za-z]|[-\u2013\u2014]", group)
    tokens = [t for t in tokens if t.lower() != "and"]
    i = 0
    while i < len(tokens):
        token = tokens[i].upper()
        if i + 2 < len(tokens) and tokens[i + 1] in "-\u2013\u2014" and len(tokens[i + 2]) == 1:
            end = tokens[i + 2].upper()
            if token <= end:
                letters += [chr(c) for c in range(ord(token), ord(end) + 1)]
            i += 3
            continue
        letters.append(token)
        i += 1
    return tuple(dict.fromkeys(letters))


def caption_panels(caption: str) -> CaptionPanels:
    """The panel labels of a figure caption (see the module docstring for the forms read).

    Args:
        caption: the full caption text.

    Returns:
        The labels (two or more, A onwards without a gap, else none) and the label markers.
    """
    markers = []
    for match in _MARKERS.finditer(caption):
        group = next(g for g in match.groupdict().values() if g)
        letters = _letters(group)
        if letters:
            markers.append((match.start(), match.end(), letters))
    seen = sorted({letter for _, _, letters in markers for letter in letters})
    expected = [chr(ord("A") + k) for k in range(len(seen))]
    if len(seen) < 2 or seen != expected or len(seen) > _MAX_PANELS:
        return CaptionPanels((), tuple(markers))
    return CaptionPanels(tuple(seen), tuple(markers))


def sub_captions(caption: str, found: CaptionPanels) -> dict[str, str]:
    """Each label's sub-caption: the lead text before the first marker, then the text of every marker naming it.

    Args:
        caption: the full caption.
        found: its labels and markers (:func:`caption_panels`).

    Returns:
        label -> sub-caption, for every label in ``found.labels``.
    """
    if not found.labels:
        return {}
    lead = caption[: found.markers[0][0]].strip()
    texts: dict[str, list[str]] = {label: [] for label in found.labels}
    for k, (_, end, letters) in enumerate(found.markers):
        stop = found.markers[k + 1][0] if k + 1 < len(found.markers) else len(caption)
        text = caption[end:stop].strip(" ;,")
        for letter in letters:
            if text and letter in texts:
                texts[letter].append(text)
    return {label: " ".join([lead, *parts]).strip() for label, parts in texts.items()}


# =========================================================================== the image
Box = tuple[int, int, int, int]  # top, left, bottom, right (exclusive)


def _trim(light: np.ndarray, box: Box) -> Box | None:
    top, left, bottom, right = box
    region = ~light[top:bottom, left:right]
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if not len(rows):
        return None
    return top + int(rows[0]), left + int(cols[0]), top + int(rows[-1]) + 1, left + int(cols[-1]) + 1


def _cut(light: np.ndarray, box: Box, axis: int, min_gutter: int, min_size: int) -> list[Box]:
    """Pieces of ``box`` between gutters across it (axis 0: horizontal gutters), small pieces merged back."""
    top, left, bottom, right = box
    region = light[top:bottom, left:right]
    gutter = region.all(axis=1 - axis)  # a row (axis 0) or column (axis 1) that is light throughout
    pieces: list[list[int]] = []  # [start, end) along the axis, with the gutter before each
    gaps: list[int] = []
    start, k, n = 0, 0, len(gutter)
    while k < n:
        if gutter[k]:
            run = k
            while k < n and gutter[k]:
                k += 1
            if k - run >= min_gutter and run > start and k < n:
                pieces.append([start, run])
                gaps.append(k - run)
                start = k
        else:
            k += 1
    pieces.append([start, n])
    while len(pieces) > 1:  # merge the smallest too-small piece into the neighbour across the thinner gutter
        sizes = [b - a for a, b in pieces]
        small = min(range(len(pieces)), key=lambda i: sizes[i])
        if sizes[small] >= min_size:
            break
        if small == 0 or (small < len(pieces) - 1 and gaps[small] < gaps[small - 1]):
            pieces[small : small + 2] = [[pieces[small][0], pieces[small + 1][1]]]
            del gaps[small]
        else:
            pieces[small - 1 : small + 1] = [[pieces[small - 1][0], pieces[small][1]]]
            del gaps[small - 1]
    if axis == 0:
        return [(top + a, left, top + b, right) for a, b in pieces]
    return [(top, left + a, bottom, left + b) for a, b in pieces]


def image_panels(image: Image.Image | np.ndarray, *, min_gutter: int = 5, min_panel: float = 0.2) -> list[Box]:
    """The panels of a figure by recursive XY-cut on light gutters, in reading order.

    Args:
        image: the figure (PIL image or an HxW[xC] uint8 array).
        min_gutter: thinnest gutter (pixels) that separates panels.
        min_panel: smallest panel side as a fraction of the figure's side along the cut.

    Returns:
        ``(top, left, bottom, right)`` of each panel, trimmed of light margins; one box for a
        single-panel figure, none for a blank one.
    """
    grey = np.asarray(image.convert("L") if isinstance(image, Image.Image) else Image.fromarray(image).convert("L"))
    light = grey >= LIGHT
    sizes = (max(1, round(min_panel * grey.shape[0])), max(1, round(min_panel * grey.shape[1])))

    def split(box: Box, depth: int) -> list[Box]:
        trimmed = _trim(light, box)
        if trimmed is None:
            return []
        if depth < 8:
            for axis in (0, 1):
                pieces = _cut(light, trimmed, axis, min_gutter, sizes[axis])
                if len(pieces) > 1:
                    return [panel for piece in pieces for panel in split(piece, depth + 1)]
        return [trimmed]

    return split((0, 0, grey.shape[0], grey.shape[1]), 0)


def _panels_agreeing(image: Image.Image, labels: int, min_gutter: int, min_panel: float) -> list[Box]:
    """The image's panels at the given scale; where the caption names panels and they differ, at coarser scales.

    A figure whose panels hold white space of their own (a table's rows, blot strips) cuts into
    more pieces at the finest scale than it has panels; wider gutters and larger panels
    (:data:`_COARSER`) are tried in turn, and the first scale that gives as many panels as the
    caption has labels is taken. None agreeing, the finest scale's panels are returned.
    """
    boxes = image_panels(image, min_gutter=min_gutter, min_panel=min_panel)
    if labels < 2 or len(boxes) == labels:
        return boxes
    for gutter_factor, panel_factor in _COARSER:
        coarser = image_panels(image, min_gutter=min_gutter * gutter_factor,
                               min_panel=min(0.5, min_panel * panel_factor))
        if len(coarser) == labels:
            return coarser
    return boxes


#: (min_gutter factor, min_panel factor) of the coarser scales tried when the finest disagrees with the caption.
_COARSER = ((1, 1.25), (2, 1.0), (2, 1.25), (3, 1.25))


# =========================================================================== the command
def _encode(image: Image.Image, member: str) -> bytes:
    buf = io.BytesIO()
    if member in ("jpg", "jpeg"):
        image.convert("RGB").save(buf, format="JPEG", quality=95)
    else:
        image.save(buf, format="PNG")
    return buf.getvalue()


@entry_point
def split_panels(
    out: Path,
    shards: list[Path],
    *,
    min_gutter: PositiveInt = 5,
    min_panel: Annotated[float, Range(0, 0.5, low_open=True)] = 0.2,
    keep_parents: bool = False,
    max_count: PositiveInt = 1000,
    progress: bool = True,
) -> dict[str, Any]:
    """Flag multi-panel figures from caption labels and image gutters; split those where both agree.

    Args:
        out: output folder: shards, articles.jsonl and the panels report.
        shards: figure shards (files, folders searched for .tar, or glob patterns).
        min_gutter: thinnest light gutter (pixels) that separates two panels.
        min_panel: smallest panel side as a fraction of the figure's side (smaller pieces are merged back).
        keep_parents: write a split figure whole too, besides its panels.
        max_count: samples per output shard.
        progress: show a progress bar.

    Returns:
        ``{"out", "input_shards", "figures", "flagged", "split", "caption_only", "image_only",
        "disagree", "single", "panels_written", "samples", "skipped": {reason: n}, "shards", "articles"}``.

    Raises:
        InputError: no shard found, or an input inside ``out``.
        NothingWrittenError: no figure could be read.
    """
    from tqdm.auto import tqdm

    paths = input_shards(shards, out)
    out.mkdir(parents=True, exist_ok=True)
    tally = CorruptTally()
    counts: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    examples_of: dict[str, str] = {}
    examples: list[tuple[str, Image.Image, list[Box], list[str]]] = []
    with ShardWriter(out, prefix="figures", max_count=max_count, mtime=FIXED_MTIME) as writer:
        for raw in tqdm(read_shards(paths, tally), disable=not progress, unit="figure", desc="panels"):
            key = raw["__key__"]
            counts["figures"] += 1
            member = next((m for m in _IMAGE_MEMBERS if m in raw), None)
            try:
                meta = json.loads(raw["json"].decode("utf-8")) if "json" in raw else {}
                caption = raw["txt"].decode("utf-8") if "txt" in raw else str(meta.get("caption", ""))
                if not isinstance(meta, dict):
                    raise ValueError("json is not an object")
            except (UnicodeDecodeError, ValueError) as e:
                skipped["bad_text"] += 1
                examples_of.setdefault("bad_text", f"{raw.get('__url__')}: {key}: {e}")
                continue
            if member is None:
                skipped["no_image"] += 1
                examples_of.setdefault("no_image", f"{raw.get('__url__')}: {key}: no image member")
                continue
            try:
                with Image.open(io.BytesIO(raw[member])) as opened:
                    image = opened.convert("RGB")
            except Exception as e:  # any decoder failure: PIL raises many kinds for damaged files
                skipped["unreadable_image"] += 1
                examples_of.setdefault("unreadable_image", f"{raw.get('__url__')}: {key}: {type(e).__name__}: {e}")
                continue
            found = caption_panels(caption)
            boxes = _panels_agreeing(image, len(found.labels), min_gutter, min_panel)
            labels, n_image = list(found.labels), len(boxes)
            split = len(labels) >= 2 and n_image == len(labels)
            counts["flagged"] += len(labels) >= 2 or n_image >= 2
            counts["split" if split else "caption_only" if labels and n_image < 2 else
                   "image_only" if n_image >= 2 and not labels else "disagree" if labels else "single"] += 1
            panels = {"caption_labels": labels, "image_panels": n_image, "split": split}
            members = {k: v for k, v in raw.items() if not k.startswith("__")}
            if not split or keep_parents:
                writer.write({"__key__": key, **members, "json": {**meta, "panels": panels}})
                counts["samples"] += 1
            if not split:
                continue
            texts = sub_captions(caption, found)
            for label, (top, left, bottom, right) in zip(labels, boxes):
                sub = {**meta, "caption": texts[label], "parent": key, "panel_label": label,
                       "panel_box": [left, top, right, bottom], "panels": panels}
                crop = image.crop((left, top, right, bottom))
                writer.write({"__key__": f"{key}_{label}", member: _encode(crop, member), "txt": texts[label],
                              "json": sub})
                counts["panels_written"] += 1
                counts["samples"] += 1
            if len(examples) < 4:
                examples.append((key, image, boxes, labels))
    require_written("biomed/panels", counts["samples"], paths, tally, skipped, examples_of)
    summary: dict[str, Any] = {
        "out": str(out), "input_shards": len(paths),
        **{name: counts[name] for name in ("figures", "flagged", "split", "caption_only", "image_only", "disagree",
                                           "single", "panels_written", "samples")},
        "skipped": dict(skipped), "shards": [p.name for p in writer.written],
        "articles": copy_articles(paths, shards, out),
        "settings": {"min_gutter": min_gutter, "min_panel": min_panel, "light": LIGHT, "keep_parents": keep_parents},
    }
    if examples:
        summary["examples"] = str(_draw_examples(examples, out / "panels-examples.png"))
    write_json_atomic(out / "panels-report.json", summary)
    atomic_write_text(out / "panels-report.md", _markdown(summary))
    return summary


def _markdown(summary: dict[str, Any]) -> str:
    rows = [("figures read", "figures"), ("flagged multi-panel (caption or image)", "flagged"),
            ("split (caption and image agree)", "split"), ("caption labels, one panel in the image", "caption_only"),
            ("panels in the image, no caption labels", "image_only"),
            ("both multi-panel, counts differ", "disagree"), ("single-panel", "single"),
            ("panel samples written", "panels_written")]
    lines = ["# Multi-panel figures", "", "| | figures |", "|---|---:|",
             *[f"| {name} | {summary[key]} |" for name, key in rows],
             *[f"| skipped: {reason} | {n} |" for reason, n in sorted(summary["skipped"].items())]]
    return "\n".join(lines) + "\n"


def _draw_examples(examples: list[tuple[str, Image.Image, list[Box], list[str]]], target: Path) -> Path:
    """Split figures with each panel's box and label drawn on them."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(1, len(examples), figsize=(4 * len(examples), 3.6), squeeze=False)
    for ax, (key, image, boxes, labels) in zip(axes[0], examples):
        ax.imshow(image)
        for (top, left, bottom, right), label in zip(boxes, labels):
            ax.add_patch(Rectangle((left, top), right - left, bottom - top, fill=False, edgecolor="red", lw=1.5))
            ax.text(left + 3, top + 3, label, color="red", fontsize=11, va="top", weight="bold")
        ax.set_title(key, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(target, dpi=80)
    plt.close(fig)
    return target
