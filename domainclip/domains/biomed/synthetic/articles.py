"""Generated articles: the plan of each article, its figures, its files, and the ``synthetic`` command.

Article ``i`` of the set ``seed`` is planned by :func:`plan_article` from generators seeded by
``(seed, i)`` alone: its journal, licence, figure count and, per figure, its type, panels, hard
case and whether it is a duplicate. A duplicate's source is an original single-panel figure of an
earlier article ``k < i``, found by re-planning article ``k`` and re-drawing that figure from
``(seed, k)``, never from process state, so any number of workers writes the same bytes.
:func:`generate_articles` writes the set in the layout ``domainclip prepare biomed figures`` reads
(see :mod:`~domainclip.domains.biomed.synthetic`).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from PIL import Image, ImageDraw

from domainclip.core.data.writer import FIXED_MTIME
from domainclip.core.errors import InputError
from domainclip.core.io import atomic_output, atomic_write_bytes, atomic_write_text, new_file_mode, safe_key
from domainclip.core.options import NonNegativeInt, PositiveInt, Range, UnitFloat, entry_point
from domainclip.core.parallel import map_unordered
from domainclip.domains.biomed.synthetic.captions import LABEL_STYLES, caption, citing_sentence
from domainclip.domains.biomed.synthetic.jats import ArticleMeta, FigureXml, Journal, article_xml
from domainclip.domains.biomed.synthetic.painters import font, paint
from domainclip.domains.biomed.taxonomy import FigureTypeName, figure_type_names

__all__ = [
    "ARTICLE_FOLDER",
    "DUPLICATE_KINDS",
    "GENERATOR",
    "JOURNALS",
    "LICENCE",
    "LICENCE_WEIGHTS",
    "MALFORMED_KINDS",
    "PACKAGES",
    "SUMMARY_FILE",
    "TRUTH_FILE",
    "TYPES_FOLDER",
    "TYPE_WEIGHTS",
    "ArticlePlan",
    "FigurePlan",
    "generate_articles",
    "plan_article",
]

#: Generator name and version, recorded in the summary.
GENERATOR = "domainclip.domains.biomed.synthetic/1"
#: Licence of the generated data (the articles' own licence tags are part of the simulation).
LICENCE = "CC0-1.0"
#: Output layout, relative to ``out``.
ARTICLE_FOLDER, TRUTH_FILE, SUMMARY_FILE, TYPES_FOLDER = "articles", "truth.jsonl", "summary.json", "figure_types"
#: How article ``i`` is packaged: ``PACKAGES[i % len(PACKAGES)]`` (3 loose folders, 1 .tar.gz, 1 .zip in 5).
PACKAGES: tuple[str, ...] = ("folder", "tar.gz", "folder", "zip", "folder")
#: Duplicate kinds of the truth file, each with its own fraction option.
DUPLICATE_KINDS: tuple[str, ...] = ("exact", "resized", "recompressed", "cropped")
#: Broken items added by ``malformed``, in turn.
MALFORMED_KINDS: tuple[str, ...] = ("bad_xml", "missing_graphic", "unreadable_image", "truncated_archive")
#: Relative frequency of each figure type (charts lead, as in PMC).
TYPE_WEIGHTS: dict[str, float] = {"clinical_imaging": 1.2, "microscopy": 1.5, "gel_blot": 1.0, "chart": 2.0,
                                  "diagram": 1.0, "chemical_structure": 0.8, "table": 0.8, "photograph": 0.8}
#: Share of articles per licence (None: no licence, only a copyright statement).
LICENCE_WEIGHTS: dict[str | None, float] = {"CC BY 4.0": 0.60, "CC BY 3.0": 0.04, "CC0 1.0": 0.08,
                                            "CC BY-SA 4.0": 0.03, "CC BY-NC 4.0": 0.10, "CC BY-NC-ND 4.0": 0.07,
                                            None: 0.08}
#: PMC and PubMed numbers of article ``i`` of set ``seed``: base + seed * SET_STRIDE + i.
PMC_BASE, PMID_BASE, SET_STRIDE = 20_000_000, 50_000_000, 1_000_000
#: Articles per worker task.
CHUNK = 16
#: Share of articles whose figures are in a ``<floats-group>``; of figures published with a thumbnail.
FLOATS_GROUP_SHARE = 0.2
#: Figure types an inset (a magnified region pasted in a corner) is drawn on; other hard cases are composites.
INSET_TYPES = frozenset({"microscopy", "clinical_imaging", "photograph"})
#: Articles an exact or near duplicate looks back over for its source.
LOOKBACK = 400

JOURNALS: tuple[Journal, ...] = (
    Journal("Synthetic Biology Reports", "Synth Biol Rep", "sbr", "Example Open Press", "2999-0001",
            "fig{k}", "Figure {k}", "{slug}.g{k:03d}", "jpg"),
    Journal("Journal of Generated Medicine", "J Gen Med", "jgm", "Placeholder Medical Publishing", "2999-0002",
            "F{k}", "Fig. {k}", "{slug}-g{k:03d}", "jpg"),
    Journal("Imaging Examples in Clinical Practice", "Imaging Ex Clin Pract", "iecp", "Demo Science Ltd",
            "2999-0003", "f{k}", "Fig {k}", "gr{k}", "jpg"),
    Journal("Cell and Tissue Examples", "Cell Tissue Ex", "cte", "Example Open Press", "2999-0004",
            "fig-{k}", "Figure {k}", "{slug}_fig{k}", "png"),
    Journal("Chemical Biology Examples", "Chem Biol Ex", "cbe", "Sample Academic Press", "2999-0005",
            "{slug}-f{k:03d}", "Figure {k}", "{slug}-f{k:03d}", "tif"),
)
_TOPICS = ("tumour progression", "insulin resistance", "neuroinflammation", "fibrosis", "antibiotic resistance",
           "cardiac remodelling", "bone regeneration", "viral entry", "autophagy", "wound healing")
_MODELS = ("a mouse model", "patients with type 2 diabetes", "human cell lines", "a prospective cohort",
           "zebrafish larvae", "a randomised trial", "organoids", "a retrospective series")
_MESH = ("Humans", "Animals", "Mice", "Female", "Male", "Middle Aged", "Signal Transduction", "Cell Line, Tumor",
         "Prognosis", "Disease Models, Animal")
_SURNAMES = ("Garcia", "Nguyen", "Okafor", "Schmidt", "Rossi", "Kowalski", "Tanaka", "Silva", "Haddad", "Larsen",
             "M\u00fcller", "Dubois", "Chen", "Patel")
_GIVEN = ("Ana", "Minh", "Chidi", "Lena", "Marco", "Ewa", "Yuki", "Jo\u00e3o", "Rania", "Sofie", "Jos\u00e9", "Li")


@dataclass
class FigurePlan:
    """What one figure of an article is, before anything is drawn.

    Args:
        number: its position in the article (0-based).
        figure_type: taxonomy name (of its first panel for a mixed multi-panel figure).
        panel_types: type per image panel (one for a single-panel figure).
        hard_case: None, ``"inset"`` (one panel with an inset, letters only in the caption) or
            ``"unlabelled_composite"`` (panels with gutters, no letters anywhere).
        duplicate_kind: None for an original, else one of :data:`DUPLICATE_KINDS`.
        source: ``(article index, figure number)`` of a duplicate's original.
        group: index of its ``<fig-group>`` in the article, or None.
        thumbnail: whether its graphic is published inside ``<alternatives>`` with a thumbnail.
    """

    number: int
    figure_type: str
    panel_types: tuple[str, ...]
    hard_case: str | None = None
    duplicate_kind: str | None = None
    source: tuple[int, int] | None = None
    group: int | None = None
    thumbnail: bool = False


@dataclass
class ArticlePlan:
    """Article ``index`` of set ``seed``: metadata choices and figure plans.

    Args:
        seed: the set's seed.
        index: the article's number in the set.
        journal: its journal.
        licence: licence name or None.
        package: ``folder``, ``tar.gz`` or ``zip``.
        figures: figure plans.
        floats_group: figures written in a ``<floats-group>``.
    """

    seed: int
    index: int
    journal: Journal
    licence: str | None
    package: str
    figures: list[FigurePlan] = field(default_factory=list)
    floats_group: bool = False

    @property
    def pmcid(self) -> str:
        """``PMC<number>``."""
        return f"PMC{PMC_BASE + self.seed * SET_STRIDE + self.index}"

    @property
    def slug(self) -> str:
        """The publisher's article name, ``<journal code>.<7 digits>``."""
        return f"{self.journal.code}.{(self.seed * SET_STRIDE + self.index) % 10_000_000:07d}"


