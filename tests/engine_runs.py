"""A small shapes dataset and a tiny core recipe, for engine tests that train a few steps on CPU."""

from __future__ import annotations

from pathlib import Path

from domainclip.core.prepare import prepare_shapes


def prepare_small_shapes(root: Path) -> Path:
    """Write 128 shapes samples at 32 px (2 shards) under ``root/train``; returns ``root``."""
    prepare_shapes(root / "train", 128, seed=0, image_size=32, max_count=64, progress=False)
    return root


def tiny_recipe(root: Path, *, shuffle_buffer: int = 16, **train_keys) -> dict:
    """A ``dc-test-vit`` recipe over :func:`prepare_small_shapes`'s shards.

    Four fp32 steps at batch 8, logged every step, unless ``train_keys`` (``train.*``) say otherwise.
    """
    return {
        "domain": "core",
        "model": {"name": "dc-test-vit"},
        "data": {"root": str(root), "train": [{"urls": "train/shapes-{000000..000001}.tar"}], "batch_size": 8,
                 "num_workers": 0, "shuffle_buffer": shuffle_buffer},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "train": {"steps": 4, "precision": "fp32", "log_every": 1, "checkpoint_every": 2, "progress": False,
                  "tensorboard": False, **train_keys},
    }
