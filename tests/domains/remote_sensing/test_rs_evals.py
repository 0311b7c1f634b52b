"""Remote sensing eval suites: RemoteCLIP-protocol retrieval and zero-shot scenes, per language.

Values are checked two ways: against a faithful copy of RemoteCLIP's computation on hand-made
embeddings, and with an oracle model whose image embedding is the fixture's class colour and whose
text embedding is the class (or caption) its prompt names, so every number is known; a tiny random
model (``dc-test-vit``) runs the suites through the real CLI.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from domainclip.cli import main
from domainclip.core.checks import SUITE_ENGINE_ARGS
from domainclip.core.data.corrupt import CorruptSampleError
from domainclip.core.errors import DatasetNotFoundError, InputError
from domainclip.core.eval.suites import get_suite, run_suite
from domainclip.core.options import check_options
from domainclip.domains.remote_sensing import evals, labels
from domainclip.domains.remote_sensing.datasets import scenes
from tests.core.test_eval_retrieval import cb_batchify as batchify
from tests.core.test_eval_retrieval import cb_recall_at_k as recall_at_k

_spec = importlib.util.spec_from_file_location("rs_scene_fixtures", Path(__file__).with_name("data_scenes.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)


# --------------------------------------------------------------------------------------------- RemoteCLIP's code
# Faithful copy of RemoteCLIP's retrieval computation: ChenDelong1999/RemoteCLIP, remoteclip_retrieval.py,
# retrieval_evaluation() from the scores on (its embedding loop left out). The two functions it imports from
# clip_benchmark/metrics/zeroshot_retrieval.py (recall_at_k, batchify) are the copies the core's retrieval tests
# already hold.
def remoteclip_reference(images_emb, texts_emb, texts_image_index, batch_size, recall_k_list=(1, 5, 10)):
    device = "cpu"
    scores = texts_emb @ images_emb.t()
    positive_pairs = torch.zeros_like(scores, dtype=bool)
    positive_pairs[torch.arange(len(scores)), texts_image_index] = True
    metrics = {}
    for recall_k in recall_k_list:
        metrics[f"retrieval-image2text-R@{recall_k}"] = (batchify(recall_at_k, scores.T, positive_pairs.T, batch_size,
                                                                  device,
                                                                  k=recall_k) > 0).float().mean().item() * 100

    for recall_k in recall_k_list:
        metrics[f"retrieval-text2image-R@{recall_k}"] = (batchify(recall_at_k, scores, positive_pairs, batch_size,
                                                                  device,
                                                                  k=recall_k) > 0).float().mean().item() * 100

    metrics["retrieval-mean-recall"] = np.mean(list(metrics.values()))

    for key, item in metrics.items():
        metrics[key] = round(float(item), 2)

    return metrics


def as_remoteclip(metrics, ks=(1, 5, 10)):
    """Our fractions in the script's names, as percentages rounded like it rounds them."""
    out = {f"retrieval-image2text-R@{k}": round(metrics[f"text_retrieval_recall@{k}"] * 100, 2) for k in ks}
    out |= {f"retrieval-text2image-R@{k}": round(metrics[f"image_retrieval_recall@{k}"] * 100, 2) for k in ks}
    out["retrieval-mean-recall"] = round(metrics["mean_recall"] * 100, 2)
    return out


def several_captions(seed, n_image=40, d=16):
    """Random embeddings with 1-5 captions per image (RSICD has 5), some caption texts repeated word for word."""
    g = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(n_image, d, generator=g), dim=-1)
    per_image = torch.randint(1, 6, (n_image,), generator=g)
    t2i = torch.repeat_interleave(torch.arange(n_image), per_image)
    texts = F.normalize(images[t2i] + 1.2 * torch.randn(len(t2i), d, generator=g), dim=-1)
    copies = torch.randperm(len(t2i), generator=g)[:8]
    texts[copies] = texts[torch.randint(0, len(t2i), (8,), generator=g)]  # ties, ranked by torch.topk as theirs
    return images, texts, t2i


