"""Hierarchical caption spans of surgical videos (SurgLaVi's task / step / phase levels).

SurgLaVi (Perez et al., 2025) segments narrated surgical videos into procedural units at three
levels, numbered in its database by ``level_id``: ``1 = task`` (the finest, a few seconds of one
action), ``2 = step`` and ``3 = phase`` (the coarsest, minutes long). Each caption also carries two
flags set by its text filter, ``is_descriptive`` and ``is_surgical_content``; the released dataset
keeps the captions with both flags set.

A :class:`LevelSpan` is one such caption: a time span of one video with its level and text. They are
read from

* a CSV table (:func:`read_level_table`), columns ``video_id,start,end,level,text`` plus the optional
  ``is_descriptive,is_surgical_content``; times in seconds or ``HH:MM:SS(.ms)``; ``level`` as a name
  (``task``/``step``/``phase``) or a SurgLaVi id (``1``/``2``/``3``);
* a JSON file, either ``{video_id: [{start, end, level, text, ...}, ...]}`` or a list of records that
  each hold a ``video_id``;
* SurgLaVi's SQLite database (:func:`read_surglavi_sqlite`).
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.plugins import UnknownNameError

__all__ = [
    "LEVELS",
    "LEVEL_IDS",
    "LEVEL_READERS",
    "LevelSpan",
    "LevelTableError",
    "SurgLaViSchema",
    "filter_spans",
    "group_by_video",
    "level_id",
    "level_name",
    "parse_time",
    "read_level_table",
    "read_surglavi_sqlite",
    "span_flag_reason",
    "spans_for_video",
]

#: The three SurgLaVi levels, finest first; ``LEVELS[i]`` has SurgLaVi ``level_id == i + 1``.
LEVELS: tuple[str, ...] = ("task", "step", "phase")
#: SurgLaVi ``level_id`` -> level name.
LEVEL_IDS: dict[int, str] = {i + 1: name for i, name in enumerate(LEVELS)}


class LevelTableError(InputError):
    """A levels file (CSV, JSON, SQLite) is malformed; the message names the file and the row."""


#: Reason a span is dropped because its ``is_descriptive`` flag is not set.
NOT_DESCRIPTIVE = "not_descriptive"
#: Reason a span is dropped because its ``is_surgical_content`` flag is not set.
NOT_SURGICAL = "not_surgical_content"

_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:[.,]\d+)?)$")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def level_name(value: str | int) -> str:
    """Level name of a name (``"Phase"``) or a SurgLaVi ``level_id`` (``3``, ``"3"``).

    Raises:
        UnknownNameError: for anything else, listing the known names.

    """
    if isinstance(value, bool):
        raise UnknownNameError("surgical level", str(value), list(LEVELS))
    if isinstance(value, int):
        if value in LEVEL_IDS:
            return LEVEL_IDS[value]
        raise UnknownNameError("surgical level id", str(value), [str(i) for i in LEVEL_IDS])
    text = str(value).strip().lower()
    if text.isdigit() and int(text) in LEVEL_IDS:
        return LEVEL_IDS[int(text)]
    if text in LEVELS:
        return text
    raise UnknownNameError("surgical level", str(value), list(LEVELS) + [str(i) for i in LEVEL_IDS])


def level_id(name: str) -> int:
    """SurgLaVi ``level_id`` (1, 2, 3) of a level name or id."""
    return LEVELS.index(level_name(name)) + 1


def parse_time(value: Any) -> float:
    """Seconds from a number, ``"12.5"``, ``"MM:SS"``, ``"HH:MM:SS"`` or ``"HH:MM:SS.mmm"`` (``,`` also).

    Raises:
        ValueError: the value is not a time, or is negative.

    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        match = _TIME.match(text)
        if match:
            hours, minutes, secs = match.groups()
            seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs.replace(",", "."))
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(f"not a time: {value!r} (use seconds or HH:MM:SS.ms)") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"time must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def _parse_flag(value: Any) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a flag: {value!r} (use 1/0 or true/false)")


