"""Training tasks: how a batch becomes model inputs and loss inputs.

A task names the batch key that holds the visual input (``image``, ``video`` or ``views``), which
keyword the model takes it by, any further batch keys the model takes (``extra_inputs``, e.g. the
extra crops of a self-distillation tower), and how the outputs of several micro-batches are merged
for exact gradient accumulation. Domains register their own tasks with :func:`register_task`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from domainclip.core.plugins import UnknownNameError

__all__ = ["Task", "get_task", "list_tasks", "register_task"]

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
        out.update({k: v.to(device) for k, v in extra.items()})
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
