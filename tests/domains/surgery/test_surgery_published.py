"""CAMMA's SurgVLP / HecVL / PeskaVLP format (``camma_vlp``): a tiny checkpoint in CAMMA's key layout,
converted and checked against a hand-written forward that follows CAMMA's code.

The image tower is a torchvision ResNet-18 (CAMMA's ``resnet_dict`` has ``resnet_18`` beside the
published ``resnet_50``: same key scheme, 8x fewer weights), the text tower a 5-layer, 32-wide BERT
with a 33-word vocabulary (so "the last four hidden layers" leaves the embedding output and the first
layer out). The reference forward mirrors ``ImageEncoder.forward`` and ``BertEncoder.forward`` of
github.com/CAMMA-public/SurgVLP (``surgvlp/codes/models/backbones/``), word-piece merging loop included.
"""

from __future__ import annotations

import io
import json
import math
import zipfile

import pytest
import torch
import torchvision
from torch import nn
from transformers import BertConfig, BertModel, BertTokenizer

import domainclip
from domainclip.core.hub import ModelFileError
from domainclip.core.models import create_model
from domainclip.core.zoo.fetch import fetch_entry
from domainclip.core.zoo.formats import get_format, hf_text_folder
from domainclip.core.zoo.loading import load_converted
from domainclip.core.zoo.registry import register_zoo_entry, unregister_zoo_entry
from domainclip.domains.surgery.published import CAMMA_ARCH, camma_keys, convert_camma_vlp, convert_state_dict
from tests.zoo_helpers import local_zoo_entry

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "in",
    "preparation",
    "phase",
    "i",
    "insert",
    "trocar",
    "##s",
    "to",
    "the",
    "gall",
    "##bla",
    "##dder",
    "clip",
    "##per",
    "cut",
    "hook",
    "dissect",
    "grasp",
    "##er",
    "hold",
    "and",
    "use",
    "calot",
    "triangle",
    "coagulation",
    "cleaning",
    ".",
    "it",
]
TEXTS = [
    "In preparation phase I insert trocars",
    "I use the grasper to hold the gallbladder and the clipper to cut it.",
    "Calot triangle xylophone hook",  # an unknown word: [UNK]
    " ".join(["gallbladder"] * 40),  # 121 word pieces: truncated to 77 tokens, [SEP] last
]
WIDTH = 32
CONTEXT = 77
BASE = {"name": "camma-tiny", "domain": "surgery", "format": "camma_vlp", "arch": CAMMA_ARCH}


# --------------------------------------------------------------------------- CAMMA's model, rewritten
class CammaImageEncoder(nn.Module):
    """CAMMA's ``img_backbones/ImageEncoder`` (``img_norm=False``) on a torchvision ResNet."""

    def __init__(self, width: int):
        super().__init__()
        self.model = torchvision.models.resnet18(weights=None)
        features = self.model.fc.in_features
        self.model.fc = nn.Identity()
        self.global_embedder = nn.Linear(features, width)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
        return self.global_embedder(self.pool(x).view(x.shape[0], -1))


class CammaTextEncoder(nn.Module):
    """CAMMA's ``text_backbones/BertEncoder``: last 4 layers, word pieces merged, mean over words, layers summed."""

    def __init__(self, config: BertConfig, vocab: list[str], last_n_layers: int = 4):
        super().__init__()
        self.model = BertModel(config)  # AutoModel keeps BERT's pooler, which CAMMA never uses
        self.idx_to_word = dict(enumerate(vocab))
        self.last_n_layers = last_n_layers

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, token_type: torch.Tensor) -> torch.Tensor:
        hidden = self.model(ids, mask, token_type, output_hidden_states=True).hidden_states
        layers = torch.stack(hidden[-self.last_n_layers :]).permute(1, 2, 0, 3)  # (B, L, N, D)
        merged = []
        for sentence, token_ids in zip(layers, ids, strict=True):
            words, pieces = [], []
            for vector, token in zip(sentence, token_ids, strict=True):
                word = self.idx_to_word[int(token)]
                if word == "[SEP]":
                    words += [torch.stack(pieces).sum(0), vector]
                    break
                if word.startswith("##"):
                    pieces.append(vector)
                else:
                    if pieces:
                        words.append(torch.stack(pieces).sum(0))
                    pieces = [vector]
            padding = torch.zeros(layers.shape[1] - len(words), *layers.shape[2:])
            merged.append(torch.cat([torch.stack(words), padding]))
        return torch.stack(merged).mean(dim=1).sum(dim=1)  # mean over the padded words, sum over layers


