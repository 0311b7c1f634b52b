"""The domain contract: every entry of every DomainSpec resolves and has the signature the core expects.

A new domain passes this test by following docs/adding_a_domain.md; it needs no code of its own here.
"""

from __future__ import annotations

import argparse
import inspect
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from domainclip.core.checks import DECODER_ENGINE_ARGS, SUITE_ENGINE_ARGS
from domainclip.core.engine.tasks import Task
from domainclip.core.losses import LOSSES, loss_arguments
from domainclip.core.options import add_options, docstring_summary, options_of
from domainclip.core.plugins import DomainSpec, get_domain, list_domains, resolve
from domainclip.core.recipe import load_recipe
from domainclip.core.resources import list_recipes

REPO = Path(__file__).resolve().parents[1]
DOMAINS = list_domains()


def _entries(kind: str) -> list[tuple[str, str, str]]:
    return [(d, name, target) for d in DOMAINS for name, target in getattr(get_domain(d), kind).items()]


def test_every_domain_is_an_entry_point_with_an_extra():
    declared = {ep.name: ep.value for ep in entry_points(group="domainclip.domains")}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["domainclip.domains"] == declared  # built-ins as third parties
    assert set(DOMAINS) >= set(declared)
    for name in declared:
        spec = get_domain(name)
        assert isinstance(spec, DomainSpec) and spec.name == name
        assert spec.extra in pyproject["project"]["optional-dependencies"], spec.extra
        assert spec.description and spec.papers, name
        assert list_recipes(name), f"{name} ships no recipe"
        assert (REPO / "data_cards" / name).is_dir(), f"{name} has no data cards"


def check_prepare_command(domain: str, name: str, target: str) -> None:
    """A prepare command: a typed, documented @entry_point function of ``out`` with a progress switch."""
    fn = resolve(target)
    assert inspect.isfunction(fn), f"{target} must be a function"
    params = inspect.signature(fn).parameters
    assert "out" in params and params["out"].default is inspect.Parameter.empty
    assert "progress" in params and params["progress"].default is True
    assert inspect.signature(fn).return_annotation in ("dict[str, Any]", dict)
    options = options_of(fn)  # every parameter annotated and documented
    assert docstring_summary(fn), f"{target} has no one-line summary"
    parser = argparse.ArgumentParser(prog=f"domainclip prepare {domain} {name}")
    add_options(parser, fn)
    text = parser.format_help()
    for option in options:
        assert option.flag in text or f"--no-{option.name.replace('_', '-')}" in text
    assert hasattr(fn, "__wrapped__"), f"{target} is not decorated with @entry_point"


@pytest.mark.parametrize(("domain", "name", "target"), _entries("prepare"), ids=lambda x: str(x))
def test_prepare_commands_are_typed_functions(domain, name, target):
    check_prepare_command(domain, name, target)


def check_synthetic(spec: DomainSpec) -> None:
    """The synthetic generator: a prepare command taking out, n, seed, workers and progress."""
    domain = spec.name
    assert spec.synthetic in spec.prepare
    params = inspect.signature(resolve(spec.prepare[spec.synthetic])).parameters
    for name in ("out", "n", "seed", "workers", "progress"):
        assert name in params, f"{domain} synthetic generator lacks {name!r}"


@pytest.mark.parametrize("domain", [d for d in DOMAINS if get_domain(d).synthetic])
def test_synthetic_generators_follow_one_contract(domain):
    check_synthetic(get_domain(domain))


def check_eval_suite(domain: str, name: str, target: str) -> None:
    """An eval suite: the engine's arguments, and typed, documented keyword options (no **kwargs)."""
    suite = resolve(target)
    params = inspect.signature(suite).parameters
    for arg in SUITE_ENGINE_ARGS:
        assert arg in params, f"{target} lacks {arg!r}"
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), f"{target} takes **kwargs"
    options_of(suite, skip=SUITE_ENGINE_ARGS)


@pytest.mark.parametrize(("domain", "name", "target"), _entries("eval_suites"), ids=lambda x: str(x))
def test_eval_suites_take_the_engine_arguments_and_typed_options(domain, name, target):
    check_eval_suite(domain, name, target)


@pytest.mark.parametrize(("domain", "name", "target"), _entries("datasets"), ids=lambda x: str(x))
def test_dataset_adapters_are_documented_classes(domain, name, target):
    cls = resolve(target)
    assert inspect.isclass(cls) and (cls.__doc__ or "").strip()


@pytest.mark.parametrize(("domain", "name", "target"), _entries("tasks"), ids=lambda x: str(x))
def test_tasks_and_their_decoders(domain, name, target):
    task = resolve(target)
    assert isinstance(task, Task) and task.name == f"{domain}/{name}"
    if task.make_decoder is not None:
        options_of(task.make_decoder, skip=DECODER_ENGINE_ARGS)


def check_demo(spec: DomainSpec) -> None:
    """The demo recipe loads with every plugin name and option checked, and belongs to the domain."""
    assert load_recipe(spec.demo).domain == spec.name


@pytest.mark.parametrize("domain", [d for d in DOMAINS if get_domain(d).demo])
def test_demo_recipes_load_with_every_plugin_checked(domain):
    check_demo(get_domain(domain))


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_losses_list_their_arguments(loss):
    args = loss_arguments(loss)
    assert args is None or {"local_loss", "gather_with_grad", "rank", "world_size"} <= set(args)


@pytest.mark.parametrize(("domain", "name", "target"), _entries("towers"), ids=lambda x: str(x))
def test_domain_towers_are_registered_domainclip_subclasses(domain, name, target):
    from domainclip.core.models.registry import DomainCLIP, get_tower

    cls = resolve(target)
    assert inspect.isclass(cls) and issubclass(cls, DomainCLIP) and get_tower(name) is cls
    assert (cls.__doc__ or "").strip()


@pytest.mark.parametrize(("domain", "name", "target"), _entries("model_formats"), ids=lambda x: str(x))
def test_model_formats_are_registered_documented_converters(domain, name, target):
    from domainclip.core.zoo.formats import get_format

    fn = resolve(target)
    assert inspect.isfunction(fn) and get_format(name) is fn
    assert list(inspect.signature(fn).parameters) == ["entry", "folders"]
    assert docstring_summary(fn) and "Args:" in (fn.__doc__ or "")


@pytest.mark.parametrize("domain", DOMAINS)
def test_zoo_entries_parse_and_name_known_formats(domain):
    from domainclip.core.zoo.formats import list_formats
    from domainclip.core.zoo.registry import list_zoo

    for entry in list_zoo(domain):
        assert entry.format in list_formats(), (entry.name, entry.format)
        assert entry.licence and entry.paper and entry.homepage.startswith("https://")
