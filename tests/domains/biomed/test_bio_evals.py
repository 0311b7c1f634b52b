"""The biomed eval suites: the many-task zero-shot table and figure-caption retrieval.

An oracle model makes every number known: its image embedding is the one-hot of the fixture
colour nearest the image's mean colour, its text embedding a vector the test assigns to each prompt
(some templates deliberately point at the wrong class), so per-template accuracies, their spread
and the ensemble are computed by hand. A tiny random model (``dc-test-vit``) runs both suites
through the real command line.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from domainclip.cli import main
from domainclip.core.errors import DatasetNotFoundError, InputError
from domainclip.core.eval.retrieval import retrieval_metrics
from domainclip.core.eval.suites import run_suite
from domainclip.domains.biomed import registry
from domainclip.domains.biomed.registry import TaskSpec

_spec = importlib.util.spec_from_file_location("bio_eval_fixtures_e", Path(__file__).with_name("data_evals.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)

GREY_LOW, GREY_HIGH = (76, 76, 76), (230, 230, 230)  # levels 300 and 900 through the window (0, 1000)


class Oracle(torch.nn.Module):
    """Image: one-hot of the nearest ``palette`` colour; text: ``vectors[prompt]`` (a prompt it does not know fails)."""

    def __init__(self, palette, vectors):
        super().__init__()
        self.palette = torch.tensor(palette, dtype=torch.float32)
        self.vectors = vectors
        self.texts: list[str] = []
        self.images_seen = 0

    def encode_image(self, images, normalize=True):
        self.images_seen += images.shape[0]
        nearest = torch.cdist(images.float().mean(dim=(2, 3)), self.palette).argmin(dim=1)
        return F.one_hot(nearest, self.palette.shape[0]).float()

    def encode_text(self, tokens, normalize=True):
        return torch.stack([self.vectors[self.texts[i]] for i in tokens[:, 0].tolist()])

    def tokenizer(self, texts):
        start = len(self.texts)
        self.texts.extend(texts)
        return torch.arange(start, start + len(texts))[:, None]


def raw_pixels(image):
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)


def one_hot(k, n):
    return F.one_hot(torch.tensor(k), n).float()


# The colour task: classes a, b, c (4, 2, 2 images). Template "a {}." and "this is {}." name the right class,
# "shifted {}." the next one, "confused {}." names c as a. Per template: acc1 1, 0, 0.75, 1; balanced 1, 0, 2/3, 1.
# Ensemble weights: a = 3e_a + e_b, b = 3e_b + e_c, c = 2e_c + 2e_a: every image is right.
COLOUR_TEMPLATES = ("a {}.", "shifted {}.", "confused {}.", "this is {}.")
COLOUR_CLASSES = ("a", "b", "c")


def colour_task(name="oracle_colours", folder="oracle_colours", family="cell_biology"):
    return TaskSpec(name=name, family=family, title="oracle colours",
                    classes=tuple((c, (f"class {c}",)) for c in COLOUR_CLASSES), templates=COLOUR_TEMPLATES,
                    folder=folder, expected=f"{folder}/ with a/ b/ c/", source="test")


def volume_task():
    return TaskSpec(name="oracle_volumes", family="radiology", title="oracle volumes",
                    classes=(("low", ("low density",)), ("high", ("high density",))), templates=("{}.", "a CT of {}."),
                    folder="volumes", layout="csv", adapter_args={"csv": "labels.csv", "window": (0.0, 1000.0)},
                    expected="volumes/labels.csv", source="test")


@pytest.fixture
def oracle_tasks():
    specs = [registry.register_task(colour_task()), registry.register_task(volume_task())]
    yield specs
    for spec in specs:
        registry.unregister_task(spec.name)


def build_oracle():
    """Palette: figure types 0-7, colour classes 8-10, greys 11-12; prompts as the comment above says."""
    figure_types = registry.get_task("figure_types")
    palette = fixture.PALETTE[:8] + fixture.PALETTE[10:13] + [GREY_LOW, GREY_HIGH]
    n = len(palette)
    vectors = {}
    for k, prompts in enumerate(figure_types.prompts().values()):
        vectors.update({p: one_hot(k, n) for p in prompts})
    for k, c in enumerate(COLOUR_CLASSES):
        vectors[f"a class {c}."] = vectors[f"this is class {c}."] = one_hot(8 + k, n)
        vectors[f"shifted class {c}."] = one_hot(8 + (k + 1) % 3, n)
        vectors[f"confused class {c}."] = one_hot(8 if c == "c" else 8 + k, n)
    for k, words in enumerate(("low density", "high density")):
        vectors[f"{words}."] = vectors[f"a CT of {words}."] = one_hot(11 + k, n)
    return Oracle(palette, vectors)


def write_volumes(root):
    """Two CT volumes per class: the middle axial slice at the class's level, every other slice at the other's."""
    rows = []
    for label, level, other in (("low", 300, 900), ("high", 900, 300)):
        for i in range(2):
            volume = np.full((6, 6, 5), other, np.int16)
            volume[:, :, 2] = level
            fixture.write_nifti(root / "scans" / f"{label}{i}.nii.gz", volume)
            rows.append((f"scans/{label}{i}.nii.gz", label, None))
    fixture.write_label_csv(root, rows)
    return root


def write_task_root(root):
    fixture.write_class_folders(root / "figure_types", registry.get_task("figure_types").labels, 2)
    counts = {"a": 4, "b": 2, "c": 2}
    for k, c in enumerate(COLOUR_CLASSES):
        fixture.write_class_folders(root / "oracle_colours", [c], counts[c], [fixture.PALETTE[10 + k]])
    write_volumes(root / "volumes")
    return root


# --------------------------------------------------------------------------------------------- tasks suite
def test_per_template_scores_their_spread_and_the_ensemble_are_exact(tmp_path, oracle_tasks):
    root = write_task_root(tmp_path / "data")
    model = build_oracle()
    with pytest.warns(UserWarning, match=r"^biomed/tasks: skipped ham10000: no data at .*data/ham10000; expected "
                                         r"ham10000/ holding HAM10000_metadata.csv") as record:
        results = run_suite(model, model.tokenizer, raw_pixels, "biomed/tasks", data=root, out_dir=tmp_path / "out",
                            batch_size=3, options={"tasks": ["figure_types", "oracle_colours", "ham10000",
                                                             "oracle_volumes"]})
    assert len([w for w in record if "skipped" in str(w.message)]) == 1
    assert list(results) == ["figure_types/zeroshot_classification", "oracle_colours/zeroshot_classification",
                             "oracle_volumes/zeroshot_classification", "family/radiology", "family/cell_biology",
                             "family/figure_type", "overall"]
    assert model.images_seen == 16 + 8 + 4  # each task's images embedded once for all its templates
    colours = results["oracle_colours/zeroshot_classification"]
    acc = [1.0, 0.0, 0.75, 1.0]
    balanced = [1.0, 0.0, 2 / 3, 1.0]
    assert colours["acc1"] == 1.0 and colours["balanced_accuracy"] == 1.0 and colours["num_samples"] == 8
    assert colours["num_templates"] == 4 and colours["num_classes"] == 3 and colours["num_skipped_images"] == 0
    assert colours["template_acc1_mean"] == pytest.approx(np.mean(acc))
    assert colours["template_acc1_std"] == pytest.approx(np.std(acc))
    assert (colours["template_acc1_min"], colours["template_acc1_max"]) == (0.0, 1.0)
    assert colours["template_balanced_accuracy_mean"] == pytest.approx(np.mean(balanced))
    assert colours["template_balanced_accuracy_std"] == pytest.approx(np.std(balanced))
    figures = results["figure_types/zeroshot_classification"]
    assert figures["acc1"] == figures["template_acc1_min"] == figures["acc5"] == 1.0 and figures["num_samples"] == 16
    assert results["oracle_volumes/zeroshot_classification"]["acc1"] == 1.0  # the middle slice tells the classes apart
    assert results["family/cell_biology"] == {"acc1": 1.0, "balanced_accuracy": 1.0,
                                              "template_acc1_mean": pytest.approx(np.mean(acc)),
                                              "template_acc1_std": pytest.approx(np.std(acc)),
                                              "template_balanced_accuracy_mean": pytest.approx(np.mean(balanced)),
                                              "num_tasks": 1}
    overall = results["overall"]
    assert overall["num_tasks"] == 3 and overall["num_tasks_skipped"] == 1 and overall["acc1"] == 1.0
    assert overall["template_acc1_mean"] == pytest.approx((1.0 + np.mean(acc) + 1.0) / 3)
    out = tmp_path / "out"
    details = json.loads((out / "tasks_details.json").read_text())
    assert [t["acc1"] for t in details["oracle_colours"]["templates"]] == acc
    assert details["oracle_colours"]["templates"][2]["template"] == "confused {}."
    assert list(json.loads((out / "tasks_skipped.json").read_text())) == ["ham10000"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["model"] == {"class": "Oracle"} and saved["suite"] == "biomed/tasks"
    assert "| oracle_colours/zeroshot_classification |" in (out / "results.md").read_text()
    for png in ("tasks_accuracy.png", "oracle_colours_confusion_matrix.png", "figure_types_confusion_matrix.png"):
        assert (out / png).stat().st_size > 1000


def test_the_volume_view_option_changes_which_pixels_are_scored(tmp_path, oracle_tasks):
    root = write_volumes(tmp_path / "data" / "volumes").parent
    scores = {}
    for view in ("middle", "max", "mean"):
        model = build_oracle()
        results = run_suite(model, model.tokenizer, raw_pixels, "biomed/tasks", data=root, out_dir=tmp_path / view,
                            batch_size=4, options={"tasks": ["oracle_volumes"], "view": view})
        scores[view] = results["oracle_volumes/zeroshot_classification"]["acc1"]
    # middle: each class's own level; max: both 900 (all "high"); mean: each the other class's level mostly
    assert scores == {"middle": 1.0, "max": 0.5, "mean": 0.0}


def test_rsna_dicom_files_listed_in_their_published_table(tmp_path):
    """The registry's rsna_pneumonia task: stage_2_train_labels.csv (a patient once per box) and DICOM files."""
    root = tmp_path / "rsna"
    rows, ids = [], []
    for target in (0, 1):
        for i in range(3):
            pixels = np.full((8, 8), 100 if target == 0 else 3000, np.uint16)
            pixels[0, 0] = 3000 if target == 0 else 100  # min-max scaling: mostly black, or mostly white
            patient = f"{target}{i}-patient"
            fixture.write_dicom(root / "stage_2_train_images" / f"{patient}.dcm", pixels, slope=1.0, intercept=-1024)
            rows += [(patient, str(target), None)] * (2 if target else 1)  # one row per box
            ids.append(patient)
    csv_path = fixture.write_label_csv(root, rows, csv_name="stage_2_train_labels.csv", path_column="patientId",
                                       label_column="Target", extra_columns={"x": "", "y": ""})
    spec = registry.get_task("rsna_pneumonia")
    palette = [(4, 4, 4), (251, 251, 251)]  # what min-max scaling makes of each class's images
    vectors = {p: one_hot(k, 2) for k, ps in enumerate(spec.prompts().values()) for p in ps}
    model = Oracle(palette, vectors)
    results = run_suite(model, model.tokenizer, raw_pixels, "biomed/tasks", data=None, out_dir=tmp_path / "out",
                        batch_size=4, options={"tasks": ["rsna_pneumonia"], "paths": {"rsna_pneumonia": str(csv_path)}})
    metrics = results["rsna_pneumonia/zeroshot_classification"]
    assert metrics["num_samples"] == 6 and metrics["acc1"] == 1.0 and metrics["template_acc1_min"] == 1.0
    assert model.images_seen == 6  # each patient once, however many boxes
    assert results["family/radiology"]["num_tasks"] == 1


