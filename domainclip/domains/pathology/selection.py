"""Representative-patch selection (PathGen-CLIP's step): a few diverse patches per slide.

PathGen picks, from every slide, a small set of patches that together cover its tissue before
captioning them. :func:`select_representative` does this on patch shards in three streaming passes
that never hold images and never hold more than the embeddings of the slides still being read:

1. **index**: read each sample's ``.json`` (no image decoding) and count the patches of every
   ``slide_id``;
2. **embed**: embed the patches in shard order with the model's image tower; a slide's embeddings
   (and sample keys) are kept until its last patch is seen, then it is clustered with k-means on the
   L2-normalised embeddings and the patch nearest each centroid is chosen (at most ``per_slide``;
   with more clusters than that, the clusters are ranked by size, or by the representative's best
   similarity to ``prompts`` when given); then the slide's embeddings are dropped. Slides written
   contiguously (as the patcher writes them) keep one slide open at a time; slides spread across
   shards stay open until their last patch, which the index pass makes known;
3. **copy**: the chosen samples are copied to new shards with their members' bytes unchanged and
   ``meta["selection"] = {cluster, cluster_size, num_clusters, distance, prompt_score, rank}``.

``domainclip prepare pathology select`` (:func:`prepare_select`) runs it with a saved model.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from domainclip.core.data import keys as K
from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.reader import expand_urls, iter_shard
from domainclip.core.data.writer import FIXED_MTIME, ShardWriter, index_path, write_json_atomic
from domainclip.core.errors import DomainClipError, InputError, NothingWrittenError
from domainclip.core.eval.features import Tokenizer, encode_inputs, encode_texts
from domainclip.core.options import NonNegativeInt, PositiveInt, entry_point
from domainclip.domains.pathology.datasets.slide_labels import PatchShardStream, collate_patch_batch, slide_id_of

__all__ = [
    "MINIBATCH_THRESHOLD",
    "ShardsChangedError",
    "SlideSelection",
    "cluster_representatives",
    "prepare_select",
    "select_representative",
]

#: Slides with more patches than this are clustered with MiniBatchKMeans instead of KMeans.
MINIBATCH_THRESHOLD = 20_000

_CANONICAL = frozenset(K.SAMPLE_KEYS)


class ShardsChangedError(DomainClipError, RuntimeError):
    """The input shards changed between the passes of :func:`select_representative` (another process wrote them)."""


@dataclass
class SlideSelection:
    """The patches chosen from one slide.

    Attributes:
        indices: positions (in the slide's patch order) of the chosen patches, best-ranked first.
        info: for each chosen patch, its ``meta["selection"]`` entry.
        num_clusters: clusters the slide was split into.

    """

    indices: list[int] = field(default_factory=list)
    info: list[dict[str, Any]] = field(default_factory=list)
    num_clusters: int = 0


def _kmeans(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if len(x) > MINIBATCH_THRESHOLD:
        km: Any = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
    else:
        km = KMeans(n_clusters=k, random_state=seed, n_init="auto")
    with warnings.catch_warnings():  # duplicate patches give fewer distinct clusters than asked; that is fine
        warnings.simplefilter("ignore")
        km.fit(x)
    return km.labels_, km.cluster_centers_


def cluster_representatives(
    embeddings: Tensor | np.ndarray,
    per_slide: int,
    clusters: int | None = None,
    prompt_embeddings: Tensor | np.ndarray | None = None,
    seed: int = 0,
) -> SlideSelection:
    """Cluster one slide's patch embeddings and choose the patch nearest each centroid.

    Args:
        embeddings: ``(N, D)`` patch embeddings (L2-normalised here).
        per_slide: most patches to choose.
        clusters: k-means clusters (default ``per_slide``; at most ``N``). With ``N <= clusters``
            every patch is its own cluster.
        prompt_embeddings: ``(P, D)`` text embeddings; a patch's ``prompt_score`` is its highest
            cosine similarity to them, and clusters are ranked by their representative's score.
            Without prompts clusters are ranked by size (largest first).
        seed: k-means seed.

    Returns:
        The chosen patches (at most ``per_slide``), best-ranked first.

    """
    if per_slide < 1:
        raise ValueError(f"per_slide must be >= 1, got {per_slide}")
    k_wanted = per_slide if clusters is None else clusters
    if k_wanted < 1:
        raise ValueError(f"clusters must be >= 1, got {clusters}")
    x = torch.nn.functional.normalize(torch.as_tensor(embeddings).float(), dim=-1).numpy()
    n = len(x)
    if n == 0:
        return SlideSelection()
    k = min(k_wanted, n)
    if n <= k:
        assignment, centres = np.arange(n), x
    else:
        assignment, centres = _kmeans(x, k, seed)
    prompt_scores: np.ndarray | None = None
    if prompt_embeddings is not None:
        p = torch.nn.functional.normalize(torch.as_tensor(prompt_embeddings).float(), dim=-1).numpy()
        prompt_scores = (x @ p.T).max(axis=1)
    candidates = []
    for c in range(len(centres)):
        members = np.flatnonzero(assignment == c)
        if members.size == 0:
            continue
        distances = np.linalg.norm(x[members] - centres[c], axis=1)
        best = int(members[int(np.argmin(distances))])
        score = None if prompt_scores is None else float(prompt_scores[best])
        candidates.append((c, best, int(members.size), float(distances.min()), score))
    if prompt_scores is not None:
        candidates.sort(key=lambda t: (-t[4], t[0]))
    else:
        candidates.sort(key=lambda t: (-t[2], t[0]))
    chosen = candidates[:per_slide]
    return SlideSelection(
        indices=[best for _, best, _, _, _ in chosen],
        info=[
            {"cluster": c, "cluster_size": size, "num_clusters": int(len(candidates)), "distance": dist,
             "prompt_score": score, "rank": rank}
            for rank, (c, _, size, dist, score) in enumerate(chosen)
        ],
        num_clusters=len(candidates),
    )


def _count_patches(urls: Sequence[str]) -> Counter[str]:
    """Index pass: patches per slide id, reading only each sample's metadata (skips are counted later)."""
    counts: Counter[str] = Counter()
    for url in urls:
        tally = CorruptTally()
        for raw in iter_shard(url, tally):
            _, slide, reason = slide_id_of(raw)
            if reason is None:
                counts[slide] += 1
    return counts


@dataclass
class _OpenSlide:
    chunks: list[Tensor] = field(default_factory=list)
    locations: list[tuple[str, str]] = field(default_factory=list)


def _note(skipped: Counter[str], examples: dict[str, str], reason: str, detail: str) -> None:
    skipped[reason] += 1
    examples.setdefault(reason, detail)


def _output_sample(raw: dict[str, Any], meta: dict[str, Any], selection: dict[str, Any], url: str) -> dict[str, Any]:
    sample: dict[str, Any] = {K.KEY: raw[K.KEY]}
    for suffix, data in raw.items():
        if suffix.startswith("__") or suffix == "json":
            continue
        if suffix in _CANONICAL:
            raise InputError(
                f"{url} key={raw[K.KEY]}: member suffix .{suffix} clashes with the canonical key {suffix!r}; "
                "it cannot be copied unchanged"
            )
        sample[suffix] = bytes(data)
    sample["json"] = json.dumps({**meta, "selection": selection}, ensure_ascii=False).encode("utf-8")
    return sample


def select_representative(
    urls: str | Path | Sequence[str],
    model: torch.nn.Module,
    preprocess: Callable[[Any], Tensor],
    out_dir: str | Path,
    *,
    per_slide: int = 8,
    clusters: int | None = None,
    prompts: list[str] | None = None,
    tokenizer: Tokenizer | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    seed: int = 0,
    max_count: int = 1000,
    prefix: str = "selected",
    loader_workers: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Choose up to ``per_slide`` representative patches per slide and copy them to new shards.

    See the module docstring for the three passes. Samples without metadata or ``slide_id`` and
    patches whose image cannot be decoded are skipped and counted; a damaged shard is counted and
    the samples before the damage are used.

    Args:
        urls: patch shards (files, folders, globs, brace patterns).
        model: CLIP-like model; its image tower embeds the patches.
        preprocess: image transform (PIL -> tensor) of the model.
        out_dir: folder for the new shards (``<prefix>-NNNNNN.tar``), their index and
            ``<prefix>-summary.json``.
        per_slide: most patches chosen per slide.
        clusters: k-means clusters per slide (default ``per_slide``).
        prompts: texts (e.g. ``"tumour epithelium"``) that rank the clusters by their representative's
            highest cosine similarity to them; needs ``tokenizer``.
        tokenizer: the model's tokenizer (for ``prompts``).
        batch_size: patches per forward.
        device: where the model runs.
        seed: k-means seed.
        max_count: samples per output shard.
        prefix: output shard name prefix.
        loader_workers: DataLoader worker processes decoding patches (0: in this process).
        progress: show a progress bar.

    Returns:
        Summary: ``out``, ``shards``, ``index``, ``num_slides``, ``num_patches``, ``num_selected``,
        ``per_slide`` (slide -> ``{patches, clusters, selected}``), ``skipped`` (reason -> count),
        ``skipped_examples``, ``max_open_slides``, ``prompts``.

    Raises:
        InputError: ``per_slide`` or ``clusters`` below 1, or a sample whose members cannot be
            copied unchanged (a ``ValueError``).
        NothingWrittenError: no usable patch in the shards; the message counts the skipped
            samples by reason, with an example each (the summary is written first).
        ShardsChangedError: the shards changed while they were being read.

    """
    if per_slide < 1:
        raise InputError(f"per_slide must be >= 1, got {per_slide}")
    if clusters is not None and clusters < 1:
        raise InputError(f"clusters must be >= 1, got {clusters}")
    if prompts and tokenizer is None:
        raise ValueError("select_representative: prompts need the model's tokenizer (tokenizer=...)")
    from tqdm.auto import tqdm

    url_list = expand_urls(urls)
    out_dir = Path(out_dir)
    skipped: Counter[str] = Counter()
    examples: dict[str, str] = {}
    remaining = _count_patches(url_list)
    was_training = model.training
    model.eval()
    prompt_embeddings: Tensor | None = None
    selected: dict[tuple[str, str], dict[str, Any]] = {}
    per_slide_summary: dict[str, dict[str, int]] = {}
    open_slides: dict[str, _OpenSlide] = {}
    max_open = 0

    def finish(slide: str) -> None:
        state = open_slides.pop(slide)
        embeddings = torch.cat(state.chunks) if state.chunks else torch.empty(0)
        choice = cluster_representatives(embeddings, per_slide, clusters, prompt_embeddings, seed)
        for index, info in zip(choice.indices, choice.info):
            selected[state.locations[index]] = info
        per_slide_summary[slide] = {
            "patches": len(state.locations), "clusters": choice.num_clusters, "selected": len(choice.indices)
        }

    stream = PatchShardStream(url_list, preprocess)
    loader = DataLoader(stream, batch_size=batch_size, num_workers=loader_workers, collate_fn=collate_patch_batch)
    bar = tqdm(total=sum(remaining.values()), desc="select: embedding patches", unit="patch", disable=not progress)
    try:
        if prompts:
            prompt_embeddings = encode_texts(model, tokenizer, list(prompts), device)
        with torch.no_grad():
            for batch in loader:
                touched: set[str] = set()
                for item in batch["skipped"]:
                    _note(skipped, examples, item["skip"], item["detail"])
                    if item["slide_id"] is not None and item["slide_id"] in remaining:  # counted by the index
                        remaining[item["slide_id"]] -= 1
                        touched.add(item["slide_id"])
                        open_slides.setdefault(item["slide_id"], _OpenSlide())
                        bar.update(1)
                if batch["image"] is not None:
                    features = encode_inputs(model, batch["image"].to(device)).cpu()
                    slides = batch["slide_id"]
                    for slide in dict.fromkeys(slides):
                        rows = [i for i, s in enumerate(slides) if s == slide]
                        state = open_slides.setdefault(slide, _OpenSlide())
                        state.chunks.append(features[rows])
                        state.locations.extend((batch["url"][i], batch["key"][i]) for i in rows)
                        remaining[slide] -= len(rows)
                        touched.add(slide)
                    bar.update(len(slides))
                max_open = max(max_open, len(open_slides))
                for slide in sorted(touched):
                    if remaining[slide] <= 0 and slide in open_slides:
                        finish(slide)
        for slide in list(open_slides):  # only when the shards changed between the passes
            finish(slide)
    finally:
        bar.close()
        model.train(was_training)

    written = 0
    with ShardWriter(out_dir, prefix=prefix, max_count=max_count, mtime=FIXED_MTIME) as writer:
        for url in url_list:
            tally = CorruptTally()
            for raw in iter_shard(url, tally):
                info = selected.get((url, raw.get(K.KEY)))
                if info is None:
                    continue
                meta, _, _ = slide_id_of(raw)
                writer.write(_output_sample(raw, meta or {}, info, url))
                written += 1
    if written != len(selected):
        raise ShardsChangedError(
            f"select_representative: chose {len(selected)} patches but found {written} when copying; "
            "the shards changed while they were being read"
        )
    summary = {
        "out": str(out_dir),
        "shards": [p.name for p in writer.written],
        "index": index_path(out_dir, prefix).name,
        "num_shards_read": len(url_list),
        "num_slides": len(per_slide_summary),
        "num_patches": sum(s["patches"] for s in per_slide_summary.values()),
        "num_selected": written,
        "per_slide": per_slide_summary,
        "skipped": dict(skipped),
        "skipped_examples": examples,
        "max_open_slides": max_open,
        "prompts": list(prompts or []),
        "per_slide_limit": per_slide,
        "clusters": clusters if clusters is not None else per_slide,
        "seed": seed,
    }
    write_json_atomic(out_dir / f"{prefix}-summary.json", summary)
    if written == 0:
        many = len(url_list) > 1
        inputs = f"{len(url_list)} shard{'s' if many else ''} ({url_list[0]}{', ...' if many else ''})"
        raise NothingWrittenError.from_counts("pathology/select", "patches", inputs, skipped, examples)
    return summary


# ---------------------------------------------------------------------------------------------- command
@entry_point
def prepare_select(
    out: Path,
    shards: list[str],
    model: str,
    *,
    per_slide: PositiveInt = 8,
    clusters: PositiveInt | None = None,
    prompts: list[str] | None = None,
    device: str = "cpu",
    batch_size: PositiveInt = 64,
    seed: NonNegativeInt = 0,
    max_count: PositiveInt = 1000,
    prefix: str = "selected",
    loader_workers: NonNegativeInt = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Choose representative patches per slide by k-means on image embeddings (PathGen's selection).

    Args:
        out: output folder for the selected patches' shards.
        shards: patch shards: files, folders, globs or brace patterns.
        model: model that embeds the patches: a model folder, run folder, hf-hub: id, zoo:NAME (a published
            model) or registry name.
        per_slide: most patches chosen per slide.
        clusters: k-means clusters per slide (default: ``per_slide``).
        prompts: texts that rank the clusters by their representative's similarity to them.
        device: where the model runs (cpu, cuda, cuda:1).
        batch_size: patches per forward.
        seed: k-means seed.
        max_count: most samples per output shard.
        prefix: output shard name prefix.
        loader_workers: DataLoader worker processes decoding patches (0: in this process).
        progress: show a progress bar.

    Returns:
        The summary of :func:`select_representative`, with the ``model`` it used.
    """
    from domainclip.core.models.loading import load_model

    embedder, preprocess, tokenizer = load_model(model, device=device)
    summary = select_representative(
        shards, embedder, preprocess, out, per_slide=per_slide, clusters=clusters, prompts=prompts,
        tokenizer=tokenizer, batch_size=batch_size, device=device, seed=seed, max_count=max_count, prefix=prefix,
        loader_workers=loader_workers, progress=progress,
    )
    return {**summary, "model": model}
