import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from domainclip.core.plugins import UnknownNameError
from domainclip.domains.surgery.filtering import (
    DEFAULT_TEXT_RULES,
    TEXT_RULES,
    DuplicateRule,
    FilterReport,
    MinWordsRule,
    NonAlphabeticRule,
    NonDescriptiveRule,
    SimilarityFilter,
    TextRule,
    build_text_rules,
    check_text,
    normalize_text,
    register_text_rule,
)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("okay um let's see", "non_descriptive"),
        ("Okay, so... um, right.", "non_descriptive"),
        ("Thank you for watching, see you soon!", "non_descriptive"),
        ("Please like and subscribe to the channel", "non_descriptive"),
        ("[Music]", "non_descriptive"),
        ("12:30 -- 45 %% 99 ok", "non_alphabetic"),
        ("", "non_alphabetic"),
        ("cut here", "min_words"),
        ("the music in the theatre is playing while we retract the liver", None),
        ("so now we dissect the right ureter", None),
        ("we clip the cystic artery with two clips", None),
    ],
)
def test_default_rules_give_reasons(text, reason):
    assert check_text(text) == reason


def test_min_max_words_and_duplicate():
    rules = build_text_rules({"min_words": {"n": 2}, "max_words": {"n": 5}, "duplicate": {}})
    assert [r.name for r in rules] == ["min_words", "max_words", "duplicate"]
    assert check_text("one", rules) == "min_words"
    assert check_text("one two", rules) is None
    assert check_text("one two three four five six", rules) == "max_words"
    assert check_text("We clip the artery.", rules, previous="we clip the  artery") == "duplicate"
    assert check_text("We clip the artery.", rules, previous="we clip the vein") is None
    assert check_text("We clip the artery.", rules, previous=None) is None
    assert DuplicateRule()("a b", "A, b!") is True
    assert normalize_text("Let’s  SEE, now!") == "let's see now"


def test_rule_options_change_outcomes():
    assert NonAlphabeticRule(min_fraction=0.3)("abc 12345") is False
    assert NonAlphabeticRule(min_fraction=0.5)("abc 12345") is True
    assert MinWordsRule(n=1)("incision") is False
    assert NonDescriptiveRule(fillers=("okay",), outros=())("okay so") is False  # "so" is no filler here
    assert NonDescriptiveRule()("okay so") is True


def test_registry_and_unknown_names():
    assert set(TEXT_RULES) == {"min_words", "max_words", "non_descriptive", "non_alphabetic", "duplicate"}
    assert build_text_rules(None) == DEFAULT_TEXT_RULES
    assert all(isinstance(r, TextRule) for r in DEFAULT_TEXT_RULES)
    with pytest.raises(UnknownNameError, match="min_words"):
        build_text_rules(["min_word"])

    class NoScalpel:
        name = "no_scalpel"

        def __call__(self, text, previous=None):
            return "scalpel" in text

    register_text_rule("no_scalpel", NoScalpel)
    try:
        rules = build_text_rules(["no_scalpel", "min_words"])
        assert check_text("take the scalpel now", rules) == "no_scalpel"
        assert check_text("take the hook now", rules) is None
        with pytest.raises(ValueError, match="already registered"):
            register_text_rule("no_scalpel", NoScalpel)
    finally:
        TEXT_RULES.pop("no_scalpel")


def test_filter_report_counts_examples_markdown_and_merge():
    report = FilterReport(max_examples=2)
    report.keep(3)
    for text in ("um", "ok", "yeah"):
        report.drop("non_descriptive", text)
    report.drop("min_words", "cut | here")
    assert report.total == 7
    d = report.to_dict()
    assert d == {
        "total": 7,
        "kept": 3,
        "dropped": {"non_descriptive": 3, "min_words": 1},
        "examples": {"min_words": ["cut | here"], "non_descriptive": ["um", "ok"]},
    }
    md = report.to_markdown().splitlines()
    assert md[0] == "| outcome | pairs | share | example |"
    assert md[2] == "| kept | 3 | 42.9% | |"
    assert md[3] == "| dropped: non_descriptive | 3 | 42.9% | um |"
    assert md[4] == "| dropped: min_words | 1 | 14.3% | cut \\| here |"
    other = FilterReport()
    other.keep()
    other.drop("low_similarity", "a clip")
    report.merge(other).merge({"kept": 1, "dropped": {"min_words": 2}})
    assert report.kept == 5 and report.dropped == {"non_descriptive": 3, "min_words": 3, "low_similarity": 1}
    assert report.examples["low_similarity"] == ["a clip"]


@pytest.fixture(scope="module")
def video_model():
    from domainclip.core.models import create_model_and_transforms, get_tokenizer

    torch.manual_seed(0)
    model, _, preprocess = create_model_and_transforms("dc-test-video")
    return model.eval(), preprocess, get_tokenizer(model)


def _clips(n, frames=4, size=40, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (frames, size, size + 8, 3), dtype=np.uint8) for _ in range(n)]


def test_similarity_scores_are_paired_cosines(video_model):
    model, preprocess, tokenizer = video_model
    flt = SimilarityFilter(model, preprocess, tokenizer, threshold=0.0, num_frames=4, batch_size=2)
    clips = _clips(5)
    texts = ["grasp the gallbladder", "clip the artery", "cut the duct", "irrigate", "extract the specimen"]
    scores = flt.scores(clips, texts)
    assert scores.shape == (5,)
    with torch.no_grad():
        video = torch.stack([torch.stack([preprocess(Image.fromarray(f)) for f in c]) for c in clips])
        v = F.normalize(model.encode_video(video), dim=-1)
        t = F.normalize(model.encode_text(tokenizer(texts)), dim=-1)
    expected = (v * t).sum(-1).numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert np.all(np.abs(scores) <= 1.0 + 1e-6)
    assert len(set(np.round(scores, 6))) > 1

    threshold = float(np.median(scores))
    mask, got = SimilarityFilter(model, preprocess, tokenizer, threshold=threshold, num_frames=4).keep(clips, texts)
    np.testing.assert_allclose(got, scores, atol=1e-5)
    assert mask.tolist() == (scores >= threshold).tolist() and mask.sum() == 3
    assert SimilarityFilter(model, preprocess, tokenizer, threshold=-1.0).keep(clips, texts)[0].all()
    assert flt.scores([], []).shape == (0,)


def test_similarity_filter_rejects_bad_input(video_model):
    model, preprocess, tokenizer = video_model
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        SimilarityFilter(model, preprocess, tokenizer, threshold=1.5)
    flt = SimilarityFilter(model, preprocess, tokenizer, threshold=0.2)
    with pytest.raises(ValueError, match="2 clips but 1 captions"):
        flt.scores(_clips(2), ["one caption"])
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        flt.scores([np.zeros((4, 8, 8), dtype=np.uint8)], ["a b c"])


def test_similarity_filter_from_name(video_model):
    flt = SimilarityFilter.from_name("dc-test-video", threshold=0.1, num_frames=2)
    assert flt.threshold == 0.1 and flt.num_frames == 2
    assert flt.scores(_clips(1, frames=2), ["dissect"]).shape == (1,)
