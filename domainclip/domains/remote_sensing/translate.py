"""``domainclip prepare remote_sensing translate``: English captions of shards machine-translated into other languages.

RS-M-CLIP trains on captions translated automatically from English into nine languages.
:func:`translate_captions` reads shards whose ``text`` holds English captions (``{"en": [...]}``,
as ``prepare remote_sensing captions`` writes, or a plain list), translates every distinct English
sentence once per language, and writes the same samples again with each language under its own
key: ``{"en": [...], "pt": [...], "zh": [...]}``, the i-th caption of a language being the
translation of the i-th English one.

* **Translators.** A Hugging Face seq2seq checkpoint (a hub id in the cache or reachable, or a
  local folder), one of two families told from its vocabulary: many-to-many models that name the
  target language with a token the decoder is forced to start with (NLLB: ``por_Latn``, M2M100:
  ``__pt__``; :data:`LANGUAGE_CODES`), or one model per language pair (Marian / OPUS-MT), named
  with ``{lang}`` in the id (``Helsinki-NLP/opus-mt-en-{lang}``) or by the preset ``marian``
  (:data:`MARIAN_MODELS`); a Marian model with several target languages gets its ``>>xxx<<``
  token before each sentence. ``table:PATH`` reads curated or generated translations from a JSON
  file ``{language: {english sentence: translation}}``.
* **Cache.** Every translation is stored at once in an SQLite file (write-ahead log, one
  transaction per batch) keyed by model, language and English sentence, so a rerun translates
  nothing twice and a run that was killed (``kill -9`` included) goes on from its last batch. It
  lives in the output folder unless ``--cache`` puts it elsewhere (shared by several runs). Note
  that the command line removes the output folder of a *first* run that fails or is interrupted
  (Ctrl-C), cache included, as it does for every command; ``--cache`` outside it keeps the work.
* **Batches.** The sentences still to translate are sorted by length (less padding) and sent in
  batches of ``batch_size``; the generation settings (beams, length) are the checkpoint's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from domainclip.core.data import keys as K
from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.reader import iter_shard
from domainclip.core.data.writer import FIXED_MTIME, ShardWriter
from domainclip.core.errors import InputError
from domainclip.core.io import find_inputs
from domainclip.core.options import PositiveInt, entry_point
from domainclip.core.prepare import resumable

__all__ = [
    "DEFAULT_TRANSLATOR",
    "LANGUAGE_CODES",
    "MARIAN_MODELS",
    "SOURCE_LANGUAGE",
    "TARGET_LANGUAGES",
    "HuggingFaceTranslator",
    "TableTranslator",
    "TargetLanguage",
    "TranslationCache",
    "Translator",
    "TranslatorError",
    "make_translator",
    "translate_captions",
]

#: The language captions are translated from.
SOURCE_LANGUAGE = "en"
#: The languages captions can be translated into (ISO 639-1), RS-M-CLIP's nine.
TargetLanguage = Literal["pt", "es", "fr", "de", "nl", "it", "zh", "ko", "ru"]
TARGET_LANGUAGES: tuple[str, ...] = ("pt", "es", "fr", "de", "nl", "it", "zh", "ko", "ru")
#: The default translator: NLLB-200 distilled to 600M parameters (weights licensed CC-BY-NC 4.0).
DEFAULT_TRANSLATOR = "facebook/nllb-200-distilled-600M"
#: Model family -> ISO 639-1 code -> the family's name of the language: the token that selects it.
LANGUAGE_CODES: dict[str, dict[str, str]] = {
    "nllb": {"en": "eng_Latn", "pt": "por_Latn", "es": "spa_Latn", "fr": "fra_Latn", "de": "deu_Latn",
             "nl": "nld_Latn", "it": "ita_Latn", "zh": "zho_Hans", "ko": "kor_Hang", "ru": "rus_Cyrl"},
    "m2m_100": {code: f"__{code}__" for code in (SOURCE_LANGUAGE, *TARGET_LANGUAGES)},
    "marian": {"pt": ">>por<<", "es": ">>spa<<", "fr": ">>fra<<", "de": ">>deu<<", "nl": ">>nld<<",
               "it": ">>ita<<", "zh": ">>cmn_Hans<<", "ko": ">>kor<<", "ru": ">>rus<<"},
}
#: ``--translator marian``: the OPUS-MT model of each language pair (en-pt and en-ko have no
#: ``opus-mt-en-xx`` model; their ``tc-big`` ones are used).
MARIAN_MODELS: dict[str, str] = {
    "pt": "Helsinki-NLP/opus-mt-tc-big-en-pt", "es": "Helsinki-NLP/opus-mt-en-es", "fr": "Helsinki-NLP/opus-mt-en-fr",
    "de": "Helsinki-NLP/opus-mt-en-de", "nl": "Helsinki-NLP/opus-mt-en-nl", "it": "Helsinki-NLP/opus-mt-en-it",
    "zh": "Helsinki-NLP/opus-mt-en-zh", "ko": "Helsinki-NLP/opus-mt-tc-big-en-ko", "ru": "Helsinki-NLP/opus-mt-en-ru",
}
#: The cache file's name in the output folder when ``--cache`` is not given.
CACHE_NAME = "translations.sqlite"
_TABLE_PREFIX = "table:"
_SHARD_NAME = re.compile(r"^(?P<prefix>.+?)(-w\d+)?-\d{6}$")


class TranslatorError(InputError):
    """A translator that cannot be used as asked (not loadable, wrong languages, a table that lacks a sentence)."""


class Translator(Protocol):
    """Translates English sentences into one language at a time (see :func:`make_translator`)."""

    def model_name(self, language: str) -> str:
        """The name translations into ``language`` are cached under (the model that makes them)."""
        ...

    def prepare_language(self, language: str, sentences: Sequence[str]) -> None:
        """Get ready to translate ``sentences`` into ``language`` (load its model, check a table)."""
        ...

    def __call__(self, sentences: list[str], language: str) -> list[str]:
        """One translation per sentence, in order."""
        ...


# =========================================================================== the cache
class TranslationCache:
    """Translations on disk, keyed by (model, language, English sentence), in SQLite with a write-ahead log.

    Each :meth:`store` is one committed transaction, so what was stored survives the process being
    killed; readers and a second writer (another run sharing the file) wait for each other.

    Args:
        path: the SQLite file (created with its folder when missing).

    Raises:
        InputError: the file exists but is not an SQLite database.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process (WAL)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS translations (model TEXT NOT NULL, language TEXT NOT NULL, "
                "source TEXT NOT NULL, translation TEXT NOT NULL, PRIMARY KEY (model, language, source)) WITHOUT ROWID"
            )
            self._db.commit()
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise InputError(f"translation cache {self.path} is not an SQLite database ({e}); "
                             "move it away or give another --cache") from None

    def lookup(self, model: str, language: str, sentences: Iterable[str]) -> dict[str, str]:
        """The cached translations of those of ``sentences`` that have one."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(sentences))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows = self._db.execute(
                f"SELECT source, translation FROM translations WHERE model = ? AND language = ? AND source IN "
                f"({','.join('?' * len(chunk))})", (model, language, *chunk),
            )
            found.update(rows.fetchall())
        return found

    def store(self, model: str, language: str, pairs: Iterable[tuple[str, str]]) -> None:
        """Store translations (sentence, translation) and commit them."""
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO translations VALUES (?, ?, ?, ?)",
                                 ((model, language, s, t) for s, t in pairs))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM translations").fetchone()[0])

    def close(self) -> None:
        """Close the database (the write-ahead log is folded into the file)."""
        self._db.close()

    def __enter__(self) -> TranslationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# =========================================================================== translators
class TableTranslator:
    """Translations read from a JSON table ``{language: {english sentence: translation}}`` (curated or generated).

    Args:
        path: the JSON file.

    Raises:
        TranslatorError: the file is missing, not JSON, or not of that shape.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise TranslatorError(f"translation table {self.path} does not exist") from None
        expected = 'expected {"<language>": {"<english sentence>": "<translation>", ...}, ...}'
        try:
            table = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TranslatorError(f"translation table {self.path} is not JSON ({e}); {expected}") from None
        ok = isinstance(table, dict) and all(
            isinstance(v, dict) and all(isinstance(s, str) and isinstance(t, str) for s, t in v.items())
            for v in table.values())
        if not ok:
            raise TranslatorError(f"translation table {self.path} is not of the expected shape; {expected}")
        self.table: dict[str, dict[str, str]] = table
        self.digest = hashlib.sha256(data).hexdigest()[:16]

    def model_name(self, language: str) -> str:
        """``table:<sha256 of the file>``: an edited table is a new model."""
        return f"{_TABLE_PREFIX}{self.digest}"

    def prepare_language(self, language: str, sentences: Sequence[str]) -> None:
        """Check that the table translates every sentence into ``language``.

        Raises:
            TranslatorError: the language or some sentences are missing (how many, with an example).
        """
        if language not in self.table:
            raise TranslatorError(f"translation table {self.path} has no {language!r} entry "
                                  f"(it has {', '.join(sorted(self.table)) or 'none'})")
        missing = [s for s in sentences if s not in self.table[language]]
        if missing:
            raise TranslatorError(f"translation table {self.path} lacks the {language!r} translation of "
                                  f"{len(missing)} sentence(s), e.g. {missing[0]!r}")

    def __call__(self, sentences: list[str], language: str) -> list[str]:
        """The table's translations."""
        return [self.table[language][s] for s in sentences]