def test_pathology_tasks_reuse_the_pathology_adapter_and_suite(tmp_path):
    from domainclip.domains.pathology import labels as plabels

    folder = fixture.write_class_folders(tmp_path / "CRC-VAL-HE-7K", plabels.NCT_CRC_CLASSES, 1)
    registry.register_task(TaskSpec(
        name="nct_by_suite", family="pathology", title="NCT-CRC through pathology/nct_crc",
        classes=registry.get_task("nct_crc").classes, templates=plabels.PATCH_TEMPLATES, folder="nct",
        layout="suite", delegate="pathology/nct_crc", expected="nct/", source="test"))
    try:
        n = len(plabels.NCT_CRC_CLASSES)
        vectors = {p: one_hot(k, n) for k, ps in enumerate(registry.get_task("nct_crc").prompts().values())
                   for p in ps}
        model = Oracle(fixture.PALETTE[:n], vectors)
        results = run_suite(model, model.tokenizer, raw_pixels, "biomed/tasks", data=None, out_dir=tmp_path / "out",
                            batch_size=5, options={"tasks": ["nct_crc", "nct_by_suite"],
                                                   "paths": {"nct_crc": str(folder), "nct_by_suite": str(folder)}})
    finally:
        registry.unregister_task("nct_by_suite")
    ours, theirs = results["nct_crc/zeroshot_classification"], results["nct_by_suite/zeroshot_classification"]
    assert ours["acc1"] == theirs["acc1"] == 1.0 and ours["num_samples"] == theirs["num_samples"] == 9
    assert ours["num_templates"] == 12 and ours["template_acc1_min"] == 1.0
    assert "num_templates" not in theirs  # scored by the pathology suite's own protocol
    assert (tmp_path / "out" / "nct_by_suite" / "nct_crc_confusion_matrix.png").is_file()
    assert results["family/pathology"]["num_tasks"] == 2


