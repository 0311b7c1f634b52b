"""Diagram search by text and by image over a folder of math diagram shards.

A researcher with a corpus of diagrams (shards written by ``domainclip prepare math synthetic``, or
any shards of images with captions) asks "which diagrams show the graph of a sine function?" or
"which diagrams look like this one?"::

    index = build_diagram_index("shards/", model="runs/clip-math")    # embed every diagram once
    index.save("shards/diagram-index.npz")                             # reuse it later: DiagramIndex.load
    hits = search_by_text(index, "a circle with a tangent line", model="runs/clip-math", k=8)
    fig = plot_diagram_hits(hits, query="a circle with a tangent line")

The index holds one L2-normalised embedding per diagram and, beside it, where the diagram is (shard
and key), its caption, its diagram type and family (from the shard's ``.json`` metadata, empty when
the shard has none) and a digest of its pixels. A search is a cosine similarity against every
embedding: exact and cheap for the hundreds of thousands of diagrams a research corpus holds. The
images themselves stay in the shards; a hit reads its own on demand (:meth:`DiagramHit.image`).

The index records which model embedded it (:func:`model_identity`: the sha256 of its weight files
as :func:`domainclip.load_model` records them, or of its parameters for a model built in memory), and
a search with another model is refused: the two models' embedding spaces have nothing in common.
An image query whose pixels equal an indexed diagram's ranks that diagram first, whatever the
floating-point noise between a batch of one and the batch the index was built with.

This is the retrieval of CLIP-style "search by caption / by example" demos (e.g. open_clip's
retrieval notebooks, clip-retrieval), kept in memory with numpy instead of a vector database.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from domainclip.core.data import keys
from domainclip.core.data.corrupt import CorruptSampleError, CorruptTally
from domainclip.core.data.decode import SampleDecoder
from domainclip.core.data.reader import expand_urls, iter_shard
from domainclip.core.errors import DatasetNotFoundError, InputError, InputNotFoundError
from domainclip.core.explore import LoadedModel, ModelLike, image_grid, model_fingerprint, resolve_model
from domainclip.core.io import atomic_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DiagramHit",
    "DiagramIndex",
    "build_diagram_index",
    "load_diagram_images",
    "model_identity",
    "plot_diagram_hits",
    "search_by_image",
    "search_by_text",
]

#: Version of the saved index layout (:meth:`DiagramIndex.save`).
INDEX_FORMAT = 1


# --------------------------------------------------------------------------------------- model identity
def model_identity(model: ModelLike) -> dict[str, Any]:
    """What identifies a model's embedding space, recorded in an index and compared at search time.

    ``identity`` is the sha256 of :func:`domainclip.core.explore.model_fingerprint`: the weight files'
    digests of a model loaded from a spec (wherever its folder moved), the name and seed of random
    weights, or the sha256 of the parameters and buffers of a model built or trained in memory.

    Args:
        model: any model spelling :func:`~domainclip.core.explore.resolve_model` accepts.

    Returns:
        ``{"spec", "kind", "identity"}`` and, where known, ``"weights_sha256"`` (file -> sha256).
    """
    loaded = resolve_model(model, device=_device_of(model))
    source = getattr(loaded.model, "domainclip_source", None) or {}
    fingerprint = model_fingerprint(loaded)
    record: dict[str, Any] = {"spec": str(source.get("spec", loaded.spec)), "kind": str(source.get("kind", "memory"))}
    weights = dict(source.get("weights_sha256") or {})
    if weights:
        record["weights_sha256"] = weights
    text = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"))
    record["identity"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return record


def _device_of(model: ModelLike) -> torch.device | str:
    """The device a loaded model is already on (so identifying it does not move it); CPU for a spec."""
    return model.device if isinstance(model, LoadedModel) else "cpu"


def _check_same_model(index: DiagramIndex, record: Mapping[str, Any]) -> None:
    if record["identity"] != index.model.get("identity"):
        raise InputError(
            f"this diagram index was built with model {index.model.get('spec')!r} ({index.model.get('identity')}) "
            f"but the search uses {record['spec']!r} ({record['identity']}): embeddings of two models cannot be "
            "compared; search with the index's model or rebuild the index with build_diagram_index"
        )


# ------------------------------------------------------------------------------------------------ index
def _pixel_digest(image: Image.Image) -> str:
    """A digest of a diagram's RGB pixels and size: equal for the same picture however it was stored."""
    rgb = image.convert("RGB")
    digest = hashlib.blake2b(f"{rgb.width}x{rgb.height};".encode(), digest_size=16)
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def _caption(text: Any, language: str) -> str:
    """One caption from a shard's text: the first of a list, ``language`` (else the first) of a dict."""
    if isinstance(text, Mapping):
        text = text.get(language, next(iter(text.values()), ""))
    if isinstance(text, list):
        text = text[0] if text else ""
    return str(text)


