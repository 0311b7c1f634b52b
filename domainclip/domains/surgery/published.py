"""CAMMA's SurgVLP, HecVL and PeskaVLP checkpoints as domainclip models (native format ``camma_vlp``).

The three models of github.com/CAMMA-public/SurgVLP share one architecture and one checkpoint
layout (``tests/config_{surgvlp,hecvl,peskavlp}.py`` differ only in the model class name, and the
three classes in ``surgvlp/codes/models/algorithms/`` are the same code):

* image tower ``backbone_img`` (``img_backbones/ImageEncoder``): a torchvision ResNet-50
  (``backbone_img.model.*``, ``fc`` replaced by an identity, so no ``fc`` keys), global average
  pooling of ``layer4`` and a biased linear layer ``backbone_img.global_embedder`` (2048 -> 768);
  no normalisation inside the tower (``img_norm=False``);
* text tower ``backbone_text`` (``text_backbones/BertEncoder``): ``transformers.AutoModel`` of
  ``emilyalsentzer/Bio_ClinicalBERT`` (``backbone_text.model.*``, its unused pooler included);
  the sentence embedding sums the last four hidden layers of the token sums divided by the padded
  length (:class:`~domainclip.core.models.poolers.LastLayersSumPooler`), 768 wide, no projection;
* the checkpoint is the model's bare ``state_dict()`` (``surgvlp.load`` calls
  ``model.load_state_dict(torch.load(path))``), no wrapper. CAMMA's download links serve a zip
  archive holding ``<Model>.pth`` (``surgvlp.surgvlp._download`` unzips it); the converter reads the
  ``.pth`` itself or the one inside such a ``.zip``.

They map onto the open_clip ``CustomTextCLIP`` ``surgvlp-rn50-clinicalbert``: a timm ``resnet50``
trunk (timm's ResNet key names are torchvision's) with an average pool and a biased linear head, and
a Hugging Face text tower with the pooler above. ``backbone_img.model.X`` becomes
``visual.trunk.X``, ``backbone_img.global_embedder`` ``visual.head.proj``, ``backbone_text.model.X``
``text.transformer.X``; BERT's pooler (which CAMMA never calls) is dropped, and the logit scale is set
to 100, the factor of CAMMA's zero-shot code. CAMMA's ``ImageEncoder`` also builds ResNet-18/34/101
(``resnets.py``); the converter reads the depth from the keys and builds the matching timm ResNet.

Zero-shot, CAMMA embeds every frame on its own (``tests/zero_shot.py``); the surgery suites do the
same with ``encode_image``.
"""

from __future__ import annotations

import functools
import math
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from domainclip.core.hub import ModelFileError
from domainclip.core.zoo.formats import (
    ConvertedModel,
    check_keys,
    hf_text_folder,
    read_state_dict,
    read_text_config,
    register_format,
    unwrap_state_dict,
    weights_file,
)
from domainclip.core.zoo.registry import ZooEntry

__all__ = [
    "CAMMA_ARCH",
    "CAMMA_RESNETS",
    "CAMMA_ZERO_SHOT_SCALE",
    "camma_keys",
    "convert_camma_vlp",
    "convert_state_dict",
]

#: The architecture the three checkpoints map to.
CAMMA_ARCH = "surgvlp-rn50-clinicalbert"
#: CAMMA's ``resnet_dict`` backbones and the timm ResNets with the same layers and key names.
CAMMA_RESNETS = {"resnet_18": "resnet18", "resnet_34": "resnet34", "resnet_50": "resnet50", "resnet_101": "resnet101"}
#: ``100.0 * image_features @ text_features.T`` in CAMMA's zero-shot code.
CAMMA_ZERO_SHOT_SCALE = 100.0

_IMAGE = "backbone_img.model."
_EMBEDDER = "backbone_img.global_embedder."
_TEXT = "backbone_text.model."
#: Buffers older transformers saved with BERT (``position_ids`` was persistent before 4.31); rebuilt at init.
_TEXT_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


@functools.lru_cache(maxsize=8)
def _resnet_keys(timm_name: str) -> frozenset[str]:
    import timm

    with torch.device("meta"):
        trunk = timm.create_model(timm_name, pretrained=False, num_classes=0)
    return frozenset(trunk.state_dict())


def _bert_keys(text_config: Mapping[str, Any]) -> frozenset[str]:
    from transformers import BertConfig, BertModel

    with torch.device("meta"):
        bert = BertModel(BertConfig(**{k: v for k, v in text_config.items() if k != "model_type"}))
    return frozenset(bert.state_dict())


def camma_keys(backbone: str, text_config: Mapping[str, Any]) -> set[str]:
    """The keys of a CAMMA checkpoint with a given image backbone and BERT config.

    Args:
        backbone: a key of :data:`CAMMA_RESNETS` (``"resnet_50"`` for the published models).
        text_config: the BERT ``config.json`` contents.

    Returns:
        Every key ``SurgVLP(...).state_dict()`` has (the text buffers of old transformers versions excluded).
    """
    keys = {_IMAGE + k for k in _resnet_keys(CAMMA_RESNETS[backbone])}
    keys |= {_EMBEDDER + "weight", _EMBEDDER + "bias"}
    keys |= {_TEXT + k for k in _bert_keys(text_config)}
    return keys


