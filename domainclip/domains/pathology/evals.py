"""Pathology evaluation suites: patch-level zero-shot (NCT-CRC, PatchCamelyon) and slide-level MI-Zero.

``pathology/nct_crc`` (:func:`patch_folder_suite`)
    Zero-shot tissue classification of a class-per-folder patch set (CRC-VAL-HE-7K or
    NCT-CRC-HE-100K; ``--data`` is the folder holding ``ADI/ BACK/ ... TUM/``) with CONCH-style
    prompt ensembles (class synonyms x templates). Other callers (synthetic tissue classes, other
    folder datasets) pass ``classes``/``templates``/``task``.
``pathology/pcam`` (:func:`pcam_suite`)
    Zero-shot metastasis detection on PatchCamelyon's official HDF5 files (``--data`` is the folder
    holding ``camelyonpatch_level_2_split_test_{x,y}.h5``).
``pathology/slides`` (:func:`slide_suite`)
    MI-Zero-style slide-level zero-shot: patches of each slide (from patch shards) are scored against
    every class; a slide's class score is the mean of its top-k patch scores; the slide is predicted
    as the best class. ``--data`` holds the shards and ``slides.csv`` (``slide_id,label``).

Patch suites report CLIP_benchmark metrics (``acc1``, ``balanced_accuracy``, ``weighted_f1``,
``mean_per_class_recall``; PCam and slides add ``auroc``) and write a confusion matrix PNG.
AUROC uses class probabilities ``softmax(logit_scale * cosine)``, as CONCH's evaluation does; for
more than two classes it is sklearn's macro one-vs-rest AUROC.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor
from torch.utils.data import DataLoader

from domainclip.core.errors import DatasetNotFoundError, InputError
from domainclip.core.eval.features import Tokenizer, encode_inputs
from domainclip.core.eval.prompts import TEMPLATE_SETS
from domainclip.core.eval.report import scalar_metrics
from domainclip.core.eval.suites import require_data
from domainclip.core.eval.zero_shot import build_prompt_classifier, classification_report, zero_shot_dataset
from domainclip.core.io import atomic_write_text
from domainclip.core.options import NonNegativeInt, PositiveInt
from domainclip.domains.pathology import labels
from domainclip.domains.pathology.datasets.pcam import PCAM_SPLITS

__all__ = [
    "DEFAULT_TOP_K",
    "SLIDE_CLASSES_FILE",
    "SLIDE_LABELS_FILE",
    "auroc",
    "class_probabilities",
    "patch_folder_suite",
    "pcam_suite",
    "slide_suite",
]

#: Patches pooled per class for a slide's score (MI-Zero's top-k; all patches when a slide has fewer).
DEFAULT_TOP_K = 5
#: Name of the slide label file inside a slide benchmark folder.
SLIDE_LABELS_FILE = "slides.csv"
#: Optional class list inside a slide benchmark folder (used when ``classes`` is not given).
SLIDE_CLASSES_FILE = "classes.json"
#: Fewest prompts per text-tower forward (prompts are short; a small image batch need not slow the text side).
TEXT_BATCH_SIZE = 128
#: Temperature used when the model has no ``logit_scale`` (CLIP's learned value saturates at 100).
DEFAULT_LOGIT_SCALE = 100.0

ClassSpec = Sequence[str] | Mapping[str, str | Sequence[str]]
#: A PatchCamelyon split name (:data:`~domainclip.domains.pathology.datasets.pcam.PCAM_SPLITS`).
PcamSplit = Literal[PCAM_SPLITS]  # Literal of the tuple's values


# ---------------------------------------------------------------------------------------------- helpers
def _logit_scale(model: torch.nn.Module) -> float:
    scale = getattr(model, "logit_scale", None)
    if isinstance(scale, torch.Tensor) and scale.numel() == 1:
        return float(min(scale.detach().float().exp().item(), DEFAULT_LOGIT_SCALE))
    return DEFAULT_LOGIT_SCALE


def class_probabilities(scores: Tensor, logit_scale: float) -> np.ndarray:
    """``softmax(logit_scale * scores)`` per row, as float64 rows that sum to 1."""
    probs = torch.softmax(scores.double() * logit_scale, dim=1).numpy()
    return probs / probs.sum(axis=1, keepdims=True)


def auroc(probs: np.ndarray, targets: Sequence[int] | np.ndarray) -> float | None:
    """AUROC of class probabilities: binary, or macro one-vs-rest for more than two classes.

    With more than two classes and some class absent from ``targets``, the mean of the binary
    one-vs-rest AUROCs of the classes present is returned (what sklearn's macro average is when
    all are present).

    Args:
        probs: ``(N, C)`` class probabilities (rows sum to 1).
        targets: ``(N,)`` class indices.

    Returns:
        The AUROC, or ``None`` when fewer than two classes occur in ``targets`` (it is undefined).

    """
    y = np.asarray(targets, dtype=np.int64)
    present = np.unique(y)
    if present.size < 2:
        return None
    num_classes = probs.shape[1]
    if num_classes == 2:
        return float(roc_auc_score(y, probs[:, 1]))
    if present.size == num_classes:
        return float(roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=np.arange(num_classes)))
    return float(np.mean([roc_auc_score(y == c, probs[:, c]) for c in present]))


#: The template set a patch suite uses (``prompts``): see :data:`~labels.PATCH_TEMPLATE_SETS`.
PatchPrompts = Annotated[Literal["ensemble", "single", "pathgen", "plip"], TEMPLATE_SETS]


def _class_prompts(
    classes: Sequence[str],
    names: Mapping[str, str | Sequence[str]] | None,
    templates: Sequence[str] | None,
    default_templates: Sequence[str],
    known: Mapping[str, str | Sequence[str]],
    fallback: Callable[[str], str],
    prompts: str = "ensemble",
) -> dict[str, list[str]]:
    """Prompt ensembles: the given names, else the ``known`` synonyms of a class, else ``fallback(class)``.

    With explicit ``templates`` every name goes through them; otherwise the ``prompts`` set decides:
    ``ensemble`` puts every name through ``default_templates``, the others put the first name through
    that set's templates (:data:`~labels.PATCH_TEMPLATE_SETS`).
    """
    table: dict[str, str | Sequence[str]] = {}
    for cls in classes:
        if names is not None and cls in names:
            table[cls] = names[cls]
        elif cls in known:
            table[cls] = known[cls]
        else:
            table[cls] = fallback(cls)
    if templates is not None:
        return labels.expand_prompts(table, templates)
    if prompts == "ensemble":
        return labels.expand_prompts(table, default_templates)
    first = {cls: value if isinstance(value, str) else list(value)[0] for cls, value in table.items()}
    return labels.expand_prompts(first, labels.PATCH_TEMPLATE_SETS[prompts])


def _split_class_spec(classes: ClassSpec | None) -> tuple[list[str] | None, dict[str, str | Sequence[str]] | None]:
    if classes is None:
        return None, None
    if isinstance(classes, str):
        raise TypeError("classes must be a list of class names or a mapping class -> name(s), not a string")
    order = list(classes)
    if len(set(order)) != len(order):
        raise ValueError(f"classes name a class twice: {order}")
    return order, (dict(classes) if isinstance(classes, Mapping) else None)


# ---------------------------------------------------------------------------------------------- patch suites
def patch_folder_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str = "cpu",
    batch_size: int = 64,
    classes: ClassSpec | None = None,
    templates: Sequence[str] | None = None,
    prompts: PatchPrompts = "ensemble",
    task: str | None = None,
    num_workers: NonNegativeInt = 0,
) -> dict[str, dict[str, float]]:
    """Zero-shot classification of a class-per-folder patch set (NCT-CRC-HE-100K, CRC-VAL-HE-7K, ...).

    Args:
        model: CLIP-like model.
        tokenizer: its tokenizer.
        preprocess: image transform (PIL -> tensor).
        data: the folder holding one sub-folder per class (see
            :class:`~domainclip.domains.pathology.datasets.folder.PatchFolder`).
        out_dir: where ``<task>_confusion_matrix.png`` is written.
        device: where the model runs.
        batch_size: images per forward (prompts go at least :data:`TEXT_BATCH_SIZE` at a time).
        classes: the class folders in label order, or a mapping folder -> name or synonyms used in the
            prompts (default: every folder; NCT-CRC codes get :data:`~labels.NCT_CRC_SYNONYMS`, other
            folders their :func:`~labels.display_name`).
        templates: prompt templates with one ``{}``; when given they replace the ``prompts`` set.
        prompts: the template set (:data:`~labels.PATCH_TEMPLATE_SETS`): ``ensemble`` (every class
            name and synonym through :data:`~labels.PATCH_TEMPLATES`), ``single`` (one name, one
            template), ``pathgen`` or ``plip`` (the templates those models' authors used).
        task: task name in the results (default ``"nct_crc"`` for NCT-CRC folders, else ``"patch_folder"``).
        num_workers: DataLoader workers decoding patches.

    Returns:
        ``{"<task>/zeroshot_classification": {acc1, acc5 (>= 5 classes), mean_per_class_recall,
        balanced_accuracy, weighted_f1, num_samples}}``.

    """
    from domainclip.domains.pathology.datasets.folder import PatchFolder

    root = require_data(data, "pathology/nct_crc", "the folder holding ADI/ BACK/ ... TUM/ (one folder per class)")
    folders, names = _split_class_spec(classes)
    dataset = PatchFolder(root, classes=folders, transform=preprocess)
    if task is None:
        task = "nct_crc" if set(dataset.classes) <= set(labels.NCT_CRC_CLASSES) else "patch_folder"
    class_prompts = _class_prompts(
        dataset.classes, names, templates, labels.PATCH_TEMPLATES, labels.NCT_CRC_SYNONYMS, labels.display_name,
        prompts,
    )
    logits, targets = zero_shot_dataset(model, tokenizer, dataset, class_prompts, device=device, batch_size=batch_size,
                                        text_batch_size=max(batch_size, TEXT_BATCH_SIZE), num_workers=num_workers)
    result = classification_report(logits, targets, dataset.classes, Path(out_dir) / f"{task}_confusion_matrix.png",
                                   title=f"{task}: zero-shot tissue classification")
    return {f"{task}/zeroshot_classification": scalar_metrics(result)}


def pcam_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str = "cpu",
    batch_size: int = 64,
    split: PcamSplit = "test",
    classes: Mapping[str, str | Sequence[str]] | None = None,
    templates: Sequence[str] | None = None,
    prompts: PatchPrompts = "ensemble",
    num_workers: NonNegativeInt = 0,
) -> dict[str, dict[str, float]]:
    """Zero-shot metastasis detection on PatchCamelyon (official HDF5 files).

    Args:
        model: CLIP-like model.
        tokenizer: its tokenizer.
        preprocess: image transform (PIL -> tensor).
        data: the folder holding ``camelyonpatch_level_2_split_<split>_{x,y}.h5``.
        out_dir: where ``pcam_confusion_matrix.png`` is written.
        device: where the model runs.
        batch_size: images per forward (prompts go at least :data:`TEXT_BATCH_SIZE` at a time).
        split: ``"test"`` (default), ``"valid"`` or ``"train"``.
        classes: ``{"normal": name(s), "metastasis": name(s)}`` replacing :data:`~labels.PCAM_SYNONYMS`.
        templates: prompt templates with one ``{}``; when given they replace the ``prompts`` set.
        prompts: the template set, as for :func:`patch_folder_suite` (PathGen-CLIP's PatchCamelyon accuracy
            moves by ten points with the prompt, so compare with ``--prompt-sensitivity``).
        num_workers: DataLoader workers (each opens its own HDF5 handles).

    Returns:
        ``{"pcam/zeroshot_classification": {acc1, mean_per_class_recall, balanced_accuracy,
        weighted_f1, num_samples, auroc (when both classes occur)}}``.

    """
    from domainclip.domains.pathology.datasets.pcam import PatchCamelyon

    root = require_data(data, "pathology/pcam", "the folder holding camelyonpatch_level_2_split_test_{x,y}.h5")
    if classes is not None and set(classes) != set(labels.PCAM_CLASSES):
        raise ValueError(f"pcam_suite classes must name {list(labels.PCAM_CLASSES)}, got {list(classes)}")
    dataset = PatchCamelyon(root, split=split, transform=preprocess)
    class_prompts = _class_prompts(
        labels.PCAM_CLASSES, classes, templates, labels.PATCH_TEMPLATES, labels.PCAM_SYNONYMS, labels.humanise,
        prompts,
    )
    logits, targets = zero_shot_dataset(model, tokenizer, dataset, class_prompts, device=device, batch_size=batch_size,
                                        text_batch_size=max(batch_size, TEXT_BATCH_SIZE), num_workers=num_workers)
    result = classification_report(
        logits, targets, [labels.PCAM_NAMES[c] for c in labels.PCAM_CLASSES],
        Path(out_dir) / "pcam_confusion_matrix.png", title="PatchCamelyon: zero-shot metastasis detection",
    )
    auc = auroc(class_probabilities(logits, _logit_scale(model)), targets.numpy())
    if auc is not None:
        result["auroc"] = auc
    return {"pcam/zeroshot_classification": scalar_metrics(result)}


# ---------------------------------------------------------------------------------------------- slide suite
class _TopK:
    """Running per-class top-k of one slide's patch scores (all patches when ``k`` is ``None``)."""

    def __init__(self, k: int | None):
        self.k = k
        self.values: Tensor | None = None  # (<= k, C), or the running sum (1, C) when k is None
        self.count = 0

    def add(self, scores: Tensor) -> None:
        self.count += scores.shape[0]
        if self.k is None:
            total = scores.sum(dim=0, keepdim=True)
            self.values = total if self.values is None else self.values + total
            return
        stacked = scores if self.values is None else torch.cat([self.values, scores])
        self.values = stacked.topk(min(self.k, stacked.shape[0]), dim=0).values

    def score(self) -> Tensor:
        assert self.values is not None
        return self.values[0] / self.count if self.k is None else self.values.mean(dim=0)


def _slide_classes(
    root: Path, slide_labels: Mapping[str, str], classes: ClassSpec | None, labels_file: Path
) -> tuple[list[str], dict[str, str | Sequence[str]] | None]:
    if classes is None and (root / SLIDE_CLASSES_FILE).is_file():
        path = root / SLIDE_CLASSES_FILE
        try:
            classes = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(classes, list | dict) or not classes:
            raise InputError(f"{path} must hold a list of labels or a mapping label -> name(s)")
    order, names = _split_class_spec(classes)
    if order is None:
        order = sorted(set(slide_labels.values()))
    unknown = sorted(set(slide_labels.values()) - set(order))
    if unknown:
        raise InputError(f"{labels_file} has labels {unknown} that are not among the classes {order}")
    if len(order) < 2:
        raise InputError(f"slide-level zero-shot needs at least two classes; {labels_file} gives {order}")
    return order, names


def _write_predictions(
    path: Path, rows: list[tuple[str, str, str, int]], scores: Tensor, probs: np.ndarray, classes: Sequence[str]
) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["slide_id", "label", "prediction", "correct", "num_patches",
         *(f"score_{c}" for c in classes), *(f"prob_{c}" for c in classes)]
    )
    for (slide, label, prediction, count), score, prob in zip(rows, scores.tolist(), probs.tolist()):
        writer.writerow(
            [slide, label, prediction, int(label == prediction), count,
             *(f"{s:.6g}" for s in score), *(f"{p:.6g}" for p in prob)]
        )
    atomic_write_text(path, buf.getvalue())


