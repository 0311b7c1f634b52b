"""Tests of the nine-class synthetic slides: classes, captions, stain and scanner sites, HED stain augmentation."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from PIL import Image

from domainclip.core.errors import InputError
from domainclip.domains.pathology import labels
from domainclip.domains.pathology.synthetic import (
    CAPTION_SYNONYMS,
    CAPTION_TEMPLATES,
    CLASS_NAMES,
    NCT_CRC_HE_CODES,
    TISSUE_CLASSES,
    caption_pool,
    generate_slides,
    render_tissue,
)
from domainclip.domains.pathology.synthetic.generator import _slide_plan
from domainclip.domains.pathology.synthetic.slide import _fold, _pen_ink
from domainclip.domains.pathology.synthetic.stain import MACENKO_HE, RUIFROK_HE, _random_stain
from domainclip.domains.pathology.tasks import PATCH_TEXT, StainAugmentDecoder, hed_jitter

pytest.importorskip("openslide")
skimage_color = pytest.importorskip("skimage.color")


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two OD directions."""
    cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


# ------------------------------------------------------------------------------------------ classes
def test_the_nine_classes_are_nct_crc_in_label_order():
    assert len(TISSUE_CLASSES) == 9
    assert tuple(NCT_CRC_HE_CODES[c] for c in TISSUE_CLASSES) == labels.NCT_CRC_CLASSES
    assert CLASS_NAMES["tumor"] == labels.NCT_CRC_NAMES["TUM"] == "colorectal adenocarcinoma epithelium"
    assert CLASS_NAMES["muscle"] == "smooth muscle" and CLASS_NAMES["normal"] == "normal colon mucosa"


def test_slide_plan_covers_every_class_and_tumour_fraction():
    plan = _slide_plan(12, 0, 0.5)
    seen = {c for _, chosen in plan for c in chosen}
    assert seen == set(TISSUE_CLASSES)
    assert sum("tumor" in chosen for _, chosen in plan) == 6
    assert all(4 <= len(chosen) <= 7 for _, chosen in plan)  # tumour + 3-6, or 4-7 others
    assert len({seed for seed, _ in plan}) == 12


@pytest.mark.parametrize("name", TISSUE_CLASSES)
def test_every_class_renders_its_own_texture(name):
    a = render_tissue(name, 96, seed=1)
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render_tissue(name, 96, seed=1))
    assert not np.array_equal(a, render_tissue(name, 96, seed=2))


def test_class_brightness_and_nuclear_density_follow_the_morphology():
    def stats(name):
        grey = np.stack([render_tissue(name, 160, seed=s).astype(np.float32).mean(-1) for s in range(6)])
        return grey.mean(), (grey < 110).mean()  # brightness, share of dark (nuclear) pixels

    bright = {c: stats(c) for c in TISSUE_CLASSES}
    assert bright["background"][0] > 225 and bright["background"][1] < 0.01  # glass: bright, no nuclei
    assert bright["lymphocytes"][1] > 3 * bright["stroma"][1]  # sheets of nuclei vs sparse spindles
    assert bright["tumor"][1] > bright["normal"][1]  # crowded atypical nuclei vs one basal row
    assert bright["muscle"][1] > bright["adipose"][1]


# ------------------------------------------------------------------------------------------ captions
_MORPHOLOGY = re.compile(
    r"nucle|cell|gland|crypt|fibre|fibril|fascic|spindle|cellular|chromat|lumen|membrane|"
    r"granular|fragment|architecture|strand|structure|vacuol|atypi|dust|tissue|cytoplasm|septa",
    re.IGNORECASE,
)


@pytest.mark.parametrize("name", TISSUE_CLASSES)
def test_captions_describe_morphology(name):
    templates = CAPTION_TEMPLATES[name]
    assert len(templates) >= 8
    assert all(_MORPHOLOGY.search(t) for t in templates), [t for t in templates if not _MORPHOLOGY.search(t)]
    unnamed = [t for t in templates if "{name}" not in t]
    assert unnamed  # some describe without naming the class
    pool = caption_pool(name)
    assert len(pool) == len(set(pool)) > len(templates)
    assert all(c[0].isupper() and c.endswith(".") and "{" not in c for c in pool)
    assert any(s in c for s in CAPTION_SYNONYMS[name] for c in pool)


