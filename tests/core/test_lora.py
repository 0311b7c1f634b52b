"""LoRA through peft on open_clip towers: the attention swap, adapters, key layouts, merged export."""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
from open_clip.transformer import Transformer
from torch import nn

from domainclip.core.errors import InputError
from domainclip.core.hub import save_model_folder
from domainclip.core.models import DomainCLIP, create_model, get_model_config, registry
from domainclip.core.models.lora import (
    QKVAttention,
    apply_lora,
    count_parameters,
    has_lora,
    lora_parameters,
    lora_summary,
    merged_state_dict,
    swap_attention,
)

pytest.importorskip("peft")

WIDTH, LAYERS = 64, 2  # dc-test-vit's image tower


def _clip(name="dc-test-vit", seed=0, **overrides):
    torch.manual_seed(seed)
    return create_model(name, **overrides).eval()


def _images(batch=3, size=32, seed=1):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _texts(batch=2, length=32, seed=2):
    return torch.randint(1, 49000, (batch, length), generator=torch.Generator().manual_seed(seed))


def _randomise_lora(module, seed=3, std=0.05):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in lora_parameters(module):
            param.copy_(torch.randn(param.shape, generator=gen) * std)


def _plain_state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------ the attention swap


def test_swap_keeps_outputs_and_shares_parameters():
    clip = _clip()
    images, texts = _images(), _texts()
    with torch.no_grad():
        ref_image, ref_text = clip.encode_image(images), clip.encode_text(texts)  # text: causal float mask
    params = {p.data_ptr() for p in clip.parameters()}
    block = clip.visual.transformer.resblocks[0]
    in_proj = block.attn.in_proj_weight

    names = swap_attention(clip)  # both towers
    assert names == [f"visual.transformer.resblocks.{i}" for i in range(LAYERS)] + [
        f"transformer.resblocks.{i}" for i in range(LAYERS)
    ]
    assert isinstance(block.attn, QKVAttention) and block.attn.qkv.weight is in_proj
    assert {p.data_ptr() for p in clip.parameters()} == params  # the same tensors, renamed
    with torch.no_grad():
        torch.testing.assert_close(clip.encode_image(images), ref_image, atol=1e-5, rtol=0)
        torch.testing.assert_close(clip.encode_text(texts), ref_text, atol=1e-5, rtol=0)
    assert swap_attention(clip) == names  # swapping again changes nothing


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("mask", [None, "float", "bool3d"])
def test_qkv_attention_equals_multihead_attention(batch_first, mask):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, batch_first=batch_first)
    with torch.no_grad():
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    n, length = 3, 7
    x = torch.randn(n, length, 32) if batch_first else torch.randn(length, n, 32)
    attn_mask = None
    if mask == "float":
        attn_mask = torch.full((length, length), float("-inf")).triu(1)
    elif mask == "bool3d":
        attn_mask = torch.rand(n * 4, length, length, generator=torch.Generator().manual_seed(1)) > 0.6
        attn_mask[..., 0] = False  # every query keeps one key
    ref = mha(x, x, x, need_weights=False, attn_mask=attn_mask)[0]
    out, weights = QKVAttention.from_multihead_attention(mha)(x, x, x, need_weights=False, attn_mask=attn_mask)
    assert weights is None
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_swap_handles_a_sequence_first_transformer():
    torch.manual_seed(0)
    tower = Transformer(32, 2, 4, batch_first=False).eval()
    x = torch.randn(2, 5, 32)  # the Transformer takes (N, L, D) and runs its blocks on (L, N, D)
    with torch.no_grad():
        ref = tower(x)
        swap_attention(tower)
        torch.testing.assert_close(tower(x), ref, atol=1e-5, rtol=0)
    assert tower.resblocks[0].attn.batch_first is False


# ------------------------------------------------------------ adapters and counts


