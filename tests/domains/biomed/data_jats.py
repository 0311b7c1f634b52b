"""Fixture writers for the biomed ETL tests: JATS articles in PMC's real layouts, with the truth built in.

The XML copies the structure of a PMC ``.nxml`` (the JATS Archiving DTD DOCTYPE, ``journal-meta``,
``article-meta`` with ``article-id`` of each type, ``permissions/license`` with ``xlink:href`` and
``ali:license_ref``, ``kwd-group``, body sections whose paragraphs cite figures with
``<xref ref-type="fig">``, figures with ``object-id``, ``label``, ``caption`` (title and paragraphs
with inline markup) and a ``graphic`` whose href has no extension) and adds what that one real file
lacks: a ``<fig-group>``, a figure whose graphic sits in ``<alternatives>`` beside a ``<media>``, a
``rid`` naming two figures, a figure placed inside a paragraph.

Layouts: a loose folder ``PMC<id>/PMC<id>.nxml`` plus media files; a legacy OA package
``PMC<id>.tar.gz`` or ``.zip`` holding ``PMC<id>/<name>.nxml`` and the media.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

DOCTYPE = ('<!DOCTYPE article PUBLIC "-//NLM//DTD JATS (Z39.96) Journal Archiving and Interchange DTD v1.0 '
           '20120330//EN" "JATS-archivearticle1.dtd">')
LICENSES = {
    "CC BY 4.0": ("http://creativecommons.org/licenses/by/4.0/", "This article is distributed under the terms of the "
                  "Creative Commons Attribution 4.0 International License."),
    "CC BY-NC 4.0": ("https://creativecommons.org/licenses/by-nc/4.0/", "Creative Commons Attribution-NonCommercial "
                     "4.0 International License."),
    "CC0 1.0": ("https://creativecommons.org/publicdomain/zero/1.0/", "This is an open access article, free of all "
                "copyright (Creative Commons CC0 public domain dedication)."),
}


@dataclass
class FigSpec:
    """One figure of a fixture article, and what the parser must give for it."""

    id: str
    label: str
    title_xml: str
    title: str
    paragraphs_xml: list[str]
    paragraphs: list[str]
    graphic: str
    image: str = "png"  # png | jpg | tif | missing | broken
    group: str | None = None
    alternatives: bool = False
    size: tuple[int, int] = (64, 48)

    @property
    def caption(self) -> str:
        return " ".join([self.label + ".", self.title, *self.paragraphs])


@dataclass
class ArticleSpec:
    """A fixture article: ids, metadata and figures (the expected parse is in the fields)."""

    pmc: int
    figures: list[FigSpec]
    license: str | None = "CC BY 4.0"
    title_xml: str = "Lipolytic enzymes of <italic>Mycobacterium</italic> <sup>13</sup>C study"
    title: str = "Lipolytic enzymes of Mycobacterium 13C study"
    journal: str = "PLoS ONE"
    year: int = 2021
    keywords: list[str] = field(default_factory=lambda: ["lipase", "tuberculosis"])
    mesh: list[str] = field(default_factory=list)

    @property
    def pmcid(self) -> str:
        return f"PMC{self.pmc}"

    @property
    def doi(self) -> str:
        return f"10.1371/journal.pone.{self.pmc:07d}"


def figure(n: int, prefix: str = "pone.0046493", **kwargs) -> FigSpec:
    """Figure ``n`` with a caption that has inline markup, the way PLOS writes them."""
    base = dict(
        id=f"{prefix.replace('.', '-')}-g{n:03d}", label=f"Figure {n}",
        title_xml=f"Inhibition of Lip-HSL proteins by M<italic>m</italic>PPOX, set {n}.",
        title=f"Inhibition of Lip-HSL proteins by MmPPOX, set {n}.",
        paragraphs_xml=[f"<bold>A</bold>, SDS-PAGE profile using Ni<sup>2+</sup>-NTA resin\n   (panel {n}); "
                        f"see <xref ref-type=\"bibr\" rid=\"b1\">[1]</xref>.",
                        f"<bold>B</bold>, residual activities at molar excess (<italic>x</italic><sub>I</sub>"
                        f"&#x0200a;=&#x0200a;{n * 10})."],
        paragraphs=[f"A, SDS-PAGE profile using Ni2+-NTA resin (panel {n}); see [1].",
                    f"B, residual activities at molar excess (xI = {n * 10})."],
        graphic=f"{prefix}.g{n:03d}")
    base.update(kwargs)
    return FigSpec(**base)


def _fig_xml(fig: FigSpec) -> str:
    caption = f"<title>{fig.title_xml}</title>" + "".join(f"<p>{p}</p>" for p in fig.paragraphs_xml)
    graphic = f'<graphic xlink:href="{fig.graphic}"/>'
    if fig.alternatives:
        graphic = (f'<alternatives><media xlink:href="{fig.graphic}.mov" mimetype="video"/>'
                   f'<inline-graphic xlink:href="{fig.graphic}-thumb"/>{graphic}</alternatives>')
    return (f'<fig id="{fig.id}" orientation="portrait" position="float"><object-id pub-id-type="doi">'
            f"10.1371/journal.{fig.graphic}</object-id><label>{fig.label}</label><caption>{caption}</caption>"
            f"{graphic}</fig>")


def article_xml(spec: ArticleSpec) -> bytes:
    """The ``.nxml`` of ``spec``: real PMC structure; paragraph k of the body cites figure k (and 1 and 2 together)."""
    license = ""
    if spec.license is not None:
        url, text = LICENSES[spec.license]
        license = (f'<permissions><copyright-year>{spec.year}</copyright-year><license xlink:href="{url}">'
                   f'<ali:license_ref>{url}</ali:license_ref><license-p>{text}</license-p></license></permissions>')
    keywords = "".join(f"<kwd>{k}</kwd>" for k in spec.keywords)
    mesh = "".join(f"<kwd>{k}</kwd>" for k in spec.mesh)
    groups: dict[str | None, list[FigSpec]] = {}
    for fig in spec.figures:
        groups.setdefault(fig.group, []).append(fig)
    paragraphs = []
    for k, fig in enumerate(spec.figures):
        paragraphs.append(f'<p>Paragraph {k} shows it (<xref ref-type="fig" rid="{fig.id}">{fig.label}</xref>) '
                          f'and <italic>in vivo</italic> data.</p>')
    if len(spec.figures) >= 2:
        ids = f"{spec.figures[0].id} {spec.figures[1].id}"
        paragraphs.append(f'<p>Both panels agree (<xref ref-type="fig" rid="{ids}">Figures 1 and 2</xref>).</p>')
    floats = []
    for group, figs in groups.items():
        if group is None:
            floats += [_fig_xml(f) for f in figs]
        else:
            floats.append(f'<fig-group id="{group}"><caption><title>Group {group}.</title></caption>'
                          + "".join(_fig_xml(f) for f in figs) + "</fig-group>")
    body = ('<body><sec id="s1"><title>Results</title>' + "".join(paragraphs)
            + "".join(floats) + "</sec></body>")
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n{DOCTYPE}\n<article xmlns:xlink="http://www.w3.org/1999/xlink" '
           'xmlns:mml="http://www.w3.org/1998/Math/MathML" xmlns:ali="http://www.niso.org/schemas/ali/1.0/" '
           'article-type="research-article"><front><journal-meta><journal-id journal-id-type="nlm-ta">PLoS One'
           f'</journal-id><journal-title-group><journal-title>{spec.journal}</journal-title></journal-title-group>'
           '<issn pub-type="epub">1932-6203</issn></journal-meta><article-meta>'
           f'<article-id pub-id-type="pmid">{30000000 + spec.pmc}</article-id>'
           f'<article-id pub-id-type="pmc">{spec.pmc}</article-id>'
           f'<article-id pub-id-type="doi">{spec.doi}</article-id>'
           f'<title-group><article-title>{spec.title_xml}</article-title></title-group>'
           f'<pub-date pub-type="collection"><year>{spec.year - 1}</year></pub-date>'
           f'<pub-date pub-type="epub"><day>3</day><month>2</month><year>{spec.year}</year></pub-date>'
           f'{license}<kwd-group kwd-group-type="author">{keywords}</kwd-group>'
           + (f'<kwd-group kwd-group-type="MESH">{mesh}</kwd-group>' if spec.mesh else "")
           + f"</article-meta></front>{body}</article>")
    return xml.encode("utf-8")


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    """A small image file: smooth colours plus noise (``broken``: a PNG cut in half)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[:h, :w]
    array = np.stack([xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1), np.full_like(xx, seed * 37 % 256)], -1)
    array = np.clip(array + rng.integers(-20, 20, array.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    pil = {"png": "PNG", "broken": "PNG", "jpg": "JPEG", "tif": "TIFF", "gif": "GIF"}[fmt]
    Image.fromarray(array).save(buf, format=pil)
    data = buf.getvalue()
    return data[: len(data) // 2] if fmt == "broken" else data


def media_files(spec: ArticleSpec) -> dict[str, bytes]:
    """The article's media files as PMC names them (the href plus the extension); missing figures left out."""
    files = {}
    for n, fig in enumerate(spec.figures):
        if fig.image == "missing":
            continue
        suffix = "png" if fig.image == "broken" else fig.image
        files[f"{fig.graphic}.{suffix}"] = image_bytes(fig.image, fig.size, seed=spec.pmc + n)
    return files


def write_loose(root: Path, spec: ArticleSpec) -> Path:
    """``root/PMC<id>/PMC<id>.nxml`` plus the media; returns the folder."""
    folder = root / spec.pmcid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{spec.pmcid}.nxml").write_bytes(article_xml(spec))
    for name, data in media_files(spec).items():
        (folder / name).write_bytes(data)
    return folder


def package_members(spec: ArticleSpec) -> dict[str, bytes]:
    """The members of a legacy OA package: ``PMC<id>/<journal name>.nxml``, the media and a PDF."""
    members = {f"{spec.pmcid}/pone.{spec.pmc:07d}.nxml": article_xml(spec)}
    members.update({f"{spec.pmcid}/{name}": data for name, data in media_files(spec).items()})
    members[f"{spec.pmcid}/pone.{spec.pmc:07d}.pdf"] = b"%PDF-1.4 not read"
    return members


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    """A ``.tar.gz`` of ``members`` (name -> bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    """A ``.zip`` of ``members``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def rich_article(pmc: int = 1000001, **kwargs) -> ArticleSpec:
    """An article with a plain figure, a two-figure ``<fig-group>`` and a figure in ``<alternatives>``."""
    prefix = f"pone.{pmc:07d}"
    figures = [figure(1, prefix), figure(2, prefix, group="g-pair", image="jpg"),
               figure(3, prefix, group="g-pair"), figure(4, prefix, alternatives=True, image="tif")]
    return ArticleSpec(pmc=pmc, figures=figures, **kwargs)


def simple_article(pmc: int, n: int = 2, **kwargs) -> ArticleSpec:
    """An article with ``n`` plain PNG figures (``figure_kwargs``: per-figure overrides by 1-based number)."""
    overrides = kwargs.pop("figure_kwargs", {})
    prefix = f"pone.{pmc:07d}"
    return ArticleSpec(pmc=pmc, figures=[figure(k, prefix, **overrides.get(k, {})) for k in range(1, n + 1)], **kwargs)


def write_collection(root: Path, n: int = 6, start: int = 2000001) -> list[ArticleSpec]:
    """``n`` articles in the three layouts in turn (loose, .tar.gz, .zip) under ``root``; returns their specs."""
    specs = []
    for k in range(n):
        spec = simple_article(start + k, n=2 + k % 2)
        kind = k % 3
        if kind == 0:
            write_loose(root, spec)
        elif kind == 1:
            write_tar(root / f"{spec.pmcid}.tar.gz", package_members(spec))
        else:
            write_zip(root / f"{spec.pmcid}.zip", package_members(spec))
        specs.append(spec)
    return specs
