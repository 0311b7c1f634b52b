"""Concept annotation of figure shards: embed, PCA, k-means, and a figure type for every cluster.

BIOMEDICA annotates its figures by embedding them, reducing the embeddings with PCA, clustering them
with k-means and having each cluster labelled with a concept of its taxonomy.
:func:`annotate_concepts` (``domainclip prepare biomed concepts``) does the same with any domainclip
model and labels clusters with the figure types of :mod:`domainclip.domains.biomed.taxonomy`
(or a taxonomy file), in one of two ways:

* **zero-shot** (no ``prototypes``): a type's score for a cluster is the mean, over the cluster's
  figures and the taxonomy's prompt templates, of the cosine similarity between the figure and the
  filled prompt; the cluster takes the type of highest score;
* **prototypes** (``prototypes=FOLDER`` with one sub-folder of example images per type name): a
  type's centroid is the normalised mean embedding of its examples, and the cluster takes the type
  whose centroid is nearest (highest mean cosine similarity) to the cluster's figures. Only types
  with examples can be chosen.

A figure whose own best type differs from its cluster's label by more than ``override_margin`` (in
the same scores: its own similarity to its best type minus its similarity to the cluster's type)
takes its own type, and its ``concept`` says so (``"from": "figure"``); the others keep the
cluster's (``"from": "cluster"``). k-means clusters are coarse: a few charts that land in a
microscopy cluster would otherwise be mislabelled with certainty. ``override_margin: 2`` (the
widest gap two cosine similarities can have) turns this off.

Memory does not grow with the number of figures. Four streaming passes:

1. **embed**: figures are decoded and embedded in batches; the L2-normalised embeddings go to a
   float16 scratch file on disk (``D * 2`` bytes a figure, next to the output, deleted at the
   end), :class:`~sklearn.decomposition.IncrementalPCA` is fitted chunk by chunk (``chunk_rows``
   figures at a time), and a seeded reservoir keeps the row numbers of ``kmeans_sample`` figures;
2. **cluster**: :class:`~sklearn.cluster.MiniBatchKMeans` is fitted on the reduced embeddings of
   that uniform sample (shards written in topic order would bias a fit on the first chunks), then,
   when there are more figures than the sample, refined by one ``partial_fit`` pass over all
   chunks in a seeded order;
3. **assign**: every figure gets its cluster (kept in a scratch file), and per cluster the sum of
   its embeddings, from which the cluster scores follow exactly (they are means of dot products);
4. **write**: the input shards are read again and copied member by member, with
   ``json["concept"] = {"cluster", "label", "score", "from"}`` added; ``score`` is the figure's own
   similarity to its label (mean prompt similarity, or similarity to the prototype centroid).

Outputs: ``figures-NNNNNN.tar`` shards with the same keys and members, ``articles.jsonl`` copied
from the input folders, ``concepts-report.json`` (settings, per-cluster size, label and scores,
the distribution, skipped figures by reason), ``concepts-report.md`` (the distribution as a table:
figures, share and clusters per type) and ``concepts-distribution.png`` (a bar chart).
"""

from __future__ import annotations

import io
import itertools
import json
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.reader import iter_shard
from domainclip.core.data.writer import FIXED_MTIME, ShardWriter, write_json_atomic
from domainclip.core.errors import InputError, InputNotFoundError, NothingWrittenError
from domainclip.core.io import atomic_write_text
from domainclip.core.options import NonNegativeInt, PositiveInt, Range, entry_point
from domainclip.domains.biomed.shards import copy_articles, input_shards
from domainclip.domains.biomed.taxonomy import FIGURE_TYPES, TEMPLATES, FigureType

__all__ = [
    "IMAGE_MEMBERS",
    "REPORT_NAME",
    "Taxonomy",
    "annotate_concepts",
    "distribution_table",
    "load_taxonomy",
    "type_vectors",
]

