"""AdamW with weight-decay exclusions, and warmup + cosine/linear/constant schedules."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["build_optimizer", "build_scheduler", "lr_factor"]


def _excluded(name: str, param: torch.Tensor, patterns: list[str]) -> bool:
    return param.ndim < 2 or any(p in name for p in patterns)


def build_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    eps: float,
    no_decay: list[str],
    fused: bool = True,
) -> torch.optim.AdamW:
    """AdamW over trainable parameters, without weight decay for 1-D tensors and ``no_decay`` names.

    Biases, norms, embeddings and the logit scale are not decayed, as in open_clip. With ``fused``
    torch's fused kernel is used where every parameter allows it (floating tensors on CPU or CUDA,
    FSDP2's DTensors included, as torchtitan does): on CPU it makes the step of a small model several
    times faster (``bench/bench_train_step.py``), and it can skip a step on the device (``found_inf``),
    which the engine's non-finite guard uses instead of reading the loss back.
    """
    decay, no_decay_params = [], []
    # domain towers name their own exclusions (temporal positional embeddings, pooling queries)
    tower_excluded = model.tower_no_weight_decay() if hasattr(model, "tower_no_weight_decay") else set()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        excluded = name in tower_excluded or _excluded(name, param, no_decay)
        (no_decay_params if excluded else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay_params, "weight_decay": 0.0},
    ]
    params = decay + no_decay_params
    use_fused = fused and bool(params) and all(_fusable(p) for p in params)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, fused=True if use_fused else None)


def _fusable(param: torch.Tensor) -> bool:
    """A floating parameter on a device with fused kernels: a plain ``nn.Parameter`` or an FSDP2 DTensor."""
    from torch.distributed.tensor import DTensor

    if type(param) is not nn.Parameter and not isinstance(param, DTensor):
        return False
    return param.device.type in _fused_devices() and param.dtype.is_floating_point


def _fused_devices() -> set[str]:
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    return set(_get_fused_kernels_supported_devices())


def lr_factor(step: int, *, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio + (1.0 - min_ratio) * shape


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, total: int, warmup: int, schedule: str, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR (so its state is checkpointed) following :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(step, total=total, warmup=warmup, schedule=schedule, min_ratio=min_ratio),
    )
