"""Read JATS articles (PMC ``.nxml``) safely: article metadata and every figure with its caption and citations.

:func:`parse_article` takes the XML bytes of one article and returns an :class:`Article`: its
:class:`ArticleMeta` (PMCID, PMID, DOI, title, journal, year, licence, keywords, MeSH terms) and a
:class:`Figure` per ``<fig>``, in document order, those inside ``<fig-group>`` (with the group's id)
and in ``<floats-group>`` included. A figure carries its label, caption title, every caption
paragraph, the ``xlink:href`` of its ``<graphic>`` (inside ``<alternatives>`` the graphic is taken,
not a ``<media>`` or ``<inline-graphic>`` alternative) and the text of every body paragraph whose
``<xref ref-type="fig">`` names it (``rid`` may list several ids; citing a ``<fig-group>`` cites each
of its figures). Inline markup (``<italic>``, ``<sup>``, ``<xref>``, ...) is flattened to its text
and whitespace is collapsed to single spaces.

**Hostile XML.** The article is read by lxml with entity resolution, DTD loading, network access
and huge trees off (:func:`safe_parser`). Before that, a document whose ``<!DOCTYPE>`` has an
internal subset (``[...]``, where entities are declared: entity-expansion bombs, external entities
naming ``file://`` or ``http://`` resources) is refused outright with :class:`HostileXmlError`, so
nothing is expanded, read or fetched. An external DTD named by a public or system id (every PMC
file names the JATS DTD) is never loaded.
"""

from __future__ import annotations

import html.entities
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from domainclip.core.errors import InputError

__all__ = [
    "LICENSE_FAMILIES",
    "Article",
    "ArticleMeta",
    "Figure",
    "HostileXmlError",
    "JatsError",
    "flatten_text",
    "license_family",
    "normalise_license",
    "parse_article",
    "parse_article_file",
    "safe_parser",
]

XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
#: Elements that start a new block of text: flattened with a space on each side.
_BLOCKS = frozenset({
    "p", "title", "label", "list", "list-item", "def-list", "def-item", "term", "def", "disp-quote",
    "disp-formula", "table", "tr", "td", "th", "break", "caption", "sec", "boxed-text", "attrib", "statement",
})
#: Floating objects placed inside a paragraph: left out of the paragraph's text (they are not what it says).
_FLOATS = frozenset({
    "fig", "fig-group", "table-wrap", "table-wrap-group", "boxed-text", "supplementary-material", "chem-struct-wrap",
})
#: The licence families :func:`license_family` gives (``other``: a licence that is not Creative Commons).
LICENSE_FAMILIES = ("CC BY", "CC BY-SA", "CC BY-ND", "CC BY-NC", "CC BY-NC-SA", "CC BY-NC-ND", "CC0", "PDM", "other")


class JatsError(InputError):
    """An article whose XML cannot be read; the one-line message names the article."""

    #: the skip reason counted in a batch's summary
    reason = "bad_xml"


class HostileXmlError(JatsError):
    """An article whose DOCTYPE declares entities or an internal subset: refused before anything is parsed."""

    reason = "hostile_xml"


@dataclass(frozen=True)
class Figure:
    """One ``<fig>`` of an article.

    Args:
        id: its ``@id`` (``fig<n>``, its 1-based place among the article's figures, when it has none).
        label: its ``<label>`` ("Figure 1"), flattened.
        title: its caption's ``<title>``, flattened.
        paragraphs: each other block of its caption (``<p>``, lists), flattened, in order.
        graphic: the ``xlink:href`` of its ``<graphic>`` (PMC names it without the file extension).
        fig_group: the ``@id`` of the ``<fig-group>`` it belongs to.
        cited_by: the text of each body paragraph that cites it, in document order, each once.
    """

    id: str
    label: str | None
    title: str | None
    paragraphs: tuple[str, ...]
    graphic: str | None
    fig_group: str | None = None
    cited_by: tuple[str, ...] = ()

    @property
    def caption(self) -> str:
        """The full caption: label, title and paragraphs, with a full stop after a label or title that lacks one."""
        parts = [_end_sentence(self.label), _end_sentence(self.title), *self.paragraphs]
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class ArticleMeta:
    """An article's metadata (``front/article-meta`` and ``journal-meta``).

    Args:
        pmcid: ``PMC`` and the PMC number.
        pmid: the PubMed id.
        doi: the DOI.
        title: the article title, flattened.
        journal: the journal title (its NLM abbreviation when the title is missing).
        year: the year of the electronic publication date, else the print, else the collection date.
        license: the normalised licence (``"CC BY 4.0"``, ``"CC0 1.0"``, ``"CC BY-NC-ND 3.0"``, ``"CC BY"``
            when the text names no version, ``"other"`` for a licence that is not Creative Commons; see
            :func:`normalise_license`); ``None`` when the article has no ``<license>``.
        license_url: the licence's URL as the article gives it.
        keywords: the author keywords (``<kwd>`` of groups other than MeSH).
        mesh: the MeSH terms (``<kwd>`` of a ``kwd-group-type`` naming MeSH).
    """

    pmcid: str | None
    pmid: str | None
    doi: str | None
    title: str | None
    journal: str | None
    year: int | None
    license: str | None
    license_url: str | None
    keywords: tuple[str, ...] = ()
    mesh: tuple[str, ...] = ()


