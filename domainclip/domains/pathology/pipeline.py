"""Synthetic slides end to end: slides -> annotated patch shards, and the suite that evaluates on them.

``domainclip prepare pathology synthetic-patches`` generates pyramidal slides with tissue regions of the
nine NCT-CRC-HE classes (:mod:`~domainclip.domains.pathology.synthetic`), cuts patches at a physical resolution
(:func:`~domainclip.domains.pathology.patching.patch_slides`) and captions each patch from the
region it lies in (:class:`~domainclip.domains.pathology.synthetic.SyntheticAnnotator`). The
output folder holds the shards (image, captions, class, provenance), ``slides/`` (TIFFs, masks,
``slides.csv``), ``thumbnails/`` and a copy of ``slides.csv`` beside the shards, which is the
layout the slide-level suite reads. The quick recipe trains on one such folder and evaluates on
another made with a different seed, through ``pathology/synthetic``, and on a third drawn from the
shifted stain and scanner distribution of a second site (``site: b``), through
``pathology/synthetic_shifted``:

* ``tissue/zeroshot_classification``: patch-level zero-shot over the nine tissue classes (labels and
  prompts as the real NCT-CRC suite has them: :data:`~domainclip.domains.pathology.labels.NCT_CRC_CLASSES`);
* ``tissue/retrieval``: patch <-> caption retrieval (each patch's first caption);
* ``slides``: MI-Zero slide-level zero-shot (normal vs tumour, top-k pooling), AUROC included.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import torch
from torch.utils.data import DataLoader

from domainclip.core.io import atomic_write_bytes
from domainclip.core.options import NonNegativeInt, PositiveFloat, PositiveInt, Range, UnitFloat, entry_point
from domainclip.domains.pathology.evals import PatchPrompts
from domainclip.domains.pathology.synthetic.slide import Site

__all__ = ["HELDOUT_SEED", "prepare_synthetic_patches", "synthetic_shifted_suite", "synthetic_suite"]

#: Seed of the held-out slides that ``pathology/synthetic`` generates when it is given no data.
HELDOUT_SEED = 7_000_003


@entry_point
def prepare_synthetic_patches(
    out: Path,
    n: PositiveInt = 8,
    *,
    seed: NonNegativeInt = 0,
    slide_size: Annotated[int, Range(256)] = 4096,
    mpp_target: PositiveFloat = 0.5,
    patch_size: PositiveInt = 224,
    tumor_fraction: UnitFloat = 0.5,
    min_purity: Annotated[float, Range(0, 1, low_open=True)] = 0.8,
    workers: PositiveInt = 1,
    max_count: PositiveInt = 1000,
    progress: bool = True,
    site: Site = "a",
) -> dict[str, Any]:
    """Generate synthetic H&E-like slides and cut them into captioned patch shards (quick recipe data).

    Args:
        out: output folder (shards and slides.csv; the slides in out/slides).
        n: number of slides.
        seed: run seed (held-out sets use another).
        slide_size: level-0 side of each slide in pixels (at 0.5 um/px), a multiple of 16.
        mpp_target: microns per pixel of the patches.
        patch_size: patch side in pixels.
        tumor_fraction: share of slides that contain tumour (the slide-level label).
        min_purity: a patch is kept when at least this share of it is one tissue class, in (0, 1].
        workers: worker processes for drawing and patching.
        max_count: most patches per shard.
        progress: show progress bars.
        site: stain and scanner distribution of the slides (``"b"``: the shifted second site).

    Returns:
        Summary: the generator's and the patcher's summaries, patches per class, seconds.
    """
    from domainclip.domains.pathology.patching import PatchSpec, find_slides, patch_slides
    from domainclip.domains.pathology.synthetic import SyntheticAnnotator, generate_slides

    slides_dir = out / "slides"
    began = time.perf_counter()
    generated = generate_slides(
        slides_dir, n, seed=seed, size=slide_size, workers=workers, tumor_fraction=tumor_fraction, progress=progress,
        site=site,
    )
    # synthetic fat and mucus are pale, as on real slides: the annotator's class purity decides, not Otsu
    spec = PatchSpec(mpp=mpp_target, size=patch_size, min_tissue=0.0)
    patched = patch_slides(
        find_slides([slides_dir]),
        out,
        spec,
        workers=workers,
        annotate=SyntheticAnnotator(slides_dir, min_purity=min_purity, seed=seed),
        max_count=max_count,
        progress=progress,
    )
    atomic_write_bytes(out / "slides.csv", (slides_dir / "slides.csv").read_bytes())
    return {
        "out": str(out),
        "slides": generated,
        "patches": patched,
        "seconds": round(time.perf_counter() - began, 2),
    }


def _patch_loader(data: Path, preprocess: Callable[[Any], torch.Tensor], batch_size: int) -> DataLoader:
    from domainclip.core.data.decode import SampleDecoder
    from domainclip.core.eval.features import collate_samples
    from domainclip.core.eval.heldout import HeldOutShards

    decoder = SampleDecoder(image_transform=preprocess, required=("image", "text", "label"), text_choice="first")
    patches = HeldOutShards(data, decoder, suite="pathology/synthetic",
                            expected="a folder written by 'domainclip prepare pathology synthetic-patches'")
    return DataLoader(patches, batch_size=batch_size, collate_fn=collate_samples)


def synthetic_suite(
    model: torch.nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    preprocess: Callable[[Any], torch.Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str = "cpu",
    batch_size: int = 64,
    top_k: PositiveInt = 5,
    prompts: PatchPrompts = "ensemble",
    template: str | None = None,
    site: Site = "a",
) -> dict[str, dict[str, float]]:
    """Evaluate on held-out synthetic slides: patch zero-shot, patch-caption retrieval, slide-level zero-shot.

    Tissue classes are the nine NCT-CRC-HE codes (``ADI`` ... ``TUM``) in their label order, and the
    prompts are those of the real NCT-CRC suite (:func:`~domainclip.domains.pathology.evals.patch_folder_suite`).

    Args:
        model: CLIP-like model.
        tokenizer: its tokenizer.
        preprocess: image transform.
        data: a folder written by ``domainclip prepare pathology synthetic-patches`` (with another seed
            than training); ``None`` generates 4 held-out slides of ``site`` into ``out_dir/heldout``.
        out_dir: where the confusion matrices and predictions go.
        device: where the model runs.
        batch_size: patches per forward.
        top_k: patches pooled per class for the slide-level score.
        prompts: the template set (:data:`~domainclip.domains.pathology.labels.PATCH_TEMPLATE_SETS`):
            ``ensemble`` (every synonym of a class through every template, averaged), ``single`` (the
            class's first name through one template), ``pathgen`` or ``plip``.
        template: one prompt template with ``{}``, filled with each class's first name; it replaces
            ``prompts`` (to measure the spread of single prompts over templates).
        site: the site of the slides generated when ``data`` is ``None``.

    Returns:
        ``tissue/zeroshot_classification``, ``tissue/retrieval`` and ``slides`` metrics.

    Raises:
        InputError: ``template`` has no ``{}``.
    """
    from domainclip.core.errors import InputError
    from domainclip.core.eval.features import embed_loader
    from domainclip.core.eval.report import scalar_metrics
    from domainclip.core.eval.retrieval import caption_retrieval
    from domainclip.core.eval.zero_shot import build_prompt_classifier, classification_report
    from domainclip.domains.pathology import labels
    from domainclip.domains.pathology.evals import TEXT_BATCH_SIZE, _class_prompts, slide_suite
    from domainclip.domains.pathology.synthetic import SLIDE_PROMPTS

    if template is not None and "{}" not in template:
        raise InputError(f"pathology/synthetic: template {template!r} has no '{{}}' for the class name")
    out_dir = Path(out_dir)
    if data is None:
        data = out_dir / "heldout"
        if not (data / "slides.csv").is_file():
            seed = HELDOUT_SEED if site == "a" else HELDOUT_SEED + 1
            prepare_synthetic_patches(data, 4, seed=seed, slide_size=3072, progress=False, site=site)
    # one pass over the patches serves both the zero-shot classifier and retrieval
    patches = embed_loader(model, _patch_loader(Path(data), preprocess, batch_size), device, keep=("label", "text"))
    codes = list(labels.NCT_CRC_CLASSES)
    if template is not None:
        class_prompts = labels.expand_prompts({c: labels.NCT_CRC_NAMES[c] for c in codes}, (template,))
    else:
        class_prompts = _class_prompts(codes, None, None, labels.PATCH_TEMPLATES, labels.NCT_CRC_SYNONYMS,
                                       labels.display_name, prompts)
    classifier = build_prompt_classifier(model, tokenizer, class_prompts, device, max(batch_size, TEXT_BATCH_SIZE))
    tissue = classification_report(
        patches["features"] @ classifier.cpu(), patches["label"], codes,
        out_dir / "tissue_confusion_matrix.png", title="synthetic tissue, 9 NCT-CRC classes (zero-shot)",
    )
    retrieval = caption_retrieval(model, tokenizer, patches["features"], patches["text"], device,
                                  text_batch_size=batch_size)
    slides = slide_suite(
        model, tokenizer, preprocess, data=data, out_dir=out_dir, device=device, batch_size=batch_size,
        classes={label: list(p) for label, p in SLIDE_PROMPTS.items()}, templates=("{}",), top_k=top_k,
    )
    return {
        "tissue/zeroshot_classification": scalar_metrics(tissue),
        "tissue/retrieval": scalar_metrics(retrieval),
        **slides,
    }


def synthetic_shifted_suite(
    model: torch.nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    preprocess: Callable[[Any], torch.Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str = "cpu",
    batch_size: int = 64,
    top_k: PositiveInt = 5,
    prompts: PatchPrompts = "ensemble",
    template: str | None = None,
) -> dict[str, dict[str, float]]:
    """``pathology/synthetic`` on slides of the shifted second site (stain and scanner shift).

    The same metrics as :func:`synthetic_suite`, as a suite of its own so that a recipe evaluates both
    sites and ``results.json`` names them apart (``pathology/synthetic_shifted:tissue/...``).

    Args:
        model: CLIP-like model.
        tokenizer: its tokenizer.
        preprocess: image transform.
        data: a folder written by ``domainclip prepare pathology synthetic-patches --site b``; ``None``
            generates 4 held-out slides of site ``b`` into ``out_dir/heldout``.
        out_dir: where the confusion matrices and predictions go.
        device: where the model runs.
        batch_size: patches per forward.
        top_k: patches pooled per class for the slide-level score.
        prompts: the template set, as for :func:`synthetic_suite`.
        template: one prompt template with ``{}``, as for :func:`synthetic_suite`.

    Returns:
        ``tissue/zeroshot_classification``, ``tissue/retrieval`` and ``slides`` metrics.
    """
    return synthetic_suite(model, tokenizer, preprocess, data=data, out_dir=out_dir, device=device,
                           batch_size=batch_size, top_k=top_k, prompts=prompts, template=template, site="b")