@dataclass
class _Loaded:
    name: str
    tokenizer: Any
    model: Any
    vocabulary: dict[str, int]


class HuggingFaceTranslator:
    """A Hugging Face seq2seq checkpoint (or one per language) that translates English.

    Args:
        spec: a hub id or local folder; ``{lang}`` in it is replaced by each target language's
            ISO 639-1 code (one model per language pair); ``marian`` uses :data:`MARIAN_MODELS`.
        device: ``auto`` (a GPU when there is one), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        cache_dir: where downloaded checkpoints are kept (default: the Hugging Face cache).
        languages: how many target languages the run asks for (a one-pair model serves only one).

    Raises:
        TranslatorError: (when a language is prepared) the checkpoint cannot be loaded, has no
            token for the language, or translates into one language only and several were asked.
    """

    def __init__(self, spec: str, *, device: str = "auto", cache_dir: str | None = None, languages: int = 1):
        import torch

        from domainclip.core.models.loading import check_device

        self.spec = spec
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = check_device(device)
        self.cache_dir = cache_dir
        self.languages = languages
        self._loaded: _Loaded | None = None

    def model_name(self, language: str) -> str:
        """The checkpoint that translates into ``language``: a hub id, or a local folder's absolute path."""
        name = MARIAN_MODELS[language] if self.spec == "marian" else self.spec.replace("{lang}", language)
        path = Path(name).expanduser()
        return str(path.resolve()) if path.is_dir() else name

    def prepare_language(self, language: str, sentences: Sequence[str]) -> None:
        """Load the checkpoint for ``language`` (the previous one is let go) and check it can translate into it."""
        name = self.model_name(language)
        if self._loaded is None or self._loaded.name != name:
            self._loaded = None
            self._loaded = self._load(name)
        self._marker(language)

    def _load(self, name: str) -> _Loaded:
        from domainclip.core.plugins import require

        transformers = require("transformers", "remote-sensing", "machine translation of captions")
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(name, cache_dir=self.cache_dir)
            model = transformers.AutoModelForSeq2SeqLM.from_pretrained(name, cache_dir=self.cache_dir)
        except (OSError, ValueError, KeyError) as e:
            detail = " ".join(str(e).split())[:300]
            raise TranslatorError(
                f"translator {name!r} cannot be loaded as a Hugging Face seq2seq model (a hub id in the cache or "
                f"reachable, or a local folder): {detail}"
            ) from None
        model.to(self.device).eval()
        return _Loaded(name, tokenizer, model, tokenizer.get_vocab())

    def _marker(self, language: str) -> tuple[str, str | None]:
        """How the loaded checkpoint is told the language: (``forced_bos`` | ``prefix`` | ``pair``, its token)."""
        assert self._loaded is not None
        vocabulary, name = self._loaded.vocabulary, self._loaded.name
        for family in ("nllb", "m2m_100"):
            codes = LANGUAGE_CODES[family]
            if codes[SOURCE_LANGUAGE] in vocabulary:
                if codes[language] not in vocabulary:
                    raise TranslatorError(f"translator {name!r} ({family}) has no token {codes[language]!r} for "
                                          f"{language!r}")
                return "forced_bos", codes[language]
        token = LANGUAGE_CODES["marian"][language]
        for candidate in (token, f">>{language}<<"):
            if candidate in vocabulary:
                return "prefix", candidate
        declared = str(getattr(self._loaded.tokenizer, "target_lang", None) or "")
        if declared and declared.split("_")[0] not in (language, token.strip("<>")):
            raise TranslatorError(f"translator {name!r} translates into {declared!r}, not {language!r}")
        if self.languages > 1 and "{lang}" not in self.spec and self.spec != "marian":
            raise TranslatorError(
                f"translator {name!r} translates one language pair (it has no target-language tokens); "
                "name one model per language with {lang} (e.g. Helsinki-NLP/opus-mt-en-{lang}), use --translator "
                "marian, or translate into one language"
            )
        return "pair", None

    def __call__(self, sentences: list[str], language: str) -> list[str]:
        """Translate one batch with the checkpoint's own generation settings."""
        import torch

        if self._loaded is None or self._loaded.name != self.model_name(language):
            self.prepare_language(language, sentences)
        assert self._loaded is not None
        tokenizer, model = self._loaded.tokenizer, self._loaded.model
        kind, token = self._marker(language)
        texts = [f"{token} {s}" for s in sentences] if kind == "prefix" else list(sentences)
        options: dict[str, Any] = {}
        if kind == "forced_bos":
            if hasattr(tokenizer, "src_lang"):
                family = "nllb" if token in LANGUAGE_CODES["nllb"].values() else "m2m_100"
                tokenizer.src_lang = LANGUAGE_CODES[family][SOURCE_LANGUAGE]
            options["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(token)
        inputs = tokenizer(texts, return_tensors="pt", padding=True, truncation=True).to(self.device)
        with torch.inference_mode():
            generated = model.generate(**inputs, **options)
        return [t.strip() for t in tokenizer.batch_decode(generated, skip_special_tokens=True)]


def make_translator(spec: str, *, device: str = "auto", languages: int = 1) -> Translator:
    """The translator ``spec`` names: ``table:PATH`` or a Hugging Face checkpoint (see :class:`HuggingFaceTranslator`).

    Args:
        spec: ``table:PATH``, ``marian``, a hub id or a local folder (``{lang}`` for one per language).
        device: where a model runs.
        languages: how many target languages will be asked for (a one-pair model serves only one).
    """
    if spec.startswith(_TABLE_PREFIX):
        return TableTranslator(spec[len(_TABLE_PREFIX):])
    return HuggingFaceTranslator(spec, device=device, languages=languages)


# =========================================================================== shards
def _english(raw: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """A raw sample's English captions and its caption dict (empty when it has no text).

    Raises:
        InputError: the sample's text is not UTF-8 JSON (named by shard and key).
    """
    try:
        if "text.json" in raw:
            value = json.loads(raw["text.json"].decode("utf-8"))
        elif "txt" in raw:
            value = raw["txt"].decode("utf-8").strip()
        else:
            return [], {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{raw.get(K.URL)}: sample {raw.get(K.KEY)}: its text is not UTF-8 JSON ({e})") from None
    if isinstance(value, dict):
        english = value.get(SOURCE_LANGUAGE, [])
        texts = dict(value)
    else:
        english, texts = value, {SOURCE_LANGUAGE: value}
    english = [english] if isinstance(english, str) else list(english)
    return [s.strip() for s in english if isinstance(s, str) and s.strip()], texts


def _output_group(shard: Path, base: Path | None) -> tuple[str, str]:
    """(folder relative to the output, shard prefix) of an input shard: its sub-folder and name without the number."""
    relative = "." if base is None else os.path.relpath(shard.parent, base)
    match = _SHARD_NAME.match(shard.stem)
    return relative, match.group("prefix") if match else shard.stem


def _inputs(shards: Sequence[Path], out: Path) -> list[tuple[Path, tuple[str, str]]]:
    """Each input shard with its output group; refuses ``out`` inside an input folder and inputs inside ``out``."""
    found = find_inputs(shards, (".tar",), what="shard", key=lambda p: str(p.resolve()))
    bases = [Path(s).resolve() for s in shards if Path(s).is_dir()]
    target = out.resolve()
    inside = [p for p in found if p.resolve().is_relative_to(target)]
    if inside:
        raise InputError(f"input shard {inside[0]} is inside the output folder {out}: write the translations elsewhere")
    around = [b for b in bases if target.is_relative_to(b)]
    if around:
        raise InputError(f"the output folder {out} is inside the input folder {around[0]}: a rerun would read its own "
                         "output; write the translations elsewhere")
    pairs = []
    for path in found:
        base = next((b for b in bases if path.resolve().is_relative_to(b)), None)
        pairs.append((path, _output_group(path.resolve(), base)))
    return pairs


def _clear_stale(folder: Path, prefix: str) -> None:
    """Remove shards and temporary files of ``prefix`` an interrupted earlier run left in its own output folder."""
    if folder.is_dir():
        pattern = re.compile(rf"^(\.{re.escape(prefix)}-.*\.tmp|{re.escape(prefix)}(-w\d+)?-\d{{6}}\.tar)$")
        for entry in folder.iterdir():
            if pattern.match(entry.name) and entry.is_file():
                entry.unlink()


def _read(paths: Iterable[Path], tally: CorruptTally) -> Iterator[dict[str, Any]]:
    for path in paths:
        yield from iter_shard(str(path), tally)


def _check_shards(tally: CorruptTally) -> None:
    if tally.counts:
        reason = next(iter(tally.examples))
        raise InputError(f"{sum(tally.counts.values())} input shard(s) are damaged (e.g. {tally.examples[reason]}); "
                         "prepare them again")


# =========================================================================== the command
@resumable
@entry_point
def translate_captions(
    out: Path,
    shards: list[Path],
    *,
    languages: tuple[TargetLanguage, ...] = TARGET_LANGUAGES,  # type: ignore[assignment]
    translator: str = DEFAULT_TRANSLATOR,
    batch_size: PositiveInt = 32,
    device: str = "auto",
    cache: Path | None = None,
    max_count: PositiveInt | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Translate the English captions of shards into other languages; each language under its own key.

    Resumable: run again into the same ``out``, it translates only what its cache lacks (nothing
    after a finished run) and writes the shards again.

    Args:
        out: output folder; shards keep the sub-folders and names of the input shards.
        shards: input shards (files, folders searched for .tar, or glob patterns) whose text holds English captions.
        languages: target languages (ISO 639-1): pt es fr de nl it zh ko ru.
        translator: a Hugging Face seq2seq model id or folder ({lang}: one per language), marian, or table:PATH.
        batch_size: sentences per model call.
        device: auto, cpu, cuda, cuda:N or mps.
        cache: the SQLite translation cache (default: translations.sqlite in out; share one between runs).
        max_count: samples per output shard (default: as in the largest input shard of the same name, so shards
            written by domainclip come out with the same names and samples).
        progress: show progress bars.

    Returns:
        ``{"out", "translator", "cache", "samples", "input_shards", "shards", "without_english",
        "languages": {language: {"model", "sentences", "cached", "translated", "batches", "empty"}}}``.

    Raises:
        InputError: an input shard is damaged or inside ``out``; the cache is not SQLite.
        TranslatorError: the translator cannot be loaded or cannot translate into a language.
    """
    from tqdm.auto import tqdm

    inputs = _inputs(shards, out)
    tally = CorruptTally()
    # 1. every distinct English sentence a language needs (a language a sample already has is kept)
    needed: dict[str, dict[str, None]] = {lang: {} for lang in languages}
    samples = without_english = 0
    per_shard: Counter[str] = Counter()
    for raw in tqdm(_read((p for p, _ in inputs), tally), disable=not progress, unit="sample", desc="reading"):
        english, texts = _english(raw)
        samples += 1
        per_shard[raw[K.URL]] += 1
        without_english += not english
        for lang in languages:
            if lang not in texts:
                needed[lang].update(dict.fromkeys(english))
    _check_shards(tally)
    # 2. translate what the cache lacks, one committed batch at a time
    engine = make_translator(translator, device=device, languages=len(languages))
    cache_path = cache if cache is not None else out / CACHE_NAME
    report: dict[str, dict[str, Any]] = {}
    with TranslationCache(cache_path) as store:
        for lang in languages:
            model = engine.model_name(lang)
            cached = store.lookup(model, lang, needed[lang])
            todo = sorted((s for s in needed[lang] if s not in cached), key=len)
            report[lang] = {"model": model, "sentences": len(needed[lang]), "cached": len(cached),
                            "translated": len(todo), "batches": 0, "empty": 0}
            if not todo:
                continue
            engine.prepare_language(lang, todo)
            with tqdm(total=len(todo), disable=not progress, unit="sentence", desc=f"en -> {lang}") as bar:
                for start in range(0, len(todo), batch_size):
                    batch = todo[start : start + batch_size]
                    translated = engine(batch, lang)
                    if len(translated) != len(batch):
                        raise RuntimeError(f"{model} gave {len(translated)} translations of {len(batch)} sentences")
                    store.store(model, lang, zip(batch, translated))
                    report[lang]["batches"] += 1
                    bar.update(len(batch))
        # 3. the shards again, with every language under its own key
        sizes: dict[tuple[str, str], int] = {}
        for path, group in inputs:
            sizes[group] = max(sizes.get(group, 1), max_count or per_shard[str(path)])
        written = _write_translated(inputs, out, store, {lang: engine.model_name(lang) for lang in languages},
                                    report, sizes=sizes, progress=progress, total=samples)
    return {"out": str(out), "translator": translator, "cache": str(cache_path), "samples": samples,
            "input_shards": len(inputs), "shards": written, "without_english": without_english, "languages": report}


def _write_translated(
    inputs: Sequence[tuple[Path, tuple[str, str]]],
    out: Path,
    store: TranslationCache,
    models: Mapping[str, str],
    report: dict[str, dict[str, Any]],
    *,
    sizes: Mapping[tuple[str, str], int],
    progress: bool,
    total: int,
) -> list[str]:
    from tqdm.auto import tqdm

    groups: dict[tuple[str, str], list[Path]] = {}
    for path, group in inputs:
        groups.setdefault(group, []).append(path)
    written: list[str] = []
    tally = CorruptTally()
    with tqdm(total=total, disable=not progress, unit="sample", desc="writing") as bar:
        for (relative, prefix), paths in groups.items():
            folder = out / relative
            _clear_stale(folder, prefix)
            with ShardWriter(folder, prefix=prefix, max_count=sizes[relative, prefix], mtime=FIXED_MTIME,
                             overwrite=True) as writer:
                for raw in _read(paths, tally):
                    english, texts = _english(raw)
                    for lang, model in models.items():
                        if lang in texts or not english:
                            continue
                        found = store.lookup(model, lang, english)
                        kept = [found[s] for s in english if found[s]]
                        report[lang]["empty"] += len(english) - len(kept)
                        if kept:
                            texts[lang] = kept
                    members = {k: v for k, v in raw.items() if not k.startswith("__") and k not in ("txt", "text.json")}
                    writer.write({K.KEY: raw[K.KEY], **members, **({K.TEXT: texts} if texts else {})})
                    bar.update()
            written += [str(p.relative_to(out)) for p in writer.written]
    _check_shards(tally)
    return written

