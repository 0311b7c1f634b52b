"""Synthetic H&E whole-slide images with known tissue classes, for tests, demos and quick recipes.

A generated slide is a tiled pyramidal TIFF (written by
:func:`domainclip.domains.pathology.tiff.write_pyramidal_tiff`, so OpenSlide and tiffslide open it
and report its microns per pixel) plus a label mask. Tissue is laid out as a few irregular regions
(a noise-warped Voronoi partition of a blob-shaped tissue mask), each region drawn as one of five
tissue classes named after the NCT-CRC-HE-100K classes:

=========== ==== ====================================================================================
class       code what is drawn
=========== ==== ====================================================================================
adipose     ADI  large white polygonal cells (Voronoi cells 40-65 um across) with thin, rarely broken
                 pink membranes and a few flattened nuclei on them
lymphocytes LYM  dense small round dark-purple nuclei (4-6 um) on a thin pink-purple background
stroma      STR  pink, wavy eosinophilic fibre streaks with clefts and sparse elongated spindle nuclei
tumor       TUM  back-to-back glands: crowded, large, irregular, radially elongated purple nuclei
                 around pale lumens, thin stroma between glands
mucus       MUC  pale blue-grey wispy streaks with few floating cells
=========== ==== ====================================================================================

Rendering is physical-scale: lengths are set in micrometres at :data:`BASE_MPP` (0.5 um/px, the
NCT-CRC-HE scale) and converted with the slide's ``mpp``, so a 224-px patch at 0.5 mpp shows
112 um of tissue with clear texture. Colours follow a Beer-Lambert stain model: every pixel holds
haematoxylin, eosin and mucin densities and its RGB is ``background * exp(-(density @ OD vectors))``.
Each slide draws its own stain (optical-density vectors, concentration scales, glass brightness and
tint, sensor noise: hue, saturation and brightness jitter) and each region varies its
concentrations, so one pixel's colour does not give the class away; the texture does.

Everything is vectorised numpy (sprite stamping for nuclei, Worley distances from
:class:`scipy.spatial.cKDTree`, bilinear upsampling of low-resolution fields with Pillow): a
4096 x 4096 level-0 slide renders in a few seconds on one core. Slides are deterministic per seed.

The label mask is a PNG next to the slide (``<slide>_mask.png``), one ``uint8`` pixel per
:data:`MASK_DOWNSAMPLE` x :data:`MASK_DOWNSAMPLE` level-0 block: class index + 1 (the index in
:data:`TISSUE_CLASSES`), 0 for background. Mask pixel ``(i, j)`` is the class drawn at level-0
pixel ``(x, y) = (16 j + 8, 16 i + 8)``; region boundaries are drawn on a 4-px grid, so the mask is
exact at its own resolution.

:func:`generate_slides` writes a folder of slides with ``slides.csv`` (slide-level labels
``tumor``/``normal`` for MI-Zero style evaluation) and ``slides.json`` (full truth);
:class:`SyntheticAnnotator` is the ``annotate`` hook that turns patch boxes into PathGen-style
captions and class labels from the masks.

Patching: a saturation-threshold tissue detector sees the pale classes poorly (fat is white glass
between thin membranes, mucus is pale), as it does on real slides. Since the masks are exact, patch
synthetic slides with ``PatchSpec(min_tissue=0.0)`` and let :class:`SyntheticAnnotator` drop every
box that is not at least ``min_purity`` one class (glass counts against it).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from domainclip.core.io import atomic_write_bytes, atomic_write_text
from domainclip.core.parallel import map_unordered
from domainclip.core.plugins import PrepareCommand, UnknownNameError

__all__ = [
    "BASE_MPP",
    "CAPTION_SYNONYMS",
    "CAPTION_TEMPLATES",
    "CLASS_NAMES",
    "CSV_FIELDS",
    "GENERATOR",
    "LICENCE",
    "MASK_DOWNSAMPLE",
    "NCT_CRC_HE_CODES",
    "SLIDE_LABELS",
    "SLIDE_PROMPTS",
    "SYNTHETIC",
    "TISSUE_CLASSES",
    "ZERO_SHOT_TEMPLATES",
    "RegionTruth",
    "SlideTruth",
    "SyntheticAnnotator",
    "caption_pool",
    "generate_slide",
    "generate_slides",
    "read_mask",
    "render_tissue",
    "slide_templates",
    "synthetic_templates",
]

#: Tissue classes in label order (a mask stores index + 1; a patch's ``label`` is the index).
TISSUE_CLASSES: tuple[str, ...] = ("adipose", "lymphocytes", "stroma", "tumor", "mucus")

#: Display names used in zero-shot prompts.
CLASS_NAMES: dict[str, str] = {
    "adipose": "adipose tissue",
    "lymphocytes": "lymphocytes",
    "stroma": "stroma",
    "tumor": "tumor epithelium",
    "mucus": "mucus",
}

#: The NCT-CRC-HE-100K class code each synthetic class imitates.
NCT_CRC_HE_CODES: dict[str, str] = {
    "adipose": "ADI",
    "lymphocytes": "LYM",
    "stroma": "STR",
    "tumor": "TUM",
    "mucus": "MUC",
}

#: Slide-level labels written to ``slides.csv``: a slide is ``tumor`` when its mask holds tumour.
SLIDE_LABELS: tuple[str, ...] = ("normal", "tumor")

#: Microns per pixel at which the texture sizes are defined.
BASE_MPP = 0.5
#: Level-0 pixels per label-mask pixel.
MASK_DOWNSAMPLE = 16
#: Level-0 pixels per cell of the internal low-resolution field grid (region boundaries, noise).
_FIELD = 4
#: Generator name and version recorded in the truth.
GENERATOR = "domainclip.domains.pathology.synthetic/1"
#: Licence of the generated images.
LICENCE = "CC0-1.0"

# ----------------------------------------------------------------------------------------------
# captions and prompts
# ----------------------------------------------------------------------------------------------

#: Names a caption may use for each class (``{name}`` in :data:`CAPTION_TEMPLATES`).
CAPTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "adipose": ("adipose tissue", "mature fat", "fatty tissue", "adipocytes"),
    "lymphocytes": ("lymphocytes", "a dense lymphocytic infiltrate", "lymphoid tissue", "sheets of lymphocytes"),
    "stroma": ("stroma", "fibrous stroma", "collagenous stroma", "cancer-associated stroma", "connective tissue"),
    "tumor": ("adenocarcinoma", "tumor epithelium", "malignant glandular epithelium", "carcinoma", "tumor"),
    "mucus": ("mucus", "extracellular mucin", "mucinous material", "pools of mucin"),
}

#: PathGen-style descriptive caption templates per class: morphology, colour and arrangement.
#: ``{name}`` is filled with one of :data:`CAPTION_SYNONYMS`; some templates describe without naming.
CAPTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "adipose": (
        "The image shows {name} composed of large, empty-looking polygonal cells separated by thin pink "
        "membranes, with only a few flattened nuclei pressed against the cell borders.",
        "H&E-stained section of {name}: clear, white cytoplasmic spaces outlined by delicate eosinophilic "
        "septa in a honeycomb pattern.",
        "Large vacuolated cells with thin, partly torn pink walls fill the field; nuclei are scarce and "
        "compressed to the periphery, typical of {name}.",
        "This patch is dominated by {name}, with polygonal clear cells of fairly uniform size and very low "
        "cellularity.",
        "A lattice of thin pink lines encloses broad white spaces; the tissue is hypocellular and lacks "
        "glands or inflammatory cells.",
        "Histology of {name}: lipid-filled cells appear optically empty after processing, bounded by fine "
        "membranes with rare crescent-shaped nuclei.",
        "Pale tissue made of large round to polygonal empty cells with thin eosinophilic borders, "
        "consistent with {name}.",
        "Low-power view of {name} showing a mesh of delicate septa around clear vacuoles and almost no "
        "nuclear material.",
        "The field shows benign {name}; cell outlines are thin and pink, the interiors white, and there is "
        "no atypia.",
        "Adipocytes with large clear vacuoles and peripheral flattened nuclei form a honeycomb of thin "
        "pink membranes.",
    ),
    "lymphocytes": (
        "The image shows {name}: densely packed small, round, darkly stained nuclei with scant cytoplasm.",
        "H&E section of {name} with sheets of uniform small cells whose round hyperchromatic nuclei appear "
        "deep purple.",
        "Numerous small round dark-blue nuclei are crowded together with little intervening pink "
        "cytoplasm, characteristic of {name}.",
        "This patch is highly cellular, filled by {name}; nuclei are small, regular and evenly dark, with "
        "no gland formation.",
        "Monotonous small round cells with dense chromatin and a high nuclear-to-cytoplasmic ratio fill "
        "the field, consistent with a lymphocytic infiltrate.",
        "Dense purple cellular tissue of {name}, the nuclei about the size of a red blood cell, round and "
        "closely spaced.",
        "Histology of {name}: a carpet of tiny dark nuclei on a faint pinkish-purple background.",
        "Inflammatory cells dominate the field; they are small, round and intensely basophilic, arranged "
        "in sheets without architecture.",
        "The tissue shows {name} with uniform round nuclei, condensed chromatin and minimal cytoplasm, "
        "giving a dark blue-purple appearance.",
        "Tightly packed lymphoid cells with small round nuclei, the whole field stained dark purple by "
        "haematoxylin.",
    ),
    "stroma": (
        "The image shows {name} with wavy pink collagen fibres and sparse elongated spindle-shaped nuclei.",
        "H&E-stained {name}: eosinophilic fibrous bands run in parallel streaks, with scattered thin dark "
        "nuclei aligned along them.",
        "Pink, fibrillar tissue with low cellularity; slender spindle nuclei lie between wavy collagen "
        "bundles, typical of {name}.",
        "This patch shows {name}, dominated by bright pink extracellular matrix arranged in undulating "
        "fibres with small clefts.",
        "Streaming eosinophilic fibres with a few elongated fibroblast nuclei; no glands or dense "
        "inflammation are present.",
        "Histology of {name}: collagen-rich, pink and wavy, with sparse cigar-shaped nuclei oriented along "
        "the fibres.",
        "Desmoplastic-looking pink stroma with parallel wavy fibres and scattered spindle cells, "
        "consistent with {name}.",
        "Fibrous tissue stained intensely pink by eosin, with thin clefts between collagen bundles and "
        "rare nuclei.",
        "The field shows {name}; the matrix is pink and fibrillar, and the few nuclei are thin, dark and "
        "elongated.",
        "Loosely arranged eosinophilic collagen fibres form wavy streaks, with a low density of spindle "
        "nuclei.",
    ),
    "tumor": (
        "The image shows {name} with crowded, enlarged, irregular hyperchromatic nuclei lining distorted "
        "glands around small lumens.",
        "H&E section of {name}: back-to-back glandular structures lined by pseudostratified atypical cells "
        "with large purple nuclei.",
        "Irregular glands with pleomorphic, elongated nuclei and a high nuclear-to-cytoplasmic ratio fill "
        "the field, consistent with {name}.",
        "This patch shows {name}; neoplastic glands are crowded, their nuclei large, dark and stacked, "
        "with purple-pink cytoplasm.",
        "Malignant glandular architecture with nuclear pleomorphism, hyperchromasia and loss of polarity "
        "around pale luminal spaces.",
        "Histology of {name}: cribriform and tubular glands lined by crowded, irregular, deep purple "
        "nuclei separated by thin stroma.",
        "Atypical epithelial cells with large oval to irregular nuclei form closely packed glands; "
        "intraluminal debris is focally seen.",
        "Densely cellular purple tissue of {name} with enlarged vesicular nuclei, prominent nucleoli and "
        "disorganised glands.",
        "The field is occupied by {name}: glands of varying size with stratified, elongated, "
        "hyperchromatic nuclei and little intervening stroma.",
        "Crowded neoplastic glands lined by large irregular nuclei with coarse chromatin, indicative of "
        "adenocarcinoma.",
    ),
    "mucus": (
        "The image shows {name}: pale blue-grey, wispy amorphous material with very few cells.",
        "H&E section with {name}, appearing as faint bluish-grey streaks and strands with scattered "
        "floating cells.",
        "Pale, lightly basophilic acellular material with a stringy, wispy texture fills the field, "
        "consistent with {name}.",
        "This patch shows {name}; the background is pale grey-blue and finely fibrillary, and nuclei are "
        "rare.",
        "Amorphous pale blue-grey extracellular material with delicate strands and only occasional "
        "isolated cells.",
        "Histology of {name}: a hypocellular, pale basophilic pool with swirling wisps and no glandular "
        "structures.",
        "Faintly stained, wispy, blue-tinged material spreads across the field with sparse small nuclei, "
        "typical of {name}.",
        "Pale grey-blue mucoid substance with streaming strands and low cellularity, as seen in mucinous "
        "areas.",
        "The field is filled by {name}, light blue-grey and stringy, with a few detached cells floating "
        "in it.",
        "Large pale basophilic areas with a delicate wispy pattern and almost no nuclei, typical of "
        "extracellular mucin.",
    ),
}

#: Zero-shot prompt templates (``{}`` is a :data:`CLASS_NAMES` display name).
ZERO_SHOT_TEMPLATES: tuple[str, ...] = (
    "an H&E image of {}.",
    "a histopathology patch showing {}.",
    "an H&E-stained tissue section of {}.",
    "a photomicrograph of {}.",
    "a pathology image of {}.",
    "{} in an H&E slide.",
)

#: Slide-level prompts for MI-Zero style evaluation, keyed by :data:`SLIDE_LABELS`.
SLIDE_PROMPTS: dict[str, tuple[str, ...]] = {
    "normal": (
        "an H&E image of normal tissue.",
        "a histopathology patch of benign tissue without tumor.",
        "an H&E image of adipose tissue, stroma, lymphocytes or mucus.",
    ),
    "tumor": (
        "an H&E image of tumor.",
        "a histopathology patch of adenocarcinoma.",
        "an H&E image of tumor epithelium.",
    ),
}


def caption_pool(tissue_class: str) -> list[str]:
    """Every caption the annotator can draw for a class (each template with each synonym).

    Args:
        tissue_class: one of :data:`TISSUE_CLASSES`.

    Returns:
        The distinct expanded captions, in template then synonym order.

    Raises:
        UnknownNameError: the class is not known.
    """
    _check_class(tissue_class)
    return list(_caption_pool(tissue_class))


@cache
def _caption_groups(tissue_class: str) -> tuple[tuple[str, ...], ...]:
    """Per template, its captions (one per synonym, or one when it names no class)."""
    groups = []
    for template in CAPTION_TEMPLATES[tissue_class]:
        names = CAPTION_SYNONYMS[tissue_class] if "{name}" in template else ("",)
        texts = (template.format(name=name) for name in names)
        groups.append(tuple(dict.fromkeys(t[0].upper() + t[1:] for t in texts)))
    return tuple(groups)


def _caption_pool(tissue_class: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for group in _caption_groups(tissue_class) for c in group))


def synthetic_templates() -> dict[str, list[str]]:
    """Zero-shot prompts for patch classification over the synthetic tissue classes.

    Returns:
        ``{class: [prompt, ...]}`` in :data:`TISSUE_CLASSES` (label) order; average each class's text
        embeddings to build the classifier.
    """
    return {c: [t.format(CLASS_NAMES[c]) for t in ZERO_SHOT_TEMPLATES] for c in TISSUE_CLASSES}


def slide_templates() -> dict[str, list[str]]:
    """Zero-shot prompts for slide-level tumour detection (MI-Zero pooling over patches).

    Returns:
        ``{"normal": [...], "tumor": [...]}`` in :data:`SLIDE_LABELS` order.
    """
    return {label: list(SLIDE_PROMPTS[label]) for label in SLIDE_LABELS}


def _check_class(name: str) -> int:
    if name not in TISSUE_CLASSES:
        raise UnknownNameError("tissue class", str(name), list(TISSUE_CLASSES))
    return TISSUE_CLASSES.index(name)


# ----------------------------------------------------------------------------------------------
# stain model and low-level field helpers
# ----------------------------------------------------------------------------------------------

#: Reference optical-density directions (R, G, B) of haematoxylin, eosin and mucin.
_OD_REFERENCE = np.array(
    [
        [0.60, 0.75, 0.30],  # haematoxylin: purple-blue
        [0.18, 0.86, 0.48],  # eosin: pink
        [0.80, 0.55, 0.22],  # mucin: pale blue-grey
    ],
    dtype=np.float32,
)
# Standard deviation of white noise after Pillow's bicubic upsampling (measured), used to normalise.
_BICUBIC_STD = 0.815


@dataclass(frozen=True)
class _Stain:
    """One slide's stain: OD vectors (rows H, E, M), concentration scales, glass colour and noise."""

    od: np.ndarray
    scales: np.ndarray
    background: np.ndarray
    noise: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "od_vectors": {k: [round(float(v), 4) for v in row] for k, row in zip(("H", "E", "M"), self.od)},
            "scales": {k: round(float(v), 4) for k, v in zip(("H", "E", "M"), self.scales)},
            "background": [round(float(v), 2) for v in self.background],
            "noise": round(self.noise, 3),
        }


