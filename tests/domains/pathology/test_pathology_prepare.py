"""The pathology prepare commands on the one contract: typed signatures give the CLI, its help and the recipe check."""

from __future__ import annotations

import re

import pytest
import yaml

from domainclip.cli import main
from domainclip.core.errors import InputError
from domainclip.core.options import options_of
from domainclip.core.plugins import get_domain, resolve
from domainclip.core.prepare import get_prepare_command, list_prepare_commands, step_options
from domainclip.core.recipe import PrepareStep
from domainclip.core.resources import recipe_path
from domainclip.domains.pathology.pipeline import prepare_synthetic_patches
from domainclip.domains.pathology.synthetic import generate_slides

COMMANDS = ["patches", "pathgen", "select", "synthetic", "synthetic-patches"]


def _required(name: str, tmp_path) -> list[str]:
    """The required flags of each command, pointing at ``tmp_path`` (the out folder is ``tmp_path/o``)."""
    extra = {
        "patches": ["--slides", str(tmp_path)],
        "pathgen": ["--records", str(tmp_path / "r.json"), "--slides-dir", str(tmp_path)],
        "select": ["--shards", str(tmp_path), "--model", "dc-test-vit"],
    }
    return ["--out", str(tmp_path / "o"), *extra.get(name, [])]


def test_the_domain_declares_its_generator_and_demo():
    spec = get_domain("pathology")
    assert list_prepare_commands("pathology") == COMMANDS
    assert spec.synthetic == "synthetic" and resolve(spec.prepare["synthetic"]) is generate_slides
    assert resolve(spec.prepare["synthetic-patches"]) is prepare_synthetic_patches
    assert spec.demo == "pathology/quick"
    steps = yaml.safe_load(recipe_path("pathology/quick").read_text())["data"]["prepare"]
    assert [s["command"] for s in steps] == ["pathology/synthetic-patches"] * 3
    assert [s["args"]["n"] for s in steps] == [12, 4, 4]
    assert [s["args"].get("site", "a") for s in steps] == ["a", "a", "b"]  # the third: the shifted second site


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("pathology/synthetic-patches", {"n_slides": 12},
         "pathology/synthetic-patches args: unknown option 'n_slides'"),
        ("pathology/synthetic", {"tumour_fraction": 0.5},
         "unknown option 'tumour_fraction' (did you mean tumor_fraction"),
        ("pathology/patches", {"slides": ["a.svs"], "min_tisue": 0.5},
         "unknown option 'min_tisue' (did you mean min_tissue?)"),
        ("pathology/pathgen", {"records": "r.json", "slides_dir": "s", "outsize": 224},
         "unknown option 'outsize' (did you mean out_size"),
        ("pathology/select", {"shards": ["s"], "model": "m", "workers": 2},
         "unknown option 'workers' (did you mean loader_workers?)"),
        ("pathology/synthetic-patches", {"tumor_fraction": 1.5},
         "args.tumor_fraction: must be a number in [0, 1]; got 1.5"),
        ("pathology/synthetic", {"size": [512, 100]}, "args.size: must be an integer or a list >= 256; got [512, 100]"),
        ("pathology/patches", {"slides": "a.svs", "resample": "cubic"}, "args.resample: must be one of lanczos,"),
    ],
)
def test_a_recipe_step_with_a_typo_or_a_bad_value_is_refused(command, args, expected):
    with pytest.raises(InputError) as caught:
        step_options(PrepareStep(command, {"out": "{root}/x", **args}), "data")
    assert expected in str(caught.value)


def test_a_recipe_step_is_converted_from_its_signature(tmp_path):
    command, options = step_options(
        PrepareStep("pathology/patches", {"out": "{root}/p", "slides": "{root}/raw/*.svs", "size": 256}), tmp_path
    )
    assert command is get_prepare_command("pathology", "patches")
    assert options == {"out": tmp_path / "p", "slides": [f"{tmp_path}/raw/*.svs"], "size": 256}


@pytest.mark.parametrize("name", ["patches", "pathgen", "synthetic", "synthetic-patches"])
def test_workers_zero_is_refused_in_one_line(name, tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["prepare", "pathology", name, *_required(name, tmp_path), "--workers", "0"])
    assert caught.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == (f"domainclip prepare pathology {name}: error: "
                         "argument --workers: must be an integer >= 1; got 0")
    assert not (tmp_path / "o").exists()


def test_select_names_its_dataloader_workers_apart(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["prepare", "pathology", "select", *_required("select", tmp_path), "--workers", "2"])
    assert "unrecognized arguments: --workers 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["prepare", "pathology", "select", *_required("select", tmp_path), "--loader-workers", "-1"])
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "argument --loader-workers: must be an integer >= 0; got -1")


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_each_default_once(name, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["prepare", "pathology", name, "--help"])
    assert caught.value.code == 0
    text = " ".join(capsys.readouterr().out.partition("options:")[2].split())
    entries = {e.split()[0]: e for e in re.split(r" (?=--[a-z])", " " + text) if e.strip()}
    for option in options_of(get_prepare_command("pathology", name)):
        if option.annotation is bool:
            assert "default" not in entries.get(option.flag, entries.get(f"--no-{option.flag[2:]}")), option.name
            continue
        entry = entries[option.flag]
        shown = re.findall(r"\(default: ([^)]*)\)", entry)
        assert entry.count("default") == len(shown) <= 1, entry  # never a hand-written second one
        if option.default is not None and not option.required:
            # add_options leaves out defaults equal to False/True, so 0 and 1 are not shown
            assert shown == [str(option.default)] or (option.default in (0, 1) and not shown), entry
