"""Model-side speed of the engine: ``train.compile``, SDPA attention in every tower, no host syncs, bf16, fused AdamW.

The compiled runs use torch.compile's ``aot_eager`` backend: it traces and runs the same AOTAutograd
graphs as inductor, without generating C++ code, which on this 2-core CI machine (g++ present)
takes minutes per graph under load. Inductor itself is what ``train.compile`` uses on GPU
(bench/gpu_throughput.py).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import domainclip.core.engine.train as train_module
from domainclip.core.engine.checkpoint import find_latest_checkpoint, list_checkpoints
from domainclip.core.engine.compile import compile_blocks, compile_forward, find_blocks, resolve_compile_mode
from domainclip.core.engine.run_log import RunLogger
from domainclip.core.engine.train import train
from domainclip.core.models import create_model, get_tokenizer
from domainclip.core.recipe import RecipeError, load_recipe
from tests.engine_runs import prepare_small_shapes, tiny_recipe

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    return prepare_small_shapes(tmp_path_factory.mktemp("shapes"))


recipe_dict = tiny_recipe


def step_records(run: Path) -> list[dict]:
    lines = (run / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "event" not in r]


@pytest.fixture
def aot_eager(monkeypatch):
    """The engine's compile calls with the aot_eager backend (see the module docstring)."""
    monkeypatch.setattr(train_module, "compile_blocks", functools.partial(compile_blocks, backend="aot_eager"))
    monkeypatch.setattr(train_module, "compile_forward", functools.partial(compile_forward, backend="aot_eager"))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# ------------------------------------------------------------------ the recipe switch


def test_compile_setting_is_checked_at_load_and_resolved_per_device():
    with pytest.raises(RecipeError, match=r"train\.compile: must be true/false or one of auto, model, blocks, off"):
        load_recipe({"domain": "core", "train": {"compile": "fast"}})
    assert load_recipe({"domain": "core"}).train.compile == "auto"
    # YAML reads a bare `off` as false
    assert load_recipe({"domain": "core", "train": {"compile": False}}).train.compile is False
    assert resolve_compile_mode("auto", CUDA) == "blocks"
    assert resolve_compile_mode("auto", CPU) == "off"
    assert resolve_compile_mode(True, CPU) == "model"
    assert resolve_compile_mode(False, CUDA) == "off"
    assert resolve_compile_mode("blocks", CPU) == "blocks"


def test_find_blocks_lists_the_repeated_blocks_outermost_only():
    vit = create_model("dc-test-vit")
    assert [type(b).__name__ for b in find_blocks(vit)] == ["ResidualAttentionBlock"] * 4
    from open_clip.modified_resnet import Bottleneck

    stage = torch.nn.Sequential(Bottleneck(8, 2), Bottleneck(8, 2), Bottleneck(8, 2))  # a ResNet stage
    model = torch.nn.ModuleDict({"stage": stage, "head": torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())})
    assert find_blocks(model) == list(stage)  # not its convolutions, not a stack of torch.nn layers
    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = torch.nn.ModuleList([Bottleneck(8, 2), Bottleneck(8, 2)])

    stacked = torch.nn.ModuleList([Outer(), Outer()])
    assert find_blocks(stacked) == list(stacked)  # outermost only: not the bottlenecks inside them


def test_compiled_blocks_keep_state_dict_keys_outputs_and_deepcopy():
    torch.manual_seed(0)
    eager = create_model("dc-test-vit").eval()
    compiled = copy.deepcopy(eager)
    blocks = compile_blocks(compiled, backend="aot_eager", dynamic=False)
    assert len(blocks) == 4
    assert list(compiled.state_dict()) == list(eager.state_dict())  # no _orig_mod. prefix
    assert not any("_orig_mod" in k for k in compiled.state_dict())
    images, text = torch.randn(2, 3, 32, 32), torch.randint(1, 100, (2, 32))
    with torch.no_grad():
        want = eager(image=images, text=text)["image_features"]
        got = compiled(image=images, text=text)["image_features"]
        twin = copy.deepcopy(compiled)  # its compiled forwards are bound to the copy's own blocks
        assert all(b.forward.__self__ is b for b in find_blocks(twin))
        twin.visual.transformer.resblocks[0].mlp.c_fc.weight.zero_()
        changed = twin(image=images, text=text)["image_features"]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(changed, want)
    torch._dynamo.reset()


# ------------------------------------------------------------------ compiled training runs


