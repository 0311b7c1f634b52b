import io
import json
import tarfile
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from domainclip.core.errors import InputError, NothingWrittenError
from domainclip.core.plugins import UnknownNameError
from domainclip.core.prepare import parse_prepare_args
from domainclip.domains.pathology.patching import (
    PatchLocation,
    PatchSpec,
    find_slides,
    iter_patch_arrays,
    patch_slides,
    plan_patches,
    prepare_patches,
    read_patch,
)
from domainclip.domains.pathology.slides import open_slide
from domainclip.domains.pathology.tiff import write_pyramidal_tiff
from domainclip.domains.pathology.tissue import TissueMask, detect_tissue

PINK = np.array([220, 120, 180])


def tissue_image(height, width, seed=0):
    """Glass with one textured pink tissue ellipse in the middle."""
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(243, 3, (height, width, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    inside = ((yy - height / 2) / (0.4 * height)) ** 2 + ((xx - width / 2) / (0.4 * width)) ** 2 < 1
    tissue = np.clip(PINK + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    image[inside] = tissue[inside]
    return image


def read_shards(folder):
    """key -> {suffix: bytes} over every shard in ``folder``."""
    samples = defaultdict(dict)
    for path in sorted(folder.glob("*.tar")):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                key, _, suffix = member.name.partition(".")
                samples[key][suffix] = tar.extractfile(member).read()
    return dict(samples)


def annotate_even_columns(slide_id, x0, y0, size0):
    """Caption the patches of even grid columns, drop the others (picklable: module level)."""
    if (x0 // size0) % 2:
        return None
    return {"text": [f"{slide_id} patch", "tissue"], "label": 1, "meta": {"column": x0 // size0}}


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    root = tmp_path_factory.mktemp("patching")
    # a 3-level pyramid at 0.25 mpp: level mpps 0.25, 0.5, 1.0
    pyramid = write_pyramidal_tiff(root / "pyr.tif", tissue_image(1536, 2048), 0.25, min_size=600, quality=92)
    second = write_pyramidal_tiff(root / "second.tif", tissue_image(1024, 1024, seed=1), 0.5, min_size=300)
    nompp = write_pyramidal_tiff(root / "nompp.tif", tissue_image(1024, 1024, seed=2), None, min_size=300)
    return {"pyramid": pyramid, "second": second, "nompp": nompp}


# --------------------------------------------------------------------------- planning
def test_spec_validation():
    with pytest.raises(ValueError, match="overlap"):
        PatchSpec(size=224, overlap=224)
    with pytest.raises(ValueError, match="min_tissue"):
        PatchSpec(min_tissue=1.5)
    with pytest.raises(ValueError, match="mpp"):
        PatchSpec(mpp=0)
    with pytest.raises(UnknownNameError, match="lanczos"):
        PatchSpec(resample="lanczoz")


def test_level_choice_and_physical_size(slides):
    with open_slide(slides["pyramid"]) as slide:
        assert slide.level_dimensions == ((2048, 1536), (1024, 768), (512, 384))
        at_half = plan_patches(slide, None, PatchSpec(mpp=0.5, size=224))
        assert {(p.level, p.read_size, p.size0) for p in at_half} == {(1, 224, 448)}
        assert sorted({p.x0 for p in at_half}) == [0, 448, 896, 1344]
        assert sorted({p.y0 for p in at_half}) == [0, 448, 896]
        coarse = plan_patches(slide, None, PatchSpec(mpp=0.75, size=224))
        assert {(p.level, p.read_size, p.size0) for p in coarse} == {(1, 336, 672)}
        assert sorted({p.x0 for p in coarse}) == [0, 672, 1344] and sorted({p.y0 for p in coarse}) == [0, 672]
        fine = plan_patches(slide, None, PatchSpec(mpp=0.2, size=100))
        assert {(p.level, p.read_size, p.size0) for p in fine} == {(0, 80, 80)}  # finest level, resized up to 100
        one = plan_patches(slide, None, PatchSpec(mpp=1.0, size=128))
        assert {(p.level, p.read_size, p.size0) for p in one} == {(2, 128, 512)}
        # physical size: a 0.75-mpp patch covers 168 um = 672 level-0 px, read as 336 px at level 1 and resized
        loc = coarse[0]
        patch = read_patch(slide, loc, PatchSpec(mpp=0.75, size=224))
        expected = slide.read_region((loc.x0, loc.y0), 1, (336, 336)).resize((224, 224), Image.Resampling.LANCZOS)
        assert patch.size == (224, 224) and np.array_equal(np.asarray(patch), np.asarray(expected))


def test_overlap_and_tissue_selection(slides):
    with open_slide(slides["pyramid"]) as slide:
        spec = PatchSpec(mpp=0.5, size=224, overlap=24, min_tissue=0.6)
        every = plan_patches(slide, None, PatchSpec(mpp=0.5, size=224, overlap=24))
        assert sorted({p.x0 for p in every})[:3] == [0, 400, 800]  # step (224 - 24) px at level 1 = 400 level-0 px
        mask = detect_tissue(slide, max_size=512)
        kept = plan_patches(slide, mask, spec)
        fractions = mask.tissue_fractions(np.array([[p.x0, p.y0, p.size0, p.size0] for p in every]))
        expected = {(p.x0, p.y0) for p, f in zip(every, fractions) if f >= 0.6}
        assert {(p.x0, p.y0) for p in kept} == expected and 0 < len(kept) < len(every)
        assert all(p.tissue_fraction >= 0.6 for p in kept)
        assert (0, 0) not in expected  # the glass corner


def test_block_reads_give_the_same_pixels_as_read_patch(slides):
    with open_slide(slides["pyramid"]) as slide:
        for spec in [PatchSpec(mpp=0.5, size=224), PatchSpec(mpp=0.75, size=224, overlap=16, resample="bicubic")]:
            locations = plan_patches(slide, None, spec)
            got = dict(iter_patch_arrays(slide, locations, spec, block=500))  # several blocks
            assert set(got) == set(locations)
            for loc in locations:
                assert np.array_equal(np.asarray(got[loc]), np.asarray(read_patch(slide, loc, spec)))
        # a patch not on a whole pixel of its level is read on its own, with the same result
        odd = PatchLocation(x0=3, y0=5, level=1, read_size=224, size0=448, tissue_fraction=1.0)
        spec = PatchSpec(mpp=0.5, size=224)
        [(loc, image)] = list(iter_patch_arrays(slide, [odd], spec))
        assert loc == odd and np.array_equal(np.asarray(image), np.asarray(read_patch(slide, odd, spec)))


def test_plan_without_mask_and_tiny_slide(tmp_path):
    path = write_pyramidal_tiff(tmp_path / "tiny.tif", tissue_image(100, 100), 0.5)
    with open_slide(path) as slide:
        assert plan_patches(slide, None, PatchSpec(mpp=0.5, size=224)) == []
        mask = TissueMask(mask=np.ones((10, 10), bool), downsample=10.0, threshold=0.1, level0_size=(100, 100))
        assert len(plan_patches(slide, mask, PatchSpec(mpp=0.5, size=50))) == 4


# --------------------------------------------------------------------------- batch
def test_patch_slides_writes_decodable_patches_and_skips_bad_slides(slides, tmp_path):
    junk = tmp_path / "junk.svs"
    junk.write_bytes(b"\x00" * 300)
    spec = PatchSpec(mpp=0.5, size=224, min_tissue=0.5)
    out = tmp_path / "out"
    summary = patch_slides(
        [slides["pyramid"], junk, slides["nompp"], slides["second"]],
        out,
        spec,
        image_format="png",
        max_count=7,
        tissue={"max_size": 512},
        progress=False,
    )
    assert summary["num_slides_ok"] == 2 and summary["num_skipped"] == 2
    skipped = {s["slide_id"]: s for s in summary["skipped"]}
    assert skipped["junk"]["reason"] == "unreadable_slide" and "junk.svs" in skipped["junk"]["error"]
    assert skipped["nompp"]["reason"] == "no_mpp" and "--slide-mpp" in skipped["nompp"]["error"]
    assert summary["skipped_by_reason"] == {"no_mpp": 1, "unreadable_slide": 1}
    per_slide = {s["slide_id"]: s for s in summary["slides"]}
    assert per_slide["pyr"]["level"] == 1 and per_slide["pyr"]["size0"] == 448
    assert per_slide["second"]["level"] == 0 and per_slide["second"]["read_size"] == 224
    samples = read_shards(out)
    assert len(samples) == summary["num_patches"] == sum(s["patches_written"] for s in summary["slides"]) > 0
    assert len(summary["shards"]) == -(-len(samples) // 7)
    index = json.loads((out / "patches-index.json").read_text())
    assert index["complete"] and index["num_samples"] == len(samples)
    assert json.loads((out / "patches-summary.json").read_text())["num_patches"] == len(samples)
    handles = {name: open_slide(slides[name]) for name in ("pyramid", "second")}
    try:
        for key, members in samples.items():
            assert set(members) == {"png", "json"}  # no text without annotate
            meta = json.loads(members["json"])
            assert key == f"{meta['slide_id']}_{meta['x']}_{meta['y']}"
            assert meta["mpp"] == 0.5 and meta["patch_size"] == 224 and meta["tissue_fraction"] >= 0.5
            slide = handles["pyramid" if meta["slide_id"] == "pyr" else "second"]
            assert meta["source"] == str(slide.path) and meta["slide_mpp"] == slide.mpp
            loc = PatchLocation(meta["x"], meta["y"], meta["level"], meta["read_size"], meta["size0"], 1.0)
            decoded = np.asarray(Image.open(io.BytesIO(members["png"])).convert("RGB"))
            assert np.array_equal(decoded, np.asarray(read_patch(slide, loc, spec)))
    finally:
        for handle in handles.values():
            handle.close()
    thumb = Image.open(out / "thumbnails" / "pyr.png")
    assert thumb.format == "PNG" and thumb.size == (1024, 768)
    assert not (out / "thumbnails" / "junk.png").exists()


def test_mpp_override_and_annotate_hook(slides, tmp_path):
    spec = PatchSpec(mpp=1.0, size=128, min_tissue=0.3)
    summary = patch_slides(
        [slides["nompp"], slides["second"]],
        tmp_path,
        spec,
        annotate=annotate_even_columns,
        mpp_overrides={"nompp": 0.5},
        slide_mpp=2.0,
        thumbnails=False,
        tissue={"max_size": 256},
        progress=False,
    )
    assert summary["num_skipped"] == 0
    per_slide = {s["slide_id"]: s for s in summary["slides"]}
    assert per_slide["nompp"]["mpp"] == 0.5 and per_slide["nompp"]["mpp_source"] == "user"
    assert per_slide["second"]["mpp"] == 2.0  # --slide-mpp overrides the slide's 0.5
    assert per_slide["nompp"]["size0"] == 256 and per_slide["second"]["read_size"] == 64
    samples = read_shards(tmp_path)
    assert summary["unannotated"] > 0 and len(samples) == summary["num_patches"]
    for members in samples.values():
        meta = json.loads(members["json"])
        assert meta["column"] == meta["x"] // meta["size0"] and meta["column"] % 2 == 0
        assert json.loads(members["text.json"]) == [f"{meta['slide_id']} patch", "tissue"]
        assert members["cls"] == b"1"
    assert not (tmp_path / "thumbnails").exists()


@pytest.mark.slow
def test_workers_give_the_same_samples(slides, tmp_path):
    spec = PatchSpec(mpp=0.5, size=224, min_tissue=0.5)
    paths = [slides["pyramid"], slides["second"], slides["nompp"]]
    kwargs = dict(image_format="png", thumbnails=False, tissue={"max_size": 512}, progress=False,
                  annotate=annotate_even_columns)
    one = patch_slides(paths, tmp_path / "one", spec, workers=1, **kwargs)
    two = patch_slides(paths, tmp_path / "two", spec, workers=2, **kwargs)
    assert two["workers"] == 2 and sorted(two["indexes"]) == ["patches-w00-index.json", "patches-w01-index.json"]
    assert two["num_patches"] == one["num_patches"] and two["num_skipped"] == one["num_skipped"] == 1
    assert read_shards(tmp_path / "one") == read_shards(tmp_path / "two")


def test_cli_with_mpp_csv_and_globs(slides, tmp_path):
    csv = tmp_path / "mpp.csv"
    csv.write_text("slide_id,mpp\nnompp,0.5\n")
    folder = slides["nompp"].parent
    command, options, _ = parse_prepare_args("pathology", "patches", [
        "--slides", str(folder / "nompp.*"), str(slides["second"]), "--out", str(tmp_path / "out"),
        "--mpp-target", "1.0", "--size", "128", "--min-tissue", "0.9", "--mpp-csv", str(csv), "--no-thumbnails",
        "--max-count", "3", "--no-progress"])
    assert command is prepare_patches
    summary = command(**options)
    assert summary["num_slides_ok"] == 2 and summary["spec"]["min_tissue"] == 0.9
    assert summary["num_patches"] > 0 and len(summary["shards"]) == -(-summary["num_patches"] // 3)
    assert find_slides([folder]) == sorted(folder.glob("*.tif"))
    with pytest.raises(FileNotFoundError, match="absent.svs"):
        find_slides([folder / "absent.svs"])
    with pytest.raises(FileNotFoundError, match="match"):
        find_slides([str(folder / "*.ndpi")])
    with pytest.raises(ValueError, match="would both be written as 'second'"):
        patch_slides([slides["second"], tmp_path / "x" / "second.tif"], tmp_path / "dup")
    with pytest.raises(TypeError, match="picklable"):
        patch_slides([slides["second"], slides["nompp"]], tmp_path / "l", workers=2, annotate=lambda *a: None)


@pytest.mark.real_data
def test_cmu_patches_match_direct_reads(shared_data, tmp_path):
    cmu = shared_data / "pathology" / "CMU-1-Small-Region.svs"
    spec = PatchSpec(mpp=0.5, size=224, min_tissue=0.5)
    summary = patch_slides(
        [cmu, shared_data / "pathology" / "broken.svs"], tmp_path, spec, image_format="png", progress=False
    )
    assert summary["num_slides_ok"] == 1 and summary["skipped"][0]["slide_id"] == "broken"
    [info] = summary["slides"]
    assert info["vendor"] == "aperio" and info["level"] == 0 and info["read_size"] == 224  # 224 * 0.5 / 0.499
    samples = read_shards(tmp_path)
    assert len(samples) == info["patches_written"] > 20
    with open_slide(cmu, fast_arrays=False) as slide:  # OpenSlide alone, one read per patch
        for members in list(samples.values())[:10]:
            meta = json.loads(members["json"])
            loc = PatchLocation(meta["x"], meta["y"], 0, 224, 224, 1.0)
            decoded = np.asarray(Image.open(io.BytesIO(members["png"])).convert("RGB"))
            assert np.array_equal(decoded, np.asarray(read_patch(slide, loc, spec)))


# --------------------------------------------------------------------------- user mistakes
def test_spec_errors_are_input_errors():
    for kwargs in ({"size": 0}, {"mpp": float("nan")}, {"overlap": -1}, {"min_tissue": -0.1}):
        with pytest.raises(InputError) as caught:
            PatchSpec(**kwargs)
        assert isinstance(caught.value, ValueError)
    with pytest.raises(InputError, match="patch size must be >= 1; got 0"):
        PatchSpec(size=0)


def test_a_run_that_writes_nothing_raises_with_the_reasons(slides, tmp_path):
    junk = tmp_path / "junk.svs"
    junk.write_bytes(b"\x00" * 300)
    out = tmp_path / "out"
    with pytest.raises(NothingWrittenError) as caught:
        patch_slides([junk, slides["nompp"]], out, tissue={"max_size": 256}, progress=False)
    message = str(caught.value)
    assert message.startswith("pathology/patches wrote no patches from 2 slides: ")
    assert "no_mpp: 1 (e.g. slide " in message and "nompp.tif has no microns-per-pixel" in message
    assert f"unreadable_slide: 1 (e.g. cannot open slide {junk}: " in message
    summary = json.loads((out / "patches-summary.json").read_text())
    assert summary["num_patches"] == 0 and summary["skipped_by_reason"] == {"no_mpp": 1, "unreadable_slide": 1}
    assert read_shards(out) == {}


def test_slides_without_a_kept_patch_are_counted(slides, tmp_path):
    tiny = write_pyramidal_tiff(tmp_path / "tiny.tif", tissue_image(100, 100), 0.5)
    with pytest.raises(NothingWrittenError) as caught:
        patch_slides([tiny], tmp_path / "a", PatchSpec(size=224), thumbnails=False, progress=False)
    assert str(caught.value).startswith(
        f"pathology/patches wrote no patches from 1 slide: no_patch: 1 (e.g. {tiny}: no 224-px patch at 0.5 um/px "
        "fits with a tissue fraction >= 0.5 (tissue covers "
    )
    with pytest.raises(NothingWrittenError, match=r"unannotated: 1 \(e\.g\. .*second\.tif: annotate\(\) dropped all"):
        patch_slides([slides["second"]], tmp_path / "b", PatchSpec(mpp=1.0, size=128, min_tissue=0.3),
                     annotate=drop_every_patch, thumbnails=False, tissue={"max_size": 256}, progress=False)


def drop_every_patch(slide_id, x0, y0, size0):
    """An annotate hook that keeps nothing."""
    return None


def test_colliding_output_names_are_refused_before_any_work(slides, tmp_path):
    for a, b, name in [("a/slide.tif", "b/slide.tif", "slide"), ("x.svs", "x.tiff", "x"),
                       ("Case.tif", "case.tif", "case"), ("p q.tif", "p_q.tif", "p_q")]:
        for path in (tmp_path / a, tmp_path / b):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(slides["second"].read_bytes())
        with pytest.raises(InputError, match=f"would both be written as '{name}'") as caught:
            patch_slides([tmp_path / a, tmp_path / b], tmp_path / "out", progress=False)
        assert str(tmp_path / a) in str(caught.value) and str(tmp_path / b) in str(caught.value)
        assert not (tmp_path / "out").exists()


def test_bad_mpp_values_are_refused_before_any_work(slides, tmp_path):
    with pytest.raises(InputError, match="slide_mpp must be a positive number of microns per pixel; got -1"):
        patch_slides([slides["second"]], tmp_path / "out", slide_mpp=-1, progress=False)
    with pytest.raises(InputError, match=r"mpp of slide 'second' must be a positive number .*; got 0"):
        patch_slides([slides["second"]], tmp_path / "out", mpp_overrides={"second": 0}, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flag", "value", "rule"),
    [
        ("--size", "0", "an integer >= 1; got 0"),
        ("--size", "1.5", "an integer; got '1.5'"),
        ("--slide-mpp", "-1", "a number > 0; got -1.0"),
        ("--mpp-target", "nan", "a finite number; got nan"),
        ("--overlap", "-2", "an integer >= 0; got -2"),
        ("--min-tissue", "1.5", "a number in [0, 1]; got 1.5"),
        ("--workers", "0", "an integer >= 1; got 0"),
        ("--max-count", "0", "an integer >= 1; got 0"),
        ("--quality", "101", "an integer in [1, 100]; got 101"),
    ],
)
def test_cli_refuses_bad_flag_values_up_front(slides, tmp_path, capsys, flag, value, rule):
    from domainclip.cli import main

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as caught:
        main(["prepare", "pathology", "patches", "--slides", str(slides["second"]), "--out", str(out), flag, value])
    assert caught.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("usage: domainclip prepare pathology patches ")
    assert lines[-1] == f"domainclip prepare pathology patches: error: argument {flag}: must be {rule}"
    assert not out.exists()
