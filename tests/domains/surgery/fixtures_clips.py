"""Fixture writers for the surgery clip-pair tests: videos, transcripts and a SurgLaVi-style database.

Loaded by the tests with importlib (test folders are not packages). Everything is written into the
folder a test passes (``tmp_path``).

* :func:`write_video`: an H.264 mp4 (PyAV) whose frame ``i`` is flat grey of value
  ``frame_value(i)``, so a decoded frame tells its time.
* :func:`write_srt` / :func:`write_vtt` / :func:`write_json_transcript`: transcripts in the standard
  SubRip / WebVTT layouts and a Whisper-style JSON (``{"segments": [{"start", "end", "text"}]}``).
* :func:`write_surglavi_db`: an SQLite file with SurgLaVi-beta's ``captions`` and ``videos`` tables.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

FPS = 10
WIDTH, HEIGHT = 64, 48


def frame_value(index: int) -> int:
    """Grey level of frame ``index`` in :func:`write_video` videos (one level per frame, 16..215)."""
    return 16 + index % 200


def write_video(path: Path, seconds: float = 20.0, fps: int = FPS, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Path:
    """Write an mp4 of ``seconds`` at ``fps``: frame ``i`` is grey ``frame_value(i)``."""
    import av

    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast", "g": str(fps)}
        for i in range(int(round(seconds * fps))):
            array = np.full((height, width, 3), frame_value(i), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_truncated_video(path: Path, source: Path, keep: float = 0.02) -> Path:
    """Copy the first ``keep`` fraction of ``source``'s bytes: an mp4 that cannot be decoded."""
    data = source.read_bytes()
    path.write_bytes(data[: max(64, int(len(data) * keep))])
    return path


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def write_srt(path: Path, segments: Sequence[tuple[float, float, str]]) -> Path:
    """SubRip file of ``(start, end, text)`` segments."""
    blocks = [f"{i}\n{_stamp(a, ',')} --> {_stamp(b, ',')}\n{t}\n" for i, (a, b, t) in enumerate(segments, 1)]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def write_vtt(path: Path, segments: Sequence[tuple[float, float, str]]) -> Path:
    """WebVTT file of ``(start, end, text)`` segments."""
    blocks = [f"{_stamp(a, '.')} --> {_stamp(b, '.')}\n{t}\n" for a, b, t in segments]
    path.write_text("WEBVTT\n\n" + "\n".join(blocks), encoding="utf-8")
    return path


def write_json_transcript(path: Path, segments: Sequence[tuple[float, float, str]]) -> Path:
    """Whisper-style JSON transcript: ``{"segments": [{"start", "end", "text"}]}``."""
    records = [{"start": a, "end": b, "text": t} for a, b, t in segments]
    path.write_text(json.dumps({"segments": records}), encoding="utf-8")
    return path


#: Columns of SurgLaVi-beta's ``captions`` table (as read by its public data loader).
CAPTION_COLUMNS = (
    "caption_id", "video_id", "level_id", "start_time", "end_time", "duration", "caption", "raw_narration",
    "is_descriptive", "is_surgical_content",
)  # fmt: skip


def write_surglavi_db(
    path: Path,
    captions: Iterable[dict],
    videos: Iterable[tuple[int, str, float]] = (),
    *,
    drop_columns: Sequence[str] = (),
    with_videos_table: bool = True,
) -> Path:
    """SQLite file with SurgLaVi's tables.

    Args:
        path: the database file.
        captions: rows with keys ``video_id, level_id, start_time, end_time, caption`` and optionally
            ``raw_narration, is_descriptive, is_surgical_content`` (default 1); ids are numbered.
        videos: ``(video_id, name, fps)`` rows of the ``videos`` table.
        drop_columns: caption columns to leave out (for error tests).
        with_videos_table: write the ``videos`` table.

    """
    columns = [c for c in CAPTION_COLUMNS if c not in drop_columns]
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"CREATE TABLE captions ({', '.join(columns)})")
        for i, row in enumerate(captions, 1):
            full = {
                "caption_id": i,
                "duration": row["end_time"] - row["start_time"],
                "raw_narration": row.get("raw_narration", row["caption"].lower()),
                "is_descriptive": 1,
                "is_surgical_content": 1,
                **row,
            }
            conn.execute(
                f"INSERT INTO captions ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [full[c] for c in columns],
            )
        if with_videos_table:
            conn.execute("CREATE TABLE videos (video_id INTEGER PRIMARY KEY, name TEXT, fps REAL)")
            conn.executemany("INSERT INTO videos VALUES (?, ?, ?)", list(videos))
        conn.commit()
    finally:
        conn.close()
    return path
