"""The training engine: a real run, exact resume after SIGKILL (1 process; 2, DDP or FSDP2), accumulation, NaN guard."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from domainclip.core.engine.checkpoint import find_latest_checkpoint, list_checkpoints
from domainclip.core.engine.train import NonFiniteLossError, train
from domainclip.core.prepare import prepare_shapes
from domainclip.core.recipe import load_recipe
from tests.sigkill import full_and_resumed_runs

N_SHARDS = 4


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    prepare_shapes(root / "train", 256, seed=0, image_size=32, max_count=64, progress=False)
    assert len(list((root / "train").glob("*.tar"))) == N_SHARDS
    return root


def recipe_dict(root: Path, **sections) -> dict:
    recipe = {
        "domain": "core",
        "model": {"name": "dc-test-vit"},
        "data": {
            "root": str(root),
            "train": [{"urls": f"train/shapes-{{000000..{N_SHARDS - 1:06d}}}.tar"}],
            "batch_size": 16,
            "num_workers": 0,
            "shuffle_buffer": 32,
        },
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "train": {"steps": 6, "precision": "fp32", "log_every": 1, "checkpoint_every": 3, "progress": False},
    }
    for section, values in sections.items():
        recipe.setdefault(section, {}).update(values)
    return recipe


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(find_latest_checkpoint(run_dir / "checkpoints") / "model.safetensors"))


def test_train_writes_a_complete_run(shapes_root, tmp_path):
    recipe = load_recipe(recipe_dict(shapes_root))
    result = train(recipe, tmp_path / "run")
    run = tmp_path / "run"
    assert result.steps == 6
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step_00000003", "step_00000006"]
    for name in ("model.safetensors", "state.pt", "recipe.yaml"):
        assert (run / "checkpoints" / "step_00000006" / name).is_file()
    assert yaml.safe_load((run / "recipe.resolved.yaml").read_text())["train"]["steps"] == 6
    info = json.loads((run / "model_info.json").read_text())
    assert info["name"] == "dc-test-vit"
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r and "step" in r and "event" not in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in steps)
    assert steps[0]["lr"] == pytest.approx(1e-3 / 2)  # warmup: step 0 runs at lr * 1/2
    assert all(r["samples_per_s"] > 0 for r in steps)
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert not list((run / "checkpoints").glob(".*tmp"))


def test_training_reduces_the_loss(shapes_root, tmp_path):
    recipe = load_recipe(recipe_dict(shapes_root, train={"steps": 40, "checkpoint_every": 40, "log_every": 1},
                                     optim={"lr": 2e-3, "warmup_steps": 5, "weight_decay": 0.0}))
    train(recipe, tmp_path / "run")
    losses = [json.loads(x)["loss"] for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
              if '"loss"' in x and '"event"' not in x]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.3, (first, last)


def test_channels_last_trains_the_same_model(shapes_root, tmp_path, monkeypatch):
    """train.channels_last changes the conv layout, not the result: same weights, plain checkpoints."""
    import domainclip.core.engine.train as engine

    layouts = []
    wrap = engine.wrap_model

    def spy(model, *args, **kwargs):
        conv = model.visual.trunk.conv1[0].weight
        layouts.append(conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous())
        return wrap(model, *args, **kwargs)

    monkeypatch.setattr(engine, "wrap_model", spy)
    runs = {}
    for flag in (False, True):
        recipe = load_recipe(recipe_dict(shapes_root, model={"name": "dc-mini-resnet"},
                                         train={"steps": 4, "checkpoint_every": 4, "channels_last": flag}))
        train(recipe, tmp_path / str(flag))
        runs[flag] = final_weights(tmp_path / str(flag))
    assert layouts == [False, True]
    assert runs[True].keys() == runs[False].keys()
    assert runs[True]["visual.trunk.conv1.0.weight"].is_contiguous()
    losses = {flag: [json.loads(x)["loss"] for x in (tmp_path / str(flag) / "log.jsonl").read_text().splitlines()
                     if '"loss"' in x and '"event"' not in x] for flag in runs}
    assert len(losses[True]) == 4 and losses[True] == pytest.approx(losses[False], rel=1e-3)
    # Adam turns float-rounding differences in near-zero gradients into whole-step differences for a
    # few weights, so compare the runs' difference with the size of what training changed.
    torch.manual_seed(0)  # the engine seeds train.seed (0) before building the model
    from domainclip.core.models import create_model

    init = create_model("dc-mini-resnet").state_dict()
    names = [n for n, v in runs[False].items() if v.is_floating_point() and n in init]
    moved = torch.cat([(runs[False][n] - init[n]).abs().flatten() for n in names]).mean()
    apart = torch.cat([(runs[True][n] - runs[False][n]).abs().flatten() for n in names]).mean()
    assert moved > 5e-5 and apart < 0.02 * moved, (float(moved), float(apart))


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(shapes_root, tmp_path):
    recipe = recipe_dict(
        shapes_root,
        data={"num_workers": 2, "augment": True, "text_choice": "random"},
        train={"steps": 40, "checkpoint_every": 5, "log_every": 5, "tensorboard": False},
    )
    path = write_recipe(tmp_path / "r.yaml", recipe)

    killed_at = full_and_resumed_runs(path, tmp_path, first_checkpoint=5, steps=40)
    a, b = final_weights(tmp_path / "full"), final_weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume from {killed_at.name}"
    log = (tmp_path / "killed" / "log.jsonl").read_text()
    assert '"event": "resume"' in log


def _torchrun(args: list[str]) -> None:
    """``torchrun --standalone --nproc_per_node 2 -m domainclip ARGS`` (gloo on CPU), which must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "domainclip",
         *args], env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.distributed