def test_remoteclip_recall_on_a_hand_made_set():
    # 3 images (one-hot), 4 captions; image 0 has two. Rows are the captions' scores against images 0, 1, 2.
    texts = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.2, 0.95], [0.5, 0.4, 0.0], [0.2, 0.8, 0.3]])
    out = evals.remoteclip_recall(torch.eye(3), texts, torch.tensor([0, 0, 1, 2]), ks=(1, 2, 3))
    # text -> image: ranks of each caption's image 1, 3, 2, 2
    assert [out[f"image_retrieval_recall@{k}"] for k in (1, 2, 3)] == pytest.approx([1 / 4, 3 / 4, 1.0])
    # image -> text, best caption of each image: image 0 via caption 0 (0.9) first; image 1's caption (0.4)
    # behind caption 3 (0.8); image 2's (0.3) behind caption 1 (0.95)
    assert [out[f"text_retrieval_recall@{k}"] for k in (1, 2, 3)] == pytest.approx([1 / 3, 1.0, 1.0])
    assert out["mean_recall"] == pytest.approx((1 / 4 + 3 / 4 + 1 + 1 / 3 + 1 + 1) / 6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batch_size", [7, 64])
def test_remoteclip_recall_matches_their_script(seed, batch_size):
    images, texts, t2i = several_captions(seed)
    ours = evals.remoteclip_recall(images, texts, t2i)
    assert as_remoteclip(ours) == remoteclip_reference(images, texts, t2i.tolist(), batch_size)
    assert ours["mean_recall"] == pytest.approx(np.mean([v for k, v in ours.items() if "@" in k]))
    assert 0.0 < ours["image_retrieval_recall@1"] < ours["image_retrieval_recall@10"] < 1.0


# --------------------------------------------------------------------------------------------- the oracle model
class Oracle(torch.nn.Module):
    """Image embedding: one-hot of the nearest palette colour; text embedding: a row of ``text_table``.

    ``tokenizer`` turns each text into its row number in ``text_table`` (``rows[text]``); every image
    the model embeds is counted in ``images_seen``.
    """

    def __init__(self, palette, text_table, rows):
        super().__init__()
        self.palette = torch.tensor(palette, dtype=torch.float32)
        self.text_table, self.rows = text_table, rows
        self.images_seen = 0
        self.texts_seen: list[str] = []

    def encode_image(self, images, normalize=True):
        self.images_seen += images.shape[0]
        mean = images.float().mean(dim=(2, 3))
        nearest = torch.cdist(mean, self.palette).argmin(dim=1)
        return F.one_hot(nearest, self.text_table.shape[1]).float()

    def encode_text(self, tokens, normalize=True):
        return self.text_table[tokens[:, 0]]

    def tokenizer(self, texts):
        self.texts_seen.extend(texts)
        return torch.tensor([[self.rows[t]] for t in texts])


def raw_pixels(image):
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)


def scene_oracle(dataset_classes, n_classes):
    """An oracle whose prompt for class ``k`` in any language and template embeds as one-hot ``k``."""
    rows = {}
    for lang in labels.LANGUAGES:
        for k, folder in enumerate(dataset_classes):
            scene = dataset_classes[folder] if isinstance(dataset_classes, dict) else labels.scene_of(folder)
            name = labels.SCENE_NAMES[scene][lang] if scene else labels.display_name(folder)
            for template in labels.TEMPLATES[lang]:
                assert rows.setdefault(template.format(name), k) == k
    return Oracle(fixture.PALETTE[:n_classes], torch.eye(n_classes), rows)