class Camma(nn.Module):
    """``SurgVLP`` / ``HecVL`` / ``PeskaVLP``: the attribute names that make the checkpoint's keys."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.backbone_img = CammaImageEncoder(WIDTH)
        self.backbone_text = CammaTextEncoder(config, VOCAB)


def _randomise(model: nn.Module) -> None:
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):  # eval-mode batch norm that is not the identity
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.1)


def _pt_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def camma(tmp_path_factory):
    """The reference model, its checkpoint bytes and the text tower's files."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=WIDTH,
        num_hidden_layers=5,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=CONTEXT + 3,
    )
    model = Camma(config)
    _randomise(model)
    model.eval()
    text_dir = tmp_path_factory.mktemp("bio_clinicalbert")
    config.save_pretrained(text_dir)  # no tokenizer_config.json, as on the hub
    # Bio_ClinicalBERT's config.json predates transformers' model_type key: keep that, the converter must cope
    saved = json.loads((text_dir / "config.json").read_text())
    del saved["model_type"]
    (text_dir / "config.json").write_text(json.dumps(saved))
    (text_dir / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    state = dict(model.state_dict())
    # transformers < 4.31 saved BERT's position_ids buffer (CAMMA pins 4.30.2)
    state["backbone_text.model.embeddings.position_ids"] = torch.arange(config.max_position_embeddings)[None]
    text_files = {
        "config.json": (text_dir / "config.json").read_bytes(),
        "vocab.txt": (text_dir / "vocab.txt").read_bytes(),
    }
    return {"model": model, "config": config, "state": state, "text_files": text_files, "text_dir": text_dir}


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINCLIP_ZOO_CACHE", str(tmp_path / "zoo-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DOMAINCLIP_ZOO_DIR", str(tmp_path / "zoo"))
    return tmp_path / "zoo"


def _entry(zoo, camma, state=None, name="camma-tiny"):
    files = {
        "weights": {"SurgVLP.pth": _pt_bytes(camma["state"] if state is None else state)},
        "text": camma["text_files"],
    }
    return local_zoo_entry(BASE, zoo, files, name=name)


def _reference(camma, images):
    # surgvlp.tokenize's AutoTokenizer (transformers 4.30 resolved this model_type-less folder by name to BERT)
    tokenizer = BertTokenizer.from_pretrained(str(camma["text_dir"]))
    tokens = tokenizer(TEXTS, padding="max_length", max_length=CONTEXT, truncation=True, return_tensors="pt")
    with torch.no_grad():
        image = camma["model"].backbone_img(images)
        text = camma["model"].backbone_text(tokens["input_ids"], tokens["attention_mask"], tokens["token_type_ids"])
    return tokens["input_ids"], image, text


def _check(model, tokenizer, camma):
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ids, image_ref, text_ref = _reference(camma, images)
    tokens = tokenizer(TEXTS)
    assert torch.equal(tokens, ids)
    assert int((ids[3] == VOCAB.index("[SEP]")).nonzero()) == CONTEXT - 1  # truncated, [SEP] kept last
    assert VOCAB.index("[UNK]") in ids[2].tolist()
    with torch.no_grad():
        image, text = model.encode_image(images), model.encode_text(tokens)
    torch.testing.assert_close(image, image_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(text, text_ref, rtol=1e-4, atol=1e-5)
    assert text.shape == (len(TEXTS), WIDTH) and text.abs().max() > 0.01
    assert math.isclose(float(model.logit_scale.detach().exp()), 100.0, rel_tol=1e-6)


# --------------------------------------------------------------------------- tests
def test_converter_reproduces_camma_forward(zoo, camma):
    entry = _entry(zoo, camma)
    assert get_format("camma_vlp") is convert_camma_vlp  # the surgery spec's lazy declaration
    converted = convert_camma_vlp(entry, fetch_entry(entry, zoo_dir=zoo))
    assert converted.arch == CAMMA_ARCH
    assert converted.overrides["vision_cfg"] == {"timm_model_name": "resnet18"}  # read from the keys
    assert converted.overrides["embed_dim"] == WIDTH
    assert not any(k.startswith("text.transformer.pooler.") for k in converted.clip_state_dict)
    model = create_model(converted.arch, **converted.overrides)
    load_converted(model, converted, what="camma-tiny")
    model.eval()
    assert model.domainclip_info["model_cfg"]["text_cfg"]["hf_pooler_type"] == "last_layers_sum_pooler"
    _check(model, domainclip.get_tokenizer(model), camma)


def test_zoo_path_loads_camma_checkpoint(zoo, camma):
    entry = _entry(zoo, camma, name="camma-tiny-zoo")
    register_zoo_entry(entry)
    try:
        model, preprocess, tokenizer = domainclip.load_model("zoo:camma-tiny-zoo")
    finally:
        unregister_zoo_entry("camma-tiny-zoo")
    assert model.domainclip_info["pretrained"] == "zoo:camma-tiny-zoo"
    assert not model.training
    _check(model, tokenizer, camma)
    from PIL import Image

    pixels = preprocess(Image.new("RGB", (854, 480), (200, 40, 30)))  # a Cholec80-sized frame
    assert pixels.shape == (3, 224, 224)  # ImageNet normalisation: red 200/255 -> (0.784 - 0.485) / 0.229
    assert math.isclose(float(pixels[0, 112, 112]), (200 / 255 - 0.485) / 0.229, abs_tol=1e-2)


def test_wrong_keys_are_listed(zoo, camma):
    state = dict(camma["state"])
    state["backbone_img.embedder.weight"] = state.pop("backbone_img.global_embedder.weight")
    state["backbone_text.model.extra.weight"] = torch.zeros(1)
    entry = _entry(zoo, camma, state=state, name="camma-wrong")
    with pytest.raises(ModelFileError) as err:
        convert_camma_vlp(entry, fetch_entry(entry, zoo_dir=zoo))
    message = str(err.value)
    assert "\n" not in message and "camma-wrong" in message
    assert "2 unexpected key(s): backbone_img.embedder.weight, backbone_text.model.extra.weight" in message
    assert "1 missing key(s): backbone_img.global_embedder.weight" in message


def test_an_open_clip_state_dict_is_not_camma(zoo, camma):
    torch.manual_seed(0)
    entry = _entry(zoo, camma, state=create_model("dc-test-vit").state_dict(), name="camma-openclip")
    with pytest.raises(ModelFileError, match=r"unexpected key\(s\): .*missing key\(s\): backbone_img\."):
        convert_camma_vlp(entry, fetch_entry(entry, zoo_dir=zoo))


def test_published_resnet50_layout_maps_onto_the_architecture(camma):
    """The published checkpoints' key set (ResNet-50) renames exactly onto ``surgvlp-rn50-clinicalbert``."""
    text = str(hf_text_folder(camma["text_dir"], "bert"))
    model = create_model(CAMMA_ARCH, embed_dim=WIDTH, text_cfg={"hf_model_name": text, "hf_tokenizer_name": text})
    native = camma_keys("resnet_50", camma["config"].to_dict())
    assert "backbone_img.model.layer3.5.conv3.weight" in native and "backbone_text.model.pooler.dense.weight" in native
    renamed = convert_state_dict(dict.fromkeys(native, torch.zeros(())))
    assert set(renamed) == set(model.state_dict())
    assert model.visual.trunk.num_features == 2048 and model.visual.head.proj.bias is not None
    assert model.visual.preprocess_cfg["mean"] == [0.485, 0.456, 0.406]


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def test_camma_zip_download_is_read(zoo, camma):
    """CAMMA's links serve ``<Model>.zip`` holding ``<Model>.pth``: the converter reads the member."""
    plain = _entry(zoo, camma, name="camma-plain")
    expected = convert_camma_vlp(plain, fetch_entry(plain, zoo_dir=zoo)).clip_state_dict
    archive = _zip_bytes({"PeskaVLP.pth": _pt_bytes(camma["state"])})
    entry = local_zoo_entry(
        BASE, zoo, {"weights": {"PeskaVLP.zip": archive}, "text": camma["text_files"]}, name="camma-zip"
    )
    got = convert_camma_vlp(entry, fetch_entry(entry, zoo_dir=zoo)).clip_state_dict
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)

    empty = local_zoo_entry(
        BASE,
        zoo,
        {"weights": {"HecVL.zip": _zip_bytes({"README.txt": b"x"})}, "text": camma["text_files"]},
        name="camma-empty-zip",
    )
    with pytest.raises(ModelFileError, match=r"exactly one \.pth file, it holds README\.txt"):
        convert_camma_vlp(empty, fetch_entry(empty, zoo_dir=zoo))