#: Image members a figure sample may hold, in the order they are looked for.
IMAGE_MEMBERS = ("png", "jpg", "jpeg", "webp", "tif", "tiff")
#: Report file names written into the output folder.
REPORT_NAME = "concepts-report"
_FIELDS = ("name", "words")
_PROTOTYPE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


# =========================================================================== taxonomy
@dataclass(frozen=True)
class Taxonomy:
    """The figure types clusters are labelled with, and the zero-shot prompt templates.

    Args:
        types: the types, in label order.
        templates: prompt templates with one ``{}`` that takes a type's words.
    """

    types: tuple[FigureType, ...]
    templates: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        """Type names in label order."""
        return [t.name for t in self.types]


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """The built-in taxonomy, or one read from a JSON file.

    The file holds ``{"types": [{"name", "words", "description", "synonyms"}, ...], "templates": ["{}.", ...]}``;
    ``templates`` may be left out (the built-in ones are used), ``description`` and ``synonyms`` (a list
    of other names in words, averaged with ``words``) too.

    Args:
        path: the JSON file; ``None`` for :data:`~domainclip.domains.biomed.taxonomy.FIGURE_TYPES`.

    Raises:
        InputNotFoundError: the file does not exist.
        InputError: the file is not such JSON (names the problem).
    """
    if path is None:
        return Taxonomy(FIGURE_TYPES, TEMPLATES)
    if not Path(path).is_file():
        raise InputNotFoundError(f"taxonomy file {path} does not exist")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"taxonomy file {path} is not JSON: {e}") from None
    where = f"taxonomy file {path}"
    if not isinstance(data, dict) or not isinstance(data.get("types"), list) or not data["types"]:
        raise InputError(f"{where}: expected an object with a non-empty list under 'types'")
    types = []
    for i, entry in enumerate(data["types"]):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) and entry[k] for k in _FIELDS):
            raise InputError(f"{where}: types[{i}] needs non-empty strings 'name' and 'words'")
        synonyms = entry.get("synonyms", [])
        if not isinstance(synonyms, list) or not all(isinstance(w, str) and w for w in synonyms):
            raise InputError(f"{where}: types[{i}].synonyms must be a list of non-empty strings")
        types.append(FigureType(entry["name"], entry["words"], str(entry.get("description", "")), tuple(synonyms)))
    names = [t.name for t in types]
    repeated = sorted(n for n, c in Counter(names).items() if c > 1)
    if repeated:
        raise InputError(f"{where}: type names repeat: {', '.join(repeated)}")
    templates = data.get("templates", list(TEMPLATES))
    if (
        not isinstance(templates, list)
        or not templates
        or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates)
    ):
        raise InputError(f"{where}: 'templates' must be a non-empty list of strings with one {{}} each")
    return Taxonomy(tuple(types), tuple(templates))


# =========================================================================== reading figures
def _decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """RGB image of a member; its size is checked from the header before any pixel is decoded."""
    try:
        opened = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:  # its message names a BytesIO address, different every run
        raise ValueError("not in an image format PIL reads") from None
    with opened as image:
        width, height = image.size
        if width * height > max_pixels:
            raise ValueError(f"{width}x{height} pixels is more than max_image_pixels={max_pixels}")
        return image.convert("RGB")


@dataclass
class _Figure:
    """A figure read in pass 1 (decoded) or pass 4 (its raw members)."""

    url: str
    raw: dict[str, Any]
    meta: dict[str, Any]
    image: Image.Image | None = None


