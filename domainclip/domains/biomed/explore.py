"""Text-to-figure search over figure shards: an embedding index built once, top-k figures shown in a grid.

A researcher with a folder of figure shards (``domainclip prepare biomed figures``, ``dedup``,
``panels`` or ``concepts`` output) asks which figures match a phrase::

    index = build_figure_index("data/figures", "runs/bmca")          # embeds every figure, once
    hits = search_figures(index, "western blot of liver lysates", "runs/bmca", k=8)   # data
    fig = plot_figure_hits(hits)                                                     # picture

:func:`build_figure_index` reads the shards with the domain's reader (the core's
:func:`~domainclip.core.data.reader.iter_shard`, as ``dedup`` and ``concepts`` do) and decodes each
figure with the core's :class:`~domainclip.core.data.decode.SampleDecoder` (image and caption
required; what cannot be read is skipped and counted by reason). Every figure is embedded once, in
batches; the L2-normalised embeddings are spilled to disk as float16 while the shards stream by,
so memory holds one batch, never the corpus. The index is a folder beside the shard folder
(``figures/`` -> ``figures-figure-index/``, or ``index_dir``), owned through
:class:`~domainclip.core.outputs.OutputFolder` (locked while it is written, a manifest that says
whether it finished, nothing left behind by a failure) and holding::

    embeddings.npy        (N, D) float16, row i = figure i (read memory-mapped)
    figures.jsonl         one line per figure: shard, key, caption, article id, image member and its
                          byte offset and size in the shard (so a hit's image is read directly)
    figures-offsets.npy   (N,) uint64: where each line of figures.jsonl starts
    index.json            the model's identity, the shards (relative to the index, with size and
                          modification time), the counts and the figures skipped by reason

Each file is written under a temporary name and renamed into place; ``index.json`` comes last.

**One model per index.** The model's identity is what decides its weights: for a model loaded
from a spec (:func:`domainclip.load_model`, ``model.domainclip_source``) the sha256 of its weight
files, or the architecture name and seed of random weights (the same identity ``domainclip compare``
caches by); for a model built in memory, the sha256 of its parameters and buffers. Calling
:func:`build_figure_index` again with the same model and unchanged shards reuses the index; with
another model it refuses (``OutputExistsError``: the index may have been expensive to build) unless
``overwrite=True`` rebuilds it, or ``index_dir`` keeps a second index beside the first. Shards that
changed since (size or modification time, a shard added or gone) make the same model's index stale:
it is rebuilt, with a warning. :func:`search_figures` refuses a model other than the index's, so
figure and query embeddings of two models are never compared. A damaged index (a file missing, cut
or not what ``index.json`` says) is refused with one line; ``overwrite=True`` rebuilds it.

Scores are cosine similarities between the query's text embedding and each figure's image
embedding: comparable between figures for one query and one model, not a probability, and not
comparable between models.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from domainclip.core.data import keys as K
from domainclip.core.data.corrupt import CorruptSampleError, CorruptTally
from domainclip.core.data.decode import MAX_IMAGE_PIXELS, SampleDecoder
from domainclip.core.data.reader import iter_shard
from domainclip.core.errors import InputError, InputNotFoundError, NothingWrittenError, OutputExistsError
from domainclip.core.explore import LoadedModel, ModelLike, image_grid, model_fingerprint, resolve_model
from domainclip.core.io import atomic_output, atomic_write_text, find_inputs
from domainclip.core.outputs import OutputFolder, read_manifest, require_complete
from domainclip.domains.biomed.shards import input_shards

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from PIL import Image

__all__ = [
    "COMMAND",
    "EMBEDDINGS_NAME",
    "FIGURES_NAME",
    "INDEX_NAME",
    "INDEX_SUFFIX",
    "OFFSETS_NAME",
    "FigureHit",
    "FigureIndex",
    "FigureRecord",
    "build_figure_index",
    "default_index_dir",
    "load_figure_index",
    "model_fingerprint",
    "plot_figure_hits",
    "search_figures",
]

#: What the index folder's manifest names as its command and kind.
COMMAND, KIND = "biomed/figure-index", "figure-index"
#: Files of an index folder.
EMBEDDINGS_NAME, FIGURES_NAME, OFFSETS_NAME, INDEX_NAME = (
    "embeddings.npy", "figures.jsonl", "figures-offsets.npy", "index.json")
#: The default index folder is the shard folder's name plus this, beside it.
INDEX_SUFFIX = "-figure-index"
#: Layout version of ``index.json``; another version is refused as damaged.
FORMAT_VERSION = 1
#: Rows scored at once by :func:`search_figures` and copied at once into ``embeddings.npy``.
CHUNK_ROWS = 65536
_IMAGE_SUFFIXES = K.SHARD_SUFFIXES[K.IMAGE]


# =========================================================================== records
@dataclass(frozen=True)
class FigureRecord:
    """One indexed figure: where it is, its caption and its article.

    Args:
        row: its row in the index (and in ``embeddings.npy``).
        shard: the shard that holds it.
        key: its sample key (``PMC<id>_<figure id>``).
        caption: its caption (the shard's ``txt``).
        article: its article id (``json["article"]``), or ``""`` when the shard does not say.
        member: the suffix of its image member (``png``, ``jpg``, ...).
        offset: byte offset of the image member's data in the shard (``-1``: not known, the shard is scanned).
        size: byte size of the image member.
    """

    row: int
    shard: Path
    key: str
    caption: str
    article: str
    member: str
    offset: int
    size: int

    def load_image(self) -> Image.Image:
        """The figure's image (RGB), read back from its shard and decoded as the index decoded it.

        Raises:
            InputNotFoundError: the shard is gone.
            InputError: the figure cannot be read back (the shard changed since the index was built).
        """
        from PIL import Image

        data = self._read_member()
        try:
            tensor = SampleDecoder(required=(K.IMAGE,), max_image_pixels=None)(
                {K.KEY: self.key, self.member: data})[K.IMAGE]
        except CorruptSampleError as e:
            raise InputError(f"figure {self.key} in {self.shard} cannot be read back ({e.reason}: {e.detail}): the "
                             "shard changed since the index was built; build the index again") from None
        return Image.fromarray(tensor.permute(1, 2, 0).numpy()).convert("RGB")

    def _read_member(self) -> bytes:
        if not self.shard.is_file():
            raise InputNotFoundError(f"shard {self.shard} of figure {self.key} does not exist")
        if self.offset >= 0:
            with open(self.shard, "rb") as f:
                f.seek(self.offset)
                return f.read(self.size)
        for raw in iter_shard(str(self.shard), CorruptTally()):  # a compressed shard: no direct access
            if raw.get(K.KEY) == self.key and self.member in raw:
                return raw[self.member]
        raise InputError(f"figure {self.key} is no longer in {self.shard}: build the index again")


@dataclass(frozen=True)
class FigureHit:
    """One search result: the figure, its rank and its score for the query.

    Args:
        rank: 1 for the best match.
        score: cosine similarity of the query's text embedding and the figure's image embedding.
        query: the query.
        figure: the figure.
    """

    rank: int
    score: float
    query: str
    figure: FigureRecord

    @property
    def caption(self) -> str:
        """The figure's caption."""
        return self.figure.caption

    @property
    def key(self) -> str:
        """The figure's sample key."""
        return self.figure.key

    @property
    def shard(self) -> Path:
        """The shard that holds the figure."""
        return self.figure.shard

    @property
    def article(self) -> str:
        """The figure's article id."""
        return self.figure.article

    def load_image(self) -> Image.Image:
        """The figure's image (see :meth:`FigureRecord.load_image`)."""
        return self.figure.load_image()


@dataclass(frozen=True)
class FigureIndex:
    """A figure index folder, opened: embeddings memory-mapped, records read by row when asked for.

    Args:
        folder: the index folder.
        embeddings: ``(N, D)`` float16 L2-normalised image embeddings (memory-mapped).
        shards: the indexed shards, in order.
        model: the identity of the model that embedded them (:func:`model_fingerprint`).
        model_spec: what that model was loaded from, for people (``"<in memory>"`` for a model built in code).
        skipped: figures left out, by reason.
        reused: whether :func:`build_figure_index` found this index already built.
    """

    folder: Path
    embeddings: np.ndarray
    shards: tuple[Path, ...]
    model: dict[str, Any]
    model_spec: str
    skipped: dict[str, int] = field(default_factory=dict)
    reused: bool = False

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def figure(self, row: int) -> FigureRecord:
        """The figure of row ``row``.

        Args:
            row: a row of the index, ``0 <= row < len(index)``.
        """
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} is outside the index ({len(self)} figures)")
        offsets = np.load(self.folder / OFFSETS_NAME, mmap_mode="r")
        with open(self.folder / FIGURES_NAME, "rb") as f:
            f.seek(int(offsets[row]))
            line = f.readline()
        return _record(row, json.loads(line), self.shards)

    def figures(self) -> Iterator[FigureRecord]:
        """Every figure in row order, streamed from ``figures.jsonl``."""
        with open(self.folder / FIGURES_NAME, encoding="utf-8") as f:
            for row, line in enumerate(f):
                yield _record(row, json.loads(line), self.shards)


