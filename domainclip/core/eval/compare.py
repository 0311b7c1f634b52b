"""``domainclip compare``: one suite, several models, the same data, options, prompts and seeds.

:func:`compare_models` runs the suite for every model exactly as ``domainclip eval`` does
(:func:`evaluate_model`, which ``eval`` calls too) and writes, into a folder it owns
(:class:`~domainclip.core.outputs.OutputFolder` of kind ``"compare"``)::

    results.md / results.csv / results.json   one row per model: its name as given, what it resolved
                                              to (kind, path or hub id, revision, weights sha256) and
                                              every metric under the suite's (CLIP_benchmark) names
    models/<name>/                            that model's own suite output (results.json, plots)
    models/<name>/prompt_sets/<set>/          with --prompt-sensitivity: the other template sets
    plots/<task>__<metric>.png                one bar chart per metric, models side by side
    cache/<key digest>/                       each model's embeddings (:mod:`domainclip.core.eval.cache`)

Rerunning into the same folder with the same suite, data and options (more or fewer models) reuses
every model's cached embeddings, so adding a model computes only that model's. The cache key is the
model's identity (the sha256 of its weight files, or the architecture name and seed of a registry
model), the suite, the data (resolved path and a fingerprint of every file's name, size and
modification time), the options without the template-set option, the device, batch size and the
domainclip version; a change of any part starts a fresh cache entry, and entries no model of the
run used are removed at the end.

With ``prompt_sensitivity`` the suite runs once per template set it declares
(:func:`~domainclip.core.eval.prompts.template_set_option`), and every metric gets its mean,
standard deviation (population) and min-max over the sets beside the value of the set the options
chose; the bars show the mean with the standard deviation as error bars and a dot per set.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from domainclip.core.errors import InputError, OutputExistsError
from domainclip.core.eval.cache import EmbeddingCache
from domainclip.core.eval.prompts import TemplateSetOption, template_set_option
from domainclip.core.eval.report import _save_figure, atomic_write_text, scalar_metrics, to_jsonable, write_results
from domainclip.core.eval.suites import get_suite, run_suite
from domainclip.core.io import safe_key
from domainclip.core.models.loading import ModelSource, load_model, locate_model
from domainclip.core.outputs import OutputFolder, read_manifest

__all__ = [
    "CompareModel",
    "compare_models",
    "data_fingerprint",
    "eval_record",
    "evaluate_model",
    "plot_metric",
    "resolve_models",
]

#: Settings a rerun into the same folder must share with the compare that wrote it (models may differ).
SHARED_SETTINGS = ("suite", "data", "options", "prompt_sensitivity", "device", "batch_size")
#: Metric-name prefixes that are counts or chance levels, not scores: tabled, never charted.
_NOT_CHARTED = ("num_", "chance_")
#: Metrics that are chosen settings, not scores (the linear probe's regularisation): tabled, never charted.
_SETTINGS = ("lp_C",)


# ---------------------------------------------------------------------------------------------- one model
def eval_record(
    source: Mapping[str, Any], suite: str, data: Path | None, device: str, batch_size: int, options: Mapping[str, Any]
) -> dict[str, Any]:
    """What ``domainclip eval`` records beside a suite's results (its ``results.json`` fields).

    Args:
        source: the model's :meth:`~domainclip.core.models.loading.ModelSource.record`.
        suite: the suite's name.
        data: the ``--data`` folder.
        device: where the model ran.
        batch_size: images per forward.
        options: the suite options.
    """
    from domainclip import __version__

    return {"model": dict(source), "suite": suite, "data": data, "device": device, "batch_size": batch_size,
            "options": dict(options), "domainclip_version": __version__}


def evaluate_model(
    model: torch.nn.Module,
    tokenizer: Any,
    preprocess: Callable[[Any], torch.Tensor],
    suite: str,
    *,
    data: Path | None,
    out_dir: Path,
    device: str,
    batch_size: int,
    options: Mapping[str, Any],
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Run a suite on a loaded model and write ``out_dir/results.json`` with its eval record (``domainclip eval``).

    Args:
        model: a model from :func:`~domainclip.core.models.loading.load_model`.
        tokenizer: its tokenizer.
        preprocess: its evaluation transform.
        suite: the suite's name.
        data: the suite's data folder.
        out_dir: where the suite's plots and ``results.json`` go.
        device: where the model runs.
        batch_size: images per forward.
        options: the suite's checked options.

    Returns:
        ``(results, record)``: the suite's results and what was written beside them (:func:`eval_record`).
    """
    results = run_suite(model, tokenizer, preprocess, suite, data=data, out_dir=out_dir, device=device,
                        batch_size=batch_size, options=dict(options))
    source = getattr(model, "domainclip_source", None) or {"class": type(model).__name__}
    record = eval_record(source, suite, data, device, batch_size, options)
    write_results(results, Path(out_dir) / "results.json", extra=record)
    return results, record


