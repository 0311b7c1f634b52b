"""Loading a zoo entry as a domainclip model: fetch, convert from the native format, build, load strictly.

:func:`load_zoo_model` is what ``zoo:NAME`` means wherever a model spec is accepted
(:func:`domainclip.load_model`, ``domainclip eval --model``, ``prepare ... --model``, suites'
baselines). The result is an ordinary domainclip model: ``model.domainclip_info`` describes its
architecture (so it can be fine-tuned, checkpointed and exported like any other) and its
``pretrained`` field is the zoo spec.

The two core formats are defined here: ``open_clip_state_dict`` (a bare ``.pt``/``.safetensors``
state dict of an open_clip architecture, optionally under ``state_dict`` and with DDP's ``module.``
prefix: RemoteCLIP, GeoRSCLIP, PathGen-CLIP) and ``open_clip_hub`` (an open_clip hub folder with its
own ``open_clip_config.json``: BiomedCLIP, QuiltNet, RS-M-CLIP, BMCA-CLIP).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from domainclip.core.hub import LOCAL_DIR_PREFIX, ModelFileError, find_weights_file
from domainclip.core.mappings import deep_merge
from domainclip.core.zoo.fetch import fetch_entry
from domainclip.core.zoo.formats import (
    ConvertedModel,
    check_keys,
    get_format,
    read_state_dict,
    register_format,
    unwrap_state_dict,
    weights_file,
)
from domainclip.core.zoo.registry import ZOO_PREFIX, ZooEntry, get_zoo_entry

__all__ = ["convert_open_clip_hub", "convert_open_clip_state_dict", "load_converted", "load_zoo_model"]

#: Preprocessing keys of an entry that become ``preprocess_cfg`` overrides (``size`` follows the architecture).
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode", "fill_color", "resize_to")
#: Buffers an architecture rebuilds at init, which a checkpoint may lack.
_BUFFERS = ("attn_mask", "position_ids")


def _text_overrides(folders: Mapping[str, Path]) -> dict[str, Any]:
    text = folders.get("text")
    if text is None:
        return {}
    return {"text_cfg": {"hf_model_name": str(text), "hf_tokenizer_name": str(text)}}


@register_format("open_clip_state_dict")
def convert_open_clip_state_dict(entry: ZooEntry, folders: Mapping[str, Path]) -> ConvertedModel:
    """A bare open_clip state dict (``.pt``, ``.bin`` or ``.safetensors``) of the entry's architecture.

    The file's first weights file is read with ``weights_only=True``; a ``state_dict``/``model``
    wrapper and DDP's ``module.`` prefix are removed. Keys are checked against the architecture
    when the model is built (:func:`load_converted`).

    Args:
        entry: the zoo entry (``arch`` names the open_clip architecture).
        folders: ``{"weights": folder}`` (and ``"text"`` for a Hugging Face text tower's files).
    """
    if entry.arch is None:
        raise ModelFileError(f"zoo:{entry.name}: format open_clip_state_dict needs an 'arch' in the registry entry")
    state_dict = unwrap_state_dict(read_state_dict(weights_file(entry, folders, entry.format)))
    return ConvertedModel(arch=entry.arch, overrides=_text_overrides(folders), clip_state_dict=state_dict)


@register_format("open_clip_hub")
def convert_open_clip_hub(entry: ZooEntry, folders: Mapping[str, Path]) -> ConvertedModel:
    """An open_clip hub folder (``open_clip_config.json`` + weights): the folder is the architecture.

    Args:
        entry: the zoo entry.
        folders: ``{"weights": the folder}`` (and ``"text"``: a Hugging Face text tower's config and
            tokenizer files the folder does not carry, e.g. BiomedCLIP's PubMedBERT config).
    """
    folder = folders["weights"]
    find_weights_file(folder)  # a folder without weights fails here, naming what it expected
    return ConvertedModel(arch=folder, overrides=_text_overrides(folders))


def load_converted(model: nn.Module, converted: ConvertedModel, *, what: str) -> None:
    """Load a converter's weights into a model built from its architecture, strictly.

    open_clip's own key adaptations run first (text keys of custom-text towers, resized position
    embeddings), then every key must match: otherwise a :class:`ModelFileError` lists the
    unexpected and missing keys.

    Args:
        model: the model :func:`~domainclip.core.models.create_model` built from ``converted.arch``.
        converted: the converter's output.
        what: the file and format, for messages.
    """
    from open_clip.model import (
        CustomTextCLIP,
        convert_to_custom_text_state_dict,
        resize_pos_embed,
        resize_text_pos_embed,
    )

    from domainclip.core.models.registry import DomainCLIP, unwrap_clip

    clip = unwrap_clip(model)
    state_dict = dict(converted.clip_state_dict or {})
    if isinstance(clip, CustomTextCLIP):
        state_dict = convert_to_custom_text_state_dict(state_dict)
    expected = clip.state_dict()
    check_keys(state_dict, expected, what=what, ignore=[k for k in expected if k.endswith(_BUFFERS)])
    try:  # a checkpoint trained at another image size / context length: open_clip interpolates
        if "positional_embedding" in state_dict and hasattr(clip, "positional_embedding"):
            resize_text_pos_embed(state_dict, clip)
        if "visual.positional_embedding" in state_dict:
            resize_pos_embed(state_dict, clip)
    except AssertionError as e:
        raise ModelFileError(f"{what}: position embeddings do not fit the architecture ({e})") from e
    wrong = [f"{k} {tuple(v.shape)} (needs {tuple(expected[k].shape)})" for k, v in state_dict.items()
             if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise ModelFileError(f"{what}: {len(wrong)} tensor(s) do not fit the architecture: {', '.join(wrong[:6])}")
    clip.load_state_dict(state_dict, strict=False)
    if isinstance(model, DomainCLIP):
        if converted.tower_state_dict or model.tower_state_dict():
            model.load_tower_state_dict(converted.tower_state_dict)
    elif converted.tower_state_dict:
        raise ModelFileError(f"{what}: the converter returned tower weights but the architecture has no domain tower")


def _preprocess_overrides(entry: ZooEntry) -> dict[str, Any]:
    pre = {k: entry.preprocess[k] for k in _PREPROCESS_KEYS if k in entry.preprocess}
    return {"preprocess_cfg": pre} if pre else {}


def load_zoo_model(
    name_or_entry: str | ZooEntry,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    cache_dir: str | Path | None = None,
    zoo_dir: str | Path | None = None,
    progress: bool = True,
    **overrides: Any,
) -> nn.Module:
    """Fetch, convert and build a published model as a domainclip model.

    Args:
        name_or_entry: a zoo name (``zoo:`` prefix optional) or an entry.
        device: where to put the model.
        precision: see :data:`domainclip.core.models.registry.PRECISIONS`.
        cache_dir: Hugging Face cache folder.
        zoo_dir: the user's zoo folder (default ``DOMAINCLIP_ZOO_DIR``), looked in before any cache.
        progress: show download progress.
        **overrides: :func:`~domainclip.core.models.create_model` overrides merged over the entry's
            (e.g. ``domainclip_cfg={"tower": "video", "num_frames": 8, "pooling": "mean"}`` to wrap a
            published image-text CLIP in a video tower before fine-tuning it).

    Returns:
        The model, in training mode as :func:`~domainclip.core.models.create_model` returns models
        (:func:`domainclip.load_model` puts it in eval mode). ``model.domainclip_info["pretrained"]``
        is ``zoo:NAME``; ``model.domainclip_zoo`` holds the entry's name, format, licence and the
        local folders read.

    Raises:
        UnknownNameError: no such entry.
        HubNotFoundError: a file is missing offline or cannot be downloaded (one line: what and where).
        ModelFileError: a file differs from its pin, or its keys do not fit (unexpected/missing listed).
    """
    from domainclip.core.models.registry import _to_device_and_precision, create_model

    entry = name_or_entry if isinstance(name_or_entry, ZooEntry) else get_zoo_entry(name_or_entry)
    folders = fetch_entry(entry, cache_dir=cache_dir, zoo_dir=zoo_dir, progress=progress)
    converted = get_format(entry.format)(entry, folders)
    merged = deep_merge(deep_merge(dict(entry.overrides), converted.overrides), _preprocess_overrides(entry))
    merged = deep_merge(merged, overrides)
    cache = str(cache_dir) if cache_dir is not None else None
    if isinstance(converted.arch, Path):
        model = create_model(f"{LOCAL_DIR_PREFIX}{converted.arch}", cache_dir=cache, **merged)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # layers a converter leaves at init (none, when the keys match) are reproducible
            model = create_model(converted.arch, cache_dir=cache, **merged)
        weights = weights_file(entry, folders, entry.format)
        load_converted(model, converted, what=f"zoo:{entry.name} {weights.name} ({entry.format})")
    size = entry.preprocess.get("size")
    image_size = model.visual.preprocess_cfg.get("size")
    if size is not None and image_size is not None and _as_pair(size) != _as_pair(image_size):
        raise ModelFileError(
            f"zoo:{entry.name}: the registry says images are {size} px but the architecture takes {image_size}"
        )
    _to_device_and_precision(model, device, precision)
    info = dict(model.domainclip_info)
    info["pretrained"] = f"{ZOO_PREFIX}{entry.name}"
    model.domainclip_info = info
    model.domainclip_zoo = {
        "name": entry.name, "format": entry.format, "licence": entry.licence,
        "folders": {role: str(path) for role, path in folders.items()},
    }
    return model


def _as_pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[-1])
    return int(value), int(value)
