"""Caption translation: translators (table, tiny random seq2seq models), batches, the on-disk cache, resume, shard keys.

The models are tiny and randomly initialised, with tokenizers built here with the ``tokenizers``
library: what is checked is the plumbing, never the quality of a translation.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import torch

from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.reader import iter_shard
from domainclip.core.errors import InputError
from domainclip.domains.remote_sensing.captions import prepare_captions
from domainclip.domains.remote_sensing.translate import (
    LANGUAGE_CODES,
    HuggingFaceTranslator,
    TranslatorError,
    translate_captions,
)
from tests.domains.remote_sensing.data_captions import write_caption_set

REPO = Path(__file__).resolve().parents[3]
SPECIALS = ["<pad>", "</s>", "<unk>"]


# ----------------------------------------------------------------------------- tiny models
def _tokenizer(folder: Path, words: list[str], extra_special: list[str] = ()) -> dict[str, int]:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*SPECIALS, *extra_special])}
    for word in words:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   additional_special_tokens=list(extra_special), model_max_length=64)
    fast.save_pretrained(folder)
    return vocab


def _words(sentences) -> list[str]:
    return sorted({w for s in sentences for w in s.replace("(", " ").replace(")", " ").split()})


def tiny_marian(folder: Path, sentences, extra_special: list[str] = ()) -> Path:
    """A random 1-layer Marian model that never stops early (its special tokens are never generated)."""
    from transformers import MarianConfig, MarianMTModel

    vocab = _tokenizer(folder, _words(sentences) + ["lighthouse"], extra_special)
    torch.manual_seed(len(str(folder)))
    config = MarianConfig(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16,
                          max_position_embeddings=128, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                          forced_eos_token_id=None)
    model = MarianMTModel(config)
    with torch.no_grad():
        model.final_logits_bias[0, [vocab[t] for t in [*SPECIALS, *extra_special]]] = -1e4
    model.generation_config.max_length = 5
    model.generation_config.num_beams = 1
    model.save_pretrained(folder)
    return folder


def tiny_m2m(folder: Path, sentences, codes: list[str]) -> Path:
    """A random 1-layer M2M100 model whose vocabulary holds NLLB's language codes as special tokens."""
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    vocab = _tokenizer(folder, _words(sentences), codes)
    torch.manual_seed(1)
    config = M2M100Config(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16,
                          max_position_embeddings=128, pad_token_id=0, eos_token_id=1, decoder_start_token_id=1,
                          bos_token_id=0, forced_eos_token_id=None)
    model = M2M100ForConditionalGeneration(config)
    model.generation_config.suppress_tokens = [vocab[t] for t in SPECIALS]  # never an empty translation
    model.generation_config.max_length = 5
    model.generation_config.num_beams = 1
    model.save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------- inputs
@pytest.fixture
def captions(tmp_path):
    """Shards of a 10-image RSICD-layout set (train/val/test folders, 3 samples a shard) and its truth."""
    truth = write_caption_set(tmp_path / "raw", "rsicd", n=10)
    prepare_captions(tmp_path / "captions", truth.root, max_count=3, progress=False)
    english = list(dict.fromkeys(c for image in truth.images for c in image.captions))
    return tmp_path / "captions", truth, english


def _samples(folder: Path) -> dict[str, dict]:
    tally = CorruptTally()
    out = {}
    for shard in sorted(folder.rglob("*.tar")):
        for raw in iter_shard(str(shard), tally):
            out[f"{shard.relative_to(folder)}/{raw['__key__']}"] = raw
    assert not tally.counts
    return out


def _table(path: Path, english, languages=("pt", "de")) -> Path:
    path.write_text(json.dumps({lang: {s: f"[{lang}] {s}" for s in english} for lang in languages}), encoding="utf-8")
    return path


def _originals() -> tuple:
    from transformers import GenerationMixin

    return GenerationMixin.generate, HuggingFaceTranslator.__call__


_REAL = _originals()


