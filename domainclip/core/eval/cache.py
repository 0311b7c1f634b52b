"""An embedding cache the eval blocks consult, so a model's embeddings of the same data are computed once.

``domainclip compare`` evaluates several models on one suite, and again when a model is added, and
once per template set with ``--prompt-sensitivity``. The embeddings of the shared data do not change
between those runs, so it opens an :class:`EmbeddingCache` per model and runs the suite inside
:meth:`EmbeddingCache.activate`::

    cache = EmbeddingCache(folder, key={...}, model=model)
    with cache.activate():
        run_suite(model, ...)

The hook is in the two blocks every suite embeds through:

- :func:`~domainclip.core.eval.features.embed_loader` (images, video clips, view stacks; also what
  ``extract_features``, ``zero_shot_logits``, ``zero_shot_dataset``, ``evaluate_retrieval`` and
  ``heldout.embed_decodable`` call) asks :func:`active_embedding_cache` for the cache and hands each
  batch to :meth:`EmbeddingCall.features`;
- :func:`~domainclip.core.eval.features.encode_texts` (captions, per-class prompt ensembles of
  ``build_prompt_classifier``) hands its texts to :meth:`EmbeddingCache.texts`.

What a hit skips and what it does not: the loader is still iterated (decoding, the model's
preprocessing, the suite's skipped-sample tallies all happen as without a cache, so a suite's
numbers and side effects are the same), and only the model's forward pass is skipped. Every batch
is checked: its input tensor's digest (BLAKE2b of dtype, shape and bytes) must equal the digest
stored for the same batch of the same call, else the batch is embedded by the model and the entry
rewritten. The ``n``-th ``embed_loader`` call of a suite run is entry ``n`` (suites are
deterministic given their data and options, which are part of the key). Texts are content
addressed (the digest of the texts and the batch size).

The key (a JSON mapping the caller builds: the model's identity, suite, data fingerprint, options,
device, batch size, domainclip version) names the cache's folder (``<digest of the key>/`` with
``key.json`` inside), so any change of key starts a fresh folder; entries are safetensors files
beside a JSON record. A model other than the one the cache was opened for (a suite's baseline, a
wrapper such as surgery's mean-pooling ``VideoCLIP`` around an image CLIP) bypasses the cache:
those embeddings are computed and counted under ``bypassed``.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from domainclip.core.io import atomic_write_bytes, atomic_write_text

__all__ = ["CacheStats", "EmbeddingCache", "EmbeddingCall", "active_embedding_cache", "key_digest"]

#: Name of the key record inside a cache folder.
KEY_NAME = "key.json"
_ACTIVE: contextvars.ContextVar[EmbeddingCache | None] = contextvars.ContextVar("domainclip_embedding_cache",
                                                                                 default=None)


def key_digest(key: Mapping[str, Any]) -> str:
    """SHA-256 of a key's canonical JSON (sorted keys), the name of its cache folder."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _tensor_digest(tensor: torch.Tensor) -> str:
    array = tensor.detach().cpu().contiguous()
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{array.dtype}{tuple(array.shape)}".encode())
    h.update(array.view(torch.uint8).numpy() if array.numel() else b"")
    return h.hexdigest()


def _texts_digest(texts: Sequence[str], batch_size: int) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{batch_size}:{len(texts)}".encode())
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


@dataclass
class CacheStats:
    """What a cache served and computed (counted over the cache's life).

    Args:
        batches_cached: input batches whose embeddings came from the cache.
        batches_computed: input batches the model embedded (a miss, or a batch whose digest changed).
        texts_cached: texts whose embeddings came from the cache.
        texts_computed: texts the model embedded.
        bypassed: embedding calls made with another model than the cache's (computed, never stored).
    """

    batches_cached: int = 0
    batches_computed: int = 0
    texts_cached: int = 0
    texts_computed: int = 0
    bypassed: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a mapping (for results files)."""
        return dict(vars(self))


@dataclass
class EmbeddingCall:
    """One ``embed_loader`` call of a suite run: its stored entry, checked and served batch by batch.

    Args:
        cache: the cache the call belongs to.
        index: the call's ordinal in the suite run (its entry's name).
        input_key: the batch key embedded (``image``, ``video``, ``views``).
    """

    cache: EmbeddingCache
    index: int
    input_key: str
    _stored: torch.Tensor | None = None
    _stored_batches: list[tuple[str, int]] = field(default_factory=list)
    _batches: list[tuple[str, int]] = field(default_factory=list)
    _offset: int = 0
    _dirty: bool = False

    def __post_init__(self) -> None:
        record = self.cache._read_record(f"embed_{self.index:03d}")
        if record is not None and record[0].get("input_key") == self.input_key:
            meta, tensors = record
            self._stored = tensors["features"]
            self._stored_batches = [(d, int(n)) for d, n in meta["batches"]]

    def features(self, inputs: torch.Tensor, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The batch's embeddings: the stored ones when the batch's digest matches, else ``compute()``.

        Args:
            inputs: the batch tensor (as the suite's loader yields it).
            compute: embeds the batch with the model (returns CPU features).
        """
        digest, rows, i = _tensor_digest(inputs), int(inputs.shape[0]), len(self._batches)
        self._batches.append((digest, rows))
        start, self._offset = self._offset, self._offset + rows
        if self._stored is not None and i < len(self._stored_batches) and self._stored_batches[i] == (digest, rows):
            self.cache.stats.batches_cached += 1
            return self._stored[start : start + rows].clone()
        self._dirty = True
        self.cache.stats.batches_computed += 1
        return compute()

    def finish(self, features: torch.Tensor) -> None:
        """Store the call's features when any batch was computed (or the stored entry had more batches)."""
        if self._dirty or len(self._batches) != len(self._stored_batches):
            meta = {"input_key": self.input_key, "batches": self._batches}
            self.cache._write_record(f"embed_{self.index:03d}", meta, {"features": features})


