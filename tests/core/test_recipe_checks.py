"""A typo in any plugin name or option of a shipped recipe fails at load, before any data or model.

For every shipped recipe and every kind of plugin option it has (eval suite name, suite option,
prepare argument, loss argument, decoder argument), the same recipe with one misspelling is
refused by ``load_recipe`` naming the key, and ``domainclip train`` exits 2 without creating the
run folder or the data folder.
"""

from __future__ import annotations

import pytest
import yaml

from domainclip.cli import main
from domainclip.core.recipe import RecipeError, load_recipe, recipe_to_dict
from domainclip.core.resources import list_recipes


def _misspellings(name: str) -> list[tuple[str, list[str], str]]:
    """``(kind, --set overrides, text the error must contain)`` for each plugin option the recipe has."""
    recipe = load_recipe(name)
    cases = []
    if recipe.eval.suites:
        suites = list(recipe.eval.suites)
        wrong = suites[0][:-1]
        cases.append(("suite", [f"eval.suites={yaml.safe_dump([wrong, *suites[1:]], default_flow_style=True).strip()}",
                                "eval.options={}", "eval.suite_data={}"],
                      f"eval.suites[0]: unknown eval suite {wrong!r}"))
        options = {suites[0]: {"top_kk": 3}}
        cases.append(("suite option", [f"eval.options={yaml.safe_dump(options, default_flow_style=True).strip()}"],
                      "unknown option 'top_kk'"))
    if recipe.data.prepare:
        step = recipe_to_dict(recipe)["data"]["prepare"][0]
        step["args"] = {**step["args"], "seeed": 1}
        prepare = [step, *recipe_to_dict(recipe)["data"]["prepare"][1:]]
        cases.append(("prepare argument", [f"data.prepare={yaml.safe_dump(prepare, default_flow_style=True).strip()}"],
                      "data.prepare[0]: " + f"{step['command']} args: unknown option 'seeed'"))
    cases.append(("loss argument", ["loss.kwargs={levl_weights: [1.0]}"], "loss.kwargs"))
    from domainclip.core.engine.tasks import get_task

    if get_task(recipe.train.task).make_decoder is not None:
        cases.append(("decoder argument", ["data.decoder_args={num_frame: 4}"], "unknown option 'num_frame'"))
    return cases


CASES = [(name, *case) for name in list_recipes() for case in _misspellings(name)]


@pytest.mark.parametrize(("name", "kind", "overrides", "expected"), CASES,
                         ids=[f"{c[0]}-{c[1].replace(' ', '-')}" for c in CASES])
def test_a_typo_in_a_shipped_recipe_fails_at_load(name, kind, overrides, expected, tmp_path, capsys):
    with pytest.raises(RecipeError) as err:
        load_recipe(name, overrides)
    assert expected in str(err.value) and "recipes/" in str(err.value), str(err.value)
    code = main(["train", name, "--out", str(tmp_path / "run"), "--set", f"data.root={tmp_path / 'data'}",
                 *(x for o in overrides for x in ("--set", o))])
    assert code == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()  # no data touched


def test_every_kind_of_option_is_covered():
    kinds = {case[1] for case in CASES}
    assert kinds == {"suite", "suite option", "prepare argument", "loss argument", "decoder argument"}


def test_the_close_match_is_named(tmp_path):
    with pytest.raises(RecipeError, match=r"unknown option 'seeed' \(did you mean seed\?\)"):
        load_recipe("core/quick", ["data.prepare=[{command: core/shapes, args: {out: x, seeed: 1}}]"])
    with pytest.raises(RecipeError, match=r"core/shapes args.n: must be an integer >= 1; got 0"):
        load_recipe("core/quick", ["data.prepare=[{command: core/shapes, args: {out: x, n: 0}}]"])
    with pytest.raises(RecipeError, match=r"loss 'clip' takes no argument 'local_los' \(did you mean local_loss"):
        load_recipe("core/quick", ["loss.kwargs={local_los: true}"])
    with pytest.raises(RecipeError, match=r"loss.kwargs.rank is set by the engine"):
        load_recipe("core/quick", ["loss.kwargs={rank: 1}"])


def test_a_domain_tower_and_its_settings_are_checked_at_load():
    base = ["model.overrides={domainclip_cfg: {tower: video, num_frames: 4}}"]
    load_recipe("core/quick", base)
    with pytest.raises(RecipeError, match=r"unknown domain tower 'vidoe'.*Did you mean: video"):
        load_recipe("core/quick", ["model.overrides={domainclip_cfg: {tower: vidoe}}"])
    with pytest.raises(RecipeError, match=r"model.overrides.domainclip_cfg: unknown video tower setting 'num_frame'"):
        load_recipe("core/quick", ["model.overrides={domainclip_cfg: {tower: video, num_frame: 4}}"])


def test_the_model_name_is_checked_at_load_zoo_names_included():
    with pytest.raises(RecipeError, match=r"model.name: unknown model 'dc-test-vt'.*Did you mean: dc-test-vit"):
        load_recipe("core/quick", ["model.name=dc-test-vt"])
    with pytest.raises(RecipeError, match=r"model.name: unknown zoo model 'PathGen-CLP'.*Did you mean: PathGen-CLIP"):
        load_recipe("core/quick", ["model.name=zoo:PathGen-CLP"])
    with pytest.raises(RecipeError, match=r"cannot be combined with zoo:PathGen-CLIP"):
        load_recipe("core/quick", ["model.name=zoo:PathGen-CLIP", "model.pretrained=openai"])
    assert load_recipe("core/quick", ["model.name=zoo:PathGen-CLIP"]).model.name == "zoo:PathGen-CLIP"
    assert load_recipe("core/quick", ["model.name=hf-hub:org/model@main"]).model.name.startswith("hf-hub:")


def test_every_caption_needs_a_multi_caption_task():
    with pytest.raises(RecipeError, match=r"data.text_choice is 'all'.*train.task: multi_caption"):
        load_recipe("core/quick", ["data.text_choice=all"])
    recipe = load_recipe("core/quick", ["data.text_choice=all", "train.task=multi_caption",
                                        "loss.name=multi_positive"])
    assert recipe.train.task == "multi_caption"
