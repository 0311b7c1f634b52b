"""The evaluation building blocks domains share: embed once, classify and plot, retrieve from the same features."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from domainclip.core.eval.features import collate_samples, embed_loader
from domainclip.core.eval.retrieval import caption_retrieval, evaluate_retrieval
from domainclip.core.eval.zero_shot import classification_report, zero_shot_dataset


class LookupCLIP(torch.nn.Module):
    """Images are their own features; a prompt's feature is the one-hot of the class word it contains."""

    words = ("red", "green", "blue")

    def __init__(self):
        super().__init__()
        self.images_seen = 0

    def encode_image(self, x, normalize=False):
        self.images_seen += x.shape[0]
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, tokens, normalize=False):
        return F.one_hot(tokens[:, 0], len(self.words)).float()

    def tokenize(self, texts):
        return torch.tensor([[next(i for i, w in enumerate(self.words) if w in t)] for t in texts])


def samples(n=9):
    torch.manual_seed(0)
    out = []
    for i in range(n):
        label = i % 3
        feature = F.one_hot(torch.tensor(label), 3).float() + 0.1 * torch.rand(3)
        out.append({"image": feature, "label": label, "text": [f"a {LookupCLIP.words[label]} thing"], "meta": {"i": i}})
    return out


def test_embed_loader_keeps_labels_captions_and_meta_in_loader_order():
    model = LookupCLIP()
    data = samples()
    embedded = embed_loader(model, DataLoader(data, batch_size=4, collate_fn=collate_samples),
                            keep=("label", "text", "meta"))
    assert model.images_seen == 9
    assert torch.allclose(embedded["features"], F.normalize(torch.stack([s["image"] for s in data]), dim=-1))
    assert embedded["label"].tolist() == [s["label"] for s in data]
    assert embedded["text"] == [s["text"] for s in data] and embedded["meta"][4] == {"i": 4}
    with pytest.raises(ValueError, match="no batches"):
        embed_loader(model, [])
    with pytest.raises(ValueError, match=r"batch 0: 'text' must hold one entry per sample \(2 samples\)"):
        embed_loader(model, [{"image": torch.eye(2), "text": ["one caption"]}], keep=("text",))


def test_caption_retrieval_from_shared_features_equals_evaluate_retrieval():
    model = LookupCLIP()
    loader = DataLoader(samples(), batch_size=4, collate_fn=collate_samples)
    direct = evaluate_retrieval(model, model.tokenize, loader, ks=(1, 3))
    embedded = embed_loader(model, loader, keep=("text",))
    shared = caption_retrieval(model, model.tokenize, embedded["features"], embedded["text"], ks=(1, 3))
    assert direct == shared and shared["num_texts"] == 9
    with pytest.raises(ValueError, match="item 1 needs one or more str captions"):
        caption_retrieval(model, model.tokenize, embedded["features"][:2], ["a red thing", []])


def test_zero_shot_dataset_and_classification_report(tmp_path):
    model = LookupCLIP()
    prompts = {w: [f"a {w} thing", f"something {w}"] for w in LookupCLIP.words}
    scores, labels = zero_shot_dataset(model, model.tokenize, samples(), prompts, batch_size=4)
    assert scores.shape == (9, 3) and labels.tolist() == [0, 1, 2] * 3
    result = classification_report(scores, labels, LookupCLIP.words, tmp_path / "cm.png", title="colours",
                                   return_predictions=True)
    assert result["acc1"] == 1.0 and result["predictions"] == [0, 1, 2] * 3
    assert result["confusion_matrix"] == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    with Image.open(tmp_path / "cm.png") as image:
        assert image.format == "PNG"
