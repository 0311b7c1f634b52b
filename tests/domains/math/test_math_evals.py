"""Math eval suites and the math recipes, through the real CLI where users would use it."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from domainclip.cli import main
from domainclip.core.eval.suites import get_suite, run_suite
from domainclip.core.models import create_model_and_transforms, get_tokenizer
from domainclip.core.recipe import load_recipe
from domainclip.domains.math import evals, labels

_spec = importlib.util.spec_from_file_location("math_geometry3k_fixture_evals", Path(__file__).with_name("data.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model, _, preprocess = create_model_and_transforms("dc-test-vit")
    return model, preprocess, get_tokenizer(model)


def test_generated_suite_reports_every_task(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(evals, "GENERATED_EVAL_SIZE", 60)
    model, preprocess, tokenizer = tiny
    results = run_suite(model, tokenizer, preprocess, "math/generated", data=None, out_dir=tmp_path, batch_size=32)
    assert set(results) == {"diagram_type/zeroshot_classification", "function_family/zeroshot_classification",
                            "diagram_caption/retrieval"}
    diagram = results["diagram_type/zeroshot_classification"]
    assert diagram["num_samples"] == 60 and 0.0 <= diagram["acc1"] <= diagram["acc5"] <= 1.0
    retrieval = results["diagram_caption/retrieval"]
    assert retrieval["num_images"] == retrieval["num_texts"] == 60 - retrieval["num_duplicate_texts_excluded"]
    assert retrieval["num_distinct_texts"] + retrieval["num_duplicate_texts_excluded"] // 2 <= 60
    assert retrieval["image_retrieval_recall@1"] <= retrieval["image_retrieval_recall@10"]
    for png in ("diagram_type_confusion_matrix.png", "function_family_confusion_matrix.png",
                "caption_retrieval_examples.png"):
        assert (tmp_path / png).stat().st_size > 1000
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"]["diagram_type/zeroshot_classification"]["acc1"] == pytest.approx(diagram["acc1"])


def test_generated_suite_reads_prepared_shards(tiny, tmp_path):
    assert main(["prepare", "math", "synthetic", "--out", str(tmp_path / "held"), "--n", "12", "--seed", "5",
                 "--no-progress"]) == 0
    samples, tally = evals.read_held_out_diagrams(tmp_path / "held")
    assert len(samples) == 12 and tally.good == 12 and tally.corrupt == 0
    assert all(0 <= s["label"] < len(labels.DIAGRAM_TYPES) for s in samples)
    model, preprocess, tokenizer = tiny
    results = get_suite("math/generated")(model, tokenizer, preprocess, data=tmp_path / "held",
                                          out_dir=tmp_path / "out", device="cpu", batch_size=8)
    assert results["diagram_type/zeroshot_classification"]["num_samples"] == 12


def test_held_out_seed_differs_from_training_seeds():
    from domainclip.domains.math.synthetic import generate_diagrams

    held = next(generate_diagrams(1, evals.HELDOUT_SEED))
    train = next(generate_diagrams(1, 0))
    assert held["text"] != train["text"]
    for name in ("math/quick", "math/clip_math_vitl14_336"):
        seeds = [step.args.get("seed") for step in load_recipe(name).data.prepare]
        assert evals.HELDOUT_SEED not in seeds


def test_geometry3k_suite_through_the_cli(tmp_path):
    root = tmp_path / "geometry3k"
    fixture.make_geometry3k(root, seed=1)
    out = tmp_path / "g3k.json"
    assert main(["eval", "--model", "dc-test-vit", "--suite", "math/geometry3k", "--data", str(root),
                 "--out", str(out), "--batch-size", "8"]) == 0
    results = json.loads(out.read_text())["results"]
    shape = results["geometry3k_shape/zeroshot_classification"]
    assert shape["num_samples"] == len(list((root / "test").iterdir()))
    assert (tmp_path / "g3k_files" / "geometry3k_shape_confusion_matrix.png").is_file()
    assert (tmp_path / "g3k.md").read_text().count("geometry3k") >= 2


def _break_first_image(shard: Path) -> str:
    """Rewrite ``shard`` with its first image member replaced by bytes that are no image; returns its key."""
    import io
    import tarfile

    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]
    broken = next(m.name for m, _ in members if m.name.endswith(".png"))
    with tarfile.open(shard, "w") as tar:
        for member, data in members:
            data = b"this is not a png" if member.name == broken else data
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return broken.rsplit(".", 1)[0]


def test_generated_suite_skips_and_counts_an_undecodable_image(tiny, tmp_path):
    assert main(["prepare", "math", "synthetic", "--out", str(tmp_path / "held"), "--n", "12", "--seed", "5",
                 "--no-progress"]) == 0
    shard = sorted((tmp_path / "held").glob("*.tar"))[0]
    key = _break_first_image(shard)
    model, preprocess, tokenizer = tiny
    with pytest.warns(UserWarning, match=rf"math/generated: skipped 1 sample\(s\) .*bad_image: 1.*{key}"):
        results = get_suite("math/generated")(model, tokenizer, preprocess, data=tmp_path / "held",
                                              out_dir=tmp_path / "out", device="cpu", batch_size=8)
    assert results["diagram_type/zeroshot_classification"]["num_samples"] == 11
    assert results["diagram_caption/retrieval"]["num_images"] == 11
    assert {metrics["num_skipped_images"] for metrics in results.values()} == {1}


def test_geometry3k_suite_skips_and_counts_an_undecodable_diagram(tiny, tmp_path):
    root = tmp_path / "geometry3k"
    fixture.make_geometry3k(root, seed=1, per_split={"test": 5})
    (root / "test" / "2402" / "img_diagram.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "g3k.json"
    with pytest.warns(UserWarning) as caught:  # the command line shows it on stderr
        assert main(["eval", "--model", "dc-test-vit", "--suite", "math/geometry3k", "--data", str(root),
                     "--out", str(out), "--batch-size", "8"]) == 0
    [warning] = [str(w.message) for w in caught if "math/geometry3k" in str(w.message)]
    assert warning.startswith("math/geometry3k: skipped 1 sample(s) that cannot be decoded (bad_image: 1; e.g. ")
    assert "key=2402" in warning and "2402/img_diagram.png" in warning
    results = json.loads(out.read_text())["results"]
    assert results["geometry3k_shape/zeroshot_classification"]["num_samples"] == 4
    assert results["geometry3k_text/retrieval"]["num_images"] == 4
    assert {metrics["num_skipped_images"] for metrics in results.values()} == {1}


def test_geometry3k_retrieval_captions_use_the_logic_forms_and_drop_shared_ones(tiny, tmp_path):
    import shutil

    from domainclip.domains.math.datasets.geometry3k import Geometry3K

    root = tmp_path / "geometry3k"
    fixture.make_geometry3k(root, seed=0, per_split={"test": 10}, generic_texts=True)
    shutil.copytree(root / "test" / "2401", root / "test" / "2411")  # the same problem twice
    texts = [Geometry3K(root)[i]["text"] for i in range(11)]
    assert len(set(texts)) == 4  # "Find x." and the like: the problem text alone names no diagram
    model, preprocess, tokenizer = tiny
    results = get_suite("math/geometry3k")(model, tokenizer, preprocess, data=root, out_dir=tmp_path / "out",
                                           device="cpu", batch_size=8)
    retrieval = results["geometry3k_text/retrieval"]
    assert retrieval["num_distinct_texts"] == 10  # text + logic form: only the copied problem repeats
    assert retrieval["num_duplicate_texts_excluded"] == 2  # 2401 and its copy, queries and gallery alike
    assert retrieval["num_images"] == retrieval["num_texts"] == 9
    assert results["geometry3k_shape/zeroshot_classification"]["num_samples"] == 11


def test_geometry3k_suite_without_data_is_a_clear_error(capsys):
    assert main(["eval", "--model", "dc-test-vit", "--suite", "math/geometry3k", "--out", "x.json"]) == 2
    assert "math/geometry3k needs --data" in capsys.readouterr().err


def test_paper_recipe_names_a_real_architecture_and_tag():
    import open_clip

    recipe = load_recipe("math/clip_math_vitl14_336")
    assert recipe.model.name in open_clip.list_models()
    assert recipe.model.pretrained in open_clip.list_pretrained_tags_by_model(recipe.model.name)
    assert recipe.train.precision == "bf16" and recipe.data.batch_size == 1024


@pytest.mark.slow
def test_quick_recipe_runs_through_the_cli(tmp_path):
    """Two steps of math/quick with a small prepare step: data, training, eval and export."""
    prepare = ('data.prepare=[{command: math/synthetic, args: {out: "{root}/train", n: 48, seed: 0, '
               'workers: 1, max_count: 24, progress: false}}]')
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "domainclip", "train", "math/quick", "--out", str(run),
           "--set", f"data.root={tmp_path / 'data'}", "--set", prepare, "--set", "train.steps=2",
           "--set", "data.batch_size=8", "--set", "data.num_workers=0", "--set", "model.name=dc-test-vit",
           "--set", "train.progress=false", "--set", "eval.suites=[]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((tmp_path / "data" / "train").glob("*.tar"))) == 2
    assert (run / "checkpoints" / "step_00000002" / "model.safetensors").is_file()
    assert main(["export", str(run), "--out", str(tmp_path / "hub")]) == 0
    assert (tmp_path / "hub" / "open_clip_config.json").is_file()
