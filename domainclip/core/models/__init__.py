"""Models: open_clip architectures plus domainclip's tiny configs and domain towers.

``create_model`` / ``create_model_and_transforms`` / ``get_tokenizer`` / ``list_models`` mirror
open_clip's factory; ``domainclip_cfg`` in a config wraps the CLIP in a registered domain tower
(``video``: :class:`VideoCLIP`, ``spacetime``: :class:`SpaceTimeCLIP`, ``multiview``:
:class:`MultiViewCLIP`). Loading a trained model from a run, a folder or a hub id is
:func:`domainclip.core.models.loading.load_model` (``domainclip.load_model``).
"""

from domainclip.core.models.multiview import MultiViewCLIP
from domainclip.core.models.registry import (
    CONFIG_DIR,
    DomainCLIP,
    build_model,
    build_model_from_info,
    create_model,
    create_model_and_transforms,
    get_image_transform,
    get_model_config,
    get_tokenizer,
    get_tower,
    list_models,
    list_towers,
    register_model_config,
    register_tower,
    split_model_config,
    unwrap_clip,
)
from domainclip.core.models.spacetime import SpaceTimeCLIP, SpaceTimeEncoder
from domainclip.core.models.video import AttentionPool, MeanPool, TransformerPool, VideoCLIP, build_set_pooler

__all__ = [
    "CONFIG_DIR",
    "AttentionPool",
    "DomainCLIP",
    "MeanPool",
    "MultiViewCLIP",
    "SpaceTimeCLIP",
    "SpaceTimeEncoder",
    "TransformerPool",
    "VideoCLIP",
    "build_model",
    "build_model_from_info",
    "build_set_pooler",
    "create_model",
    "create_model_and_transforms",
    "get_image_transform",
    "get_model_config",
    "get_tokenizer",
    "get_tower",
    "list_models",
    "list_towers",
    "register_model_config",
    "register_tower",
    "split_model_config",
    "unwrap_clip",
]
