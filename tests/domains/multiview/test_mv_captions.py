"""Tests of the multi-view captions: category-guided templates and the captioning-model hook."""

import pytest
from PIL import Image

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.domains.multiview.captions import (
    ATTRIBUTES,
    TEMPLATES,
    ZERO_SHOT_PROMPTS,
    Captioner,
    CaptionerError,
    category_guided,
    category_text,
    guide_caption,
    make_captioner,
    mentions_category,
    template_captions,
    with_article,
)
from domainclip.domains.multiview.synthetic import CATEGORIES

ALL = {"colour": "orange", "second_colour": "white", "pattern": "striped", "view": "above"}


@pytest.mark.parametrize("category", [*CATEGORIES, "night_stand", "airplane"])
def test_every_caption_names_the_category(category):
    captions = template_captions(category, n=len(TEMPLATES), seed=1, attributes=ALL)
    assert len(captions) == len(TEMPLATES) == len(set(captions))  # each template once
    assert all(mentions_category(c, category) for c in captions)
    assert all(category_text(category) in c for c in captions)


def test_templates_use_only_known_attributes():
    captions = template_captions("mug", n=6, seed=0)
    assert len(set(captions)) == 6
    assert not any(word in " ".join(captions) for word in ("orange", "striped", "above", "{"))
    coloured = template_captions("mug", n=40, seed=0, attributes={"colour": "orange"})
    assert "an orange mug." in coloured and "a 3D render of an orange mug." in coloured
    assert not any("{" in c or "seen from" in c for c in coloured)
    plain = template_captions("mug", n=40, seed=0, attributes={**ALL, "pattern": "plain"})
    assert not any("white" in c for c in plain)  # a plain object has no second colour
    viewed = template_captions("box", n=40, seed=0, attributes={"view": "the side"})
    assert "a box seen from the side." in viewed


def test_draw_is_seeded():
    a = template_captions("cone", n=5, seed=[3, 7], attributes=ALL)
    assert a == template_captions("cone", n=5, seed=[3, 7], attributes=ALL)
    assert a != template_captions("cone", n=5, seed=[3, 8], attributes=ALL)


def test_articles_and_words():
    assert with_article("orange mug") == "an orange mug" and with_article("box") == "a box"
    assert category_text("night_stand") == "night stand" and category_text("tv-stand") == "tv stand"
    assert [p("airplane") for p in ZERO_SHOT_PROMPTS][0] == "a 3D render of an airplane."
    assert all("coin" in p("coin") for p in ZERO_SHOT_PROMPTS)


def test_bad_calls_are_one_line_errors():
    with pytest.raises(InputError, match=r"\['material'\] are not known"):
        template_captions("mug", attributes={"material": "wood"})
    with pytest.raises(InputError, match="needs a category"):
        template_captions(" ")
    with pytest.raises(InputError, match="at least 1"):
        template_captions("mug", n=0)
    assert set(ATTRIBUTES) == {"colour", "second_colour", "pattern", "view"}


def test_guided_captions_add_a_missing_category():
    assert guide_caption("a red cup on a table", "mug") == "a mug: a red cup on a table"
    assert guide_caption("two  Mugs on a shelf", "mug") == "two Mugs on a shelf"
    assert guide_caption("", "apple") == "an apple"
    assert guide_caption("a wooden night stand", "night_stand") == "a wooden night stand"
    assert not mentions_category("a smuggler", "mug")

    def echo(images, category):
        return [f"view {i}" if i else "a mug" for i in range(len(images))]

    guided = category_guided(echo)
    assert isinstance(guided, Captioner)
    images = [Image.new("RGB", (8, 8))] * 3
    assert guided(images, "mug") == ["a mug", "a mug: view 1", "a mug: view 2"]


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    """A randomly initialised two-layer BLIP captioner with its processor, saved as a local folder."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny_blip")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "red", "cup", "on", "table", "photo",
             "of", "the", "mug", "green", "box", "render", ","]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = transformers.BertTokenizer(str(folder / "vocab.txt"), bos_token="[DEC]")
    processor = transformers.BlipProcessor(
        image_processor=transformers.BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    config = transformers.BlipConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 16},
        text_config={"vocab_size": len(words), "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 64, "bos_token_id": 5, "pad_token_id": 0,
                     "sep_token_id": 3, "eos_token_id": 3},
        projection_dim=32)
    torch.manual_seed(0)
    transformers.BlipForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, set(words)


def test_hf_captioner_from_a_local_folder(tiny_blip):
    folder, vocabulary = tiny_blip
    captioner = make_captioner(str(folder), max_new_tokens=6)
    assert isinstance(captioner, Captioner) and captioner.name.startswith("local-dir:")
    images = [Image.new("RGB", (40, 30), (200, 30, 30)), Image.new("L", (20, 20), 90), Image.new("RGB", (32, 32))]
    captions = captioner(images, "mug")
    assert len(captions) == 3 and captions == captioner(images, "mug")  # greedy: deterministic
    assert all(set(c.replace(",", " , ").split()) <= vocabulary - {"[PAD]", "[CLS]", "[SEP]", "[DEC]"}
               for c in captions)
    guided = category_guided(captioner)(images, "dumbbell")
    assert all(mentions_category(c, "dumbbell") for c in guided)
    prompted = make_captioner(f"local-dir:{folder}", max_new_tokens=4, prompt="a photo of a {category}")
    assert all(c.startswith("a photo of a mug") for c in prompted(images[:2], "mug"))


def test_make_captioner_errors(tmp_path):
    with pytest.raises(InputNotFoundError, match="no such model folder"):
        make_captioner(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaptionerError, match="cannot be loaded as a Hugging Face image-to-text model"):
        make_captioner(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="invalid hub id"):
        make_captioner("hf-hub:not a repo")
