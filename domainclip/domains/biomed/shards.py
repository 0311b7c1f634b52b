"""Figure shards in, figure shards out: what the shard-to-shard commands (dedup, panels, concepts) share.

Each reads the ``.tar`` shards of ``domainclip prepare biomed figures`` (or of another of these
commands), writes new shards into its own output folder and carries the input folders'
``articles.jsonl`` along, so that its output is again a complete figure folder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.reader import iter_shard
from domainclip.core.errors import InputError, NothingWrittenError
from domainclip.core.io import find_inputs

__all__ = ["ARTICLES_NAME", "copy_articles", "input_shards", "read_shards", "require_written"]

#: The article list that travels with the figure shards (written by ``domainclip prepare biomed figures``).
ARTICLES_NAME = "articles.jsonl"


def input_shards(shards: Sequence[Path], out: Path) -> list[Path]:
    """The ``.tar`` shards that ``shards`` names (files, folders or patterns), none inside ``out``.

    Args:
        shards: the command's input shards or folders of them.
        out: the command's output folder.

    Raises:
        InputNotFoundError: ``shards`` names no shard.
        InputError: a shard lies inside ``out`` (the command would read what it writes).
    """
    found = find_inputs(shards, (".tar",), what="shard", key=lambda p: str(p.resolve()))
    target = out.resolve()
    inside = [p for p in found if p.resolve().is_relative_to(target)]
    if inside:
        raise InputError(f"input shard {inside[0]} is inside the output folder {out}: write elsewhere")
    return found


def read_shards(paths: Sequence[Path], tally: CorruptTally) -> Iterator[dict[str, Any]]:
    """The raw samples of the shards, in order; a damaged shard's samples are counted in ``tally``.

    Args:
        paths: the shards (from :func:`input_shards`).
        tally: counts what cannot be read.
    """
    for path in paths:
        yield from iter_shard(str(path), tally)


def copy_articles(paths: Sequence[Path], shards: Sequence[Path], out: Path) -> int:
    """Concatenate the ``articles.jsonl`` of the input folders (each file once) into ``out``; lines written.

    The input folders are the folders named in ``shards`` and those holding a shard of ``paths``.
    Nothing is written where none of them has an ``articles.jsonl``.

    Args:
        paths: the input shards (from :func:`input_shards`).
        shards: what the user named (folders among them count even when their shards lie deeper).
        out: the output folder.
    """
    folders = dict.fromkeys([Path(s) for s in shards if Path(s).is_dir()] + [p.parent for p in paths])
    sources = dict.fromkeys((f / ARTICLES_NAME).resolve() for f in folders if (f / ARTICLES_NAME).is_file())
    if not sources:
        return 0
    lines = 0
    with open(out / ARTICLES_NAME, "w", encoding="utf-8") as target:
        for source in sources:
            with open(source, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        target.write(line if line.endswith("\n") else line + "\n")
                        lines += 1
    return lines


def require_written(
    command: str,
    written: int,
    paths: Sequence[Path],
    tally: CorruptTally,
    skipped: Counter[str],
    examples: dict[str, str],
) -> None:
    """Add what the shard reader could not read to ``skipped`` and ``examples``; refuse when nothing was written.

    Args:
        command: the command's name (``"biomed/dedup"``), first in the message.
        written: the figures the command wrote.
        paths: the input shards.
        tally: the shard reader's counts (damaged shards, unreadable members).
        skipped: the command's skipped figures by reason (updated).
        examples: one example of each reason (updated).

    Raises:
        NothingWrittenError: ``written`` is 0 (the skipped counts by reason, with an example each).
    """
    for reason, n in tally.counts.items():
        skipped[reason] += n
        if reason in tally.examples:
            examples.setdefault(reason, str(tally.examples[reason]))
    if not written:
        inputs = f"{len(paths)} shard{'s' if len(paths) != 1 else ''}"
        raise NothingWrittenError.from_counts(command, "figures", inputs, skipped, examples)
