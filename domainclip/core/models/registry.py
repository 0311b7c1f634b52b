"""Model registry and factory: architecture configs, domain towers and ``create_model``.

Architectures are open_clip model configs (``embed_dim``, ``vision_cfg``, ``text_cfg``, ...).
domainclip adds the JSON configs in ``configs/`` (scanned at import, like open_clip's own) and
publishes their open_clip part into open_clip's registry, so plain ``open_clip.create_model`` and
``open_clip.get_tokenizer`` know ``dc-test-vit`` too. A domainclip config may carry two extra
top-level keys that open_clip never sees:

* ``"preprocess_cfg"``: image preprocessing (mean, std, interpolation, resize_mode) that travels with
  the architecture;
* ``"domainclip_cfg"``: a domain tower wrapped around the CLIP, e.g.
  ``{"tower": "video", "num_frames": 8, "pooling": "attention"}``. Towers are
  :class:`DomainCLIP` subclasses registered with :func:`register_tower`.

Every model from :func:`create_model` carries ``model.domainclip_info``, a JSON-serialisable dict with
the name, the weights' source, the open_clip ``model_cfg``, the ``preprocess_cfg`` and the
``domainclip_cfg``: enough for :func:`build_model_from_info` to rebuild the exact architecture and
preprocessing, and for :func:`domainclip.core.hub.save_model_folder` to write it as a hub folder.
Hub ids and folders resolve through :mod:`domainclip.core.hub`; :func:`read_folder_config` and
:func:`load_folder_weights` turn a folder into a model.

Hugging Face text towers (``text_cfg.hf_model_name``, e.g. ``dc-tiny-hf-text``) take a hub id or a
local folder holding a transformers ``config.json`` and tokenizer files::

    create_model("dc-tiny-hf-text")  # google/bert_uncased_L-2_H-128_A-2 (hub or HF cache), random init
    create_model("dc-tiny-hf-text", pretrained_text=True)  # ... with that BERT's own weights
    bert = "/models/bert"  # a local folder with config.json + tokenizer files, or another hub id
    create_model("dc-tiny-hf-text", text_cfg={"hf_model_name": bert, "hf_tokenizer_name": bert})

Exported hub folders keep a copy of the text tower's config (``text_config/``) and its tokenizer,
so they load offline without the original hub id.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import inspect
import json
import logging
import os
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import open_clip
import torch
from open_clip import factory as _open_clip_factory
from open_clip.coca_model import CoCa
from open_clip.model import CLIP, CustomTextCLIP, get_cast_dtype, set_model_preprocess_cfg
from open_clip.tokenizer import DEFAULT_CONTEXT_LENGTH, SimpleTokenizer
from open_clip.transform import AugmentationCfg, PreprocessCfg, image_transform_v2, merge_preprocess_dict
from safetensors import SafetensorError
from torch import nn

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.hub import (
    CONFIG_NAME,
    HF_TEXT_CONFIG_DIR,
    TOWER_WEIGHTS_NAME,
    ModelFileError,
    cached_hf_config,
    find_weights_file,
    hf_tokenizer,
    read_safetensors,
    resolve_folder,
)
from domainclip.core.mappings import deep_merge
from domainclip.core.models.lora import merged_state_dict
from domainclip.core.models.poolers import bind_text_pooler
from domainclip.core.plugins import UnknownNameError

__all__ = [
    "CONFIG_DIR",
    "DomainCLIP",
    "build_model",
    "build_model_from_info",
    "build_model_from_info_file",
    "create_model",
    "create_model_and_transforms",
    "get_image_transform",
    "get_model_config",
    "get_tokenizer",
    "get_tower",
    "list_models",
    "list_towers",
    "load_clip_weights",
    "load_folder_weights",
    "read_folder_config",
    "register_model_config",
    "register_tower",
    "split_model_config",
    "unwrap_clip",
]

logger = logging.getLogger(__name__)

#: Folder of domainclip's shipped architecture configs (``<name>.json``).
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: Keys of a domainclip config that are not part of open_clip's model config.
EXTRA_CONFIG_KEYS = ("preprocess_cfg", "domainclip_cfg")
REQUIRED_CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")
#: What loads a ``zoo:NAME`` spec (:mod:`domainclip.core.zoo`, which builds on this module).
ZOO_LOADER = "domainclip.core.zoo.loading:load_zoo_model"
#: Preprocessing keys domainclip adds to open_clip's (which plain open_clip ignores):
#: ``resize_to: [height, width]`` resizes evaluation images to that exact size before the centre crop,
#: as CAMMA's SurgVLP models were evaluated (360 x 640, then a 224 crop).
DOMAINCLIP_PREPROCESS_KEYS = ("resize_to",)
#: Precisions understood by open_clip's model set-up (``amp*`` keep fp32 weights).
PRECISIONS = ("fp32", "amp", "amp_bf16", "amp_bfloat16", "fp16", "bf16", "pure_fp16", "pure_bf16")

_CONFIGS: dict[str, dict[str, Any]] = {}
_TOWERS: dict[str, type[DomainCLIP]] = {}

T = TypeVar("T", bound=type)


# ----------------------------------------------------------------------------------------------------
# architecture configs
# ----------------------------------------------------------------------------------------------------


def _natural_key(text: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text.lower())]


def _jsonable(value: Any) -> Any:
    """Deep copy as plain JSON types (tuples become lists), so configs compare equal after a round trip."""
    return json.loads(json.dumps(value))


def split_model_config(cfg: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split a domainclip config into ``(model_cfg, preprocess_cfg, domainclip_cfg)``.

    ``model_cfg`` is what open_clip's model classes take; the other two are ``{}`` when absent.
    """
    cfg = copy.deepcopy(dict(cfg))
    preprocess_cfg = cfg.pop("preprocess_cfg", None) or {}
    domainclip_cfg = cfg.pop("domainclip_cfg", None) or {}
    return cfg, dict(preprocess_cfg), dict(domainclip_cfg)


