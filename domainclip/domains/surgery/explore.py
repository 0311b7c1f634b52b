"""Zero-shot phase timelines of surgical videos: phase probabilities per second, and their picture.

Data first, figures second::

    from domainclip.domains.surgery.explore import phase_ground_truth, phase_timeline, plot_phase_timeline
    from domainclip.domains.surgery.labels import CHOLEC80_PHASES, cholec80_phase_prompts

    timeline = phase_timeline("video41.mp4", "zoo:SurgVLP", CHOLEC80_PHASES, prompts=cholec80_phase_prompts())
    truth = phase_ground_truth("phase_annotations/video41-phase.txt", timeline.times)
    fig = plot_phase_timeline(timeline, ground_truth=truth)

:func:`phase_timeline` cuts the video into time points every ``step_s`` seconds. Time point ``k``
stands for ``[k * step_s, (k + 1) * step_s)`` and is embedded as the model expects a clip:

* an image CLIP (also a video tower scored frame by frame, as the CAMMA protocol does) embeds the
  one frame shown at ``k * step_s``: at ``step_s=1`` on a 25 fps Cholec80 video these are frames
  0, 25, 50, ..., the frames the 1 fps phase benchmarks score;
* a video tower (a model with ``encode_video``: the ``video`` and ``spacetime`` towers) embeds its
  ``num_frames`` frames, taken at the segment centres of a ``clip_s``-second window centred on the
  time point's middle (the ``"uniform"`` sampler its training decoder uses; the window is shifted
  to stay inside the video).

Each embedding is compared with the phases' text embeddings (a prompt ensemble per phase) and the
softmax of the scaled cosine similarities gives the phase probabilities. With ``smooth_s``, the
probabilities are averaged over a centred moving window before the predicted phase is taken (see
:func:`smooth_probabilities`). Frames are decoded exactly (by index, through
:func:`~domainclip.domains.surgery.video.open_video`), ``batch_size`` time points at a time, so memory
does not grow with the video's length.

:func:`phase_ground_truth` reads a Cholec80 ``videoNN-phase.txt`` annotation with the dataset
adapter's parser and aligns it to the timeline's time points: the label of time ``t`` is the
annotation row of the 25 fps frame shown at ``t``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from domainclip.core.errors import InputError, InputNotFoundError, OutputExistsError
from domainclip.core.explore import LoadedModel, ModelLike, class_colours, resolve_model
from domainclip.domains.surgery.video import Backend, Video, open_video, sample_indices

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "PhaseTimeline",
    "phase_ground_truth",
    "phase_timeline",
    "plot_phase_timeline",
    "score_timeline",
    "smooth_probabilities",
]

#: Frames decoded at once when a batch of time points needs many (bounds the raw frames held in memory).
DECODE_CHUNK = 16


# =========================================================================== the result
@dataclass(frozen=True)
class PhaseTimeline:
    """Phase probabilities of one video, one row per time point.

    Args:
        video: the video (its path, or the name of an open :class:`~domainclip.domains.surgery.video.Video`).
        phases: the ``C`` phase names, in column order.
        times: ``(T,)`` start of each time point in seconds; time point ``k`` covers ``[times[k], times[k] + step_s)``.
        probabilities: ``(T, C)`` phase probabilities per time point (smoothed when ``smooth_s`` is set);
            each row sums to 1.
        raw_probabilities: ``(T, C)`` the probabilities before smoothing (equal to ``probabilities`` without it).
        predicted: ``(T,)`` index of the most probable phase per time point (from ``probabilities``).
        frames: ``(T, F)`` the frame indices embedded for each time point (``F = 1`` for an image model).
        step_s: seconds between time points.
        smooth_s: length of the moving-average window in seconds, or ``None``.
        clip_s: seconds of video a video tower saw per time point (``None`` for an image model).
        duration_s: the video's length in seconds.
        fps: the video's frame rate.
        model: what the model was loaded from.
    """

    video: str
    phases: tuple[str, ...]
    times: np.ndarray
    probabilities: np.ndarray
    raw_probabilities: np.ndarray
    predicted: np.ndarray
    frames: np.ndarray
    step_s: float
    smooth_s: float | None
    clip_s: float | None
    duration_s: float
    fps: float
    model: str

    def __len__(self) -> int:
        return int(self.times.shape[0])

    @property
    def ends(self) -> np.ndarray:
        """``(T,)`` end of each time point in seconds (the last one ends with the video)."""
        return np.minimum(self.times + self.step_s, self.duration_s)

    @property
    def predicted_phases(self) -> list[str]:
        """The predicted phase's name per time point."""
        return [self.phases[i] for i in self.predicted.tolist()]

    def segments(self) -> list[tuple[str, float, float]]:
        """Runs of consecutive time points with the same predicted phase: ``(phase, start_s, end_s)``."""
        return [(self.phases[label], start, end) for label, start, end in _runs(self.predicted, self.times, self.ends)]

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per time point: ``time_s``, ``end_s``, ``phase`` and ``p_<phase>`` per phase (a table)."""
        rows = []
        for k in range(len(self)):
            row: dict[str, Any] = {"time_s": float(self.times[k]), "end_s": float(self.ends[k]),
                                   "phase": self.phases[int(self.predicted[k])]}
            row.update({f"p_{name}": float(p) for name, p in zip(self.phases, self.probabilities[k])})
            rows.append(row)
        return rows

    def to_csv(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write :meth:`to_rows` as a CSV file.

        Args:
            path: the file to write.
            overwrite: replace an existing file (otherwise an existing file is refused).

        Raises:
            OutputExistsError: ``path`` exists and ``overwrite`` is false.
        """
        target = Path(path)
        if target.exists() and not overwrite:
            raise OutputExistsError(f"{target} exists; pass overwrite=True to replace it")
        rows = self.to_rows()
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with open(partial, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["time_s", "end_s", "phase"])
            writer.writeheader()
            writer.writerows(rows)
        partial.replace(target)
        return target


