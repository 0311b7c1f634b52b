"""Worker processes for batch jobs: progress through shared counters, and no orphans.

The prepare commands of several domains split work over ``spawn`` worker processes, each writing its
own output, while the parent draws one progress bar. :func:`run_workers` starts one worker per call,
gives every worker the same shared integer counters, and keeps the bar at counter 0 until all calls
return; :func:`map_unordered` maps a function over items in a pool and yields results as they come.
Inside a worker, :func:`shared_add` adds to a counter (progress, items written) and
:func:`shared_take` fetches and increments one (a queue of item indices for dynamic work sharing,
so long and short items balance across workers).

Every worker watches its parent and ends itself as soon as the parent is gone, ``kill -9``
included, so a killed command never leaves processes that go on writing into its output folder.
When the parent fails (a worker's error, Ctrl-C), work not yet started is cancelled.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

__all__ = ["map_unordered", "run_workers", "shared_add", "shared_take", "worker_pool"]

_COUNTERS: tuple[Any, ...] = ()
#: how often a worker checks that its parent is still alive
PARENT_POLL_SECONDS = 0.2


def _exit_when_orphaned(parent_pid: int) -> None:
    """End this process (without cleanup: it is a worker) as soon as ``parent_pid`` is no longer its parent."""
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="domainclip-parent-watch", daemon=True).start()


def _init_worker(parent_pid: int, *counters: Any) -> None:
    global _COUNTERS
    _exit_when_orphaned(parent_pid)
    _COUNTERS = counters


@contextlib.contextmanager
def worker_pool(workers: int, counters: Sequence[Any] = ()) -> Iterator[ProcessPoolExecutor]:
    """A ``spawn`` process pool whose workers end with this process and see ``counters``.

    On an exception in the block (a worker's error re-raised, Ctrl-C), work not yet started is
    cancelled before the pool is shut down, so the error surfaces without waiting for the rest.
    """
    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(), *counters))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def map_unordered(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, fn(items[index]))`` as results arrive, computed in :func:`worker_pool` processes.

    Args:
        fn: a picklable function of one item.
        items: picklable items.
        workers: most processes (fewer when there are fewer items); 1 runs in this process.

    Raises:
        The first error of ``fn``, once the work already started has finished.
    """
    if workers <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            yield i, fn(item)
        return
    with worker_pool(min(workers, len(items))) as pool:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            yield futures[future], future.result()


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
    with worker_pool(len(calls), shared) as pool:
        futures = [pool.submit(fn, *args) for fn, args in calls]
        while not all(f.done() for f in futures):
            time.sleep(poll_seconds)
            bar.update(shared[0].value - bar.n)
            if postfix:
                bar.set_postfix({name: shared[i].value for name, i in postfix.items()}, refresh=False)
        bar.update(shared[0].value - bar.n)
        return [f.result() for f in futures]
