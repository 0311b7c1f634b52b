"""JATS XML of a generated article, in the shape of a PubMed Central ``.nxml`` file.

The structure follows a real PMC Open Access file (a PLOS ONE article, PMC3460867): the JATS
archiving DOCTYPE, ``front/journal-meta`` and ``front/article-meta`` with ``article-id`` of types
``pmid``, ``pmc`` and ``doi``, ``title-group``, contributors and affiliations, ``pub-date``,
``permissions`` with a ``license`` (``xlink:href`` and an ``ali:license_ref``, as PMC files have
carried since 2015; some articles have only a copyright statement), ``abstract`` and ``kwd-group``;
a ``body`` of sections whose paragraphs cite figures with ``<xref ref-type="fig" rid=...>``; figures
as ``<fig id=... position="float">`` with ``label``, ``caption`` (``title`` and ``p``) and
``<graphic xlink:href=...>`` without a file extension, some inside ``<fig-group>``, some with their
graphic inside ``<alternatives>``, and in some articles all figures in a ``<floats-group>`` after
``back``; a reference list. Characters outside ASCII are written as character references
(``&#x000b1;``) as PMC writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

import numpy as np

__all__ = ["DOCTYPE", "LICENCES", "ArticleMeta", "FigureXml", "Journal", "article_xml", "licence_element"]

DOCTYPE = ('<!DOCTYPE article PUBLIC "-//NLM//DTD JATS (Z39.96) Journal Archiving and Interchange DTD v1.2 '
           '20190208//EN" "JATS-archivearticle1.dtd">')
_NAMESPACES = ('xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:mml="http://www.w3.org/1998/Math/MathML" '
               'xmlns:ali="http://www.niso.org/schemas/ali/1.0/"')

#: Licence name -> (URL, licence paragraph). ``None`` (no licence) is written as a copyright statement only.
LICENCES: dict[str, tuple[str, str]] = {
    "CC BY 4.0": ("https://creativecommons.org/licenses/by/4.0/",
                  "This is an open access article distributed under the terms of the {link}Creative Commons "
                  "Attribution License{end}, which permits unrestricted use, distribution, and reproduction in any "
                  "medium, provided the original author and source are credited."),
    "CC BY 3.0": ("https://creativecommons.org/licenses/by/3.0/",
                  "This is an open-access article distributed under the terms of the {link}Creative Commons "
                  "Attribution License 3.0{end}, which permits unrestricted use, distribution, and reproduction "
                  "in any medium, provided the original author and source are credited."),
    "CC0 1.0": ("https://creativecommons.org/publicdomain/zero/1.0/",
                "This is an open access article, free of all copyright, and may be freely reproduced, distributed, "
                "transmitted, modified, built upon, or otherwise used by anyone for any lawful purpose. The work is "
                "made available under the {link}Creative Commons CC0{end} public domain dedication."),
    "CC BY-SA 4.0": ("https://creativecommons.org/licenses/by-sa/4.0/",
                     "This article is licensed under a {link}Creative Commons Attribution-ShareAlike 4.0 "
                     "International License{end}."),
    "CC BY-NC 4.0": ("https://creativecommons.org/licenses/by-nc/4.0/",
                     "This is an open access article under the terms of the {link}Creative Commons "
                     "Attribution-NonCommercial License{end}, which permits use, distribution and reproduction in "
                     "any medium, provided the original work is properly cited and is not used for commercial "
                     "purposes."),
    "CC BY-NC-ND 4.0": ("https://creativecommons.org/licenses/by-nc-nd/4.0/",
                        "This is an open access article distributed under the {link}Creative Commons "
                        "Attribution-NonCommercial-NoDerivatives 4.0 International License{end}."),
}


@dataclass(frozen=True)
class Journal:
    """A fictional journal with its publisher's tagging habits.

    Args:
        title: journal title.
        abbrev: NLM title abbreviation (``journal-id`` of type ``nlm-ta``).
        code: short code used in article slugs and DOIs.
        publisher: publisher name.
        issn: electronic ISSN.
        figure_id: format of a figure's ``id`` (``{k}``: figure number, ``{slug}``: article slug).
        figure_label: format of a figure's ``label``.
        graphic: format of a graphic's ``xlink:href`` (no extension).
        image_format: file format its figures are published in (``jpg``, ``png``, ``tif``).
    """

    title: str
    abbrev: str
    code: str
    publisher: str
    issn: str
    figure_id: str
    figure_label: str
    graphic: str
    image_format: str


@dataclass
class FigureXml:
    """One ``<fig>`` to write (or a ``<fig-group>`` of several).

    Args:
        figure_id: the ``id``.
        label: the ``label`` text.
        title: caption title (escaped inline XML) or None.
        paragraph: caption paragraph (escaped inline XML).
        graphic: ``xlink:href`` of the graphic.
        thumbnail: ``xlink:href`` of a thumbnail: the graphic is then written inside ``<alternatives>``.
        members: figures of a ``<fig-group>`` (this figure is then the group: its id, label and title).
        cite: body sentence citing it (inline XML with the ``xref``).
    """

    figure_id: str
    label: str
    title: str | None
    paragraph: str
    graphic: str = ""
    thumbnail: str | None = None
    members: list[FigureXml] = field(default_factory=list)
    cite: str = ""


@dataclass
class ArticleMeta:
    """Article-level metadata of a generated article.

    Args:
        pmcid: PMC number (no ``PMC`` prefix).
        pmid: PubMed id.
        doi: DOI.
        slug: the publisher's article name (``{code}.{number}``).
        journal: the journal.
        title: article title (escaped inline XML).
        year: publication year.
        month: publication month.
        day: publication day.
        licence: a key of :data:`LICENCES`, or None for an article with no licence.
        keywords: author keywords.
        mesh: MeSH terms written as a second ``kwd-group`` (empty: none).
        authors: ``(surname, given names)`` pairs.
        floats_group: write the figures in a ``<floats-group>`` after ``back``, not in the body.
    """

    pmcid: int
    pmid: int
    doi: str
    slug: str
    journal: Journal
    title: str
    year: int
    month: int
    day: int
    licence: str | None
    keywords: list[str]
    mesh: list[str]
    authors: list[tuple[str, str]]
    floats_group: bool


_FILLER = (
    "These results extend previous observations made <italic>in vitro</italic>.",
    "The mechanism underlying this effect remains incompletely understood.",
    "Samples were processed in a blinded manner.",
    "All procedures were approved by the institutional ethics committee.",
    "Statistical analyses were performed with R version 4.2.",
    "Previous studies reported conflicting findings in smaller cohorts.",
    "This difference persisted after adjustment for age and sex.",
    "We next asked whether the effect depended on the dose.",
    "Consistent with this, expression of the target gene was reduced.",
    "A limitation of this study is its retrospective design.",
    "Cells were cultured at 37\u00b0C in 5% CO\u2082.",
    "Values are reported as mean \u00b1 standard deviation.",
    "Written informed consent was obtained from all participants.",
    "Further work is needed to confirm these findings <italic>in vivo</italic>.",
)
_AFFILIATIONS = ("Department of Pathology, Example University Hospital, Springfield",
                 "Institute of Molecular Medicine, Sample University, Riverside",
                 "Division of Radiology, Demo Medical Centre, Lakeside",
                 "Laboratory of Cell Biology, Placeholder Research Institute, Hillview")


def _sentences(rng: np.random.Generator, k: int) -> str:
    picks = rng.choice(len(_FILLER), size=k, replace=False)
    return " ".join(_FILLER[int(i)] for i in picks)


def licence_element(licence: str | None, year: int, holder: str) -> str:
    """The ``<permissions>`` element: copyright, and the licence with its URL where there is one.

    Args:
        licence: a key of :data:`LICENCES`, or None (copyright statement only: no licence).
        year: copyright year.
        holder: copyright holder.
    """
    head = (f"<permissions><copyright-statement>\u00a9 {year} {escape(holder)}</copyright-statement>"
            f"<copyright-year>{year}</copyright-year><copyright-holder>{escape(holder)}</copyright-holder>")
    if licence is None:
        return head + "</permissions>"
    url, text = LICENCES[licence]
    link = f'<ext-link ext-link-type="uri" xlink:href={quoteattr(url)}>'
    body = text.format(link=link, end="</ext-link>")
    kind = ' license-type="open-access"' if "NC" not in licence else ""
    return (f"{head}<license{kind} xlink:href={quoteattr(url)}><ali:license_ref>{escape(url)}</ali:license_ref>"
            f"<license-p>{body}</license-p></license></permissions>")


def _caption(figure: FigureXml) -> str:
    title = f"<title>{figure.title}</title>" if figure.title else ""
    paragraph = f"<p>{figure.paragraph}</p>" if figure.paragraph else ""
    return f"<caption>{title}{paragraph}</caption>" if title or paragraph else ""


def _fig(figure: FigureXml, rng: np.random.Generator, doi: str) -> str:
    if figure.members:
        inner = "".join(_fig(m, rng, doi) for m in figure.members)
        return (f"<fig-group id={quoteattr(figure.figure_id)}><label>{escape(figure.label)}</label>"
                f"{_caption(figure)}{inner}</fig-group>")
    graphic = f"<graphic xlink:href={quoteattr(figure.graphic)}/>"
    if figure.thumbnail:
        graphic = (f"<alternatives>{graphic}<graphic xlink:href={quoteattr(figure.thumbnail)} "
                   f'specific-use="thumbnail"/></alternatives>')
    object_id = (f'<object-id pub-id-type="doi">{escape(doi)}.{escape(figure.figure_id)}</object-id>'
                 if rng.random() < 0.4 else "")
    orientation = ' orientation="portrait"' if rng.random() < 0.5 else ""
    return (f"<fig id={quoteattr(figure.figure_id)}{orientation} position=\"float\">{object_id}"
            f"<label>{escape(figure.label)}</label>{_caption(figure)}{graphic}</fig>")


def _char_refs(text: str) -> str:
    """Characters outside ASCII as ``&#xNNNNN;`` references, as PMC writes them."""
    return "".join(c if ord(c) < 128 else f"&#x{ord(c):05x};" for c in text)


