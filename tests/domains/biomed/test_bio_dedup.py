"""``prepare biomed dedup``: duplicates found against known truth, the sub-linear index, user errors."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from domainclip.cli import main
from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.reader import iter_shard
from domainclip.core.data.writer import FIXED_MTIME, ShardWriter
from domainclip.core.errors import InputError, NothingWrittenError
from domainclip.domains.biomed.dedup import (
    ExactIndex,
    NearIndex,
    PixelSignature,
    deduplicate_figures,
    image_hash,
    pixel_distance,
    trim_box,
)

_spec = importlib.util.spec_from_file_location("bio_data_figshards", Path(__file__).with_name("data_figshards.py"))
data = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = data
_spec.loader.exec_module(data)


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    """Figure shards with 6 duplicates of each kind, 8 chart siblings, 4 near-blank panels, 4 multi-panel figures."""
    root = tmp_path_factory.mktemp("figshards") / "figures"
    truth = data.write_figure_shards(root, originals=30, siblings=8, blanks=4,
                                     duplicates={kind: 6 for kind in data.DUPLICATE_KINDS})
    return root, truth


@pytest.fixture(scope="module")
def deduplicated(figures, tmp_path_factory):
    root, truth = figures
    out = tmp_path_factory.mktemp("dedup") / "out"
    summary = deduplicate_figures(out, [root], progress=False)
    found = {r["key"]: r for r in map(json.loads, (out / "duplicates.jsonl").read_text().splitlines())}
    return out, summary, found


def _samples(folder: Path) -> dict[str, dict]:
    tally = CorruptTally()
    samples = {s["__key__"]: s for p in sorted(folder.glob("*.tar")) for s in iter_shard(str(p), tally)}
    assert not tally.counts
    return samples


def _scores(truth, found, kind):
    true = {t.key: t.duplicate_of for t in truth if t.duplicate_kind == kind}
    predicted = {k: r["duplicate_of"] for k, r in found.items() if r["kind"] == kind}
    hits = sum(true.get(k) == v for k, v in predicted.items())
    return hits / max(len(predicted), 1), hits / len(true), hits, len(predicted), len(true)


def test_precision_and_recall_of_exact_and_near_duplicates(figures, deduplicated):
    _, truth = figures
    out, summary, found = deduplicated
    for kind, n in (("exact", 12), ("near", 18)):
        precision, recall, hits, predicted, true = _scores(truth, found, kind)
        assert (hits, predicted, true) == (n, n, n), kind  # measured: every duplicate, nothing else
        assert precision >= 0.95 and recall >= 0.95
    assert summary["exact_bytes"] == 6 and summary["exact_pixels"] == 6  # a re-saved PNG is exact
    assert summary["figures"] == len(truth) and summary["kept"] == len(truth) - 30
    assert all(r["distance"] == 0 for r in found.values() if r["kind"] == "exact")
    near = [r["distance"] for r in found.values() if r["kind"] == "near"]
    assert 0 < max(near) <= summary["settings"]["near_threshold"]
    assert sum(summary["near_distances"].values()) == 18


def test_similar_charts_and_blank_panels_are_not_duplicates(figures, deduplicated):
    _, truth = figures
    out, summary, found = deduplicated
    siblings = [t for t in truth if t.sibling_of]
    blanks = [t for t in truth if t.kind == "blank"]
    assert len(siblings) == 8 and not any(t.key in found for t in siblings + blanks)
    kept = _samples(out)
    assert all(t.key in kept for t in siblings + blanks)
    assert summary["low_information"] == 4  # the blanks take part in exact matching only
    # the guard is needed: near-blank panels are close in dhash, and siblings close in phash alone
    images = {t.key: kept[t.key]["png"] for t in siblings + blanks}
    hashes = {k: (image_hash(Image.open(io.BytesIO(v)), "phash", 8), image_hash(Image.open(io.BytesIO(v)), "dhash", 8))
              for k, v in images.items()}
    blank_dhash = [(hashes[a.key][1] ^ hashes[b.key][1]).bit_count() for a, b in itertools.combinations(blanks, 2)]
    assert max(blank_dhash) <= 9


def test_kept_shards_keep_every_member_and_the_articles(figures, deduplicated):
    root, truth = figures
    out, summary, found = deduplicated
    before, after = _samples(root), _samples(out)
    assert list(after) == [t.key for t in truth if not t.duplicate_of]  # first occurrences, in order
    for key, sample in after.items():
        assert {k: v for k, v in sample.items() if k != "__url__"} == \
            {k: v for k, v in before[key].items() if k != "__url__"}
    assert (out / "articles.jsonl").read_bytes() == (root / "articles.jsonl").read_bytes()
    assert summary["articles"] == len(truth)
    report = json.loads((out / "dedup-report.json").read_text())
    assert report["kept"] == len(after) and report["near"] == 18
    table = (out / "dedup-report.md").read_text()
    assert "| near duplicates | 18 |" in table and "| exact duplicates (same bytes) | 6 |" in table
    with Image.open(out / "dedup-examples.png") as grid:
        assert grid.height > grid.width  # one row per example pair
    assert not list(out.glob(".dedup-*"))  # the scratch folder is gone


def test_near_index_finds_exactly_what_brute_force_finds_and_looks_at_few():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 1 << 63, 4000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 4000, dtype=np.uint64)
    index = NearIndex(64, 10)
    for value in base.tolist():
        index.add(value)
    for q in range(60):
        value = int(base[q * 50])
        flips = rng.choice(64, int(rng.integers(0, 13)), replace=False)
        query = value ^ int(sum(1 << int(b) for b in flips))
        ids, dists = index.query(query)
        brute = np.bitwise_count(base ^ np.uint64(query))
        assert sorted(ids.tolist()) == np.flatnonzero(brute <= 10).tolist()
        assert dists.tolist() == brute[ids].tolist()
        assert (q * 50 in ids.tolist()) == (len(flips) <= 10)
    # sub-linear: a query looks up 4 chunks x 137 values, so random hashes give a handful of candidates
    found = [index.tables[c].find(np.uint64((int(base[0]) >> s) & 0xFFFF) ^ index.masks[c])
             for c, (s, _) in enumerate(index.chunks)]
    assert index.radius == 2 and sum(len(f) for f in found) < len(base) / 50
    assert len(index.tables[0].runs) <= 4  # runs of 1024 merged log-structured
    # memory: the hash (8 bytes) and a uint16 chunk value with an int32 id per chunk table (4 x 6)
    assert index.nbytes / len(index) <= 8 + 4 * 6


def _timeline(labels: list[str]) -> np.ndarray:
    """A timeline diagram (a box, an axis, labelled ticks): the template of the generator's hardest false matches."""
    from PIL import ImageDraw, ImageFont

    image = Image.new("RGB", (380, 380), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    draw.rounded_rectangle((38, 30, 335, 100), 6, fill=(198, 218, 238), outline="black")
    draw.text((150, 58), "Dosing: 10 mg/kg daily", fill="black", font=font)
    draw.line((15, 192, 355, 192), fill="black", width=2)
    for i, label in enumerate(labels):
        draw.line((38 + i * 74, 184, 38 + i * 74, 200), fill="black", width=2)
        draw.text((20 + i * 74, 166 if i % 2 else 204), label, fill="black", font=font)
    return np.asarray(image)


def test_pixel_distance_aligns_crops_and_tells_same_layout_figures_apart():
    rng = np.random.default_rng(4)
    image = data.chart(np.random.default_rng(7))
    sibling = data.chart(np.random.default_rng(7), data_seed=99)  # same axes, style and size, other data
    h, w = image.shape[:2]
    cropped = image[int(h * 0.03) : h - 2, 3 : w - int(w * 0.02)]  # uneven crops, up to 3 % an edge
    jpeg = np.asarray(Image.open(io.BytesIO(data.encode(image, "jpg", quality=35))))
    small = np.asarray(Image.fromarray(image).resize((w * 2 // 3, h * 2 // 3), Image.Resampling.LANCZOS))
    sign = lambda a: PixelSignature(Image.fromarray(a))  # noqa: E731
    original = sign(image)
    copies = [pixel_distance(original, sign(copy)) for copy in (cropped, jpeg, small)]
    # measured (mean, local): (0.32, 0.52) crop, (0.27, 0.50) JPEG 35, (0.26, 0.52) 2/3 size; limits 0.65, 1.15
    assert max(mean for mean, _ in copies) < 0.45 and max(local for _, local in copies) < 0.8, copies
    assert pixel_distance(sign(cropped), original) == pytest.approx(copies[0])  # symmetric: either may be the crop
    assert pixel_distance(original, sign(sibling))[0] > 2.0  # measured 3.8
    assert pixel_distance(original, sign(data.texture(rng, (h, w))))[0] > 10  # measured 21
    # the same template with other labels: close on average (0.37), far where a label changed (1.29)
    first, other = _timeline(["Baseline", "Day 6", "Month 10", "Day 34", "Day 44"]), \
        _timeline(["Baseline", "Week 10", "Month 11", "Month 15", "Day 46"])
    mean, local = pixel_distance(sign(first), sign(other))
    assert mean < 0.5 and local > 1.2, (mean, local)  # trimmed of the margins: 1.0, a known weakness
    recompressed = np.asarray(Image.open(io.BytesIO(data.encode(first, "jpg", quality=35))))
    assert pixel_distance(sign(first), sign(recompressed))[1] < 0.8  # measured 0.57


def test_a_copy_cropped_inside_its_margins_is_found_by_the_trimmed_hash(tmp_path):
    chart = data.chart(np.random.default_rng(7))
    original = np.pad(chart, ((40, 10), (60, 10), (0, 0)), constant_values=255)  # a figure saved with margins
    h, w = original.shape[:2]
    cropped = original[h // 10 :, w // 10 :]  # 10 % off the top and left: margin only
    trimmed = [Image.fromarray(a).crop(trim_box(Image.fromarray(a).convert("L"))) for a in (cropped, chart)]
    assert np.array_equal(*map(np.asarray, trimmed))  # trimmed, the crop is the chart itself
    whole = (image_hash(Image.fromarray(original), "phash", 8) ^ image_hash(Image.fromarray(cropped), "phash", 8))
    assert whole.bit_count() > 18  # measured 20: beyond any useful threshold of the whole image's hash
    distinct = [data.chart(np.random.default_rng(s)) for s in (8, 9)] + [data.radiograph(np.random.default_rng(3))]
    with ShardWriter(tmp_path / "in", prefix="figures", mtime=FIXED_MTIME) as writer:
        for i, image in enumerate([original, *distinct, cropped]):
            writer.write({"__key__": f"PMC1_F{i}", "png": data.encode(image, "png"), "txt": f"Figure {i}."})
    summary = deduplicate_figures(tmp_path / "out", [tmp_path / "in"], progress=False)
    found = [json.loads(line) for line in (tmp_path / "out" / "duplicates.jsonl").read_text().splitlines()]
    assert found == [{"key": "PMC1_F4", "duplicate_of": "PMC1_F0", "kind": "near", "distance": 0}]
    assert summary["kept"] == 4


def test_exact_index_returns_the_first_id_across_runs():
    index = ExactIndex()
    for i in range(5000):
        index.add(i % 3000, i)
    assert index.find(2999) == 2999 and index.find(10) == 10 and index.find(4000) is None
    assert index.nbytes <= 12 * 5000  # a uint64 digest and an int32 id each


def test_threshold_zero_keeps_every_near_duplicate(figures, tmp_path):
    root, truth = figures
    summary = deduplicate_figures(tmp_path / "o", [root], near_threshold=0, progress=False)
    assert summary["near"] == 0 and summary["exact"] == 12


def test_an_unreadable_image_is_skipped_and_counted(tmp_path):
    image = np.zeros((40, 40, 3), np.uint8)
    image[10:30, 5:35] = 200
    with ShardWriter(tmp_path / "in", prefix="figures", mtime=FIXED_MTIME) as writer:
        writer.write({"__key__": "PMC1_F1", "png": data.encode(image, "png"), "txt": "Figure 1."})
        writer.write({"__key__": "PMC1_F2", "png": b"not a png", "txt": "Figure 2."})
        writer.write({"__key__": "PMC1_F3", "txt": "Figure 3 without image."})
    summary = deduplicate_figures(tmp_path / "out", [tmp_path / "in"], progress=False)
    assert summary["kept"] == 1 and summary["skipped"] == {"unreadable_image": 1, "no_image": 1}
    assert "| skipped: unreadable_image | 1 |" in (tmp_path / "out" / "dedup-report.md").read_text()
    with ShardWriter(tmp_path / "bad", prefix="figures", mtime=FIXED_MTIME) as writer:
        writer.write({"__key__": "PMC1_F2", "png": b"not a png", "txt": "Figure 2."})
    with pytest.raises(NothingWrittenError, match="unreadable_image: 1"):
        deduplicate_figures(tmp_path / "out2", [tmp_path / "bad"], progress=False)


@pytest.mark.slow
def test_generated_articles_precision_and_recall(tmp_path):
    """The generator's truth knows every duplicate: exact and near precision and recall, measured."""
    synthetic = pytest.importorskip("domainclip.domains.biomed.synthetic")
    figures = pytest.importorskip("domainclip.domains.biomed.figures")
    from domainclip.core.io import safe_key

    synthetic.generate_articles(tmp_path / "gen", 300, seed=0, progress=False)
    figures.prepare_figures(tmp_path / "shards", [str(tmp_path / "gen" / "articles")], progress=False)
    summary = deduplicate_figures(tmp_path / "dedup", [tmp_path / "shards"], progress=False)
    truth = [json.loads(line) for line in (tmp_path / "gen" / "truth.jsonl").read_text().splitlines()]
    key = lambda ref: safe_key(f"{ref['article']}_{ref['figure_id']}")  # noqa: E731
    parent = {key(t): (key(t["duplicate_of"]) if t["duplicate_of"] else None, t["duplicate_kind"]) for t in truth}

    def root(k):
        while parent[k][0]:
            k = parent[k][0]
        return k

    found = {r["key"]: r for r in map(json.loads, (tmp_path / "dedup" / "duplicates.jsonl").read_text().splitlines())}
    scores = {}
    for kind, kinds in (("exact", {"exact"}), ("near", {"resized", "recompressed", "cropped"})):
        true = {k: root(k) for k, (_, how) in parent.items() if how in kinds}
        predicted = {k: r["duplicate_of"] for k, r in found.items() if r["kind"] == kind}
        hits = sum(true.get(k) == v for k, v in predicted.items())
        scores[kind] = (hits / len(predicted), hits / len(true))
    assert summary["figures"] == len(truth)
    # measured on seed 0 (300 articles): see the module docstring for held-out seeds
    assert scores["exact"][0] >= 0.95 and scores["exact"][1] >= 0.95, scores
    assert scores["near"][0] >= 0.95 and scores["near"][1] >= 0.95, scores


def _exit_code(argv: list[str]) -> int:
    """``domainclip`` with ``argv``: its exit code, whether it returns it or argparse exits."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def test_user_mistakes_are_one_line_and_exit_code_2(figures, tmp_path, capsys):
    root, _ = figures
    (tmp_path / "empty").mkdir()
    cases = [
        (["--shards", str(tmp_path / "missing")], "does not exist"),
        (["--shards", str(tmp_path / "empty")], "no shard files (.tar)"),
        (["--shards", str(root), "--near-threshold", "40"], "must be an integer in [0, 32]"),
        (["--shards", str(root), "--near-threshold", "-1"], "must be an integer in [0, 32]"),
        (["--shards", str(root), "--verify-hash", "phash"], "verify_hash must be another kind"),
    ]
    for i, (args, expected) in enumerate(cases):
        argv = ["prepare", "biomed", "dedup", "--out", str(tmp_path / f"o{i}"), "--no-progress", *args]
        assert _exit_code(argv) == 2, args
        errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert len(errors) == 1 and expected in errors[0], errors
    with pytest.raises(InputError, match="inside the output folder"):
        deduplicate_figures(root, [root], progress=False)
