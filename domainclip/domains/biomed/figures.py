"""``domainclip prepare biomed figures``: PMC articles to figure-caption shards, one sample per figure.

``domainclip prepare biomed figures --out figs/ --articles oa_packages/ --licenses "CC BY" CC0 --workers 4``
``domainclip prepare biomed figures --out figs/ --pmc s3://pmc-oa-opendata --listing articles.txt``

Articles come from local folders and packages (:func:`~domainclip.domains.biomed.sources.iter_local_articles`)
and from the PMC Cloud Service (:func:`~domainclip.domains.biomed.pmc_cloud.iter_pmc_cloud`). Each
is parsed safely (:mod:`~domainclip.domains.biomed.jats`) and each of its figures whose graphic is
found becomes one sample; worker processes parse and re-encode (``workers``) while this process
writes, in article order, so the shards are the same bytes for any number of workers.

Output, in ``out``:

* ``figures-000000.tar``, ... (``figures-rNN-000000.tar`` for the articles a resumed run adds), one
  sample per figure: ``__key__`` ``PMC<id>_<figure id>`` made safe (:func:`~domainclip.core.io.safe_key`);
  the image under ``png`` or ``jpg`` (``image_format`` ``auto``: a PNG stays PNG, a JPEG stays JPEG,
  other formats become PNG when they have at most 256 colours or a palette, else JPEG quality 95; an
  8-bit PNG without transparency or an RGB/grey JPEG within ``max_side`` is stored byte for byte
  after a full check; a larger one is scaled down to ``max_side`` on its longest side; transparency
  is flattened onto white, CMYK becomes RGB, 16-bit and float images are stretched to 8-bit grey);
  ``txt`` the full caption (label, title, paragraphs, inline formatting flattened); ``json`` the
  figure's fields: ``article``, ``figure_id``, ``label``, ``title``, ``caption`` (the ``txt``),
  ``paragraphs``, ``graphic`` (the href), ``cited_by`` (the body paragraphs citing it), ``license``
  (normalised) and ``fig_group``.
* ``articles.jsonl``: one line per article with figures written: ``pmcid, pmid, doi, title, journal,
  year, license, license_url, keywords, mesh, figures`` (figures written), plus ``key`` and
  ``origin`` (its source record).
* ``figures-report.json``: every article and figure skipped, with reason and detail, and the
  articles dropped by the licence filter; ``figures-summary.json``: the counts.
* ``figures-progress.jsonl``: the ledger a rerun continues from. A line is added when a shard is
  closed, naming the shard, the samples in it by article, and the articles all of whose samples
  are now in closed shards (with their outcome). A killed run leaves shards that no line names (or
  a temporary file); the rerun deletes them and redoes exactly the articles not recorded as done,
  leaving out the samples of a half-written article that closed shards already hold. No sample is
  written twice.

Skip reasons, articles: those of the sources (``bad_archive``, ``unsafe_archive``, ``no_xml``,
``unreadable``, ``too_large``, the PMC Cloud's ``missing_file``, ``network``, ...), ``bad_xml``,
``hostile_xml``, ``duplicate_article`` (an article id already written from another record);
figures: ``no_graphic``, ``missing_graphic``, ``unreadable_image``, ``no_caption``,
``duplicate_figure_id``. An article whose licence is not kept is counted under its licence family.
Articles skipped for a transient reason (``network``, ``http_error``, ``checksum``) are tried
again by a rerun.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from domainclip.core.errors import InputError, NothingWrittenError
from domainclip.core.io import safe_key
from domainclip.core.options import PositiveInt, Range, entry_point
from domainclip.core.prepare import resumable
from domainclip.domains.biomed.jats import LICENSE_FAMILIES, JatsError, license_family, normalise_license, parse_article
from domainclip.domains.biomed.sources import ArticleRecord, SkippedArticle, resolve_media

__all__ = [
    "ARTICLES_NAME",
    "PROGRESS_NAME",
    "REPORT_NAME",
    "SUMMARY_NAME",
    "TRANSIENT_REASONS",
    "encode_figure_image",
    "prepare_figures",
    "process_article",
]

#: Files of the output folder besides the shards.
ARTICLES_NAME, PROGRESS_NAME = "articles.jsonl", "figures-progress.jsonl"
REPORT_NAME, SUMMARY_NAME = "figures-report.json", "figures-summary.json"
#: Skip reasons of an article that a rerun tries again (they are not recorded as done).
TRANSIENT_REASONS = frozenset({"network", "http_error", "checksum"})
#: Shard name prefix of the first run.
PREFIX = "figures"
#: JPEG quality of re-encoded images.
JPEG_QUALITY = 95
#: zlib level of re-encoded PNGs: on figures with few colours, level 3 took half the time of PIL's default 6
#: and gave smaller files.
PNG_COMPRESS_LEVEL = 3
_PMC_KEY = re.compile(r"(PMC\d+)(?:\.\d+)?")
#: Image modes stored as they are in a PNG (others become RGB; transparency is flattened onto white).
_PLAIN_MODES = ("1", "L", "P", "RGB")


class _ImageError(Exception):
    """An image file that cannot be decoded."""


# =========================================================================== one article (in a worker)
@dataclass(frozen=True)
class _Job:
    """What every article is processed with (picklable, for worker processes)."""

    licenses: tuple[str, ...] | None
    max_side: int
    image_format: str


def encode_figure_image(data: bytes, max_side: int, image_format: str = "auto") -> tuple[str, bytes, tuple[int, int]]:
    """Decode a figure file fully and give the image to store: within ``max_side``, as PNG or JPEG.

    Args:
        data: the file's bytes (PNG, JPEG, TIFF, GIF, ... anything PIL reads).
        max_side: longest side of the stored image; larger images are scaled down (Lanczos).
        image_format: ``auto`` (PNG stays PNG, JPEG stays JPEG, others: PNG with at most 256
            colours, else JPEG), ``png`` or ``jpg``.

    Returns:
        ``(suffix, bytes, (width, height))``; the input bytes themselves when the file is already
        within ``max_side`` in the chosen format.

    Raises:
        _ImageError: the file cannot be decoded (truncated, not an image, a decompression bomb).
    """
    import warnings

    from PIL import Image

    errors = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            source, size = image.format, image.size
            if (image_format in ("auto", "png") and source == "PNG" and max(size) <= max_side
                    and image.mode in _PLAIN_MODES and "transparency" not in image.info):
                image.verify()  # kept byte for byte: every chunk's CRC checked, a cut or damaged file refused
                return "png", data, size
            if image_format in ("auto", "jpg") and source == "JPEG" and max(size) <= max_side and image.mode in (
                    "L", "RGB"):
                image.draft(image.mode, (1, 1))  # kept byte for byte: every block decoded at 1/8 scale
                image.load()
                return "jpg", data, size
            if source == "JPEG" and max(size) > 2 * max_side:
                image.draft(image.mode, (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale (still >= max_side)
            image.load()
    except errors as e:
        raise _ImageError(" ".join(str(e).split()) or type(e).__name__) from None
    if image.mode.startswith(("I", "F")):  # 16-bit or float (microscopy TIFFs): stretched to 8-bit grey
        import numpy as np

        array = np.asarray(image, dtype=np.float64)
        low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        image = Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
    if image_format == "auto":
        if source == "PNG":
            image_format = "png"
        elif source == "JPEG":
            image_format = "jpg"
        else:
            few = image.mode in ("1", "P", "PA") or image.getcolors(256) is not None
            image_format = "png" if few else "jpg"
    resized = max(image.size) > max_side
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")  # transparent parts become white (a reader's RGB conversion makes them black)
        image = Image.new("RGB", rgba.size, (255, 255, 255))
        image.paste(rgba, mask=rgba.getchannel("A"))
    elif image.mode not in (("L", "RGB") if image_format == "jpg" else _PLAIN_MODES):
        image = image.convert("RGB")
    if resized:
        if image.mode in ("1", "P"):
            image = image.convert("RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    if image_format == "jpg":
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return image_format, buffer.getvalue(), image.size


def _article_id(record: ArticleRecord, pmcid: str | None) -> str:
    if pmcid:
        return pmcid
    match = _PMC_KEY.fullmatch(record.key)
    return match.group(1) if match else record.key


def _record_license(metadata: dict[str, Any]) -> str | None:
    for name in ("license_code", "license", "licence"):
        value = metadata.get(name)
        if isinstance(value, str) and value.strip():
            return normalise_license(value if "://" in value else None, value)
    return None


def process_article(job: _Job, record: ArticleRecord) -> dict[str, Any]:
    """Parse one article and encode its figures: the samples to write and what was skipped or dropped.

    Args:
        job: the run's options.
        record: the article.

    Returns:
        ``{"key", "origin", "article", "meta", "samples": [{"__key__", "png"|"jpg", "txt", "json"}],
        "skipped_figures": [{"figure_id", "graphic", "reason", "detail"}], "skipped": None | {"reason",
        "detail"}, "dropped_license": None | family, "figures_dropped": n}``.
    """
    result: dict[str, Any] = {"key": record.key, "origin": record.origin, "article": None, "meta": None,
                              "samples": [], "skipped_figures": [], "skipped": None, "dropped_license": None,
                              "figures_dropped": 0}
    try:
        article = parse_article(record.xml, name=record.origin)
    except JatsError as e:
        result["skipped"] = {"reason": e.reason, "detail": str(e)}
        return result
    meta = article.meta
    license = meta.license or _record_license(record.metadata)
    article_id = _article_id(record, meta.pmcid)
    result["article"] = article_id
    result["meta"] = {"pmcid": article_id, "pmid": meta.pmid or record.metadata.get("pmid"), "doi": meta.doi,
                      "title": meta.title, "journal": meta.journal, "year": meta.year, "license": license,
                      "license_url": meta.license_url, "keywords": list(meta.keywords), "mesh": list(meta.mesh)}
    if job.licenses is not None and license_family(license) not in job.licenses:
        result["dropped_license"] = license_family(license)
        result["figures_dropped"] = len(article.figures)
        return result
    keys: set[str] = set()
    for fig in article.figures:
        key = safe_key(f"{article_id}_{fig.id}")

        def skip(reason: str, detail: str, fig: Any = fig) -> None:
            result["skipped_figures"].append({"figure_id": fig.id, "graphic": fig.graphic, "reason": reason,
                                              "detail": f"{record.origin}: figure {fig.id}: {detail}"})

        if key in keys:
            skip("duplicate_figure_id", f"a second figure with the key {key}")
            continue
        keys.add(key)
        if not fig.graphic:
            skip("no_graphic", "the figure has no <graphic>")
            continue
        caption = fig.caption
        if not caption:
            skip("no_caption", "the figure has neither label, title nor caption text")
            continue
        name = resolve_media(fig.graphic, record.media)
        if name is None:
            skip("missing_graphic", f"its graphic {fig.graphic!r} is not among the article's files")
            continue
        try:
            suffix, data, _ = encode_figure_image(record.media[name], job.max_side, job.image_format)
        except _ImageError as e:
            skip("unreadable_image", f"{name} cannot be decoded ({e})")
            continue
        fields = {"article": article_id, "figure_id": fig.id, "label": fig.label, "title": fig.title,
                  "caption": caption, "paragraphs": list(fig.paragraphs), "graphic": fig.graphic,
                  "cited_by": list(fig.cited_by), "license": license, "fig_group": fig.fig_group}
        result["samples"].append({"__key__": key, suffix: data, "txt": caption,
                                  "json": json.dumps(fields, ensure_ascii=False).encode("utf-8")})
    return result


def _skipped_result(item: SkippedArticle) -> dict[str, Any]:
    return {"key": item.key, "origin": item.origin, "article": None, "meta": None, "samples": [],
            "skipped_figures": [], "skipped": {"reason": item.reason, "detail": item.detail},
            "dropped_license": None, "figures_dropped": 0}


def _ordered_results(items: Iterable[ArticleRecord | SkippedArticle], job: _Job,
                     workers: int) -> Iterator[dict[str, Any]]:
    """:func:`process_article` of each record, in order, in ``workers`` processes (at most 2 queued per worker)."""
    if workers <= 1:
        for item in items:
            yield _skipped_result(item) if isinstance(item, SkippedArticle) else process_article(job, item)
        return
    from domainclip.core.parallel import worker_pool

    with worker_pool(workers) as pool:
        pending: deque[Any] = deque()
        for item in items:
            pending.append(_skipped_result(item) if isinstance(item, SkippedArticle)
                           else pool.submit(process_article, job, item))
            while len(pending) > 2 * workers:
                head = pending.popleft()
                yield head if isinstance(head, dict) else head.result()
        while pending:
            head = pending.popleft()
            yield head if isinstance(head, dict) else head.result()


# =========================================================================== the ledger
@dataclass
class _State:
    """What the ledger of earlier runs holds: finished record keys, articles written, half-written articles."""

    done: set[str]
    articles_written: set[str]
    partial: dict[str, set[str]]
    shards: set[str]


def _read_ledger(path: Path) -> _State:
    state = _State(set(), set(), {}, set())
    for entry in _ledger_lines(path):
        if entry.get("shard"):
            state.shards.add(entry["shard"])
        for key, samples in entry.get("samples", {}).items():
            state.partial.setdefault(key, set()).update(samples)
        for article in entry.get("articles", []):
            state.done.add(article["key"])
            state.partial.pop(article["key"], None)
            if article.get("figures") and article.get("article"):
                state.articles_written.add(article["article"])
    return state


def _ledger_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The ledger's lines, in order.

    A line cut short by a kill while it was written is left out: its shard is then not recorded, and deleted.
    """
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                yield entry


