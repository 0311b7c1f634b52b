"""Timed transcripts of narrated surgical videos: read SRT/WebVTT/Whisper JSON, merge, write SRT.

SurgLaVi-style pipelines transcribe a video's narration (Whisper), then turn the short ASR
segments into *procedural units*: a few sentences spanning a few seconds to half a minute, each
paired with the video clip of the same time span. This module reads the transcript formats ASR
tools write (:data:`READERS`, keyed by file suffix), merges/splits segments into units
(:func:`merge_segments`) and writes SRT atomically (:func:`write_srt`).

Malformed files raise :class:`TranscriptError` naming the file and the line (SRT/WebVTT) or the
segment (JSON) that is wrong.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.io import atomic_write_text

__all__ = [
    "READERS",
    "TRANSCRIPT_SUFFIXES",
    "Segment",
    "TranscriptError",
    "format_srt_time",
    "merge_segments",
    "parse_timestamp",
    "read_transcript",
    "split_sentences",
    "write_srt",
]


class TranscriptError(InputError):
    """A transcript file is malformed; the message names the file and the line or segment."""


@dataclass(frozen=True)
class Segment:
    """A piece of transcript text spoken from ``start`` to ``end`` seconds.

    Args:
        start: start time in seconds (>= 0).
        end: end time in seconds (>= start).
        text: the spoken text, whitespace-normalised.

    """

    start: float
    end: float
    text: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError(f"segment times must be finite numbers; got {self.start}, {self.end}")
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"segment needs 0 <= start <= end; got start={self.start}, end={self.end}")

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


# =========================================================================== timestamps
_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?$")


def parse_timestamp(text: str) -> float:
    """Parse ``HH:MM:SS,mmm`` / ``HH:MM:SS.mmm`` / ``MM:SS.mmm`` (SRT or WebVTT) into seconds.

    Raises:
        ValueError: not a timestamp, or minutes/seconds above 59.

    """
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"{text.strip()!r} is not a timestamp like 00:01:02,345")
    hours, minutes, seconds, fraction = match.groups()
    if int(minutes) > 59 or int(seconds) > 59:
        raise ValueError(f"{text.strip()!r} has minutes or seconds above 59")
    millis = int((fraction or "0").ljust(3, "0"))
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + millis / 1000.0


def format_srt_time(seconds: float) -> str:
    """Format seconds as an SRT timestamp ``HH:MM:SS,mmm`` (rounded to the millisecond)."""
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


# =========================================================================== text cleanup
_TAG = re.compile(r"<[^>]*>")
_ASS_TAG = re.compile(r"\{\\[^}]*\}")


def _clean(lines: Iterable[str]) -> str:
    r"""Join cue lines, drop markup (``<i>``, ``<v Speaker>``, ``<00:01.000>``, ``{\an8}``), unescape."""
    text = " ".join(lines)
    text = _ASS_TAG.sub("", _TAG.sub("", text))
    return " ".join(html.unescape(text).split())


# =========================================================================== SRT / WebVTT
def _blocks(lines: list[str], first_line: int = 1) -> Iterable[tuple[int, list[str]]]:
    """Yield ``(line number of the block's first line, lines)`` for blank-line separated blocks."""
    block: list[str] = []
    start = first_line
    for number, line in enumerate(lines, start=first_line):
        if line.strip():
            if not block:
                start = number
            block.append(line.rstrip())
        elif block:
            yield start, block
            block = []
    if block:
        yield start, block


def _timing(path: Path, number: int, line: str, example: str) -> tuple[float, float]:
    left, arrow, right = line.partition("-->")
    if not arrow:
        raise TranscriptError(f"{path}:{number}: expected a timing line like {example!r}, got {line.strip()!r}")
    end_text = right.strip().split()[0] if right.strip() else ""  # WebVTT cue settings follow the end time
    try:
        start, end = parse_timestamp(left), parse_timestamp(end_text)
    except ValueError as e:
        raise TranscriptError(f"{path}:{number}: bad timing line {line.strip()!r}: {e}") from None
    if end < start:
        raise TranscriptError(f"{path}:{number}: the cue ends ({end_text}) before it starts ({left.strip()})")
    return start, end


def _text_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise TranscriptError(f"{path}: not UTF-8 text ({e})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _read_srt(path: Path) -> list[Segment]:
    segments: list[Segment] = []
    example = "00:00:01,000 --> 00:00:04,000"
    for number, block in _blocks(_text_lines(path)):
        offset = 1 if block[0].strip().isdigit() and len(block) > 1 and "-->" in block[1] else 0
        if "-->" not in block[offset]:
            raise TranscriptError(
                f"{path}:{number + offset}: expected a cue number and a timing line like {example!r}, "
                f"got {block[offset].strip()!r}"
            )
        start, end = _timing(path, number + offset, block[offset], example)
        text = _clean(block[offset + 1 :])
        if text:
            segments.append(Segment(start, end, text))
    return segments


def _read_vtt(path: Path) -> list[Segment]:
    lines = _text_lines(path)
    if not lines or not re.match(r"^WEBVTT(?:$|[ \t])", lines[0]):
        got = lines[0].strip() if lines else ""
        raise TranscriptError(f"{path}:1: a WebVTT file must start with 'WEBVTT', got {got!r}")
    segments: list[Segment] = []
    example = "00:01.000 --> 00:04.000"
    for index, (number, block) in enumerate(_blocks(lines)):
        if index == 0 or block[0].startswith(("NOTE", "STYLE", "REGION")) and "-->" not in block[0]:
            continue  # the header block (WEBVTT + metadata), comments, style and region blocks
        timing = 0 if "-->" in block[0] else 1  # an optional cue identifier precedes the timing
        if timing >= len(block) or "-->" not in block[timing]:
            raise TranscriptError(
                f"{path}:{number + timing}: expected a cue timing line like {example!r}, "
                f"got {block[min(timing, len(block) - 1)].strip()!r}"
            )
        start, end = _timing(path, number + timing, block[timing], example)
        text = _clean(block[timing + 1 :])
        if text:
            segments.append(Segment(start, end, text))
    return segments


# =========================================================================== JSON (Whisper & co.)
def _json_items(path: Path, data: Any) -> tuple[str, list[Any]]:
    if isinstance(data, list):
        return "", data
    if isinstance(data, dict):
        for key in ("segments", "chunks"):
            if isinstance(data.get(key), list):
                return key, data[key]
    found = sorted(data) if isinstance(data, dict) else type(data).__name__
    raise TranscriptError(
        f"{path}: expected a list of segments or an object with a 'segments' (Whisper) or 'chunks' "
        f"(transformers) list; got {found}"
    )


def _json_segment(path: Path, where: str, item: Any) -> Segment | None:
    if isinstance(item, dict):
        if "timestamp" in item and "start" not in item:  # transformers ASR pipeline chunk
            stamp = item["timestamp"]
            if not (isinstance(stamp, list | tuple) and len(stamp) == 2):
                raise TranscriptError(f"{path}: {where}: 'timestamp' must be [start, end], got {stamp!r}")
            start, end = stamp
        else:
            missing = [k for k in ("start", "end", "text") if k not in item]
            if missing:
                raise TranscriptError(f"{path}: {where}: missing {', '.join(map(repr, missing))} (has {sorted(item)})")
            start, end = item["start"], item["end"]
        text = item.get("text")
    elif isinstance(item, list | tuple) and len(item) >= 5:
        start, end, text = item[2], item[3], item[4]  # a serialised faster-whisper Segment tuple
    else:
        raise TranscriptError(f"{path}: {where}: expected an object with start/end/text, got {item!r:.80}")
    for label, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TranscriptError(f"{path}: {where}: {label!r} must be a number of seconds, got {value!r}")
    if not isinstance(text, str):
        raise TranscriptError(f"{path}: {where}: 'text' must be a string, got {type(text).__name__}")
    if start < 0 or end < start:
        raise TranscriptError(f"{path}: {where}: needs 0 <= start <= end, got start={start}, end={end}")
    text = _clean([text])
    return Segment(float(start), float(end), text) if text else None


def _read_json(path: Path) -> list[Segment]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise TranscriptError(f"{path}: not UTF-8 text ({e})") from None
    except json.JSONDecodeError as e:
        raise TranscriptError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    key, items = _json_items(path, data)
    segments = []
    for i, item in enumerate(items):
        segment = _json_segment(path, f"{key}[{i}]" if key else f"item [{i}]", item)
        if segment is not None:
            segments.append(segment)
    return segments


#: File suffix -> reader ``path -> segments``.
READERS: dict[str, Callable[[Path], list[Segment]]] = {
    ".srt": _read_srt,
    ".vtt": _read_vtt,
    ".json": _read_json,
}
#: Suffixes :func:`read_transcript` reads.
TRANSCRIPT_SUFFIXES: tuple[str, ...] = tuple(READERS)


def read_transcript(path: str | Path) -> list[Segment]:
    r"""Read a timed transcript: ``.srt``, ``.vtt`` (WebVTT) or Whisper-style ``.json``.

    * SRT: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, multi-line text.
    * WebVTT: ``WEBVTT`` header, optional cue identifiers, cue settings after the end time,
      ``NOTE``/``STYLE``/``REGION`` blocks skipped, ``MM:SS.mmm`` times allowed.
    * JSON: ``{"segments": [{"start", "end", "text"}, ...]}`` (openai-whisper, WhisperX), a bare
      list of such objects, a list of serialised faster-whisper ``Segment`` tuples
      (``[id, seek, start, end, text, ...]``), or ``{"chunks": [{"timestamp": [s, e], "text"}]}``
      (transformers' ASR pipeline).

    Markup (``<i>``, ``<v Speaker>``, inline timestamps, ``{\an8}``) is removed, HTML entities are
    unescaped, lines are joined with spaces, and cues without text are dropped.

    Returns:
        The segments in file order.

    Raises:
        InputNotFoundError: the file does not exist (a ``FileNotFoundError``).
        TranscriptError: unsupported suffix or malformed content (names the file and line/segment).

    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise TranscriptError(
            f"{path}: unsupported transcript suffix {path.suffix!r}; supported: {', '.join(TRANSCRIPT_SUFFIXES)}"
        )
    if not path.is_file():
        raise InputNotFoundError(f"{path}: transcript not found")
    return reader(path)


# =========================================================================== merging
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]]*$")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?…。！？])[\"'”’)\]]*\s+")


def split_sentences(text: str) -> list[str]:
    """Split text after ``. ! ? …`` (and CJK full stops) followed by whitespace."""
    parts = []
    last = 0
    for match in _SENTENCE_SPLIT.finditer(text):
        parts.append(text[last : match.end()].strip())
        last = match.end()
    parts.append(text[last:].strip())
    return [p for p in parts if p]


def _ends_sentence(text: str) -> bool:
    return bool(_SENTENCE_END.search(text.rstrip()))


def _split_evenly(segment: Segment, pieces: int) -> list[Segment]:
    """Split one segment's words into ``pieces`` parts over equal time slices."""
    words = segment.text.split()
    pieces = max(1, min(pieces, len(words)))
    bounds = [segment.start + segment.duration * k / pieces for k in range(pieces)] + [segment.end]
    cuts = [round(len(words) * k / pieces) for k in range(pieces + 1)]
    return [
        Segment(bounds[k], bounds[k + 1], " ".join(words[cuts[k] : cuts[k + 1]])) for k in range(pieces)
    ]


def _split_long(segment: Segment, max_duration: float) -> list[Segment]:
    """Split a segment longer than ``max_duration`` at sentence ends (time shared by characters).

    Sentences get time in proportion to their length; consecutive sentences are grouped while the
    group fits in ``max_duration``; a sentence longer than that is split evenly by words. The
    pieces tile ``[start, end]`` exactly.
    """
    if segment.duration <= max_duration:
        return [segment]
    sentences = split_sentences(segment.text)
    total = sum(len(s) for s in sentences)
    bounds = [segment.start]
    for sentence in sentences:
        bounds.append(bounds[-1] + segment.duration * len(sentence) / total)
    bounds[-1] = segment.end
    pieces: list[Segment] = []
    group: list[int] = []

    def flush() -> None:
        if group:
            pieces.append(Segment(bounds[group[0]], bounds[group[-1] + 1], " ".join(sentences[i] for i in group)))
            group.clear()

    for i in range(len(sentences)):
        if bounds[i + 1] - bounds[i] > max_duration:
            flush()
            whole = Segment(bounds[i], bounds[i + 1], sentences[i])
            pieces.extend(_split_evenly(whole, math.ceil(whole.duration / max_duration)))
        elif group and bounds[i + 1] - bounds[group[0]] > max_duration:
            flush()
            group.append(i)
        else:
            group.append(i)
    flush()
    return pieces


def merge_segments(
    segments: Sequence[Segment],
    *,
    min_duration: float = 4.0,
    max_duration: float = 30.0,
    max_gap: float = 2.0,
) -> list[Segment]:
    """Merge short ASR segments into procedural units and split over-long ones.

    Segments are taken in time order. A unit grows with the next segment while the silence
    between them is at most ``max_gap`` and the grown unit would last at most ``max_duration``;
    once it lasts ``min_duration`` it closes at the first segment that ends a sentence. A unit
    can stay shorter than ``min_duration`` when a gap or the end of the transcript follows it.
    A single segment longer than ``max_duration`` is split at sentence ends (time shared in
    proportion to the sentences' lengths), and a sentence that alone is too long is split evenly
    by words. Every unit spans exactly from its first segment's start to its last one's end.

    Args:
        segments: transcript segments (any order).
        min_duration: seconds a unit should last before it may close at a sentence end.
        max_duration: seconds no unit may exceed.
        max_gap: longest silence, in seconds, bridged inside a unit.

    Returns:
        The units, in time order.

    Raises:
        ValueError: ``0 <= min_duration <= max_duration`` and ``max_gap >= 0`` do not hold.

    """
    if not (0 <= min_duration <= max_duration and max_duration > 0 and max_gap >= 0):
        raise ValueError(
            f"need 0 <= min_duration <= max_duration, max_duration > 0 and max_gap >= 0; got "
            f"min_duration={min_duration}, max_duration={max_duration}, max_gap={max_gap}"
        )
    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    units: list[Segment] = []
    current: list[Segment] = []

    def close() -> None:
        if current:
            end = max(s.end for s in current)
            units.extend(_split_long(Segment(current[0].start, end, " ".join(s.text for s in current)), max_duration))
            current.clear()

    for segment in ordered:
        if current:
            start, end = current[0].start, max(s.end for s in current)
            gap = segment.start - end
            grown = max(end, segment.end) - start
            done = end - start >= min_duration and _ends_sentence(current[-1].text)
            if gap > max_gap or grown > max_duration or done:
                close()
        current.append(segment)
    close()
    return units


# =========================================================================== writing
def write_srt(segments: Sequence[Segment], path: str | Path) -> Path:
    """Write segments as an SRT file atomically (temporary file in the same folder, then rename).

    Blank lines inside a segment's text are removed (they would end the cue early).

    Returns:
        The path written.

    Raises:
        ValueError: a segment has no text.

    """
    blocks = []
    for number, segment in enumerate(segments, start=1):
        lines = [line.strip() for line in segment.text.splitlines() if line.strip()]
        if not lines:
            raise ValueError(f"segment {number - 1} ({segment.start}-{segment.end} s) has no text")
        timing = f"{format_srt_time(segment.start)} --> {format_srt_time(segment.end)}"
        blocks.append("\n".join([str(number), timing, *lines]))
    return atomic_write_text(Path(path), "\n\n".join(blocks) + ("\n" if blocks else ""))
