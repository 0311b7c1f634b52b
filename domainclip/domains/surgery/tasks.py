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

import functools
from typing import Any

import torch

from domainclip.core.engine.tasks import Task
from domainclip.core.errors import InputError
from domainclip.domains.surgery.decoder import VideoClipDecoder

__all__ = ["LEVEL_INDEX", "VIDEO_CLIP", "VIDEO_CLIP_LEVELS", "level_targets"]

#: Caption level -> integer id used by the multi-level loss (SurgLaVi ids 1-3; 0 for free narration).
LEVEL_INDEX: dict[str, int] = {"narration": 0, "task": 1, "step": 2, "phase": 3}


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


#: Clip-caption InfoNCE on video clips decoded from shard bytes (``data.decoder_args`` are options of
#: :class:`~domainclip.domains.surgery.decoder.VideoClipDecoder`).
VIDEO_CLIP = Task(
    "surgery/video_clip", visual_key="video", model_kwarg="video",
    make_decoder=functools.partial(VideoClipDecoder, train=True),
)

#: The hierarchical variant: captions carry their level to a per-level (multi-positive) loss.
VIDEO_CLIP_LEVELS = Task(
    "surgery/video_clip_levels",
    visual_key="video",
    model_kwarg="video",
    prepare_text=level_targets,
    make_decoder=functools.partial(VideoClipDecoder, train=True, required=("video", "text", "level")),
)
