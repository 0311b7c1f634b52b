from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from domainclip.core.eval import (
    build_zero_shot_classifier,
    classification_metrics,
    collate_samples,
    extract_features,
    multilabel_metrics,
    zero_shot_classify,
    zero_shot_multilabel,
)
from domainclip.core.plugins import UnknownNameError


class TableTokenizer:
    """Each distinct prompt gets one token id; ``embed`` maps a prompt to its (unnormalised) text feature."""

    def __init__(self, embed):
        self.embed = embed
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> torch.Tensor:
        for t in texts:
            if t not in self.seen:
                self.seen.append(t)
        return torch.tensor([[self.seen.index(t)] for t in texts])


class FakeCLIP(torch.nn.Module):
    """Image/video/view features are the inputs themselves; text features come from the tokenizer table."""

    def __init__(self, tokenizer: TableTokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def encode_image(self, x, normalize=False):
        return F.normalize(x, dim=-1) if normalize else x

    def encode_video(self, x, normalize=False):  # (B, T, D): mean over frames
        x = x.mean(1)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, tokens, normalize=False):
        x = torch.stack([self.tokenizer.embed(self.tokenizer.seen[int(i)]) for i in tokens[:, 0]])
        return F.normalize(x, dim=-1) if normalize else x


class ViewsCLIP(FakeCLIP):
    """A multi-view tower returns (per_view, fused) like domainclip's MultiViewCLIP."""

    def encode_views(self, x, normalize=False):
        fused = x.sum(1)
        return (F.normalize(x, dim=-1), F.normalize(fused, dim=-1)) if normalize else (x, fused)


CLASSES = ["c0", "c1", "c2", "c3", "c4", "c5"]


def one_hot_text(prompt: str) -> torch.Tensor:
    """Text feature of a prompt: one-hot of the class it names, whatever the template."""
    name = next(c for c in CLASSES if c in prompt)
    return F.one_hot(torch.tensor(CLASSES.index(name)), len(CLASSES)).float()


def ranked_features(labels, ranks, num_classes):
    """Image features whose class scores put the true class at the given (1-based) rank.

    The other classes fill the remaining places in index order, so the top-1 prediction is known.
    """
    feats = []
    for y, r in zip(labels, ranks):
        order = [c for c in range(num_classes) if c != y]
        order.insert(r - 1, y)
        f = torch.zeros(num_classes)
        f[order] = torch.linspace(1.0, 0.5, num_classes)
        feats.append(f)
    return torch.stack(feats)


LABELS = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
RANKS = [1, 1, 1, 2, 1, 6, 3, 3, 1, 1, 1, 5]


def loader(features, labels, key="image", batch_size=5):
    samples = [{key: f, "label": y} for f, y in zip(features, labels)]
    return torch.utils.data.DataLoader(samples, batch_size=batch_size, collate_fn=collate_samples)


def test_zero_shot_metrics_exact_on_constructed_features():
    tok = TableTokenizer(one_hot_text)
    feats = ranked_features(LABELS, RANKS, len(CLASSES))
    out = zero_shot_classify(
        FakeCLIP(tok), tok, loader(feats, LABELS), CLASSES, ["a {}.", "photo of {}"], return_predictions=True
    )
    assert out["acc1"] == pytest.approx(7 / 12)
    assert out["acc5"] == pytest.approx(11 / 12)  # only the rank-6 sample misses
    # per-class top-1 recall: [1, .5, .5, 0, 1, .5]
    assert out["mean_per_class_recall"] == pytest.approx(3.5 / 6)
    assert out["balanced_accuracy"] == pytest.approx(3.5 / 6)
    assert out["num_samples"] == 12
    cm = out["confusion_matrix"]
    assert [cm[i][i] for i in range(6)] == [2, 1, 1, 0, 2, 1] and all(sum(row) == 2 for row in cm)
    # a miss predicts the lowest other class index: sample 3 (class 1) -> 0, sample 5 (class 2) -> 0,
    # samples 6, 7 (class 3) -> 0, sample 11 (class 5) -> 0
    assert out["predictions"] == [0, 0, 1, 0, 2, 0, 0, 0, 4, 4, 5, 0]
    assert out["targets"] == LABELS
    assert out["weighted_f1"] == pytest.approx(f1_score(LABELS, out["predictions"], average="weighted"))


def test_acc5_only_with_five_or_more_classes_and_no_predictions_by_default():
    out = classification_metrics(torch.eye(4), torch.arange(4))
    assert "acc5" not in out and "predictions" not in out and "targets" not in out
    assert out["acc1"] == 1.0 and out["mean_per_class_recall"] == 1.0


def test_mean_per_class_recall_ignores_absent_classes():
    logits = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])
    out = classification_metrics(logits, torch.tensor([0, 1, 1]))
    assert out["mean_per_class_recall"] == pytest.approx((1.0 + 0.5) / 2)


