"""Text-to-figure search: the index built once beside the shards, reused, refused for another model, searched."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from domainclip.core.errors import (
    InputError,
    InputNotFoundError,
    NothingWrittenError,
    OutputExistsError,
)
from domainclip.core.explore import resolve_model
from domainclip.domains.biomed.explore import (
    EMBEDDINGS_NAME,
    INDEX_NAME,
    FigureRecord,
    build_figure_index,
    load_figure_index,
    model_fingerprint,
    plot_figure_hits,
    search_figures,
)

_spec = importlib.util.spec_from_file_location("bio_explore_data", Path(__file__).with_name("data_concepts.py"))
data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data)

TYPES = tuple(data.COLOURS)  # chart (red), microscopy (green), clinical_imaging (blue), table (yellow)


class LookupModel(nn.Module):
    """Image -> one-hot of its nearest type colour; text -> one-hot of the type it names; both through ``table``.

    The search result is then known exactly: a query naming a type scores 1 on that type's figures
    and 0 on the others. A permuted ``table`` is another model (other weights, other answers).
    """

    def __init__(self, table: torch.Tensor | None = None):
        super().__init__()
        self.colours = nn.Parameter(torch.tensor([data.COLOURS[t] for t in TYPES], dtype=torch.float32) / 255,
                                    requires_grad=False)
        self.table = nn.Parameter(torch.eye(len(TYPES)) if table is None else table, requires_grad=False)
        self.image_calls = 0

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        self.image_calls += len(images)
        mean = images.mean(dim=(2, 3))
        nearest = torch.cdist(mean, self.colours).argmin(dim=1)
        return nn.functional.one_hot(nearest, len(TYPES)).float() @ self.table

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return nn.functional.normalize(tokens.float() @ self.table, dim=-1)


def preprocess(image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB").resize((16, 16)), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)


def tokenize(texts) -> torch.Tensor:
    return torch.tensor([[float(bool(re.search(rf"\b{t}\b", text))) for t in TYPES] for text in texts])


def lookup(table: torch.Tensor | None = None) -> tuple[LookupModel, object, object]:
    return LookupModel(table), preprocess, tokenize


@pytest.fixture
def shards(tmp_path) -> tuple[Path, dict[str, str]]:
    truth = data.write_colour_shards(tmp_path / "figures", per_type=6, max_count=10)
    return tmp_path / "figures", truth


def test_a_query_finds_the_figures_of_the_type_it_names(shards):
    folder, truth = shards
    index = build_figure_index(folder, lookup(), batch_size=5, progress=False)
    assert index.folder == folder.resolve().with_name("figures-figure-index") and not index.reused
    assert len(index) == 24 and index.embeddings.dtype == np.float16 and index.embeddings.shape == (24, 4)
    assert [p.name for p in index.shards] == ["figures-000000.tar", "figures-000001.tar", "figures-000002.tar"]
    keys = [f.key for f in index.figures()]
    assert keys == list(truth)  # row order is shard order
    hits = search_figures(index, "a microscopy image of liver", lookup(), k=4)
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    assert [h.score for h in hits] == [1.0] * 4
    assert [h.key for h in hits] == keys[6:10]  # the first four micrographs; ties keep row order
    assert all(truth[h.key] == "microscopy" for h in hits)
    first = hits[0]
    assert first.caption == "Figure 0. A microscopy." and first.article == "PMC9006"
    assert first.shard.name == "figures-000000.tar"
    pixels = np.asarray(first.load_image(), dtype=np.float64).reshape(-1, 3).mean(0)
    assert np.abs(pixels - data.COLOURS["microscopy"]).max() < 15
    # every figure of the type outscores every other figure, across shards
    all_hits = search_figures(index.folder, "table", lookup(), k=100)
    assert len(all_hits) == 24
    assert {h.key for h in all_hits[:6]} == {k for k, t in truth.items() if t == "table"}
    assert [h.score for h in all_hits[6:]] == [0.0] * 18


def test_the_index_does_not_depend_on_the_batch_size(shards, tmp_path):
    folder, _ = shards
    one = build_figure_index(folder, lookup(), index_dir=tmp_path / "a", batch_size=1, progress=False)
    seven = build_figure_index(folder, lookup(), index_dir=tmp_path / "b", batch_size=7, progress=False)
    np.testing.assert_array_equal(np.asarray(one.embeddings), np.asarray(seven.embeddings))
    assert [f.key for f in one.figures()] == [f.key for f in seven.figures()]
    assert one.figure(13) == next(f for f in seven.figures() if f.row == 13)


def test_the_index_is_reused_with_the_same_model_and_refused_with_another(shards):
    folder, truth = shards
    model = lookup()
    first = build_figure_index(folder, model, progress=False)
    assert model[0].image_calls == 24
    stamp = (first.folder / EMBEDDINGS_NAME).stat().st_mtime_ns
    again = build_figure_index(folder, lookup(), progress=False)  # another object, the same weights
    assert again.reused and len(again) == 24
    assert (first.folder / EMBEDDINGS_NAME).stat().st_mtime_ns == stamp
    swapped = torch.eye(4)[[3, 1, 2, 0]]  # chart <-> table
    other = lookup(swapped)
    assert model_fingerprint(other) != model_fingerprint(model)
    with pytest.raises(OutputExistsError, match="was built with <in memory>.*overwrite=True"):
        build_figure_index(folder, other, progress=False)
    with pytest.raises(InputError, match="was built with .* search it with that model"):
        search_figures(first, "chart", other)
    rebuilt = build_figure_index(folder, other, progress=False, overwrite=True)
    assert not rebuilt.reused and rebuilt.model == model_fingerprint(other)
    hits = search_figures(rebuilt, "chart", other, k=6)
    assert {truth[h.key] for h in hits} == {"chart"}  # the permuted table on both sides: the same answer
    assert (first.folder / EMBEDDINGS_NAME).stat().st_mtime_ns != stamp


def test_a_spec_and_its_loaded_tuple_are_the_same_model(shards):
    import domainclip

    folder, _ = shards
    index = build_figure_index(folder, "dc-test-vit", batch_size=12, progress=False)
    assert index.model_spec == "dc-test-vit" and index.model["source"]["random_weights"]
    assert build_figure_index(folder, domainclip.load_model("dc-test-vit"), progress=False).reused
    hits = search_figures(index, "a bar chart", resolve_model("dc-test-vit"), k=3)
    embeddings = np.asarray(index.embeddings, dtype=np.float32)
    text = resolve_model("dc-test-vit").encode_text(["a bar chart"])[0].numpy()
    expected = np.argsort(-(embeddings @ text), kind="stable")[:3]
    assert [h.figure.row for h in hits] == list(expected)
    assert hits[0].score == pytest.approx(float(embeddings[expected[0]] @ text), abs=1e-5)


def test_changed_shards_rebuild_the_index_with_a_warning(shards):
    folder, _ = shards
    build_figure_index(folder, lookup(), progress=False)
    data.write_colour_shards(folder / "more", per_type=1, seed=3)
    with pytest.warns(UserWarning, match="shards changed"):
        index = build_figure_index(folder, lookup(), progress=False)
    assert len(index) == 28 and not index.reused


def test_bad_figures_are_skipped_and_counted(tmp_path):
    data.write_colour_shards(tmp_path / "figures", per_type=2, bad=True)
    with pytest.warns(UserWarning, match="skipped 1 figure"):
        index = build_figure_index(tmp_path / "figures", lookup(), progress=False)
    assert len(index) == 9 and index.skipped == {"missing_key:text": 1}
    no_json = index.figure(8)
    assert no_json.key == "PMC2_Y" and no_json.article == "" and no_json.caption == "no json"


@pytest.mark.parametrize("damage", ["cut", "json", "missing"])
def test_a_damaged_index_is_refused_and_rebuilt_on_request(shards, damage):
    folder, _ = shards
    index = build_figure_index(folder, lookup(), progress=False)
    target = index.folder / (INDEX_NAME if damage == "json" else EMBEDDINGS_NAME)
    if damage == "cut":
        target.write_bytes(target.read_bytes()[:-40])
    elif damage == "json":
        target.write_text("{not json", encoding="utf-8")
    else:
        target.unlink()
    with pytest.raises(InputError, match="figure index .* is damaged .*overwrite=True"):
        build_figure_index(folder, lookup(), progress=False)
    with pytest.raises(InputError, match="is damaged"):
        load_figure_index(index.folder)
    rebuilt = build_figure_index(folder, lookup(), progress=False, overwrite=True)
    assert len(rebuilt) == 24 and [h.score for h in search_figures(rebuilt, "chart", lookup(), k=2)] == [1.0, 1.0]


def test_a_failed_build_leaves_nothing_and_a_killed_one_is_rebuilt(shards, monkeypatch):
    folder, _ = shards
    model = lookup()

    def fail(images, normalize=True):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model[0], "encode_image", fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        build_figure_index(folder, model, progress=False)
    assert not folder.with_name("figures-figure-index").exists()
    index = build_figure_index(folder, lookup(), progress=False)
    manifest_path = index.folder / ".domainclip-output.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["complete"] and manifest["kind"] == "figure-index"
    manifest_path.write_text(json.dumps({**manifest, "complete": False}))  # as a killed build leaves it
    with pytest.raises(InputError, match="unfinished"):
        load_figure_index(index.folder)
    assert not build_figure_index(folder, lookup(), progress=False).reused


def test_an_image_is_found_by_scanning_when_its_offset_is_unknown(shards):
    folder, truth = shards
    index = build_figure_index(folder, lookup(), progress=False)
    record = index.figure(20)
    scanned = FigureRecord(**{**record.__dict__, "offset": -1})
    np.testing.assert_array_equal(np.asarray(scanned.load_image()), np.asarray(record.load_image()))
    (record.shard).write_bytes(b"")
    with pytest.raises(InputError, match="cannot be read back"):
        record.load_image()


def test_the_grid_shows_rank_score_and_caption(shards, tmp_path):
    folder, _ = shards
    index = build_figure_index(folder, lookup(), progress=False)
    hits = search_figures(index, "clinical_imaging", lookup(), k=5)
    fig = plot_figure_hits(hits, ncols=3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(fig.axes) == 6 and len(titles) == 5
    assert titles[0].startswith("#1  score 1.000") and "A clinical_imaging" in titles[0].replace("\n", " ")
    assert fig._suptitle.get_text() == '"clinical_imaging"'
    fig.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 2000


def test_user_mistakes_are_one_line(shards, tmp_path):
    folder, _ = shards
    with pytest.raises(InputNotFoundError, match="does not exist"):
        build_figure_index(tmp_path / "nowhere", lookup(), progress=False)
    with pytest.raises(InputError, match="batch_size"):
        build_figure_index(folder, lookup(), batch_size=0, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no shard files"):
        build_figure_index(tmp_path / "empty", lookup(), progress=False)
    with pytest.raises(InputError, match="inside the output folder"):
        build_figure_index(folder, lookup(), index_dir=folder.parent, progress=False)
    with pytest.raises(InputNotFoundError, match="no figure index"):
        load_figure_index(tmp_path / "empty")
    index = build_figure_index(folder, lookup(), progress=False)
    with pytest.raises(InputError, match="k must be"):
        search_figures(index, "chart", lookup(), k=0)
    with pytest.raises(InputError, match="query is empty"):
        search_figures(index, "  ", lookup())
    with pytest.raises(InputError, match="no hits"):
        plot_figure_hits([])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not empty"):
        build_figure_index(folder, lookup(), index_dir=tmp_path / "notes", progress=False)
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"


def test_nothing_readable_is_nothing_written(tmp_path):
    from domainclip.core.data.writer import ShardWriter

    with ShardWriter(tmp_path / "figures", prefix="figures") as writer:
        writer.write({"__key__": "PMC1_F1", "png": b"not a png", "txt": "Figure 1. Broken."})
    with pytest.raises(NothingWrittenError, match=r"biomed/figure-index wrote no figures .*bad_image: 1"):
        build_figure_index(tmp_path / "figures", lookup(), progress=False)
    assert not (tmp_path / "figures-figure-index").exists()
    assert os.listdir(tmp_path / "figures")
