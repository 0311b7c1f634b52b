"""Synthetic slides end to end: slides -> annotated patch shards, and the suite that evaluates on them.

``domainclip prepare pathology synthetic-patches`` generates pyramidal slides with tissue regions of five
classes (:mod:`~domainclip.domains.pathology.synthetic`), cuts patches at a physical resolution
(:func:`~domainclip.domains.pathology.patching.patch_slides`) and captions each patch from the
region it lies in (:class:`~domainclip.domains.pathology.synthetic.SyntheticAnnotator`). The
output folder holds the shards (image, captions, class, provenance), ``slides/`` (TIFFs, masks,
``slides.csv``), ``thumbnails/`` and a copy of ``slides.csv`` beside the shards, which is the
layout the slide-level suite reads. The quick recipe trains on one such folder and evaluates on
another made with a different seed, through ``pathology/synthetic``:

* ``tissue/zeroshot_classification``: patch-level zero-shot over the five tissue classes;
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

__all__ = ["HELDOUT_SEED", "prepare_synthetic_patches", "synthetic_suite"]

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

    Returns:
        Summary: the generator's and the patcher's summaries, patches per class, seconds.
    """
    from domainclip.domains.pathology.patching import PatchSpec, find_slides, patch_slides
    from domainclip.domains.pathology.synthetic import SyntheticAnnotator, generate_slides

    slides_dir = out / "slides"
    began = time.perf_counter()
    generated = generate_slides(
        slides_dir, n, seed=seed, size=slide_size, workers=workers, tumor_fraction=tumor_fraction, progress=progress
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
) -> dict[str, dict[str, float]]:
    """Evaluate on held-out synthetic slides: patch zero-shot, patch-caption retrieval, slide-level zero-shot.

    Args:
        model: CLIP-like model.
        tokenizer: its tokenizer.
        preprocess: image transform.
        data: a folder written by ``domainclip prepare pathology synthetic-patches`` (with another seed
            than training); ``None`` generates 4 held-out slides into ``out_dir/heldout``.
        out_dir: where the confusion matrices and predictions go.
        device: where the model runs.
        batch_size: patches per forward.
        top_k: patches pooled per class for the slide-level score.

    Returns:
        ``tissue/zeroshot_classification``, ``tissue/retrieval`` and ``slides`` metrics.
    """
    from domainclip.core.eval.features import embed_loader
    from domainclip.core.eval.report import scalar_metrics
    from domainclip.core.eval.retrieval import caption_retrieval
    from domainclip.core.eval.zero_shot import build_zero_shot_classifier, classification_report
    from domainclip.domains.pathology.evals import slide_suite
    from domainclip.domains.pathology.synthetic import (
        CLASS_NAMES,
        SLIDE_PROMPTS,
        TISSUE_CLASSES,
        ZERO_SHOT_TEMPLATES,
    )

    out_dir = Path(out_dir)
    if data is None:
        data = out_dir / "heldout"
        if not (data / "slides.csv").is_file():
            prepare_synthetic_patches(data, 4, seed=HELDOUT_SEED, slide_size=3072, progress=False)
    # one pass over the patches serves both the zero-shot classifier and retrieval
    patches = embed_loader(model, _patch_loader(Path(data), preprocess, batch_size), device, keep=("label", "text"))
    names = [CLASS_NAMES[c] for c in TISSUE_CLASSES]
    classifier = build_zero_shot_classifier(model, tokenizer, names, list(ZERO_SHOT_TEMPLATES), device, batch_size)
    tissue = classification_report(
        patches["features"] @ classifier.cpu(), patches["label"], TISSUE_CLASSES,
        out_dir / "tissue_confusion_matrix.png", title="synthetic tissue (zero-shot)",
    )
    retrieval = caption_retrieval(model, tokenizer, patches["features"], patches["text"], device,
                                  text_batch_size=batch_size)
    slides = slide_suite(
        model, tokenizer, preprocess, data=data, out_dir=out_dir, device=device, batch_size=batch_size,
        classes={label: list(prompts) for label, prompts in SLIDE_PROMPTS.items()}, templates=("{}",), top_k=top_k,
    )
    return {
        "tissue/zeroshot_classification": scalar_metrics(tissue),
        "tissue/retrieval": scalar_metrics(retrieval),
        **slides,
    }
