"""Task registry: core tasks, domain tasks named ``<domain>/<task>``, and task-owned decoders."""

import pytest

from domainclip.core.data.decode import SampleDecoder
from domainclip.core.engine.tasks import Task, get_task, list_tasks
from domainclip.core.plugins import DomainSpec, UnknownNameError, register_domain

#: A domain task with its own decoder, found through a registered domain spec.
TOY_TASK = Task(
    "toy_frames",
    visual_key="video",
    model_kwarg="video",
    make_decoder=lambda preprocess, tokenizer, *, seed, text_choice, frames=4: ("decoder", frames, seed, text_choice),
)


@pytest.fixture
def toy_domain():
    return register_domain(
        DomainSpec(name="toytask", extra="core", description="t", tasks={"frames": f"{__name__}:TOY_TASK"})
    )


def test_domain_tasks_resolve_and_are_listed(toy_domain):
    assert get_task("toytask/frames") is TOY_TASK
    assert "toytask/frames" in list_tasks() and "image_text" in list_tasks()
    with pytest.raises(UnknownNameError, match="toytask/frames"):
        get_task("toytask/frame")
    with pytest.raises(UnknownNameError):
        get_task("nodomain/frames")


def test_build_loader_uses_the_task_decoder_with_recipe_args(toy_domain, monkeypatch, tmp_path):
    from domainclip.core.engine import train as train_mod
    from domainclip.core.engine.distributed import DistInfo
    from domainclip.core.recipe import RecipeError, load_recipe

    seen = {}
    monkeypatch.setattr(
        "domainclip.core.data.reader.build_loader", lambda sources, decoder, **kw: seen.update(d=decoder)
    )
    source = {"domain": "core", "data": {"train": [{"urls": str(tmp_path / "x.tar")}], "decoder_args": {"frames": 9}}}
    recipe = load_recipe(source, check_plugins=False)  # TOY_TASK is not a registered task
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=__import__("torch").device("cpu"))
    train_mod._build_loader(recipe, TOY_TASK, lambda x: x, lambda t: t, info)
    assert seen["d"] == ("decoder", 9, recipe.train.seed, "random")
    train_mod._build_loader(
        load_recipe({"domain": "core", "data": {"train": [{"urls": "x.tar"}]}}),
        get_task("image_text"),
        None,
        None,
        info,
    )
    assert isinstance(seen["d"], SampleDecoder)
    with pytest.raises(RecipeError, match="decoder_args is set but task 'image_text' uses the core decoder"):
        load_recipe(source)  # refused at load, before any loader is built
