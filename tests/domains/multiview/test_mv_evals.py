"""The multi-view eval suites: viewpoint robustness (top-1 over views, worst view, consistency) and before / after.

An oracle model makes every number known: its image embedding is the one-hot of the fixture colour
nearest a view's mean colour, its text embedding the one-hot of the class a prompt names, so each view
is predicted as the class its colour stands for (``data_evals.VIEWPOINT_SET`` spells out every view and
the numbers it gives). A tiny random model (``dc-test-vit``) runs the suite through the real command line.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from domainclip.cli import main
from domainclip.core.errors import DatasetNotFoundError, InputError, InputNotFoundError
from domainclip.core.eval.suites import run_suite
from domainclip.domains.multiview import evals
from domainclip.domains.multiview.captions import category_text

_spec = importlib.util.spec_from_file_location("mv_eval_fixtures", Path(__file__).with_name("data_evals.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)

NAMES = list(fixture.PALETTE)  # the oracle's embedding axes: can, cone, coffee_mug, box
PATTERNS = {name: re.compile(rf"\b{re.escape(category_text(name))}\b") for name in NAMES}
TASK = "viewpoint/zeroshot_classification"


class Oracle(torch.nn.Module):
    """Image: one-hot of the nearest fixture colour (or always ``fixed``); text: one-hot of the class it names."""

    def __init__(self, spec: str, fixed: str | None = None):
        super().__init__()
        self.palette = torch.tensor(list(fixture.PALETTE.values()), dtype=torch.float32)
        self.fixed = fixed
        self.texts: list[str] = []
        self.images_seen = 0
        self.domainclip_source = {"spec": spec}

    def encode_image(self, images, normalize=True):
        self.images_seen += images.shape[0]
        nearest = torch.cdist(images.float().mean(dim=(2, 3)), self.palette).argmin(dim=1)
        if self.fixed is not None:
            nearest = torch.full_like(nearest, NAMES.index(self.fixed))
        return F.one_hot(nearest, len(NAMES)).float()

    def encode_text(self, tokens, normalize=True):
        rows = []
        for i in tokens[:, 0].tolist():
            named = [k for k, name in enumerate(NAMES) if PATTERNS[name].search(self.texts[i])]
            assert len(named) == 1, self.texts[i]
            rows.append(F.one_hot(torch.tensor(named[0]), len(NAMES)).float())
        return torch.stack(rows)

    def tokenizer(self, texts):
        start = len(self.texts)
        self.texts.extend(texts)
        return torch.arange(start, start + len(texts))[:, None]


def raw_pixels(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)


def run_viewpoint(model, data, out_dir, **options):
    return run_suite(model, model.tokenizer, raw_pixels, "multiview/viewpoint", data=data, out_dir=out_dir,
                     batch_size=3, options=options)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------------------------------------- metrics alone
def test_viewpoint_metrics_by_hand():
    # 3 classes; object x: views right, right, wrong (1 vs 0); object y: both predicted 2 (one right); z: one view
    logits = torch.eye(3)[[0, 0, 1, 2, 2, 1]]
    targets = torch.tensor([0, 0, 0, 2, 1, 1])
    metrics = evals.viewpoint_metrics(logits, targets, ["x", "x", "x", "y", "y", "z"])
    assert metrics["acc1"] == pytest.approx(4 / 6)
    assert metrics["worst_view_acc1"] == pytest.approx(1 / 3)  # only z has no wrong view
    assert metrics["consistency"] == pytest.approx(1 / 2)  # y, not x (z has one view)
    assert metrics["pairwise_agreement"] == pytest.approx((1 / 3 + 1) / 2)
    assert (metrics["num_objects"], metrics["num_multiview_objects"]) == (3, 2)


def test_viewpoint_metrics_without_objects_are_the_per_view_metrics():
    logits, targets = torch.eye(3)[[0, 1, 1]], torch.tensor([0, 1, 2])
    for objects in (None, [None, None, None]):
        metrics = evals.viewpoint_metrics(logits, targets, objects)
        assert metrics["acc1"] == pytest.approx(2 / 3)
        assert not {"worst_view_acc1", "consistency", "num_objects"} & set(metrics)
    single = evals.viewpoint_metrics(logits, targets, ["a", "b", "c"])  # no object has two views
    assert single["worst_view_acc1"] == pytest.approx(2 / 3) and "consistency" not in single
    with pytest.raises(ValueError, match="2 object ids for 3 views"):
        evals.viewpoint_metrics(logits, targets, ["a", "b"])


def test_viewpoint_bins_count_views_by_azimuth_and_elevation():
    right = np.array([True, False, True, True, False])
    azimuth = np.array([10.0, 370.0, 95.0, -80.0, np.nan])  # 370 -> 10, -80 -> 280
    elevation = np.array([0.0, 5.0, 30.0, 30.0, 0.0])
    count, hits = evals.viewpoint_bins(right, azimuth, elevation, 4, np.array([0.0, 15.0, 30.0]))
    assert count.tolist() == [[2, 0, 0, 0], [0, 1, 0, 1]]
    assert hits.tolist() == [[1, 0, 0, 0], [0, 1, 0, 1]]


# ---------------------------------------------------------------------------------------------- the suite
def test_viewpoint_suite_numbers_by_hand(tmp_path):
    data = fixture.write_view_shards(tmp_path / "heldout")
    oracle = Oracle("after-oracle")
    results = run_viewpoint(oracle, data, tmp_path / "out", azimuth_bins=4, elevation_bins=2)
    m = results[TASK]
    assert oracle.images_seen == 20  # every view embedded once, on its own
    assert m["num_samples"] == 20 and m["num_objects"] == 6 and m["num_multiview_objects"] == 5
    assert m["acc1"] == pytest.approx(13 / 20)
    assert m["worst_view_acc1"] == pytest.approx(3 / 6)
    assert m["consistency"] == pytest.approx(3 / 5)
    assert m["pairwise_agreement"] == pytest.approx(11 / 15)
    # recall per present class (categories.json order: cone, can, coffee_mug, box): 4/4, 7/8, 2/8
    assert m["mean_per_class_recall"] == pytest.approx((1 + 7 / 8 + 2 / 8) / 3)
    assert m["num_skipped_objects"] == 0 and "acc5" not in m  # four classes

    out = tmp_path / "out"
    saved = json.loads((out / "results.json").read_text())["results"][TASK]
    assert saved["worst_view_acc1"] == pytest.approx(0.5)
    objects = {row["object_id"]: row for row in read_csv(out / "heldout_objects.csv")}
    assert {k: (r["num_right"], r["consistent"], r["worst_view"]) for k, r in objects.items()} == {
        "A": ("4", "1", "0"), "B": ("3", "0", "2"), "C": ("3", "1", "0"), "D": ("0", "1", "0"),
        "E": ("2", "0", "1"), "F": ("1", "1", "0"),
    }
    assert objects["B"]["worst_azimuth"] == "190" and objects["B"]["worst_margin"] == "-1.0"
    bins = {(r["azimuth_lo"], r["elevation_lo"]): (int(r["num_views"]), float(r["acc1"]))
            for r in read_csv(out / "heldout_viewpoint_bins.csv")}
    assert bins == {("0", "10"): (6, pytest.approx(5 / 6)), ("90", "10"): (5, pytest.approx(3 / 5)),
                    ("180", "25"): (5, pytest.approx(2 / 5)), ("270", "25"): (4, pytest.approx(3 / 4))}
    for plot in ("heldout_viewpoint_accuracy.png", "heldout_confusion_matrix.png"):
        with Image.open(out / plot) as image:
            assert image.size[0] > 300
    assert not (out / "before_after.md").exists()


def test_viewpoint_suite_before_and_after_table(tmp_path, monkeypatch):
    data = fixture.write_view_shards(tmp_path / "heldout")
    before = Oracle("before-oracle", fixed="can")  # every view predicted can: consistent but mostly wrong
    loaded = []

    def fake_load_model(spec, *, device):
        loaded.append((spec, device))
        return before, raw_pixels, before.tokenizer

    monkeypatch.setattr(evals, "load_model", fake_load_model)
    results = run_viewpoint(Oracle("after-oracle"), data, tmp_path / "out", baseline="runs/before",
                            azimuth_bins=4, elevation_bins=2)
    assert loaded == [("runs/before", "cpu")]
    b = results[f"{TASK}/baseline"]
    assert b["acc1"] == pytest.approx(8 / 20)  # the eight views of the two cans
    assert b["worst_view_acc1"] == pytest.approx(2 / 6)  # A and B
    assert b["consistency"] == 1.0 and b["pairwise_agreement"] == 1.0
    assert b["mean_per_class_recall"] == pytest.approx(1 / 3)
    assert results[TASK]["acc1"] == pytest.approx(13 / 20)

    table = (tmp_path / "out" / "before_after.md").read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:5]]
            for line in table.splitlines() if line.startswith("| ") and "metric" not in line}
    assert "before: before-oracle" in table and "after: after-oracle" in table
    assert rows["acc1"] == ["0.4000", "0.6500", "+0.2500"]
    assert rows["worst_view_acc1"] == ["0.3333", "0.5000", "+0.1667"]
    assert rows["consistency"] == ["1.0000", "0.6000", "-0.4000"]
    assert rows["pairwise_agreement"] == ["1.0000", "0.7333", "-0.2667"]
    assert rows["num_objects"][:2] == ["6", "6"]
    bins = [r for r in read_csv(tmp_path / "out" / "heldout_viewpoint_bins.csv") if r["role"] == "baseline"]
    assert sum(int(r["num_views"]) for r in bins) == 20
    assert (tmp_path / "out" / "heldout_baseline_confusion_matrix.png").is_file()
    results_md = (tmp_path / "out" / "results.md").read_text()
    assert f"{TASK}/baseline" in results_md


def test_viewpoint_suite_categories_from_meta_and_single_prompt(tmp_path):
    data = fixture.write_view_shards(tmp_path / "heldout", categories=None, with_poses=False)
    oracle = Oracle("oracle")
    results = run_viewpoint(oracle, data, tmp_path / "out", prompts="single")
    assert results[TASK]["acc1"] == pytest.approx(13 / 20)
    # sorted categories of the meta (can, coffee_mug, cone), one prompt each
    assert oracle.texts == ["a 3D render of a can.", "a 3D render of a coffee mug.", "a 3D render of a cone."]
    assert not (tmp_path / "out" / "heldout_viewpoint_accuracy.png").exists()  # no poses, no plot


def test_viewpoint_suite_skips_and_counts_an_undecodable_object(tmp_path):
    data = fixture.write_view_shards(tmp_path / "heldout", corrupt={"D": 2})
    with pytest.warns(UserWarning, match=r"multiview/viewpoint: skipped 1 sample.*bad_image: 1"):
        results = run_viewpoint(Oracle("oracle"), data, tmp_path / "out")
    m = results[TASK]
    assert m["num_skipped_objects"] == 1 and m["num_objects"] == 5
    assert m["acc1"] == pytest.approx(13 / 16) and m["worst_view_acc1"] == pytest.approx(3 / 5)


def test_viewpoint_suite_user_errors(tmp_path):
    oracle = Oracle("oracle")
    with pytest.raises(DatasetNotFoundError, match="multiview/viewpoint needs --data"):
        run_viewpoint(oracle, None, tmp_path / "o1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="dataset not found at"):
        run_viewpoint(oracle, tmp_path / "empty", tmp_path / "o2")
    data = fixture.write_view_shards(tmp_path / "heldout")
    (data / "categories.json").write_text('["can", "cone"]')  # a list the shards' categories outgrew
    with pytest.raises(InputError, match="categories coffee_mug are not among the set's 2 categories"):
        run_viewpoint(oracle, data, tmp_path / "o3")
    with pytest.raises(InputError, match="prompts"):
        run_viewpoint(oracle, data, tmp_path / "o4", prompts="many")
    with pytest.raises(InputNotFoundError, match="path that does not exist"):
        run_viewpoint(oracle, data, tmp_path / "o5", baseline=str(tmp_path / "no-such-run"))
    (data / "categories.json").write_text("{not json")
    with pytest.raises(InputError, match="categories.json is not valid JSON"):
        run_viewpoint(oracle, data, tmp_path / "o6")


def test_viewpoint_suite_through_the_cli_with_a_tiny_random_model(tmp_path):
    data = fixture.write_view_shards(tmp_path / "heldout")
    out = tmp_path / "eval"
    assert main(["eval", "--model", "dc-test-vit", "--suite", "multiview/viewpoint", "--data", str(data),
                 "--out", str(out), "--batch-size", "8"]) == 0
    m = json.loads((out / "results.json").read_text())["results"][TASK]
    assert m["num_samples"] == 20 and m["num_objects"] == 6
    assert all(0.0 <= m[k] <= 1.0 for k in ("acc1", "worst_view_acc1", "consistency", "pairwise_agreement"))
    assert (out / "heldout_viewpoint_accuracy.png").is_file()


def test_suite_options_through_the_cli(tmp_path):
    """``--option`` sets a suite's typed options as a recipe's eval.options do, and the results record them."""
    data = fixture.write_view_shards(tmp_path / "heldout")
    out = tmp_path / "eval"
    assert main(["eval", "--model", "dc-test-vit", "--suite", "multiview/viewpoint", "--data", str(data),
                 "--out", str(out), "--batch-size", "8", "--option", "prompts=single", "--option",
                 "baseline=dc-test-vit", "--option", "azimuth_bins=4"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["options"] == {"prompts": "single", "baseline": "dc-test-vit", "azimuth_bins": 4}
    assert report["results"][f"{TASK}/baseline"] == pytest.approx(report["results"][TASK])
    assert "before: dc-test-vit" in (out / "before_after.md").read_text()


def test_viewpoint_suite_baseline_loads_through_load_model(tmp_path):
    from domainclip.core.models.loading import load_model

    data = fixture.write_view_shards(tmp_path / "heldout")
    model, preprocess, tokenizer = load_model("dc-test-vit")
    results = run_suite(model, tokenizer, preprocess, "multiview/viewpoint", data=data, out_dir=tmp_path / "out",
                        batch_size=8, options={"baseline": "dc-test-vit"})
    # the same seeded random weights before and after: the same numbers, a change of zero
    assert results[f"{TASK}/baseline"] == pytest.approx(results[TASK])
    table = (tmp_path / "out" / "before_after.md").read_text()
    assert "before: dc-test-vit" in table and "+0.0000" in table


# ---------------------------------------------------------------------------------------------- imagenet_v
def run_imagenet_v(model, data, out_dir, **options):
    return run_suite(model, model.tokenizer, raw_pixels, "multiview/imagenet_v", data=data, out_dir=out_dir,
                     batch_size=4, options=options)


def test_imagenet_v_suite_objects_layout_numbers_by_hand(tmp_path):
    data = fixture.write_imagenet_v(tmp_path / "imagenet-v")  # can_1, can_2, cone_1, cone_2, coffee_mug_1, _2
    results = run_imagenet_v(Oracle("oracle"), data, tmp_path / "out", layout="objects")
    m = results["imagenet_v/zeroshot_classification"]
    assert m["num_samples"] == 20 and m["num_objects"] == 6
    assert m["acc1"] == pytest.approx(13 / 20) and m["worst_view_acc1"] == pytest.approx(3 / 6)
    assert m["consistency"] == pytest.approx(3 / 5) and m["pairwise_agreement"] == pytest.approx(11 / 15)
    assert m["mean_per_class_recall"] == pytest.approx((1 + 7 / 8 + 2 / 8) / 3)
    objects = {row["object_id"]: row for row in read_csv(tmp_path / "out" / "imagenet_v_objects.csv")}
    assert objects["can_2"]["worst_view"] == "2" and objects["coffee_mug_2"]["num_right"] == "2"
    assert (tmp_path / "out" / "imagenet_v_confusion_matrix.png").is_file()
    assert not (tmp_path / "out" / "imagenet_v_viewpoint_accuracy.png").exists()  # no poses in the layout


def test_imagenet_v_suite_class_folders_with_names_file_and_baseline(tmp_path, monkeypatch):
    folders = {"can": "n001", "coffee_mug": "n002", "cone": "n003"}
    data = fixture.write_imagenet_v(tmp_path / "imagenet-v", layout="classes", folder_names=folders)
    names = tmp_path / "gt_label_imv.txt"
    names.write_text("can\ncoffee mug\ncone\n")
    before = Oracle("before-oracle", fixed="cone")
    monkeypatch.setattr(evals, "load_model", lambda spec, *, device: (before, raw_pixels, before.tokenizer))
    oracle = Oracle("oracle")
    results = run_imagenet_v(oracle, data, tmp_path / "out", class_names=names, baseline="before", prompts="single")
    m, b = results["imagenet_v/zeroshot_classification"], results["imagenet_v/zeroshot_classification/baseline"]
    assert oracle.texts == ["a 3D render of a can.", "a 3D render of a coffee mug.", "a 3D render of a cone."]
    assert m["acc1"] == pytest.approx(13 / 20) and m["worst_view_acc1"] == pytest.approx(3 / 6)
    assert b["acc1"] == pytest.approx(4 / 20) and b["worst_view_acc1"] == pytest.approx(2 / 6)  # C and F
    assert "| acc1 | 0.2000 | 0.6500 | +0.4500 |" in (tmp_path / "out" / "before_after.md").read_text()
    objects = {row["object_id"] for row in read_csv(tmp_path / "out" / "imagenet_v_objects.csv")}
    assert "n001/A" in objects  # a sub-folder is an object within its class folder


def test_imagenet_v_suite_without_object_folders_reports_per_image_metrics(tmp_path):
    data = fixture.write_imagenet_v(tmp_path / "imagenet-v", layout="flat")
    (data / "can" / "broken_0.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning, match=r"multiview/imagenet_v: skipped 1 sample.*bad_image: 1"):
        results = run_imagenet_v(Oracle("oracle"), data, tmp_path / "out")
    m = results["imagenet_v/zeroshot_classification"]
    assert m["acc1"] == pytest.approx(13 / 20) and m["num_skipped_objects"] == 1
    assert not {"worst_view_acc1", "consistency", "num_objects"} & set(m)
    assert not (tmp_path / "out" / "imagenet_v_objects.csv").exists()
    with pytest.raises(DatasetNotFoundError, match="ImageNet-V not found"):
        run_imagenet_v(Oracle("oracle"), tmp_path / "nothing", tmp_path / "o2")


def test_viewpoint_suite_keeps_apart_two_objects_that_share_an_id(tmp_path):
    twins = (fixture.FixtureObject("A", "can", ("can", "can"), (10.0, 100.0), (10.0, 10.0)),
             fixture.FixtureObject("A", "cone", ("cone", "can"), (10.0, 100.0), (10.0, 10.0)))
    data = fixture.write_view_shards(tmp_path / "heldout", twins, max_count=1)  # one shard each, same key
    m = run_viewpoint(Oracle("oracle"), data, tmp_path / "out")[TASK]
    assert m["num_objects"] == 2 and m["worst_view_acc1"] == 0.5 and m["consistency"] == 0.5
    rows = read_csv(tmp_path / "out" / "heldout_objects.csv")
    assert [(r["object_id"], r["num_right"]) for r in rows] == [("A", "2"), ("A", "1")]
