"""prepare biomed concepts: embed figures, PCA + k-means, label clusters by prototypes or zero-shot prompts."""

from __future__ import annotations

import importlib.util
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.reader import iter_shard
from domainclip.core.errors import InputError, InputNotFoundError, NothingWrittenError
from domainclip.core.eval.features import encode_inputs, encode_texts
from domainclip.core.models.loading import load_model
from domainclip.domains.biomed.concepts import annotate_concepts, load_taxonomy
from domainclip.domains.biomed.taxonomy import prompts as type_prompts

_spec = importlib.util.spec_from_file_location("bio_data_concepts", Path(__file__).with_name("data_concepts.py"))
data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data)

MODEL = "dc-test-vit"  # randomly initialised, seeded: any model tells solid colours apart


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("concepts")
    truth = data.write_colour_shards(root / "in", bad=True)
    prototypes = data.write_prototypes(root / "prototypes")
    return root / "in", prototypes, truth


@pytest.fixture(scope="module")
def by_prototypes(figures, tmp_path_factory) -> tuple[Path, dict]:
    shards, prototypes, _ = figures
    out = tmp_path_factory.mktemp("by_prototypes") / "out"
    report = annotate_concepts(out, [shards], model=MODEL, prototypes=prototypes, clusters=4, pca_dim=8,
                               progress=False)
    return out, report


def _samples(folder: Path) -> dict[str, dict]:
    found = {}
    for shard in sorted(folder.glob("figures-*.tar")):
        for raw in iter_shard(str(shard), CorruptTally()):
            found[raw["__key__"]] = raw
    return found


def test_prototypes_label_every_separable_figure_right(figures, by_prototypes):
    shards, _, truth = figures
    out, report = by_prototypes
    written = _samples(out)
    assert set(written) == set(truth)  # the broken image and the figure without json are not written
    labels = {key: json.loads(raw["json"])["concept"] for key, raw in written.items()}
    assert {key: c["label"] for key, c in labels.items()} == truth
    assert all(c["from"] == "cluster" and 0.5 < c["score"] <= 1.0 + 1e-3 for c in labels.values())
    # one cluster per colour, each named after its type
    clusters = {}
    for key, c in labels.items():
        clusters.setdefault(c["cluster"], set()).add(truth[key])
    assert sorted(len(types) for types in clusters.values()) == [1, 1, 1, 1]
    assert report["mode"] == "prototypes" and report["prototypes"] == dict.fromkeys(data.COLOURS, 3)
    assert report["skipped"] == {"bad_image": 1, "bad_json": 1} and report["figures"] == 48
    # members copied unchanged, json fields kept
    originals = _samples(shards)
    for key, raw in written.items():
        assert raw["png"] == originals[key]["png"] and raw["txt"] == originals[key]["txt"]
        fields = json.loads(raw["json"])
        assert {k: v for k, v in fields.items() if k != "concept"} == json.loads(originals[key]["json"])
    assert (out / "articles.jsonl").read_text() == (shards / "articles.jsonl").read_text()


def test_distribution_table_and_chart_sum_to_the_total(by_prototypes):
    out, report = by_prototypes
    distribution = report["distribution"]
    assert sum(r["figures"] for r in distribution.values()) == report["figures"] == 48
    assert sum(r["clusters"] for r in distribution.values()) == report["clusters"] == 4
    assert sum(r["share"] for r in distribution.values()) == pytest.approx(1.0)
    assert distribution["chart"] == {"figures": 12, "share": 0.25, "clusters": 1}
    assert json.loads((out / "concepts-report.json").read_text())["distribution"] == distribution
    rows = re.findall(r"^\| (\w+) \| (\d+) \| ([\d.]+)% \| (\d+) \|$", (out / "concepts-report.md").read_text(), re.M)
    assert {name: int(n) for name, n, _, _ in rows} == {name: 12 for name in data.COLOURS}
    assert "| **total** | 48 | 100.0% | 4 |" in (out / "concepts-report.md").read_text()
    with Image.open(out / "concepts-distribution.png") as chart:
        assert chart.size[0] > 400 and chart.size[1] > 300


