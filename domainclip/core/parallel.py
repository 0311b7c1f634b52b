"""Worker processes for batch jobs, with progress reported through counters shared with the parent.

The prepare commands of several domains split work over ``spawn`` worker processes, each writing its
own shards, while the parent draws one progress bar. :func:`run_workers` starts the pool, gives every
worker the same shared integer counters, and keeps the bar at counter 0 until all calls return.
Inside a worker, :func:`shared_add` adds to a counter (progress, items written) and
:func:`shared_take` fetches and increments one (a queue of item indices for dynamic work sharing,
so long and short items balance across workers).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

__all__ = ["run_workers", "shared_add", "shared_take"]

_COUNTERS: tuple[Any, ...] = ()


def _init_worker(*counters: Any) -> None:
    global _COUNTERS
    _COUNTERS = counters


def shared_add(index: int, count: int = 1) -> None:
    """In a worker of :func:`run_workers`: add ``count`` to shared counter ``index`` (0 drives the bar)."""
    counter = _COUNTERS[index]
    with counter.get_lock():
        counter.value += count


def shared_take(index: int) -> int:
    """In a worker of :func:`run_workers`: return shared counter ``index`` and increment it."""
    counter = _COUNTERS[index]
    with counter.get_lock():
        value = counter.value
        counter.value += 1
    return value


def run_workers(
    calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]],
    bar: Any,
    *,
    counters: int = 1,
    postfix: Mapping[str, int] | None = None,
    poll_seconds: float = 0.2,
) -> list[Any]:
    """Run ``fn(*args)`` for each call in its own ``spawn`` worker; return the results in call order.

    Args:
        calls: ``(picklable function, arguments)`` per worker.
        bar: a tqdm bar kept at shared counter 0 while the workers run.
        counters: how many shared integer counters the workers get (all start at 0).
        postfix: bar postfix name -> counter index, shown beside the bar (e.g. patches written).
        poll_seconds: how often the parent reads the counters.

    Raises:
        The first worker's exception, once every worker has finished.
    """
    ctx = mp.get_context("spawn")
    shared = tuple(ctx.Value("q", 0) for _ in range(max(1, counters)))
    with ProcessPoolExecutor(len(calls), mp_context=ctx, initializer=_init_worker, initargs=shared) as pool:
        futures = [pool.submit(fn, *args) for fn, args in calls]
        while not all(f.done() for f in futures):
            time.sleep(poll_seconds)
            bar.update(shared[0].value - bar.n)
            if postfix:
                bar.set_postfix({name: shared[i].value for name, i in postfix.items()}, refresh=False)
        bar.update(shared[0].value - bar.n)
        return [f.result() for f in futures]
