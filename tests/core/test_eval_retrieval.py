from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from domainclip.core.eval import collate_samples, evaluate_retrieval, retrieval_metrics, retrieval_topk


# CLIP_benchmark's recall, copied from clip_benchmark/metrics/zeroshot_retrieval.py (LAION-AI/CLIP_benchmark:
# evaluate(), recall_at_k(), batchify()) with only the embedding step left out: the oracle for ours.
def cb_recall_at_k(scores, positive_pairs, k):
    nb_texts, nb_images = scores.shape
    topk_indices = torch.topk(scores, k, dim=1)[1]
    nb_positive = positive_pairs.sum(dim=1)
    topk_indices_onehot = torch.nn.functional.one_hot(topk_indices, num_classes=nb_images)
    positive_pairs_reshaped = positive_pairs.view(nb_texts, 1, nb_images)
    nb_true_positive = (topk_indices_onehot * positive_pairs_reshaped).sum(dim=(1, 2))
    return nb_true_positive / nb_positive


def cb_batchify(func, X, Y, batch_size, device, *args, **kwargs):
    results = []
    for start in range(0, len(X), batch_size):
        end = start + batch_size
        x = X[start:end].to(device)
        y = Y[start:end].to(device)
        result = func(x, y, *args, **kwargs).cpu()
        results.append(result)
    return torch.cat(results)


def clip_benchmark_reference(images_emb, texts_emb, texts_image_index, ks, batch_size=64):
    scores = texts_emb @ images_emb.t()
    positive_pairs = torch.zeros_like(scores, dtype=bool)
    positive_pairs[torch.arange(len(scores)), texts_image_index] = True
    metrics = {}
    for recall_k in ks:
        metrics[f"image_retrieval_recall@{recall_k}"] = (
            cb_batchify(cb_recall_at_k, scores, positive_pairs, batch_size, "cpu", k=recall_k) > 0
        ).float().mean().item()
        metrics[f"text_retrieval_recall@{recall_k}"] = (
            cb_batchify(cb_recall_at_k, scores.T, positive_pairs.T, batch_size, "cpu", k=recall_k) > 0
        ).float().mean().item()
    return metrics


def duplicate_caption_set(seed, n_image=60, d=12, captionless=0):
    """Random embeddings where images have 1-3 captions, a third of the caption texts repeat another
    image's caption exactly (same features), and the last ``captionless`` images have none."""
    g = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(n_image, d, generator=g), dim=-1)
    owners = torch.arange(n_image - captionless)
    t2i = torch.cat([owners, owners[torch.randint(0, len(owners), (len(owners),), generator=g)]])
    texts = F.normalize(images[t2i] + 0.9 * torch.randn(len(t2i), d, generator=g), dim=-1)
    copies = torch.randperm(len(t2i), generator=g)[: len(t2i) // 3]
    sources = torch.randint(0, len(t2i), (len(copies),), generator=g)
    texts[copies] = texts[sources]  # same caption text as another (usually another image's) caption
    return images, texts, t2i


def test_identity_similarity_gives_perfect_recall():
    feats = torch.eye(7)
    out = retrieval_metrics(feats, feats, torch.arange(7), ks=(1, 5))
    assert out == {
        "image_retrieval_recall@1": 1.0,
        "image_retrieval_recall@5": 1.0,
        "text_retrieval_recall@1": 1.0,
        "text_retrieval_recall@5": 1.0,
    }


def test_hand_made_scores_give_known_recalls():
    # images are one-hot, so text feature rows ARE the text->image score rows.
    # 4 images, 5 texts: text 0,1 -> image 0; text 2 -> image 1; text 3 -> image 2; text 4 -> image 3
    t2i = torch.tensor([0, 0, 1, 2, 3])
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.2, 0.3],  # text 0: image 0 ranked 1st
            [0.1, 0.9, 0.8, 0.2],  # text 1: image 0 ranked 4th
            [0.5, 0.4, 0.3, 0.2],  # text 2: image 1 ranked 2nd
            [0.3, 0.2, 0.1, 0.0],  # text 3: image 2 ranked 3rd
            [0.1, 0.2, 0.3, 0.6],  # text 4: image 3 ranked 1st
        ]
    )
    out = retrieval_metrics(torch.eye(4), scores, t2i, ks=(1, 2, 3, 4))
    # text->image ranks (1-based): 1, 4, 2, 3, 1
    assert out["image_retrieval_recall@1"] == pytest.approx(2 / 5)
    assert out["image_retrieval_recall@2"] == pytest.approx(3 / 5)
    assert out["image_retrieval_recall@3"] == pytest.approx(4 / 5)
    assert out["image_retrieval_recall@4"] == pytest.approx(1.0)
    # image->text ranks (columns; an image's best caption counts): image 0 via text 0 (0.9) 1st;
    # image 1's text 2 (0.4) is beaten by text 1 (0.9): 2nd; image 2's text 3 (0.1) is beaten by all
    # four other texts: 5th; image 3's text 4 (0.6) 1st
    assert out["text_retrieval_recall@1"] == pytest.approx(2 / 4)
    assert out["text_retrieval_recall@2"] == pytest.approx(3 / 4)
    assert out["text_retrieval_recall@4"] == pytest.approx(3 / 4)
    assert out == clip_benchmark_reference(torch.eye(4), scores, t2i, (1, 2, 3, 4))