def test_two_process_ddp_matches_one_process(shapes_root, tmp_path):
    sections = dict(
        data={"num_workers": 0, "augment": False, "split": "sample", "batch_size": 16, "text_choice": "first"},
        train={"steps": 4, "checkpoint_every": 4, "tensorboard": False, "seed": 1},
        optim={"lr": 1e-3, "warmup_steps": 1},
    )
    path = write_recipe(tmp_path / "r.yaml", recipe_dict(shapes_root, **sections))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "domainclip", "train", str(path), "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-3000:]
    _torchrun(["train", str(path), "--out", str(tmp_path / "two")])
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    start = load_file(str(tmp_path / "one" / "checkpoints" / "step_00000004" / "model.safetensors"))
    assert a.keys() == b.keys() == start.keys()
    moved = max((a[k] - b[k]).abs().max().item() for k in a)
    assert moved < 1e-4, f"2-process result differs from 1-process by {moved}"
    log_two = [json.loads(x) for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "start" and r["world_size"] == 2 for r in log_two)


def test_gradient_accumulation_equals_full_batch(shapes_root, tmp_path):
    """Two micro-batches of 8 give the gradient of one batch of 16 (GradCache), negatives included."""
    from domainclip.core.engine.distributed import DistInfo
    from domainclip.core.engine.precision import autocast_context, make_grad_scaler
    from domainclip.core.engine.tasks import get_task
    from domainclip.core.engine.train import _forward_backward
    from domainclip.core.losses import create_loss
    from domainclip.core.models import create_model

    torch.manual_seed(0)
    model = create_model("dc-test-vit")
    info = DistInfo(0, 1, 0, torch.device("cpu"))
    task = get_task("image_text")
    loss_fn = create_loss("clip")
    images = torch.randn(16, 3, 32, 32)
    tokens = torch.randint(1, 400, (16, 32))
    batch = {"image": images, "text": tokens}
    halves = [{"image": images[:8], "text": tokens[:8]}, {"image": images[8:], "text": tokens[8:]}]
    scaler, ctx = make_grad_scaler("fp32", info.device), autocast_context("fp32", info.device)

    full_loss, _ = _forward_backward(model, task, loss_fn, [batch], info, ctx, scaler)
    full = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    acc_loss, _ = _forward_backward(model, task, loss_fn, halves, info, ctx, scaler)
    acc = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert acc_loss == pytest.approx(full_loss, rel=1e-5)
    assert full.keys() == acc.keys()
    for name in full:
        torch.testing.assert_close(acc[name], full[name], rtol=1e-4, atol=1e-6, msg=name)


def test_non_finite_loss_guard_stops_the_run(shapes_root, tmp_path, monkeypatch):
    import domainclip.core.losses as losses

    class NanLoss(torch.nn.Module):
        def __init__(self, **_):
            super().__init__()

        def forward(self, image_features, text_features, logit_scale, output_dict=False, **_):
            value = (image_features.sum() + text_features.sum()) * float("nan") * logit_scale
            return {"nan_loss": value} if output_dict else value

    monkeypatch.setitem(losses.LOSSES, "nan_test", NanLoss)
    recipe = load_recipe(recipe_dict(shapes_root, loss={"name": "nan_test"}, train={"max_bad_steps": 3}))
    from domainclip.core.engine.run_log import RunLogger

    events = []
    log_event = RunLogger.event
    monkeypatch.setattr(RunLogger, "event", lambda self, name, **kw: (events.append(name), log_event(self, name, **kw)))
    with pytest.raises(NonFiniteLossError, match="3 consecutive steps"):
        train(recipe, tmp_path / "run")
    assert events.count("non_finite_loss") == 3
    assert not (tmp_path / "run").exists()  # it failed before any checkpoint: nothing is left behind


