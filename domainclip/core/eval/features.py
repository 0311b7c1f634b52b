"""Encode eval data with a CLIP-like model: images, videos or multi-view stacks, and captions.

The input tower is chosen by the batch key through :data:`ENCODE_METHODS`, so a video model
(``encode_video``) or a multi-view model (``encode_views``) is evaluated by the same code as an
image model. Every helper runs under ``torch.no_grad()`` and returns features on the CPU.

:func:`embed_loader` and :func:`encode_texts` consult the active
:class:`~domainclip.core.eval.cache.EmbeddingCache` (``domainclip compare`` opens one per model), so
every suite that embeds through them reuses a model's embeddings of the same data.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from domainclip.core.data import keys
from domainclip.core.eval.cache import active_embedding_cache
from domainclip.core.plugins import UnknownNameError

__all__ = [
    "ENCODE_METHODS",
    "InputEncoder",
    "collate_samples",
    "encode_inputs",
    "embed_loader",
    "encode_texts",
    "extract_features",
    "iter_batches",
]


def _whole(output: Any) -> Tensor:
    return output


def _fused(output: Any) -> Tensor:
    """Multi-view towers return ``(per_view, fused)``; retrieval and zero-shot use the fused embedding."""
    return output[-1] if isinstance(output, tuple | list) else output


@dataclass(frozen=True)
class InputEncoder:
    """How a batch key is embedded: the model method to call and which part of its output to keep."""

    method: str
    embedding: Callable[[Any], Tensor] = _whole


#: Batch key -> how the model embeds it.
ENCODE_METHODS: dict[str, InputEncoder] = {
    keys.IMAGE: InputEncoder("encode_image"),
    keys.VIDEO: InputEncoder("encode_video"),
    keys.VIEWS: InputEncoder("encode_views", _fused),
}

Tokenizer = Callable[[list[str]], Tensor]


def encode_inputs(model: torch.nn.Module, inputs: Tensor, input_key: str = keys.IMAGE) -> Tensor:
    """Embed a batch of images, clips or view stacks with the tower that ``input_key`` names.

    Args:
        model: CLIP-like model with ``encode_image`` (and ``encode_video``/``encode_views`` for those keys).
        inputs: the batch tensor, already on the model's device.
        input_key: ``"image"``, ``"video"`` or ``"views"``.

    Returns:
        L2-normalised features ``(B, D)``.

    """
    if input_key not in ENCODE_METHODS:
        raise UnknownNameError("input key", input_key, list(ENCODE_METHODS))
    encoder = ENCODE_METHODS[input_key]
    method = getattr(model, encoder.method, None)
    if method is None:
        raise TypeError(
            f"{type(model).__name__} has no {encoder.method}(); input_key {input_key!r} needs a model "
            "with that tower"
        )
    features = encoder.embedding(method(inputs, normalize=True))
    return F.normalize(features.float(), dim=-1)


def encode_texts(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    texts: Sequence[str],
    device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> Tensor:
    """Embed captions in batches; returns L2-normalised features ``(len(texts), D)`` on the CPU."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not texts:
        raise ValueError("encode_texts got no texts")

    def compute() -> Tensor:
        chunks = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                tokens = tokenizer(list(texts[start : start + batch_size])).to(device)
                chunks.append(F.normalize(model.encode_text(tokens, normalize=True).float(), dim=-1).cpu())
        return torch.cat(chunks)

    cache = active_embedding_cache(model)
    return compute() if cache is None else cache.texts(list(texts), batch_size, compute)


def iter_batches(dataloader: Iterable[Any], required: Sequence[str]) -> Iterable[Mapping[str, Any]]:
    """Yield the dataloader's batches, checking each is a dict holding the ``required`` keys."""
    for i, batch in enumerate(dataloader):
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"batch {i} from the dataloader is a {type(batch).__name__}; eval expects dict batches "
                f"with keys {list(required)}"
            )
        missing = [k for k in required if k not in batch]
        if missing:
            raise KeyError(f"batch {i} from the dataloader lacks {missing} (it has {sorted(batch)})")
        yield batch