# --------------------------------------------------------------------------------------------- retrieval suite
def caption_set():
    """Twelve images with captions in en and pt (image 11 has no pt caption), and hand-made caption embeddings."""
    captions = []
    for i in range(12):
        entry = {"en": [f"scene {i} caption {c}" for c in range(1 + i % 3)]}
        if i != 11:
            entry["pt"] = [f"cena {i} legenda {c}" for c in range(2)]
        captions.append(entry)
    texts = [t for c in captions for lang in ("en", "pt") for t in c.get(lang, [])]
    g = torch.Generator().manual_seed(3)
    owners = torch.tensor([i for i, c in enumerate(captions) for lang in ("en", "pt") for _ in c.get(lang, [])])
    table = F.normalize(F.one_hot(owners, 12).float() + 0.6 * torch.randn(len(texts), 12, generator=g), dim=-1)
    return captions, texts, table


def test_retrieval_suite_scores_each_language_as_remoteclip_with_images_embedded_once(tmp_path):
    captions, texts, table = caption_set()
    colours = fixture.PALETTE[:12]
    data = fixture.write_caption_shards(tmp_path / "heldout", colours + fixture.PALETTE[12:13],
                                        captions + [{"en": ["broken"]}], broken=[12])
    model = Oracle(colours, table, {t: i for i, t in enumerate(texts)})
    with pytest.warns(UserWarning, match=r"remote_sensing/retrieval: skipped 1 sample.*bad_image: 1"):
        results = run_suite(model, model.tokenizer, raw_pixels, "remote_sensing/retrieval", data=data,
                            out_dir=tmp_path / "out", batch_size=4)
    assert list(results) == ["retrieval/en", "retrieval/pt"]
    assert model.images_seen == 12  # once for both languages (the broken one is never embedded)
    for lang, images in (("en", range(12)), ("pt", range(11))):
        rows = [texts.index(t) for i in images for t in captions[i][lang]]
        t2i = [j for j, i in enumerate(images) for _ in captions[i][lang]]
        expected = remoteclip_reference(torch.eye(12)[list(images)], table[rows], t2i, batch_size=4)
        got = results[f"retrieval/{lang}"]
        assert as_remoteclip(got) == expected
        assert got["num_images"] == len(images) and got["num_texts"] == len(rows)
        assert got["num_skipped_images"] == 1
        assert (tmp_path / "out" / f"retrieval_{lang}_examples.png").stat().st_size > 1000
    # the languages named are scored in that order, and a language the shards lack is one line
    model = Oracle(colours, table, {t: i for i, t in enumerate(texts)})
    with pytest.warns(UserWarning, match="bad_image: 1"):
        out = get_suite("remote_sensing/retrieval")(model, model.tokenizer, raw_pixels, data=data,
                                                    out_dir=tmp_path / "o2", device="cpu", batch_size=8,
                                                    languages=["pt"], ks=[1, 2])
    assert list(out) == ["retrieval/pt"] and set(out["retrieval/pt"]) >= {"image_retrieval_recall@2", "mean_recall"}
    with pytest.raises(InputError, match=r"no caption in de under .*heldout \(its captions are in en, pt\)"), \
            pytest.warns(UserWarning, match="bad_image: 1"):
        get_suite("remote_sensing/retrieval")(model, model.tokenizer, raw_pixels, data=data, out_dir=tmp_path / "o3",
                                              device="cpu", batch_size=8, languages=("de",))


def test_retrieval_suite_through_the_cli_with_a_tiny_random_model(tmp_path):
    captions, _, _ = caption_set()
    data = fixture.write_caption_shards(tmp_path / "heldout", fixture.PALETTE[:12], captions)
    out = tmp_path / "r.json"
    assert main(["eval", "--model", "dc-test-vit", "--suite", "remote_sensing/retrieval", "--data", str(data),
                 "--out", str(out), "--batch-size", "4"]) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"retrieval/en", "retrieval/pt"}
    for task in results.values():
        recalls = [v for k, v in task.items() if "recall@" in k]
        assert len(recalls) == 6 and all(0.0 <= v <= 1.0 for v in recalls)
        assert task["mean_recall"] == pytest.approx(np.mean(recalls))
        assert task["image_retrieval_recall@1"] <= task["image_retrieval_recall@5"] <= task["image_retrieval_recall@10"]
    assert results["retrieval/en"]["num_texts"] == sum(len(c["en"]) for c in captions)