@dataclass(frozen=True, eq=False)
class DiagramIndex:
    """The embeddings of every diagram of a shard folder, with where each one is and what it shows.

    Args:
        embeddings: ``(N, D)`` float32, L2-normalised, one row per diagram.
        shards: the shard files (or URLs) read, in reading order.
        shard_ids: ``(N,)`` index into ``shards`` of each diagram's shard.
        keys: each diagram's sample key in its shard.
        captions: each diagram's caption (the first one, in ``language`` when captions come by language).
        diagram_types: each diagram's type (``meta["diagram_type"]``; ``""`` without metadata).
        families: each diagram's family (``plane_geometry``, ``analytic_geometry``, ``function_plot``; or ``""``).
        digests: each diagram's pixel digest (an image query equal to a diagram ranks it first).
        model: :func:`model_identity` of the model that embedded them.
        skipped: samples left out because they could not be decoded, and damaged shards, by reason.
    """

    embeddings: np.ndarray
    shards: tuple[str, ...]
    shard_ids: np.ndarray
    keys: tuple[str, ...]
    captions: tuple[str, ...]
    diagram_types: tuple[str, ...]
    families: tuple[str, ...]
    digests: tuple[str, ...]
    model: dict[str, Any]
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        """The number of diagrams."""
        return len(self.keys)

    def shard_of(self, i: int) -> str:
        """The shard holding diagram ``i``."""
        return self.shards[int(self.shard_ids[i])]

    def save(self, path: str | Path) -> Path:
        """Write the index to one ``.npz`` file, atomically (complete or absent, never half-written).

        Shards under the index file's folder are recorded relative to it, so a folder holding the
        shards and their index can be moved or copied as a whole.

        Args:
            path: the file to write (``.npz`` is added when it has another suffix).

        Raises:
            OutputError: the file cannot be written.
        """
        from domainclip.core.errors import OutputError

        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        if path.is_dir():
            raise OutputError(f"diagram index {path} is a folder; give a file name such as {path / 'index.npz'}")
        base = path.parent.resolve()
        shards = [_relative_shard(s, base) for s in self.shards]
        header = {"format": INDEX_FORMAT, "model": self.model, "shards": shards, "skipped": self.skipped}
        columns = {"keys": self.keys, "captions": self.captions, "diagram_types": self.diagram_types,
                   "families": self.families, "digests": self.digests}
        try:
            with atomic_output(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, embeddings=self.embeddings.astype(np.float32), shard_ids=self.shard_ids.astype(np.int32),
                         header=np.array(json.dumps(header)),
                         **{name: np.array(values, dtype=str) for name, values in columns.items()})
        except OSError as e:
            raise OutputError(f"cannot write the diagram index {path}: {e.strerror or e}") from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> DiagramIndex:
        """Read an index written by :meth:`save`.

        Args:
            path: the ``.npz`` file.

        Raises:
            InputNotFoundError: the file does not exist.
            InputError: the file is not a diagram index (or a damaged one).
        """
        path = Path(path)
        if not path.is_file():
            raise InputNotFoundError(f"diagram index {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                columns = {name: tuple(str(v) for v in data[name]) for name in
                           ("keys", "captions", "diagram_types", "families", "digests")}
                embeddings, shard_ids = data["embeddings"].astype(np.float32), data["shard_ids"].astype(np.int64)
        except (OSError, ValueError, KeyError, EOFError) as e:
            raise InputError(f"{path} is not a diagram index written by DiagramIndex.save: {e}") from None
        if header.get("format") != INDEX_FORMAT:
            raise InputError(f"{path}: diagram index format {header.get('format')!r}; this version reads "
                             f"{INDEX_FORMAT}: rebuild it with build_diagram_index")
        base = path.parent.resolve()
        shards = tuple(_absolute_shard(s, base) for s in header["shards"])
        return cls(embeddings, shards, shard_ids, model=header["model"], skipped=header.get("skipped", {}), **columns)


