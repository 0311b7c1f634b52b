"""Self-distillation (RS-M-CLIP): the DINO loss and head, the EMA teacher and centre, the multi-crop task,
the engine's auxiliary losses and post-step hook, exact resume after SIGKILL, and hub export.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from safetensors.torch import load_file

from domainclip.core.data.decode import collate_samples
from domainclip.core.engine.checkpoint import find_latest_checkpoint
from domainclip.core.engine.distributed import DistInfo
from domainclip.core.engine.precision import autocast_context, make_grad_scaler
from domainclip.core.engine.tasks import Task, get_task
from domainclip.core.engine.train import _forward_backward, train
from domainclip.core.errors import InputError
from domainclip.core.hub import save_model_folder
from domainclip.core.losses import create_loss
from domainclip.core.models import create_model, get_image_transform, get_tokenizer
from domainclip.core.options import check_options
from domainclip.core.recipe import load_recipe
from domainclip.domains.remote_sensing.models import DINOHead, SelfDistillationLoss, SelfDistillCLIP, ema_momentum
from domainclip.domains.remote_sensing.tasks import MULTICROP, MulticropDecoder, square_crop_box
from tests.sigkill import full_and_resumed_runs

_spec = importlib.util.spec_from_file_location("rs_data_models_distill", Path(__file__).with_name("data_models.py"))
data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data)

TOWER = {"tower": "self_distill", "head_dim": 64, "head_hidden_dim": 32, "head_bottleneck_dim": 16}
CPU = DistInfo(0, 1, 0, torch.device("cpu"))


def tiny_tower(seed: int = 0, **settings) -> SelfDistillCLIP:
    torch.manual_seed(seed)
    return create_model("dc-test-vit", domainclip_cfg={**TOWER, **settings})


def multicrop_batch(model: torch.nn.Module, n: int = 4, local_crops: int = 2, epoch: int = 0) -> dict:
    decoder = MULTICROP.make_decoder(get_image_transform(model), get_tokenizer(model), seed=0, text_choice="random",
                                     num_local_crops=local_crops, languages={})
    samples = []
    for i in range(n):
        png = io.BytesIO()
        Image.fromarray(data.scene_image(i)).save(png, "png")
        text = {"en": [data.SCENES[i % 4][1]], "pt": [data.SCENES[i % 4][2]]}
        samples.append(decoder({"__key__": f"s{i}", "__url__": "u.tar", "__epoch__": epoch, "png": png.getvalue(),
                                "text.json": json.dumps(text).encode()}))
    return collate_samples(samples)


# ------------------------------------------------------------------ loss and head


def test_dino_loss_equals_a_direct_computation():
    torch.manual_seed(0)
    batch, crops, dim = 3, 4, 5
    student, teacher = torch.randn(crops * batch, dim), torch.randn(2 * batch, dim)
    loss_fn = SelfDistillationLoss(dim, student_temp=0.1, teacher_temp=0.04, center_momentum=0.9)
    loss_fn.center.copy_(torch.randn(1, dim))
    total, terms = 0.0, 0
    for t in range(2):
        for v in range(crops):
            if v == t:
                continue
            for b in range(batch):
                q = [math.exp((teacher[t * batch + b, k] - loss_fn.center[0, k]).item() / 0.04) for k in range(dim)]
                p = [math.exp(student[v * batch + b, k].item() / 0.1) for k in range(dim)]
                total -= sum(q[k] / sum(q) * math.log(p[k] / sum(p)) for k in range(dim)) / batch
            terms += 1
    assert terms == 2 * crops - 2
    assert loss_fn(student, teacher, crops).item() == pytest.approx(total / terms, rel=1e-5)
    with pytest.raises(ValueError, match="crops >= 2"):
        loss_fn(student, teacher[:batch], crops)
    before = loss_fn.center.clone()
    loss_fn.update_center(torch.ones(dim))
    torch.testing.assert_close(loss_fn.center, 0.9 * before + 0.1)


def test_dino_head_normalises_the_bottleneck_and_the_last_layer():
    torch.manual_seed(0)
    head = DINOHead(16, out_dim=32, hidden_dim=24, bottleneck_dim=8, layers=3)
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 24), (24, 24), (24, 8)]
    x = torch.randn(5, 16)
    assert head(x).shape == (5, 32)
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(32))  # only directions learn
    assert not head.last_layer.parametrizations.weight.original0.requires_grad
    bottleneck = F.normalize(head.mlp(x), dim=-1)
    torch.testing.assert_close(head(x), bottleneck @ head.last_layer.weight.T)
    assert DINOHead(16, 32, 24, 8, norm_last_layer=False).last_layer.parametrizations.weight.original0.requires_grad


def test_ema_momentum_follows_dino_cosine_schedule():
    assert ema_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert ema_momentum(50, 100, 0.996) == pytest.approx(0.998)
    assert ema_momentum(100, 100, 0.996) == pytest.approx(1.0)
    values = [ema_momentum(s, 100, 0.996) for s in range(101)]
    assert values == sorted(values)


# ------------------------------------------------------------------ teacher


def test_teacher_gets_no_gradient_and_follows_the_ema_rule():
    model = tiny_tower().train()
    batch = multicrop_batch(model)
    out = MULTICROP.forward(model, batch, torch.device("cpu"))
    assert set(out["aux_losses"]) == {"self_distill"}
    loss = create_loss("clip")(**out) + out["aux_losses"]["self_distill"]
    loss.backward()
    teacher = [p for m in model.teacher_parts() for p in m.parameters()]
    assert teacher and all(not p.requires_grad and p.grad is None for p in teacher)
    assert model.student_head.mlp[0].weight.grad.abs().sum() > 0 and model.clip.visual.conv1.weight.grad is not None
    # the teacher started as the student: nothing but the EMA moves it
    for t, s in zip(*model._pairs(), strict=True):
        assert torch.equal(t, s)
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5).step()
    old = [t.clone() for t in model._pairs()[0]]
    model.after_optimizer_step(3, 10)
    m = 1 - (1 - 0.996) * (math.cos(math.pi * 3 / 10) + 1) / 2
    moved = 0
    for before, t, s in zip(old, *model._pairs(), strict=True):
        torch.testing.assert_close(t, m * before + (1 - m) * s, rtol=1e-6, atol=1e-7)
        moved += int(not torch.equal(t, before))
    assert moved > 10


def test_teacher_starts_from_the_weights_loaded_after_the_tower_was_built(tmp_path):
    """create_model builds the tower, then loads CLIP weights: the teacher is the loaded student."""
    torch.manual_seed(7)
    pretrained = create_model("dc-test-vit")
    torch.save(pretrained.state_dict(), tmp_path / "clip.pt")
    torch.manual_seed(8)
    model = create_model("dc-test-vit", pretrained=str(tmp_path / "clip.pt"), domainclip_cfg=TOWER).train()
    assert not model.teacher_ready
    assert not torch.equal(model.teacher_visual.conv1.weight, pretrained.visual.conv1.weight)  # built before loading
    MULTICROP.forward(model, multicrop_batch(model), torch.device("cpu"))
    assert model.teacher_ready
    for (name, t), s in zip(model.teacher_visual.state_dict().items(), pretrained.visual.state_dict().values(),
                            strict=True):
        assert torch.equal(t, s), name


def test_centre_takes_the_step_teacher_mean_also_over_micro_batches():
    model = tiny_tower().train()
    batch = multicrop_batch(model, n=4)
    halves = [{k: v[i:i + 2] for k, v in batch.items()} for i in (0, 2)]
    MULTICROP.forward(model, batch, torch.device("cpu"))  # syncs the teacher
    model._pending_centers.clear()
    with torch.no_grad():
        images = torch.cat([batch["image"], batch["crops"][:, 0]])
        expected = 0.1 * model.teacher_head(model.teacher_visual(images)).mean(dim=0, keepdim=True)
    for half in halves:  # gradient accumulation: one optimizer step, two forwards
        MULTICROP.forward(model, half, torch.device("cpu"))
    model.after_optimizer_step(0, 10)
    torch.testing.assert_close(model.distill.center, expected, rtol=1e-5, atol=1e-7)
    assert model._pending_centers == []
    model.eval()
    MULTICROP.forward(model, batch, torch.device("cpu"))  # evaluation leaves the centre alone
    assert model._pending_centers == []


# ------------------------------------------------------------------ the multi-crop decoder


def test_square_crop_boxes_cover_the_asked_fraction():
    rng = np.random.default_rng(0)
    import random

    r = random.Random(0)
    for _ in range(300):
        width, height = (int(v) for v in rng.integers(20, 200, size=2))
        low = float(rng.uniform(0.05, 0.5))
        left, top, right, bottom = square_crop_box(width, height, (low, 1.0), r)
        side = right - left
        assert side == bottom - top and 0 <= left and right <= width and 0 <= top and bottom <= height
        fraction = side * side / (width * height)
        assert fraction <= 1.0 and (fraction >= low * 0.9 or side == min(width, height))


def test_multicrop_decoder_crops_reproducibly_at_the_model_size():
    model = tiny_tower()
    batch = multicrop_batch(model, n=2, local_crops=3)
    assert batch["image"].shape == (2, 3, 32, 32) and batch["crops"].shape == (2, 4, 3, 32, 32)
    assert batch["text"].shape == (2, 32)
    again = multicrop_batch(model, n=2, local_crops=3)
    assert torch.equal(batch["image"], again["image"]) and torch.equal(batch["crops"], again["crops"])
    other_epoch = multicrop_batch(model, n=2, local_crops=3, epoch=1)
    assert not torch.equal(batch["crops"], other_epoch["crops"])
    views = torch.cat([batch["image"][:1], batch["crops"][0]])
    assert all(not torch.equal(views[i], views[j]) for i in range(5) for j in range(i))


def test_multicrop_decoder_languages_and_image_limit():
    model = tiny_tower()
    tokenize = get_tokenizer(model)
    png = io.BytesIO()
    Image.fromarray(data.scene_image(0)).save(png, "png")
    raw = {"__key__": "k", "__url__": "u", "png": png.getvalue(),
           "text.json": json.dumps({"en": ["a river with water"], "pt": ["um rio com agua"]}).encode()}
    only_pt = MulticropDecoder(get_image_transform(model), tokenize, languages={"pt": 1.0})(raw)
    assert torch.equal(only_pt["text"], tokenize("um rio com agua")[0])
    drawn = {tuple(MulticropDecoder(get_image_transform(model), tokenize, seed=s, languages={})(raw)["text"].tolist())
             for s in range(12)}
    assert len(drawn) == 2  # both languages are drawn
    from domainclip.core.data.corrupt import CorruptSampleError

    with pytest.raises(CorruptSampleError, match="max_image_pixels=100"):
        MulticropDecoder(get_image_transform(model), tokenize, max_image_pixels=100)(raw)


def test_decoder_args_are_checked_against_the_decoder_signature():
    engine = ("preprocess", "tokenizer", "seed", "text_choice", "max_image_pixels", "languages")
    args = {"num_local_crops": 6, "global_scale": [0.5, 1.0], "local_scale": [0.1, 0.3], "flip": False}
    assert check_options(MULTICROP.make_decoder, args, where="d", skip=engine) == {
        **args, "global_scale": (0.5, 1.0), "local_scale": (0.1, 0.3)}
    for bad, message in [
        ({"num_local_crop": 4}, "d: unknown option 'num_local_crop' (did you mean num_local_crops?)"),
        ({"num_local_crops": -1}, "d.num_local_crops: must be an integer >= 0; got -1"),
        ({"local_scale": [0.1, 1.5]}, "d.local_scale: must be a number in [0, 1]; got 1.5"),
        ({"global_scale": [0.4]}, "d.global_scale: must be 2 values; got [0.4]"),
    ]:
        with pytest.raises(InputError) as caught:
            check_options(MULTICROP.make_decoder, bad, where="d", skip=engine)
        assert str(caught.value).startswith(message), str(caught.value)
    with pytest.raises(InputError, match=r"local_scale must be \(low, high\) with 0 < low <= high"):
        MulticropDecoder(lambda image: image, local_scale=(0.5, 0.2))
    assert get_task("remote_sensing/multicrop") is MULTICROP and MULTICROP.extra_inputs == ("crops",)


# ------------------------------------------------------------------ engine: aux losses, accumulation, hook


def test_engine_adds_and_logs_aux_losses_and_accumulates_them_exactly():
    """Two micro-batches of 2 give the full batch's gradient of CLIP + self-distillation, and its logged value."""
    model = tiny_tower().train()
    batch = multicrop_batch(model, n=4)
    halves = [{k: v[i:i + 2] for k, v in batch.items()} for i in (0, 2)]
    loss_fn = create_loss("clip")
    scaler, ctx = make_grad_scaler("fp32", CPU.device), autocast_context("fp32", CPU.device)
    MULTICROP.forward(model, batch, CPU.device)  # sync the teacher first, so both passes see the same one
    model._pending_centers.clear()

    full_loss, full_parts = _forward_backward(model, MULTICROP, loss_fn, [batch], CPU, ctx, scaler)
    full = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    acc_loss, acc_parts = _forward_backward(model, MULTICROP, loss_fn, halves, CPU, ctx, scaler)
    acc = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert set(full_parts) == {"contrastive_loss", "self_distill"}
    assert full_loss == pytest.approx(sum(full_parts.values()), rel=1e-6)
    assert acc_parts == pytest.approx(full_parts, rel=1e-5) and acc_loss == pytest.approx(full_loss, rel=1e-5)
    assert full.keys() == acc.keys() and any(n.startswith("student_head.") for n in full)
    for name in full:
        torch.testing.assert_close(acc[name], full[name], rtol=1e-4, atol=1e-6, msg=name)
    assert len(model._pending_centers) == 3  # one full batch, then two live halves (the cached pass has no crops)


