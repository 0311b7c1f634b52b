"""Decode a batch of JPEGs on the GPU and apply the model's image transform there (``data.decode_device: cuda``).

On the CPU path each data worker decodes a JPEG with PIL and runs the model's open_clip transform
on it. At thousands of images per second that costs many cores (``bench/bench_decode.py``). With
``data.decode_device: cuda`` the work is split in two:

* **in the data workers** (:class:`DeviceImageTransform`, the sample decoder's image transform):
  the JPEG is not decoded. Its header is read (size, and the ``max_image_pixels`` check), the
  random crop box is drawn exactly as the CPU transform would draw it (same call, same per-sample
  seeded global RNG the reader sets before decoding, so a resumed run draws the same boxes), and
  the sample carries :class:`EncodedImage` (the bytes as a 1-D uint8 tensor, and the box). Images
  that are not RGB/grayscale JPEGs (PNG, CMYK JPEG, ...) are decoded there with PIL and carried as
  ``(3, H, W)`` uint8 tensors, to be transformed on the GPU like the others; they are counted.
* **on the device** (:class:`DeviceImageDecoder`, called by the step's batch preparation): one
  batched ``torchvision.io.decode_jpeg(list_of_tensors, device=..., mode=ImageReadMode.RGB)``
  (nvJPEG on CUDA), then per image the transform's geometric steps with
  ``torchvision.transforms.v2.functional`` (``resized_crop`` with the drawn box for training;
  ``resize`` and ``center_crop`` for evaluation), scaling to ``[0, 1]`` and ``normalize`` with the
  model's mean and std. When the batched call raises (a JPEG whose header reads but whose data is
  corrupt), the batch is decoded image by image, and the images that still fail are dropped from
  the batch and counted as ``bad_image``, as the CPU path counts them.

:class:`DeviceImageTransform` is built from the CPU transform itself
(:meth:`DeviceImageTransform.from_transform`), so both paths follow the same preprocessing config:
the steps open_clip's ``image_transform`` and domainclip's ``resize_to`` variant use are supported
(``RandomResizedCrop``, ``Resize``, ``CenterCrop``, the RGB conversion, ``ToTensor``,
``Normalize``); any other step (colour jitter, timm augmentation, letterboxing) is refused with one
line, naming it. Run on CPU tensors (``device="cpu"``) the same code reproduces the CPU path: the
eval transform to within JPEG/resampling rounding, the train transform with the same crop boxes
(``tests/core/test_gpu_decode.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from domainclip.core.data import keys as K
from domainclip.core.data.corrupt import BAD_IMAGE, CorruptSampleError, CorruptTally
from domainclip.core.data.decode import EncodedJpeg
from domainclip.core.errors import RecipeError

__all__ = ["DeviceImageDecoder", "DeviceImageTransform", "EncodedImage", "TransformStep"]


class EncodedImage(NamedTuple):
    """One sample's image on its way to the device: undecoded JPEG bytes (or a CPU-decoded fallback) and its box.

    Args:
        data: the JPEG's bytes as a 1-D uint8 tensor, or, for an image decoded in the worker (not an
            RGB/grayscale JPEG), a ``(3, H, W)`` uint8 tensor.
        crop: the random resized crop's box ``(top, left, height, width)`` drawn in the worker, or
            ``None`` when the transform has no random crop.
    """

    data: torch.Tensor
    crop: tuple[int, int, int, int] | None


@dataclass(frozen=True)
class TransformStep:
    """One geometric step of the image transform, as the device path runs it.

    Args:
        kind: ``random_resized_crop`` | ``resize`` | ``center_crop``.
        size: output size: ``[h, w]``, or ``[edge]`` for a resize of the shorter side.
        interpolation: torchvision interpolation mode name (``bicubic``, ``bilinear``, ...).
        antialias: antialias when downscaling (torchvision's ``antialias``).
        scale: area range of the random resized crop.
        ratio: aspect-ratio range of the random resized crop.
        max_size: longest side after a shorter-side resize (torchvision's ``max_size``).
    """

    kind: str
    size: tuple[int, ...]
    interpolation: str = "bilinear"
    antialias: bool = True
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    max_size: int | None = None


def _shape_only(height: int, width: int) -> torch.Tensor:
    """A ``(3, height, width)`` tensor that allocates nothing, for torchvision's ``get_params`` (reads the shape)."""
    return torch.zeros((), dtype=torch.uint8).expand(3, height, width)


def _size(value: Any) -> tuple[int, ...]:
    return (int(value),) if isinstance(value, int) else tuple(int(v) for v in value)


def _steps_of(transform: Any) -> list[Any]:
    inner = getattr(transform, "transforms", None)
    return list(inner) if inner is not None else [transform]


@dataclass(frozen=True)
class DeviceImageTransform:
    """The model's image transform split into a worker part (header, crop box) and a device part (pixels).

    Called in a data worker on what the sample decoder read (an
    :class:`~domainclip.core.data.decode.EncodedJpeg`, or a PIL image / array it decoded), it returns
    an :class:`EncodedImage`; :meth:`apply` then runs the pixel work on one decoded image on the device.

    Args:
        steps: the geometric steps, in order (at most one random resized crop).
        mean: normalisation mean per channel.
        std: normalisation standard deviation per channel.
    """

    steps: tuple[TransformStep, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    _crop_step: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        crops = [i for i, s in enumerate(self.steps) if s.kind == "random_resized_crop"]
        if len(crops) > 1:
            raise ValueError("at most one random resized crop is supported")
        object.__setattr__(self, "_crop_step", crops[0] if crops else None)

    @classmethod
    def from_transform(cls, transform: Any) -> DeviceImageTransform:
        """The device path of a torchvision ``Compose`` as open_clip / domainclip build it for a model.

        Args:
            transform: the CPU image transform (``preprocess_train`` or ``preprocess_val``).

        Raises:
            RecipeError: the transform has a step the device path does not reproduce (named).
        """
        from open_clip.transform import MaybeConvertMode
        from torchvision import transforms as T

        steps: list[TransformStep] = []
        mean = std = None
        tensor = False
        for step in _steps_of(transform):
            if isinstance(step, T.RandomResizedCrop) and not tensor:
                steps.append(TransformStep(
                    "random_resized_crop", _size(step.size), step.interpolation.value, bool(step.antialias),
                    tuple(step.scale), tuple(step.ratio),
                ))
            elif isinstance(step, T.Resize) and not tensor:
                steps.append(TransformStep(
                    "resize", _size(step.size), step.interpolation.value, bool(step.antialias), max_size=step.max_size
                ))
            elif isinstance(step, T.CenterCrop) and not tensor:
                steps.append(TransformStep("center_crop", _size(step.size)))
            elif isinstance(step, MaybeConvertMode) or getattr(step, "__name__", "") == "_convert_to_rgb":
                continue  # the device path decodes to RGB
            elif isinstance(step, T.ToTensor):
                tensor = True
            elif isinstance(step, T.Normalize) and tensor and mean is None:
                mean, std = tuple(float(m) for m in step.mean), tuple(float(s) for s in step.std)
            else:
                name = getattr(step, "__name__", type(step).__name__)
                raise RecipeError(
                    f"data.decode_device: cuda cannot reproduce the model's image transform step {name} "
                    f"(supported: RandomResizedCrop, Resize, CenterCrop, ToTensor, Normalize); "
                    "use data.decode_device: cpu"
                )
        if not tensor or mean is None:
            raise RecipeError(
                "data.decode_device: cuda needs an image transform that ends in ToTensor and Normalize; "
                "use data.decode_device: cpu"
            )
        return cls(tuple(steps), mean, std)

    # ------------------------------------------------------------------ worker side
    def draw_crop(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """Draw the random crop box for an image of ``height`` x ``width`` (``None`` without a random crop).

        Uses ``torchvision.transforms.RandomResizedCrop.get_params`` with the global torch RNG, the
        call the CPU transform makes first, so under the same seed both draw the same box.

        Args:
            height: image height in pixels.
            width: image width in pixels.
        """
        if self._crop_step is None:
            return None
        from torchvision.transforms import RandomResizedCrop

        step = self.steps[self._crop_step]
        top, left, h, w = RandomResizedCrop.get_params(_shape_only(height, width), list(step.scale), list(step.ratio))
        return int(top), int(left), int(h), int(w)

    def __call__(self, image: EncodedJpeg | Image.Image | np.ndarray) -> EncodedImage:
        """Worker side: what the sample carries to the device for one image the sample decoder read.

        Args:
            image: an undecoded JPEG, or an image the sample decoder decoded (PIL, or an ``H x W x 3``
                uint8 array).

        Raises:
            CorruptSampleError: ``bad_image`` for an array that is not ``H x W x 3`` uint8.
        """
        if isinstance(image, EncodedJpeg):
            data = torch.frombuffer(bytearray(image.data), dtype=torch.uint8)
            return EncodedImage(data, self.draw_crop(image.height, image.width))
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise CorruptSampleError(
                    BAD_IMAGE, f"an array image must be H x W x 3 uint8 for data.decode_device: cuda, got "
                    f"{image.dtype} {image.shape}"
                )
            pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        else:
            pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()
        return EncodedImage(pixels, self.draw_crop(pixels.shape[1], pixels.shape[2]))

    # ------------------------------------------------------------------ device side
    def apply(self, image: torch.Tensor, crop: Sequence[int] | None) -> torch.Tensor:
        """Device side: one decoded ``(3, H, W)`` uint8 image -> the model's normalised float input.

        Args:
            image: the decoded image, on the device the work runs on.
            crop: the box drawn by :meth:`draw_crop` in the worker (``None`` without a random crop).
        """
        import torchvision.transforms.v2.functional as F

        for step in self.steps:
            if step.kind == "random_resized_crop":
                if crop is None:
                    raise ValueError("the transform has a random resized crop but the sample carries no box")
                top, left, h, w = (int(v) for v in crop)
                image = F.resized_crop(image, top, left, h, w, list(step.size), interpolation=step.interpolation,
                                       antialias=step.antialias)
            elif step.kind == "resize":
                image = F.resize(image, list(step.size), interpolation=step.interpolation, max_size=step.max_size,
                                 antialias=step.antialias)
            else:
                image = F.center_crop(image, list(step.size))
        image = F.to_dtype(image, torch.float32, scale=True)
        return F.normalize(image, list(self.mean), list(self.std))


# =========================================================================== the device stage
def _decode_jpegs(
    data: list[torch.Tensor], device: torch.device
) -> tuple[dict[int, torch.Tensor], dict[int, str]]:
    """Decode encoded JPEGs on ``device`` in one batched call; image by image when that call raises."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if not data:
        return {}, {}
    try:
        return dict(enumerate(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))), {}
    except RuntimeError:
        pass  # one bad JPEG fails the batched call: find it image by image
    good: dict[int, torch.Tensor] = {}
    bad: dict[int, str] = {}
    for i, item in enumerate(data):
        try:
            good[i] = decode_jpeg(item, mode=ImageReadMode.RGB, device=device)
        except RuntimeError as e:
            bad[i] = " ".join(str(e).split())
    return good, bad


def _select(batch: Mapping[str, Any], keep: list[int], n: int) -> dict[str, Any]:
    """The batch's samples at ``keep`` (every per-sample tensor and list of length ``n``; other values as they are)."""
    index = torch.tensor(keep, dtype=torch.long)
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == n:
            out[key] = value.index_select(0, index.to(value.device))
        elif isinstance(value, list | tuple) and len(value) == n:
            out[key] = [value[i] for i in keep]
        else:
            out[key] = value
    return out


class DeviceImageDecoder:
    """Batch preparation for ``data.decode_device: cuda``: decode the batch's images on ``device`` and transform them.

    Called on a collated batch whose ``image`` is a list of :class:`EncodedImage`; returns the batch
    with ``image`` a ``(B, 3, h, w)`` float tensor on ``device`` (other keys as they were, minus the
    samples whose JPEG failed to decode, which are counted in :attr:`tally` as ``bad_image`` with
    their shard URL and key), or ``None`` when no sample of the batch decoded.

    Args:
        transform: the device path of the model's image transform.
        device: where to decode and transform (``cuda``; ``cpu`` runs the same code with
            torchvision's CPU decoder, as the tests do).

    Attributes:
        tally: the samples found corrupt here (their ``good`` count stays 0: the reader counted them good).
        counts: ``decoded_on_device`` (JPEGs decoded by the batched call or image by image) and
            ``decoded_in_workers`` (images that were not RGB/grayscale JPEGs, decoded with PIL).
    """

    def __init__(self, transform: DeviceImageTransform, device: torch.device | str):
        self.transform = transform
        self.device = torch.device(device)
        self.tally = CorruptTally()
        self.counts = {"decoded_on_device": 0, "decoded_in_workers": 0}

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any] | None:
        """Decode and transform one batch (see the class docstring).

        Args:
            batch: a collated batch with ``image`` a list of :class:`EncodedImage`.
        """
        images: list[EncodedImage] = list(batch[K.IMAGE])
        n = len(images)
        encoded = [i for i, im in enumerate(images) if im.data.ndim == 1]
        decoded, failed = _decode_jpegs([images[i].data for i in encoded], self.device)
        pixels = {encoded[j]: img for j, img in decoded.items()}
        bad = {encoded[j]: why for j, why in failed.items()}
        for i, im in enumerate(images):
            if im.data.ndim != 1:
                pixels[i] = im.data.to(self.device, non_blocking=True)
        self.counts["decoded_on_device"] += len(decoded)
        self.counts["decoded_in_workers"] += n - len(encoded)
        keys, urls = batch.get(K.KEY), batch.get(K.URL)
        for i, why in sorted(bad.items()):
            self.tally.add(BAD_IMAGE, urls[i] if urls else None, keys[i] if keys else None,
                           f"JPEG cannot be decoded on {self.device}: {why}")
        keep = [i for i in range(n) if i in pixels]
        if not keep:
            return None
        stacked = torch.stack([self.transform.apply(pixels[i], images[i].crop) for i in keep])
        out = _select(batch, keep, n) if bad else dict(batch)
        out[K.IMAGE] = stacked
        return out
