"""Scene names and prompt templates: every language names every class, every template takes one name."""

from __future__ import annotations

import pytest

from domainclip.domains.remote_sensing import labels

#: Scenes the datasets do not use (generated scenes).
EXTRA_SCENES = {"water", "road"}


def test_every_language_names_every_scene():
    assert labels.LANGUAGES == ("en", "pt", "es", "fr", "de", "nl", "it", "zh", "ko", "ru")
    for scene, names in labels.SCENE_NAMES.items():
        assert tuple(names) == labels.LANGUAGES, scene
        for lang, name in names.items():
            assert name and name == name.strip() and "{" not in name and "_" not in name, (scene, lang, name)
    used = {scene for classes in labels.DATASET_CLASSES.values() for scene in classes.values()}
    assert set(labels.SCENE_NAMES) == used | EXTRA_SCENES


def test_every_language_has_every_template():
    assert set(labels.TEMPLATES) == set(labels.LANGUAGES)
    for lang, templates in labels.TEMPLATES.items():
        assert len(templates) == 5, lang
        assert all(t.count("{}") == 1 and "{" not in t.replace("{}", "") for t in templates), lang
        assert len(set(templates)) == 5, lang
    assert labels.templates("en", "single") == ["a satellite photo of {}."]  # RemoteCLIP's template
    assert labels.templates("ko") == list(labels.TEMPLATES["ko"])


@pytest.mark.parametrize(("dataset", "count"), [("eurosat", 10), ("resisc45", 45), ("aid", 30), ("whu_rs19", 19)])
def test_each_dataset_has_its_classes_named_apart_in_every_language(dataset, count):
    classes = labels.DATASET_CLASSES[dataset]
    assert len(classes) == count and len(set(classes.values())) == count
    for lang in labels.LANGUAGES:
        names = [labels.SCENE_NAMES[scene][lang] for scene in classes.values()]
        assert len(set(names)) == count, (dataset, lang, sorted(n for n in names if names.count(n) > 1))
        prompts = {t.format(n) for t in labels.TEMPLATES[lang] for n in names}
        assert len(prompts) == 5 * count


def test_published_english_names_are_kept():
    # CLIP's EuroSAT and RESISC45 class names (used by RemoteCLIP and CLIP_benchmark)
    eurosat = [labels.SCENE_NAMES[s]["en"] for s in labels.DATASET_CLASSES["eurosat"].values()]
    assert eurosat == ["annual crop land", "forest", "brushland or shrubland", "highway or road",
                       "industrial buildings or commercial buildings", "pasture land", "permanent crop land",
                       "residential buildings or homes or apartments", "river", "lake or sea"]
    resisc45 = [labels.SCENE_NAMES[s]["en"] for s in labels.DATASET_CLASSES["resisc45"].values()]
    assert resisc45 == [folder.replace("_", " ") for folder in labels.DATASET_CLASSES["resisc45"]]


def test_scene_of_reads_folder_names_of_any_layout():
    for dataset in ("resisc45", "aid", "whu_rs19"):
        for folder, scene in labels.DATASET_CLASSES[dataset].items():
            assert labels.scene_of(folder) == scene, (dataset, folder)
    # the generated held-out classes, other spellings, plurals; EuroSAT's own folders where no other set has them
    assert [labels.scene_of(f) for f in ("airport", "beach", "desert", "farmland", "forest", "highway", "industrial",
                                         "lake", "residential", "river")] == [
        "airport", "beach", "desert", "farmland", "forest", "highway_or_road", "industrial_area", "lake",
        "residential", "river"]
    assert labels.scene_of("Sea_Lake") == "lake_or_sea" and labels.scene_of("storage-tanks") == "storage_tank"
    assert labels.scene_of("roads") == "road" and labels.scene_of("Football Field") == "football_field"
    assert labels.scene_of("volcano") is None
    assert labels.display_name("mixedUse_zone") == "mixed use zone"
    assert labels.display_name("Thermal-Power station") == "thermal power station"