def test_captions_overlap_where_the_tissues_do():
    debris = " ".join(caption_pool("debris")).lower()
    tumour = " ".join(caption_pool("tumor")).lower()
    assert "gland" in debris and "necrosis" in tumour  # necrotic tumour vs debris
    assert "spindle" in " ".join(caption_pool("muscle")).lower() and "spindle" in " ".join(caption_pool("stroma"))


# ------------------------------------------------------------------------------------------ stain and sites
def test_stain_vectors_differ_per_slide_and_per_site():
    draws = {site: [_random_stain(np.random.default_rng([s, 0x51DE]), site) for s in range(40)] for site in "ab"}
    for site, reference in (("a", MACENKO_HE), ("b", RUIFROK_HE)):
        od = np.stack([d.od for d in draws[site]])
        assert len({tuple(np.round(o.ravel(), 4)) for o in od}) == 40  # every slide its own vectors
        for k in range(2):  # H and E stay near their site's published reference (a few degrees)
            angles = [_angle(o[k], reference[k]) for o in od]
            assert np.median(angles) < 8 and max(angles) < 20
    e_angle = {site: np.median([_angle(d.od[1], MACENKO_HE[1]) for d in draws[site]]) for site in "ab"}
    assert e_angle["b"] > e_angle["a"] + 15  # site b's eosin is another colour
    for key, lo_a, hi_a in (("blur", 0.0, 0.6), ("jpeg_quality", 80, 95)):
        values_a = [getattr(d, key) for d in draws["a"]]
        values_b = [getattr(d, key) for d in draws["b"]]
        assert lo_a <= min(values_a) and max(values_a) <= hi_a
        assert min(values_b) > max(values_a) if key == "blur" else max(values_b) < min(values_a)
    scales_a = np.stack([d.scales for d in draws["a"]])
    scales_b = np.stack([d.scales for d in draws["b"]])
    assert scales_b[:, 0].mean() > scales_a[:, 0].mean() + 0.2  # more haematoxylin
    assert scales_b[:, 1].mean() < scales_a[:, 1].mean() - 0.2  # less eosin
    assert 0.1 < np.mean([d.pen for d in draws["a"]]) < 0.5


def test_generated_slides_record_their_site(tmp_path):
    summary = generate_slides(tmp_path / "b", 2, seed=3, size=512, site="b", progress=False)
    assert summary["site"] == "b"
    slides = json.loads((tmp_path / "b" / "slides.json").read_text())["slides"]
    assert [s["stain"]["site"] for s in slides] == ["b", "b"]
    assert all(45 <= s["stain"]["jpeg_quality"] <= 65 and s["stain"]["blur"] >= 0.8 for s in slides)
    assert slides[0]["stain"]["od_vectors"] != slides[1]["stain"]["od_vectors"]
    with pytest.raises(InputError, match="site"):
        generate_slides(tmp_path / "c", 1, size=512, site="c", progress=False)


def test_site_b_renders_the_same_texture_in_other_colours():
    a = render_tissue("stroma", 128, seed=5, site="a").astype(np.float32)
    b = render_tissue("stroma", 128, seed=5, site="b").astype(np.float32)
    assert np.abs(a.mean((0, 1)) - b.mean((0, 1))).max() > 8  # another colour
    assert np.corrcoef(a.mean(-1).ravel(), b.mean(-1).ravel())[0, 1] > 0.5  # the same structure


def test_fold_and_pen_marks():
    tissue = np.zeros((256, 256), bool)
    tissue[:, :128] = True
    fold = _fold(np.random.default_rng(0), (256, 256), tissue, 1.0)
    assert fold.max() == pytest.approx(1.0) and fold.min() >= 0.0
    assert fold[:, 128:].max() == 0.0  # only where there is tissue
    assert 0.005 < (fold > 0.5).mean() < 0.3
    ink, od = _pen_ink(np.random.default_rng(1), (256, 256), 1.0)
    assert 0.01 < (ink > 0.2).mean() < 0.6
    assert od.shape == (3,) and od.min() > 0


# ------------------------------------------------------------------------------------------ HED augmentation
def _tissue_patch(seed: int = 3) -> Image.Image:
    return Image.fromarray(render_tissue("tumor", 96, seed=seed))


