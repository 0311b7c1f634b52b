"""Model registry, factory, tiny configs and the video / multi-view towers (tiny random models, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from domainclip.core.models import (
    DomainCLIP,
    MultiViewCLIP,
    VideoCLIP,
    build_model_from_info,
    create_model,
    create_model_and_transforms,
    get_model_config,
    get_tokenizer,
    list_models,
    list_towers,
    register_model_config,
    registry,
    unwrap_clip,
)
from domainclip.core.plugins import UnknownNameError

TINY = [
    "dc-test-vit",
    "dc-tiny-vit",
    "dc-tiny-timm",
    "dc-mini-conv",
    "dc-mini-resnet",
    "dc-test-video",
    "dc-test-multiview",
]
SHIPPED = {
    "dc-test-vit",
    "dc-tiny-vit",
    "dc-tiny-timm",
    "dc-mini-conv",
    "dc-mini-resnet",
    "dc-tiny-hf-text",
    "dc-test-video",
    "dc-test-multiview",
    "dc-tiny-video",
    "dc-tiny-multiview",
}


def _images(model, batch=2, seed=0):
    size = model.domainclip_info["preprocess_cfg"]["size"]
    return torch.randn(batch, 3, size[0], size[1], generator=torch.Generator().manual_seed(seed))


def _seeded(name, seed=0, **kwargs):
    torch.manual_seed(seed)
    return create_model(name, **kwargs).eval()


@pytest.fixture
def scratch_config():
    """Registers configs under temporary names and removes them from both registries afterwards."""
    names = []

    def register(name, cfg, **kwargs):
        names.append(name)
        register_model_config(name, cfg, **kwargs)

    yield register
    for name in names:
        registry._CONFIGS.pop(name, None)
        open_clip.factory._MODEL_CONFIGS.pop(name, None)


# ------------------------------------------------------------ registry


def test_list_models_has_shipped_and_open_clip_configs():
    assert SHIPPED <= set(list_models("dc-*"))
    assert set(list_models("DC-TEST-*")) == {"dc-test-vit", "dc-test-video", "dc-test-multiview"}
    assert "ViT-B-32" in list_models()
    assert "ViT-B-32" not in list_models("dc-*")
    # published to open_clip's own registry
    assert SHIPPED <= set(open_clip.list_models())
    # the core towers and the ones the domains declare
    assert list_towers() == ["multiview", "omniview", "self_distill", "spacetime", "video"]


def test_unknown_model_lists_close_matches():
    with pytest.raises(UnknownNameError, match="dc-test-vit") as err:
        create_model("dc-test-vitt")
    assert "unknown model 'dc-test-vitt'" in str(err.value)


def test_open_clip_builds_shipped_configs_without_domainclip_keys():
    model = open_clip.create_model("dc-test-video")  # open_clip sees only the model_cfg part
    assert type(model) is open_clip.CLIP
    assert "domainclip_cfg" not in open_clip.get_model_config("dc-test-video")
    assert get_model_config("dc-test-video")["domainclip_cfg"]["tower"] == "video"


def test_register_model_config(scratch_config):
    cfg = get_model_config("dc-test-vit")
    cfg["embed_dim"] = 32
    cfg["preprocess_cfg"] = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    scratch_config("scratch-vit", cfg)
    assert "scratch-vit" in list_models("scratch-*")
    model = create_model("scratch-vit")
    assert model.encode_image(_images(model)).shape == (2, 32)
    assert model.domainclip_info["preprocess_cfg"]["mean"] == [0.5, 0.5, 0.5]
    assert open_clip.create_model("scratch-vit").text_projection.shape[1] == 32
    with pytest.raises(ValueError, match="already registered"):
        scratch_config("scratch-vit", cfg)
    scratch_config("scratch-vit", cfg, overwrite=True)
    with pytest.raises(ValueError, match="missing text_cfg"):
        scratch_config("scratch-bad", {"embed_dim": 8, "vision_cfg": {}})
    with pytest.raises(ValueError, match="'tower' key"):
        scratch_config("scratch-bad2", dict(cfg, domainclip_cfg={"num_frames": 4}))


def test_config_dir_errors_name_the_file(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        registry._scan_config_dir(tmp_path)


# ------------------------------------------------------------ building


@pytest.mark.parametrize("name", TINY)
def test_tiny_configs_forward_and_grad_checkpointing(name):
    model = _seeded(name)
    model.train()
    model.set_grad_checkpointing(True)
    tokens = get_tokenizer(model)(["a photo of a cat", "a dog"])
    images = _images(model)
    dim = model.domainclip_info["model_cfg"]["embed_dim"]
    if isinstance(model, VideoCLIP):
        out = model(video=images[:, None].expand(-1, 3, -1, -1, -1), text=tokens)
    elif isinstance(model, MultiViewCLIP):
        out = model(views=images[:, None].expand(-1, 4, -1, -1, -1), text=tokens)
    else:
        out = model(images, tokens)
    assert out["image_features"].shape == (2, dim) and out["text_features"].shape == (2, dim)
    assert torch.allclose(out["image_features"].norm(dim=-1), torch.ones(2), atol=1e-5)
    assert out["logit_scale"].item() == pytest.approx(1 / 0.07, rel=1e-5)
    loss = open_clip.ClipLoss()(out["image_features"], out["text_features"], out["logit_scale"])
    loss.backward()
    grads = [p.grad for p in unwrap_clip(model).visual.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_tiny_vit_size_for_cpu_recipes():
    model = create_model("dc-tiny-vit")
    params = sum(p.numel() for p in model.parameters())
    assert 2e6 < params < 1.2e7
    assert model.domainclip_info["preprocess_cfg"]["size"] == [64, 64]
    assert model.context_length == 64


def test_domainclip_info_round_trips_and_rebuilds():
    model = _seeded("dc-test-video", domainclip_cfg={"pooling": "attention"})
    info = model.domainclip_info
    assert set(info) >= {"name", "pretrained", "model_cfg", "preprocess_cfg", "domainclip_cfg"}
    assert info["name"] == "dc-test-video" and info["pretrained"] is None
    assert info["domainclip_cfg"] == {"tower": "video", "num_frames": 8, "pooling": "attention"}
    assert set(info["preprocess_cfg"]) >= {"mean", "std", "size", "interpolation", "resize_mode"}
    restored = json.loads(json.dumps(info))
    assert restored == info
    rebuilt = build_model_from_info(restored).eval()
    assert type(rebuilt) is VideoCLIP and rebuilt.pooling == "attention"
    rebuilt.load_state_dict(model.state_dict())
    video = torch.randn(2, 3, 3, 32, 32)
    assert torch.equal(rebuilt.encode_video(video), model.encode_video(video))
    assert rebuilt.domainclip_info == info


def test_overrides_deep_merge():
    model = create_model("dc-test-vit", vision_cfg={"image_size": 48}, preprocess_cfg={"mean": [0.1, 0.2, 0.3]})
    info = model.domainclip_info
    assert info["model_cfg"]["vision_cfg"]["width"] == 64  # untouched keys kept
    assert tuple(model.visual.image_size) == (48, 48)
    assert info["preprocess_cfg"]["size"] == [48, 48] and info["preprocess_cfg"]["mean"] == [0.1, 0.2, 0.3]
    video = create_model("dc-test-vit", domainclip_cfg={"tower": "video", "num_frames": 4})
    assert type(video) is VideoCLIP and video.num_frames == 4
    plain = create_model("dc-test-video", domainclip_cfg=None)
    assert type(plain) is open_clip.CLIP and plain.domainclip_info["domainclip_cfg"] == {}
    bias = create_model("dc-test-vit", init_logit_bias=-10.0)
    assert bias(_images(bias), None)["logit_bias"].item() == pytest.approx(-10.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"embed_dimm": 32}, "Did you mean: embed_dim"),
        ({"domainclip_cfg": {"tower": "vidoe"}}, "Did you mean: video"),
        ({"domainclip_cfg": {"tower": "video", "num_frame": 4}}, "Did you mean: num_frames"),
        ({"domainclip_cfg": {"tower": "video", "pooling": "meen"}}, "Did you mean: mean"),
        ({"precision": "fp8"}, "unknown precision"),
    ],
)
def test_bad_overrides_name_close_matches(kwargs, match):
    with pytest.raises(UnknownNameError, match=match):
        create_model("dc-test-vit", **kwargs)


def test_pretrained_safetensors_file_and_unknown_tag(tmp_path):
    source = _seeded("dc-test-vit", seed=1)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    torch.manual_seed(2)
    loaded = create_model("dc-test-vit", pretrained=str(path)).eval()
    images = _images(source)
    assert torch.equal(loaded.encode_image(images), source.encode_image(images))
    assert loaded.domainclip_info["pretrained"] == str(path)
    with pytest.raises(UnknownNameError, match="pretrained weights for 'ViT-B-32'.*Did you mean: openai"):
        create_model("ViT-B-32", pretrained="opena")
    with pytest.raises(ValueError, match="cannot be combined"):
        create_model(f"local-dir:{tmp_path}", pretrained="openai")


def test_pretrained_weights_into_a_domain_tower(tmp_path):
    """Image-CLIP weights initialise a video model's frame encoder; the temporal layers start fresh."""
    source = _seeded("dc-test-vit", seed=3)
    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    video = create_model("dc-test-vit", pretrained=str(path), domainclip_cfg={"tower": "video", "pooling": "attention"})
    images = _images(source)
    assert torch.equal(video.eval().encode_image(images), source.encode_image(images))