def _rng(seed: int, index: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), *stream])


def _choice(rng: np.random.Generator, weights: dict[Any, float]) -> Any:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def plan_article(seed: int, index: int, options: dict[str, Any]) -> ArticlePlan:
    """Plan article ``index`` of set ``seed`` from ``(seed, index)`` and the options alone.

    Duplicates are marked here but their sources are left unresolved (see :func:`_resolve_sources`),
    so planning never looks at another article.

    Args:
        seed: the set's seed.
        index: the article's number.
        options: the generator options (fractions, figure counts, figure types).
    """
    rng = _rng(seed, index, 0)
    journal = JOURNALS[int(rng.integers(len(JOURNALS)))]
    licence = _choice(rng, LICENCE_WEIGHTS)
    plan = ArticlePlan(seed, index, journal, licence, PACKAGES[index % len(PACKAGES)],
                       floats_group=bool(rng.random() < FLOATS_GROUP_SHARE))
    weights = {t: TYPE_WEIGHTS[t] for t in options["figure_types"]}
    duplicate_p = [options[f"{kind}_fraction"] for kind in DUPLICATE_KINDS]
    count = int(rng.integers(options["min_figures"], options["max_figures"] + 1))
    for number in range(count):
        draw = rng.random()
        kind = None
        for k, p in zip(DUPLICATE_KINDS, np.cumsum(duplicate_p)):
            if draw < p:
                kind = k
                break
        if index == 0:  # nothing earlier to copy
            kind = None
        figure_type = _choice(rng, weights)
        panel_types: tuple[str, ...] = (figure_type,)
        hard_case = None
        if kind is None:
            r = rng.random()
            if r < options["hard_case_fraction"]:
                inset = rng.random() < 0.5 and figure_type in INSET_TYPES
                hard_case = "inset" if inset else "unlabelled_composite"
            if hard_case == "unlabelled_composite" or (
                    hard_case is None and r < options["hard_case_fraction"] + options["multipanel_fraction"]):
                same = rng.random() < 0.6
                panel_types = tuple(figure_type if same or p == 0 else _choice(rng, weights)
                                    for p in range(int(rng.integers(2, 5))))
        plan.figures.append(FigurePlan(number, figure_type, panel_types, hard_case, kind))
    if count >= 2 and rng.random() < options["fig_group_fraction"]:
        first = int(rng.integers(count - 1))
        for member in plan.figures[first:first + 2]:
            member.group = first
    for figure in plan.figures:
        if figure.group is None and rng.random() < options["alternatives_fraction"]:
            figure.thumbnail = True
    return plan