def _relative_shard(shard: str, base: Path) -> str:
    if not os.path.exists(shard):
        return shard  # a URL the user wrote (local shards were found on disk)
    path = Path(shard).resolve()
    return path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)


def _absolute_shard(shard: str, base: Path) -> str:
    if "://" in shard or Path(shard).is_absolute():
        return shard
    return str(base / shard)


class _IndexItem:
    """The image transform of the index pass: the model's input tensor and the pixel digest of one diagram."""

    def __init__(self, loaded: LoadedModel):
        self.preprocess = loaded.preprocess

    def __call__(self, image: Image.Image) -> tuple[torch.Tensor, str]:
        return self.preprocess(image), _pixel_digest(image)


def _shard_urls(shards: str | Path | Sequence[str | Path]) -> list[str]:
    """The shard files of a folder, glob, brace pattern or list; one clear line when there are none."""
    try:
        return expand_urls([str(s) for s in shards] if isinstance(shards, list | tuple) else str(shards))
    except (InputNotFoundError, InputError) as e:
        raise DatasetNotFoundError(f"no diagram shards at {shards}: {e}; expected .tar shards, e.g. from "
                                   "'domainclip prepare math synthetic'") from None


def _decoded(urls: Sequence[str], decoder: SampleDecoder, tally: CorruptTally) -> Iterator[tuple[int, dict]]:
    """``(shard number, decoded sample)`` for every decodable sample; the others counted in ``tally``."""
    for number, url in enumerate(urls):
        for raw in iter_shard(url, tally):
            try:
                sample = decoder(raw)
            except CorruptSampleError as e:
                tally.add(e.reason, url, raw.get(keys.KEY), e.detail)
                continue
            tally.add_good()
            yield number, sample


def build_diagram_index(
    shards: str | Path | Sequence[str | Path],
    model: ModelLike,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    language: str = "en",
    progress: bool = True,
) -> DiagramIndex:
    """Embed every diagram of a shard folder once, streaming (one batch of images in memory at a time).

    A sample whose image, caption or metadata cannot be decoded, and a damaged shard, is left out,
    counted in :attr:`DiagramIndex.skipped` and reported in one warning; the rest is indexed.

    Args:
        shards: a shard folder, a glob or brace pattern, or a list of shards (``.tar`` files with an
            image and a caption per sample, e.g. from ``domainclip prepare math synthetic``).
        model: the model (any spelling :func:`~domainclip.core.explore.resolve_model` accepts).
        batch_size: diagrams per forward pass.
        device: where the model runs.
        language: the caption language kept when captions come by language (``en``, ``zh``).
        progress: show a progress bar.

    Returns:
        The index (in memory; :meth:`DiagramIndex.save` writes it).

    Raises:
        DatasetNotFoundError: ``shards`` names no shard file.
        InputError: ``batch_size`` is below 1, or no sample of the shards could be decoded.
    """
    from tqdm.auto import tqdm

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    urls = _shard_urls(shards)
    loaded = resolve_model(model, device=device)
    record = model_identity(loaded)
    decoder = SampleDecoder(_IndexItem(loaded), required=(keys.IMAGE, keys.TEXT), text_choice="first")
    tally = CorruptTally()
    shard_ids: list[int] = []
    columns: dict[str, list[str]] = {"keys": [], "captions": [], "diagram_types": [], "families": [], "digests": []}
    embeddings: list[np.ndarray] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        if batch:
            embeddings.append(loaded.encode_images(torch.stack(batch), batch_size=batch_size).numpy())
            batch.clear()

    bar = tqdm(desc="indexing diagrams", unit="diagram", disable=not progress)
    for number, sample in _decoded(urls, decoder, tally):
        tensor, digest = sample[keys.IMAGE]
        meta = sample.get(keys.META, {})
        batch.append(tensor)
        shard_ids.append(number)
        columns["keys"].append(str(sample.get(keys.KEY, "")))
        columns["captions"].append(_caption(sample[keys.TEXT], language))
        columns["diagram_types"].append(str(meta.get("diagram_type", "")))
        columns["families"].append(str(meta.get("family", "")))
        columns["digests"].append(digest)
        if len(batch) == batch_size:
            flush()
        bar.update()
    flush()
    bar.close()
    if tally.corrupt:
        warnings.warn(f"diagram index: left out {tally.corrupt} unreadable sample(s) or shard(s)\n{tally.report()}",
                      stacklevel=2)
    if not shard_ids:
        raise InputError(f"no diagram under {shards} could be decoded\n{tally.report()}")
    return DiagramIndex(
        embeddings=np.concatenate(embeddings).astype(np.float32), shards=tuple(str(u) for u in urls),
        shard_ids=np.asarray(shard_ids, dtype=np.int64), model=record, skipped=dict(tally.counts),
        **{name: tuple(values) for name, values in columns.items()},
    )