class EmbeddingCache:
    """Per-model embeddings of a suite's data, stored under ``root/<digest of key>/`` (module docstring).

    Args:
        root: the folder holding cache folders (``compare``'s ``DIR/cache``).
        key: what the embeddings depend on (JSON data); its digest names the folder.
        model: the model whose embeddings are cached; calls with any other model bypass the cache.
    """

    def __init__(self, root: str | Path, key: Mapping[str, Any], model: torch.nn.Module):
        self.key = dict(key)
        self.digest = key_digest(self.key)
        self.folder = Path(root) / self.digest
        self.model = model
        self.stats = CacheStats()
        self._calls = 0

    @contextlib.contextmanager
    def activate(self) -> Iterator[EmbeddingCache]:
        """Make this the cache the eval blocks consult for the ``with`` block (one suite run)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key_path = self.folder / KEY_NAME
        if not key_path.is_file():
            atomic_write_text(key_path, json.dumps(self.key, indent=2, sort_keys=True, default=str) + "\n")
        self._calls = 0
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    def serves(self, model: torch.nn.Module) -> bool:
        """Whether embeddings of ``model`` go through this cache; counts a bypass when not."""
        if model is self.model:
            return True
        self.stats.bypassed += 1
        return False

    def begin_call(self, input_key: str) -> EmbeddingCall:
        """Start the next ``embed_loader`` call of the suite run."""
        call = EmbeddingCall(self, self._calls, input_key)
        self._calls += 1
        return call

    def texts(self, texts: Sequence[str], batch_size: int, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Embeddings of ``texts`` (embedded ``batch_size`` at a time): stored ones, else ``compute()`` stored.

        Args:
            texts: the texts, in order.
            batch_size: texts per forward (part of the entry's name: batching may change the last bits).
            compute: embeds them with the model (returns CPU features).
        """
        name = f"text_{_texts_digest(texts, batch_size)}"
        record = self._read_record(name)
        if record is not None and record[1]["features"].shape[0] == len(texts):
            self.stats.texts_cached += len(texts)
            return record[1]["features"]
        features = compute()
        self.stats.texts_computed += len(texts)
        self._write_record(name, {"num_texts": len(texts), "batch_size": batch_size}, {"features": features})
        return features

    def _read_record(self, name: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        meta_path, data_path = self.folder / f"{name}.json", self.folder / f"{name}.safetensors"
        if not (meta_path.is_file() and data_path.is_file()):
            return None
        try:
            return json.loads(meta_path.read_text(encoding="utf-8")), load_file(str(data_path))
        except (OSError, ValueError, RuntimeError):  # a damaged entry is a miss, rewritten after the computation
            return None

    def _write_record(self, name: str, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
        # tensors first, then the record that makes the entry count (a crash between leaves a miss)
        (self.folder / f"{name}.json").unlink(missing_ok=True)
        atomic_write_bytes(self.folder / f"{name}.safetensors",
                           save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))
        atomic_write_text(self.folder / f"{name}.json", json.dumps(dict(meta)) + "\n")


def active_embedding_cache(model: torch.nn.Module) -> EmbeddingCache | None:
    """The cache active for this suite run when it serves ``model`` (see :meth:`EmbeddingCache.serves`), else ``None``.

    Args:
        model: the model about to embed something.
    """
    cache = _ACTIVE.get()
    return cache if cache is not None and cache.serves(model) else None
