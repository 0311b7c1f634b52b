"""The omniview tower: residual head, LoRA or full tuning, the mined-view forward and cross-view term,
mining through the refresh hook, its training state, exact gradient accumulation, and hub export."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F

from domainclip.core.data.decode import collate_samples, derive_rng
from domainclip.core.engine.distributed import DistInfo
from domainclip.core.engine.precision import autocast_context, make_grad_scaler
from domainclip.core.engine.train import _forward_backward
from domainclip.core.errors import InputError
from domainclip.core.hub import save_model_folder
from domainclip.core.losses import create_loss
from domainclip.core.models import create_model, get_image_transform, get_tokenizer
from domainclip.core.models.lora import count_parameters, has_lora
from domainclip.core.plugins import UnknownNameError
from domainclip.domains.multiview.mining import MinedTable, mine_object
from domainclip.domains.multiview.models import OmniviewCLIP
from domainclip.domains.multiview.tasks import OMNIVIEW
from domainclip.domains.multiview.views import encode_views

_spec = importlib.util.spec_from_file_location("mv_data_train_tower", Path(__file__).with_name("data_train.py"))
data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data)

TOWER = {"tower": "omniview", "num_views": 6, "worst_k": 3, "anchor_neighbours": 2}
CPU = DistInfo(0, 1, 0, torch.device("cpu"))


def tiny(seed: int = 0, **settings) -> OmniviewCLIP:
    torch.manual_seed(seed)
    return create_model("dc-test-vit", domainclip_cfg={**TOWER, **settings})


def raw_object(i: int, views: int = 6) -> dict:
    category = data.CATEGORIES[i % 3]
    images = [data.shape_view(category, data.PALETTE[i % 4], v, views) for v in range(views)]
    return {"__key__": f"obj_{i}", "__url__": "objects.tar", **encode_views(images, "png"),
            "text.json": json.dumps([f"a {category}"]).encode()}


def raw_general(i: int) -> dict:
    png = io.BytesIO()
    from PIL import Image

    Image.fromarray(data.shape_view("disc", data.PALETTE[i % 4], 0, 1)).save(png, "png")
    return {"__key__": f"photo_{i}", "__url__": "general.tar", "png": png.getvalue(), "txt": b"a photo of a disc"}


def batch_of(model: OmniviewCLIP, raws: list[dict]) -> dict:
    decode = OMNIVIEW.make_decoder(get_image_transform(model), get_tokenizer(model), seed=0, text_choice="random",
                                   num_views=6)
    return collate_samples([decode(r) for r in raws])


def nudge(model: OmniviewCLIP, seed: int = 1) -> None:
    """Move the residual head's zero-initialised layer and any LoRA B off zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("head.mlp.2") or "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


# ------------------------------------------------------------------ head and tuning


@pytest.mark.parametrize("tuning", ["lora", "full"])
def test_residual_head_starts_as_the_identity_and_applies_to_every_view(tuning):
    model = tiny(tuning=tuning).eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        z = model.clip.encode_image(images)
        assert torch.equal(model.encode_image(images), z)  # the head's last layer starts at zero
        nudge(model)
        z = model.clip.encode_image(images)
        refined = z + 0.1 * model.head.mlp(z)
        assert not torch.allclose(refined, z, atol=1e-4)
        torch.testing.assert_close(model.encode_image(images), refined)
        torch.testing.assert_close(model.encode_image(images, normalize=True), F.normalize(refined, dim=-1))
        per_view, _ = model.encode_views(images.reshape(1, 3, 3, 32, 32))
        torch.testing.assert_close(per_view[0], refined, rtol=1e-5, atol=1e-6)
    assert tiny(residual_head=False).head is None


def test_lora_trains_the_adapters_and_the_head_only_and_full_tuning_everything():
    model = tiny(tuning="lora", lora_rank=8)
    counts = count_parameters(model)
    width, blocks, dim = 64, 2, 64
    lora = blocks * 8 * (width + 3 * width)  # rank r on a D-wide qkv: r * (D + 3D) per block
    head = 2 * (dim * dim + dim)
    assert counts["lora"] == lora and counts["trainable"] == lora + head
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(n.startswith("head.") or ".lora_" in n for n in trainable)
    assert not model.logit_scale.requires_grad and not model.clip.token_embedding.weight.requires_grad
    two = count_parameters(tiny(tuning="lora", lora_rank=4, lora_targets=["qkv", "out_proj"]))
    assert two["lora"] == blocks * 4 * ((width + 3 * width) + (width + width))

    full = tiny(tuning="full")
    assert not has_lora(full.clip.visual)
    counts = count_parameters(full)
    assert counts["trainable"] == counts["total"] and counts["lora"] == 0


