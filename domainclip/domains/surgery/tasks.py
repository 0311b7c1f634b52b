"""Training tasks of the surgery domain: video clips against captions, flat or per caption level.

``surgery/video_clip``
    Each shard sample holds a clip (``.mp4`` / ``.webm`` / ... bytes or ``.frames.npy``) and a
    caption; :class:`~domainclip.domains.surgery.decoder.VideoClipDecoder` samples
    ``data.decoder_args.num_frames`` frames (jittered in training) and the model's ``video`` input
    is ``(B, T, 3, H, W)``. Use it with ``loss.name: clip`` (SurgCLIP's InfoNCE).
``surgery/video_clip_levels``
    The same clips, and each caption's level (``.level.txt``: ``narration``, ``task``, ``step`` or
    ``phase``) goes to the loss as ``level`` with ``text_to_image`` = its own clip. With
    ``loss.name: multi_positive`` that is the hierarchical objective: one contrastive loss per
    level present in the global batch, each caption a positive at its own level only (weights by
    level id in ``loss.kwargs.level_weights``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from domainclip.core.engine.tasks import Task
from domainclip.core.errors import InputError

__all__ = ["LEVEL_INDEX", "VIDEO_CLIP", "VIDEO_CLIP_LEVELS", "level_targets", "make_clip_decoder"]

#: Caption level -> integer id used by the multi-level loss (SurgLaVi ids 1-3; 0 for free narration).
LEVEL_INDEX: dict[str, int] = {"narration": 0, "task": 1, "step": 2, "phase": 3}


def make_clip_decoder(
    preprocess: Callable[[Any], Any] | None,
    tokenizer: Callable[[Any], Any] | None,
    *,
    seed: int,
    text_choice: str,
    required: tuple[str, ...] = ("video", "text"),
    **decoder_args: Any,
) -> Callable[[Any], dict[str, Any]]:
    """Training decoder of the surgery tasks (``data.decoder_args`` become its keyword options)."""
    from domainclip.domains.surgery.decoder import VideoClipDecoder

    return VideoClipDecoder(
        preprocess, tokenizer, seed=seed, text_choice=text_choice, required=required, train=True, **decoder_args
    )


def _make_level_decoder(
    preprocess: Callable[[Any], Any] | None, tokenizer: Callable[[Any], Any] | None, **kwargs: Any
) -> Callable[[Any], dict[str, Any]]:
    return make_clip_decoder(preprocess, tokenizer, required=("video", "text", "level"), **kwargs)


def level_targets(batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One caption per clip: tokens, each caption's owner (its own clip) and its level id.

    Raises:
        InputError: a sample's level is not one of :data:`LEVEL_INDEX` (naming the sample; a ``ValueError``).
    """
    tokens = batch["text"]
    levels = batch["level"]
    ids = []
    for i, name in enumerate(levels):
        key = str(name).strip().lower()
        if key not in LEVEL_INDEX:
            sample = batch.get("__key__", ["?"] * len(levels))[i]
            raise InputError(f"sample {sample!r} has caption level {name!r}; expected one of {sorted(LEVEL_INDEX)}")
        ids.append(LEVEL_INDEX[key])
    owners = torch.arange(tokens.shape[0], dtype=torch.long)
    return tokens, {"text_to_image": owners, "level": torch.tensor(ids, dtype=torch.long)}


#: Clip-caption InfoNCE on video clips decoded from shard bytes.
VIDEO_CLIP = Task("video_clip", visual_key="video", model_kwarg="video", make_decoder=make_clip_decoder)

#: The hierarchical variant: captions carry their level to a per-level (multi-positive) loss.
VIDEO_CLIP_LEVELS = Task(
    "video_clip_levels",
    visual_key="video",
    model_kwarg="video",
    prepare_text=level_targets,
    make_decoder=_make_level_decoder,
)