def _runs(labels: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> list[tuple[Any, float, float]]:
    """``(label, start, end)`` of each run of equal consecutive labels."""
    out: list[tuple[Any, float, float]] = []
    begin = 0
    values = list(labels)
    for k in range(1, len(values) + 1):
        if k == len(values) or values[k] != values[begin]:
            out.append((values[begin], float(starts[begin]), float(ends[k - 1])))
            begin = k
    return out


# =========================================================================== computing
def _phase_prompts(phases: Sequence[str], prompts: Mapping[str, Sequence[str]] | Sequence[str] | None) -> dict:
    """``{phase: [prompt, ...]}`` from the accepted ``prompts`` spellings (checked)."""
    if isinstance(phases, str):
        raise InputError(f"phases must be a list of phase names, not the single string {phases!r}")
    names = [str(p) for p in phases]
    if not names:
        raise InputError("phases is empty: give at least one phase name")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"phases lists {', '.join(map(repr, duplicates))} more than once")
    if prompts is None:
        return {name: [name] for name in names}
    if isinstance(prompts, str):
        prompts = [prompts]
    if isinstance(prompts, Mapping):
        missing = [n for n in names if n not in prompts]
        if missing:
            raise InputError(f"prompts has no entry for the phase(s) {', '.join(map(repr, missing))}")
        out = {}
        for name in names:
            group = prompts[name]
            group = [group] if isinstance(group, str) else list(group)
            if not group:
                raise InputError(f"prompts[{name!r}] is empty: give at least one prompt per phase")
            out[name] = [str(p) for p in group]
        return out
    templates = [str(t) for t in prompts]
    if not templates or any("{}" not in t for t in templates):
        raise InputError("prompts given as a list must be templates with '{}' for the phase name, "
                         "e.g. ['a laparoscopic video frame during {}.']")
    return {name: [t.format(name) for t in templates] for name in names}


def _time_points(duration: float, step_s: float) -> np.ndarray:
    count = max(1, math.ceil(duration / step_s - 1e-9))
    return np.arange(count, dtype=np.float64) * step_s


