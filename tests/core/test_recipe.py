from pathlib import Path

import pytest

from domainclip.core.plugins import UnknownNameError
from domainclip.core.recipe import (
    Recipe,
    RecipeError,
    apply_overrides,
    load_recipe,
    recipe_to_dict,
    resolve_urls,
    save_recipe,
)
from domainclip.core.resources import list_recipes


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_then_yaml_then_overrides(tmp_path):
    path = write(tmp_path, "model: {name: dc-test-vit}\noptim: {lr: 0.01}\ntrain: {steps: 7}\n")
    recipe = load_recipe(path, ["optim.lr=0.5", "train.precision=fp32", "data.batch_size=8"])
    assert recipe.optim.lr == 0.5
    assert recipe.train.steps == 7
    assert recipe.train.precision == "fp32"
    assert recipe.data.batch_size == 8
    assert recipe.optim.weight_decay == Recipe().optim.weight_decay  # untouched default
    assert recipe.source == str(path)


def test_unknown_key_lists_close_matches(tmp_path):
    path = write(tmp_path, "optim: {learning_rate: 0.1, lr: 1}\n")
    with pytest.raises(RecipeError, match=r"unknown key 'learning_rate'"):
        load_recipe(path)
    with pytest.raises(RecipeError, match=r"did you mean lr"):
        load_recipe(write(tmp_path, "optim: {lrr: 0.1}\n", "b.yaml"))


def test_wrong_type_names_the_key_and_file(tmp_path):
    path = write(tmp_path, "train: {steps: many}\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert "train.steps" in str(err.value) and "integer" in str(err.value)
    with pytest.raises(RecipeError, match="train.tensorboard: must be true or false; got 3"):
        load_recipe(path, ["train.steps=3", "train.tensorboard=3"])


def test_choice_and_range_checks(tmp_path):
    path = write(tmp_path, "train: {precision: fp8}\n")
    with pytest.raises(RecipeError, match="train.precision: must be one of fp32, bf16, fp16; got .fp8."):
        load_recipe(path)
    with pytest.raises(RecipeError, match=r"data.batch_size: must be an integer >= 1; got 0"):
        load_recipe(write(tmp_path, "data: {batch_size: 0}\n", "c.yaml"))


def test_missing_shards_are_reported(tmp_path):
    path = write(tmp_path, f"data: {{root: {tmp_path}, train: [{{urls: 'x-{{000000..000001}}.tar'}}]}}\n")
    with pytest.raises(RecipeError, match=r"2 of 2 shard\(s\) missing"):
        load_recipe(path, check_files=True)
    (tmp_path / "x-000000.tar").write_bytes(b"")
    (tmp_path / "x-000001.tar").write_bytes(b"")
    recipe = load_recipe(path, check_files=True)
    assert resolve_urls(recipe, recipe.data.train[0]) == [str(tmp_path / "x-{000000..000001}.tar")]


def test_base_recipe_is_extended(tmp_path):
    write(tmp_path, "model: {name: dc-test-vit}\ntrain: {steps: 11, seed: 3}\n", "base.yaml")
    child = write(tmp_path, "base: base.yaml\ntrain: {steps: 5}\n", "child.yaml")
    recipe = load_recipe(child)
    assert (recipe.train.steps, recipe.train.seed) == (5, 3)


def test_overrides_parse_yaml_values():
    data = apply_overrides({}, ["a.b=[1, 2]", "a.c=null", "d=true"])
    assert load_recipe({"optim": {"lr": "5e-4"}}).optim.lr == 5e-4  # YAML 1.1 reads 5e-4 as a string
    assert data == {"a": {"b": [1, 2], "c": None}, "d": True}
    with pytest.raises(RecipeError, match="expected key=value"):
        apply_overrides({}, ["nonsense"])


def test_unknown_shipped_recipe_lists_matches():
    with pytest.raises(UnknownNameError, match="core/quick"):
        load_recipe("core/quik")


def test_every_shipped_recipe_validates():
    names = list_recipes()
    assert "core/quick" in names
    for name in names:
        recipe = load_recipe(name)
        assert recipe.domain == name.split("/")[0]
        assert recipe.data.train, f"{name} has no training data"


def test_saved_recipe_round_trips(tmp_path):
    recipe = load_recipe("core/quick", ["train.steps=3"])
    path = save_recipe(recipe, tmp_path / "resolved.yaml")
    again = load_recipe(path)
    again.source = recipe.source
    assert recipe_to_dict(again) == recipe_to_dict(recipe)


def test_eval_suite_data_and_options_must_name_listed_suites():
    from domainclip.core.recipe import RecipeError, load_recipe

    base = {"domain": "core", "eval": {"suites": ["core/synthetic"]}}
    ok = load_recipe({**base, "eval": {**base["eval"], "suite_data": {"core/synthetic": "{root}/x"}}})
    assert ok.eval.suite_data == {"core/synthetic": "{root}/x"}
    with pytest.raises(RecipeError, match="eval.options names 'core/other'"):
        load_recipe({**base, "eval": {**base["eval"], "options": {"core/other": {"k": 1}}}})


def test_root_is_substituted_in_strings_inside_list_arguments(tmp_path):
    """``{root}`` in a list argument of a prepare step (``articles: ["{root}/raw"]``) is the data root too."""
    from domainclip.core.prepare import _with_root, step_options
    from domainclip.core.recipe import PrepareStep

    step = PrepareStep("biomed/figures", {"out": "{root}/figs", "articles": ["{root}/raw", "/elsewhere/{root}x"]})
    _, options = step_options(step, tmp_path)
    assert str(options["out"]) == f"{tmp_path}/figs"
    assert [str(a) for a in options["articles"]] == [f"{tmp_path}/raw", f"/elsewhere/{tmp_path}x"]
    assert _with_root({"a": ("{root}", 1), "b": None}, "R") == {"a": ("R", 1), "b": None}