def _embed_batch(model: torch.nn.Module, inputs: Tensor, device: str | torch.device, input_key: str) -> Tensor:
    return encode_inputs(model, inputs.to(device), input_key).cpu()


def embed_loader(
    model: torch.nn.Module,
    dataloader: Iterable[Any],
    device: str | torch.device = "cpu",
    input_key: str = keys.IMAGE,
    keep: Sequence[str] = (keys.LABEL,),
) -> dict[str, Any]:
    """Embed an eval loader once for every task of a suite, keeping what the tasks need beside the features.

    Args:
        model: CLIP-like model; see :func:`encode_inputs`.
        dataloader: yields dicts with ``input_key`` and every key of ``keep``.
        device: where the model runs.
        input_key: which input tower to use.
        keep: batch keys returned beside the features, in loader order: tensors (labels) are
            concatenated, anything else (captions, meta) gives one list entry per sample.

    Returns:
        ``{"features": (N, D) L2-normalised float features, **{key: values}}``, all on the CPU.

    Raises:
        ValueError: the loader yields nothing, or a kept entry does not hold one value per sample
            (per-sample caption lists transposed by ``default_collate``).

    """
    feats, kept = [], {key: [] for key in keep}
    cache = active_embedding_cache(model)
    call = cache.begin_call(input_key) if cache is not None else None
    with torch.no_grad():
        for i, batch in enumerate(iter_batches(dataloader, (input_key, *keep))):
            inputs = batch[input_key]
            embed = functools.partial(_embed_batch, model, inputs, device, input_key)
            feats.append(embed() if call is None else call.features(inputs, embed))
            for key in keep:
                value = batch[key]
                if isinstance(value, str) or len(value) != inputs.shape[0]:
                    raise ValueError(
                        f"batch {i}: {key!r} must hold one entry per sample ({inputs.shape[0]} samples), got "
                        f"{type(value).__name__} of length {len(value)}; collate per-sample lists (several "
                        "captions) with domainclip.core.eval.features.collate_samples"
                    )
                kept[key].append(value.cpu() if isinstance(value, Tensor) else list(value))
    if not feats:
        raise ValueError("eval: the dataloader yielded no batches")
    out: dict[str, Any] = {"features": torch.cat(feats)}
    if call is not None:
        call.finish(out["features"])
    for key, values in kept.items():
        out[key] = torch.cat(values) if isinstance(values[0], Tensor) else [v for part in values for v in part]
    return out


def extract_features(
    model: torch.nn.Module,
    dataloader: Iterable[Any],
    device: str | torch.device = "cpu",
    input_key: str = keys.IMAGE,
) -> tuple[Tensor, Tensor]:
    """Embed every batch of a labelled loader (for linear probes, k-NN, feature caches).

    Args:
        model: CLIP-like model; see :func:`encode_inputs`.
        dataloader: yields dicts with ``input_key`` and ``label``.
        device: where the model runs.
        input_key: which input tower to use.

    Returns:
        ``(features, labels)``: L2-normalised ``(N, D)`` float features and the labels as a tensor
        (``(N,)`` class indices or ``(N, C)`` multi-hot), both on the CPU.

    """
    embedded = embed_loader(model, dataloader, device, input_key, keep=(keys.LABEL,))
    return embedded["features"], torch.as_tensor(embedded[keys.LABEL])


def collate_samples(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collate dict samples for eval: stack tensors, make ``label`` a tensor, keep the rest as lists.

    Unlike ``default_collate`` it keeps a per-sample list of captions (``text: list[str]``) as one
    list per sample instead of transposing it, and leaves ``meta`` dicts alone.
    """
    if not samples:
        raise ValueError("collate_samples got an empty batch")
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key == keys.LABEL:
            out[key] = torch.as_tensor(values) if not isinstance(values[0], Tensor) else torch.stack(values)
        elif isinstance(values[0], Tensor):
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out