def test_create_model_and_transforms_use_model_preprocessing():
    model, train_tf, val_tf = create_model_and_transforms(
        "dc-test-vit", preprocess_cfg={"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    )
    image = Image.new("RGB", (50, 40), color=(255, 0, 0))
    val = val_tf(image)
    assert val.shape == (3, 32, 32)
    assert torch.allclose(val[0], torch.ones(32, 32)) and torch.allclose(val[1], torch.zeros(32, 32))
    assert train_tf(image).shape == (3, 32, 32)


def test_get_tokenizer_by_name_and_model():
    assert get_tokenizer("dc-test-vit")(["a cat"]).shape == (1, 32)
    model = create_model("dc-test-vit", text_cfg={"context_length": 16})
    tokens = get_tokenizer(model)(["a cat"])
    assert tokens.shape == (1, 16)
    assert model.encode_text(tokens).shape == (1, 64)
    assert get_tokenizer("ViT-B-32")(["a"]).shape == (1, 77)


def test_precision_and_device():
    model = create_model("dc-test-vit", precision="pure_bf16")
    assert next(model.parameters()).dtype == torch.bfloat16
    video = create_model("dc-test-video", precision="bf16", domainclip_cfg={"pooling": "attention"})
    assert video.temporal_pool.query.dtype == torch.bfloat16


# ------------------------------------------------------------ HF text tower


def write_tiny_bert(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT config + WordPiece tokenizer, as a local HF folder."""
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words += "a an the photo of cat dog tissue tumor normal video frame surgery view object".split()
    tokenizer = transformers.BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    tokenizer.save_pretrained(str(folder))
    config = transformers.BertConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    config.save_pretrained(str(folder))
    return folder


@pytest.fixture
def tiny_bert(tmp_path):
    return write_tiny_bert(tmp_path / "tiny-bert")


def test_hf_text_tower_missing_names_the_model(tmp_path):
    missing = str(tmp_path / "no-such-bert")
    with pytest.raises(OSError, match="text tower .*no-such-bert.* could not be loaded"):
        create_model("dc-tiny-hf-text", text_cfg={"hf_model_name": missing, "hf_tokenizer_name": missing})


def test_hf_text_tower_from_local_folder(tiny_bert):
    local = str(tiny_bert)
    assert get_model_config("dc-tiny-hf-text")["text_cfg"]["hf_model_name"] == "google/bert_uncased_L-2_H-128_A-2"
    model = create_model("dc-tiny-hf-text", text_cfg={"hf_model_name": local, "hf_tokenizer_name": local})
    assert type(model) is open_clip.CustomTextCLIP
    tokenizer = get_tokenizer(model)
    assert isinstance(tokenizer, open_clip.tokenizer.HFTokenizer)
    tokens = tokenizer(["a photo of a cat", "tumor tissue"])
    assert tokens.shape == (2, 32) and tokens[0, 0].item() == 2  # [CLS]
    model.set_grad_checkpointing(True)
    out = model(_images(model), tokens)
    assert out["text_features"].shape == (2, 64)
    out["text_features"].sum().backward()
    assert model.text.proj.weight.grad is not None


# ------------------------------------------------------------ video tower


@pytest.mark.parametrize("pooling", ["mean", "attention", "transformer"])
def test_video_poolings_give_clip_embeddings(pooling):
    model = _seeded("dc-test-video", domainclip_cfg={"pooling": pooling, "pool_layers": 2, "pool_heads": 4})
    video = torch.randn(3, 5, 3, 32, 32)
    emb = model.encode_video(video)
    assert emb.shape == (3, 64)
    assert torch.allclose(model.encode_video(video, normalize=True), F.normalize(emb, dim=-1))
    frames = model.encode_frames(video)
    assert frames.shape == (3, 5, 64)
    assert torch.allclose(frames[1, 2], model.encode_image(video[1, 2:3])[0], atol=1e-6)
    if pooling == "mean":
        assert torch.allclose(emb, F.normalize(frames, dim=-1).mean(1), atol=1e-6)  # mean of unit frames
        assert model.tower_state_dict() == {}
    else:
        assert model.tower_state_dict()
        assert model.tower_no_weight_decay()


def test_video_mean_pooling_of_identical_frames_is_the_frame_embedding():
    model = _seeded("dc-test-video")
    frame = torch.randn(2, 3, 32, 32)
    video = frame[:, None].expand(-1, 6, -1, -1, -1)
    assert torch.allclose(model.encode_video(video), model.encode_image(frame, normalize=True), atol=1e-6)


def test_frame_text_similarity_matches_manual_computation():
    model = _seeded("dc-test-video", domainclip_cfg={"pooling": "transformer"})
    video = torch.randn(2, 4, 3, 32, 32)
    tokens = get_tokenizer(model)(["a cat", "a dog", "a surgical tool"])
    sims = model.frame_text_similarity(video, tokens)
    text = F.normalize(model.encode_text(tokens), dim=-1)
    manual = torch.stack(
        [
            torch.stack(
                [F.normalize(model.encode_image(video[b, t : t + 1]), dim=-1)[0] @ text.T for t in range(4)]
            ).mean(0)
            for b in range(2)
        ]
    )
    assert sims.shape == (2, 3)
    assert torch.allclose(sims, manual, atol=1e-5)


def test_video_forward_and_wrapper_passthroughs():
    model = _seeded("dc-test-video", domainclip_cfg={"pooling": "transformer"})
    clip = unwrap_clip(model)
    assert isinstance(model, DomainCLIP) and model.logit_scale is clip.logit_scale
    assert model.visual is clip.visual and model.transformer is clip.transformer
    assert model.context_length == 32
    assert all(k.startswith(("clip.", "temporal_pool.")) for k in model.state_dict())
    tokens = get_tokenizer(model)(["a", "b"])
    video = torch.randn(2, 4, 3, 32, 32)
    out = model(video=video, text=tokens)
    assert torch.allclose(out["image_features"], model.encode_video(video, normalize=True))
    single = model(image=video[:, 0])
    assert torch.allclose(single["image_features"], model.encode_image(video[:, 0], normalize=True))
    assert single["text_features"] is None
    with pytest.raises(ValueError, match="at most 8 frames"):
        model.encode_video(torch.randn(1, 9, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        model.encode_video(torch.randn(2, 3, 32, 32))
    model.set_grad_checkpointing(True)
    assert model.temporal_pool.grad_checkpointing and clip.transformer.grad_checkpointing
    model.lock_image_tower()
    assert not any(p.requires_grad for p in clip.visual.parameters())
    assert all(p.requires_grad for p in model.temporal_pool.parameters())
    model.lock_text_tower()
    assert not clip.token_embedding.weight.requires_grad
    assert "clip.positional_embedding" in model.no_weight_decay()
    assert "temporal_pool.positional_embedding" in model.no_weight_decay()


# ------------------------------------------------------------ multi-view tower


@pytest.mark.parametrize("fusion", ["mean", "attention"])
def test_multiview_fusion_shapes(fusion):
    model = _seeded("dc-test-multiview", domainclip_cfg={"fusion": fusion})
    views = torch.randn(2, 4, 3, 32, 32)
    per_view, fused = model.encode_views(views)
    assert per_view.shape == (2, 4, 64) and fused.shape == (2, 64)
    assert torch.allclose(per_view[0, 3], model.encode_image(views[0, 3:4])[0], atol=1e-6)
    if fusion == "mean":
        assert torch.allclose(fused, F.normalize(per_view, dim=-1).mean(1), atol=1e-6)  # mean of unit views
    per_view_n, fused_n = model.encode_views(views, normalize=True)
    assert torch.allclose(fused_n.norm(dim=-1), torch.ones(2), atol=1e-5)
    out = model(views=views, text=get_tokenizer(model)(["a", "b"]))
    assert torch.allclose(out["image_features"], fused_n, atol=1e-6)
    assert out["text_features"].shape == (2, 64)
    with pytest.raises(ValueError, match="either views or image"):
        model(views=views, image=views[:, 0])
