"""Training-step throughput: domainclip's engine against ``open_clip_train`` on the same model and shards.

Usage::

    python -m bench.bench_train_step [--model dc-test-vit] [--batch-size 64] [--workers 2]
                                     [--warmup 5] [--steps 30] [--repeats 3] [--threads 1] [--out FILE.json]

Both sides train the same architecture (``--model``, a domainclip tiny config that
:mod:`bench.peer_open_clip_train` registers into open_clip), from the same generated shapes shards
(png + txt), with the same batch size, data workers, fp32, AdamW (lr 5e-4, wd 0.2, betas 0.9/0.98,
eps 1e-6), warmup + cosine schedule, gradient clipping at 1.0, shuffle buffer of 1000 samples, the
training augmentation, no evaluation and no checkpoint before the last step. Each side runs as its
own process (``domainclip train`` and ``open_clip_train.main``); the peer's process gets
webdataset 0.2.86 and pandas from ``bench/.peer-site`` (installed on first use), which
open_clip_train 3.3.0 needs.

Samples/s is the steady state: both sides log every step (domainclip's ``log.jsonl``
``samples_per_s``, open_clip_train's ``Batch (t) ... N/s`` line, each timed from the end of one
step to the end of the next, data wait included); the first ``--warmup`` steps (start-up, shuffle
buffer filling, allocator warm-up) are left out, and the next ``--steps`` are summed. The pair
is run ``--repeats`` times, alternating which side goes first, and medians are reported with the
one-minute load average before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    REPO_ROOT,
    RESULTS_DIR,
    ensure_peer_site,
    load_average,
    machine_info,
    markdown_table,
    median,
    peer_env,
    shapes_shards,
    write_result,
)

__all__ = ["GOAL", "SETTINGS", "domainclip_recipe", "open_clip_argv", "parse_domainclip_log",
           "parse_open_clip_log", "run_pair", "main"]

#: domainclip's steady-state samples/s must be at least this multiple of open_clip_train's.
GOAL = 1.1
#: Optimisation settings shared by both sides.
SETTINGS: dict[str, Any] = {
    "lr": 5e-4,
    "weight_decay": 0.2,
    "betas": (0.9, 0.98),
    "eps": 1e-6,
    "grad_clip": 1.0,
    "seed": 0,
    "shuffle_buffer": 1000,
}
_OPEN_CLIP_LINE = re.compile(
    r"Train Epoch: \d+ \[\s*(?P<seen>\d+)/\s*\d+ .*?Batch \(t\): [\d.]+, (?P<rate>[\d.eE+-]+)/s"
)


def domainclip_recipe(shards: list[str], *, model: str, batch_size: int, workers: int, steps: int,
                      warmup: int) -> dict[str, Any]:
    """The domainclip recipe of one measured run (a dict, written to YAML for ``domainclip train``)."""
    return {
        "domain": "core",
        "description": "bench/bench_train_step.py",
        "model": {"name": model},
        "data": {
            "root": str(Path(shards[0]).parent),
            "train": [{"urls": list(shards)}],
            "batch_size": batch_size,
            "num_workers": workers,
            "shuffle_buffer": SETTINGS["shuffle_buffer"],
            "augment": True,
            "text_choice": "first",
        },
        "optim": {
            "lr": SETTINGS["lr"],
            "weight_decay": SETTINGS["weight_decay"],
            "betas": list(SETTINGS["betas"]),
            "eps": SETTINGS["eps"],
            "warmup_steps": warmup,
            "schedule": "cosine",
            "grad_clip": SETTINGS["grad_clip"],
        },
        "train": {
            "steps": steps,
            "seed": SETTINGS["seed"],
            "precision": "fp32",
            "device": "cpu",
            "log_every": 1,
            "checkpoint_every": steps,
            "keep_checkpoints": 1,
            "tensorboard": False,
            "progress": False,
        },
    }


def open_clip_argv(shards: list[str], logs: Path, name: str, *, model: str, batch_size: int, workers: int,
                   steps: int, warmup: int) -> list[str]:
    """``open_clip_train.main`` arguments equivalent to :func:`domainclip_recipe`."""
    return [
        "--train-data", "::".join(shards),
        "--dataset-type", "webdataset",
        "--train-num-samples", str(steps * batch_size),
        "--batch-size", str(batch_size),
        "--workers", str(workers),
        "--model", model,
        "--precision", "fp32",
        "--device", "cpu",
        "--lr", str(SETTINGS["lr"]),
        "--wd", str(SETTINGS["weight_decay"]),
        "--beta1", str(SETTINGS["betas"][0]),
        "--beta2", str(SETTINGS["betas"][1]),
        "--eps", str(SETTINGS["eps"]),
        "--warmup", str(warmup),
        "--lr-scheduler", "cosine",
        "--grad-clip-norm", str(SETTINGS["grad_clip"]),
        "--epochs", "1",
        "--seed", str(SETTINGS["seed"]),
        "--log-every-n-steps", "1",
        "--save-frequency", "0",
        "--zeroshot-frequency", "0",
        "--val-frequency", "0",
        "--report-to", "",
        "--logs", str(logs),
        "--name", name,
    ]


def _steady(rates: dict[int, float], batch_size: int, warmup: int, steps: int, where: str) -> dict[str, Any]:
    wanted = range(warmup + 1, warmup + steps + 1)
    missing = [s for s in wanted if s not in rates]
    if missing:
        raise RuntimeError(f"{where}: no throughput logged for steps {missing[:5]} (logged: {sorted(rates)[:8]}...)")
    seconds = [batch_size / rates[s] for s in wanted]
    return {
        "samples_per_s": steps * batch_size / sum(seconds),
        "step_s_median": median(seconds),
        "step_s": [round(s, 4) for s in seconds],
    }


def domainclip_step(line: str) -> int | None:
    """Step number of a domainclip ``log.jsonl`` step record (``None`` for other lines)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    if isinstance(record, dict) and "event" not in record and "samples_per_s" in record:
        return int(record["step"])
    return None


