"""JATS parsing: metadata, figures (fig-group, alternatives), citations, licences, hostile XML, pubmed_parser."""

from __future__ import annotations

import http.server
import importlib.util
import sys
import threading
from pathlib import Path

import pubmed_parser
import pytest

from domainclip.core.errors import InputError
from domainclip.domains.biomed.jats import (
    HostileXmlError,
    JatsError,
    _parse_tree,
    license_family,
    normalise_license,
    parse_article,
    parse_article_file,
)

_spec = importlib.util.spec_from_file_location("bio_data_jats", Path(__file__).with_name("data_jats.py"))
data = importlib.util.module_from_spec(_spec)
sys.modules["bio_data_jats"] = data
_spec.loader.exec_module(data)

REAL = "biomed/pone.0046493.nxml"


# =============================================================================== fixtures in the PMC layout
def test_rich_article_metadata():
    spec = data.rich_article(license="CC BY-NC 4.0", mesh=["Lipase", "Mycobacterium tuberculosis"])
    meta = parse_article(data.article_xml(spec), name="rich").meta
    assert meta.pmcid == "PMC1000001" and meta.pmid == "31000001" and meta.doi == "10.1371/journal.pone.1000001"
    assert meta.title == "Lipolytic enzymes of Mycobacterium 13C study"
    assert meta.journal == "PLoS ONE"
    assert meta.year == 2021  # the epub date, not the collection's 2020
    assert meta.license == "CC BY-NC 4.0"
    assert meta.license_url == "https://creativecommons.org/licenses/by-nc/4.0/"
    assert meta.keywords == ("lipase", "tuberculosis")
    assert meta.mesh == ("Lipase", "Mycobacterium tuberculosis")


def test_rich_article_figures_groups_alternatives_and_citations():
    spec = data.rich_article()
    figures = parse_article(data.article_xml(spec), name="rich").figures
    by_id = {f.id: f for f in figures}
    assert [f.id for f in figures] == ["pone-1000001-g001", "pone-1000001-g004", "pone-1000001-g002",
                                       "pone-1000001-g003"]  # document order: the group follows figure 4
    for fig in spec.figures:
        parsed = by_id[fig.id]
        assert parsed.label == fig.label and parsed.title == fig.title
        assert list(parsed.paragraphs) == fig.paragraphs  # markup flattened, newline + indent collapsed, hair spaces
        assert parsed.graphic == fig.graphic
        assert parsed.fig_group == fig.group
        assert parsed.caption == fig.caption
    assert by_id["pone-1000001-g004"].graphic == "pone.1000001.g004"  # the <graphic>, not the media/inline ones
    # rid="g001 g002" cites both; each paragraph once per figure
    assert by_id["pone-1000001-g001"].cited_by == ("Paragraph 0 shows it (Figure 1) and in vivo data.",
                                                   "Both panels agree (Figures 1 and 2).")
    assert by_id["pone-1000001-g002"].cited_by == ("Paragraph 1 shows it (Figure 2) and in vivo data.",
                                                   "Both panels agree (Figures 1 and 2).")
    assert by_id["pone-1000001-g003"].cited_by == ("Paragraph 2 shows it (Figure 3) and in vivo data.",)


