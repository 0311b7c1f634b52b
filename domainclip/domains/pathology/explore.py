"""Zero-shot tissue maps of whole-slide images: class probabilities per patch, and their picture.

:func:`tissue_map` lays the patch grid of :mod:`~domainclip.domains.pathology.patching` over a
slide at a chosen resolution (``mpp`` microns per pixel, ``tile_px`` pixels a side), finds the
tissue with :func:`~domainclip.domains.pathology.tissue.detect_tissue`, reads the tissue cells in
the tile-friendly order of :func:`~domainclip.domains.pathology.patching.iter_patch_arrays` and
scores them in batches against a zero-shot classifier built from the class names (a prompt
ensemble, :func:`~domainclip.domains.pathology.labels.expand_prompts`)::

    from domainclip.domains.pathology.explore import plot_tissue_map, tissue_map

    result = tissue_map("CMU-1.svs", "zoo:PathGen-CLIP", ["tumor epithelium", "stroma", "adipose tissue"])
    result.probabilities        # (rows, cols, classes), NaN where a cell was not scored
    result.xy[r, c]             # level-0 (x, y) of cell (r, c)'s top-left corner
    fig = plot_tissue_map(result)

Memory stays bounded for a whole slide: patches are streamed from the slide ``batch_size`` at a
time and only their probabilities are kept (``rows * cols * classes`` floats); the tissue mask and
the thumbnail are low-resolution views. This is the tissue-map idea of CONCH's and PLIP's
zero-shot slide figures (tile-level zero-shot, coloured by the most probable class), written on
this package's own slide reading and patching.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from domainclip.core.errors import InputError
from domainclip.core.explore import ModelLike, class_colours, resolve_model

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from domainclip.domains.pathology.slides import Slide

__all__ = ["TissueMap", "plot_tissue_map", "tissue_map"]


@dataclass(frozen=True)
class TissueMap:
    """A zero-shot tissue map: class probabilities on the patch grid of one slide.

    Cell ``(r, c)`` is the square of ``cell_size0`` level-0 pixels whose top-left corner is
    ``xy[r, c]``; the grid covers every whole cell inside the slide (a strip narrower than a cell
    at the right and bottom edges is left out, as in patching).

    Attributes:
        probabilities: ``(rows, cols, classes)`` float32, softmax over the classes of the zero-shot
            logits (the model's logit scale times the cosine similarities); NaN where a cell was
            not scored (outside the tissue when the map was made with ``tissue_only``).
        xy: ``(rows, cols, 2)`` int64, level-0 ``(x, y)`` of each cell's top-left corner.
        tissue: ``(rows, cols)`` bool, cells whose tissue fraction is at least ``min_tissue``.
        tissue_fraction: ``(rows, cols)`` float32, the share of each cell that the tissue mask covers.
        classes: class names, in the order of the last axis of ``probabilities``.
        prompts: the prompts of each class (their embeddings are averaged into its classifier).
        mpp: microns per pixel of the patches the model saw.
        tile_px: patch side in pixels at ``mpp``.
        cell_size0: cell side in level-0 pixels.
        min_tissue: tissue fraction from which a cell counts as tissue.
        slide: the slide file.
        slide_mpp: microns per pixel of the slide's level 0.
        slide_size: level-0 ``(width, height)`` of the slide.
        thumbnail: ``(h, w, 3)`` uint8 RGB view of the whole slide.
        thumbnail_scale: thumbnail pixels per level-0 pixel, along x and y.
        model: what the model was loaded from.
    """

    probabilities: np.ndarray
    xy: np.ndarray
    tissue: np.ndarray
    tissue_fraction: np.ndarray
    classes: tuple[str, ...]
    prompts: dict[str, list[str]] = field(repr=False)
    mpp: float
    tile_px: int
    cell_size0: int
    min_tissue: float
    slide: str
    slide_mpp: float
    slide_size: tuple[int, int]
    thumbnail: np.ndarray = field(repr=False)
    thumbnail_scale: tuple[float, float]
    model: str

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the grid."""
        return self.tissue.shape

    @property
    def scored(self) -> np.ndarray:
        """``(rows, cols)`` bool: the cells that have probabilities."""
        return ~np.isnan(self.probabilities[..., 0]) if len(self.classes) else np.zeros(self.shape, bool)

    @property
    def labels(self) -> np.ndarray:
        """``(rows, cols)`` int: index of each scored cell's most probable class, -1 elsewhere."""
        labels = np.argmax(np.nan_to_num(self.probabilities, nan=-1.0), axis=-1)
        return np.where(self.scored, labels, -1)

    @property
    def confidence(self) -> np.ndarray:
        """``(rows, cols)`` float: each scored cell's highest class probability, NaN elsewhere."""
        return np.where(self.scored, np.nan_to_num(self.probabilities, nan=0.0).max(axis=-1), np.nan)

    def class_fractions(self) -> dict[str, float]:
        """Share of the scored tissue cells whose most probable class is each class (0 when none was scored)."""
        labels = self.labels[self.scored & self.tissue]
        total = max(1, labels.size)
        return {name: float(np.count_nonzero(labels == k)) / total for k, name in enumerate(self.classes)}

    def table(self) -> list[dict[str, Any]]:
        """One row per scored cell: grid position, level-0 corner, tissue fraction, predicted class, probabilities."""
        rows = []
        labels = self.labels
        for r, c in zip(*np.nonzero(self.scored)):
            row: dict[str, Any] = {
                "row": int(r),
                "col": int(c),
                "x": int(self.xy[r, c, 0]),
                "y": int(self.xy[r, c, 1]),
                "tissue_fraction": round(float(self.tissue_fraction[r, c]), 4),
                "tissue": bool(self.tissue[r, c]),
                "class": self.classes[labels[r, c]],
            }
            row.update({f"p_{name}": float(self.probabilities[r, c, k]) for k, name in enumerate(self.classes)})
            rows.append(row)
        return rows


def _class_prompts(
    classes: Sequence[str] | Mapping[str, str | Sequence[str]], templates: Sequence[str] | None
) -> dict[str, list[str]]:
    """``{class: [prompt, ...]}``: every name of every class through every template."""
    from domainclip.domains.pathology.labels import PATCH_TEMPLATES, expand_prompts

    if isinstance(classes, str):
        raise InputError(f"classes must be a list of class names, not the single string {classes!r}")
    names = dict(classes) if isinstance(classes, Mapping) else None
    if names is None:
        listed = list(classes)
        if len(set(listed)) != len(listed):
            repeated = sorted({c for c in listed if listed.count(c) > 1})
            raise InputError(f"classes must be distinct; repeated: {', '.join(map(repr, repeated))}")
        names = {c: c for c in listed}
    if not names:
        raise InputError("classes is empty: give at least one class name (two or more for a map that says anything)")
    bad = [c for c in names if not isinstance(c, str) or not c.strip()]
    if bad:
        raise InputError(f"class names must be non-empty strings; got {bad[0]!r}")
    templates = PATCH_TEMPLATES if templates is None else tuple(templates)
    if isinstance(templates, str):
        raise InputError(f"templates must be a list of templates, not the single string {templates!r}")
    try:
        return expand_prompts(names, templates)
    except ValueError as e:  # a template without {}, no templates, a class without a name
        raise InputError(f"zero-shot prompts: {e}") from None


def _open(slide: str | os.PathLike | Slide, slide_mpp: float | None) -> tuple[Slide, bool]:
    """The open slide and whether this module opened it (and must close it)."""
    from domainclip.domains.pathology.slides import Slide, open_slide

    if isinstance(slide, Slide):
        if slide_mpp is not None:
            raise InputError(f"slide {slide.path} is already open: give its mpp to open_slide(..., mpp=), "
                             f"not slide_mpp=")
        return slide, False
    if not isinstance(slide, (str, os.PathLike)):
        raise TypeError(f"slide must be a path or an open Slide, got {type(slide).__name__}")
    return open_slide(slide, mpp=slide_mpp), True


@torch.no_grad()
def tissue_map(
    slide: str | os.PathLike | Slide,
    model: ModelLike,
    classes: Sequence[str] | Mapping[str, str | Sequence[str]],
    *,
    mpp: float = 0.5,
    tile_px: int = 224,
    templates: Sequence[str] | None = None,
    tissue_only: bool = True,
    min_tissue: float = 0.5,
    slide_mpp: float | None = None,
    tissue: Mapping[str, Any] | None = None,
    thumbnail_size: int = 1024,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> TissueMap:
    """Zero-shot tissue map of a slide: the class probabilities of every patch of its grid.

    The slide is cut on the grid :func:`~domainclip.domains.pathology.patching.plan_patches` lays
    at ``mpp`` (the coarsest pyramid level at least that fine is read, and reads are resized to
    ``tile_px``); each patch goes through the model's own preprocessing and is scored against the
    class prompts; probabilities are the softmax of ``logit_scale * cosine``. Patches are streamed
    ``batch_size`` at a time, so a whole slide needs no more memory than a small one.

    Args:
        slide: a slide file (any format :func:`~domainclip.domains.pathology.slides.open_slide`
            reads), or an open :class:`~domainclip.domains.pathology.slides.Slide` (left open).
        model: any model spelling :func:`~domainclip.core.explore.resolve_model` accepts: a run or
            hub folder, ``zoo:NAME``, ``hf-hub:...``, a ``(model, preprocess, tokenizer)`` tuple,
            a :class:`~domainclip.core.explore.LoadedModel`.
        classes: class names (each put through every template), or ``{class: name or [names]}``
            to ensemble synonyms of a class.
        mpp: microns per pixel of the patches (use what the model was trained at; 0.5 is 20x).
        tile_px: patch side in pixels at ``mpp`` (the field of view is ``tile_px * mpp`` microns);
            the model's preprocessing resizes it to its input size.
        templates: prompt templates with one ``{}`` (default
            :data:`~domainclip.domains.pathology.labels.PATCH_TEMPLATES`).
        tissue_only: score only the tissue cells (the others stay NaN); ``False`` scores every cell.
        min_tissue: share of a cell the tissue mask must cover for it to count as tissue, in [0, 1].
        slide_mpp: microns per pixel of the slide's level 0, for a slide whose metadata has none
            (or a wrong one).
        tissue: keyword options of :func:`~domainclip.domains.pathology.tissue.detect_tissue`
            (``method``, ``threshold``, ``exclude_pen``, ``min_object_area_um2``, ...).
        thumbnail_size: longest side of the thumbnail kept for the picture.
        batch_size: patches per forward pass.
        device: where the model runs.
        progress: show a progress bar.

    Returns:
        The :class:`TissueMap`.

    Raises:
        SlideOpenError: the slide file is missing or not a slide.
        MissingMppError: the slide has no mpp and ``slide_mpp`` was not given.
        InputError: no classes, repeated classes, a template without ``{}``, an option out of its
            range, or a slide smaller than one cell.
    """
    from tqdm.auto import tqdm

    from domainclip.domains.pathology.patching import PatchSpec, iter_patch_arrays, plan_patches
    from domainclip.domains.pathology.tissue import detect_tissue

    for name, value in (("tile_px", tile_px), ("batch_size", batch_size), ("thumbnail_size", thumbnail_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer; got {value!r}")
    spec = PatchSpec(mpp=float(mpp), size=tile_px, min_tissue=float(min_tissue))
    prompts = _class_prompts(classes, templates)
    loaded = resolve_model(model, device=device)

    handle, owned = _open(slide, slide_mpp)
    try:
        width0, height0 = handle.dimensions
        grid = plan_patches(handle, None, spec)  # every whole cell, row-major
        if not grid:
            raise InputError(
                f"slide {handle.path} ({width0}x{height0} level-0 pixels at {handle.mpp:g} um/px) is smaller than "
                f"one {tile_px}-px cell at {spec.mpp:g} um/px; lower tile_px or mpp"
            )
        xs = sorted({loc.x0 for loc in grid})
        ys = sorted({loc.y0 for loc in grid})
        rows, cols = len(ys), len(xs)
        xy = np.array([[loc.x0, loc.y0] for loc in grid], dtype=np.int64).reshape(rows, cols, 2)
        mask = detect_tissue(handle, **dict(tissue or {}))
        kept = {(loc.x0, loc.y0) for loc in plan_patches(handle, mask, spec)}
        is_tissue = np.array([(loc.x0, loc.y0) in kept for loc in grid]).reshape(rows, cols)
        size0 = grid[0].size0
        boxes = np.array([[loc.x0, loc.y0, size0, size0] for loc in grid], dtype=np.float64)
        fractions = mask.tissue_fractions(boxes).astype(np.float32).reshape(rows, cols)
        thumbnail = np.asarray(handle.get_thumbnail(thumbnail_size))
        del mask

        weights = loaded.text_classifier(prompts)  # (D, C)
        scale = loaded.logit_scale
        cell = {(x, y): (r, c) for r, y in enumerate(ys) for c, x in enumerate(xs)}
        todo = [loc for loc in grid if not tissue_only or (loc.x0, loc.y0) in kept]
        probabilities = np.full((rows, cols, len(prompts)), np.nan, dtype=np.float32)
        batch: list[Any] = []
        where: list[tuple[int, int]] = []

        def score() -> None:
            features = loaded.encode_images(batch, batch_size=len(batch))
            probs = torch.softmax(scale * features @ weights, dim=-1).numpy()
            for (r, c), p in zip(where, probs):
                probabilities[r, c] = p
            batch.clear()
            where.clear()

        desc = f"tissue map {handle.slide_id}"
        with tqdm(total=len(todo), disable=not progress, unit="patch", desc=desc) as bar:
            for loc, image in iter_patch_arrays(handle, todo, spec):
                batch.append(image)
                where.append(cell[(loc.x0, loc.y0)])
                if len(batch) == batch_size:
                    score()
                    bar.update(batch_size)
            if batch:
                bar.update(len(batch))
                score()
        return TissueMap(
            probabilities=probabilities,
            xy=xy,
            tissue=is_tissue,
            tissue_fraction=fractions,
            classes=tuple(prompts),
            prompts=prompts,
            mpp=spec.mpp,
            tile_px=tile_px,
            cell_size0=size0,
            min_tissue=spec.min_tissue,
            slide=str(handle.path),
            slide_mpp=float(handle.mpp),
            slide_size=(width0, height0),
            thumbnail=thumbnail,
            thumbnail_scale=(thumbnail.shape[1] / width0, thumbnail.shape[0] / height0),
            model=loaded.spec,
        )
    finally:
        if owned:
            handle.close()


def plot_tissue_map(result: TissueMap, *, alpha: float = 0.45, ax: Axes | None = None) -> Figure:
    """The most probable class of every scored tissue cell, coloured over the slide thumbnail.

    Cells outside the tissue (or not scored) are left clear, so the slide shows through; the
    legend gives each class's colour (:func:`~domainclip.core.explore.class_colours`) and its share
    of the scored tissue cells. Axes are in millimetres of the slide.

    Args:
        result: a :func:`tissue_map` result.
        alpha: opacity of the class colours, in [0, 1].
        ax: axes to draw into (default: a new figure).

    Returns:
        The figure (not shown; a notebook displays it).

    Raises:
        InputError: ``alpha`` is outside [0, 1].
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be in [0, 1]; got {alpha!r}")
    width0, height0 = result.slide_size
    mm = result.slide_mpp / 1000.0  # millimetres per level-0 pixel
    own_figure = ax is None
    if own_figure:  # the slide about 6 inches on its long side, the legend beside it
        aspect = height0 / width0
        side = 6.0 / max(1.0, aspect)
        fig, ax = plt.subplots(figsize=(side + 3.0, side * aspect + 1.0))
    else:
        fig = ax.figure
    ax.imshow(result.thumbnail, extent=(0, width0 * mm, height0 * mm, 0), interpolation="antialiased")

    colours = np.asarray(class_colours(len(result.classes)), dtype=np.float32)
    labels = result.labels
    shown = (labels >= 0) & result.tissue  # tissue only, also for a map scored everywhere
    overlay = np.zeros((*labels.shape, 4), dtype=np.float32)
    overlay[shown, :3] = colours[labels[shown]]
    overlay[shown, 3] = alpha
    rows, cols = labels.shape
    x0, y0 = result.xy[0, 0]
    x1, y1 = result.xy[-1, -1] + result.cell_size0
    ax.imshow(overlay, extent=(x0 * mm, x1 * mm, y1 * mm, y0 * mm), interpolation="nearest")
    ax.set_xlim(0, width0 * mm)
    ax.set_ylim(height0 * mm, 0)
    ax.set_xlabel("mm")
    ax.set_ylabel("mm")

    shares = _shares(labels[shown], len(result.classes))
    handles = [
        Patch(facecolor=(*colours[k], alpha), edgecolor=tuple(colours[k]), label=f"{name} ({shares[k]:.0%})")
        for k, name in enumerate(result.classes)
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False,
              title="most probable class\n(share of tissue cells)", title_fontsize=8)
    ax.set_title(
        f"{Path(result.slide).name}: zero-shot tissue map\n{result.tile_px} px at {result.mpp:g} um/px, "
        f"{int(shown.sum())} of {rows * cols} cells, model {_short(result.model)}",
        fontsize=9,
    )
    if own_figure:  # a caller's figure keeps the layout its caller chose
        fig.tight_layout()
    return fig


def _shares(labels: np.ndarray, n: int) -> np.ndarray:
    counts = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    return counts / max(1.0, counts.sum())


def _short(spec: str, limit: int = 40) -> str:
    """A model spec short enough for a title (a long path keeps its last parts)."""
    if len(spec) <= limit:
        return spec
    parts = Path(spec).parts
    tail = str(Path(*parts[-2:])) if len(parts) >= 2 else spec[-limit:]
    return "..." + tail[-(limit - 3):]