def test_permutation_with_known_rank():
    # text i's image is placed at rank r_i by construction: scores descend along a rolled order
    n = 10
    images = torch.eye(n)
    texts = torch.zeros(n, n)
    ranks = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    for i in range(n):
        order = [j for j in range(n) if j != i]
        order.insert(int(ranks[i]), i)
        texts[i, order] = torch.linspace(1.0, 0.1, n)
    out = retrieval_metrics(images, texts, torch.arange(n), ks=(1, 3, 5, 10))
    for k in (1, 3, 5, 10):
        assert out[f"image_retrieval_recall@{k}"] == pytest.approx(k / n)


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64, 1000])
def test_chunked_equals_unchunked_and_reference(chunk_size):
    g = torch.Generator().manual_seed(0)
    n_image, d = 97, 16
    images = F.normalize(torch.randn(n_image, d, generator=g), dim=-1)
    t2i = torch.cat([torch.arange(n_image), torch.randint(0, n_image, (60,), generator=g)])
    texts = F.normalize(images[t2i] + 1.2 * torch.randn(len(t2i), d, generator=g), dim=-1)
    ks = (1, 5, 10)
    full = retrieval_metrics(images, texts, t2i, ks, chunk_size=10_000)
    assert retrieval_metrics(images, texts, t2i, ks, chunk_size=chunk_size) == full
    assert full == clip_benchmark_reference(images, texts, t2i, ks)
    assert 0.0 < full["image_retrieval_recall@1"] < full["image_retrieval_recall@10"] < 1.0


def test_memory_stays_chunk_by_n(monkeypatch):
    n, chunk = 300, 32
    largest = []
    matmul = torch.Tensor.__matmul__

    def recording_matmul(a, b):
        out = matmul(a, b)
        largest.append(out.numel())
        return out

    monkeypatch.setattr(torch.Tensor, "__matmul__", recording_matmul)
    feats = F.normalize(torch.randn(n, 8), dim=-1)
    retrieval_metrics(feats, feats, torch.arange(n), chunk_size=chunk)
    assert largest and max(largest) == chunk * n


def test_strict_ties_count_against_the_query():
    # a collapsed model (all scores equal) must not look perfect
    feats = torch.ones(10, 4) / 2
    out = retrieval_metrics(feats, feats, torch.arange(10), ks=(1, 9, 10), ties="strict")
    assert out["image_retrieval_recall@1"] == 0.0 and out["text_retrieval_recall@1"] == 0.0
    assert out["image_retrieval_recall@9"] == 0.0 and out["image_retrieval_recall@10"] == 1.0


def test_collapsed_model_by_default_equals_clip_benchmark():
    feats = torch.ones(10, 4) / 2
    out = retrieval_metrics(feats, feats, torch.arange(10), ks=(1, 9, 10))
    assert out == clip_benchmark_reference(feats, feats, torch.arange(10), (1, 9, 10))
    assert out["image_retrieval_recall@10"] == out["text_retrieval_recall@10"] == 1.0


def test_duplicate_captions_follow_clip_benchmark_by_default():
    # the review's case: captions 0 and 1 are the same text; caption i belongs to image i
    images = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    t2i = torch.arange(3)
    reference = clip_benchmark_reference(images, texts, t2i, (1, 2))
    assert reference["text_retrieval_recall@1"] == pytest.approx(2 / 3)
    out = retrieval_metrics(images, texts, t2i, ks=(1, 2))
    assert out == reference
    assert out["text_retrieval_recall@1"] == pytest.approx(2 / 3)
    strict = retrieval_metrics(images, texts, t2i, ks=(1, 2), ties="strict")
    assert strict["text_retrieval_recall@1"] == pytest.approx(1 / 3)  # image 0 ties with caption 1


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_random_duplicate_captions_equal_clip_benchmark(seed, chunk_size):
    images, texts, t2i = duplicate_caption_set(seed)
    ks = (1, 2, 5, 10)
    out = retrieval_metrics(images, texts, t2i, ks, chunk_size=chunk_size)
    reference = clip_benchmark_reference(images, texts, t2i, ks)
    assert out == reference
    # the strict rule differs on these sets: shared caption texts are ties
    strict = retrieval_metrics(images, texts, t2i, ks, chunk_size=chunk_size, ties="strict")
    assert strict["text_retrieval_recall@1"] < out["text_retrieval_recall@1"]


@pytest.mark.parametrize("seed", [0, 1])
def test_images_without_captions_are_left_out_where_clip_benchmark_counts_a_miss(seed):
    images, texts, t2i = duplicate_caption_set(seed, n_image=50, captionless=8)
    ks = (1, 5, 10)
    out = retrieval_metrics(images, texts, t2i, ks, chunk_size=16)
    reference = clip_benchmark_reference(images, texts, t2i, ks)
    for k in ks:
        # text->image: captionless images are distractors in both
        assert out[f"image_retrieval_recall@{k}"] == reference[f"image_retrieval_recall@{k}"]
        # image->text: CLIP_benchmark keeps the 8 captionless images in the mean as misses (NaN > 0)
        assert out[f"text_retrieval_recall@{k}"] * 42 / 50 == pytest.approx(reference[f"text_retrieval_recall@{k}"])
        assert out[f"text_retrieval_recall@{k}"] > reference[f"text_retrieval_recall@{k}"]