def _random_stain(rng: np.random.Generator) -> _Stain:
    od = _OD_REFERENCE + rng.normal(0.0, [[0.05], [0.06], [0.05]], size=(3, 3)).astype(np.float32)
    od = np.clip(od, 0.02, None)
    od /= np.linalg.norm(od, axis=1, keepdims=True)
    scales = np.array([rng.uniform(0.75, 1.25), rng.uniform(0.7, 1.3), rng.uniform(0.8, 1.25)], np.float32)
    background = np.clip(rng.uniform(232.0, 250.0) + rng.normal(0.0, 2.5, 3), 215.0, 255.0).astype(np.float32)
    return _Stain(od=od, scales=scales, background=background, noise=float(rng.uniform(1.5, 3.5)))


def _resize(a: np.ndarray, shape: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """Resize a float32 field to ``shape`` (rows, cols) with Pillow (pixel-centre aligned)."""
    image = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))
    return np.asarray(image.resize((shape[1], shape[0]), resample), dtype=np.float32)


def _noise(rng: np.random.Generator, shape: tuple[int, int], feature: float, octaves: int = 1) -> np.ndarray:
    """Smooth noise of about unit standard deviation whose blobs are ``feature`` cells across."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    total = 0.0
    for k in range(octaves):
        f = max(feature / 2**k, 1.0)
        gh, gw = int(math.ceil(h / f)) + 2, int(math.ceil(w / f)) + 2
        coarse = rng.standard_normal((gh, gw)).astype(np.float32)
        big = _resize(coarse, (int(round(gh * f)), int(round(gw * f))), Image.Resampling.BICUBIC)
        oy, ox = int(rng.integers(0, max(1, big.shape[0] - h))), int(rng.integers(0, max(1, big.shape[1] - w)))
        amp = 0.5**k
        out += amp * big[oy:oy + h, ox:ox + w]
        total += amp * amp
    out /= _BICUBIC_STD * math.sqrt(total)
    return out


def _soft_step(x: np.ndarray, width: float = 1.0) -> np.ndarray:
    """0 below ``-width/2``, 1 above ``+width/2``, linear between (anti-aliased edges)."""
    return np.clip(x / width + 0.5, 0.0, 1.0)


def _jittered_grid(
    rng: np.random.Generator, shape: tuple[int, int], spacing: float, jitter: float, margin: float = 0.0
) -> np.ndarray:
    """Points ``(y, x)`` on a grid of ``spacing`` moved by up to ``jitter * spacing``, covering ``shape`` + margin."""
    h, w = shape
    ys = np.arange(-margin, h + margin + spacing, spacing, dtype=np.float32)
    xs = np.arange(-margin, w + margin + spacing, spacing, dtype=np.float32)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    grid += rng.uniform(-jitter, jitter, grid.shape).astype(np.float32) * spacing
    return grid


def _uniform_points(rng: np.random.Generator, shape: tuple[int, int], spacing: float) -> np.ndarray:
    """About one uniformly placed point ``(y, x)`` per ``spacing**2`` pixels of ``shape``."""
    n = int(rng.poisson(shape[0] * shape[1] / spacing**2))
    return rng.uniform(0.0, 1.0, (n, 2)).astype(np.float32) * np.array(shape, np.float32)


# ----------------------------------------------------------------------------------------------
# nuclei: banks of pre-rendered sprites stamped in bulk
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sprite:
    dy: np.ndarray
    dx: np.ndarray
    value: np.ndarray


def _make_sprite(
    rng: np.random.Generator,
    a: float,
    b: float,
    angle: float,
    *,
    irregularity: float,
    chromatin: float,
    rim: float,
    nucleolus: float = 0.0,
) -> _Sprite:
    """One nucleus: an irregular ellipse (semi-axes ``a`` along ``angle``, ``b`` across), anti-aliased."""
    from skimage.filters import gaussian

    r = int(math.ceil(max(a, b) * (1.0 + 2.0 * irregularity))) + 2
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    u, v = xx * c + yy * s, -xx * s + yy * c
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2) + 1e-6
    phi = np.arctan2(v / b, u / a)
    wobble = np.ones_like(phi)
    for k in (2, 3, 4, 5):
        wobble += irregularity * rng.normal(0.0, 1.0 / k) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    radius = np.hypot(u, v) / rho  # the ellipse radius in this direction, in pixels
    inside = (wobble - rho) * radius  # approximate distance to the boundary, positive inside
    alpha = _soft_step(inside)
    speckle = gaussian(rng.random(alpha.shape), sigma=0.9)
    speckle = (speckle - speckle.mean()) / (speckle.std() + 1e-6)
    value = 1.0 + 0.25 * chromatin * speckle + rim * np.exp(-0.5 * np.clip(inside, 0, None) ** 2)
    if nucleolus > 0:
        ny, nx = rng.uniform(-0.4, 0.4, 2) * min(a, b)
        value += nucleolus * np.exp(-((yy - ny) ** 2 + (xx - nx) ** 2) / 2.0)
    value = np.clip(value, 0.3, None) * alpha
    keep = alpha > 0.03
    return _Sprite(
        dy=yy[keep].astype(np.intp), dx=xx[keep].astype(np.intp), value=value[keep].astype(np.float32)
    )


_ANGLE_BINS = 12


@lru_cache(maxsize=32)
def _sprite_bank(kind: str, scale: float) -> tuple[_Sprite, ...]:
    """Deterministic nucleus sprites of one kind at ``scale`` level-0 px per base px.

    Oriented kinds (``spindle``, ``tumor``, ``flat``) are ordered by angle bin: sprite ``k`` has the
    angle of bin ``k % _ANGLE_BINS``.
    """
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    sprites: list[_Sprite] = []
    if kind == "lymph":
        for _ in range(48):
            rad = rng.uniform(4.3, 6.0) * scale
            sprites.append(
                _make_sprite(rng, rad, rad * rng.uniform(0.82, 1.0), rng.uniform(0, np.pi),
                             irregularity=0.04, chromatin=0.5, rim=0.15)
            )
    elif kind == "small":
        for _ in range(24):
            rad = rng.uniform(3.5, 5.5) * scale
            sprites.append(
                _make_sprite(rng, rad, rad * rng.uniform(0.7, 1.0), rng.uniform(0, np.pi),
                             irregularity=0.08, chromatin=0.6, rim=0.2)
            )
    else:
        shapes = {
            "spindle": dict(a=(8.0, 13.0), b=(1.7, 2.7), irregularity=0.05, chromatin=0.4, rim=0.1, nucleolus=0.0),
            "tumor": dict(a=(7.0, 11.5), b=(4.2, 7.0), irregularity=0.13, chromatin=1.0, rim=0.45, nucleolus=0.6),
            "flat": dict(a=(6.0, 9.0), b=(1.4, 2.2), irregularity=0.05, chromatin=0.3, rim=0.1, nucleolus=0.0),
        }[kind]
        per_bin = 6
        for k in range(per_bin * _ANGLE_BINS):
            angle = (k % _ANGLE_BINS) * np.pi / _ANGLE_BINS + rng.uniform(-0.12, 0.12)
            sprites.append(
                _make_sprite(
                    rng,
                    rng.uniform(*shapes["a"]) * scale,
                    rng.uniform(*shapes["b"]) * scale,
                    angle,
                    irregularity=shapes["irregularity"],
                    chromatin=shapes["chromatin"],
                    rim=shapes["rim"],
                    nucleolus=shapes["nucleolus"] if rng.random() < 0.5 else 0.0,
                )
            )
    return tuple(sprites)


def _oriented_ids(rng: np.random.Generator, angles: np.ndarray, bank_size: int) -> np.ndarray:
    """Sprite ids of an oriented bank whose angle bin is nearest to ``angles`` (radians, mod pi)."""
    bins = np.round(np.mod(angles, np.pi) / (np.pi / _ANGLE_BINS)).astype(np.intp) % _ANGLE_BINS
    variant = rng.integers(0, bank_size // _ANGLE_BINS, len(angles))
    return bins + variant * _ANGLE_BINS


def _stamp(
    canvas: np.ndarray, points: np.ndarray, ids: np.ndarray, gains: np.ndarray, bank: Sequence[_Sprite]
) -> None:
    """Draw nuclei into ``canvas`` (max-composited): sprite ``bank[ids[n]]`` times ``gains[n]`` at ``points[n]``."""
    if len(points) == 0:
        return
    h, w = canvas.shape
    flat = canvas.reshape(-1)
    cy = np.round(points[:, 0]).astype(np.intp)
    cx = np.round(points[:, 1]).astype(np.intp)
    order = np.argsort(ids, kind="stable")
    bounds = np.searchsorted(ids[order], np.arange(len(bank) + 1))
    for k in range(len(bank)):
        members = order[bounds[k]:bounds[k + 1]]
        if len(members) == 0:
            continue
        sprite = bank[k]
        yy = cy[members, None] + sprite.dy[None, :]
        xx = cx[members, None] + sprite.dx[None, :]
        vals = gains[members, None] * sprite.value[None, :]
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        index = yy[ok] * w + xx[ok]
        flat[index] = np.maximum(flat[index], vals[ok])


# ----------------------------------------------------------------------------------------------
# per-class texture renderers
# ----------------------------------------------------------------------------------------------


@dataclass
class _Region:
    """What a class renderer gets: level-0 shape (multiples of the field step), rng and pixel scale."""

    rng: np.random.Generator
    shape: tuple[int, int]
    scale: float

    @property
    def field_shape(self) -> tuple[int, int]:
        return (self.shape[0] // _FIELD, self.shape[1] // _FIELD)

    def field_points(self) -> np.ndarray:
        """Level-0 ``(y, x)`` centres of the field-grid cells."""
        fh, fw = self.field_shape
        ys = np.arange(fh, dtype=np.float32) * _FIELD + _FIELD / 2
        xs = np.arange(fw, dtype=np.float32) * _FIELD + _FIELD / 2
        return np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)

    def up(self, field: np.ndarray) -> np.ndarray:
        """Bilinear upsampling of a field-grid array to level 0."""
        return _resize(field, self.shape, Image.Resampling.BILINEAR)

    def noise(self, feature_px: float, octaves: int = 1) -> np.ndarray:
        """Level-0 smooth noise with blobs about ``feature_px`` base pixels across."""
        return self.up(_noise(self.rng, self.field_shape, feature_px * self.scale / _FIELD, octaves))

    def fine_noise(self, feature_px: float) -> np.ndarray:
        """Level-0 noise for features a few pixels across (computed at level 0)."""
        return _noise(self.rng, self.shape, max(feature_px * self.scale, 1.0))

    def stripe_phase(self, theta: float, wavelength: float, warp: np.ndarray) -> np.ndarray:
        """Phase (radians) of stripes running along ``theta``, bent by a ``warp`` field (pixels)."""
        h, w = self.shape
        ys = np.arange(h, dtype=np.float32)[:, None]
        xs = np.arange(w, dtype=np.float32)[None, :]
        across = ys * math.cos(theta) - xs * math.sin(theta)
        return (across + warp) * np.float32(2 * np.pi / wavelength)

    def lookup(self, level0: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Values of a level-0 array at ``points`` (rounded, clipped to the array)."""
        y = np.clip(np.round(points[:, 0]).astype(np.intp), 0, self.shape[0] - 1)
        x = np.clip(np.round(points[:, 1]).astype(np.intp), 0, self.shape[1] - 1)
        return level0[y, x]


