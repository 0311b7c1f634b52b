"""One synthetic slide: tissue layout, the drawing, its pyramidal TIFF and its exact label mask.

A generated slide is a tiled pyramidal TIFF (written by
:func:`domainclip.domains.pathology.tiff.write_pyramidal_tiff`, so OpenSlide and tiffslide open it
and report its microns per pixel) plus a label mask. Tissue is laid out as a few irregular regions
(a noise-warped Voronoi partition of a blob-shaped tissue mask), each drawn as one of the tissue
classes (:mod:`~domainclip.domains.pathology.synthetic.textures`); each region varies its stain
concentrations. The slide's stain and scanner come from its site
(:data:`~domainclip.domains.pathology.synthetic.stain.SITES`): H&E vectors around a published
reference, focus blur, JPEG quality of the tiles, and on some slides pen marks (ink over the tissue,
the mask unchanged, as on real slides) and a tissue fold (a band of doubled section thickness). A
4096 x 4096 level-0 slide renders in a few seconds on one core.

The label mask is a PNG next to the slide (``<slide>_mask.png``), one ``uint8`` pixel per
:data:`MASK_DOWNSAMPLE` x :data:`MASK_DOWNSAMPLE` level-0 block: class index + 1 (the index in
:data:`~domainclip.domains.pathology.synthetic.vocabulary.TISSUE_CLASSES`), 0 for background. Mask
pixel ``(i, j)`` is the class drawn at level-0 pixel ``(x, y) = (16 j + 8, 16 i + 8)``; region
boundaries are drawn on a 4-px grid, so the mask is exact at its own resolution.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from PIL import Image

from domainclip.core.errors import InputError
from domainclip.core.io import atomic_write_bytes
from domainclip.core.options import NonNegativeInt, Parser, PositiveFloat, PositiveInt, Range, entry_point
from domainclip.domains.pathology.synthetic.stain import (
    _FIELD,
    SITES,
    _compose,
    _focus_blur,
    _noise,
    _random_stain,
    _resize,
    _soft_step,
    _Stain,
)
from domainclip.domains.pathology.synthetic.textures import _RENDERERS, BASE_MPP, _Region
from domainclip.domains.pathology.synthetic.vocabulary import TISSUE_CLASSES, check_class

__all__ = [
    "GENERATOR",
    "LICENCE",
    "MASK_DOWNSAMPLE",
    "BackgroundFraction",
    "RegionTruth",
    "Site",
    "SlideSize",
    "SlideTruth",
    "generate_slide",
    "read_mask",
]

#: Level-0 pixels per label-mask pixel.
MASK_DOWNSAMPLE = 16
#: Generator name and version recorded in the truth.
GENERATOR = "domainclip.domains.pathology.synthetic/2"
#: Licence of the generated images.
LICENCE = "CC0-1.0"


def _parse_size(text: str) -> int | tuple[int, int]:
    """``"4096"`` -> 4096, ``"4096x3072"`` -> (4096, 3072): the ``--size`` forms."""
    width, sep, height = text.lower().partition("x")
    try:
        return (int(width), int(height)) if sep else int(width)
    except ValueError:
        raise ValueError(f"takes N or WIDTHxHEIGHT (e.g. 4096 or 4096x3072); got {text!r}") from None


def _show_size(size: int | tuple[int, int]) -> str:
    return str(size) if isinstance(size, int) else f"{size[0]}x{size[1]}"


#: A slide's level-0 side N, or ``(width, height)``: 256 or more, multiples of :data:`MASK_DOWNSAMPLE`.
SlideSize = Annotated[int | tuple[int, int], Range(256), Parser(_parse_size, "N|WxH", _show_size)]
#: The share of a slide left as white glass.
BackgroundFraction = Annotated[float, Range(0, 0.95)]
#: The site (stain and scanner distribution) a slide comes from: ``"b"`` is the shifted second site.
Site = Literal[SITES]  # Literal of the tuple's values

#: Optical-density directions (R, G, B) of marker inks: blue, green and black.
_INKS = np.array([[0.72, 0.62, 0.12], [0.70, 0.18, 0.66], [0.58, 0.58, 0.57]], dtype=np.float32)


def _slide_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` of a :data:`SlideSize`; :class:`InputError` unless both are multiples of 16."""
    width, height = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if width % MASK_DOWNSAMPLE or height % MASK_DOWNSAMPLE:
        raise InputError(f"size must be a multiple of {MASK_DOWNSAMPLE}; got {width}x{height}")
    return width, height

