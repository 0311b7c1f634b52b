"""Omniview training end to end: the task's decoder, the engine's refresh and training-state hooks, runs with
full and LoRA tuning on multi-view objects mixed with general pairs, and exact resume after SIGKILL."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from domainclip.core.checks import DECODER_ENGINE_ARGS
from domainclip.core.data.corrupt import CorruptSampleError, CorruptTally
from domainclip.core.data.decode import collate_samples
from domainclip.core.data.reader import iter_shard
from domainclip.core.engine.checkpoint import find_latest_checkpoint
from domainclip.core.engine.tasks import get_task
from domainclip.core.engine.train import train
from domainclip.core.errors import InputError, RecipeError
from domainclip.core.models import create_model, get_image_transform, get_tokenizer
from domainclip.core.options import check_options
from domainclip.core.recipe import load_recipe
from domainclip.domains.multiview.mining import mine_object
from domainclip.domains.multiview.tasks import OMNIVIEW, OmniviewDecoder, choose_views
from domainclip.domains.multiview.views import decode_views, encode_views
from tests.sigkill import full_and_resumed_runs

_spec = importlib.util.spec_from_file_location("mv_data_train", Path(__file__).with_name("data_train.py"))
data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data)

TOWER = {"tower": "omniview", "num_views": 6, "worst_k": 3, "anchor_neighbours": 2}


# ------------------------------------------------------------------ the decoder


def test_views_are_evenly_spaced_or_cycled():
    assert choose_views(12, 4) == [0, 3, 6, 9]
    assert choose_views(5, 5) == [0, 1, 2, 3, 4]
    assert choose_views(3, 5) == [0, 1, 2, 0, 1]
    assert choose_views(7, 3) == [0, 2, 4]
    with pytest.raises(ValueError, match="at least one view"):
        choose_views(0, 3)


def test_decoder_gives_objects_and_general_pairs_the_same_keys():
    model = create_model("dc-test-vit")
    preprocess, tokenize = get_image_transform(model), get_tokenizer(model)
    decode = OmniviewDecoder(preprocess, tokenize, num_views=4, seed=0)
    images = [data.shape_view("square", data.PALETTE[0], v, 9) for v in range(9)]
    raw = {"__key__": "square_0001", "__url__": "o.tar", **encode_views(images, "png"),
           "text.json": json.dumps(["a square", "a 3D render of a square"]).encode(),
           "json": json.dumps({"object_id": "square_0001"}).encode(), "cls": b"1"}
    obj = decode(raw)
    assert set(obj) == {"views", "text", "object_key", "multiview"}
    assert obj["views"].shape == (4, 3, 32, 32) and obj["object_key"] == "square_0001" and bool(obj["multiview"])
    assert torch.equal(obj["views"], torch.stack(decode_views(raw, preprocess, [0, 2, 4, 6])))
    assert any(torch.equal(obj["text"], tokenize(c)[0]) for c in ("a square", "a 3D render of a square"))
    assert torch.equal(decode(raw)["text"], obj["text"])  # the caption choice is seeded by the sample

    png = io.BytesIO()
    Image.fromarray(images[0]).save(png, "png")
    general = decode({"__key__": "photo_1", "__url__": "g.tar", "png": png.getvalue(), "txt": b"a photo"})
    assert not bool(general["multiview"]) and general["views"].shape == (4, 3, 32, 32)
    assert all(torch.equal(general["views"][v], preprocess(Image.fromarray(images[0]))) for v in range(4))
    batch = collate_samples([obj, general])
    assert batch["views"].shape == (2, 4, 3, 32, 32) and batch["multiview"].tolist() == [True, False]
    assert batch["object_key"] == ["square_0001", "photo_1"]

    with pytest.raises(CorruptSampleError, match="missing_key:views"):
        decode({"__key__": "x", "txt": b"a caption"})
    with pytest.raises(CorruptSampleError, match="missing_key:text"):
        decode({"__key__": "x", **encode_views(images[:2], "png")})


def test_decoder_args_are_checked_against_the_decoder_signature():
    assert get_task("multiview/omniview") is OMNIVIEW
    assert check_options(OMNIVIEW.make_decoder, {"num_views": 8}, where="d", skip=DECODER_ENGINE_ARGS) == {
        "num_views": 8}
    with pytest.raises(InputError, match=r"d.num_views: must be an integer >= 1; got 0"):
        check_options(OMNIVIEW.make_decoder, {"num_views": 0}, where="d", skip=DECODER_ENGINE_ARGS)
    with pytest.raises(InputError, match=r"unknown option 'num_view' \(did you mean num_views\?\)"):
        check_options(OMNIVIEW.make_decoder, {"num_view": 4}, where="d", skip=DECODER_ENGINE_ARGS)
    with pytest.raises(InputError, match="one caption per sample"):
        OmniviewDecoder(lambda image: image, text_choice="all")


# ------------------------------------------------------------------ training runs


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    data.write_object_shards(root / "objects", 12, views=6, per_shard=4)
    data.write_general_shards(root / "general", 8, per_shard=4)
    return root


def recipe_dict(root: Path, tower: dict | None = None, **sections) -> dict:
    recipe = {
        "domain": "multiview",
        "model": {"name": "dc-test-vit", "overrides": {"domainclip_cfg": {**TOWER, **(tower or {})}}},
        "data": {"root": str(root), "train": [{"urls": "objects/*.tar"}, {"urls": "general/*.tar", "weight": 0.5}],
                 "batch_size": 6, "num_workers": 0, "shuffle_buffer": 8, "decoder_args": {"num_views": 6}},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "train": {"task": "multiview/omniview", "steps": 4, "precision": "fp32", "log_every": 1,
                  "checkpoint_every": 2, "progress": False, "tensorboard": False},
    }
    for section, values in sections.items():
        recipe.setdefault(section, {}).update(values)
    return recipe


def _steps(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r for r in records if "loss" in r and "event" not in r]


def test_a_full_tuning_run_mines_from_the_data_and_checkpoints_the_table(shapes_root, tmp_path):
    result = train(load_recipe(recipe_dict(shapes_root, {"tuning": "full", "mine_every": 2})), tmp_path / "run")
    steps = _steps(tmp_path / "run")
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for r in steps:
        assert r["loss"] == pytest.approx(r["loss/contrastive_loss"] + r["loss/cross_view"], rel=1e-5)
    assert any(r["loss/cross_view"] > 0 for r in steps)

    state = torch.load(result.final_checkpoint / "state.pt", weights_only=True)["model_state"]
    assert (state["mined_at"], state["next_mining"], state["rounds"], state["step"]) == (2, 4, 2, 3)
    keys = [f"{data.CATEGORIES[i % 3]}_{i:04d}" for i in range(12)]
    assert state["table"]["keys"] == sorted(keys)  # every object once, no general pair
    assert state["table"]["selected"].shape == (12, 3) and state["table"]["anchors"].shape == (12, 64)

    # the table of step 4 was mined at step 2 from the step-2 weights, views through the evaluation transform
    model = create_model("dc-test-vit", domainclip_cfg={**TOWER, "tuning": "full"}).eval()
    model.load_state_dict(load_file(str(result.final_checkpoint.with_name("step_00000002") / "model.safetensors")))
    decode = OMNIVIEW.make_decoder(get_image_transform(model), get_tokenizer(model), seed=0, text_choice="random",
                                   num_views=6)

    mined = 0
    for shard in sorted((shapes_root / "objects").glob("*.tar")):
        for raw in iter_shard(str(shard), CorruptTally()):
            with torch.no_grad():
                selected, anchor = mine_object(model.encode_image_set(decode(raw)["views"][None])[0], 3, 2)
            row = state["table"]["keys"].index(raw["__key__"])
            assert state["table"]["selected"][row].tolist() == selected
            torch.testing.assert_close(state["table"]["anchors"][row].float(), anchor, atol=2e-3, rtol=0)
            mined += 1
    assert mined == 12


def test_a_lora_run_changes_the_adapters_and_the_head_only(shapes_root, tmp_path):
    result = train(load_recipe(recipe_dict(shapes_root, {"tuning": "lora"}, train={"steps": 3})), tmp_path / "run")
    weights = load_file(str(result.final_checkpoint / "model.safetensors"))
    torch.manual_seed(0)  # the engine seeds with train.seed before it builds the model
    start = create_model("dc-test-vit", domainclip_cfg={**TOWER, "tuning": "lora"}).state_dict()
    assert weights.keys() == start.keys()
    changed = {k for k in weights if not torch.equal(weights[k], start[k])}
    assert changed and all(k.startswith("head.") or ".lora_" in k for k in changed)
    assert any(".lora_B." in k for k in changed) and any(k.startswith("head.mlp.2") for k in changed)
    state = torch.load(result.final_checkpoint / "state.pt", weights_only=True)["model_state"]
    # 12 objects / 6 per step: mined at steps 0 and 2
    assert (state["mined_at"], state["next_mining"], state["rounds"]) == (2, 4, 2)


def test_user_mistakes_are_one_line(shapes_root, tmp_path):
    with pytest.raises(RecipeError, match=r"omniview tower setting.*worst_kk"):
        load_recipe(recipe_dict(shapes_root, {"worst_kk": 3}))
    general_only = recipe_dict(shapes_root, data={"train": [{"urls": "general/*.tar"}]})
    with pytest.raises(InputError, match="holds no multi-view object"):
        train(load_recipe(general_only), tmp_path / "run")


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(shapes_root, tmp_path):
    """Mined at steps 0, 3 and 6; killed after the step-4 checkpoint: the resumed run keeps the table of step 3."""
    recipe = recipe_dict(shapes_root, {"tuning": "lora", "mine_every": 3}, data={"num_workers": 2},
                         train={"steps": 8, "checkpoint_every": 4, "log_every": 4})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    killed_at = full_and_resumed_runs(path, tmp_path, first_checkpoint=4, steps=8)
    full, resumed = (find_latest_checkpoint(tmp_path / run / "checkpoints") for run in ("full", "killed"))
    a, b = load_file(str(full / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume from {killed_at.name}"
    sa, sb = (torch.load(c / "state.pt", weights_only=True)["model_state"] for c in (full, resumed))
    assert (sa["mined_at"], sa["rounds"]) == (6, 3) and sa["table"]["keys"] == sb["table"]["keys"]
    assert torch.equal(sa["table"]["selected"], sb["table"]["selected"])
    assert torch.equal(sa["table"]["anchors"], sb["table"]["anchors"])
    assert '"event": "resume"' in (tmp_path / "killed" / "log.jsonl").read_text()
