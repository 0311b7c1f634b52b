"""Shared pieces of the core benchmarks: generated shards, the peer's environment, machine info, tables.

Every benchmark measures domainclip and its reference side by side in one run (interleaved when
repeated), reports the ratio, and writes a JSON file under ``bench/results/``. Nothing here asserts
on wall-clock time; the numbers are for people.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_DIR",
    "PEER_PACKAGES",
    "PEER_SITE",
    "REPO_ROOT",
    "RESULTS_DIR",
    "ensure_peer_site",
    "load_average",
    "machine_info",
    "markdown_table",
    "median",
    "peer_env",
    "shapes_shards",
    "write_result",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
#: Packages the peer (``open_clip_train`` 3.3.0) needs that the project's venv lacks or has in an
#: incompatible version: its webdataset pipeline fails with webdataset 1.x (``KeyError: 'fname'`` in
#: ``group_by_keys``) and ``open_clip_train.data`` imports pandas. Installed without dependencies
#: (numpy, PyYAML, braceexpand, dateutil and tzdata come from the venv).
PEER_PACKAGES = ("webdataset==0.2.86", "pandas")
#: Where :data:`PEER_PACKAGES` are installed; prepended to ``PYTHONPATH`` of the peer's process only.
PEER_SITE = BENCH_DIR / ".peer-site"


def load_average() -> float:
    """One-minute load average of the machine (other processes slow every measurement down)."""
    return round(os.getloadavg()[0], 2)


def machine_info() -> dict[str, Any]:
    """CPU count, load, platform and library versions, stored with every result."""
    import torch

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "load_average_1min": load_average(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    for name in ("open_clip", "webdataset", "PIL"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = None
    return info


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence (the statistic every benchmark reports over repeats)."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Render rows as a GitHub markdown table; floats get 3 significant decimals."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_result(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write a benchmark's JSON result atomically (temporary file in the same folder, then rename)."""
    from domainclip.core.io import atomic_write_text

    return atomic_write_text(Path(path), json.dumps(payload, indent=2, default=str) + "\n")


def shapes_shards(out_dir: str | os.PathLike, n: int, *, image_size: int = 64, per_shard: int = 256) -> list[str]:
    """Write ``n`` generated shapes samples (png + txt + cls + json) as WebDataset shards.

    The same tar layout is read by domainclip's reader and by open_clip_train's webdataset
    pipeline (image ``png``, caption ``txt``), so both sides train on the same bytes.

    Returns:
        The shard paths, in order.

    """
    from domainclip.core.data.synthetic import generate_shapes
    from domainclip.core.data.writer import write_shards

    out = write_shards(
        generate_shapes(n, seed=0, image_size=image_size),
        out_dir,
        prefix="shapes",
        max_count=per_shard,
        image_format="png",
        progress=False,
    )
    return [str(Path(out_dir) / name) for name in out["shards"]]


def _peer_site_ready() -> bool:
    probe = (
        "import webdataset, pandas, sys; "
        "sys.exit(0 if webdataset.__version__ == '0.2.86' else 1)"
    )
    env = peer_env()
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, check=False)
    return done.returncode == 0


def ensure_peer_site() -> Path:
    """Install :data:`PEER_PACKAGES` into :data:`PEER_SITE` (with pip, from PyPI) unless present.

    Raises:
        RuntimeError: pip failed; its output is in the message.

    """
    if PEER_SITE.is_dir() and _peer_site_ready():
        return PEER_SITE
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade", "--target", str(PEER_SITE)]
    started = time.perf_counter()
    print(f"installing the peer's packages into {PEER_SITE}: {' '.join(PEER_PACKAGES)}", flush=True)
    done = subprocess.run([*cmd, *PEER_PACKAGES], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not _peer_site_ready():
        raise RuntimeError(
            f"could not prepare the open_clip_train environment in {PEER_SITE} "
            f"({' '.join(cmd + list(PEER_PACKAGES))}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    return PEER_SITE


def peer_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the peer's process: :data:`PEER_SITE` first on ``PYTHONPATH``, repo root next."""
    env = dict(os.environ if base is None else base)
    parts = [str(PEER_SITE), str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env