def test_tower_settings_are_checked():
    for settings, message in [
        ({"worst_k": 7}, r"worst_k must be in \[1, num_views=6\]"),
        ({"tuning": "half"}, "tuning must be one of"),
        ({"selection": "best"}, "selection must be one of"),
        ({"margin": -0.1}, "margin must be >= 0"),
        ({"anchor_neighbours": 0}, "anchor_neighbours must be >= 1"),
        ({"lora_rank": 0}, "LoRA rank must be a positive integer"),
    ]:
        with pytest.raises(InputError, match=message):
            tiny(**settings)
    with pytest.raises(UnknownNameError, match="worst_kk"):
        tiny(worst_kk=3)


# ------------------------------------------------------------------ forward


def test_forward_feeds_the_step_s_mined_view_and_pulls_the_mined_views_to_the_anchor():
    model = tiny(tuning="full", margin=0.3, cross_view_weight=2.0)
    nudge(model)
    views, text = torch.randn(4, 6, 3, 32, 32), torch.randint(0, 100, (4, 32))
    anchors = F.normalize(torch.randn(2, 64), dim=-1)
    model.table = MinedTable.from_rows([("obj_a", [4, 1, 2], anchors[0]), ("obj_b", [0, 5, 3], anchors[1])])
    model.step = 4  # slot 4 % 3 = 1 of the mined views; view 4 % 6 of an unmined object
    keys, flags = ["obj_a", "obj_b", "photo", "unmined"], torch.tensor([True, True, False, True])
    out = model(views=views, text=text, object_key=keys, multiview=flags)

    with torch.no_grad():
        expected_views = torch.stack([views[0, 1], views[1, 5], views[2, 0], views[3, 4]])
        torch.testing.assert_close(out["image_features"], model.encode_image(expected_views, normalize=True),
                                   rtol=1e-5, atol=1e-6)
        term = 0.0
        for b, selected in ((0, [4, 1, 2]), (1, [0, 5, 3])):
            e = model.encode_image(views[b, selected], normalize=True)
            anchor = model.table.lookup(keys[b])[1]  # the float16 anchor the table holds
            term += F.relu(1 - e @ anchor + 0.3).mean()
    assert set(out["aux_losses"]) == {"cross_view"}
    assert out["aux_losses"]["cross_view"].item() == pytest.approx(2.0 * float(term) / 4, rel=1e-5)

    cached = model(views=views, text=text, object_key=keys, multiview=flags, cross_view=False)
    assert "aux_losses" not in cached
    torch.testing.assert_close(cached["image_features"], out["image_features"], rtol=1e-5, atol=1e-6)
    fused = model(views=views, text=text)  # without keys: the multi-view tower's fused views
    assert fused["image_features"].shape == (4, 64) and "aux_losses" not in fused

    model.table = MinedTable.from_rows([("obj_a", [6, 1, 2], anchors[0])])
    with pytest.raises(InputError, match="mined with view 6 but the batch has 6 views"):
        model(views=views, text=text, object_key=keys, multiview=flags)


def test_gradient_accumulation_over_micro_batches_is_exact():
    model = tiny(tuning="lora").train()
    nudge(model)
    batch = batch_of(model, [raw_object(0), raw_general(0), raw_object(1), raw_object(2)])
    with torch.no_grad():
        rows = [(k, *mine_object(e, 3, 2)) for k, e in
                zip(["obj_0", "obj_1", "obj_2"], model.encode_image_set(batch["views"][[0, 2, 3]]), strict=True)]
    model.table, model.step = MinedTable.from_rows(rows), 2
    halves = [{k: v[i:i + 2] for k, v in batch.items()} for i in (0, 2)]
    loss_fn = create_loss("clip")
    scaler, ctx = make_grad_scaler("fp32", CPU.device), autocast_context("fp32", CPU.device)
    full_loss, full_parts = _forward_backward(model, OMNIVIEW, loss_fn, [batch], CPU, ctx, scaler)
    full = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    acc_loss, acc_parts = _forward_backward(model, OMNIVIEW, loss_fn, halves, CPU, ctx, scaler)
    acc = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert set(full_parts) == {"contrastive_loss", "cross_view"} and full_parts["cross_view"] > 0
    assert acc_parts == pytest.approx(full_parts, rel=1e-5) and acc_loss == pytest.approx(full_loss, rel=1e-5)
    assert full.keys() == acc.keys() and any(".lora_B" in n for n in full) and any(n.startswith("head.") for n in full)
    for name in full:
        torch.testing.assert_close(acc[name], full[name], rtol=1e-4, atol=1e-6, msg=name)


# ------------------------------------------------------------------ mining through the refresh hook


