"""The direct tile reader on Aperio JPEG 2000 slides, and its decoding threads and prefetching.

Slides are generated (:func:`write_pyramidal_tiff`, ``compression="jpeg2000"`` writes an Aperio SVS
layout with RGB JPEG 2000 tiles, compression 33005); OpenSlide's ``read_region`` is the reference.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from domainclip.core.errors import InputError
from domainclip.domains.pathology.patching import PatchSpec, iter_patch_arrays, plan_patches, read_patch
from domainclip.domains.pathology.slides import TiffTileReader, open_slide
from domainclip.domains.pathology.tiff import write_pyramidal_tiff


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """H&E-coloured noise on glass: the left fifth is glass, so a tissue mask has something to reject."""
    rng = np.random.default_rng(seed)
    image = np.clip(np.array([200.0, 120.0, 175.0]) + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    image[:, : width // 5] = 242
    return image


@pytest.fixture(scope="module")
def jp2k_slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("jp2k") / "tiny.svs"
    return write_pyramidal_tiff(path, _texture(600, 760), 0.5, tile=128, min_size=200, compression="jpeg2000",
                                quality=38)


def test_jpeg2000_slide_is_aperio_and_read_directly_with_openslides_pixels(jp2k_slide):
    import openslide

    handle = openslide.OpenSlide(str(jp2k_slide))
    reference = open_slide(jp2k_slide, fast_arrays=False)  # OpenSlide's read_region, composited on white
    try:
        assert handle.properties["openslide.vendor"] == "aperio" and reference.array_backend == "openslide"
        assert handle.level_dimensions == ((760, 600), (380, 300), (190, 150))
        with open_slide(jp2k_slide) as slide:
            assert slide.array_backend == "tifffile" and slide.mpp == pytest.approx(0.5)
            # inside, across tile edges, over the slide's right/bottom edge, outside, and on reduced levels
            for location, level, size in [((0, 0), 0, (128, 128)), ((100, 90), 0, (300, 200)),
                                          ((700, 550), 0, (100, 80)), ((-20, -10), 0, (64, 64)),
                                          ((900, 0), 0, (10, 10)), ((64, 32), 1, (250, 200)),
                                          ((0, 0), 2, (190, 150))]:
                expected = np.asarray(reference.read_region(location, level, size))
                assert np.array_equal(slide.read_array(location, level, size), expected), (location, level, size)
    finally:
        handle.close()
        reference.close()


@pytest.mark.parametrize("threads", [2, 5])
def test_threads_and_prefetching_give_the_serial_bytes(jp2k_slide, threads):
    spec = PatchSpec(mpp=0.5, size=96, min_tissue=0.5)
    with open_slide(jp2k_slide, decode_threads=1) as slide:
        locations = plan_patches(slide, None, spec)
        serial = [(loc, np.asarray(image)) for loc, image in iter_patch_arrays(slide, locations, spec, block=256)]
        reference = {(loc.x0, loc.y0): np.asarray(read_patch(slide, loc, spec)) for loc in locations[::7]}
    assert len(serial) == len(locations) == 42
    with open_slide(jp2k_slide, decode_threads=threads) as slide:
        parallel = [(loc, np.asarray(image)) for loc, image in iter_patch_arrays(slide, locations, spec, block=256)]
    assert [loc for loc, _ in parallel] == [loc for loc, _ in serial]
    assert all(a.tobytes() == b.tobytes() for (_, a), (_, b) in zip(parallel, serial))
    found = {(loc.x0, loc.y0): array for loc, array in serial}
    assert all(np.array_equal(found[key], expected) for key, expected in reference.items())


def test_prefetched_tiles_never_read_and_a_tiny_cache_keep_the_pixels(jp2k_slide, monkeypatch):
    import domainclip.domains.pathology.slides as slides

    monkeypatch.setattr(slides, "_MAX_PENDING", 3)  # forces prefetched tiles into the cache early
    with open_slide(jp2k_slide, decode_threads=1) as slide:
        expected = [slide.read_array((x, 40), 0, (200, 150)) for x in (0, 300, 500)]
        levels = slide.level_dimensions
    reader = TiffTileReader(jp2k_slide, levels, cache_bytes=1, threads=3)
    try:
        assert reader.threads == 3
        reader.prefetch(0, (0, 0, 760, 600))  # the whole level, most of it never read
        reader.prefetch(1, (-50, -50, 10_000, 10_000))  # clipped to the level
        reader.prefetch(0, (800, 0, 900, 100))  # outside the level: nothing
        got = [reader.read((x, 40), 0, (200, 150), 1.0) for x in (0, 300, 500)]
        assert all(np.array_equal(a, b) for a, b in zip(got, expected))
        reader.prefetch(0, (0, 0, 10, 10))  # one tile: first takes all but _MAX_PENDING in-flight tiles
        assert len(reader._pending) <= 3 + 1
    finally:
        reader.close()
    with pytest.raises(ValueError, match="threads"):
        TiffTileReader(jp2k_slide, levels, threads=0)


def test_patch_slides_on_jpeg2000_matches_openslide_reads(jp2k_slide, tmp_path):
    import io
    import tarfile

    from PIL import Image

    from domainclip.domains.pathology.patching import patch_slides

    spec = PatchSpec(mpp=0.5, size=112, min_tissue=0.5)
    summary = patch_slides([jp2k_slide], tmp_path / "out", spec, thumbnails=False, image_format="png", progress=False)
    assert summary["slides"][0]["array_backend"] == "tifffile"
    with open_slide(jp2k_slide, fast_arrays=False) as slide:  # OpenSlide's own read_region
        images = {}
        with tarfile.open(tmp_path / "out" / "patches-000000.tar") as tar:
            for member in tar.getmembers():
                if member.name.endswith(".png"):
                    images[member.name] = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())))
        assert len(images) == summary["num_patches"] > 10
        for name, array in images.items():
            x0, y0 = (int(v) for v in name[: -len(".png")].split("_")[-2:])
            expected = np.asarray(slide.read_region((x0, y0), 0, (112, 112)))
            assert np.array_equal(array, expected), name


def test_decode_threads_below_one_is_a_user_error(jp2k_slide):
    with pytest.raises(InputError, match="decode_threads"):
        open_slide(jp2k_slide, decode_threads=0)


def _members(shard) -> list[tuple[str, bytes]]:
    import tarfile

    with tarfile.open(shard) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def test_patch_slides_shards_do_not_depend_on_threads(jp2k_slide, tmp_path):
    from domainclip.domains.pathology.patching import patch_slides

    spec = PatchSpec(mpp=0.5, size=64, min_tissue=0.5)
    shards = {}
    for threads in (1, 3):
        out = tmp_path / f"t{threads}"
        summary = patch_slides([jp2k_slide], out, spec, thumbnails=False, threads=threads, max_count=40,
                               progress=False)
        assert summary["num_patches"] > 40  # several shards
        shards[threads] = {p.name: _members(p) for p in sorted(out.glob("*.tar"))}
    assert shards[1] == shards[3] and len(shards[1]) >= 2  # same members, same order, same bytes
    with pytest.raises(InputError, match="threads"):
        patch_slides([jp2k_slide], tmp_path / "bad", spec, threads=0, progress=False)


def test_cli_threads_flag_is_checked_and_used(jp2k_slide, tmp_path, capsys):
    from domainclip.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["prepare", "pathology", "patches", "--slides", str(jp2k_slide), "--out", str(tmp_path / "bad"),
              "--threads", "0"])
    assert caught.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith("argument --threads: must be an integer >= 1; got 0")
    main(["prepare", "pathology", "patches", "--slides", str(jp2k_slide), "--out", str(tmp_path / "ok"),
          "--threads", "2", "--size", "128", "--no-thumbnails", "--no-progress"])
    summary = json.loads((tmp_path / "ok" / "patches-summary.json").read_text())
    assert summary["num_patches"] > 0 and summary["slides"][0]["array_backend"] == "tifffile"
