"""Tests of the synthetic whole-slide generator, its masks, slides.csv and the annotate hook."""

from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest
from PIL import Image

from domainclip.core.errors import InputError
from domainclip.core.plugins import UnknownNameError
from domainclip.core.prepare import parse_prepare_args
from domainclip.domains.pathology import synthetic as syn
from domainclip.domains.pathology.synthetic import (
    CAPTION_TEMPLATES,
    CLASS_NAMES,
    TISSUE_CLASSES,
    SyntheticAnnotator,
    caption_pool,
    generate_slide,
    generate_slides,
    read_mask,
    render_tissue,
    synthetic_templates,
)

openslide = pytest.importorskip("openslide")


@pytest.fixture(scope="module")
def slides_dir(tmp_path_factory):
    """Two 2048 x 2048 slides (one with tumour, one without) with masks and slides.csv."""
    out = tmp_path_factory.mktemp("slides")
    summary = generate_slides(out, 2, seed=3, size=2048, tumor_fraction=0.5, progress=False)
    return out, summary


def _rows(folder):
    with (folder / "slides.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _truth(folder):
    return {s["slide_id"]: s for s in json.loads((folder / "slides.json").read_text())["slides"]}


def _features(patch: np.ndarray) -> np.ndarray:
    """Simple colour and texture statistics of an RGB patch."""
    x = patch.astype(np.float32)
    g = x.mean(-1)
    h, w = g.shape[0] // 4 * 4, g.shape[1] // 4 * 4
    coarse = g[:h, :w].reshape(h // 4, 4, w // 4, 4).mean((1, 3))
    fine = np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean()
    rough = np.abs(np.diff(coarse, axis=0)).mean() + np.abs(np.diff(coarse, axis=1)).mean()
    pale = g > 180
    blue = float((x[..., 2] - x[..., 0])[pale].mean()) if pale.any() else 0.0
    return np.array([*x.mean((0, 1)), *x.std((0, 1)), fine, rough / (fine + 1e-3), (g < 120).mean(), pale.mean(), blue])


# ------------------------------------------------------------------------------------------ captions
def test_caption_pools_and_prompts():
    assert TISSUE_CLASSES == (
        "adipose", "background", "debris", "lymphocytes", "mucus", "muscle", "normal", "stroma", "tumor"
    )
    for name in TISSUE_CLASSES:
        templates = CAPTION_TEMPLATES[name]
        assert len(templates) >= 8
        assert sum("{name}" in t for t in templates) >= len(templates) // 2
        pool = caption_pool(name)
        assert len(pool) == len(set(pool)) > len(templates)
        assert all(c[0].isupper() and c.endswith(".") and "{" not in c for c in pool)
    prompts = synthetic_templates()
    assert list(prompts) == list(TISSUE_CLASSES)
    assert prompts["tumor"][0] == "an H&E image of colorectal adenocarcinoma epithelium."
    assert all(CLASS_NAMES[c] in p for c, ps in prompts.items() for p in ps)
    assert set(syn.slide_templates()) == {"normal", "tumor"}
    with pytest.raises(UnknownNameError, match="Did you mean: tumor"):
        caption_pool("tumour")


# ------------------------------------------------------------------------------------------ one slide
def test_generate_slide_is_deterministic_per_seed(tmp_path):
    a = generate_slide(tmp_path / "a" / "s.tiff", seed=11, size=512)
    b = generate_slide(tmp_path / "b" / "s.tiff", seed=11, size=512)
    c = generate_slide(tmp_path / "c" / "s.tiff", seed=12, size=512)
    assert a.mask_path.read_bytes() == b.mask_path.read_bytes()
    assert a.path.read_bytes() == b.path.read_bytes()
    ja, jb = a.to_json(), b.to_json()
    for j in (ja, jb):
        j.pop("path"), j.pop("mask_path")
    assert ja == jb
    assert a.path.read_bytes() != c.path.read_bytes()
    assert a.stain != c.stain
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["s.tiff", "s_mask.png"]  # no temp files left


def test_tiff_opens_with_openslide_and_tiffslide(tmp_path):
    truth = generate_slide(tmp_path / "s.tiff", seed=1, size=(1024, 768), mpp=0.25, classes=("stroma", "mucus"))
    with openslide.OpenSlide(str(truth.path)) as slide:
        assert slide.dimensions == (1024, 768)
        assert slide.level_count > 1
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.25, rel=1e-3)
        assert slide.level_downsamples[1] == pytest.approx(2.0)
    tiffslide = pytest.importorskip("tiffslide")
    with tiffslide.TiffSlide(str(truth.path)) as slide:
        assert float(slide.properties["tiffslide.mpp-x"]) == pytest.approx(0.25, rel=1e-3)
    mask = read_mask(truth.mask_path)
    assert mask.shape == (768 // 16, 1024 // 16)
    assert set(np.unique(mask)) <= {0, TISSUE_CLASSES.index("stroma") + 1, TISSUE_CLASSES.index("mucus") + 1}
    assert truth.classes == tuple(c for c in ("mucus", "stroma") if (mask == TISSUE_CLASSES.index(c) + 1).any())
    assert truth.tissue_fraction == pytest.approx(0.6, abs=0.05)  # background_fraction 0.4


def test_mask_matches_the_drawn_regions(tmp_path):
    truth = generate_slide(tmp_path / "s.tiff", seed=5, size=1024, background_fraction=0.3)
    mask = read_mask(truth.mask_path)
    with openslide.OpenSlide(str(truth.path)) as slide:
        image = np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB")).astype(np.float32)
    blocks = image.reshape(64, 16, 64, 16, 3).mean((1, 3)).mean(-1)  # brightness per mask pixel
    inner = np.ones_like(mask, bool)  # mask pixels whose 3x3 neighbourhood has one value (no boundary)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            inner &= np.roll(np.roll(mask, dy, 0), dx, 1) == mask
    background = blocks[(mask == 0) & inner]
    assert background.size and background.min() > 200 and background.std() < 3  # plain glass
    tissue = blocks[(mask > 0) & inner]
    assert tissue.mean() < background.mean() - 15
    for g in truth.regions:  # each region centre is labelled with the region's class
        assert mask[g.centre[1] // 16, g.centre[0] // 16] == g.label + 1


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="multiple of 16"):
        generate_slide(tmp_path / "s.tiff", seed=0, size=1000)
    with pytest.raises(ValueError, match="background_fraction"):
        generate_slide(tmp_path / "s.tiff", seed=0, size=512, background_fraction=1.0)
    with pytest.raises(UnknownNameError, match="Did you mean: adipose"):
        generate_slide(tmp_path / "s.tiff", seed=0, size=512, classes=("adipos",))
    with pytest.raises(InputError, match="n must be an integer >= 1; got 0"):
        generate_slides(tmp_path, 0)
    with pytest.raises(InputError, match="size must be a multiple of 16; got 1000x1000"):
        generate_slides(tmp_path / "sized", 2, size=1000, workers=2)
    assert not (tmp_path / "sized").exists()  # refused before any folder or worker
    bad = tmp_path / "rgb_mask.png"
    Image.new("RGB", (4, 4)).save(bad)
    with pytest.raises(ValueError, match="rgb_mask.png: a label mask must be a single-channel"):
        read_mask(bad)
    Image.fromarray(np.full((4, 4), 10, np.uint8)).save(bad)
    with pytest.raises(ValueError, match="label 10"):
        read_mask(bad)
    assert not list(tmp_path.glob("*.tiff"))


def test_texture_scales_with_mpp():
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    def median_nucleus_area(mpp):
        areas = []
        for seed in range(3):
            grey = render_tissue("lymphocytes", 448, seed=seed, mpp=mpp).astype(np.float32).mean(-1)
            areas += [r.area for r in regionprops(label(grey < threshold_otsu(grey))) if r.area > 4]
        return np.median(areas)

    ratio = median_nucleus_area(0.25) / median_nucleus_area(0.5)
    assert 2.5 < ratio < 6  # nuclei drawn at half the mpp cover about four times the pixels


# ------------------------------------------------------------------------------------------ folder
def test_slides_csv_labels_match_the_masks(slides_dir):
    out, summary = slides_dir
    rows = _rows(out)
    assert [r["slide_id"] for r in rows] == ["slide_0000", "slide_0001"]
    assert summary["counts_by_label"] == {"normal": 1, "tumor": 1}
    tumor = TISSUE_CLASSES.index("tumor") + 1
    for row in rows:
        mask = read_mask(out / row["mask"])
        present = [c for i, c in enumerate(TISSUE_CLASSES) if (mask == i + 1).any()]
        assert row["classes"].split(";") == present
        assert row["label"] == ("tumor" if (mask == tumor).any() else "normal")
        assert (row["width"], row["height"], row["mpp"], row["mask_downsample"]) == ("2048", "2048", "0.5", "16")
        assert (out / row["path"]).is_file()
    tumour_row = next(r for r in rows if r["label"] == "tumor")
    assert len(tumour_row["classes"].split(";")) >= 2  # tumour comes with other tissue


@pytest.mark.slow  # starts two spawned worker processes
def test_workers_give_the_same_slides(tmp_path):
    generate_slides(tmp_path / "one", 2, seed=4, size=256, workers=1, progress=False)
    summary = generate_slides(tmp_path / "two", 2, seed=4, size=256, workers=2, progress=False)
    assert summary["n"] == 2 and summary["workers"] == 2
    for name in ("slides.csv", "slide_0000.tiff", "slide_0001_mask.png"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_prepare_command_runs(tmp_path):
    command, options, _ = parse_prepare_args(
        "pathology", "synthetic",
        ["--out", str(tmp_path), "--n", "3", "--seed", "2", "--size", "512x256", "--mpp", "0.5",
         "--workers", "1", "--tumor-fraction", "0.34", "--no-progress"]
    )
    assert command is generate_slides and options["size"] == (512, 256)
    summary = command(**options)
    assert summary["n"] == 3 and summary["seed"] == 2 and summary["size"] == [512, 256]
    assert summary["counts_by_label"]["tumor"] == 1
    assert sorted(p.name for p in tmp_path.glob("*.tiff")) == ["slide_0000.tiff", "slide_0001.tiff", "slide_0002.tiff"]
    with pytest.raises(SystemExit):
        parse_prepare_args("pathology", "synthetic", ["--out", "x", "--size", "big"])


# ------------------------------------------------------------------------------------------ annotator
def test_annotator_labels_region_centres_and_rejects_boundaries(slides_dir):
    out, _ = slides_dir
    annotate = SyntheticAnnotator(out, min_purity=0.8, seed=0)
    checked = 0
    for slide_id, truth in _truth(out).items():
        for g in truth["regions"]:
            if g["inradius"] < 180:
                continue
            x, y = g["centre"]
            result = annotate(slide_id, x - 112, y - 112, 224)
            assert result is not None
            assert result["label"] == g["label"]
            assert result["meta"] == {"tissue_class": g["tissue_class"], "purity": 1.0}
            assert len(result["text"]) == 3
            assert set(result["text"]) <= set(caption_pool(g["tissue_class"]))
            assert len({t[:20] for t in result["text"]}) == 3  # three different templates
            checked += 1
    assert checked >= 3

    mask = read_mask(out / "slide_0001_mask.png")
    mixed = None
    for i in range(0, mask.shape[0] - 14, 2):  # a 224-px box where two classes share the area about evenly
        for j in range(0, mask.shape[1] - 14, 2):
            window = mask[i:i + 14, j:j + 14]
            counts = np.bincount(window.ravel(), minlength=len(TISSUE_CLASSES) + 1)
            if counts[0] == 0 and 0.35 < counts.max() / window.size < 0.65:
                mixed = (j * 16, i * 16)
                break
        if mixed:
            break
    assert mixed is not None
    assert annotate("slide_0001", mixed[0], mixed[1], 224) is None
    label, share = annotate.purity("slide_0001", mixed[0], mixed[1], 224)
    assert 0.35 < share < 0.65
    assert annotate("slide_0001", -4096, -4096, 224) is None  # off the slide: all background
    assert SyntheticAnnotator(out, min_purity=0.3)("slide_0001", mixed[0], mixed[1], 224)["label"] == label - 1


def test_annotator_is_deterministic_and_picklable(slides_dir):
    out, _ = slides_dir
    annotate = SyntheticAnnotator(out, seed=7)
    g = next(g for s in _truth(out).values() for g in s["regions"] if g["inradius"] >= 180)
    slide_id = next(sid for sid, s in _truth(out).items() if g in s["regions"])
    x, y = g["centre"]
    first = annotate(slide_id, x - 112, y - 112, 224)
    clone = pickle.loads(pickle.dumps(annotate))
    assert clone._masks == {}  # caches are not pickled
    assert clone(slide_id, x - 112, y - 112, 224) == first
    assert annotate(f"{slide_id}.tiff", x - 112, y - 112, 224) == first  # a file name works as the id
    captions = {tuple(annotate(slide_id, x - 112 + d, y - 112, 224)["text"]) for d in range(0, 40, 4)}
    assert len(captions) > 3  # the draw depends on the position
    other_seed = SyntheticAnnotator(out, seed=8)(slide_id, x - 112, y - 112, 224)
    assert other_seed["label"] == first["label"] and other_seed["text"] != first["text"]
    with pytest.raises(UnknownNameError, match="slide_0001"):
        annotate("slide_0011", 0, 0, 224)


def test_annotator_without_csv_uses_mask_files(tmp_path):
    truth = generate_slide(tmp_path / "one.tiff", seed=2, size=512, classes=("lymphocytes",), background_fraction=0)
    result = SyntheticAnnotator(tmp_path)("one", 100, 100, 224)
    assert result["label"] == TISSUE_CLASSES.index("lymphocytes") and truth.classes == ("lymphocytes",)
    with pytest.raises(FileNotFoundError, match="neither slides.csv nor"):
        SyntheticAnnotator(tmp_path / "empty")("one", 0, 0, 224)


# ------------------------------------------------------------------------------------------ learnability
@pytest.mark.slow  # renders 9 x 112 patches
def test_classes_are_learnable_from_simple_statistics(slides_dir):
    """A nearest-centroid classifier on colour/texture statistics, trained on rendered patches of site a, labels
    patches cut from the generated slides (with their mask labels) far above chance (1/9); one pixel does not,
    and the shifted site b costs it accuracy (the stain and scanner shift is real)."""
    from sklearn.neighbors import NearestCentroid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, train_y, pixels = [], [], []
    for label, name in enumerate(TISSUE_CLASSES):
        for seed in range(64):
            patch = render_tissue(name, 128, seed=seed)
            train_x.append(_features(patch))
            train_y.append(label)
            pixels.append(patch[64, 64].astype(np.float32))
    classifier = make_pipeline(StandardScaler(), NearestCentroid()).fit(train_x, train_y)

    held_x, held_y, held_pixels, shifted_x = [], [], [], []
    for label, name in enumerate(TISSUE_CLASSES):
        for seed in range(1000, 1016):
            patch = render_tissue(name, 128, seed=seed)
            held_x.append(_features(patch))
            held_y.append(label)
            held_pixels.append(patch[64, 64].astype(np.float32))
            shifted_x.append(_features(render_tissue(name, 128, seed=seed, site="b")))
    accuracy = (classifier.predict(held_x) == np.array(held_y)).mean()
    assert accuracy > 0.85  # measured 0.96
    assert (classifier.predict(shifted_x) == np.array(held_y)).mean() < accuracy - 0.15  # measured 0.68

    out, _ = slides_dir
    annotate = SyntheticAnnotator(out, min_purity=1.0)
    slide_x, slide_y = [], []
    for row in _rows(out):
        with openslide.OpenSlide(str(out / row["path"])) as slide:
            for y in range(0, 2048 - 128, 128):
                for x in range(0, 2048 - 128, 128):
                    result = annotate(row["slide_id"], x, y, 128)
                    if result is not None:
                        patch = np.asarray(slide.read_region((x, y), 0, (128, 128)).convert("RGB"))
                        slide_x.append(_features(patch))
                        slide_y.append(result["label"])
    assert len(set(slide_y)) >= 6 and len(slide_y) > 100  # measured 8 classes, 153 patches
    assert (classifier.predict(slide_x) == np.array(slide_y)).mean() > 0.85  # measured 0.95

    one_pixel = make_pipeline(StandardScaler(), NearestCentroid()).fit(pixels, train_y)
    assert (one_pixel.predict(held_pixels) == np.array(held_y)).mean() < 0.5  # measured 0.31