@pytest.mark.slow
def test_compiled_runs_match_eager_and_their_checkpoints_resume_eagerly(shapes_root, tmp_path, aot_eager):
    eager = train(load_recipe(recipe_dict(shapes_root, compile="off")), tmp_path / "eager")
    want = [r["loss"] for r in step_records(eager.run_dir)]
    weights_eager = load_file(str(eager.final_checkpoint / "model.safetensors"))
    assert len(want) == 4
    for mode in ("blocks", "model"):
        compiled = train(load_recipe(recipe_dict(shapes_root, compile=mode)), tmp_path / mode)
        got = [r["loss"] for r in step_records(compiled.run_dir)]
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5), mode
        weights = load_file(str(compiled.final_checkpoint / "model.safetensors"))
        assert list(weights) == list(weights_eager)  # no _orig_mod. prefixes
        for key in weights_eager:
            torch.testing.assert_close(weights[key], weights_eager[key], rtol=1e-4, atol=1e-5, msg=f"{mode} {key}")

    # the compiled run's step-2 checkpoint, resumed without compiling, ends where the eager run ends
    import shutil

    run = tmp_path / "blocks"
    for path in list_checkpoints(run / "checkpoints")[1:]:
        shutil.rmtree(path)
    assert find_latest_checkpoint(run / "checkpoints").name == "step_00000002"
    resumed = train(load_recipe(recipe_dict(shapes_root, compile="off")), run, resume=True)
    final = load_file(str(resumed.final_checkpoint / "model.safetensors"))
    for key in weights_eager:
        torch.testing.assert_close(final[key], weights_eager[key], rtol=1e-4, atol=1e-5, msg=key)


# ------------------------------------------------------------------ attention kernels


def _count_attention(monkeypatch) -> dict[str, int]:
    counts = {"sdpa": 0, "softmax": 0}
    sdpa, softmax = F.scaled_dot_product_attention, F.softmax

    def counting_sdpa(*args, **kwargs):
        counts["sdpa"] += 1
        return sdpa(*args, **kwargs)

    def counting_softmax(*args, **kwargs):
        counts["softmax"] += 1
        return softmax(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting_sdpa)
    monkeypatch.setattr(F, "softmax", counting_softmax)
    return counts


def _attention_layers(model: torch.nn.Module) -> int:
    from open_clip.modified_resnet import AttentionPool2d
    from timm.models.vision_transformer import Attention

    from domainclip.core.models.lora import QKVAttention

    kinds = (torch.nn.MultiheadAttention, Attention, QKVAttention, AttentionPool2d)
    return sum(isinstance(m, kinds) or type(m).__name__.endswith("SelfAttention") for m in model.modules())


def _tiny_bert(folder: Path) -> Path:
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "cat", "dog"]
    transformers.BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(str(folder))
    transformers.BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=64).save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("name", ["dc-test-vit", "dc-tiny-timm", "dc-mini-resnet", "dc-test-video",
                                  "dc-test-multiview", "hf-bert", "lora"])
