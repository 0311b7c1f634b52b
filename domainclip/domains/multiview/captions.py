"""Captions of multi-view objects: category-guided templates, and a hook for a captioning model.

Omniview-Tuning guides its captions with the object's category so the category word is always in
the text (its released MVCap captions are the unguided ones; this module does what the paper
intends). Two sources:

* :func:`template_captions`: several templates per object, drawn from :data:`TEMPLATES`; each
  names the category and may use the object's attributes (``colour``, ``second_colour``,
  ``pattern``, ``view``) when they are known, so a caption never states what is not known.
* a captioning model: any :class:`Captioner` (``captioner(images, category) -> captions``), such as
  a Hugging Face image-to-text checkpoint loaded by :func:`make_captioner` (BLIP and the like).
  :func:`category_guided` wraps one so that a caption lacking the category word gets it.

:data:`ZERO_SHOT_PROMPTS` are the prompts of the domain's zero-shot suites (callables, as
:func:`domainclip.core.eval.zero_shot.build_zero_shot_classifier` takes them).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from domainclip.core.errors import InputError, InputNotFoundError

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "ATTRIBUTES",
    "TEMPLATES",
    "ZERO_SHOT_PROMPTS",
    "Captioner",
    "CaptionerError",
    "HFCaptioner",
    "category_guided",
    "category_text",
    "guide_caption",
    "make_captioner",
    "mentions_category",
    "template_captions",
    "with_article",
]

#: Attributes a template may use, and what each is.
ATTRIBUTES: dict[str, str] = {
    "colour": "the main colour's name (red)",
    "second_colour": "the pattern's colour (white); ignored for a plain pattern",
    "pattern": "the surface pattern, an adjective (striped, checked, dotted, speckled, plain)",
    "view": "where the object is seen from, after 'seen from' (above, the side, the front)",
}

#: Caption templates. ``{a_category}`` is the category with its article, ``{category}`` the bare
#: word; every other field is an attribute of :data:`ATTRIBUTES`, and a template is used only when
#: the object has all of its fields. A lone ``a`` is corrected to ``an`` before a vowel.
TEMPLATES: tuple[str, ...] = (
    "a 3D render of {a_category}.",
    "a rendering of {a_category} on a plain background.",
    "a 3D model of {a_category}.",
    "{a_category}, rendered from several viewpoints.",
    "a computer graphics image of {a_category}.",
    "a photo of {a_category}.",
    "a {colour} {category}.",
    "a 3D render of a {colour} {category}.",
    "a {category} coloured {colour}.",
    "a {pattern} {colour} {category}.",
    "a {pattern} {category} in {colour} and {second_colour}.",
    "{a_category} with a {pattern} {colour} and {second_colour} surface.",
    "{a_category} seen from {view}.",
    "a {colour} {category} seen from {view}.",
    "a view of {a_category} from {view}.",
)

_FIELDS = {"category", "a_category"}
_VOWEL_A = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def with_article(phrase: str) -> str:
    """``phrase`` with ``a`` or ``an`` before it (by its first letter: "an orange mug", "a box")."""
    return _VOWEL_A.sub(r"\1n ", f"a {phrase}")


def category_text(category: str) -> str:
    """The category as words: ``night_stand`` -> ``night stand`` (ModelNet and ShapeNet folder names)."""
    return " ".join(re.split(r"[_\-\s]+", category.strip()))


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _check_attributes(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    known = {k: str(v).strip() for k, v in (attributes or {}).items() if v is not None and str(v).strip()}
    unknown = sorted(set(known) - set(ATTRIBUTES))
    if unknown:
        raise InputError(f"caption attributes {unknown} are not known; the templates use {sorted(ATTRIBUTES)}")
    if known.get("pattern") == "plain":
        known.pop("second_colour", None)
    return known


def template_captions(
    category: str,
    *,
    n: int = 5,
    seed: int | Sequence[int] = 0,
    attributes: Mapping[str, Any] | None = None,
) -> list[str]:
    """Draw ``n`` captions of an object of ``category`` from the templates its attributes allow.

    Templates are drawn without repetition while there are enough (then the pool is drawn again),
    in an order set by ``seed``; every caption names the category.

    Args:
        category: the object's category (``_`` and ``-`` become spaces).
        n: number of captions.
        seed: seed of the draw (an int, or a sequence such as ``(set seed, object index)``).
        attributes: what is known of the object (:data:`ATTRIBUTES`); ``None`` values are skipped.

    Raises:
        InputError: an empty category, ``n`` below 1, or an attribute the templates do not know.
    """
    words = category_text(category)
    if not words:
        raise InputError(f"a caption needs a category; got {category!r}")
    if n < 1:
        raise InputError(f"n must be at least 1; got {n}")
    known = _check_attributes(attributes)
    values = {"category": words, "a_category": with_article(words), **known}
    pool = [t for t in TEMPLATES if _fields(t) <= set(values)]
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while len(order) < n:
        order.extend(int(i) for i in rng.permutation(len(pool)))
    return [_VOWEL_A.sub(r"\1n ", pool[i].format(**values)) for i in order[:n]]


@dataclass(frozen=True)
class _Prompt:
    """One zero-shot prompt: ``template`` with ``{a_category}`` filled in."""

    template: str

    def __call__(self, category: str) -> str:
        return self.template.format(a_category=with_article(category_text(category)))


#: Zero-shot prompts of the domain's suites: callables ``category -> prompt``.
ZERO_SHOT_PROMPTS: tuple[Callable[[str], str], ...] = tuple(
    _Prompt(t)
    for t in (
        "a 3D render of {a_category}.",
        "a rendering of {a_category}.",
        "a 3D model of {a_category}.",
        "a photo of {a_category}.",
        "{a_category} seen from an unusual viewpoint.",
    )
)


# ----------------------------------------------------------------------------------------------------
# captioning models
# ----------------------------------------------------------------------------------------------------


@runtime_checkable
class Captioner(Protocol):
    """Anything that captions the views of one object: ``captioner(images, category) -> captions``.

    It returns one caption per image; ``category`` is given so a model may be prompted with it.
    """

    def __call__(self, images: list[Image.Image], category: str) -> list[str]:
        """Caption ``images``, views of one object of ``category``."""
        ...


class CaptionerError(InputError):
    """A captioning model cannot be loaded (not found, or not an image-to-text checkpoint)."""


def mentions_category(caption: str, category: str) -> bool:
    """Whether ``caption`` names ``category`` as words (case-insensitive; a plural ``s`` or ``es`` counts)."""
    words = r"\s+".join(re.escape(w) for w in category_text(category).split())
    return re.search(rf"\b{words}(?:s|es)?\b", caption, flags=re.IGNORECASE) is not None


def guide_caption(caption: str, category: str) -> str:
    """Make ``caption`` name ``category``: unchanged if it does, else ``"a <category>: <caption>"``.

    The category goes first so truncation to the text tower's context keeps it; an empty caption
    becomes ``"a <category>"``.
    """
    caption = " ".join(caption.split())
    if mentions_category(caption, category):
        return caption
    named = with_article(category_text(category))
    return f"{named}: {caption}" if caption else named


@dataclass
class _CategoryGuided:
    captioner: Captioner

    def __call__(self, images: list[Image.Image], category: str) -> list[str]:
        return [guide_caption(c, category) for c in self.captioner(images, category)]


def category_guided(captioner: Captioner) -> Captioner:
    """Wrap ``captioner`` so every caption names the object's category (Omniview-Tuning's intent).

    Args:
        captioner: a captioner whose captions may lack the category word.
    """
    return _CategoryGuided(captioner)


class HFCaptioner:
    """A Hugging Face image-to-text checkpoint (BLIP, GIT, ...) as a :class:`Captioner`.

    Captions are generated greedily (deterministic). With ``prompt``, generation is conditioned on
    its text, ``{category}`` filled in (BLIP continues a prefix such as ``"a 3D render of a
    {category},"``).

    Args:
        processor: the checkpoint's processor (image processor and tokenizer).
        model: the image-to-text model.
        device: where the model runs.
        max_new_tokens: longest caption in tokens.
        prompt: optional text prefix with an optional ``{category}`` field.
        batch_size: images per forward pass.
        name: what the checkpoint was loaded from (``caption_source`` is ``captioner:<name>``).
    """

    def __init__(self, processor: Any, model: Any, *, device: str = "cpu", max_new_tokens: int = 30,
                 prompt: str | None = None, batch_size: int = 8, name: str = "model"):
        self.processor = processor
        self.model = model.to(device).eval()
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.prompt = prompt
        self.batch_size = batch_size
        self.name = name

    def __call__(self, images: list[Image.Image], category: str) -> list[str]:
        """Caption each image (one caption per image, in order)."""
        import torch

        captions: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            kwargs: dict[str, Any] = {"images": batch, "return_tensors": "pt"}
            if self.prompt is not None:
                kwargs["text"] = [self.prompt.format(category=category_text(category))] * len(batch)
            inputs = self.processor(**kwargs).to(self.device)
            with torch.inference_mode():
                tokens = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                             num_beams=1)
            texts = self.processor.batch_decode(tokens, skip_special_tokens=True)
            captions.extend(" ".join(t.split()) for t in texts)
        return captions


def make_captioner(
    spec: str,
    *,
    device: str = "cpu",
    max_new_tokens: int = 30,
    prompt: str | None = None,
    cache_dir: str | Path | None = None,
) -> HFCaptioner:
    """Load a Hugging Face image-to-text model as a :class:`Captioner`.

    Args:
        spec: a local folder (``PATH`` or ``local-dir:PATH``) or a hub id (``org/name[@revision]``,
            ``hf-hub:`` optional; taken from the Hugging Face cache when offline), e.g.
            ``Salesforce/blip-image-captioning-base``.
        device: where the model runs.
        max_new_tokens: longest caption in tokens.
        prompt: optional conditioning text with an optional ``{category}`` field.
        cache_dir: Hugging Face cache folder.

    Raises:
        InputNotFoundError: ``spec`` looks like a path and no such folder exists.
        HubNotFoundError: the hub id is not in the cache and cannot be fetched.
        CaptionerError: the folder is not an image-to-text checkpoint with a processor.
    """
    from domainclip.core.hub import download_hub_folder, resolve_folder
    from domainclip.core.plugins import require

    transformers = require("transformers", "multiview", "captioning views with a model")
    folder = resolve_folder(spec, cache_dir=cache_dir, bare_paths=True)
    if folder is None:
        if Path(spec).expanduser().exists() or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
            raise InputNotFoundError(f"captioner {spec!r}: no such model folder (a folder or an org/name hub id)")
        folder = download_hub_folder(spec, cache_dir=cache_dir)
    try:
        processor = transformers.AutoProcessor.from_pretrained(folder.path)
        model = transformers.AutoModelForImageTextToText.from_pretrained(folder.path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        detail = " ".join(str(e).split())[:300]
        raise CaptionerError(f"captioner {spec!r} cannot be loaded as a Hugging Face image-to-text model with a "
                             f"processor ({folder.path}): {detail}") from None
    return HFCaptioner(processor, model, device=device, max_new_tokens=max_new_tokens, prompt=prompt,
                       name=folder.spec)
