"""Decode raw WebDataset samples (suffix -> bytes) to canonical samples, and collate them.

:class:`SampleDecoder` turns ``{"__key__", "__url__", "jpg": b"...", "txt": b"...", ...}`` into
``{"image", "text", "label", "level", "meta", ...}``. Anything unreadable raises
:class:`~domainclip.core.data.corrupt.CorruptSampleError` with a reason, which the loader counts;
every choice it makes (which caption of several) is seeded from ``(seed, url, key, epoch)`` so a
resumed stream decodes exactly as the uninterrupted one.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import default_collate

from domainclip.core.data import keys as K
from domainclip.core.data.corrupt import (
    BAD_IMAGE,
    BAD_JSON,
    BAD_LABEL,
    BAD_TEXT,
    CorruptSampleError,
    missing_key,
)
from domainclip.core.plugins import UnknownNameError

__all__ = [
    "EPOCH",
    "MAX_IMAGE_PIXELS",
    "SOURCE",
    "TEXT_CHOICES",
    "EncodedJpeg",
    "SampleDecoder",
    "collate_samples",
    "derive_rng",
    "tokenize_text",
]

#: Reserved raw-sample field: the pass over the source this sample comes from (or the resample draw).
EPOCH = "__epoch__"
#: Reserved raw-sample field: name of the :class:`~domainclip.core.data.reader.Source` it comes from.
SOURCE = "__source__"
#: Default largest image (width x height) :class:`SampleDecoder` decodes; the recipe's
#: ``data.max_image_pixels`` has the same default. Well below PIL's own decompression-bomb error
#: (about 179 Mpx), since a 400 KB PNG of 12000 x 12000 pixels already decodes to over half a GB.
MAX_IMAGE_PIXELS = 50_000_000


def derive_rng(*parts: Any) -> random.Random:
    """Return a ``random.Random`` seeded deterministically (across processes and runs) from ``parts``."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


# --------------------------------------------------------------------------- member decoders
def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptSampleError(BAD_TEXT, f"{what} is not UTF-8: {e}") from None


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptSampleError(BAD_JSON, f"{what} is not valid JSON: {e}") from None


class EncodedJpeg(NamedTuple):
    """A JPEG image member passed through undecoded (``SampleDecoder(keep_jpeg=True)``), its header checked.

    Args:
        data: the member's bytes, as stored in the shard.
        width: image width in pixels, from the JPEG header.
        height: image height in pixels, from the JPEG header.
    """

    data: bytes
    width: int
    height: int


_UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
#: PIL modes of JPEGs that ``torchvision.io.decode_jpeg(..., mode=RGB)`` turns into the same RGB as
#: PIL's ``convert("RGB")``; other JPEGs (CMYK, YCCK) are decoded with PIL even when ``keep_jpeg``.
_PASSTHROUGH_JPEG_MODES = ("RGB", "L")


def _open_image(data: bytes, suffix: str, max_pixels: int | None) -> Image.Image:
    """Open one image member (its header only) and refuse it when it has more than ``max_pixels`` pixels."""
    try:
        img = Image.open(io.BytesIO(data))
    except _UNREADABLE as e:
        raise CorruptSampleError(BAD_IMAGE, f".{suffix} cannot be decoded: {e}") from None
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        img.close()
        raise CorruptSampleError(
            BAD_IMAGE,
            f".{suffix} is {width}x{height} = {width * height} pixels, more than "
            f"max_image_pixels={max_pixels}; not decoded",
        )
    return img