@dataclass(frozen=True)
class LevelSpan:
    """One hierarchical caption: ``[start, end)`` seconds of a video, its level and its text.

    Args:
        video_id: the video's id; matched against video file stems.
        start: start time in seconds.
        end: end time in seconds (after ``start``).
        level: ``"task"``, ``"step"`` or ``"phase"`` (a SurgLaVi id 1/2/3 is turned into its name).
        text: the caption.
        is_descriptive: SurgLaVi's flag: the caption describes what is seen.
        is_surgical_content: SurgLaVi's flag: the caption is about surgery.
        caption_id: the caption's id in its source database, when it has one.

    Raises:
        ValueError: times out of order or negative, or an empty caption.
        UnknownNameError: an unknown level.

    """

    video_id: str
    start: float
    end: float
    level: str
    text: str
    is_descriptive: bool = True
    is_surgical_content: bool = True
    caption_id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "video_id", str(self.video_id))
        object.__setattr__(self, "level", level_name(self.level))
        object.__setattr__(self, "start", parse_time(self.start))
        object.__setattr__(self, "end", parse_time(self.end))
        if not self.end > self.start:
            raise ValueError(
                f"span of video {self.video_id!r} ends at {self.end} s, not after its start {self.start} s"
            )
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"span {self.start}-{self.end} s of video {self.video_id!r} has an empty caption")

    @property
    def level_id(self) -> int:
        """SurgLaVi ``level_id`` of the span's level (1 = task, 2 = step, 3 = phase)."""
        return LEVELS.index(self.level) + 1

    @property
    def duration(self) -> float:
        """Length of the span in seconds."""
        return self.end - self.start


def span_flag_reason(span: LevelSpan, *, descriptive_only: bool = True, surgical_only: bool = True) -> str | None:
    """Why SurgLaVi's flag filter drops ``span`` (``"not_descriptive"``, ``"not_surgical_content"``), or None."""
    if descriptive_only and not span.is_descriptive:
        return NOT_DESCRIPTIVE
    if surgical_only and not span.is_surgical_content:
        return NOT_SURGICAL
    return None


def filter_spans(
    spans: Iterable[LevelSpan], *, descriptive_only: bool = True, surgical_only: bool = True
) -> list[LevelSpan]:
    """Keep the spans that pass SurgLaVi's flag filter (by default: descriptive AND surgical content)."""
    return [
        s
        for s in spans
        if span_flag_reason(s, descriptive_only=descriptive_only, surgical_only=surgical_only) is None
    ]


def spans_for_video(spans: Iterable[LevelSpan], video_id: str) -> list[LevelSpan]:
    """The spans of ``video_id``, ordered by start time, then level (task, step, phase)."""
    video_id = str(video_id)
    return sorted((s for s in spans if s.video_id == video_id), key=lambda s: (s.start, s.level_id, s.end))


def group_by_video(spans: Iterable[LevelSpan]) -> dict[str, list[LevelSpan]]:
    """Spans grouped by video id, each group ordered as in :func:`spans_for_video`."""
    groups: dict[str, list[LevelSpan]] = {}
    for span in spans:
        groups.setdefault(span.video_id, []).append(span)
    return {vid: sorted(group, key=lambda s: (s.start, s.level_id, s.end)) for vid, group in groups.items()}


# --------------------------------------------------------------------------- CSV / JSON tables
_REQUIRED = ("video_id", "start", "end", "level", "text")
_FLAGS = ("is_descriptive", "is_surgical_content")