def article_xml(meta: ArticleMeta, figures: list[FigureXml], rng: np.random.Generator) -> str:
    """The ``.nxml`` text of one article.

    Args:
        meta: article metadata.
        figures: figures (and figure groups) in citation order.
        rng: the article text's generator.
    """
    j = meta.journal
    authors = "".join(f'<contrib contrib-type="author"><name><surname>{escape(s)}</surname><given-names>'
                      f'{escape(g)}</given-names></name><xref ref-type="aff" rid="aff1"><sup>1</sup></xref></contrib>'
                      for s, g in meta.authors)
    affiliation = _AFFILIATIONS[int(rng.integers(len(_AFFILIATIONS)))]
    holder = f"{meta.authors[0][0]} et al" if len(meta.authors) > 1 else meta.authors[0][0]
    keywords = "".join(f"<kwd>{escape(k)}</kwd>" for k in meta.keywords)
    mesh = ('<kwd-group kwd-group-type="MESH">' + "".join(f"<kwd>{escape(k)}</kwd>" for k in meta.mesh)
            + "</kwd-group>") if meta.mesh else ""
    front = (
        f'<front><journal-meta><journal-id journal-id-type="nlm-ta">{escape(j.abbrev)}</journal-id>'
        f'<journal-id journal-id-type="iso-abbrev">{escape(j.abbrev)}</journal-id>'
        f"<journal-title-group><journal-title>{escape(j.title)}</journal-title></journal-title-group>"
        f'<issn pub-type="epub">{j.issn}</issn><publisher><publisher-name>{escape(j.publisher)}</publisher-name>'
        f"</publisher></journal-meta><article-meta>"
        f'<article-id pub-id-type="pmid">{meta.pmid}</article-id>'
        f'<article-id pub-id-type="pmc">{meta.pmcid}</article-id>'
        f'<article-id pub-id-type="publisher-id">{escape(meta.slug)}</article-id>'
        f'<article-id pub-id-type="doi">{escape(meta.doi)}</article-id>'
        f'<article-categories><subj-group subj-group-type="heading"><subject>Research Article</subject>'
        f"</subj-group></article-categories><title-group><article-title>{meta.title}</article-title></title-group>"
        f'<contrib-group>{authors}</contrib-group><aff id="aff1"><label>1</label>'
        f"<addr-line>{escape(affiliation)}</addr-line></aff>"
        f'<pub-date pub-type="epub"><day>{meta.day}</day><month>{meta.month}</month><year>{meta.year}</year>'
        f'</pub-date><pub-date pub-type="collection"><year>{meta.year}</year></pub-date>'
        f"<volume>{meta.year - 2005}</volume><elocation-id>e{meta.pmid % 100000:05d}</elocation-id>"
        f"{licence_element(meta.licence, meta.year, holder)}"
        f"<abstract><p>{_sentences(rng, 3)}</p></abstract>"
        f'<kwd-group kwd-group-type="author">{keywords}</kwd-group>{mesh}</article-meta></front>'
    )
    results = []
    floats = []
    for figure in figures:
        results.append(f"<p>{_sentences(rng, int(rng.integers(1, 3)))} {figure.cite}</p>")
        element = _fig(figure, rng, meta.doi)
        (floats if meta.floats_group else results).append(element)
    body = (
        f'<body><sec id="s1"><title>Introduction</title><p>{_sentences(rng, 3)}</p><p>{_sentences(rng, 2)}</p></sec>'
        f'<sec id="s2" sec-type="materials|methods"><title>Materials and methods</title>'
        f"<p>{_sentences(rng, 3)}</p></sec>"
        f'<sec id="s3" sec-type="results"><title>Results</title>{"".join(results)}</sec>'
        f'<sec id="s4" sec-type="discussion"><title>Discussion</title><p>{_sentences(rng, 3)}</p></sec></body>'
    )
    refs = "".join(
        f'<ref id="ref{k}"><label>{k}</label><mixed-citation publication-type="journal"><name><surname>'
        f"{escape(meta.authors[k % len(meta.authors)][0])}</surname><given-names>A</given-names></name> "
        f"(<year>{meta.year - k}</year>) <article-title>{_sentences(rng, 1)}</article-title> "
        f"<source>{escape(j.abbrev)}</source> <volume>{k + 3}</volume>: <fpage>{k * 11}</fpage></mixed-citation></ref>"
        for k in range(1, int(rng.integers(3, 8))))
    back = f"<back><ack><p>{_sentences(rng, 1)}</p></ack><ref-list><title>References</title>{refs}</ref-list></back>"
    floats_group = f"<floats-group>{''.join(floats)}</floats-group>" if floats else ""
    text = (f'{DOCTYPE}\n<article {_NAMESPACES} article-type="research-article" dtd-version="1.2" xml:lang="en">'
            f"{front}{body}{back}{floats_group}</article>\n")
    return _char_refs(text)
