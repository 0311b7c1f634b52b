"""Tests of the synthetic article generator (domainclip.domains.biomed.synthetic)."""

import io
import json
import re
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from lxml import etree
from PIL import Image

from domainclip.core.errors import InputError
from domainclip.core.io import safe_key
from domainclip.domains.biomed.synthetic import (
    DUPLICATE_KINDS,
    MALFORMED_KINDS,
    PACKAGES,
    PAINTERS,
    SUMMARY_FILE,
    TRUTH_FILE,
    TYPES_FOLDER,
    generate_articles,
    paint,
)
from domainclip.domains.biomed.synthetic import articles as articles_module
from domainclip.domains.biomed.synthetic.jats import LICENCES
from domainclip.domains.biomed.taxonomy import figure_type_names

N = 30
MALFORMED = 4
#: Fractions raised so that a small set holds every kind of duplicate, layout and hard case.
OPTIONS = {"seed": 2, "max_figures": 5, "exact_fraction": 0.1, "resized_fraction": 0.07,
           "recompressed_fraction": 0.07, "cropped_fraction": 0.07, "multipanel_fraction": 0.25,
           "hard_case_fraction": 0.15, "fig_group_fraction": 0.4, "alternatives_fraction": 0.1,
           "max_size": 256}
XLINK = "{http://www.w3.org/1999/xlink}href"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """30 articles and 4 broken ones written by two workers, in chunks of 4 so that they finish out of order."""
    out = tmp_path_factory.mktemp("bio_synthetic") / "set"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(articles_module, "CHUNK", 4)
        summary = generate_articles(out, N, workers=2, progress=False, malformed=MALFORMED, **OPTIONS)
    records = [json.loads(line) for line in (out / TRUTH_FILE).read_text(encoding="utf-8").splitlines()]
    return out, summary, records


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _package(out: Path, path: str, pmcid: str) -> dict[str, bytes]:
    """The files of one article, by name (the .nxml as 'article.nxml'), from a folder, .tar.gz or .zip."""
    location = out / path
    if location.is_dir():
        files = {p.name: p.read_bytes() for p in location.iterdir()}
    elif location.name.endswith(".tar.gz"):
        with tarfile.open(location) as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            assert all(m.name.startswith(f"{pmcid}/") for m in members)
            files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in members}
    else:
        with zipfile.ZipFile(location) as archive:
            assert all(name.startswith(f"{pmcid}/") for name in archive.namelist())
            files = {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()}
    nxml = [name for name in files if name.endswith(".nxml")]
    assert len(nxml) == 1, files.keys()
    files["article.nxml"] = files.pop(nxml[0])
    return files


def _by_article(records):
    grouped = {}
    for record in records:
        grouped.setdefault(record["article"], []).append(record)
    return grouped


def _text(element) -> str:
    return re.sub(r"\s+", " ", "".join(element.itertext())).strip()


def _caption(fig) -> str:
    """Caption title and paragraphs joined by spaces (as the ETL joins them)."""
    return " ".join(_text(part) for part in fig.find("caption"))


def _image(out: Path, record) -> Image.Image:
    data = _package(out, record["path"], record["article"])[record["file"]]
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def test_layout_packages_and_summary(generated):
    out, summary, records = generated
    assert summary["n"] == N and summary["seed"] == 2 and summary["out"] == str(out)
    written = json.loads((out / SUMMARY_FILE).read_text())
    assert written == {k: v for k, v in summary.items() if k not in ("out", "summary", "seconds", "figures_per_second")}
    articles = _by_article(records)
    assert len(articles) == N  # every article has at least one figure
    paths = {rs[0]["path"] for rs in articles.values()}
    items = sorted(p.name for p in (out / "articles").iterdir())
    assert len(items) == N + MALFORMED
    assert sorted(Path(p).name for p in paths | {m["path"] for m in summary["malformed"]}) == items
    kinds = Counter("folder" if (out / p).is_dir() else p.split(".", 1)[1] for p in paths)
    assert kinds == Counter(PACKAGES[i % len(PACKAGES)] for i in range(N)) == Counter(summary["articles_by_package"])
    for pmcid, rs in articles.items():
        path = rs[0]["path"]
        assert path in (f"articles/{pmcid}", f"articles/{pmcid}.tar.gz", f"articles/{pmcid}.zip")
        if (out / path).is_dir():
            assert (out / path / f"{pmcid}.nxml").is_file()
    assert summary["figures"] == len(records)
    assert summary["figures_by_type"] == {t: sum(r["figure_type"] == t for r in records) for t in figure_type_names()}
    assert not list(out.rglob("*.tmp")), "temporary files were left behind"
    # the raised fractions gave every kind of figure
    assert all(summary["figures_by_duplicate_kind"][k] > 0 for k in DUPLICATE_KINDS)
    assert all(v > 0 for v in summary["hard_cases"].values())
    assert summary["figures_with_thumbnail"] == sum(r["thumbnail"] is not None for r in records) > 0
    assert any(r["fig_group"] for r in records) and any(len(r["panel_labels"]) > 1 for r in records)
    assert sum(summary["articles_by_licence"].values()) == N and len(summary["articles_by_licence"]) >= 3