class _Skips:
    """Figures skipped, by reason, with an example each, and which ones (few: bad items only)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.items: set[tuple[str, str]] = set()

    def add(self, reason: str, url: str, key: str | None, detail: str) -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, f"{url} key={key}: {detail}")
        if key is not None:
            self.items.add((url, key))

    def absorb(self, tally: CorruptTally) -> None:
        for reason, count in tally.counts.items():
            self.counts[reason] += count
            if reason in tally.examples:
                self.examples.setdefault(reason, str(tally.examples[reason]))


def _figures(paths: Sequence[Path], skips: _Skips, max_pixels: int, *, decode: bool) -> Iterator[_Figure]:
    """The usable figures of the shards, in order.

    With ``decode`` (pass 1) each figure's json and image are read and the unusable ones are counted
    in ``skips``; without (pass 4) the figures ``skips`` lists are left out and the others are
    yielded with their raw members only.
    """
    for path in paths:
        url = str(path)
        tally = CorruptTally()
        for raw in iter_shard(url, tally):
            key = raw.get("__key__")
            if not decode:
                if (url, key) not in skips.items:
                    yield _Figure(url, raw, json.loads(raw["json"]))
                continue
            try:
                meta = json.loads(raw["json"]) if "json" in raw else None
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                skips.add("bad_json", url, key, f".json is not JSON: {e}")
                continue
            if not isinstance(meta, dict):
                skips.add("bad_json", url, key, "no .json object (the figure's fields) to add the concept to")
                continue
            member = next((m for m in IMAGE_MEMBERS if m in raw), None)
            if member is None:
                skips.add("no_image", url, key, f"no image member ({', '.join(IMAGE_MEMBERS)})")
                continue
            try:
                image = _decode_image(raw[member], max_pixels)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                skips.add("bad_image", url, key, f".{member} cannot be decoded: {e}")
                continue
            yield _Figure(url, raw, meta, image)
        if decode:
            skips.absorb(tally)


def _batches(figures: Iterator[_Figure], preprocess: Any, batch_size: int) -> Iterator[tuple[list[str], torch.Tensor]]:
    keys: list[str] = []
    tensors: list[torch.Tensor] = []
    for figure in figures:
        keys.append(figure.raw["__key__"])
        tensors.append(preprocess(figure.image))
        if len(keys) == batch_size:
            yield keys, torch.stack(tensors)
            keys, tensors = [], []
    if keys:
        yield keys, torch.stack(tensors)


def _embed_images(model: torch.nn.Module, images: torch.Tensor, device: str) -> np.ndarray:
    from domainclip.core.eval.features import encode_inputs

    with torch.no_grad():
        return encode_inputs(model, images.to(device)).float().cpu().numpy()


# =========================================================================== type vectors
def type_vectors(
    model: torch.nn.Module,
    tokenizer: Any,
    preprocess: Any,
    taxonomy: Taxonomy,
    prototypes: Path | None,
    *,
    device: str = "cpu",
    batch_size: int = 64,
) -> tuple[np.ndarray, list[str], dict[str, int]]:
    """One vector per candidate type: a figure's (or cluster mean's) dot product with it is its score.

    Zero-shot: the mean of the L2-normalised embeddings of the type's filled templates (not
    renormalised, so the dot product is the mean similarity over the templates). Prototypes: the
    normalised mean of the embeddings of the type's example images.

    Args:
        model: the model (image and text towers).
        tokenizer: its tokenizer (zero-shot).
        preprocess: its image transform (prototypes).
        taxonomy: the types and templates.
        prototypes: a folder with one sub-folder of images per type name, or ``None`` for zero-shot.
        device: where the model runs.
        batch_size: images per forward.

    Returns:
        ``(vectors (T, D), the T type names, prototype images per type)``.

    Raises:
        InputNotFoundError: ``prototypes`` does not exist.
        InputError: a sub-folder that is no type name (the known names are listed), no images
            at all, or an example image that cannot be read.
    """
    from domainclip.core.eval.features import encode_texts

    if prototypes is None:
        per_type = [t.prompts(taxonomy.templates) for t in taxonomy.types]
        embedded = encode_texts(model, tokenizer, [p for texts in per_type for p in texts], device).numpy()
        bounds = np.cumsum([0] + [len(texts) for texts in per_type])
        vectors = np.stack([embedded[a:b].astype(np.float64).mean(0) for a, b in itertools.pairwise(bounds)])
        return vectors, taxonomy.names, {}
    folder = Path(prototypes)
    if not folder.is_dir():
        raise InputNotFoundError(f"prototypes folder {folder} does not exist")
    known = set(taxonomy.names)
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir())
    unknown = [p.name for p in subfolders if p.name not in known]
    if unknown:
        raise InputError(
            f"prototypes folder {folder}: {', '.join(unknown)} is no figure type of the taxonomy; "
            f"sub-folders must be named after types: {', '.join(taxonomy.names)}"
        )
    names, vectors, counts = [], [], {}
    for name in taxonomy.names:  # taxonomy order
        if not (folder / name).is_dir():
            continue
        files = sorted(p for p in (folder / name).rglob("*") if p.is_file() and p.suffix.lower() in _PROTOTYPE_SUFFIXES)
        if not files:
            continue
        images = []
        for file in files:
            try:
                images.append(preprocess(_decode_image(file.read_bytes(), Image.MAX_IMAGE_PIXELS or 1 << 62)))
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                raise InputError(f"prototype image {file} cannot be read: {e}") from None
        features = np.concatenate(
            [
                _embed_images(model, torch.stack(images[i : i + batch_size]), device)
                for i in range(0, len(images), batch_size)
            ]
        ).astype(np.float64)
        centroid = features.mean(0)
        vectors.append(centroid / max(np.linalg.norm(centroid), 1e-12))
        names.append(name)
        counts[name] = len(files)
    if not names:
        raise InputError(
            f"prototypes folder {folder} holds no example images ({', '.join(_PROTOTYPE_SUFFIXES)}) in "
            f"sub-folders named after types: {', '.join(taxonomy.names)}"
        )
    return np.stack(vectors), names, counts


# =========================================================================== reporting
def distribution_table(distribution: dict[str, dict[str, Any]]) -> str:
    """The distribution as a markdown table: figures, share and clusters per type, and the total.

    Args:
        distribution: type -> ``{"figures", "share", "clusters"}`` (as in ``concepts-report.json``).
    """
    lines = ["| figure type | figures | share | clusters |", "|---|---:|---:|---:|"]
    for name, row in distribution.items():
        lines.append(f"| {name} | {row['figures']} | {row['share']:.1%} | {row['clusters']} |")
    total = sum(r["figures"] for r in distribution.values())
    clusters = sum(r["clusters"] for r in distribution.values())
    lines.append(f"| **total** | {total} | {1 if total else 0:.1%} | {clusters} |")
    return "\n".join(lines) + "\n"


def _bar_chart(distribution: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(distribution)
    counts = [distribution[n]["figures"] for n in names]
    fig = Figure(figsize=(max(6.0, 0.8 * len(names) + 2), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    bars = ax.bar(range(len(names)), counts, color="tab:blue")
    for bar, name in zip(bars, names):
        share = distribution[name]["share"]
        ax.annotate(f"{bar.get_height():.0f} ({share:.0%})", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names], rotation=30, ha="right")
    ax.set_ylabel("figures")
    ax.set_ylim(0, max(counts + [1]) * 1.15)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


# =========================================================================== the command
def _chunks(rows: np.ndarray, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, float32 copy of rows[start:start + size])`` over an on-disk array."""
    for start in range(0, len(rows), size):
        yield start, np.asarray(rows[start : start + size], dtype=np.float32)


