"""Tests of the synthetic land-cover scene generator (domainclip.domains.remote_sensing.synthetic)."""

import json
from pathlib import Path

import numpy as np
import pytest

from domainclip.core.errors import InputError
from domainclip.domains.remote_sensing.synthetic import (
    BANDS,
    CAPTION_FILE,
    CLASS_NAMES,
    CLASSES,
    LAND_COVER,
    NODATA,
    REFLECTANCE_SCALE,
    TEMPLATES,
    TRANSLATION_FILE,
    TRUTH_FILE,
    Canvas,
    describe,
    generate_scenes,
    make_scene,
    tokenize,
)
from domainclip.domains.remote_sensing.synthetic import scenes as scenes_module
from domainclip.domains.remote_sensing.synthetic.captions import CLOUDS, render

rasterio = pytest.importorskip("rasterio")

N = 40
OPTIONS = {"seed": 3, "size": 32, "test_fraction": 0.5, "cloud_fraction": 0.3, "nodata_fraction": 0.3}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """40 small scenes written by two workers, in chunks of 7 so that they finish out of order."""
    out = tmp_path_factory.mktemp("rs_synthetic") / "set"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scenes_module, "CHUNK", 7)
        summary = generate_scenes(out, N, workers=2, progress=False, **OPTIONS)
    return out, summary, json.loads((out / TRUTH_FILE).read_text(encoding="utf-8"))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_summary(generated):
    out, summary, records = generated
    assert summary["n"] == N and summary["seed"] == 3 and summary["out"] == str(out)
    assert summary["counts_by_class"] == {c: 4 for c in CLASSES}  # classes in turn
    assert sum(summary["counts_by_split"].values()) == N
    assert summary["licence"] == "CC0-1.0" and summary["generator"].startswith("domainclip.domains.remote_sensing")
    written = json.loads((out / "synthetic-summary.json").read_text())
    assert written == {k: v for k, v in summary.items() if k not in ("out", "summary", "seconds", "scenes_per_second")}
    assert [r["index"] for r in records] == list(range(N))
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(r["filename"] for r in records)
    assert not list(out.rglob("*.tmp*")), "temporary files were left behind"
    # the held-out set: exactly the test split, one folder per class, the same bytes as images/
    test = [r for r in records if r["split"] == "test"]
    assert summary["held_out_by_class"] == {c: sum(r["class"] == c for r in test) for c in CLASSES}
    assert len(set(summary["held_out_by_class"].values())) == 1 and test  # splits drawn per ten scenes: balanced
    held_out = sorted((out / "scenes").glob("*/*.tif"))
    assert [f"{p.parent.name}/{p.name}" for p in held_out] == sorted(f"{r['class']}/{r['filename']}" for r in test)
    for path in held_out:
        assert path.read_bytes() == (out / "images" / path.name).read_bytes()


def test_captions_in_rsicd_layout(generated):
    from domainclip.domains.remote_sensing.datasets.captions import read_caption_image, read_karpathy_json

    out, _, records = generated
    data = json.loads((out / CAPTION_FILE).read_text())
    assert set(data) == {"images", "dataset"}
    sentids = []
    for image, record in zip(data["images"], records, strict=True):
        assert set(image) == {"filename", "imgid", "split", "sentids", "sentences"}
        assert (image["filename"], image["imgid"], image["split"]) == (record["filename"], record["index"],
                                                                        record["split"])
        assert len(image["sentences"]) == 5 and image["sentids"] == [s["sentid"] for s in image["sentences"]]
        for sentence, caption in zip(image["sentences"], record["captions"], strict=True):
            assert set(sentence) == {"raw", "tokens", "imgid", "sentid"} and sentence["imgid"] == image["imgid"]
            assert sentence["raw"] == caption["en"] and sentence["tokens"] == tokenize(caption["en"])
        sentids += image["sentids"]
    assert len(set(sentids)) == 5 * N
    # the captions helper's reader takes the file as RSICD's, and reads its images as 8-bit RGB
    parsed = read_karpathy_json(out / CAPTION_FILE)
    assert [(r.filename, r.split, list(r.captions)) for r in parsed] == [
        (r["filename"], r["split"], [c["en"] for c in r["captions"]]) for r in records]
    image = read_caption_image(out / "images" / records[0]["filename"])
    assert image.mode == "RGB" and image.size == (32, 32)