def _check_config(name: str, cfg: Any, origin: str) -> None:
    if not isinstance(cfg, Mapping):
        raise TypeError(f"model config {name!r} ({origin}) must be a mapping, got {type(cfg).__name__}")
    missing = [key for key in REQUIRED_CONFIG_KEYS if key not in cfg]
    if missing:
        raise ValueError(
            f"model config {name!r} ({origin}) is missing {', '.join(missing)}: an open_clip model config "
            f"needs {', '.join(REQUIRED_CONFIG_KEYS)}"
        )
    for key in EXTRA_CONFIG_KEYS:
        if cfg.get(key) is not None and not isinstance(cfg[key], Mapping):
            raise TypeError(f"model config {name!r} ({origin}): {key!r} must be a mapping")
    tower_cfg = cfg.get("domainclip_cfg") or {}
    if tower_cfg and "tower" not in tower_cfg:
        raise ValueError(
            f"model config {name!r} ({origin}): domainclip_cfg needs a 'tower' key (one of the registered "
            f"towers, e.g. 'video' or 'multiview'), got keys {sorted(tower_cfg)}"
        )


def read_folder_config(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Read a model folder's ``open_clip_config.json`` as ``{model_cfg, preprocess_cfg, domainclip_cfg}``.

    Args:
        folder: a hub folder (see :mod:`domainclip.core.hub`).
    """
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise InputNotFoundError(f"{path} not found: a model folder needs {CONFIG_NAME} (model_cfg + preprocess_cfg)")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_cfg"), dict):
        raise InputError(f"{path} has no 'model_cfg' mapping (open_clip hub config layout)")
    _check_config(str(path), cfg["model_cfg"], str(path))
    out = {
        "model_cfg": cfg["model_cfg"],
        "preprocess_cfg": cfg.get("preprocess_cfg") or {},
        "domainclip_cfg": cfg.get("domainclip_cfg") or {},
    }
    for key in ("preprocess_cfg", "domainclip_cfg"):
        if not isinstance(out[key], dict):
            raise InputError(f"{path}: {key!r} must be a mapping")
    return out


def register_model_config(name: str, cfg: Mapping[str, Any], *, overwrite: bool = False) -> None:
    """Add an architecture config under ``name`` for domainclip and for open_clip.

    Args:
        name: model name used by :func:`create_model` (and ``open_clip.create_model``).
        cfg: an open_clip model config, optionally with top-level ``preprocess_cfg`` and
            ``domainclip_cfg``; only the open_clip part is published to open_clip.
        overwrite: replace an existing config of that name instead of raising.

    """
    if not overwrite and name in list_models():
        raise ValueError(f"model config {name!r} is already registered; pass overwrite=True to replace it")
    _check_config(name, cfg, "register_model_config")
    _CONFIGS[name] = copy.deepcopy(dict(cfg))
    model_cfg, _, _ = split_model_config(cfg)
    # open_clip's public add_model_config() only takes paths; its registry is a plain dict that its
    # rescans extend rather than replace, so adding the open_clip part directly is safe.
    _open_clip_factory._MODEL_CONFIGS[name] = model_cfg


def _scan_config_dir(folder: Path) -> None:
    for path in sorted(folder.glob("*.json")):
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"model config {path} is not valid JSON: {e}") from e
        _check_config(path.stem, cfg, str(path))
        register_model_config(path.stem, cfg, overwrite=True)


def list_models(pattern: str | None = None) -> list[str]:
    """Names of all architectures (open_clip's and domainclip's), optionally filtered by a glob.

    Args:
        pattern: case-insensitive shell pattern, e.g. ``"dc-*"`` or ``"*ViT-B*"``.

    """
    names = set(open_clip.list_models()) | set(_CONFIGS)
    if pattern is not None:
        names = {n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())}
    return sorted(names, key=_natural_key)


def get_model_config(name: str) -> dict[str, Any]:
    """Return a copy of the full config of a registered architecture (raises listing close names)."""
    if name in _CONFIGS:
        return copy.deepcopy(_CONFIGS[name])
    cleaned = name.replace("/", "-")  # open_clip accepts "ViT-B/32" for "ViT-B-32"
    if cleaned in open_clip.list_models():
        return copy.deepcopy(open_clip.get_model_config(cleaned))
    raise UnknownNameError("model", name, list_models())


# ----------------------------------------------------------------------------------------------------
# domain towers
# ----------------------------------------------------------------------------------------------------


class DomainCLIP(nn.Module):
    """Base class of domain towers: an open_clip CLIP (``self.clip``) plus a few domain layers.

    The CLIP's state dict sits under ``clip.``; everything else is the tower's own (see
    :meth:`tower_state_dict`), which lets the hub export keep the CLIP loadable by plain open_clip.
    The wrapper behaves like the CLIP it wraps: ``visual``, ``logit_scale``, ``logit_bias``,
    ``encode_image``, ``encode_text``, ``lock_*_tower`` and ``set_grad_checkpointing`` are explicit;
    any other attribute (``transformer``, ``text``, ``context_length``...) is read from the CLIP.
    Subclasses implement ``forward`` returning open_clip's output dict, so losses work unchanged.

    Args:
        clip: the open_clip model (``CLIP`` or ``CustomTextCLIP``).
        embed_dim: its joint embedding width.

    """

    tower_name: str = ""

    def __init__(self, clip: nn.Module, embed_dim: int):
        super().__init__()
        self.clip = clip
        self.embed_dim = int(embed_dim)

    @property
    def visual(self) -> nn.Module:
        """The CLIP image tower (it also holds ``preprocess_cfg``)."""
        return self.clip.visual

    @property
    def logit_scale(self) -> nn.Parameter:
        """The CLIP's learnable temperature (log scale), shared with the base model."""
        return self.clip.logit_scale

    @property
    def logit_bias(self) -> nn.Parameter | None:
        """The CLIP's SigLIP logit bias, or None."""
        return self.clip.logit_bias

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embed single images (B, C, H, W) with the CLIP image tower."""
        return self.clip.encode_image(image, normalize=normalize)

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embed token ids (B, L) with the CLIP text tower."""
        return self.clip.encode_text(text, normalize=normalize)

    def lock_image_tower(self, unlocked_groups: int = 0, freeze_bn_stats: bool = False) -> None:
        """Freeze the CLIP image tower (LiT), leaving the last ``unlocked_groups`` trainable."""
        self.clip.lock_image_tower(unlocked_groups=unlocked_groups, freeze_bn_stats=freeze_bn_stats)

    def lock_text_tower(self, unlocked_layers: int = 0, freeze_layer_norm: bool = True) -> None:
        """Freeze the CLIP text tower, leaving the last ``unlocked_layers`` trainable."""
        self.clip.lock_text_tower(unlocked_layers=unlocked_layers, freeze_layer_norm=freeze_layer_norm)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Turn activation checkpointing on or off in the CLIP towers and in the domain layers."""
        self.clip.set_grad_checkpointing(enable)
        for name, module in self.named_children():
            if name != "clip" and hasattr(module, "set_grad_checkpointing"):
                module.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameter names to exclude from weight decay (the CLIP's, prefixed, plus the tower's)."""
        base = self.clip.no_weight_decay() if hasattr(self.clip, "no_weight_decay") else set()
        return {f"clip.{n}" for n in base} | self.tower_no_weight_decay()

    def tower_no_weight_decay(self) -> set[str]:
        """Parameter names to exclude from weight decay: the towers' positional embeddings and pooling queries."""
        return {n for n, _ in self.named_parameters() if n.endswith(("positional_embedding", "query"))}

    def export_clip_state_dict(self) -> dict[str, torch.Tensor]:
        """The CLIP's weights as plain open_clip loads them, for the hub folder's ``open_clip_model.safetensors``.

        This is ``self.clip.state_dict()``, except that LoRA adapters (:func:`~domainclip.core.models.lora.apply_lora`)
        are merged into their base weights and open_clip's own key names come back
        (:func:`~domainclip.core.models.lora.merged_state_dict`), so ``open_clip.create_model`` on the exported
        file gives this model's CLIP embeddings. A tower whose CLIP weights need another transformation
        before export overrides this.
        """
        return merged_state_dict(self.clip)

    def tower_state_dict(self) -> dict[str, torch.Tensor]:
        """Return the domain layers' weights only (keys not under ``clip.``)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("clip.")}

    def load_tower_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True) -> None:
        """Load weights saved by :meth:`tower_state_dict`; with ``strict`` every tower key must match."""
        stray = [k for k in state_dict if k.startswith("clip.")]
        if stray:
            raise ValueError(f"tower state dict holds CLIP keys (e.g. {stray[0]!r}); load those into .clip")
        result = self.load_state_dict(dict(state_dict), strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("clip.")]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(
                f"{type(self).__name__} tower weights do not match: missing {missing}, "
                f"unexpected {list(result.unexpected_keys)}"
            )

    def encode_image_set(self, images: torch.Tensor, what: str = "images", dims: str = "B, N") -> torch.Tensor:
        """Embed every image of a stack (frames of a clip, views of an object): (B, N, C, H, W) -> (B, N, D).

        ``what`` and ``dims`` name the input in the shape error (e.g. ``"video"``, ``"B, T"``).
        """
        if images.ndim != 5:
            raise ValueError(f"expected {what} of shape ({dims}, C, H, W), got {tuple(images.shape)}")
        batch, count = images.shape[:2]
        return self.clip.encode_image(images.flatten(0, 1)).reshape(batch, count, -1)

    def set_forward(
        self,
        name: str,
        stack: torch.Tensor | None,
        encode_stack: Callable[[torch.Tensor], torch.Tensor],
        image: torch.Tensor | None,
        text: torch.Tensor | None,
    ) -> dict:
        """Forward of a tower over image stacks: ``image_features`` embed ``stack`` (or single ``image``)."""
        if stack is not None and image is not None:
            raise ValueError(f"pass either {name} or image, not both")
        if stack is not None:
            image_features = encode_stack(stack)
        elif image is not None:
            image_features = self.encode_image(image, normalize=True)
        else:
            image_features = None
        text_features = self.encode_text(text, normalize=True) if text is not None else None
        return self.clip_output(image_features, text_features)

    def clip_output(self, image_features: torch.Tensor | None, text_features: torch.Tensor | None) -> dict:
        """Pack features the way open_clip's ``output_dict=True`` forward does."""
        out: dict[str, Any] = {
            "image_features": image_features,
            "text_features": text_features,
            "logit_scale": self.logit_scale.exp(),
        }
        if self.logit_bias is not None:
            out["logit_bias"] = self.logit_bias
        return out

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules", {})
            if name.startswith("__") or "clip" not in modules:
                raise
            return getattr(modules["clip"], name)


def register_tower(name: str) -> Callable[[T], T]:
    """Class decorator registering a :class:`DomainCLIP` subclass as ``domainclip_cfg["tower"] = name``.

    The class is built as ``cls(clip, embed_dim=..., **domainclip_cfg_without_tower)``.
    """

    def decorator(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, DomainCLIP)):
            raise TypeError(f"tower {name!r} must be a DomainCLIP subclass, got {cls!r}")
        existing = _TOWERS.get(name)
        if existing is not None and (existing.__module__, existing.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise ValueError(f"tower {name!r} is already registered to {existing.__module__}.{existing.__qualname__}")
        cls.tower_name = name
        _TOWERS[name] = cls
        return cls

    return decorator


def _domain_towers() -> dict[str, str]:
    """Tower name -> ``"module:Class"`` declared by the domains (their specs only; nothing heavy is imported)."""
    from domainclip.core.plugins import get_domain, list_domains

    return {name: target for domain in list_domains() for name, target in get_domain(domain).towers.items()}


def list_towers() -> list[str]:
    """Names of the registered domain towers and of those the domains declare."""
    return sorted(set(_TOWERS) | set(_domain_towers()))


def get_tower(name: str) -> type[DomainCLIP]:
    """Return the tower class registered under ``name``, importing a domain's tower on first use.

    Raises:
        UnknownNameError: no tower of that name (the message lists close names).
    """
    if name not in _TOWERS:
        target = _domain_towers().get(name)
        if target is not None:
            from domainclip.core.plugins import resolve

            resolve(target)  # importing the module registers the tower
    if name not in _TOWERS:
        raise UnknownNameError("domain tower", name, list_towers())
    return _TOWERS[name]


def unwrap_clip(model: nn.Module) -> nn.Module:
    """Return the open_clip model inside ``model`` (itself when it has no domain tower)."""
    return model.clip if isinstance(model, DomainCLIP) else model


def _constructor_params(cls: type, skip: tuple[str, ...]) -> list[str]:
    params = inspect.signature(cls.__init__).parameters
    return [p for p in params if p not in ("self", *skip)]


def tower_settings(cls: type[DomainCLIP]) -> list[str]:
    """The ``domainclip_cfg`` settings a tower class takes (its constructor's, beyond the CLIP it wraps)."""
    return _constructor_params(cls, ("clip", "embed_dim"))


def _wrap_tower(clip: nn.Module, embed_dim: int, domainclip_cfg: Mapping[str, Any]) -> DomainCLIP:
    tower_cfg = dict(domainclip_cfg)
    tower = tower_cfg.pop("tower", None)
    if tower is None:
        raise ValueError(f"domainclip_cfg needs a 'tower' key, one of: {', '.join(list_towers())}")
    cls = get_tower(tower)
    known = tower_settings(cls)
    for key in tower_cfg:
        if key not in known:
            raise UnknownNameError(f"{tower} tower setting", key, known)
    return cls(clip, embed_dim=embed_dim, **tower_cfg)


# ----------------------------------------------------------------------------------------------------
# building models
# ----------------------------------------------------------------------------------------------------


def _local_hf_text_config(source_dir: str | Path | None) -> Path | None:
    if source_dir is None:
        return None
    candidate = Path(source_dir) / HF_TEXT_CONFIG_DIR
    return candidate if (candidate / "config.json").is_file() else None


def build_model(
    model_cfg: Mapping[str, Any],
    preprocess_cfg: Mapping[str, Any] | None = None,
    domainclip_cfg: Mapping[str, Any] | None = None,
    *,
    precision: str = "fp32",
    pretrained_image: bool = False,
    pretrained_text: bool = False,
    output_dict: bool = True,
    source_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> nn.Module:
    """Instantiate an architecture from its configs, with random weights, on the CPU.

    This is the single place where open_clip model classes are instantiated; :func:`create_model`
    adds weight loading, device and precision. Preprocessing is merged onto open_clip's defaults
    and attached to ``model.visual.preprocess_cfg`` (its ``size`` follows the image tower).

    Args:
        model_cfg: open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``, ...).
        preprocess_cfg: preprocessing overrides (mean, std, interpolation, resize_mode, ...).
        domainclip_cfg: domain tower settings (``{"tower": ..., ...}``) or empty for a plain CLIP.
        precision: one of :data:`PRECISIONS`; picks open_clip's cast dtype for fp16/bf16.
        pretrained_image: load a timm image tower's own pretrained weights (downloads).
        pretrained_text: load a Hugging Face text tower's own pretrained weights (downloads).
        output_dict: make the CLIP's ``forward`` return a dict (domain towers always do).
        source_dir: folder the config came from; its ``text_config/`` (if any) replaces the hub id
            of a Hugging Face text tower so loading works offline.
        cache_dir: Hugging Face cache where a text tower's hub id is looked up when the folder has no
            ``text_config/`` (:func:`~domainclip.core.hub.cached_hf_config`).

    """
    cfg = copy.deepcopy(dict(model_cfg))
    custom_text = bool(cfg.pop("custom_text", False))
    vision_cfg = dict(cfg.get("vision_cfg") or {})
    text_cfg = dict(cfg.get("text_cfg") or {})
    is_timm = bool(vision_cfg.get("timm_model_name"))
    is_hf_text = bool(text_cfg.get("hf_model_name"))
    if is_timm:
        vision_cfg["timm_model_pretrained"] = bool(pretrained_image)
    if is_hf_text:
        text_cfg["hf_model_pretrained"] = bool(pretrained_text)
        local_text_config = _local_hf_text_config(source_dir)
        if local_text_config is None and not pretrained_text:
            local_text_config = cached_hf_config(text_cfg["hf_model_name"], cache_dir=cache_dir)
        if local_text_config is not None:
            text_cfg["hf_model_name"] = str(local_text_config)
    cfg["vision_cfg"], cfg["text_cfg"] = vision_cfg, text_cfg

    if custom_text or is_hf_text:
        model_class: type[nn.Module] = CoCa if "multimodal_cfg" in cfg else CustomTextCLIP
    else:
        model_class = CLIP
    known = _constructor_params(model_class, ("cast_dtype", "output_dict"))
    for key in cfg:
        if key not in known:
            raise UnknownNameError(f"{model_class.__name__} config key", key, known)
    kwargs: dict[str, Any] = {"cast_dtype": get_cast_dtype(precision)}
    if "output_dict" in inspect.signature(model_class.__init__).parameters:
        kwargs["output_dict"] = output_dict
    try:
        clip = model_class(**cfg, **kwargs)
    except OSError as e:
        if not is_hf_text:
            raise
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OSError(
            f"Hugging Face text tower {text_cfg['hf_model_name']!r} could not be loaded ({first_line}). "
            "Offline, point text_cfg.hf_model_name and hf_tokenizer_name at a local folder holding its "
            "config.json and tokenizer files."
        ) from e

    bind_text_pooler(clip)  # a pooler reading intermediate layers gets them (core/models/poolers.py)
    final_preprocess = merge_preprocess_dict(PreprocessCfg(), dict(preprocess_cfg or {}))
    image_size = getattr(clip.visual, "image_size", None)
    if image_size is not None:
        final_preprocess["size"] = image_size
    resize_to = (preprocess_cfg or {}).get("resize_to")
    if resize_to is not None:
        if not (isinstance(resize_to, (list, tuple)) and len(resize_to) == 2 and all(
                isinstance(v, int) and v > 0 for v in resize_to)):
            raise ValueError(f"preprocess_cfg.resize_to must be [height, width] in pixels, got {resize_to!r}")
        final_preprocess["resize_to"] = list(resize_to)
    set_model_preprocess_cfg(clip, _jsonable(final_preprocess))

    if domainclip_cfg:
        return _wrap_tower(clip, int(cfg["embed_dim"]), domainclip_cfg)
    return clip


def _make_info(
    name: str,
    pretrained: str | None,
    model_cfg: Mapping[str, Any],
    preprocess_cfg: Mapping[str, Any],
    domainclip_cfg: Mapping[str, Any],
    source_dir: str | Path | None,
) -> dict[str, Any]:
    return _jsonable(
        {
            "name": name,
            "pretrained": pretrained,
            "model_cfg": dict(model_cfg),
            "preprocess_cfg": dict(preprocess_cfg),
            "domainclip_cfg": dict(domainclip_cfg),
            "source_dir": str(source_dir) if source_dir is not None else None,
        }
    )


def build_model_from_info(
    info: Mapping[str, Any], *, device: str | torch.device = "cpu", precision: str = "fp32"
) -> nn.Module:
    """Rebuild the architecture described by a ``model.domainclip_info`` dict, with random weights.

    Used to load checkpoints (the engine saves the info as ``model_info.json``): no pretrained
    weights are fetched, so it works offline.
    """
    missing = [k for k in ("name", "model_cfg", "preprocess_cfg", "domainclip_cfg") if k not in info]
    if missing:
        raise ValueError(f"domainclip_info is missing {', '.join(missing)}")
    model = build_model(
        info["model_cfg"],
        info["preprocess_cfg"],
        info["domainclip_cfg"],
        precision=precision,
        source_dir=info.get("source_dir"),
    )
    _to_device_and_precision(model, device, precision)
    model.domainclip_info = _jsonable(dict(info))
    return model


def build_model_from_info_file(
    path: str | Path, *, device: str | torch.device = "cpu", precision: str = "fp32"
) -> nn.Module:
    """Rebuild the architecture a ``model_info.json`` (a saved ``domainclip_info``) describes, random weights.

    Args:
        path: the JSON file (a training run writes one, see :mod:`domainclip.core.engine.runs`).
        device: where to put the model.
        precision: one of :data:`PRECISIONS`.

    Raises:
        ModelFileError: the file is not JSON or does not describe a model.
    """
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(info, dict):
        raise ModelFileError(f"{path} must hold a JSON object, got {type(info).__name__}")
    try:
        return build_model_from_info(info, device=device, precision=precision)
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFileError(f"{path} does not describe a model: {e}") from e


def load_clip_weights(model: nn.Module, path: str | Path) -> None:
    """Load one weights file into the CLIP of ``model`` (strict, via open_clip), refusing pickled objects.

    A ``.safetensors`` file is read as it is; any other file (``.pt``/``.bin`` state dicts such as
    RemoteCLIP's, or an open_clip training checkpoint with a ``state_dict`` key) with
    ``torch.load(weights_only=True)``, so tensors, numbers and containers load but no Python object
    in the file is ever unpickled. The file is read once to check it, then by open_clip, which
    adapts the keys (``module.`` prefixes, resized position embeddings) and loads them.

    Args:
        model: a model from :func:`create_model` (a domain tower's CLIP is ``model.clip``).
        path: the weights file.

    Raises:
        ModelFileError: one line: the file cannot be read, holds pickled objects, or its weights do
            not fit the architecture (missing, unexpected or differently shaped keys).
    """
    try:
        _open_clip_factory.load_state_dict(str(path), weights_only=True)
    except SafetensorError as e:
        raise ModelFileError(f"{path} is not a readable safetensors file: {e}") from e
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
        what = f"a pickled Python object ({found.group(1)})" if found else "data that is not a tensor state dict"
        raise ModelFileError(
            f"{path} holds {what}: refused, weights are read with torch.load(weights_only=True) and nothing else "
            "is unpickled; save the model's state_dict() (tensors only) or a .safetensors file"
        ) from None
    except Exception as e:  # torch.load's parser fails on a damaged file in many ways (EOF, index, zip errors)
        raise ModelFileError(f"{path} cannot be read as a weights file: {type(e).__name__}: {_one_line(e)}") from e
    try:
        open_clip.load_checkpoint(unwrap_clip(model), str(path), strict=True, weights_only=True)
    except (RuntimeError, AssertionError) as e:  # load_state_dict's mismatch report; open_clip's resize checks
        if isinstance(e, RuntimeError) and not str(e).startswith("Error(s) in loading state_dict"):
            raise
        raise ModelFileError(f"weights in {path} do not fit the architecture: {_one_line(e)}") from e


def _one_line(error: BaseException, limit: int = 400) -> str:
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text if len(text) <= limit else text[:limit] + " ..."


def load_folder_weights(model: nn.Module, folder: str | Path, *, require_tower: bool = False) -> None:
    """Load a folder's CLIP weights (strict, via open_clip) and its domain tower weights if present.

    Args:
        model: a model from :func:`create_model` of the folder's architecture.
        folder: a hub folder.
        require_tower: fail if ``model`` has tower parameters and the folder has no tower file
            (the folder's own config declares the tower); otherwise the tower keeps its initialisation.

    """
    folder = Path(folder)
    load_clip_weights(model, find_weights_file(folder))
    tower_file = folder / TOWER_WEIGHTS_NAME
    if isinstance(model, DomainCLIP):
        if tower_file.is_file():
            model.load_tower_state_dict(read_safetensors(tower_file))
        elif model.tower_state_dict():
            if require_tower:
                raise InputNotFoundError(
                    f"{tower_file} not found: the folder's config declares a {model.tower_name} tower with weights"
                )
            logger.info("%s has no %s: the %s tower layers start fresh", folder, TOWER_WEIGHTS_NAME, model.tower_name)
    elif tower_file.is_file():
        logger.warning("%s holds domain tower weights that this plain CLIP does not use", tower_file)


def _to_device_and_precision(model: nn.Module, device: str | torch.device, precision: str) -> None:
    clip = unwrap_clip(model)
    is_timm = "TimmModel" in type(clip.visual).__name__
    _open_clip_factory._set_model_device_and_precision(model, torch.device(device), precision, is_timm)
    if precision in ("fp16", "bf16") and isinstance(model, DomainCLIP):
        # open_clip casts only its own layer types; keep each domain layer in one dtype
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        for name, module in model.named_children():
            if name != "clip":
                module.to(dtype)


@dataclass
class _Source:
    """Where an architecture and its weights come from."""

    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any] = field(default_factory=dict)
    domainclip_cfg: dict[str, Any] = field(default_factory=dict)
    weights_dir: Path | None = None  # hub folder: open_clip_model.safetensors (+ domainclip_tower.safetensors)
    checkpoint: str | None = None  # a single weights file for the CLIP
    source_dir: Path | None = None  # folder the config itself came from
    pretrained: str | None = None  # what domainclip_info records as the weights' source


def _resolve_source(name: str, pretrained: str | None, cache_dir: str | None) -> _Source:
    folder = resolve_folder(name, cache_dir=cache_dir)
    if folder is not None:
        if pretrained is not None:
            raise ValueError(
                f"pretrained={pretrained!r} cannot be combined with {name!r}: the weights come from that folder"
            )
        cfg = read_folder_config(folder.path)
        return _Source(
            cfg["model_cfg"],
            cfg["preprocess_cfg"],
            cfg["domainclip_cfg"],
            weights_dir=folder.path,
            source_dir=folder.path,
            pretrained=folder.spec,
        )

    model_cfg, preprocess_cfg, domainclip_cfg = split_model_config(get_model_config(name))
    source = _Source(model_cfg, preprocess_cfg, domainclip_cfg, pretrained=pretrained)
    if pretrained is None:
        return source
    folder = resolve_folder(pretrained, cache_dir=cache_dir, bare_paths=True)
    if folder is not None:
        if (folder.path / CONFIG_NAME).is_file():
            folder_pp = read_folder_config(folder.path)["preprocess_cfg"]
            source.preprocess_cfg = merge_preprocess_dict(source.preprocess_cfg, folder_pp)
        source.weights_dir, source.pretrained = folder.path, folder.spec
    elif os.path.isfile(pretrained):
        source.checkpoint = pretrained
    else:
        tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
        if not tag_cfg:
            raise UnknownNameError(
                f"pretrained weights for {name!r} (not a file, a folder, an hf-hub: id or an open_clip tag)",
                pretrained,
                open_clip.list_pretrained_tags_by_model(name),
            )
        try:
            source.checkpoint = open_clip.download_pretrained(tag_cfg, cache_dir=cache_dir)
        except Exception as e:  # open_clip raises a mix of OSError/RuntimeError/HTTP errors
            raise OSError(f"cannot fetch open_clip weights {name!r} pretrained={pretrained!r}: {e}") from e
        source.preprocess_cfg = merge_preprocess_dict(source.preprocess_cfg, tag_cfg)
        if tag_cfg.get("quick_gelu"):
            # the weights were trained with QuickGELU: build what they expect (open_clip only warns)
            source.model_cfg["quick_gelu"] = True
    return source


def _split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any]:
    model_overrides = {k: v for k, v in overrides.items() if k not in EXTRA_CONFIG_KEYS}
    return model_overrides, dict(overrides.get("preprocess_cfg") or {}), overrides.get("domainclip_cfg", {})


