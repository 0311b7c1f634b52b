"""Every notebook in notebooks/ runs top to bottom (nbclient, the venv's own kernel) and is stored without outputs.

A notebook runs in a temporary folder, so whatever it writes stays out of the repository; it finds
../shared/data through ``DOMAINCLIP_SHARED_DATA``. The executed copy is written to that folder as
``<name>.executed.ipynb``, where its figures can be looked at.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import REPO_ROOT, SHARED_DATA

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
DOMAINS = ("pathology", "surgery", "biomed", "remote_sensing", "math", "multiview")


def test_one_notebook_per_domain():
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(DOMAINS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_stored_without_outputs(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
        f"{path.name} holds outputs: clear them before committing (Jupyter: Edit > Clear All Outputs)"
    )
    assert notebook["cells"][0]["cell_type"] == "markdown", f"{path.name} must open with an explanation"
    sources = "\n".join("".join(c["source"]) for c in code)
    assert not re.search(r"""["']/[A-Za-z]""", sources), f"{path.name} names an absolute path"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    monkeypatch.setenv("DOMAINCLIP_SHARED_DATA", str(SHARED_DATA))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    notebook = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    finally:
        nbformat.write(notebook, str(tmp_path / f"{path.stem}.executed.ipynb"))
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, f"{path.name} shows no picture"