def test_missing_data_and_bad_options_are_one_line_errors(tmp_path, oracle_tasks):
    model = build_oracle()
    with pytest.raises(DatasetNotFoundError, match=r"biomed/tasks: no data for any task named \(ham10000: no data at "
                                                   r".*; pcam: no data at"):
        run_suite(model, model.tokenizer, raw_pixels, "biomed/tasks", data=tmp_path, out_dir=tmp_path / "o",
                  options={"tasks": ["ham10000", "pcam"]})
    with pytest.raises(DatasetNotFoundError, match=r"no data for any task of the registry \(nct_crc: no data at .*; "
                                                   r"pcam: .*; lc25000_lung: .*; and \d+ more task\(s\): see "
                                                   r"domainclip.domains.biomed.evals.expected_layout\(\)\)$"):
        run_suite(model, model.tokenizer, raw_pixels, "biomed/tasks", data=tmp_path, out_dir=tmp_path / "o")
    with pytest.raises(DatasetNotFoundError, match="biomed/tasks needs --data"):
        run_suite(model, model.tokenizer, raw_pixels, "biomed/tasks", data=None, out_dir=tmp_path / "o")
    with pytest.raises(InputError, match=r"paths: unknown biomed task 'ham1000'.*Did you mean: ham10000"):
        run_suite(model, model.tokenizer, raw_pixels, "biomed/tasks", data=tmp_path, out_dir=tmp_path / "o",
                  options={"paths": {"ham1000": "x"}})
    with pytest.raises(InputError, match=r"biomed/tasks\.tasks: unknown biomed task 'figure_type' \(did you mean "
                                         r"figure_types"):
        run_suite(model, model.tokenizer, raw_pixels, "biomed/tasks", data=tmp_path, out_dir=tmp_path / "o",
                  options={"tasks": ["figure_type"]})
    (tmp_path / "figure_types" / "charts").mkdir(parents=True)  # data there but in the wrong layout: not skipped
    with pytest.raises(DatasetNotFoundError, match=r"has folder 'charts'.*not a class of this task"):
        run_suite(model, model.tokenizer, raw_pixels, "biomed/tasks", data=tmp_path, out_dir=tmp_path / "o",
                  options={"tasks": ["figure_types"]})