def create_model(
    name: str,
    pretrained: str | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    cache_dir: str | None = None,
    pretrained_image: bool = False,
    pretrained_text: bool = False,
    output_dict: bool = True,
    **overrides: Any,
) -> nn.Module:
    """Create a CLIP (or a domain tower around one), optionally with pretrained weights.

    Args:
        name: a registered architecture (:func:`list_models`), ``hf-hub:org/name[@revision]``,
            ``local-dir:PATH`` (an exported hub folder: config and weights come from it) or
            ``zoo:NAME`` (a published model, converted from its native format: :mod:`domainclip.core.zoo`).
        pretrained: weights for a registered architecture: None (random init), an open_clip tag
            (``"openai"``, resolved by open_clip), ``hf-hub:org/name[@revision]``, a local hub folder,
            or a weights file (``.safetensors``; other formats load with ``weights_only=True``).
            Hub ids resolve from the Hugging Face cache when offline (``HF_HUB_OFFLINE=1``).
        device: where to put the model.
        precision: one of :data:`PRECISIONS`.
        cache_dir: Hugging Face / open_clip cache folder (default: ``HF_HUB_CACHE``/``HF_HOME``).
        pretrained_image: without full CLIP weights, load a timm image tower's own pretrained weights.
        pretrained_text: without full CLIP weights, load a Hugging Face text tower's own weights.
        output_dict: plain CLIPs return open_clip's output dict from ``forward`` (as towers do).
        **overrides: deep-merged into the config: model config keys (``vision_cfg={"image_size": 64}``,
            ``text_cfg={"hf_model_name": "/models/bert"}``, ``init_logit_bias=-10``), plus
            ``preprocess_cfg={...}`` and ``domainclip_cfg={...}`` (``domainclip_cfg=None`` drops a tower).

    Returns:
        The model, with ``model.domainclip_info`` describing how to rebuild it.

    """
    if precision not in PRECISIONS:
        raise UnknownNameError("precision", precision, list(PRECISIONS))
    if name.startswith("zoo:"):
        if pretrained is not None:
            raise ValueError(f"pretrained={pretrained!r} cannot be combined with {name!r}: its weights are the zoo's")
        from domainclip.core.plugins import resolve

        # the zoo sits above this factory (it builds its models here): imported by name, on first use
        load_zoo_model = resolve(ZOO_LOADER)
        return load_zoo_model(name, device=device, precision=precision, cache_dir=cache_dir, **overrides)
    source = _resolve_source(name, pretrained, cache_dir)
    model_overrides, preprocess_overrides, domainclip_override = _split_overrides(overrides)
    model_cfg = deep_merge(source.model_cfg, model_overrides)
    preprocess_cfg = deep_merge(source.preprocess_cfg, preprocess_overrides)
    if domainclip_override is None:
        domainclip_cfg: dict[str, Any] = {}
    else:
        domainclip_cfg = deep_merge(source.domainclip_cfg, domainclip_override)
    has_weights = source.weights_dir is not None or source.checkpoint is not None

    model = build_model(
        model_cfg,
        preprocess_cfg,
        domainclip_cfg,
        precision=precision,
        pretrained_image=pretrained_image and not has_weights,
        pretrained_text=pretrained_text and not has_weights,
        output_dict=output_dict,
        source_dir=source.source_dir,
        cache_dir=cache_dir,
    )
    if source.weights_dir is not None:
        load_folder_weights(model, source.weights_dir, require_tower=source.source_dir is not None)
    elif source.checkpoint is not None:
        load_clip_weights(model, source.checkpoint)
    _to_device_and_precision(model, device, precision)
    model.domainclip_info = _make_info(
        name, source.pretrained, model_cfg, model.visual.preprocess_cfg, domainclip_cfg, source.source_dir
    )
    return model


