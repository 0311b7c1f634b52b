"""Multilingual towers and the published checkpoints' layouts: RS-M-CLIP's hub folder, RemoteCLIP's ``.pt`` files.

Everything offline: a tiny XLM-R and tiny ViT in ``xlm-roberta-base-ViT-B-32``'s layout, a Hugging
Face cache the tests write (``joaodaniel/RS-M-CLIP`` and the text tower's config by its hub id), and
``.pt`` state dicts saved with ``torch.save`` as RemoteCLIP's are.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import open_clip
import pytest
import torch

from domainclip.core.errors import InputError
from domainclip.core.hub import ModelFileError, cached_hf_config
from domainclip.core.models import create_model, get_model_config, get_tokenizer, register_model_config, unwrap_clip
from domainclip.core.models.loading import load_model

_spec = importlib.util.spec_from_file_location("rs_data_models", Path(__file__).with_name("data_models.py"))
data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data)

REV_MODEL, REV_TEXT = "1" * 40, "2" * 40
ARCH = "rs-test-xlmr-vit"


def _embed(model: torch.nn.Module, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.eval().encode_image(images), model.encode_text(tokenizer(data.TEXTS))


def _assert_equal(a, b) -> None:
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y), (x - y).abs().max()


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An HF cache holding the tiny XLM-R as ``org/tiny-xlmr`` (config and tokenizer, by hub id)."""
    cache = tmp_path / "hf-cache"
    data.add_hf_snapshot(cache, "org/tiny-xlmr", REV_TEXT, data.write_tiny_xlmr(tmp_path / "xlmr"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    register_model_config(ARCH, data.tiny_multilingual_config("org/tiny-xlmr"), overwrite=True)
    return cache


def test_xlm_roberta_vit_b32_builds_through_the_registry(tmp_path):
    """open_clip's multilingual architecture: an XLM-R text tower (mean pooling, MLP projection), a ViT."""
    cfg = get_model_config("xlm-roberta-base-ViT-B-32")
    assert cfg["text_cfg"] == {"hf_model_name": "xlm-roberta-base", "hf_tokenizer_name": "xlm-roberta-base",
                               "hf_pooler_type": "mean_pooler"}
    xlmr = str(data.write_tiny_xlmr(tmp_path / "xlmr"))
    torch.manual_seed(0)
    model = create_model(
        "xlm-roberta-base-ViT-B-32",
        text_cfg={"hf_model_name": xlmr, "hf_tokenizer_name": xlmr, "context_length": 16},
        vision_cfg={"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    )
    assert isinstance(model, open_clip.CustomTextCLIP)
    assert type(model.text.transformer).__name__ == "XLMRobertaModel"
    assert type(model.text.pooler).__name__ == "MeanPooler"
    keys = set(model.state_dict())
    assert {"text.transformer.embeddings.word_embeddings.weight", "text.proj.0.weight", "text.proj.2.weight",
            "visual.conv1.weight", "visual.proj", "logit_scale"} <= keys
    assert not any("pooler.dense" in k for k in keys)  # mean pooling: no transformers pooler layer
    tokens = get_tokenizer(model)(["muitos avioes perto do aeroporto", "many planes"])
    assert tokens.shape == (2, 16) and tokens[0, 0] == 0 and tokens[0, -1] == 1  # <s> ... <pad>
    assert model.eval().encode_text(tokens).shape == (2, 512)


def test_text_tower_config_comes_from_the_hub_cache_by_its_id(hf_cache, tmp_path):
    """A text tower named by hub id (``xlm-roberta-base`` in RS-M-CLIP) is read from domainclip's HF cache."""
    assert cached_hf_config("org/tiny-xlmr") == hf_cache / "models--org--tiny-xlmr" / "snapshots" / REV_TEXT
    assert cached_hf_config("org/not-cached") is None
    assert cached_hf_config(str(tmp_path / "xlmr")) is None  # a local folder is used as it is
    model = create_model(ARCH)
    assert model.domainclip_info["model_cfg"]["text_cfg"]["hf_model_name"] == "org/tiny-xlmr"  # the id is kept
    assert model.text.config.vocab_size == len(data.SPECIALS) + len(data.WORDS) + 27
    elsewhere = tmp_path / "elsewhere"
    hf_cache.rename(elsewhere)
    assert create_model(ARCH, cache_dir=str(elsewhere)).text.config.hidden_size == 32


def test_rs_m_clip_folder_and_remoteclip_pt_load_the_same_weights(hf_cache, tmp_path):
    """The same weights as an RS-M-CLIP hub folder (hf-hub: and local) and as a RemoteCLIP .pt: same outputs."""
    torch.manual_seed(3)
    source = create_model(ARCH)
    tokenizer = get_tokenizer(source)
    expected = _embed(source, tokenizer)
    folder = data.write_rs_m_clip_folder(source, tmp_path / "RS-M-CLIP", tmp_path / "xlmr")
    assert not (folder / "text_config").exists()
    data.add_hf_snapshot(hf_cache, "joaodaniel/RS-M-CLIP", REV_MODEL, folder)

    from_hub = create_model("hf-hub:joaodaniel/RS-M-CLIP")
    assert from_hub.domainclip_info["pretrained"] == f"hf-hub:joaodaniel/RS-M-CLIP@{REV_MODEL}"
    _assert_equal(_embed(from_hub, get_tokenizer(from_hub)), expected)
    model, _, hub_tokenizer = load_model("hf-hub:joaodaniel/RS-M-CLIP")  # what `domainclip eval --model` does
    _assert_equal(_embed(model, hub_tokenizer), expected)
    assert model.domainclip_source["revision"] == REV_MODEL
    _assert_equal(_embed(create_model(f"local-dir:{folder}"), tokenizer), expected)
    torch.manual_seed(99)  # the weights, not the seed, make the model
    _assert_equal(_embed(create_model(ARCH, pretrained=str(folder)), tokenizer), expected)

    pt = data.write_remoteclip_checkpoint(source, tmp_path / "RemoteCLIP-tiny.pt")
    assert set(torch.load(pt, weights_only=True)) == set(source.state_dict())  # keys as open_clip names them
    torch.manual_seed(100)
    from_pt = create_model(ARCH, pretrained=str(pt))
    assert from_pt.domainclip_info["pretrained"] == str(pt)
    _assert_equal(_embed(from_pt, tokenizer), expected)


@pytest.mark.parametrize("layout", ["state_dict", "training_checkpoint"])
def test_remoteclip_style_pt_of_a_plain_clip(tmp_path, layout):
    """RemoteCLIP's own layout (open_clip's text transformer); an open_clip training checkpoint loads too."""
    torch.manual_seed(1)
    source = create_model("dc-test-vit")
    state = source.state_dict()
    if layout == "training_checkpoint":
        state = {"epoch": 3, "name": "run", "state_dict": {f"module.{k}": v for k, v in state.items()}}
    torch.save(state, tmp_path / "w.pt")
    loaded = create_model("dc-test-vit", pretrained=str(tmp_path / "w.pt"))
    tokenizer = get_tokenizer(source)
    _assert_equal(_embed(loaded, tokenizer), _embed(source, tokenizer))


class _Payload:
    """A pickled object whose unpickling would write a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def test_pt_holding_a_pickled_object_is_refused_in_one_line(tmp_path):
    marker = tmp_path / "unpickled.txt"
    torch.manual_seed(1)
    state = dict(create_model("dc-test-vit").state_dict())
    torch.save({**state, "hook": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ModelFileError) as caught:
        create_model("dc-test-vit", pretrained=str(tmp_path / "evil.pt"))
    message = str(caught.value)
    assert isinstance(caught.value, InputError) and "\n" not in message
    assert message.startswith(f"{tmp_path / 'evil.pt'} holds a pickled Python object (getattr)")
    assert "weights_only=True" in message
    assert not marker.exists()  # nothing was unpickled
    with pytest.raises(pickle.UnpicklingError):  # plain torch refuses it the same way (for the record)
        torch.load(tmp_path / "evil.pt", weights_only=True)

    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    with pytest.raises(ModelFileError, match=r"module\.pt holds a pickled Python object \(torch\.nn\.modules"):
        create_model("dc-test-vit", pretrained=str(tmp_path / "module.pt"))
    (tmp_path / "junk.pt").write_bytes(b"this is no checkpoint")
    with pytest.raises(ModelFileError, match=r"junk\.pt cannot be read as a weights file: IndexError"):
        create_model("dc-test-vit", pretrained=str(tmp_path / "junk.pt"))


def test_train_with_a_pickled_pt_is_one_error_line_and_exit_2(tmp_path, capsys, monkeypatch):
    from domainclip.cli import main

    marker = tmp_path / "unpickled.txt"
    torch.save({"hook": _Payload(marker)}, tmp_path / "RemoteCLIP-ViT-B-32.pt")
    data.write_multilingual_shards(tmp_path / "data" / "train", 8)
    recipe = {
        "domain": "remote_sensing",
        "model": {"name": "dc-test-vit", "pretrained": str(tmp_path / "RemoteCLIP-ViT-B-32.pt")},
        "data": {"root": str(tmp_path / "data"), "train": [{"urls": "train/*.tar"}], "batch_size": 4,
                 "num_workers": 0},
        "train": {"steps": 1, "precision": "fp32", "device": "cpu", "progress": False},
    }
    (tmp_path / "r.yaml").write_text(json.dumps(recipe))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = main(["train", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2, err[-2000:]
    assert "Traceback" not in err and err.splitlines()[-1].startswith("domainclip train: error: ")
    assert "RemoteCLIP-ViT-B-32.pt holds a pickled Python object (getattr)" in err.splitlines()[-1]
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_weights_of_another_architecture_are_one_line(tmp_path):
    torch.manual_seed(1)
    state = dict(create_model("dc-test-vit").state_dict())
    state["visual.proj"] = state["visual.proj"][:, :8]
    state["extra.weight"] = state.pop("ln_final.bias")
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(ModelFileError) as caught:
        create_model("dc-test-vit", pretrained=str(tmp_path / "other.pt"))
    message = str(caught.value)
    assert message.startswith(f"weights in {tmp_path / 'other.pt'} do not fit the architecture: Error(s) in loading")
    assert "\n" not in message
    for part in ('Missing key(s) in state_dict: "ln_final.bias"', 'Unexpected key(s) in state_dict: "extra.weight"',
                 "size mismatch for visual.proj"):
        assert part in message
    torch.save(create_model("dc-tiny-vit").state_dict(), tmp_path / "tiny.pt")  # open_clip's own resize check
    with pytest.raises(ModelFileError, match=r"tiny\.pt do not fit the architecture: text pos_embed width changed!$"):
        create_model("dc-test-vit", pretrained=str(tmp_path / "tiny.pt"))


@pytest.mark.slow
def test_full_size_xlm_roberta_vit_b32_from_the_hub_cache(tmp_path, monkeypatch):
    """The real architecture, offline: xlm-roberta-base's published config read from an HF cache by its id."""
    transformers = pytest.importorskip("transformers")
    base = tmp_path / "xlm-roberta-base"
    transformers.XLMRobertaConfig(  # xlm-roberta-base's config.json values
        vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0,
        eos_token_id=2,
    ).save_pretrained(str(base))
    cache = tmp_path / "hf-cache"
    data.add_hf_snapshot(cache, "xlm-roberta-base", REV_TEXT, base)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = unwrap_clip(create_model("xlm-roberta-base-ViT-B-32", cache_dir=str(cache)))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["text.transformer.embeddings.word_embeddings.weight"] == (250002, 768)
    assert shapes["text.proj.0.weight"] == (640, 768) and shapes["text.proj.2.weight"] == (512, 640)
    assert shapes["visual.conv1.weight"] == (768, 3, 32, 32) and shapes["visual.proj"] == (768, 512)
    assert 360e6 < sum(v.numel() for v in model.parameters()) < 370e6
    assert json.loads(json.dumps(model.domainclip_info))["model_cfg"]["text_cfg"]["hf_model_name"] == "xlm-roberta-base"