def test_jats_parses_and_agrees_with_the_truth(generated):
    out, _, records = generated
    for pmcid, rs in _by_article(records).items():
        files = _package(out, rs[0]["path"], pmcid)
        root = etree.fromstring(files["article.nxml"], PARSER)
        meta = root.find("front/article-meta")
        assert "PMC" + meta.find("article-id[@pub-id-type='pmc']").text == pmcid
        assert meta.find("article-id[@pub-id-type='pmid']").text.isdigit()
        assert meta.find("article-id[@pub-id-type='doi']").text.startswith("10.5555/")
        assert _text(meta.find("title-group/article-title")) and meta.find("pub-date/year").text.isdigit()
        assert root.find("front/journal-meta/journal-title-group/journal-title").text
        assert meta.findall("kwd-group/kwd")
        licence = meta.find("permissions/license")
        if rs[0]["licence"] is None:
            assert licence is None
        else:
            assert licence.get(XLINK) == LICENCES[rs[0]["licence"]][0]
        figs = root.findall(".//fig")
        assert [f.get("id") for f in figs] == [r["figure_id"] for r in rs]
        cited = {x.get("rid") for x in root.iter("xref") if x.get("ref-type") == "fig"}
        names = set(files)
        for fig, record in zip(figs, rs):
            assert fig.get("position") == "float"
            assert fig.findtext("label") == record["label"]
            graphics = fig.findall(".//graphic")
            assert graphics[0].get(XLINK) == record["graphic"]
            assert record["file"] in names and record["file"].rsplit(".", 1) == [record["graphic"], record["file"][-3:]]
            if record["thumbnail"]:
                assert fig.find("alternatives") is not None and graphics[1].get("specific-use") == "thumbnail"
                assert graphics[1].get(XLINK) == record["thumbnail"] and f"{record['thumbnail']}.jpg" in names
            else:
                assert len(graphics) == 1
            assert record["figure_id"] in cited
            caption = _caption(fig)
            assert caption
            labels = re.findall(r"(?:\(([A-D])\)|(?:^|[.;] )([A-D]),)", caption)
            assert [a or b for a, b in labels] == record["panel_labels"], caption
            parent = fig.getparent()
            assert (parent.tag == "fig-group") == (record["fig_group"] is not None)
            if record["fig_group"]:
                assert parent.get("id") == record["fig_group"]
            assert record["figure_type"] in figure_type_names()
            assert record["panels"] == (1 if record["hard_case"] == "inset" else len(record["panel_types"]))


def test_pubmed_parser_reads_the_articles(generated):
    pp = pytest.importorskip("pubmed_parser")
    out, _, records = generated
    checked = 0
    for pmcid, rs in _by_article(records).items():
        folder = out / rs[0]["path"]
        if not folder.is_dir():
            continue
        captions = pp.parse_pubmed_caption(str(folder / f"{pmcid}.nxml"))
        assert [c["fig_id"] for c in captions] == [r["figure_id"] for r in rs]
        for c, record in zip(captions, rs):
            assert "PMC" + c["pmc"] == pmcid and c["fig_label"] == record["label"] and c["fig_caption"]
            # pubmed_parser looks for <graphic> only as a direct child of <fig>, not inside <alternatives>
            expected = None if record["thumbnail"] else record["graphic"]
            assert c["graphic_ref"] == expected
        checked += 1
    assert checked >= N // 2


def test_same_bytes_for_any_number_of_workers(generated, tmp_path):
    out, _, _ = generated
    one = tmp_path / "one"
    generate_articles(one, N, workers=1, progress=False, malformed=MALFORMED, **OPTIONS)
    first, second = _files(out), _files(one)
    assert sorted(first) == sorted(second)
    assert [k for k in first if first[k] != second[k]] == []