def get_image_transform(
    model: nn.Module, *, is_train: bool = False, aug_cfg: Mapping[str, Any] | AugmentationCfg | None = None
) -> Callable[[Any], torch.Tensor]:
    """Return the open_clip image transform matching ``model``'s preprocessing (PIL image -> tensor).

    Args:
        model: a model from :func:`create_model` (reads ``model.visual.preprocess_cfg``).
        is_train: add open_clip's training augmentation (random resized crop, ...).
        aug_cfg: open_clip augmentation settings for training.

    With ``resize_to: [height, width]`` in the preprocessing (:data:`DOMAINCLIP_PREPROCESS_KEYS`), the
    evaluation transform resizes to exactly that size, then centre-crops the model's input size,
    then normalises; training keeps open_clip's random resized crop.
    """
    raw = dict(model.visual.preprocess_cfg)
    resize_to = raw.pop("resize_to", None)
    cfg = PreprocessCfg(**{k: v for k, v in raw.items() if k not in DOMAINCLIP_PREPROCESS_KEYS})
    if resize_to is not None and not is_train:
        from open_clip.transform import _convert_to_rgb
        from torchvision import transforms

        modes = {"bicubic": transforms.InterpolationMode.BICUBIC, "bilinear": transforms.InterpolationMode.BILINEAR,
                 "nearest": transforms.InterpolationMode.NEAREST, "lanczos": transforms.InterpolationMode.LANCZOS}
        return transforms.Compose([
            transforms.Resize(tuple(resize_to), interpolation=modes.get(cfg.interpolation, modes["bilinear"])),
            transforms.CenterCrop(cfg.size),
            _convert_to_rgb,
            transforms.ToTensor(),
            transforms.Normalize(mean=cfg.mean, std=cfg.std),
        ])
    return image_transform_v2(
        cfg, is_train=is_train, aug_cfg=dict(aug_cfg) if isinstance(aug_cfg, Mapping) else aug_cfg
    )


