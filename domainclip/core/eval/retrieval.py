"""Image<->text retrieval recall@k, computed in chunks so 100k x 100k sets fit in memory.

Semantics follow CLIP_benchmark (``clip_benchmark/metrics/zeroshot_retrieval.py``) and give its
numbers on the same embeddings: ``image_retrieval_recall@k`` ("text->image") is the share of text
queries whose image is among the ``k`` best-scoring images; ``text_retrieval_recall@k``
("image->text") is the share of image queries with at least one of their captions among the ``k``
best-scoring texts. The ``k`` best are what ``torch.topk`` returns, as in CLIP_benchmark, so a
positive tied with a negative (two images with the same caption text) may count as a hit. The
similarity matrix is never built whole: queries are processed ``chunk_size`` at a time, so memory
is ``O(chunk_size x N)``.

``ties="strict"`` instead counts every tie against the query (a positive tied with a negative
ranks below it): a collapsed model whose scores are all equal then gets recall zero, and a caption
whose exact text another image's caption repeats is never found at ``k=1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from domainclip.core.data import keys
from domainclip.core.eval.features import Tokenizer, embed_loader, encode_texts

__all__ = [
    "TIE_RULES",
    "caption_retrieval",
    "evaluate_retrieval",
    "retrieval_metrics",
    "retrieval_report",
    "retrieval_topk",
]


def _check_ks(ks: Sequence[int]) -> list[int]:
    ks = list(ks)
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    return [int(k) for k in ks]


def _check_chunk(chunk_size: int) -> None:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")


#: Tie rules of :func:`retrieval_metrics`.
TIE_RULES = ("clip_benchmark", "strict")


def retrieval_metrics(
    image_features: Tensor,
    text_features: Tensor,
    text_to_image: Tensor,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = 4096,
    *,
    ties: str = "clip_benchmark",
) -> dict[str, float]:
    """Recall@k for text->image and image->text retrieval.

    With the default ``ties="clip_benchmark"`` the numbers equal CLIP_benchmark's on the same
    embeddings whenever every image has a caption. An image without captions is a distractor for
    text->image retrieval and is left out of image->text retrieval, since it has nothing to
    retrieve; CLIP_benchmark instead counts it as a miss (its per-image recall is 0/0 = NaN, and
    ``NaN > 0`` is false) and keeps it in the mean, so its ``text_retrieval_recall@k`` is ours times
    ``(images with captions) / (all images)``.

    Args:
        image_features: ``(N_image, D)`` features, L2-normalised for cosine similarity.
        text_features: ``(N_text, D)`` features, L2-normalised for cosine similarity.
        text_to_image: ``(N_text,)`` index of the image each text describes. An image may have
            several texts, or none (see above).
        ks: the cut-offs; a ``k`` above the gallery size counts every query with a positive as found.
        chunk_size: queries scored at once; memory is ``O(chunk_size x N)``.
        ties: ``"clip_benchmark"``: the ``k`` best are those ``torch.topk`` returns, so a positive
            tied with a negative may count as a hit (two images with the same caption text), as in
            CLIP_benchmark. ``"strict"``: every tie counts against the query, so a collapsed model
            with all scores equal gets recall zero.

    Returns:
        ``image_retrieval_recall@k`` and ``text_retrieval_recall@k`` for every ``k``.

    """
    ks = _check_ks(ks)
    _check_chunk(chunk_size)
    if ties not in TIE_RULES:
        raise ValueError(f"ties must be one of {', '.join(TIE_RULES)}; got {ties!r}")
    same_dim = image_features.shape[-1] == text_features.shape[-1]
    if image_features.ndim != 2 or text_features.ndim != 2 or not same_dim:
        raise ValueError(
            "image_features and text_features must be (N, D) with the same D; got "
            f"{tuple(image_features.shape)} and {tuple(text_features.shape)}"
        )
    n_image, n_text = image_features.shape[0], text_features.shape[0]
    device = image_features.device
    t2i = torch.as_tensor(text_to_image, device=device).long()
    if t2i.shape != (n_text,):
        raise ValueError(f"text_to_image must have shape ({n_text},), got {tuple(t2i.shape)}")
    if n_text == 0 or n_image == 0:
        raise ValueError(f"retrieval needs at least one image and one text; got {n_image} and {n_text}")
    if t2i.min() < 0 or t2i.max() >= n_image:
        raise ValueError(
            f"text_to_image values must lie in [0, {n_image}); got [{int(t2i.min())}, {int(t2i.max())}]"
        )
    images = image_features.float()
    texts = text_features.float().to(device)
    has_text = torch.zeros(n_image, dtype=torch.bool, device=device)
    has_text[t2i] = True
    # Scores are always ``texts @ images.T`` (a block of its columns for image queries), the product
    # CLIP_benchmark takes, so tied scores tie here too.
    if ties == "strict":
        text_hits, image_hits = _strict_hits(images, texts, t2i, ks, chunk_size)
    else:
        text_hits, image_hits = _topk_hits(images, texts, t2i, ks, chunk_size)
    out: dict[str, float] = {}
    for k in ks:
        out[f"image_retrieval_recall@{k}"] = text_hits[k].float().mean().item()
    for k in ks:
        out[f"text_retrieval_recall@{k}"] = image_hits[k][has_text].float().mean().item()
    return out


def _topk_hits(
    images: Tensor, texts: Tensor, t2i: Tensor, ks: list[int], chunk_size: int
) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
    """Per query and ``k``: whether ``torch.topk`` of its scores holds a positive (CLIP_benchmark's rule)."""
    n_image, n_text = images.shape[0], texts.shape[0]
    text_hits: dict[int, list[Tensor]] = {k: [] for k in ks}
    for start in range(0, n_text, chunk_size):
        scores = texts[start : start + chunk_size] @ images.T
        for k in ks:
            top = scores.topk(min(k, n_image), dim=1).indices
            text_hits[k].append((top == t2i[start : start + chunk_size, None]).any(1))
    image_hits: dict[int, list[Tensor]] = {k: [] for k in ks}
    for start in range(0, n_image, chunk_size):
        idx = torch.arange(start, min(start + chunk_size, n_image), device=images.device)
        scores = (texts @ images[idx].T).T
        for k in ks:
            top = scores.topk(min(k, n_text), dim=1).indices
            image_hits[k].append((t2i[top] == idx[:, None]).any(1))
    return {k: torch.cat(v) for k, v in text_hits.items()}, {k: torch.cat(v) for k, v in image_hits.items()}


def _strict_hits(
    images: Tensor, texts: Tensor, t2i: Tensor, ks: list[int], chunk_size: int
) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
    """Per query and ``k``: whether its best positive ranks below ``k`` when every tie counts against it."""
    n_image, n_text = images.shape[0], texts.shape[0]
    # text -> image: rank of each text's image = number of other images scoring at least as high.
    text_ranks = []
    for start in range(0, n_text, chunk_size):
        scores = texts[start : start + chunk_size] @ images.T
        positive = scores.gather(1, t2i[start : start + chunk_size, None])
        text_ranks.append((scores >= positive).sum(1) - 1)
    text_rank = torch.cat(text_ranks)
    # image -> text: rank of an image's best caption = number of non-captions scoring at least as high.
    image_ranks = []
    for start in range(0, n_image, chunk_size):
        idx = torch.arange(start, min(start + chunk_size, n_image), device=images.device)
        scores = (texts @ images[idx].T).T
        is_positive = t2i[None, :] == idx[:, None]
        best = scores.masked_fill(~is_positive, float("-inf")).amax(1, keepdim=True)
        image_ranks.append(((scores >= best) & ~is_positive).sum(1))
    image_rank = torch.cat(image_ranks)
    return {k: text_rank < k for k in ks}, {k: image_rank < k for k in ks}


def retrieval_topk(queries: Tensor, gallery: Tensor, k: int, chunk_size: int = 4096) -> Tensor:
    """Find the ``k`` best-scoring gallery items per query; returns indices ``(N_query, k)``, best first."""
    _check_chunk(chunk_size)
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    k = min(k, gallery.shape[0])
    gallery = gallery.float().to(queries.device)
    out = [
        (queries[start : start + chunk_size].float() @ gallery.T).topk(k, dim=1).indices
        for start in range(0, queries.shape[0], chunk_size)
    ]
    return torch.cat(out) if out else torch.empty(0, k, dtype=torch.long)


def evaluate_retrieval(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    dataloader: Iterable[Any],
    device: str | torch.device = "cpu",
    *,
    input_key: str = keys.IMAGE,
    text_batch_size: int = 256,
    **report: Any,
) -> dict[str, Any]:
    """Embed an image-text loader and compute retrieval recall@k both ways.

    Args:
        model: CLIP-like model.
        tokenizer: ``tokenizer(list[str]) -> LongTensor``.
        dataloader: yields dicts with ``input_key`` (a batch tensor) and ``text`` (per sample a caption
            or a list of captions; use :func:`~domainclip.core.eval.features.collate_samples`).
        device: where the model runs.
        input_key: ``"image"``, ``"video"`` or ``"views"``.
        text_batch_size: captions per text-tower forward.
        **report: ``ks``, ``chunk_size``, ``num_examples``, ``example_k`` and ``ties`` of
            :func:`retrieval_report`.

    Returns:
        What :func:`retrieval_report` returns.

    """
    embedded = embed_loader(model, dataloader, device, input_key, keep=(keys.TEXT,))
    return caption_retrieval(
        model, tokenizer, embedded["features"], embedded[keys.TEXT], device, text_batch_size=text_batch_size, **report
    )


def caption_retrieval(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    image_features: Tensor,
    captions: Sequence[str | Sequence[str]],
    device: str | torch.device = "cpu",
    *,
    text_batch_size: int = 256,
    **report: Any,
) -> dict[str, Any]:
    """Retrieval between features already computed (shared with a classifier) and their captions.

    Args:
        model: CLIP-like model (its text tower embeds the captions).
        tokenizer: ``tokenizer(list[str]) -> LongTensor``.
        image_features: ``(N, D)`` L2-normalised features of the images, clips or view stacks.
        captions: per item a caption or a list of captions.
        device: where the text tower runs.
        text_batch_size: captions per text-tower forward.
        **report: ``ks``, ``chunk_size``, ``num_examples``, ``example_k`` and ``ties`` of
            :func:`retrieval_report`.

    Returns:
        What :func:`retrieval_report` returns.

    Raises:
        ValueError: an item has no caption or a caption that is not a string.

    """
    texts: list[str] = []
    text_to_image: list[int] = []
    for i, item in enumerate(captions):
        item_captions = [item] if isinstance(item, str) else list(item)
        if not item_captions or not all(isinstance(c, str) for c in item_captions):
            raise ValueError(f"item {i} needs one or more str captions, got {item!r}")
        texts.extend(item_captions)
        text_to_image.extend([i] * len(item_captions))
    text_features = encode_texts(model, tokenizer, texts, device, text_batch_size)
    return retrieval_report(image_features, text_features, torch.tensor(text_to_image), texts, **report)


def retrieval_report(
    image_features: Tensor,
    text_features: Tensor,
    text_to_image: Tensor,
    texts: Sequence[str],
    *,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = 4096,
    num_examples: int = 4,
    example_k: int = 5,
    ties: str = "clip_benchmark",
) -> dict[str, Any]:
    """Retrieval recall@k both ways from embedded images and texts, with example queries.

    Args:
        image_features: ``(N_image, D)`` L2-normalised features.
        text_features: ``(N_text, D)`` L2-normalised features of ``texts``.
        text_to_image: ``(N_text,)`` index of each text's image.
        texts: the captions, for the examples.
        ks: recall cut-offs.
        chunk_size: queries scored at once (see :func:`retrieval_metrics`).
        num_examples: text queries, evenly spread over the set, to return examples for.
        example_k: retrieved images per example query.
        ties: the tie rule of :func:`retrieval_metrics`.

    Returns:
        The metrics of :func:`retrieval_metrics`, ``num_images``, ``num_texts``, and the non-scalar
        ``examples``: ``{"query_indices", "query_texts", "target_images", "retrieved"}`` where
        ``target_images[q]`` is the index of query ``q``'s image and ``retrieved[q]`` the indices
        of its ``example_k`` best images.

    """
    out: dict[str, Any] = retrieval_metrics(image_features, text_features, text_to_image, ks, chunk_size, ties=ties)
    out["num_images"] = int(image_features.shape[0])
    out["num_texts"] = len(texts)
    n_ex = max(0, min(num_examples, len(texts)))
    query_idx = torch.linspace(0, len(texts) - 1, n_ex).round().long().unique()
    retrieved = retrieval_topk(text_features[query_idx], image_features, example_k, chunk_size)
    out["examples"] = {
        "query_indices": query_idx.tolist(),
        "query_texts": [texts[q] for q in query_idx.tolist()],
        "target_images": text_to_image[query_idx].tolist(),
        "retrieved": retrieved.tolist(),
    }
    return out
