"""Representative-patch selection: one patch per clear cluster, unchanged bytes, slides spread over shards."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.reader import expand_urls, iter_shard
from domainclip.core.data.writer import ShardWriter, read_index
from domainclip.core.errors import InputError, NothingWrittenError
from domainclip.core.prepare import parse_prepare_args
from domainclip.domains.pathology.selection import cluster_representatives, prepare_select, select_representative

_spec = importlib.util.spec_from_file_location("pathology_fixture_selection", Path(__file__).with_name("data.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)

DIM = 6
EPS = 0.25


def _cluster_points(direction: int) -> list[np.ndarray]:
    """A centre (the one-hot ``direction``) and four points tilted symmetrically around it, all unit length."""
    centre = np.eye(DIM)[direction]
    points = [centre]
    for axis in (4, 5):
        for sign in (1, -1):
            v = centre + sign * EPS * np.eye(DIM)[axis]
            points.append(v / np.linalg.norm(v))
    return points


def _raw(url_dir):
    samples = {}
    for url in expand_urls(str(url_dir)):
        for raw in iter_shard(url, CorruptTally()):
            samples[raw["__key__"]] = raw
    return samples


def _clustered_cohort(root, slides, interleave=True):
    """Each slide gets three clusters (directions 0, 1, 2 for slide 0; 1, 2, 3 for slide 1, ...).

    Returns the patches and, per slide, the keys of its cluster centres and the colour -> vector table.
    """
    plan, vectors, centres = {}, {}, {}
    colour_id = 0
    for s, slide in enumerate(slides):
        plan[slide] = []
        for direction in (s, s + 1, s + 2):
            for k, point in enumerate(_cluster_points(direction)):
                colour = (10 + colour_id, 100 + s, 50 + direction)
                colour_id += 1
                vectors[colour] = point.tolist()
                plan[slide].append((colour, k == 0, direction))
    patches = []
    if interleave:  # slides spread over the shards: a, b, a, b, ...
        for i in range(max(len(v) for v in plan.values())):
            for slide in slides:
                if i < len(plan[slide]):
                    patches.append((slide, plan[slide][i][0]))
    else:
        patches = [(slide, p[0]) for slide in slides for p in plan[slide]]
    records = fixture.write_patch_shards(root, patches, max_count=7)
    for record in records:
        _, is_centre, direction = next(p for p in plan[record["slide_id"]] if p[0] == record["colour"])
        if is_centre:
            centres.setdefault(record["slide_id"], {})[direction] = record["key"]
    return centres, vectors


def test_one_patch_per_cluster_with_bytes_unchanged(tmp_path):
    centres, vectors = _clustered_cohort(tmp_path / "in", ["slide-a", "slide-b"], interleave=True)
    model = fixture.LookupCLIP(vectors, {"unused": [0.0] * DIM})
    summary = select_representative(tmp_path / "in", model, fixture.to_tensor, tmp_path / "out", per_slide=3,
                                    batch_size=4, max_count=4)
    assert summary["num_slides"] == 2 and summary["num_patches"] == 30 and summary["num_selected"] == 6
    assert summary["per_slide"] == {"slide-a": {"patches": 15, "clusters": 3, "selected": 3},
                                    "slide-b": {"patches": 15, "clusters": 3, "selected": 3}}
    assert summary["max_open_slides"] == 2  # the slides were interleaved
    assert summary["skipped"] == {}
    assert len(summary["shards"]) == 2 and read_index(tmp_path / "out" / summary["index"])["num_samples"] == 6

    before, after = _raw(tmp_path / "in"), _raw(tmp_path / "out")
    expected = {key for per in centres.values() for key in per.values()}
    assert set(after) == expected
    for key, raw in after.items():
        assert raw["png"] == before[key]["png"], "image bytes must be copied unchanged"
        meta, original = json.loads(raw["json"]), json.loads(before[key]["json"])
        selection = meta.pop("selection")
        assert meta == original
        assert selection["cluster_size"] == 5 and selection["num_clusters"] == 3
        assert selection["distance"] == pytest.approx(0.0, abs=0.05) and selection["prompt_score"] is None
    assert json.loads((tmp_path / "out" / "selected-summary.json").read_text())["num_selected"] == 6


def test_contiguous_slides_keep_one_open_and_prompts_rank_clusters(tmp_path):
    centres, vectors = _clustered_cohort(tmp_path / "in", ["s1", "s2"], interleave=False)
    # the prompt points at direction 2, which is a cluster of both slides
    model = fixture.LookupCLIP(vectors, {"tumour epithelium": np.eye(DIM)[2].tolist()})
    summary = select_representative(
        [str(p) for p in sorted((tmp_path / "in").glob("*.tar"))], model, fixture.to_tensor, tmp_path / "out",
        per_slide=1, clusters=3, prompts=["tumour epithelium"], tokenizer=model.tokenize, batch_size=5,
    )
    assert summary["max_open_slides"] == 1
    after = _raw(tmp_path / "out")
    assert set(after) == {centres["s1"][2], centres["s2"][2]}
    for raw in after.values():
        selection = json.loads(raw["json"])["selection"]
        assert selection["prompt_score"] == pytest.approx(1.0) and selection["rank"] == 0


def test_cluster_representatives_ranks_by_size_and_keeps_small_slides_whole():
    rng = np.random.default_rng(0)
    groups = [(0, 5), (1, 7), (2, 3)]
    x = np.concatenate([np.eye(DIM)[d] + 0.01 * rng.standard_normal((n, DIM)) for d, n in groups])
    choice = cluster_representatives(x, per_slide=2, clusters=3, seed=1)
    assert [info["cluster_size"] for info in choice.info] == [7, 5]
    assert 5 <= choice.indices[0] < 12 and 0 <= choice.indices[1] < 5
    small = cluster_representatives(x[:2], per_slide=4)
    assert sorted(small.indices) == [0, 1] and small.num_clusters == 2
    assert cluster_representatives(np.zeros((0, DIM)), per_slide=2).indices == []
    with pytest.raises(ValueError, match="per_slide"):
        cluster_representatives(x, per_slide=0)


def test_skips_are_counted_and_bad_arguments_refused(tmp_path):
    centres, vectors = _clustered_cohort(tmp_path / "in", ["only"], interleave=False)
    with ShardWriter(tmp_path / "in", prefix="zz", image_format="png") as w:
        w.write({"__key__": "noslide", "image": fixture.solid((1, 1, 1), 4), "meta": {"x": 0}})
        w.write({"__key__": "broken", "png": b"not a png", "meta": {"slide_id": "only"}})
    model = fixture.LookupCLIP(vectors, {"x": [0.0] * DIM})
    summary = select_representative(tmp_path / "in", model, fixture.to_tensor, tmp_path / "out", per_slide=3)
    assert summary["skipped"] == {"missing_slide_id": 1, "bad_image": 1}
    assert "broken" in summary["skipped_examples"]["bad_image"]
    assert summary["per_slide"]["only"] == {"patches": 15, "clusters": 3, "selected": 3}
    assert set(_raw(tmp_path / "out")) == set(centres["only"].values())
    with pytest.raises(ValueError, match="tokenizer"):
        select_representative(tmp_path / "in", model, fixture.to_tensor, tmp_path / "o2", prompts=["x"])
    with pytest.raises(ValueError, match="per_slide"):
        select_representative(tmp_path / "in", model, fixture.to_tensor, tmp_path / "o2", per_slide=0)
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        select_representative(tmp_path / "nothing-here", model, fixture.to_tensor, tmp_path / "o2")


def test_shards_without_a_usable_patch_raise_with_the_reasons(tmp_path):
    with ShardWriter(tmp_path / "in", prefix="zz", image_format="png") as w:
        w.write({"__key__": "noslide", "image": fixture.solid((1, 1, 1), 4), "meta": {"x": 0}})
        w.write({"__key__": "broken", "png": b"not a png", "meta": {"slide_id": "only"}})
        w.write({"__key__": "broken2", "png": b"not a png either", "meta": {"slide_id": "only"}})
    model = fixture.LookupCLIP({}, {"x": [0.0] * DIM})
    with pytest.raises(NothingWrittenError) as caught:
        select_representative(tmp_path / "in", model, fixture.to_tensor, tmp_path / "out", per_slide=3)
    shard = tmp_path / "in" / "zz-000000.tar"
    message = str(caught.value)
    assert message.startswith(f"pathology/select wrote no patches from 1 shard ({shard}): bad_image: 2 (e.g. ")
    assert f"{shard} key=broken: " in message and f"missing_slide_id: 1 (e.g. {shard} key=noslide" in message
    summary = json.loads((tmp_path / "out" / "selected-summary.json").read_text())
    assert summary["num_selected"] == 0 and summary["skipped"] == {"missing_slide_id": 1, "bad_image": 2}
    with pytest.raises(InputError, match="clusters must be >= 1, got 0"):
        select_representative(tmp_path / "in", model, fixture.to_tensor, tmp_path / "o2", clusters=0)


def test_select_command_with_a_tiny_clip(tmp_path):
    patches = [(f"slide{s}", (40 * s + 10 * i, 90, 120)) for s in range(2) for i in range(5)]
    fixture.write_patch_shards(tmp_path / "in", patches, max_count=4)
    command, options, _ = parse_prepare_args("pathology", "select", [
        "--shards", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", "dc-test-vit",
        "--per-slide", "2", "--prompts", "tumour", "stroma", "--loader-workers", "0", "--no-progress"])
    assert command is prepare_select and options["prompts"] == ["tumour", "stroma"]
    summary = command(**options)
    assert summary["model"] == "dc-test-vit" and summary["num_selected"] == 4
    assert summary["per_slide"] == {"slide0": {"patches": 5, "clusters": 2, "selected": 2},
                                    "slide1": {"patches": 5, "clusters": 2, "selected": 2}}
    for raw in _raw(tmp_path / "out").values():
        selection = json.loads(raw["json"])["selection"]
        assert -1.0 <= selection["prompt_score"] <= 1.0 and selection["distance"] >= 0.0
