"""The ``hf_clip`` format: transformers ``CLIPModel`` folders converted in memory into open_clip CLIPs.

Published this way: PLIP (``vinid/plip``, a ViT-B/32 CLIP fine-tuned from OpenAI's on OpenPath) and
PathGen-CLIP-L's Hugging Face copy (a ViT-L/14). Such a folder holds::

    config.json                  transformers' CLIPConfig (model_type "clip")
    model.safetensors            the CLIPModel state dict (or pytorch_model.bin; sharded: *.index.json)
    preprocessor_config.json     CLIPImageProcessor settings (mean, std, size, crop, resample), optional
    vocab.json, merges.txt, ...  the CLIPTokenizer, optional

transformers' ``CLIPModel`` and open_clip's ``CLIP`` are the same network (OpenAI's CLIP) under two
sets of names, so the conversion is a renaming plus two layout changes: the separate q/k/v
projections are concatenated into open_clip's ``in_proj_weight``, and the two projection layers
(``visual_projection``, ``text_projection``: ``nn.Linear`` without bias) become open_clip's
``visual.proj`` / ``text_projection`` matrices, transposed. The architecture comes from
``config.json`` with transformers' defaults for the keys a config leaves out (recent transformers
versions write only the values that differ), as exact open_clip overrides on the closest registered
name (``ViT-B-32``, ``ViT-B-16``, ``ViT-L-14``, ``ViT-L-14-336``), so a config of any size converts.

Text pooling follows transformers' rule (``CLIPTextTransformer``): configs with the legacy
``eos_token_id`` 2 (those written by transformers before mid-2023, PLIP's among them) pool at the
highest token id, as OpenAI's CLIP and open_clip's ``argmax`` pooling do; newer configs pool at the
first ``eos_token_id``. When that id is the vocabulary's last one (CLIP's ``<|endoftext|>``, 49407)
the two rules pick the same token for every tokenised text, so the converter keeps ``argmax``; any
other end-of-text id becomes open_clip's ``eos`` pooling.

The tokenizer of these folders is CLIP's BPE, which open_clip's ``SimpleTokenizer`` implements
(same 49408-token vocabulary and merges, lower-cased, ``<|startoftext|>`` 49406 and
``<|endoftext|>`` 49407, context 77): the model needs no transformers install to run, and when the
folder carries ``vocab.json`` the converter checks that it is that vocabulary. Padding differs
(transformers pads with ``<|endoftext|>``, open_clip with 0) without changing any embedding: the
causal mask hides everything after the end-of-text token that is pooled.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from domainclip.core.errors import InputNotFoundError
from domainclip.core.hub import ModelFileError
from domainclip.core.zoo.formats import (
    ConvertedModel,
    check_keys,
    read_state_dict,
    register_format,
    unwrap_state_dict,
)

if TYPE_CHECKING:
    from domainclip.core.zoo.registry import ZooEntry

__all__ = [
    "BASE_ARCHITECTURES",
    "convert_hf_clip",
    "find_hf_clip_weights",
    "hf_clip_architecture",
    "hf_clip_preprocess",
    "hf_clip_state_dict",
    "read_hf_clip_weights",
]

logger = logging.getLogger(__name__)

#: Registered architectures an ``hf_clip`` config is expressed on (the one needing fewest overrides wins).
BASE_ARCHITECTURES = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336")
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
#: Weights files of a transformers folder, in order of preference (safetensors first; sharded after single).
WEIGHTS_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

# transformers' CLIPTextConfig / CLIPVisionConfig / CLIPConfig defaults, for keys a config.json omits
_TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "eos_token_id": 49407,
}
_VISION_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 32,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
_PROJECTION_DIM_DEFAULT = 512
_LEGACY_EOS_TOKEN_ID = 2  # transformers pools CLIP text at argmax(input_ids) for configs with this id
_OPEN_CLIP_LN_EPS = 1e-5
#: transformers activation name -> (open_clip quick_gelu, act_kwargs for nn.GELU)
_ACTIVATIONS: dict[str, tuple[bool, dict[str, str] | None]] = {
    "quick_gelu": (True, None),
    "gelu": (False, None),
    "gelu_new": (False, {"approximate": "tanh"}),
    "gelu_pytorch_tanh": (False, {"approximate": "tanh"}),
}
#: CLIPImageProcessor ``resample`` (PIL codes) -> open_clip interpolation
_RESAMPLE = {3: "bicubic", 2: "bilinear"}
#: buffers older transformers versions saved with the weights (torch.arange, rebuilt at init)
_POSITION_ID_BUFFERS = ("vision_model.embeddings.position_ids", "text_model.embeddings.position_ids")


# ----------------------------------------------------------------------------------------------------
# the converter
# ----------------------------------------------------------------------------------------------------


@register_format("hf_clip")
def convert_hf_clip(entry: ZooEntry, folders: Mapping[str, Path]) -> ConvertedModel:
    """Convert a transformers ``CLIPModel`` folder into open_clip's CLIP layout.

    Args:
        entry: the zoo entry; its weights source's file names locate ``config.json`` inside the
            fetched folder (a hub repo may keep the model in a subfolder).
        folders: ``{"weights": folder}`` holding the entry's files.

    Returns:
        The closest registered ViT architecture with exact overrides (``embed_dim``, ``vision_cfg``,
        ``text_cfg``, ``quick_gelu``, ``preprocess_cfg``) and the state dict with open_clip's keys.

    Raises:
        InputNotFoundError: the folder has no ``config.json`` or no weights file.
        ModelFileError: one line: the config is not a CLIP one this converter reads, the weights are
            not in transformers' ``CLIPModel`` layout (unexpected and missing keys listed) or do not
            fit the config, or the tokenizer is not CLIP's BPE.
    """
    root = Path(folders["weights"])
    folder = _model_folder(entry, root)
    config = _read_json(folder / CONFIG_FILE)
    base = entry.arch if entry.arch in BASE_ARCHITECTURES else None
    arch, overrides = hf_clip_architecture(config, where=str(folder / CONFIG_FILE), prefer=base)
    preprocessor_path = folder / PREPROCESSOR_FILE
    preprocessor = _read_json(preprocessor_path) if preprocessor_path.is_file() else None
    image_size = overrides.get("vision_cfg", {}).get("image_size") or _image_size(config)
    overrides["preprocess_cfg"] = hf_clip_preprocess(preprocessor, image_size=image_size)
    _check_tokenizer(folder)
    weights = find_hf_clip_weights(folder)
    what = f"zoo:{entry.name} {weights.relative_to(root)} (hf_clip)"
    clip_state_dict = hf_clip_state_dict(read_hf_clip_weights(weights), config, what=what)
    return ConvertedModel(arch=arch, overrides=overrides, clip_state_dict=clip_state_dict)


def _model_folder(entry: ZooEntry, folder: Path) -> Path:
    """The folder holding ``config.json``: the fetched folder, or the subfolder the entry's files name."""
    if (folder / CONFIG_FILE).is_file():
        return folder
    source = entry.source("weights")
    for file in source.files if source is not None else ():
        if Path(file.name).name == CONFIG_FILE and (folder / file.name).is_file():
            return (folder / file.name).parent
    raise InputNotFoundError(
        f"{folder} has no {CONFIG_FILE}: a transformers CLIPModel folder (format hf_clip) needs config.json "
        f"and {' or '.join(WEIGHTS_FILES[::2])}"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path} cannot be read as JSON: {e}") from e
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} holds a {type(data).__name__}, not a JSON object")
    return data