def test_geotiffs_are_georeferenced_four_band_reflectance(generated):
    out, summary, records = generated
    assert summary["bands"] == list(BANDS) == ["R", "G", "B", "NIR"]
    for record in records:
        with rasterio.open(out / "images" / record["filename"]) as ds:
            assert (ds.count, ds.width, ds.height) == (4, 32, 32)
            assert ds.dtypes == ("uint16",) * 4 and ds.nodata == NODATA
            assert ds.crs.to_epsg() == int(record["crs"].removeprefix("EPSG:")) and 32629 <= ds.crs.to_epsg() <= 32637
            assert tuple(ds.transform)[:6] == tuple(record["transform"]) and ds.res == (10.0, 10.0)
            assert list(ds.bounds) == record["bounds"]
            pixels = ds.read()
        outside = (pixels == NODATA).all(axis=0)
        assert ((pixels == NODATA).any(axis=0) == outside).all(), "a pixel is nodata in some bands only"
        assert outside.mean() == pytest.approx(record["nodata_fraction"], abs=1e-4)
    assert 0 < summary["with_nodata"] < N and 0 < summary["cloudy"] < N


def _ndvi(pixels: np.ndarray) -> np.ndarray:
    red, nir = pixels[0].astype(float), pixels[3].astype(float)
    valid = pixels[0] != NODATA
    return (nir[valid] - red[valid]) / (nir[valid] + red[valid])


def test_spectral_signatures():
    """Vegetation is bright in the near infrared, water dark, sand in between."""
    by_class = {c: [make_scene(7, 10 * k + i, cloud_fraction=0.0) for k in range(4)] for i, c in enumerate(CLASSES)}
    median_ndvi = {c: float(np.median(np.concatenate([_ndvi(s.pixels) for s in scenes])))
                   for c, scenes in by_class.items()}
    assert median_ndvi["forest"] > 0.7 and median_ndvi["farmland"] > 0.3
    assert median_ndvi["desert"] < 0.15 and median_ndvi["industrial"] < 0.2
    for scene in by_class["lake"]:  # the open water: the lake covers at least 45 % of the scene
        assert np.quantile(_ndvi(scene.pixels), 0.3) < -0.2
    valid = np.concatenate([s.pixels[:, s.pixels[0] != NODATA] for scenes in by_class.values() for s in scenes], 1)
    assert valid.min() >= 1 and valid.max() <= REFLECTANCE_SCALE  # reflectance in (0, 1]
    assert (valid == REFLECTANCE_SCALE).mean() < 1e-4 and np.median(valid) < 0.15 * REFLECTANCE_SCALE


def test_same_seed_same_bytes_for_any_worker_count(generated, tmp_path):
    out, _, _ = generated
    again = tmp_path / "again"
    generate_scenes(again, N, workers=1, progress=False, **OPTIONS)
    assert _files(again) == _files(out)
    other = tmp_path / "other"
    generate_scenes(other, 10, workers=1, progress=False, **{**OPTIONS, "seed": 4})
    assert all((other / "images" / name).read_bytes() != (out / "images" / name).read_bytes()
               for name in sorted(p.name for p in (other / "images").iterdir()))


def test_scene_depends_only_on_seed_and_index(generated, tmp_path):
    out, _, records = generated
    fewer = tmp_path / "fewer"
    generate_scenes(fewer, 6, progress=False, **OPTIONS)
    for name in (r["filename"] for r in records[:6]):
        assert (fewer / "images" / name).read_bytes() == (out / "images" / name).read_bytes()
    scene = make_scene(3, 5, **{k: v for k, v in OPTIONS.items() if k != "seed"})
    assert scene.record() == records[5]


def _features(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band means, and band statistics with texture (spread, percentiles, NDVI, gradients)."""
    px = pixels.astype(np.float64)
    valid = pixels[0] != NODATA
    values = px[:, valid]
    means = values.mean(axis=1)
    ndvi = _ndvi(pixels)
    gy, gx = np.gradient(px, axis=(1, 2))
    gradient = np.hypot(gx, gy)[:, valid].mean(axis=1)
    rich = np.concatenate([np.log(means), np.log(values.std(axis=1) + 1),
                           np.log(np.percentile(values, [10, 50, 90], axis=1).ravel()),
                           [ndvi.mean(), ndvi.std(), (ndvi < 0).mean()], np.log(gradient + 1), gradient / means])
    return means, rich


def test_classes_need_texture_not_only_mean_colour():
    """Mean colour alone tells the classes apart poorly; band statistics with texture do it well."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import NearestCentroid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def dataset(seed, n):
        scenes = [make_scene(seed, i) for i in range(n)]
        means, rich = zip(*(_features(s.pixels) for s in scenes))
        return np.array(means), np.array(rich), np.array([CLASSES.index(s.name) for s in scenes])

    train_means, train_rich, y_train = dataset(0, 200)
    test_means, test_rich, y_test = dataset(1, 100)
    centroid = make_pipeline(StandardScaler(), NearestCentroid()).fit(train_means, y_train)
    linear_on_means = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train_means, y_train)
    linear_on_rich = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train_rich, y_train)
    assert (centroid.predict(test_means) == y_test).mean() < 0.6  # 0.44 at these seeds
    assert (linear_on_means.predict(test_means) == y_test).mean() < 0.65  # 0.49
    assert (linear_on_rich.predict(test_rich) == y_test).mean() > 0.85  # 0.92; chance is 0.1


