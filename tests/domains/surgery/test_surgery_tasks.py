"""Surgery training tasks: level targets, and a short hierarchical run on clips cut from generated procedures."""

import math

import pytest
import torch

from domainclip.core.engine.tasks import get_task
from domainclip.core.errors import InputError
from domainclip.core.options import check_options
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


def test_decoder_args_are_checked_against_the_decoder_signature():
    engine = ("preprocess", "tokenizer", "seed", "text_choice")  # the engine passes these itself
    args = {"num_frames": 6, "sampling": "fps", "target_fps": 2, "backend": "pyav", "max_image_pixels": 10**6}
    assert check_options(VIDEO_CLIP_LEVELS.make_decoder, args, where="d", skip=engine) == {**args, "target_fps": 2.0}
    for bad, message in [
        ({"num_frame": 4}, "d: unknown option 'num_frame' (did you mean num_frames?)"),
        ({"num_frames": 0}, "d.num_frames: must be an integer >= 1; got 0"),
        ({"sampling": "uniformly"}, "d.sampling: must be one of uniform, fps, all; got 'uniformly'"),
        ({"backend": "opencv"}, "d.backend: must be one of auto, decord, pyav, torchcodec; got 'opencv'"),
        ({"target_fps": -1}, "d.target_fps: must be a number > 0; got -1"),
    ]:
        with pytest.raises(InputError) as caught:
            check_options(VIDEO_CLIP.make_decoder, bad, where="d", skip=engine)
        assert str(caught.value).startswith(message), str(caught.value)
    # the tasks' decoders train with jitter; the level task needs each caption's level
    decoder = VIDEO_CLIP_LEVELS.make_decoder(None, None, seed=1, text_choice="first", num_frames=3)
    assert (decoder.train, decoder.num_frames, decoder.seed) == (True, 3, 1)
    assert decoder.required == ("video", "text", "level")
    assert VIDEO_CLIP.make_decoder(None, None, seed=0, text_choice="random").required == ("video", "text")


@pytest.mark.slow
def test_hierarchical_training_on_generated_procedures(tmp_path):
    from domainclip.core.engine.train import train
    from domainclip.core.recipe import load_recipe
    from domainclip.domains.surgery.clips import make_clip_pairs
    from domainclip.domains.surgery.synthetic import generate_procedures

    generate_procedures(tmp_path / "proc", 2, seed=4, size=(64, 48), min_duration=30, max_duration=30, progress=False)
    pairs = make_clip_pairs(
        tmp_path / "train",
        [tmp_path / "proc" / "videos"],
        transcripts=tmp_path / "proc" / "transcripts",
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
