"""Throughput of the math diagram-caption engine, with shard writing: pairs per second per core.

Usage::

    python -m bench.bench_math_engine [--n 600] [--workers 2] [--image-format png] [--out FILE.json]

Three measurements, each after a warm-up in the measuring process:

* ``render``: ``generate_diagrams`` alone (drawing, captions, metadata), one process;
* ``prepare x1``: ``domainclip prepare math synthetic`` with one process (render + encode + tar);
* ``prepare xN``: the same with N worker processes, each writing its own shards (worker start-up,
  which imports matplotlib in a fresh process, is included).

"Per core" is reported three ways: wall-clock pairs/s divided by the processes used; pairs per
CPU-second (``time.process_time`` of the process, or the children's CPU time for workers), which
stays meaningful when other jobs share the machine; and the rate inside each worker's loop
(``in-loop/core``: no process start-up, whose import of webdataset/torch costs seconds, and no
idle time). The load average at the start is recorded.
The goal is at least 50 pairs/s per core, so MAVIS-Caption's 558K pairs take about three hours on
one core, or minutes on a server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL = 50.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_render(n: int, seed: int) -> dict[str, Any]:
    from domainclip.domains.math.synthetic import generate_diagrams

    for _ in generate_diagrams(30, seed=seed + 1):  # warm-up: imports, fonts, figures
        pass
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in generate_diagrams(n, seed=seed):
        pass
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"mode": "render", "workers": 1, "n": n, "wall_s": wall, "cpu_s": cpu}


def bench_prepare(n: int, seed: int, workers: int, image_format: str) -> dict[str, Any]:
    from domainclip.domains.math.prepare import prepare_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        if workers == 1:
            prepare_synthetic(Path(tmp) / "warm", 30, seed + 1, progress=False, image_format=image_format)
        wall, cpu, child = time.perf_counter(), time.process_time(), _children_cpu()
        out = Path(tmp) / "out"
        summary = prepare_synthetic(out, n, seed, workers=workers, progress=False, image_format=image_format)
        wall = time.perf_counter() - wall
        cpu = (time.process_time() - cpu) if workers == 1 else (_children_cpu() - child)
        size = sum(p.stat().st_size for p in out.glob("*.tar"))
    assert summary["num_samples"] == n
    detail = summary["workers_detail"]
    return {
        # inside the workers' loops (no process start-up, no imports): the steady-state rate per core
        "in_loop_pairs_per_s_per_core": round(sum(d["num_samples"] / d["seconds"] for d in detail) / len(detail), 1),
        "in_loop_pairs_per_cpu_s": round(sum(d["num_samples"] / d["cpu_seconds"] for d in detail) / len(detail), 1),
        "mode": f"prepare x{workers}",
        "workers": workers,
        "n": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "bytes_per_pair": size / n,
        "image_format": image_format,
    }


def _rates(row: dict[str, Any]) -> dict[str, Any]:
    pairs_per_s = row["n"] / row["wall_s"]
    return {
        **row,
        "pairs_per_s": round(pairs_per_s, 1),
        "pairs_per_s_per_core_wall": round(pairs_per_s / row["workers"], 1),
        "pairs_per_cpu_s": round(row["n"] / row["cpu_s"], 1) if row["cpu_s"] > 0 else None,
        "wall_s": round(row["wall_s"], 2),
        "cpu_s": round(row["cpu_s"], 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="pairs per measurement")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="workers for the parallel run")
    parser.add_argument("--image-format", choices=("png", "jpg"), default="png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "math_engine.json")
    args = parser.parse_args(argv)

    import matplotlib
    import PIL

    load = os.getloadavg()[0]
    rows = [
        _rates(bench_render(args.n, args.seed)),
        _rates(bench_prepare(args.n, args.seed, 1, args.image_format)),
    ]
    if args.workers > 1:
        rows.append(_rates(bench_prepare(args.n * args.workers, args.seed, args.workers, args.image_format)))
    header = f"{'mode':<12}{'n':>6}{'wall s':>9}{'pairs/s':>9}{'per core':>10}{'per CPU-s':>11}{'in-loop/core':>14}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['mode']:<12}{r['n']:>6}{r['wall_s']:>9.2f}{r['pairs_per_s']:>9.1f}"
            f"{r['pairs_per_s_per_core_wall']:>10.1f}{r['pairs_per_cpu_s'] or float('nan'):>11.1f}"
            f"{r.get('in_loop_pairs_per_s_per_core', float('nan')):>14.1f}"
        )
    best = max(r["pairs_per_cpu_s"] or 0 for r in rows if r["mode"].startswith("prepare"))
    result = {
        "benchmark": "math diagram-caption engine (generate_diagrams + shard writing)",
        "goal_pairs_per_s_per_core": GOAL,
        "meets_goal": best >= GOAL,
        "rows": rows,
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_1min_at_start": round(load, 2),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "matplotlib": matplotlib.__version__,
            "pillow": PIL.__version__,
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    verdict = "met" if result["meets_goal"] else "NOT met"
    print(f"goal {GOAL:.0f} pairs/s per core: {verdict} (best {best:.1f} pairs per CPU-second with shard writing)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, args.out)
    return result


if __name__ == "__main__":
    main()