def _is_source(figure: FigurePlan) -> bool:
    """Whether a figure may be the original of a duplicate: an original single panel without a hard case."""
    return figure.duplicate_kind is None and len(figure.panel_types) == 1 and figure.hard_case is None


def _resolve_sources(plan: ArticlePlan, options: dict[str, Any]) -> None:
    """Give each duplicate of ``plan`` the earlier figure it copies; one without a candidate becomes original."""
    for figure in plan.figures:
        if figure.duplicate_kind is None:
            continue
        rng = _rng(plan.seed, plan.index, 3000 + figure.number)
        for _ in range(20):
            k = int(rng.integers(max(0, plan.index - LOOKBACK), plan.index))
            candidates = [f for f in plan_article(plan.seed, k, options).figures if _is_source(f)]
            if candidates:
                source = candidates[int(rng.integers(len(candidates)))]
                figure.source = (k, source.number)
                figure.figure_type = source.figure_type
                figure.panel_types = source.panel_types
                break
        else:
            figure.duplicate_kind = None


# ------------------------------------------------------------------------------------------------ drawing


def _size(rng: np.random.Generator, low: int, high: int) -> tuple[int, int]:
    width = int(rng.integers(low, high + 1))
    height = int(np.clip(width * rng.uniform(0.6, 1.25), low, high))
    return width, height


def _letter(image: Image.Image, x: int, y: int, letter: str, size: int, dark: bool) -> None:
    draw = ImageDraw.Draw(image)
    f = font(size, bold=True)
    box = draw.textbbox((x + 3, y + 2), letter, font=f)
    if not dark:
        draw.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], fill="white")
    draw.text((x + 3, y + 2), letter, fill="white" if dark else "black", font=f)


