"""Divided space-time attention video encoder (TimeSformer) and the tower that puts it in a CLIP.

Config: ``domainclip_cfg = {"tower": "spacetime", "num_frames": 16, "variant": "timesformer"}``.

Unlike the ``video`` tower (:mod:`domainclip.core.models.video`), which embeds frames one by one and
pools the frame embeddings, this tower replaces the CLIP's image tower by one transformer over the
whole clip: every block attends over time at each patch position, then over space within each frame
(*divided space-time attention*, Bertasius et al., "Is Space-Time Attention All You Need for Video
Understanding?", ICML 2021). ``vision_cfg`` describes the spatial transformer as for any ViT CLIP
(``image_size``, ``patch_size``, ``width``, ``layers``, ``head_width``, ``mlp_ratio``,
``norm_kwargs.eps``); the tower reads that shape off the vision tower open_clip built, builds the
space-time encoder of the same shape in its place (open_clip's own ViT is dropped) and adds the time
settings. The layers are timm's (``PatchEmbed``, ``Attention``, ``Mlp``), named as in TimeSformer so
published checkpoints map key for key.

Two variants:

* ``"timesformer"``: the original model, as ``transformers.TimesformerModel`` computes it: one clip
  token, repeated into every frame for the spatial attention and averaged back; the clip embedding is
  the projected, layer-normed clip token.
* ``"surgclip"``: the variant of SurgLaVi's SurgCLIP (``pip install surgclip``,
  ``surgclip/models/timesformer/timesformer.py``): one token per frame, whose slot in the spatial
  attention holds the frame's first patch token (before the temporal update) and whose new value is
  twice that slot's attention output; temporal embeddings only when a clip has more than one frame;
  the output is regrouped into ``T`` groups of ``1 + H*W`` tokens *in the (token, frame) order of the
  sequence* (so a group mixes frames, as their code does), each group's tokens after the first
  averaged and layer-normed (``pool_norm``). A clip's score against a text is the mean cosine
  similarity of the projected groups, so the clip embedding is the mean of the L2-normalised group
  embeddings (one group, a single image: its projection).

A single image (B, C, H, W) is a one-frame clip. Position and time embeddings are resized (nearest)
to other grids and clip lengths, as both reference implementations do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU, VisionTransformer
from timm.layers import Mlp, PatchEmbed, trunc_normal_
from timm.models.vision_transformer import Attention
from torch import nn
from torch.utils.checkpoint import checkpoint

from domainclip.core.models.registry import DomainCLIP, register_tower

__all__ = ["SPACETIME_VARIANTS", "SpaceTimeBlock", "SpaceTimeCLIP", "SpaceTimeEncoder"]

#: The divided-attention variants :class:`SpaceTimeEncoder` computes.
SPACETIME_VARIANTS = ("timesformer", "surgclip")
Variant = Literal["timesformer", "surgclip"]


class SpaceTimeBlock(nn.Module):
    """One divided space-time block: temporal attention per patch position, spatial attention per frame, MLP.

    Args:
        dim: token width.
        heads: attention heads.
        mlp_ratio: MLP hidden width over ``dim``.
        eps: LayerNorm epsilon.
        act_layer: the MLP's activation.
        variant: ``"timesformer"`` or ``"surgclip"`` (how the class tokens take part, see the module).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        eps: float = 1e-6,
        act_layer: type[nn.Module] = nn.GELU,
        variant: Variant = "timesformer",
    ):
        super().__init__()
        self.variant = variant
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads=heads, qkv_bias=True)
        self.temporal_norm1 = nn.LayerNorm(dim, eps=eps)
        self.temporal_attn = Attention(dim, num_heads=heads, qkv_bias=True)
        self.temporal_fc = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)

    def forward(self, cls: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the class tokens (B, 1 or T, D) and the patch tokens (B, T, P, D)."""
        b, t, p, d = patches.shape
        # temporal attention: each patch position attends over the frames
        xt = patches.transpose(1, 2).reshape(b * p, t, d)
        res = self.temporal_fc(self.temporal_attn(self.temporal_norm1(xt)))
        updated = patches + res.reshape(b, p, t, d).transpose(1, 2)
        # spatial attention: each frame's patches with a class-token slot
        if self.variant == "surgclip":
            slot = patches[:, :, :1]  # the frame's first patch token, before the temporal update
        else:
            slot = cls[:, None].expand(b, t, 1, d)  # the clip token, repeated in every frame
        xs = torch.cat([slot, updated], dim=2).reshape(b * t, 1 + p, d)
        res = self.attn(self.norm1(xs)).reshape(b, t, 1 + p, d)
        patches = updated + res[:, :, 1:]
        if self.variant == "surgclip":
            cls = 2 * res[:, :, 0]
        else:
            cls = cls + res[:, :, 0].mean(dim=1, keepdim=True)
        # MLP on every token
        cls = cls + self.mlp(self.norm2(cls))
        patches = patches + self.mlp(self.norm2(patches))
        return cls, patches


class SpaceTimeEncoder(nn.Module):
    """A divided space-time attention transformer over clips, projected into the joint embedding space.

    State dict keys follow TimeSformer (``cls_token``, ``pos_embed``, ``time_embed``,
    ``patch_embed.proj``, ``blocks.{i}.{norm1,attn,temporal_norm1,temporal_attn,temporal_fc,norm2,mlp}``,
    ``norm``; ``pool_norm`` in the ``"surgclip"`` variant) plus ``proj``, the linear projection.

    Args:
        image_size: frame size the position embedding is built for.
        patch_size: patch size.
        width: token width.
        layers: number of blocks.
        heads: attention heads.
        output_dim: joint embedding width.
        num_frames: clip length the time embedding is built for.
        mlp_ratio: MLP hidden width over ``width``.
        eps: LayerNorm epsilon.
        act_layer: the MLP's activation.
        variant: ``"timesformer"`` or ``"surgclip"`` (see the module docstring).
    """

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        output_dim: int,
        num_frames: int = 8,
        mlp_ratio: float = 4.0,
        eps: float = 1e-6,
        act_layer: type[nn.Module] = nn.GELU,
        variant: Variant = "timesformer",
    ):
        super().__init__()
        if variant not in SPACETIME_VARIANTS:
            raise ValueError(f"unknown space-time variant {variant!r}: one of {', '.join(SPACETIME_VARIANTS)}")
        if num_frames < 1 or layers < 1:
            raise ValueError(f"a space-time encoder needs num_frames >= 1 and layers >= 1, got {num_frames}, {layers}")
        self.variant = variant
        self.image_size = (int(image_size), int(image_size))
        self.num_frames = int(num_frames)
        self.output_dim = int(output_dim)
        self.patch_embed = PatchEmbed(image_size, patch_size, embed_dim=width, flatten=False, strict_img_size=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, width))
        self.time_embed = nn.Parameter(torch.zeros(1, num_frames, width))
        self.blocks = nn.ModuleList(
            SpaceTimeBlock(width, heads, mlp_ratio, eps, act_layer, variant) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(width, eps=eps)
        self.pool_norm = nn.LayerNorm(width, eps=eps) if variant == "surgclip" else None
        self.proj = nn.Linear(width, output_dim)
        self.grad_checkpointing = False
        self._init_weights()

    def _init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        for block in list(self.blocks)[1:]:  # TimeSformer: temporal residuals start at zero but in the first block
            nn.init.zeros_(block.temporal_fc.weight)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """The embeddings, excluded from weight decay."""
        return {"cls_token", "pos_embed", "time_embed"}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the blocks' activations in backward to save memory."""
        self.grad_checkpointing = enable

    def lock(self, unlocked_groups: int = 0, freeze_bn_stats: bool = False) -> None:
        """Freeze the encoder (LiT), leaving the last ``unlocked_groups`` groups trainable.

        Args:
            unlocked_groups: groups left trainable, counted from the end: the output norms and
                projection, then the blocks from the last.
            freeze_bn_stats: unused (no batch norm); accepted for open_clip's interface.
        """
        embeddings = [self.patch_embed, self.cls_token, self.pos_embed, self.time_embed]
        head = [m for m in (self.norm, self.pool_norm, self.proj) if m is not None]
        groups: list[list[nn.Module | nn.Parameter]] = [embeddings, *[[b] for b in self.blocks], head]
        for group in groups[: max(len(groups) - unlocked_groups, 0)]:
            for item in group:
                params = [item] if isinstance(item, nn.Parameter) else list(item.parameters())
                for param in params:
                    param.requires_grad = False

    def _embed(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = clips.shape[:2]
        x = self.patch_embed(clips.flatten(0, 1))  # (B*T, D, h, w)
        grid = tuple(x.shape[-2:])
        patches = x.flatten(2).transpose(1, 2)  # (B*T, P, D)
        pos = self.pos_embed[:, 1:]
        side = int(round(pos.shape[1] ** 0.5))
        if (side, side) != grid:  # other frame sizes: nearest-resized position embeddings
            pos = pos.transpose(1, 2).reshape(1, -1, side, side)
            pos = F.interpolate(pos, size=grid, mode="nearest").flatten(2).transpose(1, 2)
        patches = (patches + pos).reshape(b, t, -1, patches.shape[-1])
        cls = self.cls_token + self.pos_embed[:, :1]
        if self.variant == "timesformer" or t > 1:
            time = self.time_embed
            if time.shape[1] != t:  # other clip lengths: nearest-resized time embeddings
                time = F.interpolate(time.transpose(1, 2), size=t, mode="nearest").transpose(1, 2)
            patches = patches + time[:, :, None]
        count = t if self.variant == "surgclip" else 1
        return cls.expand(b, count, -1), patches

    def _blocks(self, cls: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                cls, patches = checkpoint(block, cls, patches, use_reentrant=False)
            else:
                cls, patches = block(cls, patches)
        return self.norm(cls), self.norm(patches)

    def encode_groups(self, clips: torch.Tensor) -> torch.Tensor:
        """Projected embeddings before the clip pooling: (B, T, C, H, W) or (B, C, H, W) -> (B, G, D).

        ``G`` is 1 for ``"timesformer"`` (the clip token) and ``T`` for ``"surgclip"`` (its token groups).
        """
        if clips.ndim == 4:
            clips = clips[:, None]
        if clips.ndim != 5:
            raise ValueError(f"expected clips (B, T, C, H, W) or images (B, C, H, W), got {tuple(clips.shape)}")
        cls, patches = self._blocks(*self._embed(clips))
        if self.pool_norm is None:
            return self.proj(cls)
        b, t, p, d = patches.shape
        # SurgCLIP's sequence is token-major, frame-minor; their pooling reads it back frame-major
        sequence = torch.cat([cls[:, None], patches.transpose(1, 2)], dim=1).reshape(b, (1 + p) * t, d)
        groups = sequence.reshape(b, t, 1 + p, d)[:, :, 1:].mean(dim=2)
        return self.proj(self.pool_norm(groups))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Clip embeddings (B, D) of clips (B, T, C, H, W) or single images (B, C, H, W).

        One group is returned as it is; several are averaged after L2 normalisation.
        """
        groups = self.encode_groups(clips)
        if groups.shape[1] == 1:
            return groups[:, 0]
        return F.normalize(groups, dim=-1).mean(dim=1)


def _vision_shape(visual: nn.Module) -> dict[str, float | int | type[nn.Module]]:
    """The spatial transformer's shape, read off the ViT open_clip built from ``vision_cfg``."""
    if not isinstance(visual, VisionTransformer):
        raise ValueError(
            f"the spacetime tower takes its shape from a ViT vision_cfg (open_clip VisionTransformer), got "
            f"{type(visual).__name__}: give vision_cfg image_size, patch_size, width, layers and head_width"
        )
    block = visual.transformer.resblocks[0]
    width = visual.transformer.width
    return {
        "image_size": visual.image_size[0],
        "patch_size": visual.patch_size[0],
        "width": width,
        "layers": visual.transformer.layers,
        "heads": block.attn.num_heads,
        "mlp_ratio": block.mlp.c_fc.out_features / width,
        "eps": block.ln_1.eps,
        "act_layer": QuickGELU if isinstance(block.mlp.gelu, QuickGELU) else nn.GELU,
    }


@register_tower("spacetime")
class SpaceTimeCLIP(DomainCLIP):
    """CLIP whose image tower is a divided space-time attention transformer over whole clips.

    ``clip.visual`` becomes a :class:`SpaceTimeEncoder` of the shape ``vision_cfg`` describes, so the
    CLIP's ``encode_image`` embeds single frames (one-frame clips) and its weights stay under
    ``clip.`` (the tower has no layers of its own).

    Args:
        clip: the open_clip model built from the config (its vision tower is replaced).
        embed_dim: joint embedding width.
        num_frames: clip length the time embedding is built for.
        variant: ``"timesformer"`` or ``"surgclip"`` (see the module docstring).
        text_proj_bias: give a Hugging Face text tower's linear projection a bias (open_clip's has
            none; SurgCLIP's ``text_proj`` has one).
    """

    def __init__(
        self,
        clip: nn.Module,
        embed_dim: int,
        num_frames: int = 8,
        variant: Variant = "timesformer",
        text_proj_bias: bool = False,
    ):
        super().__init__(clip, embed_dim)
        visual = clip.visual
        encoder = SpaceTimeEncoder(
            **_vision_shape(visual), output_dim=self.embed_dim, num_frames=num_frames, variant=variant
        )
        encoder.preprocess_cfg = dict(getattr(visual, "preprocess_cfg", {}) or {})
        clip.visual = encoder
        self.num_frames = int(num_frames)
        self.variant = variant
        if text_proj_bias:
            proj = getattr(getattr(clip, "text", None), "proj", None)
            if not isinstance(proj, nn.Linear):
                raise ValueError(
                    "text_proj_bias needs a Hugging Face text tower with a linear projection "
                    "(text_cfg.hf_model_name and hf_proj_type 'linear')"
                )
            clip.text.proj = nn.Linear(proj.in_features, proj.out_features, bias=True)

    def encode_video(self, video: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embed clips (B, T, C, H, W) -> (B, D)."""
        if video.ndim != 5:
            raise ValueError(f"expected video of shape (B, T, C, H, W), got {tuple(video.shape)}")
        features = self.clip.visual(video)
        return F.normalize(features, dim=-1) if normalize else features

    def forward(
        self,
        image: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        video: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """Return normalised features for the CLIP losses (``image_features`` embed ``video`` if given)."""
        encode: Callable[[torch.Tensor], torch.Tensor] = lambda v: self.encode_video(v, normalize=True)  # noqa: E731
        return self.set_forward("video", video, encode, image, text)
