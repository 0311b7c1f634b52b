"""The shared pieces of the picture API: any model spelling to a LoadedModel, colours, image grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import domainclip
from domainclip.core.explore import LoadedModel, class_colours, image_grid, resolve_model


def test_every_spelling_gives_the_same_model():
    from_spec = resolve_model("dc-test-vit")
    from_tuple = resolve_model(domainclip.load_model("dc-test-vit"))
    assert resolve_model(from_spec) is from_spec and from_spec.spec == "dc-test-vit"
    images = [Image.fromarray(np.full((40, 40, 3), v, np.uint8)) for v in (0, 128, 255)]
    a, b = from_spec.encode_images(images), from_tuple.encode_images(images)
    torch.testing.assert_close(a, b)
    assert a.shape == (3, 64) and torch.allclose(a.norm(dim=1), torch.ones(3))
    text = from_spec.encode_text(["a red circle", "a blue square"])
    weights = from_spec.text_classifier({"red": ["a red circle", "red"], "blue": ["a blue square"]})
    assert weights.shape == (64, 2) and torch.allclose(weights.norm(dim=0), torch.ones(2))
    torch.testing.assert_close(weights[:, 1], text[1])
    with pytest.raises(TypeError, match="LoadedModel"):
        resolve_model(3)


def test_colours_are_distinct_and_stable():
    for n in (3, 12, 30):
        colours = class_colours(n)
        assert len(set(colours)) == n and colours == class_colours(n)


def test_image_grid_lays_out_captions(tmp_path):
    images = [np.zeros((8, 8, 3), np.uint8)] * 5
    fig = image_grid(images, [f"caption {i}" for i in range(5)], ncols=3, title="t")
    assert len(fig.axes) == 6 and fig.axes[0].get_title() == "caption 0" and not fig.axes[5].images
    fig.savefig(tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 1000
    assert isinstance(resolve_model("dc-test-vit"), LoadedModel)
