"""Local article sources and ``prepare biomed figures``: layouts, bad packages, shards, licences, resume, CLI errors."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from domainclip.cli import main
from domainclip.core.errors import NothingWrittenError
from domainclip.domains.biomed import figures as figures_module
from domainclip.domains.biomed.figures import encode_figure_image, prepare_figures
from domainclip.domains.biomed.sources import (
    ArticleRecord,
    SkippedArticle,
    iter_local_articles,
    read_article,
    resolve_media,
)

_spec = importlib.util.spec_from_file_location("bio_data_jats", Path(__file__).with_name("data_jats.py"))
data = importlib.util.module_from_spec(_spec)
sys.modules["bio_data_jats"] = data
_spec.loader.exec_module(data)

REPO = Path(__file__).resolve().parents[3]


def read_samples(out: Path) -> list[dict[str, bytes]]:
    """Every sample of every shard in ``out``, in shard order: {"__key__": ..., suffix: bytes}."""
    samples: list[dict] = []
    for shard in sorted(out.glob("figures*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar:
                key, _, suffix = member.name.partition(".")
                if not samples or samples[-1]["__key__"] != key or samples[-1].get("__shard__") != shard.name:
                    samples.append({"__key__": key, "__shard__": shard.name})
                samples[-1][suffix] = tar.extractfile(member).read()
    return samples


# =============================================================================== sources
def test_layouts_give_the_same_record(tmp_path):
    spec = data.simple_article(3000001, n=2)
    data.write_loose(tmp_path / "loose", spec)
    tar = data.write_tar(tmp_path / "pk" / f"{spec.pmcid}.tar.gz", data.package_members(spec))
    zipped = data.write_zip(tmp_path / "zp" / f"{spec.pmcid}.zip", data.package_members(spec))
    records = [read_article(tmp_path / "loose" / spec.pmcid / f"{spec.pmcid}.nxml"), read_article(tar),
               read_article(zipped)]
    assert all(isinstance(r, ArticleRecord) for r in records)
    assert {r.key for r in records} == {"PMC3000001"}
    assert all(r.xml == data.article_xml(spec) for r in records)
    assert all(r.media == data.media_files(spec) for r in records)  # the PDF is not read: the XML names it not
    assert records[1].origin == f"{tar}!PMC3000001/pone.3000001.nxml"


def test_bad_packages_are_skipped_with_reasons(tmp_path):
    spec = data.simple_article(3000002)
    good = data.write_tar(tmp_path / "good.tar.gz", data.package_members(spec)).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(good[: len(good) // 2])
    (tmp_path / "notgz.tgz").write_bytes(b"this is not gzip")
    members = data.package_members(spec)
    data.write_zip(tmp_path / "evil.zip", {**members, "PMC3000002/../../escaped.txt": b"pwned"})
    data.write_tar(tmp_path / "empty.tar.gz", {"PMC1/readme.txt": b"no xml"})
    with tarfile.open(tmp_path / "link.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("PMC5/pone.nxml")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    data.write_zip(tmp_path / "broken.zip", members)
    (tmp_path / "broken.zip").write_bytes((tmp_path / "broken.zip").read_bytes()[:100])
    reasons = {r.key: (r.reason, r.detail) for r in iter_local_articles([tmp_path]) if isinstance(r, SkippedArticle)}
    assert reasons["cut"][0] == "bad_archive" and "truncated or corrupt" in reasons["cut"][1]
    assert reasons["notgz"][0] == "bad_archive"
    assert reasons["evil"] == ("unsafe_archive", f"{tmp_path / 'evil.zip'}: member 'PMC3000002/../../escaped.txt' "
                                                 "would land outside the package's folder")
    assert reasons["empty"] == ("no_xml", f"{tmp_path / 'empty.tar.gz'}: no .nxml file in the package")
    assert reasons["link"][0] == "unsafe_archive" and "is a link" in reasons["link"][1]
    assert reasons["broken"][0] == "bad_archive"
    assert "good" not in reasons
    assert not (tmp_path.parent / "escaped.txt").exists() and not list(tmp_path.rglob("escaped.txt"))
    # skip: a finished key is not read at all
    assert [r.key for r in iter_local_articles([tmp_path], skip={"cut", "notgz", "evil", "empty", "link",
                                                                 "broken"})] == ["good"]


def test_resolve_media():
    media = {"a.g001.gif": b"", "a.g001.jpg": b"", "a.g001.tif": b"", "b.png": b"", "C.G3.PNG": b""}
    assert resolve_media("a.g001", media) == "a.g001.jpg"  # PMC's href has no extension: jpg before tif and gif
    assert resolve_media("graphics/b.png", media) == "b.png"
    assert resolve_media("b", media) == "b.png"
    assert resolve_media("c.g3", media) == "C.G3.PNG"
    assert resolve_media("zzz", media) is None


def test_encode_figure_image_keeps_small_files_and_scales_large_ones():
    png = data.image_bytes("png", (40, 30))
    assert encode_figure_image(png, 64) == ("png", png, (40, 30))  # byte for byte
    jpg = data.image_bytes("jpg", (300, 200))
    suffix, out, size = encode_figure_image(jpg, 64)
    assert (suffix, size) == ("jpg", (64, 43)) and Image.open(io.BytesIO(out)).size == (64, 43)
    tif = data.image_bytes("tif", (50, 20))
    suffix, out, size = encode_figure_image(tif, 64)  # a noisy photograph-like TIFF: JPEG
    assert (suffix, Image.open(io.BytesIO(out)).format, size) == ("jpg", "JPEG", (50, 20))
    gif = data.image_bytes("gif", (50, 20))
    assert encode_figure_image(gif, 64)[0] == "png"  # a palette image: PNG
    assert encode_figure_image(png, 64, "jpg")[0] == "jpg"
    with pytest.raises(figures_module._ImageError):
        encode_figure_image(data.image_bytes("broken"), 64)


def _encoded(image: Image.Image, fmt: str, max_side: int = 64) -> tuple[str, Image.Image]:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    suffix, out, _ = encode_figure_image(buffer.getvalue(), max_side)
    decoded = Image.open(io.BytesIO(out))
    decoded.load()
    return suffix, decoded


def test_encode_figure_image_modes_pmc_files_have():
    import numpy as np

    # a transparent chart background becomes white, not the black a reader's RGB conversion would give
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[5:10, 5:10] = (0, 0, 255, 255)
    suffix, image = _encoded(Image.fromarray(rgba), "PNG")
    pixels = np.asarray(image)
    assert (suffix, image.mode) == ("png", "RGB")
    assert pixels[0, 0].tolist() == [255, 255, 255] and pixels[7, 7].tolist() == [0, 0, 255]
    # a 16-bit microscopy TIFF is stretched to 8-bit grey over its own range
    grey16 = (np.arange(20 * 30).reshape(20, 30) * 7 + 1000).astype(np.uint16)
    suffix, image = _encoded(Image.fromarray(grey16), "TIFF")
    pixels = np.asarray(image)
    assert image.mode == "L" and (pixels.min(), pixels.max()) == (0, 255)
    # a CMYK JPEG (print-ready figures) is stored as RGB
    suffix, image = _encoded(Image.new("CMYK", (30, 20), (0, 255, 255, 0)), "JPEG")
    assert (suffix, image.mode) == ("jpg", "RGB") and np.asarray(image)[10, 10, 0] > 200


# =============================================================================== prepare_figures
@pytest.fixture
def mixed(tmp_path):
    """Six good articles in three layouts, a rich one, and one article for each way to fail."""
    root = tmp_path / "in"
    specs = data.write_collection(root, 6)
    rich = data.rich_article(license="CC BY-NC 4.0")
    data.write_loose(root, rich)
    gaps = data.simple_article(4000001, n=3, license="CC0 1.0",
                               figure_kwargs={2: {"image": "missing"}, 3: {"image": "broken"}})
    data.write_tar(root / f"{gaps.pmcid}.tar.gz", data.package_members(gaps))
    (root / "PMC4000002").mkdir()
    (root / "PMC4000002" / "PMC4000002.nxml").write_bytes(b"<article><front></article>")
    (root / "PMC4000003").mkdir()
    (root / "PMC4000003" / "PMC4000003.nxml").write_bytes(
        b'<!DOCTYPE article [<!ENTITY x SYSTEM "file:///etc/passwd">]><article>&x;</article>')
    good = (root / "PMC2000002.tar.gz").read_bytes()
    (root / "PMC4000004.tar.gz").write_bytes(good[: len(good) // 3])
    unlicensed = data.simple_article(4000005, n=1, license=None)
    data.write_zip(root / f"{unlicensed.pmcid}.zip", data.package_members(unlicensed))
    return root, specs, rich, gaps, unlicensed


def test_prepare_figures_writes_pairs_and_reports_skips(mixed, tmp_path):
    root, specs, rich, gaps, unlicensed = mixed
    out = tmp_path / "out"
    summary = prepare_figures(out, articles=[str(root)], progress=False, shard_size=5, max_side=48)
    samples = read_samples(out)
    keys = [s["__key__"] for s in samples]
    expected = {f"{s.pmcid}_{f.id}" for s in [*specs, rich, unlicensed] for f in s.figures}
    expected.add(f"{gaps.pmcid}_{gaps.figures[0].id}")
    assert len(keys) == len(set(keys)) == len(expected) and set(keys) == expected
    figs = {f"{s.pmcid}_{f.id}": (s, f) for s in [*specs, rich, gaps, unlicensed] for f in s.figures}
    for sample in samples:
        spec, fig = figs[sample["__key__"]]
        meta = json.loads(sample["json"])
        assert sample["txt"].decode() == fig.caption == meta["caption"]
        assert meta["article"] == spec.pmcid and meta["figure_id"] == fig.id and meta["graphic"] == fig.graphic
        assert meta["label"] == fig.label and meta["title"] == fig.title and meta["paragraphs"] == fig.paragraphs
        assert meta["fig_group"] == fig.group and meta["license"] == spec.license
        assert meta["cited_by"][0].startswith("Paragraph ")
        image_suffix = "jpg" if fig.image in ("jpg", "tif") else "png"
        image = Image.open(io.BytesIO(sample[image_suffix]))
        assert max(image.size) == 48  # 64 x 48 figures scaled down to max_side
    rows = [json.loads(line) for line in (out / "articles.jsonl").read_text().splitlines()]
    assert [r["pmcid"] for r in rows] == sorted(r["pmcid"] for r in rows)  # folder order
    by_id = {r["pmcid"]: r for r in rows}
    assert by_id[gaps.pmcid]["figures"] == 1 and by_id[rich.pmcid]["figures"] == 4
    assert by_id[rich.pmcid]["license"] == "CC BY-NC 4.0" and by_id[unlicensed.pmcid]["license"] is None
    assert set(by_id[rich.pmcid]) == {"pmcid", "pmid", "doi", "title", "journal", "year", "license", "license_url",
                                      "keywords", "mesh", "figures", "key", "origin"}
    assert summary["skipped_articles_by_reason"] == {"bad_archive": 1, "bad_xml": 1, "hostile_xml": 1}
    assert summary["skipped_figures_by_reason"] == {"missing_graphic": 1, "unreadable_image": 1}
    assert summary["figures_written"] == len(expected) and summary["articles_written"] == len(rows) == 9
    report = json.loads((out / "figures-report.json").read_text())
    missing = [f for f in report["skipped_figures"] if f["reason"] == "missing_graphic"]
    assert missing[0]["figure_id"] == gaps.figures[1].id and missing[0]["article"] == gaps.pmcid
    assert {a["key"]: a["reason"] for a in report["skipped_articles"]} == {
        "PMC4000002": "bad_xml", "PMC4000003": "hostile_xml", "PMC4000004": "bad_archive"}


def test_license_filter_counts_what_it_drops(mixed, tmp_path):
    root, specs, rich, gaps, unlicensed = mixed
    summary = prepare_figures(tmp_path / "out", articles=[str(root)], licenses=["CC BY", "CC0"], progress=False)
    assert summary["dropped_by_license"] == {"CC BY-NC": {"articles": 1, "figures": 4},
                                             "none": {"articles": 1, "figures": 1}}
    keys = {s["__key__"] for s in read_samples(tmp_path / "out")}
    assert not any(k.startswith((rich.pmcid, unlicensed.pmcid)) for k in keys)
    assert f"{gaps.pmcid}_{gaps.figures[0].id}" in keys and len(keys) == 16


def test_workers_write_the_same_bytes(mixed, tmp_path):
    root = mixed[0]
    prepare_figures(tmp_path / "one", articles=[str(root)], progress=False, shard_size=4)
    prepare_figures(tmp_path / "two", articles=[str(root)], progress=False, shard_size=4, workers=2)
    one = sorted(p.name for p in (tmp_path / "one").glob("*.tar"))
    assert one == sorted(p.name for p in (tmp_path / "two").glob("*.tar")) and len(one) == 6
    for name in one:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert (tmp_path / "one" / "articles.jsonl").read_bytes() == (tmp_path / "two" / "articles.jsonl").read_bytes()


def test_nothing_written(tmp_path):
    (tmp_path / "PMC1").mkdir()
    (tmp_path / "PMC1" / "PMC1.nxml").write_bytes(b"<article><oops></article>")
    spec = data.simple_article(5000001, n=1, figure_kwargs={1: {"image": "missing"}})
    data.write_loose(tmp_path, spec)
    with pytest.raises(NothingWrittenError) as info:
        prepare_figures(tmp_path / "out", articles=[str(tmp_path / "PMC1"), str(tmp_path / spec.pmcid)],
                        progress=False)
    message = str(info.value)
    assert message.startswith("biomed/figures wrote no figures from 2 articles: ")
    assert "bad_xml: 1" in message and "missing_graphic: 1" in message


# =============================================================================== resume
def _keys_once(out: Path) -> list[str]:
    keys = [s["__key__"] for s in read_samples(out)]
    assert len(keys) == len(set(keys)), Counter(k for k in keys if keys.count(k) > 1)
    return keys


def test_resume_after_a_failure_writes_no_sample_twice(mixed, tmp_path, monkeypatch):
    root = mixed[0]
    reference = tmp_path / "ref"
    prepare_figures(reference, articles=[str(root)], progress=False, shard_size=2)
    out = tmp_path / "out"
    from domainclip.core.data import writer as writer_module

    original = writer_module.ShardWriter.write
    calls = [0]

    def failing(self, sample):
        calls[0] += 1
        if calls[0] == 10:  # PMC2000002's third figure is in the open shard, its first two in a closed one
            raise RuntimeError("killed")
        return original(self, sample)

    monkeypatch.setattr(writer_module.ShardWriter, "write", failing)
    with pytest.raises(RuntimeError, match="killed"):
        prepare_figures(out, articles=[str(root)], progress=False, shard_size=2)
    monkeypatch.setattr(writer_module.ShardWriter, "write", original)
    first = _keys_once(out)
    assert len(first) == 8
    ledger = [json.loads(line) for line in (out / "figures-progress.jsonl").read_text().splitlines()]
    done = {a["key"] for line in ledger for a in line["articles"]}
    assert ledger[-1]["samples"] == {"PMC2000002": ["PMC2000002_pone-2000002-g001", "PMC2000002_pone-2000002-g002"]}
    assert "PMC2000002" not in done
    summary = prepare_figures(out, articles=[str(root)], progress=False, shard_size=2)
    keys = _keys_once(out)
    assert set(keys) == set(_keys_once(reference)) and summary["resumed"]
    assert summary["figures_written"] == len(keys) and summary["figures_written_this_run"] == len(keys) - len(first)
    rows = (out / "articles.jsonl").read_text().splitlines()
    assert sorted(rows) == sorted((reference / "articles.jsonl").read_text().replace(str(reference), str(out))
                                  .splitlines())
    again = prepare_figures(out, articles=[str(root)], progress=False, shard_size=2)  # a finished run: nothing new
    assert again["figures_written_this_run"] == 0 and _keys_once(out) == keys


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_resume_after_sigkill(mixed, tmp_path):
    root = mixed[0]
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from domainclip.core.data import writer as w
        original, calls = w.ShardWriter.write, [0]
        def write(self, sample):
            calls[0] += 1
            if calls[0] == 10:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, sample)
        w.ShardWriter.write = write
        from domainclip.domains.biomed.figures import prepare_figures
        prepare_figures(Path({str(out)!r}), articles=[{str(root)!r}], progress=False, shard_size=3)
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()[-2000:]
    assert any(n.endswith(".tmp") for n in os.listdir(out))  # the open shard's temporary file is left behind
    prepare_figures(out, articles=[str(root)], progress=False, shard_size=3)
    prepare_figures(tmp_path / "ref", articles=[str(root)], progress=False, shard_size=3)
    assert set(_keys_once(out)) == set(_keys_once(tmp_path / "ref"))
    assert not any(n.endswith(".tmp") for n in os.listdir(out))


# =============================================================================== the command line
def _cli(argv, capsys):
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("domainclip") and ": error: " in line]
    return code, lines, err


@pytest.mark.parametrize("case", ["no-source", "listing-without-pmc", "unknown-license", "missing-path",
                                  "nothing-written"])
def test_cli_user_errors(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["prepare", "biomed", "figures", "--out", str(tmp_path / "o"), "--no-progress"]
    spec = data.simple_article(6000001, n=1)
    data.write_loose(tmp_path / "in", spec)
    argv, expected = {
        "no-source": (base, ["give local articles (--articles"]),
        "listing-without-pmc": (base + ["--articles", str(tmp_path / "in"), "--listing", "x.txt"],
                                ["--listing names PMC Cloud articles"]),
        "unknown-license": (base + ["--articles", str(tmp_path / "in"), "--licenses", "MIT"],
                            ["licenses: unknown licence family 'MIT'; choose from CC BY"]),
        "missing-path": (base + ["--articles", str(tmp_path / "absent")], [f"article {tmp_path / 'absent'} does not"]),
        "nothing-written": (base + ["--articles", str(tmp_path / "in"), "--licenses", "CC0"],
                            ["biomed/figures wrote no figures from 1 article: license CC BY: 1"]),
    }[case]
    code, lines, err = _cli(argv, capsys)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
    for text in expected:
        assert text in lines[0], (text, lines[0])


# =============================================================================== PMC Cloud source
_cloud_path = Path(__file__).with_name("data_pmc_cloud.py")
_cloud_spec = importlib.util.spec_from_file_location("bio_data_pmc_cloud", _cloud_path)
cloud = importlib.util.module_from_spec(_cloud_spec)
sys.modules["bio_data_pmc_cloud"] = cloud
_cloud_spec.loader.exec_module(cloud)


def test_pmc_cloud_over_http_and_mounted(tmp_path):
    bucket = tmp_path / "bucket"
    truth = cloud.write_bucket(bucket, n=4)
    listing = tmp_path / "articles.txt"
    listing.write_text("".join(f"{key}\n" for key in truth))
    with cloud.serve_bucket(bucket) as server:
        summary = prepare_figures(tmp_path / "http", pmc=server.url, listing=str(listing), licenses=["CC BY", "CC0"],
                                  progress=False)
    mounted = prepare_figures(tmp_path / "mounted", pmc=str(bucket), licenses=["CC BY", "CC0"], progress=False)
    # PMC9000001.1 (CC BY, 1 figure), its version 2 (CC0, the same article: skipped), 9000002 (CC BY-NC, 3
    # figures: dropped), 9000003 (no licence in XML or record, 1 figure: dropped), 9000004 (CC BY, 2 figures)
    keys = [s["__key__"] for s in read_samples(tmp_path / "http")]
    assert keys == ["PMC9000001_F1", "PMC9000004_F1", "PMC9000004_F2"]
    assert [s["__key__"] for s in read_samples(tmp_path / "mounted")] == keys
    assert summary["skipped_articles_by_reason"] == {"duplicate_article": 1}
    assert summary["dropped_by_license"] == {"CC BY-NC": {"articles": 1, "figures": 3},
                                             "none": {"articles": 1, "figures": 1}}
    assert mounted["figures_written"] == 3
    rows = [json.loads(line) for line in (tmp_path / "http" / "articles.jsonl").read_text().splitlines()]
    assert [(r["pmcid"], r["key"], r["license"], r["figures"]) for r in rows] == [
        ("PMC9000001", "PMC9000001.1", "CC BY", 1), ("PMC9000004", "PMC9000004.1", "CC BY", 2)]
