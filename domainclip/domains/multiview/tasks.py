"""Training task of the multi-view domain: Omniview-Tuning over multi-view objects and general image-text pairs.

``multiview/omniview``
    A batch mixes multi-view objects (shard samples in the :mod:`~domainclip.domains.multiview.views`
    layout) and, when the recipe lists a general source, plain image-text samples. The task's
    decoder (:class:`OmniviewDecoder`) gives every sample the same keys: ``views``
    ``(V, C, H, W)`` (``V = num_views``; a general sample's one image repeated ``V`` times),
    ``text`` (one caption, tokenised), ``object_key`` (the shard sample key) and ``multiview``
    (a bool). The ``omniview`` tower (:class:`~domainclip.domains.multiview.models.OmniviewCLIP`)
    takes ``object_key`` and ``multiview`` too: it looks each object's mined views up by its key.

    Which views feed the contrastive loss is a pure function of the mined table, the keys and
    the step, so the task passes ``object_key`` and ``multiview`` in the feature-only pass of
    gradient accumulation as well (only the cross-view term is left out there): the cached
    features of the other micro-batches are those the live pass computes, and accumulation
    stays exact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from domainclip.core.data import keys as K
from domainclip.core.data.corrupt import BAD_IMAGE, CorruptSampleError, missing_key
from domainclip.core.data.decode import MAX_IMAGE_PIXELS, SampleDecoder
from domainclip.core.engine.tasks import Task
from domainclip.core.errors import InputError
from domainclip.core.options import PositiveFloat, PositiveInt, entry_point
from domainclip.domains.multiview.views import decode_views, view_members

__all__ = ["MULTIVIEW", "OBJECT_KEY", "OMNIVIEW", "OmniviewDecoder", "OmniviewTask", "choose_views"]

#: Batch key (and model keyword) of each sample's object key.
OBJECT_KEY = "object_key"
#: Batch key (and model keyword) of the per-sample flag "this is a multi-view object".
MULTIVIEW = "multiview"


def choose_views(available: int, wanted: int) -> list[int]:
    """Which of an object's ``available`` views make its ``wanted`` views, deterministically.

    With more views than wanted they are evenly spaced (``floor(i * available / wanted)``, so a
    turntable keeps its spread of azimuths); with fewer they are cycled (``0, 1, .., 0, 1, ..``).

    Args:
        available: views the object has.
        wanted: views per sample.
    """
    if available < 1 or wanted < 1:
        raise ValueError(f"need at least one view available and wanted; got {available}, {wanted}")
    if available >= wanted:
        return [i * available // wanted for i in range(wanted)]
    return [i % available for i in range(wanted)]


class OmniviewDecoder:
    """Raw shard sample -> ``views``, ``text``, ``object_key`` and ``multiview``, for multi-view and general samples.

    A sample with ``NNN.view.*`` members is an object: :func:`choose_views` picks ``num_views`` of
    its views, each decoded and passed through ``preprocess``. A sample with an image member
    (``jpg``, ``png``, ...) is a general image-text pair: its image goes through ``preprocess``
    once and is repeated ``num_views`` times, and ``multiview`` is ``False``. The caption is one
    of the sample's captions, drawn with the core decoder's seeded choice (``text_choice``,
    ``languages``), so a resumed run decodes what the uninterrupted one did. ``meta`` and
    ``label`` are not kept: batches mix sources whose samples carry different keys.

    Args:
        preprocess: the model's image transform, PIL image -> tensor ``(3, H, W)``.
        tokenizer: tokenizer applied to the chosen caption.
        num_views: views per sample ``V`` (the tower's ``worst_k`` must not exceed it).
        seed: seed of the caption choice (combined with the sample's identity).
        text_choice: caption choice among several, ``"random"`` or ``"first"`` (see ``SampleDecoder``).
        max_image_pixels: largest view or image (width x height) decoded; a larger one is counted
            as ``bad_image`` from its header (recipe ``data.max_image_pixels``).
        languages: language -> weight of the one language drawn per sample from multilingual
            captions (recipe ``data.languages``).

    Raises:
        InputError: ``text_choice="all"`` (one caption per sample is the contrastive pair).
    """

    @entry_point
    def __init__(
        self,
        preprocess: Callable,
        tokenizer: Callable | None = None,
        *,
        num_views: PositiveInt = 12,
        seed: int = 0,
        text_choice: str = "random",
        max_image_pixels: PositiveInt | None = MAX_IMAGE_PIXELS,
        languages: dict[str, PositiveFloat] | None = None,
    ):
        if text_choice == "all":
            raise InputError("the omniview decoder draws one caption per sample: text_choice must be 'random' "
                             "or 'first'")
        self.preprocess = preprocess
        self.num_views = num_views
        self.max_image_pixels = max_image_pixels
        self.base = SampleDecoder(
            image_transform=preprocess,
            tokenizer=tokenizer,
            required=(K.TEXT,),
            text_choice=text_choice,
            seed=seed,
            max_image_pixels=max_image_pixels,
            languages=languages,
        )

    def __call__(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Decode one raw sample; raises :class:`CorruptSampleError` for unusable ones."""
        names = view_members(raw)
        if names:
            base = self.base(raw)  # the caption first: a sample without one is dropped before its views are decoded
            indices = choose_views(len(names), self.num_views)
            views = torch.stack(decode_views(raw, self.preprocess, indices, self.max_image_pixels))
            multiview = True
        else:
            base = self.base(raw)
            if K.IMAGE not in base:
                members = sorted(k for k in raw if not k.startswith("__"))
                raise CorruptSampleError(missing_key(K.VIEWS), f"no view or image member; members present: {members}")
            image = base[K.IMAGE]
            if not isinstance(image, torch.Tensor) or image.ndim != 3:
                raise CorruptSampleError(BAD_IMAGE, f"the image transform gave {type(image).__name__}, not (C, H, W)")
            views = image.unsqueeze(0).expand(self.num_views, *image.shape).contiguous()
            multiview = False
        return {
            K.VIEWS: views,
            K.TEXT: base[K.TEXT],
            OBJECT_KEY: str(raw.get(K.KEY, "")),
            MULTIVIEW: torch.tensor(multiview),
        }


@dataclass(frozen=True)
class OmniviewTask(Task):
    """The ``omniview`` task: the tower always gets the object keys; the cached pass skips the cross-view term.

    Args: those of :class:`~domainclip.core.engine.tasks.Task`.
    """

    def forward(
        self, model: nn.Module, batch: dict[str, Any], device: torch.device, *, extra_inputs: bool = True
    ) -> dict[str, Any]:
        """Run the tower on one batch; ``extra_inputs=False`` (the feature-only pass) leaves out the cross-view term.

        Args:
            model: the (wrapped) ``omniview`` tower.
            batch: a collated batch from :class:`OmniviewDecoder`.
            device: where the model runs.
            extra_inputs: compute the cross-view term too (the accumulation's cached pass does not).
        """
        out = model(
            views=batch[self.visual_key].to(device, non_blocking=True),
            text=batch[K.TEXT].to(device, non_blocking=True),
            object_key=list(batch[OBJECT_KEY]),
            multiview=torch.as_tensor(batch[MULTIVIEW]).to(device),
            cross_view=extra_inputs,
        )
        if not isinstance(out, dict):
            raise TypeError(f"model forward must return a dict, got {type(out)}")
        return dict(out)


#: OVT: CLIP on each object's mined view (cycled over steps) plus the cross-view term on its mined
#: views; ``data.decoder_args`` are options of :class:`OmniviewDecoder`; the model is the ``omniview`` tower.
OMNIVIEW = OmniviewTask(
    "multiview/omniview", visual_key=K.VIEWS, model_kwarg="views", make_decoder=OmniviewDecoder,
    extra_inputs=(OBJECT_KEY, MULTIVIEW),
)