# --------------------------------------------------------------------------------------------- adapters
@pytest.mark.parametrize("dataset", ["eurosat", "resisc45", "aid", "whu_rs19"])
def test_scene_adapters_read_the_public_layouts(tmp_path, dataset):
    top = fixture.write_scene_dataset(tmp_path, dataset, per_class=2)
    folders = list(labels.DATASET_CLASSES[dataset])
    for root in (tmp_path, top):  # the folder the archive was unpacked into, or the top folder itself
        assert scenes.detect_scene_dataset(root) == dataset
        ds = scenes.SCENE_DATASETS[dataset](root)
        assert ds.classes == folders and len(ds) == 2 * len(folders)
        assert ds.scenes == tuple(labels.DATASET_CLASSES[dataset].values())
    assert all(ds.classes[label] == Path(path).parent.name for path, label in ds.samples)
    last = str(top / folders[-1] / fixture.file_name(dataset, folders[-1], 2))
    item = ds[[path for path, _ in ds.samples].index(last)]
    assert item["label"] == len(folders) - 1 and item["meta"]["class"] == folders[-1]
    assert isinstance(item["image"], Image.Image) and item["image"].mode == "RGB"


def test_eurosat_reads_the_original_archive_layout(tmp_path):
    fixture.write_scene_dataset(tmp_path / "eurosat", "eurosat", per_class=1, top="2750")
    assert scenes.detect_scene_dataset(tmp_path / "eurosat") == "eurosat"
    assert len(scenes.EuroSAT(tmp_path / "eurosat")) == 10


def test_scene_adapters_name_what_is_wrong_with_a_layout(tmp_path):
    top = fixture.write_scene_dataset(tmp_path, "aid", per_class=1)
    (top / "StorageTanks").rename(top / "Storagetanks")
    (top / "Storagetanks" / ".DS_Store").write_bytes(b"\0")
    (top / "__MACOSX").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"lacks class folder\(s\) StorageTanks; has 'Storagetanks' "
                                                   r"\(did you mean 'StorageTanks'\?\)"):
        scenes.AID(tmp_path)
    folder = scenes.SceneFolder(top)  # any folder-per-class layout: hidden entries ignored
    assert len(folder.classes) == 30 and "__MACOSX" not in folder.classes and len(folder) == 30
    assert folder.scenes[folder.classes.index("Storagetanks")] == "storage_tank"
    for f in (top / "Airport").iterdir():
        f.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"Found no valid file for the classes Airport.*\.jpg"):
        scenes.SceneFolder(top)
    with pytest.raises(DatasetNotFoundError, match="scene dataset not found: .*missing is not a folder"):
        scenes.detect_scene_dataset(tmp_path / "missing")


def test_geotiff_scenes_are_read_through_rasterio_with_their_bands(tmp_path):
    from affine import Affine

    from domainclip.domains.remote_sensing.raster import write_geotiff

    rng = np.random.default_rng(0)
    bands = rng.integers(0, 4000, size=(4, 8, 8)).astype(np.uint16)
    bands[3] = 60000  # a near-infrared band, much brighter than the visible ones
    path = tmp_path / "scene.tif"
    write_geotiff(path, bands, crs="EPSG:32633", transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4600000.0),
                  tile=None)
    rgb = np.asarray(scenes.load_scene_image(str(path), bands=(3, 2, 1)))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    # each band stretched from its 2nd to 98th percentile: the order of the pixels is kept band by band
    for channel, band in enumerate((3, 2, 1)):
        values, source = rgb[..., channel].ravel().astype(int), bands[band - 1].ravel().astype(int)
        assert np.all(np.diff(values[np.argsort(source, kind="stable")]) >= 0)
    jpg = tmp_path / "scene.jpg"
    Image.fromarray(rgb).save(jpg)
    assert np.array_equal(np.asarray(scenes.load_scene_image(str(jpg))), np.asarray(Image.open(jpg).convert("RGB")))
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CorruptSampleError, match="bad_image: cannot be decoded: cannot identify image file"):
        scenes.load_scene_image(str(tmp_path / "bad.jpg"))


