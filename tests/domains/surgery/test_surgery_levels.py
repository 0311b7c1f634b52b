import importlib.util
import json
from pathlib import Path

import pytest

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.plugins import UnknownNameError
from domainclip.domains.surgery.levels import (
    LEVEL_IDS,
    LEVELS,
    LevelSpan,
    LevelTableError,
    SurgLaViSchema,
    filter_spans,
    group_by_video,
    level_id,
    level_name,
    parse_time,
    read_level_table,
    read_surglavi_sqlite,
    span_flag_reason,
    spans_for_video,
)

_spec = importlib.util.spec_from_file_location("surgery_fixtures_levels", Path(__file__).with_name("fixtures_clips.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


def test_level_names_and_surglavi_ids():
    assert LEVELS == ("task", "step", "phase")
    assert LEVEL_IDS == {1: "task", 2: "step", 3: "phase"}
    assert [level_name(v) for v in (1, "2", " Phase ", "task")] == ["task", "step", "phase", "task"]
    assert [level_id(n) for n in ("task", "step", "phase", 3)] == [1, 2, 3, 3]
    with pytest.raises(UnknownNameError, match="phase"):
        level_name("phaze")
    with pytest.raises(UnknownNameError):
        level_name(4)


@pytest.mark.parametrize(
    "value, seconds",
    [(12, 12.0), ("7.25", 7.25), ("01:30", 90.0), ("00:01:02.500", 62.5), ("1:00:00,250", 3600.25), (0, 0.0)],
)
def test_parse_time(value, seconds):
    assert parse_time(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["abc", "-3", "1:2:3:4", True, float("nan")])
def test_parse_time_rejects(value):
    with pytest.raises(ValueError):
        parse_time(value)


def test_level_span_validates_and_derives():
    span = LevelSpan("v1", "00:00:04", 9.5, 2, "we divide the cystic duct")
    assert (span.start, span.end, span.level, span.level_id, span.duration) == (4.0, 9.5, "step", 2, 5.5)
    with pytest.raises(ValueError, match="not after its start"):
        LevelSpan("v1", 5, 5, "task", "x y z")
    with pytest.raises(ValueError, match="empty caption"):
        LevelSpan("v1", 1, 5, "task", "  ")


def test_read_csv_times_levels_and_flag_filter(tmp_path):
    path = tmp_path / "levels.csv"
    path.write_text(
        "video_id,start,end,level,text,is_descriptive,is_surgical_content\n"
        "case01,00:00:02,00:00:08.5,task,grasp the gallbladder fundus,1,1\n"
        "case01,0,60,phase,calot triangle dissection,,\n"
        "case02,10,20,2,clip the cystic artery twice,true,false\n"
        "case02,20,25,1,the surgeon talks about lunch,0,1\n"
        "\n",
        encoding="utf-8",
    )
    spans = read_level_table(path)
    assert [(s.video_id, s.start, s.end, s.level, s.level_id) for s in spans] == [
        ("case01", 2.0, 8.5, "task", 1),
        ("case01", 0.0, 60.0, "phase", 3),
    ]
    everything = read_level_table(path, descriptive_only=False, surgical_only=False)
    assert len(everything) == 4
    assert [span_flag_reason(s) for s in everything] == [None, None, "not_surgical_content", "not_descriptive"]
    assert [s.text for s in read_level_table(path, surgical_only=False)] == [
        "grasp the gallbladder fundus",
        "calot triangle dissection",
        "clip the cystic artery twice",
    ]
    assert filter_spans(everything, descriptive_only=False) == everything[:2] + everything[3:]


def test_read_csv_errors_name_file_and_row(tmp_path):
    missing = tmp_path / "missing.csv"
    missing.write_text("video_id,start,end,text\nv,0,1,a b c\n")
    with pytest.raises(ValueError, match=r"missing\.csv.*lacks column\(s\) level"):
        read_level_table(missing)
    bad = tmp_path / "bad.csv"
    bad.write_text("video_id,start,end,level,text\nv,0,4,task,ok caption here\nv,xx,4,task,another\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3: not a time: 'xx'"):
        read_level_table(bad)
    bad_level = tmp_path / "bad_level.csv"
    bad_level.write_text("video_id,start,end,level,text\nv,0,4,stage,caption words here\n")
    with pytest.raises(ValueError, match=r"bad_level\.csv:2: unknown surgical level 'stage'"):
        read_level_table(bad_level)
    with pytest.raises(UnknownNameError, match="level table format"):
        read_level_table(tmp_path / "levels.xlsx")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_level_table(tmp_path / "nope.csv")


def test_read_json_mapping_and_records(tmp_path):
    mapping = tmp_path / "levels.json"
    mapping.write_text(
        json.dumps(
            {
                "vidA": [
                    {"start": "00:01:00", "end": "00:02:00", "level": "phase", "text": "preparation of the field"},
                    {"start": 62, "end": 70, "level": 1, "text": "insert the trocar", "is_descriptive": False},
                ],
                "vidB": [{"start": 3, "end": 9, "level": "step", "text": "open the peritoneum"}],
            }
        )
    )
    spans = read_level_table(mapping)
    assert [(s.video_id, s.start, s.end, s.level) for s in spans] == [
        ("vidA", 60.0, 120.0, "phase"),
        ("vidB", 3.0, 9.0, "step"),
    ]
    assert len(read_level_table(mapping, descriptive_only=False)) == 3

    records = tmp_path / "records.json"
    records.write_text(json.dumps([{"video_id": "v9", "start": 1, "end": 2.5, "level": "3", "text": "closure"}]))
    assert read_level_table(records) == [LevelSpan("v9", 1.0, 2.5, "phase", "closure")]

    broken = tmp_path / "broken.json"
    broken.write_text('{"v": [{"start": 1, "end": 2, "level": "task"}]}')
    with pytest.raises(ValueError, match=r"broken\.json: video 'v' span 0: missing text"):
        read_level_table(broken)
    notjson = tmp_path / "notjson.json"
    notjson.write_text("{oops")
    with pytest.raises(ValueError, match=r"notjson\.json: not valid JSON"):
        read_level_table(notjson)


def _db_rows():
    return [
        {"video_id": 1, "level_id": 1, "start_time": 2.0, "end_time": 7.0, "caption": "Grasp the fundus."},
        {"video_id": 1, "level_id": 3, "start_time": 0.0, "end_time": 120.0, "caption": "Dissection phase."},
        {"video_id": 2, "level_id": 2, "start_time": 5.0, "end_time": 15.0, "caption": "Clip the artery.",
         "is_descriptive": 0},
        {"video_id": 2, "level_id": 1, "start_time": 30.0, "end_time": 34.0, "caption": "Talking about the weather.",
         "is_surgical_content": 0},
        {"video_id": 2, "level_id": 2, "start_time": 40.0, "end_time": 52.0, "caption": "Cut the duct.",
         "raw_narration": "and now we just cut it"},
    ]  # fmt: skip


def test_read_surglavi_sqlite_flags_levels_and_names(tmp_path):
    videos = [(1, "chole_001", 25.0), (2, "gyn_7", 30.0)]
    db = fx.write_surglavi_db(tmp_path / "surglavi_beta.db", _db_rows(), videos=videos)
    spans = read_surglavi_sqlite(db)
    assert [(s.caption_id, s.video_id, s.level, s.start, s.end, s.text) for s in spans] == [
        (1, "chole_001", "task", 2.0, 7.0, "Grasp the fundus."),
        (2, "chole_001", "phase", 0.0, 120.0, "Dissection phase."),
        (5, "gyn_7", "step", 40.0, 52.0, "Cut the duct."),
    ]
    unfiltered = read_surglavi_sqlite(db, descriptive_only=False, surgical_only=False)
    assert [s.caption_id for s in unfiltered] == [1, 2, 3, 4, 5]
    assert [(s.is_descriptive, s.is_surgical_content) for s in unfiltered][2:4] == [(False, True), (True, False)]
    assert [s.caption_id for s in read_surglavi_sqlite(db, surgical_only=False)] == [1, 2, 4, 5]
    assert [s.caption_id for s in read_surglavi_sqlite(db, level_ids=[2, 3], descriptive_only=False)] == [2, 3, 5]
    raw = read_surglavi_sqlite(db, schema=SurgLaViSchema(text="raw_narration"))
    assert raw[-1].text == "and now we just cut it"
    # read_level_table dispatches SQLite files with the same defaults
    assert read_level_table(db) == spans
    assert len(read_level_table(db, descriptive_only=False, surgical_only=False)) == 5


def test_read_surglavi_sqlite_without_videos_table_keeps_ids(tmp_path):
    db = fx.write_surglavi_db(tmp_path / "no_videos.sqlite", _db_rows()[:1], with_videos_table=False)
    assert [s.video_id for s in read_surglavi_sqlite(db)] == ["1"]


def test_read_surglavi_sqlite_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.db"):
        read_surglavi_sqlite(tmp_path / "absent.db")
    notdb = tmp_path / "notdb.db"
    notdb.write_bytes(b"this is not an sqlite file at all" * 10)
    with pytest.raises(ValueError, match=r"notdb\.db: not an SQLite database"):
        read_surglavi_sqlite(notdb)
    db = fx.write_surglavi_db(tmp_path / "flagless.db", _db_rows(), drop_columns=("is_surgical_content",))
    with pytest.raises(ValueError, match=r"flagless\.db: table 'captions' lacks column\(s\) is_surgical_content"):
        read_surglavi_sqlite(db)
    assert len(read_surglavi_sqlite(db, surgical_only=False)) == 4  # the filter that needs it is off
    with pytest.raises(ValueError, match=r"flagless\.db: no table 'clips' \(tables: captions, videos\)"):
        read_surglavi_sqlite(db, schema=SurgLaViSchema(table="clips"))
    with pytest.raises(ValueError, match=r"lacks column\(s\) begin"):
        read_surglavi_sqlite(db, schema=SurgLaViSchema(start="begin"), surgical_only=False)
    rows = [
        {"video_id": 1, "level_id": 7, "start_time": 0.0, "end_time": 1.0, "caption": "unknown level"},
        {"video_id": 1, "level_id": 1, "start_time": 5.0, "end_time": 2.0, "caption": "backwards"},
    ]
    bad = fx.write_surglavi_db(tmp_path / "bad.db", rows)
    with pytest.raises(ValueError, match=r"bad\.db: captions row 2: span of video '1' ends at 2\.0 s"):
        read_surglavi_sqlite(bad)
    assert read_surglavi_sqlite(bad, level_ids=[3]) == []  # level 7 rows are never read
    with pytest.raises(UnknownNameError):
        read_surglavi_sqlite(bad, level_ids=[7])


def test_spans_for_video_orders_by_time_then_level():
    spans = [
        LevelSpan("a", 10, 20, "task", "t2"),
        LevelSpan("b", 0, 5, "task", "other video"),
        LevelSpan("a", 0, 100, "phase", "p"),
        LevelSpan("a", 0, 30, "step", "s"),
        LevelSpan("a", 0, 4, "task", "t1"),
    ]
    assert [s.text for s in spans_for_video(spans, "a")] == ["t1", "s", "p", "t2"]
    assert spans_for_video(spans, "zzz") == []
    groups = group_by_video(spans)
    assert sorted(groups) == ["a", "b"] and [s.text for s in groups["a"]] == ["t1", "s", "p", "t2"]


def test_broken_levels_files_are_level_table_errors_naming_the_file(tmp_path):
    cases = {
        "header.csv": (b"video,begin,finish,level,caption\nv1,0,5,task,a b c\n",
                       "{}: level table lacks column(s) video_id, start, end, text; header is"),
        "empty.csv": (b"", "{}: level table lacks column(s) video_id, start, end, level, text; header is []"),
        "latin.csv": (b"video_id,start,end,level,text\nv1,0,5,task,caf\xe9\n", "{}: not UTF-8 text"),
        "scalar.json": (b'"spans"', "{}: expected {{video_id: [spans]}} or a list of span records, got str"),
        "nested.json": (b'{"v1": {"start": 0}}', "{}: video 'v1' must map to a list of spans, got dict"),
        "numbers.json": (b"[1, 2]", "{}: record 0 is not an object"),
        "keys.json": (b'[{"video_id": "v1", "start": 0}]', "{}: record 0: missing end, level, text (needs"),
        "truncated.json": (b'{"v1": [', "{}: not valid JSON (Expecting value at line 1)"),
        "text.db": (b"video_id,start,end\n" * 40, "{}: not an SQLite database (file is not a database)"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(LevelTableError) as caught:
            read_level_table(path)
        assert str(caught.value).startswith(message.format(path)), (name, str(caught.value))
        assert isinstance(caught.value, InputError) and isinstance(caught.value, ValueError)
    with pytest.raises(InputNotFoundError, match="absent.sqlite does not exist"):
        read_level_table(tmp_path / "absent.sqlite")
    with pytest.raises(InputNotFoundError, match="absent.db does not exist"):
        read_surglavi_sqlite(tmp_path / "absent.db")
