"""Tiny multilingual CLIPs and the published checkpoints' layouts, written by the tests (no network).

Loaded by the tests with importlib (test folders are not packages).

* :func:`write_tiny_xlmr`: a randomly initialised 2-layer XLM-RoBERTa (``XLMRobertaConfig``) and a
  Unigram tokenizer built with the ``tokenizers`` library, saved as ``XLMRobertaTokenizerFast``:
  the files of a transformers model folder (``config.json``, ``tokenizer.json``, ...).
* :func:`tiny_multilingual_config`: the open_clip config of ``xlm-roberta-base-ViT-B-32`` (an XLM-R
  text tower with mean pooling and an MLP projection, a ViT image tower) at a tiny size.
* :func:`write_rs_m_clip_folder`: an open_clip hub folder in the layout of ``joaodaniel/RS-M-CLIP``
  (``open_clip_config.json`` with ``model_cfg`` and ``preprocess_cfg``, ``open_clip_model.safetensors``
  and the tokenizer files; no ``text_config/``: the text tower's config is found by its hub id).
* :func:`write_remoteclip_checkpoint`: a RemoteCLIP-style ``.pt``, the plain open_clip state dict as
  ``torch.save(model.state_dict())`` writes it (``chendelong/RemoteCLIP``'s ``RemoteCLIP-ViT-B-32.pt``
  loads with ``model.load_state_dict(torch.load(...))`` into ``open_clip.create_model("ViT-B-32")``).
* :func:`add_hf_snapshot`: a folder as one revision of a repo in a Hugging Face hub cache.
* :func:`write_multilingual_shards`: image-caption shards with captions in English and Portuguese.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

#: Words of the tiny vocabulary (English and Portuguese remote sensing captions).
WORDS = (
    "a an the of on in with and many some green dense trees river water buildings near road roads airport "
    "planes farmland field fields forest residential area houses lake bridge "
    "um uma o os de no na com e muitos muitas verde densa arvores rio agua edificios perto estrada aeroporto "
    "avioes campo campos floresta area residencial casas lago ponte"
).split()
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
#: Captions of the tiny tests, in both languages.
TEXTS = ["many planes near the airport", "muitos avioes perto do aeroporto", "a river with green trees"]
#: Land-cover scenes of the multilingual shards: colour, English and Portuguese caption.
SCENES = (
    ((40, 80, 200), "a river with water", "um rio com agua"),
    ((30, 140, 40), "a dense green forest", "uma floresta verde densa"),
    ((200, 180, 90), "farmland with many fields", "campos de cultivo"),
    ((150, 150, 150), "many buildings near a road", "muitos edificios perto da estrada"),
)


def write_tiny_xlmr(folder: Path) -> Path:
    """A 2-layer XLM-RoBERTa config and its tokenizer (``XLMRobertaTokenizerFast``) in ``folder``."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(t, 0.0) for t in SPECIALS] + [("▁" + w, -1.0 - i / 100) for i, w in enumerate(WORDS)]
    vocab += [(c, -8.0) for c in "abcdefghijklmnopqrstuvwxyz"] + [("▁", -6.0)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=SPECIALS.index("<unk>")))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    transformers.XLMRobertaTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
    ).save_pretrained(str(folder))
    transformers.XLMRobertaConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=40, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0,
        eos_token_id=2,
    ).save_pretrained(str(folder))
    return folder


def tiny_multilingual_config(text_model: str) -> dict[str, Any]:
    """``xlm-roberta-base-ViT-B-32``'s open_clip config at a tiny size; ``text_model`` names the XLM-R."""
    return {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {
            "hf_model_name": text_model,
            "hf_tokenizer_name": text_model,
            "hf_pooler_type": "mean_pooler",
            "context_length": 16,
        },
    }


def write_rs_m_clip_folder(model: torch.nn.Module, folder: Path, tokenizer_dir: Path) -> Path:
    """``model`` (a plain open_clip CLIP from ``create_model``) as an open_clip hub folder like RS-M-CLIP's."""
    folder.mkdir(parents=True)
    info = model.domainclip_info
    config = {"model_cfg": info["model_cfg"], "preprocess_cfg": info["preprocess_cfg"]}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, folder / name)
    (folder / "README.md").write_text("---\nlibrary_name: open_clip\n---\n", encoding="utf-8")
    return folder


def write_remoteclip_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """``model``'s plain open_clip state dict saved with ``torch.save``, as RemoteCLIP's ``.pt`` files are."""
    torch.save(model.state_dict(), path)
    return path


def add_hf_snapshot(cache: Path, repo_id: str, revision: str, source: Path) -> Path:
    """Copy ``source`` into ``cache`` as revision ``revision`` (also ``refs/main``) of ``repo_id``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def scene_image(index: int, size: int = 48) -> np.ndarray:
    """Image ``index``: the colour of scene ``index % 4`` with a little seeded texture."""
    colour = np.array(SCENES[index % len(SCENES)][0], dtype=np.int16)
    noise = np.random.default_rng(index).integers(-20, 21, size=(size, size, 3))
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def write_multilingual_shards(out: Path, n: int, *, per_shard: int = 8) -> Path:
    """``n`` scene images (PNG) with ``{"en": [...], "pt": [...]}`` captions, ``per_shard`` to a shard."""
    from domainclip.core.data.writer import write_shards

    samples = [
        {"__key__": f"scene-{i:05d}", "image": scene_image(i),
         "text": {"en": [SCENES[i % len(SCENES)][1]], "pt": [SCENES[i % len(SCENES)][2]]}}
        for i in range(n)
    ]
    write_shards(samples, out, prefix="scenes", max_count=per_shard, image_format="png", progress=False)
    return out
