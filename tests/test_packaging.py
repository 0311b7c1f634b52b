"""The wheel ships recipes and data cards: build it, install it into a fresh venv, use it."""

import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_plain_wheel_install_finds_recipes_and_cards(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-w", str(dist), "-q"],
        check=True, cwd=tmp_path,
    )
    wheels = list(dist.glob("domainclip-*.whl"))
    assert len(wheels) == 1
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheels[0])], check=True)
    # the dependencies (torch, open_clip...) come from the test's environment, the package from the wheel
    fresh_site = Path(subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (fresh_site / "zz_test_deps.pth").write_text("\n".join(deps) + "\n")
    probe = (
        "import domainclip, domainclip.core.resources as r; "
        "print(domainclip.__file__); print(r.recipes_root()); print(r.data_cards_root()); "
        "print(','.join(r.list_recipes()))"
    )
    out = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    module_file, recipes, cards, names = out.stdout.strip().splitlines()
    assert Path(module_file).is_relative_to(fresh_site), module_file
    assert Path(recipes) == fresh_site / "domainclip" / "_recipes"
    assert Path(cards) == fresh_site / "domainclip" / "_data_cards"
    assert (Path(recipes) / "core" / "quick.yaml").is_file()
    assert "core/quick" in names.split(",")
    listed = subprocess.run([str(venv / "bin" / "domainclip"), "recipes"], capture_output=True, text=True,
                            cwd=tmp_path, check=True)
    assert "core/quick" in listed.stdout
