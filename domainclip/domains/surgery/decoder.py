"""Training-time decoder of video-text shard samples for the streaming reader.

:class:`VideoClipDecoder` plays the role of :class:`~domainclip.core.data.decode.SampleDecoder`
(and wraps one for text, label, level and metadata) for samples whose ``video`` member is an
encoded clip (``.mp4``/``.webm``/``.mkv``/``.avi``, e.g. written by
:func:`~domainclip.domains.surgery.video.cut_clip`) or raw frames (``.frames.npy``). It samples
``num_frames`` frames, applies an open_clip image transform to each and returns
``sample["video"]`` as a float tensor ``(T, 3, H, W)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from domainclip.core.data import keys as K
from domainclip.core.data.corrupt import BAD_VIDEO, CorruptSampleError, missing_key
from domainclip.core.data.decode import EPOCH, MAX_IMAGE_PIXELS, SOURCE, SampleDecoder, derive_rng
from domainclip.core.options import NonNegativeInt, PositiveFloat, PositiveInt, entry_point
from domainclip.domains.surgery.video import (
    Backend,
    Sampler,
    VideoDecodeError,
    npy_to_frames,
    open_video,
    sample_indices,
)

__all__ = ["BAD_VIDEO", "VideoClipDecoder", "fit_length"]

_VIDEO_SUFFIXES = K.SHARD_SUFFIXES[K.VIDEO]


def fit_length(indices: Sequence[int], length: int, rng: random.Random, train: bool) -> list[int]:
    """Make a list of frame indices exactly ``length`` long.

    Longer lists keep a contiguous window (at a random position when ``train``, centred
    otherwise); shorter ones repeat their entries evenly (``[0, 1, 2]`` -> ``[0, 0, 1, 1, 2, 2]``).
    """
    count = len(indices)
    if count == 0:
        raise ValueError("no frame indices to fit")
    if count >= length:
        begin = rng.randrange(count - length + 1) if train else (count - length) // 2
        return list(indices[begin : begin + length])
    return [indices[(2 * k + 1) * count // (2 * length)] for k in range(length)]


class VideoClipDecoder:
    """Raw shard sample with a video clip -> canonical sample with ``video`` ``(T, 3, H, W)``.

    * video: the first member of ``keys.SHARD_SUFFIXES["video"]`` present (``mp4``, ``avi``,
      ``webm``, ``mkv`` bytes, or ``frames.npy`` holding ``uint8`` ``(T, H, W, 3)`` or
      ``(T, 3, H, W)``). ``num_frames`` indices are drawn with ``sampling`` over the whole clip:
      ``"uniform"`` segment centres (a random frame per segment when ``train``), or ``"fps"`` /
      ``"all"`` then cut to a window of ``num_frames`` (random when ``train``, centred otherwise).
      Clips shorter than ``num_frames`` repeat frames evenly. ``frames.npy`` clips carry no frame
      rate: their frames count as already sampled (``"fps"`` keeps every stored frame). Each frame goes through
      ``preprocess`` as a PIL image; with ``same_augmentation`` every frame of a clip sees the
      same random state, so random crops/flips match across frames. Without ``preprocess`` the
      result is a ``uint8`` tensor ``(T, 3, H, W)``.
    * text, label, level, meta (and images): decoded by a wrapped
      :class:`~domainclip.core.data.decode.SampleDecoder` with the same ``tokenizer``,
      ``text_choice``, ``seed`` and ``required`` keys.
    * Randomness (frame jitter, caption choice) is seeded from ``(seed, source, url, key, epoch)``
      as in :func:`~domainclip.core.data.decode.derive_rng`, so a resumed run decodes the same.

    Unreadable video raises :class:`~domainclip.core.data.corrupt.CorruptSampleError` with reason
    :data:`BAD_VIDEO`; the loader counts and skips the sample.

    Args:
        preprocess: image transform applied to each frame, PIL image -> tensor (an open_clip
            preprocess), or ``None``.
        tokenizer: tokenizer applied to the chosen caption(s), text -> token ids.
        num_frames: frames per clip ``T``.
        sampling: frame sampler of :data:`~domainclip.domains.surgery.video.SAMPLERS` (uniform, fps, all).
        train: jittered sampling (random frames/windows) instead of deterministic.
        seed: seed of every random choice (combined with the sample's identity).
        text_choice: caption choice among several (see ``SampleDecoder``).
        required: canonical keys that must be present.
        target_fps: frames per second for ``sampling="fps"``.
        backend: video backend of :func:`~domainclip.domains.surgery.video.open_video` (auto, pyav, torchcodec, decord).
        threads: decoder threads per clip (1 suits data-loader workers; 0: automatic).
        same_augmentation: give every frame of a clip the same random augmentation.
        max_image_pixels: largest image (width x height) a sample's image member may declare; a
            larger one is counted as ``bad_image`` before decoding (recipe ``data.max_image_pixels``).

    """

    @entry_point
    def __init__(
        self,
        preprocess: Callable | None,
        tokenizer: Callable | None = None,
        *,
        num_frames: PositiveInt = 8,
        sampling: Sampler = "uniform",
        train: bool = True,
        seed: int = 0,
        text_choice: str = "random",
        required: tuple[str, ...] = (K.VIDEO, K.TEXT),
        target_fps: PositiveFloat = 1.0,
        backend: Backend = "auto",
        threads: NonNegativeInt = 1,
        same_augmentation: bool = True,
        max_image_pixels: PositiveInt | None = MAX_IMAGE_PIXELS,
    ):
        self.preprocess = preprocess
        self.num_frames = num_frames
        self.sampling = sampling
        self.train = train
        self.seed = seed
        self.required = tuple(required)
        self.target_fps = target_fps
        self.backend = backend
        self.threads = threads
        self.same_augmentation = same_augmentation
        self.base = SampleDecoder(
            image_transform=preprocess,
            tokenizer=tokenizer,
            required=[k for k in self.required if k != K.VIDEO],
            text_choice=text_choice,
            seed=seed,
            max_image_pixels=max_image_pixels,
        )

    def __call__(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Decode one raw sample; raises :class:`CorruptSampleError` for unusable ones."""
        suffix = next((s for s in _VIDEO_SUFFIXES if s in raw), None)
        if suffix is None and K.VIDEO in self.required:
            members = sorted(k for k in raw if not k.startswith("__"))
            raise CorruptSampleError(missing_key(K.VIDEO), f"members present: {members}")
        out = self.base({k: v for k, v in raw.items() if k not in _VIDEO_SUFFIXES})
        if suffix is not None:
            rng = derive_rng(self.seed, "video", raw.get(SOURCE), raw.get(K.URL), raw.get(K.KEY), raw.get(EPOCH))
            name = f"{raw.get(K.KEY)}.{suffix}"
            try:
                frames = self.frames(raw[suffix], suffix, rng, name)
            except VideoDecodeError as e:
                raise CorruptSampleError(BAD_VIDEO, str(e)) from None
            out[K.VIDEO] = self.transform(frames)
        return out

    # ------------------------------------------------------------------ parts
    def indices(self, total: int, fps: float, rng: random.Random) -> list[int]:
        """The ``num_frames`` frame indices this decoder reads from a clip of ``total`` frames."""
        if self.sampling == "uniform":
            return sample_indices("uniform", total, 0.0, None, fps, n=self.num_frames, jitter=self.train, rng=rng)
        chosen = sample_indices(
            self.sampling, total, 0.0, None, fps, target_fps=self.target_fps, jitter=self.train, rng=rng
        )
        return fit_length(chosen, self.num_frames, rng, self.train)

    def frames(self, data: bytes, suffix: str, rng: random.Random, name: str) -> np.ndarray:
        """Decode the sampled frames of one clip member as ``uint8`` ``(T, H, W, 3)``.

        Raises:
            VideoDecodeError: the member is not a readable clip.

        """
        if suffix.endswith("npy"):
            clip = npy_to_frames(data, name)
            fps = self.target_fps if self.sampling == "fps" else 1.0  # raw frames carry no rate
            return clip[self.indices(clip.shape[0], fps, rng)]
        with open_video(data, backend=self.backend, name=name, threads=self.threads) as video:
            return video.get_frames(self.indices(video.num_frames, video.fps, rng))

    def transform(self, frames: np.ndarray) -> torch.Tensor:
        """Apply ``preprocess`` to every frame and stack: ``(T, H, W, 3)`` uint8 -> ``(T, 3, H', W')``."""
        if self.preprocess is None:
            return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).contiguous()
        images = [Image.fromarray(frame) for frame in frames]
        if not self.same_augmentation:
            return torch.stack([self.preprocess(image) for image in images])
        states = (torch.get_rng_state(), random.getstate(), np.random.get_state())
        tensors = []
        for image in images:
            torch.set_rng_state(states[0])
            random.setstate(states[1])
            np.random.set_state(states[2])
            tensors.append(self.preprocess(image))
        return torch.stack(tensors)
