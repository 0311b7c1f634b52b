import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from domainclip.core.plugins import UnknownNameError, get_domain, resolve
from domainclip.domains.math.datasets.geometry3k import DatasetNotFoundError, Geometry3K, primary_shape, shape_types
from domainclip.domains.math.labels import GEOMETRY3K_SHAPES

_spec = importlib.util.spec_from_file_location("math_geometry3k_fixture", Path(__file__).with_name("data.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)


@pytest.fixture(scope="module")
def geo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("geometry3k")
    written = fixture.make_geometry3k(root, seed=3)
    return root, written


def test_length_and_sample_keys(geo_root):
    root, written = geo_root
    ds = Geometry3K(root, split="test")
    assert len(ds) == len(written["test"]) == 5
    sample = ds[0]
    assert set(sample) == {"image", "text", "label", "meta"}
    assert isinstance(sample["image"], Image.Image) and sample["image"].mode == "RGB"
    assert sample["image"].size == (250, 250)
    data = json.loads((root / "test" / "2401" / "data.json").read_text())
    assert sample["text"] == data["problem_text"]
    meta = sample["meta"]
    assert meta["id"] == 2401 and meta["split"] == "test"
    assert meta["choices"] == data["choices"] and meta["answer"] == data["answer"]
    assert meta["answer_text"] == data["choices"]["ABCD".index(data["answer"])]
    assert meta["problem_type_graph"] == data["problem_type_graph"]


def test_labels_follow_the_documented_rules(geo_root):
    root, written = geo_root
    for split in ("train", "val", "test"):
        ds = Geometry3K(root, split=split)
        ids = [ds[i]["meta"]["id"] for i in range(len(ds))]
        assert ids == [pid for pid, _ in written[split]]  # numeric id order
        labels = [GEOMETRY3K_SHAPES[ds[i]["label"]] for i in range(len(ds))]
        assert labels == [shape for _, shape in written[split]]


def test_split_none_reads_a_folder_of_problems(geo_root):
    root, written = geo_root
    ds = Geometry3K(root / "val", split=None)
    assert len(ds) == 2
    assert ds[1]["meta"]["id"] == 2102


def test_transforms_are_applied(geo_root):
    root, _ = geo_root
    ds = Geometry3K(root, split="train", transforms=lambda s: {**s, "image": s["image"].resize((32, 32))})
    assert ds[0]["image"].size == (32, 32)


def test_missing_root_raises_typed_error(tmp_path):
    with pytest.raises(
        DatasetNotFoundError, match="dataset not found at .*missing.*img_diagram.png, data.json, logic_form.json"
    ):
        Geometry3K(tmp_path / "missing", split="test")
    (tmp_path / "empty" / "test").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="no problem folders"):
        Geometry3K(tmp_path / "empty")
    with pytest.raises(UnknownNameError, match="Did you mean: test"):
        Geometry3K(tmp_path, split="tset")


def test_missing_file_names_the_folder_and_file(geo_root, tmp_path):
    root, _ = geo_root
    copy = tmp_path / "g3k"
    shutil.copytree(root / "test", copy / "test")
    (copy / "test" / "2403" / "logic_form.json").unlink()
    with pytest.raises(DatasetNotFoundError, match="problem folder 2403 lacks logic_form.json"):
        Geometry3K(copy, split="test")


def test_bad_json_names_the_file(geo_root, tmp_path):
    root, _ = geo_root
    copy = tmp_path / "g3k"
    shutil.copytree(root / "val", copy / "val")
    (copy / "val" / "2101" / "data.json").write_text("{not json")
    ds = Geometry3K(copy, split="val")
    with pytest.raises(ValueError, match=r"2101/data.json is not valid JSON"):
        ds[0]
    (copy / "val" / "2101" / "data.json").write_text(json.dumps({"choices": [], "answer": "A"}))
    with pytest.raises(ValueError, match="has no 'problem_text' field"):
        ds[0]


def test_plot_returns_a_figure(geo_root):
    root, _ = geo_root
    ds = Geometry3K(root, split="test")
    fig = ds.plot(ds[0], suptitle="x")
    assert fig.axes and fig.axes[0].get_title().startswith(GEOMETRY3K_SHAPES[ds[0]["label"]])


def test_shape_rules():
    empty = {"line_instances": [], "point_positions": {}, "circle_instances": [""]}
    assert shape_types(empty, "Find x.") == ["line"]
    assert shape_types({**empty, "circle_instances": ["O"]}) == ["circle"]
    assert shape_types(empty, "In \\odot O, find the chord.") == ["circle"]
    assert shape_types({**empty, "text_logic_form": ["Rhombus(A,B,C,D)"]}) == ["quadrilateral"]
    assert shape_types(empty, "Find the area in square units.") == ["line"]  # "square" is not a text keyword
    assert shape_types({**empty, "text_logic_form": ["Regular(Pentagon(A,B,C,D,E))"]}) == ["polygon"]
    tri = {"line_instances": ["AB", "BC", "AC"], "point_positions": {"A": [0, 0], "B": [10, 0], "C": [3, 8]}}
    assert shape_types(tri) == ["triangle"]
    flat = {"line_instances": ["AB", "BC", "AC"], "point_positions": {"A": [0, 0], "B": [10, 0], "C": [20, 0.1]}}
    assert shape_types(flat) == ["line"]  # collinear points close no triangle
    both = shape_types({"circle_instances": ["O"], "text_logic_form": ["Triangle(A,B,C)"]})
    assert both == ["triangle", "circle"] and primary_shape(both) == "circle"


def test_domain_declares_the_adapter():
    spec = get_domain("math")
    assert resolve(spec.datasets["geometry3k"]) is Geometry3K


def test_problem_caption_adds_the_logic_forms_once():
    from domainclip.domains.math.datasets.geometry3k import problem_caption

    logic = {
        "diagram_logic_form": ["PointLiesOnLine(E, Line(A,B))", "Equals(MeasureOf(Angle(A,E,C)),y)"],
        "text_logic_form": ["Equals(MeasureOf(Angle(A,E,C)),y)", "Find(y)"],
    }
    assert problem_caption(" Find  y. ", logic) == (
        "Find y. PointLiesOnLine(E, Line(A,B)); Equals(MeasureOf(Angle(A,E,C)),y); Find(y)"
    )
    assert problem_caption("Find x.", {"diagram_logic_form": [], "text_logic_form": None}) == "Find x."


def test_undecodable_diagram_is_a_corrupt_sample_naming_the_file(geo_root, tmp_path):
    from domainclip.core.data.corrupt import BAD_IMAGE, CorruptSampleError

    root, _ = geo_root
    copy = tmp_path / "g3k"
    shutil.copytree(root / "val", copy / "val")
    (copy / "val" / "2102" / "img_diagram.png").write_bytes(b"not a png")
    ds = Geometry3K(copy, split="val")
    assert ds[0]["meta"]["id"] == 2101
    with pytest.raises(CorruptSampleError, match=r"bad_image: .*2102/img_diagram.png") as err:
        ds[1]
    assert err.value.reason == BAD_IMAGE
