"""Training tasks: how a batch becomes model inputs and loss inputs, and how batches reach the device.

A task names the batch key that holds the visual input (``image``, ``video`` or ``views``), which
keyword the model takes it by, any further batch keys the model takes (``extra_inputs``, e.g. the
extra crops of a self-distillation tower), and how the outputs of several micro-batches are merged
for exact gradient accumulation. Domains register their own tasks with :func:`register_task`.

The step's input side is :class:`DeviceBatches`: it wraps the streaming loader, prepares each batch
on the device (``data.decode_device: cuda`` decodes its JPEGs there), copies every tensor with
``non_blocking=True`` and, on CUDA, does both for batch n+1 on a side stream while step n runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from domainclip.core.plugins import UnknownNameError

__all__ = ["DeviceBatches", "Task", "get_task", "list_tasks", "move_to_device", "register_task"]

#: keys of a model output that are per-sample and concatenated over micro-batches
_FEATURE_KEYS = ("image_features", "text_features", "level")


@dataclass(frozen=True)
class Task:
    """A contrastive training task.

    Args:
        name: registry name used by ``train.task``.
        visual_key: batch key of the visual input.
        model_kwarg: keyword the model's forward takes it by.
        text_choice: caption policy the decoder must use (``None`` keeps the recipe's).
        prepare_text: turns the batch's token tensor into (tokens, extra loss kwargs); used by
            multi-caption tasks to flatten several captions per sample.
        make_decoder: builds the task's own sample decoder as
            ``make_decoder(preprocess, tokenizer, seed=..., text_choice=..., **recipe.data.decoder_args)``
            (e.g. a video task that samples frames from clip bytes); ``None`` uses the core
            :class:`~domainclip.core.data.decode.SampleDecoder`.
        extra_inputs: further batch keys passed to the model's forward as keywords of the same name
            (tensors are moved to the device). They feed a model's auxiliary objectives, which it
            returns as ``aux_losses`` (see :mod:`domainclip.core.engine.train`); the features the
            contrastive loss uses must not depend on them, because the no-gradient pass of gradient
            accumulation, which only gathers the other micro-batches' features, leaves them out.
    """

    name: str
    visual_key: str = "image"
    model_kwarg: str = "image"
    text_choice: str | None = None
    prepare_text: Callable[[dict[str, Any]], tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None
    make_decoder: Callable[..., Callable[[Any], dict[str, Any]]] | None = None
    extra_inputs: tuple[str, ...] = ()

    def forward(
        self, model: nn.Module, batch: dict[str, Any], device: torch.device, *, extra_inputs: bool = True
    ) -> dict[str, Any]:
        """Run the model on one batch; returns the loss inputs (features, logit scale, extras).

        Args:
            model: the (wrapped) model.
            batch: a collated batch.
            device: where the model runs.
            extra_inputs: pass :attr:`extra_inputs` too (the accumulation's feature-only pass does not).
        """
        visual = batch[self.visual_key].to(device, non_blocking=True)
        if self.prepare_text is not None:
            tokens, extra = self.prepare_text(batch)
        else:
            tokens, extra = batch["text"], {}
        inputs = {key: batch[key] for key in (self.extra_inputs if extra_inputs else ())}
        inputs = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        out = model(**{self.model_kwarg: visual}, text=tokens.to(device, non_blocking=True), **inputs)
        if not isinstance(out, dict):
            raise TypeError(f"model forward must return a dict (open_clip output_dict=True), got {type(out)}")
        out = dict(out)
        out.update({k: v.to(device, non_blocking=True) for k, v in extra.items()})
        return out

    @staticmethod
    def merge(outputs: list[dict[str, Any]], live: int) -> dict[str, Any]:
        """Merge micro-batch outputs into one full-batch loss input.

        Only ``outputs[live]`` carries gradients; the others are cached features. The logit scale and
        bias are taken from the live output so their gradient is counted once per optimizer step.
        Owner indices (``text_to_image``) are shifted by the images that precede each micro-batch.
        """
        merged: dict[str, Any] = {}
        for key in _FEATURE_KEYS:
            if key in outputs[live]:
                merged[key] = torch.cat([o[key] for o in outputs], dim=0)
        if "text_to_image" in outputs[live]:
            owners, offset = [], 0
            for o in outputs:
                owners.append(o["text_to_image"] + offset)
                offset += o["image_features"].shape[0]
            merged["text_to_image"] = torch.cat(owners, dim=0)
        for key, value in outputs[live].items():
            merged.setdefault(key, value)
        return merged


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add a task to the registry (domains call this for their own objectives)."""
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """Look a task up by name: a core task, or ``<domain>/<task>`` declared in a domain's ``tasks``."""
    if name in _TASKS:
        return _TASKS[name]
    domain, _, short = name.partition("/")
    if short:
        from domainclip.core.plugins import get_domain, list_domains, resolve

        if domain in list_domains():
            spec = get_domain(domain)
            if short in spec.tasks:
                task = resolve(spec.tasks[short])
                if not isinstance(task, Task):
                    raise TypeError(f"task {name!r} resolved to {type(task).__name__}, not a Task")
                return task
    raise UnknownNameError("task", name, list_tasks())


def list_tasks() -> list[str]:
    """Core task names, then every domain's ``<domain>/<task>`` (domain specs only; nothing heavy is imported)."""
    from domainclip.core.plugins import get_domain, list_domains

    names = sorted(_TASKS)
    for domain in list_domains():
        names += [f"{domain}/{t}" for t in sorted(get_domain(domain).tasks)]
    return names


def flatten_captions(batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Several captions per sample -> (N, L) tokens plus the owner of each caption (and its level).

    ``batch["text"]`` is a list (one per sample) of ``(K_i, L)`` token tensors, or a ``(B, K, L)``
    tensor; ``batch["level_id"]`` (optional) holds the matching level ids.
    """
    text = batch["text"]
    chunks = list(text) if isinstance(text, list | tuple) else list(text.unbind(0))
    chunks = [c if c.ndim == 2 else c.unsqueeze(0) for c in chunks]
    owners = torch.cat([torch.full((c.shape[0],), i, dtype=torch.long) for i, c in enumerate(chunks)])
    extra = {"text_to_image": owners}
    if "level_id" in batch:
        levels = batch["level_id"]
        levels = list(levels) if isinstance(levels, list | tuple) else list(levels.unbind(0))
        extra["level"] = torch.cat([torch.as_tensor(lv, dtype=torch.long).reshape(-1) for lv in levels])
    return torch.cat(chunks, dim=0), extra


register_task(Task("image_text"))
register_task(Task("multi_caption", text_choice="all", prepare_text=flatten_captions))
register_task(Task("video_text", visual_key="video", model_kwarg="video"))
register_task(Task("views_text", visual_key="views", model_kwarg="views"))


# =========================================================================== the step's input side
def move_to_device(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor in it (also inside dicts, lists and tuples) copied to ``device``, non-blocking.

    A copy from pinned memory (``data.pin_memory``) then runs asynchronously; from pageable memory
    it is an ordinary copy. Strings and numbers are left as they are.

    Args:
        value: a batch or a part of one.
        device: where the step runs.
    """
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, Mapping):
        return {k: move_to_device(v, device) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple keeps its type
        return type(value)(*(move_to_device(v, device) for v in value))
    if isinstance(value, list | tuple):
        return type(value)(move_to_device(v, device) for v in value)
    return value


def _record_stream(value: Any, stream: torch.cuda.Stream) -> None:
    """Mark every CUDA tensor in ``value`` as used on ``stream`` (the allocator then keeps its memory until it is)."""
    if isinstance(value, torch.Tensor):
        if value.is_cuda:
            value.record_stream(stream)
    elif isinstance(value, Mapping):
        for v in value.values():
            _record_stream(v, stream)
    elif isinstance(value, list | tuple):
        for v in value:
            _record_stream(v, stream)


class DeviceBatches:
    """The training loader as the step sees it: batches prepared and on the device, one ahead on CUDA.

    Iterating yields the loader's batches with every tensor on ``device`` (copied with
    ``non_blocking=True``), after ``prepare`` (e.g.
    :class:`~domainclip.core.data.gpu_decode.DeviceImageDecoder`, which decodes the JPEGs on the
    device). On CUDA the next batch is fetched, copied and prepared on a side stream before the
    current one is handed out, so its copies and decoding kernels run while the current step
    computes; the step's stream waits for the side stream (``wait_stream``) before using a batch,
    and every tensor of it is recorded on the step's stream (``record_stream``) so its memory is not
    reused while the step still reads it. Elsewhere it is a plain iterator.

    The loader's bookkeeping is kept for the batch last handed out, not the one fetched ahead:
    :meth:`state_dict` is the loader's state right after that batch, so a checkpoint resumes with
    the batch that follows it. Samples that ``prepare`` drops as corrupt (its ``tally``) are added
    to the loader's corrupt counts, checked against ``max_corrupt_fraction`` like them, and saved
    with the state.

    Args:
        loader: a :class:`~domainclip.core.data.reader.StreamingLoader`.
        device: where the step runs.
        prepare: batch -> batch (or ``None`` to drop the whole batch), run on the device's side stream
            before the copy of the remaining tensors; it may keep a ``tally``
            (:class:`~domainclip.core.data.corrupt.CorruptTally`) of samples it dropped and
            ``counts`` of what it did.
        prefetch: fetch one batch ahead on a CUDA side stream (no effect off CUDA).
    """

    def __init__(
        self,
        loader: Any,
        device: torch.device | str,
        prepare: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
        *,
        prefetch: bool = True,
    ):
        self.loader = loader
        self.device = torch.device(device)
        self.prepare = prepare
        self.prefetch = prefetch
        self._state: dict[str, Any] | None = None

    # ------------------------------------------------------------------ iteration
    def _load(self, batch: dict[str, Any]) -> dict[str, Any] | None:
        if self.prepare is not None:
            prepared = self.prepare(batch)
            self._check_corrupt()
            if prepared is None:
                return None
            batch = prepared
        return move_to_device(batch, self.device)

    def _fetch(self, it: Iterator[dict[str, Any]], stream: torch.cuda.Stream | None):
        """The next non-empty prepared batch and the loader's state right after it, or ``None`` at the end."""
        for batch in it:
            state = self.loader.state_dict()
            if stream is None:
                loaded = self._load(batch)
            else:
                with torch.cuda.stream(stream):
                    loaded = self._load(batch)
            if loaded is not None:
                return loaded, state
            self._state = state  # a batch of only corrupt samples: nothing to hand out
        return None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Batches on the device, continuing from the loader's position."""
        it = iter(self.loader)
        if self.device.type != "cuda" or not self.prefetch:
            while (item := self._fetch(it, None)) is not None:
                batch, self._state = item
                yield batch
            return
        stream = torch.cuda.Stream(device=self.device)
        ahead = self._fetch(it, stream)
        while ahead is not None:
            batch, state = ahead
            current = torch.cuda.current_stream(self.device)
            current.wait_stream(stream)  # the copies and decoding of this batch are done before the step reads it
            _record_stream(batch, current)
            ahead = self._fetch(it, stream)  # the next batch's copies and decoding overlap this step
            self._state = state
            yield batch

    # ------------------------------------------------------------------ accounting and state
    @property
    def dataset(self) -> Any:
        """The loader's :class:`~domainclip.core.data.reader.StreamingDataset`."""
        return self.loader.dataset

    @property
    def _device_tally(self) -> Any:
        return getattr(self.prepare, "tally", None)

    def _check_corrupt(self) -> None:
        from domainclip.core.data.corrupt import CorruptTally

        tally = self._device_tally
        if tally is None or not tally.corrupt:
            return
        merged = CorruptTally(good=self.loader.good_samples - tally.corrupt, counts=self.corrupt_counts(),
                              examples=dict(tally.examples))
        dataset = self.loader.dataset
        if merged.exceeds(dataset.max_corrupt_fraction, dataset.corrupt_check_after):
            raise merged.error(dataset.max_corrupt_fraction)

    @property
    def samples_seen(self) -> int:
        """Raw samples taken for the batches handed out so far (good and corrupt)."""
        return int(self._state["samples_seen"]) if self._state is not None else self.loader.samples_seen

    def corrupt_counts(self) -> dict[str, int]:
        """Corrupt samples by reason: the loader's, plus those ``prepare`` dropped on the device."""
        counts = dict(self.loader.corrupt_counts())
        tally = self._device_tally
        for reason, n in (tally.counts.items() if tally is not None else ()):
            counts[reason] = counts.get(reason, 0) + n
        return dict(sorted(counts.items()))

    def corrupt_report(self) -> str:
        """The loader's corrupt-sample report, then the samples dropped on the device (with an example each)."""
        report = self.loader.corrupt_report()
        tally = self._device_tally
        if tally is None or not tally.corrupt:
            return report
        return report + "\n" + tally.report(
            f"and {tally.corrupt} more whose JPEG passed the workers' header check but failed to decode on "
            f"{self.device} (counted good above, dropped from their batches):"
        )

    def decode_counts(self) -> dict[str, int]:
        """What ``prepare`` counted (e.g. images decoded on the device and in the workers); empty without one."""
        return dict(getattr(self.prepare, "counts", {}))

    def state_dict(self) -> dict[str, Any]:
        """The loader's state right after the last batch handed out, with the device-side corrupt counts."""
        state = dict(self._state if self._state is not None else self.loader.state_dict())
        tally = self._device_tally
        if tally is not None:
            state["device_corrupt"] = dict(tally.counts)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`, or a plain loader state) on the next ``iter()``.

        Args:
            state: the saved state.
        """
        self.loader.load_state_dict(state)
        self._state = None
        tally = self._device_tally
        if tally is not None:
            tally.counts.clear()
            tally.counts.update({str(k): int(v) for k, v in dict(state.get("device_corrupt", {})).items()})
