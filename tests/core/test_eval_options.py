"""Every eval suite's options are typed keyword parameters the recipe check reads from the signature."""

from __future__ import annotations

import pytest

from domainclip.core.errors import InputError
from domainclip.core.eval.suites import get_suite, list_suites
from domainclip.core.options import check_options, options_of
from domainclip.core.recipe import load_recipe

#: The suite protocol's own parameters (core/eval/suites.py::EvalSuite); the rest are options.
PROTOCOL = ("model", "tokenizer", "preprocess", "data", "out_dir", "device", "batch_size")


def check(name: str, options: dict) -> dict:
    return check_options(get_suite(name), options, where=f"eval.options[{name!r}]", skip=PROTOCOL)


@pytest.mark.parametrize("name", list_suites())
def test_every_suite_has_typed_documented_options(name):
    import inspect

    suite = get_suite(name)
    parameters = inspect.signature(suite).parameters
    assert list(parameters)[:3] == ["model", "tokenizer", "preprocess"]
    assert all(parameters[p].kind is inspect.Parameter.KEYWORD_ONLY for p in PROTOCOL[3:])
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    options = options_of(suite, skip=PROTOCOL)  # raises for a missing annotation or Args: entry
    assert all(o.help for o in options)
    assert check(name, {o.name: o.default for o in options if not o.required}) is not None


def test_every_domain_is_covered():
    domains = {name.partition("/")[0] for name in list_suites()}
    assert {"core", "math", "pathology", "surgery"} <= domains


@pytest.mark.parametrize("recipe", ["surgery/quick", "pathology/quick", "math/quick"])
def test_quick_recipes_options_fit_their_suites(recipe):
    loaded = load_recipe(recipe)
    for name, options in loaded.eval.options.items():
        check(name, options or {})


def test_recipe_options_are_converted():
    assert check("surgery/cholec80_phase", {"split": [1, 2, 3, 4], "prompt_style": "descriptive"}) == {
        "split": [1, 2, 3, 4], "prompt_style": "descriptive",
    }
    assert check("pathology/slides", {"top_k": None, "templates": ["{}."]}) == {"top_k": None, "templates": ["{}."]}
    assert check("pathology/pcam", {"split": "valid"}) == {"split": "valid"}


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("surgery/cholec80_phase", {"prompt_styles": "ensemble"}, "unknown option 'prompt_styles'.*prompt_style"),
        ("surgery/cholec80_tool", {"prompt_style": "fancy"}, "must be one of ensemble, descriptive, templates"),
        ("surgery/retrieval", {"num_frames": 0}, "num_frames"),
        ("surgery/retrieval", {"num_workers": -1}, r"num_workers: must be an integer >= 0"),
        ("pathology/pcam", {"split": "tset"}, "must be one of train, valid, test"),
        ("pathology/slides", {"top_k": 0}, "top_k"),
        ("pathology/synthetic", {"top_k": 2.5}, "top_k: must be an integer"),
        ("math/generated", {"size": 10}, r"unknown option 'size'; known: \(none\)"),
        ("core/synthetic", {"batch": 8}, "unknown option 'batch'"),
    ],
)
def test_bad_recipe_options_are_one_line_errors(name, options, message):
    with pytest.raises(InputError, match=message):
        check(name, options)