def test_task_passes_extra_inputs_and_aux_names_must_not_clash():
    seen = {}

    class Probe(torch.nn.Module):
        def __init__(self, part: str):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))
            self.part = part

        def forward(self, image, text, extra=None):
            seen["extra"] = extra
            features = F.normalize(torch.ones(image.shape[0], 4) + image.flatten(1)[:, :4], dim=-1)
            return {"image_features": features, "text_features": features, "logit_scale": self.scale,
                    "aux_losses": {self.part: self.scale * 2}}

    task = Task("probe", extra_inputs=("extra",))
    batch = {"image": torch.randn(2, 3, 4, 4), "text": torch.zeros(2, 3, dtype=torch.long), "extra": torch.ones(2)}
    scaler, ctx = make_grad_scaler("fp32", CPU.device), autocast_context("fp32", CPU.device)
    loss, parts = _forward_backward(Probe("probe_aux"), task, create_loss("clip"), [batch], CPU, ctx, scaler)
    assert torch.equal(seen["extra"], torch.ones(2)) and parts["probe_aux"] == 2.0
    task.forward(Probe("x"), batch, CPU.device, extra_inputs=False)
    assert seen["extra"] is None
    with pytest.raises(ValueError, match=r"reuse the loss's part names \['contrastive_loss'\]"):
        _forward_backward(Probe("contrastive_loss"), task, create_loss("clip"), [batch], CPU, ctx, scaler)


