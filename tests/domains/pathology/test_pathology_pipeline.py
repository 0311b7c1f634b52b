"""Synthetic slides -> captioned patch shards -> the pathology/synthetic suite, end to end on tiny data."""

import csv
import json

import pytest

from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.reader import expand_urls, iter_shard
from domainclip.core.eval.suites import run_suite
from domainclip.core.models import create_model_and_transforms, get_tokenizer
from domainclip.domains.pathology.pipeline import prepare_synthetic_patches
from domainclip.domains.pathology.synthetic import TISSUE_CLASSES, caption_pool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthetic_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    summary = prepare_synthetic_patches(out, 2, seed=3, slide_size=1536, tumor_fraction=0.5, progress=False)
    return out, summary


def test_patches_carry_captions_classes_and_provenance(synthetic_folder):
    out, summary = synthetic_folder
    samples = [s for url in expand_urls(str(out)) for s in iter_shard(url, CorruptTally())]
    assert len(samples) == summary["patches"]["num_patches"] > 10
    labels = {int(s["cls"]) for s in samples}
    assert labels <= set(range(len(TISSUE_CLASSES))) and len(labels) >= 2
    for s in samples[:20]:
        meta = json.loads(s["json"])
        captions = json.loads(s["text.json"])
        cls = TISSUE_CLASSES[int(s["cls"])]
        assert meta["tissue_class"] == cls and meta["slide_id"].startswith("slide_")
        assert set(captions) <= set(caption_pool(cls)) and len(captions) == 3
        assert meta["mpp"] == pytest.approx(0.5) and meta["purity"] >= 0.8
    with open(out / "slides.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["label"] for r in rows) == ["normal", "tumor"]


def test_synthetic_suite_reports_patch_and_slide_metrics(synthetic_folder, tmp_path):
    out, _ = synthetic_folder
    model, _, preprocess = create_model_and_transforms("dc-test-vit")
    results = run_suite(
        model,
        get_tokenizer("dc-test-vit"),
        preprocess,
        "pathology/synthetic",
        data=out,
        out_dir=tmp_path,
        batch_size=32,
    )
    tissue = results["tissue/zeroshot_classification"]
    assert 0.0 <= tissue["acc1"] <= 1.0 and tissue["num_samples"] > 10
    assert 0.0 <= results["tissue/retrieval"]["image_retrieval_recall@5"] <= 1.0
    assert (
        results["slides/zeroshot_classification"]["num_slides"] == 2
        and "auroc" in results["slides/zeroshot_classification"]
    )
    assert (tmp_path / "tissue_confusion_matrix.png").is_file() and (tmp_path / "slide_predictions.csv").is_file()


def test_synthetic_suite_prompt_options_and_the_shifted_site(synthetic_folder, tmp_path):
    from domainclip.core.errors import InputError
    from domainclip.domains.pathology.synthetic import read_mask

    out, _ = synthetic_folder
    model, _, preprocess = create_model_and_transforms("dc-test-vit")
    tokenizer = get_tokenizer("dc-test-vit")
    runs = {}
    for name, options in {"ensemble": {}, "single": {"prompts": "single"},
                          "template": {"template": "a photomicrograph of {}."}}.items():
        results = run_suite(model, tokenizer, preprocess, "pathology/synthetic", data=out, out_dir=tmp_path / name,
                            batch_size=32, options=options)
        runs[name] = results["tissue/zeroshot_classification"]
    assert len({r["num_samples"] for r in runs.values()}) == 1
    assert runs["single"] != runs["template"] or runs["single"] != runs["ensemble"]  # other prompts, other scores
    with pytest.raises(InputError, match="has no '{}'"):
        run_suite(model, tokenizer, preprocess, "pathology/synthetic", data=out, out_dir=tmp_path / "bad",
                  batch_size=32, options={"template": "a photomicrograph of"})

    site_b = tmp_path / "site_b"
    summary = prepare_synthetic_patches(site_b, 1, seed=3, slide_size=1024, progress=False, site="b")
    assert summary["slides"]["site"] == "b"
    truth = json.loads((site_b / "slides" / "slides.json").read_text())["slides"][0]
    assert truth["stain"]["site"] == "b" and read_mask(truth["mask_path"]).max() > 0
    shifted = run_suite(model, tokenizer, preprocess, "pathology/synthetic_shifted", data=site_b,
                        out_dir=tmp_path / "shifted", batch_size=32)
    assert shifted["tissue/zeroshot_classification"]["num_samples"] == summary["patches"]["num_patches"]
