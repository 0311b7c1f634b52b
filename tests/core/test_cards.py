import pytest

from domainclip.core.cards import CardError, list_cards, read_card


def test_every_shipped_card_is_valid():
    cards = list_cards()
    assert {p.parent.name for p in cards} >= {"core", "math"}
    for path in cards:
        meta, body = read_card(path)
        assert meta["name"] and len(body) > 200, path


def test_bad_cards_are_rejected(tmp_path):
    folder = tmp_path / "math"
    folder.mkdir()
    bad = folder / "x.md"
    bad.write_text("no front matter")
    with pytest.raises(CardError, match="must start with"):
        read_card(bad)
    bad.write_text("---\nname: x\ndomain: math\n---\nbody")
    with pytest.raises(CardError, match="lacks license"):
        read_card(bad)
    bad.write_text("---\nname: x\ndomain: core\nlicense: MIT\nsize: 1\nsplits: {}\nkeys: [image]\nphi: none\n"
                   "citation: null\n---\nbody")
    with pytest.raises(CardError, match="does not match its folder"):
        read_card(bad)