def test_group_citation_figure_in_paragraph_and_missing_parts():
    xml = (b'<article xmlns:xlink="http://www.w3.org/1999/xlink"><front><article-meta>'
           b'<article-id pub-id-type="pmcid">PMC77</article-id></article-meta></front><body>'
           b'<p>See <xref ref-type="fig" rid="grp">Figure 1</xref> for both.'
           b'<fig id="f1"><label>Figure 1A</label><caption><p>Inside the paragraph.</p></caption>'
           b'<graphic xlink:href="a"/></fig> Then more text.</p>'
           b'<fig-group id="grp"><fig id="f2"><caption><title>No label</title></caption></fig>'
           b'<fig><label>Fig 3</label><graphic xlink:href="c.jpg"/></fig></fig-group>'
           b'<p>Cites <xref ref-type="fig" rid="f1"/> and a table <xref ref-type="table" rid="f2"/>.</p></body>'
           b'</article>')
    article = parse_article(xml, name="x.nxml")
    assert article.meta.pmcid == "PMC77" and article.meta.license is None and article.meta.year is None
    f1, f2, f3 = article.figures
    assert f1.caption == "Figure 1A. Inside the paragraph."
    # the paragraph's own text, without the caption of the figure placed inside it; it cites the group
    assert f1.cited_by == ("Cites and a table .",)
    assert f2.cited_by == f3.cited_by == ("See Figure 1 for both. Then more text.",)
    assert (f2.label, f2.title, f2.graphic, f2.caption, f2.fig_group) == (None, "No label", None, "No label.", "grp")
    assert (f3.id, f3.caption, f3.graphic, f3.paragraphs) == ("fig3", "Fig 3.", "c.jpg", ())


@pytest.mark.parametrize(("url", "text", "kind", "expected"), [
    ("http://creativecommons.org/licenses/by/4.0/", None, None, "CC BY 4.0"),
    ("https://creativecommons.org/licenses/by-nc-nd/3.0/igo/", None, None, "CC BY-NC-ND 3.0"),
    ("https://creativecommons.org/publicdomain/zero/1.0/", None, None, "CC0 1.0"),
    (None, "This is an open-access article distributed under the terms of the Creative Commons Attribution "
           "License, which permits unrestricted use", None, "CC BY"),
    (None, "Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International", None, "CC BY-NC-SA 4.0"),
    (None, "Licensed under CC BY-NC 4.0.", None, "CC BY-NC 4.0"),
    (None, "Available under a CC0 public domain dedication", None, "CC0"),
    (None, None, "cc-by", "CC BY"),
    ("https://www.elsevier.com/open-access/userlicense/1.0/", "Elsevier user license", "open-access", "other"),
    (None, None, None, None),
])
def test_normalise_license(url, text, kind, expected):
    assert normalise_license(url, text, kind) == expected


def test_license_family():
    assert [license_family(x) for x in ("CC BY 4.0", "CC BY-NC-ND 3.0", "CC0 1.0", "cc-by", None, "other")] == [
        "CC BY", "CC BY-NC-ND", "CC0", "CC BY", "none", "other"]


def test_malformed_xml_is_one_line_naming_the_article():
    with pytest.raises(JatsError) as info:
        parse_article(b"<article><front></article>", name="PMC9/bad.nxml")
    message = str(info.value)
    assert isinstance(info.value, InputError) and info.value.reason == "bad_xml"
    assert message.startswith("PMC9/bad.nxml: not well-formed XML") and "\n" not in message
    with pytest.raises(JatsError, match="root element is <html>, not a JATS <article>"):
        parse_article(b"<html/>", name="x")