def _guess_backbone(keys: set[str]) -> str:
    """The CAMMA backbone whose image keys differ least from the file's (``resnet_50`` if nothing is close)."""
    image = {k[len(_IMAGE) :] for k in keys if k.startswith(_IMAGE)}
    if not image:
        return "resnet_50"
    return min(CAMMA_RESNETS, key=lambda b: (len(image ^ _resnet_keys(CAMMA_RESNETS[b])), b != "resnet_50"))


def _read_checkpoint(path: Path, what: str) -> dict[str, Any]:
    """Read the ``.pth`` file, or the single ``.pth`` inside a ``.zip`` as CAMMA's links serve it."""
    if path.suffix.lower() != ".zip":  # torch's own .pth files are zip files too: go by the name
        return read_state_dict(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if m.filename.lower().endswith(".pth") and not m.is_dir()]
            if len(members) != 1:
                names = ", ".join(archive.namelist()[:8]) or "nothing"
                raise ModelFileError(f"{what}: the archive must hold exactly one .pth file, it holds {names}")
            with tempfile.TemporaryDirectory(prefix="camma_vlp_") as tmp:
                target = Path(tmp) / Path(members[0].filename).name  # messages name the member
                with archive.open(members[0]) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
                return read_state_dict(target)
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelFileError(f"{what}: cannot read the zip archive: {e}") from e


def convert_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a CAMMA state dict (keys checked) to the open_clip layout of :data:`CAMMA_ARCH`.

    Args:
        state_dict: ``backbone_img.*`` / ``backbone_text.*`` tensors.

    Returns:
        ``visual.trunk.*``, ``visual.head.proj.*``, ``text.transformer.*`` and ``logit_scale``.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(_IMAGE):
            out["visual.trunk." + key[len(_IMAGE) :]] = value
        elif key.startswith(_EMBEDDER):
            out["visual.head.proj." + key[len(_EMBEDDER) :]] = value
        elif key.startswith(_TEXT):
            name = key[len(_TEXT) :]
            if not name.startswith("pooler.") and name not in _TEXT_BUFFERS:
                out["text.transformer." + name] = value
    out["logit_scale"] = torch.tensor(math.log(CAMMA_ZERO_SHOT_SCALE))
    return out


@register_format("camma_vlp")
def convert_camma_vlp(entry: ZooEntry, folders: Mapping[str, Path]) -> ConvertedModel:
    """Convert a SurgVLP / HecVL / PeskaVLP ``.pth`` into :data:`CAMMA_ARCH`.

    The file is read with ``torch.load(weights_only=True)`` and checked key by key against the
    layout CAMMA's code writes for the backbone it holds (ResNet-50 for the published models) and
    the BERT config of ``folders["text"]``.

    Args:
        entry: the zoo entry (its ``weights`` source names the ``.pth``).
        folders: ``{"weights": folder with the .pth (or CAMMA's .zip of it), "text": folder with Bio_ClinicalBERT's
            config.json and vocab.txt}``.

    Returns:
        The architecture, overrides (the trunk and width the file holds, the text tower's folder) and
        the CLIP state dict.

    Raises:
        ModelFileError: one line: the file cannot be read, holds pickled objects, or its keys are not
            CAMMA's (unexpected and missing ones listed), or the text config does not fit.
    """
    path = weights_file(entry, folders, "camma_vlp")
    what = f"zoo:{entry.name} {path.name} (camma_vlp)"
    text_folder = folders.get("text")
    text_config = read_text_config(text_folder, what, "Bio_ClinicalBERT's config.json and vocab.txt")

    state_dict = unwrap_state_dict(_read_checkpoint(path, what))
    backbone = _guess_backbone(set(state_dict))
    expected = camma_keys(backbone, text_config) | {_TEXT + b for b in _TEXT_BUFFERS}
    check_keys(state_dict, expected, what=what, ignore={_TEXT + b for b in _TEXT_BUFFERS})

    width = int(state_dict[_EMBEDDER + "weight"].shape[0])
    hidden = int(text_config.get("hidden_size", 768))
    if width != hidden:
        raise ModelFileError(
            f"{what}: the image embedding is {width} wide but the text tower's config.json says hidden_size {hidden}; "
            "CAMMA's text embedding is BERT's hidden state, so the two must agree"
        )
    bert = hf_text_folder(text_folder, "bert")  # Bio_ClinicalBERT's config.json predates model_type
    overrides: dict[str, Any] = {
        "embed_dim": width,
        "vision_cfg": {"timm_model_name": CAMMA_RESNETS[backbone]},
        "text_cfg": {"hf_model_name": str(bert), "hf_tokenizer_name": str(bert)},
    }
    return ConvertedModel(arch=CAMMA_ARCH, overrides=overrides, clip_state_dict=convert_state_dict(state_dict))