def test_same_seed_same_bytes_and_memory_bounded_path(figures, by_prototypes, tmp_path):
    shards, prototypes, truth = figures
    out, report = by_prototypes
    again = annotate_concepts(tmp_path / "again", [shards], model=MODEL, prototypes=prototypes, clusters=4, pca_dim=8,
                              progress=False)
    assert [p.read_bytes() for p in sorted(out.glob("*.tar"))] == [
        p.read_bytes() for p in sorted((tmp_path / "again").glob("*.tar"))
    ]
    assert {k: v for k, v in again.items() if k != "out"} == {k: v for k, v in report.items() if k != "out"}
    # PCA in chunks of 8 figures, k-means fitted on a sample of 16 then refined over every chunk
    bounded = annotate_concepts(tmp_path / "bounded", [shards], model=MODEL, prototypes=prototypes, clusters=4,
                                pca_dim=8, chunk_rows=8, kmeans_sample=16, batch_size=8, progress=False)
    assert bounded["pca_chunks"] == 6 and bounded["pca_rows_fitted"] == 48
    assert bounded["kmeans_sample"] == 16 and bounded["kmeans_refined"] is True
    labels = {k: json.loads(raw["json"])["concept"]["label"] for k, raw in _samples(tmp_path / "bounded").items()}
    assert labels == truth
    assert not list((tmp_path / "bounded").glob(".concepts-*"))  # the scratch files are gone


def test_a_figure_far_from_its_cluster_takes_its_own_type(figures, tmp_path):
    shards, prototypes, truth = figures
    one = annotate_concepts(tmp_path / "one", [shards], model=MODEL, prototypes=prototypes, clusters=1, pca_dim=4,
                            progress=False)
    concepts = {k: json.loads(raw["json"])["concept"] for k, raw in _samples(tmp_path / "one").items()}
    cluster_type = one["per_cluster"][0]["label"]
    assert {k: c["label"] for k, c in concepts.items()} == truth  # three colours overrode the one cluster
    assert one["overridden"] == 36 == sum(c["from"] == "figure" for c in concepts.values())
    assert all(c["from"] == "cluster" for k, c in concepts.items() if truth[k] == cluster_type)
    assert one["distribution"][cluster_type]["clusters"] == 1
    kept = annotate_concepts(tmp_path / "kept", [shards], model=MODEL, prototypes=prototypes, clusters=1, pca_dim=4,
                             override_margin=2.0, progress=False)
    assert kept["overridden"] == 0 and kept["distribution"][cluster_type]["figures"] == 48


def test_zero_shot_cluster_score_is_the_mean_prompt_similarity(figures, tmp_path):
    shards, _, _ = figures
    report = annotate_concepts(tmp_path / "zs", [shards], model=MODEL, clusters=3, pca_dim=6, override_margin=2.0,
                               progress=False)
    assert report["mode"] == "zero_shot" and len(report["types"]) == 8
    model, preprocess, tokenizer = load_model(MODEL)
    written = _samples(tmp_path / "zs")
    keys = sorted(written)
    images = torch.stack([preprocess(Image.open(io.BytesIO(written[k]["png"])).convert("RGB"))
                          for k in keys])
    with torch.no_grad():
        features = encode_inputs(model, images).numpy()
    concepts = [json.loads(written[k]["json"])["concept"] for k in keys]
    for cluster in report["per_cluster"]:
        rows = [i for i, c in enumerate(concepts) if c["cluster"] == cluster["cluster"]]
        assert len(rows) == cluster["size"] and all(concepts[i]["label"] == cluster["label"] for i in rows)
        for name in (cluster["label"], "diagram"):
            prompts = encode_texts(model, tokenizer, type_prompts(name)).numpy()
            expected = float((features[rows] @ prompts.T).mean())
            assert cluster["scores"][name] == pytest.approx(expected, abs=2e-3)  # float16 scratch features
        assert cluster["scores"][cluster["label"]] == max(cluster["scores"].values())
        own = (features[rows[0]] @ encode_texts(
            model, tokenizer, type_prompts(cluster["label"])).numpy().T).mean()
        assert concepts[rows[0]]["score"] == pytest.approx(float(own), abs=2e-3)
    assert sum(r["figures"] for r in report["distribution"].values()) == 48
    assert np.isclose(sum(r["share"] for r in report["distribution"].values()), 1.0)