@dataclass(frozen=True)
class Article:
    """A parsed article: its metadata and its figures in document order.

    Args:
        meta: the article's metadata.
        figures: every ``<fig>``.
    """

    meta: ArticleMeta
    figures: tuple[Figure, ...] = field(default_factory=tuple)


# =========================================================================== safe parsing
def safe_parser() -> etree.XMLParser:
    """An lxml parser that resolves no entity, loads no DTD, uses no network and refuses huge trees."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
         (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"))


_PROLOG_ITEM = re.compile(r"\s*(<\?.*?\?>|<!--.*?-->)", re.S)


def _prolog_text(xml: bytes) -> str:
    """The document as text (UTF-16/32 told by a byte-order mark or zero bytes) for the DOCTYPE check."""
    head = xml  # the whole document: a long comment before the DOCTYPE must not hide it
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return head[len(bom):].decode(encoding, errors="replace")
    if head[:4] in (b"\x00<\x00?", b"\x00<\x00!", b"\x00<\x00a"):
        return head.decode("utf-16-be", errors="replace")
    if head[:4] in (b"<\x00?\x00", b"<\x00!\x00", b"<\x00a\x00"):
        return head.decode("utf-16-le", errors="replace")
    return head.decode("latin-1")


def _check_doctype(xml: bytes, name: str) -> None:
    """Refuse a DOCTYPE with an internal subset (where entities are declared) before the document is parsed."""
    text = _prolog_text(xml)
    position = 0
    while True:  # skip the XML declaration, comments, processing instructions and whitespace
        match = _PROLOG_ITEM.match(text, position)
        if not match:
            break
        position = match.end()
    rest = text[position:].lstrip()
    if not rest.startswith("<!DOCTYPE"):  # without a DOCTYPE nothing can declare an entity
        return
    quote = None
    for char in rest[len("<!DOCTYPE"):]:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "[":
            raise HostileXmlError(f"{name}: the DOCTYPE has an internal subset (it may declare entities: an entity "
                                  "bomb or external entities); refused without parsing")
        elif char == ">":
            return
    raise JatsError(f"{name}: the DOCTYPE declaration never ends; not well-formed XML")


def _parse_tree(xml: bytes, name: str) -> etree._Element:
    """Parse with :func:`safe_parser` (no DOCTYPE check: :func:`parse_article` does it first)."""
    try:
        root = etree.fromstring(xml, parser=safe_parser())
    except etree.XMLSyntaxError as e:
        raise JatsError(f"{name}: not well-formed XML ({' '.join(str(e).split())})") from None
    if root is None:
        raise JatsError(f"{name}: the XML is empty")
    return root


# =========================================================================== text
def _local(tag: Any) -> str:
    """An element's name without its namespace ('' for comments, entities and processing instructions)."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _pieces(element: etree._Element, skip: frozenset[str]) -> Iterator[str]:
    for child in element:
        name = _local(child.tag)
        if isinstance(child, etree._Entity):  # an entity the (unloaded) DTD would define: its HTML character
            yield html.entities.html5.get(f"{child.name};", " ")
        elif name and name not in skip:
            block = name in _BLOCKS
            if block:
                yield " "
            if child.text:
                yield child.text
            yield from _pieces(child, skip)
            if block:
                yield " "
        if child.tail:
            yield child.tail


