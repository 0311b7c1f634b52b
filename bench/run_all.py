"""Run every core benchmark, print one markdown table, write ``bench/results/summary.{json,md}``.

Usage::

    python -m bench.run_all [--only bench_loader ...]     # or: make bench

Each benchmark runs in its own process (``python -m bench.<name> --out bench/results/<file>``), so
one's workers, threads and imports do not affect another's numbers; a benchmark that fails is
reported in the table and makes the exit status non-zero, and the others still run. Benchmarks
owned by domain helpers (``bench_math_engine``) are included when their module exists.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, RESULTS_DIR, load_average, machine_info, markdown_table, write_result
from domainclip.core.io import atomic_write_text

__all__ = ["BENCHMARKS", "NEEDS_CUDA", "available", "main", "summary_rows"]

#: module name (under ``bench``) -> JSON file it writes in ``bench/results``, in run order.
BENCHMARKS: dict[str, str] = {
    "bench_train_step": "train_step.json",
    "bench_loader": "loader.json",
    "bench_shard_peers": "shard_peers.json",
    "bench_decode": "decode.json",
    "bench_math_engine": "math_engine.json",
    "bench_pathology_patching": "pathology_patching.json",
    "bench_video": "video.json",
    "bench_rs_chips": "rs_chips.json",
    "bench_bio_etl": "bio_etl.json",
    "bench_multiview_render": "multiview_render.json",
    "gpu_throughput": "gpu_throughput.json",
}
#: Benchmarks that measure a GPU: without CUDA they are listed as skipped, not run (nor failed).
NEEDS_CUDA = {"gpu_throughput"}
_COLUMNS = ["benchmark", "measurement", "domainclip", "reference", "ratio", "goal", "met"]


def available() -> list[str]:
    """The benchmarks of :data:`BENCHMARKS` whose module exists in this checkout."""
    return [name for name in BENCHMARKS if importlib.util.find_spec(f"bench.{name}") is not None]


def summary_rows(name: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Summary rows of one benchmark's JSON result.

    Benchmarks of this folder store ready rows under ``summary``; for others the row says what
    was measured and whether its ``goal_*`` was met (``meets_goal``).
    """
    if isinstance(result.get("summary"), list):
        return [{column: row.get(column) for column in _COLUMNS} for row in result["summary"]]
    goals = {k: v for k, v in result.items() if k.startswith("goal")}
    return [{
        "benchmark": name.removeprefix("bench_").replace("_", " "),
        "measurement": result.get("benchmark", name),
        "domainclip": None,
        "reference": None,
        "ratio": None,
        "goal": ", ".join(f"{k.removeprefix('goal_')} >= {v}" for k, v in goals.items()) or None,
        "met": result.get("meets_goal"),
    }]


def _run(name: str, out: Path) -> tuple[dict[str, Any] | None, str | None, float]:
    started = time.perf_counter()
    print(f"== {name}", flush=True)
    done = subprocess.run([sys.executable, "-m", f"bench.{name}", "--out", str(out)], cwd=REPO_ROOT, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        return None, f"exit status {done.returncode}", seconds
    try:
        return json.loads(out.read_text(encoding="utf-8")), None, seconds
    except (OSError, json.JSONDecodeError) as e:
        return None, f"no readable result in {out}: {e}", seconds


def _cell(value: Any) -> Any:
    if value is True:
        return "yes"
    if value is False:
        return "**no**"
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; returns the exit status (1 when one failed to run)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder of the JSON/markdown results")
    args = parser.parse_args(argv)

    names = [n for n in available() if not args.only or n in args.only]
    load_start = load_average()
    rows: list[dict[str, Any]] = []
    runs: dict[str, Any] = {}
    failed = False
    import torch

    for name in names:
        if name in NEEDS_CUDA and not torch.cuda.is_available():
            rows.append({"benchmark": name, "measurement": "skipped: needs a CUDA GPU", "domainclip": None,
                         "reference": None, "ratio": None, "goal": None, "met": None})
            runs[name] = {"seconds": 0.0, "result_file": BENCHMARKS[name], "error": None, "skipped": "no CUDA"}
            continue
        result, error, seconds = _run(name, args.results / BENCHMARKS[name])
        runs[name] = {"seconds": round(seconds, 1), "result_file": BENCHMARKS[name], "error": error}
        if result is None:
            failed = True
            rows.append({"benchmark": name, "measurement": f"FAILED: {error}", "domainclip": None,
                         "reference": None, "ratio": None, "goal": None, "met": None})
        else:
            rows.extend(summary_rows(name, result))
    machine = {**machine_info(), "load_average_1min_at_start": load_start}
    table = markdown_table(_COLUMNS, [[_cell(row[c]) for c in _COLUMNS] for row in rows])
    when = time.strftime("%Y-%m-%dT%H:%M:%S")
    footer = (f"Measured {when} on {machine['cpu_count']} CPU cores (CUDA: {machine['cuda']}), "
              f"torch {machine['torch']}, 1-min load average {load_start} at start and "
              f"{machine['load_average_1min']} at the end.")
    print()
    print(table)
    print()
    print(footer)
    write_result(args.results / "summary.json", {"rows": rows, "benchmarks": runs, "machine": machine, "when": when})
    atomic_write_text(args.results / "summary.md", f"# Benchmark summary\n\n{table}\n\n{footer}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