def random_weights_warning(verb: str, spec: str, source: Mapping[str, Any]) -> None:
    """Warn on stderr when ``spec`` is an architecture name (random weights) rather than trained weights.

    Args:
        verb: the command, first in the line.
        spec: the model spec as given.
        source: its source record.
    """
    if source.get("random_weights"):
        print(f"domainclip {verb}: warning: {spec!r} is an architecture name, not trained weights: "
              f"evaluating random weights (seed {source.get('seed')})", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- resolving
@dataclass(frozen=True)
class CompareModel:
    """One model of a comparison.

    Args:
        spec: the model as the user named it (the row's name).
        source: what it resolves to (:func:`~domainclip.core.models.loading.locate_model`).
        folder: its output folder's name under ``models/``.
        label: its short name in the plots (the folder name of a path, else the spec).
    """

    spec: str
    source: ModelSource
    folder: str
    label: str


def _folder_name(spec: str) -> str:
    name = safe_key(spec.rstrip("/\\")).strip("_") or "model"
    if len(name) > 80:
        name = name[-60:].strip("_") + "-" + hashlib.sha256(spec.encode()).hexdigest()[:12]
    return name


def _check_resolvable(spec: str, source: ModelSource) -> None:
    """Refuse a registry-looking spec that names no architecture (or a zoo name the zoo lacks)."""
    from domainclip.core.models.registry import list_models
    from domainclip.core.zoo.registry import ZOO_PREFIX, get_zoo_entry

    if spec.startswith(ZOO_PREFIX):
        get_zoo_entry(spec[len(ZOO_PREFIX):])  # UnknownNameError with close matches
    elif source.kind == "registry" and spec not in list_models():
        close = difflib.get_close_matches(spec, list_models(), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InputError(f"model {spec!r} is not a run folder, hub folder, hf-hub:org/name, zoo:NAME or registered "
                         f"architecture{hint}")


def resolve_models(specs: Sequence[str]) -> list[CompareModel]:
    """Resolve every model spec before anything is evaluated.

    Args:
        specs: the models as given (run folders, hub folders, ``hf-hub:``/``zoo:`` names, architectures).

    Raises:
        InputError: no model, a model named twice (or two whose output folder names collide), or a
            spec that resolves to nothing.
        InputNotFoundError: a path that is neither a run nor a hub folder.
    """
    if not specs:
        raise InputError("compare needs at least one model (--models A B ...)")
    seen: dict[str, str] = {}
    for spec in specs:
        other = seen.setdefault(_folder_name(spec).casefold(), spec)
        if other != spec or list(specs).count(spec) > 1:
            raise InputError(f"model {spec!r} is named twice" if other == spec else
                             f"models {other!r} and {spec!r} would share the output folder models/{_folder_name(spec)}")
    models = []
    for spec in specs:
        source = locate_model(spec)
        _check_resolvable(spec, source)
        is_path = os.sep in spec or spec.startswith((".", "~")) or (Path(spec).expanduser().exists())
        label = Path(spec.rstrip("/\\")).name if is_path else spec
        models.append(CompareModel(spec, source, _folder_name(spec), label or spec))
    labels = [m.label for m in models]
    if len(set(labels)) < len(labels):  # two folders of the same name: show the specs
        models = [CompareModel(m.spec, m.source, m.folder, m.spec) for m in models]
    return models


# ---------------------------------------------------------------------------------------------- cache keys
def data_fingerprint(data: Path | None) -> dict[str, Any]:
    """What the cache key says about the data: resolved path, file count and a digest of names, sizes and mtimes.

    Args:
        data: a folder or file (``None``: the suite's generated default data).
    """
    if data is None:
        return {"path": None}
    root = Path(data).expanduser().resolve()
    h, count = hashlib.sha256(), 0
    if root.is_file():
        stat = root.stat()
        h.update(f"{root.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        count = 1
    elif root.is_dir():
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder) / name
                stat = path.stat()
                h.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
                count += 1
    return {"path": str(root), "files": count, "digest": h.hexdigest()}


def model_identity(source: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a source record that decide a model's weights (not where its folder is).

    Args:
        source: :meth:`~domainclip.core.models.loading.ModelSource.record` (``model.domainclip_source``).
    """
    from domainclip.core.zoo.registry import ZOO_PREFIX, get_zoo_entry

    identity = {k: v for k, v in source.items() if k not in ("spec", "path")}
    spec = str(source.get("spec", ""))
    if source.get("random_weights") or not source.get("weights_sha256"):
        identity["spec"] = spec  # an architecture name and its seed (or whatever names the weights)
    if spec.startswith(ZOO_PREFIX):
        entry = get_zoo_entry(spec[len(ZOO_PREFIX):])
        identity["zoo_files"] = {f"{s.role}/{f.name}": f.sha256 for s in entry.sources for f in s.files}
    return identity


def cache_key(source: Mapping[str, Any], suite: str, data: Path | None, options: Mapping[str, Any],
              prompt_option: TemplateSetOption | None, device: str, batch_size: int) -> dict[str, Any]:
    """The embedding cache key of one model's run of a suite (see the module docstring).

    Args:
        source: the model's source record.
        suite: the suite's name.
        data: the suite's data.
        options: the suite options.
        prompt_option: the suite's template-set option, left out of the key.
        device: where the model runs.
        batch_size: images per forward.
    """
    from domainclip import __version__

    kept = {k: v for k, v in options.items() if prompt_option is None or k != prompt_option.name}
    return to_jsonable({"model": model_identity(source), "suite": suite, "data": data_fingerprint(data),
                        "options": kept, "device": str(device), "batch_size": batch_size, "precision": "fp32",
                        "domainclip_version": __version__})


# ---------------------------------------------------------------------------------------------- tables
def _flat(results: Mapping[str, Mapping[str, Any]]) -> dict[str, float | int]:
    return {f"{task}/{metric}": value for task, metrics in results.items()
            for metric, value in scalar_metrics(metrics).items()}


def spread(runs: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean, population standard deviation, min and max of every metric over template-set runs.

    Args:
        runs: one suite result per template set.

    Returns:
        ``{task: {metric: {"mean", "std", "min", "max", "n"}}}`` for the metrics every run reports.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for task, metrics in runs[0].items():
        for metric in scalar_metrics(metrics):
            values = np.array([float(r[task][metric]) for r in runs if metric in r.get(task, {})])
            if len(values) == len(runs):
                out.setdefault(task, {})[metric] = {"mean": float(values.mean()), "std": float(values.std()),
                                                    "min": float(values.min()), "max": float(values.max()),
                                                    "n": len(values)}
    return out


def _resolved(source: Mapping[str, Any]) -> str:
    return str(source.get("hub_id") or source.get("path") or source.get("spec") or "")


def _sha_text(source: Mapping[str, Any], short: bool = False) -> str:
    hashes = source.get("weights_sha256") or {}
    if not hashes:
        return f"random (seed {source.get('seed')})" if source.get("random_weights") else ""
    return "; ".join(f"{name}={sha[:12] if short else sha}" for name, sha in hashes.items())


def _fmt(value: float | int) -> str:
    return str(value) if isinstance(value, int) else ("nan" if math.isnan(value) else f"{value:.4g}")


def _markdown(rows: Sequence[Mapping[str, Any]], header: Mapping[str, Any]) -> str:
    lines = ["# Model comparison", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items() if isinstance(v, str | int | float | bool)]
    lines += ["", "## Models", "", "| model | kind | resolved to | revision | weights sha256 |",
              "|---|---|---|---|---|"]
    for row in rows:
        s = row["source"]
        lines.append(f"| {row['name']} | {s.get('kind', '')} | {_resolved(s)} | {s.get('revision') or '-'} | "
                     f"{_sha_text(s, short=True) or '-'} |")
    tasks: list[str] = []
    for row in rows:
        tasks.extend(t for t in row["results"] if t not in tasks)
    sensitivity = any("prompt_sensitivity" in row for row in rows)
    for task in tasks:
        metrics: list[str] = []
        for row in rows:
            metrics.extend(m for m in scalar_metrics(row["results"].get(task, {})) if m not in metrics)
        lines += ["", f"## {task}", ""]
        if sensitivity:
            lines += ["Each cell: the value with the chosen prompts; mean ± std [min–max] over the template sets.", ""]
        lines += ["| model | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
        for row in rows:
            values = scalar_metrics(row["results"].get(task, {}))
            cells = []
            for metric in metrics:
                if metric not in values:
                    cells.append("-")
                    continue
                cell = _fmt(values[metric])
                s = row.get("prompt_sensitivity", {}).get(task, {}).get(metric)
                if s is not None:
                    cell += f"; {s['mean']:.4g} ± {s['std']:.2g} [{s['min']:.4g}–{s['max']:.4g}]"
                cells.append(cell)
            lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv(rows: Sequence[Mapping[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        for name in _flat(row["results"]):
            if name not in columns:
                columns.append(name)
    sensitivity = any("prompt_sensitivity" in row for row in rows)
    header = ["model", "kind", "resolved", "revision", "weights_sha256"]
    for name in columns:
        header += [name] + ([f"{name}:{s}" for s in ("mean", "std", "min", "max")] if sensitivity else [])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        s, values = row["source"], _flat(row["results"])
        spreads = {f"{t}/{m}": v for t, ms in row.get("prompt_sensitivity", {}).items() for m, v in ms.items()}
        cells = [row["name"], s.get("kind", ""), _resolved(s), s.get("revision") or "", _sha_text(s)]
        for name in columns:
            cells.append(repr(values[name]) if name in values else "")
            if sensitivity:
                cells += [repr(spreads[name][k]) if name in spreads else "" for k in ("mean", "std", "min", "max")]
        writer.writerow(cells)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- plots
def plot_metric(
    path: Path,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    spreads: Sequence[Mapping[str, Any] | None] | None = None,
    set_values: Sequence[Sequence[float]] | None = None,
    chance: float | None = None,
) -> Path:
    """One bar per model, its value written above it; error bars and per-set dots for prompt sensitivity.

    Args:
        path: PNG to write.
        title: the figure title (``task: metric``).
        labels: one name per model.
        values: the bar heights (the mean over template sets when ``spreads`` is given).
        spreads: per model ``{"std", "min", "max"}`` (or ``None``): drawn as ±std error bars.
        set_values: per model, the metric's value under each template set (dots).
        chance: the chance level the suite reports, drawn as a dashed line.
    """
    from matplotlib.figure import Figure

    n = len(labels)
    fig = Figure(figsize=(max(4.0, 1.1 * n + 2.0), 4.0))
    ax = fig.subplots()
    x = np.arange(n)
    colors = [f"C{i % 10}" for i in range(n)]
    errors = None
    if spreads is not None:
        errors = [s["std"] if s is not None else 0.0 for s in spreads]
    bars = ax.bar(x, values, color=colors, width=0.6, yerr=errors, capsize=6 if errors else 0,
                  error_kw={"elinewidth": 1.5, "ecolor": "black"})
    if set_values is not None:
        for i, points in enumerate(set_values):
            ax.scatter(np.full(len(points), x[i]) + np.linspace(-0.15, 0.15, len(points)), points, s=14,
                       color="black", zorder=3, label="template sets" if i == 0 else None)
    top = max([*values, *(v + e for v, e in zip(values, errors or [0.0] * n)),
               *(p for pts in (set_values or []) for p in pts), chance or 0.0, 1e-9])
    for i, (bar, value) in enumerate(zip(bars, values)):
        text = _fmt(value) if errors is None else f"{value:.3g}\n±{errors[i]:.2g}"
        height = value + (errors[i] if errors else 0.0)
        if set_values is not None and set_values[i]:
            height = max(height, *set_values[i])
        ax.text(bar.get_x() + bar.get_width() / 2, height + 0.02 * top, text, ha="center", va="bottom", fontsize=8)
    if chance is not None:
        ax.axhline(chance, color="gray", ls="--", lw=1, label=f"chance ({chance:.3g})")
    ax.set_xticks(x, labels=list(labels), rotation=20 if n > 3 else 0, ha="right" if n > 3 else "center", fontsize=8)
    ax.set_ylim(0, top * 1.2)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if chance is not None or set_values is not None:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save_figure(fig, path)


def _plots(rows: Sequence[Mapping[str, Any]], labels: Sequence[str], folder: Path) -> list[Path]:
    written = []
    pairs: list[tuple[str, str]] = []
    for row in rows:
        for task, metrics in row["results"].items():
            pairs.extend((task, m) for m in scalar_metrics(metrics) if (task, m) not in pairs)
    for task, metric in pairs:
        if metric.startswith(_NOT_CHARTED) or metric in _SETTINGS:
            continue
        present = [(row, label) for row, label in zip(rows, labels) if metric in row["results"].get(task, {})]
        sens = [row.get("prompt_sensitivity", {}).get(task, {}).get(metric) for row, _ in present]
        use_spread = any(s is not None for s in sens)
        values = [float(s["mean"]) if use_spread and s is not None else float(row["results"][task][metric])
                  for (row, _), s in zip(present, sens)]
        set_values = None
        if use_spread:
            set_values = [[float(r[task][metric]) for r in row.get("prompt_sets", {}).values()
                           if metric in r.get(task, {})] for row, _ in present]
        chance = next((float(row["results"][task][f"chance_{metric}"]) for row, _ in present
                       if f"chance_{metric}" in row["results"][task]), None)
        name = f"{safe_key(task)}__{safe_key(metric)}.png"
        suffix = " (mean ± std over template sets)" if use_spread else ""
        written.append(plot_metric(folder / name, f"{task}: {metric}{suffix}", [label for _, label in present],
                                   values, spreads=sens if use_spread else None, set_values=set_values,
                                   chance=chance))
    return written


# ---------------------------------------------------------------------------------------------- the command
def _check_rerun(out: Path, settings: Mapping[str, Any], overwrite: bool) -> bool:
    """Whether ``out`` holds a compare with the same shared settings (a rerun that reuses its cache)."""
    manifest = read_manifest(out)
    if overwrite or manifest is None or manifest.get("kind") != "compare":
        return False
    previous = manifest.get("args", {})
    now = json.loads(json.dumps(to_jsonable(dict(settings))))
    differ = [k for k in SHARED_SETTINGS if previous.get(k) != now.get(k)]
    if differ:
        raise OutputExistsError(
            f"output folder {out} holds a compare with other {', '.join(differ)} ("
            + ", ".join(f"{k}={previous.get(k)!r}" for k in differ)
            + "); pass --overwrite to replace it (its cache too), or choose another folder")
    return True


def compare_models(
    specs: Sequence[str],
    suite: str,
    out: Path,
    *,
    data: Path | None = None,
    options: Mapping[str, Any] | None = None,
    prompt_sensitivity: bool = False,
    device: str = "cpu",
    batch_size: int = 64,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate every model on one suite and write the comparison (layout in the module docstring).

    Every spec is resolved before any model is loaded, so a typo stops the command at once.

    Args:
        specs: the models: run folders, hub folders, ``hf-hub:org/name[@rev]``, ``zoo:NAME`` or architectures.
        suite: the suite's name.
        out: the comparison folder; rerunning into it with the same suite, data and options reuses the
            cached embeddings of models it already holds.
        data: the suite's data folder.
        options: the suite's checked options (one set for every model).
        prompt_sensitivity: also run every template set the suite declares and report the spread.
        device: where the models run.
        batch_size: images per forward.
        overwrite: replace an earlier comparison (and its cache) in ``out``.
        progress: print one line per model run on stderr.

    Returns:
        The ``results.json`` payload.

    Raises:
        InputError: no model, a duplicate, a spec that resolves to nothing, or ``prompt_sensitivity``
            for a suite without template sets.
        UnknownNameError: an unknown suite.
    """
    from domainclip import __version__

    options = dict(options or {})
    suite_fn = get_suite(suite)
    prompt_option = template_set_option(suite_fn)
    if prompt_sensitivity and prompt_option is None:
        raise InputError(f"--prompt-sensitivity: suite {suite} declares no template sets (an option annotated "
                         "with domainclip.core.eval.prompts.TEMPLATE_SETS)")
    models = resolve_models(list(specs))
    out = Path(out)
    settings = {"models": list(specs), "suite": suite, "data": data, "options": options,
                "prompt_sensitivity": prompt_sensitivity, "device": device, "batch_size": batch_size}
    rerun = _check_rerun(out, settings, overwrite) if out.is_dir() else False
    cache_root = out / "cache"
    has_cache = lambda folder: (folder / "cache").is_dir()  # noqa: E731  keep what a rerun can reuse
    rows: list[dict[str, Any]] = []
    with OutputFolder(out, kind="compare", command="compare", args=settings, overwrite=overwrite and not rerun,
                      resume=rerun, keep_on_error=has_cache):
        used: set[str] = set()
        for number, entry in enumerate(models, 1):
            if progress:
                print(f"domainclip compare: [{number}/{len(models)}] {entry.spec}", file=sys.stderr)
            model, preprocess, tokenizer = load_model(entry.spec, device=device)
            source = dict(model.domainclip_source)
            random_weights_warning("compare", entry.spec, source)
            key = cache_key(source, suite, data, options, prompt_option, device, batch_size)
            cache = EmbeddingCache(cache_root, key, model)
            used.add(cache.digest)
            model_dir = out / "models" / entry.folder
            if model_dir.exists():
                shutil.rmtree(model_dir)  # an earlier compare's output of this model: rewritten whole
            with cache.activate():
                results, _ = evaluate_model(model, tokenizer, preprocess, suite, data=data, out_dir=model_dir,
                                            device=device, batch_size=batch_size, options=options)
            row: dict[str, Any] = {"name": entry.spec, "label": entry.label, "source": source, "results": results,
                                   "output": f"models/{entry.folder}"}
            if prompt_sensitivity:
                assert prompt_option is not None
                chosen = options.get(prompt_option.name, prompt_option.default)
                sets: dict[str, dict[str, dict[str, float]]] = {}
                for choice in prompt_option.choices:
                    if choice == chosen:
                        sets[choice] = results
                        continue
                    with cache.activate():
                        sets[choice], _ = evaluate_model(
                            model, tokenizer, preprocess, suite, data=data,
                            out_dir=model_dir / "prompt_sets" / safe_key(choice), device=device,
                            batch_size=batch_size, options={**options, prompt_option.name: choice})
                row["prompt_sets"] = sets
                row["prompt_sensitivity"] = spread(list(sets.values()))
            row["cache"] = {"key": cache.digest, **cache.stats.as_dict()}
            rows.append(row)
            del model
        for stale in (p for p in cache_root.iterdir() if p.name not in used) if cache_root.is_dir() else ():
            shutil.rmtree(stale)
        header = {"suite": suite, "data": str(data) if data is not None else "(generated)",
                  "options": json.dumps(to_jsonable(options)), "device": device, "batch_size": batch_size,
                  "prompt_sensitivity": prompt_sensitivity, "domainclip_version": __version__}
        if prompt_option is not None:
            header["template_sets"] = f"{prompt_option.name}: {', '.join(prompt_option.choices)}"
        payload = to_jsonable({**header, "options": options, "models": rows})
        atomic_write_text(out / "results.json", json.dumps(payload, indent=2, allow_nan=False) + "\n")
        atomic_write_text(out / "results.md", _markdown(rows, header))
        atomic_write_text(out / "results.csv", _csv(rows))
        plots_dir = out / "plots"
        if plots_dir.exists():
            shutil.rmtree(plots_dir)
        _plots(rows, [r["label"] for r in rows], plots_dir)
    return payload