# ----------------------------------------------------------------------------------------------------
# architecture
# ----------------------------------------------------------------------------------------------------


def _sub_config(config: Mapping[str, Any], tower: str, where: str) -> dict[str, Any]:
    """A tower's config with transformers' defaults filled in (``<tower>_config_dict`` of old files wins)."""
    sub = config.get(f"{tower}_config") or {}
    legacy = config.get(f"{tower}_config_dict") or {}
    if not isinstance(sub, Mapping) or not isinstance(legacy, Mapping):
        raise ModelFileError(f"{where}: {tower}_config must be a JSON object")
    defaults = _TEXT_DEFAULTS if tower == "text" else _VISION_DEFAULTS
    return {**defaults, **sub, **legacy}


def _positive_int(cfg: Mapping[str, Any], key: str, where: str) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelFileError(f"{where}: {key} must be a positive integer, got {value!r}")
    return value


def _size(value: Any, key: str, where: str) -> int | list[int]:
    """An image or patch size: an int, or ``[h, w]`` (an int when square)."""
    if isinstance(value, list | tuple) and len(value) == 2:
        sizes = [_positive_int({key: v}, key, where) for v in value]
        return sizes[0] if sizes[0] == sizes[1] else sizes
    return _positive_int({key: value}, key, where)


def _image_size(config: Mapping[str, Any]) -> int | list[int]:
    return _size(_sub_config(config, "vision", CONFIG_FILE)["image_size"], "image_size", CONFIG_FILE)


