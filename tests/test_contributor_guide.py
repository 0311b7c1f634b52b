"""docs/adding_a_domain.md builds a working domain: its `# file:` blocks, written out, pass the contract and run.

The guide's code is the test's fixture, so the guide cannot drift from the contract it teaches.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from domainclip.cli import main
from domainclip.core import plugins
from domainclip.core.recipe import RecipeError, load_recipe
from tests.test_domain_contract import check_demo, check_eval_suite, check_prepare_command, check_synthetic

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "adding_a_domain.md"
_BLOCK = re.compile(r"```(?:python|yaml)\n# file: (\S+)\n(.*?)```", re.S)


def guide_files() -> dict[str, str]:
    """The guide's files: path -> text, from the code blocks that start with ``# file: PATH``."""
    return dict(_BLOCK.findall(GUIDE.read_text(encoding="utf-8")))


@pytest.fixture
def textures(tmp_path, monkeypatch):
    """The guide's ``textures`` package on sys.path and its DomainSpec registered (for this test only)."""
    package = tmp_path / "package"
    for name, text in guide_files().items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.setenv("PYTHONPATH", str(package))  # spawn workers of the generator import it too
    from textures.domain import DOMAIN

    monkeypatch.setitem(plugins._REGISTERED, "textures", DOMAIN)
    yield DOMAIN
    for module in [m for m in sys.modules if m == "textures" or m.startswith("textures.")]:
        del sys.modules[module]


def test_the_guide_holds_a_whole_package():
    assert set(guide_files()) == {"textures/__init__.py", "textures/synthetic.py", "textures/evals.py",
                                  "textures/domain.py", "textures/quick.yaml", "textures/zoo.yaml"}


def test_the_guide_zoo_entry_is_listed_with_its_card(textures, capsys):
    from domainclip.core.zoo import registry

    registry._declared_entries.cache_clear()
    try:
        (entry,) = registry.list_zoo("textures")
        assert entry.name == "TexCLIP-B-16" and entry.arch == "ViT-B-16" and entry.overrides == {"quick_gelu": True}
        assert entry.templates == ("a photo of a {c} texture",) and not entry.pinned
        assert main(["zoo", "show", "TexCLIP-B-16"]) == 0
        assert "CC BY-NC 4.0" in capsys.readouterr().out
    finally:
        registry._declared_entries.cache_clear()


def test_the_guide_domain_passes_the_contract(textures):
    for name, target in textures.prepare.items():
        check_prepare_command("textures", name, target)
    for name, target in textures.eval_suites.items():
        check_eval_suite("textures", name, target)
    check_synthetic(textures)
    check_demo(textures)
    assert "textures" in plugins.list_domains()


def test_the_generator_writes_the_same_samples_for_any_worker_count(textures, tmp_path, capsys):
    from domainclip.core.data.writer import read_index

    base = ["prepare", "textures", "synthetic", "--n", "40", "--seed", "3", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "one")]) == 0
    one = json.loads(capsys.readouterr().out)
    assert main([*base, "--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert one["counts"] == two["counts"] and sum(one["counts"]["texture"].values()) == 40
    assert read_index(tmp_path / "one" / "textures-index.json")["num_samples"] == 40
    with pytest.raises(SystemExit):
        main([*base, "--out", str(tmp_path / "bad"), "--image-size", "8"])
    assert "argument --image-size: must be an integer in [16, 512]; got 8" in capsys.readouterr().err


def test_a_typo_in_the_guide_recipe_fails_at_load(textures):
    with pytest.raises(RecipeError, match=r"unknown option 'prompt' \(did you mean prompts\?\)"):
        load_recipe(textures.demo, ["eval.options={textures/zero_shot: {prompt: plain}}"])
    with pytest.raises(RecipeError, match=r"textures/synthetic args: unknown option 'nn'"):
        load_recipe(textures.demo, ["data.prepare.0.args.nn=5"])


@pytest.mark.slow
def test_the_guide_domain_runs_end_to_end(textures, tmp_path):
    from domainclip.core.demo import run_demo

    out = run_demo("textures", tmp_path / "demo", steps=30,
                   overrides=["data.prepare.0.args.n=512", "data.prepare.1.args.n=96", "data.prepare.0.args.workers=2"])
    results = out["results"]
    assert set(results) == {"texture/zeroshot_classification", "colour/zeroshot_classification"}
    assert results["texture/zeroshot_classification"]["num_samples"] == 96
    assert (out["run_dir"] / "eval" / "textures_zero_shot" / "texture_confusion_matrix.png").is_file()
    assert (out["hub_dir"] / "open_clip_config.json").is_file() and out["report"].is_file()
