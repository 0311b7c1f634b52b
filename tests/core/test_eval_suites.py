from __future__ import annotations

import json

import open_clip
import pytest
import torch
from PIL import Image

from domainclip.core import plugins
from domainclip.core.data.synthetic import write_shapes_folder
from domainclip.core.eval import get_suite, list_suites, register_suite, run_suite
from domainclip.core.eval import suites as suites_module
from domainclip.core.plugins import DomainSpec, UnknownNameError

TINY = "domainclip-eval-test-tiny"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("cfg") / f"{TINY}.json"
    cfg.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(TINY)
    return model, open_clip.get_tokenizer(TINY), preprocess


@pytest.fixture
def test_domain(monkeypatch):
    spec = DomainSpec(
        name="evaltest",
        extra="evaltest",
        description="eval suite resolution test",
        eval_suites={"shapes": "domainclip.core.eval.suites:synthetic_suite"},
    )
    monkeypatch.setitem(plugins._REGISTERED, spec.name, spec)
    return spec


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(suites_module, "_CORE_SUITES", dict(suites_module._CORE_SUITES))


def test_core_suite_is_listed_and_resolved():
    assert "core/synthetic" in list_suites("core")
    assert get_suite("core/synthetic") is suites_module.synthetic_suite


def test_unknown_core_suite_lists_close_matches():
    with pytest.raises(UnknownNameError, match=r"unknown eval suite 'core/synthetc'.*Did you mean: core/synthetic"):
        get_suite("core/synthetc")


def test_domain_suite_resolves_lazily_through_the_domain_spec(test_domain):
    assert get_suite("evaltest/shapes") is suites_module.synthetic_suite
    assert "evaltest/shapes" in list_suites("evaltest")
    with pytest.raises(UnknownNameError, match=r"'evaltest/shape'.*Did you mean: evaltest/shapes"):
        get_suite("evaltest/shape")
    with pytest.raises(UnknownNameError, match=r"'evaltst/shapes'.*Did you mean: .*evaltest/shapes"):
        get_suite("evaltst/shapes")
    with pytest.raises(UnknownNameError, match="unknown eval suite 'nosuite'"):
        get_suite("nosuite")


def test_register_suite_validates_names(scratch_registry):
    with pytest.raises(ValueError, match="core/<suite>"):
        register_suite("pathology/x")
    with pytest.raises(ValueError, match="core/<suite>"):
        register_suite("core/")

    @register_suite("core/dummy")
    def dummy(model, tokenizer, preprocess, *, data, out_dir, device, batch_size):
        return {"t": {"acc1": 1.0}}

    assert get_suite("core/dummy") is dummy
    with pytest.raises(ValueError, match="already registered"):
        register_suite("core/dummy")(lambda *a, **k: {})


def test_run_suite_writes_results_and_restores_mode(tmp_path, scratch_registry):
    seen = {}

    @register_suite("core/probe")
    def probe(model, tokenizer, preprocess, *, data, out_dir, device, batch_size):
        seen.update(training=model.training, grad=torch.is_grad_enabled(), batch_size=batch_size, data=data)
        return {"task": {"acc1": 0.5, "num_samples": 4}}

    model = torch.nn.Linear(2, 2).train()
    out = run_suite(model, None, None, "core/probe", data=None, out_dir=tmp_path / "ev", batch_size=3)
    assert out == {"task": {"acc1": 0.5, "num_samples": 4}}
    assert seen == {"training": False, "grad": False, "batch_size": 3, "data": None}
    assert model.training
    payload = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert payload["suite"] == "core/probe" and payload["results"] == out
    assert "| task | 0.5 | 4 |" in (tmp_path / "ev" / "results.md").read_text()


def test_run_suite_rejects_non_scalar_metrics(tmp_path, scratch_registry):
    register_suite("core/bad")(lambda *a, **k: {"task": {"confusion_matrix": [[1]]}})
    with pytest.raises(TypeError, match=r"non-scalar metrics: \['confusion_matrix'\]"):
        run_suite(torch.nn.Linear(1, 1), None, None, "core/bad", data=None, out_dir=tmp_path)


def check_synthetic_outputs(out_dir, results, num_samples):
    zs, ret = results["shapes/zeroshot_classification"], results["shapes/zeroshot_retrieval"]
    assert zs["num_samples"] == num_samples and 0.0 <= zs["acc1"] <= zs["acc5"] <= 1.0
    assert set(zs) == {"acc1", "acc5", "mean_per_class_recall", "balanced_accuracy", "weighted_f1", "num_samples"}
    assert ret["num_images"] == ret["num_texts"] == num_samples
    for k in (1, 5, 10):
        assert 0.0 <= ret[f"image_retrieval_recall@{k}"] <= 1.0 and 0.0 <= ret[f"text_retrieval_recall@{k}"] <= 1.0
    assert ret["image_retrieval_recall@1"] <= ret["image_retrieval_recall@10"]
    probe = results["shapes/linear_probe"]
    assert 0.0 <= probe["lp_acc1"] <= 1.0 and probe["lp_C"] > 0
    assert json.loads((out_dir / "results.json").read_text())["results"] == results
    assert f"{zs['acc1']:.4g}" in (out_dir / "results.md").read_text()
    for png in ("shapes_confusion_matrix.png", "shapes_retrieval_examples.png"):
        with Image.open(out_dir / png) as im:
            assert im.format == "PNG" and im.size[0] > 100


def test_synthetic_suite_on_generated_held_out_set(tmp_path, tiny_clip):
    model, tokenizer, preprocess = tiny_clip
    results = run_suite(model, tokenizer, preprocess, "core/synthetic", data=None, out_dir=tmp_path, batch_size=128)
    check_synthetic_outputs(tmp_path, results, suites_module.SYNTHETIC_EVAL_SIZE)


def test_domain_named_suite_on_a_shapes_folder(tmp_path, tiny_clip, test_domain):
    model, tokenizer, preprocess = tiny_clip
    folder = write_shapes_folder(tmp_path / "shapes", n=24, seed=5, image_size=32)
    results = run_suite(model, tokenizer, preprocess, "evaltest/shapes", data=folder, out_dir=tmp_path / "ev",
                        batch_size=10)
    check_synthetic_outputs(tmp_path / "ev", results, 24)
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["data"] == str(folder)


def test_synthetic_suite_missing_folder_is_a_clear_error(tmp_path, tiny_clip):
    model, tokenizer, preprocess = tiny_clip
    with pytest.raises(FileNotFoundError, match="shapes folder not found"):
        run_suite(model, tokenizer, preprocess, "core/synthetic", data=tmp_path / "nope", out_dir=tmp_path)


def test_run_suite_passes_per_suite_options(monkeypatch, tmp_path):
    import torch

    from domainclip.core.eval import suites as suites_mod

    seen = {}

    def fake_suite(model, tokenizer, preprocess, *, data, out_dir, device, batch_size, top_k=1):
        seen.update(top_k=top_k, data=data)
        return {"task": {"acc1": 0.5}}

    monkeypatch.setattr(suites_mod, "get_suite", lambda name: fake_suite)
    model = torch.nn.Linear(1, 1)
    out = suites_mod.run_suite(model, None, None, "x/y", data=tmp_path, out_dir=tmp_path / "o", options={"top_k": 7})
    assert out == {"task": {"acc1": 0.5}} and seen == {"top_k": 7, "data": tmp_path}
    assert (tmp_path / "o" / "results.json").is_file()
