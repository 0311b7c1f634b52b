"""The divided space-time encoder and tower: equal to transformers' TimesformerModel, built through create_model."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from transformers import TimesformerConfig, TimesformerModel

from domainclip.core.models import SpaceTimeCLIP, SpaceTimeEncoder, create_model

WIDTH, LAYERS, HEADS, FRAMES, SIZE, PATCH = 32, 2, 4, 4, 32, 8


def _hf_to_encoder_key(key: str) -> str:
    """transformers' Timesformer names -> TimeSformer's (this encoder's)."""
    replacements = [
        ("embeddings.patch_embeddings.projection.", "patch_embed.proj."),
        ("embeddings.cls_token", "cls_token"),
        ("embeddings.position_embeddings", "pos_embed"),
        ("embeddings.time_embeddings", "time_embed"),
        ("encoder.layer.", "blocks."),
        ("temporal_attention.attention.qkv.", "temporal_attn.qkv."),
        ("temporal_attention.output.dense.", "temporal_attn.proj."),
        ("attention.attention.qkv.", "attn.qkv."),
        ("attention.output.dense.", "attn.proj."),
        ("temporal_dense.", "temporal_fc."),
        ("temporal_layernorm.", "temporal_norm1."),
        ("layernorm_before.", "norm1."),
        ("layernorm_after.", "norm2."),
        ("intermediate.dense.", "mlp.fc1."),
        ("output.dense.", "mlp.fc2."),
    ]
    if key.startswith("layernorm."):
        return "norm." + key[len("layernorm."):]
    for old, new in replacements:
        key = key.replace(old, new)
    return key


@pytest.fixture(scope="module")
def timesformer() -> TimesformerModel:
    torch.manual_seed(0)
    config = TimesformerConfig(
        image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, hidden_size=WIDTH, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, intermediate_size=4 * WIDTH, layer_norm_eps=1e-6, qkv_bias=True,
        attention_type="divided_space_time", drop_path_rate=0,
    )
    model = TimesformerModel(config).eval()
    with torch.no_grad():  # random values everywhere (HF zero-initialises some), so every term counts
        for param in model.parameters():
            param.normal_(0, 0.2)
    return model


def test_timesformer_variant_equals_transformers(timesformer: TimesformerModel) -> None:
    encoder = SpaceTimeEncoder(SIZE, PATCH, WIDTH, LAYERS, HEADS, output_dim=16, num_frames=FRAMES).eval()
    mapped = {_hf_to_encoder_key(k): v for k, v in timesformer.state_dict().items()}
    expected = set(encoder.state_dict()) - {"proj.weight", "proj.bias"}
    assert set(mapped) == expected
    encoder.load_state_dict(mapped, strict=False)
    clips = torch.randn(3, FRAMES, 3, SIZE, SIZE)
    with torch.no_grad():
        reference = timesformer(pixel_values=clips).last_hidden_state[:, 0]
        ours = encoder.encode_groups(clips)[:, 0]
        assert torch.allclose(ours, encoder.proj(reference), atol=1e-4)
        # frame order matters: the temporal attention and time embedding see it
        assert (encoder(clips.flip(1)) - encoder(clips)).abs().max() > 1e-5


def test_resized_embeddings_and_single_images() -> None:
    torch.manual_seed(0)
    encoder = SpaceTimeEncoder(SIZE, PATCH, WIDTH, LAYERS, HEADS, output_dim=16, num_frames=FRAMES,
                               variant="surgclip").eval()
    with torch.no_grad():
        assert encoder(torch.randn(2, 3, 3, 48, 48)).shape == (2, 16)  # other grid and clip length
        images = torch.randn(2, 3, SIZE, SIZE)
        assert torch.allclose(encoder(images), encoder(images[:, None]))
        assert encoder.encode_groups(torch.randn(2, FRAMES, 3, SIZE, SIZE)).shape == (2, FRAMES, 16)
    with pytest.raises(ValueError, match="variant"):
        SpaceTimeEncoder(SIZE, PATCH, WIDTH, LAYERS, HEADS, output_dim=16, variant="joint")  # type: ignore[arg-type]


def test_tower_through_create_model() -> None:
    model = create_model(
        "dc-test-vit",
        vision_cfg={"image_size": SIZE, "patch_size": PATCH, "width": WIDTH, "layers": LAYERS, "head_width": 8,
                    "norm_kwargs": {"eps": 1e-6}},
        domainclip_cfg={"tower": "spacetime", "num_frames": FRAMES},
    ).eval()
    assert isinstance(model, SpaceTimeCLIP) and isinstance(model.visual, SpaceTimeEncoder)
    assert model.tower_state_dict() == {}
    blocks = model.visual.blocks
    assert len(blocks) == LAYERS and blocks[0].attn.num_heads == HEADS and blocks[0].norm1.eps == 1e-6
    assert model.visual.preprocess_cfg["size"] == [SIZE, SIZE]
    video = torch.randn(2, FRAMES, 3, SIZE, SIZE)
    text = torch.randint(1, 64, (2, model.context_length))
    with torch.no_grad():
        out = model(video=video, text=text)
        assert torch.allclose(out["image_features"], F.normalize(model.visual(video), dim=-1))
        assert model.encode_image(video[:, 0]).shape == (2, 64)
    model.lock_image_tower(unlocked_groups=1)
    trainable = {n for n, p in model.visual.named_parameters() if p.requires_grad}
    assert trainable == {"norm.weight", "norm.bias", "proj.weight", "proj.bias"}


def test_tower_registered_in_a_fresh_process() -> None:
    code = "from domainclip.core.models import get_tower; print(get_tower('spacetime').__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "SpaceTimeCLIP"
