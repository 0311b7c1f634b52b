"""Pathology dataset adapters on fixtures in the public layouts: NCT-CRC folders, PCam HDF5, slide labels, shards."""

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from domainclip.core.plugins import UnknownNameError
from domainclip.domains.pathology import labels
from domainclip.domains.pathology.datasets import PatchCamelyon, PatchFolder, PatchShardStream, read_slide_labels
from domainclip.domains.pathology.datasets.slide_labels import (
    MISSING_SLIDE_ID,
    UNLABELLED_SLIDE,
    collate_patch_batch,
)

_spec = importlib.util.spec_from_file_location("pathology_fixture_datasets", Path(__file__).with_name("data.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)


# ------------------------------------------------------------------------------------------- labels
def test_nct_prompt_ensembles_cover_every_class_in_folder_order():
    prompts = labels.nct_crc_prompts()
    assert list(prompts) == list(fixture.NCT_CLASSES) == list(labels.NCT_CRC_CLASSES)
    assert labels.NCT_CRC_NAMES["TUM"] == "colorectal adenocarcinoma epithelium"
    assert labels.NCT_CRC_NAMES["STR"] == "cancer-associated stroma"
    for cls, texts in prompts.items():
        assert len(texts) == len(labels.NCT_CRC_SYNONYMS[cls]) * len(labels.PATCH_TEMPLATES)
        assert f"an H&E image of {labels.NCT_CRC_NAMES[cls]}." in texts
    every = [p for texts in prompts.values() for p in texts]
    assert len(every) == len(set(every)), "a prompt must belong to one class only"
    plain = labels.nct_crc_prompts(["a photo of {}."], synonyms=False)
    assert plain["ADI"] == ["a photo of adipose tissue."]


def test_pcam_prompts_and_display_names():
    prompts = labels.pcam_prompts(["{}."], synonyms=False)
    assert prompts == {"normal": ["lymph node tissue without metastasis."],
                       "metastasis": ["lymph node tissue with metastatic tumour."]}
    assert labels.display_name("lung_adeno-carcinoma") == "lung adeno-carcinoma"
    assert labels.display_name("BACK") == "background" and labels.display_name("normal") == "normal"
    with pytest.raises(ValueError, match="placeholder"):
        labels.expand_prompts({"a": "x"}, ["no placeholder"])
    with pytest.raises(ValueError, match="non-empty name"):
        labels.expand_prompts({"a": []}, ["{}"])


# ------------------------------------------------------------------------------------------- PatchFolder
def test_patch_folder_reads_nct_layout_in_nct_order(tmp_path):
    files = fixture.make_nct_crc(tmp_path / "CRC-VAL-HE-7K", per_class=2, size=12)
    ds = PatchFolder(tmp_path / "CRC-VAL-HE-7K")
    assert ds.classes == labels.NCT_CRC_CLASSES
    assert len(ds) == 18
    assert ds.targets == [i // 2 for i in range(18)]
    for index in (0, 7, 17):
        item = ds[index]
        cls = ds.classes[item["label"]]
        assert item["meta"]["class"] == cls
        assert Path(item["meta"]["path"]) in files[cls]
        assert item["image"].size == (12, 12) and item["image"].mode == "RGB"
        assert item["image"].getpixel((3, 3)) == fixture.NCT_COLOURS[cls]
    transformed = PatchFolder(tmp_path / "CRC-VAL-HE-7K", transform=fixture.to_tensor)[0]["image"]
    assert transformed.shape == (3, 12, 12)


def test_patch_folder_other_sets_sorted_with_mixed_suffixes(tmp_path):
    root = tmp_path / "set"
    for cls, suffix in (("tumor", "PNG"), ("normal", "jpg"), ("stroma", "TIFF")):
        (root / cls).mkdir(parents=True)
        Image.fromarray(fixture.solid((10, 20, 30), 8)).save(root / cls / f"a.{suffix}")
        (root / cls / "Thumbs.db").write_bytes(b"x")
        (root / cls / ".hidden.png").write_bytes(b"x")
    (root / ".cache").mkdir()
    (root / "README.txt").write_text("not a class")
    ds = PatchFolder(root)
    assert ds.classes == ("normal", "stroma", "tumor")
    assert len(ds) == 3 and ds.targets == [0, 1, 2]
    subset = PatchFolder(root, classes=["tumor", "normal"])
    assert subset.classes == ("tumor", "normal") and subset.targets == [0, 1]
    assert Path(subset[0]["meta"]["path"]).parent.name == "tumor"


def test_patch_folder_subset_of_nct_codes_keeps_nct_order(tmp_path):
    fixture.make_nct_crc(tmp_path / "r", per_class=1, classes=("TUM", "ADI", "NORM"))
    assert PatchFolder(tmp_path / "r").classes == ("ADI", "NORM", "TUM")


def test_patch_folder_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing")):
        PatchFolder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    Image.fromarray(fixture.solid((1, 2, 3), 4)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(ValueError, match="holds no class folders"):
        PatchFolder(tmp_path / "flat")
    fixture.make_nct_crc(tmp_path / "nct", per_class=1, classes=("ADI", "TUM"))
    (tmp_path / "nct" / "STR").mkdir()
    (tmp_path / "nct" / "STR" / "notes.txt").write_text("no images")
    with pytest.raises(ValueError, match=f"{tmp_path / 'nct' / 'STR'} holds no patches"):
        PatchFolder(tmp_path / "nct")
    with pytest.raises(FileNotFoundError, match=r"TUMOR does not exist\. Did you mean: TUM"):
        PatchFolder(tmp_path / "nct", classes=["ADI", "TUMOR"])
    fixture.make_nct_crc(tmp_path / "parent" / "CRC-VAL-HE-7K", per_class=1, classes=("ADI",))
    with pytest.raises(ValueError, match=r"It holds folders \(ADI\): is .*CRC-VAL-HE-7K the dataset root\?"):
        PatchFolder(tmp_path / "parent")
    (tmp_path / "nct" / "STR" / "STR-BAD.tif").write_bytes(b"not a tiff at all")
    ds = PatchFolder(tmp_path / "nct", classes=["STR"])
    with pytest.raises(ValueError, match="STR-BAD.tif cannot be read"):
        ds[0]


# ------------------------------------------------------------------------------------------- PatchCamelyon
def test_pcam_reads_the_official_pair_lazily(tmp_path):
    labels_ = (0, 1, 1, 0, 1, 0, 0, 1)
    fixture.make_pcam(tmp_path, labels=labels_)
    ds = PatchCamelyon(tmp_path, split="test")
    assert len(ds) == 8
    assert ds._handles is None, "nothing may stay open after construction"
    for i, label in enumerate(labels_):
        item = ds[i]
        assert item["label"] == label and item["meta"]["index"] == i
        assert item["image"].size == (96, 96)
        assert item["image"].getpixel((50, 50)) == fixture.PCAM_COLOURS[label]
    assert ds[-1]["label"] == labels_[-1]
    with pytest.raises(IndexError):
        ds[8]
    # pickles without file handles; the size does not depend on N
    small = len(pickle.dumps(ds))
    fixture.make_pcam(tmp_path / "big", labels=[0, 1] * 64)
    big_ds = PatchCamelyon(tmp_path / "big")
    big_ds[3]
    assert abs(len(pickle.dumps(big_ds)) - small) < 64
    clone = pickle.loads(pickle.dumps(big_ds))
    assert clone._handles is None and clone[5]["label"] == 1
    ds.close()


def test_pcam_in_dataloader_workers(tmp_path):
    fixture.make_pcam(tmp_path, labels=[0, 1] * 6)
    ds = PatchCamelyon(tmp_path, transform=fixture.to_tensor)
    ds[0]  # the parent has open handles; each worker must open its own
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    got = torch.cat([batch["label"] for batch in loader])
    assert got.tolist() == [0, 1] * 6


def test_pcam_layout_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="valid"):
        PatchCamelyon(tmp_path, split="validation")
    with pytest.raises(FileNotFoundError, match="camelyonpatch_level_2_split_test_x.h5 does not exist"):
        PatchCamelyon(tmp_path)
    x, y = fixture.make_pcam(tmp_path / "gz")
    y.rename(y.with_name(y.name + ".gz"))
    with pytest.raises(FileNotFoundError, match="gunzip"):
        PatchCamelyon(tmp_path / "gz")
    import h5py

    fixture.make_pcam(tmp_path / "short", labels=[0, 1, 0])
    with h5py.File(tmp_path / "short" / "camelyonpatch_level_2_split_test_y.h5", "w") as f:
        f.create_dataset("y", data=np.zeros((2, 1, 1, 1), np.uint8))
    with pytest.raises(ValueError, match="holds 3 patches but .* holds 2 labels"):
        PatchCamelyon(tmp_path / "short")
    fixture.make_pcam(tmp_path / "gray")
    with h5py.File(tmp_path / "gray" / "camelyonpatch_level_2_split_test_x.h5", "w") as f:
        f.create_dataset("x", data=np.zeros((8, 96, 96), np.uint8))
    with pytest.raises(ValueError, match=r"split_test_x.h5: dataset 'x' must be \(N, H, W, 3\)"):
        PatchCamelyon(tmp_path / "gray")
    fixture.make_pcam(tmp_path / "named")
    with h5py.File(tmp_path / "named" / "camelyonpatch_level_2_split_test_y.h5", "w") as f:
        f.create_dataset("labels", data=np.zeros((8, 1, 1, 1), np.uint8))
    with pytest.raises(ValueError, match="has no dataset 'y'.*labels"):
        PatchCamelyon(tmp_path / "named")


# ------------------------------------------------------------------------------------------- slide labels
def test_read_slide_labels(tmp_path):
    path = tmp_path / "slides.csv"
    path.write_text("\ufeffslide_id, label ,site\n s1 ,LUAD,A\ns2,LUSC,B\n\ns1,LUAD,C\n", encoding="utf-8")
    assert read_slide_labels(path) == {"s1": "LUAD", "s2": "LUSC"}
    fixture.write_slides_csv(tmp_path / "b.csv", {"x": "tumor", "y": "normal"}, extra=False)
    assert read_slide_labels(tmp_path / "b.csv") == {"x": "tumor", "y": "normal"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slide,label\na,b\n", r"missing column\(s\) slide_id"),
        ("slide_id,label\na,x\nb,\n", r"bad.csv:3: slide 'b' has an empty label"),
        ("slide_id,label\na,x\n,y\n", r"bad.csv:3: empty slide_id"),
        ("slide_id,label\na,x\nb,y\na,y\n", r"bad.csv:4: slide 'a' is labelled 'y' but line 2 labels it 'x'"),
        ("slide_id,label\n", "lists no slides"),
        ("", "missing column"),
    ],
)
def test_read_slide_labels_errors(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_slide_labels(path)


def test_read_slide_labels_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv does not exist"):
        read_slide_labels(tmp_path / "nope.csv")


# ------------------------------------------------------------------------------------------- shard stream
def test_patch_shard_stream_items_and_skips(tmp_path):
    records = fixture.write_patch_shards(
        tmp_path, [("s1", (200, 0, 0))] * 3 + [("s2", (0, 200, 0))] * 2 + [("s3", (0, 0, 200))], max_count=4
    )
    from domainclip.core.data.writer import ShardWriter

    with ShardWriter(tmp_path, prefix="odd", image_format="png") as w:
        w.write({"__key__": "noslide", "image": fixture.solid((1, 1, 1), 4), "meta": {"x": 0}})
        w.write({"__key__": "badimg", "png": b"garbage", "meta": {"slide_id": "s1"}})
    items = list(PatchShardStream(tmp_path, fixture.to_tensor, slide_ids={"s1", "s2"}))
    good = [i for i in items if i["skip"] is None]
    assert [i["key"] for i in good] == [r["key"] for r in records if r["slide_id"] in ("s1", "s2")]
    assert all(i["image"].shape == (3, 16, 16) for i in good)
    reasons = {i["key"]: i["skip"] for i in items if i["skip"]}
    assert reasons == {"s3_00000": UNLABELLED_SLIDE, "noslide": MISSING_SLIDE_ID, "badimg": "bad_image"}
    assert [Path(i["url"]).name for i in items[:2]] == ["odd-000000.tar"] * 2  # shards in name order
    batch = collate_patch_batch(items[2:8])
    assert batch["image"].shape == (5, 3, 16, 16) and batch["slide_id"] == ["s1"] * 3 + ["s2"] * 2
    assert [s["key"] for s in batch["skipped"]] == ["s3_00000"]

    shard = tmp_path / "patches-000000.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    items = list(PatchShardStream(shard))
    assert items[-1]["skip"] == "bad_shard" and str(shard) in items[-1]["detail"]