_Densities = tuple[np.ndarray, np.ndarray, np.ndarray]


def _render_adipose(r: _Region) -> _Densities:
    from scipy.spatial import cKDTree

    s, rng = r.scale, r.rng
    spacing = rng.uniform(85.0, 130.0) * s
    seeds = _jittered_grid(rng, r.shape, spacing, 0.33, margin=spacing)
    dist, _ = cKDTree(seeds).query(r.field_points(), k=2)
    gap = (dist[:, 1] - dist[:, 0]).astype(np.float32).reshape(r.field_shape)  # 2 x distance to a cell wall
    gap += _noise(rng, r.field_shape, 6.0) * 1.2 * s
    wall = r.up(gap)
    thickness = rng.uniform(4.2, 5.8) * s
    membrane = _soft_step(thickness - wall, 1.5)
    membrane *= _soft_step(r.noise(40.0) + 2.3, 0.6)  # a few torn walls
    tone = 0.85 + 0.15 * r.noise(25.0)
    eosin = 0.03 + 1.2 * membrane * tone
    haem = 0.02 + 0.15 * membrane
    nuclei = _uniform_points(rng, r.shape, spacing * 1.4)
    nuclei = nuclei[r.lookup(wall, nuclei) < thickness]
    bank = _sprite_bank("flat", round(s, 3))
    ids = _oriented_ids(rng, rng.uniform(0, np.pi, len(nuclei)), len(bank))
    _stamp(haem, nuclei, ids, rng.uniform(1.2, 1.8, len(nuclei)).astype(np.float32), bank)
    return haem, eosin, np.zeros_like(haem)


