"""Surgery training tasks: level targets, and a short hierarchical run on clips cut from generated procedures."""

import math

import pytest
import torch

from domainclip.core.engine.tasks import get_task
from domainclip.domains.surgery.tasks import LEVEL_INDEX, VIDEO_CLIP, VIDEO_CLIP_LEVELS, level_targets


def test_level_targets_map_names_and_own_clips():
    tokens = torch.zeros(4, 7, dtype=torch.long)
    batch = {"text": tokens, "level": ["phase", "Step", "task", "narration"], "__key__": list("abcd")}
    out, extra = level_targets(batch)
    assert out is tokens
    assert extra["text_to_image"].tolist() == [0, 1, 2, 3]
    assert extra["level"].tolist() == [LEVEL_INDEX[n] for n in ("phase", "step", "task", "narration")] == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="'c'.*'organ'"):
        level_targets({**batch, "level": ["phase", "step", "organ", "task"]})


def test_domain_tasks_resolve_by_name():
    assert get_task("surgery/video_clip") is VIDEO_CLIP
    assert get_task("surgery/video_clip_levels") is VIDEO_CLIP_LEVELS


@pytest.mark.slow
def test_hierarchical_training_on_generated_procedures(tmp_path):
    from domainclip.core.engine.train import train
    from domainclip.core.recipe import load_recipe
    from domainclip.domains.surgery.clips import make_clip_pairs
    from domainclip.domains.surgery.synthetic import generate_procedures

    generate_procedures(
        tmp_path / "proc", 2, seed=4, size=(64, 48), min_duration_s=30, max_duration_s=30, progress=False
    )
    pairs = make_clip_pairs(
        [tmp_path / "proc" / "videos"],
        tmp_path / "train",
        transcripts_dir=tmp_path / "proc" / "transcripts",
        levels=tmp_path / "proc" / "levels.csv",
        min_duration=2.0,
        max_side=48,
        progress=False,
    )
    assert set(pairs["pairs_by_level"]) >= {"phase", "step"}
    recipe = load_recipe(
        {
            "domain": "surgery",
            "model": {"name": "dc-test-video", "overrides": {"domainclip_cfg": {"tower": "video", "num_frames": 4}}},
            "data": {
                "root": str(tmp_path),
                "train": [{"urls": "train/*.tar"}],
                "batch_size": 8,
                "num_workers": 0,
                "decoder_args": {"num_frames": 4},
            },
            "loss": {"name": "multi_positive"},
            "train": {"task": "surgery/video_clip_levels", "steps": 3, "checkpoint_every": 3, "log_every": 1},
        }
    )
    result = train(recipe, tmp_path / "run")
    assert result.steps == 3 and math.isfinite(result.final_loss)
    assert (tmp_path / "run" / "checkpoints" / "step_00000003").is_dir()
