"""`domainclip compare`: one suite over several models, equal to separate evals, with a per-model embedding cache."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch

from domainclip.cli import main
from domainclip.core.data.synthetic import ShapesFolder, class_names, prompt_templates, write_shapes_folder
from domainclip.core.eval import features as features_module
from domainclip.core.eval import suites as suites_module
from domainclip.core.eval.cache import EmbeddingCache
from domainclip.core.eval.compare import cache_key, spread
from domainclip.core.eval.features import collate_samples, embed_loader
from domainclip.core.eval.prompts import SingleOrEnsemble, template_set_option
from domainclip.core.eval.report import scalar_metrics
from domainclip.core.eval.retrieval import caption_retrieval
from domainclip.core.eval.zero_shot import build_zero_shot_classifier, classification_metrics
from domainclip.core.hub import save_model_folder
from domainclip.core.models import create_model

ARCH = "dc-test-vit"
SUITE = "core/cmp-light"
PNG = b"\x89PNG\r\n\x1a\n"


def light_suite(
    model: torch.nn.Module,
    tokenizer,
    preprocess,
    *,
    data: Path | None,
    out_dir: Path,
    device: str,
    batch_size: int,
    prompts: SingleOrEnsemble = "ensemble",
    ks: tuple[int, ...] = (1, 5),
) -> dict[str, dict[str, float]]:
    """core/synthetic's zero-shot and retrieval blocks on a shapes folder, without its probe and plots (fast).

    Args:
        model: the model.
        tokenizer: its tokenizer.
        preprocess: its transform.
        data: a shapes folder.
        out_dir: unused (no plots).
        device: where the model runs.
        batch_size: images per forward.
        prompts: the template set.
        ks: retrieval cut-offs.
    """
    shapes = ShapesFolder(Path(data), transform=preprocess)
    loader = torch.utils.data.DataLoader(shapes, batch_size=batch_size, collate_fn=collate_samples)
    held_out = embed_loader(model, loader, device, keep=("label", "text"))
    templates = prompt_templates()[:1] if prompts == "single" else prompt_templates()
    classifier = build_zero_shot_classifier(model, tokenizer, class_names(), templates, device, batch_size)
    zs = classification_metrics(held_out["features"] @ classifier.cpu(), held_out["label"])
    ret = caption_retrieval(model, tokenizer, held_out["features"], held_out["text"], device, ks=ks)
    return {"shapes/zeroshot_classification": scalar_metrics(zs), "shapes/zeroshot_retrieval": scalar_metrics(ret)}


@pytest.fixture(autouse=True)
def light(monkeypatch):
    monkeypatch.setitem(suites_module._CORE_SUITES, SUITE, light_suite)


@pytest.fixture(scope="module")
def hub_models(tmp_path_factory) -> list[str]:
    """Three hub folders of the tiny architecture with different (seeded) weights."""
    root = tmp_path_factory.mktemp("models")
    folders = []
    for seed, name in zip((1, 2, 3), ("alpha", "beta", "gamma")):
        torch.manual_seed(seed)
        folders.append(str(save_model_folder(create_model(ARCH), root / name)))
    return folders


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_shapes_folder(tmp_path_factory.mktemp("data") / "shapes", n=40, seed=3, image_size=32)


def _compare(out: Path, models: list[str], data: Path, *extra: str) -> int:
    return main(["compare", "--models", *models, "--suite", SUITE, "--data", str(data), "--out", str(out),
                 "--batch-size", "32", *extra])


def _read(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


class _CountEmbeddings:
    """Counts image batches the model embeds (the cache's misses)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = features_module.encode_inputs

        def counting(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(features_module, "encode_inputs", counting)


def test_compare_equals_separate_evals_and_adding_a_model_embeds_only_it(tmp_path, hub_models, shapes, monkeypatch):
    out = tmp_path / "cmp"
    assert _compare(out, hub_models, shapes) == 0
    payload = _read(out)
    rows = payload["models"]
    assert [r["name"] for r in rows] == hub_models
    for row, folder in zip(rows, hub_models):
        source = row["source"]
        assert source["kind"] == "folder" and source["path"] == str(Path(folder).resolve())
        assert list(source["weights_sha256"]) == ["open_clip_model.safetensors"]
        assert row["cache"]["batches_computed"] > 0 and row["cache"]["batches_cached"] == 0
        # exactly what `domainclip eval` writes for the same model, suite, data and batch size
        ev = tmp_path / f"eval_{Path(folder).name}"
        assert main(["eval", "--model", folder, "--suite", SUITE, "--data", str(shapes), "--out", str(ev),
                     "--batch-size", "32"]) == 0
        alone = json.loads((ev / "results.json").read_text())
        assert alone["results"] == row["results"]
        own = json.loads((out / row["output"] / "results.json").read_text())
        assert own == alone  # the model's own suite output, as eval writes it
    # the seeds differ, so the models do (the table is not three copies of one row)
    assert len({r["results"]["shapes/zeroshot_retrieval"]["image_retrieval_recall@5"] for r in rows}) > 1

    table = list(csv.DictReader((out / "results.csv").open()))
    assert [r["model"] for r in table] == hub_models
    assert all(r["kind"] == "folder" and r["weights_sha256"].startswith("open_clip_model.safetensors=") for r in table)
    assert [float(r["shapes/zeroshot_classification/acc1"]) for r in table] == [
        r["results"]["shapes/zeroshot_classification"]["acc1"] for r in rows]
    markdown = (out / "results.md").read_text()
    assert all(Path(m).name in markdown for m in hub_models) and "## shapes/zeroshot_classification" in markdown
    plots = sorted((out / "plots").glob("*.png"))
    assert out / "plots" / "shapes_zeroshot_classification__acc1.png" in plots
    assert not any(p.name.endswith("num_samples.png") for p in plots)  # counts are tabled, not charted
    assert all(p.read_bytes()[:8] == PNG for p in plots)

    # a fourth model into the same folder: only its embeddings are computed
    counter = _CountEmbeddings(monkeypatch)
    assert _compare(out, [*hub_models, ARCH], shapes) == 0
    again = _read(out)["models"]
    assert [r["name"] for r in again] == [*hub_models, ARCH]
    for before, after in zip(rows, again):
        assert after["results"] == before["results"]
        assert after["cache"]["batches_computed"] == 0 and after["cache"]["texts_computed"] == 0
        assert after["cache"]["batches_cached"] == before["cache"]["batches_computed"]
    new = again[3]
    assert new["source"]["random_weights"] and new["cache"]["batches_cached"] == 0
    assert counter.calls == new["cache"]["batches_computed"] > 0
    assert len(list((out / "cache").iterdir())) == 4


def test_changed_data_or_option_invalidates_the_cache(tmp_path, hub_models, shapes):
    data = tmp_path / "shapes"
    data.mkdir()
    for f in shapes.iterdir():
        (data / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "cmp"
    assert _compare(out, hub_models[:1], data) == 0
    first = _read(out)["models"][0]
    assert _compare(out, hub_models[:1], data) == 0
    assert _read(out)["models"][0]["cache"]["batches_computed"] == 0  # same everything: served
    image = next(data.glob("*.png"))
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the data changed (as far as the key knows)
    assert _compare(out, hub_models[:1], data) == 0
    changed = _read(out)["models"][0]
    assert changed["cache"]["key"] != first["cache"]["key"]
    assert changed["cache"]["batches_computed"] == first["cache"]["batches_computed"]
    assert [p.name for p in (out / "cache").iterdir()] == [changed["cache"]["key"]]  # the stale entry is gone

    # options: any option but the template set is part of the key
    source = {"spec": "x", "kind": "folder", "path": "/a", "random_weights": False, "weights_sha256": {"w": "0" * 64}}
    option = template_set_option(light_suite)
    key = lambda options: cache_key(source, SUITE, None, options, option, "cpu", 32)  # noqa: E731
    assert key({"ks": (1, 5)}) != key({"ks": (1, 10)})
    assert key({"prompts": "single"}) == key({"prompts": "ensemble"}) == key({})
    assert cache_key({**source, "path": "/moved"}, SUITE, None, {}, option, "cpu", 32) == key({})


def test_cache_checks_every_batch_against_its_inputs(tmp_path):
    torch.manual_seed(0)
    model = create_model(ARCH).eval()
    images = torch.randn(10, 3, 32, 32)
    loader = lambda x: torch.utils.data.DataLoader(  # noqa: E731
        [{"image": img, "label": 0} for img in x], batch_size=4, collate_fn=collate_samples)
    cache = EmbeddingCache(tmp_path, {"k": 1}, model)
    with cache.activate():
        first = embed_loader(model, loader(images), keep=())["features"]
    assert cache.stats.batches_computed == 3
    with cache.activate():
        second = embed_loader(model, loader(images), keep=())["features"]
    assert cache.stats.batches_cached == 3 and torch.equal(first, second)
    changed = images.clone()
    changed[5] += 1.0  # the second batch differs: only it is embedded again
    with cache.activate():
        third = embed_loader(model, loader(changed), keep=())["features"]
    assert cache.stats.batches_computed == 4 and cache.stats.batches_cached == 5
    assert torch.equal(third[:4], first[:4]) and not torch.equal(third[4:8], first[4:8])
    other = create_model(ARCH).eval()  # another model never reads this model's embeddings
    with cache.activate():
        embed_loader(other, loader(images), keep=())
    assert cache.stats.bypassed == 1 and cache.stats.batches_cached == 5


def test_prompt_sensitivity_reports_mean_and_spread(tmp_path, hub_models, shapes):
    out = tmp_path / "cmp"
    assert _compare(out, hub_models[:2], shapes, "--prompt-sensitivity") == 0
    rows = _read(out)["models"]
    for row in rows:
        assert set(row["prompt_sets"]) == {"single", "ensemble"}
        assert row["prompt_sets"]["ensemble"] == row["results"]  # the default set is the main run
        acc = [row["prompt_sets"][s]["shapes/zeroshot_classification"]["acc1"] for s in ("single", "ensemble")]
        s = row["prompt_sensitivity"]["shapes/zeroshot_classification"]["acc1"]
        assert s["mean"] == pytest.approx(sum(acc) / 2) and s["std"] == pytest.approx(abs(acc[0] - acc[1]) / 2)
        assert (s["min"], s["max"]) == (min(acc), max(acc))
        # the images were embedded once: the second template set was served from the cache
        assert row["cache"]["batches_cached"] == row["cache"]["batches_computed"] > 0
    assert spread([rows[0]["results"]])["shapes/zeroshot_retrieval"]["image_retrieval_recall@1"]["std"] == 0.0
    # a template set other than the default equals a plain eval with that option
    ev = tmp_path / "ev"
    assert main(["eval", "--model", hub_models[0], "--suite", SUITE, "--data", str(shapes), "--out", str(ev),
                 "--batch-size", "32", "--option", "prompts=single"]) == 0
    assert json.loads((ev / "results.json").read_text())["results"] == rows[0]["prompt_sets"]["single"]
    header = next(csv.reader((out / "results.csv").open()))
    assert "shapes/zeroshot_classification/acc1:std" in header
    assert " ± " in (out / "results.md").read_text()
    assert (out / "plots" / "shapes_zeroshot_classification__acc1.png").read_bytes()[:8] == PNG


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    ("models", "suite", "expected"),
    [
        (["{a}", "{b}"], "core/nope", "unknown eval suite"),
        (["{a}", "no/such/folder"], SUITE, "does not exist"),
        (["{a}", "dc-test-vitt"], SUITE, "did you mean dc-test-vit"),
        (["{a}", "{a}"], SUITE, "named twice"),
        ([], SUITE, "at least one model"),
    ],
)
def test_bad_inputs_are_one_line_errors_before_any_model_runs(
    tmp_path, hub_models, capsys, monkeypatch, models, suite, expected
):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("domainclip.core.eval.compare.load_model", refuse)
    specs = [m.format(a=hub_models[0], b=hub_models[1]) for m in models]
    out = tmp_path / "cmp"
    assert main(["compare", "--models", *specs, "--suite", suite, "--out", str(out)]) == 2
    assert expected in _one_line_error(capsys)
    assert not out.exists()


def test_prompt_sensitivity_needs_template_sets_and_a_rerun_needs_the_same_settings(
    tmp_path, hub_models, shapes, capsys, monkeypatch
):
    def plain(model, tokenizer, preprocess, *, data, out_dir, device, batch_size):
        """A suite without template sets."""
        return {"t": {"acc1": 1.0}}

    monkeypatch.setitem(suites_module._CORE_SUITES, "core/plain", plain)
    out = tmp_path / "cmp"
    assert main(["compare", "--models", ARCH, "--suite", "core/plain", "--out", str(out),
                 "--prompt-sensitivity"]) == 2
    assert "declares no template sets" in _one_line_error(capsys)
    assert main(["compare", "--models", ARCH, "--suite", "core/plain", "--out", str(out)]) == 0
    assert _read(out)["models"][0]["results"] == {"t": {"acc1": 1.0}}
    capsys.readouterr()
    assert main(["compare", "--models", ARCH, "--suite", "core/plain", "--out", str(out), "--batch-size", "8"]) == 2
    assert "holds a compare with other batch_size" in _one_line_error(capsys)
    assert main(["compare", "--models", ARCH, "--suite", "core/plain", "--out", str(out), "--batch-size", "8",
                 "--overwrite"]) == 0


@pytest.mark.slow
def test_core_synthetic_compare_equals_three_evals(tmp_path, hub_models, shapes):
    """The real generated suite (with its probe and plots) end to end: compare == three `domainclip eval` runs."""
    out = tmp_path / "cmp"
    args = ["--suite", "core/synthetic", "--data", str(shapes), "--batch-size", "64"]
    assert main(["compare", "--models", *hub_models, *args, "--out", str(out)]) == 0
    rows = _read(out)["models"]
    for row, folder in zip(rows, hub_models):
        ev = tmp_path / f"eval_{Path(folder).name}"
        assert main(["eval", "--model", folder, *args, "--out", str(ev)]) == 0
        assert json.loads((ev / "results.json").read_text())["results"] == row["results"]
        assert sorted(p.name for p in (out / row["output"]).iterdir()) == sorted(p.name for p in ev.iterdir()
                                                                                  if not p.name.startswith("."))
        assert (out / row["output"] / "shapes_confusion_matrix.png").read_bytes()[:8] == PNG
    assert (out / "plots" / "shapes_linear_probe__lp_acc1.png").read_bytes()[:8] == PNG
    assert not (out / "plots" / "shapes_linear_probe__lp_C.png").exists()  # a chosen setting, not a score
