"""Zero-shot land-cover maps: a generated scene whose quadrants a colour-lookup model knows, so the map is exact."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from domainclip.core.errors import InputError, InputNotFoundError, OutputExistsError
from domainclip.core.explore import LoadedModel, class_colours
from domainclip.domains.remote_sensing.chips import SceneTooSmallError
from domainclip.domains.remote_sensing.explore import (
    NODATA_CLASS,
    landcover_map,
    plot_landcover_map,
    write_landcover_geotiff,
)
from domainclip.domains.remote_sensing.raster import BandError, RasterError, write_geotiff

pytest.importorskip("rasterio")

CRS = "EPSG:32633"
TRANSFORM = (10.0, 0.0, 500000.0, 0.0, -10.0, 6000000.0)
#: Colour name -> the 8-bit RGB of its quadrant after the scene's 2-98 % stretch (levels 10 and 200 become 0 and 255).
PALETTE = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}
CLASSES = ["yellow", "red", "blue", "green"]  # not the palette's order: labels must follow this one


class ColourLookup(nn.Module):
    """A CLIP-like model that knows four colours: an image's embedding leans to the palette colour nearest its mean."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("palette", torch.tensor(list(PALETTE.values()), dtype=torch.float32) / 255)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)), requires_grad=False)

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        mean = images.mean(dim=(2, 3))  # (N, 3)
        closeness = torch.exp(-8 * torch.cdist(mean, self.palette) ** 2)
        return nn.functional.normalize(closeness, dim=1) if normalize else closeness

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return nn.functional.one_hot(tokens, len(PALETTE)).float()


def _tokenize(texts: list[str]) -> torch.Tensor:
    names = list(PALETTE)
    return torch.tensor([next(i for i, n in enumerate(names) if re.search(rf"\b{n}\b", t)) for t in texts])


def _preprocess(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)


@pytest.fixture
def lookup() -> LoadedModel:
    return LoadedModel(ColourLookup().eval(), _preprocess, _tokenize, torch.device("cpu"), "colour-lookup")


def write_quadrants(path, *, crs=CRS, transform=TRANSFORM, height=160, width=140):
    """A 3-band uint8 scene: quadrants red, green (top), blue, yellow (bottom) in rows 0-127, columns 0-127;
    rows 128 and below are nodata (0), columns 128 and beyond (no whole chip) repeat the right quadrants."""
    pixels = np.zeros((3, height, width), np.uint8)
    levels = {name: [200 if v else 10 for v in rgb] for name, rgb in PALETTE.items()}
    for (r0, c0), name in zip([(0, 0), (0, 64), (64, 0), (64, 64)], ["red", "green", "blue", "yellow"]):
        pixels[:, r0:r0 + 64, c0:width if c0 else 64] = np.array(levels[name], np.uint8)[:, None, None]
    pixels[:, 128:] = 0
    write_geotiff(path, pixels, crs=crs, transform=transform, nodata=0, tile=None)
    return path


EXPECTED = np.array([[1, 1, 3, 3], [1, 1, 3, 3], [2, 2, 0, 0], [2, 2, 0, 0], [-1, -1, -1, -1]])


def test_quadrants_give_the_expected_map(tmp_path, lookup):
    scene = write_quadrants(tmp_path / "quadrants.tif")
    result = landcover_map(scene, lookup, CLASSES, chip_px=32, progress=False)
    assert result.classes == tuple(CLASSES) and result.shape == (5, 4)
    np.testing.assert_array_equal(result.labels, EXPECTED)
    known = result.labels >= 0
    np.testing.assert_allclose(result.probabilities[known].sum(axis=1), 1.0, atol=1e-5)
    assert (result.probabilities[known].max(axis=1) > 0.9).all()
    assert np.isnan(result.probabilities[~known]).all()
    np.testing.assert_array_equal(result.nodata_fraction, np.repeat([[0.0], [0.0], [0.0], [0.0], [1.0]], 4, axis=1))
    assert result.transform == (320.0, 0.0, 500000.0, 0.0, -320.0, 6000000.0)
    assert result.bounds() == (500000.0, 6000000.0 - 5 * 320, 500000.0 + 4 * 320, 6000000.0)
    assert "32633" in result.crs and result.bands == (1, 2, 3) and result.model == "colour-lookup"
    assert result.prompts["red"][0] == "a satellite photo of red." and len(result.prompts["red"]) == 5
    assert result.preview.shape == (160, 140, 3) and tuple(result.preview[10, 10]) == PALETTE["red"]
    assert result.class_fractions() == {"yellow": 0.25, "red": 0.25, "blue": 0.25, "green": 0.25}