def _render_lymphocytes(r: _Region) -> _Densities:
    s, rng = r.scale, r.rng
    spacing = rng.uniform(12.5, 15.0) * s
    centres = _jittered_grid(rng, r.shape, spacing, 0.3, margin=spacing)
    clumps = r.noise(60.0)
    drop = rng.uniform(0.05, 0.2)
    keep = rng.random(len(centres)) > drop * (1.0 + 0.8 * r.lookup(clumps, centres))
    centres = centres[keep]
    bank = _sprite_bank("lymph", round(s, 3))
    haem = 0.2 + 0.06 * r.noise(20.0)
    eosin = 0.22 + 0.07 * r.noise(30.0)
    ids = rng.integers(0, len(bank), len(centres))
    _stamp(haem, centres, ids, rng.uniform(1.7, 2.4, len(centres)).astype(np.float32), bank)
    return haem, eosin, np.zeros_like(haem)


def _render_stroma(r: _Region) -> _Densities:
    s, rng = r.scale, r.rng
    theta = rng.uniform(0, np.pi)
    wavelength = rng.uniform(9.0, 15.0) * s
    warp = r.noise(70.0, octaves=2) * rng.uniform(15.0, 30.0) * s
    phase = r.stripe_phase(theta, wavelength, warp)
    phase += 0.6 * r.fine_noise(10.0)
    fibre = (0.5 + 0.5 * np.sin(phase)) ** 1.6
    fibre *= 0.55 + 0.45 * _soft_step(r.fine_noise(14.0) + 0.3, 1.5)  # streaks break up along their length
    clefts = _soft_step(r.noise(30.0) - 1.3, 0.4)
    fibre *= 1.0 - 0.75 * clefts
    tone = 0.85 + 0.15 * r.noise(40.0)
    eosin = (0.35 + 0.75 * fibre) * tone
    haem = 0.04 + 0.04 * fibre
    spindle = _uniform_points(rng, r.shape, rng.uniform(38.0, 55.0) * s)
    bank = _sprite_bank("spindle", round(s, 3))
    angles = theta + rng.normal(0.0, 0.15, len(spindle))
    ids = _oriented_ids(rng, angles, len(bank))
    _stamp(haem, spindle, ids, rng.uniform(1.3, 2.0, len(spindle)).astype(np.float32), bank)
    stray = _uniform_points(rng, r.shape, 110.0 * s)  # a few scattered inflammatory cells
    small = _sprite_bank("small", round(s, 3))
    _stamp(haem, stray, rng.integers(0, len(small), len(stray)), np.full(len(stray), 1.6, np.float32), small)
    return haem, eosin, np.zeros_like(haem)


