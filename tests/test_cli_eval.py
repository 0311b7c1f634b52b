"""``domainclip eval`` and ``domainclip export`` as a user runs them: what the results record, what a
failure leaves behind, and how earlier outputs are refused or replaced."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from domainclip.cli import main
from domainclip.core.models import create_model

_spec = importlib.util.spec_from_file_location(
    "math_geometry3k_fixture_cli_eval", Path(__file__).parent / "domains" / "math" / "data.py"
)
geometry3k = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(geometry3k)

SUITE = "math/geometry3k"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A five-problem Geometry3K test split in the public layout."""
    root = tmp_path_factory.mktemp("geometry3k")
    geometry3k.make_geometry3k(root, seed=2, per_split={"test": 5})
    return root


def _eval(*argv: str) -> int:
    return main(["eval", "--suite", SUITE, "--batch-size", "8", *argv])


def _run_folder(path: Path, seed: int = 3) -> tuple[Path, Path]:
    """A run folder with one checkpoint of a seeded dc-test-vit; returns (run, weights file)."""
    torch.manual_seed(seed)
    model = create_model("dc-test-vit")
    (path / "checkpoints" / "step_00000001").mkdir(parents=True)
    (path / "model_info.json").write_text(json.dumps(model.domainclip_info))
    weights = path / "checkpoints" / "step_00000001" / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return path, weights


def test_registry_model_is_recorded_warned_about_and_seeded(data, tmp_path, capsys):
    assert _eval("--model", "dc-test-vit", "--data", str(data), "--out", str(tmp_path / "a.json")) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        "domainclip eval: warning: 'dc-test-vit' is an architecture name, not trained weights: "
        "evaluating random weights (seed 0)"
    ]
    assert _eval("--model", "dc-test-vit", "--data", str(data), "--out", str(tmp_path / "b.json")) == 0
    first, second = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert first["model"] == {"spec": "dc-test-vit", "kind": "registry", "random_weights": True, "seed": 0,
                              "weights_sha256": {}}
    assert first["results"] == second["results"]  # seeded: two runs, the same numbers
    inner = json.loads((tmp_path / "a_files" / "results.json").read_text())
    assert inner["model"] == first["model"] and inner["results"] == first["results"]
    assert "- **model.kind**: registry" in (tmp_path / "a.md").read_text()


def test_run_folder_is_recorded_with_its_checkpoint_hash(data, tmp_path, capsys):
    run, weights = _run_folder(tmp_path / "run")
    assert _eval("--model", str(run), "--data", str(data), "--out", str(tmp_path / "out")) == 0
    assert "warning" not in capsys.readouterr().err
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["model"] == {
        "spec": str(run),
        "kind": "run",
        "path": str(run.resolve()),
        "checkpoint": "checkpoints/step_00000001",
        "random_weights": False,
        "weights_sha256": {
            "checkpoints/step_00000001/model.safetensors": hashlib.sha256(weights.read_bytes()).hexdigest()
        },
    }
    assert saved["suite"] == SUITE and saved["batch_size"] == 8 and saved["device"] == "cpu"


def test_failed_eval_leaves_nothing_it_created(tmp_path, capsys):
    broken = tmp_path / "broken"
    (broken / "test" / "2401").mkdir(parents=True)  # a problem folder without its files
    (tmp_path / "keep.txt").write_text("mine")
    assert _eval("--model", "dc-test-vit", "--data", str(broken), "--out", str(tmp_path / "r.json")) == 2
    assert "lacks img_diagram.png" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "keep.txt"]
    # into an existing folder: what it wrote is removed, the folder and the user's files stay
    folder = tmp_path / "folder"
    folder.mkdir()
    assert _eval("--model", "dc-test-vit", "--data", str(broken), "--out", str(folder)) == 2
    assert list(folder.iterdir()) == []


_HOLD_FOLDER = """
import sys
from domainclip.core.outputs import OutputFolder
with OutputFolder(sys.argv[1], kind="eval", command="eval"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_second_eval_while_one_runs_is_one_line_naming_the_pid(data, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_FOLDER, str(tmp_path / "r_files")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert _eval("--model", "dc-test-vit", "--data", str(data), "--out", str(tmp_path / "r.json")) == 2
    finally:
        holder.communicate("")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("domainclip eval: error: ")
    assert f"in use by another domainclip process (pid {holder.pid})" in err[0]
    assert not (tmp_path / "r.json").exists()


def test_earlier_results_are_replaced_only_with_overwrite(data, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ("--model", "dc-test-vit", "--data", str(data), "--out", str(out))
    assert _eval(*args) == 0
    before = out.read_bytes()
    assert _eval(*args) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert _eval(*args, "--overwrite") == 0
    # a folder holding the user's own files is refused, --overwrite or not
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep me")
    capsys.readouterr()
    assert _eval("--model", "dc-test-vit", "--data", str(data), "--out", str(notes), "--overwrite") == 2
    assert "mine.txt, which domainclip did not write" in capsys.readouterr().err
    assert (notes / "mine.txt").read_text() == "keep me"
    assert not (notes / "results.json").exists()


def test_export_overwrite(tmp_path, capsys):
    run, _ = _run_folder(tmp_path / "run")
    out = tmp_path / "hub"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert main(["export", str(run), "--out", str(out)]) == 2
    assert "pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert main(["export", str(run), "--out", str(out), "--overwrite"]) == 0
    assert (out / "open_clip_model.safetensors").is_file()
