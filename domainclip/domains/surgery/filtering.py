"""Dual-modality filtering of clip-caption pairs: text rules, then video-text similarity.

SurgLaVi filters its pairs in two modalities: captions are screened for being descriptive and
about surgery, and clips for showing surgery that matches the text. Here:

* **Text rules** (:data:`TEXT_RULES`, a registry of rule factories) reject captions that are too
  short or too long, filler speech (``"okay um let's see"``, ``"thank you for watching"``), mostly
  non-alphabetic, or a repeat of the previous caption. :func:`check_text` returns the first
  failing rule's name, which is the reason the pair is dropped.
* **Similarity** (:class:`SimilarityFilter`) scores each clip against its caption with a video CLIP
  (a domainclip ``VideoCLIP``, e.g. SurgCLIP or ``dc-test-video``) and drops pairs whose cosine
  similarity is under a threshold.

:class:`FilterReport` counts what was kept and, per reason, what was dropped, with a few examples.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from domainclip.core.errors import InputError
from domainclip.core.plugins import UnknownNameError

if TYPE_CHECKING:  # torch is imported where the similarity filter needs it: text rules stay light
    import torch

__all__ = [
    "DEFAULT_TEXT_RULES",
    "FILLER_WORDS",
    "LOW_SIMILARITY",
    "OUTRO_PHRASES",
    "TEXT_RULES",
    "DuplicateRule",
    "FilterReport",
    "MaxWordsRule",
    "MinWordsRule",
    "NonAlphabeticRule",
    "NonDescriptiveRule",
    "SimilarityFilter",
    "TextRule",
    "build_text_rules",
    "check_text",
    "normalize_text",
    "register_text_rule",
]

#: Reason of a pair dropped by :class:`SimilarityFilter`.
LOW_SIMILARITY = "low_similarity"

#: Words and phrases of filler speech: a caption made of nothing else is not descriptive.
FILLER_WORDS: tuple[str, ...] = (
    "all right", "alright", "and", "here we go", "hello", "hi", "hmm", "i mean", "i think", "let me see",
    "let's see", "let us see", "like", "mm", "now", "oh", "ok", "okay", "right", "so", "thank you", "thanks",
    "there we go", "uh", "uh huh", "um", "umm", "well", "yeah", "yes", "you know", "you see",
)  # fmt: skip
#: Phrases of channel boilerplate and transcription artefacts: a caption holding one is not descriptive.
OUTRO_PHRASES: tuple[str, ...] = (
    "thank you for watching", "thanks for watching", "subscribe to", "like and subscribe",
    "see you next time", "see you in the next video", "[music]", "[applause]", "(music)", "[silence]",
)  # fmt: skip

_PUNCT = re.compile(rf"[{re.escape(string.punctuation.replace(chr(39), ''))}]")


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation but apostrophes, collapse spaces (for phrase and duplicate tests)."""
    return " ".join(_PUNCT.sub(" ", text.lower().replace("\u2019", "'")).split())


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+(?:'[^\W_]+)?", text.lower())


@runtime_checkable
class TextRule(Protocol):
    """A caption test: ``rule(text, previous)`` is True when the caption must be dropped.

    ``name`` is the drop reason reported for it; ``previous`` is the preceding caption of the same
    stream (same video, source and level), or None for the first.
    """

    name: str

    def __call__(self, text: str, previous: str | None = None) -> bool:
        """True when ``text`` fails the rule."""
        ...


@dataclass(frozen=True)
class MinWordsRule:
    """Drop captions with fewer than ``n`` words."""

    n: int = 3
    name: ClassVar[str] = "min_words"

    def __call__(self, text: str, previous: str | None = None) -> bool:
        """True when ``text`` has fewer than ``n`` words."""
        return len(_words(text)) < self.n


@dataclass(frozen=True)
class MaxWordsRule:
    """Drop captions with more than ``n`` words (too long for a text tower's context)."""

    n: int = 120
    name: ClassVar[str] = "max_words"

    def __call__(self, text: str, previous: str | None = None) -> bool:
        """True when ``text`` has more than ``n`` words."""
        return len(_words(text)) > self.n


@dataclass(frozen=True)
class NonDescriptiveRule:
    """Drop filler speech: captions made only of filler words, or holding an outro phrase.

    Args:
        fillers: words/phrases that carry no description (see :data:`FILLER_WORDS`).
        outros: phrases that mark boilerplate wherever they appear (see :data:`OUTRO_PHRASES`).

    """

    fillers: tuple[str, ...] = FILLER_WORDS
    outros: tuple[str, ...] = OUTRO_PHRASES
    name: ClassVar[str] = "non_descriptive"

    def __call__(self, text: str, previous: str | None = None) -> bool:
        """True when ``text`` is filler or boilerplate."""
        lowered, norm = text.lower(), f" {normalize_text(text)} "
        for phrase in self.outros:
            plain = normalize_text(phrase)
            if plain == phrase.lower():  # words: match whole words in the normalised caption
                if f" {plain} " in norm:
                    return True
            elif phrase.lower() in lowered:  # markup such as "[music]": match as written
                return True
        rest, previous_rest = norm, None
        phrases = sorted({normalize_text(f) for f in self.fillers} - {""}, key=len, reverse=True)
        while rest != previous_rest:  # strip fillers, longest first, until nothing changes ("um um")
            previous_rest = rest
            for phrase in phrases:
                rest = rest.replace(f" {phrase} ", " ")
        return not rest.strip()


@dataclass(frozen=True)
class NonAlphabeticRule:
    """Drop captions whose share of letters among non-space characters is under ``min_fraction``."""

    min_fraction: float = 0.6
    name: ClassVar[str] = "non_alphabetic"

    def __call__(self, text: str, previous: str | None = None) -> bool:
        """True when ``text`` is mostly digits, symbols or punctuation."""
        chars = [c for c in text if not c.isspace()]
        if not chars:
            return True
        return sum(c.isalpha() for c in chars) / len(chars) < self.min_fraction


@dataclass(frozen=True)
class DuplicateRule:
    """Drop a caption equal to the previous one of its stream (after :func:`normalize_text`)."""

    name: ClassVar[str] = "duplicate"

    def __call__(self, text: str, previous: str | None = None) -> bool:
        """True when ``text`` repeats ``previous``."""
        return previous is not None and normalize_text(text) == normalize_text(previous)


#: Text rule name -> factory taking the rule's options as keywords.
TEXT_RULES: dict[str, Callable[..., TextRule]] = {
    MinWordsRule.name: MinWordsRule,
    MaxWordsRule.name: MaxWordsRule,
    NonDescriptiveRule.name: NonDescriptiveRule,
    NonAlphabeticRule.name: NonAlphabeticRule,
    DuplicateRule.name: DuplicateRule,
}


def register_text_rule(name: str, factory: Callable[..., TextRule]) -> Callable[..., TextRule]:
    """Add a text rule factory to :data:`TEXT_RULES` under ``name`` (returns the factory)."""
    if name in TEXT_RULES:
        raise ValueError(f"text rule {name!r} is already registered")
    TEXT_RULES[name] = factory
    return factory


def build_text_rules(spec: Iterable[str] | Mapping[str, Mapping[str, Any]] | None = None) -> tuple[TextRule, ...]:
    """Build text rules from names (default options) or ``{name: {option: value}}``.

    Args:
        spec: rule names, or rule name -> keyword options; None gives :data:`DEFAULT_TEXT_RULES`.

    Raises:
        UnknownNameError: an unregistered rule name (close matches listed).

    """
    if spec is None:
        return DEFAULT_TEXT_RULES
    items = spec.items() if isinstance(spec, Mapping) else ((name, {}) for name in spec)
    rules = []
    for name, options in items:
        if name not in TEXT_RULES:
            raise UnknownNameError("text rule", name, list(TEXT_RULES))
        rules.append(TEXT_RULES[name](**dict(options or {})))
    return tuple(rules)


#: The rules applied by default, in order: the first that fails names the drop reason.
DEFAULT_TEXT_RULES: tuple[TextRule, ...] = (
    NonAlphabeticRule(),
    NonDescriptiveRule(),
    MinWordsRule(),
    MaxWordsRule(),
    DuplicateRule(),
)


def check_text(text: str, rules: Sequence[TextRule] | None = None, *, previous: str | None = None) -> str | None:
    """Name of the first rule ``text`` fails (the drop reason), or None when it passes them all.

    Args:
        text: the caption.
        rules: rules to apply in order (default :data:`DEFAULT_TEXT_RULES`).
        previous: the preceding caption of the same stream, for :class:`DuplicateRule`.

    """
    for rule in DEFAULT_TEXT_RULES if rules is None else rules:
        if rule(text, previous):
            return rule.name
    return None


# --------------------------------------------------------------------------- report
@dataclass
class FilterReport:
    """What a filtering pass kept and dropped, by reason, with a few examples per reason.

    Args:
        kept: pairs kept.
        dropped: reason -> pairs dropped for it.
        examples: reason -> up to ``max_examples`` examples (captions, or ``video: error`` lines).
        max_examples: examples kept per reason.

    """

    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 3

    def keep(self, n: int = 1) -> None:
        """Count ``n`` kept pairs."""
        self.kept += n

    def drop(self, reason: str, example: str | None = None) -> None:
        """Count one pair dropped for ``reason``, remembering ``example`` while there are few."""
        self.dropped[reason] += 1
        if example is not None:
            bucket = self.examples.setdefault(reason, [])
            if len(bucket) < self.max_examples:
                bucket.append(example if len(example) <= 200 else example[:197] + "...")

    def merge(self, other: FilterReport | Mapping[str, Any]) -> FilterReport:
        """Add another report (or its :meth:`to_dict`) into this one; returns self."""
        if isinstance(other, FilterReport):
            other = other.to_dict()
        self.kept += int(other.get("kept", 0))
        self.dropped.update({k: int(v) for k, v in dict(other.get("dropped", {})).items()})
        for reason, examples in dict(other.get("examples", {})).items():
            bucket = self.examples.setdefault(reason, [])
            bucket.extend(examples[: max(0, self.max_examples - len(bucket))])
        return self

    @property
    def total(self) -> int:
        """Pairs seen: kept plus dropped."""
        return self.kept + sum(self.dropped.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: ``{"total", "kept", "dropped": {reason: n}, "examples": {reason: [...]}}``."""
        return {
            "total": self.total,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0]))),
            "examples": {k: list(v) for k, v in sorted(self.examples.items())},
        }

    def to_markdown(self) -> str:
        """A markdown table: one row per outcome (kept, then each drop reason), count, share, example."""
        total = self.total or 1

        def cell(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", " ")

        lines = ["| outcome | pairs | share | example |", "|---|---:|---:|---|"]
        lines.append(f"| kept | {self.kept} | {100 * self.kept / total:.1f}% | |")
        for reason, n in self.to_dict()["dropped"].items():
            example = self.examples.get(reason, [""])[0] if self.examples.get(reason) else ""
            lines.append(f"| dropped: {cell(reason)} | {n} | {100 * n / total:.1f}% | {cell(example)} |")
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- video-text similarity
class SimilarityFilter:
    """Score clips against their captions with a video CLIP; pairs under ``threshold`` are dropped.

    Each clip is given as ``num_frames`` frames, ``(T, H, W, 3)`` uint8 (e.g. sampled uniformly from
    the clip's span); every frame goes through ``preprocess`` (the model's PIL image transform) and
    the clip is embedded as ``model(video=(B, T, 3, H, W), text=tokens)``. The score is the cosine
    similarity of the clip and caption embeddings. The model is moved to ``device`` and put in
    eval mode.

    Args:
        model: a domainclip ``VideoCLIP`` (``create_model_and_transforms("dc-test-video")``, SurgCLIP).
        preprocess: per-frame image transform, PIL image -> ``(3, H, W)`` tensor.
        tokenizer: captions -> token ids ``(N, L)``.
        threshold: lowest similarity kept, in [-1, 1].
        num_frames: frames per clip the caller should provide (:attr:`num_frames`).
        device: where the model runs.
        batch_size: clips embedded per forward pass.

    """

    def __init__(
        self,
        model: torch.nn.Module,
        preprocess: Callable[[Any], torch.Tensor],
        tokenizer: Callable[..., torch.Tensor],
        *,
        threshold: float,
        num_frames: int = 8,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
    ):
        if not -1.0 <= float(threshold) <= 1.0:
            raise InputError(f"similarity threshold must lie in [-1, 1], got {threshold}")
        if num_frames < 1 or batch_size < 1:
            raise InputError(f"num_frames and batch_size must be >= 1, got {num_frames}, {batch_size}")
        import torch

        self.model = model.to(device).eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.threshold = float(threshold)
        self.num_frames = int(num_frames)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)

    @classmethod
    def from_name(
        cls, name: str, pretrained: str | None = None, *, device: str | torch.device = "cpu", **options: Any
    ) -> SimilarityFilter:
        """Build the filter from a model name or hub id (``domainclip.core.models.create_model_and_transforms``).

        Args:
            name: model name, ``hf-hub:`` id or ``local-dir:`` folder.
            pretrained: weights of ``name``.
            device: where the model runs.
            **options: the other options of the constructor (``threshold``, ``num_frames``, ``batch_size``).
        """
        from domainclip.core.models import create_model_and_transforms, get_tokenizer

        model, _, preprocess = create_model_and_transforms(name, pretrained, device=device)
        return cls(model, preprocess, get_tokenizer(model), device=device, **options)

    def _clip_tensor(self, frames: np.ndarray) -> torch.Tensor:
        import torch
        from PIL import Image

        array = np.asarray(frames)
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise ValueError(f"clip frames must be (T, H, W, 3) uint8, got {array.shape} {array.dtype}")
        return torch.stack([self.preprocess(Image.fromarray(frame)) for frame in array])

    def scores(self, clips: Sequence[np.ndarray], texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity of each clip with its own caption.

        Args:
            clips: ``(T, H, W, 3)`` uint8 frame arrays, all with the same ``T``.
            texts: one caption per clip.

        Returns:
            ``(len(clips),)`` float array in [-1, 1].

        """
        import torch
        import torch.nn.functional as F

        if len(clips) != len(texts):
            raise ValueError(f"{len(clips)} clips but {len(texts)} captions")
        out: list[np.ndarray] = []
        with torch.no_grad():
            for i in range(0, len(clips), self.batch_size):
                video = torch.stack([self._clip_tensor(c) for c in clips[i : i + self.batch_size]]).to(self.device)
                tokens = self.tokenizer(list(texts[i : i + self.batch_size])).to(self.device)
                result = self.model(video=video, text=tokens)
                video_features = F.normalize(result["image_features"].float(), dim=-1)
                text_features = F.normalize(result["text_features"].float(), dim=-1)
                out.append((video_features * text_features).sum(-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def keep(self, clips: Sequence[np.ndarray], texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(keep mask, scores)``: the mask is True where the similarity is at least the threshold."""
        scores = self.scores(clips, texts)
        return scores >= self.threshold, scores