def _render_tumor(r: _Region) -> _Densities:
    from scipy.spatial import cKDTree

    s, rng = r.scale, r.rng
    spacing = rng.uniform(120.0, 175.0) * s
    centres = _jittered_grid(rng, r.shape, spacing, 0.28, margin=spacing)
    outer = (spacing * rng.uniform(0.5, 0.64, len(centres))).astype(np.float32)
    lumen = rng.uniform(0.22, 0.5, len(centres)).astype(np.float32)
    tree = cKDTree(centres)
    dist, idx = tree.query(r.field_points(), k=2)
    near = idx[:, 0]
    u = dist[:, 0].astype(np.float32) / outer[near]
    u += 0.1 * _noise(rng, r.field_shape, 5.0 * s).reshape(-1)
    v = ((u - lumen[near]) / (1.0 - lumen[near])).reshape(r.field_shape)
    septum_gap = (dist[:, 1] - dist[:, 0]).astype(np.float32).reshape(r.field_shape)
    depth, wall = r.up(v), r.up(septum_gap)
    sep = rng.uniform(6.0, 10.0) * s
    septum = np.maximum(_soft_step(sep - wall, 2.0), _soft_step(depth - 1.0, 0.08))
    lumen_mask = _soft_step(-depth, 0.08) * (1.0 - septum)
    epithelium = np.clip(1.0 - septum - lumen_mask, 0.0, 1.0)
    haem = 0.32 * epithelium + 0.05 * septum + 0.03 * lumen_mask
    eosin = (0.42 * epithelium + 0.55 * septum + 0.06 * lumen_mask) * (0.9 + 0.1 * r.noise(20.0))
    debris = _soft_step(r.noise(8.0) - 1.2, 0.3) * lumen_mask
    eosin += 0.3 * debris
    haem += 0.15 * debris
    nuclei = _jittered_grid(rng, r.shape, rng.uniform(11.0, 13.0) * s, 0.35)
    at = r.lookup(depth, nuclei)
    on_wall = r.lookup(wall, nuclei)
    nuclei = nuclei[(at > 0.08) & (at < 0.97) & (on_wall > sep + 2.0)]
    _, owner = tree.query(nuclei, k=1)
    radial = np.arctan2(nuclei[:, 0] - centres[owner, 0], nuclei[:, 1] - centres[owner, 1])
    bank = _sprite_bank("tumor", round(s, 3))
    ids = _oriented_ids(rng, radial + rng.normal(0.0, 0.2, len(nuclei)), len(bank))
    gains = rng.uniform(1.0, 1.8, len(nuclei)).astype(np.float32)
    gains[rng.random(len(nuclei)) < 0.02] = 2.6  # mitotic figures
    _stamp(haem, nuclei, ids, gains, bank)
    return haem, eosin, np.zeros_like(haem)