def _frame_plan(video: Video, times: np.ndarray, step_s: float, num_frames: int | None,
                clip_s: float) -> np.ndarray:
    """``(T, F)`` frame indices per time point: the frame shown at each time, or a clip's frames."""
    if num_frames is None:
        return video.index_at(times)[:, None]
    duration = video.duration
    span = min(clip_s, duration)
    plan = np.empty((times.size, num_frames), dtype=np.int64)
    for k, t in enumerate(times.tolist()):
        start = min(max(0.0, t + step_s / 2 - span / 2), max(0.0, duration - span))
        plan[k] = sample_indices("uniform", video.num_frames, start, start + span, video.fps, n=num_frames)
    return plan


def _embed(loaded: LoadedModel, video: Video, plan: np.ndarray, video_tower: bool) -> torch.Tensor:
    """L2-normalised embeddings ``(B, D)`` of the time points whose frames ``plan`` ``(B, F)`` lists."""
    from PIL import Image

    unique = np.unique(plan)
    tensors: dict[int, torch.Tensor] = {}
    for begin in range(0, unique.size, DECODE_CHUNK):
        chunk = unique[begin:begin + DECODE_CHUNK]
        for index, frame in zip(chunk.tolist(), video.get_frames(chunk)):
            tensors[index] = loaded.preprocess(Image.fromarray(frame))
    batch = torch.stack([torch.stack([tensors[i] for i in row]) for row in plan.tolist()]).to(loaded.device)
    with torch.no_grad():
        if video_tower:
            features = loaded.model.encode_video(batch, normalize=True)
        else:
            b, f = batch.shape[:2]
            frames = loaded.model.encode_image(batch.flatten(0, 1), normalize=True).reshape(b, f, -1)
            features = F.normalize(frames.mean(1), dim=-1)
    return features.float().cpu()