def _record(row: int, data: dict[str, Any], shards: Sequence[Path]) -> FigureRecord:
    return FigureRecord(row=row, shard=shards[data["shard"]], key=data["key"], caption=data["caption"],
                        article=data["article"], member=data["member"], offset=data["offset"], size=data["size"])


# =========================================================================== identity


def _describe(identity: dict[str, Any], spec: str) -> str:
    """A model for a message: its spec and a short digest of its identity."""
    import hashlib

    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return f"{spec} (identity {digest})"


# =========================================================================== paths and shards
def default_index_dir(shard: Path) -> Path:
    """Where the index of shards in ``shard``'s folder goes: beside that folder, named ``<folder>-figure-index``.

    Args:
        shard: a shard file or the shard folder itself.
    """
    folder = (shard if shard.is_dir() else shard.parent).resolve()
    return folder.with_name(folder.name + INDEX_SUFFIX)


def _shard_states(paths: Sequence[Path], folder: Path) -> list[dict[str, Any]]:
    """Each shard as ``index.json`` records it: path relative to the index folder, size, mtime."""
    states = []
    for path in paths:
        stat = path.stat()
        states.append({"path": os.path.relpath(path.resolve(), folder.resolve()), "size": stat.st_size,
                       "mtime_ns": stat.st_mtime_ns})
    return states


