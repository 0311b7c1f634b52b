"""Zero-shot classification: prompt-ensembled text classifiers and CLIP_benchmark metrics.

Metric names follow CLIP_benchmark (``acc1``, ``acc5``, ``mean_per_class_recall``) so numbers can be
compared with published tables; ``balanced_accuracy`` and ``weighted_f1`` are added for the domain
papers (pathology, remote sensing) that report those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score, balanced_accuracy_score, confusion_matrix, f1_score
from torch import Tensor
from torch.utils.data import DataLoader

from domainclip.core.data import keys
from domainclip.core.eval.features import Tokenizer, collate_samples, embed_loader, encode_texts
from domainclip.core.eval.report import plot_confusion_matrix

__all__ = [
    "build_prompt_classifier",
    "build_zero_shot_classifier",
    "classification_metrics",
    "classification_report",
    "multilabel_metrics",
    "zero_shot_classify",
    "zero_shot_dataset",
    "zero_shot_logits",
    "zero_shot_multilabel",
]

Template = str | Callable[[str], str]


def build_zero_shot_classifier(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    classnames: Sequence[str],
    templates: Sequence[Template],
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> Tensor:
    """Build zero-shot classifier weights by prompt ensembling (open_clip's method).

    Every class name is put through every template, the texts are embedded and L2-normalised, the
    embeddings of one class are averaged, and the mean is renormalised.

    Args:
        model: CLIP-like model with ``encode_text(tokens, normalize=True)``.
        tokenizer: ``tokenizer(list[str]) -> LongTensor``.
        classnames: one name per class, in label order.
        templates: ``str.format`` strings with one ``{}`` or callables ``name -> prompt``; not mixed.
        device: where the model runs.
        batch_size: roughly how many prompts go through the text tower at once.

    Returns:
        ``(D, C)`` float weights on ``device``; ``image_features @ weights`` gives class logits.

    """
    if not classnames:
        raise ValueError("build_zero_shot_classifier needs at least one class name")
    if not templates:
        raise ValueError("build_zero_shot_classifier needs at least one template")
    if isinstance(templates, str) or isinstance(classnames, str):
        raise TypeError("classnames and templates must be lists, not a single string")
    if len({isinstance(t, str) for t in templates}) > 1:
        raise TypeError("templates must be all format strings or all callables, not a mix")
    for t in templates:
        if isinstance(t, str) and "{}" not in t:
            raise ValueError(f"template {t!r} has no '{{}}' placeholder for the class name")
    # open_clip imports in seconds; metrics-only users of this package should not pay for it
    from open_clip.zero_shot_classifier import build_zero_shot_classifier as open_clip_zero_shot_classifier

    classes_per_batch = max(1, batch_size // len(templates))
    weights = open_clip_zero_shot_classifier(
        model, tokenizer, list(classnames), list(templates),
        num_classes_per_batch=classes_per_batch, device=device,
    )
    return weights.float()


def build_prompt_classifier(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    prompts: Mapping[str, Sequence[str]],
    device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> Tensor:
    """Zero-shot weights from a prompt ensemble per class, for classes without one shared template set.

    Domain prompts often differ per class (CONCH's synonyms x templates in pathology, SurgVLP's
    descriptive phase prompts in surgery). Each prompt is embedded and L2-normalised, a class's
    embeddings are averaged and the mean is renormalised, as :func:`build_zero_shot_classifier` does.

    Args:
        model: CLIP-like model with ``encode_text(tokens, normalize=True)``.
        tokenizer: ``tokenizer(list[str]) -> LongTensor``.
        prompts: ``{class: [prompt, ...]}`` in label order; classes may have different numbers of prompts.
        device: where the model runs.
        batch_size: prompts per text-tower forward.

    Returns:
        ``(D, C)`` float weights on the CPU; ``image_features @ weights`` gives cosine class scores.

    Raises:
        ValueError: no classes, or a class with no prompts (or a bare string instead of a list).

    """
    if not prompts:
        raise ValueError("build_prompt_classifier needs at least one class")
    flat: list[str] = []
    spans: list[tuple[int, int]] = []
    for cls, texts in prompts.items():
        if isinstance(texts, str) or not texts:
            raise ValueError(f"class {cls!r} needs a non-empty list of prompts, got {texts!r}")
        spans.append((len(flat), len(flat) + len(texts)))
        flat.extend(texts)
    embeddings = encode_texts(model, tokenizer, flat, device, batch_size=max(1, batch_size))
    weights = torch.stack([embeddings[a:b].mean(dim=0) for a, b in spans], dim=1)
    return torch.nn.functional.normalize(weights.float(), dim=0)


def classification_metrics(
    logits: Tensor, targets: Tensor, *, return_predictions: bool = False
) -> dict[str, Any]:
    """CLIP_benchmark-style metrics for single-label classification from logits.

    Args:
        logits: ``(N, C)`` scores.
        targets: ``(N,)`` class indices in ``[0, C)``.
        return_predictions: also return ``predictions`` and ``targets`` as lists.

    Returns:
        ``acc1``; ``acc5`` when ``C >= 5``; ``mean_per_class_recall`` (recall averaged over the classes
        present in ``targets``, as CLIP_benchmark); ``balanced_accuracy`` (sklearn's, which is the same
        quantity under the name most domain papers use); ``weighted_f1``; ``num_samples``; and the
        non-scalar ``confusion_matrix`` (``C x C`` list of lists, rows = true class).

    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    targets = torch.as_tensor(targets).long().cpu()
    logits = logits.float().cpu()
    if targets.shape != (logits.shape[0],):
        raise ValueError(f"targets must be ({logits.shape[0]},) class indices, got {tuple(targets.shape)}")
    n, num_classes = logits.shape
    if n == 0:
        raise ValueError("classification_metrics got no samples")
    if targets.min() < 0 or targets.max() >= num_classes:
        raise ValueError(
            f"targets must lie in [0, {num_classes}) for {num_classes} classes; got range "
            f"[{int(targets.min())}, {int(targets.max())}]"
        )
    topk = min(5, num_classes)
    top = logits.topk(topk, dim=1).indices
    hits = top == targets[:, None]
    pred = top[:, 0].numpy()
    y = targets.numpy()
    out: dict[str, Any] = {"acc1": hits[:, 0].float().mean().item()}
    if num_classes >= 5:
        out["acc5"] = hits.any(dim=1).float().mean().item()
    cm = confusion_matrix(y, pred, labels=np.arange(num_classes))
    present = cm.sum(axis=1) > 0
    out["mean_per_class_recall"] = float(np.mean(np.diag(cm)[present] / cm.sum(axis=1)[present]))
    out["balanced_accuracy"] = float(balanced_accuracy_score(y, pred))
    out["weighted_f1"] = float(f1_score(y, pred, average="weighted", zero_division=0))
    out["num_samples"] = int(n)
    out["confusion_matrix"] = cm.tolist()
    if return_predictions:
        out["predictions"] = pred.tolist()
        out["targets"] = y.tolist()
    return out


def multilabel_metrics(scores: Tensor, targets: Tensor) -> dict[str, Any]:
    """Mean average precision over classes for multi-label targets.

    Args:
        scores: ``(N, C)`` scores (logits or probabilities; only their order matters).
        targets: ``(N, C)`` multi-hot 0/1 targets.

    Returns:
        ``mAP``: sklearn ``average_precision_score`` averaged over the classes that have at least one
        positive (AP is undefined without one), and ``num_classes_scored``: how many classes that was.

    """
    scores = scores.float().cpu()
    targets = torch.as_tensor(targets).cpu()
    if scores.ndim != 2 or targets.shape != scores.shape:
        raise ValueError(
            "multi-label scores and targets must both be (N, C); got "
            f"{tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    if not bool(((targets == 0) | (targets == 1)).all()):
        raise ValueError("multi-label targets must be 0/1 multi-hot")
    y = targets.numpy().astype(np.int64)
    scored = np.flatnonzero(y.sum(axis=0) > 0)
    if scored.size == 0:
        raise ValueError("multi-label targets have no positive in any class; mAP is undefined")
    ap = average_precision_score(y[:, scored], scores.numpy()[:, scored], average=None)
    return {"mAP": float(np.mean(ap)), "num_classes_scored": int(scored.size)}


def zero_shot_logits(
    model: torch.nn.Module,
    classifier: Tensor,
    dataloader: Iterable[Any],
    device: str | torch.device = "cpu",
    input_key: str = keys.IMAGE,
) -> tuple[Tensor, Tensor]:
    """Score every batch of a labelled loader against zero-shot classifier weights.

    Returns:
        ``(logits, labels)`` on the CPU: ``(N, C)`` cosine similarities and the stacked labels.

    """
    embedded = embed_loader(model, dataloader, device, input_key, keep=(keys.LABEL,))
    return embedded["features"] @ classifier.float().cpu(), torch.as_tensor(embedded[keys.LABEL])


def zero_shot_dataset(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    dataset: torch.utils.data.Dataset,
    prompts: Mapping[str, Sequence[str]],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    text_batch_size: int | None = None,
    num_workers: int = 0,
    collate: Callable[[list[Any]], Any] = collate_samples,
) -> tuple[Tensor, Tensor]:
    """Score a labelled image dataset against per-class prompt ensembles (a benchmark's zero-shot pass).

    Args:
        model: CLIP-like model.
        tokenizer: ``tokenizer(list[str]) -> LongTensor``.
        dataset: dict samples with ``image`` and ``label`` (class indices, or multi-hot rows).
        prompts: ``{class: [prompt, ...]}`` in label order (see :func:`build_prompt_classifier`).
        device: where the model runs.
        batch_size: samples per forward.
        text_batch_size: prompts per text-tower forward (default ``batch_size``).
        num_workers: DataLoader workers decoding samples.
        collate: list of samples -> batch dict.

    Returns:
        ``(scores, labels)`` on the CPU: ``(N, C)`` cosine similarities and the stacked labels.
    """
    classifier = build_prompt_classifier(model, tokenizer, prompts, device, text_batch_size or batch_size)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate)
    return zero_shot_logits(model, classifier, loader, device)


def classification_report(
    logits: Tensor, targets: Tensor, classnames: Sequence[str], plot_path: Path, *, title: str | None = None,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """The metrics of :func:`classification_metrics`, with the confusion matrix drawn to ``plot_path``.

    Args:
        logits: ``(N, C)`` scores.
        targets: ``(N,)`` class indices.
        classnames: the ``C`` class names (the plot's axes).
        plot_path: PNG to write (see :func:`~domainclip.core.eval.report.plot_confusion_matrix`).
        title: the plot's title.
        return_predictions: also return ``predictions`` and ``targets`` as lists.
    """
    result = classification_metrics(logits, targets, return_predictions=return_predictions)
    plot_confusion_matrix(result["confusion_matrix"], list(classnames), plot_path, title=title)
    return result


def zero_shot_classify(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    dataloader: Iterable[Any],
    classnames: Sequence[str],
    templates: Sequence[Template],
    device: str | torch.device = "cpu",
    input_key: str = keys.IMAGE,
    *,
    batch_size: int = 64,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Zero-shot single-label classification of a labelled loader.

    Args:
        model: CLIP-like model (see :func:`~domainclip.core.eval.features.encode_inputs`).
        tokenizer: ``tokenizer(list[str]) -> LongTensor``.
        dataloader: yields dicts with ``input_key`` (a batch tensor) and ``label`` (class indices).
        classnames: class names in label order.
        templates: prompt templates (see :func:`build_zero_shot_classifier`).
        device: where the model runs.
        input_key: ``"image"``, ``"video"`` or ``"views"``.
        batch_size: prompts per text-tower forward when building the classifier.
        return_predictions: also return per-sample ``predictions`` and ``targets``.

    Returns:
        The metrics of :func:`classification_metrics`.

    """
    classifier = build_zero_shot_classifier(model, tokenizer, classnames, templates, device, batch_size)
    logits, labels = zero_shot_logits(model, classifier, dataloader, device, input_key)
    return classification_metrics(logits, labels, return_predictions=return_predictions)


def zero_shot_multilabel(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    dataloader: Iterable[Any],
    classnames: Sequence[str],
    templates: Sequence[Template],
    device: str | torch.device = "cpu",
    input_key: str = keys.IMAGE,
    *,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Zero-shot multi-label classification: ``label`` in each batch is ``(B, C)`` multi-hot.

    Returns:
        The metrics of :func:`multilabel_metrics` (``mAP``, ``num_classes_scored``).

    """
    classifier = build_zero_shot_classifier(model, tokenizer, classnames, templates, device, batch_size)
    logits, labels = zero_shot_logits(model, classifier, dataloader, device, input_key)
    return multilabel_metrics(logits, labels)
