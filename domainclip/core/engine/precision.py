"""Mixed precision: autocast on GPU (bf16 or fp16 with a gradient scaler), plain fp32 on CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

__all__ = ["autocast_context", "make_grad_scaler"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_context(precision: str, device: torch.device) -> Callable[[], AbstractContextManager]:
    """A factory of autocast contexts for the forward pass.

    Mixed precision is used only on CUDA: on CPU the forward runs in fp32 whatever the recipe says,
    so CPU runs stay bit-reproducible.
    """
    if device.type == "cuda" and precision in _DTYPES:
        dtype = _DTYPES[precision]
        return lambda: torch.autocast(device_type="cuda", dtype=dtype)
    return contextlib.nullcontext


def make_grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16 on CUDA."""
    return torch.amp.GradScaler("cuda", enabled=(precision == "fp16" and device.type == "cuda"))
