"""SurgLaVi's SurgCLIP-beta checkpoint as a domainclip model (native format ``surgclip``).

SurgCLIP (Perez et al., "SurgLaVi: Large-Scale Hierarchical Dataset for Surgical Vision-Language
Representation Learning", Medical Image Analysis 2026, arXiv 2509.10555) is a CLIP-style video-text
dual encoder; SurgCLIP-beta is the release trained on the open SurgLaVi-beta subset. Its weights are
``surgclip_beta.pth`` in the Hugging Face repo ``aleperez24/SurgCLIP``, and its inference code is the
authors' PyPI package ``surgclip`` 0.1.0 (MIT; ``src/surgclip`` of github.com/aperezr20/SurgLaVi),
which ``surgclip.load("SurgCLIP-B")`` builds and fills with ``model.load_state_dict(torch.load(path))``:

* video tower ``vision_encoder`` (``surgclip/models/timesformer/timesformer.py``): a TimeSformer
  ViT-B/16 (``vision_encoder.model.*``: ``cls_token``, ``pos_embed`` (197 tokens), ``time_embed``
  (16 frames), ``patch_embed.proj``, 12 ``blocks`` of divided space-time attention with biased qkv,
  ``norm``, ``pool_norm``; LayerNorm eps 1e-6, no classifier), in SurgCLIP's own variant of the
  block and pooling (:mod:`domainclip.core.models.spacetime`, ``variant="surgclip"``), then
  ``vision_proj`` (768 -> 256, biased). ``vision_layernorm`` (``vit_add_ln``) normalises the token
  outputs, which the embeddings never use; it is dropped;
* text tower ``text_encoder``: ``transformers.BertModel`` of ``bert-base-uncased`` without its
  pooler (``text_encoder.embeddings.*``, ``text_encoder.encoder.*``); the sentence embedding is the
  ``[CLS]`` hidden state, then ``text_proj`` (768 -> 256, biased);
* ``temp``: the similarity temperature (their logits are cosine / temp).

They map onto ``surgclip-beta``: open_clip's ``CustomTextCLIP`` with a Hugging Face BERT text tower
(``cls_last_hidden_state_pooler``, a biased linear projection) inside the ``spacetime`` tower.
``vision_encoder.model.X`` becomes ``visual.X``, ``vision_proj`` ``visual.proj``,
``text_encoder.X`` ``text.transformer.X``, ``text_proj`` ``text.proj`` and ``temp`` the logit
scale ``log(1 / temp)``. The widths, depth, patch size, image size and clip length are read from
the file; the number of attention heads (not in any shape) comes from the architecture (12).

Preprocessing, as ``surgclip.get_preprocess`` / ``VideoPreprocessor``: frames resized to 224 x 224
(bicubic, aspect ratio not kept), mean = std = 0.5; clips of 16 frames (a window centred on the
frame to classify, or ending on it online). Text: ``bert-base-uncased``'s tokenizer, padded and
truncated to 77 tokens (``surgclip.tokenize``). A single frame is a one-frame clip, as in their
README; a clip's score against a text is the mean over SurgCLIP's 16 token groups of their cosine
similarities, which is ``encode_video`` (the mean of the normalised group embeddings) dotted with the
normalised text embedding.

What was verified and what was not: the layer names, shapes, forward and preprocessing above were
read from the ``surgclip`` 0.1.0 wheel on PyPI and are reproduced here (the tests check the
conversion against a forward written from that code on a tiny checkpoint in this layout). The
published ``surgclip_beta.pth`` itself could not be downloaded here, so its exact key set (e.g.
whether it carries training-only heads that ``surgclip.load``'s ``strict=False`` would ignore) and
its size and sha256 are not verified: a file in another layout fails with the unexpected and missing
keys listed. SurgLaVi's evaluation code (built on VindLU) is not public beyond its
``EVALUATION.md``; the Cholec80 phase prompts their README uses are in :data:`SURGCLIP_CHOLEC80_PROMPTS`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from domainclip.core.hub import ModelFileError
from domainclip.core.zoo.formats import (
    ConvertedModel,
    check_keys,
    read_state_dict,
    read_text_config,
    register_format,
    unwrap_state_dict,
    weights_file,
)
from domainclip.core.zoo.registry import ZooEntry

__all__ = [
    "SURGCLIP_ARCH",
    "SURGCLIP_CHOLEC80_PROMPTS",
    "convert_surgclip",
    "convert_surgclip_state_dict",
    "surgclip_keys",
]

#: The architecture SurgCLIP-beta maps to.
SURGCLIP_ARCH = "surgclip-beta"
#: The Cholec80 phase prompts of SurgLaVi's README and ``surgclip`` quickstart, in Cholec80's phase order.
SURGCLIP_CHOLEC80_PROMPTS = {
    "Preparation": "Prepares for surgery by inserting trocars into the patient's abdominal cavity",
    "CalotTriangleDissection": (
        "Employs grasper and hook during calot triangle dissection, manipulating gallbladder to reveal hepatic "
        "triangle, cystic duct and cystic artery"
    ),
    "ClippingCutting": (
        "Utilizes clipper to secure cystic duct and artery, followed by precise dissection using scissors"
    ),
    "GallbladderDissection": (
        "Utilizes a hook to dissect the connective tissue during the dissection phase, separating gallbladder from "
        "the liver"
    ),
    "GallbladderPackaging": (
        "Secures the removed gallbladder in the specimen bag during the packaging phase of the procedure"
    ),
    "CleaningCoagulation": (
        "Employs suction and irrigation techniques to maintain a clear surgical field, simultaneously coagulating "
        "bleeding vessels"
    ),
    "GallbladderRetraction": "Handles the specimen bag during the retraction",
}

_VISION = "vision_encoder.model."
_TEXT = "text_encoder."
#: Their model's layers that no embedding uses (the LayerNorm over the video tokens, ``vit_add_ln``).
_UNUSED = ("vision_layernorm.weight", "vision_layernorm.bias")
#: Buffers older transformers saved with BERT (``position_ids`` was persistent before 4.31); rebuilt at init.
_TEXT_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
_HEADS = {"vision_proj.": "visual.proj.", "text_proj.": "text.proj."}
_BLOCK = re.compile(re.escape(_VISION) + r"blocks\.(\d+)\.")


def _vision_keys(layers: int) -> set[str]:
    from domainclip.core.models.spacetime import SpaceTimeEncoder

    with torch.device("meta"):  # names only: the shapes are checked against the built model
        encoder = SpaceTimeEncoder(32, 16, 8, layers, 1, output_dim=8, variant="surgclip")
    return {k for k in encoder.state_dict() if not k.startswith("proj.")}


def _bert_keys(text_config: Mapping[str, Any]) -> set[str]:
    from transformers import BertConfig, BertModel

    with torch.device("meta"):
        bert = BertModel(BertConfig(**{k: v for k, v in text_config.items() if k != "model_type"}),
                         add_pooling_layer=False)
    return set(bert.state_dict())


def surgclip_keys(layers: int, text_config: Mapping[str, Any]) -> set[str]:
    """The keys of a SurgCLIP checkpoint with ``layers`` video blocks and a given BERT config.

    Args:
        layers: TimeSformer blocks (12 for SurgCLIP-beta).
        text_config: the BERT ``config.json`` contents.

    Returns:
        Every key ``surgclip.SurgCLIP(...).state_dict()`` has (the text buffers of old transformers
        versions excluded).
    """
    keys = {_VISION + k for k in _vision_keys(layers)}
    keys |= {_TEXT + k for k in _bert_keys(text_config)}
    keys |= {head + p for head in _HEADS for p in ("weight", "bias")}
    return keys | set(_UNUSED) | {"temp"}


def convert_surgclip_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a SurgCLIP state dict (keys checked) to the open_clip layout of :data:`SURGCLIP_ARCH`.

    Args:
        state_dict: ``vision_encoder.*``, ``text_encoder.*``, ``vision_proj.*``, ``text_proj.*`` and ``temp``.

    Returns:
        ``visual.*``, ``text.transformer.*``, ``text.proj.*`` and ``logit_scale``.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(_VISION):
            out["visual." + key[len(_VISION):]] = value
        elif key.startswith(_TEXT):
            name = key[len(_TEXT):]
            if name not in _TEXT_BUFFERS:
                out["text.transformer." + name] = value
        elif key == "temp":
            temp = float(value)
            if not temp > 0:
                raise ModelFileError(f"SurgCLIP's temperature must be positive, the file holds temp = {temp}")
            out["logit_scale"] = torch.tensor(math.log(1.0 / temp))
        else:
            head = next((h for h in _HEADS if key.startswith(h)), None)
            if head is not None:
                out[_HEADS[head] + key[len(head):]] = value
    return out


def _shape_overrides(state_dict: Mapping[str, torch.Tensor], what: str) -> dict[str, Any]:
    """The architecture's sizes, read from the checkpoint's shapes."""
    patch = state_dict[_VISION + "patch_embed.proj.weight"]  # (width, 3, patch, patch)
    width, patch_size = int(patch.shape[0]), int(patch.shape[-1])
    tokens = int(state_dict[_VISION + "pos_embed"].shape[1]) - 1
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ModelFileError(f"{what}: pos_embed holds {tokens} patch positions, not a square grid")
    layers = 1 + max(int(m.group(1)) for m in map(_BLOCK.match, state_dict) if m)
    hidden = int(state_dict[_VISION + "blocks.0.mlp.fc1.weight"].shape[0])
    return {
        "embed_dim": int(state_dict["vision_proj.weight"].shape[0]),
        "vision_cfg": {
            "image_size": side * patch_size,
            "patch_size": patch_size,
            "width": width,
            "layers": layers,
            "mlp_ratio": hidden / width,
        },
        "domainclip_cfg": {"num_frames": int(state_dict[_VISION + "time_embed"].shape[1])},
    }


@register_format("surgclip")
def convert_surgclip(entry: ZooEntry, folders: Mapping[str, Path]) -> ConvertedModel:
    """Convert SurgCLIP-beta's ``surgclip_beta.pth`` into :data:`SURGCLIP_ARCH`.

    The file is read with ``torch.load(weights_only=True)`` and checked key by key against the
    layout of ``surgclip.SurgCLIP`` for the depth it holds and the BERT config of ``folders["text"]``.

    Args:
        entry: the zoo entry (its ``weights`` source names the ``.pth``).
        folders: ``{"weights": folder with the .pth, "text": folder with bert-base-uncased's
            config.json and tokenizer files}``.

    Returns:
        The architecture, overrides (the sizes the file holds, the text tower's folder) and the CLIP
        state dict.

    Raises:
        ModelFileError: one line: the file cannot be read, holds pickled objects, its keys are not
            SurgCLIP's (unexpected and missing ones listed), or the text config does not fit.
    """
    path = weights_file(entry, folders, "surgclip")
    what = f"zoo:{entry.name} {path.name} (surgclip)"
    text_folder = folders.get("text")
    text_config = read_text_config(text_folder, what, "bert-base-uncased's config.json and vocab")

    state_dict = unwrap_state_dict(read_state_dict(path))
    layers = 1 + max((int(m.group(1)) for m in map(_BLOCK.match, state_dict) if m), default=-1)
    buffers = {_TEXT + b for b in _TEXT_BUFFERS}
    check_keys(state_dict, surgclip_keys(max(layers, 1), text_config) | buffers, what=what, ignore=buffers)

    overrides = _shape_overrides(state_dict, what)
    text_width = int(state_dict["text_proj.weight"].shape[1])
    hidden = int(text_config.get("hidden_size", 768))
    if text_width != hidden:
        raise ModelFileError(
            f"{what}: text_proj takes {text_width} features but the text tower's config.json says hidden_size "
            f"{hidden}"
        )
    overrides["text_cfg"] = {"hf_model_name": str(text_folder), "hf_tokenizer_name": str(text_folder)}
    clip_state_dict = convert_surgclip_state_dict(state_dict)
    return ConvertedModel(arch=SURGCLIP_ARCH, overrides=overrides, clip_state_dict=clip_state_dict)