def _draw_figure(seed: int, index: int, figure: FigurePlan, options: dict[str, Any]) -> tuple[Image.Image,
                                                                                               list[dict[str, Any]]]:
    """Draw an original figure from ``(seed, index, figure number)``: image and facts per panel."""
    rng = _rng(seed, index, 1000 + figure.number)
    low, high = options["min_size"], options["max_size"]
    if len(figure.panel_types) == 1:
        image, facts = paint(figure.figure_type, rng, *_size(rng, low, high))
        if figure.hard_case == "inset":
            w, h = image.size
            cw, ch = int(w * 0.25), int(h * 0.25)
            x, y = int(rng.integers(0, w // 2 - cw // 2)), int(rng.integers(h // 2, h - ch))
            zoom = image.crop((x, y, x + cw, y + ch)).resize((int(cw * 1.6), int(ch * 1.6)), Image.BICUBIC)
            dark = float(np.asarray(image.convert("L")).mean()) < 90
            draw = ImageDraw.Draw(image)
            colour = "yellow" if dark else "black"
            draw.rectangle([x, y, x + cw, y + ch], outline=colour, width=1)
            image.paste(zoom, (w - zoom.width - 3, 3))
            draw.rectangle([w - zoom.width - 4, 2, w - 3, zoom.height + 3], outline=colour, width=1)
            facts = {**facts}
        return image, [facts]
    k = len(figure.panel_types)
    columns = k if (k <= 3 and rng.random() < 0.6) else 2
    rows = -(-k // columns)
    gutter = int(rng.integers(6, 15))
    cell_w = int(rng.integers(100, max(101, (high - gutter * (columns - 1)) // columns + 1)))
    cell_h = int(np.clip(cell_w * rng.uniform(0.7, 1.2), 90, max(90, (high - gutter * (rows - 1)) // rows)))
    canvas = Image.new("RGB", (columns * cell_w + (columns - 1) * gutter, rows * cell_h + (rows - 1) * gutter),
                       "white")
    all_facts = []
    letters = figure.hard_case != "unlabelled_composite"
    for p, panel_type in enumerate(figure.panel_types):
        panel, facts = paint(panel_type, _rng(seed, index, 1000 + figure.number, p), cell_w, cell_h)
        x, y = (p % columns) * (cell_w + gutter), (p // columns) * (cell_h + gutter)
        canvas.paste(panel, (x, y))
        if letters:
            dark = float(np.asarray(panel.convert("L"))[:20, :20].mean()) < 90
            _letter(canvas, x, y, chr(ord("A") + p), max(11, cell_w // 10), dark)
        all_facts.append(facts)
    return canvas, all_facts


def _encode(image: Image.Image, fmt: str, quality: int = 92) -> bytes:
    """The image file in ``fmt`` (``jpg``, ``png`` or ``tif``), byte-for-byte reproducible."""
    buffer = io.BytesIO()
    if fmt == "jpg":
        image.save(buffer, format="JPEG", quality=quality, optimize=False)
    elif fmt == "png":
        image.save(buffer, format="PNG", compress_level=1)
    else:
        image.save(buffer, format="TIFF", compression="tiff_lzw")
    return buffer.getvalue()


def _decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _near_copy(data: bytes, kind: str, fmt: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """A near duplicate of the published file ``data``: resized, recompressed as JPEG or slightly cropped."""
    image = _decode(data)
    w, h = image.size
    if kind == "resized":
        scale = float(rng.uniform(0.6, 0.85) if rng.random() < 0.6 else rng.uniform(1.15, 1.4))
        return _encode(image.resize((max(48, round(w * scale)), max(48, round(h * scale))), Image.LANCZOS), fmt), fmt
    if kind == "recompressed":
        return _encode(image, "jpg", quality=int(rng.integers(30, 66))), "jpg"
    left, top, right, bottom = (rng.uniform(0.0, 0.04, 4) * [w, h, w, h]).round().astype(int) + [1, 0, 0, 1]
    return _encode(image.crop((int(left), int(top), w - int(right), h - int(bottom))), fmt), fmt


@dataclass
class _Figure:
    """A figure ready to write: its file, caption and truth."""

    plan: FigurePlan
    figure_id: str
    label: str
    graphic: str
    fmt: str
    data: bytes
    facts: list[dict[str, Any]]
    labels: list[str]
    thumbnail: bytes | None = None


def _original_file(seed: int, index: int, number: int, options: dict[str, Any]) -> tuple[bytes, str,
                                                                                        list[dict[str, Any]]]:
    """The published file of an original figure (bytes, format, facts), recomputed from its seeds."""
    plan = plan_article(seed, index, options)
    figure = plan.figures[number]
    image, facts = _draw_figure(seed, index, figure, options)
    return _encode(image, plan.journal.image_format), plan.journal.image_format, facts


def _names(plan: ArticlePlan) -> list[tuple[str, str, str]]:
    """``(fig id, label, graphic href)`` of each figure; the two figures of a fig-group share a number, A and B."""
    j = plan.journal
    names = []
    number = 0
    for figure in plan.figures:
        if figure.group is None or figure.group == figure.number:
            number += 1
        key = {"k": number, "slug": plan.slug}
        letter = "" if figure.group is None else "ab"[figure.number - figure.group]
        names.append((j.figure_id.format(**key) + letter.upper(), j.figure_label.format(**key) + letter.upper(),
                      j.graphic.format(**key) + letter))
    return names


def _build_figures(plan: ArticlePlan, options: dict[str, Any]) -> list[_Figure]:
    j = plan.journal
    figures = []
    for figure, (figure_id, label, graphic) in zip(plan.figures, _names(plan)):
        if figure.duplicate_kind is None:
            image, facts = _draw_figure(plan.seed, plan.index, figure, options)
            data, fmt = _encode(image, j.image_format), j.image_format
        else:
            assert figure.source is not None
            data, fmt, facts = _original_file(plan.seed, *figure.source, options)
            if figure.duplicate_kind != "exact":
                data, fmt = _near_copy(data, figure.duplicate_kind, j.image_format,
                                       _rng(plan.seed, plan.index, 4000 + figure.number))
        if figure.hard_case == "inset":
            labels = ["A", "B"]
        elif len(figure.panel_types) > 1 and figure.hard_case is None:
            labels = [chr(ord("A") + p) for p in range(len(figure.panel_types))]
        else:
            labels = []
        thumbnail = None
        if figure.thumbnail:
            small = _decode(data)
            small.thumbnail((max(32, small.width // 3), max(32, small.height // 3)), Image.BILINEAR)
            thumbnail = _encode(small, "jpg", quality=80)
        figures.append(_Figure(figure, figure_id, label, graphic, fmt, data, facts, labels, thumbnail))
    return figures


def _caption_of(figure: _Figure, rng: np.random.Generator) -> tuple[str | None, str]:
    plan = figure.plan
    panels = list(zip(plan.panel_types, figure.facts))
    style = LABEL_STYLES[int(rng.integers(len(LABEL_STYLES)))]
    if plan.hard_case == "inset":
        title, paragraph = caption(panels, rng, labels=["A"], label_style=style)
        inset = "(B)" if style != "comma" else "B,"
        return title, paragraph + f" {inset} Inset, higher magnification of the boxed area."
    return caption(panels, rng, labels=figure.labels, label_style=style)


def _xml_figures(plan: ArticlePlan, figures: list[_Figure]) -> list[FigureXml]:
    rng = _rng(plan.seed, plan.index, 5)
    out: list[FigureXml] = []
    for figure in figures:
        title, paragraph = _caption_of(figure, _rng(plan.seed, plan.index, 2000 + figure.plan.number))
        panel = "A" if figure.labels else ""
        xref = f'<xref ref-type="fig" rid="{figure.figure_id}">{figure.label}{panel}</xref>'
        item = FigureXml(figure.figure_id, figure.label, title, paragraph, figure.graphic,
                         thumbnail=f"{figure.graphic}-thumb" if figure.thumbnail else None,
                         cite=citing_sentence(figure.plan.figure_type, figure.facts[0], rng, xref))
        group = figure.plan.group
        if group is not None and group != figure.plan.number:
            out[-1].members.append(item)
            out[-1].cite += " " + item.cite
            continue
        if group is not None:
            j = plan.journal
            number = sum(1 for f in plan.figures[:group + 1] if f.group is None or f.group == f.number)
            key = {"k": number, "slug": plan.slug}
            head = FigureXml(j.figure_id.format(**key), j.figure_label.format(**key),
                             "Results of the complementary analyses.", "", members=[item], cite=item.cite)
            out.append(head)
            continue
        out.append(item)
    return out


def _meta(plan: ArticlePlan) -> ArticleMeta:
    rng = _rng(plan.seed, plan.index, 6)
    number = plan.seed * SET_STRIDE + plan.index
    topic = _TOPICS[int(rng.integers(len(_TOPICS)))]
    model = _MODELS[int(rng.integers(len(_MODELS)))]
    authors = [(_SURNAMES[int(rng.integers(len(_SURNAMES)))], _GIVEN[int(rng.integers(len(_GIVEN)))])
               for _ in range(int(rng.integers(1, 6)))]
    title = f"Role of <italic>{topic}</italic>-associated signalling in {model}"
    mesh = [str(m) for m in rng.choice(_MESH, size=int(rng.integers(2, 5)), replace=False)] if rng.random() < 0.3 \
        else []
    return ArticleMeta(
        pmcid=PMC_BASE + number, pmid=PMID_BASE + number, doi=f"10.5555/{plan.slug}", slug=plan.slug,
        journal=plan.journal, title=title, year=int(rng.integers(2008, 2026)), month=int(rng.integers(1, 13)),
        day=int(rng.integers(1, 29)), licence=plan.licence, keywords=[topic, model.split(" ")[-1], "imaging"],
        mesh=mesh, authors=authors, floats_group=plan.floats_group)


def _write(path: Path, data: bytes) -> None:
    """Write a generated file whole or not at all (temporary name, then rename), without fsync.

    Generated files can be made again from the arguments, and the prepare command's output folder
    records whether the run finished; syncing thousands of small figure files would cost more
    than drawing them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(new_file_mode())
    os.replace(tmp, path)


def _tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    """A reproducible ``.tar.gz``: fixed times, owners and modes, no name or time in the gzip header."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        folder = tarfile.TarInfo(members[0][0].split("/")[0])
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, FIXED_MTIME
        tar.addfile(folder)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, FIXED_MTIME
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0)


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    """A reproducible ``.zip`` (fixed member times and modes)."""
    stamp = time.gmtime(FIXED_MTIME)[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _write_package(out: Path, plan: ArticlePlan, xml: str, files: list[tuple[str, bytes]], package: str) -> str:
    """Write the article's XML and files as a folder or an archive; return its path relative to ``out``."""
    root = out / ARTICLE_FOLDER
    if package == "folder":
        folder = root / plan.pmcid
        _write(folder / f"{plan.pmcid}.nxml", xml.encode("utf-8"))
        for name, data in files:
            _write(folder / name, data)
        return f"{ARTICLE_FOLDER}/{plan.pmcid}"
    members = [(f"{plan.pmcid}/{plan.slug}.nxml", xml.encode("utf-8"))]
    members += [(f"{plan.pmcid}/{name}", data) for name, data in files]
    data = _tar_gz(members) if package == "tar.gz" else _zip(members)
    _write(root / f"{plan.pmcid}.{package}", data)
    return f"{ARTICLE_FOLDER}/{plan.pmcid}.{package}"


def _truth(plan: ArticlePlan, figure: _Figure, path: str, options: dict[str, Any]) -> dict[str, Any]:
    """The truth line of one figure."""
    f = figure.plan
    source = None
    if f.source is not None:
        k, number = f.source
        source_plan = plan_article(plan.seed, k, options)
        source = {"article": source_plan.pmcid, "figure_id": _figure_ids(source_plan)[number]}
    return {
        "article": plan.pmcid,
        "figure_id": figure.figure_id,
        "graphic": figure.graphic,
        "figure_type": f.figure_type,
        "panels": 1 if f.hard_case == "inset" else len(f.panel_types),
        "panel_labels": figure.labels,
        "duplicate_of": source,
        "duplicate_kind": f.duplicate_kind,
        "label": figure.label,
        "subject": figure.facts[0]["subject"],
        "panel_types": list(f.panel_types),
        "hard_case": f.hard_case,
        "fig_group": None if f.group is None else _figure_ids(plan)[f.group][:-1],
        "file": f"{figure.graphic}.{figure.fmt}",
        "thumbnail": f"{figure.graphic}-thumb" if figure.thumbnail is not None else None,
        "path": path,
        "licence": plan.licence,
    }


def _figure_ids(plan: ArticlePlan) -> list[str]:
    """The ``fig`` ids of an article's figures, by figure number."""
    return [figure_id for figure_id, _, _ in _names(plan)]


def _malformed(out: Path, seed: int, index: int, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """Write one broken article of ``kind`` (a one-figure article, then broken); return its record."""
    plan = plan_article(seed, index, {**options, "min_figures": 1, "max_figures": 1, **{
        f"{k}_fraction": 0.0 for k in DUPLICATE_KINDS}, "fig_group_fraction": 0.0, "alternatives_fraction": 0.0})
    plan.package = "tar.gz" if kind == "truncated_archive" else "folder"
    figures = _build_figures(plan, options)
    xml = article_xml(_meta(plan), _xml_figures(plan, figures), _rng(seed, index, 7))
    files = [(f"{f.graphic}.{f.fmt}", f.data) for f in figures]
    rng = _rng(seed, index, 8)
    if kind == "bad_xml":
        xml = xml[: len(xml) // 2]  # cut inside the body: not well-formed
    elif kind == "missing_graphic":
        files = []
    elif kind == "unreadable_image":
        files = [(name, b"\x00\x01 not an image " + rng.bytes(200)) for name, _ in files]
    path = _write_package(out, plan, xml, files, plan.package)
    if kind == "truncated_archive":
        target = out / path
        data = target.read_bytes()
        atomic_write_bytes(target, data[: len(data) // 2])
    return {"article": plan.pmcid, "path": path, "kind": kind, "figures": len(figures),
            "figure_id": figures[0].figure_id}


def _write_chunk(job: dict[str, Any]) -> dict[str, Any]:
    """Draw and write articles ``start`` to ``stop`` (a worker task); return their truth and counts."""
    out, seed, options = Path(job["out"]), job["seed"], job["options"]
    records: list[dict[str, Any]] = []
    counts: dict[str, Counter[str]] = {k: Counter() for k in ("package", "licence_articles", "licence_figures",
                                                              "fig_groups", "figure_types_written")}
    for index in range(job["start"], job["stop"]):
        plan = plan_article(seed, index, options)
        _resolve_sources(plan, options)
        figures = _build_figures(plan, options)
        xml = article_xml(_meta(plan), _xml_figures(plan, figures), _rng(seed, index, 7))
        files = [(f"{f.graphic}.{f.fmt}", f.data) for f in figures]
        files += [(f"{f.graphic}-thumb.jpg", f.thumbnail) for f in figures if f.thumbnail is not None]
        path = _write_package(out, plan, xml, files, plan.package)
        licence = plan.licence or "none"
        counts["package"][plan.package] += 1
        counts["licence_articles"][licence] += 1
        counts["licence_figures"][licence] += len(figures)
        counts["fig_groups"]["articles"] += any(f.group is not None for f in plan.figures)
        for figure in figures:
            records.append(_truth(plan, figure, path, options))
            if figure.plan.duplicate_kind is None and len(figure.plan.panel_types) == 1 \
                    and figure.plan.hard_case is None:
                key = safe_key(f"{plan.pmcid}_{figure.figure_id}")
                png = _encode(_decode(figure.data), "png")
                _write(out / TYPES_FOLDER / figure.plan.figure_type / f"{key}.png", png)
                counts["figure_types_written"][figure.plan.figure_type] += 1
    return {"start": job["start"], "records": records, "counts": {k: dict(v) for k, v in counts.items()},
            }


def _malformed_chunk(job: dict[str, Any]) -> dict[str, Any]:
    out = Path(job["out"])
    records = [_malformed(out, job["seed"], index, MALFORMED_KINDS[(index - job["n"]) % len(MALFORMED_KINDS)],
                          job["options"]) for index in range(job["start"], job["stop"])]
    return {"start": job["start"], "malformed": records}


@entry_point
def generate_articles(
    out: Path,
    n: PositiveInt = 500,
    *,
    seed: NonNegativeInt = 0,
    workers: PositiveInt = 1,
    progress: bool = True,
    min_figures: Annotated[int, Range(1, 30)] = 1,
    max_figures: Annotated[int, Range(1, 30)] = 6,
    figure_types: tuple[FigureTypeName, ...] = tuple(figure_type_names()),
    min_size: Annotated[int, Range(64, 1024)] = 160,
    max_size: Annotated[int, Range(64, 1024)] = 384,
    exact_fraction: UnitFloat = 0.04,
    resized_fraction: UnitFloat = 0.02,
    recompressed_fraction: UnitFloat = 0.02,
    cropped_fraction: UnitFloat = 0.02,
    multipanel_fraction: UnitFloat = 0.15,
    hard_case_fraction: UnitFloat = 0.03,
    fig_group_fraction: UnitFloat = 0.05,
    alternatives_fraction: UnitFloat = 0.03,
    malformed: NonNegativeInt = 0,
) -> dict[str, Any]:
    """Generate PMC-style JATS articles with figures of known type, duplicates and multi-panel layouts.

    Writes ``n`` articles into ``out/articles/`` as loose folders ``PMC<id>/PMC<id>.nxml`` with
    their figure files, ``PMC<id>.tar.gz`` packages (members ``PMC<id>/<slug>.nxml`` and the
    figures, as PMC's legacy OA packages) and ``PMC<id>.zip`` packages, 3 : 1 : 1 (:data:`PACKAGES`);
    figure files are named by their ``<graphic xlink:href>`` plus the extension the XML omits.
    ``out/truth.jsonl`` has one line per figure (type, panels, caption panel labels, duplicate
    source and kind, hard case); ``out/figure_types/<type>/<key>.png`` holds every original
    single-panel figure (``key`` as the figure shards name it); ``out/summary.json`` the counts,
    and the broken items. Article ``i`` depends only
    on ``(seed, i)`` and the options (a duplicate on the earlier article it copies), so any number
    of workers writes the same bytes.

    Args:
        out: output folder.
        n: number of articles (the broken ones of ``malformed`` come on top).
        seed: set seed (a held-out set uses another; article ids differ between seeds).
        workers: worker processes.
        progress: show a progress bar.
        min_figures: fewest figures per article.
        max_figures: most figures per article.
        figure_types: figure types to draw (taxonomy names).
        min_size: smallest image side in pixels (a panel of a multi-panel figure may be smaller).
        max_size: largest image side in pixels (a near duplicate resized up may be larger).
        exact_fraction: share of figures that are byte-for-byte copies of an earlier figure.
        resized_fraction: share of figures that are resized copies of an earlier figure.
        recompressed_fraction: share of figures that are earlier figures recompressed as low-quality JPEG.
        cropped_fraction: share of figures that are earlier figures cropped by 0 to 4 per cent on each side.
        multipanel_fraction: share of original figures with 2 to 4 panels, letters in image and caption.
        hard_case_fraction: share of original figures that are an inset (caption letters, one panel) or
            a composite without letters.
        fig_group_fraction: share of articles with two figures in a fig-group.
        alternatives_fraction: share of figures published with a thumbnail inside alternatives.
        malformed: broken articles to add (bad XML, missing graphic, unreadable image, truncated archive, in turn).

    Returns:
        The summary (also ``summary.json``), with ``out``, ``seconds`` and ``figures_per_second``.

    Raises:
        InputError: ``min_figures`` above ``max_figures``, ``min_size`` above ``max_size``, the
            duplicate fractions adding up to more than 1, or no figure type.
    """
    from tqdm.auto import tqdm

    if min_figures > max_figures:
        raise InputError(f"min_figures ({min_figures}) must not exceed max_figures ({max_figures})")
    if min_size > max_size:
        raise InputError(f"min_size ({min_size}) must not exceed max_size ({max_size})")
    fractions = {k: v for k, v in (("exact", exact_fraction), ("resized", resized_fraction),
                                   ("recompressed", recompressed_fraction), ("cropped", cropped_fraction))}
    if sum(fractions.values()) > 1:
        raise InputError(f"the duplicate fractions add up to {sum(fractions.values()):.3g}; they must be at most 1")
    if not figure_types:
        raise InputError("figure_types is empty; give at least one of " + ", ".join(figure_type_names()))
    options: dict[str, Any] = {
        "min_figures": min_figures, "max_figures": max_figures,
        "figure_types": tuple(t for t in figure_type_names() if t in figure_types),
        "min_size": min_size, "max_size": max_size,
        **{f"{k}_fraction": v for k, v in fractions.items()},
        "multipanel_fraction": multipanel_fraction, "hard_case_fraction": hard_case_fraction,
        "fig_group_fraction": fig_group_fraction, "alternatives_fraction": alternatives_fraction,
    }
    out = Path(out)
    jobs = [{"out": str(out), "seed": seed, "start": s, "stop": min(s + CHUNK, n), "options": options}
            for s in range(0, n, CHUNK)]
    began = time.perf_counter()
    figures = Counter[str]()
    by_type: Counter[str] = Counter()
    duplicates: Counter[str] = Counter()
    panels: Counter[str] = Counter()
    hard: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    thumbs: Counter[str] = Counter()
    totals: dict[str, Counter[str]] = {}
    pending: dict[int, dict[str, Any]] = {}
    next_start = 0
    with atomic_output(out / TRUTH_FILE) as truth_path, open(truth_path, "w", encoding="utf-8") as truth, \
            tqdm(total=n, disable=not progress, unit="article", desc="synthetic articles") as bar:
        for _, result in map_unordered(_write_chunk, jobs, workers):
            pending[result["start"]] = result
            bar.update(min(CHUNK, n - result["start"]))
            while next_start in pending:  # truth lines in article order, whatever order chunks finish in
                done = pending.pop(next_start)
                for record in done["records"]:
                    truth.write(json.dumps(record, ensure_ascii=False) + "\n")
                    figures["total"] += 1
                    by_type[record["figure_type"]] += 1
                    duplicates[record["duplicate_kind"] or "original"] += 1
                    panels[str(record["panels"])] += 1
                    hard[record["hard_case"] or "none"] += 1
                    formats[record["file"].rsplit(".", 1)[1]] += 1
                    thumbs["total"] += record["thumbnail"] is not None
                for key, values in done["counts"].items():
                    totals.setdefault(key, Counter()).update(values)
                next_start += CHUNK
    broken: list[dict[str, Any]] = []
    if malformed:
        malformed_jobs = [{"out": str(out), "seed": seed, "n": n, "start": s, "stop": min(s + CHUNK, n + malformed),
                           "options": options} for s in range(n, n + malformed, CHUNK)]
        results = sorted((r for _, r in map_unordered(_malformed_chunk, malformed_jobs, workers)),
                         key=lambda r: r["start"])
        broken = [record for r in results for record in r["malformed"]]
    summary: dict[str, Any] = {
        "n": n,
        "seed": seed,
        "articles_by_package": dict(sorted(totals.get("package", Counter()).items())),
        "figures": figures["total"],
        "figures_by_type": {t: by_type[t] for t in options["figure_types"]},
        "figures_by_duplicate_kind": {k: duplicates[k] for k in ("original", *DUPLICATE_KINDS)},
        "figures_by_panels": dict(sorted(panels.items())),
        "hard_cases": {k: hard[k] for k in ("inset", "unlabelled_composite")},
        "figures_by_format": dict(sorted(formats.items())),
        "articles_by_licence": dict(sorted(totals.get("licence_articles", Counter()).items())),
        "figures_by_licence": dict(sorted(totals.get("licence_figures", Counter()).items())),
        "articles_with_fig_group": totals.get("fig_groups", Counter())["articles"],
        "figure_types_written": {t: totals.get("figure_types_written", Counter())[t] for t in options["figure_types"]},
        "figures_with_thumbnail": thumbs["total"],
        "malformed": broken,
        "malformed_by_kind": dict(Counter(r["kind"] for r in broken)),
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
        "files": {"articles": f"{ARTICLE_FOLDER}/", "truth": TRUTH_FILE, "figure_types": f"{TYPES_FOLDER}/<type>/",
                  "packages": list(PACKAGES)},
        "generator": GENERATOR,
        "licence": LICENCE,
    }
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, ensure_ascii=False, indent=1) + "\n")
    seconds = time.perf_counter() - began
    return {"out": str(out), **summary, "summary": str(out / SUMMARY_FILE), "seconds": round(seconds, 3),
            "figures_per_second": round(figures["total"] / seconds, 1) if seconds > 0 else None}
