"""Pathology eval suites: metric names and ranges with a tiny CLIP, exact values with a fixed lookup model."""

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from domainclip.core.errors import DatasetNotFoundError
from domainclip.core.eval.zero_shot import build_prompt_classifier
from domainclip.core.models import create_model_and_transforms, get_tokenizer
from domainclip.domains.pathology import evals, labels

_spec = importlib.util.spec_from_file_location("pathology_fixture_evals", Path(__file__).with_name("data.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)

PATCH_METRICS = {"acc1", "mean_per_class_recall", "balanced_accuracy", "weighted_f1", "num_samples"}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model, _, preprocess = create_model_and_transforms("dc-test-vit")
    model.eval()
    return model, preprocess, get_tokenizer(model)


def _in_unit_range(metrics, names):
    return all(0.0 <= metrics[n] <= 1.0 for n in names)


# ------------------------------------------------------------------------------------------- NCT-CRC
def test_nct_crc_suite_with_a_tiny_clip(tiny, tmp_path):
    fixture.make_nct_crc(tmp_path / "crc", per_class=2, size=32)
    model, preprocess, tokenizer = tiny
    results = evals.patch_folder_suite(model, tokenizer, preprocess, data=tmp_path / "crc", out_dir=tmp_path / "out",
                                       device="cpu", batch_size=16, templates=["{}.", "an H&E image of {}."])
    assert list(results) == ["nct_crc/zeroshot_classification"]
    metrics = results["nct_crc/zeroshot_classification"]
    assert set(metrics) == PATCH_METRICS | {"acc5"}
    assert metrics["num_samples"] == 18
    assert _in_unit_range(metrics, PATCH_METRICS - {"num_samples"} | {"acc5"})
    assert metrics["acc1"] <= metrics["acc5"]
    assert (tmp_path / "out" / "nct_crc_confusion_matrix.png").stat().st_size > 1000


def test_nct_crc_suite_exact_with_a_lookup_model(tmp_path):
    fixture.make_nct_crc(tmp_path / "crc", per_class=3, size=8)
    model = fixture.class_lookup_model(labels.nct_crc_prompts(), fixture.NCT_COLOURS)
    metrics = evals.patch_folder_suite(model, model.tokenize, fixture.to_tensor, data=tmp_path / "crc",
                                       out_dir=tmp_path, batch_size=5)["nct_crc/zeroshot_classification"]
    assert metrics["acc1"] == 1.0 and metrics["balanced_accuracy"] == 1.0 and metrics["weighted_f1"] == 1.0
    assert metrics["num_samples"] == 27 and model.images_seen == 27

    # the tumour patches now look like stroma: exactly those 3 of 27 go wrong, TUM recall is 0
    colours = dict(fixture.NCT_COLOURS, TUM=fixture.NCT_COLOURS["STR"])
    fixture.make_nct_crc(tmp_path / "confused", per_class=3, size=8, colours=colours)
    metrics = evals.patch_folder_suite(model, model.tokenize, fixture.to_tensor, data=tmp_path / "confused",
                                       out_dir=tmp_path, batch_size=8)["nct_crc/zeroshot_classification"]
    assert metrics["acc1"] == pytest.approx(24 / 27)
    assert metrics["balanced_accuracy"] == pytest.approx(8 / 9)


def test_patch_folder_suite_with_other_classes_and_templates(tmp_path):
    colours = {"tumor_bed": (200, 10, 10), "fat": (250, 250, 240)}
    fixture.make_nct_crc(tmp_path / "syn", per_class=2, size=8, classes=tuple(colours), colours=colours)
    templates = ["a synthetic tissue tile of {}."]
    prompts = labels.expand_prompts({"fat": "fat", "tumor_bed": ["tumour bed", "a tumour"]}, templates)
    model = fixture.class_lookup_model(prompts, colours)
    results = evals.patch_folder_suite(
        model, model.tokenize, fixture.to_tensor, data=tmp_path / "syn", out_dir=tmp_path, batch_size=4,
        classes={"fat": "fat", "tumor_bed": ["tumour bed", "a tumour"]}, templates=templates, task="synthetic_tissue",
    )
    metrics = results["synthetic_tissue/zeroshot_classification"]
    assert metrics["acc1"] == 1.0 and metrics["num_samples"] == 4 and "acc5" not in metrics
    assert (tmp_path / "synthetic_tissue_confusion_matrix.png").is_file()
    # without names, non-NCT folders are prompted by their display names: the lookup model knows none of them
    with pytest.raises(KeyError, match="tumor bed"):
        evals.patch_folder_suite(model, model.tokenize, fixture.to_tensor, data=tmp_path / "syn", out_dir=tmp_path,
                                 batch_size=4, templates=templates)


def test_patch_folder_suite_needs_data(tiny, tmp_path):
    model, preprocess, tokenizer = tiny
    with pytest.raises(FileNotFoundError, match="needs --data"):
        evals.patch_folder_suite(model, tokenizer, preprocess, data=None, out_dir=tmp_path, batch_size=4)


def test_missing_dataset_folders_are_dataset_not_found_errors(tmp_path):
    missing = tmp_path / "missing"
    expected = {
        evals.patch_folder_suite: f"patch folder {missing} does not exist or is not a folder; expected one folder per",
        evals.pcam_suite: f"PatchCamelyon folder {missing} does not exist; expected a folder holding the official",
        evals.slide_suite: f"pathology/slides: dataset not found at {missing}: not a folder; expected the patch shards",
    }
    for suite, message in expected.items():
        with pytest.raises(DatasetNotFoundError) as caught:
            suite(None, None, None, data=missing, out_dir=tmp_path)
        assert str(caught.value).startswith(message), str(caught.value)
    missing.mkdir()
    with pytest.raises(DatasetNotFoundError, match=f"dataset not found at {missing}: no slides.csv; expected"):
        evals.slide_suite(None, None, None, data=missing, out_dir=tmp_path)
    fixture.write_slides_csv(missing / "slides.csv", {"t1": "tumor", "n1": "normal"})
    with pytest.raises(DatasetNotFoundError, match=r"dataset not found at .*holds no .*\.tar"):
        model = _slide_model(["normal", "tumor"])
        evals.slide_suite(model, model.tokenize, fixture.to_tensor, data=missing, out_dir=tmp_path)


def test_prompt_classifier_averages_each_class_ensemble():
    text = {"a": [1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0], "c": [0.0, 0.0, 1.0]}
    model = fixture.LookupCLIP({}, text)
    weights = build_prompt_classifier(model, model.tokenize, {"x": ["a", "b"], "y": ["c"]}, batch_size=2)
    half = 2 ** -0.5
    assert torch.allclose(weights, torch.tensor([[half, 0.0], [half, 0.0], [0.0, 1.0]]))


# ------------------------------------------------------------------------------------------- PCam
def test_pcam_suite_with_a_tiny_clip(tiny, tmp_path):
    fixture.make_pcam(tmp_path)
    model, preprocess, tokenizer = tiny
    metrics = evals.pcam_suite(model, tokenizer, preprocess, data=tmp_path, out_dir=tmp_path,
                               batch_size=4)["pcam/zeroshot_classification"]
    assert set(metrics) == PATCH_METRICS | {"auroc"}
    assert metrics["num_samples"] == 8 and _in_unit_range(metrics, PATCH_METRICS - {"num_samples"} | {"auroc"})
    assert (tmp_path / "pcam_confusion_matrix.png").is_file()


def test_pcam_suite_exact_with_a_lookup_model(tmp_path):
    fixture.make_pcam(tmp_path / "ok")
    colours = dict(zip(labels.PCAM_CLASSES, fixture.PCAM_COLOURS, strict=True))
    model = fixture.class_lookup_model(labels.pcam_prompts(), colours)
    metrics = evals.pcam_suite(model, model.tokenize, fixture.to_tensor, data=tmp_path / "ok", out_dir=tmp_path,
                               batch_size=3)["pcam/zeroshot_classification"]
    assert metrics["acc1"] == 1.0 and metrics["auroc"] == 1.0 and metrics["balanced_accuracy"] == 1.0
    # colours swapped: every patch is wrong and the ranking is reversed
    fixture.make_pcam(tmp_path / "swapped", colours=fixture.PCAM_COLOURS[::-1])
    metrics = evals.pcam_suite(model, model.tokenize, fixture.to_tensor, data=tmp_path / "swapped",
                               out_dir=tmp_path, batch_size=8)["pcam/zeroshot_classification"]
    assert metrics["acc1"] == 0.0 and metrics["auroc"] == 0.0


# ------------------------------------------------------------------------------------------- slides
#: slide -> (label, [(colour name, patches), ...])
SLIDES = {
    "t1": ("tumor", [("tumor", 5), ("normal", 2)]),
    "t2": ("tumor", [("tumor", 6)]),
    "n1": ("normal", [("normal", 4)]),
    "n2": ("normal", [("normal", 3), ("tumor", 1)]),
}
SLIDE_COLOURS = {"normal": (240, 200, 220), "tumor": (80, 20, 120), "stroma": (230, 120, 160)}


def _slide_fixture(root, slides=SLIDES, shuffle_slides=False, max_count=5):
    patches = [(slide, SLIDE_COLOURS[name]) for slide, (_, parts) in slides.items() for name, n in parts
               for _ in range(n)]
    if shuffle_slides:
        patches = patches[::2] + patches[1::2]  # every slide spread over the shards
    fixture.write_patch_shards(root, patches, max_count=max_count,
                               slide_labels={s: label for s, (label, _) in slides.items()})
    return root


def _slide_model(classes):
    prompts = labels.expand_prompts({c: labels.humanise(c) for c in classes}, labels.SLIDE_TEMPLATES)
    return fixture.class_lookup_model(prompts, SLIDE_COLOURS)


def _predictions(path):
    with open(path, newline="") as f:
        return {row["slide_id"]: row for row in csv.DictReader(f)}


def test_slide_suite_exact_mi_zero_pooling(tmp_path):
    root = _slide_fixture(tmp_path / "cohort", shuffle_slides=True)
    model = _slide_model(["normal", "tumor"])
    results = evals.slide_suite(model, model.tokenize, fixture.to_tensor, data=root, out_dir=tmp_path / "out",
                                batch_size=3)
    metrics = results["slides/zeroshot_classification"]
    assert metrics["acc1"] == 1.0 and metrics["auroc"] == 1.0 and metrics["balanced_accuracy"] == 1.0
    assert metrics["num_slides"] == 4 and metrics["num_patches"] == 21 and metrics["num_slides_without_patches"] == 0
    rows = _predictions(tmp_path / "out" / "slide_predictions.csv")
    assert list(rows) == ["t1", "t2", "n1", "n2"]  # slides.csv order
    # t1: top-5 of the tumour scores are all 1; its 2 normal patches give the normal class (1+1+0+0+0)/5
    assert float(rows["t1"]["score_tumor"]) == pytest.approx(1.0)
    assert float(rows["t1"]["score_normal"]) == pytest.approx(0.4)
    assert float(rows["n2"]["score_tumor"]) == pytest.approx(1 / 4)  # fewer patches than k: all 4 pooled
    assert rows["t1"]["prediction"] == "tumor" and rows["t1"]["num_patches"] == "7" and rows["t1"]["correct"] == "1"
    assert (tmp_path / "out" / "slides_confusion_matrix.png").is_file()

    # mean pooling over every patch
    evals.slide_suite(model, model.tokenize, fixture.to_tensor, data=root, out_dir=tmp_path / "mean", batch_size=8,
                      top_k=None)
    rows = _predictions(tmp_path / "mean" / "slide_predictions.csv")
    assert float(rows["t1"]["score_tumor"]) == pytest.approx(5 / 7)
    assert float(rows["t1"]["score_normal"]) == pytest.approx(2 / 7)


def test_slide_suite_wrong_slide_and_multiclass_auroc(tmp_path):
    slides = dict(SLIDES, s1=("stroma", [("stroma", 3)]), s2=("stroma", [("tumor", 2)]))
    root = _slide_fixture(tmp_path / "three", slides=slides)
    model = _slide_model(["normal", "stroma", "tumor"])
    metrics = evals.slide_suite(model, model.tokenize, fixture.to_tensor, data=root, out_dir=tmp_path,
                                batch_size=4)["slides/zeroshot_classification"]
    assert metrics["acc1"] == pytest.approx(5 / 6)
    assert metrics["balanced_accuracy"] == pytest.approx((1 + 0.5 + 1) / 3)
    rows = _predictions(tmp_path / "slide_predictions.csv")
    assert rows["s2"]["prediction"] == "tumor" and rows["s2"]["correct"] == "0"
    order = ["normal", "stroma", "tumor"]
    scores = torch.tensor([[float(rows[s][f"score_{c}"]) for c in order] for s in rows], dtype=torch.float64)
    probs = torch.softmax(100 * scores, dim=1).numpy()
    assert np.allclose(probs, [[float(rows[s][f"prob_{c}"]) for c in order] for s in rows], rtol=1e-4, atol=1e-12)
    y = [order.index(rows[s]["label"]) for s in rows]
    assert metrics["auroc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-5)
    assert 0.5 < metrics["auroc"] < 1.0


def test_slide_suite_classes_from_argument_and_classes_json(tmp_path):
    root = _slide_fixture(tmp_path / "cohort")
    prompts = labels.expand_prompts({"normal": "benign tissue", "tumor": "carcinoma"}, ["{}"])
    model = fixture.class_lookup_model(prompts, SLIDE_COLOURS)
    names = {"normal": "benign tissue", "tumor": "carcinoma"}
    metrics = evals.slide_suite(model, model.tokenize, fixture.to_tensor, data=root, out_dir=tmp_path, batch_size=4,
                                classes=names, templates=["{}"], task="cohort")["cohort/zeroshot_classification"]
    assert metrics["acc1"] == 1.0
    # the class order decides the positive class of AUROC and the columns
    (root / "classes.json").write_text(json.dumps(["tumor", "normal"]))
    default_model = _slide_model(["tumor", "normal"])
    metrics = evals.slide_suite(default_model, default_model.tokenize, fixture.to_tensor, data=root,
                                out_dir=tmp_path / "json", batch_size=4)["slides/zeroshot_classification"]
    assert metrics["acc1"] == 1.0 and metrics["auroc"] == 1.0
    header = (tmp_path / "json" / "slide_predictions.csv").read_text().splitlines()[0]
    assert header.endswith("score_tumor,score_normal,prob_tumor,prob_normal")


def test_slide_suite_with_a_tiny_clip(tiny, tmp_path):
    root = _slide_fixture(tmp_path / "cohort")
    model, preprocess, tokenizer = tiny
    metrics = evals.slide_suite(model, tokenizer, preprocess, data=root, out_dir=tmp_path,
                                batch_size=8)["slides/zeroshot_classification"]
    assert {"acc1", "balanced_accuracy", "weighted_f1", "auroc", "num_slides", "num_patches"} <= set(metrics)
    assert _in_unit_range(metrics, ["acc1", "balanced_accuracy", "weighted_f1", "auroc"])
    assert len(_predictions(tmp_path / "slide_predictions.csv")) == 4


def test_slide_suite_errors_and_missing_slides(tmp_path):
    model = _slide_model(["normal", "tumor"])
    root = _slide_fixture(tmp_path / "cohort")
    fixture.write_slides_csv(root / "slides.csv", {"t1": "tumor", "n1": "normal", "x9": "normal"})
    (tmp_path / "o").mkdir()
    with pytest.warns(UserWarning, match="1 slide"):
        metrics = evals.slide_suite(model, model.tokenize, fixture.to_tensor, data=root, out_dir=tmp_path / "o",
                                    batch_size=4)["slides/zeroshot_classification"]
    assert metrics["num_slides"] == 2 and metrics["num_slides_without_patches"] == 1
    assert metrics["num_patches_of_unlabelled_slides"] == 10

    fixture.write_slides_csv(root / "slides.csv", {"t1": "tumor", "n1": "necrosis"})
    with pytest.raises(ValueError, match=r"slides.csv has labels \['necrosis'\]"):
        evals.slide_suite(model, model.tokenize, fixture.to_tensor, data=root, out_dir=tmp_path, batch_size=4,
                          classes=["normal", "tumor"])
    fixture.write_slides_csv(root / "slides.csv", {"zz": "tumor", "yy": "normal"})
    with pytest.raises(ValueError, match="no patch in the shards"):
        evals.slide_suite(model, model.tokenize, fixture.to_tensor, data=root, out_dir=tmp_path, batch_size=4)
    with pytest.raises(ValueError, match="top_k must be"):
        evals.slide_suite(model, model.tokenize, fixture.to_tensor, data=root, out_dir=tmp_path, top_k=0)

    from domainclip.core.data.writer import ShardWriter

    fixture.write_slides_csv(root / "slides.csv", {"t1": "tumor", "n1": "normal"})
    with ShardWriter(root, prefix="zz", image_format="png") as w:
        w.write({"__key__": "orphan", "image": fixture.solid((1, 2, 3), 8), "meta": {"x": 1}})
    with pytest.raises(ValueError, match="missing_slide_id in .*zz-000000.tar.*orphan"):
        evals.slide_suite(model, model.tokenize, fixture.to_tensor, data=root, out_dir=tmp_path, batch_size=4)


def test_auroc_helper():
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]])
    assert evals.auroc(probs, [0, 1, 2, 0]) == 1.0
    assert evals.auroc(probs, [0, 0, 0, 0]) is None
    # a class absent: mean of the present classes' one-vs-rest AUROCs
    expected = np.mean([roc_auc_score(np.array([0, 1, 1, 0]) == c, probs[:, c]) for c in (0, 1)])
    assert evals.auroc(probs, [0, 1, 1, 0]) == pytest.approx(expected)


