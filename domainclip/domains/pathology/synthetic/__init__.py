"""Synthetic H&E whole-slide images with known tissue classes, for tests, demos and quick recipes.

The nine NCT-CRC-HE-100K tissue classes (adipose, background, debris, lymphocytes, mucus, smooth
muscle, normal colon mucosa, cancer-associated stroma, adenocarcinoma epithelium; label order and
names of :mod:`domainclip.domains.pathology.labels`) are drawn at a physical scale with a per-slide
Beer-Lambert stain and scanner drawn from a site's distribution (site ``"b"``: a shifted second
site), so texture, not one pixel's colour, tells them apart, and some pairs overlap as the real
ones do (debris and necrotic tumour, stroma and muscle, normal crypts and well-formed tumour
glands). One module per concern:

* :mod:`.vocabulary`: class names, PathGen-style caption templates, zero-shot prompts;
* :mod:`.stain` and :mod:`.nuclei`: the stain and scanner model (sites), smooth random fields, nucleus sprites;
* :mod:`.textures`: one renderer per class (a registry) and :func:`render_tissue` for one patch;
* :mod:`.slide`: :func:`generate_slide`, one pyramidal TIFF and its exact label mask, with the truth;
* :mod:`.generator`: :func:`generate_slides`, the domain's ``synthetic`` prepare command (a folder
  of slides with ``slides.csv`` and ``slides.json``, drawn in worker processes);
* :mod:`.annotator`: :class:`SyntheticAnnotator`, the ``annotate`` hook that captions and labels
  patch boxes from the masks.

Importing this package imports numpy and Pillow only; scipy and scikit-image are imported when the
first slide is drawn. Slides are deterministic per seed.
"""

from domainclip.domains.pathology.synthetic.annotator import SyntheticAnnotator
from domainclip.domains.pathology.synthetic.generator import CSV_FIELDS, generate_slides
from domainclip.domains.pathology.synthetic.slide import (
    GENERATOR,
    LICENCE,
    MASK_DOWNSAMPLE,
    RegionTruth,
    SlideTruth,
    generate_slide,
    read_mask,
)
from domainclip.domains.pathology.synthetic.textures import BASE_MPP, render_tissue
from domainclip.domains.pathology.synthetic.vocabulary import (
    CAPTION_SYNONYMS,
    CAPTION_TEMPLATES,
    CLASS_NAMES,
    NCT_CRC_HE_CODES,
    SLIDE_LABELS,
    SLIDE_PROMPTS,
    TISSUE_CLASSES,
    ZERO_SHOT_TEMPLATES,
    caption_pool,
    slide_templates,
    synthetic_templates,
)

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
