"""torch.distributed set-up from the environment ``torchrun`` provides, and model wrapping."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from domainclip.core.errors import InputError

__all__ = ["DistInfo", "init_distributed", "wrap_model", "all_reduce_mean", "cleanup"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank, how many there are, and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the process that writes logs and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def _pick_device(requested: str, local_rank: int) -> torch.device:
    """The device ``train.device`` names (``auto``: this process's GPU when there is one, else the CPU)."""
    from domainclip.core.models.loading import check_device

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = check_device(requested)
    except InputError as e:
        raise InputError(f"train.device: {e}") from None
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if device.index is None else device.index)
        torch.cuda.set_device(device)
    return device


def init_distributed(device: str = "auto") -> DistInfo:
    """Initialise the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    NCCL is used on GPU and gloo on CPU. A single process needs no launcher.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def wrap_model(model: nn.Module, info: DistInfo, strategy: str = "ddp") -> nn.Module:
    """Wrap for data parallelism: DDP, or FSDP2 (``fully_shard`` per residual block, then the rest).

    FSDP2 shards no 0-dimensional parameter (CLIP's ``logit_scale``): those stay whole on every
    rank, their gradients averaged over the ranks like those of the sharded parameters.

    Args:
        model: the bare model, already on ``info.device``.
        info: this process's place in the process group (a single process is returned unwrapped).
        strategy: ``ddp`` or ``fsdp``.
    """
    if not info.distributed:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        scalars = {p for p in model.parameters() if p.ndim == 0}
        for param in scalars:
            if param.requires_grad:
                param.register_hook(all_reduce_mean)
        for module in model.modules():
            if type(module).__name__ in {"ResidualAttentionBlock", "Block", "BertLayer", "RobertaLayer"}:
                fully_shard(module, ignored_params=scalars)
        fully_shard(model, ignored_params=scalars)
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (identity without a process group)."""
    if dist.is_available() and dist.is_initialized():
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def cleanup() -> None:
    """Tear the process group down."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
