from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from domainclip.core.data import synthetic
from domainclip.core.data.synthetic import (
    COLORS,
    SHAPES,
    ShapesDataset,
    ShapesFolder,
    class_names,
    generate_shapes,
    make_shape_sample,
    prompt_templates,
    write_shapes_folder,
)


def _pixels(sample: dict) -> np.ndarray:
    return np.asarray(sample["image"])


def test_same_seed_and_index_give_identical_samples_whatever_n():
    a = list(generate_shapes(12, seed=7))
    b = list(generate_shapes(5, seed=7, start=7))
    for x, y in zip(a[7:], b):
        assert np.array_equal(_pixels(x), _pixels(y))
        assert x["text"] == y["text"] and x["label"] == y["label"] and x["meta"] == y["meta"]
    again = make_shape_sample(7, 3)
    assert np.array_equal(_pixels(again), _pixels(a[3]))


def test_different_seeds_and_indices_differ():
    a = list(generate_shapes(8, seed=0))
    b = list(generate_shapes(8, seed=1))
    assert all(not np.array_equal(_pixels(x), _pixels(y)) for x, y in zip(a, b))
    assert len({_pixels(s).tobytes() for s in a}) == len(a)


def test_sample_contents_and_label_definition():
    for sample in generate_shapes(64, seed=3, image_size=48):
        image, meta = sample["image"], sample["meta"]
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (48, 48)
        assert sample["label"] == SHAPES.index(meta["shape"]) * len(COLORS) + COLORS.index(meta["color"])
        assert class_names()[sample["label"]] == f"{meta['color']} {meta['shape']}"
        assert meta["color"] in sample["text"] and meta["shape"] in sample["text"]
        assert meta["seed"] == 3 and 0 <= meta["index"] < 64
        # the shape's colour dominates the pixel at its centre (noise is small)
        cx, cy = (int(round(v)) for v in meta["center"])
        pixel = np.asarray(image, dtype=int)[cy, cx]
        assert np.abs(pixel - np.array(synthetic._RGB[meta["color"]])).max() < 40


def test_set_covers_classes_captions_and_variation():
    samples = list(generate_shapes(400, seed=11))
    assert {s["label"] for s in samples} == set(range(len(SHAPES) * len(COLORS)))
    assert len({s["text"] for s in samples}) > 50
    assert {s["meta"]["size"] for s in samples} == {"small", "large"}
    assert {s["meta"]["background"] for s in samples} == {"dark", "grey"}
    rotations = np.array([s["meta"]["rotation"] for s in samples])
    assert np.abs(rotations).max() <= 20 and rotations.std() > 8
    assert np.std([s["meta"]["center"][0] for s in samples]) > 3


def test_templates_and_class_names_format():
    names = class_names()
    assert len(names) == len(SHAPES) * len(COLORS) == len(set(names))
    assert names[0] == "red circle"
    assert all("{}" in t for t in prompt_templates())


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="non-negative"):
        make_shape_sample(-1, 0)
    with pytest.raises(ValueError, match="image_size"):
        make_shape_sample(0, 0, image_size=8)
    with pytest.raises(ValueError):
        list(generate_shapes(-2, 0))


def test_dataset_applies_transform_and_matches_generator():
    ds = ShapesDataset(4, seed=5, image_size=32, transform=lambda im: torch.from_numpy(np.asarray(im).copy()))
    assert len(ds) == 4
    item = ds[2]
    assert torch.equal(item["image"], torch.from_numpy(_pixels(make_shape_sample(5, 2, 32)).copy()))
    with pytest.raises(IndexError):
        ds[4]


def test_folder_round_trip(tmp_path):
    root = write_shapes_folder(tmp_path / "shapes", n=6, seed=2, image_size=32)
    assert sorted(p.name for p in root.iterdir()) == [f"{i:06d}.png" for i in range(6)] + ["metadata.jsonl"]
    folder = ShapesFolder(root)
    assert len(folder) == 6
    for i, sample in enumerate(folder):
        original = make_shape_sample(2, i, 32)
        assert np.array_equal(_pixels(sample), _pixels(original))  # PNG is lossless
        assert sample["text"] == original["text"] and sample["label"] == original["label"]
    assert folder.classes == class_names()


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata.jsonl"):
        ShapesFolder(tmp_path)
    root = write_shapes_folder(tmp_path / "s", n=2, seed=0, image_size=16)
    (root / "000001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"metadata.jsonl:2: image .*000001.png is missing"):
        ShapesFolder(root)
    (root / "metadata.jsonl").write_text(json.dumps({"file": "000000.png", "text": "x"}) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"metadata.jsonl:1: record lacks \['label'\]"):
        ShapesFolder(root)


@pytest.mark.parametrize("image_size", [16, 23, 224])
def test_every_size_renders_the_shape_inside_the_image(image_size):
    for sample in generate_shapes(40, seed=9, image_size=image_size):
        cx, cy = sample["meta"]["center"]
        assert 0 <= cx < image_size and 0 <= cy < image_size
        assert sample["image"].size == (image_size, image_size)
