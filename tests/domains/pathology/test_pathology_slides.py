import numpy as np
import pytest
from PIL import Image

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.plugins import UnknownNameError
from domainclip.domains.pathology.slides import (
    BACKENDS,
    MissingMppError,
    SlideOpenError,
    open_slide,
    read_mpp_table,
)
from domainclip.domains.pathology.tiff import pyramid_levels, write_pyramidal_tiff


def gradient(height, width):
    """An RGB image whose pixels encode their position (smooth, so JPEG keeps it close)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=2).astype(np.uint8)


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory):
    """A 3-level generic TIFF at 0.25 mpp: 1024x768, 512x384, 256x192."""
    path = tmp_path_factory.mktemp("slides") / "pyr.tif"
    image = gradient(768, 1024)
    write_pyramidal_tiff(path, image, 0.25, min_size=300, compression="none")
    return path, image


# --------------------------------------------------------------------------- tiff writer
def test_pyramid_levels_halve_until_below_min_size():
    shapes = [level.shape for level in pyramid_levels(np.zeros((800, 1000, 3), np.uint8), min_size=256)]
    assert shapes == [(800, 1000, 3), (400, 500, 3), (200, 250, 3)]
    assert len(pyramid_levels(np.zeros((100, 200, 3), np.uint8), min_size=256)) == 1
    block = np.array([[[0, 10, 255], [2, 10, 255]], [[4, 11, 255], [6, 11, 254]]], np.uint8)
    assert pyramid_levels(block, min_size=2)[1].tolist() == [[[3, 11, 255]]]  # rounded 2x2 mean


@pytest.mark.parametrize("backend", ["openslide", "tiffslide"])
def test_written_pyramid_opens_with_levels_and_mpp(pyramid, backend):
    path, image = pyramid
    with open_slide(path, backend=backend) as slide:
        assert slide.level_count == 3
        assert slide.level_dimensions == ((1024, 768), (512, 384), (256, 192))
        assert slide.level_downsamples == (1.0, 2.0, 4.0)
        assert slide.mpp == pytest.approx(0.25)
        assert slide.vendor == "generic-tiff"
        levels = pyramid_levels(image, min_size=300)
        for k in range(3):  # lossless file: every level is exactly what the writer computed
            w, h = slide.level_dimensions[k]
            assert np.array_equal(np.asarray(slide.read_region((0, 0), k, (w, h))), levels[k])


def test_jpeg_pyramid_is_close_and_write_is_atomic(tmp_path):
    image = gradient(600, 700)
    path = write_pyramidal_tiff(tmp_path / "j.tif", image, 0.5, min_size=256, quality=95)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.tif"]  # no temporary file left
    with open_slide(path) as slide:
        assert slide.level_count == 3 and slide.mpp == pytest.approx(0.5)
        read = np.asarray(slide.read_region((0, 0), 0, (700, 600))).astype(int)
        assert np.abs(read - image).mean() < 2.0


def test_writer_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_pyramidal_tiff(tmp_path / "a.tif", np.zeros((10, 10, 3), np.float32), 0.5)
    with pytest.raises(ValueError, match="mpp"):
        write_pyramidal_tiff(tmp_path / "a.tif", np.zeros((10, 10, 3), np.uint8), -1.0)
    with pytest.raises(UnknownNameError, match="jpeg"):
        write_pyramidal_tiff(tmp_path / "a.tif", np.zeros((10, 10, 3), np.uint8), 0.5, compression="jpg2")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- mpp
def test_missing_mpp_error_and_overrides(tmp_path):
    path = write_pyramidal_tiff(tmp_path / "nompp.tif", gradient(300, 300), None)
    with pytest.raises(MissingMppError) as err:
        open_slide(path)
    message = str(err.value)
    assert "nompp.tif" in message and "--slide-mpp" in message and "--mpp-csv" in message
    with open_slide(path, mpp=0.3) as slide:
        assert slide.mpp == 0.3 and slide.mpp_source == "user"
        assert slide.level_mpp(1) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="positive"):
        open_slide(path, mpp=0.0)
    with open_slide(path, require_mpp=False) as slide:
        assert slide.mpp is None and slide.mpp_source is None
        with pytest.raises(MissingMppError):
            slide.best_level_for_mpp(0.5)


def test_user_mpp_overrides_the_slide(pyramid):
    with open_slide(pyramid[0], mpp=0.5) as slide:
        assert slide.mpp == 0.5 and slide.best_level_for_mpp(1.0) == 1


def test_best_level_for_mpp(pyramid):
    with open_slide(pyramid[0]) as slide:  # level mpps 0.25, 0.5, 1.0
        assert slide.best_level_for_mpp(0.5) == 1
        assert slide.best_level_for_mpp(0.75) == 1
        assert slide.best_level_for_mpp(1.0) == 2
        assert slide.best_level_for_mpp(8.0) == 2
        assert slide.best_level_for_mpp(0.1) == 0  # level 0 is already coarser: read it
        assert slide.best_level_for_mpp(0.4990) == 1  # within the default 1 % tolerance
        assert slide.best_level_for_mpp(0.4990, tolerance=0.0) == 0
        with pytest.raises(ValueError):
            slide.best_level_for_mpp(0.0)


def test_read_mpp_table(tmp_path):
    good = tmp_path / "mpp.csv"
    good.write_text("slide_id,mpp\nA,0.25\n\nB,0.5\n")
    assert read_mpp_table(good) == {"A": 0.25, "B": 0.5}
    by_path = tmp_path / "paths.csv"
    by_path.write_text("path,MPP\n/data/TCGA-1.abc.svs,0.2527\nrel/B.tif,0.5\n")
    assert read_mpp_table(by_path) == {"TCGA-1.abc": 0.2527, "B": 0.5}
    bad = tmp_path / "bad.csv"
    bad.write_text("slide,mpp\nA,0.25\nB,zero\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3.*'zero'"):
        read_mpp_table(bad)
    negative = tmp_path / "neg.csv"
    negative.write_text("slide_id,mpp\nA,-1\n")
    with pytest.raises(ValueError, match=r"neg\.csv:2"):
        read_mpp_table(negative)
    no_column = tmp_path / "nocol.csv"
    no_column.write_text("name,resolution\nA,0.25\n")
    with pytest.raises(ValueError, match=r"nocol\.csv.*'mpp'"):
        read_mpp_table(no_column)
    twice = tmp_path / "twice.csv"
    twice.write_text("slide_id,mpp\nA,0.25\nA,0.5\n")
    with pytest.raises(ValueError, match=r"twice\.csv:3.*two mpp values"):
        read_mpp_table(twice)
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        read_mpp_table(tmp_path / "absent.csv")


def test_mpp_table_mistakes_are_input_errors_naming_the_file(tmp_path):
    cases = {
        "empty.csv": (b"", "mpp table {} is empty; expected a header"),
        "header.csv": (b"slide_id,mpp\n\n", "mpp table {} has a header but no rows"),
        "wrong.csv": (b"a,b\nx,1\n", "mpp table {}: expected a header with an id column"),
        "word.csv": (b"slide_id,mpp\nA,abc\n", "{}:2: mpp 'abc' of 'A' is not a positive number"),
        "latin.csv": (b"slide_id,mpp\ncaf\xe9,0.5\n", "mpp table {} is not UTF-8 text"),
        "huge.csv": (b"slide_id,mpp\n" + b"A" * 200_000 + b",0.5\n", "mpp table {} is not a readable CSV file"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputError) as caught:
            read_mpp_table(path)
        assert str(caught.value).startswith(message.format(path)), (name, str(caught.value))
        assert isinstance(caught.value, ValueError)
    with pytest.raises(InputNotFoundError, match="absent.csv does not exist"):
        read_mpp_table(tmp_path / "absent.csv")
    with pytest.raises(InputError, match="must be a positive number of microns per pixel; got -1"):
        open_slide(tmp_path / "any.tif", mpp=-1)


# --------------------------------------------------------------------------- reading
def test_read_array_matches_read_region_and_uses_tifffile(pyramid):
    with open_slide(pyramid[0]) as slide:
        assert slide.backend == "openslide" and slide.array_backend == "tifffile"
        for level in range(slide.level_count):
            for location in [(0, 0), (100, 36), (-64, -32), (900, 700)]:
                a = slide.read_array(location, level, (150, 120))
                b = np.asarray(slide.read_region(location, level, (150, 120)))
                assert a.shape == (120, 150, 3) and np.array_equal(a, b)
        outside = slide.read_array((-64, -32), 0, (100, 100))
        assert (outside[:32] == 255).all() and (outside[:, :64] == 255).all()  # off-slide is white
    with open_slide(pyramid[0], fast_arrays=False) as slide:
        assert slide.array_backend == "openslide"


def test_thumbnail_keeps_aspect_ratio(pyramid):
    with open_slide(pyramid[0]) as slide:
        thumb = slide.get_thumbnail(200)
        assert thumb.mode == "RGB" and thumb.size == (200, 150)
        level2 = slide.read_region((0, 0), 2, (256, 192)).resize((200, 150), Image.Resampling.LANCZOS)
        assert np.array_equal(np.asarray(thumb), np.asarray(level2))


def test_open_errors_name_the_file(tmp_path):
    with pytest.raises(SlideOpenError, match="absent.svs.*does not exist"):
        open_slide(tmp_path / "absent.svs")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    for backend in ["auto", "openslide", "tiffslide"]:
        with pytest.raises(SlideOpenError, match="junk.tif") as err:
            open_slide(junk, backend=backend)
        assert err.value.path == junk
    with pytest.raises(UnknownNameError, match="tiffslide"):
        open_slide(junk, backend="tiffslid")
    assert set(BACKENDS) >= {"openslide", "tiffslide"}


# --------------------------------------------------------------------------- real files
@pytest.mark.real_data
def test_openslide_and_tiffslide_agree_on_cmu(shared_data):
    path = shared_data / "pathology" / "CMU-1-Small-Region.svs"
    infos, regions = {}, {}
    for backend in ["openslide", "tiffslide"]:
        with open_slide(path, backend=backend, fast_arrays=False) as slide:
            infos[backend] = slide.info()
            regions[backend] = np.asarray(slide.read_region((2100, 2850), 0, (224, 224)))
    assert infos["openslide"].pop("backend") == "openslide" and infos["tiffslide"].pop("backend") == "tiffslide"
    assert infos["openslide"] == infos["tiffslide"]
    info = infos["openslide"]
    assert info["vendor"] == "aperio" and info["slide_id"] == "CMU-1-Small-Region"
    assert info["level_count"] == 1 and info["level_dimensions"] == [[2220, 2967]]
    assert info["mpp"] == pytest.approx(0.499) and info["objective_power"] == 20.0
    assert np.array_equal(regions["openslide"], regions["tiffslide"])
    assert (regions["openslide"][-100:, -100:] == 255).all()  # beyond the 2220x2967 slide
    assert regions["openslide"][:50, :50].std() > 0  # real pixels inside


@pytest.mark.real_data
def test_broken_and_small_svs(shared_data):
    broken = shared_data / "pathology" / "broken.svs"
    with pytest.raises(SlideOpenError) as err:
        open_slide(broken)
    assert "broken.svs" in str(err.value) and "openslide" in err.value.reason and "tiffslide" in err.value.reason
    with open_slide(shared_data / "pathology" / "small.svs") as slide:
        assert slide.dimensions == (16, 16) and slide.mpp == pytest.approx(0.499)
        assert slide.read_region((0, 0), 0, (16, 16)).size == (16, 16)
        assert np.array_equal(slide.read_array((0, 0), 0, (16, 16)), np.asarray(slide.read_region((0, 0), 0, (16, 16))))


def test_tile_reader_with_a_tiny_cache_and_jpeg_tiles(tmp_path):
    from domainclip.domains.pathology.slides import TiffTileReader

    path = write_pyramidal_tiff(tmp_path / "j.tif", gradient(700, 900), 0.5, min_size=300, tile=128, quality=80)
    rng = np.random.default_rng(0)
    with open_slide(path) as slide:
        reader = TiffTileReader(path, slide.level_dimensions, cache_bytes=1)  # evicts after every tile
        try:
            for _ in range(20):
                level = int(rng.integers(0, slide.level_count))
                scale = int(slide.level_downsamples[level])
                x, y = (int(v) * scale for v in rng.integers(-50, 500, 2))
                size = tuple(int(v) for v in rng.integers(1, 300, 2))
                expected = np.asarray(slide.read_region((x, y), level, size))
                assert np.array_equal(reader.read((x, y), level, size, scale), expected)
                assert np.array_equal(slide.read_array((x, y), level, size), expected)
        finally:
            reader.close()
    with pytest.raises(ValueError, match="differ"):
        TiffTileReader(path, ((900, 700),))
