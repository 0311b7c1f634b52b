"""The hf_clip format: tiny random transformers CLIPModel folders converted to open_clip, embeddings equal."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

import domainclip
from domainclip.core.errors import InputNotFoundError
from domainclip.core.hub import ModelFileError
from domainclip.core.models import create_model, get_tokenizer
from domainclip.core.zoo.formats import get_format
from domainclip.core.zoo.hf_clip import convert_hf_clip, hf_clip_architecture
from domainclip.core.zoo.registry import ZooEntry, ZooFile, ZooSource, register_zoo_entry, unregister_zoo_entry
from tests.zoo_helpers import local_zoo_entry

transformers = pytest.importorskip("transformers")

TEXTS = ["An H&E image of TUMOR tissue.", "a photo of a cat", "Stroma,  adipose   and lymphocytes!", "it's 42"]
PIXEL_MEAN = [0.7, 0.55, 0.71]
PIXEL_STD = [0.15, 0.2, 0.13]


def _entry(files=("config.json",), arch=None) -> ZooEntry:
    source = ZooSource("weights", tuple(ZooFile(name, url=f"https://example.org/{name}") for name in files))
    return ZooEntry("tiny-hf-clip", "core", "a test model", "none", "https://example.org", "hf_clip", arch,
                    (source,), "MIT")


def _tiny_config(*, vocab_size: int, eos_token_id: int, image_size: int = 32):
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                vocab_size=vocab_size, max_position_embeddings=77, hidden_act="quick_gelu",
                eos_token_id=eos_token_id, bos_token_id=min(49406, vocab_size - 2), pad_token_id=1)
    vision = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3,
                  image_size=image_size, patch_size=8, hidden_act="quick_gelu")
    return transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)


def _save_tiny(
    folder: Path, *, vocab_size: int = 49408, eos_token_id: int = 2, seed: int = 0, weights: str = "safetensors"
) -> object:
    """A randomly initialised transformers CLIPModel saved with save_pretrained (non-trivial norms and logit scale).

    ``weights="bin"`` writes ``pytorch_model.bin`` as transformers 4.x did (``torch.save`` of the state
    dict; transformers 5 writes safetensors only), ``"sharded"`` several safetensors files and their index.
    """
    torch.manual_seed(seed)
    model = transformers.CLIPModel(_tiny_config(vocab_size=vocab_size, eos_token_id=eos_token_id)).eval()
    with torch.no_grad():  # layer norms start at (1, 0): randomise them so a swapped ln_1/ln_2 would show
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.2 * torch.randn_like(param))
        model.logit_scale.fill_(3.1)
    model.save_pretrained(str(folder), **({"max_shard_size": "100KB"} if weights == "sharded" else {}))
    if weights == "bin":
        (folder / "model.safetensors").unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return model


def _save_clip_tokenizer(folder: Path) -> object:
    """open_clip's BPE vocabulary written as a transformers CLIPTokenizer (vocab.json, merges.txt, ...)."""
    bpe = get_tokenizer("ViT-B-32")
    special = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {special.get(token, token): index for token, index in bpe.encoder.items()}
    merges = [" ".join(pair) for pair, _ in sorted(bpe.bpe_ranks.items(), key=lambda item: item[1])]
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(str(folder))
    return transformers.CLIPTokenizer.from_pretrained(str(folder))


