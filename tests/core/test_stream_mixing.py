"""Streaming training data: HTTP and hf:// shards without a full download, weighted mixing, shard interleaving.

A local HTTP server on 127.0.0.1 serves generated shards. ``http://`` URLs go through webdataset's
``gopen`` (curl, streamed through a pipe); ``hf://`` URLs through webdataset's ``hf`` handler, which
resolves the repository with ``huggingface_hub`` against ``HF_ENDPOINT`` and streams the file from
there: the server answers the two endpoints that needs (``/api/datasets/<repo>`` and
``/datasets/<repo>/resolve/<revision>/<path>``). ``HF_ENDPOINT`` is read when ``huggingface_hub``
is imported, so that case runs in a child process.
"""

from __future__ import annotations

import http.server
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from domainclip.core.data.corrupt import CorruptTally, TooManyCorruptSamplesError
from domainclip.core.data.reader import Source, StreamingDataset, _interleaved, build_loader
from domainclip.core.engine.distributed import DistInfo
from domainclip.core.engine.tasks import get_task
from domainclip.core.engine.train import _build_loader, train
from domainclip.core.models import create_model_and_transforms, get_tokenizer
from domainclip.core.prepare import prepare_shapes
from domainclip.core.recipe import load_recipe

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="webdataset streams http(s) URLs with curl")

REPO = "org/name"


