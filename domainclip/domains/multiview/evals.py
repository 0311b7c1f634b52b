"""Multi-view evaluation suites: how well zero-shot classification survives a change of viewpoint.

``multiview/viewpoint`` (:func:`viewpoint_suite`)
    Held-out objects in the multi-view shard layout (:mod:`~domainclip.domains.multiview.views`, as
    ``domainclip prepare multiview render`` and ``import`` write them). Every view of every object is
    embedded on its own with ``model.encode_image`` (never fused) and classified zero-shot among the
    set's categories (``categories.json`` beside the shards, else the sorted categories of the
    objects' meta), with the domain's category prompts
    (:data:`~domainclip.domains.multiview.captions.ZERO_SHOT_PROMPTS`).
``multiview/imagenet_v`` (:func:`imagenet_v_suite`)
    The same metrics on an ImageNet-V-style folder read by
    :class:`~domainclip.domains.multiview.datasets.imagenet_v.ImageNetV`; images are grouped into
    objects by ``meta["object_id"]`` where the layout has one, else only the per-image metrics are
    reported.

Metrics of one model (:func:`viewpoint_metrics`):

* over all views, CLIP_benchmark's ``acc1`` (``acc5`` with five classes or more),
  ``mean_per_class_recall``, with ``balanced_accuracy``, ``weighted_f1`` and ``num_samples`` (views);
* ``worst_view_acc1``: the fraction of objects whose worst view is right, which is the fraction of
  objects all of whose views are right (the worst view is the one whose true-class score trails the
  best other class the most; ``<set>_objects.csv`` names it, with each object's right views);
* ``consistency``: the fraction of objects (of two views or more) whose views all get the same
  prediction, right or wrong; ``pairwise_agreement``: the mean over those objects of the fraction
  of their view pairs predicted alike (1/C for a classifier guessing at random among C classes);
* ``num_objects``, ``num_multiview_objects`` and ``num_skipped_objects`` (objects, or images, that
  could not be decoded: skipped, counted and named in a warning).

``baseline`` (a model spec in any ``--model`` spelling) evaluates a second model, with its own
preprocessing and tokenizer, on the same data: its metrics come back as the task
``<task>/baseline`` and ``before_after.md`` sets both side by side (before = the baseline, after =
the model evaluated). Where views have poses (azimuth, elevation), ``<set>_viewpoint_accuracy.png``
draws accuracy by azimuth (polar) and by azimuth x elevation (a heat map per model), and
``<set>_viewpoint_bins.csv`` holds the numbers. ``<set>`` is ``heldout`` or ``imagenet_v``; every
file goes to the suite's ``out_dir``, written atomically.

Memory: one pass keeps the features of every view (``N x D`` floats, as every suite's single
embedding pass does) and a few numbers per view; the baseline's pass follows the model's.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from domainclip.core.checks import SUITE_ENGINE_ARGS
from domainclip.core.data import keys
from domainclip.core.data.corrupt import BAD_IMAGE, BAD_JSON, CorruptSampleError, CorruptTally, missing_key
from domainclip.core.errors import InputError
from domainclip.core.eval.features import Tokenizer, collate_samples
from domainclip.core.eval.heldout import HeldOutShards, decodable_batches, embed_decodable, warn_skipped
from domainclip.core.eval.prompts import SingleOrEnsemble
from domainclip.core.eval.report import atomic_write_bytes, atomic_write_text, scalar_metrics
from domainclip.core.eval.suites import require_data
from domainclip.core.eval.zero_shot import build_zero_shot_classifier, classification_metrics, plot_confusion_matrix
from domainclip.core.models.loading import load_model
from domainclip.core.options import PositiveInt, check_options
from domainclip.domains.multiview.captions import ZERO_SHOT_PROMPTS
from domainclip.domains.multiview.views import decode_views, read_meta

__all__ = [
    "BEFORE_AFTER_METRICS",
    "CATEGORIES_FILE",
    "ScoredViews",
    "before_after_table",
    "imagenet_v_suite",
    "plot_viewpoint_accuracy",
    "viewpoint_bins",
    "viewpoint_metrics",
    "viewpoint_suite",
]

#: The category list a multi-view shard folder may hold beside its shards (a JSON list of names, in ``cls`` order).
CATEGORIES_FILE = "categories.json"
#: The rows of ``before_after.md``, in order (those a model's results lack are left out).
BEFORE_AFTER_METRICS: tuple[str, ...] = (
    "acc1", "worst_view_acc1", "consistency", "pairwise_agreement", "mean_per_class_recall", "acc5",
)
#: Why an object (or image) may be left out, counted, rather than fail the suite: it cannot be decoded.
SKIPPED_REASONS = (BAD_IMAGE, BAD_JSON)

_VIEWPOINT = "multiview/viewpoint"
_IMAGENET_V = "multiview/imagenet_v"


# ---------------------------------------------------------------------------------------------- metrics
@dataclass
class ScoredViews:
    """One model's zero-shot scores of every view of a set, with what each view belongs to.

    Args:
        logits: ``(N, C)`` cosine scores of the ``N`` views against the ``C`` class prompts.
        targets: ``(N,)`` the true class of each view.
        objects: the object of each view (``None`` for a view that belongs to no known object): a key
            that tells objects apart, which may differ from the object id the user sees.
        object_ids: object key -> the object id reported.
        azimuth: ``(N,)`` degrees, NaN where the view has no pose.
        elevation: ``(N,)`` degrees, NaN where the view has no pose.
        views: the position of each view in its object (``-1`` when unknown).
        categories: the true category name of each view.
        classes: the class names, in logit order.
        skipped: objects (or images) left out because they could not be decoded.
    """

    logits: Tensor
    targets: Tensor
    objects: list[str | None]
    azimuth: np.ndarray
    elevation: np.ndarray
    views: list[int]
    categories: list[str]
    classes: list[str]
    object_ids: dict[str, str]
    skipped: int = 0


def _object_groups(objects: Sequence[str | None]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Views that belong to an object: their positions, the object ids and each one's object index."""
    positions = np.array([i for i, o in enumerate(objects) if o is not None], dtype=np.int64)
    ids = [objects[i] for i in positions]
    unique, inverse = np.unique(np.array(ids, dtype=object), return_inverse=True) if ids else ([], np.zeros(0, int))
    return positions, [str(u) for u in unique], np.asarray(inverse, dtype=np.int64).reshape(-1)


