"""The shard-to-shard helpers shared by biomed dedup, panels and concepts."""

from collections import Counter

import pytest

from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.writer import ShardWriter
from domainclip.core.errors import InputError, NothingWrittenError
from domainclip.domains.biomed.shards import copy_articles, input_shards, read_shards, require_written


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


def test_reader_counts_join_the_skipped_and_nothing_written_is_refused(tmp_path):
    tally = CorruptTally()
    tally.add("bad_tar", "a.tar", None, "truncated")
    tally.add("bad_member", "b.tar", "k9", "unreadable")
    skipped, examples = Counter({"bad_text": 2}), {"bad_text": "a.tar: k1: empty"}
    require_written("biomed/test", 1, [tmp_path / "a.tar"], tally, skipped, examples)
    assert skipped == {"bad_text": 2, "bad_tar": 1, "bad_member": 1}
    assert examples["bad_text"] == "a.tar: k1: empty"
    assert "truncated" in examples["bad_tar"] and "unreadable" in examples["bad_member"]
    with pytest.raises(NothingWrittenError, match="biomed/test"):
        require_written("biomed/test", 0, [tmp_path / "a.tar"], CorruptTally(), skipped, examples)