def test_optimizer_excludes_norms_biases_and_tower_parameters():
    from domainclip.core.engine.optim import build_optimizer, lr_factor
    from domainclip.core.models import create_model

    model = create_model("dc-test-video")
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.2, betas=(0.9, 0.98), eps=1e-6,
                          no_decay=["bias", "norm", "ln_", "logit_scale", "embedding", "token"])
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in opt.param_groups[0]["params"]}
    kept = {names[id(p)] for p in opt.param_groups[1]["params"]}
    assert opt.param_groups[1]["weight_decay"] == 0.0
    assert not any("bias" in n or "ln_" in n or n.endswith("logit_scale") for n in decayed)
    assert set(model.tower_no_weight_decay()) <= kept
    assert any(n.endswith("c_fc.weight") for n in decayed)
    assert lr_factor(0, total=100, warmup=10, schedule="cosine", min_ratio=0.0) == pytest.approx(0.1)
    assert lr_factor(10, total=100, warmup=10, schedule="cosine", min_ratio=0.0) == pytest.approx(1.0)
    assert lr_factor(100, total=100, warmup=10, schedule="cosine", min_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(55, total=100, warmup=10, schedule="linear", min_ratio=0.0) == pytest.approx(0.5)


def test_resume_skips_a_damaged_newest_checkpoint_and_names_it(shapes_root, tmp_path):
    recipe = load_recipe(recipe_dict(shapes_root, train={"steps": 6, "checkpoint_every": 2, "keep_checkpoints": 0,
                                                          "tensorboard": False}))
    train(recipe, tmp_path / "full")
    run = tmp_path / "run"
    train(load_recipe(recipe_dict(shapes_root, train={"steps": 6, "checkpoint_every": 2, "keep_checkpoints": 0,
                                                       "tensorboard": False})), run)
    state = run / "checkpoints" / "step_00000006" / "state.pt"
    state.write_bytes(state.read_bytes()[:200])  # a truncated write
    with pytest.warns(UserWarning, match=r"step_00000006/state.pt cannot be loaded"):
        result = train(recipe, run, resume=True)
    assert result.steps == 6
    events = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if '"event": "resume"' in x]
    assert events[-1]["step"] == 4 and events[-1]["skipped_damaged"][0]["checkpoint"] == str(state)
    a, b = final_weights(tmp_path / "full"), final_weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)  # steps 5-6 redone from step 4: the same weights


def test_resume_takes_bookkeeping_changes_and_records_them(shapes_root, tmp_path):
    from domainclip.core.engine.train import resume_changes
    from domainclip.core.recipe import RecipeError

    base = recipe_dict(shapes_root, train={"steps": 4, "checkpoint_every": 2, "tensorboard": False})
    run = tmp_path / "run"
    train(load_recipe(base), run)
    saved = (run / "checkpoints" / "step_00000004" / "recipe.yaml").read_text()
    changed = load_recipe(base, ["train.log_every=2", "eval.batch_size=8"])
    assert resume_changes(saved, changed) == ["eval.batch_size", "train.log_every"]
    with pytest.raises(RecipeError, match=r"optim.lr: 0.001 -> 0.5"):
        resume_changes(saved, load_recipe(base, ["optim.lr=0.5"]))
    with pytest.raises(RecipeError, match=r"train.steps: 4 -> 8"):
        resume_changes(saved, load_recipe(base, ["train.steps=8"]))
    train(changed, run, resume=True)
    resolved = yaml.safe_load((run / "recipe.resolved.yaml").read_text())
    assert resolved["train"]["log_every"] == 2 and resolved["optim"]["lr"] == 1e-3  # what is in use, truthfully