def test_hed_jitter_off_is_the_identity_and_on_scales_the_concentrations():
    patch = _tissue_patch()
    assert np.array_equal(np.asarray(hed_jitter(patch, 0.0, 0.0, random.Random(0))), np.asarray(patch))
    rng = random.Random(4)
    out = np.asarray(hed_jitter(patch, 0.2, 0.0, rng))
    rng = random.Random(4)
    alpha = np.array([rng.uniform(0.8, 1.2) for _ in range(3)])
    before = skimage_color.rgb2hed(np.asarray(patch))
    after = skimage_color.rgb2hed(out)
    strong = before[..., 0] > np.quantile(before[..., 0], 0.5)  # haematoxylin-rich pixels
    ratio = np.median(after[..., 0][strong] / before[..., 0][strong])
    assert ratio == pytest.approx(alpha[0], abs=0.05)


def test_hed_jitter_statistics():
    patch = _tissue_patch()
    base = np.asarray(patch).astype(np.float32)
    changes = {}
    for sigma in (0.05, 0.2):
        outs = np.stack([np.asarray(hed_jitter(patch, sigma, sigma, random.Random(k))) for k in range(24)])
        shift = np.abs(outs.astype(np.float32).mean((1, 2)) - base.mean((0, 1)))  # per draw and channel
        changes[sigma] = float(shift.mean())
        assert outs.dtype == np.uint8 and outs.shape == (24, *base.shape)
        assert len({o.tobytes() for o in outs}) == 24  # every draw differs
    assert 1.0 < changes[0.05] < changes[0.2] / 2  # stronger jitter moves colours more (measured 3.6, 14.3)
    assert changes[0.2] < 30


def test_decoder_is_seeded_per_sample_and_epoch_and_off_matches_the_core_decoder():
    from io import BytesIO

    from domainclip.core.data.decode import EPOCH, SampleDecoder

    buf = BytesIO()
    _tissue_patch().save(buf, format="PNG")
    raw = {"__key__": "p0", "__url__": "s.tar", "png": buf.getvalue(), "txt": b"Crowded atypical glands."}
    to_array = np.asarray
    decoder = StainAugmentDecoder(to_array, None, stain_sigma=0.1, stain_bias=0.1, seed=0)
    first = decoder({**raw, EPOCH: 0})
    assert first["text"] == "Crowded atypical glands."
    assert np.array_equal(first["image"], decoder({**raw, EPOCH: 0})["image"])
    assert not np.array_equal(first["image"], decoder({**raw, EPOCH: 1})["image"])
    off = StainAugmentDecoder(to_array, None, stain_sigma=0.0, stain_bias=0.0, seed=0)({**raw, EPOCH: 0})
    core = SampleDecoder(image_transform=to_array, seed=0)({**raw, EPOCH: 0})
    assert np.array_equal(off["image"], core["image"]) and off["text"] == core["text"]
    assert PATCH_TEXT.name == "pathology/patch_text" and PATCH_TEXT.make_decoder is StainAugmentDecoder


def test_recipe_checks_the_stain_options(tmp_path):
    from domainclip.core.recipe import RecipeError, load_recipe

    def recipe(args: str):
        path = tmp_path / "r.yaml"
        path.write_text(
            f"base: pathology/quick\ntrain: {{task: pathology/patch_text}}\ndata: {{decoder_args: {args}}}\n"
        )
        return path

    loaded = load_recipe(recipe("{stain_sigma: 0.2, stain_bias: 0.0}"))
    assert loaded.data.decoder_args == {"stain_sigma": 0.2, "stain_bias": 0.0}
    with pytest.raises(RecipeError, match=r"stain_sigma: must be a number in \[0, 0.5\]; got 0.9"):
        load_recipe(recipe("{stain_sigma: 0.9}"))
    with pytest.raises(RecipeError, match="unknown option 'stain_sigmaa'"):
        load_recipe(recipe("{stain_sigmaa: 0.1}"))
    shipped = load_recipe("pathology/quick")
    assert shipped.eval.suites == ["pathology/synthetic", "pathology/synthetic_shifted"]
    assert shipped.train.task == "pathology/patch_text"
    assert shipped.data.decoder_args == {"stain_sigma": 0.05, "stain_bias": 0.05}