# =============================================================================== hostile XML
@pytest.fixture
def http_server():
    """A local HTTP server on 127.0.0.1 that records every request path."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<!ENTITY leak 'REMOTE-CONTENT'>")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def _external_entity(target: str) -> bytes:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE article [\n  <!ENTITY xxe SYSTEM "{target}">\n]>\n'
            '<article><front><article-meta><title-group><article-title>T &xxe; T</article-title></title-group>'
            '</article-meta></front></article>').encode()


def test_external_file_entity_is_refused_and_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    xml = _external_entity(secret.as_uri())
    with pytest.raises(HostileXmlError, match="internal subset") as info:
        parse_article(xml, name="evil.nxml")
    assert "TOP-SECRET-CONTENT" not in str(info.value) and info.value.reason == "hostile_xml"
    # the parser itself, were the DOCTYPE check bypassed, leaves the entity unexpanded: the file is not read
    root = _parse_tree(xml, "evil.nxml")
    assert "TOP-SECRET-CONTENT" not in "".join(root.itertext())


def test_external_http_entity_and_dtd_make_no_request(http_server):
    base, requests = http_server
    with pytest.raises(HostileXmlError):
        parse_article(_external_entity(f"{base}/entity"), name="evil.nxml")
    root = _parse_tree(_external_entity(f"{base}/entity"), "evil.nxml")  # the bare parser fetches nothing either
    assert "REMOTE-CONTENT" not in "".join(root.itertext())
    # a DOCTYPE naming an external DTD (as every PMC file does) is allowed, and the DTD is never fetched
    xml = (f'<!DOCTYPE article PUBLIC "-//NLM//DTD JATS//EN" "{base}/jats.dtd">'
           '<article><front><article-meta><title-group><article-title>ok &leak;</article-title></title-group>'
           '</article-meta></front></article>').encode()
    assert parse_article(xml, name="dtd.nxml").meta.title == "ok"
    assert requests == []


def test_entity_bomb_is_refused_before_parsing():
    entities = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 12))
    bomb = f'<?xml version="1.0"?><!DOCTYPE article [<!ENTITY e0 "lol">{entities}]><article>&e11;</article>'
    with pytest.raises(HostileXmlError, match="bomb.nxml: the DOCTYPE has an internal subset"):
        parse_article(bomb.encode(), name="bomb.nxml")
    # UTF-16 does not hide it
    with pytest.raises(HostileXmlError):
        parse_article(bomb.replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16"), name="b16")
    # nor does an internal subset without entities, or a comment before the DOCTYPE
    with pytest.raises(HostileXmlError):
        parse_article(b'<!-- x --><!DOCTYPE article [<!ELEMENT article ANY>]><article/>', name="subset")
    # nor does a long comment before it
    with pytest.raises(HostileXmlError):
        parse_article(b"<!--" + b"x" * 200_000 + b"-->" + bomb.split("?>", 1)[1].encode(), name="long")
    # a '[' inside the quoted ids is not a subset
    ok = b"<!DOCTYPE article SYSTEM 'dtd/a[1].dtd'><article/>"
    assert parse_article(ok, name="ok").figures == ()


# =============================================================================== the real file vs pubmed_parser
@pytest.fixture
def real(shared_data):
    path = shared_data / REAL
    return path, parse_article_file(path), pubmed_parser.parse_pubmed_xml(str(path)), \
        pubmed_parser.parse_pubmed_caption(str(path))


def test_real_file_fields_that_agree_with_pubmed_parser(real):
    _, article, meta, captions = real
    m = article.meta
    assert (m.pmid, m.pmcid, m.doi, m.journal) == (meta["pmid"], "PMC" + meta["pmc"], meta["doi"], meta["journal"])
    assert (m.pmid, m.pmcid, m.doi, m.journal) == ("23029536", "PMC3460867", "10.1371/journal.pone.0046493",
                                                   "PLoS ONE")
    assert m.year == meta["publication_year"] == 2012
    assert len(article.figures) == len(captions) == 4
    for fig, theirs in zip(article.figures, captions, strict=True):
        assert fig.id == theirs["fig_id"] and fig.label == theirs["fig_label"]
        assert fig.graphic == theirs["graphic_ref"]
        # title + paragraphs equal theirs once whitespace is collapsed on both sides
        assert " ".join([fig.title, *fig.paragraphs]) == " ".join(theirs["fig_caption"].split())
    assert [f.graphic for f in article.figures] == [f"pone.0046493.g00{k}" for k in range(1, 5)]
    assert article.figures[0].title == "Chemical structure of inhibitors."


def test_real_file_differences_caption_label_and_hair_spaces(real):
    """pubmed_parser's caption leaves out the label and keeps the XML's hair spaces (U+200A) around '='.

    Ours starts with the label (a caption the model reads as "Figure 3. ...") and collapses every
    whitespace run, Unicode spaces included, to one space.
    """
    _, article, _, captions = real
    fig3, theirs3 = article.figures[2], captions[2]
    assert theirs3["fig_caption"].startswith("Protein-inhibitor adducts studies using mass spectrometry.")
    assert fig3.caption.startswith("Figure 3. Protein-inhibitor adducts studies using mass spectrometry.")
    assert "(xI\u200a=\u200a20)" in theirs3["fig_caption"]
    assert "(xI = 20)" in fig3.caption and "\u200a" not in fig3.caption


def test_real_file_differences_title_spacing_and_licence(real):
    """pubmed_parser joins the title's inline elements with spaces ("M m PPOX", doubled spaces); it reads no licence.

    Ours flattens inline markup to the text as printed and reads the licence text as CC BY (no version given).
    """
    _, article, meta, _ = real
    assert meta["full_title"].startswith("M m PPOX Inhibits  Mycobacterium tuberculosis  Lipolytic")
    assert article.meta.title.startswith("MmPPOX Inhibits Mycobacterium tuberculosis Lipolytic")
    assert "license" not in meta and article.meta.license == "CC BY" and article.meta.license_url is None


def test_real_file_cited_by(real):
    _, article, _, _ = real
    counts = [len(f.cited_by) for f in article.figures]
    assert counts == [1, 2, 3, 1]  # 2, 3, 4 and 1 xrefs; two xrefs to figure 1 and 2 share a paragraph
    assert "(THL, Figure 1A)" in article.figures[0].cited_by[0]


# =============================================================================== fixture differences
def _write(tmp_path, xml: bytes) -> str:
    path = tmp_path / "a.nxml"
    path.write_bytes(xml)
    return str(path)


def test_difference_alternatives_graphic(tmp_path):
    """Inside <alternatives>, pubmed_parser finds no graphic (it looks at the figure's children only)."""
    spec = data.rich_article()
    xml = data.article_xml(spec)
    theirs = {c["fig_id"]: c for c in pubmed_parser.parse_pubmed_caption(_write(tmp_path, xml))}
    ours = {f.id: f for f in parse_article(xml).figures}
    assert theirs["pone-1000001-g004"]["graphic_ref"] is None
    assert ours["pone-1000001-g004"].graphic == "pone.1000001.g004"


def test_difference_fig_group_and_year(tmp_path):
    """pubmed_parser finds the figures of a <fig-group> but not the group; its year is the collection date's."""
    spec = data.rich_article()
    xml = data.article_xml(spec)
    path = _write(tmp_path, xml)
    theirs = pubmed_parser.parse_pubmed_caption(path)
    ours = parse_article(xml)
    assert [c["fig_id"] for c in theirs] == [f.id for f in ours.figures]
    assert all("group" not in key for c in theirs for key in c)
    assert [f.fig_group for f in ours.figures] == [None, None, "g-pair", "g-pair"]
    assert pubmed_parser.parse_pubmed_xml(path)["publication_year"] == 2020 and ours.meta.year == 2021


def test_difference_caption_from_previous_figure_and_nested_markup(tmp_path):
    """pubmed_parser gives a figure without a caption the caption of the figure before it (a stale variable),
    and reads inline markup one level deep, so text nested two levels down (<bold>A<sup>x</sup>y</bold>) is lost."""
    xml = (b'<article xmlns:xlink="http://www.w3.org/1999/xlink"><front><article-meta>'
           b'<article-id pub-id-type="pmid">1</article-id><article-id pub-id-type="pmc">2</article-id>'
           b'</article-meta></front><body>'
           b'<fig id="f1"><label>Figure 1</label><caption><p>Panel <bold>A<sup>x</sup>y</bold> z.</p></caption>'
           b'<graphic xlink:href="g1"/></fig><fig id="f2"><label>Figure 2</label><graphic xlink:href="g2"/></fig>'
           b'</body></article>')
    theirs = pubmed_parser.parse_pubmed_caption(_write(tmp_path, xml))
    ours = parse_article(xml).figures
    assert [c["fig_caption"] for c in theirs] == ["Panel A z.", "Panel A z."]
    assert [f.caption for f in ours] == ["Figure 1. Panel Axy z.", "Figure 2."]
