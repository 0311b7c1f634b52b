"""Multilingual captions in the core decoder: one language drawn per sample by weight, or every caption kept."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from domainclip.core.data.corrupt import BAD_TEXT, CorruptSampleError
from domainclip.core.data.decode import SampleDecoder
from domainclip.core.data.reader import Source, build_loader
from domainclip.core.data.writer import ShardWriter

CAPTIONS = {"en": ["a plane", "two planes"], "pt": ["um avião"], "zh": ["一架飞机"]}
LANGUAGE_OF = {c: lang for lang, texts in CAPTIONS.items() for c in texts}


def _raw(key: str, captions: dict = CAPTIONS, epoch: int = 0, url: str = "shard-000000.tar") -> dict:
    return {"__key__": key, "__url__": url, "__epoch__": epoch, "text.json": json.dumps(captions).encode()}


def _languages_drawn(decoder: SampleDecoder, n: int, captions: dict = CAPTIONS) -> Counter:
    return Counter(LANGUAGE_OF[decoder(_raw(f"k{i:05d}", captions))["text"]] for i in range(n))


def test_the_language_draw_follows_the_weights():
    n = 3000
    drawn = _languages_drawn(SampleDecoder(required=("text",), languages={"en": 2.0, "pt": 1.0}, seed=1), n)
    assert set(drawn) == {"en", "pt"}  # zh is not listed: never drawn
    assert abs(drawn["en"] / n - 2 / 3) < 0.035  # 4 standard deviations of a binomial share
    equal = _languages_drawn(SampleDecoder(required=("text",), languages={}, seed=1), n)
    assert set(equal) == {"en", "pt", "zh"}
    for lang in equal:
        assert abs(equal[lang] / n - 1 / 3) < 0.035


def test_a_language_the_sample_lacks_is_skipped():
    decoder = SampleDecoder(required=("text",), languages={"en": 50.0, "pt": 1.0})
    only_pt_zh = {"pt": ["um avião"], "zh": ["一架飞机"]}
    assert _languages_drawn(decoder, 50, only_pt_zh) == Counter({"pt": 50})
    with pytest.raises(CorruptSampleError, match="none in the languages asked for") as info:
        decoder(_raw("k", {"zh": ["一架飞机"]}))
    assert info.value.reason == BAD_TEXT


def test_the_draw_is_reproducible_and_seeded_per_sample_and_epoch():
    decoder = SampleDecoder(required=("text",), languages={"en": 1.0, "pt": 1.0, "zh": 1.0}, seed=3)
    first = [decoder(_raw(f"k{i}"))["text"] for i in range(200)]
    assert first == [SampleDecoder(required=("text",), languages={"zh": 1, "pt": 1, "en": 1}, seed=3)(
        _raw(f"k{i}", dict(reversed(list(CAPTIONS.items())))))["text"] for i in range(200)]  # order-free
    other_seed = [SampleDecoder(required=("text",), languages={}, seed=4)(_raw(f"k{i}"))["text"] for i in range(200)]
    other_epoch = [decoder(_raw(f"k{i}", epoch=1))["text"] for i in range(200)]
    assert first != other_seed and first != other_epoch
    assert set(first) == set(LANGUAGE_OF)  # both English captions are chosen as well as the other languages


def test_text_choice_first_all_and_the_dict_kept_without_languages():
    first = SampleDecoder(required=("text",), text_choice="first", languages={"en": 1.0})
    assert {first(_raw(f"k{i}"))["text"] for i in range(50)} == {"a plane"}
    every = SampleDecoder(required=("text",), text_choice="all", languages={"pt": 1.0, "en": 3.0})
    assert every(_raw("k"))["text"] == ["um avião", "a plane", "two planes"]  # the listed languages, in their order
    assert SampleDecoder(required=("text",), text_choice="all", languages={})(_raw("k"))["text"] == [
        "a plane", "two planes", "um avião", "一架飞机"]
    assert SampleDecoder(required=("text",), text_choice="all")(_raw("k"))["text"] == CAPTIONS  # evaluation
    single = SampleDecoder(required=("text",), languages={"pt": 1.0})
    assert single(_raw("k", {"en": "a plane", "pt": "um avião"}))["text"] == "um avião"  # one string per language


def test_tokenizer_gets_the_drawn_caption():
    def tokenizer(text):
        return torch.tensor([[len(text) if isinstance(text, str) else -len(text), 0]])

    decoder = SampleDecoder(required=("text",), tokenizer=tokenizer, languages={"pt": 1.0})
    assert torch.equal(decoder(_raw("k"))["text"], torch.tensor([len("um avião"), 0]))
    every = SampleDecoder(required=("text",), tokenizer=tokenizer, text_choice="all", languages={})
    assert torch.equal(every(_raw("k"))["text"], torch.tensor([[-4, 0]]))  # one (K, L) tensor for the K captions


@pytest.mark.parametrize("weights", [{"en": 0.0}, {"en": -1.0}, {"en": float("nan")}, {"en": True}, {"": 1.0}])
def test_bad_weights_are_refused(weights):
    with pytest.raises(ValueError, match="languages"):
        SampleDecoder(languages=weights)


def test_a_resumed_stream_draws_the_same_languages(tmp_path):
    with ShardWriter(tmp_path, max_count=10, image_format="png") as writer:
        for i in range(40):
            captions = {"en": [f"en {i} a", f"en {i} b"], "pt": [f"pt {i}"], "zh": [f"zh {i}"]}
            if i % 5 == 0:
                del captions["en"]  # a language the sample lacks
            writer.write({"__key__": f"s{i:03d}", "image": torch.zeros(3, 4, 4, dtype=torch.uint8), "text": captions})

    def make():
        decoder = SampleDecoder(languages={"en": 3.0, "pt": 1.0, "zh": 1.0}, seed=5)
        return build_loader(Source(str(tmp_path)), decoder, batch_size=4, seed=5, shuffle_buffer=8)

    reference = make()
    stream = iter(reference)
    batches, states = [], []
    for _ in range(25):  # past the end of the first epoch
        batches.append(next(stream)["text"])
        states.append(reference.state_dict())
    del stream
    drawn = Counter(text.split()[0] for batch in batches for text in batch)
    assert set(drawn) == {"en", "pt", "zh"} and drawn["en"] > drawn["pt"]
    for k in (3, 11):
        resumed = make()
        resumed.load_state_dict(json.loads(json.dumps(states[k - 1])))
        stream = iter(resumed)
        assert [next(stream)["text"] for _ in range(k, 25)] == batches[k:]
        del stream


def test_recipe_languages_reach_the_core_decoder(monkeypatch, tmp_path):
    from domainclip.core.engine import train as train_mod
    from domainclip.core.engine.distributed import DistInfo
    from domainclip.core.engine.tasks import get_task
    from domainclip.core.recipe import RecipeError, load_recipe

    seen = {}
    monkeypatch.setattr("domainclip.core.data.reader.build_loader", lambda src, decoder, **kw: seen.update(d=decoder))
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    data = {"train": [{"urls": str(tmp_path / "x.tar")}]}
    recipe = load_recipe({"domain": "core", "data": {**data, "languages": {"en": 2, "pt": 1}}})
    train_mod._build_loader(recipe, get_task("image_text"), None, None, info)
    assert seen["d"].languages == {"en": 2.0, "pt": 1.0}
    train_mod._build_loader(load_recipe({"domain": "core", "data": data}), get_task("image_text"), None, None, info)
    assert seen["d"].languages == {}  # the default: every language of a sample equally
    with pytest.raises(RecipeError, match=r"data\.languages: must be a number > 0; got 0"):
        load_recipe({"domain": "core", "data": {**data, "languages": {"en": 1, "pt": 0}}})