def smooth_probabilities(probabilities: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of per-time-point probabilities over ``window`` time points.

    The window of time point ``k`` is ``[k - window // 2, k + (window - 1) // 2]``, cut at the
    video's ends (there the mean is over the points that exist), so every row is still a
    probability distribution and no phase leaks in from outside the video.

    Args:
        probabilities: ``(T, C)`` probabilities.
        window: number of time points averaged (1 leaves them as they are).

    Returns:
        ``(T, C)`` smoothed probabilities, ``float32``.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    if window < 1:
        raise InputError(f"the smoothing window must be at least one time point, got {window}")
    total = probs.shape[0]
    if window == 1 or total == 0:
        return probs.astype(np.float32)
    cumulative = np.concatenate([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0)])
    k = np.arange(total)
    lo = np.clip(k - window // 2, 0, total)
    hi = np.clip(k + (window - 1) // 2 + 1, 0, total)
    return ((cumulative[hi] - cumulative[lo]) / (hi - lo)[:, None]).astype(np.float32)


def phase_timeline(
    video: str | Path | Video,
    model: ModelLike,
    phases: Sequence[str],
    *,
    prompts: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
    step_s: float = 1.0,
    smooth_s: float | None = None,
    clip_s: float | None = None,
    batch_size: int = 32,
    backend: Backend = "auto",
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> PhaseTimeline:
    """Zero-shot phase probabilities of a surgical video, one row every ``step_s`` seconds.

    See the module docstring for which frames each time point embeds.

    Args:
        video: a video file, a folder of frames (with ``fps.txt``), or an open
            :class:`~domainclip.domains.surgery.video.Video` (left open).
        model: any model spelling of :func:`~domainclip.core.explore.resolve_model` (run or hub folder,
            ``hf-hub:...``, ``zoo:NAME``, a ``load_model`` tuple, a ``LoadedModel``).
        phases: the phase names, in the order of the probability columns (e.g.
            :data:`~domainclip.domains.surgery.labels.CHOLEC80_PHASES`).
        prompts: the text each phase is recognised by: ``{phase: [prompt, ...]}`` (every phase's
            prompt embeddings are averaged, e.g.
            :func:`~domainclip.domains.surgery.labels.cholec80_phase_prompts`), a list of templates
            with ``{}`` filled with each phase name, or ``None`` for the phase names themselves.
        step_s: seconds between time points (1: a timeline per second).
        smooth_s: average the probabilities over a centred window of this many seconds
            (``round(smooth_s / step_s)`` time points, see :func:`smooth_probabilities`) before
            taking the predicted phase; ``None`` for no smoothing.
        clip_s: seconds of video a video tower sees per time point (default ``step_s``: exactly the
            time point's own span); ignored for image models.
        batch_size: time points embedded per forward pass (bounds the frames held in memory).
        backend: video decoder (``"auto"``, ``"decord"``, ``"pyav"``).
        device: where the model runs.
        progress: show a progress bar over time points.

    Returns:
        A :class:`PhaseTimeline`.

    Raises:
        InputNotFoundError: the video does not exist.
        VideoDecodeError: the video cannot be decoded (an ``InputError``).
        InputError: empty or duplicated phases, prompts that do not cover the phases, or a bad
            ``step_s`` / ``smooth_s`` / ``clip_s`` / ``batch_size``.
    """
    from tqdm.auto import tqdm

    groups = _phase_prompts(phases, prompts)
    for name, value in (("step_s", step_s), ("clip_s", clip_s), ("smooth_s", smooth_s)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a positive number of seconds, got {value}")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    loaded = resolve_model(model, device=device)
    video_tower = callable(getattr(loaded.model, "encode_video", None))
    num_frames = int(getattr(loaded.model, "num_frames", 8)) if video_tower else None
    owned = not isinstance(video, Video)
    source = open_video(video, backend=backend) if owned else video
    try:
        classifier = loaded.text_classifier(groups)  # (D, C)
        times = _time_points(source.duration, step_s)
        span = step_s if clip_s is None else clip_s
        plan = _frame_plan(source, times, step_s, num_frames, span)
        logits = torch.empty(times.size, classifier.shape[1])
        with tqdm(total=times.size, disable=not progress, unit="step",
                  desc=f"phase timeline {Path(source.name).name}") as bar:
            for begin in range(0, times.size, batch_size):
                rows = plan[begin:begin + batch_size]
                features = _embed(loaded, source, rows, video_tower)
                logits[begin:begin + len(rows)] = loaded.logit_scale * features @ classifier
                bar.update(len(rows))
        raw = logits.softmax(dim=1).numpy().astype(np.float32)
        window = 1 if smooth_s is None else max(1, round(smooth_s / step_s))
        smoothed = smooth_probabilities(raw, window)
        return PhaseTimeline(
            video=str(source.name), phases=tuple(groups), times=times, probabilities=smoothed,
            raw_probabilities=raw, predicted=smoothed.argmax(axis=1).astype(np.int64), frames=plan,
            step_s=float(step_s), smooth_s=None if smooth_s is None else float(smooth_s),
            clip_s=float(span) if video_tower else None, duration_s=float(source.duration),
            fps=float(source.fps), model=loaded.spec,
        )
    finally:
        if owned:
            source.close()


# =========================================================================== ground truth
def phase_ground_truth(
    annotation: str | Path, times: Sequence[float] | np.ndarray | PhaseTimeline, *, fps: float | None = None
) -> list[str | None]:
    """The Cholec80 phase at each time point, read from a ``videoNN-phase.txt`` annotation.

    The file is ``Frame<TAB>Phase`` with one row per frame at 25 fps, frames numbered from 0 (read by
    :func:`~domainclip.domains.surgery.datasets.cholec80.read_phase_annotation`, which checks it).
    The label of time ``t`` is the row of frame ``floor(t * fps)``, the frame shown at ``t``: at
    1 s steps, frames 0, 25, 50, ... as the 1 fps Cholec80 protocol samples them.

    Args:
        annotation: the ``videoNN-phase.txt`` file.
        times: time points in seconds, or a :class:`PhaseTimeline` (its ``times``).
        fps: frame rate of the annotation rows (default: Cholec80's 25).

    Returns:
        The phase name (as written in the file) per time point; ``None`` past the annotation's end.

    Raises:
        InputNotFoundError: the file does not exist.
        AnnotationError: the file is not a valid phase annotation (an ``InputError``).
    """
    from domainclip.domains.surgery.datasets.cholec80 import ANNOTATION_FPS, read_phase_annotation
    from domainclip.domains.surgery.labels import CHOLEC80_PHASES

    path = Path(annotation)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: phase annotation not found (expected a Cholec80 videoNN-phase.txt)")
    rate = ANNOTATION_FPS if fps is None else float(fps)
    if not (math.isfinite(rate) and rate > 0):
        raise InputError(f"fps must be a positive frame rate, got {fps}")
    labels = read_phase_annotation(path)
    seconds = np.asarray(times.times if isinstance(times, PhaseTimeline) else times, dtype=np.float64).reshape(-1)
    frames = np.floor(seconds * rate + 1e-6).astype(np.int64)
    return [CHOLEC80_PHASES[labels[f]] if 0 <= f < labels.size else None for f in frames.tolist()]


def _check_truth(result: PhaseTimeline, ground_truth: Sequence[str | None] | str | Path) -> list[str | None]:
    if isinstance(ground_truth, str | Path):
        return phase_ground_truth(ground_truth, result)
    truth = [None if t is None else str(t) for t in ground_truth]
    if len(truth) != len(result):
        raise InputError(f"ground_truth has {len(truth)} labels but the timeline has {len(result)} time points; "
                         "align it with phase_ground_truth(annotation, timeline)")
    return truth


def score_timeline(result: PhaseTimeline, ground_truth: Sequence[str | None] | str | Path) -> dict[str, Any]:
    """Agreement of a timeline with labels: accuracy and macro-F1 over the labelled time points.

    The metrics are those of the phase benchmarks for one video
    (:func:`~domainclip.domains.surgery.evals.phase_recognition_metrics`): macro-F1 over the phases
    present in the labels or the predictions. Labels that are no phase of the timeline count as wrong.

    Args:
        result: the timeline.
        ground_truth: one phase name (or ``None``: unlabelled) per time point, or a Cholec80
            ``videoNN-phase.txt`` file (aligned with :func:`phase_ground_truth`).

    Returns:
        ``{"accuracy", "f1", "num_labelled", "per_phase"}``.
    """
    from domainclip.domains.surgery.evals import phase_recognition_metrics

    truth = _check_truth(result, ground_truth)
    index = {name: i for i, name in enumerate(result.phases)}
    keep = [k for k, t in enumerate(truth) if t is not None]
    if not keep:
        raise InputError("ground_truth labels none of the timeline's time points")
    outside = len(result.phases)  # a label the timeline cannot predict
    targets = [index.get(truth[k], outside) for k in keep]
    names = [*result.phases, "<other>"] if outside in targets else list(result.phases)
    metrics = phase_recognition_metrics(result.predicted[keep], targets, [0] * len(keep), names)
    return {"accuracy": metrics["accuracy_mean"], "f1": metrics["f1_mean"], "num_labelled": len(keep),
            "per_phase": metrics["per_phase"]}


# =========================================================================== the picture
def _ribbon(ax: Axes, labels: Sequence[int | None], starts: np.ndarray, ends: np.ndarray,
            colours: Sequence[tuple[float, float, float]], name: str) -> None:
    for label, start, end in _runs(np.asarray(labels, dtype=object), starts, ends):
        if label is None:
            ax.broken_barh([(start, end - start)], (0, 1), facecolors="white", edgecolor="0.6", hatch="///",
                           linewidth=0)
        else:
            ax.broken_barh([(start, end - start)], (0, 1), facecolors=[colours[label]], linewidth=0)
    ax.set_ylim(0, 1)
    ax.set_yticks([0.5], [name])
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def plot_phase_timeline(
    result: PhaseTimeline,
    *,
    ground_truth: Sequence[str | None] | str | Path | None = None,
    ax: Axes | None = None,
    probabilities: Literal["stacked", "lines"] = "stacked",
    title: str | None = None,
) -> Figure:
    """The predicted phase as a coloured ribbon over time, the phase probabilities, and the labels beneath.

    Top: the predicted phase per time point (one colour per phase, :func:`~domainclip.core.explore.class_colours`).
    Middle: each phase's probability over time, stacked (they sum to 1) or as lines. Bottom (with
    ``ground_truth``): the labelled phase in the same colours (hatched where unlabelled), and the
    agreement (accuracy, macro-F1) in the title. Phases found only in the labels get colours after
    the timeline's.

    Args:
        result: a :class:`PhaseTimeline`.
        ground_truth: one phase name (or ``None``) per time point, or a Cholec80 ``videoNN-phase.txt``.
        ax: draw into this axes (split into the panels); ``None`` makes a new figure.
        probabilities: ``"stacked"`` areas or ``"lines"``.
        title: the title (default: the video's name, the model and the smoothing).

    Returns:
        The figure (not shown; display it in a notebook or save it).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if probabilities not in ("stacked", "lines"):
        raise InputError(f"probabilities must be 'stacked' or 'lines', got {probabilities!r}")
    truth = None if ground_truth is None else _check_truth(result, ground_truth)
    names = list(result.phases)
    for label in truth or []:
        if label is not None and label not in names:
            names.append(label)
    colours = class_colours(len(names))
    if ax is None:
        fig = plt.figure(figsize=(11, 4.4 if truth is not None else 3.8))
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.09, right=0.76, bottom=0.14, top=0.84)
    else:
        fig = ax.figure
    ax.axis("off")
    # panels inside ax, in axes fractions (bottom, height): predicted ribbon, probabilities, ground-truth ribbon
    if truth is None:
        boxes = {"pred": (0.88, 0.12), "prob": (0.0, 0.80)}
    else:
        boxes = {"pred": (0.88, 0.12), "prob": (0.2, 0.64), "truth": (0.0, 0.12)}
    panels = {key: ax.inset_axes([0.0, y, 1.0, h]) for key, (y, h) in boxes.items()}
    starts, ends = result.times, result.ends
    xlim = (0.0, result.duration_s)
    _ribbon(panels["pred"], result.predicted.tolist(), starts, ends, colours, "predicted")
    prob = panels["prob"]
    edges = np.append(starts, ends[-1])
    values = np.vstack([result.probabilities, result.probabilities[-1:]]).T  # (C, T + 1), drawn as steps
    if probabilities == "stacked":
        prob.stackplot(edges, values, colors=colours[: len(result.phases)], step="post", linewidth=0)
        prob.set_ylim(0, 1)
    else:
        for c in range(len(result.phases)):
            prob.step(edges, values[c], where="post", color=colours[c], linewidth=1.4)
        prob.set_ylim(0, 1.02)
    prob.set_ylabel("probability")
    for side in ("top", "right"):
        prob.spines[side].set_visible(False)
    if truth is not None:
        index = {name: i for i, name in enumerate(names)}
        _ribbon(panels["truth"], [None if t is None else index[t] for t in truth], starts, ends, colours,
                "ground truth")
    bottom = panels["truth"] if truth is not None else prob
    for panel in panels.values():
        panel.set_xlim(*xlim)
        if panel is not bottom:
            panel.tick_params(axis="x", labelbottom=False)
    bottom.set_xlabel("time (s)")
    handles = [Patch(facecolor=colours[i], label=name) for i, name in enumerate(names)]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8,
              title="phase", title_fontsize=8)
    if title is None:
        smoothing = "no smoothing" if result.smooth_s is None else f"{result.smooth_s:g} s moving average"
        title = f"{Path(result.video).name}: zero-shot phases every {result.step_s:g} s ({smoothing})"
        if truth is not None and any(t is not None for t in truth):
            score = score_timeline(result, truth)
            title += f"\nagreement with the labels: accuracy {score['accuracy']:.2f}, macro-F1 {score['f1']:.2f}"
    ax.set_title(title, fontsize=10)
    return fig
