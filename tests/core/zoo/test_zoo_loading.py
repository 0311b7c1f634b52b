"""The zoo path end to end on local files: fetch, pin checks, offline messages, the two core formats."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
import torch

import domainclip
from domainclip.cli import main
from domainclip.core.hub import HubNotFoundError, ModelFileError, save_model_folder
from domainclip.core.models import create_model
from domainclip.core.zoo.fetch import ZooFileError, fetch_entry, lock_file
from domainclip.core.zoo.registry import get_zoo_entry, list_zoo, register_zoo_entry, unregister_zoo_entry
from tests.zoo_helpers import hub_entry, local_zoo_entry, write_hub_snapshot

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINCLIP_ZOO_CACHE", str(tmp_path / "zoo-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DOMAINCLIP_ZOO_DIR", raising=False)
    names: list[str] = []
    yield names
    for name in names:
        unregister_zoo_entry(name)


@pytest.fixture(scope="module")
def tiny():
    """A tiny open_clip ViT with seeded random weights and its state dict."""
    torch.manual_seed(3)
    model = create_model("dc-test-vit").eval()
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def _pt_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _embeddings(model):
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    text = torch.randint(1, 400, (2, 32))
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(text)


def _register(names, entry):
    register_zoo_entry(entry)
    names.append(entry.name)
    return entry


def _state_dict_entry(names, tmp_path, state_dict, *, name="tiny-oc", pin=True, file="model.pt"):
    base = {"name": name, "format": "open_clip_state_dict", "arch": "dc-test-vit"}
    entry = local_zoo_entry(base, tmp_path / "zoo", {"weights": {file: _pt_bytes(state_dict)}}, pin=pin)
    return _register(names, entry)


def test_open_clip_state_dict_in_a_ddp_wrapper_loads_with_equal_embeddings(_isolated, tmp_path, tiny, monkeypatch):
    model, state = tiny
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}
    entry = _state_dict_entry(_isolated, tmp_path, wrapped)
    monkeypatch.setenv("DOMAINCLIP_ZOO_DIR", str(tmp_path / "zoo"))
    loaded, preprocess, tokenizer = domainclip.load_model(f"zoo:{entry.name}")
    for a, b in zip(_embeddings(model), _embeddings(loaded), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    record = loaded.domainclip_source
    assert record["kind"] == "zoo" and record["zoo"]["name"] == "tiny-oc"
    assert record["weights_sha256"] == {"model.pt": entry.sources[0].files[0].sha256}
    assert loaded.domainclip_info["pretrained"] == "zoo:tiny-oc" and not loaded.training
    assert tokenizer(["a cat"]).shape == (1, 32)


def test_a_changed_file_is_refused_naming_it_and_the_cli_says_one_line(_isolated, tmp_path, tiny, capsys):
    entry = _state_dict_entry(_isolated, tmp_path, tiny[1])
    path = tmp_path / "zoo" / entry.name / "model.pt"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ZooFileError, match=r"model.pt .* has sha256 [0-9a-f]{64}, the registry pins"):
        fetch_entry(entry, zoo_dir=tmp_path / "zoo")
    path.write_bytes(bytes(data[:-1]))
    with pytest.raises(ZooFileError, match=r"has \d+ bytes, the registry pins \d+"):
        fetch_entry(entry, zoo_dir=tmp_path / "zoo")
    code = main(["eval", "--model", f"zoo:{entry.name}", "--suite", "core/synthetic", "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "model.pt" in err


def test_offline_missing_hub_file_names_what_to_download_and_where(_isolated, tmp_path):
    entry = _register(_isolated, hub_entry({"name": "hubby", "format": "open_clip_state_dict", "arch": "dc-test-vit"},
                                           "org/hubby", REVISION, {"weights.pt": b"x"}))
    with pytest.raises(HubNotFoundError) as e:
        fetch_entry(entry, zoo_dir=tmp_path / "mine")
    message = str(e.value)
    assert "\n" not in message
    assert f"https://huggingface.co/org/hubby/blob/{REVISION}/weights.pt" in message
    assert str(tmp_path / "mine" / "hubby" / "weights.pt") in message and "offline" in message


def test_hub_snapshot_in_the_cache_loads_offline_and_records_the_revision(_isolated, tmp_path, tiny):
    model, state = tiny
    data = _pt_bytes(state)
    write_hub_snapshot(tmp_path / "hf-cache", "org/tiny", REVISION, {"ckpt/tiny.pt": data})
    entry = _register(_isolated, hub_entry({"name": "hub-tiny", "format": "open_clip_state_dict",
                                            "arch": "dc-test-vit"}, "org/tiny", None, {"ckpt/tiny.pt": data}))
    loaded, _, _ = domainclip.load_model("zoo:hub-tiny")
    assert loaded.domainclip_source["hub_id"] == "org/tiny"
    assert loaded.domainclip_source["revision"] == REVISION
    torch.testing.assert_close(_embeddings(model)[0], _embeddings(loaded)[0], rtol=0, atol=0)
    assert entry.pinned is False  # no revision: resolved through refs/main


def test_unpinned_files_are_pinned_on_first_use_and_checked_after(_isolated, tmp_path, tiny):
    entry = _state_dict_entry(_isolated, tmp_path, tiny[1], name="unpinned", pin=False)
    fetch_entry(entry, zoo_dir=tmp_path / "zoo")
    pins = json.loads(lock_file().read_text())["pins"]
    path = tmp_path / "zoo" / "unpinned" / "model.pt"
    assert pins["unpinned/weights/model.pt"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    fetch_entry(entry, zoo_dir=tmp_path / "zoo")  # unchanged: fine
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ZooFileError, match="recorded when it was first downloaded"):
        fetch_entry(entry, zoo_dir=tmp_path / "zoo")


def test_a_state_dict_of_another_layout_lists_unexpected_and_missing_keys(_isolated, tmp_path, tiny):
    other = dict(tiny[1])
    other["visual.extra.weight"] = torch.zeros(1)
    del other["ln_final.weight"]
    entry = _state_dict_entry(_isolated, tmp_path, other, name="wrong")
    from domainclip.core.zoo.loading import load_zoo_model

    with pytest.raises(ModelFileError) as e:
        load_zoo_model(entry, zoo_dir=tmp_path / "zoo")
    text = str(e.value)
    assert "1 unexpected key(s): visual.extra.weight" in text and "1 missing key(s): ln_final.weight" in text
    bigger = create_model("dc-tiny-vit").state_dict()
    entry = _state_dict_entry(_isolated, tmp_path, bigger, name="bigger")
    with pytest.raises(ModelFileError, match=r"unexpected key\(s\): .* \(\d+ more\)"):
        load_zoo_model(entry, zoo_dir=tmp_path / "zoo")


def test_a_pickled_object_is_refused(_isolated, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    data = _pt_bytes({"state_dict": {"w": Evil()}})
    entry = _register(_isolated, local_zoo_entry({"name": "evil", "format": "open_clip_state_dict",
                                                  "arch": "dc-test-vit"}, tmp_path / "zoo",
                                                 {"weights": {"model.pt": data}}))
    from domainclip.core.zoo.loading import load_zoo_model

    with pytest.raises(ModelFileError, match="model.pt"):
        load_zoo_model(entry, zoo_dir=tmp_path / "zoo")


def test_open_clip_hub_folder_loads_with_its_own_config(_isolated, tmp_path, tiny):
    model, _ = tiny
    folder = save_model_folder(model, tmp_path / "hubdir")
    files = {p.name: p for p in folder.iterdir() if p.is_file() and p.name != "README.md"}
    entry = _register(_isolated, local_zoo_entry({"name": "hubfolder", "format": "open_clip_hub", "arch": None,
                                                  "preprocess": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}},
                                                 tmp_path / "zoo", {"weights": files}))
    from domainclip.core.zoo.loading import load_zoo_model

    loaded = load_zoo_model(entry, zoo_dir=tmp_path / "zoo").eval()
    torch.testing.assert_close(_embeddings(model)[1], _embeddings(loaded)[1], rtol=0, atol=0)
    assert loaded.visual.preprocess_cfg["mean"] == [0.5, 0.5, 0.5]


def test_create_model_wraps_a_zoo_clip_in_a_tower_for_fine_tuning(_isolated, tmp_path, tiny, monkeypatch):
    entry = _state_dict_entry(_isolated, tmp_path, tiny[1], name="to-video")
    monkeypatch.setenv("DOMAINCLIP_ZOO_DIR", str(tmp_path / "zoo"))
    video = create_model(f"zoo:{entry.name}", domainclip_cfg={"tower": "video", "num_frames": 2, "pooling": "mean"})
    torch.testing.assert_close(video.clip.visual.conv1.weight, tiny[1]["visual.conv1.weight"], rtol=0, atol=0)
    assert video.domainclip_info["domainclip_cfg"]["tower"] == "video"
    with pytest.raises(ValueError, match="cannot be combined"):
        create_model(f"zoo:{entry.name}", pretrained="openai")


def test_unknown_zoo_name_suggests_close_ones(_isolated, tmp_path, tiny, capsys):
    _state_dict_entry(_isolated, tmp_path, tiny[1], name="PathThing-CLIP")
    with pytest.raises(KeyError, match="Did you mean: PathThing-CLIP"):
        get_zoo_entry("zoo:PathThing-CLP")
    assert get_zoo_entry("paththing-clip").name == "PathThing-CLIP"
    assert any(e.name == "PathThing-CLIP" for e in list_zoo("core"))


def test_resize_to_gives_the_authors_eval_transform_and_survives_a_rebuild(_isolated, tmp_path, tiny, monkeypatch):
    """CAMMA evaluates with Resize((360, 640)) then CenterCrop(224); ``resize_to`` reproduces it."""
    import numpy as np
    import torchvision.transforms as T
    from PIL import Image

    from domainclip.core.models.registry import build_model_from_info, get_image_transform

    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    base = {"name": "resized", "format": "open_clip_state_dict", "arch": "dc-test-vit",
            "preprocess": {"resize_to": [36, 64], "mean": mean, "std": std, "interpolation": "bilinear"}}
    entry = _register(_isolated, local_zoo_entry(base, tmp_path / "zoo", {"weights": {"m.pt": _pt_bytes(tiny[1])}}))
    monkeypatch.setenv("DOMAINCLIP_ZOO_DIR", str(tmp_path / "zoo"))
    model, preprocess, _ = domainclip.load_model(f"zoo:{entry.name}")
    image = Image.fromarray((np.random.default_rng(0).random((90, 160, 3)) * 255).astype("uint8"))
    expected = T.Compose([T.Resize((36, 64)), T.CenterCrop(32), T.ToTensor(), T.Normalize(mean, std)])(image)
    torch.testing.assert_close(preprocess(image), expected, rtol=0, atol=0)
    rebuilt = build_model_from_info(model.domainclip_info)
    torch.testing.assert_close(get_image_transform(rebuilt)(image), expected, rtol=0, atol=0)
    assert get_image_transform(model, is_train=True)(image).shape == (3, 32, 32)


def test_open_clip_hub_folder_with_a_hub_text_tower_takes_the_text_source(_isolated, tmp_path):
    """BiomedCLIP's layout: the folder's config names its BERT by hub id and carries no text config."""
    import transformers

    bert = tmp_path / "bert"
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"a photo of cat dog tumor tissue".split()]
    transformers.BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(str(bert))
    transformers.BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=64).save_pretrained(str(bert))
    torch.manual_seed(1)
    model = create_model("dc-tiny-hf-text", text_cfg={"hf_model_name": str(bert), "hf_tokenizer_name": str(bert)})
    folder = save_model_folder(model.eval(), tmp_path / "biomed")
    config = json.loads((folder / "open_clip_config.json").read_text())
    config["model_cfg"]["text_cfg"].update(hf_model_name="org/tiny-bert", hf_tokenizer_name="org/tiny-bert")
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    weights = {p.name: p for p in folder.iterdir() if p.is_file() and p.name != "README.md"}
    entry = _register(_isolated, local_zoo_entry(
        {"name": "biomed-like", "format": "open_clip_hub", "arch": None}, tmp_path / "zoo",
        {"weights": weights, "text": {"config.json": bert / "config.json"}},
    ))
    from domainclip.core.zoo.loading import load_zoo_model

    loaded = load_zoo_model(entry, zoo_dir=tmp_path / "zoo").eval()
    tokenizer = domainclip.get_tokenizer(loaded)
    text = tokenizer(["a photo of a cat", "tumor tissue"])
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_text(text), model.encode_text(text), rtol=0, atol=0)
        torch.testing.assert_close(loaded.encode_image(images), model.encode_image(images), rtol=0, atol=0)


def test_plain_open_clip_reads_the_same_state_dict_file_to_the_same_embeddings(_isolated, tmp_path, tiny):
    """The reference implementation of the open_clip formats is open_clip itself."""
    import open_clip

    from domainclip.core.zoo.loading import load_zoo_model

    wrapped = {"state_dict": {f"module.{k}": v for k, v in tiny[1].items()}}
    entry = _state_dict_entry(_isolated, tmp_path, wrapped, name="vs-open-clip")
    path = tmp_path / "zoo" / entry.name / "model.pt"
    reference = open_clip.create_model("dc-test-vit", pretrained=str(path)).eval()
    loaded = load_zoo_model(entry, zoo_dir=tmp_path / "zoo").eval()
    for a, b in zip(_embeddings(reference), _embeddings(loaded), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("entry", [e for e in list_zoo() if e.format in ("open_clip_state_dict", "hf_clip")],
                         ids=lambda e: e.name)
def test_each_published_open_clip_architecture_builds_at_the_entry_image_size(entry):
    """The architecture an entry maps to exists with its overrides and takes the entry's image size."""
    from domainclip.core.mappings import deep_merge
    from domainclip.core.models.registry import build_model, get_model_config, split_model_config

    model_cfg, preprocess_cfg, tower_cfg = split_model_config(get_model_config(entry.arch))
    model_cfg = deep_merge(model_cfg, {k: v for k, v in entry.overrides.items() if k not in ("preprocess_cfg",)})
    with torch.device("meta"):
        model = build_model(model_cfg, preprocess_cfg, tower_cfg)
    size = model.visual.preprocess_cfg["size"]
    assert (size if isinstance(size, int) else size[0]) == entry.preprocess["size"]
    assert model_cfg.get("quick_gelu") is True  # every one of these is an OpenAI-initialised fine-tune
