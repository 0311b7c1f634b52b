"""Hub folders, hf-hub ids through an offline HF cache, run export and the model card (all offline)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import open_clip
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from domainclip.core import hub
from domainclip.core.engine.runs import export_run, load_run
from domainclip.core.hub import (
    HubNotFoundError,
    export_hf_clip,
    parse_hf_hub_id,
    render_model_card,
    save_model_folder,
)
from domainclip.core.models import create_model, get_tokenizer, loading, unwrap_clip
from domainclip.core.models.loading import load_model
from domainclip.core.plugins import UnknownNameError

REV_A = "a" * 40
REV_B = "b" * 40
TEXTS = ["a photo of a cat", "a dog", "tumor tissue"]


def write_tiny_bert(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT config + WordPiece tokenizer, as a local HF folder."""
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"a photo of cat dog tumor tissue".split()]
    transformers.BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(str(folder))
    transformers.BertConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    ).save_pretrained(str(folder))
    return folder


def _seeded(name, seed=0, **kwargs):
    torch.manual_seed(seed)
    return create_model(name, **kwargs).eval()


def _inputs(size=32, batch=3, seed=0):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _embeddings(model, tokenizer=None):
    tokenizer = tokenizer or get_tokenizer(model)
    with torch.no_grad():
        return model.encode_image(_inputs()), model.encode_text(tokenizer(TEXTS))


def _assert_same(a, b):
    for x, y in zip(a, b):
        assert torch.allclose(x, y, atol=1e-6), (x - y).abs().max()


def _front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


# ------------------------------------------------------------ folders


