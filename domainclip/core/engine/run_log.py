"""Run logging: a JSON-lines log, TensorBoard scalars and a progress bar, on the main rank only."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

__all__ = ["RunLogger"]


class RunLogger:
    """Writes ``log.jsonl`` (one record per logged step and per event) and TensorBoard scalars.

    Args:
        run_dir: the run folder.
        enabled: False on non-main ranks (everything becomes a no-op).
        tensorboard: also write TensorBoard event files under ``run_dir/tensorboard``.
        progress: show a tqdm bar with samples/s.
        total_steps: length of the bar.
        initial_step: where the bar starts (resumed runs).
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        progress: bool = True,
        total_steps: int = 0,
        initial_step: int = 0,
    ):
        self.enabled = enabled
        self.path = Path(run_dir) / "log.jsonl"
        self._tb = None
        self._bar = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        if progress:
            self._bar = tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """Record scalars for one step."""
        if not self.enabled:
            return
        record = {"step": step, "time": time.time(), **scalars}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key.replace("/", "_") if "/" not in key else key, value, step)
        if self._bar is not None:
            shown = {k: f"{v:.4g}" for k, v in scalars.items() if k in ("loss", "lr", "samples_per_s")}
            if "data_wait_frac" in scalars:  # the share of the interval spent waiting for batches
                shown["data_wait"] = f"{scalars['data_wait_frac']:.0%}"
            self._bar.set_postfix(shown)

    def event(self, name: str, **fields: Any) -> None:
        """Record a non-scalar event (resume, checkpoint, corrupt-sample report, end of run)."""
        if not self.enabled:
            return
        self._file.write(json.dumps({"event": name, "time": time.time(), **fields}, default=str) + "\n")
        self._file.flush()

    def advance(self, steps: int = 1) -> None:
        """Move the progress bar."""
        if self._bar is not None:
            self._bar.update(steps)

    def write(self, message: str) -> None:
        """Print a line without breaking the progress bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message, flush=True)

    def close(self) -> None:
        """Flush and close everything."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        self._file.close()
