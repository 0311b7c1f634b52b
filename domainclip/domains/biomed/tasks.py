"""Training task of the biomed domain: figures paired with their caption, its sentences or a citing paragraph.

``biomed/figure_text``
    Figure captions in the literature are long (a median of about 40 tokens on PMC-style captions,
    more than a small text tower's context) and mix what the figure shows with methods and
    statistics. BIOMEDICA releases two kinds of pairs for that reason: figure-caption pairs and
    figure-reference pairs, the paragraphs of the article that cite the figure. The task's
    :class:`FigureTextDecoder` draws, for every sample and step, one text of the figure: the full
    caption (the shard's ``txt``), or with probability ``sentence_prob`` one sentence of it (the
    figure's label such as "Figure 2." left out), or with probability ``reference_prob`` one of the
    paragraphs that cite it (``json["cited_by"]``, written by ``domainclip prepare biomed
    figures``). Draws are seeded per sample and epoch, so a resumed run sees the same texts. With
    both probabilities 0 it is the core decoder's plain figure-caption pairing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from domainclip.core.data import keys as K
from domainclip.core.data.decode import EPOCH, MAX_IMAGE_PIXELS, SOURCE, SampleDecoder, derive_rng, tokenize_text
from domainclip.core.engine.tasks import Task
from domainclip.core.errors import InputError
from domainclip.core.options import PositiveInt, UnitFloat, entry_point

__all__ = ["FIGURE_TEXT", "FigureTextDecoder", "caption_sentences"]

#: A caption's own label at its start ("Figure 2.", "Fig 3:", "Supplementary Figure S1.").
_LABEL = re.compile(r"^\s*(?:supplementary\s+)?(?:fig(?:ure)?s?\.?)\s*[A-Z]?\d+[A-Za-z]?\s*[.:|]?\s*", re.IGNORECASE)
#: A sentence end: ., ! or ? then space and a capital, digit or opening bracket (not "e.g. the", "Fig. 2").
_SENTENCE_END = re.compile(r"(?<!\bFig)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\bet al)([.!?])\s+(?=[A-Z0-9(\[])")


def caption_sentences(caption: str, min_words: int = 2) -> list[str]:
    """The sentences of a figure caption, its leading label removed, each with at least ``min_words`` words.

    Args:
        caption: the full caption (label, title and paragraphs).
        min_words: shorter pieces ("A.", "n = 3.") are left out.
    """
    body = _LABEL.sub("", caption, count=1).strip()
    pieces = _SENTENCE_END.sub(r"\1\n", body).split("\n")
    return [p.strip() for p in pieces if len(p.split()) >= min_words]


class FigureTextDecoder:
    """Shard sample -> the model's image and one text of the figure, drawn per sample and step.

    Args:
        preprocess: the model's image transform.
        tokenizer: the model's tokenizer (``None``: the text stays a string).
        sentence_prob: probability of one caption sentence instead of the full caption.
        reference_prob: probability of one citing paragraph (``json["cited_by"]``) instead; a figure
            that no paragraph cites keeps its full caption then.
        min_words: shortest sentence drawn, in words.
        seed: the run's seed; with the sample's key and epoch it seeds the draws.
        text_choice: the core decoder's caption choice when a sample holds several captions.
        max_image_pixels: largest image a sample may hold (checked before decoding).
    """

    @entry_point
    def __init__(
        self,
        preprocess: Callable,
        tokenizer: Callable | None = None,
        *,
        sentence_prob: UnitFloat = 0.5,
        reference_prob: UnitFloat = 0.0,
        min_words: PositiveInt = 2,
        seed: int = 0,
        text_choice: str = "random",
        max_image_pixels: PositiveInt | None = MAX_IMAGE_PIXELS,
    ):
        if sentence_prob + reference_prob > 1.0:
            raise InputError(
                f"sentence_prob + reference_prob must be at most 1; got {sentence_prob} + {reference_prob}"
            )
        self.tokenizer = tokenizer
        self.sentence_prob = sentence_prob
        self.reference_prob = reference_prob
        self.min_words = min_words
        self.seed = seed
        self.base = SampleDecoder(
            image_transform=preprocess,
            tokenizer=None,
            required=(K.IMAGE, K.TEXT),
            text_choice=text_choice,
            seed=seed,
            max_image_pixels=max_image_pixels,
        )

    def __call__(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Decode one raw sample; raises :class:`~domainclip.core.data.corrupt.CorruptSampleError` for unusable ones."""
        out = self.base(raw)
        text = out[K.TEXT]
        caption = text if isinstance(text, str) else text[0]
        rng = derive_rng(self.seed, "figure_text", raw.get(SOURCE), raw.get(K.URL), raw.get(K.KEY), raw.get(EPOCH))
        draw = rng.random()
        meta = out.get(K.META) or {}
        references = [p for p in meta.get("cited_by") or [] if isinstance(p, str) and p.strip()]
        if draw < self.reference_prob:
            if references:
                text = references[rng.randrange(len(references))]
        elif draw < self.reference_prob + self.sentence_prob:
            sentences = caption_sentences(caption, self.min_words)
            if sentences:
                text = sentences[rng.randrange(len(sentences))]
        out.pop(K.META, None)  # the figure's fields are not batched
        out[K.TEXT] = tokenize_text(self.tokenizer, text) if self.tokenizer is not None else text
        return out


#: CLIP on figures and one of their texts per step: caption, caption sentence or citing paragraph
#: (``data.decoder_args`` are options of :class:`FigureTextDecoder`).
FIGURE_TEXT = Task("biomed/figure_text", make_decoder=FigureTextDecoder)
