import io
import json
import tarfile
from collections import defaultdict

import pytest
import torch
from PIL import Image

from domainclip.core.plugins import get_domain, resolve
from domainclip.core.prepare import parse_prepare_args
from domainclip.domains.math.labels import DIAGRAM_TYPES
from domainclip.domains.math.prepare import prepare_synthetic, resize_shorter_side
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
    with pytest.raises(ValueError, match=r"resize must be an integer >= 16; got 8"):
        prepare_synthetic(tmp_path / "bad", 1, resize=8, progress=False)


def test_cli_options_run_the_command(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--n", "4", "--seed", "1", "--image-size", "224-256", "--families", "function_plot",
            "--image-format", "jpg", "--max-count", "10", "--no-progress"]
    command, options, overwrite = parse_prepare_args("math", "synthetic", argv)
    assert command is prepare_synthetic and not overwrite
    assert options["image_size"] == (224, 256) and options["families"] == ["function_plot"] and not options["progress"]
    summary = command(**options)
    assert summary["counts_by_family"] == {"function_plot": 4} and summary["image_format"] == "jpg"
    assert set(next(iter(read_shards(tmp_path).values()))) == {"jpg", "txt", "cls", "json"}
    for bad, message in ((["--image-size", "big"], "takes N or MIN-MAX"),
                         (["--proportions", "plane_geometry"], "must be KEY=VALUE"),
                         (["--captions", "17"], "must be an integer in [1, 16]")):
        with pytest.raises(SystemExit):
            parse_prepare_args("math", "synthetic", ["--out", "x", *bad])
        assert message in capsys.readouterr().err


def test_every_default_is_written_once_in_the_signature(capsys):
    import inspect

    with pytest.raises(SystemExit):
        parse_prepare_args("math", "synthetic", ["--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = {k: p.default for k, p in inspect.signature(prepare_synthetic).parameters.items()}
    assert f"(default: {defaults['n']})" in text and "(default: 224-384)" in text
    assert defaults["image_size"] == (224, 384)


def test_domain_declares_the_prepare_command():
    spec = get_domain("math")
    assert resolve(spec.prepare["synthetic"]) is prepare_synthetic
    assert spec.synthetic == "synthetic" and spec.demo == "math/quick"


@pytest.mark.slow
def test_workers_write_their_own_shards_with_identical_samples(tmp_path):
    one = prepare_synthetic(tmp_path / "one", 10, seed=3, image_size=224, workers=1, progress=False)
    two = prepare_synthetic(tmp_path / "two", 10, seed=3, image_size=224, workers=2, progress=False)
    assert two["shards"] == ["math-w00-000000.tar", "math-w01-000000.tar"]
    assert two["indexes"] == ["math-w00-index.json", "math-w01-index.json"]
    assert two["counts_by_type"] == one["counts_by_type"]
    assert read_shards(tmp_path / "two") == read_shards(tmp_path / "one")  # same bytes, other processes