def _ledger_entries(path: Path) -> Iterator[dict[str, Any]]:
    """The article outcomes the ledger records, in order."""
    for line in _ledger_lines(path):
        yield from line.get("articles", [])


def _shard_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(re.escape(prefix) + r"-\d{6}\.tar")


def _clean_unrecorded(out: Path, state: _State) -> list[str]:
    """Delete the shards and temporary files of this command that the ledger does not name (a killed run's)."""
    removed = []
    for entry in sorted(os.listdir(out)):
        ours = re.fullmatch(rf"{PREFIX}(?:-r\d\d)?-\d{{6}}\.tar", entry)
        temporary = entry.startswith(f".{PREFIX}") and entry.endswith(".tmp")
        if (ours and entry not in state.shards) or temporary:
            (out / entry).unlink()
            removed.append(entry)
    for index in out.glob(f"{PREFIX}*-index.json"):
        try:
            content = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        kept = [s for s in content.get("shards", []) if (out / str(s.get("name"))).exists()]
        if len(kept) != len(content.get("shards", [])):
            from domainclip.core.data.writer import write_json_atomic

            write_json_atomic(index, {**content, "shards": kept, "num_samples": sum(int(s["count"]) for s in kept),
                                      "complete": False})
    return removed


def _free_prefix(out: Path) -> str:
    names = set(os.listdir(out))
    for run in range(100):
        prefix = PREFIX if run == 0 else f"{PREFIX}-r{run:02d}"
        pattern = _shard_pattern(prefix)
        if f"{prefix}-index.json" not in names and not any(pattern.fullmatch(n) for n in names):
            return prefix
    raise InputError(f"{out}: 99 resumed runs already; prepare the figures into a new folder")


