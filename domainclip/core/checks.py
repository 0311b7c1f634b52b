"""Recipe checks against the plugins a recipe names, run by :func:`~domainclip.core.recipe.load_recipe`.

Before any data, model or GPU time is spent, every name and option a recipe gives a plugin is
resolved and checked against that plugin's typed signature (:mod:`domainclip.core.options`):

- each ``data.prepare`` step: the command exists and its ``args`` fit its signature;
- a domain tower named in ``model.overrides.domainclip_cfg`` exists and takes the settings given;
- ``train.task`` exists, and ``data.decoder_args`` fit the task's decoder (a task without its own
  decoder takes none);
- ``loss.name`` exists, and ``loss.kwargs`` fit the loss constructor (the engine sets
  ``local_loss``, ``gather_with_grad``, ``rank`` and ``world_size`` itself);
- each ``eval.suites`` entry exists, and ``eval.options`` fit that suite's keyword options.

A mistake raises :class:`~domainclip.core.errors.RecipeError` naming the file, the key and, for an
unknown name or option, the close matches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from domainclip.core.errors import DomainClipError, RecipeError
from domainclip.core.options import DECODER_ENGINE_ARGS, LOSS_ENGINE_ARGS, SUITE_ENGINE_ARGS

if TYPE_CHECKING:
    from domainclip.core.recipe import Recipe

__all__ = [
    "DECODER_ENGINE_ARGS", "LOSS_ENGINE_ARGS", "SUITE_ENGINE_ARGS", "check_model_name", "check_plugins", "check_tower",
]


T = TypeVar("T")


def _at(where: str, key: str, check: Callable[[], T]) -> T:
    """Run ``check``; re-raise a user error as a :class:`RecipeError` naming the file and the recipe key."""
    try:
        return check()
    except RecipeError:
        raise
    except DomainClipError as e:
        raise RecipeError(f"{where}: {key}: {e}") from None


def check_tower(tower_cfg: dict) -> None:
    """The domain tower a model config names exists, and takes every setting given.

    Raises:
        UnknownNameError: an unknown tower or setting (with close matches).
    """
    from domainclip.core.models.registry import get_tower, tower_settings
    from domainclip.core.plugins import UnknownNameError

    name = tower_cfg["tower"]
    known = tower_settings(get_tower(name))
    for key in tower_cfg:
        if key != "tower" and key not in known:
            raise UnknownNameError(f"{name} tower setting", key, known)


def check_model_name(name: str, pretrained: str | None = None) -> None:
    """Check a recipe's ``model.name`` without building anything: a known architecture or zoo name.

    ``hf-hub:`` ids and ``local-dir:`` folders are resolved when the model is built (they may need
    the network or the cache); registry and ``zoo:`` names are checked here, so a typo fails at load.

    Raises:
        UnknownNameError: an unknown architecture or zoo name (close names listed).
        InputError: ``zoo:NAME`` combined with ``pretrained`` (the zoo gives the weights).
    """
    from domainclip.core.errors import InputError
    from domainclip.core.hub import HF_HUB_PREFIX, LOCAL_DIR_PREFIX
    from domainclip.core.models.registry import get_model_config
    from domainclip.core.zoo.registry import ZOO_PREFIX, get_zoo_entry

    if name.startswith(ZOO_PREFIX):
        get_zoo_entry(name)
        if pretrained is not None:
            raise InputError(f"model.pretrained={pretrained!r} cannot be combined with {name}: the zoo has its weights")
    elif not name.startswith((HF_HUB_PREFIX, LOCAL_DIR_PREFIX)):
        get_model_config(name)


def check_plugins(recipe: Recipe, where: str) -> None:
    """Resolve and check every plugin name and option ``recipe`` gives (see the module docstring).

    Raises:
        RecipeError: naming ``where`` (the recipe file), the key and what is wrong.
    """
    from domainclip.core.engine.tasks import get_task
    from domainclip.core.eval.suites import get_suite
    from domainclip.core.losses import check_loss_arguments, loss_arguments
    from domainclip.core.options import check_options
    from domainclip.core.prepare import step_options

    _at(where, "model.name", lambda: check_model_name(recipe.model.name, recipe.model.pretrained))
    for i, step in enumerate(recipe.data.prepare):
        _at(where, f"data.prepare[{i}]", lambda step=step: step_options(step, recipe.data.root))

    tower_cfg = recipe.model.overrides.get("domainclip_cfg")
    if isinstance(tower_cfg, dict) and "tower" in tower_cfg:
        _at(where, "model.overrides.domainclip_cfg", lambda: check_tower(tower_cfg))

    task = _at(where, "train.task", lambda: get_task(recipe.train.task))
    if recipe.data.text_choice == "all" and task.text_choice is None and task.prepare_text is None \
            and task.make_decoder is None:
        raise RecipeError(
            f"{where}: data.text_choice is 'all' (every caption of a sample) but task {task.name!r} trains on one "
            "caption per sample; use train.task: multi_caption (with loss.name: multi_positive), or text_choice "
            "random / first"
        )
    if task.make_decoder is None and recipe.data.decoder_args:
        raise RecipeError(
            f"{where}: data.decoder_args is set but task {task.name!r} uses the core decoder, which takes none"
        )
    if task.make_decoder is not None:
        from domainclip.core.options import option_names

        defaults, takes = type(recipe.data)(), option_names(task.make_decoder)
        for key in ("max_image_pixels", "languages"):
            if getattr(recipe.data, key) != getattr(defaults, key) and key not in takes:
                raise RecipeError(
                    f"{where}: data.{key} is set but task {task.name!r} has its own decoder, which does not take it"
                )
        _at(where, "data.decoder_args", lambda: check_options(
            task.make_decoder, recipe.data.decoder_args, where=f"task {task.name}'s decoder", skip=DECODER_ENGINE_ARGS,
        ))

    _at(where, "loss.name", lambda: loss_arguments(recipe.loss.name))
    for key in recipe.loss.kwargs:
        if key in LOSS_ENGINE_ARGS:
            raise RecipeError(f"{where}: loss.kwargs.{key} is set by the engine; use loss.{key} or leave it out")
    _at(where, "loss.kwargs", lambda: check_loss_arguments(recipe.loss.name, recipe.loss.kwargs))

    for i, name in enumerate(recipe.eval.suites):
        suite = _at(where, f"eval.suites[{i}]", lambda name=name: get_suite(name))
        options = recipe.eval.options.get(name) or {}
        _at(where, f"eval.options[{name!r}]", lambda suite=suite, options=options: check_options(
            suite, options, where="options", skip=SUITE_ENGINE_ARGS, require=False,
        ))