def slide_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str = "cpu",
    batch_size: int = 64,
    classes: ClassSpec | None = None,
    templates: Sequence[str] | None = None,
    top_k: PositiveInt | None = DEFAULT_TOP_K,
    labels_file: str = SLIDE_LABELS_FILE,
    task: str = "slides",
    num_workers: NonNegativeInt = 0,
) -> dict[str, dict[str, float]]:
    """MI-Zero-style slide-level zero-shot classification from patch shards.

    Every patch of a labelled slide is embedded and scored against each class (cosine similarity to
    the class's prompt-ensemble embedding). A slide's score for a class is the mean of its ``top_k``
    highest patch scores for that class (all of them when the slide has fewer patches); the slide is
    predicted as the class with the highest score. Patches are streamed: only the running top-k
    scores of each slide are kept, never the patches or their embeddings.

    Args:
        model: CLIP-like model.
        tokenizer: its tokenizer.
        preprocess: image transform (PIL -> tensor).
        data: the folder holding the patch shards (``*.tar``, meta with ``slide_id``) and ``slides.csv``.
        out_dir: where ``slide_predictions.csv`` and ``<task>_confusion_matrix.png`` are written.
        device: where the model runs.
        batch_size: patches per forward (prompts go at least :data:`TEXT_BATCH_SIZE` at a time).
        classes: label values in class order, or a mapping label -> name or synonyms for the prompts.
            Default: ``classes.json`` in ``data`` when present (a list or such a mapping), else the
            sorted label values of the CSV (for two classes the second is the positive class of AUROC).
        templates: prompt templates (default :data:`~labels.SLIDE_TEMPLATES`).
        top_k: patches pooled per class; ``None`` averages every patch of the slide.
        labels_file: name of the label CSV inside ``data``.
        task: task name in the results.
        num_workers: DataLoader workers decoding patches (shards are dealt out between them).

    Returns:
        ``{"<task>/zeroshot_classification": {acc1, balanced_accuracy, weighted_f1,
        mean_per_class_recall, auroc (when two classes occur), num_slides, num_patches,
        num_slides_without_patches}}``.

    Raises:
        DatasetNotFoundError: ``data`` is not a folder or has no label file (a ``FileNotFoundError``).
        InputError: a CSV label is not a class, a patch has no slide id or cannot be decoded, a
            shard is damaged, or no labelled slide has patches (a ``ValueError``).

    """
    from domainclip.domains.pathology.datasets.slide_labels import (
        UNLABELLED_SLIDE,
        PatchShardStream,
        collate_patch_batch,
        read_slide_labels,
    )

    expected = f"expected the patch shards (*.tar) and {labels_file} (slide_id,label)"
    root = require_data(data, "pathology/slides", f"the folder holding the patch shards and {labels_file}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None (all patches), got {top_k}")
    labels_path = root / labels_file
    if not root.is_dir():
        raise DatasetNotFoundError(f"pathology/slides: dataset not found at {root}: not a folder; {expected}")
    if not labels_path.is_file():
        raise DatasetNotFoundError(f"pathology/slides: dataset not found at {root}: no {labels_file}; {expected}")
    slide_labels = read_slide_labels(labels_path)
    order, names = _slide_classes(root, slide_labels, classes, labels_path)
    prompts = _class_prompts(order, names, templates, labels.SLIDE_TEMPLATES, {}, labels.humanise)
    classifier = build_prompt_classifier(
        model, tokenizer, prompts, device, max(batch_size, TEXT_BATCH_SIZE)
    ).to(device)

    try:
        stream = PatchShardStream(root, preprocess, slide_ids=slide_labels.keys())
    except FileNotFoundError as e:
        raise DatasetNotFoundError(f"pathology/slides: dataset not found at {root}: {e}; {expected}") from None
    loader = DataLoader(stream, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_patch_batch)
    pooled: dict[str, _TopK] = {}
    unlabelled = 0
    with torch.no_grad():
        for batch in loader:
            for item in batch["skipped"]:
                if item["skip"] != UNLABELLED_SLIDE:
                    raise InputError(f"pathology/slides: {item['skip']} in {item['url']}: {item['detail']}")
                unlabelled += 1
            if batch["image"] is None:
                continue
            features = encode_inputs(model, batch["image"].to(device))
            scores = (features @ classifier).float().cpu()
            slides = batch["slide_id"]
            for slide in dict.fromkeys(slides):
                rows = [i for i, s in enumerate(slides) if s == slide]
                pooled.setdefault(slide, _TopK(top_k)).add(scores[rows])
    scored = [s for s in slide_labels if s in pooled]
    missing = [s for s in slide_labels if s not in pooled]
    if not scored:
        raise InputError(f"pathology/slides: no patch in the shards under {root} belongs to a slide of {labels_path}")
    if missing:
        warnings.warn(
            f"pathology/slides: {len(missing)} slide(s) of {labels_path} have no patches and are not scored "
            f"(first: {missing[:3]})",
            stacklevel=2,
        )
    slide_scores = torch.stack([pooled[s].score() for s in scored])
    targets = torch.tensor([order.index(slide_labels[s]) for s in scored])
    result = classification_report(
        slide_scores, targets, order, Path(out_dir) / f"{task}_confusion_matrix.png", return_predictions=True,
        title=f"{task}: slide-level zero-shot (top-{top_k if top_k is not None else 'all'} pooling)",
    )
    probs = class_probabilities(slide_scores, _logit_scale(model))
    auc = auroc(probs, targets.numpy())
    if auc is not None:
        result["auroc"] = auc
    result.pop("num_samples")
    result["num_slides"] = len(scored)
    result["num_patches"] = sum(pooled[s].count for s in scored)
    result["num_slides_without_patches"] = len(missing)
    result["num_patches_of_unlabelled_slides"] = unlabelled

    out_dir = Path(out_dir)
    rows = [
        (s, slide_labels[s], order[p], pooled[s].count) for s, p in zip(scored, result["predictions"])
    ]
    _write_predictions(out_dir / "slide_predictions.csv", rows, slide_scores, probs, order)
    return {f"{task}/zeroshot_classification": scalar_metrics(result)}