def test_every_tower_attends_with_sdpa_in_training(name, monkeypatch, tmp_path):
    torch.manual_seed(0)
    if name == "hf-bert":
        bert = str(_tiny_bert(tmp_path / "bert"))
        model = create_model("dc-tiny-hf-text", text_cfg={"hf_model_name": bert, "hf_tokenizer_name": bert})
    elif name == "lora":
        pytest.importorskip("peft")
        from domainclip.core.models.lora import apply_lora

        model = create_model("dc-test-vit")
        apply_lora(model.visual, rank=2, alpha=4.0, targets=("qkv",))
    else:
        model = create_model(name)
    model.train()
    info = model.domainclip_info
    size = info["preprocess_cfg"]["size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    text = get_tokenizer(model)(["a photo of a cat", "a dog"])
    image = torch.randn(2, 3, *size)
    if name == "dc-test-video":
        inputs = {"video": torch.randn(2, model.num_frames, 3, *size)}
    elif name == "dc-test-multiview":
        inputs = {"views": torch.randn(2, model.num_views, 3, *size)}
    else:
        inputs = {"image": image}
    layers = _attention_layers(model)
    counts = _count_attention(monkeypatch)
    out = model(**inputs, text=text)
    (out["image_features"].sum() + out["text_features"].sum()).backward()
    assert layers >= 2
    assert counts["softmax"] == 0, "an attention computed its softmax by hand"
    # one SDPA call per attention layer and use (a video tower runs its frame tower once per batch)
    assert counts["sdpa"] >= layers, counts
    if name == "hf-bert":
        assert model.text.transformer.config._attn_implementation == "sdpa"
    if name == "lora":
        from domainclip.core.models.lora import QKVAttention

        assert any(isinstance(m, QKVAttention) for m in model.visual.modules())


# ------------------------------------------------------------------ no host syncs in the step

_SYNCS = ("item", "tolist", "__float__", "__int__", "__bool__")


@pytest.mark.slow
@pytest.mark.parametrize("inject", [False, True], ids=["engine", "probe-catches-a-read"])
def test_the_step_reads_no_tensor_back_between_log_steps(shapes_root, tmp_path, monkeypatch, inject):
    """Every ``.item()`` / ``float()`` / ``bool()`` of a tensor in the loop is at a log step (data loading aside).

    ``inject`` adds a read of the gradient norm to every step, which the probe must report.
    """
    if inject:
        clip = torch.nn.utils.clip_grad_norm_

        def clip_and_read(*args, **kwargs):
            norm = clip(*args, **kwargs)
            norm.item()
            return norm

        monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip_and_read)
    trace: list[tuple[str, int]] = []
    counter = {"step": 0, "loop": False}

    def in_data_loading() -> bool:
        import sys

        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_code.co_filename.replace("\\", "/")
            if "/domainclip/core/data/" in name or "/torchvision/" in name:
                return True
            frame = frame.f_back
        return False

    for attr in _SYNCS:
        original = getattr(torch.Tensor, attr)

        def patched(self, *args, _original=original, _attr=attr, **kwargs):
            if counter["loop"] and not in_data_loading():
                trace.append((_attr, counter["step"]))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, attr, patched)

    advance, log, event = RunLogger.advance, RunLogger.log, RunLogger.event

    def on_advance(self, steps=1):
        counter["step"] += steps
        trace.append(("advance", counter["step"]))
        return advance(self, steps)

    def on_log(self, step, scalars):
        trace.append(("log", step))
        return log(self, step, scalars)

    def on_event(self, name, **fields):
        counter["loop"] = name in ("start", "checkpoint") or counter["loop"] and name not in ("end",)
        return event(self, name, **fields)

    monkeypatch.setattr(RunLogger, "advance", on_advance)
    monkeypatch.setattr(RunLogger, "log", on_log)
    monkeypatch.setattr(RunLogger, "event", on_event)
    recipe = load_recipe(recipe_dict(shapes_root, steps=6, log_every=3, checkpoint_every=6))
    train(recipe, tmp_path / "run")

    log_steps, stepping = {3, 6}, 0
    reads_at_log, reads_in_steps = [], []
    for kind, step in trace:
        if kind == "advance":
            stepping = step
        elif kind == "log":  # the next step's phases follow; after the last log, the final checkpoint
            stepping = None if step == 6 else 0
        elif stepping is None:
            continue
        elif stepping in log_steps:
            reads_at_log.append(kind)
        else:
            reads_in_steps.append((kind, step))
    assert reads_at_log, "the log steps read the loss back: the probe must see it"
    if inject:
        assert len(reads_in_steps) >= 4 and {kind for kind, _ in reads_in_steps} == {"item"}
    else:
        assert reads_in_steps == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_steps_do_not_synchronise(shapes_root, tmp_path, monkeypatch):
    """``torch.cuda.set_sync_debug_mode("error")`` from the end of step 1 on, except at log steps: a sync raises.

    The first step is left out: the optimizer creates its state there (tensors from Python scalars).
    """
    advance, log = RunLogger.advance, RunLogger.log
    state = {"step": 0}

    def on_advance(self, steps=1):
        state["step"] += steps
        # the log step reads the loss back; the others must not synchronise
        torch.cuda.set_sync_debug_mode("default" if state["step"] % 4 == 0 else "error")
        return advance(self, steps)

    def on_log(self, step, scalars):
        out = log(self, step, scalars)
        if step < 8:  # the last step's checkpoint copies the weights to the host
            torch.cuda.set_sync_debug_mode("error")
        return out

    monkeypatch.setattr(RunLogger, "advance", on_advance)
    monkeypatch.setattr(RunLogger, "log", on_log)
    recipe = load_recipe(recipe_dict(shapes_root, steps=8, log_every=4, checkpoint_every=8, device="cuda",
                                     precision="bf16", compile="off"))
    try:
        result = train(recipe, tmp_path / "run")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.steps == 8


# ------------------------------------------------------------------ precision and optimizer


def test_bf16_autocast_keeps_fp32_master_weights():
    from domainclip.core.engine.precision import autocast_context, make_grad_scaler

    ctx = autocast_context("bf16", CUDA)()
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16 and ctx.device == "cuda"
    assert not make_grad_scaler("bf16", CUDA).is_enabled()  # bf16 needs no loss scaling
    model = create_model("dc-test-vit")
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # the optimizer updates fp32 weights
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what autocast does on GPU: bf16 matmuls, fp32 weights
        out = model(image=torch.randn(2, 3, 32, 32), text=torch.randint(1, 100, (2, 32)))
    assert out["image_features"].dtype == torch.bfloat16
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_optimizer_is_fused_and_skips_a_non_finite_step_on_the_device():
    from domainclip.core.engine.optim import build_optimizer

    model = create_model("dc-test-vit").cuda()
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6, no_decay=[])
    assert opt.defaults["fused"] is True and opt._step_supports_amp_scaling
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.found_inf = torch.ones((), device="cuda")
    opt.step()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, before[n], rtol=0, atol=0, msg=n)


def test_cpu_optimizer_is_fused_and_skips_a_non_finite_step_on_the_device():
    from domainclip.core.engine.optim import build_optimizer

    model = create_model("dc-test-vit")
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6, no_decay=[])
    assert opt.defaults["fused"] is True and opt._step_supports_amp_scaling
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.found_inf = torch.ones(())
    opt.step()
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    opt.found_inf = torch.zeros(())
    opt.step()
    assert not torch.equal(model.visual.conv1.weight, before["visual.conv1.weight"])
    assert all(int(s["step"]) == 1 for s in opt.state.values())  # the skipped step did not count
