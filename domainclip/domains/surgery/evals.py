"""Surgery evaluation suites: zero-shot phase and tool recognition, and clip <-> narration retrieval.

``surgery/cholec80_phase``
    Zero-shot phase recognition on Cholec80 (``--data``: the dataset folder) with the CAMMA
    protocol of SurgVLP / HecVL: frames at 1 fps of the test videos 49-80 (:data:`CHOLEC80_EVAL_SPLIT`),
    each frame embedded by the model's image tower (a VideoCLIP's frame encoder) and assigned the
    phase whose prompt ensemble it is most similar to. Accuracy and macro-F1 are computed per video
    and reported as mean and standard deviation over videos, with frame-level metrics beside them.
``surgery/autolaparo_phase``
    The same on AutoLaparo Task 1 (hysterectomy), test videos 15-21.
``surgery/cholec80_tool``
    Zero-shot tool presence on Cholec80: a tool's score for a frame is the frame's similarity to the
    tool's prompts; multi-label mAP over the 7 tools (and AP per tool).
``surgery/retrieval``
    Clip <-> narration retrieval (R@1/5/10 both ways) on held-out shards written by
    ``domainclip prepare surgery clips`` (``--data``: a shard folder, glob or brace pattern). Clips are
    decoded with :class:`~domainclip.domains.surgery.decoder.VideoClipDecoder` and embedded by the
    model's video tower; an image CLIP embeds a clip as a mean-pooling
    :class:`~domainclip.core.models.video.VideoCLIP` with its weights does (the training definition).

The phase suites write a confusion matrix (``<task>_confusion_matrix.png``), a per-phase table
(``<task>_per_phase.md``) and per-video / per-phase numbers (``<task>_details.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from sklearn.metrics import average_precision_score, f1_score, jaccard_score, precision_recall_fscore_support
from torch import Tensor
from torch.utils.data import DataLoader

from domainclip.core.data import keys
from domainclip.core.data.corrupt import BAD_TEXT, CorruptSampleError
from domainclip.core.eval.features import Tokenizer, collate_samples
from domainclip.core.eval.heldout import HeldOutShards
from domainclip.core.eval.prompts import TEMPLATE_SETS
from domainclip.core.eval.report import atomic_write_text, format_markdown_table, scalar_metrics, to_jsonable
from domainclip.core.eval.retrieval import evaluate_retrieval
from domainclip.core.eval.suites import require_data
from domainclip.core.eval.zero_shot import classification_report, multilabel_metrics, zero_shot_dataset
from domainclip.core.options import NonNegativeInt, PositiveInt
from domainclip.domains.surgery import labels

__all__ = [
    "AUTOLAPARO_EVAL_SPLIT",
    "CHOLEC80_EVAL_SPLIT",
    "EVAL_FPS",
    "PromptStyle",
    "autolaparo_phase_suite",
    "cholec80_phase_suite",
    "cholec80_tool_suite",
    "phase_recognition_metrics",
    "retrieval_suite",
]

#: Cholec80 videos of the zero-shot phase and tool suites (the CAMMA / SurgVLP test set, 49-80).
CHOLEC80_EVAL_SPLIT: str | Sequence[int] = "camma_test"
#: AutoLaparo videos of the phase suite (the paper's test set, 15-21).
AUTOLAPARO_EVAL_SPLIT: str | Sequence[int] = "test"
#: Frame sampling rate of the Cholec80 suites (the CAMMA protocol).
EVAL_FPS = 1.0
#: Prompt sets of the zero-shot suites (:data:`~domainclip.domains.surgery.labels.PROMPT_STYLES`).
PromptStyle = Annotated[Literal[labels.PROMPT_STYLES], TEMPLATE_SETS]  # the template sets compare runs


# --------------------------------------------------------------------------- building blocks
def phase_recognition_metrics(
    predictions: Sequence[int] | np.ndarray,
    targets: Sequence[int] | np.ndarray,
    videos: Sequence[Any] | np.ndarray,
    classnames: Sequence[str],
) -> dict[str, Any]:
    """Video-wise phase recognition metrics (the Cholec80 / CAMMA evaluation).

    Accuracy and macro-F1 (sklearn, over the phases present in a video's ground truth or
    predictions) are computed per video, then averaged over videos; the standard deviation is the
    population one (``ddof=0``). Per phase, precision / recall / F1 / Jaccard are computed per video
    and averaged over the videos whose ground truth contains that phase.

    Args:
        predictions: ``(N,)`` predicted class per frame.
        targets: ``(N,)`` true class per frame.
        videos: ``(N,)`` the video each frame belongs to (any hashable id).
        classnames: the ``C`` class names.

    Returns:
        Scalars ``accuracy_mean``, ``accuracy_std``, ``f1_mean``, ``f1_std``, ``num_videos``; non-scalar
        ``per_video`` (``{video: {"accuracy", "f1", "num_frames"}}``) and ``per_phase``
        (``{phase: {"precision", "recall", "f1", "jaccard", "support", "num_videos"}}``; NaN where no
        video contains the phase).

    """
    pred = np.asarray(predictions, dtype=np.int64)
    true = np.asarray(targets, dtype=np.int64)
    video = np.asarray(videos)
    if not (pred.shape == true.shape == video.shape) or pred.ndim != 1 or pred.size == 0:
        raise ValueError(
            "predictions, targets and videos must be equal-length 1-D sequences with at least one frame; got "
            f"shapes {pred.shape}, {true.shape}, {video.shape}"
        )
    num_classes = len(classnames)
    class_ids = np.arange(num_classes)
    per_video: dict[str, dict[str, float]] = {}
    per_phase_values: list[np.ndarray] = []  # one (4, C) array per video, NaN where the phase is absent
    for vid in dict.fromkeys(video.tolist()):  # first-seen order
        mask = video == vid
        y, p = true[mask], pred[mask]
        per_video[str(vid)] = {
            "accuracy": float(np.mean(y == p)),
            "f1": float(f1_score(y, p, average="macro", zero_division=0)),
            "num_frames": int(mask.sum()),
        }
        precision, recall, f1, _ = precision_recall_fscore_support(
            y, p, labels=class_ids, average=None, zero_division=0
        )
        jaccard = jaccard_score(y, p, labels=class_ids, average=None, zero_division=0)
        values = np.stack([precision, recall, f1, jaccard]).astype(np.float64)
        values[:, ~np.isin(class_ids, y)] = np.nan
        per_phase_values.append(values)
    stacked = np.stack(per_phase_values)  # (V, 4, C)
    per_phase = {}
    for c, name in enumerate(classnames):
        present = ~np.isnan(stacked[:, 0, c])
        means = stacked[present, :, c].mean(0) if present.any() else np.full(4, np.nan)
        per_phase[name] = {
            "precision": float(means[0]),
            "recall": float(means[1]),
            "f1": float(means[2]),
            "jaccard": float(means[3]),
            "support": int(np.sum(true == c)),
            "num_videos": int(present.sum()),
        }
    accuracy = np.array([v["accuracy"] for v in per_video.values()])
    f1s = np.array([v["f1"] for v in per_video.values()])
    return {
        "accuracy_mean": float(accuracy.mean()),
        "accuracy_std": float(accuracy.std()),
        "f1_mean": float(f1s.mean()),
        "f1_std": float(f1s.std()),
        "num_videos": len(per_video),
        "per_video": per_video,
        "per_phase": per_phase,
    }


def _phase_suite(
    task: str,
    title: str,
    dataset: Any,
    prompts: Mapping[str, Sequence[str]],
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    *,
    out_dir: Path,
    device: str,
    batch_size: int,
    num_workers: int,
) -> dict[str, dict[str, float]]:
    classes = list(prompts)
    try:
        logits, targets = zero_shot_dataset(
            model, tokenizer, dataset, prompts, device=device, batch_size=batch_size, num_workers=num_workers
        )
    finally:
        dataset.close()
    out_dir = Path(out_dir)
    frame_level = classification_report(logits, targets, classes, out_dir / f"{task}_confusion_matrix.png",
                                        title=f"{title}: zero-shot phase recognition (1 fps frames)")
    videos = np.asarray(dataset.video_ids)[dataset.sample_video]
    video_level = phase_recognition_metrics(logits.argmax(1).numpy(), targets.numpy(), videos, classes)
    table = format_markdown_table(video_level["per_phase"]).replace("| task |", "| phase |", 1)
    atomic_write_text(out_dir / f"{task}_per_phase.md", table)
    details = {k: video_level[k] for k in ("per_video", "per_phase")}
    details["confusion_matrix"] = frame_level["confusion_matrix"]
    details["classes"] = classes
    atomic_write_text(out_dir / f"{task}_details.json", json.dumps(to_jsonable(details), indent=2) + "\n")
    metrics = {**scalar_metrics(video_level), **scalar_metrics(frame_level)}
    return {f"{task}/zeroshot_classification": metrics}


def cholec80_phase_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str = "cpu",
    batch_size: int = 64,
    split: str | Sequence[int] | None = None,
    prompt_style: PromptStyle = "ensemble",
    num_workers: NonNegativeInt = 0,
) -> dict[str, dict[str, float]]:
    """Zero-shot Cholec80 phase recognition, CAMMA protocol (1 fps, per-video accuracy and macro-F1).

    Args:
        model: CLIP-like model; frames go through ``encode_image`` (a VideoCLIP's frame encoder).
        tokenizer: ``tokenizer(list[str]) -> LongTensor``.
        preprocess: the model's image transform.
        data: the Cholec80 folder (``videos/``, ``phase_annotations/``).
        out_dir: where the confusion matrix, per-phase table and details go.
        device: where the model runs.
        batch_size: frames per forward.
        split: Cholec80 split (default :data:`CHOLEC80_EVAL_SPLIT`).
        prompt_style: see :func:`~domainclip.domains.surgery.labels.cholec80_phase_prompts`.
        num_workers: DataLoader workers decoding frames.

    Returns:
        ``{"cholec80_phase/zeroshot_classification": {accuracy_mean, accuracy_std, f1_mean, f1_std,
        num_videos, acc1, acc5, mean_per_class_recall, balanced_accuracy, weighted_f1, num_samples}}``.

    """
    from domainclip.domains.surgery.datasets.cholec80 import Cholec80

    root = require_data(data, "surgery/cholec80_phase", "the Cholec80 folder (videos/, phase_annotations/)")
    dataset = Cholec80(root, split=CHOLEC80_EVAL_SPLIT if split is None else split, fps=EVAL_FPS, transform=preprocess)
    return _phase_suite(
        "cholec80_phase", "Cholec80", dataset, labels.cholec80_phase_prompts(prompt_style), model, tokenizer,
        out_dir=out_dir, device=device, batch_size=batch_size, num_workers=num_workers,
    )


def autolaparo_phase_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str = "cpu",
    batch_size: int = 64,
    split: str | Sequence[int] | None = None,
    prompt_style: PromptStyle = "ensemble",
    num_workers: NonNegativeInt = 0,
) -> dict[str, dict[str, float]]:
    """Zero-shot AutoLaparo phase recognition (1 fps labels, per-video accuracy and macro-F1).

    Args:
        model: CLIP-like model; frames go through ``encode_image``.
        tokenizer: ``tokenizer(list[str]) -> LongTensor``.
        preprocess: the model's image transform.
        data: the AutoLaparo Task 1 folder (``videos/``, ``labels/``).
        out_dir: where the confusion matrix, per-phase table and details go.
        device: where the model runs.
        batch_size: frames per forward.
        split: AutoLaparo split (default :data:`AUTOLAPARO_EVAL_SPLIT`).
        prompt_style: see :func:`~domainclip.domains.surgery.labels.autolaparo_phase_prompts`.
        num_workers: DataLoader workers decoding frames.

    Returns:
        ``{"autolaparo_phase/zeroshot_classification": {...}}`` with the metrics of
        :func:`cholec80_phase_suite`.

    """
    from domainclip.domains.surgery.datasets.autolaparo import AutoLaparo

    root = require_data(data, "surgery/autolaparo_phase", "the AutoLaparo Task 1 folder (videos/, labels/)")
    dataset = AutoLaparo(root, split=AUTOLAPARO_EVAL_SPLIT if split is None else split, transform=preprocess)
    return _phase_suite(
        "autolaparo_phase", "AutoLaparo", dataset, labels.autolaparo_phase_prompts(prompt_style), model, tokenizer,
        out_dir=out_dir, device=device, batch_size=batch_size, num_workers=num_workers,
    )


def _collate_tools(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return collate_samples([{keys.IMAGE: s[keys.IMAGE], keys.LABEL: s["tools"]} for s in samples])


def cholec80_tool_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str = "cpu",
    batch_size: int = 64,
    split: str | Sequence[int] | None = None,
    prompt_style: PromptStyle = "ensemble",
    num_workers: NonNegativeInt = 0,
) -> dict[str, dict[str, float]]:
    """Zero-shot Cholec80 tool presence: multi-label mAP of frame-prompt similarities (1 fps frames).

    Args:
        model: CLIP-like model; frames go through ``encode_image``.
        tokenizer: ``tokenizer(list[str]) -> LongTensor``.
        preprocess: the model's image transform.
        data: the Cholec80 folder (``videos/``, ``phase_annotations/``, ``tool_annotations/``).
        out_dir: where ``cholec80_tool_details.json`` (AP per tool) goes.
        device: where the model runs.
        batch_size: frames per forward.
        split: Cholec80 split (default :data:`CHOLEC80_EVAL_SPLIT`).
        prompt_style: see :func:`~domainclip.domains.surgery.labels.cholec80_tool_prompts`.
        num_workers: DataLoader workers decoding frames.

    Returns:
        ``{"cholec80_tool/zeroshot_multilabel": {mAP, num_classes_scored, num_samples},
        "cholec80_tool/per_tool_ap": {tool: AP}}`` (tools without a positive frame are left out).

    """
    from domainclip.domains.surgery.datasets.cholec80 import Cholec80

    root = require_data(
        data, "surgery/cholec80_tool", "the Cholec80 folder (videos/, phase_annotations/, tool_annotations/)"
    )
    dataset = Cholec80(
        root, split=CHOLEC80_EVAL_SPLIT if split is None else split, fps=EVAL_FPS, transform=preprocess, tools=True
    )
    prompts = labels.cholec80_tool_prompts(prompt_style)
    try:
        scores, targets = zero_shot_dataset(model, tokenizer, dataset, prompts, device=device, batch_size=batch_size,
                                            num_workers=num_workers, collate=_collate_tools)
    finally:
        dataset.close()
    summary = multilabel_metrics(scores, targets)
    summary["num_samples"] = int(scores.shape[0])
    y, s = targets.numpy().astype(np.int64), scores.numpy()
    per_tool = {
        tool: float(average_precision_score(y[:, i], s[:, i]))
        for i, tool in enumerate(prompts)
        if y[:, i].any()
    }
    atomic_write_text(
        Path(out_dir) / "cholec80_tool_details.json",
        json.dumps(to_jsonable({"per_tool_ap": per_tool, "positives": dict(zip(prompts, y.sum(0).tolist()))}),
                   indent=2) + "\n",
    )
    return {"cholec80_tool/zeroshot_multilabel": summary, "cholec80_tool/per_tool_ap": per_tool}


class _NarratedClip:
    """Decode a held-out clip and its one narration: ``{"video", "text"}`` (picklable for workers).

    Args:
        decode: the clip decoder.
    """

    def __init__(self, decode: Callable[[Mapping[str, Any]], dict[str, Any]]):
        self.decode = decode

    def __call__(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        sample = self.decode(raw)
        text = sample.get(keys.TEXT)
        if not isinstance(text, str):
            raise CorruptSampleError(BAD_TEXT, f"needs one .txt caption, got {type(text).__name__}")
        return {keys.VIDEO: sample[keys.VIDEO], keys.TEXT: text}


def retrieval_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str = "cpu",
    batch_size: int = 64,
    num_frames: PositiveInt | None = None,
    num_workers: NonNegativeInt = 0,
) -> dict[str, dict[str, float]]:
    """Clip <-> narration retrieval on held-out shards (R@1/5/10 both ways).

    Args:
        model: a VideoCLIP (its ``encode_video``) or an image CLIP (embedded as a mean-pooling
            VideoCLIP with its weights: the mean of its L2-normalised frame embeddings).
        tokenizer: ``tokenizer(list[str]) -> LongTensor``.
        preprocess: the model's image transform, applied to every frame.
        data: shards written by ``domainclip prepare surgery clips`` (folder, glob or brace pattern);
            each sample holds an ``.mp4`` or ``.frames.npy`` clip and a ``.txt`` narration.
        out_dir: unused (the suite writes no plots); kept for the suite protocol.
        device: where the model runs.
        batch_size: clips per forward.
        num_frames: frames sampled uniformly per clip (default: the model's ``num_frames``, else 8).
        num_workers: DataLoader workers decoding clips.

    Returns:
        ``{"surgery_clips/retrieval": {image_retrieval_recall@k (text -> clip), text_retrieval_recall@k
        (clip -> text) for k in 1, 5, 10, num_images, num_texts}}``.

    Raises:
        DatasetNotFoundError: ``data`` names no shard (a ``FileNotFoundError``).
        InputError: a held-out sample cannot be decoded or has no single caption (a ``ValueError``).

    """
    from domainclip.domains.surgery.decoder import VideoClipDecoder

    root = require_data(data, "surgery/retrieval", "held-out shards from 'domainclip prepare surgery clips'")
    frames = int(num_frames or getattr(model, "num_frames", 8))
    decoder = VideoClipDecoder(
        preprocess, None, num_frames=frames, sampling="uniform", train=False, text_choice="first"
    )
    clips = HeldOutShards(root, _NarratedClip(decoder), suite="surgery/retrieval",
                          expected="held-out shards (*.tar) written by 'domainclip prepare surgery clips'")
    loader = DataLoader(clips, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_samples)
    if not callable(getattr(model, "encode_video", None)):  # embed clips as the video tower's mean pooling does
        from domainclip.core.models.video import VideoCLIP

        model = VideoCLIP(model, embed_dim=0, num_frames=frames, pooling="mean")  # mean pooling needs no width
    result = evaluate_retrieval(model, tokenizer, loader, device, input_key=keys.VIDEO)
    return {"surgery_clips/retrieval": scalar_metrics(result)}