def open_clip_step(line: str, batch_size: int) -> int | None:
    """Step number of an open_clip_train ``Train Epoch`` log line (``None`` for other lines)."""
    match = _OPEN_CLIP_LINE.search(line)
    return int(match["seen"]) // batch_size if match else None


def parse_domainclip_log(path: Path, *, batch_size: int, warmup: int, steps: int) -> dict[str, Any]:
    """Steady-state samples/s from a domainclip ``log.jsonl`` (one record per step)."""
    rates: dict[int, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        step = domainclip_step(line)
        if step is not None:
            rates[step] = float(json.loads(line)["samples_per_s"])
    return _steady(rates, batch_size, warmup, steps, str(path))


def parse_open_clip_log(path: Path, *, batch_size: int, warmup: int, steps: int) -> dict[str, Any]:
    """Steady-state samples/s from an open_clip_train ``out.log`` (``--log-every-n-steps 1``)."""
    rates: dict[int, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        step = open_clip_step(line, batch_size)
        if step is not None:
            rates[step] = float(_OPEN_CLIP_LINE.search(line)["rate"])  # type: ignore[index]
    return _steady(rates, batch_size, warmup, steps, str(path))


def process_tree_cpu(root: int) -> tuple[float, float] | None:
    """CPU seconds (user + system) used so far by process ``root`` and its descendants (Linux ``/proc``).

    Returns ``(tree, root alone)``. The tree counts its live processes and the children they have
    already reaped; ``None`` where ``/proc`` is not available.
    """
    if not os.path.isdir("/proc"):
        return None
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                text = f.read()
        except OSError:  # the process ended meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    hz = os.sysconf("SC_CLK_TCK")
    return sum(ticks.get(pid, 0) for pid in tree) / hz, ticks.get(root, 0) / hz


def run_watched(cmd: list[str], env: dict[str, str], log: Path, step_of: Callable[[str], int | None], *,
                start: int, end: int, where: str) -> dict[str, Any]:
    """Run ``cmd`` to its end while following its step log; measure the window from step ``start`` to ``end``.

    Returns the wall seconds of the whole run and, for the window (from the moment step
    ``start`` is logged to the moment step ``end`` is), the wall seconds seen from outside and the
    CPU seconds of the process tree (training process and its data workers) and of the training
    process alone (its ``cutime`` counts workers only once they have exited).
    """
    started = time.perf_counter()
    marks: dict[int, tuple[float, tuple[float, float] | None]] = {}
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT)
        seen, buffer = 0, ""
        while True:
            finished = proc.poll() is not None
            if log.is_file() and len(marks) < 2:
                with open(log, encoding="utf-8", errors="replace") as f:
                    f.seek(seen)
                    chunk = f.read()
                    seen = f.tell()
                lines = (buffer + chunk).split("\n")
                buffer = lines.pop()
                for line in lines:
                    step = step_of(line)
                    if step in (start, end) and step not in marks:
                        marks[step] = (time.perf_counter(), process_tree_cpu(proc.pid))
            if finished:
                break
            time.sleep(0.01)
        if proc.returncode != 0:
            output.seek(0)
            text = output.read().decode("utf-8", "replace")
            raise RuntimeError(f"{where} failed (exit {proc.returncode}):\n{text[-4000:]}")
    result: dict[str, Any] = {"wall_s": round(time.perf_counter() - started, 1)}
    if start in marks and end in marks:
        (t0, c0), (t1, c1) = marks[start], marks[end]
        result["window_wall_s"] = round(t1 - t0, 3)
        if c0 is not None and c1 is not None:
            result["window_cpu_s"] = round(c1[0] - c0[0], 2)
            result["window_main_cpu_s"] = round(c1[1] - c0[1], 2)
    return result


def run_pair(shards: list[str], work: Path, index: int, *, model: str, batch_size: int, workers: int,
             warmup: int, steps: int, threads: int, peer_first: bool) -> list[dict[str, Any]]:
    """Run domainclip and open_clip_train once each (in the given order); return both measurements."""
    threads_env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    # a few unmeasured steps at the end: open_clip_train's workers stop at the end of its epoch, and
    # the batches they prefetched make its last steps faster than the steady state
    total = warmup + steps + 2 * max(1, workers) + 2
    total += total % max(1, workers)  # open_clip_train rounds the batches up to a multiple of the workers
    common = {"model": model, "batch_size": batch_size, "workers": workers, "steps": total, "warmup": warmup}
    window = {"start": warmup, "end": warmup + steps}

    def finish(side: str, load: float, watched: dict[str, Any], steady: dict[str, Any]) -> dict[str, Any]:
        cpu = watched.get("window_cpu_s")
        return {"side": side, "repeat": index, "load_before": load, **steady, **watched,
                "samples_per_cpu_s": steps * batch_size / cpu if cpu else None}

    def domainclip() -> dict[str, Any]:
        run_dir = work / f"domainclip-{index}"
        recipe = work / f"recipe-{index}.yaml"
        recipe.write_text(yaml.safe_dump(domainclip_recipe(shards, **common)), encoding="utf-8")
        load = load_average()
        watched = run_watched([sys.executable, "-m", "domainclip", "train", str(recipe), "--out", str(run_dir)],
                              {**os.environ, **threads_env}, run_dir / "log.jsonl", domainclip_step,
                              where="domainclip train", **window)
        steady = parse_domainclip_log(run_dir / "log.jsonl", batch_size=batch_size, warmup=warmup, steps=steps)
        return finish("domainclip", load, watched, steady)

    def peer() -> dict[str, Any]:
        logs = work / "open_clip_logs"
        log = logs / f"run-{index}" / "out.log"
        load = load_average()
        cmd = [sys.executable, "-m", "bench.peer_open_clip_train",
               *open_clip_argv(shards, logs, f"run-{index}", **common)]
        watched = run_watched(cmd, {**peer_env(), **threads_env}, log,
                              lambda line: open_clip_step(line, batch_size), where="open_clip_train", **window)
        steady = parse_open_clip_log(log, batch_size=batch_size, warmup=warmup, steps=steps)
        return finish("open_clip_train", load, watched, steady)

    order = (peer, domainclip) if peer_first else (domainclip, peer)
    return [side() for side in order]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a markdown table and write the JSON result; returns the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dc-test-vit", help="a domainclip model config (dc-*)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="data-loader worker processes on both sides")
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the measurement")
    parser.add_argument("--steps", type=int, default=30, help="measured steps per run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads of both training processes (OMP_NUM_THREADS)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved domainclip/open_clip_train pairs")
    parser.add_argument("--samples", type=int, default=2048, help="generated samples (8 shards at the default)")
    parser.add_argument("--image-size", type=int, default=64, help="side of the generated png images")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "train_step.json")
    args = parser.parse_args(argv)

    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    ensure_peer_site()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-train-step-") as tmp:
        work = Path(tmp)
        shards = shapes_shards(work / "shards", args.samples, image_size=args.image_size,
                               per_shard=max(1, args.samples // 8))
        for i in range(args.repeats):
            pair = run_pair(shards, work, i, model=args.model, batch_size=args.batch_size, workers=args.workers,
                            warmup=args.warmup, steps=args.steps, threads=args.threads, peer_first=bool(i % 2))
            for r in pair:
                per_cpu = r["samples_per_cpu_s"]
                print(f"  repeat {i} {r['side']:<16} {r['samples_per_s']:8.1f} samples/s "
                      f"{per_cpu or float('nan'):8.1f} samples/CPU-s (load {r['load_before']}, wall {r['wall_s']} s)",
                      flush=True)
            rows.extend(pair)

    def side(name: str, key: str) -> list[float]:
        return [r[key] for r in sorted(rows, key=lambda r: r["repeat"]) if r["side"] == name]

    ours, theirs = side("domainclip", "samples_per_s"), side("open_clip_train", "samples_per_s")
    pair_ratios = [a / b for a, b in zip(ours, theirs)]
    ratio = median(ours) / median(theirs)
    cpu_ours, cpu_theirs = side("domainclip", "samples_per_cpu_s"), side("open_clip_train", "samples_per_cpu_s")
    has_cpu = all(v is not None for v in cpu_ours + cpu_theirs)
    cpu_ratio = median(cpu_ours) / median(cpu_theirs) if has_cpu else None
    what = f"{args.model}, batch {args.batch_size}, {args.workers} workers, {args.threads} thread(s), fp32"
    summary = [{
        "benchmark": "train step",
        "measurement": f"{what}, samples/s",
        "domainclip": round(median(ours), 1),
        "reference": round(median(theirs), 1),
        "reference_name": "open_clip_train 3.3.0",
        "ratio": round(ratio, 3),
        "goal": GOAL,
        "met": ratio >= GOAL,
    }]
    if cpu_ratio is not None:
        summary.append({
            "benchmark": "train step",
            "measurement": f"{what}, samples per CPU-second (training process + its workers)",
            "domainclip": round(median(cpu_ours), 1),
            "reference": round(median(cpu_theirs), 1),
            "reference_name": "open_clip_train 3.3.0",
            "ratio": round(cpu_ratio, 3),
            "goal": None,
            "met": None,
        })
    loads = [r["load_before"] for r in rows]
    result = {
        "benchmark": "training step: domainclip engine vs open_clip_train",
        "settings": {**{k: v for k, v in vars(args).items() if k != "out"}, **SETTINGS, "precision": "fp32"},
        "summary": summary,
        "ratio_of_medians": round(ratio, 3),
        "median_of_pair_ratios": round(median(pair_ratios), 3),
        "pair_ratios": [round(x, 3) for x in pair_ratios],
        "cpu_ratio_of_medians": None if cpu_ratio is None else round(cpu_ratio, 3),
        "load_average_range": [min(loads), max(loads)],
        "runs": rows,
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    load_of = {(r["side"], r["repeat"]): r["load_before"] for r in rows}
    table = [[i, a, b, a / b,
              (cpu_ours[i] / cpu_theirs[i]) if has_cpu else None,
              f"{load_of['domainclip', i]} / {load_of['open_clip_train', i]}"]
             for i, (a, b) in enumerate(zip(ours, theirs))]
    table.append(["median", median(ours), median(theirs), ratio, cpu_ratio, ""])
    print(markdown_table(["repeat", "domainclip samples/s", "open_clip_train samples/s", "ratio",
                          "ratio per CPU-s", "load (dc / oc)"], table))
    print(f"goal >= {GOAL}x samples/s: {'met' if ratio >= GOAL else 'NOT met'} "
          f"(median of pair ratios {median(pair_ratios):.3f})")
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