def test_unreadable_images_are_skipped_and_counted(tmp_path, oracle_tasks):
    root = write_task_root(tmp_path / "data")
    (root / "oracle_colours" / "a" / "000.png").write_bytes(b"truncated")
    model = build_oracle()
    with pytest.warns(UserWarning, match=r"biomed/tasks: oracle_colours: skipped 1 sample.*bad_image: 1"):
        results = run_suite(model, model.tokenizer, raw_pixels, "biomed/tasks", data=root, out_dir=tmp_path / "out",
                            batch_size=4, options={"tasks": ["oracle_colours"]})
    metrics = results["oracle_colours/zeroshot_classification"]
    assert metrics["num_samples"] == 7 and metrics["num_skipped_images"] == 1
    assert metrics["template_acc1_min"] == 0.0 and metrics["acc1"] == 1.0


def test_tasks_suite_through_the_cli_with_a_tiny_random_model(tmp_path):
    fixture.write_class_folders(tmp_path / "data" / "figure_types", registry.get_task("figure_types").labels, 2)
    out = tmp_path / "tasks.json"
    with pytest.warns(UserWarning, match="biomed/tasks: skipped"):
        assert main(["eval", "--model", "dc-test-vit", "--suite", "biomed/tasks", "--data", str(tmp_path / "data"),
                     "--out", str(out), "--batch-size", "8"]) == 0
    saved = json.loads(out.read_text())
    results = saved["results"]
    assert set(results) == {"figure_types/zeroshot_classification", "family/figure_type", "overall"}
    task = results["figure_types/zeroshot_classification"]
    assert task["num_samples"] == 16 and task["num_templates"] == 5 and 0.0 <= task["acc1"] <= 1.0
    assert task["template_acc1_min"] <= task["template_acc1_mean"] <= task["template_acc1_max"]
    assert results["overall"]["num_tasks_skipped"] == len(registry.list_tasks()) - 1
    assert saved["model"]  # which model produced the numbers


