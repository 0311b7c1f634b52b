import subprocess
import sys

import pytest

from domainclip.cli import main

VERBS = ["domains", "recipes", "prepare", "train", "eval", "export", "demo"]


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: domainclip" in out and verb in out


def test_top_level_help_lists_verbs(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out


def test_unknown_recipe_is_one_line_error(capsys):
    assert main(["train", "core/quik"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "unknown recipe 'core/quik'" in err and "core/quick" in err
    assert "Traceback" not in err


def test_bad_recipe_key_is_one_line_error(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("optim: {lrr: 1}\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown key 'lrr'" in err and str(path) in err and err.count("\n") == 0


def test_missing_recipe_file(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert "recipe file not found" in capsys.readouterr().err


def test_unknown_domain_for_prepare(capsys):
    assert main(["prepare", "pathologie", "tiles"]) == 2
    err = capsys.readouterr().err
    assert "unknown domain 'pathologie'" in err


def test_recipes_and_domains_list(capsys):
    assert main(["recipes"]) == 0
    assert "core/quick" in capsys.readouterr().out
    assert main(["domains"]) == 0
    out = capsys.readouterr().out
    assert 'math  (pip install "domainclip[math]")' in out and "pathology" in out
    assert "tasks:    video_clip, video_clip_levels" in out


def test_prepare_lists_commands(capsys):
    assert main(["prepare", "core"]) == 0
    assert "shapes" in capsys.readouterr().out


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "domainclip", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "domainclip" in proc.stdout


def test_import_is_light():
    code = (
        "import sys, domainclip; domainclip.list_domains(); domainclip.get_domain('math'); "
        "heavy = [m for m in ('openslide', 'decord', 'rasterio', 'trimesh', 'av', 'torch', 'open_clip') "
        "if m in sys.modules]; print(heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