def _features(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _hf_embeddings(hf_model, pixels: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return _features(hf_model.get_image_features(pixel_values=pixels)), _features(
            hf_model.get_text_features(input_ids=ids)
        )


def _build(converted):
    model = create_model(converted.arch, **converted.overrides).eval()
    model.load_state_dict(converted.clip_state_dict, strict=True)
    return model


@pytest.fixture(scope="module")
def plip_like(tmp_path_factory):
    """A tiny folder laid out like vinid/plip: safetensors, legacy eos id 2, CLIP tokenizer, preprocessor config."""
    folder = tmp_path_factory.mktemp("plip-like")
    hf_model = _save_tiny(folder)
    hf_tokenizer = _save_clip_tokenizer(folder)
    transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
        image_mean=PIXEL_MEAN, image_std=PIXEL_STD, resample=2,
    ).save_pretrained(str(folder))
    return folder, hf_model, hf_tokenizer


def test_safetensors_folder_gives_transformers_embeddings(plip_like):
    folder, hf_model, hf_tokenizer = plip_like
    converted = get_format("hf_clip")(_entry(), {"weights": folder})
    assert converted.overrides["text_cfg"].get("pool_type", "argmax") == "argmax"  # legacy eos id 2: argmax pooling
    model = _build(converted)

    torch.manual_seed(1)
    pixels = torch.randn(3, 3, 32, 32)
    oc_tokens = get_tokenizer(model)(TEXTS)
    hf_ids = hf_tokenizer(TEXTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    ref_image, ref_text = _hf_embeddings(hf_model, pixels, hf_ids)
    with torch.no_grad():
        image, text = model.encode_image(pixels), model.encode_text(oc_tokens)
    assert ref_image.shape == image.shape == (3, 16)
    torch.testing.assert_close(image, ref_image, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(text, ref_text, atol=1e-5, rtol=1e-5)
    assert model.logit_scale.item() == pytest.approx(3.1)
    # preprocessing travels with the weights: mean, std and resample from preprocessor_config.json
    pp = model.visual.preprocess_cfg
    assert pp["mean"] == pytest.approx(PIXEL_MEAN) and pp["std"] == pytest.approx(PIXEL_STD)
    assert pp["interpolation"] == "bilinear" and pp["resize_mode"] == "shortest" and list(pp["size"]) == [32, 32]


def test_clip_tokenizer_equals_open_clip_bpe(plip_like):
    """transformers' CLIPTokenizer over CLIP's vocabulary gives open_clip's ids; only the padding differs."""
    _, _, hf_tokenizer = plip_like
    oc = get_tokenizer("ViT-B-32")(TEXTS)
    hf = hf_tokenizer(TEXTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    assert oc.shape == hf.shape == (len(TEXTS), 77)
    for oc_row, hf_row in zip(oc, hf, strict=True):
        end = int((oc_row == 49407).nonzero()[0])
        assert end > 2
        assert oc_row[: end + 1].tolist() == hf_row[: end + 1].tolist()
        assert set(oc_row[end + 1 :].tolist()) <= {0} and set(hf_row[end + 1 :].tolist()) <= {49407}


@pytest.mark.parametrize("weights", ["bin", "sharded"])
def test_bin_and_sharded_folders_with_eos_pooling(tmp_path, weights):
    """pytorch_model.bin (weights_only) and sharded safetensors; a non-legacy eos id pools at its first occurrence."""
    eos = 50
    hf_model = _save_tiny(tmp_path, vocab_size=100, eos_token_id=eos, seed=2, weights=weights)
    names = {p.name for p in tmp_path.iterdir()}
    if weights == "bin":
        assert "pytorch_model.bin" in names and "model.safetensors" not in names
    else:
        assert "model.safetensors.index.json" in names and len([n for n in names if n.endswith(".safetensors")]) > 1
    converted = convert_hf_clip(_entry(), {"weights": tmp_path})
    assert converted.overrides["text_cfg"]["pool_type"] == "eos" and converted.overrides["text_cfg"]["eos_id"] == eos
    model = _build(converted)

    torch.manual_seed(3)
    ids = torch.zeros(4, 77, dtype=torch.long)  # open_clip's text tower takes its full context
    ids[:, :12] = torch.randint(51, 100, (4, 12))  # every other token id is larger than eos: argmax would differ
    for row, end in enumerate((3, 7, 11, 5)):
        ids[row, end] = eos
    ids[3, 9] = eos  # a second eos: the first one is pooled
    pixels = torch.randn(2, 3, 32, 32)
    ref_image, ref_text = _hf_embeddings(hf_model, pixels, ids)
    with torch.no_grad():
        image, text = model.encode_image(pixels), model.encode_text(ids)
    torch.testing.assert_close(image, ref_image, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(text, ref_text, atol=1e-5, rtol=1e-5)
    argmax_model = create_model(converted.arch, **{**converted.overrides, "text_cfg": {
        **converted.overrides["text_cfg"], "pool_type": "argmax"}}).eval()
    argmax_model.load_state_dict(converted.clip_state_dict)
    with torch.no_grad():
        assert not torch.allclose(argmax_model.encode_text(ids), ref_text, atol=1e-3)


def test_position_id_buffers_of_older_files_are_dropped(tmp_path):
    """transformers < 4.31 saved the position_ids buffers with the weights."""
    hf_model = _save_tiny(tmp_path, vocab_size=100, eos_token_id=99, weights="bin")
    state = hf_model.state_dict()
    state["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    state["vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    torch.save(state, tmp_path / "pytorch_model.bin")
    converted = convert_hf_clip(_entry(), {"weights": tmp_path})
    assert "pool_type" not in converted.overrides["text_cfg"]  # eos is the last id: argmax picks the same token
    assert not any("position_ids" in key for key in converted.clip_state_dict)
    _build(converted)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        # PLIP / openai clip-vit-base-patch32 as transformers 4.2x wrote it: every value, legacy eos id 2
        ({"model_type": "clip", "projection_dim": 512,
          "text_config": {"hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8,
                          "num_hidden_layers": 12, "vocab_size": 49408, "max_position_embeddings": 77,
                          "eos_token_id": 2, "bos_token_id": 0, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
          "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                            "num_hidden_layers": 12, "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu"}},
         ("ViT-B-32", {"quick_gelu": True})),
        # a ViT-L/14 config as recent transformers write it: only the non-default values
        ({"model_type": "clip", "projection_dim": 768,
          "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12},
          "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                            "num_hidden_layers": 24, "patch_size": 14}},
         ("ViT-L-14", {"quick_gelu": True})),
        ({"model_type": "clip", "projection_dim": 768,
          "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12},
          "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                            "num_hidden_layers": 24, "patch_size": 14, "image_size": 336}},
         ("ViT-L-14-336", {"quick_gelu": True})),
        # exact GELU and another layer-norm epsilon on a B/16
        ({"model_type": "clip", "text_config": {"hidden_act": "gelu", "layer_norm_eps": 1e-6},
          "vision_config": {"patch_size": 16, "hidden_act": "gelu", "layer_norm_eps": 1e-6}},
         ("ViT-B-16", {"vision_cfg": {"norm_kwargs": {"eps": 1e-6}}, "text_cfg": {"norm_kwargs": {"eps": 1e-6}}})),
    ],
    ids=["plip", "vit-l-14-minimal", "vit-l-14-336", "gelu-b16"],
)
def test_published_configs_map_to_registered_architectures(config, expected):
    assert hf_clip_architecture(config) == expected


def test_config_tanh_gelu_builds_equal_model(tmp_path):
    config = _tiny_config(vocab_size=100, eos_token_id=99)
    config.text_config.hidden_act = config.vision_config.hidden_act = "gelu_pytorch_tanh"
    torch.manual_seed(4)
    hf_model = transformers.CLIPModel(config).eval()
    hf_model.save_pretrained(str(tmp_path))
    converted = convert_hf_clip(_entry(), {"weights": tmp_path})
    assert "quick_gelu" not in converted.overrides
    assert converted.overrides["vision_cfg"]["act_kwargs"] == {"approximate": "tanh"}
    model = _build(converted)
    pixels, ids = torch.randn(2, 3, 32, 32), torch.zeros(2, 77, dtype=torch.long)
    ids[:, :6], ids[:, 6] = torch.randint(1, 99, (2, 6)), 99
    ref_image, ref_text = _hf_embeddings(hf_model, pixels, ids)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(pixels), ref_image, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.encode_text(ids), ref_text, atol=1e-5, rtol=1e-5)


def test_unsupported_configs_are_one_line_errors():
    with pytest.raises(ModelFileError, match="model_type 'siglip'"):
        hf_clip_architecture({"model_type": "siglip"})
    with pytest.raises(ModelFileError, match="hidden_act 'relu'"):
        hf_clip_architecture({"model_type": "clip", "text_config": {"hidden_act": "relu"}})
    with pytest.raises(ModelFileError, match="different activations"):
        hf_clip_architecture({"model_type": "clip", "text_config": {"hidden_act": "gelu"}})


def test_open_clip_state_dict_in_the_folder_lists_unexpected_and_missing_keys(tmp_path):
    from safetensors.torch import save_file

    _tiny_config(vocab_size=100, eos_token_id=99).save_pretrained(str(tmp_path))
    converted_arch, overrides = hf_clip_architecture(json.loads((tmp_path / "config.json").read_text()))
    open_clip_model = create_model(converted_arch, **overrides)
    save_file({k: v.contiguous() for k, v in open_clip_model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelFileError) as info:
        convert_hf_clip(_entry(), {"weights": tmp_path})
    message = str(info.value)
    n_open_clip = len(open_clip_model.state_dict())
    n_transformers = len(transformers.CLIPModel(_tiny_config(vocab_size=100, eos_token_id=99)).state_dict())
    assert "\n" not in message and message.startswith("zoo:tiny-hf-clip model.safetensors (hf_clip)")
    # every open_clip key but the shared logit_scale is unexpected, every CLIPModel key but it is missing
    assert f"{n_open_clip - 1} unexpected key(s): ln_final.bias, ln_final.weight, positional_embedding," in message
    assert f"{n_transformers - 1} missing key(s): text_model.embeddings.position_embedding.weight," in message


def test_weights_that_do_not_fit_the_config_are_named(tmp_path):
    _save_tiny(tmp_path, vocab_size=100, eos_token_id=99)
    config = json.loads((tmp_path / "config.json").read_text())
    config["vision_config"]["image_size"] = 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=r"do not fit config.json: visual.positional_embedding \(17, 48\)"):
        convert_hf_clip(_entry(), {"weights": tmp_path})


def test_pickled_object_in_bin_is_refused(tmp_path):
    _tiny_config(vocab_size=100, eos_token_id=99).save_pretrained(str(tmp_path))
    torch.save({"logit_scale": torch.tensor(1.0), "args": argparse.Namespace(lr=1)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelFileError, match="pickled Python object"):
        convert_hf_clip(_entry(), {"weights": tmp_path})


def test_folder_layout_errors_and_subfolder(tmp_path):
    with pytest.raises(InputNotFoundError, match="config.json"):
        convert_hf_clip(_entry(), {"weights": tmp_path})
    _tiny_config(vocab_size=100, eos_token_id=99).save_pretrained(str(tmp_path / "sub"))
    entry = _entry(files=("sub/config.json", "sub/model.safetensors"))
    with pytest.raises(InputNotFoundError, match="no weights file"):
        convert_hf_clip(entry, {"weights": tmp_path})
    _save_tiny(tmp_path / "sub", vocab_size=100, eos_token_id=99)
    assert convert_hf_clip(entry, {"weights": tmp_path}).clip_state_dict["visual.proj"].shape == (48, 16)


def test_vocabulary_other_than_clip_bpe_is_refused(tmp_path):
    _save_tiny(tmp_path, vocab_size=100, eos_token_id=99)
    (tmp_path / "vocab.json").write_text(json.dumps({"hello": 0, "world": 1}))
    with pytest.raises(ModelFileError, match="not CLIP's BPE vocabulary"):
        convert_hf_clip(_entry(), {"weights": tmp_path})


def test_zoo_path_loads_an_hf_clip_folder(plip_like, tmp_path, monkeypatch):
    folder, hf_model, hf_tokenizer = plip_like
    monkeypatch.setenv("DOMAINCLIP_ZOO_CACHE", str(tmp_path / "zoo-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DOMAINCLIP_ZOO_DIR", str(tmp_path / "zoo"))
    names = ["config.json", "model.safetensors", "preprocessor_config.json", "vocab.json", "merges.txt"]
    entry = local_zoo_entry(
        {"name": "tiny-hf-clip-zoo", "format": "hf_clip", "arch": "ViT-B-32", "overrides": {"quick_gelu": True}},
        tmp_path / "zoo", {"weights": {name: folder / name for name in names}},
    )
    register_zoo_entry(entry)
    try:
        model, preprocess, tokenizer = domainclip.load_model("zoo:tiny-hf-clip-zoo")
        torch.manual_seed(5)
        pixels = torch.randn(2, 3, 32, 32)
        hf_ids = hf_tokenizer(TEXTS, padding="max_length", max_length=77, return_tensors="pt").input_ids
        ref_image, ref_text = _hf_embeddings(hf_model, pixels, hf_ids)
        with torch.no_grad():
            torch.testing.assert_close(model.encode_image(pixels), ref_image, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(model.encode_text(tokenizer(TEXTS)), ref_text, atol=1e-5, rtol=1e-5)
        assert model.domainclip_info["pretrained"] == "zoo:tiny-hf-clip-zoo"
        assert model.visual.preprocess_cfg["mean"] == pytest.approx(PIXEL_MEAN)
    finally:
        unregister_zoo_entry("tiny-hf-clip-zoo")