def _decode_image_bytes(
    data: bytes, suffix: str, max_pixels: int | None, *, keep_jpeg: bool = False
) -> Image.Image | np.ndarray | EncodedJpeg:
    """Decode one image member to RGB; refuse from its header one of more than ``max_pixels`` pixels.

    ``Image.open`` reads only the header, so the size is checked before any pixel is decoded.
    ``.npy`` arrays are stored uncompressed and cannot be larger than their bytes. With ``keep_jpeg``
    a JPEG in RGB or grayscale is returned undecoded as an :class:`EncodedJpeg` after that check.
    """
    if suffix == "npy":
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as e:  # numpy raises ValueError/OSError/EOFError for bad .npy
            raise CorruptSampleError(BAD_IMAGE, f".npy image cannot be loaded: {e}") from None
    img = _open_image(data, suffix, max_pixels)
    with img:
        if keep_jpeg and img.format == "JPEG" and img.mode in _PASSTHROUGH_JPEG_MODES:
            return EncodedJpeg(data, *img.size)
        try:
            img.load()
            return img.convert("RGB")
        except _UNREADABLE as e:
            raise CorruptSampleError(BAD_IMAGE, f".{suffix} cannot be decoded: {e}") from None


def tokenize_text(tokenizer: Callable[[Any], Any], text: str | list[str]) -> Any:
    """``tokenizer(text)``; one caption gives one row ``(L,)``, a list of captions ``(N, L)``.

    Args:
        tokenizer: the model's tokenizer (text or list of texts -> ``(N, L)`` token ids).
        text: one caption or a list of captions.
    """
    tokens = tokenizer(text)
    if isinstance(text, str) and isinstance(tokens, torch.Tensor) and tokens.ndim == 2 and tokens.shape[0] == 1:
        tokens = tokens[0]
    return tokens


def _pil_to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    array = np.array(image)  # a writable copy
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _check_caption_list(value: list, what: str) -> list[str]:
    if not value or not all(isinstance(t, str) and t.strip() for t in value):
        raise CorruptSampleError(BAD_TEXT, f"{what} must be a non-empty list of non-empty strings")
    return value


def _check_caption_dict(value: dict, what: str) -> dict[str, Any]:
    if not value:
        raise CorruptSampleError(BAD_TEXT, f"{what} is an empty dict")
    for lang, text in value.items():
        ok = isinstance(text, str) and text.strip()
        ok = ok or (isinstance(text, list) and text and all(isinstance(t, str) and t.strip() for t in text))
        if not ok:
            raise CorruptSampleError(
                BAD_TEXT, f"{what}[{lang!r}] must be a non-empty string or list of strings"
            )
    return value


