"""Eval reports: results JSON + markdown table, and the plots a person would rather look at.

Every file is written atomically (temporary file in the same folder, then ``os.replace``), so a
crashed or interrupted eval never leaves a half-written report. Plots use matplotlib's object API
with the Agg renderer (no ``pyplot``, no global backend switch), imported only when plotting.
"""

from __future__ import annotations

import io
import json
import math
import numbers
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from domainclip.core.io import atomic_write_bytes, atomic_write_text, read_jsonl

#: What the plots accept as an image.
DisplayImage = Image.Image | torch.Tensor | np.ndarray

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "format_markdown_table",
    "plot_confusion_matrix",
    "plot_loss_curve",
    "plot_retrieval_examples",
    "scalar_metrics",
    "to_jsonable",
    "write_results",
]


def _is_scalar(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and value.ndim == 0
    return isinstance(value, numbers.Real)


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    """Keep the scalar entries of a metrics dict (drops confusion matrices, predictions, examples)."""
    out: dict[str, float | int] = {}
    for key, value in metrics.items():
        if _is_scalar(value):
            value = value.item() if isinstance(value, torch.Tensor | np.generic) else value
            out[key] = value if isinstance(value, int) else float(value)
    return out


def to_jsonable(obj: Any) -> Any:
    """Convert tensors, NumPy values, paths and tuples to JSON types; non-finite floats become ``None``."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, torch.Tensor | np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, list | tuple | set):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, str | bool | int | float):
        return obj
    raise TypeError(f"cannot write a {type(obj).__name__} to a results file: {obj!r}")


def _format_value(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "nan" if math.isnan(value) else f"{value:.4g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown table with one row per task and one column per scalar metric (4 significant digits).

    Columns appear in the order metrics are first seen; a task without a metric shows ``-``.
    Non-scalar entries (confusion matrices, examples) are left out.
    """
    rows = {task: scalar_metrics(metrics) for task, metrics in results.items()}
    columns: list[str] = []
    for metrics in rows.values():
        columns.extend(k for k in metrics if k not in columns)
    lines = [
        "| " + " | ".join(["task", *(_cell(c) for c in columns)]) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|",
    ]
    for task, metrics in rows.items():
        cells = [_format_value(metrics[c]) if c in metrics else "-" for c in columns]
        lines.append("| " + " | ".join([_cell(task), *cells]) + " |")
    return "\n".join(lines) + "\n"


def write_results(
    results: Mapping[str, Mapping[str, Any]], out_json: Path, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write ``{**extra, "results": results}`` as JSON and the markdown table beside it (``.md``).

    Args:
        results: task name -> metrics (non-scalar metrics are kept in the JSON, not the table).
        out_json: the JSON path; the table goes to the same path with suffix ``.md``.
        extra: run information stored at the top level of the JSON (model, suite, device, data...)
            and listed above the table; a mapping (the model's source record of
            :meth:`~domainclip.core.hub.ModelSource.record`) is listed one field per line.

    Returns:
        ``out_json``.

    """
    out_json = Path(out_json)
    extra = dict(extra or {})
    if "results" in extra:
        raise ValueError("write_results: 'results' is reserved; rename that key in extra")
    payload = to_jsonable({**extra, "results": results})
    atomic_write_text(out_json, json.dumps(payload, indent=2, allow_nan=False) + "\n")
    lines = ["# Evaluation results", ""]
    for key, value in extra.items():
        lines.extend(_extra_lines(key, value))
    if len(lines) > 2:
        lines.append("")
    atomic_write_text(out_json.with_suffix(".md"), "\n".join(lines) + "\n" + format_markdown_table(results))
    return out_json


def _extra_lines(key: str, value: Any) -> list[str]:
    """Markdown list lines for one ``extra`` entry of :func:`write_results` (mappings one field per line)."""
    if isinstance(value, Mapping):
        return [line for k, v in value.items() for line in _extra_lines(f"{key}.{k}", v)]
    if isinstance(value, str | Path | bool) or _is_scalar(value):
        return [f"- **{key}**: {value}"]
    return []


def _save_figure(fig: Figure, path: Path, dpi: int = 100) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(Path(path), buf.getvalue())


def plot_confusion_matrix(
    cm: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
    classnames: Sequence[str],
    path: Path,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """Plot a confusion matrix (rows = true class, columns = predicted) as a PNG.

    Args:
        cm: ``C x C`` counts, e.g. ``zero_shot_classify(...)["confusion_matrix"]``.
        classnames: the ``C`` class names.
        path: PNG to write.
        normalize: divide each row by its total so cells are per-class recall.
        title: figure title.

    Returns:
        ``path``.

    """
    from matplotlib.figure import Figure

    matrix = np.asarray(cm.tolist() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {matrix.shape}")
    if len(classnames) != matrix.shape[0]:
        raise ValueError(f"{len(classnames)} class names for a {matrix.shape[0]}-class confusion matrix")
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    n = matrix.shape[0]
    side = max(4.0, 0.45 * n + 2.5)
    fig = Figure(figsize=(side, side))
    ax = fig.subplots()
    im = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(matrix.max(), 1.0))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=list(classnames), rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=list(classnames), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        threshold = 0.5 * (1.0 if normalize else matrix.max())
        for i in range(n):
            for j in range(n):
                value = matrix[i, j]
                text = f"{value:.2f}" if normalize else f"{value:.0f}"
                color = "white" if value > threshold else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix"))
    return _save_figure(fig, path)


def _display_array(image: DisplayImage) -> np.ndarray:
    """Make an ``(H, W, 3)`` array for matplotlib from PIL, ``(C, H, W)`` tensors or ``(H, W, C)`` arrays.

    Float tensors outside ``[0, 1]`` (e.g. mean/std-normalised model inputs) are min-max rescaled.
    """
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"image tensors must be (C, H, W) with C in (1, 3), got {tuple(image.shape)}")
        array = image.detach().cpu().permute(1, 2, 0).numpy()
    else:
        array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.dtype == np.uint8:
        return array
    array = array.astype(np.float64)
    lo, hi = float(array.min()), float(array.max())
    if lo < 0.0 or hi > 1.0:
        array = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
    return array


def plot_retrieval_examples(
    images: Sequence[DisplayImage] | Mapping[int, DisplayImage] | Callable[[int], DisplayImage],
    query_texts: Sequence[str],
    retrieved: Sequence[Sequence[int]],
    relevant: Sequence[int | Collection[int]],
    path: Path,
    *,
    title: str | None = None,
) -> Path:
    """Plot text->image retrieval examples: one row per caption (cut at 90 characters) with its top-k images.

    Args:
        images: the gallery (PIL images, ``(C, H, W)`` tensors or ``(H, W, C)`` arrays), as a sequence,
            a mapping ``gallery index -> image`` holding only the retrieved ones, or a function
            ``gallery index -> image`` (asked for the retrieved ones only).
        query_texts: one caption per row.
        retrieved: per query, gallery indices of the retrieved images, best first.
        relevant: per query, the gallery index (or indices) that count as correct; correct images
            are framed green, wrong ones red.
        path: PNG to write.
        title: figure title.

    Returns:
        ``path``.

    """
    from matplotlib.figure import Figure

    if not (len(query_texts) == len(retrieved) == len(relevant)):
        raise ValueError(
            f"query_texts, retrieved and relevant differ in length: "
            f"{len(query_texts)}, {len(retrieved)}, {len(relevant)}"
        )
    if not query_texts:
        raise ValueError("plot_retrieval_examples needs at least one query")
    k = max(len(r) for r in retrieved)
    if k == 0:
        raise ValueError("plot_retrieval_examples: no retrieved images to show")
    rows = len(query_texts) + (1 if title else 0)
    heights = ([0.25] if title else []) + [1.0] * len(query_texts)
    fig = Figure(figsize=(1.6 * k + 0.4, 2.0 * len(query_texts) + (0.5 if title else 0.0)))
    subfigs = list(fig.subfigures(rows, 1, squeeze=False, height_ratios=heights)[:, 0])
    if title:
        subfigs.pop(0).suptitle(title, fontsize=11)
    for subfig, text, ranked, correct in zip(subfigs, query_texts, retrieved, relevant):
        correct_set = {correct} if isinstance(correct, int) else set(correct)
        text = text if len(text) <= 90 else text[:87] + "..."
        subfig.suptitle(f"\u201c{text}\u201d", fontsize=9, x=0.02, ha="left")
        axes = subfig.subplots(1, k, squeeze=False)[0]
        for rank, ax in enumerate(axes):
            ax.set_xticks([])
            ax.set_yticks([])
            if rank >= len(ranked):
                ax.set_axis_off()
                continue
            index = int(ranked[rank])
            if callable(images):
                image = images(index)
            elif index in images if isinstance(images, Mapping) else 0 <= index < len(images):
                image = images[index]
            else:
                raise IndexError(f"retrieved image {index} is not in the gallery of {len(images)} images")
            ax.imshow(_display_array(image))
            color = "#1a9850" if index in correct_set else "#d73027"
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(4)
            ax.set_xlabel(f"#{rank + 1} (img {index})", fontsize=7)
    return _save_figure(fig, path)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"training log not found: {path}")
    return [record for _, record in read_jsonl(path)]


def plot_loss_curve(jsonl_log: Path, path: Path, *, title: str | None = None) -> Path:
    """Plot every numeric ``loss*`` field of a JSON-lines training log against ``step``.

    Args:
        jsonl_log: one JSON object per line, e.g. ``{"step": 10, "loss": 2.3, "loss/clip": 2.1, "lr": ...}``;
            records without ``step`` use their position among the records.
        path: PNG to write.
        title: figure title.

    Returns:
        ``path``.

    """
    from matplotlib.figure import Figure

    jsonl_log = Path(jsonl_log)
    series: dict[str, tuple[list[float], list[float]]] = {}
    for position, record in enumerate(_read_jsonl(jsonl_log)):
        step = record.get("step", position)
        for key, value in record.items():
            if key.startswith("loss") and _is_scalar(value):
                xs, ys = series.setdefault(key, ([], []))
                xs.append(float(step))
                ys.append(float(value))
    if not series:
        raise ValueError(f"{jsonl_log}: no record has a numeric field whose name starts with 'loss'")
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for key, (xs, ys) in series.items():
        ax.plot(xs, ys, label=key, marker="." if len(xs) < 50 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or jsonl_log.name)
    return _save_figure(fig, path)
