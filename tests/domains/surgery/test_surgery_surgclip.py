"""SurgLaVi's SurgCLIP-beta format (``surgclip``): a tiny checkpoint in SurgCLIP's key layout, converted
and checked against a hand-written forward that follows the authors' ``surgclip`` 0.1.0 package.

The reference model below has the attribute names of ``surgclip.model.SurgCLIP`` (so its state dict is
the real layout) and computes as ``surgclip/models/timesformer/timesformer.py`` does, on the flat
token sequence and with the same index shuffles (their ``einops.rearrange`` patterns written as
reshapes), so it checks :mod:`domainclip.core.models.spacetime`'s structured rewrite independently.
Tiny sizes: 32 px frames of 8 px patches (a 4 x 4 grid), width 32, 2 blocks of 4 heads, a 4-frame time
embedding, a 2-layer 32-wide BERT with a 24-word vocabulary, a 16-wide joint space.
"""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import transforms
from torchvision.transforms.functional import InterpolationMode
from transformers import AutoTokenizer, BertConfig, BertModel

import domainclip
from domainclip.core.hub import ModelFileError
from domainclip.core.mappings import deep_merge
from domainclip.core.models import create_model
from domainclip.core.models.registry import build_model, get_model_config, split_model_config
from domainclip.core.zoo.fetch import fetch_entry
from domainclip.core.zoo.formats import get_format
from domainclip.core.zoo.loading import load_converted
from domainclip.core.zoo.registry import register_zoo_entry, unregister_zoo_entry
from domainclip.domains.surgery.published_surgclip import (
    SURGCLIP_ARCH,
    convert_surgclip,
    convert_surgclip_state_dict,
    surgclip_keys,
)
from tests.zoo_helpers import local_zoo_entry

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "surgeon", "clip", "##s", "cystic", "duct", "and",
    "artery", "hook", "dissect", "##ion", "of", "gall", "##bladder", "from", "liver", "bag", "trocar", ".",
]
TEXTS = [
    "The surgeon clips the cystic duct and artery.",
    "Hook dissection of the gallbladder from the liver",
    "trocar xylophone bag",  # an unknown word: [UNK]
    " ".join(["gallbladder"] * 40),  # 120 word pieces: truncated to 77 tokens
]
SIZE, PATCH, WIDTH, HEADS, LAYERS, FRAMES, EMBED, CONTEXT = 32, 8, 32, 4, 2, 4, 16, 77
TEMP = 0.05
BASE = {
    "name": "surgclip-tiny", "domain": "surgery", "format": "surgclip", "arch": SURGCLIP_ARCH,
    "overrides": {"vision_cfg": {"head_width": WIDTH // HEADS}},  # heads are in no tensor shape
}


# --------------------------------------------------------------------------- SurgCLIP's model, rewritten
class Attention(nn.Module):
    """TimeSformer's ``Attention`` (qkv with bias, softmax of scaled dot products, output projection)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _nt_to_tn(x: torch.Tensor, b: int, t: int) -> torch.Tensor:
    """``'b (n t) m -> (b t) n m'``."""
    return x.reshape(b, -1, t, x.shape[-1]).permute(0, 2, 1, 3).reshape(b * t, -1, x.shape[-1])


def _tn_to_nt(x: torch.Tensor, b: int, t: int) -> torch.Tensor:
    """``'(b t) n m -> b (n t) m'``."""
    return x.reshape(b, t, -1, x.shape[-1]).permute(0, 2, 1, 3).reshape(b, -1, x.shape[-1])


class Block(nn.Module):
    """SurgCLIP's divided space-time ``Block.forward``, flat sequence in (token, frame) order."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        ln = lambda: nn.LayerNorm(dim, eps=1e-6)  # noqa: E731
        self.norm1, self.attn = ln(), Attention(dim, heads)
        self.temporal_norm1, self.temporal_attn, self.temporal_fc = ln(), Attention(dim, heads), nn.Linear(dim, dim)
        self.norm2, self.mlp = ln(), Mlp(dim)

    def forward(self, x: torch.Tensor, b: int, t: int, w: int) -> torch.Tensor:
        m = x.shape[-1]
        h = ((x.shape[1] - 1) // t) // w
        xt = _nt_to_tn(x, b, t)[:, 1:]  # frames' tokens without their class token
        cls_token = xt[:, :1]  # (sic) the first patch token
        xt = _tn_to_nt(xt, b, t).reshape(b * h * w, t, m)  # 'b (h w t) m -> (b h w) t m'
        res = self.temporal_fc(self.temporal_attn(self.temporal_norm1(xt)).reshape(b, h * w * t, m))
        xt = x[:, t:] + res
        xs = torch.cat([cls_token, _nt_to_tn(xt, b, t)], dim=1)  # 'b (h w t) m -> (b t) (h w) m'
        res = self.attn(self.norm1(xs))
        cls_token = res[:, 0].reshape(b, t, m)
        res = _tn_to_nt(res[:, 1:], b, t)
        x = torch.cat([cls_token, xt], dim=1) + torch.cat([cls_token, res], dim=1)
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """SurgCLIP's ``VisionTransformer`` (divided space-time, ``num_classes=0``)."""

    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, WIDTH, PATCH, PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos_embed = nn.Parameter(torch.zeros(1, (SIZE // PATCH) ** 2 + 1, WIDTH))
        self.time_embed = nn.Parameter(torch.zeros(1, FRAMES, WIDTH))
        self.blocks = nn.ModuleList(Block(WIDTH, HEADS) for _ in range(LAYERS))
        self.norm = nn.LayerNorm(WIDTH, eps=1e-6)
        self.pool_norm = nn.LayerNorm(WIDTH, eps=1e-6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, t = x.shape[:3]
        x = self.patch_embed.proj(x.transpose(1, 2).flatten(0, 1))  # 'b c t h w -> (b t) c h w'
        w = x.shape[-1]
        x = torch.cat([self.cls_token.expand(b * t, -1, -1), x.flatten(2).transpose(1, 2)], dim=1) + self.pos_embed
        if t > 1:
            cls_tokens, x = x[:, :1], x[:, 1:]
            n, m = x.shape[1:]
            x = x.reshape(b, t, n, m).transpose(1, 2).reshape(b * n, t, m)  # '(b t) n m -> (b n) t m'
            time = self.time_embed
            if t != time.shape[1]:
                time = F.interpolate(time.transpose(1, 2), size=t, mode="nearest").transpose(1, 2)
            x = (x + time).reshape(b, n, t, m).transpose(1, 2).reshape(b * t, n, m)
            x = _tn_to_nt(torch.cat([cls_tokens, x], dim=1), b, t)
        for block in self.blocks:
            x = block(x, b, t, w)
        x = self.norm(x).reshape(b, t, -1, x.shape[-1])  # (sic) 'b (t n) m -> b t n m'
        return x, self.pool_norm(x[:, :, 1:].mean(dim=2))


class SurgCLIP(nn.Module):
    """``surgclip.model.SurgCLIP``: the attribute names that make the checkpoint's keys."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.vision_encoder = nn.Module()
        self.vision_encoder.model = VisionTransformer()
        self.vision_layernorm = nn.LayerNorm(WIDTH, eps=1e-12)
        self.text_encoder = BertModel(config, add_pooling_layer=False)
        self.vision_proj = nn.Linear(WIDTH, EMBED)
        self.text_proj = nn.Linear(config.hidden_size, EMBED)
        self.temp = nn.Parameter(torch.tensor(TEMP))

    def encode_vision(self, video: torch.Tensor) -> torch.Tensor:
        return self.vision_proj(self.vision_encoder.model(video.transpose(1, 2))[1])  # (B, T, D)

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.text_proj(self.text_encoder(ids, attention_mask=mask).last_hidden_state[:, 0])

    def forward(self, video: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        vision = F.normalize(self.encode_vision(video), dim=-1)
        text = F.normalize(self.encode_text(ids, mask), dim=-1)
        return torch.einsum("mld,nd->mln", vision, text).mean(1) / self.temp


def _preprocess(image_res: int) -> transforms.Compose:
    """``surgclip.transforms.get_preprocess``."""
    return transforms.Compose([
        transforms.Resize((image_res, image_res), interpolation=InterpolationMode.BICUBIC, antialias=True),
        transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])


def _pt_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def surgclip(tmp_path_factory):
    """The reference model, its checkpoint and the text tower's files."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=CONTEXT + 3)
    model = SurgCLIP(config)
    with torch.no_grad():  # nothing left at zero or one: every term of the forward counts
        for name, param in model.named_parameters():
            if name != "temp":
                param.normal_(0, 0.3 if param.ndim > 1 else 0.1).add_(1.0 if name.endswith("norm.weight") else 0.0)
    model.eval()
    text_dir = tmp_path_factory.mktemp("bert_base_uncased")
    config.save_pretrained(text_dir)
    (text_dir / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    state = dict(model.state_dict())
    state["text_encoder.embeddings.position_ids"] = torch.arange(config.max_position_embeddings)[None]  # old BERTs
    text_files = {name: (text_dir / name).read_bytes() for name in ("config.json", "vocab.txt")}
    return {"model": model, "config": config, "state": state, "text_files": text_files, "text_dir": text_dir}


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINCLIP_ZOO_CACHE", str(tmp_path / "zoo-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DOMAINCLIP_ZOO_DIR", str(tmp_path / "zoo"))
    return tmp_path / "zoo"


def _entry(zoo, surgclip, state=None, name="surgclip-tiny"):
    files = {
        "weights": {"surgclip_beta.pth": _pt_bytes(surgclip["state"] if state is None else state)},
        "text": surgclip["text_files"],
    }
    return local_zoo_entry(BASE, zoo, files, name=name)


def _check(model, tokenizer, surgclip):
    reference = surgclip["model"]
    ref_tokens = AutoTokenizer.from_pretrained(str(surgclip["text_dir"]))(  # surgclip.tokenize
        TEXTS, padding="max_length", truncation=True, max_length=CONTEXT, return_tensors="pt"
    )
    tokens = tokenizer(TEXTS)
    assert torch.equal(tokens, ref_tokens["input_ids"])
    assert VOCAB.index("[UNK]") in tokens[2].tolist() and int(tokens[3, -1]) == VOCAB.index("[SEP]")
    generator = torch.Generator().manual_seed(1)
    video = torch.randn(2, FRAMES, 3, SIZE, SIZE, generator=generator)
    with torch.no_grad():
        text_ref = reference.encode_text(ref_tokens["input_ids"], ref_tokens["attention_mask"])
        torch.testing.assert_close(model.encode_text(tokens), text_ref, rtol=1e-4, atol=1e-5)
        for clip in (video, video[:, :3]):  # the time embedding's own length, and a resized one
            groups = reference.encode_vision(clip)
            torch.testing.assert_close(model.visual.encode_groups(clip), groups, rtol=1e-4, atol=1e-5)
            logits = reference(clip, ref_tokens["input_ids"], ref_tokens["attention_mask"])
            ours = model.encode_video(clip) @ model.encode_text(tokens, normalize=True).T * model.logit_scale.exp()
            torch.testing.assert_close(ours, logits, rtol=1e-4, atol=1e-4)
        frames = video[:, 0]  # a single frame is a one-frame clip
        torch.testing.assert_close(model.encode_image(frames), reference.encode_vision(frames[:, None])[:, 0],
                                   rtol=1e-4, atol=1e-5)
        assert (model.encode_video(video) - model.encode_video(video.flip(1))).abs().max() > 1e-3
    assert math.isclose(float(model.logit_scale.detach().exp()), 1 / TEMP, rel_tol=1e-5)


# --------------------------------------------------------------------------- tests
def test_converter_reproduces_surgclip_forward(zoo, surgclip):
    entry = _entry(zoo, surgclip)
    assert get_format("surgclip") is convert_surgclip  # the surgery spec's lazy declaration
    converted = convert_surgclip(entry, fetch_entry(entry, zoo_dir=zoo))
    assert converted.arch == SURGCLIP_ARCH
    assert converted.overrides["vision_cfg"] == {
        "image_size": SIZE, "patch_size": PATCH, "width": WIDTH, "layers": LAYERS, "mlp_ratio": 4.0,
    }
    assert converted.overrides["embed_dim"] == EMBED
    assert converted.overrides["domainclip_cfg"] == {"num_frames": FRAMES}
    assert not any(k.startswith("vision_layernorm") for k in converted.clip_state_dict)
    model = create_model(converted.arch, **deep_merge(dict(entry.overrides), converted.overrides))
    load_converted(model, converted, what="surgclip-tiny")
    model.eval()
    assert model.visual.variant == "surgclip" and model.num_frames == FRAMES
    assert model.visual.blocks[0].attn.num_heads == HEADS
    _check(model, domainclip.get_tokenizer(model), surgclip)


def test_zoo_path_loads_surgclip_checkpoint(zoo, surgclip):
    entry = _entry(zoo, surgclip, name="surgclip-tiny-zoo")
    register_zoo_entry(entry)
    try:
        model, preprocess, tokenizer = domainclip.load_model("zoo:surgclip-tiny-zoo")
    finally:
        unregister_zoo_entry("surgclip-tiny-zoo")
    assert model.domainclip_info["pretrained"] == "zoo:surgclip-tiny-zoo"
    assert not model.training
    _check(model, tokenizer, surgclip)
    frame = Image.fromarray(torch.randint(0, 256, (48, 85, 3), dtype=torch.uint8).numpy())  # a 16:9 frame
    pixels = preprocess(frame)
    assert pixels.shape == (3, SIZE, SIZE)  # squashed, not cropped
    torch.testing.assert_close(pixels, _preprocess(SIZE)(frame), rtol=0, atol=1e-5)


def test_wrong_keys_are_listed(zoo, surgclip):
    state = dict(surgclip["state"])
    state["vision_encoder.model.head.weight"] = torch.zeros(1)
    state["video_proj.weight"] = state.pop("vision_proj.weight")
    entry = _entry(zoo, surgclip, state=state, name="surgclip-wrong")
    with pytest.raises(ModelFileError) as err:
        convert_surgclip(entry, fetch_entry(entry, zoo_dir=zoo))
    message = str(err.value)
    assert "\n" not in message and "surgclip-wrong" in message
    assert "2 unexpected key(s): video_proj.weight, vision_encoder.model.head.weight" in message
    assert "1 missing key(s): vision_proj.weight" in message


def test_a_vindlu_training_checkpoint_is_not_surgclip(zoo, surgclip):
    """VindLU keeps BERT inside a masked-LM head (``text_encoder.bert.*``), which ``surgclip.load`` would not load."""
    state = {(k.replace("text_encoder.", "text_encoder.bert.", 1) if k.startswith("text_encoder.") else k): v
             for k, v in surgclip["state"].items()}
    entry = _entry(zoo, surgclip, state=state, name="surgclip-vindlu")
    with pytest.raises(ModelFileError, match=r"unexpected key\(s\): text_encoder\.bert\..*missing key\(s\): text_enc"):
        convert_surgclip(entry, fetch_entry(entry, zoo_dir=zoo))


def test_published_layout_maps_onto_the_architecture(surgclip):
    """SurgCLIP-beta's full key set (ViT-B/16 TimeSformer, 12 blocks) renames exactly onto ``surgclip-beta``."""
    text = str(surgclip["text_dir"])
    model_cfg, preprocess_cfg, tower_cfg = split_model_config(get_model_config(SURGCLIP_ARCH))
    model_cfg = deep_merge(model_cfg, {"text_cfg": {"hf_model_name": text, "hf_tokenizer_name": text}})
    with torch.device("meta"):  # the layout only: a ViT-B/16 built on no memory
        model = build_model(model_cfg, preprocess_cfg, tower_cfg)
    native = surgclip_keys(12, surgclip["config"].to_dict())
    assert "vision_encoder.model.blocks.11.temporal_fc.weight" in native and "temp" in native
    renamed = convert_surgclip_state_dict({k: torch.ones(()) for k in native})
    assert set(renamed) == set(model.clip.state_dict()) and model.tower_state_dict() == {}
    visual = model.visual
    assert visual.pos_embed.shape == (1, 197, 768) and visual.time_embed.shape == (1, 16, 768)
    assert visual.proj.out_features == 256 and model.text.proj.bias is not None
    assert visual.blocks[0].attn.num_heads == 12 and visual.norm.eps == 1e-6
    assert visual.preprocess_cfg["mean"] == [0.5, 0.5, 0.5] and visual.preprocess_cfg["resize_mode"] == "squash"
    assert visual.preprocess_cfg["size"] == [224, 224]
