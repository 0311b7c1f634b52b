"""The QC thumbnail of ``prepare pathology patches``: the slide's own colours, the mask as an outline,
the kept patches as boxes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from domainclip.domains.pathology.patching import (
    MASK_OUTLINE_COLOR,
    PATCH_BOX_COLOR,
    PatchLocation,
    write_thumbnail,
)
from domainclip.domains.pathology.tissue import TissueMask

PINK, GLASS = (232, 160, 205), (245, 245, 245)


def _slide_view() -> tuple[np.ndarray, np.ndarray]:
    """A 200x300 view: glass with a pink tissue block (rows 40-159, cols 60-239) holding a glass hole
    (rows 90-109, cols 140-159) that the mask fills, as tissue detection fills small holes."""
    view = np.full((200, 300, 3), GLASS, dtype=np.uint8)
    view[40:160, 60:240] = PINK
    view[90:110, 140:160] = GLASS
    mask = np.zeros((200, 300), dtype=bool)
    mask[40:160, 60:240] = True
    return view, mask


def test_thumbnail_outlines_the_mask_and_keeps_the_slide_colours(tmp_path):
    view, mask = _slide_view()
    tissue = TissueMask(mask=mask, downsample=4.0, threshold=0.1, level0_size=(1200, 800), image=view)
    boxes = [PatchLocation(x0=400, y0=240, level=0, read_size=200, size0=200, tissue_fraction=1.0)]
    png = write_thumbnail(tmp_path / "t.png", tissue, boxes)
    out = np.asarray(Image.open(png).convert("RGB"))
    assert out.shape == view.shape
    # the outline: the mask's edge pixels, inside the mask (1 pixel wide at this size)
    for y, x in ((40, 100), (159, 100), (100, 60), (100, 239)):
        assert tuple(out[y, x]) == MASK_OUTLINE_COLOR
    assert tuple(out[41, 100]) == PINK and tuple(out[100, 61]) == PINK
    # tissue far from the outline and the boxes keeps its colour, and the filled hole shows its glass
    assert tuple(out[130, 100]) == PINK and tuple(out[60, 220]) == PINK
    assert tuple(out[100, 150]) == GLASS
    # outside the mask nothing changes
    assert tuple(out[10, 10]) == tuple(out[39, 100]) == tuple(out[100, 59]) == GLASS
    changed = np.any(out != view, axis=-1)
    # the patch: level-0 (400, 240) size 200 is thumbnail (100, 60) to (149, 109), a box outline
    box = np.zeros_like(changed)
    box[60, 100:150] = box[109, 100:150] = box[60:110, 100] = box[60:110, 149] = True
    assert all(tuple(out[y, x]) == PATCH_BOX_COLOR for y, x in zip(*np.nonzero(box)))
    assert tuple(out[85, 125]) == PINK  # inside the box
    outline = np.zeros_like(changed)
    outline[40:160, 60:240] = True
    outline[41:159, 61:239] = False
    assert np.array_equal(changed, outline | box)


@pytest.mark.parametrize("side", [1024, 2048])
def test_outline_width_grows_with_the_thumbnail(tmp_path, side):
    view = np.full((side, side, 3), GLASS, dtype=np.uint8)
    view[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = PINK
    mask = np.all(view == PINK, axis=-1)
    tissue = TissueMask(mask=mask, downsample=1.0, threshold=0.1, level0_size=(side, side), image=view)
    out = np.asarray(Image.open(write_thumbnail(tmp_path / "t.png", tissue, [], max_size=side)).convert("RGB"))
    row = out[side // 2]
    width = side // 512
    edge = side // 4
    assert all(tuple(row[edge + i]) == MASK_OUTLINE_COLOR for i in range(width))
    assert tuple(row[edge + width]) == PINK and tuple(row[edge - 1]) == GLASS
