"""Data-wait reporting: the share of the step time the loop waits for batches, in log.jsonl, the bar and the summary."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from domainclip.core.data.decode import SampleDecoder
from domainclip.core.engine.run_log import RunLogger
from domainclip.core.engine.train import DATA_WAIT_WARN, DataWait, data_wait_message, train
from domainclip.core.recipe import load_recipe
from tests.engine_runs import prepare_small_shapes, tiny_recipe


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory) -> Path:
    return prepare_small_shapes(tmp_path_factory.mktemp("shapes"))


def run(root: Path, out: Path) -> tuple[list[dict], dict]:
    recipe = load_recipe(tiny_recipe(root, shuffle_buffer=8, steps=6, log_every=2, checkpoint_every=6))
    train(recipe, out)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "event" not in r]
    (summary,) = [r for r in records if r.get("event") == "data_wait"]
    return steps, summary


@pytest.mark.slow
def test_slow_decoding_shows_as_a_high_data_wait_and_a_warning(shapes_root, tmp_path, monkeypatch, capsys):
    fast_steps, fast = run(shapes_root, tmp_path / "fast")
    fast_out = capsys.readouterr().out

    decode = SampleDecoder.__call__

    def slow_decode(self, sample):
        time.sleep(0.05)  # a decoder far slower than the model: 0.4 s of decoding per batch of 8
        return decode(self, sample)

    monkeypatch.setattr(SampleDecoder, "__call__", slow_decode)
    slow_steps, slow = run(shapes_root, tmp_path / "slow")
    slow_out = capsys.readouterr().out

    for steps in (fast_steps, slow_steps):
        assert [r["step"] for r in steps] == [2, 4, 6]
        assert all(0.0 <= r["data_wait_frac"] <= 1.0 and r["data_wait_s"] >= 0.0 for r in steps)
    # the relation, not wall-clock values: waiting for a slow decoder is a larger share of every interval
    for f, s in zip(fast_steps[1:], slow_steps[1:]):
        assert s["data_wait_frac"] > f["data_wait_frac"]
        assert s["data_wait_s"] > f["data_wait_s"]
    assert slow["data_wait_frac"] > fast["data_wait_frac"]
    assert slow["steps"] == fast["steps"] == 5  # the first step (the loader's start-up) is left out
    assert slow["kept_up"] is False and slow["data_wait_frac"] > DATA_WAIT_WARN
    assert "WARNING: the data loader did not keep up" in slow_out
    assert ("the loader kept up" in fast_out) == fast["kept_up"]


def test_data_wait_intervals_and_summary():
    waits = DataWait()
    waits.add(10.0, 10.5)  # the first step: counted in its interval, left out of the summary
    assert waits.summary() is None
    assert waits.interval(1, 1.0) == (0.5, 0.5)
    waits.add(11.0, 11.1)
    waits.add(12.0, 12.3)
    wait_s, frac = waits.interval(2, 2.0)
    assert wait_s == pytest.approx(0.2) and frac == pytest.approx(0.2)
    assert waits.interval(0, 1.0) == (0.0, 0.0)  # reset after each interval
    summary = waits.summary()
    assert summary["steps"] == 2 and summary["wait_s"] == pytest.approx(0.4)
    line = data_wait_message({**summary, "data_wait_frac": 0.01, "kept_up": True})
    assert line.startswith("data: the loader kept up") and "1.0%" in line
    assert "raise data.num_workers" in data_wait_message({**summary, "data_wait_frac": 0.4, "kept_up": False})


def test_progress_bar_shows_the_wait_share(tmp_path):
    logger = RunLogger(tmp_path, tensorboard=False, progress=True, total_steps=2)
    logger.log(1, {"loss": 1.0, "lr": 0.1, "samples_per_s": 10.0, "data_wait_s": 0.01, "data_wait_frac": 0.25})
    assert logger._bar.postfix.endswith("data_wait=25%")
    logger.close()
