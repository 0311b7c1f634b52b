"""``torch.compile`` for training: the whole model, or regionally, one repeated block at a time.

``train.compile`` picks the mode:

* ``model``: the forward of the whole (DDP-wrapped) model is one compiled region;
* ``blocks`` (regional compilation): the forward of every repeated block (a transformer block,
  a ResNet bottleneck, a BERT layer, a space-time block) is compiled on its own. The blocks of a
  tower share one compiled graph, so start-up takes seconds instead of a minute, and the code
  between blocks (embeddings, pooling, the loss) stays eager;
* ``auto`` (the default): ``blocks`` on CUDA, ``off`` elsewhere (on CPU the inductor backend needs
  a C++ compiler and compiling costs more than it saves in short runs); ``true`` / ``false`` are
  ``model`` / ``off``.

A compiled forward is set on the module instance (``module.forward``) as a method of the
compiled function, so nothing is wrapped: state-dict keys get no ``_orig_mod.`` prefix (checkpoints
of compiled and eager runs are interchangeable), module hooks (FSDP2's gathers, LoRA/peft layers,
gradient checkpointing) stay outside the compiled region, and ``copy.deepcopy`` of a compiled
module gives a copy bound to itself. Under FSDP2 blocks are compiled before sharding, as torchtitan
does, so ``model`` compiles per block there too (FSDP2's hooks would break a whole-model graph at
every block anyway).
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn

__all__ = ["COMPILE_MODES", "compile_blocks", "compile_forward", "find_blocks", "resolve_compile_mode"]

#: The modes :func:`resolve_compile_mode` returns.
COMPILE_MODES = ("model", "blocks", "off")


def resolve_compile_mode(setting: bool | str, device: torch.device) -> str:
    """The compile mode a ``train.compile`` value means on ``device``.

    Args:
        setting: ``auto`` | ``model`` | ``blocks`` | ``off``, or ``true`` (``model``) / ``false`` (``off``).
        device: where the model trains.

    Returns:
        ``model``, ``blocks`` or ``off``.
    """
    if setting is True:
        return "model"
    if setting is False:
        return "off"
    if setting == "auto":
        return "blocks" if device.type == "cuda" else "off"
    if setting not in COMPILE_MODES:
        raise ValueError(f"train.compile must be auto, model, blocks, off, true or false; got {setting!r}")
    return setting


def compile_forward(module: nn.Module, **options: Any) -> nn.Module:
    """Compile ``module``'s forward in place (the instance's ``forward``; its class is untouched).

    Args:
        module: the module (its parameters, buffers, hooks and state-dict keys stay as they are).
        **options: keyword arguments of :func:`torch.compile` (``backend``, ``mode``, ``dynamic``, ...).

    Returns:
        ``module`` itself.
    """
    compiled = torch.compile(type(module).forward, **options)
    module.forward = types.MethodType(compiled, module)
    return module


def _is_block_list(container: nn.Module) -> bool:
    """A ModuleList/Sequential of two or more modules of one class defined outside ``torch.nn`` (a stack of blocks)."""
    if not isinstance(container, nn.ModuleList | nn.Sequential):
        return False
    children = list(container.children())
    if len(children) < 2 or len({type(c) for c in children}) != 1:
        return False
    cls = type(children[0])
    return not cls.__module__.startswith("torch.nn") and any(True for _ in children[0].parameters())


def find_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks of ``model``: children of block stacks, outermost only, in module order.

    A block stack is an ``nn.ModuleList`` or ``nn.Sequential`` of two or more modules of the same
    class, defined outside ``torch.nn`` and holding parameters (open_clip's and timm's transformer
    blocks, ResNet stages' bottlenecks, BERT layers, the space-time and multi-view blocks). Blocks
    nested in a block are not listed again.
    """
    blocks: list[nn.Module] = []
    inside: set[int] = set()
    for _, module in model.named_modules():
        if id(module) in inside:
            continue
        if _is_block_list(module):
            for child in module.children():
                blocks.append(child)
                inside.update(id(m) for m in child.modules())
    return blocks


def compile_blocks(model: nn.Module, **options: Any) -> list[nn.Module]:
    """Compile the forward of every block :func:`find_blocks` finds, in place (regional compilation).

    Args:
        model: the bare model (before FSDP2 sharding or DDP wrapping).
        **options: keyword arguments of :func:`torch.compile`.

    Returns:
        The compiled blocks (empty for a model without repeated blocks, which then runs eagerly).
    """
    blocks = find_blocks(model)
    for block in blocks:
        compile_forward(block, **options)
    return blocks
