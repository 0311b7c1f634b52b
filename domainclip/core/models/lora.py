"""LoRA on open_clip transformer towers, through peft.

open_clip's ViT blocks (``ResidualAttentionBlock``) attend with ``nn.MultiheadAttention``, which
keeps the query/key/value projection as one fused parameter, ``in_proj_weight`` (3D, D), and whose
forward reads ``in_proj_weight`` and ``out_proj.weight`` directly (``F.multi_head_attention_forward``),
never calling a submodule. peft adapts modules, so it has nothing there to wrap, and wrapping
``out_proj`` alone would change nothing. :func:`swap_attention` therefore replaces each block's
attention with :class:`QKVAttention`: the same weights, held by an ``nn.Linear`` named ``qkv``
(``in_proj_weight`` / ``in_proj_bias``, the very same ``Parameter`` objects) and the original
``out_proj``, computing the same output with ``F.scaled_dot_product_attention``. peft's
``inject_adapter_in_model`` then puts its LoRA layers on ``qkv`` (and, if asked, ``out_proj`` or the
MLP's ``c_fc`` / ``c_proj``)::

    from domainclip.core.models.lora import apply_lora, count_parameters, merged_state_dict

    apply_lora(model.clip.visual, rank=8, alpha=16.0, targets=("qkv",))  # in place; base weights frozen
    count_parameters(model)  # {"total": ..., "trainable": ..., "lora": ..., "groups": {...}}
    plain = merged_state_dict(model.clip)  # LoRA merged, open_clip's own key names

Key names. The adapted module's ``state_dict()`` holds peft's keys (``attn.qkv.base_layer.weight``,
``attn.qkv.lora_A.default.weight``, ``attn.qkv.lora_B.default.weight``), so training checkpoints keep
A and B apart and resume loads them. Loading a plain open_clip state dict (``attn.in_proj_weight``,
``attn.out_proj.weight``...) still works, strictly: load-state-dict pre-hooks rename the plain keys,
and when a layer's plain weight is given without its LoRA matrices they keep their current values
(a fresh adapter); domainclip builds a tower first and loads CLIP weights afterwards, so this is the
path every pretrained tower takes. :func:`merged_state_dict` goes the other way, for export: each
LoRA delta ``B @ A * alpha / rank`` is added to its base weight and the keys get open_clip's names, so
plain ``open_clip.create_model(..., pretrained=...)`` loads the result and gives the adapted model's
embeddings.

Handled: open_clip ``ResidualAttentionBlock`` self-attention (every open_clip ViT and text
transformer with the default block: ``ViT-B-32``, ``ViT-B-16``, ``ViT-L-14``, the ``dc-*`` test
configs), batch-first or not, with or without an attention mask. Refused with a one-line
:class:`~domainclip.core.errors.InputError`: towers without such blocks (timm, ModifiedResNet,
Hugging Face text towers), open_clip's ``CustomResidualAttentionBlock`` (``qk_norm``,
``scaled_cosine_attn``, ``scale_heads``, ``scale_attn_inner``, ``scale_attn``, ``scale_fc``) and
cross-attention blocks (CoCa's multimodal decoder).

The pre-hooks run only in ``load_state_dict``, never in ``forward``: ``torch.compile`` sees plain
``nn.Linear`` / peft ``lora.Linear`` modules and one SDPA call per block (it compiles as one graph,
``fullgraph=True``), and FSDP2's ``fully_shard`` wraps the blocks as before. Order matters there:
call :func:`apply_lora` and load plain weights before sharding (``create_model`` does both), since
``torch.distributed.checkpoint`` distributes a full state dict by the model's own (peft) keys and a
plain ``in_proj_weight`` would reach the hook unsharded; a sharded model resumes from checkpoints in
its own layout, and :func:`merged_state_dict` is meant for the gathered, unsharded model at export.
peft is imported only by :func:`apply_lora` (it is part of the ``multiview`` extra).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from open_clip.transformer import CustomResidualAttentionBlock, ResidualAttentionBlock
from torch import nn

from domainclip.core.errors import InputError

__all__ = [
    "LORA_TARGETS",
    "QKVAttention",
    "apply_lora",
    "count_parameters",
    "has_lora",
    "lora_layers",
    "lora_parameters",
    "lora_summary",
    "merged_state_dict",
    "swap_attention",
]

#: Linear layers of a block that :func:`apply_lora` can adapt, and where they sit in the block.
LORA_TARGETS: dict[str, str] = {
    "qkv": "attn.qkv",
    "out_proj": "attn.out_proj",
    "c_fc": "mlp.c_fc",
    "c_proj": "mlp.c_proj",
}

_CUSTOM_BLOCK_FLAGS = "qk_norm, scaled_cosine_attn, scale_heads, scale_attn_inner, scale_attn, scale_fc"


class QKVAttention(nn.Module):
    """Multi-head self-attention whose fused input projection is an ``nn.Linear`` named ``qkv``.

    A drop-in for the ``nn.MultiheadAttention`` of an open_clip ``ResidualAttentionBlock``: same call
    (``attn(x, x, x, need_weights=False, attn_mask=mask)`` returns ``(output, None)``), same output.
    ``qkv.weight`` is MHA's ``in_proj_weight`` (rows: query, key, value), ``out_proj`` is MHA's own.
    A plain state dict (``in_proj_weight``, ``in_proj_bias``) loads into it through a pre-hook.

    Args:
        width: embedding width D.
        heads: number of attention heads (D must be divisible by it).
        bias: whether ``qkv`` and ``out_proj`` have biases.
        dropout: attention dropout probability (applied in training only, like MHA's).
        batch_first: inputs are (N, L, D) when True, (L, N, D) otherwise (as MHA's flag).
        device: where to create the layers (``"meta"`` when the weights are assigned afterwards).
        dtype: their dtype.

    """

    def __init__(
        self,
        width: int,
        heads: int,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        batch_first: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.embed_dim = int(width)
        self.num_heads = int(heads)
        self.head_dim = width // heads
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.qkv = nn.Linear(width, 3 * width, bias=bias, device=device, dtype=dtype)
        self.out_proj = nn.Linear(width, width, bias=bias, device=device, dtype=dtype)
        self.register_load_state_dict_pre_hook(_rename_in_proj_keys)

    @classmethod
    def from_multihead_attention(cls, mha: nn.MultiheadAttention) -> QKVAttention:
        """Build the equivalent module around ``mha``'s own parameters (shared, not copied).

        Args:
            mha: a self-attention ``nn.MultiheadAttention`` with a packed input projection.

        Raises:
            InputError: ``mha`` uses a feature open_clip's blocks never use (separate key/value
                widths, ``bias_k``/``bias_v``, ``add_zero_attn``).

        """
        if not mha._qkv_same_embed_dim or mha.in_proj_weight is None:
            raise InputError("LoRA: attention with separate key/value widths (kdim/vdim) is not supported")
        if mha.bias_k is not None or mha.add_zero_attn:
            raise InputError("LoRA: attention with bias_k/bias_v or add_zero_attn is not supported")
        has_bias = mha.in_proj_bias is not None
        if has_bias != (mha.out_proj.bias is not None):
            raise InputError("LoRA: attention with a bias on only one of in_proj / out_proj is not supported")
        attn = cls(
            mha.embed_dim,
            mha.num_heads,
            bias=has_bias,
            dropout=mha.dropout,
            batch_first=mha.batch_first,
            device="meta",
        )
        attn.qkv.weight = mha.in_proj_weight
        if has_bias:
            attn.qkv.bias = mha.in_proj_bias
        attn.out_proj = mha.out_proj
        attn.train(mha.training)
        return attn

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:
        """Self-attention of ``query`` (``key`` and ``value`` must be ``query`` itself or None).

        Args:
            query: (N, L, D) tokens, (L, N, D) when ``batch_first`` is False.
            key: the same tensor as ``query`` (open_clip passes it three times), or None.
            value: the same tensor as ``query``, or None.
            need_weights: must be False: attention weights are not computed.
            attn_mask: (L, L) or (N * heads, L, L); float (added to the logits) or bool (True = masked).
            key_padding_mask: must be None (open_clip's blocks never pass one).

        Returns:
            ``(output, None)``, like ``nn.MultiheadAttention(..., need_weights=False)``.

        """
        if (key is not None and key is not query) or (value is not None and value is not query):
            raise ValueError("QKVAttention is self-attention only: key and value must be the query itself")
        if need_weights or key_padding_mask is not None:
            raise ValueError("QKVAttention computes no attention weights and takes no key_padding_mask")
        x = query if self.batch_first else query.transpose(0, 1)
        batch, length, width = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:  # MHA: True means "not allowed"; SDPA's bool is the opposite
                attn_mask = torch.zeros_like(attn_mask, dtype=q.dtype).masked_fill(attn_mask, float("-inf"))
            else:
                attn_mask = attn_mask.to(q.dtype)
            if attn_mask.ndim == 3:
                attn_mask = attn_mask.reshape(batch, self.num_heads, length, length)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        out = self.out_proj(out.transpose(1, 2).reshape(batch, length, width))
        return (out if self.batch_first else out.transpose(0, 1)), None

    def extra_repr(self) -> str:
        """Width, heads and layout, shown in the module's repr."""
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


def _rename_in_proj_keys(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: dict[str, Any],
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """Load-state-dict pre-hook of :class:`QKVAttention`: ``in_proj_*`` -> ``qkv.*`` (MHA's layout)."""
    for name in ("weight", "bias"):
        old = f"{prefix}in_proj_{name}"
        if old in state_dict:
            state_dict[f"{prefix}qkv.{name}"] = state_dict.pop(old)


def _load_plain_linear_keys(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: dict[str, Any],
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """Load-state-dict pre-hook of a peft LoRA layer: a plain Linear's keys load into its base layer.

    When the plain ``weight`` is there, the state dict is a plain (non-LoRA) one: the LoRA matrices
    it lacks keep their current values (a fresh adapter), so a strict load succeeds. A state dict in
    peft's own layout (``base_layer.weight`` + ``lora_A``/``lora_B``) is left as it is.
    """
    if f"{prefix}weight" not in state_dict:
        return
    for name in ("weight", "bias"):
        if f"{prefix}{name}" in state_dict:
            state_dict[f"{prefix}base_layer.{name}"] = state_dict.pop(f"{prefix}{name}")
    for key, value in module.state_dict(prefix=prefix, keep_vars=True).items():
        if key not in state_dict and not key.startswith(f"{prefix}base_layer."):
            state_dict[key] = value.detach()


# ----------------------------------------------------------------------------------------------------
# the swap and the injection
# ----------------------------------------------------------------------------------------------------


def _attention_blocks(module: nn.Module) -> list[tuple[str, ResidualAttentionBlock]]:
    """open_clip's default transformer blocks inside ``module``, refusing layouts that are not handled."""
    blocks: list[tuple[str, ResidualAttentionBlock]] = []
    for name, sub in module.named_modules():
        if isinstance(sub, CustomResidualAttentionBlock):
            raise InputError(
                f"LoRA: {name or type(module).__name__} is open_clip's CustomResidualAttentionBlock (a config with "
                f"{_CUSTOM_BLOCK_FLAGS} or block_type 'custom'); only the default ResidualAttentionBlock is handled"
            )
        if isinstance(sub, ResidualAttentionBlock):
            if hasattr(sub, "ln_1_kv"):
                raise InputError(f"LoRA: {name} is a cross-attention block (CoCa's decoder); not handled")
            if not isinstance(sub.attn, nn.MultiheadAttention | QKVAttention):
                raise InputError(f"LoRA: {name}.attn is a {type(sub.attn).__name__}, not nn.MultiheadAttention")
            blocks.append((name, sub))
    if not blocks:
        raise InputError(
            f"LoRA: {type(module).__name__} has no open_clip transformer blocks (ResidualAttentionBlock); "
            "LoRA is handled for open_clip's own ViT / text transformers, not timm, ModifiedResNet or "
            "Hugging Face towers"
        )
    return blocks


def swap_attention(module: nn.Module) -> list[str]:
    """Replace the ``nn.MultiheadAttention`` of every open_clip block in ``module`` with :class:`QKVAttention`.

    In place; the parameters are shared, not copied, so outputs and ``parameters()`` stay the same
    (only their names change: ``attn.in_proj_weight`` becomes ``attn.qkv.weight``). Blocks already
    swapped are left alone.

    Args:
        module: an open_clip tower (``clip.visual``, a whole ``CLIP``...).

    Returns:
        The names of the blocks inside ``module`` (swapped now or before).

    Raises:
        InputError: ``module`` has no open_clip ``ResidualAttentionBlock`` or has one that is not handled.

    """
    blocks = _attention_blocks(module)
    for _, block in blocks:
        if isinstance(block.attn, nn.MultiheadAttention):
            block.attn = QKVAttention.from_multihead_attention(block.attn)
    return [name for name, _ in blocks]


def _peft_lora_layer_class() -> type[nn.Module] | None:
    # peft imports transformers (seconds): when it was never imported, no module can be a peft layer
    if "peft" not in sys.modules:
        return None
    from peft.tuners.lora import LoraLayer

    return LoraLayer


def lora_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The peft LoRA layers inside ``module``, as ``(name, layer)`` pairs (empty without LoRA).

    Args:
        module: any module.

    """
    layer_class = _peft_lora_layer_class()
    if layer_class is None:
        return []
    return [(name, sub) for name, sub in module.named_modules() if isinstance(sub, layer_class)]


def has_lora(module: nn.Module) -> bool:
    """Whether ``module`` holds peft LoRA layers.

    Args:
        module: any module.

    """
    return bool(lora_layers(module))


def _check_settings(rank: int, alpha: float, dropout: float, targets: Sequence[str]) -> tuple[str, ...]:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise InputError(f"LoRA rank must be a positive integer, got {rank!r}")
    if not alpha > 0:
        raise InputError(f"LoRA alpha must be positive, got {alpha!r}")
    if not 0.0 <= dropout < 1.0:
        raise InputError(f"LoRA dropout must be in [0, 1), got {dropout!r}")
    if isinstance(targets, str):
        targets = (targets,)
    targets = tuple(targets)
    unknown = [t for t in targets if t not in LORA_TARGETS]
    if unknown or not targets or len(set(targets)) != len(targets):
        raise InputError(f"LoRA targets must be distinct names among {', '.join(LORA_TARGETS)}, got {list(targets)!r}")
    return targets


def apply_lora(
    module: nn.Module,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    targets: Sequence[str] = ("qkv",),
) -> nn.Module:
    """Add peft LoRA adapters to the blocks of an open_clip transformer tower, in place.

    Swaps each block's attention for :class:`QKVAttention` (:func:`swap_attention`), injects peft
    LoRA layers (``peft.LoraConfig`` + ``peft.inject_adapter_in_model``) into the ``targets`` of every
    block, and freezes every other parameter of ``module`` (parameters outside ``module`` are not
    touched). B starts at zero, so the output is unchanged until training moves it. A rank ``r``
    adapter on a D-wide ``qkv`` adds ``r * (D + 3 D)`` parameters per block.

    Args:
        module: an open_clip tower, e.g. ``clip.visual`` (every ``ResidualAttentionBlock`` in it is adapted).
        rank: LoRA rank r.
        alpha: LoRA alpha; the update is scaled by ``alpha / rank``.
        dropout: dropout on the LoRA branch's input.
        targets: which linear layers of each block get an adapter: ``"qkv"`` (the fused query/key/value
            projection), ``"out_proj"`` (attention output), ``"c_fc"``, ``"c_proj"`` (the MLP).

    Returns:
        ``module`` itself.

    Raises:
        InputError: a setting is out of range, ``module`` already has LoRA, or its layout is not handled.
        MissingExtraError: peft is not installed.

    """
    targets = _check_settings(rank, alpha, dropout, targets)
    if has_lora(module):
        raise InputError(f"LoRA: {type(module).__name__} already has LoRA adapters")
    block_names = swap_attention(module)

    from domainclip.core.plugins import require

    peft = require("peft", "multiview", "LoRA adapters")
    names = [f"{block}.{LORA_TARGETS[target]}" for block in block_names for target in targets]
    config = peft.LoraConfig(
        r=rank, lora_alpha=float(alpha), lora_dropout=float(dropout), target_modules=names, bias="none"
    )
    peft.inject_adapter_in_model(config, module)

    adapted = dict(lora_layers(module))
    if sorted(adapted) != sorted(names):  # peft matched more or fewer modules than were named
        raise RuntimeError(f"peft adapted {sorted(adapted)}, expected {sorted(names)}")
    for layer in adapted.values():
        layer.register_load_state_dict_pre_hook(_load_plain_linear_keys)
    lora_names = {name for name, _ in lora_parameters(module)}
    for name, param in module.named_parameters():
        param.requires_grad_(name in lora_names)
    return module


# ----------------------------------------------------------------------------------------------------
# reading an adapted model
# ----------------------------------------------------------------------------------------------------


def lora_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The LoRA matrices of ``module`` (``lora_A`` / ``lora_B`` of every adapter), named as in ``module``.

    Args:
        module: a module that :func:`apply_lora` adapted (or one holding such a module).

    """
    prefixes = tuple(f"{name}.lora_" if name else "lora_" for name, _ in lora_layers(module))
    if not prefixes:
        return []
    return [(name, param) for name, param in module.named_parameters() if name.startswith(prefixes)]


def _merged_weight(layer: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (the base layer's) plus the deltas of the layer's active, unmerged adapters."""
    if layer.merged or layer.disable_adapters:
        return weight  # merged: the base weight already holds the deltas; disabled: forward ignores them
    delta = None
    for adapter in layer.active_adapters:
        if adapter not in layer.lora_A:
            continue
        if layer.use_dora.get(adapter, False):
            raise ValueError("merged_state_dict: DoRA adapters are not handled")
        part = layer.get_delta_weight(adapter).detach().to(device=weight.device, dtype=torch.float32)
        delta = part if delta is None else delta + part
    if delta is None:
        return weight
    return (weight.float() + delta).to(weight.dtype)


def merged_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict with LoRA merged in and the original open_clip key names.

    ``base_layer.weight`` + ``B @ A * alpha / rank`` becomes the layer's ``weight``; the LoRA matrices
    are dropped; :class:`QKVAttention`'s ``qkv.weight`` / ``qkv.bias`` become ``in_proj_weight`` /
    ``in_proj_bias``. The module itself is not changed. For a module without LoRA or swapped
    attention this is its plain ``state_dict()``.

    Args:
        module: e.g. a whole open_clip ``CLIP`` whose ``visual`` went through :func:`apply_lora`.

    Returns:
        Detached tensors keyed exactly as the unadapted open_clip module's ``state_dict()``.

    """
    state = dict(module.state_dict())
    renames: dict[str, str] = {}
    dropped: list[str] = []
    for name, layer in lora_layers(module):
        prefix = f"{name}." if name else ""
        base_key = f"{prefix}base_layer.weight"
        state[base_key] = _merged_weight(layer, state[base_key])
        for key in state:
            if key.startswith(f"{prefix}base_layer."):
                renames[key] = prefix + key[len(f"{prefix}base_layer.") :]
            elif key.startswith(f"{prefix}lora_"):
                dropped.append(key)
    qkv_renames: dict[str, str] = {}
    for name, sub in module.named_modules():
        if isinstance(sub, QKVAttention):
            prefix = f"{name}." if name else ""
            qkv_renames[f"{prefix}qkv.weight"] = f"{prefix}in_proj_weight"
            qkv_renames[f"{prefix}qkv.bias"] = f"{prefix}in_proj_bias"
    out: dict[str, torch.Tensor] = {}
    skip = set(dropped)
    for key, value in state.items():
        if key in skip:
            continue
        key = renames.get(key, key)
        out[qkv_renames.get(key, key)] = value.detach()
    return out


def _param_groups(named: Iterable[tuple[str, nn.Parameter]], depth: int) -> dict[str, dict[str, int]]:
    groups: dict[str, dict[str, int]] = {}
    for name, param in named:
        group = ".".join(name.split(".")[:depth])
        entry = groups.setdefault(group, {"total": 0, "trainable": 0})
        entry["total"] += param.numel()
        if param.requires_grad:
            entry["trainable"] += param.numel()
    return groups


def count_parameters(model: nn.Module, *, depth: int = 1) -> dict[str, Any]:
    """Count ``model``'s parameters: all, trainable, LoRA, and per group of names.

    Shared parameters count once. Groups are the first ``depth`` components of the parameter names
    (``depth=1``: ``clip``, ``head``... for a tower; ``visual``, ``transformer``, ``logit_scale``... for
    a plain CLIP; ``depth=2`` splits ``clip`` into ``clip.visual``, ``clip.transformer``...).

    Args:
        model: any module.
        depth: how many leading name components form a group.

    Returns:
        ``{"total": int, "trainable": int, "lora": int, "groups": {group: {"total": int, "trainable": int}}}``.

    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    named = list(model.named_parameters())
    return {
        "total": sum(p.numel() for _, p in named),
        "trainable": sum(p.numel() for _, p in named if p.requires_grad),
        "lora": sum(p.numel() for _, p in lora_parameters(model)),
        "groups": _param_groups(named, depth),
    }


def lora_summary(counts: Mapping[str, Any]) -> str:
    """One line describing :func:`count_parameters`'s result, e.g. for a training log.

    Args:
        counts: what :func:`count_parameters` returned.

    """
    total, trainable = int(counts["total"]), int(counts["trainable"])
    share = 100.0 * trainable / total if total else 0.0
    return f"{trainable:,} of {total:,} parameters trainable ({share:.2f}%), {int(counts['lora']):,} in LoRA"