def _span_from_record(record: Mapping[str, Any], where: str, video_id: Any = None) -> LevelSpan:
    """Build a span from a table record; errors name ``where`` (file and row)."""
    if video_id is not None:
        record = {"video_id": video_id, **record}
    missing = [k for k in _REQUIRED if record.get(k) is None or str(record.get(k)).strip() == ""]
    if missing:
        raise LevelTableError(f"{where}: missing {', '.join(missing)} (needs {', '.join(_REQUIRED)})")
    try:
        flags = {k: _parse_flag(record.get(k)) for k in _FLAGS}
        return LevelSpan(
            video_id=str(record["video_id"]).strip(),
            start=parse_time(record["start"]),
            end=parse_time(record["end"]),
            level=record["level"],
            text=str(record["text"]).strip(),
            **flags,
        )
    except (ValueError, UnknownNameError) as e:
        raise LevelTableError(f"{where}: {e}") from None


def _read_csv(path: Path) -> list[LevelSpan]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            missing = [k for k in _REQUIRED if k not in header]
            if missing:
                raise LevelTableError(
                    f"{path}: level table lacks column(s) {', '.join(missing)}; header is {header} "
                    f"(expected {','.join(_REQUIRED)}[,{','.join(_FLAGS)}])"
                )
            spans = []
            for row in reader:
                record = {(k or "").strip(): v for k, v in row.items()}
                if all(v is None or not str(v).strip() for v in record.values()):
                    continue  # blank line
                spans.append(_span_from_record(record, f"{path}:{reader.line_num}"))
    except UnicodeDecodeError as e:
        raise LevelTableError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise LevelTableError(f"{path}: not a readable CSV file ({e})") from None
    return spans


def _read_json(path: Path) -> list[LevelSpan]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise LevelTableError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise LevelTableError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    spans = []
    if isinstance(data, dict):
        for vid, records in data.items():
            if not isinstance(records, list):
                kind = type(records).__name__
                raise LevelTableError(f"{path}: video {vid!r} must map to a list of spans, got {kind}")
            for i, record in enumerate(records):
                if not isinstance(record, dict):
                    raise LevelTableError(f"{path}: video {vid!r} span {i} is not an object")
                spans.append(_span_from_record(record, f"{path}: video {vid!r} span {i}", video_id=vid))
    elif isinstance(data, list):
        for i, record in enumerate(data):
            if not isinstance(record, dict):
                raise LevelTableError(f"{path}: record {i} is not an object")
            spans.append(_span_from_record(record, f"{path}: record {i}"))
    else:
        raise LevelTableError(
            f"{path}: expected {{video_id: [spans]}} or a list of span records, got {type(data).__name__}"
        )
    return spans


# --------------------------------------------------------------------------- SurgLaVi SQLite
@dataclass(frozen=True)
class SurgLaViSchema:
    """Table and column names of a SurgLaVi-style SQLite database; override any for other layouts.

    The defaults are those of the public SurgLaVi-beta database as read by the SurgLaVi repository's
    data loader (``src/dataloader.py``): a ``captions`` table with ``caption_id, video_id, level_id,
    start_time, end_time, duration, caption, raw_narration, is_descriptive, is_surgical_content`` and a
    ``videos`` table with ``video_id, name, fps`` (videos are stored as ``<root>/<name>/<name>.mp4``).

    Args:
        table: the captions table.
        video_id: its video id column (an integer key into ``videos_table`` in SurgLaVi).
        start: start time column (seconds).
        end: end time column (seconds).
        text: caption column (``"caption"`` for the enriched captions, ``"raw_narration"`` for the
            transcribed speech they were written from).
        level_id: level column (1 = task, 2 = step, 3 = phase).
        is_descriptive: descriptive-flag column.
        is_surgical_content: surgical-content-flag column.
        caption_id: caption id column (optional: ``None`` values when absent).
        videos_table: table naming the videos; ``None`` (or a database without it) keeps the raw ids.
        videos_id: its id column.
        videos_name: its name column (the video file's stem).

    """

    table: str = "captions"
    video_id: str = "video_id"
    start: str = "start_time"
    end: str = "end_time"
    text: str = "caption"
    level_id: str = "level_id"
    is_descriptive: str = "is_descriptive"
    is_surgical_content: str = "is_surgical_content"
    caption_id: str = "caption_id"
    videos_table: str | None = "videos"
    videos_id: str = "video_id"
    videos_name: str = "name"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({_quote(table)})")]


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]


