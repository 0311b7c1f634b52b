"""Biomedical evaluation suites: the many-task zero-shot registry and figure-caption retrieval.

``biomed/tasks`` (:func:`task_suite`)
    Zero-shot classification on the tasks of :mod:`~domainclip.domains.biomed.registry` (pathology,
    radiology, ophthalmology, dermatology, surgery, cell and general biology, figure types), one
    results table for all of them. ``--data`` is a root holding each task's sub-folder (the
    registry's ``folder``: ``ham10000/``, ``chest_xray/test/``, ``figure_types/``, ...; one line per
    task in :func:`expected_layout`), and ``paths`` maps a task to another folder or CSV.
    Each task's images are embedded once; every prompt template is then scored alone (its
    classifier averages the class's synonyms through that template) and all templates together
    (the ensemble), so a task reports the ensemble's CLIP_benchmark metrics (``acc1``, ``acc5``,
    ``mean_per_class_recall``, ``balanced_accuracy``, ``weighted_f1``) beside the mean, standard
    deviation (population), minimum and maximum over templates of ``acc1`` and
    ``balanced_accuracy``. A task another domain scores with its own protocol (Cholec80 phases)
    is run through that domain's suite. Rows ``family/<family>`` and ``overall`` average the
    tasks' metrics. A task whose data is absent is skipped with one warning line (and listed in
    ``tasks_skipped.json``); when no task named has data the suite stops with one line.
``biomed/retrieval`` (:func:`retrieval_suite`)
    Figure <-> caption retrieval on held-out figure shards (``domainclip prepare biomed figures``:
    ``jpg``/``png`` image, ``txt`` caption): R@1/5/10 both ways with the core's retrieval block and
    CLIP_benchmark's names, beside the chance level of each (``k / N`` for ``N`` figures with one
    caption each); a few caption queries and the figures they retrieve are drawn.

Undecodable images are skipped and counted (``num_skipped_images``), with a warning naming the first.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from domainclip.core.checks import SUITE_ENGINE_ARGS
from domainclip.core.data import keys
from domainclip.core.data.corrupt import BAD_IMAGE, BAD_JSON, BAD_TEXT, CorruptSampleError, CorruptTally
from domainclip.core.errors import DatasetNotFoundError, DomainClipError, InputError
from domainclip.core.eval.features import Tokenizer, collate_samples
from domainclip.core.eval.heldout import HeldOutShards, ImageTextDecoder, embed_decodable, shard_images, warn_skipped
from domainclip.core.eval.report import (
    atomic_write_bytes,
    atomic_write_text,
    plot_retrieval_examples,
    scalar_metrics,
    to_jsonable,
)
from domainclip.core.eval.retrieval import caption_retrieval
from domainclip.core.eval.suites import get_suite
from domainclip.core.eval.zero_shot import build_prompt_classifier, classification_metrics, classification_report
from domainclip.core.options import NonNegativeInt, PositiveInt, check_options
from domainclip.domains.biomed.datasets.medical_image import MedicalImageLoader, Plane, VolumeView
from domainclip.domains.biomed.registry import FAMILIES, Family, TaskName, TaskSpec, get_task, list_tasks

__all__ = [
    "ADAPTERS",
    "DEFAULT_KS",
    "SUMMARY_METRICS",
    "expected_layout",
    "open_task_dataset",
    "retrieval_suite",
    "task_suite",
    "template_metrics",
]

#: Recall cut-offs of the retrieval suite (CLIP_benchmark's).
DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
#: Metrics averaged over a family's tasks and over all tasks.
SUMMARY_METRICS: tuple[str, ...] = (
    "acc1", "balanced_accuracy", "template_acc1_mean", "template_acc1_std", "template_balanced_accuracy_mean",
)
#: Why a retrieval sample may be left out (counted) rather than fail the suite.
SKIPPED_REASONS = (BAD_IMAGE, BAD_JSON, BAD_TEXT)
#: Tasks whose expected layout the "no data for any task" message spells out (the rest are counted).
MAX_LISTED = 3
#: Caption queries shown in the retrieval examples figure, and figures per query.
NUM_EXAMPLES, EXAMPLE_K = 4, 5
_TASKS = "biomed/tasks"
_RETRIEVAL = "biomed/retrieval"
_SKIPPED = "__skipped__"


# ---------------------------------------------------------------------------------------------- adapters
def _loader(spec: TaskSpec, view: VolumeView | None, plane: Plane | None) -> MedicalImageLoader:
    args = spec.adapter_args
    window = args.get("window")
    return MedicalImageLoader(view=view or args.get("view", "middle"), plane=plane or args.get("plane", "axial"),
                              window=tuple(window) if window is not None else None)


def _open_folder(path: Path, spec: TaskSpec, transform: Callable[[Any], Any], loader: MedicalImageLoader) -> Dataset:
    from domainclip.domains.biomed.datasets.folder import ClassFolder

    return ClassFolder(path, spec.labels, transform, loader, exclude=spec.adapter_args.get("exclude", ()))


def _open_csv(path: Path, spec: TaskSpec, transform: Callable[[Any], Any], loader: MedicalImageLoader) -> Dataset:
    from domainclip.domains.biomed.datasets.table import LabelTable

    args = spec.adapter_args
    csv_path = path if path.is_file() else path / args.get("csv", "labels.csv")
    return LabelTable(csv_path, spec.labels, transform, loader, path_column=args.get("path_column", "path"),
                      label_column=args.get("label_column", "label"), image_dir=args.get("image_dir", ""),
                      suffix=args.get("suffix", ""))


def _open_nct_crc(path: Path, spec: TaskSpec, transform: Callable[[Any], Any], loader: MedicalImageLoader) -> Dataset:
    from domainclip.domains.pathology.datasets.folder import PatchFolder

    return PatchFolder(path, classes=spec.labels, transform=transform)


def _open_pcam(path: Path, spec: TaskSpec, transform: Callable[[Any], Any], loader: MedicalImageLoader) -> Dataset:
    from domainclip.domains.pathology.datasets.pcam import PatchCamelyon

    return PatchCamelyon(path, split=spec.adapter_args.get("split", "test"), transform=transform)


#: Registry layout -> ``open(path, spec, transform, loader) -> dataset of {"image", "label", "meta"}``.
ADAPTERS: dict[str, Callable[[Path, TaskSpec, Callable[[Any], Any], MedicalImageLoader], Dataset]] = {
    "folder": _open_folder,
    "csv": _open_csv,
    "nct_crc": _open_nct_crc,
    "pcam": _open_pcam,
}


def open_task_dataset(
    spec: TaskSpec,
    path: Path,
    transform: Callable[[Any], Any] | None = None,
    *,
    view: VolumeView | None = None,
    plane: Plane | None = None,
) -> Dataset:
    """The dataset of a registry task read from ``path`` by its layout's adapter (:data:`ADAPTERS`).

    Args:
        spec: the task.
        path: its folder (or, for a CSV task, the CSV file itself).
        transform: applied to each RGB image.
        view: how DICOM/NIfTI volumes become one image, replacing the task's own choice.
        plane: the plane of that view, replacing the task's own.

    Raises:
        InputError: the task is scored by another suite (``layout="suite"``).
    """
    if spec.layout not in ADAPTERS:
        raise InputError(f"task {spec.name!r} is scored by {spec.delegate}, not read by an adapter")
    return ADAPTERS[spec.layout](Path(path), spec, transform, _loader(spec, view, plane))


def expected_layout(names: Iterable[str] | None = None) -> str:
    """What the suite's data root holds for each task, one line per task (documentation and messages).

    Args:
        names: the tasks (default: every registered task).
    """
    return "\n".join(f"{name}: {get_task(name).expected}" for name in (names or list_tasks()))


# ---------------------------------------------------------------------------------------------- embedding
class _Tolerant(Dataset):
    """A map dataset whose undecodable items come back as ``{"__skipped__": (reason, path, detail)}``."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            return self.dataset[index]
        except CorruptSampleError as e:
            samples = getattr(self.dataset, "samples", None)
            where = str(samples[index][0]) if samples is not None else str(index)
            return {_SKIPPED: (e.reason, where, e.detail)}


