"""Contrastive image-text losses that know about ranks: CLIP, SigLIP, InfoLOOB/CLOOB, multi-positive.

Every loss is an :class:`torch.nn.Module` built by name (:func:`create_loss`, registry
:data:`LOSSES`) with the same distributed arguments as open_clip's ``ClipLoss``:

``local_loss``
    ``False``: every rank gathers the features of all ranks and computes the loss of the *global*
    batch (all rows, all columns); the value is the same on every rank and equals the loss a single
    process would compute on the concatenated batch. ``True``: every rank computes only its own rows
    (its images against all texts, its texts against all images); the mean of the rank losses is the
    global loss when all ranks hold the same number of samples.
``gather_with_grad``
    ``True``: gather with ``torch.distributed.nn.functional.all_gather``, whose backward sums, on
    every rank, the gradients that all ranks computed for that rank's slice. ``False``: gather with a
    plain ``all_gather`` (no backward communication) and put the local tensor back in its slice so
    the local features still get a gradient. ``local_loss=True`` needs ``gather_with_grad=True``:
    without the backward communication a rank never receives the gradient that the other ranks'
    rows send to its features, and the gradient would be wrong (open_clip accepts that combination
    silently; here it raises).
``rank``, ``world_size``
    ``None`` reads them from :mod:`torch.distributed` at each forward when a process group is
    initialised, else uses a single process (0 and 1).

Gradient convention (the same for every loss and both gather modes): with ``L`` the global-batch
loss and ``W`` the world size, the gradient that reaches a rank's local features is ``W * dL/dx``.
DDP averages parameter gradients over ranks, so the parameter update is exactly ``dL/dtheta``, the
gradient of a single process that saw the whole global batch. With ``gather_with_grad=True`` this
``W`` is the sum over ranks done by the all-gather backward; with ``gather_with_grad=False`` the loss
multiplies the gradient of the re-inserted local slice by ``W`` itself. (open_clip's no-grad path
omits that factor, so its update there is ``dL/dtheta / W`` and shrinks with the number of GPUs.)

Ranks may hold different numbers of rows (a last, smaller batch; a different number of captions per
rank for :class:`MultiPositiveClipLoss`): sizes are gathered first and tensors padded to the largest
size for the collective, then trimmed.

Features passed to these losses are already L2-normalised, and ``logit_scale`` is already
exponentiated, as open_clip's model forward returns them. ``forward`` ignores unknown keyword
arguments so a trainer can call ``loss(**model_output, **batch_extras)``; with ``output_dict=True``
it returns named parts whose sum is the total.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import distributed as dist
from torch import nn

from domainclip.core.errors import InputError
from domainclip.core.plugins import UnknownNameError

__all__ = [
    "check_loss_arguments",
    "loss_arguments",
    "LOSSES",
    "ClipLoss",
    "ContrastiveLoss",
    "InfoLOOBLoss",
    "MultiPositiveClipLoss",
    "SigLipLoss",
    "create_loss",
    "register_loss",
]

LossOutput = torch.Tensor | dict[str, torch.Tensor]

#: Loss name -> loss class; filled by :func:`register_loss`.
LOSSES: dict[str, type[ContrastiveLoss]] = {}

_L = TypeVar("_L", bound="type[ContrastiveLoss]")


def register_loss(name: str) -> Callable[[_L], _L]:
    """Class decorator that makes a loss available to :func:`create_loss` under ``name``.

    Args:
        name: registry name used in recipes (``loss: {name: clip}``).

    Raises:
        ValueError: if ``name`` is already taken by another class.

    """

    def decorate(cls: _L) -> _L:
        if name in LOSSES and LOSSES[name] is not cls:
            raise ValueError(f"loss name {name!r} is already registered to {LOSSES[name].__qualname__}")
        LOSSES[name] = cls
        return cls

    return decorate


def create_loss(name: str, **kwargs: Any) -> ContrastiveLoss:
    """Build a registered loss by name.

    Args:
        name: a key of :data:`LOSSES` (``"clip"``, ``"siglip"``, ``"infoloob"``, ``"multi_positive"``).
        **kwargs: constructor arguments of that loss (``local_loss``, ``gather_with_grad``, ...).

    Raises:
        UnknownNameError: for a name that is not registered; the message lists close matches.

    """
    if name not in LOSSES:
        raise UnknownNameError("loss", name, list(LOSSES))
    check_loss_arguments(name, kwargs)
    return LOSSES[name](**kwargs)


def loss_arguments(name: str) -> list[str] | None:
    """The keyword arguments the loss ``name`` takes (its constructor's and those it passes on to its bases).

    Returns ``None`` when it takes any keyword (its constructors all end in ``**kwargs``).
    """
    if name not in LOSSES:
        raise UnknownNameError("loss", name, list(LOSSES))
    names: list[str] = []
    for cls in LOSSES[name].__mro__:
        init = cls.__dict__.get("__init__")
        if init is None or cls is nn.Module:
            continue
        params = inspect.signature(init).parameters.values()
        names += [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return sorted(set(names))
    return None


def check_loss_arguments(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse keyword arguments the loss ``name`` does not take, with close matches.

    Raises:
        InputError: naming the argument, the loss and what it takes.
    """
    known = loss_arguments(name)
    if known is None:
        return
    for key in kwargs:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise InputError(f"loss {name!r} takes no argument {key!r}{hint}; it takes {', '.join(known)}")


# --------------------------------------------------------------------------------------------------
# Gathering
# --------------------------------------------------------------------------------------------------


class _ScaleGrad(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``scale``."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def _all_gather_autograd(tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
    import torch.distributed.nn.functional as dist_fn

    # torch >= 2.9 marks this public autograd collective deprecated in favour of a private module;
    # it is still the supported way to gather with gradients on every backend, gloo included.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*all_gather is deprecated", category=FutureWarning)
        return dist_fn.all_gather(tensor)


def _gather_rows(
    tensors: Sequence[torch.Tensor], rank: int, world_size: int, with_grad: bool
) -> tuple[list[torch.Tensor], list[list[int]]]:
    """Concatenate each tensor's rows over ranks, in rank order.

    Returns the gathered tensors and ``sizes[r][k]``, the row count of tensor ``k`` on rank ``r``.
    Floating tensors that need a gradient are gathered with autograd (``with_grad``) or with the local
    slice re-inserted and its gradient scaled by ``world_size`` (see the module docstring).
    """
    if world_size == 1:
        return list(tensors), [[t.shape[0] for t in tensors]]
    device = tensors[0].device
    local_sizes = torch.tensor([t.shape[0] for t in tensors], dtype=torch.long, device=device)
    size_list = [torch.empty_like(local_sizes) for _ in range(world_size)]
    dist.all_gather(size_list, local_sizes)
    sizes = [s.tolist() for s in size_list]

    gathered = []
    for k, tensor in enumerate(tensors):
        counts = [sizes[r][k] for r in range(world_size)]
        pad = max(counts) - tensor.shape[0]
        padded = torch.cat([tensor, tensor.new_zeros((pad, *tensor.shape[1:]))]) if pad else tensor
        needs_grad = tensor.requires_grad and torch.is_grad_enabled()
        if needs_grad and with_grad:
            parts = list(_all_gather_autograd(padded))
        else:
            parts = [torch.empty_like(padded) for _ in range(world_size)]
            dist.all_gather(parts, padded.detach().contiguous())
        parts = [part[:n] for part, n in zip(parts, counts)]
        if needs_grad and not with_grad:
            parts[rank] = _ScaleGrad.apply(tensor, float(world_size))
        gathered.append(torch.cat(parts))
    return gathered, sizes


def _scalar(value: torch.Tensor | float, name: str, like: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        return value.reshape(())
    return torch.tensor(float(value), dtype=like.dtype, device=like.device)


def _check_features(image_features: torch.Tensor, text_features: torch.Tensor, paired: bool) -> None:
    for name, t in (("image_features", image_features), ("text_features", text_features)):
        if t.ndim != 2:
            raise ValueError(f"{name} must have shape (batch, dim), got {tuple(t.shape)}")
    if image_features.shape[1] != text_features.shape[1]:
        raise ValueError(
            f"image_features and text_features have different widths: "
            f"{image_features.shape[1]} vs {text_features.shape[1]}"
        )
    if paired and image_features.shape[0] != text_features.shape[0]:
        raise ValueError(
            f"one text per image is expected: {image_features.shape[0]} images vs "
            f"{text_features.shape[0]} texts (use 'multi_positive' for several texts per image)"
        )


class ContrastiveLoss(nn.Module):
    """Base class: the distributed arguments every loss shares, and the gather step.

    Args:
        local_loss: compute only this rank's rows against the gathered batch (see module docstring).
        gather_with_grad: gather with an autograd all-gather; required when ``local_loss``.
        rank: this process's rank; ``None`` reads it from :mod:`torch.distributed` at forward time.
        world_size: number of processes; ``None`` reads it from :mod:`torch.distributed`.

    Raises:
        ValueError: for ``local_loss=True`` with ``gather_with_grad=False`` (wrong gradients).

    """

    def __init__(
        self,
        local_loss: bool = False,
        gather_with_grad: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if local_loss and not gather_with_grad:
            raise ValueError(
                "local_loss=True needs gather_with_grad=True: without the backward all-gather a rank "
                "misses the gradient that other ranks' rows send to its features"
            )
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.rank = rank
        self.world_size = world_size

    def extra_repr(self) -> str:
        """Show the distributed settings in ``print(loss)``."""
        return (
            f"local_loss={self.local_loss}, gather_with_grad={self.gather_with_grad}, "
            f"rank={self.rank}, world_size={self.world_size}"
        )

    def resolve_world(self) -> tuple[int, int]:
        """Return ``(rank, world_size)``, reading :mod:`torch.distributed` where they are ``None``.

        Raises:
            RuntimeError: if ``world_size > 1`` but no process group is initialised, or the rank is
                out of range.

        """
        initialised = dist.is_available() and dist.is_initialized()
        world_size = self.world_size if self.world_size is not None else (
            dist.get_world_size() if initialised else 1
        )
        rank = self.rank if self.rank is not None else (dist.get_rank() if initialised else 0)
        if not 0 <= rank < world_size:
            raise RuntimeError(f"{type(self).__name__}: rank {rank} is outside world_size {world_size}")
        if world_size > 1 and not initialised:
            raise RuntimeError(
                f"{type(self).__name__}: world_size={world_size} but torch.distributed is not "
                "initialised; call torch.distributed.init_process_group first"
            )
        return rank, world_size

    def gather(self, *tensors: torch.Tensor) -> tuple[list[torch.Tensor], list[list[int]], int]:
        """Gather tensors over ranks (first dimension) following this loss's settings.

        Returns:
            The gathered tensors, ``sizes[r][k]`` (rows of tensor ``k`` on rank ``r``) and this rank.

        """
        rank, world_size = self.resolve_world()
        gathered, sizes = _gather_rows(tensors, rank, world_size, self.gather_with_grad)
        return gathered, sizes, rank


# --------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------


@register_loss("clip")
class ClipLoss(ContrastiveLoss):
    """InfoNCE loss of CLIP (Radford et al. 2021): mean of image->text and text->image cross-entropy.

    Row ``i`` of the image features and row ``i`` of the text features are a positive pair; every
    other text (image) of the global batch is a negative. Arguments are those of
    :class:`ContrastiveLoss`.
    """

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor | float,
        logit_bias: torch.Tensor | float | None = None,
        output_dict: bool = False,
        **_: Any,
    ) -> LossOutput:
        """Compute the loss.

        Args:
            image_features: L2-normalised image embeddings, ``(B, D)``.
            text_features: L2-normalised text embeddings of the same pairs, ``(B, D)``.
            logit_scale: exponentiated inverse temperature (scalar).
            logit_bias: optional scalar added to every logit (kept for open_clip compatibility;
                a softmax cross-entropy does not depend on it).
            output_dict: return ``{"contrastive_loss": loss}`` instead of the tensor.

        Returns:
            The scalar loss, or the dict of its parts.

        """
        _check_features(image_features, text_features, paired=True)
        scale = _scalar(logit_scale, "logit_scale", image_features)
        (all_images, all_texts), sizes, rank = self.gather(image_features, text_features)
        if self.local_loss:
            offset = sum(sizes[r][0] for r in range(rank))
            logits_per_image = scale * image_features @ all_texts.T
            logits_per_text = scale * text_features @ all_images.T
            labels = torch.arange(image_features.shape[0], device=image_features.device) + offset
        else:
            logits_per_image = scale * all_images @ all_texts.T
            logits_per_text = logits_per_image.T
            labels = torch.arange(all_images.shape[0], device=image_features.device)
        if logit_bias is not None:
            bias = _scalar(logit_bias, "logit_bias", image_features)
            logits_per_image = logits_per_image + bias
            logits_per_text = logits_per_text + bias
        loss = (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2
        return {"contrastive_loss": loss} if output_dict else loss


@register_loss("siglip")
class SigLipLoss(ContrastiveLoss):
    """Sigmoid loss of SigLIP (Zhai et al. 2023, arXiv:2303.15343).

    Every image-text pair is an independent binary problem, positive on the diagonal:
    ``loss = -sum_ij log sigmoid(z_ij * (scale * x_i . y_j + bias)) / n_rows`` with ``z_ij = +1`` for
    matching pairs and ``-1`` otherwise, normalised by the number of image rows as in the paper and
    open_clip.

    Distributed variant: a plain all-gather of the features, not the paper's ring of neighbour
    exchanges (open_clip's ``dist_impl='bidir'``). With ``local_loss=True`` only the text features are
    gathered and each rank sums its own image rows against all texts, divided by its local batch
    size: exactly the paper's per-device loss, whose mean over ranks is the global-batch loss. With
    ``local_loss=False`` (the default) the whole ``(B_global, B_global)`` matrix is computed on every
    rank and divided by ``B_global``, the value a single process would get. The all-gather holds all
    text features at once, which costs more memory than the ring at very large world sizes but is
    simple and exact. Arguments are those of :class:`ContrastiveLoss`.
    """

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor | float,
        logit_bias: torch.Tensor | float | None = None,
        output_dict: bool = False,
        **_: Any,
    ) -> LossOutput:
        """Compute the loss.

        Args:
            image_features: L2-normalised image embeddings, ``(B, D)``.
            text_features: L2-normalised text embeddings of the same pairs, ``(B, D)``.
            logit_scale: exponentiated inverse temperature (scalar; the paper initialises it to 10).
            logit_bias: learnt scalar bias (the paper initialises it to -10); required.
            output_dict: return ``{"contrastive_loss": loss}`` instead of the tensor.

        Returns:
            The scalar loss, or the dict of its parts.

        Raises:
            ValueError: if ``logit_bias`` is missing (create the model with ``init_logit_bias``).

        """
        _check_features(image_features, text_features, paired=True)
        if logit_bias is None:
            raise ValueError(
                "SigLipLoss needs logit_bias: build the model with init_logit_bias (-10 in the paper)"
            )
        scale = _scalar(logit_scale, "logit_scale", image_features)
        bias = _scalar(logit_bias, "logit_bias", image_features)
        if self.local_loss:
            (all_texts,), sizes, rank = self.gather(text_features)
            rows = image_features
            offset = sum(sizes[r][0] for r in range(rank))
        else:
            (rows, all_texts), _sizes, _rank = self.gather(image_features, text_features)
            offset = 0
        logits = scale * rows @ all_texts.T + bias
        signs = -torch.ones_like(logits)
        index = torch.arange(rows.shape[0], device=rows.device)
        signs[index, index + offset] = 1.0
        loss = -F.logsigmoid(signs * logits).sum() / rows.shape[0]
        return {"contrastive_loss": loss} if output_dict else loss


def _hopfield_retrieve(state: torch.Tensor, stored: torch.Tensor, beta: float) -> torch.Tensor:
    """One update of a modern Hopfield network: ``normalise(softmax(beta * state @ stored.T) @ stored)``."""
    retrieved = torch.softmax(beta * state @ stored.T, dim=1) @ stored
    return F.normalize(retrieved, dim=1)


def _leave_one_out(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-logits[i, p_i] + logsumexp_{j != p_i} logits[i, j]``."""
    pos = logits.gather(1, positive[:, None]).squeeze(1)
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, positive[:, None], True)
    negatives = torch.logsumexp(logits.masked_fill(mask, float("-inf")), dim=1)
    return (negatives - pos).mean()


@register_loss("infoloob")
class InfoLOOBLoss(ContrastiveLoss):
    """InfoLOOB loss of CLOOB (Fürst et al. 2022, arXiv:2110.11316), optionally with Hopfield retrieval.

    InfoLOOB is InfoNCE with the positive left out of the denominator:
    ``-scale * x_i . y_i + logsumexp_{j != i} scale * x_i . y_j``, averaged over the batch, in both
    directions (image anchors against texts, text anchors against images); the loss is the mean of
    the two directions. The inverse temperature is ``logit_scale``. This is the normalisation of
    crowsonkb's ``cloob-training``; the original CLOOB code returns ``tau * (L_img + L_txt)``, i.e.
    ours times ``2 / logit_scale``. InfoLOOB is not bounded below as the inverse temperature grows,
    so CLOOB keeps it fixed (30): freeze or clamp the model's ``logit_scale`` when training with it.

    With ``hopfield=True`` the embeddings are first replaced by what a modern Hopfield network
    retrieves from the (global) batch, ``normalise(softmax(hopfield_scale * s @ M.T) @ M)`` for a
    state ``s`` and stored patterns ``M``: images and texts are each retrieved from the stored images
    (``U_x``, ``U_y``) and from the stored texts (``V_x``, ``V_y``). The image-anchored term compares
    ``U_x`` with ``U_y`` and the text-anchored term ``V_y`` with ``V_x``, as in the CLOOB paper.

    Args:
        local_loss: see :class:`ContrastiveLoss`.
        gather_with_grad: see :class:`ContrastiveLoss`.
        rank: see :class:`ContrastiveLoss`.
        world_size: see :class:`ContrastiveLoss`.
        hopfield: apply CLOOB's Hopfield retrieval before the InfoLOOB loss.
        hopfield_scale: inverse temperature ``beta`` of the retrieval (14.3 in CLOOB).

    """

    def __init__(
        self,
        local_loss: bool = False,
        gather_with_grad: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        hopfield: bool = False,
        hopfield_scale: float = 14.3,
    ) -> None:
        super().__init__(local_loss, gather_with_grad, rank, world_size)
        if hopfield_scale <= 0:
            raise ValueError(f"hopfield_scale must be positive, got {hopfield_scale}")
        self.hopfield = hopfield
        self.hopfield_scale = float(hopfield_scale)

    def extra_repr(self) -> str:
        """Show the settings in ``print(loss)``."""
        return f"{super().extra_repr()}, hopfield={self.hopfield}, hopfield_scale={self.hopfield_scale}"

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor | float,
        output_dict: bool = False,
        **_: Any,
    ) -> LossOutput:
        """Compute the loss.

        Args:
            image_features: L2-normalised image embeddings, ``(B, D)``.
            text_features: L2-normalised text embeddings of the same pairs, ``(B, D)``.
            logit_scale: inverse temperature of InfoLOOB (scalar, already exponentiated).
            output_dict: return ``{"contrastive_loss": loss}`` instead of the tensor.

        Returns:
            The scalar loss, or the dict of its parts.

        Raises:
            ValueError: if the global batch has fewer than two pairs (no negatives).

        """
        _check_features(image_features, text_features, paired=True)
        scale = _scalar(logit_scale, "logit_scale", image_features)
        (all_images, all_texts), sizes, rank = self.gather(image_features, text_features)
        if all_images.shape[0] < 2:
            raise ValueError("InfoLOOBLoss needs at least two pairs in the (global) batch")
        if self.local_loss:
            offset = sum(sizes[r][0] for r in range(rank))
            row_images, row_texts = image_features, text_features
        else:
            offset = 0
            row_images, row_texts = all_images, all_texts
        if self.hopfield:
            beta = self.hopfield_scale
            u_x = _hopfield_retrieve(row_images, all_images, beta)  # image anchors, from images
            u_y = _hopfield_retrieve(all_texts, all_images, beta)  # all texts, from images
            v_y = _hopfield_retrieve(row_texts, all_texts, beta)  # text anchors, from texts
            v_x = _hopfield_retrieve(all_images, all_texts, beta)  # all images, from texts
        else:
            u_x, u_y, v_y, v_x = row_images, all_texts, row_texts, all_images
        positive = torch.arange(row_images.shape[0], device=image_features.device) + offset
        loss_image = _leave_one_out(scale * u_x @ u_y.T, positive)
        loss_text = _leave_one_out(scale * v_y @ v_x.T, positive)
        loss = (loss_image + loss_text) / 2
        return {"contrastive_loss": loss} if output_dict else loss


LevelWeights = Mapping[int, float] | Sequence[float]


@register_loss("multi_positive")
class MultiPositiveClipLoss(ContrastiveLoss):
    """CLIP loss with several texts per image, optionally one loss per caption level.

    Image->text: for each image, a softmax over all texts (of the level) with a target distribution
    uniform over that image's own texts; that cross-entropy equals the mean of ``-log p`` over its
    positive texts (chosen over MIL-NCE's ``-log sum p``, which lets one caption absorb the whole
    mass). Images with no text (of the level) are skipped in this direction and still serve as
    negatives in the other. Text->image: ordinary cross-entropy of each text against its owner
    image. The loss is the mean of the two directions; with one text per image it equals
    :class:`ClipLoss`.

    With ``level`` (e.g. 0 = phase, 1 = step, 2 = task captions of a surgical video clip), the loss is
    computed separately for each level present in the global batch, using only that level's texts,
    so each caption is a positive at its own level and never competes with captions of other levels.
    The parts are ``loss_level_<k>`` multiplied by the level's weight; the total is their sum.

    Args:
        local_loss: see :class:`ContrastiveLoss`.
        gather_with_grad: see :class:`ContrastiveLoss`.
        rank: see :class:`ContrastiveLoss`.
        world_size: see :class:`ContrastiveLoss`.
        level_weights: default weight per level, a mapping ``level -> weight`` or a sequence indexed
            by level; ``None`` weighs every level 1. ``forward(level_weights=...)`` overrides it.

    """

    def __init__(
        self,
        local_loss: bool = False,
        gather_with_grad: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        level_weights: LevelWeights | None = None,
    ) -> None:
        super().__init__(local_loss, gather_with_grad, rank, world_size)
        self.level_weights = level_weights

    @staticmethod
    def _weight(level_weights: LevelWeights | None, level: int) -> float:
        if level_weights is None:
            return 1.0
        if isinstance(level_weights, Mapping):
            if level not in level_weights:
                known = sorted(level_weights)
                raise ValueError(f"level_weights has no weight for level {level} (has {known})")
            return float(level_weights[level])
        if not 0 <= level < len(level_weights):
            raise ValueError(f"level_weights has {len(level_weights)} entries; no weight for level {level}")
        return float(level_weights[level])

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor | float,
        text_to_image: torch.Tensor | None = None,
        level: torch.Tensor | None = None,
        level_weights: LevelWeights | None = None,
        output_dict: bool = False,
        **_: Any,
    ) -> LossOutput:
        """Compute the loss.

        Args:
            image_features: L2-normalised image embeddings, ``(B, D)``.
            text_features: L2-normalised text embeddings, ``(N, D)``.
            logit_scale: exponentiated inverse temperature (scalar).
            text_to_image: ``(N,)`` integer tensor, the local index in ``[0, B)`` of each text's image.
            level: optional ``(N,)`` integer tensor, the caption level of each text.
            level_weights: weight per level (mapping or sequence); overrides the constructor's.
            output_dict: return the named parts (``contrastive_loss``, or ``loss_level_<k>``).

        Returns:
            The scalar total, or the dict of weighted parts that sum to it.

        Raises:
            ValueError: for a missing or malformed ``text_to_image`` / ``level``, an owner index out
                of range, ``level_weights`` without ``level``, or a level without a weight.

        """
        _check_features(image_features, text_features, paired=False)
        n_images, n_texts = image_features.shape[0], text_features.shape[0]
        device = image_features.device
        if text_to_image is None:
            raise ValueError("MultiPositiveClipLoss needs text_to_image, the owning image of each text")
        if text_to_image.shape != (n_texts,) or text_to_image.is_floating_point():
            raise ValueError(
                f"text_to_image must be an integer tensor of shape ({n_texts},), got "
                f"{text_to_image.dtype} {tuple(text_to_image.shape)}"
            )
        if n_texts and (int(text_to_image.min()) < 0 or int(text_to_image.max()) >= n_images):
            raise ValueError(f"text_to_image values must lie in [0, {n_images}) (local image indices)")
        if level is not None and (level.shape != (n_texts,) or level.is_floating_point()):
            raise ValueError(
                f"level must be an integer tensor of shape ({n_texts},), got "
                f"{level.dtype} {tuple(level.shape)}"
            )
        if level is None and level_weights is not None:
            raise ValueError("level_weights was given without level")
        weights = level_weights if level_weights is not None else self.level_weights
        scale = _scalar(logit_scale, "logit_scale", image_features)

        owner = text_to_image.to(device=device, dtype=torch.long)
        levels = level.to(device=device, dtype=torch.long) if level is not None else torch.zeros_like(owner)
        (all_images, all_texts, all_owner, all_levels), sizes, rank = self.gather(
            image_features, text_features, owner, levels
        )
        if all_texts.shape[0] == 0:
            raise ValueError("MultiPositiveClipLoss got no texts on any rank")
        # Owner indices become global: add the number of images held by lower ranks.
        image_offsets = torch.tensor([0] + [s[0] for s in sizes], device=device).cumsum(0)[:-1]
        text_counts = torch.tensor([s[1] for s in sizes], device=device)
        all_owner = all_owner + image_offsets.repeat_interleave(text_counts)
        image_offset = int(image_offsets[rank])
        text_offset = sum(sizes[r][1] for r in range(rank))

        if self.local_loss:
            image_rows = torch.arange(n_images, device=device) + image_offset
            text_rows = torch.arange(n_texts, device=device) + text_offset
            logits_it = scale * image_features @ all_texts.T
            logits_ti = scale * text_features @ all_images.T
        else:
            image_rows = torch.arange(all_images.shape[0], device=device)
            text_rows = torch.arange(all_texts.shape[0], device=device)
            logits_it = scale * all_images @ all_texts.T
            logits_ti = logits_it.T

        parts: dict[str, torch.Tensor] = {}
        for k in torch.unique(all_levels).tolist():
            columns = all_levels == k
            # image -> text: soft target uniform over the image's texts of this level
            log_p = torch.log_softmax(logits_it[:, columns], dim=1)
            positive = all_owner[columns][None, :] == image_rows[:, None]
            n_pos = positive.sum(dim=1)
            per_image = -torch.where(positive, log_p, 0.0).sum(dim=1) / n_pos.clamp(min=1)
            image_to_text = per_image.sum() / (n_pos > 0).sum().clamp(min=1)
            # text -> image: cross-entropy against the owner, over all images
            rows = all_levels[text_rows] == k
            text_to_image_loss = F.cross_entropy(
                logits_ti[rows], all_owner[text_rows][rows], reduction="sum"
            ) / rows.sum().clamp(min=1)
            loss = (image_to_text + text_to_image_loss) / 2
            if level is None:
                parts["contrastive_loss"] = loss
            else:
                parts[f"loss_level_{k}"] = self._weight(weights, k) * loss
        if output_dict:
            return parts
        return torch.stack(list(parts.values())).sum()