def _render_mucus(r: _Region) -> _Densities:
    s, rng = r.scale, r.rng
    theta = rng.uniform(0, np.pi)
    wavelength = rng.uniform(35.0, 70.0) * s
    warp = r.noise(60.0, octaves=3) * rng.uniform(40.0, 80.0) * s
    streak = (0.5 + 0.5 * np.sin(r.stripe_phase(theta, wavelength, warp))) ** 4
    body = 0.3 + 0.07 * r.noise(50.0)
    holes = _soft_step(r.noise(45.0) - 1.2, 0.5)
    mucin = (body + 0.5 * streak * (0.6 + 0.4 * r.noise(15.0))) * (1.0 - 0.6 * holes)
    eosin = 0.03 + 0.05 * streak
    haem = 0.02 + 0.03 * streak
    cells = _uniform_points(rng, r.shape, rng.uniform(130.0, 200.0) * s)
    small = _sprite_bank("small", round(s, 3))
    _stamp(haem, cells, rng.integers(0, len(small), len(cells)), rng.uniform(1.0, 1.6, len(cells)).astype(np.float32),
           small)
    return haem, eosin, mucin


#: Class -> texture renderer (a registry: add a class by adding a renderer and its captions).
_RENDERERS: dict[str, Callable[[_Region], _Densities]] = {
    "adipose": _render_adipose,
    "lymphocytes": _render_lymphocytes,
    "stroma": _render_stroma,
    "tumor": _render_tumor,
    "mucus": _render_mucus,
}


def _compose(
    haem: np.ndarray, eosin: np.ndarray, mucin: np.ndarray, stain: _Stain, rng: np.random.Generator, rows: int = 512
) -> np.ndarray:
    """Beer-Lambert colour: ``background * exp(-densities @ OD)`` plus sensor noise, as uint8 RGB."""
    h, w = haem.shape
    out = np.empty((h, w, 3), np.uint8)
    od = (stain.od * stain.scales[:, None]).astype(np.float32)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        grain = rng.standard_normal((r1 - r0, w), dtype=np.float32) * np.float32(stain.noise) + np.float32(0.5)
        for c in range(3):
            density = haem[r0:r1] * od[0, c] + eosin[r0:r1] * od[1, c] + mucin[r0:r1] * od[2, c]
            channel = np.exp(-density) * stain.background[c] + grain
            out[r0:r1, :, c] = np.clip(channel, 0, 255)
    return out


