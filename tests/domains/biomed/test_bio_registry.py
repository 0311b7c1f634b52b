"""The biomed evaluation registry, its adapters (folder per class, CSV) and the MONAI image reading."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from domainclip.core.checks import SUITE_ENGINE_ARGS
from domainclip.core.data.corrupt import CorruptSampleError
from domainclip.core.errors import DatasetNotFoundError, InputError
from domainclip.core.eval.suites import get_suite
from domainclip.core.options import check_options
from domainclip.core.plugins import UnknownNameError
from domainclip.domains.biomed import evals, registry, taxonomy
from domainclip.domains.biomed.datasets.folder import ClassFolder
from domainclip.domains.biomed.datasets.medical_image import MedicalImageLoader, volume_to_2d
from domainclip.domains.biomed.datasets.table import LabelTable
from domainclip.domains.pathology import labels as pathology_labels

_spec = importlib.util.spec_from_file_location("bio_eval_fixtures", Path(__file__).with_name("data_evals.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)


# --------------------------------------------------------------------------------------------- registry
def test_every_task_is_complete_and_its_family_known():
    names = registry.list_tasks()
    assert len(names) == len(set(names)) >= 25
    assert {registry.get_task(n).family for n in names} == set(registry.FAMILIES)
    for name in names:
        spec = registry.get_task(name)
        assert len(spec.classes) >= 2 and spec.templates and spec.expected and spec.source, name
        prompts = spec.prompts()
        assert list(prompts) == spec.labels
        assert all(len(p) == len(spec.templates) * len(names_) for p, (_, names_) in zip(prompts.values(),
                                                                                        spec.classes))
        assert spec.metric in ("acc1", "balanced_accuracy")
        if spec.layout == "suite":
            assert callable(get_suite(spec.delegate))  # the delegate suite exists
        else:
            assert spec.layout in evals.ADAPTERS


def test_the_expected_layout_names_each_tasks_sub_folder():
    lines = evals.expected_layout().splitlines()
    assert len(lines) == len(registry.list_tasks())
    assert ("ham10000: ham10000/ holding HAM10000_metadata.csv (image_id, dx) and images/<image_id>.jpg "
            "(both parts)") in lines
    assert evals.expected_layout(["figure_types"]).startswith("figure_types: figure_types/ holding one folder per")
    assert evals.expected_layout(["oct_kermany"]) == ("oct_kermany: OCT2017/test/ holding one folder per class "
                                                       "(CNV/, DME/, DRUSEN/, NORMAL/)")


def test_tasks_of_other_domains_and_the_taxonomy_are_referred_to_not_copied():
    nct = registry.get_task("nct_crc")
    assert nct.templates is pathology_labels.PATCH_TEMPLATES
    assert dict(nct.classes) == dict(pathology_labels.NCT_CRC_SYNONYMS)
    assert registry.get_task("pcam").labels == list(pathology_labels.PCAM_CLASSES)
    assert registry.get_task("cholec80_phase").delegate == "surgery/cholec80_phase"
    figures = registry.get_task("figure_types")
    assert figures.labels == taxonomy.figure_type_names() and figures.templates == taxonomy.TEMPLATES
    assert figures.prompts()["chart"] == taxonomy.prompts("chart")
    assert registry.list_tasks("surgery") == ["cholec80_phase", "autolaparo_phase", "kvasir"]


def test_a_task_name_typo_fails_when_options_are_checked_with_close_matches():
    with pytest.raises(UnknownNameError, match=r"unknown biomed task 'ham1000'.*Did you mean: ham10000"):
        registry.get_task("ham1000")
    with pytest.raises(InputError, match=r"biomed/tasks\.tasks: item 1: unknown biomed task 'ham1000' "
                                         r"\(did you mean ham10000"):
        check_options(evals.task_suite, {"tasks": ["figure_types", "ham1000"]}, where="biomed/tasks",
                      skip=SUITE_ENGINE_ARGS, require=False)
    ok = check_options(evals.task_suite, {"tasks": ["ham10000"], "families": ["dermatology"], "view": "max"},
                       where="x", skip=SUITE_ENGINE_ARGS, require=False)
    assert ok == {"tasks": ["ham10000"], "families": ["dermatology"], "view": "max"}
    with pytest.raises(InputError, match=r"families: must be one of pathology"):
        check_options(evals.task_suite, {"families": ["dermatolgy"]}, where="x", skip=SUITE_ENGINE_ARGS,
                      require=False)


def test_a_task_spec_refuses_what_it_cannot_score():
    base = {"name": "t", "family": "radiology", "title": "T", "templates": ("a {}.",), "folder": "t"}
    with pytest.raises(ValueError, match="at least two classes"):
        registry.TaskSpec(classes=(("a", ("a",)),), **base)
    with pytest.raises(ValueError, match="names a class twice"):
        registry.TaskSpec(classes=(("a", ("a",)), ("a", ("b",))), **base)
    with pytest.raises(ValueError, match="one '{}'"):
        registry.TaskSpec(classes=(("a", ("a",)), ("b", ("b",))), **{**base, "templates": ("no slot",)})
    with pytest.raises(UnknownNameError, match="task family"):
        registry.TaskSpec(classes=(("a", ("a",)), ("b", ("b",))), **{**base, "family": "astronomy"})
    with pytest.raises(ValueError, match="delegate"):
        registry.TaskSpec(classes=(("a", ("a",)), ("b", ("b",))), layout="suite", **base)


# --------------------------------------------------------------------------------------------- adapters
def test_class_folder_labels_in_the_tasks_order_and_walks_nested_folders(tmp_path):
    root = fixture.write_class_folders(tmp_path / "breakhis", ["benign", "malignant"], 2, nested=True)
    data = ClassFolder(root, ["malignant", "benign", "borderline"])  # a class without a folder is allowed
    assert data.classes == ["malignant", "benign", "borderline"]
    assert [label for _, label in data.samples] == [1, 1, 0, 0]  # files by folder name, labels by the task's order
    item = data[2]
    assert item["label"] == 0 and item["meta"]["class"] == "malignant" and item["image"].mode == "RGB"
    assert item["meta"]["path"].endswith("malignant/sub/000.png")
    assert np.abs(np.asarray(item["image"], dtype=int) - fixture.PALETTE[1]).max() <= 3
    with pytest.raises(DatasetNotFoundError, match=r"has folder 'malignant' \(did you mean 'malignent'\?\)"):
        ClassFolder(root, ["benign", "malignent"])
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        ClassFolder(tmp_path / "absent", ["a", "b"])
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="hold no image"):
        ClassFolder(tmp_path / "empty", ["a", "b"])
    masks = ClassFolder(root, ["benign", "malignant"], exclude=("001.png",))  # BUSI's *_mask.png files
    assert [Path(p).name for p, _ in masks.samples] == ["000.png", "000.png"]
    (root / "benign" / "000.png").write_bytes(b"truncated")
    with pytest.raises(CorruptSampleError, match="bad_image"):
        ClassFolder(root, ["benign", "malignant"])[0]


def test_label_table_reads_published_columns_image_folder_and_suffix(tmp_path):
    rows = [("ISIC_0001", "mel", fixture.PALETTE[0]), ("ISIC_0002", "nv", fixture.PALETTE[1]),
            ("ISIC_0001", "mel", None), ("ISIC_0003", "nv", None)]  # a repeated row, an image not on disk
    csv_path = fixture.write_label_csv(tmp_path / "ham", rows, csv_name="HAM10000_metadata.csv",
                                       path_column="image_id", label_column="dx", image_dir="images", suffix=".jpg",
                                       extra_columns={"lesion_id": "HAM_1"})
    table = LabelTable(csv_path, ["nv", "mel"], path_column="image_id", label_column="dx", image_dir="images",
                       suffix=".jpg")
    assert [(Path(p).name, label) for p, label in table.samples] == [("ISIC_0001.jpg", 1), ("ISIC_0002.jpg", 0),
                                                                     ("ISIC_0003.jpg", 0)]
    assert table.targets == [1, 0, 0] and table[1]["meta"]["class"] == "nv"
    with pytest.raises(CorruptSampleError, match=r"ISIC_0003\.jpg \(listed in HAM10000_metadata.csv\) does not exist"):
        table[2]
    with pytest.raises(InputError, match=r"line 2: label 'mel' \(did you mean 'mell'\?\) is not a class"):
        LabelTable(csv_path, ["nv", "mell"], path_column="image_id", label_column="dx")
    with pytest.raises(InputError, match=r"has no column 'path' \(its columns: lesion_id, image_id, dx\)"):
        LabelTable(csv_path, ["nv", "mel"])
    with pytest.raises(DatasetNotFoundError, match="no label table"):
        LabelTable(tmp_path / "ham" / "labels.csv", ["nv", "mel"])


# --------------------------------------------------------------------------------------------- MONAI reading
def test_dicom_is_read_through_monai_rescaled_windowed_and_oriented_as_pydicom(tmp_path):
    import pydicom

    stored = (np.arange(6 * 9).reshape(6, 9) * 7).astype(np.uint16)  # rows x columns, not square
    path = fixture.write_dicom(tmp_path / "x.dcm", stored, slope=2.0, intercept=-100.0)
    hu = pydicom.dcmread(path).pixel_array * 2.0 - 100.0
    loader = MedicalImageLoader()
    assert np.array_equal(loader.read_array(path), hu)  # rescale applied, rows and columns as pydicom's
    image = np.asarray(loader(path))
    assert image.shape == (6, 9, 3) and np.array_equal(image[..., 0], image[..., 2])
    expected = np.rint((hu - hu.min()) / (hu.max() - hu.min()) * 255)
    assert np.array_equal(image[..., 0], expected.astype(np.uint8))
    windowed = np.asarray(MedicalImageLoader(window=(0.0, 400.0))(path))[..., 0]
    assert np.array_equal(windowed, np.rint(np.clip(hu, 0, 400) / 400 * 255).astype(np.uint8))


def test_nifti_volume_view_and_plane_pick_the_expected_pixels(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 1000, (5, 7, 9)).astype(np.int16)  # (x, y, z)
    path = fixture.write_nifti(tmp_path / "ct.nii.gz", volume)
    read = {(view, plane): MedicalImageLoader(view=view, plane=plane).read_array(path)
            for view in ("middle", "max", "mean") for plane in ("axial", "coronal", "sagittal")}
    assert np.array_equal(read["middle", "axial"], volume[:, :, 4].T)
    assert np.array_equal(read["middle", "coronal"], volume[:, 3, :].T)
    assert np.array_equal(read["middle", "sagittal"], volume[2, :, :].T)
    assert np.array_equal(read["max", "axial"], volume.max(axis=2).T)
    assert np.allclose(read["mean", "axial"], volume.mean(axis=2).T)
    assert np.allclose(read["mean", "sagittal"], volume.mean(axis=0).T)
    image = np.asarray(MedicalImageLoader(view="max", window=(0.0, 999.0))(path))
    assert image.shape == (7, 5, 3)
    assert np.array_equal(image[..., 1], np.rint(volume.max(axis=2).T / 999.0 * 255).astype(np.uint8))
    flat = fixture.write_nifti(tmp_path / "xray.nii", volume[:, :, 0])  # a 2-D image is used as it is
    assert np.array_equal(MedicalImageLoader().read_array(flat), volume[:, :, 0].T)
    assert np.array_equal(volume_to_2d(volume[:, :, :1]), volume[:, :, 0].T)


def test_unreadable_radiology_files_are_bad_images(tmp_path):
    (tmp_path / "bad.dcm").write_bytes(b"DICM" * 10)
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b not gzip")
    for name in ("bad.dcm", "bad.nii.gz"):
        with pytest.raises(CorruptSampleError, match=f"bad_image: .*{name} cannot be read by MONAI"):
            MedicalImageLoader()(tmp_path / name)
    four_d = fixture.write_nifti(tmp_path / "4d.nii.gz", np.zeros((2, 2, 2, 2), np.int16))
    with pytest.raises(CorruptSampleError, match="expected a 2-D image or a 3-D volume"):
        MedicalImageLoader()(four_d)
    with pytest.raises(ValueError, match="low < high"):
        MedicalImageLoader(window=(10.0, 5.0))
