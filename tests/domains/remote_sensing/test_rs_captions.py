"""Caption sets in their published layouts (RSICD, UCM-Captions, Sydney-Captions, RSITMD) and their shards."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from domainclip.core.data.decode import SampleDecoder
from domainclip.core.errors import DatasetNotFoundError, InputError, NothingWrittenError
from domainclip.domains.remote_sensing.captions import prepare_captions, resize_shorter_side
from domainclip.domains.remote_sensing.datasets.captions import (
    CAPTION_DATASETS,
    RSICD,
    RSITMD,
    CaptionLayoutError,
    SydneyCaptions,
    UCMCaptions,
    detect_caption_dataset,
    distinct_captions,
    read_caption_image,
    read_karpathy_json,
)
from tests.domains.remote_sensing.data_captions import LAYOUTS, write_caption_set
from tests.shards import shard_samples

DATASETS = sorted(LAYOUTS)




# ----------------------------------------------------------------------------- adapters
@pytest.mark.parametrize("dataset", DATASETS)
def test_adapters_read_their_layout_with_every_caption(tmp_path, dataset):
    truth = write_caption_set(tmp_path, dataset, n=10, blank_first=dataset == "rsitmd")
    adapter = CAPTION_DATASETS[dataset](truth.root, split="test")
    assert len(adapter) == len(truth.split("test")) == 2
    for i, image in enumerate(truth.split("test")):
        sample = adapter[i]
        assert sample["text"] == image.captions  # copies kept, in file order
        meta = sample["meta"]
        assert (meta["dataset"], meta["filename"], meta["split"], meta["image_id"]) == (
            dataset, image.filename, "test", image.imgid)
        assert meta["distinct_captions"] == image.distinct and meta["captions"] == len(image.captions)
        pixels = np.asarray(sample["image"])
        if dataset == "rsicd":  # JPEG: close, not equal
            assert pixels.shape == image.pixels.shape and np.abs(pixels.astype(int) - image.pixels).mean() < 4
        else:  # 8-bit TIFF, read through rasterio as published
            np.testing.assert_array_equal(pixels, image.pixels)
    everything = CAPTION_DATASETS[dataset](truth.root, split=None)
    assert len(everything) == 10
    assert [r.filename for r in everything.records] == [im.filename for im in truth.images]
    if dataset == "rsitmd":
        assert everything.records[0].blank == 1 and len(everything.records[0].captions) == 4
    assert len(CAPTION_DATASETS[dataset](truth.root, split=("train", "test"))) == len(
        truth.split("train")) + len(truth.split("test"))


def test_adapter_plot_and_transforms(tmp_path):
    truth = write_caption_set(tmp_path, "rsicd", n=5)
    adapter = RSICD(truth.root, split="train", transforms=lambda s: {**s, "seen": True})
    sample = adapter[0]
    assert sample["seen"]
    fig = adapter.plot(sample, suptitle="RSICD")
    assert fig.axes[0].get_title().count("\n") == truth.images[0].distinct - 1  # each different caption once


def test_rsicd_caption_file_in_the_annotations_folder_of_the_release(tmp_path):
    truth = write_caption_set(tmp_path, "rsicd", n=5)
    (truth.root / "annotations_rsicd").mkdir()
    truth.caption_file.rename(truth.root / "annotations_rsicd" / "dataset_rsicd.json")
    assert RSICD(truth.root, split=None).caption_file.parent.name == "annotations_rsicd"
    assert detect_caption_dataset(truth.root) is RSICD


@pytest.mark.parametrize(("cls", "remove", "expected"), [
    (RSICD, "dataset_rsicd.json", "no dataset_rsicd.json or annotations_rsicd/dataset_rsicd.json"),
    (RSICD, "RSICD_images", "no RSICD_images/ folder"),
    (UCMCaptions, "imgs", "no imgs/ folder"),
    (RSITMD, "dataset_RSITMD.json", "no dataset_RSITMD.json"),
])
def test_missing_parts_name_what_the_folder_must_hold(tmp_path, cls, remove, expected):
    truth = write_caption_set(tmp_path, cls.name, n=3)
    target = truth.root / remove
    if target.is_dir():
        for f in target.iterdir():
            f.unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(DatasetNotFoundError, match="expected") as info:
        cls(truth.root)
    assert expected in str(info.value) and str(truth.root) in str(info.value)
    with pytest.raises(DatasetNotFoundError, match=f"{cls.title} not found: .* is not a folder"):
        cls(tmp_path / "nowhere")


def test_a_split_without_images_and_an_unknown_split(tmp_path):
    truth = write_caption_set(tmp_path, "rsitmd", n=6)
    with pytest.raises(DatasetNotFoundError, match=r"has no image of split val \(its splits: test, train\)"):
        RSITMD(truth.root, split="val")
    with pytest.raises(Exception, match="validation|val"):
        RSITMD(truth.root, split="validation")


@pytest.mark.parametrize(("content", "expected"), [
    ('{"annotations": [{"image_id": 1, "caption": "a plane"}]}', "found an object with keys annotations, no 'images'"),
    ('[{"filename": "1.tif"}]', "found a JSON list, no 'images' list"),
    ('{"images": [{"filename": "1.tif", "split": "train", "captions": ["a plane"]}]}',
     "images[0].sentences is missing, not a list"),
    ('{"images": [{"filename": "1.tif", "split": "train", "sentences": [{"tokens": ["a"]}]}]}',
     "images[0].sentences[0] has no 'raw' string"),
    ('{"images": [{"filename": 1, "split": "train", "sentences": []}]}', "images[0].filename is a int, not a str"),
    ('{"images": []}', "its 'images' list is empty"),
    ('{"images": [', "not valid JSON"),
])
def test_a_caption_file_in_another_layout_is_one_line(tmp_path, content, expected):
    path = tmp_path / "dataset.json"
    path.write_text(content)
    with pytest.raises(CaptionLayoutError) as info:
        read_karpathy_json(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and expected in message and "Karpathy format" in message
    assert "\n" not in message and isinstance(info.value, InputError)


def test_detect_tells_the_layouts_apart(tmp_path):
    for dataset in DATASETS:
        truth = write_caption_set(tmp_path / dataset, dataset, n=3)
        assert detect_caption_dataset(truth.root) is CAPTION_DATASETS[dataset]
    # UCM and Sydney share a layout: the caption file's "dataset" field, else the folder's name, tells them apart
    sydney = write_caption_set(tmp_path / "s", "sydney_captions", n=3)
    data = json.loads(sydney.caption_file.read_text())
    del data["dataset"]
    sydney.caption_file.write_text(json.dumps(data))
    assert detect_caption_dataset(sydney.root) is SydneyCaptions
    renamed = sydney.root.rename(tmp_path / "s" / "captions_2016")
    with pytest.raises(DatasetNotFoundError, match="the layout of ucm_captions or sydney_captions; say which"):
        detect_caption_dataset(renamed)
    with pytest.raises(DatasetNotFoundError, match="no caption dataset found at .*RSICD: dataset_rsicd.json"):
        detect_caption_dataset(tmp_path)


def test_read_caption_image_tiffs_and_failures(tmp_path):
    from domainclip.domains.remote_sensing.raster import write_geotiff

    rng = np.random.default_rng(0)
    four = rng.integers(0, 256, (4, 8, 10), dtype=np.uint8)  # RGB + NIR, 8 bits: the first three as they are
    write_geotiff(tmp_path / "four.tif", four, crs="EPSG:32618", transform=(10, 0, 500000, 0, -10, 4000000))
    np.testing.assert_array_equal(np.asarray(read_caption_image(tmp_path / "four.tif")), four[:3].transpose(1, 2, 0))
    deep = rng.integers(0, 4000, (3, 8, 10), dtype=np.uint16)  # 16 bits: stretched to 8 bits per band
    write_geotiff(tmp_path / "deep.tif", deep, crs="EPSG:32618", transform=(10, 0, 500000, 0, -10, 4000000))
    stretched = np.asarray(read_caption_image(tmp_path / "deep.tif"))
    assert stretched.dtype == np.uint8 and stretched.shape == (8, 10, 3)
    assert stretched.min() == 0 and stretched.max() == 255  # the 2nd and 98th percentiles span 0..255
    (tmp_path / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    for name, reason in (("broken.tif", "bad_image"), ("broken.jpg", "bad_image"), ("absent.tif", "missing_image")):
        with pytest.raises(Exception) as info:
            read_caption_image(tmp_path / name)
        assert info.value.reason == reason and name in info.value.detail


def test_distinct_captions_ignores_case_and_spacing():
    assert distinct_captions(["A road .", "a  road .", "a road", "Two roads ."]) == 3


# ----------------------------------------------------------------------------- prepare
@pytest.mark.parametrize("dataset", DATASETS)
def test_prepare_writes_every_caption_per_split(tmp_path, dataset):
    truth = write_caption_set(tmp_path, dataset, n=10)
    out = tmp_path / "out"
    summary = prepare_captions(out, truth.root, max_count=3, progress=False)
    assert summary["dataset"] == dataset and summary["caption_file"] == str(truth.caption_file)
    for split in ("train", "val", "test"):
        images = truth.split(split)
        assert summary["splits"][split]["images"] == len(images)
        assert summary["splits"][split]["captions"] == 5 * len(images)
        assert summary["splits"][split]["distinct_captions"] == sum(im.distinct for im in images)
        if not images:
            assert not (out / split).exists()
            continue
        samples = shard_samples(out / split)
        assert sorted(p.name for p in (out / split).glob("*.tar")) == summary["splits"][split]["shards"]
        assert all(name.startswith(f"{dataset}-") for name in summary["splits"][split]["shards"])
        assert len(samples) == len(images)
        for image in images:
            key = image.filename.rsplit(".", 1)[0]
            raw = samples[key]
            assert json.loads(raw["text.json"]) == {"en": image.captions}
            meta = json.loads(raw["json"])
            assert meta["filename"] == image.filename and meta["split"] == split and meta["image_id"] == image.imgid
            assert meta["distinct_captions"] == image.distinct and meta["size"] == [28, 20]
            if dataset == "rsicd":  # a JPEG in a JPEG set keeps its bytes
                assert raw["jpg"] == (truth.root / "RSICD_images" / image.filename).read_bytes()
    expected = {}
    for image in truth.images:
        expected[str(image.distinct)] = expected.get(str(image.distinct), 0) + 1
    assert summary["images_by_distinct_captions"] == dict(sorted(expected.items()))
    assert summary["skipped"] == {}


def test_prepare_resizes_reencodes_and_feeds_the_multilingual_decoder(tmp_path):
    truth = write_caption_set(tmp_path, "ucm_captions", n=5)
    out = tmp_path / "out"
    prepare_captions(out, truth.root, splits=("train",), image_size=40, image_format="png", progress=False)
    samples = shard_samples(out / "train")
    assert sorted(samples) == ["1", "2", "3"] and not (out / "test").exists()
    image = Image.open(io.BytesIO(samples["1"]["png"]))
    assert image.size == (56, 40)  # shorter side 40, aspect ratio kept (28 x 20 -> 56 x 40)
    expected = resize_shorter_side(Image.fromarray(truth.images[0].pixels), 40)
    np.testing.assert_array_equal(np.asarray(image), np.asarray(expected))
    decoded = SampleDecoder(languages={})({"__key__": "1", "__url__": "u", **samples["1"]})
    assert decoded["text"] in truth.images[0].captions  # one English caption drawn
    assert SampleDecoder(text_choice="all")(samples["1"])["text"] == {"en": truth.images[0].captions}


def test_prepare_skips_and_counts_missing_and_broken_images(tmp_path):
    truth = write_caption_set(tmp_path, "rsitmd", n=6)
    (truth.root / "images" / truth.images[0].filename).unlink()
    (truth.root / "images" / truth.images[1].filename).write_bytes(b"not an image")
    summary = prepare_captions(tmp_path / "out", truth.root, progress=False)
    assert summary["skipped"] == {"bad_image": 1, "missing_image": 1}
    assert truth.images[0].filename in summary["skipped_examples"]["missing_image"]
    assert summary["splits"]["train"]["images"] + summary["splits"]["test"]["images"] == 4
    for image in truth.images[2:]:
        assert image.filename.rsplit(".", 1)[0] in shard_samples(tmp_path / "out" / image.split)


def test_prepare_refuses_when_nothing_can_be_written(tmp_path):
    truth = write_caption_set(tmp_path, "sydney_captions", n=4)
    for image in truth.images:
        (truth.root / "imgs" / image.filename).unlink()
    with pytest.raises(NothingWrittenError, match=r"wrote no image-caption pairs from 4 images of .*dataset.json: "
                                                  r"missing_image: 4 \(e\.g\. .*1\.tif does not exist\)"):
        prepare_captions(tmp_path / "out", truth.root, progress=False)
    with pytest.raises(InputError, match=r"has no image of split val \(its splits: test, train\)"):
        prepare_captions(tmp_path / "o2", write_caption_set(tmp_path / "r", "rsitmd", n=6).root, splits=("val",),
                         progress=False)


def test_prepare_through_the_command_line(tmp_path):
    from domainclip.cli import main

    truth = write_caption_set(tmp_path, "rsicd", n=5)
    out = tmp_path / "out"
    assert main(["prepare", "remote_sensing", "captions", "--out", str(out), "--data", str(truth.root),
                 "--dataset", "rsicd", "--splits", "train", "test", "--no-progress"]) == 0
    assert len(shard_samples(out / "train")) == 3 and len(shard_samples(out / "test")) == 1
    assert json.loads((out / ".domainclip-output.json").read_text())["complete"]
