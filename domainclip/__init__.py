"""domainclip: train, evaluate and publish domain-specialised CLIP models.

The top-level API is small and lazy: importing ``domainclip`` imports neither torch-heavy training
code nor any domain's optional dependency (openslide, decord, rasterio, trimesh...).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "create_model": "domainclip.core.models",
    "create_model_and_transforms": "domainclip.core.models",
    "get_tokenizer": "domainclip.core.models",
    "list_models": "domainclip.core.models",
    "load_model": "domainclip.core.models.loading",
    "export_run": "domainclip.core.engine.runs",
    "save_model_folder": "domainclip.core.hub",
    "list_domains": "domainclip.core.plugins",
    "get_domain": "domainclip.core.plugins",
    "list_recipes": "domainclip.core.resources",
    "load_recipe": "domainclip.core.recipe",
    "zero_shot_classify": "domainclip.core.eval",
    "retrieval_metrics": "domainclip.core.eval",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'domainclip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