class _Writer:
    """The shard writer and the ledger: a ledger line each time a shard closes, naming what is now safe."""

    def __init__(self, out: Path, prefix: str, shard_size: int, ledger: Path, state: _State):
        self.out, self.prefix, self.shard_size, self.ledger = out, prefix, shard_size, ledger
        self.state = state
        self.writer: Any = None
        self.open_samples: dict[str, list[str]] = {}
        self.waiting: list[tuple[dict[str, Any], int]] = []  # article outcome, samples written when it finished
        self.shards: list[str] = []
        self.samples = 0

    def write_article(self, outcome: dict[str, Any], samples: list[dict[str, Any]]) -> None:
        from domainclip.core.data.writer import FIXED_MTIME, ShardWriter

        for sample in samples:
            if self.writer is None:
                self.writer = ShardWriter(self.out, prefix=self.prefix, max_count=self.shard_size, mtime=FIXED_MTIME,
                                          image_format="png")
            before = len(self.writer.written)
            self.writer.write(sample)
            self.samples += 1
            if len(self.writer.written) > before:  # the shard before this sample's was closed
                self._commit(self.writer.written[-1].name, self.samples - 1)
            self.open_samples.setdefault(outcome["key"], []).append(sample["__key__"])
        self.waiting.append((outcome, self.samples))

    def close(self) -> None:
        if self.writer is not None:
            before = len(self.writer.written)
            self.writer.close()
            if len(self.writer.written) > before:
                self._commit(self.writer.written[-1].name, self.samples)
                return
        if self.waiting:
            self._commit(None, self.samples)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()

    def _commit(self, shard: str | None, closed: int) -> None:
        done = [outcome for outcome, count in self.waiting if count <= closed]
        self.waiting = [(outcome, count) for outcome, count in self.waiting if count > closed]
        line = {"shard": shard, "samples": self.open_samples, "articles": done}
        if shard:
            self.shards.append(shard)
        with open(self.ledger, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.open_samples = {}


# =========================================================================== the command
def _check_licenses(licenses: list[str] | None) -> tuple[str, ...] | None:
    if licenses is None:
        return None
    known = {family.upper(): family for family in (*LICENSE_FAMILIES, "none")}
    families = []
    for name in licenses:
        family = license_family(name) if name.strip().lower() != "none" else "none"
        if family.upper() not in known:
            raise InputError(f"licenses: unknown licence family {name!r}; choose from {', '.join(known.values())}")
        families.append(known[family.upper()])
    return tuple(families)


def _sources(out: Path, articles: list[str] | None, pmc: str | None, listing: str | None,
             skip: set[str], progress: bool) -> tuple[Iterator[ArticleRecord | SkippedArticle], int | None]:
    from domainclip.domains.biomed.sources import find_local_articles, iter_local_articles

    local: list[Path] = []
    if articles:
        local = find_local_articles(articles)
        resolved_out = out.resolve()
        for path in local:
            if resolved_out in path.resolve().parents:
                raise InputError(f"article {path} is inside the output folder {out}; choose another --out")
    cloud = None
    if pmc is not None:
        from domainclip.domains.biomed.pmc_cloud import iter_pmc_cloud

        cloud = iter_pmc_cloud(pmc, listing=listing, skip=skip, progress=progress)  # checks its arguments now

    def chain() -> Iterator[ArticleRecord | SkippedArticle]:
        if local:
            yield from iter_local_articles(local, skip=skip)
        if cloud is not None:
            yield from cloud

    from domainclip.domains.biomed.sources import article_key

    total = sum(article_key(p) not in skip for p in local) if pmc is None else None
    return chain(), total


@resumable
@entry_point
def prepare_figures(
    out: Path,
    articles: list[str] | None = None,
    pmc: str | None = None,
    listing: str | None = None,
    *,
    licenses: list[str] | None = None,
    max_side: Annotated[int, Range(16)] = 1024,
    image_format: Literal["auto", "jpg", "png"] = "auto",
    workers: PositiveInt = 1,
    shard_size: PositiveInt = 1000,
    progress: bool = True,
) -> dict[str, Any]:
    """Turn PMC articles (JATS XML and figure files) into figure-caption shards, one sample per figure.

    Resumable: run again into the same ``out`` after an interruption, it goes on with the articles
    not yet safely written and writes no sample twice.

    Args:
        out: output folder for the shards, articles.jsonl, figures-report.json and figures-summary.json.
        articles: local articles: .nxml files with their figure files beside them, PMC OA packages
            (.tar.gz, .tgz, .zip), folders holding them, or glob patterns.
        pmc: a PMC Cloud Service location: an https:// base URL, s3://pmc-oa-opendata, or a folder where the
            bucket is mounted.
        listing: the PMC Cloud articles to read: a file or URL with one PMCx.v a line, or an S3 inventory
            (default: every article folder of a mounted bucket).
        licenses: licence families to keep (CC BY, CC BY-SA, CC BY-ND, CC BY-NC, CC BY-NC-SA, CC BY-NC-ND,
            CC0, PDM, other, none); default: every article.
        max_side: longest side of a stored image in pixels; larger figures are scaled down.
        image_format: auto (PNG stays PNG, JPEG stays JPEG, others by their colours), jpg or png.
        workers: processes parsing articles and encoding images.
        shard_size: figures per shard.
        progress: show a progress bar.

    Returns:
        The summary (also in figures-summary.json): articles read, written, skipped by reason and
        dropped by licence; figures written and skipped by reason; shards; figures per second.

    Raises:
        InputError: neither articles nor pmc, a listing without pmc, an unknown licence family, no article found.
        NothingWrittenError: no figure could be written; the message counts the reasons.
    """
    from tqdm.auto import tqdm

    from domainclip.core.data.writer import write_json_atomic
    from domainclip.core.io import atomic_output

    if not articles and pmc is None:
        raise InputError("give local articles (--articles: folders, .nxml files or packages) or a PMC Cloud "
                         "location (--pmc)")
    if listing is not None and pmc is None:
        raise InputError("--listing names PMC Cloud articles: give the bucket with --pmc too")
    job = _Job(licenses=_check_licenses(licenses), max_side=max_side, image_format=image_format)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ledger = out / PROGRESS_NAME
    state = _read_ledger(ledger)
    removed = _clean_unrecorded(out, state)
    resumed = bool(state.done or state.shards or removed)
    items, total = _sources(out, articles, pmc, listing, state.done, progress)
    writer = _Writer(out, _free_prefix(out), shard_size, ledger, state)
    transient: list[dict[str, Any]] = []
    seen_now: set[str] = set()
    began = time.perf_counter()
    written_now = 0
    bar = tqdm(total=total, disable=not progress, unit="article", desc="figures")
    try:
        for result in _ordered_results(items, job, workers):
            bar.update(1)
            samples = result.pop("samples")
            earlier = state.partial.pop(result["key"], set())
            article = result["article"]
            if samples and article and (article in state.articles_written or article in seen_now) and not earlier:
                result["skipped"] = {"reason": "duplicate_article",
                                     "detail": f"{result['origin']}: article {article} was already written from "
                                               "another record"}
                samples = []
            if result["skipped"] and result["skipped"]["reason"] in TRANSIENT_REASONS:
                transient.append({"key": result["key"], "origin": result["origin"], **result["skipped"]})
                continue
            fresh = [s for s in samples if s["__key__"] not in earlier]
            result["figures"] = len(earlier) + len(fresh)
            if result["figures"] and article:
                seen_now.add(article)
            writer.write_article(result, fresh)
            written_now += len(fresh)
            bar.set_postfix(figures=written_now, refresh=False)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - began

    # the outputs of every run so far, from the ledger
    skipped_articles: list[dict[str, Any]] = []
    skipped_figures: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    by_license: dict[str, dict[str, int]] = {}
    articles_read = figures_written = articles_written = 0
    with atomic_output(out / ARTICLES_NAME) as path, open(path, "w", encoding="utf-8") as rows:  # streamed
        for entry in _ledger_entries(ledger):
            articles_read += 1
            if entry.get("skipped"):
                skipped_articles.append({"key": entry["key"], "origin": entry["origin"], **entry["skipped"]})
            for fig in entry.get("skipped_figures", []):
                skipped_figures.append({"key": entry["key"], "article": entry["article"], **fig})
            if entry.get("dropped_license"):
                family = entry["dropped_license"]
                counts = by_license.setdefault(family, {"articles": 0, "figures": 0})
                counts["articles"] += 1
                counts["figures"] += entry["figures_dropped"]
                dropped.append({"key": entry["key"], "article": entry["article"],
                                "license": entry["meta"]["license"], "figures": entry["figures_dropped"]})
            if entry.get("figures"):
                figures_written += entry["figures"]
                articles_written += 1
                rows.write(json.dumps({**entry["meta"], "figures": entry["figures"], "key": entry["key"],
                                       "origin": entry["origin"]}, ensure_ascii=False) + "\n")
    skipped_articles += transient
    article_reasons = Counter(s["reason"] for s in skipped_articles)
    figure_reasons = Counter(s["reason"] for s in skipped_figures)
    shards = sorted(n for n in os.listdir(out) if re.fullmatch(rf"{PREFIX}(?:-r\d\d)?-\d{{6}}\.tar", n))
    summary = {
        "out": str(out), "licenses": None if job.licenses is None else list(job.licenses), "max_side": max_side,
        "image_format": image_format, "shard_size": shard_size, "workers": workers, "resumed": resumed,
        "articles_read": articles_read + len(transient), "articles_written": articles_written,
        "articles_skipped": len(skipped_articles), "skipped_articles_by_reason": dict(sorted(article_reasons.items())),
        "dropped_by_license": dict(sorted(by_license.items())), "figures_written": figures_written,
        "figures_written_this_run": written_now, "figures_skipped": len(skipped_figures),
        "skipped_figures_by_reason": dict(sorted(figure_reasons.items())), "shards": shards,
        "seconds": round(seconds, 3),
        "figures_per_second": round(written_now / seconds, 2) if seconds > 0 else None,
    }
    write_json_atomic(out / REPORT_NAME, {"skipped_articles": skipped_articles, "skipped_figures": skipped_figures,
                                          "dropped_by_license": dropped})
    write_json_atomic(out / SUMMARY_NAME, summary)
    if figures_written == 0:
        counts: Counter[str] = Counter()
        examples: dict[str, str] = {}
        for item in (*skipped_articles, *skipped_figures):
            counts[item["reason"]] += 1
            examples.setdefault(item["reason"], item["detail"])
        for family, values in by_license.items():
            reason = f"license {family}"
            counts[reason] += values["articles"]
            examples.setdefault(reason, f"kept only {', '.join(job.licenses or ())}")
        for entry in _ledger_entries(ledger):
            if not entry.get("skipped") and not entry.get("dropped_license") and not entry.get("skipped_figures"):
                counts["no_figure"] += 1
                examples.setdefault("no_figure", f"{entry['origin']}: the article has no <fig>")
        inputs = f"{summary['articles_read']} article{'s' if summary['articles_read'] != 1 else ''}"
        raise NothingWrittenError.from_counts("biomed/figures", "figures", inputs, counts, examples)
    return summary
