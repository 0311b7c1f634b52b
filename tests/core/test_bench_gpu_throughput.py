"""bench/gpu_throughput.py: its CPU smoke run (domainclip side) writes every field the GPU run reports."""

from __future__ import annotations

import json

import pytest

from bench.gpu_throughput import GOAL_MFU, _steady, main, parse_open_clip_log


@pytest.mark.slow
def test_cpu_smoke_run_reports_throughput_mfu_memory_and_data_wait(tmp_path):
    out = tmp_path / "gpu_throughput_cpu.json"
    main(["--device", "cpu", "--model", "dc-test-vit", "--steps", "4", "--warmup", "2", "--log-every", "2",
          "--image-size", "32", "--samples", "128", "--workers", "0", "--no-peer", "--out", str(out)])
    result = json.loads(out.read_text())
    ours = result["domainclip"]
    assert result["open_clip_train"] is None and result["ratio"] is None
    assert result["settings"]["batch"] == 8 and result["settings"]["measured_steps"] == 4
    assert ours["measured_steps"] == 4 and ours["samples_per_s"] > 0
    assert 0.0 <= ours["data_wait_frac"] <= 1.0
    assert ours["max_memory_gib"] is None  # no GPU
    # dc-test-vit (width 64, 2+2 layers, 32 px, 16 patches + 32 tokens): a training step is a few MFLOP per sample
    assert 1e6 < result["flops_per_sample"] < 1e8
    assert ours["mfu"] == pytest.approx(ours["samples_per_s"] * result["flops_per_sample"] / 989e12)
    assert result["goals"]["mfu"] == GOAL_MFU
    assert result["summary"][0]["domainclip"] == round(ours["samples_per_s"], 1)


def test_steady_state_uses_whole_intervals_after_the_warm_up(tmp_path):
    # (last step, seconds per step, wait per step): the first interval ends at the warm-up and is left out
    got = _steady([(10, 9.0, 9.0), (20, 0.5, 0.05), (30, 1.5, 0.05)], batch=4, warmup=10, where="x")
    assert got["measured_steps"] == 20
    assert got["samples_per_s"] == pytest.approx(20 * 4 / 20.0)
    assert got["data_wait_frac"] == pytest.approx(1.0 / 20.0)
    log = tmp_path / "out.log"
    log.write_text(
        "Train Epoch: 0 [ 80/800 (10%)] Data (t): 0.200 Batch (t): 1.000, 4.0/s, 4.0/s/gpu LR: 0.1\n"
        "Train Epoch: 0 [160/800 (20%)] Data (t): 0.010 Batch (t): 0.500, 16.0/s, 16.0/s/gpu LR: 0.1\n"
    )
    peer = parse_open_clip_log(log, batch=8, warmup=10)
    assert peer["samples_per_s"] == pytest.approx(16.0) and peer["data_wait_frac"] == pytest.approx(0.02)