# --------------------------------------------------------------------------------------------- scene suite
@pytest.mark.parametrize("dataset", ["eurosat", "resisc45", "aid", "whu_rs19"])
def test_scene_suite_is_exact_for_an_oracle_in_every_language(tmp_path, dataset):
    fixture.write_scene_dataset(tmp_path / "data", dataset, per_class=2)
    classes = labels.DATASET_CLASSES[dataset]
    model = scene_oracle(classes, len(classes))
    results = run_suite(model, model.tokenizer, raw_pixels, "remote_sensing/scenes", data=tmp_path / "data",
                        out_dir=tmp_path / "out", batch_size=16)
    assert list(results) == [f"scenes/{lang}/zeroshot_classification" for lang in labels.LANGUAGES]
    for metrics in results.values():
        assert metrics["acc1"] == 1.0 and metrics["balanced_accuracy"] == 1.0
        assert metrics["num_samples"] == 2 * len(classes) and metrics["num_skipped_images"] == 0
    assert model.images_seen == 2 * len(classes)  # embedded once for all ten languages
    assert len(model.texts_seen) == len(classes) * 5 * 10  # the five templates of each language
    for lang in labels.LANGUAGES:
        assert (tmp_path / "out" / f"scenes_{lang}_confusion_matrix.png").stat().st_size > 1000


def test_scene_suite_options_change_what_is_scored(tmp_path, monkeypatch):
    top = fixture.write_scene_dataset(tmp_path, "eurosat", per_class=3)
    classes = labels.DATASET_CLASSES["eurosat"]
    model = scene_oracle(classes, 10)
    suite = get_suite("remote_sensing/scenes")
    results = suite(model, model.tokenizer, raw_pixels, data=top, out_dir=tmp_path / "out", device="cpu",
                    batch_size=7, dataset="eurosat", languages=["pt", "zh"], prompts="single")
    assert list(results) == ["scenes/pt/zeroshot_classification", "scenes/zh/zeroshot_classification"]
    assert model.texts_seen[:2] == ["uma foto de satélite de terra de cultivo anual.",
                                    "uma foto de satélite de floresta."]
    assert len(model.texts_seen) == 2 * 10  # one template
    # two Portuguese names swapped: exactly those two classes' six images go wrong in pt, nowhere else
    model = scene_oracle(classes, 10)
    names = labels.SCENE_NAMES
    monkeypatch.setitem(names["forest"], "pt", "rio")
    monkeypatch.setitem(names["river"], "pt", "floresta")
    results = suite(model, model.tokenizer, raw_pixels, data=top, out_dir=tmp_path / "out2", device="cpu",
                    batch_size=7, languages=["en", "pt"])
    assert results["scenes/en/zeroshot_classification"]["acc1"] == 1.0
    assert results["scenes/pt/zeroshot_classification"]["acc1"] == pytest.approx(24 / 30)


def test_scene_suite_options_are_checked(tmp_path):
    with pytest.raises(InputError, match=r"languages: item 1: must be one of en, pt, es, fr, de, nl, it, zh, ko, ru"):
        check_options(evals.scene_suite, {"languages": ["en", "xx"]}, where="options", skip=SUITE_ENGINE_ARGS)
    with pytest.raises(InputError, match="dataset: must be one of auto, eurosat, resisc45, aid, whu_rs19, folder"):
        check_options(evals.scene_suite, {"dataset": "eurosatt"}, where="options", skip=SUITE_ENGINE_ARGS)
    with pytest.raises(InputError, match=r"remote_sensing/retrieval.ks: item 1: must be an integer >= 1"):
        evals.retrieval_suite(None, None, None, data=tmp_path, out_dir=tmp_path, device="cpu", batch_size=1,
                              ks=[1, 0])
    with pytest.raises(InputError, match="remote_sensing/scenes.prompts: must be one of single, ensemble"):
        evals.scene_suite(None, None, None, data=tmp_path, out_dir=tmp_path, device="cpu", batch_size=1,
                          prompts="many")


