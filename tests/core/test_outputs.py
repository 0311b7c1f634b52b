"""Output folders: a command never deletes what it did not create, never mixes two runs, and never
takes a partial output for a whole one (core.outputs, and the prepare/train/demo commands on it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from domainclip.cli import main
from domainclip.core import outputs
from domainclip.core.data.writer import read_index
from domainclip.core.errors import OutputError, OutputExistsError, OutputInUseError
from domainclip.core.outputs import LOCK_NAME, MANIFEST_NAME, OutputFolder, read_manifest


def _cli(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "domainclip", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# =========================================================================== OutputFolder
def test_new_folder_is_recorded_complete_with_its_own_entries(tmp_path):
    out = tmp_path / "a" / "b"
    with OutputFolder(out, kind="dataset", command="core/shapes", args={"n": 3, "out": out}) as folder:
        (out / "x.tar").write_bytes(b"x")
        assert folder.created
        assert read_manifest(out)["complete"] is False  # written before anything else
    manifest = read_manifest(out)
    assert manifest["complete"] is True and manifest["own"] == ["x.tar"] and manifest["foreign"] == []
    assert manifest["args"] == {"n": 3, "out": str(out)} and manifest["command"] == "core/shapes"


def test_a_folder_with_the_users_files_is_refused_and_left_as_it_was(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"holds notes.txt, which domainclip did not write"):
        with OutputFolder(tmp_path, kind="dataset"):
            pass
    assert _names(tmp_path) == ["notes.txt"]  # no lock or manifest left either
    with pytest.raises(OutputExistsError, match="only replaces domainclip's own files"):
        with OutputFolder(tmp_path, kind="dataset", overwrite=True):
            pass
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_only_domainclips_own_entries(tmp_path):
    with OutputFolder(tmp_path, kind="run", allow_foreign=True):
        (tmp_path / "old.bin").write_text("old run")
    (tmp_path / "notes.txt").write_text("added by the user afterwards")
    with pytest.raises(OutputExistsError, match="finished run written by .*beside notes.txt, which domainclip"):
        with OutputFolder(tmp_path, kind="run", allow_foreign=True):
            pass
    with OutputFolder(tmp_path, kind="run", overwrite=True, allow_foreign=True):
        assert not (tmp_path / "old.bin").exists()
        (tmp_path / "new.bin").write_text("new run")
    assert (tmp_path / "notes.txt").read_text() == "added by the user afterwards"
    assert read_manifest(tmp_path)["own"] == ["new.bin"] and read_manifest(tmp_path)["foreign"] == ["notes.txt"]


def test_an_earlier_output_is_refused_without_overwrite(tmp_path):
    with OutputFolder(tmp_path, kind="dataset", command="math/synthetic"):
        (tmp_path / "math-000000.tar").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="already holds a finished dataset written by `math/synthetic`"):
        with OutputFolder(tmp_path, kind="dataset", command="math/synthetic"):
            pass
    assert _names(tmp_path) == sorted([LOCK_NAME, MANIFEST_NAME, "math-000000.tar"])


def test_failure_removes_what_the_command_created(tmp_path):
    new = tmp_path / "new"
    with pytest.raises(RuntimeError, match="boom"):
        with OutputFolder(new, kind="eval"):
            (new / "plot.png").write_bytes(b"png")
            raise RuntimeError("boom")
    assert not new.exists()  # it created the folder, so the folder goes

    existing = tmp_path / "existing"
    existing.mkdir()
    with OutputFolder(existing, kind="run", allow_foreign=True):
        (existing / "kept.txt").write_text("from the first run")
    with pytest.raises(RuntimeError, match="boom"):
        with OutputFolder(existing, kind="run", resume=True):
            (existing / "partial.txt").write_text("half")
            raise RuntimeError("boom")
    assert _names(existing) == sorted([LOCK_NAME, MANIFEST_NAME, "kept.txt"])
    assert read_manifest(existing)["complete"] is True  # the earlier, finished run is still whole

    keep = tmp_path / "keep"
    with pytest.raises(RuntimeError):
        with OutputFolder(keep, kind="run", keep_on_error=lambda p: (p / "checkpoints").exists()):
            (keep / "checkpoints").mkdir()
            raise RuntimeError("killed after a checkpoint")
    assert (keep / "checkpoints").is_dir() and read_manifest(keep)["complete"] is False


def test_entries_of_a_killed_command_are_its_own(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    folder = OutputFolder(tmp_path, kind="run", overwrite=True, allow_foreign=True)
    folder.__enter__()
    (tmp_path / "half.tar").write_bytes(b"x")
    folder._unlock()  # what kill -9 leaves: the lock gone, the manifest incomplete
    outputs._HELD.clear()
    with pytest.raises(OutputExistsError, match=r"already holds a partial run"):
        with OutputFolder(tmp_path, kind="run", allow_foreign=True):
            pass
    with OutputFolder(tmp_path, kind="run", overwrite=True, allow_foreign=True):
        assert _names(tmp_path) == sorted([LOCK_NAME, MANIFEST_NAME, "notes.txt"])


def test_a_second_process_gets_one_line_naming_the_holder(tmp_path):
    code = (
        "import sys, time\n"
        "from domainclip.core.outputs import OutputFolder\n"
        "with OutputFolder(sys.argv[1], kind='run'):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputInUseError, match=rf"in use by another domainclip process \(pid {holder.pid}\)"):
            with OutputFolder(tmp_path / "out", kind="run", overwrite=True):
                pass
    finally:
        holder.kill()
        holder.wait()
    with OutputFolder(tmp_path / "out", kind="run", resume=True):  # the lock died with its holder
        pass


def test_a_file_or_an_unwritable_place_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        with OutputFolder(tmp_path / "file", kind="eval"):
            pass
    with pytest.raises(OutputError, match="cannot create output folder"):
        with OutputFolder(tmp_path / "file" / "sub", kind="eval"):
            pass


def test_nested_folders_in_one_process_do_not_lock_each_other(tmp_path):
    with OutputFolder(tmp_path / "run", kind="demo") as outer:
        with OutputFolder(tmp_path / "run", kind="run") as inner:
            assert inner.nested and not outer.nested
            (tmp_path / "run" / "log.jsonl").write_text("{}")
    assert read_manifest(tmp_path / "run")["kind"] == "demo"
    assert read_manifest(tmp_path / "run")["own"] == ["log.jsonl"]


# =========================================================================== prepare
def _shapes(out: Path, n: int, *extra: str) -> int:
    return main(["prepare", "core", "shapes", "--out", str(out), "--n", str(n), "--image-size", "16",
                 "--max-count", "64", *extra])


def test_prepare_refuses_another_dataset_and_overwrite_replaces_it_whole(tmp_path, capsys):
    out = tmp_path / "shapes"
    assert _shapes(out, 256) == 0
    assert read_index(out / "shapes-index.json")["num_samples"] == 256 and len(list(out.glob("*.tar"))) == 4
    assert _shapes(out, 128) == 2
    assert "already holds a finished dataset written by `core/shapes`" in capsys.readouterr().err
    assert read_index(out / "shapes-index.json")["num_samples"] == 256  # the refused run changed nothing
    assert _shapes(out, 128, "--overwrite") == 0
    index = read_index(out / "shapes-index.json")
    assert index["num_samples"] == 128 and [s["name"] for s in index["shards"]] == [
        "shapes-000000.tar", "shapes-000001.tar"]
    assert sorted(p.name for p in out.glob("*.tar")) == ["shapes-000000.tar", "shapes-000001.tar"]
    assert read_manifest(out)["args"]["n"] == 128


def test_prepare_with_other_worker_counts_does_not_mix_datasets(tmp_path):
    out = tmp_path / "math"
    base = ["prepare", "math", "synthetic", "--out", str(out), "--n", "40", "--image-size", "64",
            "--max-count", "16", "--no-progress"]
    assert main([*base, "--workers", "1"]) == 0
    assert main([*base, "--workers", "2", "--overwrite"]) == 0
    total = sum(read_index(p)["num_samples"] for p in out.glob("*-index.json"))
    assert total == 40  # not 80: the one-worker run's shards went with it
    assert sorted(p.name for p in out.glob("*-index.json")) == ["math-w00-index.json", "math-w01-index.json"]


def test_prepare_leaves_the_users_folder_alone(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("years of work")
    assert _shapes(tmp_path, 16, "--overwrite") == 2
    assert "thesis.tex, which domainclip did not write" in capsys.readouterr().err
    assert _names(tmp_path) == ["thesis.tex"]


@pytest.mark.slow
def test_two_prepares_into_one_folder_one_is_refused(tmp_path):
    out = tmp_path / "shapes"
    first = _cli("prepare", "core", "shapes", "--out", str(out), "--n", "40000", "--image-size", "32")
    deadline = time.time() + 120
    while read_manifest(out) is None:
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.02)
    second = _cli("prepare", "core", "shapes", "--out", str(out), "--n", "10", "--seed", "7", "--overwrite")
    out2, _ = second.communicate(timeout=120)
    assert second.returncode == 2 and f"(pid {first.pid})" in out2, out2
    assert first.wait(timeout=300) == 0
    index = read_index(out / "shapes-index.json")
    assert index["complete"] is True and index["num_samples"] == 40000
    assert read_manifest(out)["args"]["seed"] == 0


# =========================================================================== train and recipes
def _recipe(path: Path, root: Path, n: int = 3000, **train) -> Path:
    recipe = {
        "domain": "core",
        "model": {"name": "dc-test-vit"},
        "data": {
            "root": str(root),
            "train": [{"urls": "shapes/*.tar"}],
            "prepare": [{"command": "core/shapes",
                         "args": {"out": "{root}/shapes", "n": n, "image_size": 16, "max_count": 100}}],
            "batch_size": 8, "num_workers": 0, "shuffle_buffer": 8,
        },
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "train": {"steps": 2, "precision": "fp32", "log_every": 1, "checkpoint_every": 1, "progress": False,
                  "tensorboard": False, "device": "cpu", **train},
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.slow
def test_train_rebuilds_data_whose_prepare_was_killed(tmp_path):
    recipe = _recipe(tmp_path / "r.yaml", tmp_path / "data", n=60000)
    victim = _cli("train", str(recipe), "--out", str(tmp_path / "run"))
    shards = tmp_path / "data" / "shapes"
    deadline = time.time() + 300
    while len(list(shards.glob("*.tar"))) < 3:
        assert victim.poll() is None and time.time() < deadline
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert read_manifest(shards)["complete"] is False
    partial = len(list(shards.glob("*.tar")))
    assert partial < 600

    # a recipe without the prepare step refuses the partial folder instead of training on it
    no_prepare = yaml.safe_load(recipe.read_text())
    no_prepare["data"]["prepare"] = []
    (tmp_path / "np.yaml").write_text(yaml.safe_dump(no_prepare))
    refused = _cli("train", str(tmp_path / "np.yaml"), "--out", str(tmp_path / "run-np"))
    text, _ = refused.communicate(timeout=300)
    assert refused.returncode == 2 and "unfinished `core/shapes`" in text, text
    assert not (tmp_path / "run-np").exists()

    again = _cli("train", str(recipe), "--out", str(tmp_path / "run2"))
    text, _ = again.communicate(timeout=600)
    assert again.returncode == 0, text[-3000:]
    assert "prepare core/shapes: running, because its earlier run did not finish" in text
    assert read_index(shards / "shapes-index.json")["num_samples"] == 60000
    assert read_manifest(shards)["complete"] is True
    assert len(list(shards.glob("*.tar"))) == 600


def test_train_reruns_a_prepare_step_whose_arguments_changed(tmp_path, capsys):
    recipe = _recipe(tmp_path / "r.yaml", tmp_path / "data", n=64)
    assert main(["train", str(recipe), "--out", str(tmp_path / "a")]) == 0
    assert read_index(tmp_path / "data" / "shapes" / "shapes-index.json")["num_samples"] == 64
    capsys.readouterr()
    assert main(["train", str(recipe), "--out", str(tmp_path / "b")]) == 0
    assert "prepare core/shapes: running" not in capsys.readouterr().out  # complete and the same: reused
    recipe = _recipe(tmp_path / "r.yaml", tmp_path / "data", n=96)
    assert main(["train", str(recipe), "--out", str(tmp_path / "c")]) == 0
    assert "its output was made with other arguments" in capsys.readouterr().out
    assert read_index(tmp_path / "data" / "shapes" / "shapes-index.json")["num_samples"] == 96


def test_two_trainings_into_one_run_folder(tmp_path):
    recipe = _recipe(tmp_path / "r.yaml", tmp_path / "data", n=64, steps=400, checkpoint_every=100)
    assert main(["prepare", "core", "shapes", "--out", str(tmp_path / "data" / "shapes"), "--n", "64",
                 "--image-size", "16", "--max-count", "100"]) == 0
    first = _cli("train", str(recipe), "--out", str(tmp_path / "run"))
    deadline = time.time() + 120
    while not (tmp_path / "run" / "recipe.resolved.yaml").exists():
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.02)
    second = _cli("train", str(recipe), "--out", str(tmp_path / "run"), "--overwrite")
    text, _ = second.communicate(timeout=300)
    assert second.returncode == 2 and f"in use by another domainclip process (pid {first.pid})" in text, text
    text, _ = first.communicate(timeout=600)
    assert first.returncode == 0, text[-2000:]
    events = [json.loads(x)["event"] for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
              if '"event"' in x]
    assert events.count("start") == 1 and events.count("end") == 1  # one run's log, not two interleaved


def test_a_failed_train_leaves_nothing_behind(tmp_path, capsys):
    recipe = _recipe(tmp_path / "r.yaml", tmp_path / "data", n=64, task="nosuch_task")
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 2
    assert "unknown task 'nosuch_task'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    (tmp_path / "empty").mkdir()
    assert main(["train", str(recipe), "--out", str(tmp_path / "empty")]) == 2
    assert _names(tmp_path / "empty") == []


# =========================================================================== demo
def test_demo_refuses_a_folder_with_the_users_files(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("years of work")
    assert main(["demo", "--domain", "core", "--out", str(tmp_path), "--steps", "2"]) == 2
    assert "thesis.tex, which domainclip did not write" in capsys.readouterr().err
    assert _names(tmp_path) == ["thesis.tex"]


def test_demo_with_a_bad_step_count_touches_nothing(tmp_path, monkeypatch):
    (tmp_path / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--out", ".", "--steps", "0"]) == 2
    assert _names(tmp_path) == ["thesis.tex"]


@pytest.mark.slow
def test_demo_overwrite_replaces_its_own_files_and_keeps_the_users(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--domain", "core", "--out", str(out), "--steps", "2"]) == 0
    (out / "my-notes.md").write_text("what I saw")
    first_log = (out / "log.jsonl").read_text()
    assert main(["demo", "--domain", "core", "--out", str(out), "--steps", "3", "--overwrite"]) == 0
    assert (out / "my-notes.md").read_text() == "what I saw"
    assert (out / "log.jsonl").read_text() != first_log
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_00000003"]
    manifest = read_manifest(out)
    assert manifest["kind"] == "demo" and manifest["foreign"] == ["my-notes.md"] and "hub" in manifest["own"]


def test_a_failed_resumable_command_keeps_its_progress(tmp_path):
    from domainclip.core.prepare import resumable, run_prepare

    calls: list = []
    runs: list = []

    @resumable
    def command(out: Path, items: int = 3, progress: bool = True) -> dict:
        """Write one file per item; fail at the second item on the first run.

        Args:
            out: output folder.
            items: how many.
            progress: unused.
        """
        runs.append(1)
        for i in range(items):
            done = out / f"{i}.txt"
            if done.exists():
                continue
            if i == 1 and len(runs) == 1:
                calls.append("failed")
                raise KeyboardInterrupt
            done.write_text(str(i))
            calls.append(i)
        return {"written": items}

    with pytest.raises(KeyboardInterrupt):
        run_prepare("test", "resumable", command, {"out": tmp_path / "o"})
    assert (tmp_path / "o" / "0.txt").exists() and read_manifest(tmp_path / "o")["complete"] is False
    assert run_prepare("test", "resumable", command, {"out": tmp_path / "o"}) == {"written": 3}
    assert calls == [0, "failed", 1, 2]  # item 0 was not redone
    assert read_manifest(tmp_path / "o")["complete"] is True


def test_a_resumable_command_that_fails_before_writing_leaves_no_folder(tmp_path):
    """A user mistake a resumable command finds first (a missing input) leaves no half-made output."""
    from domainclip.core.errors import InputError
    from domainclip.core.prepare import resumable, run_prepare

    @resumable
    def command(out: Path, source: str = "x", progress: bool = True) -> dict:
        """Refuse a missing source before writing anything.

        Args:
            out: output folder.
            source: the input.
            progress: unused.
        """
        raise InputError(f"source {source} does not exist")

    with pytest.raises(InputError, match="source x does not exist"):
        run_prepare("test", "resumable", command, {"out": tmp_path / "o"})
    assert not (tmp_path / "o").exists()
    (tmp_path / "mine").mkdir()  # an existing empty folder of the user's stays, and stays empty
    with pytest.raises(InputError):
        run_prepare("test", "resumable", command, {"out": tmp_path / "mine"})
    assert (tmp_path / "mine").is_dir() and not list((tmp_path / "mine").iterdir())
