"""Omniview-Tuning (OVT): the ``omniview`` tower, CLIP tuned so an object keeps its embedding from any viewpoint.

OVT (Ruan et al., ECCV 2024) fine-tunes CLIP on multi-view objects mixed with general image-text
pairs. Once per epoch it embeds every view of every object and mines, per object, an anchor (the
views averaged with weights that favour views agreeing with their neighbours) and the ``K``
views least similar to it (:mod:`~domainclip.domains.multiview.mining`). Training adds to the
CLIP loss a cross-viewpoint term that pulls the mined views towards their anchor,
``relu(1 - cos(view, anchor) + margin)``; the image tower is tuned through LoRA on its attention
projections, with a small residual head on the image embedding, ``normalize(z + s * head(z))``.

:class:`OmniviewCLIP` is that as a domain tower (``domainclip_cfg = {"tower": "omniview", ...}``)
extending the core's :class:`~domainclip.core.models.multiview.MultiViewCLIP`:

* ``tuning="lora"``: :func:`domainclip.core.models.lora.apply_lora` on the CLIP image tower and
  every other weight frozen except the residual head (the text tower, the logit scale, the
  fusion); ``tuning="full"``: nothing frozen and no LoRA.
* The residual head applies in :meth:`encode_image` (and so to every view), so evaluation sees it.
  Its last layer starts at zero: the untrained tower embeds exactly as its CLIP does. The hub export
  merges LoRA into the CLIP weights (``DomainCLIP.export_clip_state_dict``), so plain open_clip
  loads the folder; the head is a tower weight (``domainclip_tower.safetensors``), which plain
  open_clip does not apply.
* The engine calls :meth:`refresh` before every step; when mining is due (step 0, then every
  ``mine_every`` steps, or once per pass over the multi-view objects when it is 0) the tower runs
  one pass over the training data (``context.batches()``), builds the mined table and, with
  several processes, gathers every rank's part so each holds the whole table.
* :meth:`training_state` / :meth:`load_training_state` save the table and the mining schedule in
  the checkpoint, so a resumed run trains on the same selection as the uninterrupted one.
* Forward with ``object_key``: a mined object's contrastive image feature is its selected view
  ``step % K`` (each step another of its ``K`` mined views); all ``K`` feed the cross-view term
  (``aux_losses["cross_view"]``). A general image-text sample (``multiview`` false) uses its
  image, and an object missing from the table view ``step % V``, both without a cross-view term.
  Without ``object_key`` the forward is the :class:`MultiViewCLIP` one (fused views).

The table holds, per object, ``K`` view indices (int16) and a float16 anchor: ``2 K + 2 D`` bytes
plus its key (about 1 KB per object at ``D = 512``), whatever the number of views or images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from domainclip.core.data.decode import derive_rng
from domainclip.core.errors import InputError
from domainclip.core.models.multiview import MultiViewCLIP
from domainclip.core.models.registry import register_tower
from domainclip.domains.multiview.mining import SELECTIONS, MinedTable, mine_object

__all__ = ["TUNINGS", "OmniviewCLIP", "RefreshContext", "ResidualHead"]

#: What training changes: LoRA adapters and the head, or every weight.
TUNINGS = ("lora", "full")


class RefreshContext(Protocol):
    """What the engine offers :meth:`OmniviewCLIP.refresh` (see ``domainclip.core.engine.train``)."""

    device: torch.device
    world_size: int
    seed: int
    global_batch_size: int

    def batches(self) -> Iterable[dict[str, Any]]:
        """One finite, unshuffled pass over this rank's share of the training sources, decoded by the task."""

    def autocast(self) -> Any:
        """The run's autocast context."""

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""