# ----------------------------------------------------------------------------------------------- search
@dataclass(frozen=True)
class DiagramHit:
    """One diagram found by a search.

    Args:
        rank: 1 for the best match.
        score: cosine similarity between the query and the diagram (-1 to 1; only the order is meaningful
            across queries).
        index: the diagram's row in the index.
        key: its sample key in its shard.
        shard: the shard holding it.
        caption: its caption.
        diagram_type: its diagram type (``""`` when its shard has no metadata).
        same_image: the query image has exactly this diagram's pixels.
    """

    rank: int
    score: float
    index: int
    key: str
    shard: str
    caption: str
    diagram_type: str
    same_image: bool = False

    def image(self) -> Image.Image:
        """The diagram, read from its shard (RGB).

        Raises:
            InputNotFoundError: the shard no longer holds the diagram.
        """
        return load_diagram_images([self])[0]


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k (how many diagrams to return) must be an integer >= 1, got {k!r}")


def _ranked(index: DiagramIndex, scores: np.ndarray, k: int, first: np.ndarray | None = None) -> list[DiagramHit]:
    """The ``k`` best rows: exact image matches (``first``) first, then by score, ties by index order."""
    first = np.zeros(len(scores), bool) if first is None else first
    order = np.lexsort((np.arange(len(scores)), -scores, ~first))[:k]
    return [DiagramHit(rank=r + 1, score=float(scores[i]), index=int(i), key=index.keys[i], shard=index.shard_of(i),
                       caption=index.captions[i], diagram_type=index.diagram_types[i], same_image=bool(first[i]))
            for r, i in enumerate(order)]


def search_by_text(
    index: DiagramIndex, query: str, model: ModelLike, *, k: int = 8, device: str | torch.device = "cpu",
) -> list[DiagramHit]:
    """The ``k`` diagrams whose embeddings are closest to a phrase's ("the graph of a sine function").

    Args:
        index: from :func:`build_diagram_index` or :meth:`DiagramIndex.load`.
        query: the phrase.
        model: the model that built the index (any spelling).
        k: how many diagrams to return (fewer when the index holds fewer).
        device: where the model runs.

    Raises:
        InputError: an empty query, ``k`` below 1, or a model other than the index's.
    """
    if not isinstance(query, str) or not query.strip():
        raise InputError(f"the text query is empty: give a phrase such as 'a right triangle', got {query!r}")
    _check_k(k)
    loaded = resolve_model(model, device=device)
    _check_same_model(index, model_identity(loaded))
    text = loaded.encode_text([query.strip()]).numpy()[0]
    return _ranked(index, index.embeddings @ text, k)


def _open_query(image: Image.Image | str | Path) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if not isinstance(image, str | Path):
        raise InputError(f"an image query is a PIL image or an image file, got {type(image).__name__}")
    path = Path(image)
    if not path.is_file():
        raise InputNotFoundError(f"query image {path} does not exist")
    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"query image {path} cannot be read as an image: {e}") from None


