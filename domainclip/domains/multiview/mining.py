"""Worst-view mining (Omniview-Tuning): each object's anchor embedding and the views furthest from it.

OVT (Ruan et al., 2024) embeds every view of every object once per epoch and keeps, per object,

* an **anchor**: the views' embeddings averaged with weights that favour the views agreeing with
  their neighbourhood (view ``v``'s weight is its mean cosine similarity to its ``neighbours``
  nearest other views, so an outlying view pulls the anchor less), L2-normalised;
* the **selected views**: the ``k`` views least similar to the anchor (``"worst"``), or, for OVT's
  ablation, ``k`` views drawn at random (``"random"``; the anchor is the same).

Training then pulls the selected views towards their anchor. This module holds the pure parts,
unit-tested on hand-made embeddings: :func:`view_weights`, :func:`object_anchor`,
:func:`select_views`, :func:`mine_object`, and :class:`MinedTable`, the per-object table a tower
keeps between two mining passes (a row index per object key, ``k`` view indices and a float16
anchor per row: ``O(objects * (k + D))`` memory, e.g. about 1 KB per object at ``D = 512``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

__all__ = ["SELECTIONS", "MinedTable", "mine_object", "object_anchor", "select_views", "view_weights"]

#: How the views of an object are chosen: OVT's worst views, or random ones (OVT's ablation).
SELECTIONS = ("worst", "random")


def _check_views(embeddings: torch.Tensor) -> torch.Tensor:
    if embeddings.ndim != 2 or embeddings.shape[0] < 1:
        raise ValueError(f"expected view embeddings of shape (V, D) with V >= 1; got {tuple(embeddings.shape)}")
    return F.normalize(embeddings.float(), dim=-1)


def view_weights(embeddings: torch.Tensor, neighbours: int) -> torch.Tensor:
    """Weight of each view: its mean cosine similarity to its ``neighbours`` nearest other views.

    With fewer than ``neighbours + 1`` views every other view counts; a single view weighs 1.

    Args:
        embeddings: one object's view embeddings ``(V, D)`` (normalised here).
        neighbours: how many nearest other views enter each mean (OVT: 5).

    Returns:
        ``(V,)`` weights, each in ``[-1, 1]``.
    """
    if neighbours < 1:
        raise ValueError(f"neighbours must be >= 1; got {neighbours}")
    e = _check_views(embeddings)
    count = e.shape[0]
    if count == 1:
        return torch.ones(1)
    sim = e @ e.T
    sim.fill_diagonal_(float("-inf"))  # a view is not its own neighbour
    nearest = sim.topk(min(neighbours, count - 1), dim=1).values
    return nearest.mean(dim=1)


def object_anchor(embeddings: torch.Tensor, neighbours: int) -> torch.Tensor:
    """The object's anchor: ``normalize(sum_v w_v e_v / sum_v w_v)`` with :func:`view_weights`.

    Weights are clipped at 0 (a view dissimilar to all its neighbours does not push the anchor
    away); when every weight is 0 the views count equally.

    Args:
        embeddings: one object's view embeddings ``(V, D)`` (normalised here).
        neighbours: nearest other views per weight (see :func:`view_weights`).

    Returns:
        The unit anchor ``(D,)``.
    """
    e = _check_views(embeddings)
    w = view_weights(e, neighbours).clamp_min(0.0)
    if float(w.sum()) <= 0.0:
        w = torch.ones_like(w)
    return F.normalize((w[:, None] * e).sum(dim=0) / w.sum(), dim=-1)


def select_views(
    embeddings: torch.Tensor,
    anchor: torch.Tensor,
    k: int,
    selection: Literal["worst", "random"] = "worst",
    rng: random.Random | None = None,
) -> list[int]:
    """The ``k`` views to align: the least similar to the anchor, or ``k`` drawn at random.

    Args:
        embeddings: one object's view embeddings ``(V, D)``.
        anchor: its anchor ``(D,)``.
        k: views to keep (at most ``V``).
        selection: ``"worst"`` (lowest cosine to the anchor first; ties by view index) or ``"random"``.
        rng: the generator of ``"random"`` (required then).

    Returns:
        ``k`` distinct view indices; ``"worst"`` lists them from the least similar up.
    """
    e = _check_views(embeddings)
    count = e.shape[0]
    if not 1 <= k <= count:
        raise ValueError(f"k must be in [1, {count}] for an object with {count} views; got {k}")
    if selection == "random":
        if rng is None:
            raise ValueError("selection='random' needs an rng")
        return sorted(rng.sample(range(count), k))
    if selection != "worst":
        raise ValueError(f"selection must be one of {SELECTIONS}; got {selection!r}")
    cos = (e @ F.normalize(anchor.float(), dim=-1)).tolist()
    return sorted(range(count), key=lambda v: (cos[v], v))[:k]


def mine_object(
    embeddings: torch.Tensor,
    k: int,
    neighbours: int,
    selection: Literal["worst", "random"] = "worst",
    rng: random.Random | None = None,
) -> tuple[list[int], torch.Tensor]:
    """One object's mining result: ``(selected view indices, anchor)``.

    Args:
        embeddings: the object's view embeddings ``(V, D)``.
        k: views to select.
        neighbours: nearest other views per anchor weight.
        selection: ``"worst"`` or ``"random"``.
        rng: the generator of ``"random"``.
    """
    anchor = object_anchor(embeddings, neighbours)
    return select_views(embeddings, anchor, k, selection, rng), anchor


@dataclass
class MinedTable:
    """Per-object mining results between two mining passes: object key -> (view indices, anchor).

    Rows are kept in two tensors (``selected``: ``(N, k)`` int16, ``anchors``: ``(N, D)`` float16)
    and a key -> row dict, so the table costs ``k * 2 + D * 2`` bytes per object plus its key.

    Args:
        keys: object keys, one per row.
        selected: ``(N, k)`` view indices per row.
        anchors: ``(N, D)`` unit anchors per row.
    """

    keys: list[str] = field(default_factory=list)
    selected: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.int16))
    anchors: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.float16))

    def __post_init__(self) -> None:
        if len(self.keys) != self.selected.shape[0] or len(self.keys) != self.anchors.shape[0]:
            raise ValueError(
                f"a mined table needs one row per key: {len(self.keys)} keys, selected "
                f"{tuple(self.selected.shape)}, anchors {tuple(self.anchors.shape)}"
            )
        self.selected = self.selected.to(torch.int16)
        self.anchors = self.anchors.to(torch.float16)
        self.index = {key: row for row, key in enumerate(self.keys)}  # a repeated key keeps its last row

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self.index

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, Sequence[int], torch.Tensor]]) -> MinedTable:
        """Build a table from ``(key, selected indices, anchor)`` rows (in any order; sorted by key)."""
        rows = sorted(rows, key=lambda r: r[0])
        if not rows:
            return cls()
        return cls(
            [r[0] for r in rows],
            torch.tensor([list(r[1]) for r in rows], dtype=torch.int16),
            torch.stack([r[2].detach().float().cpu() for r in rows]),
        )

    def lookup(self, key: str) -> tuple[list[int], torch.Tensor] | None:
        """``(selected view indices, anchor as float32)`` of an object, or ``None`` when it was not mined."""
        row = self.index.get(key)
        if row is None:
            return None
        return self.selected[row].tolist(), self.anchors[row].float()

    def nbytes(self) -> int:
        """Bytes held by the table's tensors (the keys' strings come on top)."""
        return self.selected.numel() * self.selected.element_size() + self.anchors.numel() * self.anchors.element_size()

    def state_dict(self) -> dict[str, Any]:
        """The table as ``torch.load(weights_only=True)``-loadable values."""
        return {"keys": list(self.keys), "selected": self.selected.clone(), "anchors": self.anchors.clone()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> MinedTable:
        """Inverse of :meth:`state_dict`."""
        return cls([str(k) for k in state["keys"]], torch.as_tensor(state["selected"]),
                   torch.as_tensor(state["anchors"]))