def create_model_and_transforms(
    name: str,
    pretrained: str | None = None,
    *,
    aug_cfg: Mapping[str, Any] | AugmentationCfg | None = None,
    **kwargs: Any,
) -> tuple[nn.Module, Callable[[Any], torch.Tensor], Callable[[Any], torch.Tensor]]:
    """:func:`create_model` plus its training and validation image transforms.

    Returns:
        ``(model, preprocess_train, preprocess_val)``; per-frame / per-view for domain towers.

    """
    model = create_model(name, pretrained, **kwargs)
    return (
        model,
        get_image_transform(model, is_train=True, aug_cfg=aug_cfg),
        get_image_transform(model, is_train=False),
    )


def _tokenizer_from_cfg(
    name: str,
    text_cfg: Mapping[str, Any],
    source_dir: str | Path | None,
    cache_dir: str | None,
    context_length: int | None,
) -> Callable[..., torch.Tensor]:
    length = context_length or text_cfg.get("context_length") or DEFAULT_CONTEXT_LENGTH
    hf = hf_tokenizer(text_cfg, source_dir, context_length=length, cache_dir=cache_dir)
    if hf is not None:
        return hf
    if "siglip" in name.lower() and name in open_clip.list_models():  # open_clip's SigLIP vocabularies
        return open_clip.get_tokenizer(name, context_length=length, cache_dir=cache_dir)
    return _simple_tokenizer(length, json.dumps(text_cfg.get("tokenizer_kwargs") or {}, sort_keys=True))