def search_by_image(
    index: DiagramIndex, image: Image.Image | str | Path, model: ModelLike, *, k: int = 8,
    device: str | torch.device = "cpu",
) -> list[DiagramHit]:
    """The ``k`` diagrams most similar to a diagram (a PIL image or an image file).

    A diagram of the index whose pixels equal the query's comes first (``same_image``), whatever the
    rounding between the query's forward pass and the index's.

    Args:
        index: from :func:`build_diagram_index` or :meth:`DiagramIndex.load`.
        image: the query diagram.
        model: the model that built the index (any spelling).
        k: how many diagrams to return (fewer when the index holds fewer).
        device: where the model runs.

    Raises:
        InputNotFoundError: the image file does not exist.
        InputError: the file is not an image, ``k`` below 1, or a model other than the index's.
    """
    _check_k(k)
    picture = _open_query(image)
    loaded = resolve_model(model, device=device)
    _check_same_model(index, model_identity(loaded))
    query = loaded.encode_images([picture]).numpy()[0]
    digest = _pixel_digest(picture)
    return _ranked(index, index.embeddings @ query, k, np.array([d == digest for d in index.digests], bool))


# ------------------------------------------------------------------------------------------------- plot
def load_diagram_images(hits: Sequence[DiagramHit]) -> list[Image.Image]:
    """The diagrams of ``hits`` (RGB), in their order, reading each shard once.

    Args:
        hits: from :func:`search_by_text` or :func:`search_by_image`.

    Raises:
        InputNotFoundError: a shard no longer holds its diagram (moved or rewritten since indexing).
    """
    wanted: dict[str, set[str]] = {}
    for hit in hits:
        wanted.setdefault(hit.shard, set()).add(hit.key)
    found: dict[tuple[str, str], Image.Image] = {}
    decoder = SampleDecoder(required=(keys.IMAGE,))
    members = set(keys.SHARD_SUFFIXES[keys.IMAGE])
    for shard, names in wanted.items():
        tally = CorruptTally()
        for raw in iter_shard(shard, tally):
            if raw.get(keys.KEY) in names:
                image_only = {k: v for k, v in raw.items() if k in members or k.startswith("__")}
                try:
                    tensor = decoder(image_only)[keys.IMAGE]
                except CorruptSampleError:
                    continue
                found[(shard, raw[keys.KEY])] = Image.fromarray(tensor.permute(1, 2, 0).numpy())
                if all((shard, n) in found for n in names):
                    break
    missing = [h for h in hits if (h.shard, h.key) not in found]
    if missing:
        raise InputNotFoundError(f"diagram {missing[0].key} is no longer in {missing[0].shard} (moved or rewritten "
                                 "since the index was built?); rebuild the index")
    return [found[(h.shard, h.key)] for h in hits]


def _hit_caption(hit: DiagramHit) -> str:
    kind = hit.diagram_type.replace("_", " ")
    head = f"#{hit.rank}  {hit.score:.3f}" + ("  (same image)" if hit.same_image else f"  [{kind}]" if kind else "")
    return f"{head}\n{hit.caption}"


def plot_diagram_hits(
    hits: Sequence[DiagramHit],
    *,
    query: str | Image.Image | Path | None = None,
    ncols: int = 4,
) -> Figure:
    """The hits in a grid, best first, each with its rank, score, diagram type and caption.

    Args:
        hits: from :func:`search_by_text` or :func:`search_by_image`.
        query: the phrase (a ``str``, shown as the title) or the query image (a PIL image or a
            ``Path``, shown first in the grid, framed).
        ncols: columns of the grid.

    Raises:
        InputError: no hits, or ``ncols`` below 1.
    """
    from matplotlib.patches import Rectangle

    if not hits:
        raise InputError("no hits to plot: the search returned nothing")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise InputError(f"ncols must be an integer >= 1, got {ncols!r}")
    images: list[Any] = load_diagram_images(hits)
    captions = [_hit_caption(h) for h in hits]
    image_query = query is not None and not isinstance(query, str)
    if image_query:
        images.insert(0, _open_query(query))
        captions.insert(0, "query image")
        title = "diagrams like the query image"
    else:
        title = f"diagrams for \u201c{query}\u201d" if query else "diagrams found"
    fig = image_grid(images, captions, ncols=ncols, title=title, wrap=34)
    if image_query:
        fig.axes[0].add_patch(Rectangle((0, 0), 1, 1, transform=fig.axes[0].transAxes, fill=False,
                                        edgecolor="tab:red", linewidth=3, clip_on=False))
    return fig