@dataclass(frozen=True)
class RegionTruth:
    """One drawn tissue region.

    Attributes:
        tissue_class: class name.
        label: index in :data:`TISSUE_CLASSES`.
        centre: level-0 ``(x, y)`` of the region's deepest point (farthest from its boundary).
        inradius: level-0 distance from ``centre`` to the region boundary (pixels, mask resolution).
        area_fraction: share of the slide's area.
    """

    tissue_class: str
    label: int
    centre: tuple[int, int]
    inradius: float
    area_fraction: float


@dataclass(frozen=True)
class SlideTruth:
    """What :func:`generate_slide` drew.

    Attributes:
        slide_id: file stem of the slide.
        path: the pyramidal TIFF.
        mask_path: the label-mask PNG (class index + 1, 0 background).
        mpp: microns per pixel at level 0.
        size: level-0 ``(width, height)``.
        mask_downsample: level-0 pixels per mask pixel.
        seed: the slide seed.
        classes: classes present in the mask, in :data:`TISSUE_CLASSES` order.
        label: ``"tumor"`` when tumour is present, else ``"normal"``.
        tissue_fraction: share of the slide covered by tissue.
        class_fractions: class -> share of the tissue area.
        regions: the drawn regions.
        stain: the slide's stain parameters.
    """

    slide_id: str
    path: Path
    mask_path: Path
    mpp: float
    size: tuple[int, int]
    mask_downsample: int
    seed: int
    classes: tuple[str, ...]
    label: str
    tissue_fraction: float
    class_fractions: dict[str, float]
    regions: tuple[RegionTruth, ...]
    stain: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the truth (paths as strings, tuples as lists)."""
        return {**json.loads(json.dumps(asdict(self), default=str)), "generator": GENERATOR, "licence": LICENCE}


def _mask_path(slide_path: Path) -> Path:
    return slide_path.with_name(f"{slide_path.stem}_mask.png")


def _layout(
    rng: np.random.Generator,
    field_shape: tuple[int, int],
    n_regions: int,
    classes: Sequence[str],
    background_fraction: float,
) -> tuple[np.ndarray, list[str]]:
    """Region ids on the field grid (-1 = background) and each region's class."""
    from scipy.spatial import cKDTree
    from skimage.morphology import remove_small_objects

    fh, fw = field_shape
    tissue = np.ones(field_shape, bool)
    if background_fraction > 0:
        yy = (np.arange(fh, dtype=np.float32)[:, None] - fh / 2) / (fh / 2)
        xx = (np.arange(fw, dtype=np.float32)[None, :] - fw / 2) / (fw / 2)
        cy, cx = rng.uniform(-0.15, 0.15, 2)
        relief = _noise(rng, field_shape, min(fh, fw) / 3.0, octaves=3) - 1.5 * ((yy - cy) ** 2 + (xx - cx) ** 2)
        tissue = relief > np.quantile(relief, background_fraction)
        tissue = remove_small_objects(tissue, max_size=max(4, tissue.size // 2000))
    ty, tx = np.nonzero(tissue)
    if len(ty) == 0:
        raise ValueError("no tissue left: lower background_fraction")
    pick = rng.choice(len(ty), size=min(len(ty), 4000), replace=False)
    candidates = np.stack([ty[pick], tx[pick]], axis=1).astype(np.float32)
    chosen = [int(rng.integers(len(candidates)))]
    nearest = np.linalg.norm(candidates - candidates[chosen[0]], axis=1)
    for _ in range(1, min(n_regions, len(candidates))):
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, np.linalg.norm(candidates - candidates[chosen[-1]], axis=1))
    seeds = candidates[chosen]
    spacing = math.sqrt(len(ty) / max(1, len(seeds)))
    warp_y = _noise(rng, field_shape, spacing / 2.5, octaves=2) * 0.22 * spacing
    warp_x = _noise(rng, field_shape, spacing / 2.5, octaves=2) * 0.22 * spacing
    points = np.stack([ty + warp_y[ty, tx], tx + warp_x[ty, tx]], axis=1)
    _, owner = cKDTree(seeds).query(points, k=1)
    regions = np.full(field_shape, -1, np.int32)
    regions[ty, tx] = owner
    order = list(rng.permutation(list(classes)))
    extra = [str(c) for c in rng.choice(list(classes), size=max(0, len(seeds) - len(order)))]
    region_classes = [str(c) for c in order + extra][: len(seeds)]
    return regions, region_classes


def _fold(rng: np.random.Generator, field_shape: tuple[int, int], tissue: np.ndarray, scale: float) -> np.ndarray:
    """A tissue fold on the field grid: a warped band, 0-1, where the section lies double (tissue only)."""
    fh, fw = field_shape
    theta = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(0.2, 0.8) * fh, rng.uniform(0.2, 0.8) * fw
    ys = np.arange(fh, dtype=np.float32)[:, None] - cy
    xs = np.arange(fw, dtype=np.float32)[None, :] - cx
    warp = _noise(rng, field_shape, min(fh, fw) / 4.0) * rng.uniform(5.0, 20.0)
    across = ys * math.cos(theta) - xs * math.sin(theta) + warp
    half = rng.uniform(15.0, 45.0) * scale / _FIELD  # 15-45 um at the base scale
    return (_soft_step(half - np.abs(across), 3.0) * tissue).astype(np.float32)


def _pen_ink(rng: np.random.Generator, field_shape: tuple[int, int], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Marker strokes on the field grid (ink density 0-1) and the ink's OD vector."""
    from PIL import ImageDraw

    fh, fw = field_shape
    canvas = Image.new("L", (fw, fh), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(1, 3))):
        y, x = rng.uniform(0, fh), rng.uniform(0, fw)
        heading = rng.uniform(0, 2 * np.pi)
        points = [(x, y)]
        for _ in range(12):
            heading += rng.normal(0.0, 0.35)
            step = rng.uniform(0.04, 0.08) * max(fh, fw)
            x, y = x + step * math.cos(heading), y + step * math.sin(heading)
            points.append((x, y))
        width = max(2, int(rng.uniform(40.0, 110.0) * scale / _FIELD))
        draw.line(points, fill=int(rng.integers(150, 256)), width=width, joint="curve")
    ink = np.asarray(canvas, np.float32) / 255.0
    ink = ink * (0.75 + 0.25 * _noise(rng, field_shape, 12.0))  # uneven ink
    return np.clip(ink, 0.0, None), _INKS[int(rng.integers(len(_INKS)))]


def _scanner(image: np.ndarray, stain: _Stain, ink: np.ndarray | None, ink_od: np.ndarray | None,
             rows: int = 512) -> np.ndarray:
    """Pen ink over the stained image (``image * exp(-ink * od)``), then the scanner's focus blur."""
    if ink is not None and ink_od is not None:
        for r0 in range(0, image.shape[0], rows):
            band = ink[r0:r0 + rows, :, None] * (ink_od[None, None, :] * np.float32(1.6))
            image[r0:r0 + rows] = np.clip(image[r0:r0 + rows] * np.exp(-band), 0, 255).astype(np.uint8)
    return _focus_blur(image, stain.blur)


@entry_point
def generate_slide(
    path: Path,
    *,
    seed: NonNegativeInt,
    size: SlideSize = 4096,
    mpp: PositiveFloat = BASE_MPP,
    classes: Sequence[str] = TISSUE_CLASSES,
    background_fraction: BackgroundFraction = 0.4,
    n_regions: PositiveInt | None = None,
    tile: PositiveInt = 256,
    quality: Annotated[int, Range(1, 100)] | None = None,
    site: Site = "a",
) -> SlideTruth:
    """Draw one synthetic H&E slide: a pyramidal TIFF at ``path`` and its label mask next to it.

    The whole level 0 is drawn in memory: the process peaks at about 40 bytes per level-0 pixel
    (about 650 MB for 4096 x 4096); draw larger slides on machines with the memory for it.

    Args:
        path: output TIFF path (``.tiff``); the mask goes to ``<stem>_mask.png`` beside it.
        seed: the slide depends only on its arguments; the same seed gives the same slide.
        size: level-0 side, or ``(width, height)``; multiples of :data:`MASK_DOWNSAMPLE`, >= 256.
        mpp: microns per pixel at level 0 (written into the TIFF; textures are scaled to it).
        classes: tissue classes to draw; each appears in at least one region (unless the layout
            squeezes it out, in which case the truth says so).
        background_fraction: share of the slide left as white glass, in ``[0, 0.95]``.
        n_regions: number of tissue regions (default: one per about 0.5 mm^2 of tissue, at least
            ``len(classes)``).
        tile: TIFF tile side.
        quality: JPEG quality of the TIFF tiles (default: the site's scanner draws it per slide).
        site: the stain and scanner distribution the slide is drawn from (``"a"``, or ``"b"``: a
            shifted second site with other H&E vectors, stronger haematoxylin, weaker eosin, a
            yellower glass, more blur and stronger JPEG compression).

    Returns:
        The :class:`SlideTruth`.

    Raises:
        InputError: a size that is not a multiple of 16, a value out of its range, or no class.
        UnknownNameError: an unknown class name.
    """
    from scipy import ndimage

    from domainclip.domains.pathology.tiff import write_pyramidal_tiff

    width, height = _slide_shape(size)
    classes = tuple(dict.fromkeys(classes))
    if not classes:
        raise InputError(f"{path}: classes is empty")
    for c in classes:
        check_class(c)
    scale = BASE_MPP / mpp
    rng = np.random.default_rng([int(seed), 0x51DE])
    stain = _random_stain(rng, site)
    field_shape = (height // _FIELD, width // _FIELD)
    tissue_um2 = width * height * (1.0 - background_fraction) * mpp**2
    if n_regions is None:
        n_regions = max(len(classes), int(round(tissue_um2 / 0.5e6)))
    regions, region_classes = _layout(rng, field_shape, n_regions, classes, background_fraction)

    haem = np.zeros((height, width), np.float32)
    eosin = np.zeros_like(haem)
    mucin = np.zeros_like(haem)
    for rid, box in enumerate(ndimage.find_objects(regions + 1)):
        if box is None:
            continue
        inside = regions[box] == rid
        level0 = tuple(slice(b.start * _FIELD, b.stop * _FIELD) for b in box)
        region = _Region(
            rng=np.random.default_rng([int(seed), rid, 0xC0DE]),
            shape=(inside.shape[0] * _FIELD, inside.shape[1] * _FIELD),
            scale=scale,
        )
        gains = region.rng.uniform(0.88, 1.12, 3).astype(np.float32)
        dens = _RENDERERS[region_classes[rid]](region)
        mask0 = np.repeat(np.repeat(inside, _FIELD, axis=0), _FIELD, axis=1)
        for target, d, g in zip((haem, eosin, mucin), dens, gains):
            target[level0][mask0] = d[mask0] * g
    if stain.fold:
        fold = _fold(np.random.default_rng([int(seed), 0xF01D]), field_shape, regions >= 0, scale)
        thick = 1.0 + 0.9 * _resize(fold, (height, width), Image.Resampling.BILINEAR)
        for target in (haem, eosin, mucin):
            target *= thick
        del thick
    ink = ink_od = None
    if stain.pen:
        ink_field, ink_od = _pen_ink(np.random.default_rng([int(seed), 0x9E4]), field_shape, scale)
        ink = _resize(ink_field, (height, width), Image.Resampling.BILINEAR)
    image = _scanner(_compose(haem, eosin, mucin, stain, rng), stain, ink, ink_od)
    del haem, eosin, mucin, ink

    labels = np.zeros(field_shape, np.uint8)
    for rid, name in enumerate(region_classes):
        labels[regions == rid] = TISSUE_CLASSES.index(name) + 1
    step = MASK_DOWNSAMPLE // _FIELD
    mask = np.ascontiguousarray(labels[step // 2::step, step // 2::step])
    region_mask = regions[step // 2::step, step // 2::step]

    present = tuple(c for i, c in enumerate(TISSUE_CLASSES) if np.any(mask == i + 1))
    tissue_px = int(np.count_nonzero(mask))
    fractions = {c: round(float(np.count_nonzero(mask == i + 1)) / max(1, tissue_px), 4)
                 for i, c in enumerate(TISSUE_CLASSES) if c in present}
    truths = []
    half = MASK_DOWNSAMPLE // 2
    for rid, name in enumerate(region_classes):
        own = region_mask == rid
        if not own.any():
            continue
        depth = ndimage.distance_transform_edt(np.pad(own, 1))[1:-1, 1:-1]
        i, j = np.unravel_index(int(np.argmax(depth)), depth.shape)
        truths.append(
            RegionTruth(
                tissue_class=name,
                label=TISSUE_CLASSES.index(name),
                centre=(int(j * MASK_DOWNSAMPLE + half), int(i * MASK_DOWNSAMPLE + half)),
                inradius=float(depth[i, j] * MASK_DOWNSAMPLE),
                area_fraction=round(float(own.mean()), 4),
            )
        )

    quality = stain.jpeg_quality if quality is None else quality
    write_pyramidal_tiff(path, image, mpp, tile=tile, compression="jpeg", quality=quality)  # atomic
    buf = io.BytesIO()
    Image.fromarray(mask, mode="L").save(buf, format="PNG")
    mask_path = atomic_write_bytes(_mask_path(path), buf.getvalue())
    return SlideTruth(
        slide_id=path.stem,
        path=path,
        mask_path=mask_path,
        mpp=float(mpp),
        size=(width, height),
        mask_downsample=MASK_DOWNSAMPLE,
        seed=int(seed),
        classes=present,
        label="tumor" if "tumor" in present else "normal",
        tissue_fraction=round(tissue_px / mask.size, 4),
        class_fractions=fractions,
        regions=tuple(truths),
        stain=stain.as_dict(),
    )


def read_mask(path: str | Path) -> np.ndarray:
    """Read a label mask written by :func:`generate_slide` as a ``uint8`` array.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: naming the file, when it is not a single-channel PNG with known labels.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label mask not found")
    try:
        with Image.open(path) as im:
            if im.mode != "L":
                raise ValueError(f"{path}: a label mask must be a single-channel 8-bit PNG, got mode {im.mode}")
            mask = np.asarray(im, dtype=np.uint8).copy()
    except OSError as e:
        raise ValueError(f"{path}: not a readable PNG ({e})") from e
    if mask.size and int(mask.max()) > len(TISSUE_CLASSES):
        raise ValueError(f"{path}: label {int(mask.max())} is above the {len(TISSUE_CLASSES)} tissue classes")
    return mask
