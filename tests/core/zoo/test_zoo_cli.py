"""``domainclip zoo``: the listing, one card, fetch; the README's published-models table matches the registry."""

from __future__ import annotations

import pytest

from domainclip.cli import main
from domainclip.core.zoo.cards import README_BEGIN, README_END, readme_table
from domainclip.core.zoo.registry import list_zoo, register_zoo_entry, unregister_zoo_entry
from tests.conftest import REPO_ROOT
from tests.zoo_helpers import local_zoo_entry


def test_listing_filters_by_domain_and_marks_licences(capsys):
    assert main(["zoo", "--domain", "pathology"]) == 0
    out = capsys.readouterr().out
    expected = [e.name for e in list_zoo("pathology")]
    rows = out.splitlines()[1: 1 + len(expected)]
    assert [row.split()[0] for row in rows] == expected and "RemoteCLIP-RN50" not in out
    assert f"{len(expected)} published model(s)" in out


def test_show_prints_the_card_and_unknown_names_are_one_line(capsys):
    assert main(["zoo", "show", "PathGen-CLIP"]) == 0
    card = capsys.readouterr().out
    entry = next(e for e in list_zoo() if e.name == "PathGen-CLIP")
    assert entry.paper in card and entry.licence in card and entry.templates[0] in card
    assert "pathgenclip.pt" in card and "zoo:PathGen-CLIP" in card
    assert main(["zoo", "show", "PathGen-CLP"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Did you mean: PathGen-CLIP" in err
    assert main(["zoo", "show"]) == 2 and "needs a model NAME" in capsys.readouterr().err
    assert main(["zoo", "--domain", "nowhere"]) == 2


def test_fetch_checks_files_in_a_zoo_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DOMAINCLIP_ZOO_CACHE", str(tmp_path / "cache"))
    entry = local_zoo_entry({"name": "cli-fetch", "format": "open_clip_state_dict", "arch": "dc-test-vit"},
                            tmp_path / "zoo", {"weights": {"w.pt": b"weights"}})
    register_zoo_entry(entry)
    try:
        assert main(["zoo", "fetch", "cli-fetch", "--zoo-dir", str(tmp_path / "zoo")]) == 0
        assert str(tmp_path / "zoo" / "cli-fetch") in capsys.readouterr().out
        (tmp_path / "zoo" / "cli-fetch" / "w.pt").write_bytes(b"weightz")
        assert main(["zoo", "fetch", "cli-fetch", "--zoo-dir", str(tmp_path / "zoo")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "w.pt" in err and "sha256" in err
        assert main(["zoo", "fetch", "cli-fetch", "--zoo-dir", str(tmp_path / "empty")]) == 2
        err = capsys.readouterr().err.strip()
        assert "https://example.org/cli-fetch/w.pt" in err and str(tmp_path / "empty" / "cli-fetch" / "w.pt") in err
    finally:
        unregister_zoo_entry("cli-fetch")


@pytest.mark.parametrize("readme", ["README.md"])
def test_readme_table_is_generated_from_the_registry(readme):
    text = (REPO_ROOT / readme).read_text(encoding="utf-8")
    block = text[text.index(README_BEGIN) + len(README_BEGIN): text.index(README_END)].strip()
    assert block == readme_table(list_zoo()), "regenerate it: python -m domainclip.core.zoo.cards README.md"


@pytest.mark.slow
def test_eval_and_compare_take_a_zoo_model(tmp_path, capsys, monkeypatch):
    import io
    import json

    import torch

    from domainclip.core.models import create_model

    monkeypatch.setenv("DOMAINCLIP_ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DOMAINCLIP_ZOO_DIR", str(tmp_path / "zoo"))
    torch.manual_seed(5)
    buffer = io.BytesIO()
    torch.save({"state_dict": create_model("dc-test-vit").state_dict()}, buffer)
    entry = local_zoo_entry({"name": "cli-eval", "format": "open_clip_state_dict", "arch": "dc-test-vit"},
                            tmp_path / "zoo", {"weights": {"w.pt": buffer.getvalue()}})
    register_zoo_entry(entry)
    try:
        assert main(["eval", "--model", "zoo:cli-eval", "--suite", "core/synthetic", "--out",
                     str(tmp_path / "ev.json")]) == 0
        record = json.loads((tmp_path / "ev.json").read_text())["model"]
        assert record["kind"] == "zoo" and record["zoo"]["name"] == "cli-eval"
        assert record["weights_sha256"] == {"w.pt": entry.sources[0].files[0].sha256}
        assert main(["compare", "--models", "zoo:cli-eval", "dc-test-vit", "--suite", "core/synthetic", "--out",
                     str(tmp_path / "cmp")]) == 0
        rows = json.loads((tmp_path / "cmp" / "results.json").read_text())["models"]
        ev = json.loads((tmp_path / "ev.json").read_text())
        assert rows[0]["source"]["kind"] == "zoo" and rows[0]["results"] == ev["results"]
    finally:
        unregister_zoo_entry("cli-eval")
    capsys.readouterr()