@pytest.mark.parametrize("name", ["ViT-B-32", "ViT-B-16", "ViT-L-14"])
def test_paper_architectures_identity_at_init_and_counts(name):
    # the real block shapes (width, heads, patch), one block per tower to stay fast
    clip = _clip(name, vision_cfg={"layers": 1}, text_cfg={"layers": 1})
    width = get_model_config(name)["vision_cfg"]["width"]
    size = clip.visual.image_size[0]
    images = _images(batch=1, size=size)
    with torch.no_grad():
        ref = clip.encode_image(images)
    apply_lora(clip.visual, rank=4)
    counts = count_parameters(clip.visual)
    assert counts["lora"] == counts["trainable"] == 4 * (width + 3 * width)
    with torch.no_grad():  # B starts at zero: the adapted tower is the same function
        torch.testing.assert_close(clip.encode_image(images), ref, atol=1e-5, rtol=0)


def test_trainable_counts_and_frozen_base():
    clip = _clip()
    text_trainable = sum(p.numel() for n, p in clip.named_parameters() if not n.startswith("visual."))
    apply_lora(clip.visual, rank=8, alpha=16.0)
    counts = count_parameters(clip)
    assert counts["lora"] == LAYERS * 8 * (WIDTH + 3 * WIDTH)
    assert counts["groups"]["visual"]["trainable"] == counts["lora"]  # everything else in visual is frozen
    assert counts["trainable"] == counts["lora"] + text_trainable  # outside the module: untouched
    assert counts["total"] == sum(p.numel() for p in clip.parameters())
    assert {n.split(".")[-3] for n, _ in lora_parameters(clip)} == {"lora_A", "lora_B"}
    assert all(n.startswith("visual.transformer.resblocks.") and ".attn.qkv." in n for n, _ in lora_parameters(clip))
    assert lora_summary(counts).startswith(f"{counts['trainable']:,} of {counts['total']:,} parameters trainable")

    both = _clip()
    apply_lora(both.visual, rank=8, targets=("qkv", "out_proj", "c_fc", "c_proj"))
    mlp = 4 * WIDTH
    per_block = 8 * (WIDTH + 3 * WIDTH) + 8 * (WIDTH + WIDTH) + 8 * (WIDTH + mlp) + 8 * (mlp + WIDTH)
    assert count_parameters(both.visual)["lora"] == LAYERS * per_block
    assert count_parameters(both, depth=3)["groups"]["visual.transformer.resblocks"]["trainable"] == LAYERS * per_block


def test_lora_scaling_is_alpha_over_rank():
    clip = _clip()
    apply_lora(clip.visual, rank=2, alpha=6.0)
    _randomise_lora(clip.visual)
    layer = clip.visual.transformer.resblocks[0].attn.qkv
    x = torch.randn(5, WIDTH)
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    expected = nn.functional.linear(x, layer.base_layer.weight, layer.base_layer.bias) + 3.0 * x @ a.T @ b.T
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=0)


# ------------------------------------------------------------ key layouts