def _activation(cfg: Mapping[str, Any], tower: str, where: str) -> tuple[bool, dict[str, str] | None]:
    act = cfg["hidden_act"]
    if act not in _ACTIVATIONS:
        raise ModelFileError(
            f"{where}: {tower}_config.hidden_act {act!r} has no open_clip equivalent "
            f"(supported: {', '.join(_ACTIVATIONS)})"
        )
    return _ACTIVATIONS[act]


def _tower_cfg(cfg: Mapping[str, Any], width: int, where: str, tower: str) -> dict[str, Any]:
    """``mlp_ratio``, ``norm_kwargs`` and ``act_kwargs`` of one tower (the parts both towers share)."""
    hidden = _positive_int(cfg, "intermediate_size", where)
    ratio = hidden / width
    if int(width * ratio) != hidden:  # open_clip sizes the MLP as int(width * mlp_ratio)
        raise ModelFileError(f"{where}: {tower} intermediate_size {hidden} is not expressible as width * mlp_ratio")
    out: dict[str, Any] = {"mlp_ratio": ratio}
    eps = cfg["layer_norm_eps"]
    if not isinstance(eps, int | float) or isinstance(eps, bool) or eps <= 0:
        raise ModelFileError(f"{where}: {tower}_config.layer_norm_eps must be a positive number, got {eps!r}")
    if float(eps) != _OPEN_CLIP_LN_EPS:
        out["norm_kwargs"] = {"eps": float(eps)}
    act_kwargs = _activation(cfg, tower, where)[1]
    if act_kwargs is not None:
        out["act_kwargs"] = dict(act_kwargs)
    return out