class FakeContext:
    """What the engine's RefreshContext offers, over batches given here (``ranks``: other ranks' rows)."""

    def __init__(self, batches: list[dict], *, seed: int = 0, global_batch_size: int = 4, others: list | None = None):
        self._batches, self.seed, self.global_batch_size, self.others = batches, seed, global_batch_size, others or []
        self.device, self.world_size, self.passes = torch.device("cpu"), 1 + len(self.others), 0

    def batches(self):
        self.passes += 1
        return iter(self._batches)

    def autocast(self):
        return torch.autocast("cpu", enabled=False)

    def gather_objects(self, obj):
        return [obj, *self.others]


def test_refresh_mines_every_object_when_due_and_the_training_state_round_trips():
    model = tiny(tuning="lora").train()
    nudge(model)
    raws = [raw_object(i) for i in range(7)] + [raw_general(0)]
    batches = [batch_of(model, raws[i:i + 4]) for i in (0, 4)]
    context = FakeContext(batches, global_batch_size=4)
    model.refresh(0, 10, context)
    assert model.training and context.passes == 1 and model.rounds == 1
    assert model.table.keys == sorted(f"obj_{i}" for i in range(7))
    assert (model.mined_at, model.next_mining) == (0, 2)  # 7 objects / 4 per step: mined again every 2 steps
    with torch.no_grad():
        model.eval()
        for i in range(7):
            selected, anchor = mine_object(model.encode_image_set(batches[i // 4]["views"][i % 4][None])[0], 3, 2)
            assert model.table.lookup(f"obj_{i}")[0] == selected
            torch.testing.assert_close(model.table.lookup(f"obj_{i}")[1], anchor, atol=1e-3, rtol=0)
    model.train()
    model.refresh(1, 10, context)
    assert context.passes == 1 and model.step == 1
    model.refresh(2, 10, context)
    assert context.passes == 2 and (model.mined_at, model.next_mining, model.rounds) == (2, 4, 2)

    buffer = io.BytesIO()
    torch.save({"model_state": model.training_state()}, buffer)
    buffer.seek(0)
    other = tiny(tuning="lora")
    other.load_training_state(torch.load(buffer, weights_only=True)["model_state"])
    assert other.table.keys == model.table.keys and torch.equal(other.table.selected, model.table.selected)
    assert torch.equal(other.table.anchors, model.table.anchors)
    assert (other.mined_at, other.next_mining, other.rounds, other.step) == (2, 4, 2, 2)
    other.refresh(3, 10, context)
    assert context.passes == 2  # not due: the restored schedule holds

    fixed = tiny(mine_every=5)
    fixed.refresh(0, 10, FakeContext(batches))
    assert fixed.next_mining == 5


def test_random_selection_needs_no_embeddings_and_ranks_share_one_table():
    model = tiny(selection="random", cross_view_weight=0.0)
    batches = [batch_of(model, [raw_object(i) for i in range(3)])]
    rank1 = [("obj_9", [0, 1, 2], torch.zeros(64).half())]
    model.refresh(0, 10, FakeContext(batches, seed=7, others=[rank1]))
    assert model.table.keys == ["obj_0", "obj_1", "obj_2", "obj_9"]
    for i in range(3):
        expected = sorted(derive_rng(7, "omniview", 0, f"obj_{i}").sample(range(6), 3))
        assert model.table.lookup(f"obj_{i}")[0] == expected
    assert float(model.table.anchors.abs().sum()) == 0.0  # no anchor is computed: the term is off
    out = model(views=batches[0]["views"], text=batches[0]["text"], object_key=batches[0]["object_key"],
                multiview=batches[0]["multiview"])
    assert "aux_losses" not in out

    general = [batch_of(model, [raw_general(i) for i in range(2)])]
    with pytest.raises(InputError, match="holds no multi-view object"):
        tiny().refresh(0, 10, FakeContext(general))
    with pytest.raises(InputError, match="worst_k=5 views mined per object, but the decoder gives 4"):
        tiny(num_views=6, worst_k=5).refresh(0, 10, FakeContext([{**batches[0], "views": batches[0]["views"][:, :4]}]))


# ------------------------------------------------------------------ export


def test_exported_folder_merges_lora_for_plain_open_clip_and_loads_back_with_the_head(tmp_path):
    model = tiny(tuning="lora", seed=3).eval()
    nudge(model)
    folder = save_model_folder(model, tmp_path / "hub")
    images = torch.randn(2, 3, 32, 32)
    plain, _, _ = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    back = create_model(f"local-dir:{folder}")
    assert isinstance(back, OmniviewCLIP) and back.tuning == "lora"
    with torch.no_grad():
        torch.testing.assert_close(plain.eval().encode_image(images), model.clip.encode_image(images),
                                   rtol=1e-5, atol=1e-5)  # LoRA merged; the head is the tower file's
        torch.testing.assert_close(back.eval().encode_image(images), model.encode_image(images), rtol=1e-5, atol=1e-5)