def test_duplicates_are_copies_of_earlier_figures(generated):
    out, _, records = generated
    by_key = {(r["article"], r["figure_id"]): (i, r) for i, r in enumerate(records)}
    rng = np.random.default_rng(0)
    seen = Counter()
    for i, record in enumerate(records):
        if record["duplicate_of"] is None:
            assert record["duplicate_kind"] is None
            continue
        j, source = by_key[record["duplicate_of"]["article"], record["duplicate_of"]["figure_id"]]
        assert source["article"] < record["article"] and j < i  # the original comes first
        assert source["duplicate_of"] is None and source["panels"] == 1 and source["hard_case"] is None
        assert (record["figure_type"], record["subject"]) == (source["figure_type"], source["subject"])
        kind = record["duplicate_kind"]
        seen[kind] += 1
        ours = _package(out, record["path"], record["article"])[record["file"]]
        theirs = _package(out, source["path"], source["article"])[source["file"]]
        if kind == "exact":
            assert ours == theirs
            continue
        assert ours != theirs
        a, b = _image(out, record), _image(out, source)
        if kind == "recompressed":
            assert record["file"].endswith(".jpg") and a.size == b.size
        elif kind == "resized":
            assert a.size != b.size and abs(a.width / a.height - b.width / b.height) < 0.02
        else:
            assert a.width <= b.width and a.height < b.height
            assert a.width >= 0.9 * b.width and a.height >= 0.9 * b.height

        def small(image):
            return np.asarray(image.convert("L").resize((32, 32), Image.BILINEAR), np.float32)

        near = np.abs(small(a) - small(b)).mean()
        others = [r for r in records if r["figure_type"] != record["figure_type"] and r["duplicate_of"] is None]
        other = others[int(rng.integers(len(others)))]
        far = np.abs(small(a) - small(_image(out, other))).mean()
        assert near < 14 and near < far, (kind, near, far)
    assert all(seen[k] for k in DUPLICATE_KINDS)


def test_distinct_figures_are_not_perceptual_duplicates(generated):
    """Figures drawn from one template (two chest X-rays, two flowcharts) differ by more than their copies do."""
    imagehash = pytest.importorskip("imagehash")
    out, _, records = generated
    originals = [r for r in records if r["duplicate_of"] is None and r["panels"] == 1 and not r["panel_labels"]]
    hashes = {(r["article"], r["figure_id"]): imagehash.phash(_image(out, r)) for r in originals}
    keys = list(hashes)
    close = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:] if hashes[a] - hashes[b] <= 4]
    assert len(originals) > 30 and close == []
    for record in records:
        if record["duplicate_kind"] in ("exact", "resized", "recompressed"):
            source = hashes[record["duplicate_of"]["article"], record["duplicate_of"]["figure_id"]]
            assert imagehash.phash(_image(out, record)) - source <= 4, record


def test_figure_types_folder_holds_every_original_single_panel_figure(generated):
    out, summary, records = generated
    expected = {t: sorted(f"{safe_key(r['article'] + '_' + r['figure_id'])}.png" for r in records
                          if r["figure_type"] == t and r["duplicate_of"] is None and r["panels"] == 1
                          and r["hard_case"] is None and not r["panel_labels"])
                for t in figure_type_names()}
    written = {t: sorted(p.name for p in (out / TYPES_FOLDER / t).glob("*.png")) for t in figure_type_names()}
    assert written == expected
    assert summary["figure_types_written"] == {t: len(v) for t, v in expected.items()}
    name = next(n for names in written.values() for n in names)
    with Image.open(out / TYPES_FOLDER / next(t for t in written if name in written[t]) / name) as image:
        assert image.format == "PNG" and 160 <= max(image.size) <= 256


def test_captions_name_the_figure_type(generated):
    out, _, records = generated
    words = {"clinical_imaging": ("radiograph", "x-ray", "ct ", "computed tomography", "mri", "magnetic resonance",
                                  "mr image", "ultraso", "sonogra", "b-mode"),
             "microscopy": ("microscop", "micrograph", "fluorescen", "staining", "stained", "h&e", "immunohisto", "ihc",
                            "tem "),
             "gel_blot": ("blot", "gel", "sds-page", "electrophoresis"),
             "chart": ("chart", "plot", "graph", "curve", "kaplan", "quantification", "time course", "kinetics",
                       "correlation"),
             "diagram": ("diagram", "schematic", "flow", "timeline", "model", "pathway"),
             "chemical_structure": ("structure", "formula"),
             "table": ("table", "tabul"),
             "photograph": ("photograph", "specimen", "clinical image", "macroscopic")}
    for pmcid, rs in _by_article(records).items():
        root = etree.fromstring(_package(out, rs[0]["path"], pmcid)["article.nxml"], PARSER)
        for fig, record in zip(root.findall(".//fig"), rs):
            text = _caption(fig).lower() + " "
            assert any(w in text for w in words[record["figure_type"]]), (record["figure_type"], text)