@functools.lru_cache(maxsize=16)
def _simple_tokenizer(context_length: int, kwargs_json: str) -> SimpleTokenizer:
    # building open_clip's BPE tokenizer reads its 1.3 MB vocabulary; it is stateless but for a memo cache
    return SimpleTokenizer(context_length=context_length, **json.loads(kwargs_json))


def get_tokenizer(
    name_or_model: str | nn.Module, *, context_length: int | None = None, cache_dir: str | None = None
) -> Callable[..., torch.Tensor]:
    """Return the tokenizer of an architecture name, a hub id / folder, or a model from :func:`create_model`.

    A model's own text config is used (so overrides such as ``context_length`` are honoured), and a
    Hugging Face tokenizer saved in the folder the model came from is preferred over the hub.
    """
    if isinstance(name_or_model, nn.Module):
        info = getattr(name_or_model, "domainclip_info", None)
        if info is None:
            raise TypeError("this model has no domainclip_info: create it with create_model, or pass its name")
        name, text_cfg, source_dir = info["name"], info["model_cfg"]["text_cfg"], info.get("source_dir")
    else:
        name = name_or_model
        folder = resolve_folder(name, cache_dir=cache_dir)
        if folder is not None:
            text_cfg = read_folder_config(folder.path)["model_cfg"]["text_cfg"]
            source_dir: str | Path | None = folder.path
        else:
            text_cfg = split_model_config(get_model_config(name))[0]["text_cfg"]
            source_dir = None
    return _tokenizer_from_cfg(name, text_cfg, source_dir, cache_dir, context_length)


_scan_config_dir(CONFIG_DIR)
