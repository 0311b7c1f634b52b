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


_ORPHAN_SCRIPT = """
import os, sys, time
from domainclip.core.parallel import run_workers

class Bar:
    n = 0
    def update(self, k):
        pass

def work(folder):
    path = os.path.join(folder, f"worker-{os.getpid()}.txt")
    with open(path, "a") as f:
        while True:  # writes into the output folder until someone stops it
            f.write("x")
            f.flush()
            time.sleep(0.01)

if __name__ == "__main__":
    run_workers([(work, (sys.argv[1],)), (work, (sys.argv[1],))], Bar())
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped has stopped running)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_end_when_their_parent_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(out)])
    deadline = time.time() + 120
    while len(list(out.glob("worker-*.txt"))) < 2 or any(p.stat().st_size == 0 for p in out.glob("*.txt")):
        assert parent.poll() is None and time.time() < deadline
        time.sleep(0.05)
    pids = [int(p.stem.split("-")[1]) for p in out.glob("worker-*.txt")]
    assert all(_alive(pid) for pid in pids)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 30
    while any(_alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids), "workers outlived their killed parent"
    sizes = {p.name: p.stat().st_size for p in out.glob("*.txt")}
    time.sleep(0.5)
    assert sizes == {p.name: p.stat().st_size for p in out.glob("*.txt")}  # nothing writes any more
