"""Diagram search by text and by image: exact answers from a lookup model, a real tiny model, user errors."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import domainclip
from domainclip.core.errors import DatasetNotFoundError, InputError, InputNotFoundError
from domainclip.core.explore import LoadedModel
from domainclip.domains.math import labels
from domainclip.domains.math.explore import (
    DiagramIndex,
    build_diagram_index,
    load_diagram_images,
    model_identity,
    plot_diagram_hits,
    search_by_image,
    search_by_text,
)
from domainclip.domains.math.prepare import prepare_synthetic

N = 24
SAME_TYPE_WEIGHT = 1.0
OWN_WEIGHT = 0.5


def _digest(image: Image.Image) -> bytes:
    return hashlib.sha256(image.convert("RGB").tobytes()).digest()


class LookupCLIP(nn.Module):
    """A CLIP whose answers are known: an image embeds as one-hot(its type) + 0.5 one-hot(itself).

    Images are recognised by their pixels (the preprocess turns a picture into its sha256, the
    table maps that to the diagram's row); a text embeds as one-hot of the diagram type whose
    display name it is. So a phrase scores ``1/sqrt(1.25)`` against every diagram of its type and 0
    against the others, and a diagram scores 1 against itself and ``1/1.25`` against its type's others.
    """

    def __init__(self, rows: dict[bytes, tuple[int, int]], size: int):
        super().__init__()
        self.rows, self.size = rows, size
        self.register_buffer("marker", torch.zeros(1))
        self.domainclip_source = {"spec": "lookup", "kind": "test", "random_weights": False,
                                  "weights_sha256": {"lookup.bin": "0" * 64}}

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return torch.tensor(list(_digest(image)), dtype=torch.float32)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        names = {name: i for i, name in enumerate(labels.DIAGRAM_TYPE_NAMES.values())}
        return torch.tensor([[names[t]] for t in texts])

    def encode_image(self, batch: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        out = torch.zeros(len(batch), len(labels.DIAGRAM_TYPES) + self.size)
        for row, pixels in enumerate(batch):
            label, own = self.rows[bytes(pixels.to(torch.uint8).tolist())]
            out[row, label] = SAME_TYPE_WEIGHT
            out[row, len(labels.DIAGRAM_TYPES) + own] = OWN_WEIGHT
        return nn.functional.normalize(out, dim=-1)

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        out = torch.zeros(len(tokens), len(labels.DIAGRAM_TYPES) + self.size)
        out[torch.arange(len(tokens)), tokens[:, 0]] = 1.0
        return out


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("math-explore") / "shards"
    prepare_synthetic(out, n=N, seed=7, image_size=128, max_count=10, captions=2, progress=False)
    return out


def _samples(folder):
    """(key, type, caption, image) of every sample, in shard order, read with tarfile (not the code under test)."""
    found = {}
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, _, suffix = member.name.partition(".")
                found.setdefault(key, {})[suffix] = tar.extractfile(member).read()
    return [(key, json.loads(m["json"])["diagram_type"], json.loads(m["text.json"])[0],
             Image.open(io.BytesIO(m["png"])).convert("RGB")) for key, m in found.items()]


@pytest.fixture(scope="module")
def lookup(shards):
    samples = _samples(shards)
    rows = {_digest(img): (labels.DIAGRAM_TYPES.index(kind), i) for i, (_, kind, _, img) in enumerate(samples)}
    net = LookupCLIP(rows, len(samples))
    return LoadedModel(net, net.preprocess, net.tokenize, torch.device("cpu"), "lookup"), samples


def test_text_search_returns_exactly_the_diagrams_of_the_phrase(shards, lookup):
    model, samples = lookup
    index = build_diagram_index(shards, model, batch_size=5, progress=False)
    assert len(index) == N and index.keys == tuple(s[0] for s in samples) and index.skipped == {}
    assert index.captions == tuple(s[2] for s in samples)
    assert index.diagram_types == tuple(s[1] for s in samples)
    kind, count = Counter(s[1] for s in samples).most_common(1)[0]
    assert count >= 2
    hits = search_by_text(index, labels.DIAGRAM_TYPE_NAMES[kind], model, k=count + 1)
    assert [h.key for h in hits[:count]] == [s[0] for s in samples if s[1] == kind]
    assert [h.rank for h in hits] == list(range(1, count + 2))
    phrase_score = 1 / np.sqrt(1 + OWN_WEIGHT**2)
    assert all(h.score == pytest.approx(phrase_score) and h.diagram_type == kind for h in hits[:count])
    assert hits[count].score == pytest.approx(0.0) and hits[count].diagram_type != kind
    assert hits[0].caption == next(s[2] for s in samples if s[1] == kind)
    assert all(not h.same_image for h in hits)
    assert len(search_by_text(index, labels.DIAGRAM_TYPE_NAMES[kind], model, k=1000)) == N


def test_image_search_finds_the_image_itself_first_then_its_type(shards, lookup, tmp_path):
    model, samples = lookup
    index = build_diagram_index(shards, model, batch_size=7, progress=False)
    kind, count = Counter(s[1] for s in samples).most_common(1)[0]
    mine = [i for i, s in enumerate(samples) if s[1] == kind][-1]
    path = tmp_path / "query.png"
    samples[mine][3].save(path)
    for query in (samples[mine][3], path):
        hits = search_by_image(index, query, model, k=count + 1)
        assert hits[0].key == samples[mine][0] and hits[0].same_image and hits[0].score == pytest.approx(1.0)
        expected_others = [s[0] for i, s in enumerate(samples) if s[1] == kind and i != mine]
        assert [h.key for h in hits[1:count]] == expected_others
        assert all(h.score == pytest.approx(1 / (1 + OWN_WEIGHT**2)) for h in hits[1:count])
        assert hits[count].score == pytest.approx(0.0)
    # the images a hit reads back are the indexed diagrams, pixel for pixel
    got = load_diagram_images(hits[:3])
    assert [_digest(im) for im in got] == [_digest(samples[[s[0] for s in samples].index(h.key)][3]) for h in hits[:3]]
    assert _digest(hits[0].image()) == _digest(samples[mine][3])


def test_plots_show_the_query_image_first_and_the_phrase_as_title(shards, lookup, tmp_path):
    model, samples = lookup
    index = build_diagram_index(shards, model, progress=False)
    hits = search_by_image(index, samples[0][3], model, k=5)
    fig = plot_diagram_hits(hits, query=samples[0][3], ncols=3)
    assert fig.axes[0].get_title() == "query image" and len(fig.axes) == 6
    assert fig.axes[1].get_title().startswith("#1  1.000  (same image)")
    fig.savefig(tmp_path / "image.png")
    assert (tmp_path / "image.png").stat().st_size > 5000
    phrase = labels.DIAGRAM_TYPE_NAMES[samples[0][1]]
    fig = plot_diagram_hits(search_by_text(index, phrase, model, k=4), query=phrase)
    assert phrase in fig.get_suptitle() and fig.axes[0].get_title().startswith("#1  ")
    with pytest.raises(InputError, match="no hits"):
        plot_diagram_hits([])
    with pytest.raises(InputError, match="ncols"):
        plot_diagram_hits(hits, ncols=0)


def test_a_real_model_finds_the_query_diagram_at_rank_one(shards, tmp_path):
    model = domainclip.load_model("dc-test-vit")
    index = build_diagram_index(str(shards / "*.tar"), model, batch_size=8, progress=False)
    assert index.embeddings.shape == (N, 64) and np.allclose(np.linalg.norm(index.embeddings, axis=1), 1, atol=1e-5)
    for i in (0, 13, N - 1):
        hits = search_by_image(index, index_image(index, i), model, k=3)
        assert hits[0].index == i and hits[0].same_image and hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert hits[0].score >= hits[1].score >= hits[2].score
    # the saved index gives the same answers, and moves with its shard folder
    saved = index.save(shards / "diagram-index")
    assert saved.name == "diagram-index.npz" and not list(shards.glob(".*tmp*"))
    loaded = DiagramIndex.load(saved)
    np.testing.assert_array_equal(loaded.embeddings, index.embeddings)
    assert loaded.shards == index.shards and loaded.keys == index.keys and loaded.model == index.model
    moved = tmp_path / "moved"
    shutil.copytree(shards, moved)
    elsewhere = DiagramIndex.load(moved / saved.name)
    assert all(s.startswith(str(moved)) for s in elsewhere.shards) and elsewhere.keys == index.keys
    hit = search_by_image(elsewhere, index_image(index, 5), model, k=1)[0]
    assert hit.index == 5 and hit.shard.startswith(str(moved))
    np.testing.assert_array_equal(np.asarray(hit.image()), np.asarray(index_image(index, 5)))
    outside = index.save(tmp_path / "outside.npz")
    assert DiagramIndex.load(outside).shards == index.shards
    text_hits = search_by_text(loaded, "the graph of a sine function", model, k=5)
    assert [h.key for h in text_hits] == [h.key for h in search_by_text(index, "the graph of a sine function", model,
                                                                         k=5)]


def index_image(index: DiagramIndex, i: int) -> Image.Image:
    from domainclip.domains.math.explore import DiagramHit

    return DiagramHit(1, 0.0, i, index.keys[i], index.shard_of(i), "", "").image()


def test_an_index_refuses_another_model(shards):
    model = domainclip.load_model("dc-test-vit")
    index = build_diagram_index(shards, model, progress=False)
    assert index.model["identity"] == model_identity(domainclip.load_model("dc-test-vit"))["identity"]  # a reload
    with pytest.raises(InputError, match="built with model 'dc-test-vit'"):
        search_by_text(index, "a square", "dc-tiny-vit")
    net, preprocess, tokenizer = domainclip.create_model_and_transforms("dc-test-vit")[0], model[1], model[2]
    assert not hasattr(net, "domainclip_source")
    memory = model_identity((net, preprocess, tokenizer))
    assert memory["identity"] != index.model["identity"] and memory["kind"] == "memory"
    with torch.no_grad():
        next(net.parameters()).add_(1.0)
    assert model_identity((net, preprocess, tokenizer))["identity"] != memory["identity"]
    with pytest.raises(InputError, match="cannot be compared"):
        search_by_image(index, index_image(index, 0), (net, preprocess, tokenizer))


def test_user_errors_are_one_line(shards, lookup, tmp_path):
    model, _ = lookup
    with pytest.raises(DatasetNotFoundError, match="no diagram shards at"):
        build_diagram_index(tmp_path / "missing", model, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="expected .tar shards"):
        build_diagram_index(tmp_path / "empty", model, progress=False)
    with pytest.raises(InputError, match="batch_size"):
        build_diagram_index(shards, model, batch_size=0, progress=False)
    index = build_diagram_index(shards, model, progress=False)
    for query in ("", "   "):
        with pytest.raises(InputError, match="text query is empty"):
            search_by_text(index, query, model)
    for k in (0, -2, 1.5, True):
        with pytest.raises(InputError, match="k \\(how many"):
            search_by_text(index, "a square", model, k=k)
        with pytest.raises(InputError, match="k \\(how many"):
            search_by_image(index, Image.new("RGB", (8, 8)), model, k=k)
    with pytest.raises(InputNotFoundError, match="does not exist"):
        search_by_image(index, tmp_path / "nope.png", model)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InputError, match="cannot be read as an image"):
        search_by_image(index, tmp_path / "notes.png", model)
    with pytest.raises(InputNotFoundError, match="does not exist"):
        DiagramIndex.load(tmp_path / "none.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="not a diagram index"):
        DiagramIndex.load(tmp_path / "other.npz")


def test_undecodable_diagrams_are_skipped_and_counted(shards, lookup, tmp_path):
    model, samples = lookup
    folder = tmp_path / "mixed"
    folder.mkdir()
    for shard in shards.glob("*.tar"):
        (folder / shard.name).write_bytes(shard.read_bytes())
    with tarfile.open(folder / "zz-broken.tar", "w") as tar:
        for name, data in (("broken.png", b"\x89PNG not really"), ("broken.txt", b"a damaged diagram")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.warns(UserWarning, match="left out 1 unreadable"):
        index = build_diagram_index(folder, model, progress=False)
    assert len(index) == N and index.skipped == {"bad_image": 1}
    with tarfile.open(folder / "only-broken.tar", "w") as tar:
        info = tarfile.TarInfo("broken.png")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.warns(UserWarning), pytest.raises(InputError, match="could be decoded"):
        build_diagram_index(folder / "only-broken.tar", model, progress=False)
