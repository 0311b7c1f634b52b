"""``prepare multiview import``: MVCap and MVImgNet layouts into one multi-view sample per object."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from domainclip.cli import main
from domainclip.core.errors import NothingWrittenError
from domainclip.domains.multiview.datasets.mvcap import MVCapLayoutError
from domainclip.domains.multiview.importers import import_views
from domainclip.domains.multiview.views import decode_views, read_meta
from tests.shards import shard_samples

_spec = importlib.util.spec_from_file_location("mv_data_import", Path(__file__).with_name("data_import.py"))
data = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))  # dataclasses look it up
_spec.loader.exec_module(data)




def _colours(raw: dict) -> list[tuple[int, ...]]:
    return [tuple(int(v) for v in np.asarray(view)[2, 2]) for view in decode_views(raw)]


def test_mvcap_objects_become_samples_with_their_views_and_captions(tmp_path):
    truth = data.write_mvcap(tmp_path / "src", n_objects=4, views=5, seed=5)
    categories = data.write_category_map(tmp_path / "categories.json", truth)
    summary = import_views(tmp_path / "out", tmp_path / "src", layout="mvcap", categories=categories,
                           image_format="png", max_count=3, progress=False)
    assert (summary["objects"], summary["views"], summary["categories"]) == (4, 20, 3)
    assert summary["shards"] == ["mvcap-000000.tar", "mvcap-000001.tar"] and summary["skipped"] == {}
    classes = json.loads((tmp_path / "out" / "categories.json").read_text())
    assert classes == sorted(data.MVCAP_CATEGORIES)
    samples = shard_samples(tmp_path / "out")
    assert sorted(samples) == sorted(str(o.obj_id) for o in truth.objects)
    for obj in truth.objects:
        raw = samples[str(obj.obj_id)]
        assert _colours(raw) == [colour for *_, colour in obj.views]  # PNG: exact, in img_id order
        assert json.loads(raw["text.json"]) == [caption for _, caption, _, _ in obj.views]
        assert int(raw["cls"]) == classes.index(obj.category)
        meta = read_meta(raw)
        assert (meta["object_id"], meta["category"], meta["num_views"], meta["available_views"]) == (
            str(obj.obj_id), obj.category, 5, 5)
        assert meta["source"] == f"mvcap:{obj.subset}" and meta["caption_source"] == "dataset"
        assert [v["extra"]["img_id"] for v in meta["views"]] == [img_id for _, _, img_id, _ in obj.views]


def test_views_are_subsampled_evenly_and_resized(tmp_path):
    truth = data.write_mvcap(tmp_path / "src", n_objects=2, views=5, size=(40, 32))
    summary = import_views(tmp_path / "out", tmp_path / "src", views=3, size=16, image_format="png", progress=False)
    assert summary["views"] == 6 and summary["categories"] == 0
    assert not (tmp_path / "out" / "categories.json").exists()  # no category: no list, no cls
    raw = shard_samples(tmp_path / "out")[str(truth.objects[0].obj_id)]
    views = decode_views(raw)
    assert [v.size for v in views] == [(20, 16)] * 3  # shorter side 16, aspect kept
    assert _colours(raw) == [truth.objects[0].views[i][3] for i in (0, 2, 4)]
    assert json.loads(raw["text.json"]) == [truth.objects[0].views[i][1] for i in (0, 2, 4)]
    assert "cls" not in raw and read_meta(raw)["available_views"] == 5


def test_bad_views_and_objects_are_skipped_and_counted(tmp_path):
    truth = data.write_mvcap(tmp_path / "src", n_objects=3, views=3)
    (tmp_path / "src" / truth.objects[0].views[1][0]).unlink()  # one missing view: object kept with 2
    (tmp_path / "src" / truth.objects[1].views[0][0]).write_bytes(b"not a png")  # one bad view...
    (tmp_path / "src" / truth.objects[1].views[2][0]).unlink()  # ...and one missing: 1 left < min_views 2
    summary = import_views(tmp_path / "out", tmp_path / "src", min_views=2, image_format="png", progress=False)
    assert summary["objects"] == 2 and summary["views"] == 5
    assert summary["skipped"] == {"too_few_views": 1}
    assert summary["skipped_views"] == {"bad_image": 1, "missing_image": 2}
    assert "1 readable of 3 views (min_views 2)" in summary["skipped_examples"]["too_few_views"]
    kept = shard_samples(tmp_path / "out")[str(truth.objects[0].obj_id)]
    assert _colours(kept) == [truth.objects[0].views[i][3] for i in (0, 2)]
    assert [v["extra"]["img_id"] for v in read_meta(kept)["views"]] == [truth.objects[0].views[i][2] for i in (0, 2)]


def test_nothing_written_is_one_error_with_the_counts(tmp_path):
    truth = data.write_mvcap(tmp_path / "src", n_objects=2, views=2)
    for obj in truth.objects:
        for relpath, *_ in obj.views:
            (tmp_path / "src" / relpath).unlink()
    with pytest.raises(NothingWrittenError) as e:
        import_views(tmp_path / "out", tmp_path / "src", progress=False)
    message = str(e.value)
    assert message.startswith("multiview/import (mvcap) wrote no objects from 2 objects of")
    assert "too_few_views: 2" in message and "missing_image views: 4" in message and "does not exist" in message


def test_mvimgnet_frames_become_objects_with_class_names_and_template_captions(tmp_path):
    truth = data.write_mvimgnet(tmp_path / "src", frames=12, per_class=2, seed=6)
    (tmp_path / "src" / "0" / "ffff0000").mkdir()  # no images/: counted
    summary = import_views(tmp_path / "out", tmp_path / "src", layout="mvimgnet", views=4,
                           caption_template="a photo of a {category}, turned around.", progress=False)
    assert (summary["objects"], summary["views"], summary["skipped"]) == (6, 24, {"no_frames": 1})
    assert summary["by_category"] == {"Toy butterfly": 2, "bag": 2, "mug": 2}
    classes = json.loads((tmp_path / "out" / "categories.json").read_text())
    samples = shard_samples(tmp_path / "out")
    for obj in truth:
        raw = samples[f"{obj.class_label}_{obj.instance_id}"]
        expected = [obj.frames[i][1] for i in (0, 4, 7, 11)]
        assert np.abs(np.array(_colours(raw)) - np.array(expected)).max() <= 3  # JPEG twice
        assert json.loads(raw["text.json"]) == [f"a photo of a {obj.category}, turned around."]
        assert int(raw["cls"]) == classes.index(obj.category)
        meta = read_meta(raw)
        assert meta["object_id"] == f"{obj.class_label}/{obj.instance_id}" and meta["caption_source"] == "template"
        assert [v["extra"]["file"].rsplit("/", 1)[1] for v in meta["views"]] == ["1.jpg", "5.jpg", "8.jpg", "12.jpg"]


def test_malformed_metadata_stops_before_writing(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "metadata.json").write_text('[{"path": "./views/a/000.png", "obj_id": 1, "img_id": 100}]')
    with pytest.raises(MVCapLayoutError, match="record 0 field 'caption' is missing"):
        import_views(tmp_path / "out", tmp_path / "src", progress=False)
    assert not (tmp_path / "out").exists()  # the metadata is read before anything is written


def test_the_command_line_runs_it_in_a_locked_output_folder(tmp_path, capsys):
    data.write_mvcap(tmp_path / "src", n_objects=2, views=2, with_category_field=True)
    out = tmp_path / "out"
    assert main(["prepare", "multiview", "import", "--out", str(out), "--source", str(tmp_path / "src"),
                 "--views", "2", "--no-progress"]) == 0
    assert json.loads((out / "categories.json").read_text()) == ["chair", "mug"]
    assert len(shard_samples(out)) == 2
    assert main(["prepare", "multiview", "import", "--out", str(out), "--source", str(tmp_path / "src"),
                 "--no-progress"]) == 2  # an earlier output is not replaced without --overwrite