def _member_locations(path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """``(key, suffix) -> (data offset, size)`` of each image member of an uncompressed tar shard (headers only).

    The same header walk ``dedup`` uses to read kept figures back; a compressed or damaged shard
    gives what it can (the reader counts the damage), and its figures are found again by a scan.
    """
    import tarfile

    found: dict[tuple[str, str], tuple[int, int]] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                stem, dot, suffix = base.partition(".")
                if member.isfile() and dot and suffix.lower() in _IMAGE_SUFFIXES:
                    prefix = member.name[: len(member.name) - len(base)]
                    found.setdefault((prefix + stem, suffix.lower()), (member.offset_data, member.size))
    except (tarfile.TarError, OSError, EOFError):
        pass
    return found


# =========================================================================== opening an index
class _Damaged(Exception):
    """An index folder whose files are not what ``index.json`` says."""


def load_figure_index(folder: str | os.PathLike) -> FigureIndex:
    """Open a figure index folder that :func:`build_figure_index` wrote.

    Args:
        folder: the index folder.

    Raises:
        InputNotFoundError: ``folder`` holds no index.
        InputError: the index is unfinished (its build was killed or is still running) or damaged.
    """
    folder = Path(folder)
    if not (folder / INDEX_NAME).is_file() and read_manifest(folder) is None:
        raise InputNotFoundError(f"no figure index at {folder}: build one with build_figure_index(shards, model)")
    manifest = read_manifest(folder)
    if manifest is not None and manifest.get("kind") != KIND:
        raise InputError(f"{folder} holds a {manifest.get('kind')} written by `{manifest.get('command')}`, "
                         "not a figure index")
    require_complete(folder, "figure index")
    try:
        return _open(folder)
    except _Damaged as e:
        raise InputError(f"figure index {folder} is damaged ({e}): build it again with overwrite=True") from None


def _open(folder: Path, reused: bool = False) -> FigureIndex:
    try:
        meta = json.loads((folder / INDEX_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _Damaged(f"{INDEX_NAME} is missing") from None
    except (OSError, ValueError) as e:
        raise _Damaged(f"{INDEX_NAME} is not valid JSON: {e}") from None
    try:
        if meta.get("version") != FORMAT_VERSION:
            raise _Damaged(f"{INDEX_NAME} has layout version {meta.get('version')!r}, expected {FORMAT_VERSION}")
        count, dim = int(meta["figures"]), int(meta["dim"])
        shards = tuple((folder / s["path"]).resolve() for s in meta["shards"])
        model, spec = dict(meta["model"]), str(meta["model_spec"])
        skipped = {str(k): int(v) for k, v in meta.get("skipped", {}).items()}
        figures_bytes = int(meta["figures_bytes"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _Damaged(f"{INDEX_NAME} lacks a field or has a wrong one: {e}") from None
    try:
        embeddings = np.load(folder / EMBEDDINGS_NAME, mmap_mode="r", allow_pickle=False)
        offsets = np.load(folder / OFFSETS_NAME, mmap_mode="r", allow_pickle=False)
        size = (folder / FIGURES_NAME).stat().st_size
    except FileNotFoundError as e:
        raise _Damaged(f"{Path(e.filename).name} is missing") from None
    except (OSError, ValueError, EOFError) as e:
        raise _Damaged(f"cannot read it: {' '.join(str(e).split())}") from None
    if embeddings.dtype != np.float16 or embeddings.shape != (count, dim):
        raise _Damaged(f"{EMBEDDINGS_NAME} holds {embeddings.dtype} {tuple(embeddings.shape)}, "
                       f"{INDEX_NAME} says float16 ({count}, {dim})")
    if offsets.shape != (count,) or size != figures_bytes:
        raise _Damaged(f"{FIGURES_NAME} or {OFFSETS_NAME} does not match the {count} figures of {INDEX_NAME}")
    return FigureIndex(folder=folder, embeddings=embeddings, shards=shards, model=model, model_spec=spec,
                       skipped=skipped, reused=reused)


# =========================================================================== building
def build_figure_index(
    shards: str | os.PathLike | Sequence[str | os.PathLike],
    model: ModelLike,
    *,
    index_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    progress: bool = True,
    overwrite: bool = False,
) -> FigureIndex:
    """Embed every figure of the shards once and save the index beside them (or reuse the one saved).

    See the module docstring for the files, the reuse rule and what happens with another model.

    Args:
        shards: figure shards (``.tar``): files, folders (searched recursively) or glob patterns.
        model: any model spelling (run folder, hub folder, ``hf-hub:...``, ``zoo:NAME``, architecture
            name, a ``(model, preprocess, tokenizer)`` tuple or a :class:`~domainclip.core.explore.LoadedModel`).
        index_dir: the index folder (default: :func:`default_index_dir` of the first shard).
        batch_size: figures per forward pass.
        device: where the model runs (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
        max_image_pixels: a larger figure is skipped (``bad_image``) before it is decoded.
        progress: show a progress bar.
        overwrite: rebuild the index even when one is there (another model's, or a damaged one).

    Returns:
        The index; ``reused`` says whether it was already built for this model and these shards.

    Raises:
        InputNotFoundError: a shard, folder or pattern that does not exist.
        InputError: no shard found, a shard inside ``index_dir``, an unfinished shard folder, a bad
            option, or a damaged index (without ``overwrite``).
        OutputExistsError: the index was built with another model (without ``overwrite``), or
            ``index_dir`` holds files that are not a figure index.
        OutputInUseError: another process is writing the index.
        NothingWrittenError: no figure could be read; the message counts the reasons.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer; got {batch_size!r}")
    if isinstance(max_image_pixels, bool) or not isinstance(max_image_pixels, int) or max_image_pixels < 1:
        raise InputError(f"max_image_pixels must be a positive integer; got {max_image_pixels!r}")
    specs = [shards] if isinstance(shards, str | os.PathLike) else list(shards)
    if not specs:
        raise InputError("no shards given: name a shard folder, shard files or a glob pattern")
    if index_dir is not None:
        folder = Path(index_dir)
    else:
        first = Path(specs[0])
        folder = default_index_dir(first if first.exists() else find_inputs(specs[0], (".tar",), what="shard")[0])
    paths = input_shards([Path(s) for s in specs], folder)
    for parent in dict.fromkeys(p.parent for p in paths):
        require_complete(parent, "shard folder")
    loaded = resolve_model(model, device=device)
    identity = model_fingerprint(loaded)
    spec = str((getattr(loaded.model, "domainclip_source", None) or {}).get("spec", loaded.spec))
    states = _shard_states(paths, folder)

    rebuild = overwrite
    manifest = read_manifest(folder) if folder.is_dir() else None
    if not overwrite and manifest is not None and manifest.get("kind") == KIND:
        if not manifest.get("complete"):
            rebuild = True  # our own unfinished build (killed): nothing to keep; a running one holds the lock
        else:
            try:
                found = _open(folder, reused=True)
            except _Damaged as e:
                raise InputError(f"figure index {folder} is damaged ({e}): pass overwrite=True to rebuild it") from None
            if found.model != identity:
                raise OutputExistsError(
                    f"figure index {folder} was built with {_describe(found.model, found.model_spec)}, not "
                    f"{_describe(identity, spec)}: pass overwrite=True to rebuild it for this model, or give "
                    "another index_dir")
            saved = json.loads((folder / INDEX_NAME).read_text(encoding="utf-8"))["shards"]
            if saved == states:
                return found
            warnings.warn(f"figure index {folder}: the shards changed since it was built; building it again",
                          stacklevel=2)
            rebuild = True
    with OutputFolder(folder, kind=KIND, command=COMMAND, args={"shards": states, "model": identity},
                      overwrite=rebuild, flag="overwrite=True"):
        _build(folder, paths, states, loaded, identity, spec, batch_size, max_image_pixels, progress)
    return _open(folder)


def _build(folder: Path, paths: Sequence[Path], states: list[dict[str, Any]], loaded: LoadedModel,
           identity: dict[str, Any], spec: str, batch_size: int, max_image_pixels: int, progress: bool) -> None:
    """Embed the shards' figures into the (locked) index folder: spill, then move each file into place."""
    from tqdm.auto import tqdm

    decode = SampleDecoder(loaded.preprocess, required=(K.IMAGE, K.TEXT), text_choice="first",
                           max_image_pixels=max_image_pixels)
    skipped: Counter[str] = Counter()
    examples: dict[str, str] = {}
    count, dim, line_start = 0, 0, 0
    with tempfile.TemporaryDirectory(dir=folder, prefix=".figure-index-") as scratch_dir:
        scratch = Path(scratch_dir)
        spill_path, offsets_path = scratch / "embeddings.f16", scratch / "offsets.u64"
        with (open(spill_path, "wb") as spill, open(offsets_path, "wb") as offsets_file,
              atomic_output(folder / FIGURES_NAME) as figures_tmp, open(figures_tmp, "wb") as lines,
              tqdm(desc="figure index", unit="figure", disable=not progress) as bar):
            batch: list[torch.Tensor] = []
            pending: list[bytes] = []

            def flush() -> None:
                nonlocal count, dim, line_start
                features = loaded.encode_images(torch.stack(batch), batch_size=len(batch)).numpy()
                dim = features.shape[1]
                spill.write(features.astype(np.float16).tobytes())
                starts = np.cumsum([0] + [len(p) for p in pending[:-1]], dtype=np.uint64) + np.uint64(line_start)
                offsets_file.write(starts.astype(np.uint64).tobytes())
                for encoded in pending:
                    lines.write(encoded)
                    line_start += len(encoded)
                count += len(batch)
                bar.update(len(batch))
                batch.clear()
                pending.clear()

            for shard_no, path in enumerate(paths):
                locations = _member_locations(path)
                tally = CorruptTally()
                for raw in iter_shard(str(path), tally):
                    key = raw.get(K.KEY, "")
                    try:
                        sample = decode(raw)
                    except CorruptSampleError as e:
                        skipped[e.reason] += 1
                        examples.setdefault(e.reason, f"{path} key={key}: {e.detail}")
                        continue
                    member = next(s for s in _IMAGE_SUFFIXES if s in raw)
                    offset, size = locations.get((key, member), (-1, len(raw[member])))
                    meta = sample.get(K.META) or {}
                    article = meta.get("article")
                    record = {"shard": shard_no, "key": key, "caption": sample[K.TEXT],
                              "article": article if isinstance(article, str) else "", "member": member,
                              "offset": offset, "size": size}
                    batch.append(sample[K.IMAGE])
                    pending.append((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
                    if len(batch) == batch_size:
                        flush()
                for reason, n in tally.counts.items():
                    skipped[reason] += n
                    examples.setdefault(reason, str(tally.examples.get(reason, "")))
            if batch:
                flush()
            if count == 0:
                many = len(paths) > 1
                inputs = f"{len(paths)} shard{'s' if many else ''} ({paths[0]}{', ...' if many else ''})"
                raise NothingWrittenError.from_counts(COMMAND, "figures", inputs, skipped, examples)
        spilled = np.memmap(spill_path, dtype=np.float16, mode="r", shape=(count, dim))
        with atomic_output(folder / EMBEDDINGS_NAME) as tmp:
            target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(count, dim))
            for start in range(0, count, CHUNK_ROWS):
                target[start:start + CHUNK_ROWS] = spilled[start:start + CHUNK_ROWS]
            target.flush()
            del target
        del spilled
        with atomic_output(folder / OFFSETS_NAME) as tmp:
            np.save(tmp, np.fromfile(offsets_path, dtype=np.uint64), allow_pickle=False)
    meta = {"version": FORMAT_VERSION, "figures": count, "dim": dim, "model": identity, "model_spec": spec,
            "shards": states, "skipped": dict(sorted(skipped.items())), "skipped_examples": examples,
            "figures_bytes": line_start}
    atomic_write_text(folder / INDEX_NAME, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    if skipped:
        counts = ", ".join(f"{reason}: {n}" for reason, n in sorted(skipped.items()))
        warnings.warn(f"{COMMAND}: skipped {sum(skipped.values())} figure(s) that cannot be read ({counts}; "
                      f"e.g. {examples[min(skipped)]})", stacklevel=3)


# =========================================================================== searching
def search_figures(
    index: FigureIndex | str | os.PathLike,
    query: str,
    model: ModelLike,
    *,
    k: int = 8,
    device: str | torch.device = "cpu",
) -> list[FigureHit]:
    """The ``k`` figures whose image embeddings are closest (cosine) to the query's text embedding.

    Scores are computed a chunk of rows at a time from the memory-mapped embeddings; ties keep the
    index's row order.

    Args:
        index: an index from :func:`build_figure_index`, or its folder.
        query: the phrase to search for.
        model: the model the index was built with, in any spelling.
        k: how many figures to return (fewer when the index holds fewer).
        device: where the model runs.

    Returns:
        The hits, best first (``rank`` 1, 2, ...).

    Raises:
        InputError: an empty query, ``k`` not a positive integer, or a model other than the index's.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer; got {k!r}")
    if not isinstance(query, str) or not query.strip():
        raise InputError("the query is empty: give a phrase to search for")
    index = index if isinstance(index, FigureIndex) else load_figure_index(index)
    loaded = resolve_model(model, device=device)
    identity = model_fingerprint(loaded)
    if identity != index.model:
        spec = str((getattr(loaded.model, "domainclip_source", None) or {}).get("spec", loaded.spec))
        raise InputError(f"figure index {index.folder} was built with {_describe(index.model, index.model_spec)}, "
                         f"not {_describe(identity, spec)}: search it with that model, or build an index for "
                         "this one (build_figure_index with another index_dir or overwrite=True)")
    text = loaded.encode_text([query])[0].numpy().astype(np.float32)
    if text.shape[0] != index.embeddings.shape[1]:
        raise InputError(f"the model's text embeddings have {text.shape[0]} dimensions, the index's figures "
                         f"{index.embeddings.shape[1]}")
    rows, scores = _top_k(index.embeddings, text, k)
    return [FigureHit(rank=i + 1, score=float(s), query=query, figure=index.figure(int(r)))
            for i, (r, s) in enumerate(zip(rows, scores))]


def _top_k(embeddings: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores of the ``k`` best rows, best first (ties: lower row first), one chunk in memory at a time."""
    best_rows = np.empty(0, dtype=np.int64)
    best_scores = np.empty(0, dtype=np.float32)
    for start in range(0, embeddings.shape[0], CHUNK_ROWS):
        scores = np.asarray(embeddings[start:start + CHUNK_ROWS], dtype=np.float32) @ query
        rows = np.arange(start, start + len(scores), dtype=np.int64)
        best_rows, best_scores = np.concatenate([best_rows, rows]), np.concatenate([best_scores, scores])
        order = np.lexsort((best_rows, -best_scores))[:k]
        best_rows, best_scores = best_rows[order], best_scores[order]
    return best_rows, best_scores


def plot_figure_hits(hits: Sequence[FigureHit], *, ncols: int = 4, title: str | None = None) -> Figure:
    """The hits' figures in a grid, each with its rank, score and caption beneath.

    Args:
        hits: the hits of :func:`search_figures`.
        ncols: columns of the grid.
        title: the figure's title (default: the query).

    Raises:
        InputError: no hits, or ``ncols`` not a positive integer.
    """
    if not hits:
        raise InputError("no hits to plot")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise InputError(f"ncols must be a positive integer; got {ncols!r}")
    images = [hit.load_image() for hit in hits]
    captions = [f"#{hit.rank}  score {hit.score:.3f}  {_short_caption(hit.caption)}" for hit in hits]
    return image_grid(images, captions, ncols=ncols, title=title if title is not None else f'"{hits[0].query}"',
                      wrap=34)


def _short_caption(caption: str, words: int = 24) -> str:
    """A caption's first ``words`` words (the grid shows three lines of it)."""
    parts = caption.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")

