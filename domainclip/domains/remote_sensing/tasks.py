"""Training task of the remote sensing domain: CLIP on one crop, self-distillation over several.

``remote_sensing/multicrop``
    Each shard sample is an image and its captions (one language drawn per sample from multilingual
    ``.text.json`` captions, as the core decoder does). :class:`MulticropDecoder` cuts ``2 + N``
    random square crops of the image (two global, ``N = data.decoder_args.num_local_crops`` local),
    each resized to the model's input size by the model's own image transform. Global crop 1 is the
    CLIP input ``image``; global crop 2 and the local crops go to the model as ``crops``
    (``(B, 1 + N, 3, H, W)``) through the task's ``extra_inputs``. Use it with the ``self_distill``
    tower (:class:`~domainclip.domains.remote_sensing.models.SelfDistillCLIP`), whose forward turns
    the crops into the self-distillation loss the engine adds to the contrastive one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image

from domainclip.core.data import keys as K
from domainclip.core.data.corrupt import BAD_IMAGE, CorruptSampleError
from domainclip.core.data.decode import EPOCH, MAX_IMAGE_PIXELS, SOURCE, SampleDecoder, derive_rng
from domainclip.core.engine.tasks import Task
from domainclip.core.errors import InputError
from domainclip.core.options import NonNegativeInt, PositiveFloat, PositiveInt, UnitFloat, entry_point

__all__ = ["CROPS", "MULTICROP", "MulticropDecoder", "square_crop_box"]

#: Batch key (and model keyword) of the extra crops.
CROPS = "crops"


def _keep_image(image: Image.Image | np.ndarray) -> Image.Image | np.ndarray:
    """The core decoder's image transform here: hand the decoded image on, to be cropped."""
    return image


def square_crop_box(
    width: int, height: int, scale: tuple[float, float], rng: random.Random
) -> tuple[int, int, int, int]:
    """A random square ``(left, top, right, bottom)`` covering a fraction in ``scale`` of the image's area.

    The side is ``sqrt(fraction * width * height)``, at most the image's shorter side (so on a long
    strip a crop covers less than asked) and at least one pixel; the position is uniform.

    Args:
        width: image width in pixels.
        height: image height in pixels.
        scale: ``(low, high)`` fraction of the image's area.
        rng: the sample's random generator.
    """
    fraction = rng.uniform(*scale)
    side = max(1, min(width, height, round(math.sqrt(fraction * width * height))))
    left, top = rng.randint(0, width - side), rng.randint(0, height - side)
    return left, top, left + side, top + side


class MulticropDecoder:
    """Raw shard sample -> ``image`` (global crop 1), ``crops`` (global crop 2 + local crops) and ``text``.

    The image and text go through a wrapped :class:`~domainclip.core.data.decode.SampleDecoder`
    (image members, ``max_image_pixels``, captions, ``languages``, tokenizer), which hands the
    decoded image on uncropped. The decoder then draws ``2 + num_local_crops`` square crop boxes
    (:func:`square_crop_box`): two with an area fraction in ``global_scale``, the rest in
    ``local_scale`` (DINO's multi-crop, square because overhead imagery has no upright), flips each
    horizontally with probability 1/2 when ``flip``, and passes each crop through ``preprocess``
    (the model's image transform: resize to the input size, normalise), so every crop comes out at
    the model's input size. Boxes and flips are drawn from the sample's own generator, seeded from
    ``(seed, source, url, key, epoch)`` like every choice of the core decoder, so a resumed run
    decodes exactly what the uninterrupted one did.

    Args:
        preprocess: the model's image transform, PIL image -> tensor ``(3, H, W)``.
        tokenizer: tokenizer applied to the chosen caption, text -> token ids.
        num_local_crops: local crops per image (DINO: 8); 0 leaves the two global crops only.
        global_scale: range of the area fraction of the two global crops (DINO: 0.4 to 1).
        local_scale: range of the area fraction of the local crops (DINO: 0.05 to 0.4).
        flip: flip each crop left-right with probability 1/2.
        seed: seed of every random choice (combined with the sample's identity).
        text_choice: caption choice among several (see ``SampleDecoder``).
        required: canonical keys that must be present.
        max_image_pixels: largest image (width x height) a sample's image member may declare; a
            larger one is counted as ``bad_image`` before decoding (recipe ``data.max_image_pixels``).
        languages: language -> weight of the one language drawn per sample from multilingual captions
            (recipe ``data.languages``; empty: every language of the sample equally; ``None``: keep
            the captions by language).

    Raises:
        InputError: a scale range is empty or out of (0, 1] (a ``ValueError``).
    """

    @entry_point
    def __init__(
        self,
        preprocess: Callable,
        tokenizer: Callable | None = None,
        *,
        num_local_crops: NonNegativeInt = 8,
        global_scale: tuple[UnitFloat, UnitFloat] = (0.4, 1.0),
        local_scale: tuple[UnitFloat, UnitFloat] = (0.05, 0.4),
        flip: bool = True,
        seed: int = 0,
        text_choice: str = "random",
        required: tuple[str, ...] = (K.IMAGE, K.TEXT),
        max_image_pixels: PositiveInt | None = MAX_IMAGE_PIXELS,
        languages: dict[str, PositiveFloat] | None = None,
    ):
        for name, (low, high) in (("global_scale", global_scale), ("local_scale", local_scale)):
            if not 0.0 < low <= high:
                raise InputError(f"{name} must be (low, high) with 0 < low <= high <= 1; got {(low, high)}")
        self.preprocess = preprocess
        self.num_local_crops = num_local_crops
        self.global_scale = global_scale
        self.local_scale = local_scale
        self.flip = flip
        self.seed = seed
        self.base = SampleDecoder(
            image_transform=_keep_image,
            tokenizer=tokenizer,
            required=required,
            text_choice=text_choice,
            seed=seed,
            max_image_pixels=max_image_pixels,
            languages=languages,
        )

    def __call__(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Decode one raw sample; raises :class:`CorruptSampleError` for unusable ones."""
        out = self.base(raw)
        if K.IMAGE not in out:
            return out
        image = out[K.IMAGE]
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                shape = f"{image.dtype} {image.shape}"
                raise CorruptSampleError(BAD_IMAGE, f".npy image must be uint8 (H, W, 3), not {shape}")
            image = Image.fromarray(image)
        rng = derive_rng(self.seed, "multicrop", raw.get(SOURCE), raw.get(K.URL), raw.get(K.KEY), raw.get(EPOCH))
        views = [self.crop(image, scale, rng)
                 for scale in [self.global_scale] * 2 + [self.local_scale] * self.num_local_crops]
        out[K.IMAGE] = views[0]
        out[CROPS] = torch.stack(views[1:])
        return out

    def crop(self, image: Image.Image, scale: tuple[float, float], rng: random.Random) -> torch.Tensor:
        """One random square crop of ``image`` (area fraction in ``scale``), maybe flipped, through ``preprocess``."""
        view = image.crop(square_crop_box(image.width, image.height, scale, rng))
        if self.flip and rng.random() < 0.5:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return self.preprocess(view)


#: CLIP on global crop 1, self-distillation over global crop 2 and the local crops (``data.decoder_args``
#: are options of :class:`MulticropDecoder`; the model is the ``self_distill`` tower).
MULTICROP = Task("remote_sensing/multicrop", make_decoder=MulticropDecoder, extra_inputs=(CROPS,))
