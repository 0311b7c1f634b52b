"""Atomic, resumable checkpoints.

A checkpoint is a folder ``checkpoints/step_<step, 8 digits>/`` holding

- ``model.safetensors``: the full model state dict (no DDP/FSDP prefixes), loadable on its own;
- ``state.pt``: the full optimizer state (keyed by parameter names, gathered from every rank, so a
  run resumes on another number of processes or another strategy), scheduler, grad scaler, step,
  per-rank data positions and RNG states, written with plain containers and tensors so it loads
  with ``torch.load(weights_only=True)``;
- ``recipe.yaml``: the resolved recipe.

It is written into a hidden temporary folder and renamed into place, so a checkpoint is complete or
absent, whatever kills the process and when.
"""

from __future__ import annotations

import os
import random
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint.state_dict as dsd
from safetensors.torch import load_file, save_file
from torch import nn

from domainclip.core.engine.runs import WEIGHTS_NAME, list_checkpoints, step_dir_name
from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.hub import safetensors_ready
from domainclip.core.io import new_file_mode

__all__ = [
    "capture_rng_state",
    "find_latest_checkpoint",
    "full_training_state",
    "list_checkpoints",
    "load_checkpoint_state",
    "load_model_weights",
    "load_resume_point",
    "load_training_state",
    "ResumePoint",
    "restore_rng_state",
    "save_checkpoint",
]

def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states as weights_only-loadable values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def find_latest_checkpoint(ckpt_root: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    found = list_checkpoints(ckpt_root)
    return found[-1] if found else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    ckpt_root: Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    train_state: dict[str, Any],
    recipe_yaml: str,
    keep: int = 3,
) -> Path:
    """Write one checkpoint atomically and prune all but the newest ``keep``.

    Args:
        ckpt_root: the run's ``checkpoints/`` folder.
        step: optimizer steps done.
        model_state: full state dict (tensors are copied to CPU).
        train_state: optimizer/scheduler/scaler/data/RNG state (weights_only-loadable).
        recipe_yaml: the resolved recipe text.
        keep: number of checkpoints kept (<= 0 keeps all).
    """
    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / step_dir_name(step)
    tmp = ckpt_root / f".{final.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(safetensors_ready(model_state), str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "step": str(step)})
    torch.save(train_state, tmp / "state.pt")
    (tmp / "recipe.yaml").write_text(recipe_yaml, encoding="utf-8")
    for f in tmp.iterdir():
        os.chmod(f, new_file_mode())  # safetensors writes 0600 whatever the umask
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(ckpt_root)
    if keep > 0:
        for old in list_checkpoints(ckpt_root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_model_weights(ckpt_dir: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The model state dict of a checkpoint folder."""
    path = Path(ckpt_dir) / WEIGHTS_NAME
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint {ckpt_dir} has no model.safetensors")
    return load_file(str(path), device=str(device))


def load_checkpoint_state(ckpt_dir: Path) -> dict[str, Any]:
    """The training state of a checkpoint folder (weights_only; memory-mapped: a tensor is read when used)."""
    path = Path(ckpt_dir) / "state.pt"
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint {ckpt_dir} has no state.pt")
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


@dataclass
class ResumePoint:
    """A checkpoint that loaded whole: where it is and what it holds."""

    path: Path
    state: dict[str, Any]
    weights: dict[str, torch.Tensor]
    recipe_yaml: str | None
    #: files of newer checkpoints that could not be read, with the reason (those checkpoints are skipped)
    damaged: list[tuple[Path, str]]


def load_resume_point(ckpt_root: Path) -> ResumePoint | None:
    """The newest checkpoint under ``ckpt_root`` whose weights and state both load, or ``None`` if there is none.

    A damaged newer checkpoint (a truncated ``state.pt``, unreadable weights) is skipped with a
    warning naming the file, and the one before it is used. Everything is loaded on the CPU.

    Args:
        ckpt_root: the run's ``checkpoints/`` folder.

    Raises:
        InputError: checkpoints exist but none of them loads (the message names each file and why).
    """
    found = list_checkpoints(ckpt_root)
    damaged: list[tuple[Path, str]] = []
    for path in reversed(found):
        try:
            bad = path / "state.pt"
            state = load_checkpoint_state(path)
            bad = path / WEIGHTS_NAME
            weights = load_model_weights(path)
        except Exception as e:  # any reason a file cannot be read back: truncation, bad pickle, bad header
            first = " ".join(str(e).split()).split(". ")[0][:160]
            damaged.append((bad, f"{type(e).__name__}: {first}"))
            warnings.warn(f"checkpoint file {bad} cannot be loaded ({damaged[-1][1]}); "
                          "resuming from the checkpoint before it", stacklevel=2)
            continue
        recipe_file = path / "recipe.yaml"
        recipe_yaml = recipe_file.read_text(encoding="utf-8") if recipe_file.is_file() else None
        return ResumePoint(path, state, weights, recipe_yaml, damaged)
    if damaged:
        listing = "; ".join(f"{p}: {why}" for p, why in damaged)
        raise InputError(f"no checkpoint in {ckpt_root} can be loaded ({listing})")
    return None


def full_training_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full model and optimizer state dicts of a plain, DDP- or FSDP2-wrapped model, keyed by parameter names.

    Every rank must call it (FSDP2 gathers each parameter and its optimizer state from all ranks);
    rank 0 gets the states, on the CPU, and the other ranks empty dicts.

    Args:
        model: the model as trained (wrapped or not).
        optimizer: its optimizer.
    """
    return dsd.get_state_dict(model, optimizer, options=dsd.StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_training_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
) -> None:
    """Load full model and optimizer state dicts (as :func:`full_training_state` gives them) on every rank.

    In a process group only rank 0's states are read: it sends each tensor to the other ranks,
    which keep their shard of it, so the states may come from another number of processes or
    another strategy. Every rank must call it, before the first backward.

    Args:
        model: the model as trained (wrapped or not).
        optimizer: its optimizer, not stepped yet.
        weights: full model state dict.
        optimizer_state: full optimizer state dict; one keyed by parameter numbers (written by
            ``optimizer.state_dict()`` before domainclip used names) loads into an unsharded model.
    """
    options = dsd.StateDictOptions(full_state_dict=True, broadcast_from_rank0=dist.is_initialized())
    sender = not options.broadcast_from_rank0 or dist.get_rank() == 0  # the other ranks pass nothing: they receive
    dsd.set_model_state_dict(model, weights if sender else {}, options=options)
    if any(isinstance(key, int) for key in optimizer_state["state"]):
        optimizer.load_state_dict(optimizer_state)
    else:
        dsd.set_optimizer_state_dict(model, optimizer, optimizer_state if sender else {}, options=options)
