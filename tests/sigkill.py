"""Train, SIGKILL after the first checkpoint, resume: the runs the bit-identical resume tests compare."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from domainclip.core.engine.checkpoint import find_latest_checkpoint


def cli(args: list[str], **kw) -> subprocess.Popen:
    """``python -m domainclip ARGS`` on one thread, output piped."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "domainclip", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def full_and_resumed_runs(recipe: Path, tmp_path: Path, first_checkpoint: int, steps: int) -> Path:
    """Train ``recipe`` into ``tmp_path/full``; into ``tmp_path/killed`` kill it once step
    ``first_checkpoint`` is saved and resume it. Returns the checkpoint the resumed run started from."""
    full = cli(["train", str(recipe), "--out", str(tmp_path / "full")])
    out, _ = full.communicate(timeout=600)
    assert full.returncode == 0, out.decode()[-3000:]

    victim = cli(["train", str(recipe), "--out", str(tmp_path / "killed")])
    first = tmp_path / "killed" / "checkpoints" / f"step_{first_checkpoint:08d}"
    deadline = time.time() + 300
    while not first.exists():
        assert victim.poll() is None, victim.stdout.read().decode()[-3000:]
        assert time.time() < deadline
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    killed_at = find_latest_checkpoint(tmp_path / "killed" / "checkpoints")
    assert killed_at is not None and killed_at.name != f"step_{steps:08d}", "the run finished before the kill"

    resumed = cli(["train", str(recipe), "--out", str(tmp_path / "killed"), "--resume"])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out.decode()[-3000:]
    return killed_at
