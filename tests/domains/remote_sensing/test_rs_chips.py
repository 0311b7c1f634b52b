import importlib.util
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from rasterio.windows import Window

from domainclip.core.errors import InputError, NothingWrittenError
from domainclip.core.prepare import parse_prepare_args
from domainclip.domains.remote_sensing.chips import (
    KEPT_COLOUR,
    SKIPPED_COLOUR,
    _row_reads,
    chip_grid,
    iter_chips,
    prepare_chips,
)
from domainclip.domains.remote_sensing.raster import (
    Stretch,
    band_masks,
    nodata_pixels,
    open_raster,
    scene_stretch,
)

_spec = importlib.util.spec_from_file_location("rs_data_raster_chips", Path(__file__).with_name("data_raster.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


def read_samples(folder: Path) -> dict[str, dict[str, bytes]]:
    """Every sample of every shard in ``folder``: key -> {suffix: bytes}."""
    samples: dict[str, dict[str, bytes]] = {}
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, _, suffix = member.name.partition(".")
                samples.setdefault(key, {})[suffix] = tar.extractfile(member).read()
    return samples


def direct_chip(path: Path, meta: dict) -> np.ndarray:
    """The chip read directly: one read of its window, stretched by the stretch in its metadata."""
    window = Window(**meta["window"])
    with open_raster(path) as ds:
        data = ds.read(meta["bands"], window=window)
        valid = band_masks(ds, meta["bands"], data, window=window)
    return Stretch(tuple(meta["stretch"]["low"]), tuple(meta["stretch"]["high"])).apply(data, valid)


class RecordingDataset:
    """A rasterio dataset that records the windows of its reads."""

    def __init__(self, dataset):
        self._dataset = dataset
        self.windows: list[Window] = []

    def __getattr__(self, name):
        return getattr(self._dataset, name)

    def read(self, *args, window=None, **kwargs):
        self.windows.append(window)
        return self._dataset.read(*args, window=window, **kwargs)


# --------------------------------------------------------------------------- the grid and the reads
def test_chip_grid_keeps_chips_entirely_inside():
    tops, lefts = chip_grid(718, 791, 128, 128)
    assert list(tops) == [0, 128, 256, 384, 512] and list(lefts) == [0, 128, 256, 384, 512, 640]
    tops, lefts = chip_grid(100, 100, 40, 30)
    assert list(tops) == [0, 30, 60] and list(lefts) == [0, 30, 60]
    assert list(chip_grid(30, 100, 40, 40)[0]) == []


def test_row_reads_are_block_aligned_and_read_each_row_once():
    reads = _row_reads(1000, 64, range(0, 1000 - 100 + 1, 100), 100, every_row=False)
    assert reads[0] == (0, 128) and reads[-1][1] == 1000
    assert all(start % 64 == 0 and (stop % 64 == 0 or stop == 1000) for start, stop in reads)
    assert all(a[1] <= b[0] for a, b in zip(reads, reads[1:]))
    # chips 50 apart, 20 high: the rows between chip rows that fall in blocks of their own are not read
    sparse = _row_reads(1000, 16, range(0, 1000 - 20 + 1, 50), 20, every_row=False)
    assert sum(stop - start for start, stop in sparse) < 700
    full = _row_reads(1000, 16, range(0, 1000 - 20 + 1, 50), 20, every_row=True)
    assert full[0][0] == 0 and full[-1][1] == 1000 and all(a[1] == b[0] for a, b in zip(full, full[1:]))


@pytest.mark.parametrize("tile, size, stride", [(64, 50, 50), (64, 64, 32), (32, 40, 70), (None, 48, 48)])
def test_block_aligned_chips_equal_direct_reads(tmp_path, tile, size, stride):
    path = tmp_path / "scene.tif"
    fx.write_scene(path, 300, 260, 4, tile=tile)
    bands = (4, 3, 2)
    with open_raster(path) as ds:
        stretch = scene_stretch(ds, bands)
        block_height = ds.block_shapes[0][0]
        recording = RecordingDataset(ds)
        chips = list(iter_chips(recording, bands, stretch, size, stride))
    tops, lefts = chip_grid(300, 260, size, stride)
    assert [(c.window.row_off, c.window.col_off) for c in chips] == [(y, x) for y in tops for x in lefts]
    assert [(c.row, c.col) for c in chips] == [(r, c) for r in range(len(tops)) for c in range(len(lefts))]
    for chip in chips:
        meta = {"window": {"col_off": chip.window.col_off, "row_off": chip.window.row_off, "width": size,
                           "height": size}, "bands": list(bands),
                "stretch": {"low": stretch.low, "high": stretch.high}}
        assert chip.image.shape == (size, size, 3) and chip.image.flags.c_contiguous
        assert (chip.image == direct_chip(path, meta)).all()
    # whole block rows across the full width, each row at most once
    rows = [(w.row_off, w.row_off + w.height) for w in recording.windows]
    assert all(w.col_off == 0 and w.width == 260 for w in recording.windows)
    assert all(start % block_height == 0 and (stop % block_height == 0 or stop == 300) for start, stop in rows)
    assert all(a[1] <= b[0] for a, b in zip(rows, rows[1:]))


def test_nodata_fraction_and_skipped_chips(tmp_path):
    path = tmp_path / "scene.tif"
    fx.write_scene(path, 200, 200, 3)
    nodata = fx.collar(200, 200)
    with open_raster(path) as ds:
        chips = list(iter_chips(ds, (1, 2, 3), scene_stretch(ds, (1, 2, 3)), 50, 50, max_nodata=0.2))
    for chip in chips:
        y, x = chip.window.row_off, chip.window.col_off
        expected = nodata[y : y + 50, x : x + 50].mean()
        assert chip.nodata_fraction == pytest.approx(expected)
        assert (chip.image is None) == (expected > 0.2)
    assert sum(c.image is None for c in chips) == 3  # the corner chip and its two neighbours


# --------------------------------------------------------------------------- the command
def test_chip_metadata_finds_the_chip_on_the_map(tmp_path):
    scene = tmp_path / "in" / "scene_a.tif"
    scene.parent.mkdir()
    fx.write_scene(scene, 300, 260, 4)
    out = tmp_path / "chips"
    summary = prepare_chips(out, [str(scene)], size=64, stride=48, preset="sentinel2", max_nodata=0.5,
                            progress=False)
    samples = read_samples(out)
    assert len(samples) == summary["num_chips"] == summary["scenes"][0]["chips_kept"] > 0
    with rasterio.open(scene) as ds:
        scene_transform, crs = ds.transform, ds.crs
    for key, sample in samples.items():
        meta = json.loads(sample["json"])
        window = meta["window"]
        assert key == f"scene_a_r{meta['row']:04d}_c{meta['col']:04d}"
        assert (window["row_off"], window["col_off"]) == (meta["row"] * 48, meta["col"] * 48)
        assert meta["source"] == str(scene) and meta["bands"] == [4, 3, 2] and meta["epsg"] == 32633
        assert rasterio.crs.CRS.from_wkt(meta["crs"]) == crs
        chip_transform = Affine(*meta["transform"])
        # the chip's bounds are its transform applied to its own pixel corners ...
        left, top = chip_transform @ (0, 0)
        right, bottom = chip_transform @ (window["width"], window["height"])
        assert meta["bounds"] == pytest.approx([left, bottom, right, top])
        # ... and the scene's transform applied to its window
        assert (left, top) == pytest.approx(scene_transform @ (window["col_off"], window["row_off"]))
        assert Affine(*meta["scene_transform"]) == scene_transform
        assert rasterio.transform.rowcol(scene_transform, left + 5, top - 5) == (window["row_off"], window["col_off"])
        assert right - left == pytest.approx(64 * 10) and top - bottom == pytest.approx(64 * 10)
        image = np.asarray(Image.open(io.BytesIO(sample["png"])))
        assert (image == direct_chip(scene, meta)).all()
        assert meta["nodata_fraction"] <= 0.5


def test_stretch_is_computed_once_per_scene(tmp_path):
    path = tmp_path / "halves.tif"
    pixels = fx.scene_pixels(128, 256, 3, seed=1)
    pixels[:, :, 128:] += 20000  # the right half is much brighter
    fx.write_geotiff(path, pixels, crs=fx.CRS, transform=fx.TRANSFORM, nodata=0, tile=64)
    out = tmp_path / "chips"
    summary = prepare_chips(out, [str(path)], size=128, progress=False)
    metas = {json.loads(s["json"])["col"]: (json.loads(s["json"]), np.asarray(Image.open(io.BytesIO(s["png"]))))
             for s in read_samples(out).values()}
    (left, dark), (right, bright) = metas[0], metas[1]
    assert left["stretch"] == right["stretch"] == summary["scenes"][0]["stretch"]
    with open_raster(path) as ds:
        expected = scene_stretch(ds, (1, 2, 3))
    assert tuple(left["stretch"]["low"]) == expected.low and tuple(left["stretch"]["high"]) == expected.high
    # one stretch for both halves: the dark half stays dark; a per-chip stretch would span 0..255 in both
    assert dark.mean() < 60 and bright.mean() > 195
    assert dark.max() < 128 and bright.min() > 128


def test_real_landsat_scenes(shared_data, tmp_path):
    folder = shared_data / "remote_sensing"
    out = tmp_path / "chips"
    summary = prepare_chips(out, [str(folder)], size=128, max_nodata=0.1, image_format="jpg", progress=False)
    big, = summary["scenes"]
    assert big["key"] == "RGB_byte" and big["epsg"] == 32618 and big["dtype"] == "uint8"
    assert big["chips_kept"] + big["chips_nodata"] == 5 * 6
    skipped, = summary["skipped"]
    assert skipped["reason"] == "too_small" and "79x71 pixels, smaller than one 128-pixel chip" in skipped["error"]
    with rasterio.open(folder / "RGB.byte.tif") as ds:
        nodata = ~(ds.read() != 0).any(axis=0)
    fractions = [nodata[y : y + 128, x : x + 128].mean() for y in range(0, 590, 128) for x in range(0, 664, 128)]
    assert big["chips_kept"] == sum(f <= 0.1 for f in fractions) and summary["chips_skipped_nodata"] == sum(
        f > 0.1 for f in fractions)
    metas = [json.loads(s["json"]) for s in read_samples(out).values()]
    assert all(m["epsg"] == 32618 and m["nodata_fraction"] <= 0.1 for m in metas)
    assert all(set(s) == {"jpg", "json"} for s in read_samples(out).values())
    # the tenth-resolution copy: a CRS without an EPSG code
    small = prepare_chips(tmp_path / "small", [str(folder / "rgb-byte-tenth.tif")], size=32, max_nodata=1.0,
                          progress=False)
    meta = json.loads(next(iter(read_samples(tmp_path / "small").values()))["json"])
    assert small["num_chips"] == 4 and meta["epsg"] is None and "UTM Zone 18" in meta["crs"]


def test_preview_shows_the_scene_with_kept_and_skipped_chips(tmp_path):
    path = tmp_path / "scene.tif"
    fx.write_scene(path, 300, 400, 3)
    out = tmp_path / "chips"
    summary = prepare_chips(out, [str(path)], size=50, max_nodata=0.0, progress=False)
    preview = np.asarray(Image.open(out / "previews" / "scene.png"))
    assert summary["scenes"][0]["preview"] == str(out / "previews" / "scene.png")
    assert preview.shape == (300, 400, 3)  # at most PREVIEW_SIZE: shown whole
    assert summary["scenes"][0]["chips_nodata"] > 0 and summary["num_chips"] > 0
    kept = [json.loads(s["json"])["window"] for s in read_samples(out).values()]
    for w in kept:  # a box's corner is drawn in the kept colour; inside it, the stretched scene
        assert tuple(preview[w["row_off"], w["col_off"]]) == KEPT_COLOUR
    with open_raster(path) as ds:
        data = ds.read([1, 2, 3])
        valid = band_masks(ds, (1, 2, 3), data)
        scene = scene_stretch(ds, (1, 2, 3)).apply(data, valid)
    inside = preview[275:295, 360:390]  # below the last chip row and right of the last chip column: no box there
    assert (inside == scene[275:295, 360:390]).all()
    skipped_pixels = (preview == SKIPPED_COLOUR).all(axis=2)
    assert skipped_pixels[:100, :100].sum() > 100  # crossed boxes over the nodata corner
    # a large scene is decimated by a whole step to at most 1024 pixels: every third row and column here
    big = tmp_path / "big.tif"
    pixels = fx.write_scene(big, 1100, 2100, 3, tile=256, with_collar=False)
    prepare_chips(tmp_path / "big_chips", [str(big)], size=512, progress=False)
    small = np.asarray(Image.open(tmp_path / "big_chips" / "previews" / "big.png"))
    assert small.shape == (367, 700, 3)
    with open_raster(big) as ds:
        stretch = scene_stretch(ds, (1, 2, 3))
    assert (small[200, 520:670] == stretch.apply(pixels[:, 600:601, 1560:2010:3])[0]).all()  # between boxes


def test_a_batch_skips_broken_and_empty_scenes_and_writes_the_others(tmp_path):
    good = tmp_path / "good.tif"
    fx.write_scene(good, 128, 128, 3)
    broken = fx.write_not_a_raster(tmp_path / "broken.tif")
    damaged = fx.write_damaged(tmp_path / "damaged.tif")
    empty = fx.write_all_nodata(tmp_path / "empty.tif")
    out = tmp_path / "chips"
    summary = prepare_chips(out, [str(p) for p in (good, broken, damaged, empty)], size=64, max_nodata=0.3,
                            progress=False)
    assert summary["skipped_by_reason"] == {"all_nodata": 1, "read_error": 1, "unreadable": 1}
    reasons = {Path(s["path"]).name: (s["reason"], s["error"]) for s in summary["skipped"]}
    assert reasons["broken.tif"][1].startswith(f"{broken} is not a raster GDAL can read")
    assert reasons["damaged.tif"][1].startswith(f"{damaged}: ")
    assert reasons["empty.tif"][1] == f"{empty}: every pixel of bands [1, 2, 3] is nodata"
    assert summary["num_scenes_ok"] == 1 and summary["num_chips"] == 3  # the top-left chip is mostly collar
    assert sorted(p.name for p in out.iterdir()) == ["chips-summary.json", "good-000000.tar", "good-index.json",
                                                     "previews"]
    assert json.loads((out / "chips-summary.json").read_text())["skipped_by_reason"] == summary["skipped_by_reason"]


def test_nothing_written_is_one_error_counting_the_reasons(tmp_path):
    empty = fx.write_all_nodata(tmp_path / "empty.tif")
    corner = tmp_path / "corner.tif"
    fx.write_scene(corner, 64, 64, 3)
    with pytest.raises(NothingWrittenError) as info:
        prepare_chips(tmp_path / "o", [str(empty), str(corner)], size=64, progress=False)
    message = str(info.value)
    assert message.startswith("remote_sensing/chips wrote no chips from 2 scenes: ")
    assert "all_nodata: 1 (e.g. " in message and f"no_chip: 1 (e.g. {corner}: all 1 chips have more than 0%" in message


def test_bad_arguments(tmp_path):
    path = tmp_path / "s.tif"
    fx.write_scene(path, 64, 64, 3)
    with pytest.raises(InputError, match="lower percentile must be below"):
        prepare_chips(tmp_path / "o", [str(path)], stretch=(98.0, 2.0), progress=False)
    with pytest.raises(InputError, match="not both"):
        prepare_chips(tmp_path / "o", [str(path)], bands=[1, 2, 3], preset="rgb", progress=False)
    with pytest.raises(InputError, match="stretch"):
        prepare_chips(tmp_path / "o", [str(path)], stretch=(2.0, 101.0), progress=False)
    with pytest.raises(InputError, match="preset"):
        prepare_chips(tmp_path / "o", [str(path)], preset="sentinel3", progress=False)
    with pytest.raises(NothingWrittenError, match=r"bad_band: 1 \(e\.g\. .*s\.tif has no band 4: it has 3 bands"):
        prepare_chips(tmp_path / "o", [str(path)], size=32, preset="sentinel2", progress=False)


def test_command_line_options():
    command, options, overwrite = parse_prepare_args("remote_sensing", "chips", [
        "--out", "o", "--scenes", "a.tif", "b/", "--size", "256", "--stride", "128", "--bands", "4", "3", "2",
        "--stretch", "1", "99.5", "--max-nodata", "0.25", "--image-format", "jpg", "--no-previews"])
    assert command.__name__ == "prepare_chips" and not overwrite
    assert options["scenes"] == ["a.tif", "b/"] and options["bands"] == [4, 3, 2]
    assert list(options["stretch"]) == [1.0, 99.5] and options["stride"] == 128 and options["max_nodata"] == 0.25
    assert options["previews"] is False and options["image_format"] == "jpg"
    _, options, _ = parse_prepare_args("remote_sensing", "chips", ["--out", "o", "--scenes", "a.tif", "--preset",
                                                                   "landsat8"])
    assert options["preset"] == "landsat8" and options["bands"] is None and options["stride"] is None


def test_float_and_masked_scenes(tmp_path):
    f32 = tmp_path / "reflectance.tif"
    fx.write_scene(f32, 128, 128, 3, dtype="float32", nodata=float("nan"))
    masked = tmp_path / "masked.tif"
    _, valid = fx.write_masked_scene(masked, 128, 128)
    out = tmp_path / "chips"
    summary = prepare_chips(out, [str(f32), str(masked)], size=64, max_nodata=0.3, progress=False)
    kept = {s["key"]: s["chips_kept"] for s in summary["scenes"]}
    expected = sum((~valid)[y : y + 64, x : x + 64].mean() <= 0.3 for y in (0, 64) for x in (0, 64))
    assert kept == {"reflectance": expected, "masked": expected} and expected == 3
    for sample in read_samples(out).values():
        meta = json.loads(sample["json"])
        assert (np.asarray(Image.open(io.BytesIO(sample["png"]))) == direct_chip(Path(meta["source"]), meta)).all()


@pytest.mark.slow
def test_output_is_the_same_for_any_worker_count(tmp_path):
    scenes = []
    for i in range(3):
        scenes.append(tmp_path / f"s{i}.tif")
        fx.write_scene(scenes[-1], 160, 200, 3, seed=i)
    one = prepare_chips(tmp_path / "one", list(map(str, scenes)), size=64, max_nodata=0.5, progress=False)
    two = prepare_chips(tmp_path / "two", list(map(str, scenes)), size=64, max_nodata=0.5, workers=2, progress=False)
    assert one["shards"] == two["shards"] and one["num_chips"] == two["num_chips"] > 0
    for name in one["shards"]:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_nodata_pixels_are_black_in_chips(tmp_path):
    path = tmp_path / "scene.tif"
    fx.write_scene(path, 100, 100, 3)
    with open_raster(path) as ds:
        chip = next(iter_chips(ds, (1, 2, 3), scene_stretch(ds, (1, 2, 3)), 100, 100))
        data = ds.read([1, 2, 3])
        gaps = nodata_pixels(band_masks(ds, (1, 2, 3), data), (100, 100))
    assert (chip.image[gaps] == 0).all() and chip.image[~gaps].mean() > 60
    assert chip.nodata_fraction == pytest.approx(gaps.mean())