def test_resume_of_a_run_saved_before_a_recipe_key_existed(shapes_root):
    """A key added to domainclip after a checkpoint was written is no change at its default, a change otherwise."""
    from domainclip.core.engine.train import resume_changes
    from domainclip.core.recipe import RecipeError, recipe_to_dict

    base = recipe_dict(shapes_root, train={"steps": 4, "tensorboard": False})
    old = recipe_to_dict(load_recipe(base))
    del old["data"]["decode_device"], old["train"]["compile"], old["loss"]["local_loss"]
    saved = yaml.safe_dump(old)
    assert resume_changes(saved, load_recipe(base)) == []
    assert resume_changes(saved, load_recipe(base, ["train.compile=blocks"])) == ["train.compile"]
    with pytest.raises(RecipeError, match=r"loss.local_loss: None -> True"):
        resume_changes(saved, load_recipe(base, ["loss.local_loss=true"]))


def test_checkpoint_files_follow_the_umask(shapes_root, tmp_path):
    import stat

    from domainclip.core.io import new_file_mode

    train(load_recipe(recipe_dict(shapes_root, train={"steps": 1, "checkpoint_every": 1, "tensorboard": False})),
          tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000001"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in ckpt.iterdir()}
    assert modes == {"model.safetensors": new_file_mode(), "state.pt": new_file_mode(), "recipe.yaml": new_file_mode()}


def test_resume_reads_an_optimizer_state_keyed_by_numbers(shapes_root, tmp_path):
    """A checkpoint written before optimizer states were keyed by parameter names resumes exactly."""
    recipe = load_recipe(recipe_dict(shapes_root, train={"steps": 4, "checkpoint_every": 2, "tensorboard": False}))
    run = tmp_path / "run"
    train(recipe, run)
    uninterrupted = final_weights(run)
    shutil.rmtree(run / "checkpoints" / "step_00000004")
    state_file = run / "checkpoints" / "step_00000002" / "state.pt"
    state = torch.load(state_file, weights_only=True)
    named = state["optimizer"]  # what optimizer.state_dict() wrote: parameters numbered in the groups' order
    number = {name: i for i, name in enumerate(n for group in named["param_groups"] for n in group["params"])}
    state["optimizer"] = {
        "state": {number[name]: value for name, value in named["state"].items()},
        "param_groups": [{**g, "params": [number[n] for n in g["params"]]} for g in named["param_groups"]],
    }
    torch.save(state, state_file)
    train(recipe, run, resume=True)
    resumed = final_weights(run)
    assert all(torch.equal(uninterrupted[k], resumed[k]) for k in uninterrupted)

def _start_two_ranks(args: list[str], logs: Path) -> list[subprocess.Popen]:
    """The two processes ``torchrun`` would start, started here so that a test can SIGKILL both.

    (torchrun starts each worker in a session of its own: killing torchrun leaves them running.)
    """
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    return [subprocess.Popen([sys.executable, "-m", "domainclip", *args], stdout=(logs / f"rank{r}.log").open("wb"),
                             stderr=subprocess.STDOUT, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)})
            for r in range(2)]


@pytest.fixture(scope="module")
def two_process_runs(shapes_root, tmp_path_factory) -> dict[str, Path]:
    """One recipe (``recipe``) run uninterrupted by 2 processes with DDP (``ddp``) and with FSDP2 (``fsdp``)."""
    tmp = tmp_path_factory.mktemp("two_process")
    runs = {"recipe": write_recipe(tmp / "r.yaml", recipe_dict(
        shapes_root,
        data={"num_workers": 0, "augment": True, "text_choice": "random", "batch_size": 16},
        train={"steps": 6, "checkpoint_every": 2, "log_every": 1, "tensorboard": False, "seed": 1},
    ))}
    for strategy in ("ddp", "fsdp"):
        runs[strategy] = tmp / strategy
        _torchrun(["train", str(runs["recipe"]), "--out", str(runs[strategy]), "--set", f"train.strategy={strategy}"])
    return runs


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_process_resume_after_sigkill_is_bit_identical(two_process_runs, strategy, tmp_path):
    """Both ranks SIGKILLed after a checkpoint, then resumed by torchrun: the uninterrupted run's weights exactly.

    With FSDP2 each rank holds a shard of every parameter and of its optimizer state; the checkpoint
    holds them whole (gathered from both ranks) and the resume shards them again, copying every value.
    """
    run = tmp_path / "killed"
    args = ["train", str(two_process_runs["recipe"]), "--out", str(run), "--set", f"train.strategy={strategy}"]
    ranks = _start_two_ranks(args, tmp_path)
    first_ckpt, deadline = run / "checkpoints" / "step_00000002", time.time() + 300
    while not first_ckpt.exists():
        assert all(r.poll() is None for r in ranks), (tmp_path / "rank0.log").read_text()[-3000:]
        assert time.time() < deadline
        time.sleep(0.005)
    for rank in ranks:
        rank.send_signal(signal.SIGKILL)
    assert [rank.wait() for rank in ranks] == [-signal.SIGKILL] * 2
    killed_at = find_latest_checkpoint(run / "checkpoints")
    assert killed_at is not None and killed_at.name != "step_00000006", "the run finished before the kill"

    _torchrun([*args, "--resume"])
    a, b = final_weights(two_process_runs[strategy]), final_weights(run)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume from {killed_at.name}"
    resumes = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if '"event": "resume"' in x]
    assert [r["checkpoint"] for r in resumes] == [str(killed_at)]
    # the optimizer state is whole, keyed by parameter names, and loads without pickled code
    state = torch.load(run / "checkpoints" / "step_00000006" / "state.pt", weights_only=True)
    moments = {name: s["exp_avg"].shape for name, s in state["optimizer"]["state"].items()}
    assert moments == {name: value.shape for name, value in a.items()}  # every tensor of dc-test-vit is trained


