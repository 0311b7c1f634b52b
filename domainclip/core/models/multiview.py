"""Multi-view tower: one object seen from V views, fused into one embedding.

Config: ``domainclip_cfg = {"tower": "multiview", "num_views": 4, "fusion": "mean" | "attention"}``.

Each view (B, V, C, H, W) is embedded by the CLIP image tower; the per-view embeddings are fused by
one of the set poolers of :mod:`domainclip.core.models.video` (``"mean"``: the average of the
L2-normalised view embeddings, ``"attention"``, or ``"transformer"`` with a learnable per-view
embedding for fixed camera layouts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from domainclip.core.models.registry import DomainCLIP, register_tower
from domainclip.core.models.video import build_set_pooler

__all__ = ["MultiViewCLIP"]


@register_tower("multiview")
class MultiViewCLIP(DomainCLIP):
    """CLIP over multi-view renders or photographs of one object.

    Args:
        clip: the open_clip model whose image tower embeds each view.
        embed_dim: joint embedding width.
        num_views: views per object the tower is built for (the transformer fusion's longest input).
        fusion: ``"mean"``, ``"attention"`` or ``"transformer"``.
        fusion_layers: transformer layers (``"transformer"`` fusion).
        fusion_heads: attention heads of the fusion (``"attention"``/``"transformer"``).

    """

    def __init__(
        self,
        clip: nn.Module,
        embed_dim: int,
        num_views: int = 4,
        fusion: str = "mean",
        fusion_layers: int = 1,
        fusion_heads: int = 8,
    ):
        super().__init__(clip, embed_dim)
        self.num_views = int(num_views)
        self.fusion = fusion
        self.view_fusion = build_set_pooler(fusion, self.embed_dim, self.num_views, fusion_layers, fusion_heads)

    def encode_views(self, views: torch.Tensor, normalize: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed every view and fuse them.

        Args:
            views: (B, V, C, H, W).
            normalize: L2-normalise both outputs (the fused one after fusion).

        Returns:
            ``(per_view, fused)``: (B, V, D) and (B, D).

        """
        per_view = self.encode_image_set(views, "views", "B, V")
        fused = self.view_fusion(per_view)
        if normalize:
            return F.normalize(per_view, dim=-1), F.normalize(fused, dim=-1)
        return per_view, fused

    def forward(
        self,
        views: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """Normalised features for the CLIP losses; ``image_features`` are the fused view embeddings."""
        return self.set_forward("views", views, lambda v: self.encode_views(v, normalize=True)[1], image, text)