# ----------------------------------------------------------------------------- fixtures
def topic_shards(folder: Path, topics: int, shards_per_topic: int, per_shard: int, payload: int = 0) -> list[Path]:
    """Shards in topic order: shard i holds only topic ``i // shards_per_topic`` (``txt`` = ``topic <t>``).

    ``payload`` random-looking bytes per sample (a ``bin`` member) make shards large enough to stream.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard in range(topics * shards_per_topic):
        topic = shard // shards_per_topic
        path = folder / f"shard-{shard:06d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(per_shard):
                key = f"t{topic:02d}-{shard:06d}-{i:06d}"
                members = {"txt": f"topic {topic}".encode()}
                if payload:
                    members["bin"] = (i.to_bytes(4, "little") + os.urandom(payload))[:payload]
                for suffix, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(path)
    return paths


def topic_of(raw: dict) -> dict:
    """A loader ``decode``: key, topic and source of a raw sample of :func:`topic_shards`."""
    return {"__key__": raw["__key__"], "topic": int(raw["txt"].split()[1]), "source": raw["__source__"]}


class ShardServer(http.server.ThreadingHTTPServer):
    """Serves ``root`` over HTTP on 127.0.0.1, logs requests and bytes sent, answers the Hub endpoints it needs.

    ``gate``: a path whose response stops after ``gate_bytes`` until ``release`` is set (or 60 s pass,
    so a reader that waits for the whole file fails the test instead of hanging it).
    """

    daemon_threads = True

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        self.sent: Counter = Counter()
        self.gate: str | None = None
        self.gate_bytes = 0
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: ShardServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        path = self.path
        if path == self.server.gate:
            head = self.server.gate_bytes
            self.server.sent[path] += head  # counted before writing: the client may act on the bytes at once
            self.wfile.write(body[:head])
            self.wfile.flush()
            self.server.release.wait(60)
            body = body[head:]
        for start in range(0, len(body), 65536):
            self.server.sent[path] += len(body[start : start + 65536])
            self.wfile.write(body[start : start + 65536])

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        path = self.path.split("?")[0]
        if path.startswith(f"/api/datasets/{REPO}"):  # HfApi.repo_info / HfFileSystem.resolve_path
            self._send(
                json.dumps({"id": REPO, "sha": "0" * 40, "private": False, "siblings": []}).encode(), "application/json"
            )
            return
        prefix = f"/datasets/{REPO}/resolve/main/"
        rel = path[len(prefix) :] if path.startswith(prefix) else path.lstrip("/")
        file = (self.server.root / rel).resolve()
        if self.server.root.resolve() not in file.parents or not file.is_file():
            self.send_error(404)
            return
        self._send(file.read_bytes(), "application/x-tar")

    do_HEAD = do_GET


@pytest.fixture
def server(tmp_path) -> Iterator[ShardServer]:
    srv = ShardServer(tmp_path / "www")
    (tmp_path / "www").mkdir()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def _iid_top_share(topics: int, batch_size: int) -> float:
    gen = torch.Generator().manual_seed(0)
    draws = torch.randint(topics, (4000, batch_size), generator=gen)
    counts = torch.stack([(draws == t).sum(1) for t in range(topics)], 1)
    return float(counts.max(1).values.float().mean() / batch_size)


# ----------------------------------------------------------------------------- HTTP / hf:// streaming
def test_http_shard_is_streamed_not_downloaded_first(server):
    """The first batch arrives while the server still holds back the second half of the only shard."""
    (shard,) = topic_shards(server.root, 1, 1, 64, payload=8192)
    size = shard.stat().st_size
    server.gate, server.gate_bytes = f"/{shard.name}", size // 2
    loader = build_loader(Source(f"{server.url}/{shard.name}"), topic_of, batch_size=4, shuffle_buffer=8, epochs=1)
    batches = iter(loader)
    first = next(batches)
    assert server.sent[server.gate] == size // 2 < size  # not the whole file: it was streamed
    assert len(first["__key__"]) == 4
    server.release.set()
    rest = [k for batch in batches for k in batch["__key__"]]
    assert len(first["__key__"]) + len(rest) == 64 and server.sent[server.gate] == size


def test_recipe_http_sources_train_and_mix_by_weight(server, tmp_path):
    """``data.train`` of two HTTP sources (weights 3:1) through the engine: a real run, then the realised mix."""
    prepare_shapes(server.root / "a", 256, seed=0, image_size=32, max_count=64, progress=False)
    prepare_shapes(server.root / "b", 128, seed=1, image_size=32, max_count=64, progress=False)
    recipe = load_recipe(
        {
            "domain": "core",
            "model": {"name": "dc-test-vit"},
            "data": {
                "root": str(tmp_path / "unused"),
                "train": [
                    {"urls": f"{server.url}/a/shapes-{{000000..000003}}.tar", "weight": 3, "name": "a"},
                    {"urls": f"{server.url}/b/shapes-{{000000..000001}}.tar", "weight": 1, "name": "b"},
                ],
                "batch_size": 16,
                "num_workers": 2,
                "shuffle_buffer": 32,
                "shard_interleave": 2,
            },
            "optim": {"lr": 1e-3, "warmup_steps": 1},
            "train": {"steps": 2, "precision": "fp32", "log_every": 1, "checkpoint_every": 2, "progress": False},
        },
        check_files=True,
    )
    result = train(recipe, tmp_path / "run")
    assert result.steps == 2
    assert {r for r in server.requests if r.startswith("/a/")} <= {f"/a/shapes-{i:06d}.tar" for i in range(4)}
    assert any(r.startswith("/b/") for r in server.requests)  # both sources were read

    # the realised mix through the engine's own loader: 48 batches of 16 raw samples
    model, _, preprocess = create_model_and_transforms("dc-test-vit")
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    loader = _build_loader(recipe, get_task(recipe.train.task), preprocess, get_tokenizer(model), info)
    urls = [u for batch in itertools.islice(loader, 48) for u in batch["__url__"]]
    share_a = sum("/a/" in u for u in urls) / len(urls)
    assert len(urls) == 768 and abs(share_a - 0.75) < 0.06  # binomial sd ~0.016


@pytest.mark.skipif(sys.platform == "win32", reason="child process with HF_ENDPOINT")
def test_hf_url_streams_through_huggingface_hub_against_a_local_endpoint(server):
    topic_shards(server.root / "data", 2, 2, 5)
    script = (
        "from domainclip.core.data.reader import Source, build_loader\n"
        "import sys; sys.path.insert(0, sys.argv[1]); from test_stream_mixing import topic_of\n"
        f"loader = build_loader(Source('hf://datasets/{REPO}/data/shard-{{000000..000003}}.tar'), topic_of,\n"
        "                      batch_size=5, epochs=1, shuffle_buffer=0)\n"
        "print(' '.join(k for b in loader for k in b['__key__']))\n"
    )
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    keys = done.stdout.split()
    assert keys == [f"t{i // 2:02d}-{i:06d}-{j:06d}" for i in range(4) for j in range(5)]
    served = [r for r in server.requests if "/resolve/" in r]
    assert served == [f"/datasets/{REPO}/resolve/main/data/shard-{i:06d}.tar" for i in range(4)]
    assert any(r.startswith(f"/api/datasets/{REPO}") for r in server.requests)


# ----------------------------------------------------------------------------- topic mixing
def _mixing(urls, k: int, batches: int = 40, batch_size: int = 32) -> tuple[float, float]:
    """Mean top-topic share and mean distinct topics per batch of an endless stream (recipe-like settings)."""
    loader = build_loader(
        Source([str(u) for u in urls]),
        topic_of,
        batch_size=batch_size,
        num_workers=2,
        shuffle_buffer=200,
        shard_interleave=k,
        seed=0,
    )
    top, distinct = [], []
    for batch in itertools.islice(loader, batches):
        counts = Counter(batch["topic"].tolist())
        top.append(max(counts.values()) / batch_size)
        distinct.append(len(counts))
    return sum(top) / batches, sum(distinct) / batches


def test_topic_ordered_shards_give_mixed_batches_with_interleaving(tmp_path):
    """8 topics written one after another (4 shards of 200 each), buffer 200, 2 workers, batches of 32."""
    urls = topic_shards(tmp_path, 8, 4, 200)
    iid = _iid_top_share(8, 32)  # ~0.22; i.i.d. batches hold ~7.9 topics
    top_1, distinct_1 = _mixing(urls, 1)
    top_8, distinct_8 = _mixing(urls, 8)
    assert top_1 > 0.55 and distinct_1 < 3.5  # one shard at a time: batches of one or two topics
    assert top_8 < 0.45 and top_8 < 2 * iid and distinct_8 > 4.5  # eight at once: many topics a batch


def test_interleaved_round_robin_replaces_in_place():
    shards = iter([iter("aaa"), iter("b"), iter("cc"), iter("d")])
    assert "".join(_interleaved(shards, 2)) == "abaaccd"  # c takes b's place, d takes a's
    assert "".join(_interleaved(iter([iter("ab"), iter("cd")]), 1)) == "abcd"


@pytest.mark.parametrize("n_shards", [8, 3])  # 3 < 4 slots: every slot reads every shard
def test_interleaving_keeps_every_sample_once_per_epoch_over_ranks_and_workers(tmp_path, n_shards):
    topic_shards(tmp_path, n_shards, 1, 5)
    everything = [f"t{s:02d}-{s:06d}-{i:06d}" for s in range(n_shards) for i in range(5)]
    keys = []
    for rank in range(2):
        ds = StreamingDataset(
            Source(str(tmp_path)),
            topic_of,
            batch_size=2,
            num_workers=2,
            rank=rank,
            world_size=2,
            epochs=1,
            shuffle_buffer=4,
            shard_interleave=3,
        )
        for logical in range(2):
            keys += [k for item in ds.iter_logical(logical) for k in item.get("__key__", [])]
    assert sorted(keys) == everything  # disjoint and covering


def test_interleaving_crosses_epochs_and_each_epoch_is_whole(tmp_path):
    topic_shards(tmp_path, 5, 1, 4)
    ds = StreamingDataset(Source(str(tmp_path)), topic_of, batch_size=2, shuffle_buffer=2, shard_interleave=3)
    raw = list(itertools.islice(ds.raw_stream(0, CorruptTally()), 100))  # 5 epochs of 20
    for epoch in range(4):
        assert sorted(s["__key__"] for s in raw if s["__epoch__"] == epoch) == sorted(
            f"t{s:02d}-{s:06d}-{i:06d}" for s in range(5) for i in range(4)
        )
    # 5 shards read 3 at a time: an epoch's last shards are read beside the next epoch's first
    epochs_near_20 = {s["__epoch__"] for s in raw[14:26]}
    assert epochs_near_20 == {0, 1}


@pytest.mark.parametrize("num_workers", [0, 2])
def test_interleaved_stream_resumes_exactly(tmp_path, num_workers):
    topic_shards(tmp_path, 6, 1, 7)

    def make():
        return build_loader(
            Source(str(tmp_path)),
            topic_of,
            batch_size=3,
            num_workers=num_workers,
            shuffle_buffer=5,
            shard_interleave=4,
            seed=3,
        )

    full = [b["__key__"] for b in itertools.islice(make(), 20)]
    first = make()
    head = [b["__key__"] for b in itertools.islice(first, 9)]
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    tail = [b["__key__"] for b in itertools.islice(resumed, 11)]
    assert head + tail == full


def test_interleave_changes_the_fingerprint_only_when_it_changes_the_stream(tmp_path):
    topic_shards(tmp_path, 2, 1, 3)

    def fingerprint(**kw):
        return StreamingDataset(Source(str(tmp_path)), topic_of, batch_size=2, **kw).fingerprint()

    assert fingerprint(shard_interleave=1) == fingerprint()  # states saved before the option still match
    assert fingerprint(shard_interleave=4) != fingerprint()
    assert fingerprint(shard_interleave=4, shuffle_buffer=0) == fingerprint(shuffle_buffer=0)  # no shuffle: in order
    with pytest.raises(ValueError, match="shard_interleave"):
        fingerprint(shard_interleave=0)


def test_interleaved_source_of_damaged_shards_still_fails_after_one_pass(tmp_path):
    for i in range(3):
        (tmp_path / f"shard-{i:06d}.tar").write_bytes(b"not a tar" * 100)
    loader = build_loader(Source(str(tmp_path), name="broken"), topic_of, batch_size=2, shard_interleave=4)
    with pytest.raises(TooManyCorruptSamplesError, match="a full pass over its 3 shard") as info:
        next(iter(loader))
    assert info.value.counts == {"bad_shard": 3}


def test_sample_split_with_interleaving_deals_out_the_one_process_stream(tmp_path):
    topic_shards(tmp_path, 5, 1, 6)

    def raw(rank: int, world: int) -> list[str]:
        ds = StreamingDataset(
            Source(str(tmp_path)),
            topic_of,
            batch_size=2,
            rank=rank,
            world_size=world,
            split="sample",
            epochs=1,
            shuffle_buffer=4,
            shard_interleave=3,
        )
        return [s["__key__"] for s in ds.raw_stream(0, CorruptTally())]

    whole = raw(0, 1)
    assert raw(0, 2) == whole[0::2] and raw(1, 2) == whole[1::2]
    assert len(whole) == 30