def read_surglavi_sqlite(
    path: str | Path,
    *,
    descriptive_only: bool = True,
    surgical_only: bool = True,
    level_ids: Iterable[int] = (1, 2, 3),
    schema: SurgLaViSchema | None = None,
) -> list[LevelSpan]:
    """Read the caption spans of a SurgLaVi SQLite database (opened read-only).

    The table and column names follow :class:`SurgLaViSchema` (SurgLaVi-beta's, taken from the
    public SurgLaVi data loader); pass a ``schema`` for a database laid out differently. Video ids
    become the video names of the ``videos`` table when it exists (they match the video files'
    stems), else stay the raw ids. As SurgLaVi's loader does with ``filter_pairs=True``, only
    captions flagged descriptive AND surgical are kept by default.

    Args:
        path: the ``.db`` / ``.sqlite`` file.
        descriptive_only: keep only captions with ``is_descriptive`` set.
        surgical_only: keep only captions with ``is_surgical_content`` set.
        level_ids: SurgLaVi levels to read (1 = task, 2 = step, 3 = phase).
        schema: table/column names (default: SurgLaVi-beta's).

    Returns:
        The spans ordered by caption id (or row order without one).

    Raises:
        InputNotFoundError: the file does not exist (a ``FileNotFoundError``).
        LevelTableError: not an SQLite database, a missing table or column (named with the file),
            or a row with bad times, level or caption (a ``ValueError``).

    """
    path = Path(path)
    schema = schema or SurgLaViSchema()
    if not path.is_file():
        raise InputNotFoundError(f"SurgLaVi database {path} does not exist or is not a file")
    levels = sorted({int(i) for i in level_ids})
    for i in levels:
        level_name(i)
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise LevelTableError(f"{path}: cannot open as an SQLite database ({e})") from None
    try:
        try:
            tables = _tables(conn)
        except sqlite3.DatabaseError as e:
            raise LevelTableError(f"{path}: not an SQLite database ({e})") from None
        if schema.table not in tables:
            raise LevelTableError(
                f"{path}: no table {schema.table!r} (tables: {', '.join(sorted(tables)) or 'none'}); "
                "pass a SurgLaViSchema naming the captions table"
            )
        columns = set(_columns(conn, schema.table))
        needed = [schema.video_id, schema.start, schema.end, schema.text, schema.level_id]
        if descriptive_only:
            needed.append(schema.is_descriptive)
        if surgical_only:
            needed.append(schema.is_surgical_content)
        missing = [c for c in needed if c not in columns]
        if missing:
            flags = {schema.is_descriptive, schema.is_surgical_content}
            hint = " or turn the flag filter off" if set(missing) & flags else ""
            raise LevelTableError(
                f"{path}: table {schema.table!r} lacks column(s) {', '.join(missing)} "
                f"(has {', '.join(sorted(columns))}); pass a SurgLaViSchema naming them{hint}"
            )

        def optional(column: str) -> str:
            return f"c.{_quote(column)}" if column in columns else "NULL"

        names: dict[Any, str] = {}
        if schema.videos_table and schema.videos_table in tables:
            vcols = set(_columns(conn, schema.videos_table))
            if {schema.videos_id, schema.videos_name} <= vcols:
                video_rows = conn.execute(
                    f"SELECT {_quote(schema.videos_id)}, {_quote(schema.videos_name)} "
                    f"FROM {_quote(schema.videos_table)}"
                )
                names = {vid: str(name) for vid, name in video_rows if name is not None}
        where = [f"c.{_quote(schema.level_id)} IN ({', '.join('?' * len(levels))})"]
        if descriptive_only:
            where.append(f"c.{_quote(schema.is_descriptive)} = 1")
        if surgical_only:
            where.append(f"c.{_quote(schema.is_surgical_content)} = 1")
        order = f"c.{_quote(schema.caption_id)}" if schema.caption_id in columns else "c.rowid"
        query = (
            f"SELECT {optional(schema.caption_id)}, c.{_quote(schema.video_id)}, c.{_quote(schema.level_id)}, "
            f"c.{_quote(schema.start)}, c.{_quote(schema.end)}, c.{_quote(schema.text)}, "
            f"{optional(schema.is_descriptive)}, {optional(schema.is_surgical_content)} "
            f"FROM {_quote(schema.table)} AS c WHERE {' AND '.join(where)} ORDER BY {order}"
        )
        try:
            rows = conn.execute(query, levels).fetchall()
        except sqlite3.Error as e:
            raise LevelTableError(f"{path}: cannot read table {schema.table!r} ({e})") from None
    finally:
        conn.close()
    spans = []
    for caption_id, vid, lid, start, end, text, descriptive, surgical in rows:
        where_row = f"{path}: {schema.table} row {caption_id if caption_id is not None else '?'}"
        if text is None:
            raise LevelTableError(f"{where_row}: caption column {schema.text!r} is NULL")
        try:
            spans.append(
                LevelSpan(
                    video_id=names.get(vid, str(vid)),
                    start=parse_time(start),
                    end=parse_time(end),
                    level=level_name(int(lid)),
                    text=str(text).strip(),
                    is_descriptive=_parse_flag(descriptive),
                    is_surgical_content=_parse_flag(surgical),
                    caption_id=int(caption_id) if caption_id is not None else None,
                )
            )
        except (ValueError, TypeError, UnknownNameError) as e:
            raise LevelTableError(f"{where_row}: {e}") from None
    return spans


