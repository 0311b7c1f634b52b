"""One definition of set pooling: the mean tower averages unit frame/view embeddings in training and evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from domainclip.core.models import create_model, get_tokenizer
from domainclip.core.models.video import MeanPool


def _seeded(name: str, **overrides):
    torch.manual_seed(0)
    return create_model(name, **overrides).eval()


def _varied_clips(batch: int = 2, frames: int = 5) -> torch.Tensor:
    """Clips whose frames differ in contrast, so their embeddings differ in norm."""
    torch.manual_seed(1)
    scale = torch.linspace(0.2, 3.0, frames).view(1, frames, 1, 1, 1)
    return torch.randn(batch, frames, 3, 32, 32) * scale


def test_mean_pool_counts_every_member_the_same_whatever_its_norm():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    pooled = MeanPool()(torch.stack([a, 100 * b])[None])
    assert torch.allclose(pooled, torch.tensor([[0.5, 0.5]]))


def test_video_mean_pooling_averages_unit_frame_embeddings():
    model = _seeded("dc-test-video")
    video = _varied_clips()
    frames = model.encode_frames(video)
    norms = frames.norm(dim=-1)
    assert (norms.max(dim=1).values / norms.min(dim=1).values > 1.01).all()  # the frames' norms do differ
    assert torch.allclose(model.encode_video(video), F.normalize(frames, dim=-1).mean(1), atol=1e-6)


def test_mean_pooled_clip_scores_are_the_surgclip_frame_scores():
    model = _seeded("dc-test-video")
    video = _varied_clips()
    tokens = get_tokenizer(model)(["a grasper", "a clip applier", "the gallbladder"])
    text = model.encode_text(tokens, normalize=True)
    assert torch.allclose(model.encode_video(video) @ text.T, model.frame_text_similarity(video, tokens), atol=1e-5)


def test_multiview_mean_fusion_averages_unit_view_embeddings():
    model = _seeded("dc-test-multiview", domainclip_cfg={"fusion": "mean"})
    views = _varied_clips(frames=4)
    per_view, fused = model.encode_views(views)
    assert torch.allclose(fused, F.normalize(per_view, dim=-1).mean(1), atol=1e-6)