def flatten_text(element: etree._Element | None, skip: Iterable[str] = ()) -> str:
    """The text of ``element`` and everything inside it, whitespace collapsed to single spaces.

    Inline markup adds nothing (``M<italic>m</italic>PPOX`` gives ``MmPPOX``); block elements
    (paragraphs, list items, labels, table cells, ``<break/>``) are kept apart by a space.

    Args:
        element: the element (``None`` gives ``""``).
        skip: names of elements whose text is left out (their tail is kept).
    """
    if element is None:
        return ""
    parts = [element.text or "", *_pieces(element, frozenset(skip))]
    return " ".join("".join(parts).split())


def _end_sentence(text: str | None) -> str | None:
    if text and (text[-1].isalnum() or text[-1] in ")]"):
        return text + "."
    return text


def _first(element: etree._Element | None, path: str) -> etree._Element | None:
    return None if element is None else element.find(path)


def _text(element: etree._Element | None, path: str | None = None) -> str | None:
    node = element if path is None else _first(element, path)
    text = flatten_text(node)
    return text or None


# =========================================================================== licences
_CC_URL = re.compile(r"creativecommons\.org/licen[cs]es/([a-z-]+)/(\d+(?:\.\d+)?)", re.I)
_CC0_URL = re.compile(r"creativecommons\.org/publicdomain/zero/(\d+(?:\.\d+)?)", re.I)
_PDM_URL = re.compile(r"creativecommons\.org/publicdomain/mark/(\d+(?:\.\d+)?)", re.I)
_CC_CODE = re.compile(r"\bCC[ -]?(BY(?:[ -](?:NC|SA|ND)){0,2})(?:[ -]?(\d\.\d))?\b", re.I)
_VERSION = re.compile(r"\b(\d\.\d)\b")
_WORDS = {"noncommercial": "NC", "non-commercial": "NC", "sharealike": "SA", "share-alike": "SA",
          "share alike": "SA", "noderivatives": "ND", "noderivs": "ND", "no derivatives": "ND", "no-derivs": "ND",
          "no derivs": "ND", "no-derivatives": "ND"}


def _cc_name(parts: Iterable[str], version: str | None) -> str:
    order = {"BY": 0, "NC": 1, "SA": 2, "ND": 3}
    codes = sorted({p.upper() for p in parts if p}, key=lambda p: order.get(p, 9))
    name = "CC " + "-".join(codes)
    return f"{name} {version}" if version else name


def normalise_license(url: str | None, text: str | None, license_type: str | None = None) -> str | None:
    """A licence's normalised name from its URL, its text or its ``@license-type``.

    Creative Commons URLs give the exact licence (``.../licenses/by-nc/4.0/`` -> ``"CC BY-NC 4.0"``,
    ``.../publicdomain/zero/1.0/`` -> ``"CC0 1.0"``); without one, the text is read for a code
    (``"CC BY-NC-ND 4.0"``) or the licence's words ("Creative Commons Attribution-NonCommercial
    License" -> ``"CC BY-NC"``, with the version when the text names one).

    Args:
        url: ``<license xlink:href>``, ``<ali:license_ref>`` or a link in the licence text.
        text: the licence text.
        license_type: the ``@license-type`` (``"cc-by"``, ``"open-access"``, ...).

    Returns:
        The name, ``"other"`` for a licence given that is not Creative Commons, ``None`` when nothing is given.
    """
    for candidate in (url or "", text or ""):
        if match := _CC0_URL.search(candidate):
            return f"CC0 {match.group(1)}"
        if match := _PDM_URL.search(candidate):
            return f"PDM {match.group(1)}"
        if match := _CC_URL.search(candidate):
            return _cc_name(match.group(1).split("-"), match.group(2))
    words = " ".join((text or "").split())
    lowered = words.lower()
    if match := _CC_CODE.search(words):
        return _cc_name(re.split(r"[ -]", match.group(1)), match.group(2))
    if "cc0" in lowered or "public domain dedication" in lowered:
        return "CC0 1.0" if "1.0" in lowered else "CC0"
    if "creative commons" in lowered and "attribution" in lowered:
        parts = ["BY"] + [code for word, code in _WORDS.items() if word in lowered]
        version = _VERSION.search(words)
        return _cc_name(parts, version.group(1) if version else None)
    kind = (license_type or "").lower()
    if kind.startswith("cc") and (match := re.fullmatch(r"cc[ -_]?(by(?:[-_](?:nc|sa|nd)){0,2})", kind)):
        return _cc_name(re.split(r"[-_]", match.group(1)), None)
    if kind in ("cc0", "cc-zero"):
        return "CC0"
    return "other" if (url or words or license_type) else None