def _read_sqlite_all(path: Path) -> list[LevelSpan]:
    return read_surglavi_sqlite(path, descriptive_only=False, surgical_only=False)


#: File suffix -> reader returning every span of the file (flags read, not applied).
LEVEL_READERS: dict[str, Callable[[Path], list[LevelSpan]]] = {
    ".csv": _read_csv,
    ".json": _read_json,
    ".db": _read_sqlite_all,
    ".sqlite": _read_sqlite_all,
    ".sqlite3": _read_sqlite_all,
}


def read_level_table(
    path: str | Path, *, descriptive_only: bool = True, surgical_only: bool = True
) -> list[LevelSpan]:
    """Read hierarchical caption spans from a CSV, JSON or SurgLaVi SQLite file (chosen by suffix).

    CSV: a header with ``video_id,start,end,level,text`` and optionally
    ``is_descriptive,is_surgical_content`` (1/0, true/false; empty means set). JSON:
    ``{video_id: [{"start", "end", "level", "text", ...}]}`` or ``[{"video_id", "start", ...}]``.
    Times are seconds or ``HH:MM:SS(.ms)``; levels are names or SurgLaVi ids. SQLite files go
    through :func:`read_surglavi_sqlite` with its default schema.

    Args:
        path: the table.
        descriptive_only: drop spans not flagged descriptive (SurgLaVi's filter).
        surgical_only: drop spans not flagged surgical content (SurgLaVi's filter).

    Returns:
        The spans in file order.

    Raises:
        InputNotFoundError: the file does not exist (a ``FileNotFoundError``).
        UnknownNameError: an unsupported suffix.
        LevelTableError: a malformed table, naming the file and row (a ``ValueError``).

    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in LEVEL_READERS:
        raise UnknownNameError("level table format", suffix or path.name, list(LEVEL_READERS))
    if not path.is_file():
        raise InputNotFoundError(f"level table {path} does not exist or is not a file")
    spans = LEVEL_READERS[suffix](path)
    return filter_spans(spans, descriptive_only=descriptive_only, surgical_only=surgical_only)
