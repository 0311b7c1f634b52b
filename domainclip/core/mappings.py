"""Nested mappings: :func:`deep_merge`, how recipes apply over their base and overrides over model configs."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["deep_merge"]


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``update`` merged in: mappings merge key by key, anything else replaces.

    Args:
        base: the mapping merged into; left unchanged.
        update: the values that win; left unchanged (the result holds copies).
    """
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