def license_family(license: str | None) -> str:
    """A normalised licence without its version (``"CC BY 4.0"`` -> ``"CC BY"``); ``"none"`` for no licence."""
    if not license:
        return "none"
    name = " ".join(license.replace("_", " ").split()).upper().replace("CC-BY", "CC BY").replace("CC-0", "CC0")
    name = re.sub(r"\s+\d+(\.\d+)?$", "", name)
    return "other" if name == "OTHER" else name


def _license(meta: etree._Element | None) -> tuple[str | None, str | None]:
    permissions = _first(meta, "permissions")
    if permissions is None:
        return None, None
    element = None
    ref_url = None
    for child in permissions.iter():
        name = _local(child.tag)
        if name == "license" and element is None:
            element = child
        elif name == "license_ref" and ref_url is None and child.text:
            ref_url = child.text.strip()
    if element is None and ref_url is None:
        return None, None
    url = (element.get(XLINK_HREF) if element is not None else None) or ref_url
    text = flatten_text(element) if element is not None else ""
    if element is not None and not url:
        for link in element.iter():
            if _local(link.tag) in ("ext-link", "uri") and (link.get(XLINK_HREF) or link.text):
                url = (link.get(XLINK_HREF) or link.text or "").strip()
                break
    license_type = element.get("license-type") if element is not None else None
    return normalise_license(url, text, license_type), url or None


# =========================================================================== metadata
_YEAR_ORDER = ("epub", "electronic", "ppub", "print", "collection", "epub-ppub", "pub")


def _year(meta: etree._Element | None) -> int | None:
    if meta is None:
        return None
    years: dict[str, int] = {}
    for date in meta.findall("pub-date"):
        kind = date.get("pub-type") or date.get("publication-format") or date.get("date-type") or "pub"
        if date.get("date-type") == "collection":
            kind = "collection"
        text = (date.findtext("year") or "").strip()
        if text.isdigit():
            years.setdefault(kind, int(text))
    for kind in _YEAR_ORDER:
        if kind in years:
            return years[kind]
    return next(iter(years.values()), None)


def _ids(meta: etree._Element | None) -> dict[str, str]:
    ids: dict[str, str] = {}
    for node in [] if meta is None else meta.findall("article-id"):
        kind = (node.get("pub-id-type") or "").lower()
        value = " ".join((node.text or "").split())
        if value:
            ids.setdefault(kind, value)
    return ids


def _pmcid(ids: dict[str, str]) -> str | None:
    for kind in ("pmcid", "pmc"):
        value = ids.get(kind)
        if value:
            digits = value.upper().removeprefix("PMC")
            return f"PMC{digits}" if digits.isdigit() else value
    return None