def test_taxonomy_file_replaces_the_types(figures, tmp_path):
    shards, _, _ = figures
    file = tmp_path / "taxonomy.json"
    file.write_text(json.dumps({"types": [{"name": "warm", "words": "a red or yellow image"},
                                          {"name": "cold", "words": "a blue or green image"}],
                                "templates": ["{}.", "a picture of {}."]}))
    report = annotate_concepts(tmp_path / "tax", [shards], model=MODEL, taxonomy=file, clusters=2, pca_dim=4,
                               progress=False)
    assert report["types"] == ["warm", "cold"] and set(report["distribution"]) == {"warm", "cold"}
    assert load_taxonomy(file).templates == ("{}.", "a picture of {}.")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        (json.dumps({"types": []}), "non-empty list under 'types'"),
        (json.dumps({"types": [{"name": "a"}]}), r"types\[0\] needs non-empty strings 'name' and 'words'"),
        (json.dumps({"types": [{"name": "a", "words": "x"}, {"name": "a", "words": "y"}]}), "type names repeat: a"),
        (json.dumps({"types": [{"name": "a", "words": "x"}], "templates": ["no slot"]}), "one {} each"),
    ],
)
def test_bad_taxonomy_file_is_one_line(tmp_path, content, message):
    file = tmp_path / "t.json"
    file.write_text(content)
    with pytest.raises(InputError, match=message):
        load_taxonomy(file)


def test_user_mistakes_are_clear(figures, tmp_path):
    shards, _, _ = figures
    bad = data.write_prototypes(tmp_path / "protos", types=("chart",))
    (bad / "charts").mkdir()
    with pytest.raises(InputError, match=r"charts is no figure type of the taxonomy; .*chart, diagram"):
        annotate_concepts(tmp_path / "o1", [shards], model=MODEL, prototypes=bad, clusters=2, pca_dim=4, progress=False)
    with pytest.raises(InputNotFoundError, match="prototypes folder .* does not exist"):
        annotate_concepts(tmp_path / "o2", [shards], model=MODEL, prototypes=tmp_path / "none", clusters=2, pca_dim=4,
                          progress=False)
    empty = tmp_path / "empty_protos"
    (empty / "chart").mkdir(parents=True)
    with pytest.raises(InputError, match="holds no example images"):
        annotate_concepts(tmp_path / "o3", [shards], model=MODEL, prototypes=empty, clusters=2, pca_dim=4,
                          progress=False)
    with pytest.raises(InputError, match="inside the output folder"):
        annotate_concepts(shards, [shards], model=MODEL, clusters=2, pca_dim=4, progress=False)


def test_nothing_usable_is_nothing_written(tmp_path):
    from domainclip.core.data.writer import ShardWriter

    with ShardWriter(tmp_path / "in", prefix="figures") as writer:
        writer.write({"__key__": "PMC1_F1", "png": b"junk", "json": b"{}"})
        writer.write({"__key__": "PMC1_F2", "txt": "no image", "json": b"{}"})
    with pytest.raises(NothingWrittenError, match=r"biomed/concepts wrote no figures .*bad_image: 1.*no_image: 1"):
        annotate_concepts(tmp_path / "out", [tmp_path / "in"], model=MODEL, clusters=2, pca_dim=4, progress=False)


def test_a_saved_model_folder_is_used(figures, tmp_path):
    from domainclip.core.hub import save_model_folder
    from domainclip.core.models import create_model

    shards, prototypes, truth = figures
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        folder = save_model_folder(create_model(MODEL), tmp_path / "model")
    report = annotate_concepts(tmp_path / "out", [shards], model=str(folder), prototypes=prototypes, clusters=4,
                               pca_dim=8, progress=False)
    assert report["model"] == str(folder)
    labels = {k: json.loads(raw["json"])["concept"]["label"] for k, raw in _samples(tmp_path / "out").items()}
    assert labels == truth


def test_a_damaged_shard_is_counted_and_the_rest_written(figures, tmp_path):
    import shutil

    shards, prototypes, truth = figures
    copy = Path(shutil.copytree(shards, tmp_path / "in"))
    damaged = copy / "figures-000001.tar"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    report = annotate_concepts(tmp_path / "out", [copy], model=MODEL, prototypes=prototypes, clusters=4, pca_dim=8,
                               progress=False)
    written = _samples(tmp_path / "out")
    assert report["skipped"]["bad_shard"] == 1 and "figures-000001.tar" in report["skipped_examples"]["bad_shard"]
    assert 38 <= len(written) < 48 and report["figures"] == len(written)
    assert {k: json.loads(raw["json"])["concept"]["label"] for k, raw in written.items()} == {
        k: truth[k] for k in written
    }