def test_overlapping_chips_are_centred_cells(tmp_path, lookup):
    scene = write_quadrants(tmp_path / "quadrants.tif")
    result = landcover_map(scene, lookup, {c: [f"{c} land"] for c in CLASSES}, chip_px=32, stride=16,
                           max_nodata=0.5, progress=False, batch_size=5)
    assert result.shape == (9, 7)
    # a cell is 16 px wide, centred on its chip: the grid starts 8 px in
    assert result.transform == (160.0, 0.0, 500080.0, 0.0, -160.0, 5999920.0)
    # chips straddling two quadrants: the colour mean is between, the nearest still one of them; the chip at
    # rows 16-47 and columns 0-31 lies inside the red quadrant
    assert result.labels[1, 0] == 1 and result.labels[1, 5] == 3 and result.labels[6, 0] == 2
    # the chip at rows 112-143 is half nodata (kept), the one at 128-159 all nodata
    assert result.nodata_fraction[7, 0] == 0.5 and result.labels[7, 0] == 2 and (result.labels[8] == -1).all()
    assert result.prompts == {c: [f"{c} land"] for c in CLASSES}


def test_geotiff_reads_back_aligned(tmp_path, lookup):
    import rasterio

    result = landcover_map(write_quadrants(tmp_path / "q.tif"), lookup, CLASSES, chip_px=32, progress=False)
    out = write_landcover_geotiff(result, tmp_path / "out" / "map.tif")
    with rasterio.open(out) as src, rasterio.open(tmp_path / "q.tif") as scene:
        assert src.crs == scene.crs and src.count == 1 and src.dtypes[0] == "uint8"
        assert tuple(src.transform)[:6] == result.transform and src.nodata == NODATA_CLASS
        values = src.read(1)
        np.testing.assert_array_equal(values, np.where(EXPECTED >= 0, EXPECTED, NODATA_CLASS))
        # cell (2, 3) is yellow, and its centre is over the scene's yellow quadrant
        x, y = src.xy(2, 3)
        row, col = scene.index(x, y)
        assert tuple(scene.read(window=((row, row + 1), (col, col + 1)))[:, 0, 0]) == (200, 200, 10)
        assert json.loads(src.tags()["classes"]) == CLASSES and src.tags(1)["class_2"] == "blue"
        colours = src.colormap(1)
        assert colours[1] == (*(round(255 * v) for v in class_colours(4)[1]), 255)
        assert colours[NODATA_CLASS][3] == 0
    assert [p.name for p in out.parent.iterdir()] == ["map.tif"]  # nothing left over from the atomic write
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_landcover_geotiff(result, out)
    write_landcover_geotiff(result, out, overwrite=True)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_scene_without_crs_maps_in_pixels(tmp_path, lookup):
    import rasterio

    scene = write_quadrants(tmp_path / "plain.tif", crs=None, transform=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0))
    result = landcover_map(scene, lookup, CLASSES, chip_px=32, progress=False)
    np.testing.assert_array_equal(result.labels, EXPECTED)
    assert result.crs is None and result.transform == (32.0, 0.0, 0.0, 0.0, 32.0, 0.0)
    out = write_landcover_geotiff(result, tmp_path / "plain-map.tif")
    with rasterio.open(out) as src:
        assert src.crs is None and tuple(src.transform)[:6] == result.transform
    fig = plot_landcover_map(result)
    assert fig.axes[0].get_xlabel() == "column (pixels)"


