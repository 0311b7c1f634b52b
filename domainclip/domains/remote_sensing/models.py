"""Local-global self-distillation beside the CLIP objective (RS-M-CLIP): the ``self_distill`` tower.

RS-M-CLIP (Silva et al., 2024) fine-tunes a multilingual CLIP with the contrastive loss plus a
DINO-style self-distillation of the image tower (Caron et al., 2021): several crops of one image
(two global, N local) go through the student image tower and a projection head; an exponential
moving average (EMA) of the student, the teacher, sees the two global crops only; the student's
distribution over the head's outputs on every crop is pulled towards the teacher's on the *other*
global crop, the teacher's outputs centred (a running mean) and sharpened (a low temperature) so
that neither collapses.

:class:`SelfDistillCLIP` is that as a domain tower (``domainclip_cfg = {"tower": "self_distill",
...}``): a :class:`~domainclip.core.models.registry.DomainCLIP` holding the student head, the teacher
(a copy of the CLIP image tower and of the head, never trained by gradients) and the centre (a
buffer), so checkpoints, exact resume and exported hub folders cover all of them (the CLIP itself
stays loadable by plain open_clip; the rest is the folder's tower file). Its forward takes the CLIP
input ``image`` (global crop 1), ``text`` and ``crops`` (global crop 2, then the local crops) and
returns open_clip's output dict plus ``aux_losses = {"self_distill": weight * loss}``, which the
engine adds to the contrastive loss. After each optimizer step the engine calls
:meth:`SelfDistillCLIP.after_optimizer_step`: the teacher follows the student with DINO's cosine
momentum schedule (``ema_momentum`` -> 1) and the centre takes the step's teacher outputs.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from domainclip.core.models.registry import DomainCLIP, register_tower

__all__ = ["DINOHead", "SelfDistillCLIP", "SelfDistillationLoss", "ema_momentum"]


def ema_momentum(step: int, total_steps: int, base: float) -> float:
    """DINO's teacher momentum after optimizer step ``step`` (0-based) of ``total_steps``: ``base`` -> 1 (cosine).

    Args:
        step: index of the optimizer step just taken.
        total_steps: steps of the whole run.
        base: the momentum at step 0 (DINO: 0.996).
    """
    return 1.0 - (1.0 - base) * (math.cos(math.pi * step / max(1, total_steps)) + 1.0) / 2.0


class DINOHead(nn.Module):
    """DINO's projection head: an MLP, L2 normalisation, then a weight-normalised linear layer.

    Args:
        in_dim: width of the image embedding it reads.
        out_dim: number of output dimensions (DINO: 65536 "prototypes").
        hidden_dim: width of the MLP's hidden layers.
        bottleneck_dim: width of the MLP's output, which is L2-normalised.
        layers: linear layers of the MLP (GELU between them).
        norm_last_layer: fix the norm of every output's weight vector to 1 (only its direction
            learns), as DINO does for stability.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        layers: int = 3,
        norm_last_layer: bool = True,
    ):
        super().__init__()
        if layers < 1:
            raise ValueError(f"head_layers must be >= 1; got {layers}")
        widths = [in_dim] + [hidden_dim] * (layers - 1) + [bottleneck_dim]
        blocks: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            blocks.append(nn.Linear(a, b))
            if i < layers - 1:
                blocks.append(nn.GELU())
        self.mlp = nn.Sequential(*blocks)
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        magnitude = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            magnitude.fill_(1.0)
        magnitude.requires_grad_(not norm_last_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project embeddings ``(N, in_dim)`` to logits ``(N, out_dim)``."""
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


class SelfDistillationLoss(nn.Module):
    """DINO's cross-entropy between a sharpened, centred teacher and the student, over crop pairs.

    With ``V`` crops per image (the first two global) and ``B`` images, ``student`` is ``(V * B, K)``
    and ``teacher`` is ``(2 * B, K)``, crop-major (rows ``v * B .. (v + 1) * B`` are crop ``v``).
    For every teacher crop ``t`` and every student crop ``v != t``, the loss is the batch mean of
    ``-sum_k softmax((teacher_t - c) / T_t)_k * log_softmax(student_v / T_s)_k``; the result is the
    mean over those ``2 * V - 2`` pairs. The centre ``c`` (a buffer) is the running mean of the
    teacher's outputs; :meth:`update_center` moves it.

    Args:
        out_dim: head outputs ``K``.
        student_temp: student temperature ``T_s`` (DINO: 0.1).
        teacher_temp: teacher temperature ``T_t`` (DINO: 0.04; lower sharpens more).
        center_momentum: weight of the old centre in each update (DINO: 0.9).
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, teacher_temp: float = 0.04,
                 center_momentum: float = 0.9):
        super().__init__()
        if student_temp <= 0 or teacher_temp <= 0:
            raise ValueError(f"temperatures must be > 0; got student {student_temp}, teacher {teacher_temp}")
        if not 0.0 <= center_momentum < 1.0:
            raise ValueError(f"center_momentum must be in [0, 1); got {center_momentum}")
        self.student_temp = float(student_temp)
        self.teacher_temp = float(teacher_temp)
        self.center_momentum = float(center_momentum)
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, crops: int) -> torch.Tensor:
        """The loss of one batch (the centre is read, not moved).

        Args:
            student: student head outputs of every crop, ``(crops * B, K)``, crop-major.
            teacher: teacher head outputs of the two global crops, ``(2 * B, K)``, crop-major.
            crops: crops per image ``V`` (at least 2: the two global ones).
        """
        if crops < 2 or student.shape[0] % crops or teacher.shape[0] != 2 * (student.shape[0] // crops):
            raise ValueError(
                f"expected student (crops * B, K) and teacher (2 * B, K) with crops >= 2; got crops={crops}, "
                f"student {tuple(student.shape)}, teacher {tuple(teacher.shape)}"
            )
        log_student = F.log_softmax(student.float() / self.student_temp, dim=-1).chunk(crops)
        targets = F.softmax((teacher.float().detach() - self.center) / self.teacher_temp, dim=-1).chunk(2)
        terms = [(-target * log_student[v]).sum(dim=-1).mean()
                 for t, target in enumerate(targets) for v in range(crops) if v != t]
        return torch.stack(terms).mean()

    @torch.no_grad()
    def update_center(self, batch_center: torch.Tensor) -> None:
        """Move the centre towards the mean teacher output of a step: ``c <- m c + (1 - m) mean``."""
        momentum = self.center_momentum
        self.center.mul_(momentum).add_(batch_center.reshape(self.center.shape), alpha=1 - momentum)


@register_tower("self_distill")
class SelfDistillCLIP(DomainCLIP):
    """CLIP plus DINO-style local-global self-distillation of its image tower (RS-M-CLIP).

    The student is the CLIP image tower followed by :class:`DINOHead` on its (unnormalised) image
    embedding; the teacher is a copy of both, updated only by :meth:`after_optimizer_step`. The
    teacher starts as the student: it is copied from the student the first time it is needed (so a
    CLIP loaded with pretrained weights after the tower was built is what the teacher starts from);
    ``teacher_ready`` (a buffer) records that, so a loaded checkpoint or hub folder keeps its teacher.

    Args:
        clip: the open_clip model.
        embed_dim: its joint embedding width (the head's input).
        head_dim: outputs of the head (DINO: 65536).
        head_hidden_dim: hidden width of the head's MLP.
        head_bottleneck_dim: width of the L2-normalised bottleneck.
        head_layers: linear layers of the head's MLP.
        norm_last_layer: fix the norms of the head's last layer (DINO's default).
        student_temp: student softmax temperature.
        teacher_temp: teacher softmax temperature.
        center_momentum: momentum of the centre of the teacher's outputs.
        ema_momentum: teacher momentum at the first step; it rises to 1 along a cosine (DINO: 0.996).
        distill_weight: weight of the self-distillation loss added to the contrastive loss.
    """

    def __init__(
        self,
        clip: nn.Module,
        embed_dim: int,
        head_dim: int = 65536,
        head_hidden_dim: int = 2048,
        head_bottleneck_dim: int = 256,
        head_layers: int = 3,
        norm_last_layer: bool = True,
        student_temp: float = 0.1,
        teacher_temp: float = 0.04,
        center_momentum: float = 0.9,
        ema_momentum: float = 0.996,
        distill_weight: float = 1.0,
    ):
        super().__init__(clip, embed_dim)
        if not 0.0 <= ema_momentum <= 1.0:
            raise ValueError(f"ema_momentum must be in [0, 1]; got {ema_momentum}")
        if distill_weight < 0:
            raise ValueError(f"distill_weight must be >= 0; got {distill_weight}")
        self.ema_momentum = float(ema_momentum)
        self.distill_weight = float(distill_weight)
        self.student_head = DINOHead(self.embed_dim, head_dim, head_hidden_dim, head_bottleneck_dim, head_layers,
                                     norm_last_layer)
        self.teacher_visual = copy.deepcopy(clip.visual).requires_grad_(False)
        self.teacher_head = copy.deepcopy(self.student_head).requires_grad_(False)
        self.distill = SelfDistillationLoss(head_dim, student_temp, teacher_temp, center_momentum)
        self.register_buffer("teacher_ready", torch.zeros((), dtype=torch.bool))
        self._pending_centers: list[tuple[torch.Tensor, int]] = []  # teacher output sums of this step

    # ------------------------------------------------------------------ teacher
    def student_parts(self) -> list[nn.Module]:
        """The modules the teacher follows: the CLIP image tower and the student head."""
        return [self.clip.visual, self.student_head]

    def teacher_parts(self) -> list[nn.Module]:
        """The teacher's modules, in the order of :meth:`student_parts`."""
        return [self.teacher_visual, self.teacher_head]

    def _pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        teacher = [t for m in self.teacher_parts() for t in (*m.parameters(), *m.buffers())]
        student = [s for m in self.student_parts() for s in (*m.parameters(), *m.buffers())]
        if len(teacher) != len(student):
            raise RuntimeError("teacher and student image towers differ in structure")
        return teacher, student

    @torch.no_grad()
    def sync_teacher(self) -> None:
        """Make the teacher an exact copy of the student (and mark it ready)."""
        for t, s in zip(*self._pairs(), strict=True):
            t.copy_(s.detach())
        self.teacher_ready.fill_(True)

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """EMA step of the teacher: ``teacher <- momentum * teacher + (1 - momentum) * student``."""
        for t, s in zip(*self._pairs(), strict=True):
            if t.is_floating_point():
                t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
            else:
                t.copy_(s)

    @torch.no_grad()
    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """End of optimizer step ``step`` (0-based) of ``total_steps``: EMA of the teacher, then the centre.

        The centre takes the mean teacher output of every training forward since the last call (the
        micro-batches of this step, all ranks), so gradient accumulation moves it exactly as the
        full batch would. A non-finite mean (a step the engine skipped for a non-finite loss) is dropped.

        Args:
            step: index of the optimizer step just taken (the engine's step count before it).
            total_steps: steps of the whole run (the momentum schedule's length).
        """
        if bool(self.teacher_ready):
            self.update_teacher(ema_momentum(step, total_steps, self.ema_momentum))
        pending, self._pending_centers = self._pending_centers, []
        if not pending:
            return
        total = torch.stack([s for s, _ in pending]).sum(dim=0)
        count = torch.tensor(float(sum(n for _, n in pending)), device=total.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
            dist.all_reduce(count)
        mean = total / count
        if torch.isfinite(mean).all():
            self.distill.update_center(mean)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        image: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        crops: torch.Tensor | None = None,
    ) -> dict:
        """open_clip's output dict for ``image`` and ``text``; with ``crops``, plus the distillation loss.

        Args:
            image: the CLIP input, global crop 1 ``(B, C, H, W)``.
            text: token ids ``(B, L)``.
            crops: global crop 2 then the local crops of the same images, ``(B, V - 1, C, H, W)`` at the
                model's input size.

        Returns:
            ``image_features``, ``text_features`` (L2-normalised), ``logit_scale`` (and ``logit_bias``);
            with ``crops`` also ``aux_losses = {"self_distill": distill_weight * loss}``.
        """
        text_features = self.encode_text(text, normalize=True) if text is not None else None
        if crops is None or image is None:
            image_features = self.encode_image(image, normalize=True) if image is not None else None
            return self.clip_output(image_features, text_features)
        if crops.ndim != 5 or crops.shape[0] != image.shape[0] or crops.shape[2:] != image.shape[1:]:
            raise ValueError(
                f"crops must be (B, V - 1, C, H, W) matching image {tuple(image.shape)}; got {tuple(crops.shape)}"
            )
        batch, views = image.shape[0], crops.shape[1] + 1
        stacked = torch.cat([image.unsqueeze(1), crops], dim=1).transpose(0, 1).flatten(0, 1)  # crop-major
        embeddings = self.clip.encode_image(stacked)
        student = self.student_head(embeddings)
        with torch.no_grad():
            if not bool(self.teacher_ready):
                self.sync_teacher()
            teacher = self.teacher_head(self.teacher_visual(stacked[: 2 * batch]))
        loss = self.distill(student, teacher, views)
        if self.training:
            self._pending_centers.append((teacher.float().sum(dim=0), teacher.shape[0]))
        out = self.clip_output(F.normalize(embeddings[:batch], dim=-1), text_features)
        out["aux_losses"] = {"self_distill": self.distill_weight * loss}
        return out
