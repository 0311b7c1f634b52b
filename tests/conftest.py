"""Shared test fixtures: paths to ../shared/data, tiny models, generated data."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DOMAINCLIP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# zoo downloads and their lock file (domainclip.core.zoo.fetch) never touch the user's cache
os.environ.setdefault("DOMAINCLIP_ZOO_CACHE", str(Path(tempfile.gettempdir()) / f"domainclip-test-zoo-{os.getpid()}"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of small real files; skips only where it is absent (it is present in CI)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real_data: {SHARED_DATA} is absent")
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip_gpu = pytest.mark.skip(reason="gpu: no CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)