def test_plot_draws_classes_over_the_scene(tmp_path, lookup):
    result = landcover_map(write_quadrants(tmp_path / "q.tif"), lookup, CLASSES, chip_px=32, progress=False)
    fig = plot_landcover_map(result, alpha=0.6)
    ax = fig.axes[0]
    preview, overlay = ax.images
    assert preview.get_extent() == [500000.0, 501400.0, 5998400.0, 6000000.0]
    rgba = overlay.get_array()
    assert rgba.shape == (5, 4, 4) and np.allclose(rgba[0, 0, :3], class_colours(4)[1])
    assert rgba[0, 0, 3] == pytest.approx(0.6) and (rgba[4, :, 3] == 0).all()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["yellow (25%)", "red (25%)", "blue (25%)", "green (25%)", "no data (20% of chips)"]
    assert ax.get_xlabel() == "easting (metre)"
    fig.savefig(tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 5000


def test_user_errors(tmp_path, lookup):
    scene = write_quadrants(tmp_path / "q.tif")
    with pytest.raises(InputNotFoundError, match="does not exist"):
        landcover_map(tmp_path / "missing.tif", lookup, CLASSES, progress=False)
    (tmp_path / "notes.tif").write_text("not a raster\n")
    with pytest.raises(RasterError, match="not a raster"):
        landcover_map(tmp_path / "notes.tif", lookup, CLASSES, progress=False)
    with pytest.raises(SceneTooSmallError, match="140x160 pixels, smaller than one 256-pixel chip"):
        landcover_map(scene, lookup, CLASSES, chip_px=256, progress=False)
    with pytest.raises(BandError, match="has no band 4"):
        landcover_map(scene, lookup, CLASSES, bands=[4, 3, 2], progress=False)
    for classes, message in (([], "classes is empty"), (["red", "red"], "'red' is given twice"),
                             ("red", "not one string"), ({"red": []}, "'red' has no prompt")):
        with pytest.raises(InputError, match=message):
            landcover_map(scene, lookup, classes, progress=False)
    with pytest.raises(InputError, match="no '\\{\\}'"):
        landcover_map(scene, lookup, CLASSES, templates=["a photo"], progress=False)
    with pytest.raises(InputError, match="at most 255 classes"):
        landcover_map(scene, lookup, [f"c{i}" for i in range(256)], progress=False)
    with pytest.raises(InputError, match="chip_px must be a positive integer"):
        landcover_map(scene, lookup, CLASSES, chip_px=0, progress=False)
    with pytest.raises(InputError, match="max_nodata"):
        landcover_map(scene, lookup, CLASSES, max_nodata=2.0, progress=False)


@pytest.mark.real_data
def test_landsat_scene(shared_data, tmp_path, lookup):
    import rasterio

    path = shared_data / "remote_sensing" / "RGB.byte.tif"
    result = landcover_map(path, lookup, CLASSES, chip_px=64, progress=False)
    with rasterio.open(path) as scene:
        assert result.shape == (scene.height // 64, scene.width // 64) == (11, 12)
        assert result.transform == tuple(scene.transform * scene.transform.scale(64))[:6]
        assert scene.crs.to_epsg() == 32618
    # the rotated swath leaves nodata corners; the middle of the scene is classified
    assert result.labels[0, 0] == -1 and result.nodata_fraction[0, 0] > 0.5 and result.labels[5, 6] >= 0
    assert 0 < (result.labels >= 0).mean() < 1
    out = write_landcover_geotiff(result, tmp_path / "landsat-map.tif")
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 32618 and tuple(src.transform)[:6] == result.transform
        np.testing.assert_array_equal(src.read(1), np.where(result.labels >= 0, result.labels, NODATA_CLASS))


@pytest.mark.real_data
def test_a_model_spec_on_the_tenth_scene(shared_data):
    path = shared_data / "remote_sensing" / "rgb-byte-tenth.tif"
    result = landcover_map(path, "dc-test-vit", ["water", "forest", "farmland"], chip_px=16, progress=False)
    assert result.shape == (71 // 16, 79 // 16) and result.model == "dc-test-vit"
    known = result.labels >= 0
    assert known.any()
    np.testing.assert_array_equal(result.labels[known], result.probabilities[known].argmax(axis=1))
    with pytest.raises(SceneTooSmallError):
        landcover_map(path, "dc-test-vit", ["water"], chip_px=100, progress=False)
