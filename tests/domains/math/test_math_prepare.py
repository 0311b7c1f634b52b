import argparse
import io
import json
import tarfile
from collections import defaultdict

import pytest
import torch
from PIL import Image

from domainclip.core.plugins import get_domain, resolve
from domainclip.domains.math.labels import DIAGRAM_TYPES
from domainclip.domains.math.prepare import SYNTHETIC, prepare_synthetic, resize_shorter_side, split_range
from domainclip.domains.math.synthetic import generate_diagrams


def read_shards(folder, pattern="*.tar"):
    """Samples of every shard in ``folder``: key -> {suffix: bytes}."""
    samples = defaultdict(dict)
    for path in sorted(folder.glob(pattern)):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                key, _, suffix = member.name.partition(".")
                samples[key][suffix] = tar.extractfile(member).read()
    return dict(samples)


def test_split_range_covers_every_index_once():
    assert split_range(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert split_range(2, 4) == [(0, 1), (1, 2), (2, 2), (2, 2)]
    with pytest.raises(ValueError):
        split_range(5, 0)


def test_prepare_writes_what_the_engine_generates(tmp_path):
    summary = prepare_synthetic(
        tmp_path, 12, seed=5, image_size=224, max_count=5, progress=False, languages=("en", "zh")
    )
    assert summary["num_samples"] == 12 and summary["num_shards"] == 3
    assert summary["shards"] == ["math-000000.tar", "math-000001.tar", "math-000002.tar"]
    assert sum(summary["counts_by_type"].values()) == 12 and sum(summary["counts_by_family"].values()) == 12
    assert json.loads((tmp_path / "math-summary.json").read_text())["num_samples"] == 12
    index = json.loads((tmp_path / "math-index.json").read_text())
    assert index["complete"] and index["num_samples"] == 12
    shards = read_shards(tmp_path)
    expected = {s["__key__"]: s for s in generate_diagrams(12, seed=5, image_size=224, languages=("en", "zh"))}
    assert set(shards) == set(expected)
    for key, members in shards.items():
        sample = expected[key]
        assert set(members) == {"png", "text.json", "cls", "json"}
        assert json.loads(members["text.json"]) == sample["text"]
        assert int(members["cls"]) == sample["label"] == DIAGRAM_TYPES.index(sample["meta"]["diagram_type"])
        assert json.loads(members["json"]) == sample["meta"]
        decoded = Image.open(io.BytesIO(members["png"]))
        assert decoded.size == (224, 224)
        assert decoded.convert("RGB").tobytes() == sample["image"].tobytes()  # lossless


def test_resize_stores_what_the_eval_transform_would_see(tmp_path):
    from domainclip.core.models.registry import create_model, get_image_transform

    summary = prepare_synthetic(tmp_path, 3, seed=2, image_size=(224, 320), resize=96, progress=False)
    assert summary["resize"] == 96
    shards = read_shards(tmp_path)
    transform = get_image_transform(create_model("dc-mini-resnet"))
    for sample in generate_diagrams(3, seed=2, image_size=(224, 320)):
        members = shards[sample["__key__"]]
        stored = Image.open(io.BytesIO(members["png"])).convert("RGB")
        meta = json.loads(members["json"])
        assert stored.size == (96, 96) and meta["stored_size"] == [96, 96]
        assert meta["image_size"] == list(sample["image"].size) and sample["image"].size[0] >= 224
        # the model's evaluation transform gives the same tensor from the stored and the drawn image
        assert torch.allclose(transform(stored), transform(sample["image"]), atol=1e-6)
    wide = Image.new("RGB", (300, 200), "white")
    assert resize_shorter_side(wide, 64).size == (96, 64)
    assert resize_shorter_side(wide, 200) is wide
    with pytest.raises(ValueError, match="--resize"):
        prepare_synthetic(tmp_path / "bad", 1, resize=8, progress=False)


def test_cli_options_run_the_command(tmp_path):
    parser = argparse.ArgumentParser()
    SYNTHETIC.add_arguments(parser)
    args = parser.parse_args(
        [
            "--out",
            str(tmp_path),
            "--n",
            "4",
            "--seed",
            "1",
            "--image-size",
            "224-256",
            "--families",
            "function_plot",
            "--image-format",
            "jpg",
            "--max-count",
            "10",
            "--no-progress",
        ]
    )
    summary = SYNTHETIC.run(args)
    assert summary["counts_by_family"] == {"function_plot": 4} and summary["image_format"] == "jpg"
    assert set(next(iter(read_shards(tmp_path).values()))) == {"jpg", "txt", "cls", "json"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x", "--image-size", "big"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x", "--proportions", "plane_geometry"])


def test_domain_declares_the_prepare_command():
    spec = get_domain("math")
    assert resolve(spec.prepare["synthetic"]) is SYNTHETIC
    assert resolve(spec.synthetic) is generate_diagrams


@pytest.mark.slow
def test_workers_write_their_own_shards_with_identical_samples(tmp_path):
    one = prepare_synthetic(tmp_path / "one", 10, seed=3, image_size=224, workers=1, progress=False)
    two = prepare_synthetic(tmp_path / "two", 10, seed=3, image_size=224, workers=2, progress=False)
    assert two["shards"] == ["math-w00-000000.tar", "math-w01-000000.tar"]
    assert two["indexes"] == ["math-w00-index.json", "math-w01-index.json"]
    assert two["counts_by_type"] == one["counts_by_type"]
    assert read_shards(tmp_path / "two") == read_shards(tmp_path / "one")  # same bytes, other processes