def recipe_dict(root: Path, **sections) -> dict:
    recipe = {
        "domain": "remote_sensing",
        "model": {"name": "dc-test-vit", "overrides": {"domainclip_cfg": TOWER}},
        "data": {"root": str(root), "train": [{"urls": "train/*.tar"}], "batch_size": 8, "num_workers": 0,
                 "shuffle_buffer": 16, "decoder_args": {"num_local_crops": 2}},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "train": {"task": "remote_sensing/multicrop", "steps": 4, "precision": "fp32", "log_every": 1,
                  "checkpoint_every": 2, "progress": False, "tensorboard": False},
    }
    for section, values in sections.items():
        recipe.setdefault(section, {}).update(values)
    return recipe


@pytest.fixture(scope="module")
def scenes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    data.write_multilingual_shards(root / "train", 48)
    return root


def test_a_run_trains_the_tower_logs_the_distillation_and_checkpoints_teacher_and_centre(scenes_root, tmp_path):
    result = train(load_recipe(recipe_dict(scenes_root)), tmp_path / "run")
    assert result.steps == 4
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r and "event" not in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for r in steps:
        assert r["loss"] == pytest.approx(r["loss/contrastive_loss"] + r["loss/self_distill"], rel=1e-5)
    weights = load_file(str(result.final_checkpoint / "model.safetensors"))
    assert {"distill.center", "teacher_ready", "teacher_head.mlp.0.weight",
            "teacher_visual.conv1.weight"} <= set(weights)
    assert weights["teacher_ready"].item() and weights["distill.center"].abs().sum() > 0
    student, teacher = weights["clip.visual.conv1.weight"], weights["teacher_visual.conv1.weight"]
    assert not torch.equal(student, teacher) and (student - teacher).abs().max() < 0.05  # an EMA that lags