def viewpoint_metrics(logits: Tensor, targets: Tensor, objects: Sequence[str | None] | None = None) -> dict[str, Any]:
    """Zero-shot metrics over all views and, where views are grouped into objects, per object.

    Args:
        logits: ``(N, C)`` scores of the ``N`` views.
        targets: ``(N,)`` true class indices.
        objects: the object of each view; ``None`` entries (or ``objects=None``) belong to no object
            and count only in the per-view metrics.

    Returns:
        :func:`~domainclip.core.eval.zero_shot.classification_metrics` with predictions, plus, when
        any view has an object: ``worst_view_acc1`` (objects all of whose views are right, over all
        objects), ``consistency`` and ``pairwise_agreement`` (over objects of two views or more;
        absent when there is none), ``num_objects`` and ``num_multiview_objects``.
    """
    metrics = classification_metrics(logits, targets, return_predictions=True)
    if objects is None:
        return metrics
    if len(objects) != logits.shape[0]:
        raise ValueError(f"{len(objects)} object ids for {logits.shape[0]} views")
    positions, ids, inverse = _object_groups(objects)
    if not ids:
        return metrics
    pred = np.asarray(metrics["predictions"])[positions]
    right = pred == np.asarray(metrics["targets"])[positions]
    num_objects, num_classes = len(ids), logits.shape[1]
    views = np.bincount(inverse, minlength=num_objects)
    wrong = np.bincount(inverse, weights=~right, minlength=num_objects)
    per_class = np.zeros((num_objects, num_classes))
    np.add.at(per_class, (inverse, pred), 1)
    metrics["worst_view_acc1"] = float(np.mean(wrong == 0))
    multi = views >= 2
    if multi.any():
        pairs = views * (views - 1) / 2
        alike = (per_class * (per_class - 1) / 2).sum(axis=1)
        metrics["consistency"] = float(np.mean(per_class.max(axis=1)[multi] == views[multi]))
        metrics["pairwise_agreement"] = float(np.mean(alike[multi] / pairs[multi]))
    metrics["num_objects"] = num_objects
    metrics["num_multiview_objects"] = int(multi.sum())
    return metrics