def test_scene_suite_on_a_folder_set_names_classes_it_knows(tmp_path):
    folders = ["forest", "lake", "residential", "mixedUse_zone"]  # the last names no scene of the tables
    names = {f: [f"{f}_{n}.png" for n in range(2)] for f in folders}
    root = fixture.write_class_folders(tmp_path / "heldout", folders, 2, names)
    (root / "lake" / "lake_9.jpg").write_bytes(b"not a jpeg")
    model = scene_oracle(folders, 4)
    with pytest.warns(UserWarning) as caught:
        results = run_suite(model, model.tokenizer, raw_pixels, "remote_sensing/scenes", data=root,
                            out_dir=tmp_path / "out", batch_size=3)
    messages = [str(w.message) for w in caught]
    assert any(re.search(r"class folder\(s\) mixedUse_zone .* no name in pt, es, fr, de, nl, it, zh, ko, ru; "
                         r"evaluated in en only", m) for m in messages), messages
    assert any("skipped 1 sample(s) that cannot be decoded (bad_image: 1; e.g. " in m and "lake_9.jpg" in m
               for m in messages), messages
    assert list(results) == ["scenes/en/zeroshot_classification"]
    en = results["scenes/en/zeroshot_classification"]
    assert en["acc1"] == 1.0 and en["num_samples"] == 8 and en["num_skipped_images"] == 1
    assert "a satellite photo of mixed use zone." in model.texts_seen
    with pytest.raises(InputError, match=r"no name in pt; evaluate them in en \(languages: \[en\]\)"):
        get_suite("remote_sensing/scenes")(model, model.tokenizer, raw_pixels, data=root, out_dir=tmp_path / "o",
                                           device="cpu", batch_size=3, languages=["en", "pt"])


def test_scene_suite_with_no_decodable_image_is_one_error(tmp_path):
    for folder in ("forest", "lake"):
        (tmp_path / "scenes" / folder).mkdir(parents=True)
        (tmp_path / "scenes" / folder / f"{folder}_1.jpg").write_bytes(b"truncated")
    model = scene_oracle(["forest", "lake"], 2)
    nothing = r"(?s)remote_sensing/scenes: no decodable image in .*scenes\n.*bad_image: 2 \(e\.g\. \S*forest_1.jpg: "
    with pytest.raises(InputError, match=nothing):
        get_suite("remote_sensing/scenes")(model, model.tokenizer, raw_pixels, data=tmp_path / "scenes",
                                           out_dir=tmp_path / "out", device="cpu", batch_size=4)
    assert model.images_seen == 0


def test_scene_suite_through_the_cli_with_a_tiny_random_model(tmp_path):
    fixture.write_scene_dataset(tmp_path / "whu", "whu_rs19", per_class=2)
    out = tmp_path / "scenes.json"
    assert main(["eval", "--model", "dc-test-vit", "--suite", "remote_sensing/scenes", "--data",
                 str(tmp_path / "whu"), "--out", str(out), "--batch-size", "16"]) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {f"scenes/{lang}/zeroshot_classification" for lang in labels.LANGUAGES}
    for metrics in results.values():
        assert metrics["num_samples"] == 38 and 0.0 <= metrics["acc1"] <= metrics["acc5"] <= 1.0
    assert (tmp_path / "scenes_files" / "scenes_ko_confusion_matrix.png").is_file()
