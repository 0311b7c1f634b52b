"""Zero-shot land-cover maps of satellite and aerial scenes: a class per chip, as a GeoTIFF and a picture.

::

    result = landcover_map("scene.tif", model="zoo:RemoteCLIP-ViT-B-32", classes=["water", "forest", "farmland"])
    write_landcover_geotiff(result, "scene-landcover.tif")   # opens in QGIS on top of the scene
    fig = plot_landcover_map(result)                          # the classes over the scene

:func:`landcover_map` cuts the scene into the same grid of ``chip_px``-pixel chips as ``domainclip
prepare remote_sensing chips`` (:func:`~domainclip.domains.remote_sensing.chips.iter_chips`: the
same band choice, one percentile stretch per scene, reads aligned to the file's blocks), so a
model sees the chips it was trained or evaluated on. Each chip is encoded by the model's image
tower and compared with one text embedding per class (the mean of the class's prompts, as in
CLIP's zero-shot classifier); the class probabilities are the softmax of the scaled cosine
similarities. Memory holds one batch of chips, a strip of the scene about ``chip_px`` rows high,
the preview and the per-chip results, whatever the size of the scene.

The map is a raster itself: cell ``(row, col)`` is chip ``(row, col)``, and
:attr:`LandCoverMap.transform` is the scene's affine transform scaled to the chip grid, so
:func:`write_landcover_geotiff` writes a georeferenced class raster in the scene's CRS that GIS
software lays exactly over the scene. With overlapping chips (``stride`` below ``chip_px``) a cell
is ``stride`` pixels wide and centred on its chip's centre.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from domainclip.core.errors import InputError, OutputExistsError
from domainclip.core.explore import ModelLike, class_colours, resolve_model
from domainclip.domains.remote_sensing.labels import TEMPLATES

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["NODATA_CLASS", "LandCoverMap", "landcover_map", "plot_landcover_map", "write_landcover_geotiff"]

#: The value of cells without a class in :attr:`LandCoverMap.labels` (-1) is written as this in the GeoTIFF.
NODATA_CLASS = 255
#: Largest number of classes a uint8 class raster holds beside its nodata value.
MAX_CLASSES = 255


@dataclass(frozen=True)
class LandCoverMap:
    """A scene's zero-shot land-cover map: one class and its probabilities per chip, georeferenced.

    Args:
        classes: the class names, in label order.
        labels: ``(rows, cols)`` int16, the most probable class of each chip; -1 for a chip with more
            nodata than ``max_nodata`` (no class).
        probabilities: ``(rows, cols, classes)`` float32 class probabilities; NaN where ``labels`` is -1.
        nodata_fraction: ``(rows, cols)`` float32, the share of each chip's pixels without data.
        transform: the affine transform of the chip grid (6 numbers a, b, c, d, e, f as in rasterio's
            ``Affine``): the scene's transform scaled to ``stride`` pixels per cell, offset by
            ``(chip_px - stride) / 2`` pixels so each cell is centred on its chip.
        crs: the scene's CRS as WKT; ``None`` for a raster without georeferencing (then ``transform``
            is in the scene's pixel coordinates).
        scene_transform: the scene's own affine transform (6 numbers).
        scene_size: the scene's ``(width, height)`` in pixels.
        chip_px: chip side in scene pixels.
        stride: pixels between neighbouring chips.
        bands: the 1-based (red, green, blue) band numbers the chips were made from.
        preview: ``(h, w, 3)`` uint8, the stretched scene decimated by ``preview_step`` (for plots).
        preview_step: scene pixels per preview pixel.
        source: the scene file.
        model: what the model was loaded from.
        prompts: the prompts of each class that made its text embedding.
    """

    classes: tuple[str, ...]
    labels: np.ndarray
    probabilities: np.ndarray
    nodata_fraction: np.ndarray
    transform: tuple[float, ...]
    crs: str | None
    scene_transform: tuple[float, ...]
    scene_size: tuple[int, int]
    chip_px: int
    stride: int
    bands: tuple[int, ...]
    preview: np.ndarray
    preview_step: int
    source: str
    model: str = "<in memory>"
    prompts: dict[str, list[str]] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """The grid's ``(rows, cols)``."""
        return self.labels.shape  # type: ignore[return-value]

    def class_fractions(self) -> dict[str, float]:
        """Each class's share of the chips that have a class (0 for all when none has)."""
        counts = np.bincount(self.labels[self.labels >= 0].ravel(), minlength=len(self.classes))
        total = counts.sum()
        return {c: float(n / total) if total else 0.0 for c, n in zip(self.classes, counts)}

    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of the chip grid in the CRS (pixel coordinates without one).

        Raises:
            ValueError: the transform is rotated (no axis-aligned bounds).
        """
        a, b, c, d, e, f = self.transform
        if b or d:
            raise ValueError("a rotated grid has no axis-aligned bounds")
        rows, cols = self.shape
        xs, ys = (c, c + a * cols), (f, f + e * rows)
        return min(xs), min(ys), max(xs), max(ys)


# --------------------------------------------------------------------------- the map
def _class_prompts(
    classes: Sequence[str] | Mapping[str, Sequence[str]],
    templates: Sequence[str] | None,
) -> dict[str, list[str]]:
    """``{class: [prompt, ...]}`` from class names and templates, or the mapping as given; checked."""
    if isinstance(classes, str):
        raise InputError(f"classes must be a list of class names, not one string ({classes!r})")
    if isinstance(classes, Mapping):
        if templates is not None:
            raise InputError("give templates or a {class: [prompts]} mapping as classes, not both")
        prompts = {str(c): [str(p) for p in group] for c, group in classes.items()}
        empty = [c for c, group in prompts.items() if not group]
        if empty:
            raise InputError(f"class {empty[0]!r} has no prompt")
    else:
        names = [str(c) for c in classes]
        chosen = list(TEMPLATES["en"] if templates is None else templates)
        if not chosen:
            raise InputError("templates is empty: give at least one, e.g. 'a satellite photo of {}.'")
        bad = [t for t in chosen if "{}" not in t]
        if bad:
            raise InputError(f"template {bad[0]!r} has no '{{}}' for the class name")
        if len(set(names)) != len(names):
            twice = sorted({c for c in names if names.count(c) > 1})
            raise InputError(f"class names must differ; {twice[0]!r} is given twice")
        prompts = {c: [t.format(c) for t in chosen] for c in names}
    if not prompts:
        raise InputError("classes is empty: give at least one land-cover class name")
    if len(prompts) > MAX_CLASSES:
        raise InputError(f"a land-cover map holds at most {MAX_CLASSES} classes; got {len(prompts)}")
    return prompts


def _grid_transform(scene: Any, chip_px: int, stride: int) -> tuple[float, ...]:
    """The chip grid's transform: ``scene`` (an ``Affine``) offset to the first chip's centre cell and scaled."""
    from affine import Affine

    offset = (chip_px - stride) / 2
    grid = scene * Affine.translation(offset, offset) * Affine.scale(stride)
    return tuple(float(v) for v in list(grid)[:6])


def landcover_map(
    scene: str | os.PathLike,
    model: ModelLike,
    classes: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    chip_px: int = 64,
    bands: Sequence[int] | None = None,
    preset: str | None = None,
    stride: int | None = None,
    templates: Sequence[str] | None = None,
    stretch: tuple[float, float] = (2.0, 98.0),
    max_nodata: float = 0.5,
    batch_size: int = 64,
    preview_size: int = 1024,
    device: str = "cpu",
    progress: bool = True,
) -> LandCoverMap:
    """Classify every chip of a scene zero-shot into land-cover classes.

    Args:
        scene: a GeoTIFF (any raster GDAL reads).
        model: the model, in any spelling :func:`~domainclip.core.explore.resolve_model` takes (a run
            folder, a hub folder, ``zoo:NAME``, a loaded model).
        classes: class names (each put into every template), or ``{class: [prompt, ...]}``.
        chip_px: chip side in scene pixels; pick it so a chip covers about as much ground as the
            model's training images did (chips are resized to the model's input size).
        bands: 1-based band numbers shown as red, green, blue (or one band as grey); default 1, 2, 3
            (band 1 as grey in a one-band file), as ``prepare remote_sensing chips`` chooses them.
        preset: a sensor's true-colour bands instead of ``bands`` (``sentinel2``, ``landsat8``,
            ``landsat7``, ... see :data:`~domainclip.domains.remote_sensing.raster.BAND_PRESETS`).
        stride: pixels between neighbouring chips (default ``chip_px``: no overlap, one cell per chip).
        templates: prompt templates with ``{}`` for the class name (default: the domain's five English
            RemoteCLIP-style templates, averaged per class).
        stretch: the lower and upper percentile of each band (over the whole scene) mapped to 0 and 255.
        max_nodata: chips with a larger share of nodata pixels get no class (-1; nodata in the GeoTIFF).
        batch_size: chips encoded at once.
        preview_size: longest side of the preview in :attr:`LandCoverMap.preview`.
        device: where the model runs (``"cpu"``, ``"cuda"``).
        progress: show a progress bar over the chips.

    Returns:
        The map: a class and probabilities per chip, the grid's transform and CRS, the preview.

    Raises:
        InputNotFoundError: the scene does not exist.
        RasterError: it is not a raster GDAL reads, lacks a band, or holds only nodata.
        SceneTooSmallError: it is smaller than one chip.
        InputError: no class, duplicate classes, a template without ``{}``, or an option out of range.
    """
    import torch
    from PIL import Image
    from tqdm.auto import tqdm

    from domainclip.domains.remote_sensing.chips import ScenePreview, SceneTooSmallError, chip_grid, iter_chips
    from domainclip.domains.remote_sensing.raster import open_raster, scene_stretch, select_bands

    for name, value in (("chip_px", chip_px), ("batch_size", batch_size), ("preview_size", preview_size)):
        if int(value) < 1:
            raise InputError(f"{name} must be a positive integer; got {value}")
    stride = chip_px if stride is None else stride
    if stride < 1:
        raise InputError(f"stride must be a positive integer; got {stride}")
    if not 0.0 <= max_nodata <= 1.0:
        raise InputError(f"max_nodata must be a fraction in [0, 1]; got {max_nodata}")
    if not 0.0 <= stretch[0] < stretch[1] <= 100.0:
        raise InputError(f"stretch: percentiles must satisfy 0 <= lower < upper <= 100; got {list(stretch)}")
    prompts = _class_prompts(classes, templates)
    path = Path(scene)

    with open_raster(path) as dataset:  # the file is checked before the model is loaded
        chosen = select_bands(path, dataset.count, bands, preset)
        height, width = dataset.height, dataset.width
        if height < chip_px or width < chip_px:
            raise SceneTooSmallError(f"{path} is {width}x{height} pixels, smaller than one {chip_px}-pixel chip")
        loaded = resolve_model(model, device=device)
        weights = loaded.text_classifier(prompts)  # (D, C)
        scale = loaded.logit_scale
        tops, lefts = chip_grid(height, width, chip_px, stride)
        rows, cols = len(tops), len(lefts)
        labels = np.full((rows, cols), -1, np.int16)
        probabilities = np.full((rows, cols, len(prompts)), np.nan, np.float32)
        nodata = np.zeros((rows, cols), np.float32)
        crs = None if dataset.crs is None else dataset.crs.to_wkt()
        scene_transform = dataset.transform
        stretch_of_scene = scene_stretch(dataset, chosen, stretch)
        preview = ScenePreview(height, width, preview_size)

        pending: list[tuple[int, int, Image.Image]] = []

        def classify() -> None:
            embeddings = loaded.encode_images([image for _, _, image in pending], batch_size=batch_size)
            probs = torch.softmax(scale * embeddings @ weights, dim=1).numpy()
            for (row, col, _), p in zip(pending, probs):
                probabilities[row, col] = p
                labels[row, col] = int(np.argmax(p))
            pending.clear()

        with tqdm(total=rows * cols, disable=not progress, unit="chip", desc="land cover") as bar:
            for chip in iter_chips(dataset, chosen, stretch_of_scene, chip_px, stride, max_nodata=max_nodata,
                                   on_rows=preview.add):
                nodata[chip.row, chip.col] = chip.nodata_fraction
                if chip.image is not None:
                    pending.append((chip.row, chip.col, Image.fromarray(chip.image)))
                if len(pending) >= batch_size:
                    classify()
                bar.update(1)
            if pending:
                classify()

    return LandCoverMap(
        classes=tuple(prompts), labels=labels, probabilities=probabilities, nodata_fraction=nodata,
        transform=_grid_transform(scene_transform, chip_px, stride), crs=crs,
        scene_transform=tuple(float(v) for v in list(scene_transform)[:6]), scene_size=(width, height),
        chip_px=int(chip_px), stride=int(stride), bands=tuple(chosen), preview=preview.image,
        preview_step=preview.step, source=str(path), model=loaded.spec, prompts=prompts,
    )


# --------------------------------------------------------------------------- the GeoTIFF
def write_landcover_geotiff(result: LandCoverMap, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the map as a georeferenced single-band uint8 class raster, atomically.

    The raster has the map's CRS and grid transform, so it lies over the scene in QGIS or any GIS.
    Cell values are class indices (0 for the first class); chips without a class hold
    :data:`NODATA_CLASS`, the file's nodata value. The band carries a colour table in the colours of
    :func:`plot_landcover_map` (QGIS shows it as a paletted raster) and its class names as tags:
    ``class_0``, ``class_1``, ... on the band, and ``classes`` (a JSON list), ``source``, ``model``,
    ``chip_px`` and ``stride`` on the dataset (``gdalinfo`` lists them).

    Args:
        result: a map from :func:`landcover_map`.
        path: the output file (``.tif``).
        overwrite: replace an existing file (otherwise it is left as it is and an error raised).

    Returns:
        ``path``.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    import rasterio
    from affine import Affine

    from domainclip.core.io import atomic_output

    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists: pass overwrite=True to replace it")
    values = np.where(result.labels >= 0, result.labels, NODATA_CLASS).astype(np.uint8)
    rows, cols = values.shape
    profile: dict[str, Any] = {
        "driver": "GTiff", "count": 1, "height": rows, "width": cols, "dtype": "uint8", "crs": result.crs,
        "transform": Affine(*result.transform), "nodata": NODATA_CLASS, "compress": "deflate",
    }
    if rows >= 16 and cols >= 16:
        profile.update(tiled=True, blockxsize=256 if cols > 256 else 16 * math.ceil(cols / 16),
                       blockysize=256 if rows > 256 else 16 * math.ceil(rows / 16))
    colours = class_colours(len(result.classes))
    table = {i: (*(round(255 * v) for v in colour), 255) for i, colour in enumerate(colours)}
    table[NODATA_CLASS] = (0, 0, 0, 0)
    with atomic_output(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(values, 1)
        dst.write_colormap(1, table)
        dst.set_band_description(1, "land-cover class")
        dst.update_tags(classes=json.dumps(list(result.classes)), source=result.source, model=result.model,
                        chip_px=str(result.chip_px), stride=str(result.stride), nodata_class=str(NODATA_CLASS))
        dst.update_tags(1, **{f"class_{i}": name for i, name in enumerate(result.classes)})
    return path


# --------------------------------------------------------------------------- the picture
def _plot_extent(result: LandCoverMap) -> tuple[tuple[float, float, float, float], tuple[float, float, float, float],
                                                 str]:
    """Extents (left, right, bottom, top) of the preview and of the grid, and the axis unit."""
    a, b, c, d, e, f = result.scene_transform
    width, height = result.scene_size
    if result.crs is not None and not b and not d:
        left, bottom, right, top = result.bounds()
        scene = (c, c + a * width, f + e * height, f)
        from rasterio.crs import CRS

        crs = CRS.from_wkt(result.crs)
        unit = "degrees" if crs.is_geographic else (crs.linear_units or "map units")
        return scene, (left, right, bottom, top), unit
    offset = (result.chip_px - result.stride) / 2  # pixel coordinates
    rows, cols = result.shape
    grid = (offset, offset + cols * result.stride, offset + rows * result.stride, offset)
    return (0.0, float(width), float(height), 0.0), grid, "pixels"


def plot_landcover_map(result: LandCoverMap, *, alpha: float = 0.5, ax: Axes | None = None) -> Figure:
    """The classes over the scene: each chip in its class colour over the stretched preview, with a legend.

    Axes are in the scene's CRS when it has one (easting and northing), else in scene pixels.
    Chips without a class are left clear. The legend gives each class's share of the classified chips.

    Args:
        result: a map from :func:`landcover_map`.
        alpha: opacity of the class colours (0: only the scene, 1: only the classes).
        ax: axes to draw into (default: a new figure).

    Returns:
        The figure (not shown: display it, or ``fig.savefig(...)``).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be in [0, 1]; got {alpha}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 6.5), layout="constrained")
    else:
        fig = ax.figure
    scene_extent, grid_extent, unit = _plot_extent(result)
    colours = np.asarray(class_colours(len(result.classes)), np.float32)
    overlay = np.zeros((*result.shape, 4), np.float32)
    known = result.labels >= 0
    overlay[known, :3] = colours[result.labels[known]]
    overlay[known, 3] = alpha
    ax.imshow(result.preview, extent=scene_extent, interpolation="nearest")
    ax.imshow(overlay, extent=grid_extent, interpolation="nearest")
    fractions = result.class_fractions()
    handles = [Patch(facecolor=colours[i], edgecolor="none", label=f"{name} ({fractions[name]:.0%})")
               for i, name in enumerate(result.classes)]
    if (~known).any():
        handles.append(Patch(facecolor="none", edgecolor="grey", label=f"no data ({(~known).mean():.0%} of chips)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_xlim(scene_extent[0], scene_extent[1])
    ax.set_ylim(scene_extent[2], scene_extent[3])
    if unit == "pixels":
        ax.set_xlabel("column (pixels)")
        ax.set_ylabel("row (pixels)")
    else:
        ax.set_xlabel(f"easting ({unit})" if unit != "degrees" else "longitude")
        ax.set_ylabel(f"northing ({unit})" if unit != "degrees" else "latitude")
        ax.ticklabel_format(style="plain", useOffset=False)
        ax.tick_params(labelsize=7)
    rows, cols = result.shape
    ax.set_title(f"{Path(result.source).name}: zero-shot land cover, {rows}x{cols} chips of {result.chip_px} px\n"
                 f"model {result.model}", fontsize=9)
    return fig