def _object_rows(scored: ScoredViews, metrics: Mapping[str, Any], role: str, model_name: str) -> list[dict[str, Any]]:
    """One row per object: views, right views, consistent, and its worst view (lowest true-class margin)."""
    positions, ids, inverse = _object_groups(scored.objects)
    if not ids:
        return []
    logits = scored.logits.float()
    true = logits.gather(1, scored.targets.long()[:, None])[:, 0]
    other = logits.scatter(1, scored.targets.long()[:, None], float("-inf")).max(dim=1).values
    margin = (true - other).numpy()
    pred, targets = np.asarray(metrics["predictions"]), scored.targets.numpy()
    rows = []
    for k, object_id in enumerate(ids):
        members = positions[inverse == k]
        worst = int(members[np.argmin(margin[members])])
        rows.append({
            "role": role, "model": model_name, "object_id": scored.object_ids.get(object_id, object_id),
            "category": scored.categories[members[0]],
            "num_views": len(members), "num_right": int((pred[members] == targets[members]).sum()),
            "consistent": int(len(set(pred[members].tolist())) == 1), "worst_view": scored.views[worst],
            "worst_azimuth": _csv_number(scored.azimuth[worst]),
            "worst_elevation": _csv_number(scored.elevation[worst]),
            "worst_margin": round(float(margin[worst]), 6),
        })
    return rows


def _csv_number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6g}"