def _open_clip_config(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The complete open_clip model config (every value explicit) of a transformers CLIPConfig."""
    model_type = config.get("model_type", "clip")
    if model_type != "clip":
        raise ModelFileError(
            f"{where}: model_type {model_type!r} is not transformers' CLIP ('clip'); format hf_clip converts "
            "CLIPModel folders only"
        )
    vision = _sub_config(config, "vision", where)
    text = _sub_config(config, "text", where)
    if vision["num_channels"] != 3:
        raise ModelFileError(
            f"{where}: vision_config.num_channels is {vision['num_channels']!r}; open_clip's ViT is RGB"
        )
    vision_quick, _ = _activation(vision, "vision", where)
    text_quick, _ = _activation(text, "text", where)
    if vision_quick != text_quick:
        raise ModelFileError(
            f"{where}: the towers use different activations ({vision['hidden_act']!r}, {text['hidden_act']!r}); "
            "open_clip's quick_gelu switch sets both"
        )

    v_width = _positive_int(vision, "hidden_size", where)
    v_heads = _positive_int(vision, "num_attention_heads", where)
    t_width = _positive_int(text, "hidden_size", where)
    t_heads = _positive_int(text, "num_attention_heads", where)
    for tower, width, heads in (("vision", v_width, v_heads), ("text", t_width, t_heads)):
        if width % heads:
            raise ModelFileError(f"{where}: {tower} hidden_size {width} is not a multiple of {heads} heads")
    vision_cfg = {
        "image_size": _size(vision["image_size"], "image_size", where),
        "patch_size": _size(vision["patch_size"], "patch_size", where),
        "width": v_width,
        "layers": _positive_int(vision, "num_hidden_layers", where),
        "head_width": v_width // v_heads,
        **_tower_cfg(vision, v_width, where, "vision"),
    }
    vocab_size = _positive_int(text, "vocab_size", where)
    eos = text.get("eos_token_id")
    if isinstance(eos, list) and len(eos) == 1:
        eos = eos[0]
    if isinstance(eos, bool) or not isinstance(eos, int):
        raise ModelFileError(f"{where}: text_config.eos_token_id must be one token id, got {eos!r}")
    text_cfg = {
        "context_length": _positive_int(text, "max_position_embeddings", where),
        "vocab_size": vocab_size,
        "width": t_width,
        "heads": t_heads,
        "layers": _positive_int(text, "num_hidden_layers", where),
        **_tower_cfg(text, t_width, where, "text"),
    }
    if eos in (_LEGACY_EOS_TOKEN_ID, vocab_size - 1):
        text_cfg["pool_type"] = "argmax"
    else:
        text_cfg["pool_type"], text_cfg["eos_id"] = "eos", eos
    projection = config.get("projection_dim", _PROJECTION_DIM_DEFAULT)
    return {
        "embed_dim": _positive_int({"projection_dim": projection}, "projection_dim", where),
        "quick_gelu": vision_quick,
        "vision_cfg": vision_cfg,
        "text_cfg": text_cfg,
    }


def _dataclass_defaults(cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def _overrides_on(base: Mapping[str, Any], full: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides that turn the registered config ``base`` into ``full`` (values open_clip would not default to)."""
    out: dict[str, Any] = {}
    for key in ("embed_dim", "quick_gelu"):
        if full[key] != base.get(key, False if key == "quick_gelu" else None):
            out[key] = full[key]
    for section, cls in (("vision_cfg", CLIPVisionCfg), ("text_cfg", CLIPTextCfg)):
        effective = {**_dataclass_defaults(cls), **base.get(section, {})}
        changed = {k: v for k, v in full[section].items() if effective.get(k) != v}
        if changed:
            out[section] = changed
    return out


def hf_clip_architecture(
    config: Mapping[str, Any], *, where: str = CONFIG_FILE, prefer: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The open_clip architecture of a transformers ``CLIPConfig``: a registered name and exact overrides.

    Keys the config leaves out take transformers' defaults. The name is the one of
    :data:`BASE_ARCHITECTURES` needing the fewest overrides (PLIP's config gives ``ViT-B-32`` and only
    ``{"quick_gelu": True}``); any other size is that name plus the differing values.

    Args:
        config: the parsed ``config.json``.
        where: the file, for messages.
        prefer: one of :data:`BASE_ARCHITECTURES` that wins ties (the zoo entry's ``arch``).

    Returns:
        ``(arch, overrides)`` for :func:`~domainclip.core.models.create_model`.

    Raises:
        ModelFileError: not a CLIP config, or a setting open_clip's CLIP cannot express.
    """
    from domainclip.core.models import get_model_config

    full = _open_clip_config(config, where)
    names = sorted(BASE_ARCHITECTURES, key=lambda name: name != prefer)  # stable: the preferred name first
    candidates = [(name, _overrides_on(get_model_config(name), full)) for name in names]

    def size(overrides: Mapping[str, Any]) -> int:
        return sum(len(v) if isinstance(v, Mapping) else 1 for v in overrides.values())

    return min(candidates, key=lambda candidate: size(candidate[1]))


# ----------------------------------------------------------------------------------------------------
# preprocessing
# ----------------------------------------------------------------------------------------------------


def _edge(value: Any, key: str, where: str) -> int | None:
    """One side from CLIPImageProcessor's ``size``/``crop_size`` (an int, or a dict of edges), if square."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        if "shortest_edge" in value:
            return _positive_int(value, "shortest_edge", where)
        if "height" in value and "width" in value:
            height, width = _positive_int(value, "height", where), _positive_int(value, "width", where)
            return height if height == width else None
        return None
    return _positive_int({key: value}, key, where)


def hf_clip_preprocess(
    preprocessor: Mapping[str, Any] | None, *, image_size: int | list[int], where: str = PREPROCESSOR_FILE
) -> dict[str, Any]:
    """open_clip ``preprocess_cfg`` overrides from a ``CLIPImageProcessor``'s ``preprocessor_config.json``.

    CLIP's processor resizes the shortest edge, centre-crops and normalises: open_clip's
    ``resize_mode="shortest"`` (a processor without a centre crop resizes to the full size:
    ``"squash"``). Without a file, OpenAI CLIP's mean, std and bicubic resize are what
    transformers' ``CLIPImageProcessor`` defaults to. A resize edge larger than the crop (256 then
    224) or a resample filter other than bicubic or bilinear has no open_clip equivalent: the
    nearest one is used and a warning names the difference.

    Args:
        preprocessor: the parsed file, or None when the folder has none.
        image_size: the image tower's input size (open_clip crops to it).
        where: the file, for messages.
    """
    cfg: dict[str, Any] = {
        "mean": list(OPENAI_DATASET_MEAN),
        "std": list(OPENAI_DATASET_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    if preprocessor is None:
        return cfg
    if preprocessor.get("do_normalize", True):
        for key, name in (("image_mean", "mean"), ("image_std", "std")):
            value = preprocessor.get(key)
            if value is None:
                continue
            if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int | float) for v in value)):
                raise ModelFileError(f"{where}: {key} must be three numbers (R, G, B), got {value!r}")
            cfg[name] = [float(v) for v in value]
    else:
        cfg["mean"], cfg["std"] = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    resample = preprocessor.get("resample", 3)
    if resample in _RESAMPLE:
        cfg["interpolation"] = _RESAMPLE[resample]
    else:
        logger.warning("%s: resample=%r has no open_clip equivalent; images are resized bicubic", where, resample)
    if not preprocessor.get("do_center_crop", True):
        cfg["resize_mode"] = "squash"  # resized to the full size, no crop
    side = image_size if isinstance(image_size, int) else None
    resize = _edge(preprocessor.get("size"), "size", where) if preprocessor.get("do_resize", True) else None
    cropped = preprocessor.get("do_center_crop", True)
    crop = _edge(preprocessor.get("crop_size"), "crop_size", where) if cropped else None
    for what, edge in (("resize edge", resize), ("crop size", crop)):
        if edge is not None and side is not None and edge != side:
            logger.warning(
                "%s: %s %d differs from the image tower's input size %d; open_clip resizes and crops to %d",
                where,
                what,
                edge,
                side,
                side,
            )
    return cfg


# ----------------------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------------------


def find_hf_clip_weights(folder: str | Path) -> Path:
    """The weights file of a transformers folder, safetensors first (:data:`WEIGHTS_FILES` order).

    Args:
        folder: the model folder.

    Raises:
        InputNotFoundError: no weights file.
    """
    folder = Path(folder)
    for name in WEIGHTS_FILES:
        if (folder / name).is_file():
            return folder / name
    raise InputNotFoundError(
        f"{folder} has no weights file: a transformers CLIPModel folder holds {' or '.join(WEIGHTS_FILES)}"
    )


def read_hf_clip_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a transformers weights file, or of the shards its ``*.index.json`` names.

    ``.safetensors`` files are read as they are, ``.bin`` files with ``torch.load(weights_only=True)``
    (a pickled object is refused).

    Args:
        path: a file from :func:`find_hf_clip_weights`.

    Raises:
        InputNotFoundError: a shard the index names is missing.
        ModelFileError: a file cannot be read, holds pickled objects, or the index is broken.
    """
    path = Path(path)
    if not path.name.endswith(".index.json"):
        return unwrap_state_dict(read_state_dict(path), prefixes=())
    weight_map = _read_json(path).get("weight_map")
    if not isinstance(weight_map, Mapping) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ModelFileError(f"{path} has no 'weight_map' of tensor names to shard files")
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = path.parent / shard
        if Path(shard).name != shard or not shard_path.is_file():
            raise InputNotFoundError(f"{shard_path} (a shard named in {path.name}) not found")
        tensors.update(unwrap_state_dict(read_state_dict(shard_path), prefixes=()))
    return tensors


def _native_block_keys(prefix: str, layers: int) -> list[str]:
    names = [f"self_attn.{p}_proj.{w}" for p in ("q", "k", "v", "out") for w in ("weight", "bias")] + [
        f"{m}.{w}" for m in ("layer_norm1", "layer_norm2", "mlp.fc1", "mlp.fc2") for w in ("weight", "bias")
    ]
    return [f"{prefix}.encoder.layers.{i}.{name}" for i in range(layers) for name in names]


def _native_keys(vision_layers: int, text_layers: int) -> list[str]:
    """Every key of transformers' ``CLIPModel.state_dict()`` for these depths (buffers excluded)."""
    return [
        "logit_scale",
        "visual_projection.weight",
        "text_projection.weight",
        "vision_model.embeddings.class_embedding",
        "vision_model.embeddings.patch_embedding.weight",
        "vision_model.embeddings.position_embedding.weight",
        "vision_model.pre_layrnorm.weight",  # sic: transformers' name
        "vision_model.pre_layrnorm.bias",
        "vision_model.post_layernorm.weight",
        "vision_model.post_layernorm.bias",
        "text_model.embeddings.token_embedding.weight",
        "text_model.embeddings.position_embedding.weight",
        "text_model.final_layer_norm.weight",
        "text_model.final_layer_norm.bias",
        *_native_block_keys("vision_model", vision_layers),
        *_native_block_keys("text_model", text_layers),
    ]


def _blocks(src: Mapping[str, torch.Tensor], native: str, target: str, layers: int) -> dict[str, torch.Tensor]:
    """One tower's residual blocks in open_clip's names (q, k, v stacked into ``in_proj``)."""
    out: dict[str, torch.Tensor] = {}
    for i in range(layers):
        s, d = f"{native}.encoder.layers.{i}.", f"{target}resblocks.{i}."
        for w in ("weight", "bias"):
            out[f"{d}attn.in_proj_{w}"] = torch.cat([src[f"{s}self_attn.{p}_proj.{w}"] for p in ("q", "k", "v")])
            out[f"{d}attn.out_proj.{w}"] = src[f"{s}self_attn.out_proj.{w}"]
            out[f"{d}ln_1.{w}"] = src[f"{s}layer_norm1.{w}"]
            out[f"{d}ln_2.{w}"] = src[f"{s}layer_norm2.{w}"]
            out[f"{d}mlp.c_fc.{w}"] = src[f"{s}mlp.fc1.{w}"]
            out[f"{d}mlp.c_proj.{w}"] = src[f"{s}mlp.fc2.{w}"]
    return out


def _expected_shapes(model_cfg: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The shape of every open_clip key for the architecture (what ``config.json`` promises)."""
    vision, text, embed = model_cfg["vision_cfg"], model_cfg["text_cfg"], model_cfg["embed_dim"]
    image = vision["image_size"] if isinstance(vision["image_size"], list) else [vision["image_size"]] * 2
    patch = vision["patch_size"] if isinstance(vision["patch_size"], list) else [vision["patch_size"]] * 2
    grid = (image[0] // patch[0]) * (image[1] // patch[1])
    vw, tw = vision["width"], text["width"]
    shapes: dict[str, tuple[int, ...]] = {
        "logit_scale": (),
        "visual.proj": (vw, embed),
        "text_projection": (tw, embed),
        "visual.class_embedding": (vw,),
        "visual.conv1.weight": (vw, 3, patch[0], patch[1]),
        "visual.positional_embedding": (grid + 1, vw),
        "token_embedding.weight": (text["vocab_size"], tw),
        "positional_embedding": (text["context_length"], tw),
    }
    for prefix, width in (("visual.ln_pre", vw), ("visual.ln_post", vw), ("ln_final", tw)):
        shapes |= {f"{prefix}.weight": (width,), f"{prefix}.bias": (width,)}
    for prefix, cfg, width in (("visual.transformer.", vision, vw), ("transformer.", text, tw)):
        hidden = int(width * cfg["mlp_ratio"])
        for i in range(cfg["layers"]):
            d = f"{prefix}resblocks.{i}."
            shapes |= {
                d + "attn.in_proj_weight": (3 * width, width),
                d + "attn.in_proj_bias": (3 * width,),
                d + "attn.out_proj.weight": (width, width),
                d + "attn.out_proj.bias": (width,),
                d + "mlp.c_fc.weight": (hidden, width),
                d + "mlp.c_fc.bias": (hidden,),
                d + "mlp.c_proj.weight": (width, hidden),
                d + "mlp.c_proj.bias": (width,),
            }
            for ln in ("ln_1", "ln_2"):
                shapes |= {d + f"{ln}.weight": (width,), d + f"{ln}.bias": (width,)}
    return shapes


def hf_clip_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any], *, what: str = "CLIPModel weights (hf_clip)"
) -> dict[str, torch.Tensor]:
    """Map a transformers ``CLIPModel`` state dict to open_clip's CLIP keys.

    Args:
        state_dict: the tensors (from :func:`read_hf_clip_weights`); ``position_ids`` buffers that
            older transformers versions saved are dropped.
        config: the folder's ``config.json`` (the depths and sizes the weights must have).
        what: the file and format, for messages.

    Returns:
        The state dict with the keys of ``create_model(arch, **overrides).state_dict()``.

    Raises:
        ModelFileError: one line listing the unexpected and missing keys when the layout is not
            ``CLIPModel``'s, or the first tensors whose shapes do not fit ``config.json``.
    """
    model_cfg = _open_clip_config(config, CONFIG_FILE)
    v_layers, t_layers = model_cfg["vision_cfg"]["layers"], model_cfg["text_cfg"]["layers"]
    src = {k: v for k, v in state_dict.items() if k not in _POSITION_ID_BUFFERS}
    check_keys(src, _native_keys(v_layers, t_layers), what=what)
    out = {
        "logit_scale": src["logit_scale"].reshape(()),
        "visual.proj": src["visual_projection.weight"].T.contiguous(),
        "text_projection": src["text_projection.weight"].T.contiguous(),
        "visual.class_embedding": src["vision_model.embeddings.class_embedding"],
        "visual.conv1.weight": src["vision_model.embeddings.patch_embedding.weight"],
        "visual.positional_embedding": src["vision_model.embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": src["vision_model.pre_layrnorm.weight"],
        "visual.ln_pre.bias": src["vision_model.pre_layrnorm.bias"],
        "visual.ln_post.weight": src["vision_model.post_layernorm.weight"],
        "visual.ln_post.bias": src["vision_model.post_layernorm.bias"],
        "token_embedding.weight": src["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": src["text_model.embeddings.position_embedding.weight"],
        "ln_final.weight": src["text_model.final_layer_norm.weight"],
        "ln_final.bias": src["text_model.final_layer_norm.bias"],
    }
    out |= _blocks(src, "vision_model", "visual.transformer.", v_layers)
    out |= _blocks(src, "text_model", "transformer.", t_layers)
    bad = [
        f"{key} {tuple(out[key].shape)} (config.json: {shape})"
        for key, shape in _expected_shapes(model_cfg).items()
        if tuple(out[key].shape) != shape
    ]
    if bad:
        shown = ", ".join(bad[:4]) + (f", ... ({len(bad) - 4} more)" if len(bad) > 4 else "")
        raise ModelFileError(f"{what}: {len(bad)} tensor(s) do not fit config.json: {shown}")
    return out


# ----------------------------------------------------------------------------------------------------
# tokenizer
# ----------------------------------------------------------------------------------------------------


def _check_tokenizer(folder: Path) -> None:
    """Refuse a folder whose ``vocab.json`` is not CLIP's BPE vocabulary (open_clip's tokenizer would be wrong)."""
    path = folder / "vocab.json"
    if not path.is_file():
        return
    from domainclip.core.models import get_tokenizer

    vocab = _read_json(path)
    special = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}  # transformers' names
    bpe = get_tokenizer("ViT-B-32")  # open_clip's SimpleTokenizer (CLIP's BPE), built once per process
    expected = {special.get(token, token): index for token, index in bpe.encoder.items()}
    if vocab != expected:
        differing = sorted(set(vocab) ^ set(expected)) or [k for k in expected if vocab.get(k) != expected[k]]
        raise ModelFileError(
            f"{path} is not CLIP's BPE vocabulary ({len(vocab)} tokens; differing: {', '.join(differing[:3])}): "
            "format hf_clip runs the text with open_clip's CLIP tokenizer, which would not match this model's"
        )