def _collate_tolerant(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    good = [s for s in samples if _SKIPPED not in s]
    return {"batch": collate_samples(good) if good else None, "skipped": [s[_SKIPPED] for s in samples
                                                                          if _SKIPPED in s]}


def _good_batches(loader: Iterable[Mapping[str, Any]], tally: CorruptTally) -> Iterator[dict[str, Any]]:
    for item in loader:
        for reason, where, detail in item["skipped"]:
            tally.add(reason, where, None, detail)
        if item["batch"] is not None:
            tally.add_good(len(item["batch"][keys.LABEL]))
            yield item["batch"]


def _embed(model: torch.nn.Module, dataset: Any, device: str, batch_size: int, num_workers: int,
           where: str) -> tuple[dict[str, Any], int]:
    """Features and labels of a task's decodable images, and how many were skipped (warned once)."""
    tally = CorruptTally()
    loader = DataLoader(_Tolerant(dataset), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=_collate_tolerant)
    embedded = embed_decodable(model, _good_batches(loader, tally), device, (keys.LABEL,), lambda: tally,
                               f"{where}: no decodable image")
    return embedded, warn_skipped(where, tally)


# ---------------------------------------------------------------------------------------------- scoring
def _spread(values: Sequence[float], name: str) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {f"template_{name}_mean": float(array.mean()), f"template_{name}_std": float(array.std()),
            f"template_{name}_min": float(array.min()), f"template_{name}_max": float(array.max())}


def template_metrics(
    features: Tensor,
    labels: Tensor,
    classifiers: Sequence[Tensor],
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Score each template's classifier alone: per template ``acc1`` and ``balanced_accuracy``, and their spread.

    Args:
        features: ``(N, D)`` L2-normalised image features.
        labels: ``(N,)`` class indices.
        classifiers: one ``(D, C)`` weight matrix per template.

    Returns:
        ``(spread, per_template)``: ``template_<metric>_{mean,std,min,max}`` over templates (``std``
        is the population one) and each template's metrics.
    """
    per_template = []
    for weights in classifiers:
        metrics = classification_metrics(features @ weights.float().cpu(), labels)
        per_template.append({"acc1": metrics["acc1"], "balanced_accuracy": metrics["balanced_accuracy"]})
    spread = {**_spread([m["acc1"] for m in per_template], "acc1"),
              **_spread([m["balanced_accuracy"] for m in per_template], "balanced_accuracy")}
    return spread, per_template


def _score_task(spec: TaskSpec, embedded: dict[str, Any], model: torch.nn.Module, tokenizer: Tokenizer,
                device: str, batch_size: int, out_dir: Path) -> tuple[dict[str, float], list[dict[str, Any]]]:
    features, labels = embedded["features"], embedded[keys.LABEL]
    text_batch = max(batch_size, 64)
    classifiers = [build_prompt_classifier(model, tokenizer, spec.prompts((t,)), device, text_batch)
                   for t in spec.templates]
    spread, per_template = template_metrics(features, labels, classifiers)
    ensemble = build_prompt_classifier(model, tokenizer, spec.prompts(), device, text_batch)
    report = classification_report(features @ ensemble.cpu(), labels, spec.labels,
                                   out_dir / f"{spec.name}_confusion_matrix.png",
                                   title=f"{spec.title}: zero-shot, {len(spec.templates)}-template ensemble")
    metrics = {**scalar_metrics(report), "num_classes": len(spec.classes), "num_templates": len(spec.templates),
               **spread}
    details = [{"template": t, **m} for t, m in zip(spec.templates, per_template)]
    return metrics, details


def _run_delegate(spec: TaskSpec, path: Path, model: torch.nn.Module, tokenizer: Tokenizer,
                  preprocess: Callable[[Any], Tensor], out_dir: Path, device: str, batch_size: int) -> dict[str, float]:
    suite = get_suite(spec.delegate or "")
    results = suite(model, tokenizer, preprocess, data=path, out_dir=out_dir / spec.name, device=device,
                    batch_size=batch_size)
    scored = [m for m in results.values() if "acc1" in m]
    if not scored:
        raise InputError(f"{_TASKS}: {spec.delegate} gave no acc1 for task {spec.name!r}")
    return {**scalar_metrics(scored[0]), "num_classes": len(spec.classes)}


def _summaries(rows: Mapping[str, tuple[TaskSpec, dict[str, float]]], skipped: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}

    def summary(members: list[dict[str, float]]) -> dict[str, float]:
        row: dict[str, float] = {}
        for metric in SUMMARY_METRICS:
            values = [m[metric] for m in members if metric in m]
            if values:
                row[metric] = float(np.mean(values))
        row["num_tasks"] = len(members)
        return row

    for family in FAMILIES:
        members = [metrics for spec, metrics in rows.values() if spec.family == family]
        if members:
            out[f"family/{family}"] = summary(members)
    out["overall"] = {**summary([metrics for _, metrics in rows.values()]), "num_tasks_skipped": skipped}
    return out


def _plot_tasks(rows: Mapping[str, tuple[TaskSpec, dict[str, float]]], path: Path) -> None:
    """Bar per task (ensemble acc1, coloured by family), single templates' mean and range, chance level."""
    from matplotlib.figure import Figure

    names = list(rows)
    fig = Figure(figsize=(max(6.0, 0.45 * len(names) + 2), 4.5))
    ax = fig.add_subplot()
    colours = {family: f"C{i}" for i, family in enumerate(FAMILIES)}
    for i, name in enumerate(names):
        spec, metrics = rows[name]
        ax.bar(i, metrics["acc1"], width=0.6, color=colours[spec.family], alpha=0.75, label=spec.family)
        if "template_acc1_min" in metrics:
            low, high = metrics["template_acc1_min"], metrics["template_acc1_max"]
            ax.errorbar(i, metrics["template_acc1_mean"], yerr=[[metrics["template_acc1_mean"] - low],
                                                                 [high - metrics["template_acc1_mean"]]],
                        fmt="o", color="black", markersize=4, capsize=4, lw=1.2, zorder=3,
                        label="single templates: mean, min-max")
        chance = 1.0 / metrics["num_classes"]
        ax.plot([i - 0.35, i + 0.35], [chance, chance], color="black", ls="--", lw=1, zorder=3, label="chance")
    handles, texts = ax.get_legend_handles_labels()
    unique = dict(zip(texts, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("acc1")
    ax.set_title("biomed zero-shot tasks: acc1 of the template ensemble (bars) and of single templates", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def _task_path(name: str, spec: TaskSpec, data: Path | None, paths: Mapping[str, Path]) -> Path | None:
    if name in paths:
        path = Path(paths[name])
        return path if path.is_absolute() or data is None else data / path
    return None if data is None else data / spec.folder


def task_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str,
    batch_size: int,
    tasks: list[TaskName] | None = None,
    families: list[Family] | None = None,
    paths: dict[str, Path] | None = None,
    view: VolumeView | None = None,
    plane: Plane | None = None,
    num_workers: NonNegativeInt = 0,
) -> dict[str, dict[str, float]]:
    """Zero-shot classification on the registry's tasks, one table: per task, per family and overall.

    Args:
        model: the CLIP model.
        tokenizer: its tokenizer.
        preprocess: its evaluation transform.
        data: the root holding each task's sub-folder (the registry's ``folder`` of each task, e.g.
            ``ham10000/``, ``chest_xray/test/``, ``figure_types/``; see :func:`expected_layout`).
        out_dir: where ``<task>_confusion_matrix.png``, ``tasks_accuracy.png``, ``tasks_details.json``
            (each template's numbers) and ``tasks_skipped.json`` go.
        device: where the model runs.
        batch_size: images (and prompts) per forward.
        tasks: the tasks to run, in this order (default: every registered task, or those of ``families``).
        families: run the tasks of these families (with ``tasks``: only those of them in these families).
        paths: task -> its folder (or CSV file for a CSV task), absolute or relative to ``data``,
            replacing the registry's sub-folder.
        view: how DICOM/NIfTI volumes become one image for every task (middle slice, maximum or mean
            projection; default: each task's own choice, the middle slice).
        plane: the plane of that view (default: each task's own, axial).
        num_workers: DataLoader workers decoding images.

    Returns:
        ``{"<task>/zeroshot_classification": {acc1, acc5 (>= 5 classes), mean_per_class_recall,
        balanced_accuracy, weighted_f1, num_samples, num_classes, num_templates,
        template_{acc1,balanced_accuracy}_{mean,std,min,max}, num_skipped_images},
        "family/<family>": {...means, num_tasks}, "overall": {...means, num_tasks, num_tasks_skipped}}``.

    Raises:
        DatasetNotFoundError: no task named has data (one line naming where each was looked for).
        InputError: a task's data is there but unusable, or ``paths`` names an unknown task.
    """
    options = check_options(task_suite, {"tasks": tasks, "families": families, "paths": paths, "view": view,
                                         "plane": plane, "num_workers": num_workers},
                            where=_TASKS, skip=SUITE_ENGINE_ARGS, require=False)
    paths = options["paths"] or {}
    for name in paths:
        try:
            get_task(name)
        except DomainClipError as e:
            raise InputError(f"{_TASKS}: paths: {e}") from None
    if data is None and not paths:
        raise DatasetNotFoundError(f"{_TASKS} needs --data: a root holding each task's sub-folder "
                                   "(ham10000/, chest_xray/test/, figure_types/, ...) or the option paths")
    data = Path(data) if data is not None else None
    chosen = list(dict.fromkeys(options["tasks"] or list_tasks()))
    if options["families"]:
        chosen = [name for name in chosen if get_task(name).family in options["families"]]
        if not chosen:
            raise InputError(f"{_TASKS}: no task of families {', '.join(options['families'])} among those named")
    out_dir = Path(out_dir)
    located: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for name in chosen:
        spec = get_task(name)
        path = _task_path(name, spec, data, paths)
        if path is not None and path.exists():
            located[name] = path
        else:
            skipped[name] = f"no data at {path}; expected {spec.expected}"
    if not located:
        shown = list(skipped.items())[:MAX_LISTED]
        where = "; ".join(f"{name}: {why}" for name, why in shown)
        more = len(skipped) - len(shown)
        rest = f"; and {more} more task(s): see domainclip.domains.biomed.evals.expected_layout()" if more else ""
        which = "named" if options["tasks"] else "of the registry"
        raise DatasetNotFoundError(f"{_TASKS}: no data for any task {which} ({where}{rest})")
    for name, why in skipped.items():
        warnings.warn(f"{_TASKS}: skipped {name}: {why}", stacklevel=2)

    rows: dict[str, tuple[TaskSpec, dict[str, float]]] = {}
    details: dict[str, Any] = {}
    for name, path in located.items():
        spec = get_task(name)
        if spec.layout == "suite":
            rows[name] = (spec, _run_delegate(spec, path, model, tokenizer, preprocess, out_dir, device, batch_size))
            details[name] = {"title": spec.title, "family": spec.family, "path": str(path), "suite": spec.delegate}
            continue
        dataset = open_task_dataset(spec, path, preprocess, view=options["view"], plane=options["plane"])
        embedded, num_skipped = _embed(model, dataset, device, batch_size, options["num_workers"],
                                       f"{_TASKS}: {name}")
        metrics, per_template = _score_task(spec, embedded, model, tokenizer, device, batch_size, out_dir)
        rows[name] = (spec, {**metrics, "num_skipped_images": num_skipped})
        details[name] = {"title": spec.title, "family": spec.family, "path": str(path), "templates": per_template}

    results = {f"{name}/zeroshot_classification": metrics for name, (_, metrics) in rows.items()}
    results.update(_summaries(rows, len(skipped)))
    atomic_write_text(out_dir / "tasks_details.json", json.dumps(to_jsonable(details), indent=2) + "\n")
    atomic_write_text(out_dir / "tasks_skipped.json", json.dumps(skipped, indent=2) + "\n")
    _plot_tasks(rows, out_dir / "tasks_accuracy.png")
    return results


# ---------------------------------------------------------------------------------------------- retrieval
def retrieval_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str,
    batch_size: int,
    ks: tuple[PositiveInt, ...] = DEFAULT_KS,
    num_workers: NonNegativeInt = 0,
) -> dict[str, dict[str, float]]:
    """Figure <-> caption retrieval on held-out figure shards, with the chance level of every recall.

    Args:
        model: the CLIP model.
        tokenizer: its tokenizer.
        preprocess: its evaluation transform.
        data: held-out figure shards (``domainclip prepare biomed figures`` on held-out articles:
            ``jpg`` or ``png`` image, ``txt`` caption, ``json``); a folder, glob or brace pattern.
        out_dir: where ``figures_retrieval_examples.png`` (caption -> figure examples) is drawn.
        device: where the model runs.
        batch_size: figures (and captions) per forward.
        ks: recall cut-offs.
        num_workers: DataLoader workers decoding figures (shards are dealt out between them).

    Returns:
        ``{"figures/retrieval": {image_retrieval_recall@k (caption -> figure), text_retrieval_recall@k
        (figure -> caption), chance_image_retrieval_recall@k, chance_text_retrieval_recall@k,
        num_images, num_texts, num_skipped_images}}``.
    """
    options = check_options(retrieval_suite, {"ks": ks, "num_workers": num_workers}, where=_RETRIEVAL,
                            skip=SUITE_ENGINE_ARGS, require=False)
    ks = sorted(set(options["ks"]))
    if not ks:
        raise InputError(f"{_RETRIEVAL}: ks names no recall cut-off")
    if data is None:
        raise DatasetNotFoundError(f"{_RETRIEVAL} needs --data: held-out figure shards from "
                                   "'domainclip prepare biomed figures'")
    shards = HeldOutShards(data, ImageTextDecoder(preprocess), suite=_RETRIEVAL, skip=SKIPPED_REASONS,
                           expected="figure shards (*.tar with jpg/png, txt, json per figure)")
    loader = DataLoader(shards, batch_size=batch_size, num_workers=options["num_workers"],
                        collate_fn=collate_samples)
    embedded = embed_decodable(model, loader, device, (keys.TEXT, keys.URL, keys.KEY), lambda: shards.tally,
                               f"{_RETRIEVAL}: no decodable figure-caption sample under {data}")
    skipped = warn_skipped(_RETRIEVAL, shards.tally)
    report = caption_retrieval(model, tokenizer, embedded["features"], embedded[keys.TEXT], device,
                               text_batch_size=batch_size, ks=ks, num_examples=NUM_EXAMPLES, example_k=EXAMPLE_K)
    examples = report["examples"]
    where = list(zip(embedded[keys.URL], embedded[keys.KEY]))
    shown = shard_images(data, {where[i] for row in examples["retrieved"] for i in row}
                          | {where[i] for i in examples["target_images"]})
    plot_retrieval_examples(lambda i: shown[where[i]], examples["query_texts"], examples["retrieved"],
                            examples["target_images"], Path(out_dir) / "figures_retrieval_examples.png",
                            title="caption -> figure retrieval (green: the caption's figure)")
    metrics = scalar_metrics(report)
    n_images, n_texts = metrics["num_images"], metrics["num_texts"]
    for k in ks:  # a random ranking finds the one figure of a caption (the one caption of a figure) with chance k/N
        metrics[f"chance_image_retrieval_recall@{k}"] = min(k, n_images) / n_images
        metrics[f"chance_text_retrieval_recall@{k}"] = min(k, n_texts) / n_texts
    metrics["num_skipped_images"] = skipped
    return {"figures/retrieval": metrics}
