"""The shard-to-shard helpers shared by biomed dedup, panels and concepts."""

import pytest

from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.writer import ShardWriter
from domainclip.core.errors import InputError
from domainclip.domains.biomed.shards import copy_articles, input_shards, read_shards


def _shards(folder, keys):
    with ShardWriter(folder, prefix="figures", max_count=2) as writer:
        for key in keys:
            writer.write({"__key__": key, "txt": f"caption {key}"})
    return sorted(folder.glob("*.tar"))


def test_inputs_are_read_in_order_and_none_may_lie_in_the_output(tmp_path):
    _shards(tmp_path / "a", ["k1", "k2", "k3"])
    paths = input_shards([tmp_path / "a"], tmp_path / "out")
    assert [p.name for p in paths] == ["figures-000000.tar", "figures-000001.tar"]
    assert [raw["__key__"] for raw in read_shards(paths, CorruptTally())] == ["k1", "k2", "k3"]
    with pytest.raises(InputError, match="inside the output folder"):
        input_shards([tmp_path / "a"], tmp_path)


def test_articles_are_copied_once_per_file_and_normalised(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    paths = _shards(a, ["k1"]) + _shards(b, ["k2"])
    (a / "articles.jsonl").write_text('{"pmcid": "PMC1"}\n\n{"pmcid": "PMC2"}')
    (b / "articles.jsonl").symlink_to(a / "articles.jsonl")  # the same file through another folder
    (tmp_path / "out").mkdir()
    assert copy_articles(paths, [a, b], tmp_path / "out") == 2
    assert (tmp_path / "out" / "articles.jsonl").read_text() == '{"pmcid": "PMC1"}\n{"pmcid": "PMC2"}\n'
    (tmp_path / "none").mkdir()
    assert copy_articles([], [tmp_path / "none"], tmp_path / "none") == 0
    assert not (tmp_path / "none" / "articles.jsonl").exists()
