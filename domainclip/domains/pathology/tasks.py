"""Training task of the pathology domain: patch-caption CLIP with H&E stain augmentation.

``pathology/patch_text``
    The core image-text task, with the decoder :class:`StainAugmentDecoder`, which jitters each
    training patch's stain before the model's transform: the patch is unmixed into haematoxylin,
    eosin and DAB concentrations with scikit-image's ``rgb2hed`` (Ruifrok & Johnston's colour
    deconvolution), each channel is scaled by ``alpha ~ U(1 - sigma, 1 + sigma)`` and shifted by
    ``beta ~ U(-bias, bias)`` optical-density units (natural log; scikit-image's HED values are
    optical density divided by ``ln(10**6)``, converted here), and the result goes back to RGB with
    ``hed2rgb``. This is the HED
    augmentation of Tellez et al. (2018, "Whole-slide mitosis detection in H&E breast histology
    using PHH3 as a reference to train distilled stain-invariant convolutional networks"; their
    "HED-light" is ``sigma = bias = 0.05``, "HED-strong" 0.2), which made their networks robust to
    stain differences between centres. Draws are seeded per sample and epoch, so a resumed run sees
    the same patches. With ``stain_sigma = stain_bias = 0`` it is the core decoder's pairing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import numpy as np
from PIL import Image

from domainclip.core.data import keys as K
from domainclip.core.data.decode import EPOCH, MAX_IMAGE_PIXELS, SOURCE, SampleDecoder, derive_rng
from domainclip.core.engine.tasks import Task
from domainclip.core.options import PositiveInt, Range, entry_point

__all__ = ["PATCH_TEXT", "StainAugmentDecoder", "hed_jitter"]

#: scikit-image's ``rgb2hed`` divides optical density by this (its ``log_adjust``): ``ln(10**6)``.
_SKIMAGE_OD_UNIT = float(np.log(1e6))

#: A stain jitter amplitude: 0 (off) to 0.5.
StainAmplitude = Annotated[float, Range(0, 0.5)]


def hed_jitter(image: Image.Image | np.ndarray, sigma: float, bias: float, rng: random.Random) -> Image.Image:
    """Tellez et al.'s HED stain augmentation of one RGB image.

    Args:
        image: RGB image (PIL, or a ``(H, W, 3)`` uint8 array).
        sigma: each of the H, E and D concentrations is scaled by ``U(1 - sigma, 1 + sigma)``.
        bias: and shifted by ``U(-bias, bias)`` optical-density units (natural log: 0.05 darkens white
            glass by about 5%).
        rng: the draw's random source (three scales, then three shifts).

    Returns:
        The jittered RGB image (a copy of the input when ``sigma`` and ``bias`` are 0).
    """
    from skimage.color import hed2rgb, rgb2hed

    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if sigma == 0 and bias == 0:
        return Image.fromarray(np.array(rgb, dtype=np.uint8))
    alpha = np.array([rng.uniform(1.0 - sigma, 1.0 + sigma) for _ in range(3)], dtype=np.float64)
    beta = np.array([rng.uniform(-bias, bias) for _ in range(3)], dtype=np.float64) / _SKIMAGE_OD_UNIT
    hed = rgb2hed(rgb) * alpha + beta
    out = np.clip(hed2rgb(hed), 0.0, 1.0)
    return Image.fromarray(np.round(out * 255.0).astype(np.uint8))


class StainAugmentDecoder:
    """Shard sample -> the model's stain-jittered image and one caption (``pathology/patch_text``).

    Args:
        preprocess: the model's image transform (applied after the stain jitter).
        tokenizer: the model's tokenizer (``None``: the text stays a string).
        stain_sigma: HED scale jitter (Tellez's sigma; 0.05 "HED-light", 0.2 "HED-strong"; 0 off).
        stain_bias: HED shift jitter in optical-density units (Tellez's "HED-light" 0.05; 0 off).
        seed: the run's seed; with the sample's key and epoch it seeds the draws.
        text_choice: caption choice when a sample holds several captions.
        max_image_pixels: largest image a sample may hold (checked before decoding).
    """

    @entry_point
    def __init__(
        self,
        preprocess: Callable,
        tokenizer: Callable | None = None,
        *,
        stain_sigma: StainAmplitude = 0.05,
        stain_bias: StainAmplitude = 0.05,
        seed: int = 0,
        text_choice: str = "random",
        max_image_pixels: PositiveInt | None = MAX_IMAGE_PIXELS,
    ):
        self.preprocess = preprocess
        self.stain_sigma = float(stain_sigma)
        self.stain_bias = float(stain_bias)
        self.seed = seed
        self.base = SampleDecoder(
            image_transform=preprocess if self._off else _keep_image,
            tokenizer=tokenizer,
            required=(K.IMAGE, K.TEXT),
            text_choice=text_choice,
            seed=seed,
            max_image_pixels=max_image_pixels,
        )

    @property
    def _off(self) -> bool:
        return self.stain_sigma == 0 and self.stain_bias == 0

    def __call__(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Decode one raw sample; raises :class:`~domainclip.core.data.corrupt.CorruptSampleError` for unusable ones."""
        out = self.base(raw)
        if not self._off:
            rng = derive_rng(self.seed, "hed_jitter", raw.get(SOURCE), raw.get(K.URL), raw.get(K.KEY), raw.get(EPOCH))
            out[K.IMAGE] = self.preprocess(hed_jitter(out[K.IMAGE], self.stain_sigma, self.stain_bias, rng))
        return out


def _keep_image(image: Any) -> Any:
    """The decoded image as it is (the stain jitter and the model's transform come after)."""
    return image


#: CLIP on patches and captions with HED stain augmentation (``data.decoder_args``: options of
#: :class:`StainAugmentDecoder`, e.g. ``{stain_sigma: 0.05, stain_bias: 0.05}``; 0 and 0 turn it off).
PATCH_TEXT = Task("pathology/patch_text", make_decoder=StainAugmentDecoder)