class Calls:
    """Counts model calls (``generate``) and records the sentences of every translated batch."""

    def __init__(self, monkeypatch, fail_at: int | None = None):
        self.generate = 0
        self.batches: list[tuple[str, list[str]]] = []
        from transformers import GenerationMixin

        real_generate, real_call = _REAL
        calls = self

        def generate(model, *args, **kwargs):
            calls.generate += 1
            if fail_at is not None and calls.generate == fail_at:
                raise KeyboardInterrupt("interrupted in the middle of a batch")
            return real_generate(model, *args, **kwargs)

        def call(translator, sentences, language):
            out = real_call(translator, sentences, language)
            calls.batches.append((language, list(sentences)))
            return out

        monkeypatch.setattr(GenerationMixin, "generate", generate)
        monkeypatch.setattr(HuggingFaceTranslator, "__call__", call)

    def sentences(self) -> Counter:
        return Counter((lang, s) for lang, batch in self.batches for s in batch)


# ----------------------------------------------------------------------------- tests
def test_a_table_translates_every_caption_aligned_under_its_language(captions, tmp_path):
    folder, truth, english = captions
    table = _table(tmp_path / "table.json", english)
    out = tmp_path / "out"
    summary = translate_captions(out, [folder], languages=("pt", "de"), translator=f"table:{table}", progress=False)
    before, after = _samples(folder), _samples(out)
    assert sorted(after) == sorted(before)  # same sub-folders, shard names and keys
    assert sorted(summary["shards"]) == sorted(str(p.relative_to(out)) for p in out.rglob("*.tar"))
    for name, raw in after.items():
        english_captions = json.loads(before[name]["text.json"])["en"]
        assert json.loads(raw["text.json"]) == {"en": english_captions,
                                                "pt": [f"[pt] {s}" for s in english_captions],
                                                "de": [f"[de] {s}" for s in english_captions]}
        assert raw["jpg"] == before[name]["jpg"] and raw["json"] == before[name]["json"]
    assert summary["samples"] == 10 and summary["without_english"] == 0
    for lang in ("pt", "de"):
        assert summary["languages"][lang] | {"model": None} == {"model": None, "sentences": len(english),
                                                                "cached": 0, "translated": len(english),
                                                                "batches": -(-len(english) // 32), "empty": 0}
    again = translate_captions(out, [folder], languages=("pt", "de"), translator=f"table:{table}", progress=False)
    assert again["languages"]["pt"]["translated"] == 0 and again["languages"]["pt"]["cached"] == len(english)
    assert _samples(out) == after
    _table(table, english, languages=("pt",))  # an edited table is another model: translated again
    third = translate_captions(out, [folder], languages=("pt",), translator=f"table:{table}", progress=False)
    assert third["languages"]["pt"]["translated"] == len(english)


def test_a_table_that_lacks_a_language_or_a_sentence_is_one_line(captions, tmp_path):
    folder, truth, english = captions
    table = _table(tmp_path / "table.json", english[1:], languages=("pt",))
    with pytest.raises(TranslatorError, match=r"has no 'de' entry \(it has pt\)"):
        translate_captions(tmp_path / "o1", [folder], languages=("de",), translator=f"table:{table}", progress=False)
    with pytest.raises(TranslatorError, match=rf"lacks the 'pt' translation of 1 sentence\(s\), e\.g\. '{english[0]}'"):
        translate_captions(tmp_path / "o2", [folder], languages=("pt",), translator=f"table:{table}", progress=False)
    (tmp_path / "bad.json").write_text('{"pt": ["not", "a", "mapping"]}')
    with pytest.raises(TranslatorError, match="not of the expected shape"):
        translate_captions(tmp_path / "o3", [folder], languages=("pt",), translator=f"table:{tmp_path / 'bad.json'}",
                           progress=False)


def test_batches_of_the_asked_size_and_a_rerun_calls_no_model(captions, tmp_path, monkeypatch):
    folder, truth, english = captions
    template = str(tmp_path / "opus-mt-en-{lang}")
    for lang in ("pt", "de"):
        tiny_marian(Path(template.replace("{lang}", lang)), english)
    calls = Calls(monkeypatch)
    out = tmp_path / "out"
    summary = translate_captions(out, [folder], languages=("pt", "de"), translator=template, batch_size=3,
                                 device="cpu", progress=False)
    n = len(english)
    for lang in ("pt", "de"):
        sizes = [len(batch) for language, batch in calls.batches if language == lang]
        assert sizes == [3] * (n // 3) + ([n % 3] if n % 3 else [])
        assert summary["languages"][lang]["model"] == str(Path(template.replace("{lang}", lang)).resolve())
        lengths = [len(s) for language, batch in calls.batches if language == lang for s in batch]
        assert lengths == sorted(lengths)  # similar lengths share a batch
    assert calls.generate == 2 * -(-n // 3) and set(calls.sentences().values()) == {1}
    with sqlite3.connect(out / "translations.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM translations").fetchone()[0] == 2 * n
    written = _samples(out)
    for raw in written.values():
        text = json.loads(raw["text.json"])
        assert list(text) == ["en", "pt", "de"] and all(len(text[k]) == len(text["en"]) for k in text)
        assert all(t and t.strip() == t for k in ("pt", "de") for t in text[k])
    rerun = Calls(monkeypatch)
    again = translate_captions(out, [folder], languages=("pt", "de"), translator=template, batch_size=3,
                               device="cpu", progress=False)
    assert rerun.generate == 0 and again["languages"]["de"]["cached"] == n
    assert _samples(out) == written  # the same bytes again


def test_an_interrupted_run_resumes_and_translates_each_sentence_once(captions, tmp_path, monkeypatch):
    folder, truth, english = captions
    model = tiny_marian(tmp_path / "opus-mt-en-pt", english)
    shared_cache = tmp_path / "cache" / "mt.sqlite"
    first = Calls(monkeypatch, fail_at=4)
    with pytest.raises(KeyboardInterrupt):
        translate_captions(tmp_path / "out", [folder], languages=("pt",), translator=str(model), batch_size=4,
                           cache=shared_cache, progress=False)
    assert len(first.batches) == 3  # three batches were translated and committed before the interruption
    second = Calls(monkeypatch)
    summary = translate_captions(tmp_path / "out", [folder], languages=("pt",), translator=str(model), batch_size=4,
                                 cache=shared_cache, progress=False)
    assert summary["languages"]["pt"]["cached"] == 12 and summary["languages"]["pt"]["translated"] == len(english) - 12
    both = first.sentences() + second.sentences()
    assert set(both) == {("pt", s) for s in english} and set(both.values()) == {1}


def test_a_killed_command_resumes_through_the_command_line(captions, tmp_path, monkeypatch):
    """``kill -9`` in the middle of the third batch: the rerun translates only what was not committed."""
    folder, truth, english = captions
    model = tiny_marian(tmp_path / "opus-mt-en-pt", english)
    log = tmp_path / "translated.jsonl"
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, signal, sys
        from transformers import GenerationMixin
        from domainclip.domains.remote_sensing import translate
        real_generate, real_call, calls = GenerationMixin.generate, translate.HuggingFaceTranslator.__call__, [0]
        def generate(model, *args, **kwargs):
            calls[0] += 1
            if calls[0] == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return real_generate(model, *args, **kwargs)
        def call(translator, sentences, language):
            out = real_call(translator, sentences, language)
            with open({str(log)!r}, "a") as f:
                f.write(json.dumps([language, sentences]) + "\\n")
            return out
        GenerationMixin.generate = generate
        translate.HuggingFaceTranslator.__call__ = call
        from domainclip.cli import main
        sys.exit(main(sys.argv[1:]))
    """))
    argv = ["prepare", "remote_sensing", "translate", "--out", str(tmp_path / "out"), "--shards", str(folder),
            "--languages", "pt", "--translator", str(model), "--batch-size", "4", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    killed = subprocess.run([sys.executable, str(script), *argv], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / ".domainclip-output.json").read_text())
    assert manifest["complete"] is False
    with sqlite3.connect(tmp_path / "out" / "translations.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM translations").fetchone()[0] == 8  # two committed batches
    from domainclip.cli import main

    rerun = Calls(monkeypatch)
    assert main(argv) == 0
    logged = [tuple(json.loads(line)) for line in log.read_text().splitlines()]
    both = Counter(("pt", s) for _, batch in logged for s in batch) + rerun.sentences()
    assert set(both) == {("pt", s) for s in english} and set(both.values()) == {1}
    assert json.loads((tmp_path / "out" / ".domainclip-output.json").read_text())["complete"] is True
    assert len(_samples(tmp_path / "out")) == 10


def test_nllb_codes_force_the_target_language(captions, tmp_path, monkeypatch):
    folder, truth, english = captions
    codes = [LANGUAGE_CODES["nllb"][lang] for lang in ("en", "pt", "zh")]
    model = tiny_m2m(tmp_path / "nllb", english, codes)
    seen = []
    from transformers import GenerationMixin

    real = GenerationMixin.generate

    def generate(self, *args, **kwargs):
        seen.append(kwargs.get("forced_bos_token_id"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", generate)
    summary = translate_captions(tmp_path / "out", [folder], languages=("pt", "zh"), translator=str(model),
                                 batch_size=64, progress=False)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    assert seen == [tokenizer.convert_tokens_to_ids("por_Latn"), tokenizer.convert_tokens_to_ids("zho_Hans")]
    assert summary["languages"]["zh"]["translated"] == len(english)
    text = json.loads(next(iter(_samples(tmp_path / "out").values()))["text.json"])
    assert set(text) == {"en", "pt", "zh"} and not any("_Latn" in t or "_Hans" in t for t in text["pt"] + text["zh"])
    with pytest.raises(TranslatorError, match=r"\(nllb\) has no token 'deu_Latn' for 'de'"):
        translate_captions(tmp_path / "o2", [folder], languages=("de",), translator=str(model), progress=False)


def test_marian_target_tokens_and_one_pair_models(captions, tmp_path, monkeypatch):
    folder, truth, english = captions
    multi = tiny_marian(tmp_path / "opus-mt-tc-big-en-pt", english, extra_special=[">>por<<", ">>spa<<"])
    inputs = []
    from transformers import GenerationMixin

    real = GenerationMixin.generate

    def generate(self, *args, **kwargs):
        inputs.append(kwargs["input_ids"][:, 0].tolist())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", generate)
    translate_captions(tmp_path / "out", [folder], languages=("pt", "es"), translator=str(multi), progress=False)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(multi)
    assert inputs[0] == [tokenizer.convert_tokens_to_ids(">>por<<")] * len(english)
    assert inputs[1] == [tokenizer.convert_tokens_to_ids(">>spa<<")] * len(english)
    pair = tiny_marian(tmp_path / "opus-mt-en-de", english)
    with pytest.raises(TranslatorError, match=r"translates one language pair .* with \{lang\}"):
        translate_captions(tmp_path / "o2", [folder], languages=("de", "nl"), translator=str(pair), progress=False)
    assert translate_captions(tmp_path / "o3", [folder], languages=("de",), translator=str(pair),
                              progress=False)["languages"]["de"]["translated"] == len(english)


def test_unusable_inputs_and_translators_are_one_line(captions, tmp_path):
    folder, truth, english = captions
    with pytest.raises(TranslatorError, match="'no-such/translator' cannot be loaded as a Hugging Face seq2seq model"):
        translate_captions(tmp_path / "o1", [folder], languages=("pt",), translator="no-such/translator",
                           progress=False)
    with pytest.raises(InputError, match="is inside the input folder .*: a rerun would read its own output"):
        translate_captions(folder / "translated", [folder], languages=("pt",), translator="marian", progress=False)
    shard = next((folder / "train").glob("*.tar"))
    shard.write_bytes(shard.read_bytes()[:1500])
    with pytest.raises(InputError, match="1 input shard\\(s\\) are damaged"):
        translate_captions(tmp_path / "o2", [folder], languages=("pt",), translator="marian", progress=False)
    (tmp_path / "cache.sqlite").write_text("not a database " * 100)
    with pytest.raises(InputError, match="is not an SQLite database"):
        translate_captions(tmp_path / "o3", [folder / "test"], languages=("pt",), translator="marian",
                           cache=tmp_path / "cache.sqlite", progress=False)
    with pytest.raises(InputError, match="languages item 1: must be one of pt, es, fr, de, nl, it, zh, ko, ru"):
        translate_captions(tmp_path / "o4", [folder], languages=("pt", "xx"), progress=False)
    from domainclip.core.data.writer import ShardWriter

    with ShardWriter(tmp_path / "bad", prefix="bad") as writer:
        writer.write({"__key__": "k1", "text.json": b'{"en": ["a plane"'})
    with pytest.raises(InputError, match=r"bad-000000\.tar: sample k1: its text is not UTF-8 JSON"):
        translate_captions(tmp_path / "o5", [tmp_path / "bad"], languages=("pt",), translator="marian", progress=False)