def test_saved_folder_loads_in_plain_open_clip(tmp_path):
    model = _seeded("dc-test-vit", preprocess_cfg={"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.2, 0.2]})
    folder = save_model_folder(model, tmp_path / "out")
    files = {p.name for p in folder.iterdir()}
    assert files == {"open_clip_config.json", "open_clip_model.safetensors", "eval_results.json", "README.md"}
    config = json.loads((folder / "open_clip_config.json").read_text())
    assert set(config) == {"model_cfg", "preprocess_cfg", "domainclip_cfg"}
    assert config["model_cfg"] == model.domainclip_info["model_cfg"]

    oc_model, _, oc_val = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    oc_tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    _assert_same(_embeddings(oc_model.eval(), oc_tokenizer), _embeddings(model))
    assert list(oc_model.visual.preprocess_cfg["mean"]) == [0.4, 0.5, 0.6]
    assert [round(m, 6) for m in oc_val.transforms[-1].mean] == [0.4, 0.5, 0.6]


@pytest.mark.parametrize("as_spec", [lambda p: p, str, lambda p: f"local-dir:{p}"])
def test_load_model_from_folder(tmp_path, as_spec):
    model = _seeded("dc-test-vit", seed=4)
    folder = save_model_folder(model, tmp_path / "out")
    loaded, preprocess, tokenizer = load_model(as_spec(folder))
    assert not loaded.training
    _assert_same(_embeddings(loaded, tokenizer), _embeddings(model))
    assert loaded.domainclip_info["model_cfg"] == model.domainclip_info["model_cfg"]
    assert loaded.domainclip_info["pretrained"] == f"local-dir:{folder}"
    from PIL import Image

    assert preprocess(Image.new("RGB", (40, 40))).shape == (3, 32, 32)


def test_tied_weights_are_saved_under_every_key(tmp_path):
    model = _seeded("dc-test-vit", seed=5)
    clip = unwrap_clip(model)
    clip.visual.proj = clip.text_projection  # both (64, 64): one tensor under two names
    folder = save_model_folder(model, tmp_path / "tied")
    saved = load_file(str(folder / "open_clip_model.safetensors"))
    assert torch.equal(saved["visual.proj"], saved["text_projection"])
    oc_model = open_clip.create_model(f"local-dir:{folder}").eval()
    _assert_same(_embeddings(oc_model, get_tokenizer(model)), _embeddings(model))


def test_save_is_atomic_and_refuses_to_clobber(tmp_path):
    first, second = _seeded("dc-test-vit", seed=1), _seeded("dc-test-vit", seed=2)
    folder = save_model_folder(first, tmp_path / "out")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_model_folder(second, folder)
    save_model_folder(second, folder, overwrite=True)
    _assert_same(_embeddings(load_model(folder)[0]), _embeddings(second))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folders left behind
    with pytest.raises(TypeError, match="domainclip_info"):
        save_model_folder(open_clip.create_model("dc-test-vit"), tmp_path / "plain")
    assert not (tmp_path / "plain").exists()


@pytest.mark.parametrize("pooling", ["attention", "transformer"])
def test_video_tower_folder(tmp_path, pooling):
    model = _seeded("dc-test-video", domainclip_cfg={"pooling": pooling})
    folder = save_model_folder(model, tmp_path / "video")
    assert (folder / "domainclip_tower.safetensors").is_file()
    tower = load_file(str(folder / "domainclip_tower.safetensors"))
    assert tower and all(k.startswith("temporal_pool.") for k in tower)
    assert not any(k.startswith("clip.") for k in load_file(str(folder / "open_clip_model.safetensors")))

    # plain open_clip: the frame encoder, strict load
    oc_model = open_clip.create_model(f"local-dir:{folder}").eval()
    _assert_same(_embeddings(oc_model, get_tokenizer(model)), _embeddings(model))
    # domainclip: the whole video model
    loaded = load_model(folder)[0]
    video = torch.randn(2, 4, 3, 32, 32)
    assert type(loaded).__name__ == "VideoCLIP"
    assert torch.allclose(loaded.encode_video(video), model.encode_video(video), atol=1e-6)

    (folder / "domainclip_tower.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="declares a video tower"):
        load_model(folder)


def test_multiview_tower_folder(tmp_path):
    model = _seeded("dc-test-multiview", domainclip_cfg={"fusion": "attention"})
    folder = save_model_folder(model, tmp_path / "mv")
    loaded = load_model(folder)[0]
    views = torch.randn(2, 4, 3, 32, 32)
    for a, b in zip(loaded.encode_views(views), model.encode_views(views)):
        assert torch.allclose(a, b, atol=1e-6)


def test_hf_text_tower_folder_is_self_contained(tmp_path):
    bert = write_tiny_bert(tmp_path / "bert")
    model = _seeded("dc-tiny-hf-text", text_cfg={"hf_model_name": str(bert), "hf_tokenizer_name": str(bert)})
    folder = save_model_folder(model, tmp_path / "hf")
    assert (folder / "text_config" / "config.json").is_file()
    assert (folder / "tokenizer_config.json").is_file()
    expected = _embeddings(model)
    # plain open_clip still finds the text tower through hf_model_name while it exists
    oc_model = open_clip.create_model(f"local-dir:{folder}").eval()
    _assert_same(_embeddings(oc_model, open_clip.get_tokenizer(f"local-dir:{folder}")), expected)
    shutil.rmtree(bert)  # domainclip needs nothing outside the folder
    loaded, _, tokenizer = load_model(folder)
    _assert_same(_embeddings(loaded, tokenizer), expected)


def test_bad_folders_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        load_model(f"local-dir:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        load_model(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "open_clip_config.json").write_text('{"preprocess_cfg": {}}')
    with pytest.raises(ValueError, match="no 'model_cfg'"):
        load_model(tmp_path / "bad")
    folder = save_model_folder(_seeded("dc-test-vit"), tmp_path / "noweights")
    (folder / "open_clip_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights in"):
        load_model(folder)


# ------------------------------------------------------------ hf-hub offline


def _add_snapshot(cache: Path, repo_id: str, revision: str, source: Path, ref: str | None = None) -> None:
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(source, repo / "snapshots" / revision)
    if ref:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(revision)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An HF cache holding org/tiny at two revisions (main -> B) and the models saved there."""
    cache = tmp_path / "hf-cache"
    model_a, model_b = _seeded("dc-test-vit", seed=10), _seeded("dc-test-vit", seed=11)
    _add_snapshot(cache, "org/tiny", REV_A, save_model_folder(model_a, tmp_path / "a"))
    _add_snapshot(cache, "org/tiny", REV_B, save_model_folder(model_b, tmp_path / "b"), ref="main")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache, model_a, model_b


def test_hf_hub_offline_resolves_the_right_revision(hf_cache):
    cache, model_a, model_b = hf_cache
    loaded_main = load_model("hf-hub:org/tiny")[0]
    _assert_same(_embeddings(loaded_main), _embeddings(model_b))
    assert loaded_main.domainclip_info["pretrained"] == f"hf-hub:org/tiny@{REV_B}"
    _assert_same(_embeddings(load_model(f"hf-hub:org/tiny@{REV_A}")[0]), _embeddings(model_a))
    _assert_same(_embeddings(create_model("hf-hub:org/tiny@main").eval()), _embeddings(model_b))
    # an architecture name with hub weights
    torch.manual_seed(99)
    from_hub = create_model("dc-test-vit", pretrained=f"hf-hub:org/tiny@{REV_A}").eval()
    _assert_same(_embeddings(from_hub), _embeddings(model_a))
    assert from_hub.domainclip_info["pretrained"] == f"hf-hub:org/tiny@{REV_A}"
    assert get_tokenizer("hf-hub:org/tiny")(["a"]).shape == (1, 32)


def test_hf_hub_missing_repo_or_revision_is_one_clear_line(hf_cache):
    cache = hf_cache[0]
    with pytest.raises(HubNotFoundError) as err:
        load_model("hf-hub:org/missing")
    message = str(err.value)
    assert "hf-hub:org/missing" in message and "revision main" in message and str(cache) in message
    assert "HF_HUB_OFFLINE=1" in message and "\n" not in message
    with pytest.raises(HubNotFoundError, match="revision v2"):
        create_model("dc-test-vit", pretrained="hf-hub:org/tiny@v2")
    with pytest.raises(ValueError, match="invalid hub id"):
        load_model("hf-hub:org/tiny@")


def test_hf_hub_cache_dir_and_hf_home(hf_cache, tmp_path, monkeypatch):
    cache, _, model_b = hf_cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    with pytest.raises(HubNotFoundError, match="elsewhere"):
        load_model("hf-hub:org/tiny")
    _assert_same(_embeddings(load_model("hf-hub:org/tiny", cache_dir=cache)[0]), _embeddings(model_b))
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    home = tmp_path / "hf-home"
    home.mkdir()
    shutil.move(str(cache), str(home / "hub"))
    monkeypatch.setenv("HF_HOME", str(home))
    assert hub.hf_cache_dir() == home / "hub"
    _assert_same(_embeddings(load_model("hf-hub:org/tiny")[0]), _embeddings(model_b))


def test_parse_hf_hub_id():
    assert parse_hf_hub_id("hf-hub:org/name@v1.0") == ("org/name", "v1.0")
    assert parse_hf_hub_id("org/name") == ("org/name", None)
    with pytest.raises(ValueError, match="invalid hub id"):
        parse_hf_hub_id("org/na me")


# ------------------------------------------------------------ run export


def _fake_run(run_dir: Path, model, states: dict[int, dict], eval_results=None, recipe=None) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "model_info.json").write_text(json.dumps(model.domainclip_info))
    if recipe is not None:
        (run_dir / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    for step, state in states.items():
        ckpt = run_dir / "checkpoints" / f"step_{step:08d}"
        ckpt.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(ckpt / "model.safetensors"))
    if eval_results is not None:
        (run_dir / "eval").mkdir()
        (run_dir / "eval" / "results.json").write_text(json.dumps(eval_results))
    return run_dir


EVAL = {
    "zeroshot/cifar10-synthetic": {"acc1": 0.8125, "acc5": 0.96875, "mean_per_class_recall": 0.8},
    "retrieval/captions": {"image_retrieval_recall@1": 0.4375, "text_retrieval_recall@1": 0.5},
}
RECIPE = {"domain": "pathology", "model": {"name": "dc-test-vit"}, "train": {"steps": 20, "lr": 0.001}}


def test_export_run_uses_newest_checkpoint(tmp_path):
    early, late = _seeded("dc-test-vit", seed=20), _seeded("dc-test-vit", seed=21)
    run = _fake_run(tmp_path / "run", early, {10: early.state_dict(), 20: late.state_dict()}, EVAL, RECIPE)
    folder = export_run(run, tmp_path / "export", model_card={"repo_id": "me/tiny-path", "datasets": ["synthetic"]})
    _assert_same(_embeddings(load_model(folder)[0]), _embeddings(late))
    oc_model = open_clip.create_model(f"local-dir:{folder}").eval()
    _assert_same(_embeddings(oc_model, get_tokenizer(late)), _embeddings(late))
    assert yaml.safe_load((folder / "recipe.yaml").read_text()) == RECIPE
    assert json.loads((folder / "eval_results.json").read_text()) == EVAL

    readme = (folder / "README.md").read_text()
    front = _front_matter(readme)
    assert front["library_name"] == "open_clip"
    assert front["pipeline_tag"] == "zero-shot-image-classification"
    assert front["datasets"] == ["synthetic"] and "pathology" in front["tags"]
    metrics = {
        (r["dataset"]["name"], m["type"]): m["value"] for r in front["model-index"][0]["results"] for m in r["metrics"]
    }
    assert metrics[("zeroshot/cifar10-synthetic", "acc1")] == 0.8125
    assert "| zeroshot/cifar10-synthetic | 0.8125 | 0.9688 | 0.8 | - | - |" in readme
    assert "| retrieval/captions | - | - | - | 0.4375 | 0.5 |" in readme
    assert 'domainclip.load_model("hf-hub:me/tiny-path")' in readme
    assert 'open_clip.create_model_from_pretrained("hf-hub:me/tiny-path")' in readme

    # an explicit (older) checkpoint, given as the run dir or as checkpoint=
    older = export_run(run / "checkpoints" / "step_00000010", tmp_path / "older")
    _assert_same(_embeddings(load_model(older)[0]), _embeddings(early))
    explicit = export_run(run, tmp_path / "explicit", checkpoint=run / "checkpoints" / "step_00000010")
    _assert_same(_embeddings(load_model(explicit)[0]), _embeddings(early))


def test_export_run_video_tower(tmp_path):
    model = _seeded("dc-test-video", domainclip_cfg={"pooling": "transformer"})
    run = _fake_run(tmp_path / "run", model, {5: model.state_dict()})
    folder = export_run(run, tmp_path / "export")
    video = torch.randn(2, 3, 3, 32, 32)
    assert torch.allclose(load_model(folder)[0].encode_video(video), model.encode_video(video), atol=1e-6)
    readme = (folder / "README.md").read_text()
    assert "video" in _front_matter(readme)["tags"] and "No evaluation results" in readme


def test_load_model_reads_runs_and_eval_report_layout(tmp_path):
    early, late = _seeded("dc-test-vit", seed=40), _seeded("dc-test-vit", seed=41)
    report = {"model": "dc-test-vit", "suite": "synthetic", "results": {"zs": {"acc1": 0.25, "confusion": [[1]]}}}
    run = _fake_run(tmp_path / "run", early, {1: early.state_dict(), 2: late.state_dict()}, report)
    for spec in (run, str(run)):
        model, preprocess, tokenizer = load_model(spec)
        assert not model.training
        _assert_same(_embeddings(model, tokenizer), _embeddings(late))
    step_one = load_model(run / "checkpoints" / "step_00000001")[0]
    _assert_same(_embeddings(step_one), _embeddings(early))
    _assert_same(_embeddings(load_run(run, checkpoint=run / "checkpoints" / "step_00000001")), _embeddings(early))
    folder = export_run(run, tmp_path / "hub")
    assert json.loads((folder / "eval_results.json").read_text()) == report["results"]
    assert "| zs | 0.25 |" in (folder / "README.md").read_text()
    _assert_same(_embeddings(load_model(folder)[0]), _embeddings(late))
    assert type(load_model("dc-test-vit")[0]) is open_clip.CLIP


def test_export_run_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a domainclip run dir: .*model_info.json missing"):
        export_run(tmp_path, tmp_path / "out")
    model = _seeded("dc-test-vit")
    run = _fake_run(tmp_path / "run", model, {})
    with pytest.raises(FileNotFoundError, match="no checkpoint in .*checkpoints"):
        export_run(run, tmp_path / "out")
    other = _seeded("dc-tiny-timm")
    bad = _fake_run(tmp_path / "bad", model, {1: other.state_dict()})
    with pytest.raises(RuntimeError, match="does not match the architecture"):
        export_run(bad, tmp_path / "out")


# ------------------------------------------------------------ model card


def test_model_card_fields_and_validation():
    info = _seeded("dc-test-vit").domainclip_info | {"pretrained": f"hf-hub:org/base@{REV_A}"}
    card = render_model_card(
        info,
        eval_results={"zs": {"acc1": 0.5, "note": "text is kept out of the table"}},
        model_card={"license": "apache-2.0", "citation": "@article{x, title={X}}", "limitations": "Tiny."},
    )
    front = _front_matter(card)
    assert front["license"] == "apache-2.0" and front["base_model"] == "org/base"
    assert "| zs | 0.5 |" in card and "note" not in card.split("## Evaluation results")[1].split("\n")[4]
    assert "## Limitations" in card and "```bibtex\n@article{x, title={X}}\n```" in card
    with pytest.raises(UnknownNameError, match="Did you mean: license"):
        render_model_card(info, model_card={"licence": "mit"})
    with pytest.raises(TypeError, match="task name"):
        render_model_card(info, eval_results={"zs": 0.5})


# ------------------------------------------------------------ transformers export


def test_export_hf_clip_matches_open_clip(tmp_path):
    transformers = pytest.importorskip("transformers")
    model = _seeded("dc-test-vit", seed=30)
    folder = export_hf_clip(model, tmp_path / "hf-clip")
    hf_model = transformers.CLIPModel.from_pretrained(str(folder)).eval()
    hf_tokenizer = transformers.CLIPTokenizer.from_pretrained(str(folder))
    oc_tokens = get_tokenizer(model)(TEXTS)
    hf_tokens = hf_tokenizer(TEXTS, padding="max_length", max_length=32, return_tensors="pt")["input_ids"]
    for oc_row, hf_row in zip(oc_tokens, hf_tokens):
        length = int(oc_row.argmax()) + 1  # through <end_of_text>
        assert torch.equal(oc_row[:length], hf_row[:length])
    with torch.no_grad():
        image_out = hf_model.get_image_features(pixel_values=_inputs())
        text_out = hf_model.get_text_features(input_ids=hf_tokens)
    image_hf = getattr(image_out, "pooler_output", image_out)
    text_hf = getattr(text_out, "pooler_output", text_out)
    image_oc, text_oc = _embeddings(model)
    assert torch.allclose(image_hf, image_oc, atol=1e-5) and torch.allclose(text_hf, text_oc, atol=1e-5)
    assert hf_model.logit_scale.item() == pytest.approx(model.logit_scale.item())
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    assert processor["crop_size"] == {"height": 32, "width": 32}


def test_export_hf_clip_refuses_other_towers(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="image tower is not open_clip's ViT"):
        export_hf_clip(create_model("dc-tiny-timm"), tmp_path / "x")
    with pytest.raises(ValueError, match="init_logit_bias"):
        export_hf_clip(create_model("dc-test-vit", init_logit_bias=-10.0), tmp_path / "y")


# ------------------------------------------------------------ loading runs, provenance, errors


def test_public_load_model_reads_run_and_checkpoint_folders(tmp_path):
    import hashlib

    import domainclip

    early, late = _seeded("dc-test-vit", seed=50), _seeded("dc-test-vit", seed=51)
    run = _fake_run(tmp_path / "run", early, {1: early.state_dict(), 2: late.state_dict()})
    model, preprocess, tokenizer = domainclip.load_model(run)
    assert not model.training
    _assert_same(_embeddings(model, tokenizer), _embeddings(late))
    newest = run / "checkpoints" / "step_00000002" / "model.safetensors"
    assert model.domainclip_source == {
        "spec": str(run),
        "kind": "run",
        "path": str(run.resolve()),
        "checkpoint": "checkpoints/step_00000002",
        "random_weights": False,
        "weights_sha256": {
            "checkpoints/step_00000002/model.safetensors": hashlib.sha256(newest.read_bytes()).hexdigest()
        },
    }
    step_one, _, _ = domainclip.load_model(str(run / "checkpoints" / "step_00000001"))
    _assert_same(_embeddings(step_one), _embeddings(early))
    assert step_one.domainclip_source["checkpoint"] == "checkpoints/step_00000001"


def test_load_model_records_folder_and_hub_sources(hf_cache, tmp_path):
    import hashlib

    cache, _, model_b = hf_cache
    folder = save_model_folder(model_b, tmp_path / "folder")
    digest = hashlib.sha256((folder / "open_clip_model.safetensors").read_bytes()).hexdigest()
    source = load_model(str(folder))[0].domainclip_source
    assert source == {"spec": str(folder), "kind": "folder", "path": str(folder), "random_weights": False,
                      "weights_sha256": {"open_clip_model.safetensors": digest}}
    source = load_model("hf-hub:org/tiny")[0].domainclip_source
    snapshot = cache / "models--org--tiny" / "snapshots" / REV_B
    assert source == {"spec": "hf-hub:org/tiny", "kind": "hf-hub", "hub_id": "org/tiny", "revision": REV_B,
                      "path": str(snapshot), "random_weights": False,
                      "weights_sha256": {"open_clip_model.safetensors": digest}}


def test_registry_name_loads_seeded_random_weights_and_says_so():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first, second = load_model("dc-test-vit")[0], load_model("dc-test-vit")[0]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is untouched
    _assert_same(_embeddings(first), _embeddings(second))
    assert first.domainclip_source == {"spec": "dc-test-vit", "kind": "registry", "random_weights": True,
                                       "seed": loading.RANDOM_WEIGHTS_SEED, "weights_sha256": {}}


def test_damaged_runs_are_user_errors(tmp_path):
    from domainclip.core.errors import InputError, InputNotFoundError

    model = _seeded("dc-test-vit")
    run = _fake_run(tmp_path / "run", model, {1: model.state_dict()})
    (run / "model_info.json").write_text('{"name": "dc-test-vit", ')
    with pytest.raises(hub.ModelFileError, match="model_info.json is not valid JSON"):
        load_model(run)
    run = _fake_run(tmp_path / "run2", model, {1: model.state_dict()})
    (run / "checkpoints" / "step_00000001" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="model.safetensors is not a readable safetensors file"):
        export_run(run, tmp_path / "out")
    empty = _fake_run(tmp_path / "run3", model, {})
    with pytest.raises(InputNotFoundError, match="no checkpoint in"):
        load_model(empty)
    with pytest.raises(InputNotFoundError, match="path that does not exist"):
        load_model(str(tmp_path / "typo"))
    assert not (tmp_path / "out").exists()


def test_check_device_refuses_devices_this_machine_lacks():
    from domainclip.core.errors import InputError

    assert loading.check_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="not a torch device"):
        loading.check_device("gpu0")
    missing = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    with pytest.raises(InputError, match="CUDA GPU"):
        load_model("dc-test-vit", device=missing)


def test_overwrite_replaces_only_a_model_folder(tmp_path):
    from domainclip.core.errors import OutputError, OutputExistsError

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not a model folder"):
        save_model_folder(_seeded("dc-test-vit"), notes, overwrite=True)
    assert (notes / "mine.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write output folder"):
        save_model_folder(_seeded("dc-test-vit"), tmp_path / "file" / "hub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "notes"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_exported_folders_follow_the_umask(tmp_path, umask):
    transformers = pytest.importorskip("transformers")
    from domainclip.core import io

    old = os.umask(umask)
    io._umask.cache_clear()
    try:
        model = _seeded("dc-test-vit")
        folders = [save_model_folder(model, tmp_path / "hub"), export_hf_clip(model, tmp_path / "hf")]
        folders.append(save_model_folder(model, tmp_path / "hub", overwrite=True))
    finally:
        os.umask(old)
        io._umask.cache_clear()
    for folder in folders:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
        entries = list(folder.rglob("*"))
        assert any(p.suffix == ".safetensors" for p in entries)
        for path in entries:
            expected = (0o777 if path.is_dir() else 0o666) & ~umask
            assert stat.S_IMODE(path.stat().st_mode) == expected, path
    assert transformers.CLIPModel.from_pretrained(str(tmp_path / "hf")) is not None
