import importlib.util
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.plugins import UnknownNameError
from domainclip.domains.remote_sensing.raster import (
    BAND_PRESETS,
    BandError,
    BandPreset,
    EmptySceneError,
    RasterError,
    Stretch,
    band_masks,
    nodata_pixels,
    open_raster,
    read_image,
    scene_stretch,
    select_bands,
    write_geotiff,
)

_spec = importlib.util.spec_from_file_location("rs_data_raster", Path(__file__).with_name("data_raster.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


def reference_stretch(values, valid, low, high):
    """The stretch written out independently: linear from [low, high] to [0, 255], rounded, nodata 0."""
    scaled = np.clip((values.astype(np.float64) - low) / (high - low) * 255.0, 0, 255)
    return np.where(valid, np.rint(scaled), 0).astype(np.uint8)


# --------------------------------------------------------------------------- bands
def test_band_presets_match_the_sensors_true_colour_bands():
    assert set(BAND_PRESETS) == set(get_args(BandPreset))
    # Sentinel-2 stacked B1..B8, B8A, B9..B12 (torchgeo's all_bands): B4, B3, B2 are bands 4, 3, 2
    assert BAND_PRESETS["sentinel2"] == (4, 3, 2)
    assert BAND_PRESETS["landsat8"] == BAND_PRESETS["landsat9"] == (4, 3, 2)  # OLI: band 1 is coastal aerosol
    assert BAND_PRESETS["landsat7"] == BAND_PRESETS["landsat5"] == (3, 2, 1)  # ETM+ and TM: B3, B2, B1
    assert BAND_PRESETS["rgb"] == (1, 2, 3)


def test_select_bands_defaults_presets_and_grey():
    assert select_bands("x.tif", 3) == (1, 2, 3)
    assert select_bands("x.tif", 13) == (1, 2, 3)
    assert select_bands("x.tif", 1) == (1, 1, 1)
    assert select_bands("x.tif", 13, preset="sentinel2") == (4, 3, 2)
    assert select_bands("x.tif", 8, preset="landsat7") == (3, 2, 1)
    assert select_bands("x.tif", 5, [5]) == (5, 5, 5)
    assert select_bands("x.tif", 5, [5, 4, 1]) == (5, 4, 1)


def test_select_bands_refuses_a_band_the_file_lacks_in_one_line_naming_it():
    with pytest.raises(BandError) as info:
        select_bands("scenes/a.tif", 3, [4, 3, 2])
    message = str(info.value)
    assert message == "scenes/a.tif has no band 4: it has 3 bands (numbered 1 to 3)"
    assert info.value.reason == "bad_band" and isinstance(info.value, InputError)
    with pytest.raises(BandError, match="has no band 0"):
        select_bands("a.tif", 3, [0, 1, 2])
    with pytest.raises(BandError, match="has no band 4: it has 1 band "):
        select_bands("a.tif", 1, preset="sentinel2")
    with pytest.raises(BandError, match="has 2 bands: say which"):
        select_bands("a.tif", 2)
    with pytest.raises(InputError, match="give 3 band numbers"):
        select_bands("a.tif", 4, [1, 2])
    with pytest.raises(InputError, match="not both"):
        select_bands("a.tif", 4, [1, 2, 3], preset="rgb")
    with pytest.raises(UnknownNameError, match="sentinel2"):
        select_bands("a.tif", 4, preset="sentinal2")


# --------------------------------------------------------------------------- opening
def test_open_raster_refuses_a_non_raster_and_a_missing_file_in_one_line(tmp_path):
    bad = fx.write_not_a_raster(tmp_path / "notes.tif")
    with pytest.raises(RasterError) as info, open_raster(bad):
        pass
    assert str(info.value).startswith(f"{bad} is not a raster GDAL can read (")
    assert "\n" not in str(info.value) and str(bad) not in str(info.value)[len(str(bad)):]
    with pytest.raises(InputNotFoundError, match="does not exist"), open_raster(tmp_path / "absent.tif"):
        pass


def test_read_image_of_a_non_raster_or_a_missing_band_raises(tmp_path):
    with pytest.raises(RasterError, match="is not a raster"):
        read_image(fx.write_not_a_raster(tmp_path / "notes.tif"))
    path = tmp_path / "s.tif"
    fx.write_scene(path, 40, 50, 4)
    with pytest.raises(BandError, match="has no band 5: it has 4 bands"):
        read_image(path, bands=(5, 4, 3))


# --------------------------------------------------------------------------- nodata
def test_band_masks_from_nodata_value_internal_mask_and_nan(tmp_path):
    u16 = tmp_path / "u16.tif"
    pixels = fx.write_scene(u16, 80, 100, 3)
    expected = ~fx.collar(80, 100)
    with open_raster(u16) as ds:
        data = ds.read([1, 2, 3])
        valid = band_masks(ds, (1, 2, 3), data)
        assert valid.shape == (3, 80, 100)
        assert (valid == expected).all()
        window = Window(10, 20, 30, 15)
        part = ds.read([3], window=window)
        assert (band_masks(ds, (3,), part, window=window)[0] == expected[20:35, 10:40]).all()
    assert (pixels[:, ~expected] == 0).all()

    masked = tmp_path / "masked.tif"
    _, mask = fx.write_masked_scene(masked, 90, 70)
    with open_raster(masked) as ds:
        assert ds.nodata is None
        data = ds.read([1, 2, 3])
        assert (band_masks(ds, (1, 2, 3), data) == mask).all()
        assert (nodata_pixels(band_masks(ds, (1, 2, 3), data), (90, 70)) == ~mask).all()

    f32 = tmp_path / "f32.tif"
    fx.write_scene(f32, 60, 60, 3, dtype="float32", nodata=float("nan"))
    with open_raster(f32) as ds:
        data = ds.read([1, 2, 3])
        assert (band_masks(ds, (1, 2, 3), data) == ~fx.collar(60, 60)).all()

    plain = tmp_path / "plain.tif"
    fx.write_scene(plain, 30, 30, 3, nodata=None)
    with open_raster(plain) as ds:
        data = ds.read([1, 2, 3])
        assert band_masks(ds, (1, 2, 3), data) is None
        assert not nodata_pixels(None, (30, 30)).any()


# --------------------------------------------------------------------------- stretch
def test_stretch_of_the_real_landsat_scene_leaves_nodata_out(shared_data):
    path = shared_data / "remote_sensing" / "RGB.byte.tif"
    image = read_image(path)
    with rasterio.open(path) as ds:
        data = ds.read()
    assert image.shape == (718, 791, 3) and image.dtype == np.uint8
    valid = data != 0
    for band in range(3):
        values = data[band][valid[band]]
        low, high = np.percentile(values, (2, 98))
        assert low > 0  # with the collar's zeros counted, the 2nd percentile would be 0
        assert (image[..., band] == reference_stretch(data[band], valid[band], low, high)).all()
    assert (image[~valid.any(axis=0)] == 0).all()
    # the grey view of one band
    grey = read_image(path, bands=[2])
    assert (grey[..., 0] == grey[..., 2]).all() and (grey[..., 0] == image[..., 1]).all()


@pytest.mark.parametrize("dtype, nodata", [("uint16", 0), ("uint8", 0), ("float32", float("nan"))])
def test_read_image_is_the_per_band_percentile_stretch(tmp_path, dtype, nodata):
    path = tmp_path / f"{dtype}.tif"
    pixels = fx.write_scene(path, 70, 90, 4, dtype=dtype, nodata=nodata)
    image = read_image(path, bands=(4, 2, 1), stretch=(1.0, 99.0))
    valid = ~fx.collar(70, 90)
    for channel, band in enumerate((4, 2, 1)):
        values = pixels[band - 1][valid]
        low, high = np.percentile(values.astype(np.float64), (1.0, 99.0))
        expected = reference_stretch(np.nan_to_num(pixels[band - 1]), valid, low, high)
        assert (image[..., channel] == expected).all(), (dtype, band)
    assert image[valid].min() == 0 and image[valid].max() == 255


def test_lookup_table_and_float_paths_give_the_same_bytes():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 65535, (3, 50, 60)).astype(np.uint16)
    stretch = Stretch.from_pixels(values, None, (2.0, 98.0))
    as_float = Stretch.from_pixels(values.astype(np.float32), None, (2.0, 98.0))
    assert stretch.low == pytest.approx(as_float.low) and stretch.high == pytest.approx(as_float.high)
    for i in range(3):  # the histogram percentiles are numpy's (linear interpolation)
        assert stretch.low[i] == pytest.approx(np.percentile(values[i], 2.0))
        assert stretch.high[i] == pytest.approx(np.percentile(values[i], 98.0))
    assert (stretch.apply(values) == stretch.apply(values.astype(np.float32))).all()
    small = values[:, :10, :10].astype(np.uint8)
    assert (stretch.apply(small) == stretch.apply(small.astype(np.float64))).all()


def test_constant_band_and_partial_nodata():
    data = np.stack([np.full((4, 4), 7, np.uint16), np.arange(16, dtype=np.uint16).reshape(4, 4)])
    stretch = Stretch.from_pixels(data, None)
    out = stretch.apply(data)
    assert (out[..., 0] == 0).all()  # a constant band is black, not a division by zero
    valid = np.ones_like(data, bool)
    valid[1, 0, 0] = False
    out = Stretch.from_pixels(data, valid).apply(data, valid)
    assert out[0, 0, 1] == 0 and out[3, 3, 1] == 255
    with pytest.raises(ValueError, match="no pixel with data"):
        Stretch.from_pixels(data, np.zeros_like(data, bool))


def test_scene_stretch_is_computed_from_sampled_blocks_and_leaves_nodata_out(tmp_path):
    path = tmp_path / "big.tif"
    pixels = fx.write_scene(path, 512, 640, 3, tile=64)
    valid = ~fx.collar(512, 640)
    with open_raster(path) as ds:
        whole = scene_stretch(ds, (1, 2, 3))
        sampled = scene_stretch(ds, (1, 2, 3), max_pixels=64 * 64 * 20)
    assert whole.statistics == "all pixels"
    assert sampled.statistics == "20 of 80 blocks"
    for band in range(3):
        low, high = np.percentile(pixels[band][valid], (2, 98))
        assert whole.low[band] == pytest.approx(low) and whole.high[band] == pytest.approx(high)
        # a quarter of the blocks, spread over the scene, estimates the percentiles within a tenth of the range
        spread = high - low
        assert abs(sampled.low[band] - low) < 0.1 * spread and abs(sampled.high[band] - high) < 0.1 * spread
        assert sampled.low[band] > 0  # the collar's zeros are not in the sample's statistics


def test_scene_stretch_of_strips_and_of_a_scene_with_data_only_outside_the_sample(tmp_path):
    striped = tmp_path / "striped.tif"
    pixels = fx.write_scene(striped, 1000, 600, 3, tile=None, with_collar=False)
    with open_raster(striped) as ds:
        strip = ds.block_shapes[0]
        stretch = scene_stretch(ds, (1, 2, 3), max_pixels=300_000)
    assert strip[1] == 600 and strip[0] < 10  # strips of a few rows, read some at a time
    picked, _, total, _ = stretch.statistics.split()
    assert stretch.statistics.endswith(" blocks") and 16 <= int(picked) < int(total)
    assert abs(stretch.high[2] - np.percentile(pixels[2], 98)) < 0.1 * np.ptp(pixels[2])

    sparse = tmp_path / "sparse.tif"
    pixels = np.zeros((3, 640, 640), np.uint16)
    pixels[:, 200:210, 330:340] = np.arange(1, 101, dtype=np.uint16).reshape(10, 10)
    write_geotiff(sparse, pixels, crs=fx.CRS, transform=fx.TRANSFORM, nodata=0, tile=64)
    with open_raster(sparse) as ds:
        stretch = scene_stretch(ds, (1, 2, 3), max_pixels=64 * 64 * 16)
    assert "then every block" in stretch.statistics
    assert stretch.low[0] == pytest.approx(np.percentile(np.arange(1, 101), 2))

    empty = fx.write_all_nodata(tmp_path / "empty.tif", 256, 256)
    with open_raster(empty) as ds, pytest.raises(EmptySceneError, match="every pixel of bands"):
        scene_stretch(ds, (1, 2, 3), max_pixels=32 * 32 * 16)
    with pytest.raises(EmptySceneError) as info:
        read_image(empty)
    assert info.value.reason == "all_nodata" and str(empty) in str(info.value)


# --------------------------------------------------------------------------- writing
def test_write_geotiff_round_trips_pixels_and_georeferencing(tmp_path):
    pixels = fx.scene_pixels(100, 120, 4)
    path = write_geotiff(tmp_path / "out.tif", pixels, crs="EPSG:32618", transform=fx.TRANSFORM, nodata=0,
                         tile=32, overviews=(2, 4))
    with rasterio.open(path) as ds:
        assert (ds.read() == pixels).all()
        assert ds.crs.to_epsg() == 32618 and tuple(ds.transform)[:6] == fx.TRANSFORM and ds.nodata == 0
        assert ds.block_shapes[0] == (32, 32) and ds.overviews(1) == [2, 4] and ds.compression.value == "DEFLATE"
    grey = write_geotiff(tmp_path / "grey.tif", pixels[0], crs="EPSG:4326", transform=(1, 0, 0, 0, -1, 90),
                         tile=None, compress=None)
    with rasterio.open(grey) as ds:
        assert ds.count == 1 and (ds.read(1) == pixels[0]).all() and ds.block_shapes[0][1] == 120
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.tif", "out.tif"]  # no temporary file left
    with pytest.raises(ValueError, match="multiple of 16"):
        write_geotiff(tmp_path / "x.tif", pixels, crs="EPSG:4326", transform=fx.TRANSFORM, tile=20)
