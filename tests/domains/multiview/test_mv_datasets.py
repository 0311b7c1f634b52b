"""Multi-view dataset adapters on fixtures in the public layouts: MVCap, MVImgNet, ImageNet-V."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from domainclip.core.data.corrupt import CorruptSampleError
from domainclip.core.errors import DatasetNotFoundError, InputError
from domainclip.domains.multiview.datasets import even_indices, natural_key, read_view
from domainclip.domains.multiview.datasets.imagenet_v import ImageNetV, object_class
from domainclip.domains.multiview.datasets.mvcap import MVCap, MVCapLayoutError, read_category_map, subset_of
from domainclip.domains.multiview.datasets.mvimgnet import MVImgNet, read_mvimgnet_categories

_spec = importlib.util.spec_from_file_location("mv_data_import", Path(__file__).with_name("data_import.py"))
data = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))  # dataclasses look it up
_spec.loader.exec_module(data)


def _colour(image) -> tuple[int, ...]:
    pixels = np.asarray(image)
    assert (pixels == pixels[0, 0]).all()  # one flat colour: one view
    return tuple(int(v) for v in pixels[0, 0])


# ----------------------------------------------------------------------------- shared helpers
def test_even_indices_keep_ends_and_spread():
    assert even_indices(5, 3) == [0, 2, 4]
    assert even_indices(12, 4) == [0, 4, 7, 11]
    assert even_indices(3, 5) == [0, 1, 2] and even_indices(4, None) == [0, 1, 2, 3] and even_indices(9, 1) == [0]
    assert len(set(even_indices(101, 100))) == 100


def test_natural_key_orders_numbers_numerically():
    assert sorted(["10.jpg", "2.jpg", "1.jpg"], key=natural_key) == ["1.jpg", "2.jpg", "10.jpg"]
    assert sorted(["frame_10.png", "frame_9.png"], key=natural_key) == ["frame_9.png", "frame_10.png"]


def test_read_view_names_missing_and_undecodable_files(tmp_path):
    with pytest.raises(CorruptSampleError) as e:
        read_view(tmp_path / "absent.png")
    assert e.value.reason == "missing_image" and "absent.png" in e.value.detail
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(CorruptSampleError) as e:
        read_view(tmp_path / "bad.png")
    assert e.value.reason == "bad_image" and "bad.png" in e.value.detail


# ----------------------------------------------------------------------------- MVCap
def test_mvcap_groups_records_by_object_in_img_id_order(tmp_path):
    truth = data.write_mvcap(tmp_path, n_objects=4, views=5, seed=3)
    dataset = MVCap(tmp_path)
    assert len(dataset) == 4 and dataset.classes == []
    assert [o.obj_id for o in dataset.objects] == [o.obj_id for o in truth.objects]
    for i, obj in enumerate(truth.objects):
        item = dataset[i]
        assert [_colour(v) for v in item["views"]] == [c for *_, c in obj.views]  # img_id order, not file order
        assert item["text"] == [caption for _, caption, _, _ in obj.views]
        meta = item["meta"]
        assert meta["object_id"] == str(obj.obj_id) and meta["category"] is None
        assert meta["subset"] == obj.subset and meta["source"] == f"mvcap:{obj.subset}" and meta["folder"] == obj.folder
        assert [v["extra"]["img_id"] for v in meta["views"]] == [img_id for _, _, img_id, _ in obj.views]
        assert [v["extra"]["file"] for v in meta["views"]] == [p for p, *_ in obj.views]
        assert meta["caption_source"] == "dataset"


def test_mvcap_subsamples_views_evenly_and_takes_categories(tmp_path):
    truth = data.write_mvcap(tmp_path, n_objects=3, views=5, seed=1)
    mapping = data.write_category_map(tmp_path / "categories.csv", truth)
    dataset = MVCap(tmp_path, categories=mapping, views=3)
    assert dataset.classes == sorted(data.MVCAP_CATEGORIES)
    item = dataset[1]
    assert [_colour(v) for v in item["views"]] == [truth.objects[1].views[i][3] for i in (0, 2, 4)]
    assert item["meta"]["category"] == truth.objects[1].category
    assert len(item["text"]) == 3
    by_folder = data.write_category_map(tmp_path / "by_folder.json", truth, by="folder")
    assert [o.category for o in MVCap(tmp_path, categories=by_folder).objects] == [o.category for o in truth.objects]


def test_mvcap_reads_a_category_field_of_the_records(tmp_path):
    truth = data.write_mvcap(tmp_path, n_objects=3, with_category_field=True)
    assert [o.category for o in MVCap(tmp_path).objects] == [o.category for o in truth.objects]


def test_mvcap_duplicate_img_ids_are_dropped_and_counted(tmp_path):
    truth = data.write_mvcap(tmp_path, n_objects=2, views=3)
    records = json.loads(truth.metadata.read_text())
    records.append(dict(records[0], caption="a second record of the same image"))
    truth.metadata.write_text(json.dumps(records))
    objects = MVCap(tmp_path).objects
    assert sum(o.duplicates for o in objects) == 1 and all(len(o.views) == 3 for o in objects)


@pytest.mark.parametrize(("content", "message"), [
    ('{"images": []}', "found an object with keys images"),
    ('[{"path": "./views/a/000.png", "caption": "a chair", "img_id": 1}]', "record 0 field 'obj_id' is missing"),
    ('[{"path": "./views/a/000.png", "caption": 3, "obj_id": 1, "img_id": 1}]', "record 0 field 'caption' is 3"),
    ("[{", "not valid JSON"),
])
def test_mvcap_metadata_in_another_layout_is_one_error_naming_the_file(tmp_path, content, message):
    (tmp_path / "metadata.json").write_text(content)
    with pytest.raises(MVCapLayoutError) as e:
        MVCap(tmp_path)
    assert str(tmp_path / "metadata.json") in str(e.value) and message in str(e.value)
    assert "obj_id" in str(e.value)  # says what was expected


def test_mvcap_missing_folder_or_metadata_says_what_it_needs(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="is not a folder; expected metadata.json"):
        MVCap(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match=r"no metadata.json; expected metadata.json \(path, caption"):
        MVCap(tmp_path)


def test_mvcap_missing_view_is_a_corrupt_sample(tmp_path):
    truth = data.write_mvcap(tmp_path, n_objects=2, views=2)
    (tmp_path / truth.objects[0].views[1][0]).unlink()
    with pytest.raises(CorruptSampleError) as e:
        MVCap(tmp_path)[0]
    assert e.value.reason == "missing_image"
    assert len(MVCap(tmp_path)[1]["views"]) == 2


def test_category_maps_and_subsets(tmp_path):
    (tmp_path / "m.tsv").write_text("3177\tchair\n3184\tmug\n")
    assert read_category_map(tmp_path / "m.tsv") == {"3177": "chair", "3184": "mug"}
    (tmp_path / "bad.csv").write_text("3177,chair,extra\n")
    with pytest.raises(MVCapLayoutError, match="row 1 has 3 cells"):
        read_category_map(tmp_path / "bad.csv")
    (tmp_path / "empty.json").write_text('{"3177": " "}')
    with pytest.raises(MVCapLayoutError, match="not a non-empty string"):
        read_category_map(tmp_path / "empty.json")
    assert subset_of("./views/abc/000.png") == "objaverse" and subset_of("im3d/x/1.png") == "im3d"
    assert subset_of("./mvimgnet/0/0000251e/images/001.jpg") == "mvimgnet" and subset_of("x.png") == "unknown"


# ----------------------------------------------------------------------------- MVImgNet
def test_mvimgnet_reads_class_folders_with_names_from_the_class_list(tmp_path):
    truth = data.write_mvimgnet(tmp_path, frames=12, seed=2)
    dataset = MVImgNet(tmp_path, views=4)
    assert dataset.category_file == tmp_path / "mvimgnet_category.txt"
    assert dataset.classes == sorted({"bag", "mug", "Toy butterfly"})  # trailing space stripped
    assert [(o.class_label, o.instance_id) for o in dataset.objects] == [(t.class_label, t.instance_id) for t in truth]
    item = dataset[2]
    expected = [truth[2].frames[i][1] for i in (0, 4, 7, 11)]  # 1.jpg, 5.jpg, 8.jpg, 12.jpg: capture order
    assert np.abs(np.array([_colour(v) for v in item["views"]]) - np.array(expected)).max() <= 2  # JPEG
    assert item["text"] == ["a photo of a mug."]
    meta = item["meta"]
    assert meta["object_id"] == f"17/{truth[2].instance_id}" and meta["category"] == "mug"
    assert meta["views"][1]["extra"]["file"] == f"17/{truth[2].instance_id}/images/5.jpg"


def test_mvimgnet_without_a_class_list_uses_the_labels_and_counts_objects_without_frames(tmp_path):
    data.write_mvimgnet(tmp_path, labels=("0", "1"), per_class=1, frames=2, category_file=False)
    (tmp_path / "1" / "ffff0000").mkdir()  # an object folder without images/
    dataset = MVImgNet(tmp_path, caption_template="a {category} object")
    assert dataset.classes == ["0", "1"] and len(dataset) == 2 and dataset.skipped == {"no_frames": 1}
    assert dataset[0]["text"] == ["a 0 object"]
    with pytest.raises(InputError, match="must contain '{category}'"):
        MVImgNet(tmp_path, caption_template="a photo")


def test_mvimgnet_class_list_format(tmp_path):
    path = tmp_path / "mvimgnet_category.txt"
    path.write_text("class_label,name\n0,bag\n\n12,remote control\n203,Toy butterfly \n")
    assert read_mvimgnet_categories(path) == {"0": "bag", "12": "remote control", "203": "Toy butterfly"}
    path.write_text("0,bag\nbottle\n")
    with pytest.raises(InputError, match=r"mvimgnet_category.txt:2: 'bottle' is not 'label,name'"):
        read_mvimgnet_categories(path)
    path.write_text("0,bag\n0,bottle\n")
    with pytest.raises(InputError, match="class 0 is listed twice"):
        read_mvimgnet_categories(path)


def test_mvimgnet_empty_folder_says_what_it_needs(tmp_path):
    (tmp_path / "0" / "0000251e").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match=r"no object folder with images/; expected <class_label>"):
        MVImgNet(tmp_path)


# ----------------------------------------------------------------------------- ImageNet-V
def test_imagenet_v_objects_layout_groups_viewfool_objects_into_classes(tmp_path):
    colours = data.write_imagenet_v(tmp_path, layout="objects", renders=3, seed=4)
    dataset = ImageNetV(tmp_path, layout="objects")
    assert dataset.classes == ["apple", "mic", "sofa", "traffic_light"] and len(dataset) == 15
    items = [dataset[i] for i in range(len(dataset))]
    sofa = [it for it in items if it["meta"]["class"] == "sofa"]
    assert {it["meta"]["object_id"] for it in sofa} == {"sofa_2", "sofa_3"} and {it["label"] for it in sofa} == {2}
    first = [it for it in items if it["meta"]["object_id"] == "sofa_3"]
    assert [it["meta"]["view_index"] for it in first] == [0, 1, 2]
    assert [_colour(it["image"]) for it in first] == colours["sofa_3"]
    assert all(it["meta"]["viewpoint"] is None for it in items)
    assert dataset.object_ids.count("apple_2") == 3


def test_imagenet_v_classes_layout_with_ovt_class_names(tmp_path):
    colours = data.write_imagenet_v(tmp_path, layout="classes", renders=2)
    (tmp_path / "sofa" / "sofa_9").mkdir()  # an object sub-folder inside a class folder
    data._write_view(tmp_path / "sofa" / "sofa_9" / "000.png", (1, 2, 3), (8, 8))
    names = tmp_path / "gt_label_imv.txt"
    names.write_text("apple\nmicrophone\nstudio couch\ntraffic light\n")
    dataset = ImageNetV(tmp_path, class_names=names, transform=lambda image: np.asarray(image).shape)
    assert dataset.classes == ["apple", "microphone", "studio couch", "traffic light"]
    assert dataset.folders == ["apple", "mic", "sofa", "traffic_light"]
    sofa = [i for i, (_, label) in enumerate(dataset.samples) if label == 2]
    assert len(sofa) == len(colours["sofa"]) + 1
    nested = dataset[sofa[-1]]
    assert nested["meta"]["object_id"] == "sofa_9" and nested["image"] == (8, 8, 3)
    assert dataset[sofa[0]]["meta"]["object_id"] is None and dataset[sofa[0]]["meta"]["class"] == "studio couch"
    names.write_text("apple\nmic\n")
    with pytest.raises(InputError, match=r"names 2 classes but .* has 4"):
        ImageNetV(tmp_path, class_names=names)


def test_imagenet_v_refuses_empty_folders_and_names_them(tmp_path):
    data.write_imagenet_v(tmp_path, layout="objects", renders=1)
    (tmp_path / "lamp").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"no image .* in lamp; expected <class>/<image>.png"):
        ImageNetV(tmp_path, layout="objects")
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        ImageNetV(tmp_path / "nowhere")


def test_imagenet_v_bad_image_is_a_corrupt_sample(tmp_path):
    data.write_imagenet_v(tmp_path, layout="objects", renders=1)
    (tmp_path / "mic" / "000.png").write_bytes(b"truncated")
    dataset = ImageNetV(tmp_path, layout="objects")
    index = dataset.object_ids.index("mic")
    with pytest.raises(CorruptSampleError):
        dataset[index]
    assert object_class("car_10") == "car" and object_class("traffic_light") == "traffic_light"