def test_prompt_ensemble_is_mean_of_normalised_then_renormalised():
    vectors = {
        "a c0": torch.tensor([3.0, 0.0, 0.0]),
        "the c0": torch.tensor([0.0, 1.0, 0.0]),
        "a c1": torch.tensor([0.0, 0.0, 2.0]),
        "the c1": torch.tensor([0.0, 0.0, 5.0]),
    }
    tok = TableTokenizer(vectors.__getitem__)
    weights = build_zero_shot_classifier(FakeCLIP(tok), tok, ["c0", "c1"], ["a {}", "the {}"], batch_size=2)
    s = 2**-0.5
    assert weights.shape == (3, 2)
    assert torch.allclose(weights[:, 0], torch.tensor([s, s, 0.0]))
    assert torch.allclose(weights[:, 1], torch.tensor([0.0, 0.0, 1.0]))
    callable_weights = build_zero_shot_classifier(
        FakeCLIP(tok), tok, ["c0", "c1"], [lambda c: f"a {c}", lambda c: f"the {c}"]
    )
    assert torch.allclose(callable_weights, weights)


def test_classifier_input_errors():
    tok = TableTokenizer(one_hot_text)
    model = FakeCLIP(tok)
    with pytest.raises(ValueError, match="placeholder"):
        build_zero_shot_classifier(model, tok, CLASSES, ["no slot"])
    with pytest.raises(ValueError, match="class name"):
        build_zero_shot_classifier(model, tok, [], ["a {}"])
    with pytest.raises(TypeError, match="mix"):
        build_zero_shot_classifier(model, tok, CLASSES, ["a {}", lambda c: c])


def test_video_and_views_dispatch_through_the_mapping():
    tok = TableTokenizer(one_hot_text)
    feats = ranked_features(LABELS, RANKS, len(CLASSES))
    video = feats[:, None].repeat(1, 3, 1)  # (N, T=3, D): every frame the same
    out = zero_shot_classify(FakeCLIP(tok), tok, loader(video, LABELS, "video"), CLASSES, ["{}"], input_key="video")
    assert out["acc1"] == pytest.approx(7 / 12)
    views = torch.stack([feats, feats], dim=1)  # (N, V=2, D): the fused embedding is their sum
    out = zero_shot_classify(ViewsCLIP(tok), tok, loader(views, LABELS, "views"), CLASSES, ["{}"], input_key="views")
    assert out["acc1"] == pytest.approx(7 / 12)
    with pytest.raises(TypeError, match="encode_views"):
        zero_shot_classify(FakeCLIP(tok), tok, loader(views, LABELS, "views"), CLASSES, ["{}"], input_key="views")
    with pytest.raises(UnknownNameError, match="video"):
        zero_shot_classify(FakeCLIP(tok), tok, loader(video, LABELS, "vidoe"), CLASSES, ["{}"], input_key="vidoe")


def test_bad_batches_and_labels_raise():
    tok = TableTokenizer(one_hot_text)
    feats = ranked_features(LABELS, RANKS, len(CLASSES))
    with pytest.raises(KeyError, match=r"batch 0 .* lacks \['image'\]"):
        zero_shot_classify(FakeCLIP(tok), tok, loader(feats, LABELS, "pixels"), CLASSES, ["{}"])
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 6\)"):
        zero_shot_classify(FakeCLIP(tok), tok, loader(feats, [9] * 12), CLASSES, ["{}"])
    with pytest.raises(TypeError, match="dict batches"):
        zero_shot_classify(FakeCLIP(tok), tok, [(feats, torch.tensor(LABELS))], CLASSES, ["{}"])


def test_multilabel_map_known_values():
    scores = torch.tensor([[0.9, 0.1, 0.3], [0.8, 0.7, 0.2], [0.7, 0.2, 0.1]])
    targets = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    out = multilabel_metrics(scores, targets)
    # class 0: positives ranked 1st and 3rd -> AP = (1 + 2/3) / 2; class 1: ranked 1st -> 1; class 2 unscored
    assert out["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)
    assert out["num_classes_scored"] == 2
    with pytest.raises(ValueError, match="0/1"):
        multilabel_metrics(scores, targets * 2)


def test_zero_shot_multilabel_perfect_scores():
    tok = TableTokenizer(one_hot_text)
    targets = torch.tensor([[1, 0, 1, 0, 0, 0], [0, 1, 0, 0, 1, 0], [0, 0, 0, 1, 0, 1], [1, 1, 0, 0, 0, 0]])
    feats = targets.float() + 0.01  # positives score highest in every class
    out = zero_shot_multilabel(FakeCLIP(tok), tok, loader(feats, targets, batch_size=3), CLASSES, ["{}"])
    assert out == {"mAP": 1.0, "num_classes_scored": 6}


def test_extract_features_normalises_and_stacks_labels():
    tok = TableTokenizer(one_hot_text)
    feats = torch.randn(7, 5) * 3
    x, y = extract_features(FakeCLIP(tok), loader(feats, list(range(7)), batch_size=3))
    assert torch.allclose(x, F.normalize(feats, dim=-1)) and y.tolist() == list(range(7))
    with pytest.raises(ValueError, match="no batches"):
        extract_features(FakeCLIP(tok), [])
