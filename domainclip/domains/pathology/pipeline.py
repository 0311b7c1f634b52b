"""Synthetic slides end to end: slides -> annotated patch shards, and the suite that evaluates on them.

``domainclip prepare pathology synthetic`` generates pyramidal slides with tissue regions of five
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

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from domainclip.core.errors import DatasetNotFoundError
from domainclip.core.io import atomic_write_bytes
from domainclip.core.plugins import PrepareCommand

__all__ = ["HELDOUT_SEED", "SYNTHETIC_PATCHES", "prepare_synthetic_patches", "synthetic_suite"]

#: Seed of the held-out slides that ``pathology/synthetic`` generates when it is given no data.
HELDOUT_SEED = 7_000_003


def prepare_synthetic_patches(
    out: str | Path,
    n_slides: int,
    *,
    seed: int = 0,
    slide_size: int = 4096,
    mpp_target: float = 0.5,
    patch_size: int = 224,
    tumor_fraction: float = 0.5,
    min_purity: float = 0.8,
    workers: int = 1,
    max_count: int = 1000,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate synthetic slides and cut them into captioned patch shards.

    Args:
        out: output folder (shards and ``slides.csv``; slides in ``out/slides``).
        n_slides: slides to generate.
        seed: slide ``i`` depends only on ``(seed, i)``.
        slide_size: level-0 side of each slide in pixels (at 0.5 um/px).
        mpp_target: microns per pixel of the patches.
        patch_size: patch side in pixels.
        tumor_fraction: share of slides that contain tumour (the slide-level label).
        min_purity: a patch is kept when at least this share of it is one tissue class.
        workers: processes for generation and patching.
        max_count: most patches per shard.
        progress: show progress bars.

    Returns:
        Summary: the generator's and the patcher's summaries, patches per class, seconds.
    """
    from domainclip.domains.pathology.patching import PatchSpec, find_slides, patch_slides
    from domainclip.domains.pathology.synthetic import SyntheticAnnotator, generate_slides

    out_dir = Path(out)
    slides_dir = out_dir / "slides"
    began = time.perf_counter()
    generated = generate_slides(
        slides_dir,
        n_slides,
        seed=seed,
        size=(slide_size, slide_size),
        workers=workers,
        tumor_fraction=tumor_fraction,
        progress=progress,
    )
    # synthetic fat and mucus are pale, as on real slides: the annotator's class purity decides, not Otsu
    spec = PatchSpec(mpp=mpp_target, size=patch_size, min_tissue=0.0)
    patched = patch_slides(
        find_slides([slides_dir]),
        out_dir,
        spec,
        workers=workers,
        annotate=SyntheticAnnotator(slides_dir, min_purity=min_purity, seed=seed),
        max_count=max_count,
        progress=progress,
    )
    atomic_write_bytes(out_dir / "slides.csv", (slides_dir / "slides.csv").read_bytes())
    return {
        "out": str(out_dir),
        "slides": generated,
        "patches": patched,
        "seconds": round(time.perf_counter() - began, 2),
    }


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder (shards, slides/, slides.csv)")
    parser.add_argument("--n-slides", type=int, default=8, help="slides to generate (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="run seed")
    parser.add_argument("--slide-size", type=int, default=4096, help="level-0 side of each slide (default 4096)")
    parser.add_argument("--mpp-target", type=float, default=0.5, help="patch resolution in um/px (default 0.5)")
    parser.add_argument("--patch-size", type=int, default=224, help="patch side in pixels (default 224)")
    parser.add_argument("--tumor-fraction", type=float, default=0.5, help="share of slides with tumour")
    parser.add_argument("--min-purity", type=float, default=0.8, help="least share of one class in a kept patch")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--max-count", type=int, default=1000, help="most patches per shard")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _run(args: argparse.Namespace) -> dict[str, Any]:
    return prepare_synthetic_patches(
        args.out,
        args.n_slides,
        seed=args.seed,
        slide_size=args.slide_size,
        mpp_target=args.mpp_target,
        patch_size=args.patch_size,
        tumor_fraction=args.tumor_fraction,
        min_purity=args.min_purity,
        workers=args.workers,
        max_count=args.max_count,
        progress=not args.no_progress,
    )


#: ``domainclip prepare pathology synthetic``: synthetic slides -> captioned patch shards.
SYNTHETIC_PATCHES = PrepareCommand(
    name="synthetic",
    help="generate synthetic H&E-like slides and cut them into captioned patch shards (quick recipe data)",
    add_arguments=_add_arguments,
    run=_run,
)


def _patch_loader(data: Path, preprocess: Callable[[Any], torch.Tensor], batch_size: int) -> DataLoader:
    from domainclip.core.data.decode import SampleDecoder
    from domainclip.core.data.reader import Source, build_loader
    from domainclip.core.eval.features import collate_samples

    decoder = SampleDecoder(image_transform=preprocess, required=("image", "text", "label"), text_choice="first")
    return build_loader(
        # absolute paths: a file name found on disk must never read as a URL (``pipe:...``)
        [Source(sorted(str(p.resolve()) for p in data.glob("*.tar")))],
        decoder,
        batch_size=batch_size,
        num_workers=0,
        shuffle_buffer=0,
        max_corrupt_fraction=0.0,
        collate=collate_samples,
        drop_last=False,
        epochs=1,
    )


def synthetic_suite(
    model: torch.nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    preprocess: Callable[[Any], torch.Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str = "cpu",
    batch_size: int = 64,
    top_k: int = 5,
) -> dict[str, dict[str, float]]:
    """Evaluate on held-out synthetic slides: patch zero-shot, patch-caption retrieval, slide-level zero-shot.

    Args:
        model: CLIP-like model.
        tokenizer: its tokenizer.
        preprocess: image transform.
        data: a folder written by ``domainclip prepare pathology synthetic`` (with another seed than
            training); ``None`` generates 4 held-out slides into ``out_dir/heldout``.
        out_dir: where the confusion matrices and predictions go.
        device: where the model runs.
        batch_size: patches per forward.
        top_k: patches pooled per class for the slide-level score.

    Returns:
        ``tissue/zeroshot_classification``, ``tissue/retrieval`` and ``slides`` metrics.
    """
    from domainclip.core.eval.features import encode_inputs, encode_texts, iter_batches
    from domainclip.core.eval.report import plot_confusion_matrix, scalar_metrics
    from domainclip.core.eval.retrieval import retrieval_report
    from domainclip.core.eval.zero_shot import build_zero_shot_classifier, classification_metrics
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
    data = Path(data)
    if not any(data.glob("*.tar")):
        raise DatasetNotFoundError(
            f"pathology/synthetic: dataset not found at {data}: no patch shards (*.tar); expected a folder "
            "written by 'domainclip prepare pathology synthetic'"
        )
    # one pass over the patches serves both the zero-shot classifier and retrieval
    features, targets, captions = [], [], []
    with torch.no_grad():
        for batch in iter_batches(_patch_loader(data, preprocess, batch_size), ("image", "label", "text")):
            features.append(encode_inputs(model, batch["image"].to(device)).cpu())
            targets.append(torch.as_tensor(batch["label"]))
            captions.extend(batch["text"])
    images = torch.cat(features)
    names = [CLASS_NAMES[c] for c in TISSUE_CLASSES]
    classifier = build_zero_shot_classifier(model, tokenizer, names, list(ZERO_SHOT_TEMPLATES), device, batch_size)
    tissue = classification_metrics(images @ classifier.cpu(), torch.cat(targets))
    plot_confusion_matrix(
        tissue["confusion_matrix"], list(TISSUE_CLASSES), out_dir / "tissue_confusion_matrix.png",
        title="synthetic tissue (zero-shot)",
    )
    texts = encode_texts(model, tokenizer, captions, device, batch_size)
    retrieval = retrieval_report(images, texts, torch.arange(len(captions)), captions)
    slides = slide_suite(
        model,
        tokenizer,
        preprocess,
        data=data,
        out_dir=out_dir,
        device=device,
        batch_size=batch_size,
        classes={label: list(prompts) for label, prompts in SLIDE_PROMPTS.items()},
        templates=("{}",),
        top_k=top_k,
    )
    return {
        "tissue/zeroshot_classification": scalar_metrics(tissue),
        "tissue/retrieval": scalar_metrics(retrieval),
        **slides,
    }
