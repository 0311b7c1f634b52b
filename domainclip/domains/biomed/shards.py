"""What the shard-to-shard commands (dedup, panels, concepts) share: input shards, articles.jsonl, refusals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.reader import iter_shard
from domainclip.core.errors import InputError, NothingWrittenError
from domainclip.core.io import find_inputs

__all__ = ["copy_articles", "input_shards", "read_shards", "require_written"]


def input_shards(shards: Sequence[Path], out: Path) -> list[Path]:
    """The ``.tar`` shards that ``shards`` names; refused (``InputError``) when one lies inside ``out``.

    Args:
        shards: the command's input shards, folders or patterns.
        out: the command's output folder.
    """
    found = find_inputs(shards, (".tar",), what="shard", key=lambda p: str(p.resolve()))
    inside = [p for p in found if p.resolve().is_relative_to(out.resolve())]
    if inside:
        raise InputError(f"input shard {inside[0]} is inside the output folder {out}: write elsewhere")
    return found


def read_shards(paths: Sequence[Path], tally: CorruptTally) -> Iterator[dict[str, Any]]:
    """The raw samples of the shards in order; what cannot be read is counted in ``tally``.

    Args:
        paths: the shards.
        tally: the reader's counts.
    """
    for path in paths:
        yield from iter_shard(str(path), tally)


def copy_articles(paths: Sequence[Path], shards: Sequence[Path], out: Path) -> int:
    """Concatenate the ``articles.jsonl`` of the input folders (each file once) into ``out``; lines written.

    Args:
        paths: the input shards (their folders are input folders).
        shards: what the user named (its folders are input folders).
        out: the output folder.
    """
    folders = dict.fromkeys([Path(s) for s in shards if Path(s).is_dir()] + [p.parent for p in paths])
    sources = dict.fromkeys((f / "articles.jsonl").resolve() for f in folders if (f / "articles.jsonl").is_file())
    if not sources:
        return 0
    lines = 0
    with open(out / "articles.jsonl", "w", encoding="utf-8") as target:
        for source in sources:
            with open(source, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        target.write(line if line.endswith("\n") else line + "\n")
                        lines += 1
    return lines


def require_written(command: str, written: int, paths: Sequence[Path], tally: CorruptTally, skipped: Counter[str],
                    examples: dict[str, str]) -> None:
    """Add the reader's counts to ``skipped`` and ``examples``; raise ``NothingWrittenError`` if nothing was written.

    Args:
        command: the command's name, for the message.
        written: the figures written.
        paths: the input shards.
        tally: the reader's counts.
        skipped: skipped figures by reason (updated).
        examples: an example of each reason (updated).
    """
    for reason, n in tally.counts.items():
        skipped[reason] += n
        if reason in tally.examples:
            examples.setdefault(reason, str(tally.examples[reason]))
    if not written:
        inputs = f"{len(paths)} shard{'s' if len(paths) != 1 else ''}"
        raise NothingWrittenError.from_counts(command, "figures", inputs, skipped, examples)