def _final(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(find_latest_checkpoint(run / "checkpoints") / "model.safetensors"))


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(scenes_root, tmp_path):
    """Teacher, centre and EMA schedule resume exactly: the killed-and-resumed run ends as the uninterrupted one."""
    recipe = recipe_dict(scenes_root, data={"num_workers": 2}, train={"steps": 16, "checkpoint_every": 4,
                                                                       "log_every": 4})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    killed_at = full_and_resumed_runs(path, tmp_path, first_checkpoint=4, steps=16)
    a, b = _final(tmp_path / "full"), _final(tmp_path / "killed")
    assert a.keys() == b.keys() and "distill.center" in a
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume from {killed_at.name}"
    assert '"event": "resume"' in (tmp_path / "killed" / "log.jsonl").read_text()


# ------------------------------------------------------------------ export


def test_exported_folder_loads_in_plain_open_clip_and_back_with_the_tower(tmp_path):
    model = tiny_tower(seed=5).train()
    batch = multicrop_batch(model)
    MULTICROP.forward(model, batch, torch.device("cpu"))
    model.after_optimizer_step(0, 4)  # a centre and a ready teacher worth keeping
    folder = save_model_folder(model, tmp_path / "hub")
    assert (folder / "domainclip_tower.safetensors").is_file()
    images = batch["image"]

    plain, _, _ = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    with torch.no_grad():
        expected = model.eval().encode_image(images)
        assert torch.equal(plain.eval().encode_image(images), expected)

    back = create_model(f"local-dir:{folder}")
    assert isinstance(back, SelfDistillCLIP)
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key

    # a fresh process finds the tower through the domain's declaration, without importing it first
    code = (
        "import sys, torch\n"
        "from domainclip.core.models.loading import load_model\n"
        "assert 'domainclip.domains.remote_sensing.models' not in sys.modules\n"
        f"model = load_model({str(folder)!r})[0]\n"
        "print(type(model).__name__, float(model.distill.center.abs().sum()))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    name, centre = run.stdout.split()
    assert name == "SelfDistillCLIP" and float(centre) == pytest.approx(float(model.distill.center.abs().sum()))