# --------------------------------------------------------------------------------------------- retrieval suite
def test_retrieval_recalls_equal_the_core_block_with_chance_levels(tmp_path):
    n = 12
    captions = [f"figure {i}: a caption" for i in range(n)]
    data = fixture.write_figure_shards(tmp_path / "heldout", fixture.PALETTE[:n + 1], captions + ["broken"],
                                       broken=[n])
    g = torch.Generator().manual_seed(0)
    table = F.normalize(torch.eye(n) + 0.7 * torch.randn(n, n, generator=g), dim=-1)
    model = Oracle(fixture.PALETTE[:n], dict(zip(captions, table)))
    with pytest.warns(UserWarning, match=r"biomed/retrieval: skipped 1 sample.*bad_image: 1"):
        results = run_suite(model, model.tokenizer, raw_pixels, "biomed/retrieval", data=data,
                            out_dir=tmp_path / "out", batch_size=5)
    got = results["figures/retrieval"]
    expected = retrieval_metrics(torch.eye(n), table, torch.arange(n), (1, 5, 10))
    assert {k: got[k] for k in expected} == pytest.approx(expected)
    assert got["image_retrieval_recall@1"] < 1.0  # the noise makes some captions miss: the test can fail
    for k in (1, 5, 10):
        assert got[f"chance_image_retrieval_recall@{k}"] == got[f"chance_text_retrieval_recall@{k}"] == k / n
    assert got["num_images"] == got["num_texts"] == n and got["num_skipped_images"] == 1
    assert (tmp_path / "out" / "figures_retrieval_examples.png").stat().st_size > 1000
    with pytest.raises(DatasetNotFoundError, match="biomed/retrieval: dataset not found at"):
        run_suite(model, model.tokenizer, raw_pixels, "biomed/retrieval", data=tmp_path / "none",
                  out_dir=tmp_path / "o")


def test_retrieval_suite_through_the_cli_with_a_tiny_random_model(tmp_path):
    captions = [f"figure {i} shows a chart of results" for i in range(6)]
    data = fixture.write_figure_shards(tmp_path / "heldout", fixture.PALETTE[:6], captions)
    out = tmp_path / "r.json"
    assert main(["eval", "--model", "dc-test-vit", "--suite", "biomed/retrieval", "--data", str(data),
                 "--out", str(out), "--batch-size", "4"]) == 0
    got = json.loads(out.read_text())["results"]["figures/retrieval"]
    assert got["num_images"] == 6 and got["chance_image_retrieval_recall@5"] == 5 / 6
    assert got["image_retrieval_recall@1"] <= got["image_retrieval_recall@5"] <= got["image_retrieval_recall@10"] == 1