def test_plain_state_dict_loads_strictly_with_fresh_adapters():
    plain = _plain_state(_clip(seed=5))
    clip = _clip(seed=6)
    apply_lora(clip.visual, targets=("qkv", "out_proj"))
    _randomise_lora(clip.visual)
    lora_before = {n: p.detach().clone() for n, p in lora_parameters(clip)}

    result = clip.load_state_dict(plain, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    sd = clip.state_dict()
    key = "visual.transformer.resblocks.1.attn"
    assert torch.equal(sd[f"{key}.qkv.base_layer.weight"], plain[f"{key}.in_proj_weight"])
    assert torch.equal(sd[f"{key}.qkv.base_layer.bias"], plain[f"{key}.in_proj_bias"])
    assert torch.equal(sd[f"{key}.out_proj.base_layer.weight"], plain[f"{key}.out_proj.weight"])
    for name, param in lora_parameters(clip):  # adapters keep their values
        assert torch.equal(param, lora_before[name])
    # and the merged export of a model whose B is zero is the plain state dict itself
    with torch.no_grad():
        for name, param in lora_parameters(clip):
            if ".lora_B." in name:
                param.zero_()
    merged = merged_state_dict(clip)
    assert list(merged) == list(plain)
    assert all(torch.equal(merged[k], plain[k]) for k in plain)


def test_peft_layout_round_trips_for_resume_and_is_never_filled():
    clip = _clip()
    apply_lora(clip.visual)
    _randomise_lora(clip.visual)
    saved = _plain_state(clip)
    assert "visual.transformer.resblocks.0.attn.qkv.lora_B.default.weight" in saved  # A and B kept apart

    resumed = _clip(seed=9)
    apply_lora(resumed.visual)
    resumed.load_state_dict(saved, strict=True)
    images = _images()
    with torch.no_grad():
        assert torch.equal(resumed.encode_image(images), clip.encode_image(images))

    partial = {k: v for k, v in saved.items() if ".lora_B." not in k}  # a damaged checkpoint: no silent fill
    with pytest.raises(RuntimeError, match="lora_B"):
        resumed.load_state_dict(partial, strict=True)


def test_deep_copy_keeps_the_load_hooks():
    clip = _clip()
    apply_lora(clip.visual)
    twin = copy.deepcopy(clip)
    plain = _plain_state(_clip(seed=4))
    twin.load_state_dict(plain, strict=True)
    assert torch.equal(
        twin.visual.transformer.resblocks[0].attn.qkv.base_layer.weight,
        plain["visual.transformer.resblocks.0.attn.in_proj_weight"],
    )
    assert not torch.equal(
        clip.visual.transformer.resblocks[0].attn.qkv.base_layer.weight,
        plain["visual.transformer.resblocks.0.attn.in_proj_weight"],
    )


# ------------------------------------------------------------ training and export


def test_trained_lora_merges_into_plain_open_clip():
    clip = _clip()
    apply_lora(clip.visual, rank=4, targets=("qkv", "out_proj"))
    base_before = {k: v.clone() for k, v in clip.visual.state_dict().items() if ".lora_" not in k}
    optimizer = torch.optim.AdamW([p for _, p in lora_parameters(clip.visual)], lr=1e-2)
    images, target = _images(batch=4), torch.randn(4, 64, generator=torch.Generator().manual_seed(7))
    clip.train()
    for _ in range(5):
        loss = (clip.encode_image(images, normalize=True) - nn.functional.normalize(target, dim=-1)).pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    clip.eval()
    assert all(torch.equal(v, clip.visual.state_dict()[k]) for k, v in base_before.items())  # base frozen
    assert any(".lora_B." in n and p.abs().max() > 0 for n, p in lora_parameters(clip))  # B moved

    torch.manual_seed(123)
    plain = open_clip.create_model("dc-test-vit").eval()  # plain open_clip, its own attention
    plain.load_state_dict(merged_state_dict(clip), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(plain.encode_image(images), clip.encode_image(images), atol=1e-5, rtol=0)
        torch.testing.assert_close(plain.encode_text(_texts()), clip.encode_text(_texts()), atol=0, rtol=0)
    assert isinstance(plain.visual.transformer.resblocks[0].attn, nn.MultiheadAttention)


@pytest.fixture
def lora_tower():
    """A registered tower that adapts its CLIP's image tower in its constructor (as the omniview tower does)."""

    class LoraTestCLIP(DomainCLIP):
        def __init__(self, clip: nn.Module, embed_dim: int, lora_rank: int = 4):
            super().__init__(clip, embed_dim)
            apply_lora(clip.visual, rank=lora_rank)
            self.head = nn.Linear(embed_dim, embed_dim)

        def forward(self, image=None, text=None):
            image_features = self.encode_image(image, normalize=True) if image is not None else None
            text_features = self.encode_text(text, normalize=True) if text is not None else None
            return self.clip_output(image_features, text_features)

    registry.register_tower("test_lora")(LoraTestCLIP)
    cfg = get_model_config("dc-test-vit") | {"domainclip_cfg": {"tower": "test_lora", "lora_rank": 4}}
    registry.register_model_config("dc-test-lora", cfg, overwrite=True)
    yield "dc-test-lora"
    registry._TOWERS.pop("test_lora", None)
    registry._CONFIGS.pop("dc-test-lora", None)
    open_clip.factory._MODEL_CONFIGS.pop("dc-test-lora", None)


def test_tower_exports_merged_weights_that_plain_open_clip_loads(lora_tower, tmp_path):
    model = _clip(lora_tower)
    assert has_lora(model.clip.visual)
    _randomise_lora(model)
    images = _images()
    with torch.no_grad():
        expected = model.encode_image(images)
    assert "visual.transformer.resblocks.0.attn.in_proj_weight" in model.export_clip_state_dict()
    folder = save_model_folder(model, tmp_path / "exported")

    plain = open_clip.create_model(f"local-dir:{folder}").eval()
    with torch.no_grad():
        torch.testing.assert_close(plain.encode_image(images), expected, atol=1e-5, rtol=0)
    plain_file = open_clip.create_model("dc-test-vit", pretrained=str(folder / "open_clip_model.safetensors")).eval()
    with torch.no_grad():
        torch.testing.assert_close(plain_file.encode_image(images), expected, atol=1e-5, rtol=0)

    # domainclip builds the tower (fresh adapters) and then loads the merged CLIP weights strictly
    again = create_model(f"local-dir:{folder}").eval()
    assert has_lora(again.clip.visual) and all(p.requires_grad for _, p in lora_parameters(again))
    with torch.no_grad():
        torch.testing.assert_close(again.encode_image(images), expected, atol=1e-5, rtol=0)


def test_plain_clip_with_lora_outside_a_tower_is_not_exported(tmp_path):
    clip = _clip()
    apply_lora(clip.visual)
    with pytest.raises(ValueError, match="outside a domain tower"):
        save_model_folder(clip, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_compiles_in_one_graph():
    clip = _clip()
    apply_lora(clip.visual, targets=("qkv", "out_proj"))
    _randomise_lora(clip.visual)
    clip.train()
    images = _images()
    torch._dynamo.reset()
    compiled = torch.compile(clip.visual, backend="aot_eager", fullgraph=True)  # a graph break raises
    out = compiled(images)
    torch.testing.assert_close(out, clip.visual(images), atol=1e-5, rtol=0)
    out.square().sum().backward()
    assert all(p.grad is not None for _, p in lora_parameters(clip))
    assert all(p.grad is None for n, p in clip.visual.named_parameters() if ".lora_" not in n)


# ------------------------------------------------------------ refusals


def test_unhandled_layouts_are_refused():
    with pytest.raises(InputError, match="TimmModel has no open_clip transformer blocks"):
        apply_lora(_clip("dc-mini-resnet").visual)
    resnet = _clip("RN50", vision_cfg={"layers": [1, 1, 1, 1], "width": 16, "image_size": 64}, text_cfg={"layers": 1})
    with pytest.raises(InputError, match="ModifiedResNet has no open_clip transformer blocks"):
        apply_lora(resnet.visual)
    with pytest.raises(InputError, match="CustomResidualAttentionBlock"):
        apply_lora(_clip(vision_cfg={"qk_norm": True}).visual)
    clip = _clip()
    apply_lora(clip.visual)
    with pytest.raises(InputError, match="already has LoRA"):
        apply_lora(clip.visual)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rank": 0}, "rank must be a positive integer"),
        ({"alpha": 0.0}, "alpha must be positive"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"targets": ("q",)}, "targets must be distinct names among qkv, out_proj, c_fc, c_proj"),
        ({"targets": ()}, "targets must be distinct"),
    ],
)
def test_bad_settings_are_one_line_input_errors(settings, message):
    clip = _clip()
    with pytest.raises(InputError, match=message):
        apply_lora(clip.visual, **settings)
    assert isinstance(clip.visual.transformer.resblocks[0].attn, nn.MultiheadAttention)  # nothing changed