@pytest.mark.slow
@pytest.mark.distributed
def test_fsdp_trains_what_ddp_trains(two_process_runs):
    """FSDP2 and DDP give the same losses, weights and optimizer state, up to float rounding.

    Not bit for bit: FSDP2 reduce-scatters gradients where DDP all-reduces them in buckets (the sums
    are added in another order), clips with a norm summed from per-shard norms, and steps AdamW with
    the per-parameter loop (torch's fused kernel takes no sharded parameters), each rounding
    differently in the last bits of float32.
    """
    ddp, fsdp = final_weights(two_process_runs["ddp"]), final_weights(two_process_runs["fsdp"])
    assert ddp.keys() == fsdp.keys() and all(ddp[k].shape == fsdp[k].shape for k in ddp)
    apart = max((ddp[k] - fsdp[k]).abs().max().item() for k in ddp)
    earlier = load_file(str(two_process_runs["ddp"] / "checkpoints" / "step_00000002" / "model.safetensors"))
    moved = max((ddp[k] - earlier[k]).abs().max().item() for k in ddp)
    assert apart < 2e-5 < moved / 100, (apart, moved)  # on CPU: about 1e-6 apart, 3e-3 moved in steps 3-6

    def losses(run: Path) -> list[float]:
        return [json.loads(x)["loss"] for x in (run / "log.jsonl").read_text().splitlines()
                if '"loss"' in x and '"event"' not in x]

    assert len(losses(two_process_runs["fsdp"])) == 6
    assert losses(two_process_runs["fsdp"]) == pytest.approx(losses(two_process_runs["ddp"]), rel=1e-5)
    states = [torch.load(two_process_runs[s] / "checkpoints" / "step_00000006" / "state.pt", weights_only=True)
              for s in ("ddp", "fsdp")]
    a, b = (s["optimizer"]["state"] for s in states)
    assert a.keys() == b.keys() == ddp.keys()  # dc-test-vit: every tensor of the state dict is a trained parameter
    for name in a:
        assert torch.allclose(a[name]["exp_avg"], b[name]["exp_avg"], atol=1e-6), name


@pytest.mark.slow
@pytest.mark.distributed
def test_fsdp_run_evaluates_a_whole_copy_of_the_sharded_model(shapes_root, tmp_path):
    """Under FSDP the main rank cannot run the sharded model alone: it evaluates a gathered, whole copy."""
    sections = dict(
        data={"num_workers": 0, "augment": False, "batch_size": 16},
        train={"steps": 2, "checkpoint_every": 2, "tensorboard": False, "strategy": "fsdp"},
        eval={"suites": ["core/synthetic"], "batch_size": 64},
    )
    path = write_recipe(tmp_path / "r.yaml", recipe_dict(shapes_root, **sections))
    _torchrun(["train", str(path), "--out", str(tmp_path / "run")])
    results = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())
    assert 0 <= results["results"]["shapes/zeroshot_classification"]["acc1"] <= 1
    # the copy is the trained model: evaluating the saved checkpoint in one process gives the same numbers
    from domainclip.core.engine.runs import load_run
    from domainclip.core.eval.suites import run_suite
    from domainclip.core.models import get_image_transform, get_tokenizer

    model = load_run(tmp_path / "run")
    again = run_suite(model, get_tokenizer(model), get_image_transform(model, is_train=False), "core/synthetic",
                      data=None, out_dir=tmp_path / "again", device="cpu", batch_size=64)
    assert again["shapes/zeroshot_classification"]["acc1"] == results["results"]["shapes/zeroshot_classification"][
        "acc1"]