@pytest.mark.parametrize("prompts", ["single", "pathgen", "plip"])
def test_patch_suites_offer_the_published_template_sets(prompts, tmp_path):
    """``prompts`` picks one set; a lookup model knowing only that set's prompts classifies perfectly."""
    from domainclip.core.eval.prompts import template_set_option

    assert template_set_option(evals.patch_folder_suite).choices == ("ensemble", "single", "pathgen", "plip")
    assert template_set_option(evals.pcam_suite).default == "ensemble"
    fixture.make_nct_crc(tmp_path / "crc", per_class=2, size=8)
    first = {c: (s if isinstance(s, str) else s[0]) for c, s in labels.NCT_CRC_SYNONYMS.items()}
    expected = labels.expand_prompts(first, labels.PATCH_TEMPLATE_SETS[prompts])
    assert all(len(v) == len(labels.PATCH_TEMPLATE_SETS[prompts]) for v in expected.values())
    model = fixture.class_lookup_model(expected, fixture.NCT_COLOURS)
    metrics = evals.patch_folder_suite(model, model.tokenize, fixture.to_tensor, data=tmp_path / "crc",
                                       out_dir=tmp_path, batch_size=6, prompts=prompts)
    assert metrics["nct_crc/zeroshot_classification"]["acc1"] == 1.0
    with pytest.raises(KeyError):  # the ensemble's prompts are not that set's
        evals.patch_folder_suite(model, model.tokenize, fixture.to_tensor, data=tmp_path / "crc", out_dir=tmp_path,
                                 batch_size=6)