def test_captions_name_the_class_as_the_zero_shot_prompts_do(generated):
    from domainclip.domains.remote_sensing.labels import SCENE_NAMES, scene_of

    _, _, records = generated
    for record in records:
        for caption in record["captions"]:
            assert set(caption) == {"en", "pt", "es"}
            for lang, sentence in caption.items():
                assert CLASS_NAMES[record["class"]][lang][0] in sentence.lower(), (lang, sentence)
                assert sentence[0].isupper() and sentence.endswith(".")
    for name in CLASSES:  # the scene suite names each class folder with the same words
        scene = scene_of(name)
        assert scene is not None, name
        for lang in ("en", "pt", "es"):
            assert CLASS_NAMES[name][lang][0] in SCENE_NAMES[scene][lang], (name, lang)


def test_translation_table_is_what_the_translate_command_reads(generated):
    from domainclip.domains.remote_sensing.translate import make_translator

    out, summary, records = generated
    english = sorted({c["en"] for r in records for c in r["captions"]})
    translator = make_translator(f"table:{out / TRANSLATION_FILE}")
    for lang in ("pt", "es"):
        translator.prepare_language(lang, english)
        translated = dict(zip(english, translator(english, lang)))
        assert all(translated[c["en"]] == c[lang] for r in records for c in r["captions"])
        assert summary["distinct_captions"][lang] == summary["distinct_captions"]["en"] == len(english)
    assert translated["An aerial view of a lake."] == "Una vista aérea de un lago."


def test_every_template_renders_in_every_language():
    rendered = 0
    for i in range(300):
        name = CLASSES[i % len(CLASSES)]
        facts = LAND_COVER[name](Canvas(48, np.random.default_rng([11, i])))
        for template in [*TEMPLATES[name], CLOUDS]:
            if template.applies(facts):
                texts = [render(template, name, facts, lang) for lang in ("en", "pt", "es")]
                assert all("{" not in t and "[" not in t and "  " not in t for t in texts), texts
                rendered += 1
    assert rendered > 300 * 6


def test_captions_follow_the_facts():
    facts = {"runways": 2, "crossing": True, "planes": 3, "taxiway": False, "terminal": True, "direction": "diagonal"}
    captions = describe("airport", facts, np.random.default_rng(0), count=20)
    english = {c["en"] for c in captions}
    assert "An airport with two runways." in english and "Two runways of the airport cross each other." in english
    assert not any("taxiway" in s or "no planes" in s or "long runway" in s for s in english)
    portuguese = {c["pt"] for c in captions}
    assert {"Um aeroporto com duas pistas.", "Três aviões estão estacionados no aeroporto."} <= portuguese
    assert len(describe("lake", {"colour": "dark", "around": "trees", "islands": 1}, np.random.default_rng(1))) == 5
    one = describe("river", {"around": "fields", "colour": "blue", "width": "wide", "winding": True, "bridge": False,
                             "direction": "north-south"}, np.random.default_rng(2), languages=("pt",))
    assert all(set(c) == {"en", "pt"} for c in one)


def test_english_captions_do_not_depend_on_the_other_languages(tmp_path):
    generate_scenes(tmp_path / "both", 10, progress=False, **OPTIONS)
    generate_scenes(tmp_path / "pt", 10, progress=False, languages=("pt",), **OPTIONS)
    assert (tmp_path / "both" / CAPTION_FILE).read_bytes() == (tmp_path / "pt" / CAPTION_FILE).read_bytes()
    assert set(json.loads((tmp_path / "pt" / TRANSLATION_FILE).read_text())) == {"pt"}


def test_scene_suite_reads_the_held_out_folder(generated):
    from domainclip.domains.remote_sensing.datasets.scenes import SceneFolder

    out, summary, _ = generated
    folder = SceneFolder(out / "scenes")
    assert folder.classes == sorted(c for c, k in summary["held_out_by_class"].items() if k)
    assert None not in folder.scenes
    sample = folder[0]
    assert sample["image"].mode == "RGB" and sample["image"].size == (32, 32)
    assert sample["meta"]["class"] == Path(sample["meta"]["path"]).parent.name


def test_bad_options_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="val_fraction \\+ test_fraction"):
        generate_scenes(tmp_path / "x", 5, val_fraction=0.6, test_fraction=0.5, progress=False)
    with pytest.raises(InputError, match="size"):
        generate_scenes(tmp_path / "y", 5, size=16, progress=False)
    with pytest.raises(InputError, match="languages"):
        generate_scenes(tmp_path / "z", 5, languages=("fr",), progress=False)
    assert not (tmp_path / "x").exists()
