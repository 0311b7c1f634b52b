"""The biomed/figure_text task: one text per figure and step, from the caption, its sentences or citing paragraphs."""

from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image

from domainclip.core.data.decode import EPOCH
from domainclip.core.errors import InputError
from domainclip.domains.biomed.tasks import FIGURE_TEXT, FigureTextDecoder, caption_sentences

CAPTION = (
    "Figure 3. Effect of treatment on the outcome. Chemical structure of the natural product "
    "(e.g. compound 7) as in Fig. 2. Data are mean ± SD (n = 4)."
)
SENTENCES = [
    "Effect of treatment on the outcome.",
    "Chemical structure of the natural product (e.g. compound 7) as in Fig. 2.",
    "Data are mean ± SD (n = 4).",
]
REFERENCES = ["The structures are shown in Figure 3.", "Compound 7 (Figure 3) was the most active."]


def _raw(key: str = "PMC1_f3", epoch: int = 0, cited_by: list[str] | None = None) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 10, 10)).save(buffer, format="PNG")
    meta = {"article": "PMC1", "figure_id": "f3", "cited_by": REFERENCES if cited_by is None else cited_by}
    return {"__key__": key, "__url__": "s.tar", EPOCH: epoch, "png": buffer.getvalue(),
            "txt": CAPTION.encode(), "json": json.dumps(meta).encode()}


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.tensor(list(image.getdata()), dtype=torch.float32).view(image.height, image.width, 3)


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        (CAPTION, SENTENCES),
        ("Fig 2: Chest radiograph. A.", ["Chest radiograph."]),
        ("Supplementary Figure S1. Western blot of HIF-1α. GAPDH, loading control.",
         ["Western blot of HIF-1α.", "GAPDH, loading control."]),
        ("Kaplan-Meier survival curves of both groups", ["Kaplan-Meier survival curves of both groups"]),
    ],
)
def test_caption_sentences_drop_the_label_and_split_at_sentence_ends(caption, expected):
    assert caption_sentences(caption) == expected


def test_probabilities_choose_caption_sentence_or_reference():
    whole = FigureTextDecoder(_to_tensor, sentence_prob=0.0, reference_prob=0.0)
    assert whole(_raw())["text"] == CAPTION
    sentence = FigureTextDecoder(_to_tensor, sentence_prob=1.0)
    assert {sentence(_raw(f"k{i}"))["text"] for i in range(40)} == set(SENTENCES)
    reference = FigureTextDecoder(_to_tensor, sentence_prob=0.0, reference_prob=1.0)
    assert {reference(_raw(f"k{i}"))["text"] for i in range(40)} == set(REFERENCES)
    # a figure no paragraph cites keeps its caption
    assert reference(_raw(cited_by=[]))["text"] == CAPTION
    out = whole(_raw())
    assert set(out) >= {"image", "text"} and "meta" not in out and out["image"].shape == (6, 8, 3)


def test_draws_are_seeded_per_sample_and_epoch_and_mix_as_asked():
    decoder = FigureTextDecoder(_to_tensor, sentence_prob=0.5, reference_prob=0.25, seed=3)
    texts = [decoder(_raw(f"k{i}"))["text"] for i in range(400)]
    assert texts == [decoder(_raw(f"k{i}"))["text"] for i in range(400)]  # same key and epoch, same text
    assert texts != [decoder(_raw(f"k{i}", epoch=1))["text"] for i in range(400)]
    shares = [sum(t == CAPTION for t in texts), sum(t in SENTENCES for t in texts), sum(t in REFERENCES for t in texts)]
    assert sum(shares) == 400
    for count, expected in zip(shares, (0.25, 0.5, 0.25), strict=True):
        assert abs(count / 400 - expected) < 0.07


def test_tokenizer_gives_one_row_and_bad_probabilities_are_one_line():
    decoder = FigureTextDecoder(_to_tensor, lambda texts: torch.ones(1, 5, dtype=torch.long), sentence_prob=0.0)
    assert decoder(_raw())["text"].shape == (5,)
    with pytest.raises(InputError, match=r"sentence_prob \+ reference_prob must be at most 1; got 0.7 \+ 0.5"):
        FigureTextDecoder(_to_tensor, sentence_prob=0.7, reference_prob=0.5)
    assert FIGURE_TEXT.name == "biomed/figure_text" and FIGURE_TEXT.make_decoder is FigureTextDecoder