# ---------------------------------------------------------------------------------------------- bins and plot
def viewpoint_bins(
    right: np.ndarray, azimuth: np.ndarray, elevation: np.ndarray, azimuth_bins: int, elevation_edges: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Views and right views per (elevation bin, azimuth bin); views without a pose are left out.

    Args:
        right: ``(N,)`` whether each view is classified right.
        azimuth: ``(N,)`` degrees (taken modulo 360; bin ``k`` is ``[k w, (k + 1) w)`` with ``w = 360 / azimuth_bins``).
        elevation: ``(N,)`` degrees.
        azimuth_bins: number of azimuth bins.
        elevation_edges: increasing elevation bin edges (the last bin includes its upper edge).

    Returns:
        ``(count, hits)``: two ``(len(elevation_edges) - 1, azimuth_bins)`` integer arrays.
    """
    posed = np.isfinite(azimuth) & np.isfinite(elevation)
    az = np.mod(azimuth[posed], 360.0)
    a = np.minimum((az / (360.0 / azimuth_bins)).astype(np.int64), azimuth_bins - 1)
    e = np.clip(np.searchsorted(elevation_edges, elevation[posed], side="right") - 1, 0, len(elevation_edges) - 2)
    shape = (len(elevation_edges) - 1, azimuth_bins)
    count, hits = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    np.add.at(count, (e, a), 1)
    np.add.at(hits, (e, a), right[posed].astype(np.int64))
    return count, hits


def _elevation_edges(elevation: np.ndarray, bins: int) -> np.ndarray:
    finite = elevation[np.isfinite(elevation)]
    lo, hi = float(finite.min()), float(finite.max())
    return np.array([lo, hi]) if hi - lo < 1e-6 else np.linspace(lo, hi, bins + 1)


def plot_viewpoint_accuracy(
    grids: Mapping[str, tuple[np.ndarray, np.ndarray]], elevation_edges: np.ndarray, path: Path, *, title: str,
) -> Path:
    """Top-1 by viewpoint: a polar plot by azimuth (a line per model), an azimuth x elevation heat map per model.

    Args:
        grids: model label -> ``(count, hits)`` of :func:`viewpoint_bins`.
        elevation_edges: the elevation bin edges the grids were counted with.
        path: PNG to write.
        title: the figure's title.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    first = next(iter(grids.values()))[0]
    num_az = first.shape[1]
    width = 360.0 / num_az
    fig = Figure(figsize=(4.8 * (len(grids) + 1), 4.6), layout="constrained")
    polar = fig.add_subplot(1, len(grids) + 1, 1, projection="polar")
    theta = np.deg2rad((np.arange(num_az) + 0.5) * width)
    for label, (count, hits) in grids.items():
        per_az = np.divide(hits.sum(axis=0), count.sum(axis=0), out=np.full(num_az, np.nan), where=count.sum(0) > 0)
        polar.plot(np.append(theta, theta[0]), np.append(per_az, per_az[0]), marker="o", label=label)
    polar.set_ylim(0.0, 1.0)
    polar.set_rticks([0.25, 0.5, 0.75, 1.0])
    polar.set_rlabel_position(112.5)
    polar.set_title("top-1 by azimuth", fontsize=10)
    polar.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    import matplotlib as mpl

    cmap = mpl.colormaps["viridis"].with_extremes(bad="#d9d9d9")
    image = None
    for k, (label, (count, hits)) in enumerate(grids.items()):
        ax = fig.add_subplot(1, len(grids) + 1, k + 2)
        acc = np.divide(hits, count, out=np.full(count.shape, np.nan), where=count > 0)
        extent = (0.0, 360.0, float(elevation_edges[0]), float(elevation_edges[-1]))
        if extent[3] - extent[2] < 1e-6:
            extent = (0.0, 360.0, extent[2] - 5.0, extent[2] + 5.0)
        image = ax.imshow(np.ma.masked_invalid(acc), origin="lower", aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0,
                          extent=extent, interpolation="nearest")
        rows = acc.shape[0]
        step = (extent[3] - extent[2]) / rows
        if acc.size <= 96:
            for i in range(rows):
                for j in range(num_az):
                    if count[i, j]:
                        ax.text((j + 0.5) * width, extent[2] + (i + 0.5) * step, f"{acc[i, j]:.2f}\nn={count[i, j]}",
                                ha="center", va="center", fontsize=8, color="white" if acc[i, j] < 0.6 else "black")
        ax.set_xlabel("azimuth (degrees)")
        ax.set_ylabel("elevation (degrees)")
        ax.set_xticks(np.arange(0.0, 361.0, max(width, 45.0)))
        ax.set_title(f"top-1 by viewpoint: {label}", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=fig.axes[1:], fraction=0.03, pad=0.02, label="top-1")
    fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return atomic_write_bytes(Path(path), buf.getvalue())


# ---------------------------------------------------------------------------------------------- before / after
def before_after_table(before: Mapping[str, Any], after: Mapping[str, Any], before_name: str, after_name: str) -> str:
    """A markdown table: one row per metric of :data:`BEFORE_AFTER_METRICS`, columns before, after and the change.

    Args:
        before: the baseline's metrics.
        after: the evaluated model's metrics.
        before_name: the baseline's spec (the column header).
        after_name: the model's spec.
    """
    cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    lines = [f"| metric | before: {cell(before_name)} | after: {cell(after_name)} | change |", "|---|---:|---:|---:|"]
    for name in BEFORE_AFTER_METRICS:
        if name in before and name in after:
            b, a = float(before[name]), float(after[name])
            lines.append(f"| {name} | {b:.4f} | {a:.4f} | {a - b:+.4f} |")
    for name in ("num_samples", "num_objects"):
        if name in before and name in after:
            lines.append(f"| {name} | {before[name]} | {after[name]} | |")
    return "\n".join(lines) + "\n"


def _model_name(model: torch.nn.Module) -> str:
    record = getattr(model, "domainclip_source", None)
    return str(record.get("spec")) if isinstance(record, Mapping) and record.get("spec") else type(model).__name__


# ---------------------------------------------------------------------------------------------- shared pass
def _templates(prompts: str) -> list[Callable[[str], str]]:
    """The category prompts: the domain's first zero-shot prompt alone (``single``), or all of them."""
    return list(ZERO_SHOT_PROMPTS[:1] if prompts == "single" else ZERO_SHOT_PROMPTS)


def _score(
    model: torch.nn.Module, tokenizer: Tokenizer, batches: Iterable[Mapping[str, Any]], classes: Sequence[str] | None,
    *, device: str, batch_size: int, prompts: str, tally: Callable[[], CorruptTally], nothing: str, suite: str,
) -> ScoredViews:
    """Embed the views of ``batches`` once, then score them against the prompts of ``classes``.

    ``classes`` ``None`` takes the sorted categories of the views.
    """
    embedded = embed_decodable(model, batches, device, (keys.META,), tally, nothing)
    skipped = warn_skipped(suite, tally())
    metas = embedded[keys.META]
    names = list(classes) if classes is not None else sorted({m["category"] for m in metas})
    index = {name: k for k, name in enumerate(names)}
    unknown = sorted({m["category"] for m in metas} - set(index))
    if unknown:
        raise InputError(f"{suite}: categories {', '.join(unknown[:5])} are not among the set's {len(names)} "
                         f"categories ({', '.join(names[:10])}{' ...' if len(names) > 10 else ''})")
    classifier = build_zero_shot_classifier(model, tokenizer, names, _templates(prompts), device, batch_size)
    nan = float("nan")
    return ScoredViews(
        logits=embedded["features"] @ classifier.float().cpu(),
        targets=torch.tensor([index[m["category"]] for m in metas]),
        objects=[m.get("object") for m in metas],
        azimuth=np.array([nan if m.get("azimuth") is None else float(m["azimuth"]) for m in metas]),
        elevation=np.array([nan if m.get("elevation") is None else float(m["elevation"]) for m in metas]),
        views=[int(m.get("view", -1)) for m in metas],
        categories=[m["category"] for m in metas],
        classes=names,
        object_ids={m["object"]: str(m.get("object_id", m["object"])) for m in metas if m.get("object") is not None},
        skipped=skipped,
    )


def _report(
    scored: Mapping[str, ScoredViews], labels: Mapping[str, str], *, name: str, task: str,
    out_dir: Path, azimuth_bins: int, elevation_bins: int, title: str,
) -> dict[str, dict[str, float]]:
    """Metrics, confusion matrices, per-object CSV, viewpoint plot and before/after table of the scored models.

    ``scored`` maps ``"model"`` (and ``"baseline"``) to that model's scores, ``labels`` to its name.
    """
    out_dir = Path(out_dir)
    results, metrics_of, objects = {}, {}, []
    for role, views in scored.items():
        metrics = viewpoint_metrics(views.logits, views.targets, views.objects)
        suffix = "" if role == "model" else f"_{role}"
        matrix_path = out_dir / f"{name}{suffix}_confusion_matrix.png"
        plot_confusion_matrix(metrics["confusion_matrix"], views.classes, matrix_path,
                              title=f"{title}: {role} ({labels[role]})")
        metrics_of[role] = metrics
        objects.extend(_object_rows(views, metrics, role, labels[role]))
        results[task if role == "model" else f"{task}/{role}"] = {
            **scalar_metrics(metrics), "num_skipped_objects": views.skipped,
        }
    if objects:
        _write_csv(out_dir / f"{name}_objects.csv", objects)
    if "baseline" in scored:
        table = before_after_table(metrics_of["baseline"], metrics_of["model"], labels["baseline"], labels["model"])
        atomic_write_text(out_dir / "before_after.md", f"# {title}: before / after\n\n{table}")
    model_views = scored["model"]
    if np.isfinite(model_views.azimuth).any() and np.isfinite(model_views.elevation).any():
        edges = _elevation_edges(model_views.elevation, elevation_bins)
        grids, rows = {}, []
        for role, views in scored.items():
            right = np.asarray(metrics_of[role]["predictions"]) == views.targets.numpy()
            count, hits = viewpoint_bins(right, views.azimuth, views.elevation, azimuth_bins, edges)
            grids[f"{role}: {labels[role]}"] = (count, hits)
            width = 360.0 / azimuth_bins
            rows.extend({"role": role, "model": labels[role],
                         "azimuth_lo": f"{j * width:.6g}", "azimuth_hi": f"{(j + 1) * width:.6g}",
                         "elevation_lo": f"{edges[i]:.6g}", "elevation_hi": f"{edges[i + 1]:.6g}",
                         "num_views": int(count[i, j]), "acc1": f"{hits[i, j] / count[i, j]:.6g}"}
                        for i in range(count.shape[0]) for j in range(count.shape[1]) if count[i, j])
        plot_viewpoint_accuracy(grids, edges, out_dir / f"{name}_viewpoint_accuracy.png", title=title)
        _write_csv(out_dir / f"{name}_viewpoint_bins.csv", rows)
    return results


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------- viewpoint
class ObjectDecoder:
    """Raw multi-view sample -> ``{"views": [view tensors], "meta": {"object_id", "category", "poses"}}``.

    The category is the meta's ``category``, else the name of its ``cls`` index in ``categories``.

    Args:
        preprocess: the model's evaluation transform, applied to each view.
        categories: the set's category list (``categories.json``), if it has one.
    """

    def __init__(self, preprocess: Callable[[Any], Tensor], categories: Sequence[str] | None = None):
        self.preprocess, self.categories = preprocess, categories

    def __call__(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Decode one object; raises :class:`~domainclip.core.data.corrupt.CorruptSampleError` for unusable ones."""
        meta = read_meta(raw)
        category = meta.get("category")
        if category is None and self.categories is not None and "cls" in raw:
            try:
                category = self.categories[int(bytes(raw["cls"]).decode().strip())]
            except (ValueError, IndexError):
                raise CorruptSampleError("bad_label", f"cls {bytes(raw['cls'])!r} names no category") from None
        if not isinstance(category, str) or not category:
            raise CorruptSampleError(missing_key("category"), "the meta has no 'category' (and no usable cls)")
        views = decode_views(raw, self.preprocess)
        poses = meta.get("views")
        poses = poses if isinstance(poses, list) and len(poses) == len(views) else [{}] * len(views)
        object_id = str(meta.get("object_id") or raw.get(keys.KEY))
        return {keys.VIEWS: views, keys.META: {"object_id": object_id, "category": category, "poses": poses},
                keys.URL: raw.get(keys.URL, ""), keys.KEY: raw.get(keys.KEY, "")}


class _ViewItems(IterableDataset):
    """The views of a pass over held-out objects, one item per view (``image`` and the view's meta)."""

    def __init__(self, objects: HeldOutShards):
        super().__init__()
        self.objects = objects

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for number, sample in enumerate(self.objects):
            meta = sample[keys.META]
            # objects are told apart by their place in the pass: two shards may reuse an object id
            identity = f"{number:07d}:{meta['object_id']}"
            for view, (image, pose) in enumerate(zip(sample[keys.VIEWS], meta["poses"], strict=True)):
                pose = pose if isinstance(pose, Mapping) else {}
                yield {keys.IMAGE: image, keys.META: {
                    "object": identity, "object_id": meta["object_id"], "category": meta["category"], "view": view,
                    "azimuth": pose.get("azimuth"), "elevation": pose.get("elevation"),
                }}


def _read_categories(root: Path, suite: str) -> list[str] | None:
    """The category list of ``categories.json`` in the shard folder, if there is one."""
    path = root / CATEGORIES_FILE if root.is_dir() else None
    if path is None or not path.is_file():
        return None
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{suite}: {path} is not valid JSON: {e}") from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise InputError(f"{suite}: {path} must hold a non-empty list of category names")
    if len(set(names)) != len(names):
        raise InputError(f"{suite}: {path} lists a category twice")
    return names


def _load_baseline(baseline: str | None, device: str) -> tuple[torch.nn.Module, Any, Any] | None:
    """The baseline model (eval mode), its preprocess and tokenizer; ``None`` without one."""
    if baseline is None:
        return None
    model, preprocess, tokenizer = load_model(baseline, device=device)
    return model, preprocess, tokenizer


def viewpoint_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str,
    batch_size: int,
    prompts: SingleOrEnsemble = "ensemble",
    baseline: str | None = None,
    azimuth_bins: PositiveInt = 12,
    elevation_bins: PositiveInt = 3,
) -> dict[str, dict[str, float]]:
    """Viewpoint robustness on held-out multi-view objects: every view classified zero-shot on its own.

    Args:
        model: the CLIP model (its ``encode_image`` embeds each view).
        tokenizer: its tokenizer.
        preprocess: its evaluation transform.
        data: held-out multi-view shards (``domainclip prepare multiview render`` or ``import``), with
            ``categories.json`` beside them when the set has a category list.
        out_dir: where the confusion matrices, ``heldout_objects.csv``, the viewpoint plot and bins
            and ``before_after.md`` go.
        device: where the model runs.
        batch_size: views (and prompts) per forward.
        prompts: ``single`` (``"a 3D render of a {category}."``) or ``ensemble`` (the mean over all of
            :data:`~domainclip.domains.multiview.captions.ZERO_SHOT_PROMPTS`).
        baseline: a second model (a run or hub folder, ``hf-hub:org/name``, ``zoo:NAME``, a registry name) evaluated on
            the same objects: the "before" of the before / after table.
        azimuth_bins: azimuth bins of the viewpoint plot (over 360 degrees).
        elevation_bins: elevation bins of the heat map (over the views' elevation range).

    Returns:
        ``{"viewpoint/zeroshot_classification": {acc1, worst_view_acc1, consistency, pairwise_agreement,
        mean_per_class_recall, ..., num_objects, num_skipped_objects}}``, and the same metrics of the
        baseline as ``"viewpoint/zeroshot_classification/baseline"``.
    """
    options = check_options(viewpoint_suite, {"prompts": prompts, "baseline": baseline, "azimuth_bins": azimuth_bins,
                                              "elevation_bins": elevation_bins},
                            where=_VIEWPOINT, skip=SUITE_ENGINE_ARGS, require=False)
    root = require_data(data, _VIEWPOINT, "held-out multi-view shards from 'domainclip prepare multiview render' "
                                          "or 'import'")
    categories = _read_categories(root, _VIEWPOINT)
    second = _load_baseline(options["baseline"], device)
    runs = {"model": (model, tokenizer, preprocess)}
    if second is not None:
        runs["baseline"] = (second[0], second[2], second[1])
    scored, labels, classes = {}, {}, categories
    for role, (net, tok, transform) in runs.items():
        objects = HeldOutShards(root, ObjectDecoder(transform, categories), suite=_VIEWPOINT, skip=SKIPPED_REASONS,
                                expected="multi-view object shards (NNN.view.jpg members with a json meta)")
        loader = DataLoader(_ViewItems(objects), batch_size=batch_size, collate_fn=collate_samples)
        scored[role] = _score(
            net, tok, loader, classes, device=device, batch_size=batch_size, prompts=options["prompts"],
            tally=lambda objects=objects: objects.tally, nothing=f"{_VIEWPOINT}: no decodable object under {root}",
            suite=_VIEWPOINT,
        )
        classes, labels[role] = scored[role].classes, _model_name(net)
    return _report(scored, labels, name="heldout", task="viewpoint/zeroshot_classification", out_dir=out_dir,
                   azimuth_bins=options["azimuth_bins"], elevation_bins=options["elevation_bins"],
                   title="held-out objects: zero-shot top-1 by view")


# ---------------------------------------------------------------------------------------------- imagenet_v
def _pose(meta: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """An image's azimuth and elevation from its meta (top level, or inside ``viewpoint``), when it has them."""
    viewpoint = meta.get("viewpoint")
    nested = viewpoint if isinstance(viewpoint, Mapping) else {}
    found = []
    for name in ("azimuth", "elevation"):
        value = meta.get(name, nested.get(name))
        found.append(float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None)
    return found[0], found[1]


def _image_batches(dataset: Any, batch_size: int, tally: CorruptTally) -> Iterator[dict[str, Any]]:
    """Batches of the decodable images of an :class:`ImageNetV`-like dataset as per-view items."""

    def as_view(item: dict[str, Any]) -> dict[str, Any]:
        meta = item.get(keys.META) or {}
        azimuth, elevation = _pose(meta)
        object_id, folder, view = meta.get("object_id"), meta.get("folder"), meta.get("view_index")
        if object_id is not None and folder is not None and str(folder) != str(object_id):
            object_id = f"{folder}/{object_id}"  # a sub-folder name is an object only within its class folder
        return {keys.IMAGE: item[keys.IMAGE], keys.META: {
            "object": None if object_id is None else str(object_id), "category": dataset.classes[int(item[keys.LABEL])],
            "view": -1 if view is None else int(view), "azimuth": azimuth, "elevation": elevation,
        }}

    return decodable_batches(dataset, batch_size, tally, as_view)


def imagenet_v_suite(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    preprocess: Callable[[Any], Tensor],
    *,
    data: Path | None,
    out_dir: Path,
    device: str,
    batch_size: int,
    layout: Literal["classes", "objects"] = "classes",
    class_names: Path | None = None,
    prompts: SingleOrEnsemble = "ensemble",
    baseline: str | None = None,
    azimuth_bins: PositiveInt = 12,
    elevation_bins: PositiveInt = 3,
) -> dict[str, dict[str, float]]:
    """Viewpoint robustness on an ImageNet-V-style folder: per image top-1, and per object where images have one.

    Args:
        model: the CLIP model.
        tokenizer: its tokenizer.
        preprocess: its evaluation transform.
        data: the dataset folder (see :class:`~domainclip.domains.multiview.datasets.imagenet_v.ImageNetV`).
        out_dir: where the confusion matrices, ``imagenet_v_objects.csv``, the viewpoint plot and bins (when
            images have poses) and ``before_after.md`` go.
        device: where the model runs.
        batch_size: images (and prompts) per forward.
        layout: ``classes`` (a folder per class, OVT's ``imagenet-v/``; an image in a sub-folder of its
            class folder belongs to the object the sub-folder names) or ``objects`` (ViewFool's
            ``<object>_<n>/NNN.png``: a folder per object).
        class_names: the class names, one per line in sorted-folder order (OVT's ``gt_label_imv.txt``);
            default: the folder names. The prompts name these.
        prompts: ``single`` (``"a 3D render of a {category}."``) or ``ensemble`` (the mean over all of
            :data:`~domainclip.domains.multiview.captions.ZERO_SHOT_PROMPTS`).
        baseline: a second model evaluated on the same images (the "before" of the before / after table).
        azimuth_bins: azimuth bins of the viewpoint plot.
        elevation_bins: elevation bins of its heat map.

    Returns:
        ``{"imagenet_v/zeroshot_classification": {acc1, mean_per_class_recall, ..., num_skipped_objects}}``
        (``num_skipped_objects`` counts undecodable images), with ``worst_view_acc1``, ``consistency``,
        ``pairwise_agreement`` and ``num_objects`` when images name their ``object_id``; the baseline's as
        ``"imagenet_v/zeroshot_classification/baseline"``.
    """
    from domainclip.domains.multiview.datasets.imagenet_v import ImageNetV

    options = check_options(imagenet_v_suite, {"layout": layout, "class_names": class_names, "prompts": prompts,
                                               "baseline": baseline, "azimuth_bins": azimuth_bins,
                                               "elevation_bins": elevation_bins},
                            where=_IMAGENET_V, skip=SUITE_ENGINE_ARGS, require=False)
    root = require_data(data, _IMAGENET_V, f"an ImageNet-V-style folder: {ImageNetV.expected}")
    dataset = ImageNetV(root, layout=options["layout"], class_names=options["class_names"])  # fails before loading
    second = _load_baseline(options["baseline"], device)
    runs = {"model": (model, tokenizer, preprocess)}
    if second is not None:
        runs["baseline"] = (second[0], second[2], second[1])
    scored, labels = {}, {}
    for role, (net, tok, transform) in runs.items():
        dataset.transform = transform
        tally = CorruptTally()
        scored[role] = _score(
            net, tok, _image_batches(dataset, batch_size, tally), list(dataset.classes), device=device,
            batch_size=batch_size, prompts=options["prompts"], tally=lambda tally=tally: tally,
            nothing=f"{_IMAGENET_V}: no decodable image under {root}", suite=_IMAGENET_V,
        )
        labels[role] = _model_name(net)
    return _report(scored, labels, name="imagenet_v", task="imagenet_v/zeroshot_classification", out_dir=out_dir,
                   azimuth_bins=options["azimuth_bins"], elevation_bins=options["elevation_bins"],
                   title="ImageNet-V: zero-shot top-1 by view")
