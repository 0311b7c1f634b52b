"""Video tower: a CLIP frame encoder plus temporal pooling (``domainclip_cfg = {"tower": "video"}``).

Frames of a clip (B, T, C, H, W) are embedded independently by the CLIP image tower and pooled over
T into one clip embedding, trained against captions with the usual CLIP losses. Three poolings:

* ``"mean"``: the average of the L2-normalised frame embeddings (no parameters; the tower is the
  plain CLIP). Every frame counts the same whatever its embedding's norm, as in CLIP4Clip's
  ``meanP`` and SurgCLIP; a clip's score against a caption is then its frames' mean cosine
  similarity up to one factor per clip (:meth:`VideoCLIP.frame_text_similarity`). Evaluation
  embeds clips with an image CLIP through this same pooling;
* ``"attention"``: a learnable query attends over the frames;
* ``"transformer"``: a small pre-norm temporal transformer over frames plus a learnable positional
  embedding, then the mean.

The poolers here are generic set poolers over (B, N, D); the multi-view tower reuses them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from domainclip.core.models.registry import DomainCLIP, register_tower
from domainclip.core.plugins import UnknownNameError

__all__ = ["AttentionPool", "MeanPool", "SET_POOLERS", "TransformerPool", "VideoCLIP", "build_set_pooler"]


def _check_heads(dim: int, heads: int) -> None:
    if heads < 1 or dim % heads:
        raise ValueError(f"pooling heads must divide the embedding width: {dim} % {heads} != 0")


class MeanPool(nn.Module):
    """Average of the L2-normalised members of the set (B, N, D) -> (B, D): each member counts the same."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool over the set dimension."""
        return F.normalize(x, dim=-1).mean(dim=1)


class AttentionPool(nn.Module):
    """A learnable query attends over the (layer-normed) set: (B, N, D) -> (B, D).

    Args:
        dim: embedding width.
        heads: attention heads (must divide ``dim``).

    """

    def __init__(self, dim: int, heads: int = 8):
        super().__init__()
        _check_heads(dim, heads)
        self.query = nn.Parameter(torch.randn(1, 1, dim) * dim**-0.5)
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool over the set dimension."""
        keys = self.norm(x)
        query = self.query.expand(x.shape[0], -1, -1).to(keys.dtype)
        out, _ = self.attn(query, keys, keys, need_weights=False)
        return out[:, 0]


class TransformerPool(nn.Module):
    """Positional embedding + a small pre-norm transformer over the set, then the mean.

    Args:
        dim: embedding width.
        max_len: longest set (number of frames / views) the positional embedding covers.
        layers: transformer layers.
        heads: attention heads (must divide ``dim``).

    """

    def __init__(self, dim: int, max_len: int, layers: int = 1, heads: int = 8):
        super().__init__()
        _check_heads(dim, heads)
        if max_len < 1 or layers < 1:
            raise ValueError(f"TransformerPool needs max_len >= 1 and layers >= 1, got {max_len}, {layers}")
        self.max_len = max_len
        self.positional_embedding = nn.Parameter(torch.zeros(1, max_len, dim))
        nn.init.trunc_normal_(self.positional_embedding, std=0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim,
                heads,
                dim_feedforward=4 * dim,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(layers)
        )
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the layers' activations in backward to save memory."""
        self.grad_checkpointing = enable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool over the set dimension."""
        length = x.shape[1]
        if length > self.max_len:
            raise ValueError(f"transformer pooling was built for at most {self.max_len} frames/views, got {length}")
        x = x + self.positional_embedding[:, :length].to(x.dtype)
        for layer in self.layers:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return x.mean(dim=1)


#: Set pooler builders: name -> f(dim, max_len, layers, heads).
SET_POOLERS: dict[str, Callable[[int, int, int, int], nn.Module]] = {
    "mean": lambda dim, max_len, layers, heads: MeanPool(),
    "attention": lambda dim, max_len, layers, heads: AttentionPool(dim, heads),
    "transformer": lambda dim, max_len, layers, heads: TransformerPool(dim, max_len, layers, heads),
}


def build_set_pooler(name: str, dim: int, max_len: int, layers: int = 1, heads: int = 8) -> nn.Module:
    """Build the pooler registered as ``name`` in :data:`SET_POOLERS` (raises listing close names)."""
    if name not in SET_POOLERS:
        raise UnknownNameError("pooling", name, sorted(SET_POOLERS))
    return SET_POOLERS[name](dim, max_len, layers, heads)


@register_tower("video")
class VideoCLIP(DomainCLIP):
    """CLIP over video clips: the image tower embeds each frame, a pooler aggregates over time.

    Args:
        clip: the open_clip model whose image tower embeds frames.
        embed_dim: joint embedding width.
        num_frames: frames per clip the tower is built for (the transformer pooling's longest input).
        pooling: ``"mean"``, ``"attention"`` or ``"transformer"``.
        pool_layers: temporal transformer layers (``"transformer"`` pooling).
        pool_heads: attention heads of the pooling (``"attention"``/``"transformer"``).

    """

    def __init__(
        self,
        clip: nn.Module,
        embed_dim: int,
        num_frames: int = 8,
        pooling: str = "mean",
        pool_layers: int = 1,
        pool_heads: int = 8,
    ):
        super().__init__(clip, embed_dim)
        self.num_frames = int(num_frames)
        self.pooling = pooling
        self.temporal_pool = build_set_pooler(pooling, self.embed_dim, self.num_frames, pool_layers, pool_heads)

    def encode_frames(self, video: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embed every frame: (B, T, C, H, W) -> (B, T, D)."""
        features = self.encode_image_set(video, "video", "B, T")
        return F.normalize(features, dim=-1) if normalize else features

    def encode_video(self, video: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embed clips: frame embeddings pooled over time, (B, T, C, H, W) -> (B, D)."""
        features = self.temporal_pool(self.encode_frames(video))
        return F.normalize(features, dim=-1) if normalize else features

    def frame_text_similarity(self, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each frame with each text, averaged over frames (SurgCLIP scoring).

        With ``"mean"`` pooling this is ``encode_video(video) @ normalised text features``.

        Args:
            video: clips (B, T, C, H, W).
            text: token ids (N, L).

        Returns:
            (B, N) similarities in [-1, 1], without the logit scale.

        """
        frames = self.encode_frames(video, normalize=True)
        texts = self.encode_text(text, normalize=True)
        return torch.einsum("btd,nd->btn", frames, texts).mean(dim=1)

    def forward(
        self,
        image: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        video: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """Return normalised features for the CLIP losses (``image_features`` embed ``video`` if given)."""
        return self.set_forward("video", video, lambda v: self.encode_video(v, normalize=True), image, text)