def render_tissue(
    tissue_class: str, size: int | tuple[int, int] = 224, *, seed: int, mpp: float = BASE_MPP
) -> np.ndarray:
    """Render one patch of a single tissue class with a random stain (previews, tests, patch datasets).

    Args:
        tissue_class: one of :data:`TISSUE_CLASSES`.
        size: patch side, or ``(width, height)``, in pixels.
        seed: the patch depends only on ``(tissue_class, seed, size, mpp)``.
        mpp: microns per pixel the texture is drawn at.

    Returns:
        ``(height, width, 3)`` uint8 RGB.

    Raises:
        UnknownNameError: the class is not known.
    """
    label = _check_class(tissue_class)
    width, height = (size, size) if isinstance(size, int) else size
    if width < 8 or height < 8 or mpp <= 0:
        raise ValueError(f"render_tissue needs size >= 8 px and mpp > 0, got size {size!r}, mpp {mpp}")
    rng = np.random.default_rng([seed, label, 7])
    stain = _random_stain(rng)
    shape = (-(-height // _FIELD) * _FIELD, -(-width // _FIELD) * _FIELD)
    region = _Region(rng=rng, shape=shape, scale=BASE_MPP / mpp)
    dens = [d * k for d, k in zip(_RENDERERS[tissue_class](region), rng.uniform(0.9, 1.1, 3))]
    return _compose(*dens, stain, rng)[:height, :width]


# ----------------------------------------------------------------------------------------------
# slides
# ----------------------------------------------------------------------------------------------


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
        """A JSON-serialisable dict of the truth (paths as strings)."""
        return {
            "slide_id": self.slide_id,
            "path": str(self.path),
            "mask_path": str(self.mask_path),
            "mpp": self.mpp,
            "size": list(self.size),
            "mask_downsample": self.mask_downsample,
            "seed": self.seed,
            "classes": list(self.classes),
            "label": self.label,
            "tissue_fraction": self.tissue_fraction,
            "class_fractions": self.class_fractions,
            "regions": [
                {
                    "tissue_class": g.tissue_class,
                    "label": g.label,
                    "centre": list(g.centre),
                    "inradius": g.inradius,
                    "area_fraction": g.area_fraction,
                }
                for g in self.regions
            ],
            "stain": self.stain,
            "generator": GENERATOR,
            "licence": LICENCE,
        }


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


def generate_slide(
    path: str | Path,
    *,
    seed: int,
    size: int | tuple[int, int] = (4096, 4096),
    mpp: float = BASE_MPP,
    classes: Sequence[str] = TISSUE_CLASSES,
    background_fraction: float = 0.4,
    n_regions: int | None = None,
    tile: int = 256,
    quality: int = 90,
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
        quality: JPEG quality of the TIFF tiles.

    Returns:
        The :class:`SlideTruth`.

    Raises:
        ValueError: bad size, mpp, background fraction or empty class list.
        UnknownNameError: an unknown class name.
    """
    from scipy import ndimage

    from domainclip.domains.pathology.tiff import write_pyramidal_tiff

    path = Path(path)
    width, height = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if width < 256 or height < 256 or width % MASK_DOWNSAMPLE or height % MASK_DOWNSAMPLE:
        raise ValueError(f"{path}: size must be >= 256 and a multiple of {MASK_DOWNSAMPLE}, got {width}x{height}")
    if not mpp > 0:
        raise ValueError(f"{path}: mpp must be positive, got {mpp}")
    if not 0.0 <= background_fraction <= 0.95:
        raise ValueError(f"{path}: background_fraction must be in [0, 0.95], got {background_fraction}")
    classes = tuple(dict.fromkeys(classes))
    if not classes:
        raise ValueError(f"{path}: classes is empty")
    for c in classes:
        _check_class(c)
    scale = BASE_MPP / mpp
    rng = np.random.default_rng([int(seed), 0x51DE])
    stain = _random_stain(rng)
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
    image = _compose(haem, eosin, mucin, stain, rng)
    del haem, eosin, mucin

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


# ----------------------------------------------------------------------------------------------
# a folder of slides
# ----------------------------------------------------------------------------------------------

#: Columns of ``slides.csv``.
CSV_FIELDS: tuple[str, ...] = (
    "slide_id",
    "path",
    "mpp",
    "label",
    "classes",
    "width",
    "height",
    "mask",
    "mask_downsample",
    "tissue_fraction",
    "seed",
)


def _slide_plan(n_slides: int, seed: int, tumor_fraction: float) -> list[tuple[int, tuple[str, ...]]]:
    """Per slide: its seed and the classes it is asked to draw (tumour on a seeded subset)."""
    rng = np.random.default_rng([seed, 0x7A5])
    n_tumor = int(round(tumor_fraction * n_slides))
    with_tumor = set(rng.permutation(n_slides)[:n_tumor].tolist())
    others = [c for c in TISSUE_CLASSES if c != "tumor"]
    plan = []
    for i in range(n_slides):
        slide_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        if i in with_tumor:
            k = int(rng.integers(1, len(others)))
            chosen = ("tumor", *rng.choice(others, size=k, replace=False).tolist())
        else:
            k = int(rng.integers(2, len(others) + 1))
            chosen = tuple(rng.choice(others, size=k, replace=False).tolist())
        plan.append((slide_seed, tuple(c for c in TISSUE_CLASSES if c in chosen)))
    return plan


def _generate_one(job: dict[str, Any]) -> dict[str, Any]:
    began = time.perf_counter()
    options = dict(job)
    truth = generate_slide(options.pop("path"), **options)
    out = truth.to_json()
    out["seconds"] = round(time.perf_counter() - began, 3)
    return out


def generate_slides(
    out_dir: str | Path,
    n_slides: int,
    *,
    seed: int = 0,
    size: int | tuple[int, int] = (4096, 4096),
    mpp: float = BASE_MPP,
    workers: int = 1,
    tumor_fraction: float = 0.5,
    background_fraction: float = 0.4,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``n_slides`` synthetic slides, their masks, ``slides.csv`` and ``slides.json`` under ``out_dir``.

    ``round(tumor_fraction * n_slides)`` slides, chosen by ``seed``, draw tumour plus one to three other
    classes; the rest draw two to four non-tumour classes. ``slides.csv`` (columns
    :data:`CSV_FIELDS`, ``path`` and ``mask`` relative to ``out_dir``, ``classes`` joined by ``;``)
    labels a slide ``tumor`` exactly when its mask holds tumour. Every file is written atomically.

    Args:
        out_dir: output folder (created).
        n_slides: number of slides (``slide_0000.tiff`` ...).
        seed: run seed; slide ``i`` is drawn with a seed derived from ``(seed, i)``.
        size: level-0 side or ``(width, height)``.
        mpp: microns per pixel at level 0.
        workers: processes drawing slides in parallel.
        tumor_fraction: share of slides with tumour, in ``[0, 1]``.
        background_fraction: share of each slide left as glass.
        progress: show a progress bar.

    Returns:
        Summary: output paths, counts per slide label and class, seconds and slides per minute.
    """
    from tqdm.auto import tqdm

    if n_slides < 1:
        raise ValueError(f"n_slides must be at least 1, got {n_slides}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not 0.0 <= tumor_fraction <= 1.0:
        raise ValueError(f"tumor_fraction must be in [0, 1], got {tumor_fraction}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        {
            "path": str(out / f"slide_{i:04d}.tiff"),
            "seed": slide_seed,
            "size": size,
            "mpp": mpp,
            "classes": chosen,
            "background_fraction": background_fraction,
        }
        for i, (slide_seed, chosen) in enumerate(_slide_plan(n_slides, seed, tumor_fraction))
    ]
    began = time.perf_counter()
    results: list[dict[str, Any]] = []
    with tqdm(total=n_slides, disable=not progress, unit="slide", desc="synthetic slides") as bar:
        for _, result in map_unordered(_generate_one, jobs, workers):
            results.append(result)
            bar.update(1)
    results.sort(key=lambda r: r["slide_id"])
    seconds = time.perf_counter() - began

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_FIELDS), lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow(
            {
                "slide_id": r["slide_id"],
                "path": Path(r["path"]).name,
                "mpp": r["mpp"],
                "label": r["label"],
                "classes": ";".join(r["classes"]),
                "width": r["size"][0],
                "height": r["size"][1],
                "mask": Path(r["mask_path"]).name,
                "mask_downsample": r["mask_downsample"],
                "tissue_fraction": r["tissue_fraction"],
                "seed": r["seed"],
            }
        )
    csv_path = atomic_write_text(out / "slides.csv", buf.getvalue())
    from domainclip.core.data.writer import write_json_atomic

    json_path = out / "slides.json"
    write_json_atomic(json_path, {"generator": GENERATOR, "licence": LICENCE, "seed": seed, "slides": results})
    labels = [r["label"] for r in results]
    return {
        "out": str(out),
        "n_slides": n_slides,
        "seed": seed,
        "size": list(results[0]["size"]),
        "mpp": mpp,
        "workers": workers,
        "slides_csv": str(csv_path),
        "slides_json": str(json_path),
        "counts_by_label": {label: labels.count(label) for label in SLIDE_LABELS},
        "slides_with_class": {c: sum(c in r["classes"] for r in results) for c in TISSUE_CLASSES},
        "seconds": round(seconds, 3),
        "slides_per_minute": round(60.0 * n_slides / seconds, 2) if seconds > 0 else None,
        "generator": GENERATOR,
        "licence": LICENCE,
    }


# ----------------------------------------------------------------------------------------------
# the annotate hook
# ----------------------------------------------------------------------------------------------


class SyntheticAnnotator:
    """Caption and label patches of synthetic slides from their label masks (``annotate`` hook).

    Picklable: it holds only the folder and settings; masks are read lazily and cached per process.

    Args:
        slides_dir: a folder written by :func:`generate_slides` (read through ``slides.csv``) or holding
            masks written by :func:`generate_slide` (``<slide_id>_mask.png``).
        min_purity: smallest share of the patch box one class must cover (background counts against
            it) for the patch to be kept.
        seed: caption sampling seed.
        n_captions: captions per patch, each from a different template of the class.
    """

    def __init__(self, slides_dir: str | Path, *, min_purity: float = 0.8, seed: int = 0, n_captions: int = 3):
        if not 0.0 < min_purity <= 1.0:
            raise ValueError(f"min_purity must be in (0, 1], got {min_purity}")
        if n_captions < 1:
            raise ValueError(f"n_captions must be at least 1, got {n_captions}")
        self.slides_dir = Path(slides_dir)
        self.min_purity = float(min_purity)
        self.seed = int(seed)
        self.n_captions = int(n_captions)
        self._slides: dict[str, tuple[Path, int]] | None = None
        self._masks: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_slides"] = None
        state["_masks"] = {}
        return state

    def _index(self) -> dict[str, tuple[Path, int]]:
        """Slide id -> (mask path, downsample), from ``slides.csv`` or else the ``*_mask.png`` files."""
        if self._slides is not None:
            return self._slides
        table = self.slides_dir / "slides.csv"
        slides: dict[str, tuple[Path, int]] = {}
        if table.is_file():
            with table.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                missing = {"slide_id", "mask", "mask_downsample"} - set(reader.fieldnames or ())
                if missing:
                    raise ValueError(f"{table}: lacks the column(s) {', '.join(sorted(missing))}")
                for lineno, row in enumerate(reader, start=2):
                    try:
                        downsample = int(row["mask_downsample"])
                    except (TypeError, ValueError):
                        raise ValueError(
                            f"{table}:{lineno}: mask_downsample must be an integer, got {row.get('mask_downsample')!r}"
                        ) from None
                    slides[row["slide_id"]] = (self.slides_dir / row["mask"], downsample)
        else:
            for mask in sorted(self.slides_dir.glob("*_mask.png")):
                slides[mask.name[: -len("_mask.png")]] = (mask, MASK_DOWNSAMPLE)
            if not slides:
                raise FileNotFoundError(
                    f"{self.slides_dir}: holds neither slides.csv nor *_mask.png label masks; "
                    "write it with generate_slides() or generate_slide()"
                )
        self._slides = slides
        return slides

    def resolve(self, slide_id: str) -> str:
        """The known slide id for ``slide_id`` (an id, or a slide file name or path whose stem is one).

        Raises:
            UnknownNameError: the slide is not in the folder.
        """
        index = self._index()
        key = slide_id if slide_id in index else Path(slide_id).stem
        if key not in index:
            raise UnknownNameError("synthetic slide", str(slide_id), list(index))
        return key

    def mask(self, slide_id: str) -> tuple[np.ndarray, int]:
        """The label mask of a slide and its downsample (cached).

        Raises:
            UnknownNameError: the slide is not in the folder.
        """
        index = self._index()
        key = self.resolve(slide_id)
        if key not in self._masks:
            self._masks[key] = read_mask(index[key][0])
        return self._masks[key], index[key][1]

    def purity(self, slide_id: str, x0: int, y0: int, size0: int) -> tuple[int, float]:
        """Majority label (class index + 1, 0 = background) of a level-0 box and its share of the box.

        The box's mask pixels are those whose level-0 centres fall inside it; parts of the box off the
        slide count as background.
        """
        mask, ds = self.mask(slide_id)
        lo_y, hi_y = math.ceil((y0 - ds / 2) / ds), math.ceil((y0 + size0 - ds / 2) / ds)
        lo_x, hi_x = math.ceil((x0 - ds / 2) / ds), math.ceil((x0 + size0 - ds / 2) / ds)
        if hi_y <= lo_y or hi_x <= lo_x:  # box smaller than a mask pixel: use the pixel under its centre
            lo_y, lo_x = int((y0 + size0 / 2) // ds), int((x0 + size0 / 2) // ds)
            hi_y, hi_x = lo_y + 1, lo_x + 1
        total = (hi_y - lo_y) * (hi_x - lo_x)
        h, w = mask.shape
        window = mask[max(lo_y, 0):max(min(hi_y, h), 0), max(lo_x, 0):max(min(hi_x, w), 0)]
        counts = np.bincount(window.reshape(-1), minlength=len(TISSUE_CLASSES) + 1)
        counts[0] += total - window.size
        best = int(np.argmax(counts[1:])) + 1
        return best, float(counts[best]) / total

    def __call__(self, slide_id: str, x0: int, y0: int, size0: int) -> dict[str, Any] | None:
        """Captions and label of the patch ``[x0, x0 + size0) x [y0, y0 + size0)`` (level 0), or ``None``.

        Returns:
            ``{"text": [captions], "label": class index, "meta": {"tissue_class", "purity"}}`` when one
            class covers at least ``min_purity`` of the box, else ``None``. The captions come from
            different templates (each with a random synonym) and depend only on ``(seed, slide_id, x0, y0)``.
        """
        value, share = self.purity(slide_id, int(x0), int(y0), int(size0))
        if share < self.min_purity:
            return None
        name = TISSUE_CLASSES[value - 1]
        groups = _caption_groups(name)
        key = [self.seed, zlib.crc32(self.resolve(slide_id).encode()), int(x0) % 2**32, int(y0) % 2**32]
        rng = np.random.default_rng(key)
        picks = rng.choice(len(groups), size=min(self.n_captions, len(groups)), replace=False)
        return {
            "text": [groups[int(i)][int(rng.integers(len(groups[int(i)])))] for i in picks],
            "label": value - 1,
            "meta": {"tissue_class": name, "purity": round(share, 4)},
        }


# ----------------------------------------------------------------------------------------------
# the prepare command
# ----------------------------------------------------------------------------------------------


def _size(text: str) -> int | tuple[int, int]:
    try:
        if "x" in text.lower():
            w, h = (int(v) for v in text.lower().split("x", 1))
            return (w, h)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--size takes N or WIDTHxHEIGHT (e.g. 4096 or 4096x3072), got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``domainclip prepare pathology synthetic``."""
    parser.add_argument("--out", required=True, type=Path, help="output folder for the slides")
    parser.add_argument("--n-slides", type=int, default=20, help="number of slides (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="run seed: slide i depends only on (seed, i)")
    parser.add_argument(
        "--size", type=_size, default=(4096, 4096), help="level-0 side N or WIDTHxHEIGHT (default 4096)"
    )
    parser.add_argument("--mpp", type=float, default=BASE_MPP, help="microns per pixel at level 0 (default 0.5)")
    parser.add_argument("--workers", type=int, default=1, help="processes drawing slides in parallel")
    parser.add_argument("--tumor-fraction", type=float, default=0.5, help="share of slides with tumour (default 0.5)")
    parser.add_argument(
        "--background-fraction", type=float, default=0.4, help="share of each slide left as glass (default 0.4)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``domainclip prepare pathology synthetic`` from parsed arguments."""
    return generate_slides(
        args.out,
        args.n_slides,
        seed=args.seed,
        size=args.size,
        mpp=args.mpp,
        workers=args.workers,
        tumor_fraction=args.tumor_fraction,
        background_fraction=args.background_fraction,
        progress=not args.no_progress,
    )


#: The ``synthetic`` prepare command of the pathology domain (slides only; patching is separate).
SYNTHETIC = PrepareCommand(
    name="synthetic",
    help="draw synthetic H&E whole-slide images (pyramidal TIFF + label masks + slides.csv) with 5 tissue classes",
    add_arguments=add_arguments,
    run=run,
)
