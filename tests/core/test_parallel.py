"""run_workers: results in call order, shared counters visible to the parent, worker errors raised."""

import functools

import pytest

from domainclip.core.parallel import run_workers, shared_add, shared_take


class _Bar:
    def __init__(self):
        self.n = 0
        self.postfix = {}

    def update(self, k):
        self.n += k

    def set_postfix(self, values, refresh=False):
        self.postfix = dict(values)


def _take_all(total, report):
    taken = []
    while (i := shared_take(1)) < total:
        taken.append(i)
        report(1)
    return taken


def _fail():
    raise ValueError("worker broke")


def test_workers_share_a_queue_and_report_progress():
    bar = _Bar()
    calls = [(_take_all, (20, functools.partial(shared_add, 0))) for _ in range(2)]
    taken = run_workers(calls, bar, counters=2, postfix={"taken": 0}, poll_seconds=0.01)
    assert sorted(taken[0] + taken[1]) == list(range(20))  # every item once, across both workers
    assert bar.n == 20


def test_worker_error_reaches_the_parent():
    with pytest.raises(ValueError, match="worker broke"):
        run_workers([(_fail, ())], _Bar())