def _check_language_weights(languages: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(languages, Mapping):
        raise ValueError(f"languages must map language codes to weights; got {languages!r}")
    weights = {}
    for lang, weight in languages.items():
        if not isinstance(lang, str) or not lang:
            raise ValueError(f"languages: a language code must be a non-empty string; got {lang!r}")
        ok = isinstance(weight, int | float) and not isinstance(weight, bool) and math.isfinite(weight) and weight > 0
        if not ok:
            raise ValueError(f"languages[{lang!r}] must be a positive number; got {weight!r}")
        weights[lang] = float(weight)
    return weights


def _choose_random(captions: list[str], rng: random.Random) -> str | list[str]:
    return captions[rng.randrange(len(captions))]


def _choose_first(captions: list[str], rng: random.Random) -> str | list[str]:
    return captions[0]


def _choose_all(captions: list[str], rng: random.Random) -> str | list[str]:
    return list(captions)


#: ``text_choice`` name -> how one sample's list of captions becomes its text.
TEXT_CHOICES: dict[str, Callable[[list[str], random.Random], str | list[str]]] = {
    "random": _choose_random,
    "first": _choose_first,
    "all": _choose_all,
}


class SampleDecoder:
    """Raw WebDataset sample -> canonical sample; corrupt parts raise :class:`CorruptSampleError`.

    * image (first of ``keys.SHARD_SUFFIXES["image"]`` present): decoded with PIL to RGB and
      passed to ``image_transform``; without a transform it becomes a ``(3, H, W)`` uint8 tensor.
      An image of more than ``max_image_pixels`` is counted as ``bad_image`` from its header.
      ``.npy`` images are loaded with numpy and given to the transform as arrays (or turned into
      a tensor as they are). With ``keep_jpeg`` an RGB or grayscale JPEG is not decoded: after its
      header is checked it is given to the transform as an :class:`EncodedJpeg` (without a transform
      it becomes a 1-D uint8 tensor of its bytes), for a transform that decodes on the GPU
      (:mod:`domainclip.core.data.gpu_decode`); other images are decoded with PIL as usual.
    * text: ``.txt`` (one caption) or ``.text.json`` (a list: one caption chosen per
      ``text_choice``; a dict of languages ``{"en": [...], "pt": [...]}``: kept as a dict when
      ``languages`` is ``None``, else one language is drawn per sample and ``text_choice`` applied
      to its captions, see :meth:`choose_language`); then ``tokenizer`` when given (a ``(1, L)``
      result for one caption is squeezed to ``(L,)``).
    * label: ``.cls`` -> ``int``, ``.label.json`` -> ``list``; level: ``.level.txt`` / ``.level.json``;
      meta: ``.json`` -> ``dict``; views/video: ``.views.npy`` / ``.frames.npy`` -> tensors.
    * ``__key__``, ``__url__`` and ``__source__`` are kept; suffixes named in ``passthrough`` are
      kept as raw bytes under their suffix (e.g. ``("mp4",)`` for a video decoder downstream).

    Args:
        image_transform: callable applied to the decoded image (e.g. an open_clip preprocess).
        tokenizer: callable applied to the chosen caption(s).
        required: canonical keys that must be present; a missing one raises
            ``CorruptSampleError("missing_key:<key>")``.
        text_choice: ``"random"`` | ``"first"`` | ``"all"`` (see :data:`TEXT_CHOICES`).
        seed: seed of the caption and language choice (combined with the sample's URL, key and epoch).
        passthrough: member suffixes to keep as raw bytes.
        max_image_pixels: largest image (width x height) to decode; a larger one is counted as
            ``bad_image`` from its header, before decoding (recipe ``data.max_image_pixels``).
            ``None`` leaves only PIL's own decompression-bomb limit.
        languages: how a caption dict of several languages becomes text (recipe ``data.languages``):
            ``None`` keeps the dict (evaluation reads every language by name); a mapping of
            language code -> weight draws one language per sample among those the sample has
            (weights renormalised; a language the sample lacks is skipped), and an empty mapping
            draws among all of a sample's languages equally. With ``text_choice="all"`` nothing is
            drawn: every caption of every (listed) language is kept.
        keep_jpeg: pass RGB and grayscale JPEG images through undecoded (recipe
            ``data.decode_device: cuda``); the image transform then receives an :class:`EncodedJpeg`.

    Raises:
        UnknownNameError: ``text_choice`` or a ``required`` key is not known.
        ValueError: ``max_image_pixels`` is not a positive integer, or a language weight is not a
            positive number.

    """

    def __init__(
        self,
        image_transform: Callable[[Any], Any] | None = None,
        tokenizer: Callable[[Any], Any] | None = None,
        required: Sequence[str] = (K.IMAGE, K.TEXT),
        text_choice: str = "random",
        seed: int = 0,
        passthrough: Sequence[str] = (),
        max_image_pixels: int | None = MAX_IMAGE_PIXELS,
        languages: Mapping[str, float] | None = None,
        keep_jpeg: bool = False,
    ):
        if max_image_pixels is not None and (
            isinstance(max_image_pixels, bool) or not isinstance(max_image_pixels, int) or max_image_pixels < 1
        ):
            raise ValueError(f"max_image_pixels must be an integer >= 1 or None; got {max_image_pixels!r}")
        if text_choice not in TEXT_CHOICES:
            raise UnknownNameError("text_choice", text_choice, list(TEXT_CHOICES))
        unknown = [k for k in required if k not in K.SAMPLE_KEYS]
        if unknown:
            raise UnknownNameError("sample key", unknown[0], list(K.SAMPLE_KEYS))
        self.image_transform = image_transform
        self.tokenizer = tokenizer
        self.required = tuple(required)
        self.text_choice = text_choice
        self.seed = seed
        self.passthrough = tuple(passthrough)
        self.max_image_pixels = max_image_pixels
        self.languages = None if languages is None else _check_language_weights(languages)
        self.keep_jpeg = keep_jpeg

    def __call__(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Decode one raw sample; raises :class:`CorruptSampleError` for unusable ones."""
        out: dict[str, Any] = {}
        for field in (K.KEY, K.URL, SOURCE):
            if field in raw:
                out[field] = raw[field]
        present: dict[str, str] = {}
        for key, suffixes in K.SHARD_SUFFIXES.items():
            for suffix in suffixes:
                if suffix in raw:
                    present[key] = suffix
                    break
        for key in self.required:
            if key not in present:
                members = sorted(k for k in raw if not k.startswith("__"))
                raise CorruptSampleError(missing_key(key), f"members present: {members}")

        if K.IMAGE in present:
            suffix = present[K.IMAGE]
            image = _decode_image_bytes(raw[suffix], suffix, self.max_image_pixels, keep_jpeg=self.keep_jpeg)
            if self.image_transform is not None:
                out[K.IMAGE] = self.image_transform(image)
            elif isinstance(image, EncodedJpeg):
                out[K.IMAGE] = torch.frombuffer(bytearray(image.data), dtype=torch.uint8)
            elif isinstance(image, np.ndarray):
                out[K.IMAGE] = torch.from_numpy(np.ascontiguousarray(image))
            else:
                out[K.IMAGE] = _pil_to_tensor(image)
        if K.TEXT in present:
            out[K.TEXT] = self._text(raw, present[K.TEXT])
        if K.LABEL in present:
            out[K.LABEL] = self._label(raw, present[K.LABEL])
        if K.LEVEL in present:
            suffix = present[K.LEVEL]
            out[K.LEVEL] = (
                _utf8(raw[suffix], ".level.txt").strip()
                if suffix == "level.txt"
                else _json(raw[suffix], ".level.json")
            )
        if K.META in present:
            meta = _json(raw["json"], ".json")
            if not isinstance(meta, dict):
                raise CorruptSampleError(BAD_JSON, f".json must hold an object, got {type(meta).__name__}")
            out[K.META] = meta
        for key in (K.VIEWS, K.VIDEO):
            suffix = present.get(key)
            if suffix is not None and suffix.endswith("npy"):
                try:
                    out[key] = torch.from_numpy(np.load(io.BytesIO(raw[suffix]), allow_pickle=False))
                except Exception as e:  # numpy raises ValueError/OSError/EOFError for bad .npy
                    raise CorruptSampleError(BAD_IMAGE, f".{suffix} cannot be loaded: {e}") from None
        for suffix in self.passthrough:
            if suffix in raw:
                out[suffix] = raw[suffix]
        return out

    # ------------------------------------------------------------------ parts
    def _text(self, raw: Mapping[str, Any], suffix: str) -> Any:
        if suffix == "txt":
            text: Any = _utf8(raw[suffix], ".txt").strip()
            if not text:
                raise CorruptSampleError(BAD_TEXT, ".txt is empty")
        else:
            value = _json(raw[suffix], ".text.json")
            if isinstance(value, str):
                if not value.strip():
                    raise CorruptSampleError(BAD_TEXT, ".text.json holds an empty string")
                text = value
            elif isinstance(value, list):
                captions = _check_caption_list(value, ".text.json")
                rng = derive_rng(self.seed, raw.get(K.URL), raw.get(K.KEY), raw.get(EPOCH))
                text = TEXT_CHOICES[self.text_choice](captions, rng)
            elif isinstance(value, dict):
                text = _check_caption_dict(value, ".text.json")
                if self.languages is not None:
                    text = self.choose_language(text, raw)
            else:
                raise CorruptSampleError(
                    BAD_TEXT, f".text.json must be a string, list or dict, not {type(value).__name__}"
                )
        if self.tokenizer is None:
            return text
        if isinstance(text, dict):
            return {lang: self._tokenize(t) for lang, t in text.items()}
        return self._tokenize(text)

    def choose_language(self, captions: Mapping[str, str | list[str]], raw: Mapping[str, Any]) -> str | list[str]:
        """One sample's text from its captions by language, as ``languages`` and ``text_choice`` say.

        The language is drawn with the sample's own generator (seeded from ``seed`` and the sample's
        URL, key and epoch, like the caption choice, which follows from the same generator), among
        the sample's languages in sorted order, so a resumed stream draws exactly what the
        uninterrupted one drew.

        Args:
            captions: language code -> one caption or a list of captions.
            raw: the raw sample (its ``__url__``, ``__key__`` and ``__epoch__`` seed the draw).

        Raises:
            CorruptSampleError: ``bad_text`` when the sample has none of the listed languages.
        """
        wanted = self.languages or {}
        per_language = {lang: [value] if isinstance(value, str) else list(value) for lang, value in captions.items()
                        if not wanted or lang in wanted}
        if not per_language:
            raise CorruptSampleError(
                BAD_TEXT, f".text.json has captions in {', '.join(sorted(captions))} but none in the languages asked "
                f"for ({', '.join(sorted(wanted))})"
            )
        if self.text_choice == "all":
            order = [lang for lang in wanted if lang in per_language] if wanted else list(per_language)
            return [caption for lang in order for caption in per_language[lang]]
        rng = derive_rng(self.seed, raw.get(K.URL), raw.get(K.KEY), raw.get(EPOCH))
        names = sorted(per_language)
        language = rng.choices(names, weights=[wanted.get(lang, 1.0) for lang in names])[0]
        return TEXT_CHOICES[self.text_choice](per_language[language], rng)

    def _tokenize(self, text: str | list[str]) -> Any:
        return tokenize_text(self.tokenizer, text)

    @staticmethod
    def _label(raw: Mapping[str, Any], suffix: str) -> int | list:
        if suffix == "cls":
            try:
                return int(raw[suffix].decode("ascii").strip())
            except (UnicodeDecodeError, ValueError) as e:
                raise CorruptSampleError(BAD_LABEL, f".cls is not an integer: {e}") from None
        value = _json(raw[suffix], ".label.json")
        if not isinstance(value, list | int) or isinstance(value, bool):
            raise CorruptSampleError(
                BAD_JSON, f".label.json must hold a list or int, not {type(value).__name__}"
            )
        return value


# --------------------------------------------------------------------------- collate
def _stackable(value: Any) -> bool:
    return isinstance(value, torch.Tensor | np.ndarray | np.number | int | float) and not isinstance(
        value, bool
    )


def collate_samples(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Default collate: ``torch`` ``default_collate`` for tensor/number keys, lists for the rest.

    Strings, dicts (``meta``, per-language text), lists (several captions) and ``__key__`` /
    ``__url__`` become Python lists in sample order.

    Args:
        samples: decoded samples with the same keys.

    Returns:
        key -> batched tensor or list.

    Raises:
        ValueError: the samples do not all have the same keys.

    """
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    keys = list(samples[0].keys())
    for sample in samples[1:]:
        if sample.keys() != samples[0].keys():
            a = sorted(samples[0].keys())
            b = sorted(sample.keys())
            raise ValueError(
                f"samples in one batch have different keys ({a} for {samples[0].get(K.KEY)!r} vs {b} for "
                f"{sample.get(K.KEY)!r}); make the key required in the decoder, drop it, or pass a collate"
            )
    batch: dict[str, Any] = {}
    for key in keys:
        values = [s[key] for s in samples]
        if all(_stackable(v) for v in values):
            batch[key] = default_collate(values)
        else:
            batch[key] = values
    return batch