def _key_check(key: str) -> int:
    return zlib.crc32(key.encode("utf-8"))


@entry_point
def annotate_concepts(
    out: Path,
    shards: list[Path],
    *,
    model: str,
    taxonomy: Path | None = None,
    prototypes: Path | None = None,
    clusters: PositiveInt = 100,
    pca_dim: PositiveInt = 32,
    override_margin: Annotated[float, Range(0, 2)] = 0.1,
    kmeans_sample: PositiveInt = 100_000,
    chunk_rows: PositiveInt = 8192,
    seed: NonNegativeInt = 0,
    batch_size: PositiveInt = 64,
    device: str = "cpu",
    max_image_pixels: PositiveInt = 50_000_000,
    max_count: PositiveInt = 1000,
    progress: bool = True,
) -> dict[str, Any]:
    """Label every figure with a figure type: embed, reduce with PCA, cluster with k-means, name the clusters.

    Args:
        out: output folder: shards with json["concept"], articles.jsonl, concepts-report.json/.md and
            concepts-distribution.png.
        shards: figure shards (files, folders searched for .tar, or glob patterns), read in the order given.
        model: the model that embeds figures: a run folder, exported model folder, hf-hub: id, zoo:NAME or
            registry name.
        taxonomy: a JSON file of figure types and prompt templates (default: the built-in taxonomy).
        prototypes: a folder with one sub-folder of example images per type name; clusters take the
            type of the nearest prototype centroid (default: zero-shot prompts).
        clusters: k-means clusters (at most one per figure).
        pca_dim: dimensions the embeddings are reduced to before clustering.
        override_margin: a figure takes its own best type instead of its cluster's when its score
            for it is higher by more than this (2, the widest gap of cosine similarities: never).
        kmeans_sample: figures, drawn uniformly, that k-means is first fitted on (bounds memory; at
            least ``clusters``).
        chunk_rows: figures per PCA and k-means chunk (bounds memory).
        seed: seed of the sample and of k-means.
        batch_size: figures per forward.
        device: where the model runs (cpu, cuda, cuda:1).
        max_image_pixels: a larger figure is skipped as bad_image before it is decoded.
        max_count: figures per output shard.
        progress: show progress bars.

    Returns:
        The report (also in ``concepts-report.json``): ``figures``, ``clusters``, ``pca_dim``,
        ``distribution`` (type -> figures, share, clusters), ``per_cluster``, ``overridden``,
        ``skipped`` by reason, ``shards``, ``articles`` and the settings.

    Raises:
        InputError: no shard found, an input inside ``out``, a bad taxonomy or prototypes folder.
        NothingWrittenError: no figure could be read.
    """
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.decomposition import IncrementalPCA
    from tqdm.auto import tqdm

    from domainclip.core.models.loading import load_model

    paths = input_shards(shards, out)
    tax = load_taxonomy(taxonomy)
    embedder, preprocess, tokenizer = load_model(model, device=device)
    vectors, type_names, prototype_counts = type_vectors(
        embedder, tokenizer, preprocess, tax, prototypes, device=device, batch_size=batch_size
    )
    out.mkdir(parents=True, exist_ok=True)
    skips = _Skips()
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(dir=out, prefix=".concepts-") as scratch_dir:
        scratch = Path(scratch_dir)
        # ---- pass 1: embed, spill float16 rows, fit PCA in chunks, keep a uniform sample of rows
        n = 0
        dim = 0
        pca: IncrementalPCA | None = None
        pca_rows = 0
        pca_chunks = 0
        pending: list[np.ndarray] = []
        reservoir: list[int] = []
        capacity = max(kmeans_sample, clusters)  # k-means needs at least as many rows as clusters
        flush = max(chunk_rows, pca_dim)  # IncrementalPCA needs at least n_components rows a chunk
        bar = tqdm(desc="concepts: embedding figures", unit="figure", disable=not progress)

        def fit_pca(rows: np.ndarray) -> None:
            nonlocal pca, pca_rows, pca_chunks
            if pca is None:
                pca = IncrementalPCA(n_components=min(pca_dim, rows.shape[1], rows.shape[0]))
            if rows.shape[0] >= pca.n_components:
                pca.partial_fit(rows)
                pca_rows += rows.shape[0]
                pca_chunks += 1

        # crc32 of each row's key (4 bytes a figure, on disk), to match the figures of pass 4 to pass 1
        with open(scratch / "features.f16", "wb") as spill, open(scratch / "keys.u32", "wb") as key_spill:
            for keys, images in _batches(_figures(paths, skips, max_image_pixels, decode=True), preprocess, batch_size):
                features = _embed_images(embedder, images, device)
                dim = features.shape[1]
                spill.write(features.astype(np.float16).tobytes())
                for row in range(n, n + len(keys)):  # Algorithm R over row numbers
                    if len(reservoir) < capacity:
                        reservoir.append(row)
                    else:
                        j = int(rng.integers(row + 1))
                        if j < capacity:
                            reservoir[j] = row
                key_spill.write(np.array([_key_check(k) for k in keys], dtype=np.uint32).tobytes())
                n += len(keys)
                pending.append(features)
                if sum(len(p) for p in pending) >= flush:
                    buffered = np.concatenate(pending)
                    while len(buffered) >= flush:
                        fit_pca(buffered[:flush])
                        buffered = buffered[flush:]
                    pending = [buffered]
                bar.update(len(keys))
            if pending and sum(len(p) for p in pending):
                fit_pca(np.concatenate(pending))  # rows fewer than the PCA dimensions are left out of the fit
                pending = []
        bar.close()
        summary_skipped = dict(sorted(skips.counts.items()))
        if n == 0:
            write_json_atomic(out / f"{REPORT_NAME}.json", {"figures": 0, "skipped": summary_skipped})
            many = len(paths) > 1
            inputs = f"{len(paths)} shard{'s' if many else ''} ({paths[0]}{', ...' if many else ''})"
            raise NothingWrittenError.from_counts("biomed/concepts", "figures", inputs, skips.counts, skips.examples)
        assert pca is not None
        features_all = np.memmap(scratch / "features.f16", dtype=np.float16, mode="r", shape=(n, dim))
        checks = np.memmap(scratch / "keys.u32", dtype=np.uint32, mode="r", shape=(n,))

        # ---- pass 2: k-means on the reduced sample, refined over every chunk when there are more figures
        k = min(clusters, n)
        sample_rows = np.sort(np.asarray(reservoir, dtype=np.int64))
        sample = pca.transform(np.asarray(features_all[sample_rows], dtype=np.float32))
        kmeans = MiniBatchKMeans(
            n_clusters=k, random_state=seed, n_init=3, batch_size=min(1024, max(k, len(sample_rows)))
        )
        kmeans.fit(sample)
        refined = n > len(sample_rows)
        if refined:
            order = rng.permutation(-(-n // chunk_rows))
            for c in order:
                start = int(c) * chunk_rows
                reduced = pca.transform(np.asarray(features_all[start : start + chunk_rows], dtype=np.float32))
                if len(reduced) >= k:  # MiniBatchKMeans.partial_fit needs at least k rows
                    kmeans.partial_fit(reduced)

        # ---- pass 3: assign every figure; cluster sums give the cluster scores exactly
        assignment = np.memmap(scratch / "clusters.i32", dtype=np.int32, mode="w+", shape=(n,))
        sums = np.zeros((k, dim), dtype=np.float64)
        sizes = np.zeros(k, dtype=np.int64)
        for start, block in _chunks(features_all, chunk_rows):
            labels = kmeans.predict(pca.transform(block)).astype(np.int32)
            assignment[start : start + len(block)] = labels
            np.add.at(sums, labels, block.astype(np.float64))
            sizes += np.bincount(labels, minlength=k)
        assignment.flush()
        used = sizes > 0
        cluster_scores = np.where(used[:, None], (sums / np.maximum(sizes, 1)[:, None]) @ vectors.T, -np.inf)
        cluster_label = cluster_scores.argmax(1)

        # ---- pass 4: copy the shards with json["concept"]
        per_type = Counter()
        overridden = 0
        row = 0
        bar = tqdm(total=n, desc="concepts: writing shards", unit="figure", disable=not progress)
        with ShardWriter(out, prefix="figures", max_count=max_count, mtime=FIXED_MTIME) as writer:
            for figure in _figures(paths, skips, max_image_pixels, decode=False):
                key = figure.raw["__key__"]
                if row >= n or checks[row] != _key_check(key):
                    raise InputError(
                        f"the shards changed while they were read: {figure.url} key={key} is not the figure "
                        "embedded at this place; run the command again"
                    )
                cluster = int(assignment[row])
                own = np.asarray(features_all[row], dtype=np.float64) @ vectors.T
                label = int(cluster_label[cluster])
                origin = "cluster"
                best = int(own.argmax())
                if best != label and own[best] - own[label] > override_margin:
                    label, origin = best, "figure"
                    overridden += 1
                concept = {"cluster": cluster, "label": type_names[label], "score": round(float(own[label]), 6),
                           "from": origin}
                sample = {"__key__": key}
                for suffix, data in figure.raw.items():
                    if not suffix.startswith("__") and suffix != "json":
                        sample[suffix] = bytes(data)
                sample["json"] = json.dumps({**figure.meta, "concept": concept}, ensure_ascii=False).encode("utf-8")
                writer.write(sample)
                per_type[type_names[label]] += 1
                row += 1
                bar.update(1)
        bar.close()
        if row != n:
            raise InputError(f"the shards changed while they were read: {n} figures embedded, {row} found again")
        del features_all, assignment, checks
    articles = copy_articles(paths, shards, out)
    clusters_per_type = Counter(type_names[int(cluster_label[c])] for c in np.flatnonzero(used))
    distribution = {
        name: {"figures": per_type[name], "share": per_type[name] / n, "clusters": clusters_per_type[name]}
        for name in tax.names
        if name in type_names or per_type[name]
    }
    mode = "prototypes" if prototypes is not None else "zero_shot"
    report = {
        "out": str(out),
        "model": model,
        "mode": mode,
        "types": type_names,
        "prototypes": prototype_counts,
        "figures": n,
        "clusters": int(used.sum()),
        "clusters_requested": clusters,
        "pca_dim": int(pca.n_components_),
        "pca_explained_variance": round(float(pca.explained_variance_ratio_.sum()), 6),
        "pca_rows_fitted": pca_rows,
        "pca_chunks": pca_chunks,
        "kmeans_sample": int(len(sample_rows)),
        "kmeans_refined": refined,
        "override_margin": override_margin,
        "overridden": overridden,
        "distribution": distribution,
        "per_cluster": [
            {
                "cluster": c,
                "size": int(sizes[c]),
                "label": type_names[int(cluster_label[c])],
                "scores": {name: round(float(cluster_scores[c, t]), 6) for t, name in enumerate(type_names)},
            }
            for c in range(k)
            if used[c]
        ],
        "skipped": summary_skipped,
        "skipped_examples": skips.examples,
        "shards": [p.name for p in writer.written],
        "input_shards": len(paths),
        "articles": articles,
        "seed": seed,
        "chunk_rows": chunk_rows,
    }
    write_json_atomic(out / f"{REPORT_NAME}.json", report)
    how = "prototype centroids" if mode == "prototypes" else "zero-shot prompts"
    skipped_text = ", ".join(f"{r}: {c}" for r, c in summary_skipped.items()) or "none"
    markdown = (
        f"# Figure types\n\n{n} figures, {report['clusters']} k-means clusters on {report['pca_dim']} PCA "
        f"dimensions, labelled by {how} with `{model}`; {overridden} figures took their own type "
        f"(override margin {override_margin}). Skipped: "
        f"{skipped_text}.\n\n" + distribution_table(distribution)
    )
    atomic_write_text(out / f"{REPORT_NAME}.md", markdown)
    _bar_chart(distribution, out / "concepts-distribution.png", f"figure types of {n} figures ({how})")
    return report