def test_malformed_items_are_broken_as_recorded(generated):
    out, summary, _ = generated
    assert [m["kind"] for m in summary["malformed"]] == list(MALFORMED_KINDS)
    for item in summary["malformed"]:
        path = out / item["path"]
        if item["kind"] == "truncated_archive":
            with pytest.raises((tarfile.TarError, EOFError, OSError)), tarfile.open(path) as tar:
                for member in tar.getmembers():
                    tar.extractfile(member).read() if member.isfile() else None
            continue
        nxml = path / f"{item['article']}.nxml"
        if item["kind"] == "bad_xml":
            with pytest.raises(etree.XMLSyntaxError):
                etree.fromstring(nxml.read_bytes(), PARSER)
            continue
        root = etree.fromstring(nxml.read_bytes(), PARSER)
        href = root.find(".//fig//graphic").get(XLINK)
        files = [p for p in path.iterdir() if p.name.startswith(href + ".")]
        if item["kind"] == "missing_graphic":
            assert files == []
        else:
            assert len(files) == 1
            with pytest.raises(Exception, match="cannot identify image file"):
                Image.open(files[0])


def test_n_and_seed_are_respected(tmp_path):
    a = generate_articles(tmp_path / "a", 3, seed=5, progress=False, max_size=200, figure_types=("table", "chart"))
    b = generate_articles(tmp_path / "b", 3, seed=6, progress=False, max_size=200, figure_types=("table", "chart"))
    ids = sorted(p.name.split(".")[0] for p in (tmp_path / "a" / "articles").iterdir())
    assert ids == [f"PMC{20_000_000 + 5 * 1_000_000 + i}" for i in range(3)]
    assert a["n"] == 3 and set(a["figures_by_type"]) == {"chart", "table"}
    records = [json.loads(line) for line in (tmp_path / "a" / TRUTH_FILE).read_text().splitlines()]
    assert {r["figure_type"] for r in records} <= {"chart", "table"} and len(records) == a["figures"]
    ids_b = {p.name.split(".")[0] for p in (tmp_path / "b" / "articles").iterdir()}
    assert ids_b.isdisjoint(ids) and b["seed"] == 6


@pytest.mark.parametrize(("options", "message"), [
    ({"min_figures": 4, "max_figures": 2}, "min_figures"),
    ({"min_size": 300, "max_size": 200}, "min_size"),
    ({"exact_fraction": 0.6, "cropped_fraction": 0.5}, "duplicate fractions"),
    ({"figure_types": ()}, "figure_types"),
])
def test_bad_options_are_one_line_errors(tmp_path, options, message):
    with pytest.raises(InputError, match=message):
        generate_articles(tmp_path / "x", 2, progress=False, **options)


@pytest.mark.parametrize("figure_type", sorted(PAINTERS))
def test_painters_draw_the_asked_size_reproducibly(figure_type):
    first, facts = paint(figure_type, np.random.default_rng([1, 2]), 203, 171)
    again, facts_again = paint(figure_type, np.random.default_rng([1, 2]), 203, 171)
    assert first.size == (203, 171) and first.mode == "RGB" and facts == facts_again and facts["subject"]
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert np.asarray(first).std() > 10  # something was drawn


@pytest.mark.real_data
def test_structure_follows_a_real_pmc_file(generated, shared_data):
    """The elements the ETL reads sit where a real PMC file has them."""
    real = etree.parse(str(shared_data / "biomed" / "pone.0046493.nxml"), PARSER).getroot()
    out, _, records = generated
    record = next(r for r in records if (out / r["path"]).is_dir())
    ours = etree.fromstring(_package(out, record["path"], record["article"])["article.nxml"], PARSER)
    paths = ("front/journal-meta/journal-title-group/journal-title", "front/article-meta/article-id",
             "front/article-meta/title-group/article-title", "front/article-meta/pub-date/year",
             "front/article-meta/permissions", "front/article-meta/abstract/p", "body/sec/title", "back/ref-list/ref")
    for path in paths:
        assert real.find(path) is not None and ours.find(path) is not None, path
    for doc in (real, ours):
        assert {e.get("pub-id-type") for e in doc.findall("front/article-meta/article-id")} >= {"pmid", "pmc", "doi"}
    for doc in (real, ours):
        fig = doc.find(".//fig")
        assert fig.get("position") == "float" and fig.find("label") is not None
        assert fig.find("caption/title") is not None or fig.find("caption/p") is not None
        assert not re.search(r"\.(jpe?g|png|tiff?|gif)$", fig.find(".//graphic").get(XLINK))  # no file extension
        assert any(x.get("ref-type") == "fig" for x in doc.iter("xref"))