def _keywords(meta: etree._Element | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    keywords: list[str] = []
    mesh: list[str] = []
    for group in [] if meta is None else meta.findall("kwd-group"):
        target = mesh if "mesh" in (group.get("kwd-group-type") or "").lower() else keywords
        for kwd in group.iter("kwd"):
            text = flatten_text(kwd)
            if text and text not in target:
                target.append(text)
    return tuple(keywords), tuple(mesh)


def _article_meta(root: etree._Element) -> ArticleMeta:
    front = root.find("front")
    meta = _first(front, "article-meta")
    journal_meta = _first(front, "journal-meta")
    ids = _ids(meta)
    journal = _text(journal_meta, "journal-title-group/journal-title") or _text(journal_meta, "journal-title")
    if journal is None and journal_meta is not None:
        for node in journal_meta.findall("journal-id"):
            if node.get("journal-id-type") == "nlm-ta" and node.text:
                journal = node.text.strip()
    license, license_url = _license(meta)
    keywords, mesh = _keywords(meta)
    return ArticleMeta(pmcid=_pmcid(ids), pmid=ids.get("pmid"), doi=ids.get("doi"),
                       title=_text(meta, "title-group/article-title"), journal=journal, year=_year(meta),
                       license=license, license_url=license_url, keywords=keywords, mesh=mesh)


# =========================================================================== figures
def _graphic(fig: etree._Element) -> str | None:
    """The href of a figure's own ``<graphic>``: a child, or a child of a child ``<alternatives>``."""
    for child in fig:
        name = _local(child.tag)
        if name == "graphic" and child.get(XLINK_HREF):
            return child.get(XLINK_HREF).strip()
        if name == "alternatives":
            for alternative in child:
                if _local(alternative.tag) == "graphic" and alternative.get(XLINK_HREF):
                    return alternative.get(XLINK_HREF).strip()
    return None


def _caption(fig: etree._Element) -> tuple[str | None, tuple[str, ...]]:
    caption = fig.find("caption")
    if caption is None:
        return None, ()
    title = None
    paragraphs = []
    for child in caption:
        name = _local(child.tag)
        if not name:
            continue
        text = flatten_text(child)
        if name == "title" and title is None:
            title = text or None
        elif text:
            paragraphs.append(text)
    return title, tuple(paragraphs)


def _citations(root: etree._Element, groups: dict[str, list[str]]) -> dict[str, list[str]]:
    """Figure id -> the text of each body paragraph citing it, in document order, each once."""
    cited: dict[str, list[str]] = {}
    body = root.find("body")
    if body is None:
        return cited
    texts: dict[etree._Element, str] = {}
    for xref in body.iter("xref"):
        if xref.get("ref-type") != "fig":
            continue
        paragraph = None
        for ancestor in xref.iterancestors():
            name = _local(ancestor.tag)
            if name in _FLOATS:  # a citation inside another figure's caption is not a body paragraph
                paragraph = None
                break
            if name == "p" and paragraph is None:
                paragraph = ancestor
        if paragraph is None:
            continue
        if paragraph not in texts:
            texts[paragraph] = flatten_text(paragraph, skip=_FLOATS)
        text = texts[paragraph]
        for rid in (xref.get("rid") or "").split():
            for fig_id in groups.get(rid, [rid]):
                seen = cited.setdefault(fig_id, [])
                if text and text not in seen:
                    seen.append(text)
    return cited


def _figures(root: etree._Element) -> tuple[Figure, ...]:
    figs = [fig for fig in root.iter("fig") if not any(_local(a.tag) == "sub-article" for a in fig.iterancestors())]
    ids = [fig.get("id") or f"fig{n}" for n, fig in enumerate(figs, start=1)]
    group_of: dict[int, str | None] = {}
    groups: dict[str, list[str]] = {}
    for n, fig in enumerate(figs):
        group = next((a for a in fig.iterancestors() if _local(a.tag) == "fig-group"), None)
        group_id = group.get("id") if group is not None else None
        group_of[n] = group_id
        if group_id:
            groups.setdefault(group_id, []).append(ids[n])
    cited = _citations(root, groups)
    figures = []
    for n, fig in enumerate(figs):
        title, paragraphs = _caption(fig)
        figures.append(Figure(id=ids[n], label=_text(fig, "label"), title=title, paragraphs=paragraphs,
                              graphic=_graphic(fig), fig_group=group_of[n], cited_by=tuple(cited.get(ids[n], ()))))
    return tuple(figures)


# =========================================================================== entry points
def parse_article(xml: bytes, *, name: str = "article") -> Article:
    """Parse one JATS article safely.

    Args:
        xml: the article's XML, unparsed.
        name: what the article is called in messages (its file, package member or URL).

    Returns:
        Its metadata and figures.

    Raises:
        HostileXmlError: the DOCTYPE has an internal subset (entity declarations); nothing was parsed.
        JatsError: the XML is not well-formed, or its root is not ``<article>``.
    """
    _check_doctype(xml, name)
    root = _parse_tree(xml, name)
    if _local(root.tag) != "article":
        raise JatsError(f"{name}: the root element is <{_local(root.tag)}>, not a JATS <article>")
    return Article(meta=_article_meta(root), figures=_figures(root))


def parse_article_file(path: str | Path) -> Article:
    """Parse the JATS article in the file ``path`` (see :func:`parse_article`).

    Args:
        path: the ``.nxml`` (or ``.xml``) file.
    """
    path = Path(path)
    return parse_article(path.read_bytes(), name=str(path))