@pytest.mark.parametrize("ties", ["clip_benchmark", "strict"])
def test_images_without_captions_are_distractors_only(ties):
    images = torch.eye(5)
    texts = torch.eye(5)[:3]
    out = retrieval_metrics(images, texts, torch.arange(3), ks=(1,), ties=ties)
    assert out == {"image_retrieval_recall@1": 1.0, "text_retrieval_recall@1": 1.0}


def test_bad_inputs_raise():
    f = torch.eye(3)
    with pytest.raises(ValueError, match="text_to_image values"):
        retrieval_metrics(f, f, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="shape"):
        retrieval_metrics(f, f, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="same D"):
        retrieval_metrics(f, torch.eye(4), torch.arange(4))
    with pytest.raises(ValueError, match="ks"):
        retrieval_metrics(f, f, torch.arange(3), ks=(0,))
    with pytest.raises(ValueError, match="chunk_size"):
        retrieval_metrics(f, f, torch.arange(3), chunk_size=0)
    with pytest.raises(ValueError, match="ties must be one of clip_benchmark, strict"):
        retrieval_metrics(f, f, torch.arange(3), ties="optimistic")


def test_retrieval_topk_matches_dense_topk():
    q, g = torch.randn(11, 6), torch.randn(23, 6)
    assert torch.equal(retrieval_topk(q, g, k=4, chunk_size=3), (q @ g.T).topk(4, dim=1).indices)
    assert retrieval_topk(q, g, k=50).shape == (11, 23)


class LookupTokenizer:
    """Maps each distinct string to one token id; the fake model looks its embedding up."""

    def __init__(self, table: dict[str, torch.Tensor]):
        self.names = list(table)
        self.table = torch.stack([table[n] for n in self.names])

    def __call__(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[self.names.index(t)] for t in texts])


class FeatureModel(torch.nn.Module):
    """encode_image returns its input; encode_text looks tokens up in the tokenizer's table."""

    def __init__(self, tokenizer: LookupTokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def encode_image(self, x, normalize=False):
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, tokens, normalize=False):
        x = self.tokenizer.table[tokens[:, 0]]
        return F.normalize(x, dim=-1) if normalize else x


def test_evaluate_retrieval_with_multi_caption_samples():
    eye = torch.eye(4)
    # image i has captions "i-a" (exact) and, for i < 2, "i-b" (points at image i + 1)
    table = {f"{i}-a": eye[i] for i in range(4)} | {"0-b": eye[1], "1-b": eye[2]}
    tok = LookupTokenizer(table)
    samples = [{"image": eye[i], "text": [f"{i}-a", f"{i}-b"] if i < 2 else f"{i}-a"} for i in range(4)]
    loader = torch.utils.data.DataLoader(samples, batch_size=3, collate_fn=collate_samples)
    out = evaluate_retrieval(FeatureModel(tok), tok, loader, ks=(1, 2), num_examples=3, example_k=2, ties="strict")
    assert out["num_images"] == 4 and out["num_texts"] == 6
    default = evaluate_retrieval(FeatureModel(tok), tok, loader, ks=(1, 2))
    texts = torch.stack([table[t] for t in ["0-a", "0-b", "1-a", "1-b", "2-a", "3-a"]])
    reference = clip_benchmark_reference(eye, texts, torch.tensor([0, 0, 1, 1, 2, 3]), (1, 2))
    assert {k: v for k, v in default.items() if "recall" in k} == reference
    # strict: text->image: the two "-b" captions score 0 with their image and tie with two other images
    assert out["image_retrieval_recall@1"] == pytest.approx(4 / 6)
    assert out["image_retrieval_recall@2"] == pytest.approx(4 / 6)
    # image->text: images 1 and 2 tie with a "-b" caption of another image, which ranks first
    assert out["text_retrieval_recall@1"] == pytest.approx(2 / 4)
    assert out["text_retrieval_recall@2"] == 1.0
    ex = out["examples"]
    assert ex["query_indices"] == [0, 2, 5]  # evenly spread over texts [0-a, 0-b, 1-a, 1-b, 2-a, 3-a]
    assert ex["query_texts"] == ["0-a", "1-a", "3-a"]
    assert ex["target_images"] == [0, 1, 3]
    assert [row[0] for row in ex["retrieved"]] == [0, 1, 3] and all(len(r) == 2 for r in ex["retrieved"])


def test_evaluate_retrieval_rejects_transposed_caption_batches():
    tok = LookupTokenizer({"a": torch.eye(2)[0]})
    bad = [{"image": torch.eye(2), "text": ["a"]}]  # one caption for a batch of two images
    with pytest.raises(ValueError, match="collate_samples"):
        evaluate_retrieval(FeatureModel(tok), tok, bad)
