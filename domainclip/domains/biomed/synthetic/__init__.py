"""Synthetic biomedical articles: PMC-style JATS with figures of known type, duplicates and panels.

The biomedical domain's commands read PubMed Central articles (JATS ``.nxml`` plus figure files,
loose or in packages) and turn their figures into figure-caption shards, deduplicate them, split
multi-panel figures and label figure types. This generator writes articles in that layout with the
truth of every figure known, so the quick recipe and the tests run the real pipeline without
downloads.

* :mod:`.painters`: one painter per figure type of :mod:`~domainclip.domains.biomed.taxonomy`
  (matplotlib charts; fluorescence, H&E, IHC and electron micrographs; chest X-ray, CT, MRI and
  ultrasound images; western blots and gels; flowcharts, pathways and timelines; skeletal
  formulae; tables; clinical and specimen photographs), each returning what it drew.
* :mod:`.captions`: captions that name the kind of picture in varied words (stain, organ,
  modality, chart kind), with panel labels and type-neutral text (n, p values, methods).
* :mod:`.jats`: the ``.nxml`` text, shaped like a real PMC file.
* :mod:`.articles`: article plans, duplicates (exact, resized, recompressed, cropped), multi-panel
  figures and hard cases, packaging and :func:`generate_articles`, the ``domainclip prepare biomed
  synthetic`` command.

**Files** (each written atomically)::

    out/articles/PMC<id>/PMC<id>.nxml + <href>.<ext>    loose article folders (3 in 5)
    out/articles/PMC<id>.tar.gz                         PMC<id>/<slug>.nxml + figures (1 in 5)
    out/articles/PMC<id>.zip                            the same members (1 in 5)
    out/truth.jsonl                                     one line per figure: type, panels, duplicates
    out/figure_types/<type>/<key>.png                   every original single-panel figure
    out/summary.json                                    counts, broken items, options
"""

from domainclip.domains.biomed.synthetic.articles import (
    ARTICLE_FOLDER,
    DUPLICATE_KINDS,
    GENERATOR,
    JOURNALS,
    LICENCE,
    LICENCE_WEIGHTS,
    MALFORMED_KINDS,
    PACKAGES,
    SUMMARY_FILE,
    TRUTH_FILE,
    TYPE_WEIGHTS,
    TYPES_FOLDER,
    ArticlePlan,
    FigurePlan,
    generate_articles,
    plan_article,
)
from domainclip.domains.biomed.synthetic.painters import PAINTERS, paint

__all__ = [
    "ARTICLE_FOLDER",
    "DUPLICATE_KINDS",
    "GENERATOR",
    "JOURNALS",
    "LICENCE",
    "LICENCE_WEIGHTS",
    "MALFORMED_KINDS",
    "PACKAGES",
    "PAINTERS",
    "SUMMARY_FILE",
    "TRUTH_FILE",
    "TYPES_FOLDER",
    "TYPE_WEIGHTS",
    "ArticlePlan",
    "FigurePlan",
    "generate_articles",
    "paint",
    "plan_article",
]
