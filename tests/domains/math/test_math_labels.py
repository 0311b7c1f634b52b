import pytest
import yaml

from domainclip.core.plugins import UnknownNameError
from domainclip.core.resources import data_cards_root
from domainclip.domains.math import labels
from domainclip.domains.math.synthetic.functions import FUNCTION_BUILDERS


def test_label_spaces():
    assert len(labels.DIAGRAM_TYPES) >= 12 and len(set(labels.DIAGRAM_TYPES)) == len(labels.DIAGRAM_TYPES)
    assert set(labels.DIAGRAM_TYPE_FAMILY.values()) == set(labels.FAMILIES)
    assert set(labels.DIAGRAM_TYPE_NAMES) == set(labels.DIAGRAM_TYPES)
    assert tuple(FUNCTION_BUILDERS) == labels.FUNCTION_FAMILIES
    assert [f"{f}_plot" for f in labels.FUNCTION_FAMILIES] == [
        t for t in labels.DIAGRAM_TYPES if labels.DIAGRAM_TYPE_FAMILY[t] == "function_plot"
    ]


@pytest.mark.parametrize(
    ("make", "classes", "n_templates"),
    [
        (labels.diagram_type_templates, labels.DIAGRAM_TYPES, len(labels.DIAGRAM_TEMPLATES)),
        (labels.function_family_templates, labels.FUNCTION_FAMILIES, len(labels.FUNCTION_TEMPLATES)),
        (labels.geometry3k_shape_templates, labels.GEOMETRY3K_SHAPES, len(labels.GEOMETRY3K_TEMPLATES)),
    ],
)
def test_prompt_templates(make, classes, n_templates):
    prompts = make()
    assert list(prompts) == list(classes)  # label order
    for prompt_list in prompts.values():
        assert len(prompt_list) == n_templates and all("{}" not in p and p.endswith(".") for p in prompt_list)
    flat = [p for ps in prompts.values() for p in ps]
    assert len(set(flat)) == len(flat)  # no two classes share a prompt


def test_label_helpers():
    assert labels.diagram_type_label({"diagram_type": "kite"}) == labels.DIAGRAM_TYPES.index("kite")
    assert labels.function_family_label({"function_family": "tangent"}) == 3
    assert labels.function_family_label({"diagram_type": "kite"}) is None
    with pytest.raises(UnknownNameError, match="Did you mean: kite"):
        labels.diagram_type_label({"diagram_type": "kit"})


@pytest.mark.parametrize("card", ["mavis_caption_synthetic.md", "geometry3k.md"])
def test_data_card_front_matter(card):
    text = (data_cards_root() / "math" / card).read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    for key in ("name", "license", "size", "splits", "keys", "source", "citation"):
        assert front.get(key), (card, key)
    assert front["keys"] == ["image", "text", "label", "meta"]
    body = text.split("---\n", 2)[2]
    assert "bias" in body.lower() and "licence" in body.lower()