class ResidualHead(nn.Module):
    """A residual refinement of the image embedding: ``z + scale * mlp(z)``, the MLP's last layer zero-initialised.

    Args:
        dim: embedding width.
        scale: weight of the MLP's output (OVT: 0.1).
        hidden: hidden width of the two-layer MLP (default: ``dim``).
    """

    def __init__(self, dim: int, scale: float = 0.1, hidden: int | None = None):
        super().__init__()
        hidden = hidden or dim
        self.scale = float(scale)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Refine embeddings ``(N, dim)`` (unnormalised in, unnormalised out)."""
        return z + self.scale * self.mlp(z)


def _positive(name: str, value: float, *, zero: bool = False) -> None:
    if not (value > 0 or (zero and value == 0)) or not math.isfinite(value):
        raise InputError(f"omniview tower: {name} must be {'>= 0' if zero else '> 0'}; got {value!r}")


@register_tower("omniview")
class OmniviewCLIP(MultiViewCLIP):
    """The multi-view tower trained with Omniview-Tuning: mined views, cross-view alignment, LoRA and a residual head.

    Ablations of OVT are settings: plain fine-tuning is ``cross_view_weight=0, selection="random"``
    (the CLIP loss on random views), random-K views is ``selection="random"`` with the cross-view
    term, OVT is ``selection="worst"``.

    Args:
        clip: the open_clip model.
        embed_dim: its joint embedding width.
        num_views: views per object the fusion is built for (:class:`MultiViewCLIP`).
        fusion: view fusion of the view-stack forward without object keys (:class:`MultiViewCLIP`).
        fusion_layers: transformer layers of the ``"transformer"`` fusion.
        fusion_heads: attention heads of the ``"attention"``/``"transformer"`` fusion.
        tuning: ``"lora"`` (LoRA on the image tower plus the residual head; all else frozen) or
            ``"full"`` (every weight trains, no LoRA).
        lora_rank: LoRA rank ``r``.
        lora_alpha: LoRA scaling numerator (the update is scaled by ``alpha / r``).
        lora_dropout: dropout on the LoRA branch's input.
        lora_targets: module names in the image tower's blocks that get adapters (``"qkv"``,
            ``"out_proj"``).
        residual_head: add the residual head on the image embedding.
        head_scale: weight ``s`` of the head's output in ``normalize(z + s * head(z))``.
        selection: ``"worst"`` (OVT: the views least similar to the anchor) or ``"random"``.
        worst_k: views mined per object ``K`` (at most the decoder's ``num_views``).
        anchor_neighbours: nearest other views in each view's anchor weight.
        mine_every: steps between two mining passes; 0 mines once per pass over the multi-view
            objects (objects / global batch steps).
        cross_view_weight: weight of the cross-view term (0 turns it off).
        margin: margin of the cross-view term ``relu(1 - cos + margin)`` (as OVT writes it: with
            ``margin >= 0`` the ReLU never clips, since ``cos <= 1``, so the term is ``1 + margin``
            minus the mean cosine and its gradient does not depend on the margin).
    """

    def __init__(
        self,
        clip: nn.Module,
        embed_dim: int,
        num_views: int = 12,
        fusion: str = "mean",
        fusion_layers: int = 1,
        fusion_heads: int = 8,
        tuning: Literal["lora", "full"] = "lora",
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        lora_dropout: float = 0.0,
        lora_targets: Sequence[str] = ("qkv",),
        residual_head: bool = True,
        head_scale: float = 0.1,
        selection: Literal["worst", "random"] = "worst",
        worst_k: int = 5,
        anchor_neighbours: int = 5,
        mine_every: int = 0,
        cross_view_weight: float = 1.0,
        margin: float = 0.3,
    ):
        super().__init__(clip, embed_dim, num_views=num_views, fusion=fusion, fusion_layers=fusion_layers,
                         fusion_heads=fusion_heads)
        if tuning not in TUNINGS:
            raise InputError(f"omniview tower: tuning must be one of {TUNINGS}; got {tuning!r}")
        if selection not in SELECTIONS:
            raise InputError(f"omniview tower: selection must be one of {SELECTIONS}; got {selection!r}")
        if not 1 <= int(worst_k) <= int(num_views):
            raise InputError(f"omniview tower: worst_k must be in [1, num_views={num_views}]; got {worst_k}")
        if int(anchor_neighbours) < 1 or int(mine_every) < 0:
            raise InputError(f"omniview tower: anchor_neighbours must be >= 1 and mine_every >= 0; got "
                             f"{anchor_neighbours}, {mine_every}")
        _positive("cross_view_weight", cross_view_weight, zero=True)
        _positive("margin", margin, zero=True)
        _positive("head_scale", head_scale)
        self.tuning = tuning
        self.selection = selection
        self.worst_k = int(worst_k)
        self.anchor_neighbours = int(anchor_neighbours)
        self.mine_every = int(mine_every)
        self.cross_view_weight = float(cross_view_weight)
        self.margin = float(margin)
        self.head = ResidualHead(self.embed_dim, head_scale) if residual_head else None
        if tuning == "lora":
            from domainclip.core.models.lora import apply_lora, lora_parameters

            apply_lora(self.clip.visual, rank=int(lora_rank), alpha=float(lora_alpha), dropout=float(lora_dropout),
                       targets=tuple(lora_targets))
            self.requires_grad_(False)
            for _, param in lora_parameters(self.clip.visual):
                param.requires_grad_(True)
            if self.head is not None:
                self.head.requires_grad_(True)
        # the mined table and its schedule (saved by training_state, not in the weights)
        self.table = MinedTable()
        self.step = 0  # the step being trained, set by refresh
        self.mined_at = -1
        self.next_mining = 0
        self.rounds = 0

    # ------------------------------------------------------------------ embeddings
    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embed single images ``(B, C, H, W)``: the CLIP image tower, then the residual head."""
        z = self.clip.encode_image(image)
        if self.head is not None:
            z = self.head(z)
        return F.normalize(z, dim=-1) if normalize else z

    def encode_image_set(self, images: torch.Tensor, what: str = "images", dims: str = "B, N") -> torch.Tensor:
        """Embed every image of a stack ``(B, N, C, H, W) -> (B, N, D)`` with :meth:`encode_image` (head included)."""
        if images.ndim != 5:
            raise ValueError(f"expected {what} of shape ({dims}, C, H, W), got {tuple(images.shape)}")
        batch, count = images.shape[:2]
        return self.encode_image(images.flatten(0, 1)).reshape(batch, count, -1)

    # ------------------------------------------------------------------ mining
    def mining_due(self, step: int) -> bool:
        """Whether :meth:`refresh` at ``step`` mines: never mined yet, or the schedule says so."""
        return self.mined_at < 0 or step >= self.next_mining

    @torch.no_grad()
    def mine(self, batches: Iterable[dict[str, Any]], *, seed: int = 0, device: torch.device | str = "cpu",
             autocast: Callable[[], Any] | None = None) -> list[tuple[str, list[int], torch.Tensor]]:
        """Mine every multi-view object of ``batches``: ``(key, selected view indices, float16 anchor)`` rows.

        Runs in evaluation mode (no dropout) and restores the mode after. The view embeddings are
        only computed when something needs them (``selection="worst"`` or a cross-view term);
        random views without the term need the keys alone.

        Args:
            batches: decoded batches (``views``, ``object_key``, ``multiview``); general samples are skipped.
            seed: seed of ``selection="random"`` (combined with the mining round and the object key).
            device: where the tower runs.
            autocast: the run's autocast context factory.
        """
        embed = self.selection == "worst" or self.cross_view_weight > 0
        was_training = self.training
        self.eval()
        rows: list[tuple[str, list[int], torch.Tensor]] = []
        try:
            for batch in batches:
                keep = torch.as_tensor(batch["multiview"]).bool()
                if not bool(keep.any()):
                    continue
                views = batch["views"][keep]
                if views.shape[1] < self.worst_k:
                    raise InputError(f"omniview tower: worst_k={self.worst_k} views mined per object, but the "
                                     f"decoder gives {views.shape[1]} (data.decoder_args.num_views)")
                keys = [k for k, m in zip(batch["object_key"], keep.tolist(), strict=True) if m]
                if embed:
                    with autocast() if autocast is not None else torch.autocast("cpu", enabled=False):
                        emb = self.encode_image_set(views.to(device), "views", "B, V").float().cpu()
                else:
                    emb = torch.eye(views.shape[1]).expand(len(keys), -1, -1)  # placeholders: no anchor is used
                for key, e in zip(keys, emb, strict=True):
                    rng = derive_rng(seed, "omniview", self.rounds, key)
                    selected, anchor = mine_object(e, self.worst_k, self.anchor_neighbours, self.selection, rng)
                    if not embed:
                        anchor = torch.zeros(self.embed_dim)
                    rows.append((key, selected, anchor.half()))
        finally:
            self.train(was_training)
        return rows

    def refresh(self, step: int, total_steps: int, context: RefreshContext) -> None:
        """Engine hook, before every optimizer step: record the step and, when due, mine the table again.

        Args:
            step: the step about to be trained (0-based).
            total_steps: steps of the whole run.
            context: the engine's data pass, device, autocast and rank gathering.

        Raises:
            InputError: the training data holds no multi-view object.
        """
        self.step = int(step)
        if not self.mining_due(step):
            return
        rows = self.mine(context.batches(), seed=context.seed, device=context.device, autocast=context.autocast)
        table = MinedTable.from_rows(row for part in context.gather_objects(rows) for row in part)
        if not len(table):
            raise InputError("omniview tower: the training data holds no multi-view object (samples with "
                             "NNN.view.* members) to mine views from")
        period = self.mine_every or max(1, math.ceil(len(table) / context.global_batch_size))
        self.table, self.mined_at, self.next_mining = table, int(step), int(step) + period
        self.rounds += 1

    def training_state(self) -> dict[str, Any]:
        """Engine hook: the mined table and the mining schedule, as ``weights_only``-loadable values."""
        return {"table": self.table.state_dict(), "mined_at": self.mined_at, "next_mining": self.next_mining,
                "rounds": self.rounds, "step": self.step}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Engine hook on resume: restore what :meth:`training_state` saved.

        Args:
            state: the dict :meth:`training_state` returned.
        """
        self.table = MinedTable.from_state_dict(state["table"])
        self.mined_at, self.next_mining = int(state["mined_at"]), int(state["next_mining"])
        self.rounds, self.step = int(state["rounds"]), int(state["step"])

    # ------------------------------------------------------------------ forward
    def _plan(
        self, keys: Sequence[str], multiview: Sequence[bool], views: int
    ) -> tuple[list[list[int]], list[int], list[torch.Tensor | None]]:
        """Per sample: the view indices to embed, which of them is the contrastive one, and the anchor (or None)."""
        if views < 1:
            raise ValueError("a sample needs at least one view")
        embed, slot, anchors = [], [], []
        for key, is_object in zip(keys, multiview, strict=True):
            found = self.table.lookup(key) if is_object else None
            anchors.append(None if found is None else found[1])
            if found is None:
                embed.append([self.step % views if is_object else 0])
                slot.append(0)
                continue
            selected = found[0]
            if max(selected) >= views:
                raise InputError(f"omniview tower: object {key!r} was mined with view {max(selected)} but the batch "
                                 f"has {views} views per sample; keep data.decoder_args.num_views as mined")
            embed.append(selected)
            slot.append(self.step % len(selected))
        return embed, slot, anchors

    def forward(
        self,
        views: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
        object_key: Sequence[str] | None = None,
        multiview: torch.Tensor | Sequence[bool] | None = None,
        cross_view: bool = True,
    ) -> dict:
        """open_clip's output dict; with ``object_key``, OVT's mined-view features and cross-view term.

        Args:
            views: ``(B, V, C, H, W)``.
            text: token ids ``(B, L)``.
            image: single images ``(B, C, H, W)`` instead of ``views``.
            object_key: each sample's object key (the mined table's key); ``None``: fused views.
            multiview: per sample, whether it is a multi-view object (default: all are).
            cross_view: add ``aux_losses["cross_view"]`` (the accumulation's cached pass leaves it out).

        Returns:
            ``image_features``, ``text_features`` (L2-normalised), ``logit_scale`` (and ``logit_bias``);
            with ``object_key`` and ``cross_view`` also ``aux_losses = {"cross_view": weight * term}``,
            the term summed over the mined objects' selected views (mean over each object's ``K``)
            and divided by the batch size (a general sample counts 0), so accumulation stays exact.
        """
        if object_key is None or views is None:
            return super().forward(views=views, text=text, image=image)
        if views.ndim != 5 or len(object_key) != views.shape[0]:
            raise ValueError(f"expected views (B, V, C, H, W) and B object keys; got {tuple(views.shape)}, "
                             f"{len(object_key)} keys")
        batch = views.shape[0]
        flags = [True] * batch if multiview is None else [bool(m) for m in torch.as_tensor(multiview).tolist()]
        embed, slot, anchors = self._plan(object_key, flags, views.shape[1])
        term_rows = [b for b in range(batch) if anchors[b] is not None]
        use_term = cross_view and self.cross_view_weight > 0 and bool(term_rows)
        if not use_term:  # only the contrastive view of each sample
            embed = [[e[s]] for e, s in zip(embed, slot, strict=True)]
            slot = [0] * batch
        rows = torch.tensor([b for b, e in enumerate(embed) for _ in e], device=views.device)
        cols = torch.tensor([v for e in embed for v in e], device=views.device)
        features = F.normalize(self.encode_image(views[rows, cols]), dim=-1)
        starts = [0]
        for e in embed:
            starts.append(starts[-1] + len(e))
        image_features = features[torch.tensor([starts[b] + slot[b] for b in range(batch)], device=views.device)]
        text_features = self.encode_text(text, normalize=True) if text is not None else None
        out = self.clip_output(image_features, text_features)
        if cross_view and self.cross_view_weight > 0:
            total = features.new_zeros(())
            for b in term_rows if use_term else ():
                cos = features[starts[b]:starts[b + 1]] @ anchors[b].to(features.device, features.dtype)
                total = total + F.relu(1.0 - cos + self.margin).mean()
            out["aux_losses"] = {"cross_view": self.cross_view_weight * total / batch}
        return out
