import json

import pytest

from domainclip.domains.surgery.transcripts import (
    TRANSCRIPT_SUFFIXES,
    Segment,
    TranscriptError,
    format_srt_time,
    merge_segments,
    parse_timestamp,
    read_transcript,
    split_sentences,
    write_srt,
)

SRT = (
    "\ufeff1\r\n"
    "00:00:01,000 --> 00:00:04,500\r\n"
    "<i>Now we open</i> the\r\n"
    "peritoneum &amp; insert the port.\r\n"
    "\r\n"
    "2\r\n"
    "00:00:05,250 --> 00:01:02,000 X1:10 X2:20\r\n"
    "{\\an8}Dissect Calot's triangle.\r\n"
    "\r\n"
    "3\r\n"
    "00:01:03,000 --> 00:01:04,000\r\n"
    "\r\n"
    "01:00:00,000 --> 01:00:02,5\r\n"
    "No cue number here.\r\n"
)

VTT = """WEBVTT - surgery narration
Kind: captions
Language: en

NOTE This is a comment
that spans two lines --> and has an arrow

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:04.000 align:start position:10%
<v Surgeon>Clip the <b>cystic</b> artery</v>
<00:02.500><c.yellow>twice.</c>

00:00:05.000 --> 00:00:09.250
Then cut it.

3
00:10.000 --> 00:12.000
<c></c>
"""


def write(path, text):
    path.write_text(text, encoding="utf-8", newline="")
    return path


# ----------------------------------------------------------------------------- timestamps
def test_timestamps():
    assert parse_timestamp("01:02:03,456") == pytest.approx(3723.456)
    assert parse_timestamp("02:03.4") == pytest.approx(123.4)
    assert parse_timestamp("100:00:00.000") == 360000
    with pytest.raises(ValueError, match="above 59"):
        parse_timestamp("00:61:00,000")
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_timestamp("1.5s")
    assert format_srt_time(3661.5) == "01:01:01,500"
    assert format_srt_time(0.0004) == "00:00:00,000" and format_srt_time(59.9996) == "00:01:00,000"


# ----------------------------------------------------------------------------- SRT
def test_read_srt(tmp_path):
    segments = read_transcript(write(tmp_path / "talk.srt", SRT))
    assert segments == [
        Segment(1.0, 4.5, "Now we open the peritoneum & insert the port."),
        Segment(5.25, 62.0, "Dissect Calot's triangle."),
        Segment(3600.0, 3602.5, "No cue number here."),
    ]  # the empty cue 3 is dropped


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1\n00:00:01,000 -> 00:00:02,000\nhello\n", r"bad.srt:1: expected a cue number and a timing line"),
        ("1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:05,000 --> 00:00:03,000\nback\n",
         r"bad.srt:6: the cue ends \(00:00:03,000\) before it starts"),
        ("1\n00:00:01,000 --> 00:00:xx,000\nhello\n", r"bad.srt:2: bad timing line"),
        ("just some text\nwithout cues\n", r"bad.srt:1: expected a cue number"),
    ],
)
def test_malformed_srt_names_file_and_line(tmp_path, text, match):
    path = write(tmp_path / "bad.srt", text)
    with pytest.raises(TranscriptError, match=match):
        read_transcript(path)


# ----------------------------------------------------------------------------- WebVTT
def test_read_vtt(tmp_path):
    segments = read_transcript(write(tmp_path / "talk.vtt", VTT))
    assert segments == [
        Segment(1.0, 4.0, "Clip the cystic artery twice."),
        Segment(5.0, 9.25, "Then cut it."),
    ]


def test_malformed_vtt(tmp_path):
    with pytest.raises(TranscriptError, match=r"nohead.vtt:1: a WebVTT file must start with 'WEBVTT'"):
        read_transcript(write(tmp_path / "nohead.vtt", "00:01.000 --> 00:02.000\nhi\n"))
    text = "WEBVTT\n\n00:01.000 --> 00:02.000\nfine\n\ncue-2\n00:03.000 --> later\nbroken\n"
    with pytest.raises(TranscriptError, match=r"bad.vtt:7: bad timing line '00:03.000 --> later'"):
        read_transcript(write(tmp_path / "bad.vtt", text))
    with pytest.raises(TranscriptError, match=r"noid.vtt:4: expected a cue timing line .* got 'more text'"):
        read_transcript(write(tmp_path / "noid.vtt", "WEBVTT\n\njust text\nmore text\n"))


# ----------------------------------------------------------------------------- JSON
def test_read_whisper_json_variants(tmp_path):
    whisper = {
        "text": " Grasp the gallbladder. Retract it.",
        "segments": [
            {"id": 0, "seek": 0, "start": 0.0, "end": 2.4, "text": " Grasp the gallbladder.", "tokens": [1]},
            {"id": 1, "seek": 0, "start": 2.4, "end": 3.0, "text": "   "},
            {"id": 2, "seek": 0, "start": 3.0, "end": 5.5, "text": " Retract it."},
        ],
        "language": "en",
    }
    expected = [Segment(0.0, 2.4, "Grasp the gallbladder."), Segment(3.0, 5.5, "Retract it.")]
    assert read_transcript(write(tmp_path / "a.json", json.dumps(whisper))) == expected
    assert read_transcript(write(tmp_path / "b.json", json.dumps(whisper["segments"]))) == expected
    faster = [[0, 0, 0.0, 2.4, " Grasp the gallbladder.", [1], -0.2, 1.1, 0.01, None],
              [1, 0, 3.0, 5.5, " Retract it.", [2], -0.3, 1.2, 0.02, None]]
    assert read_transcript(write(tmp_path / "c.json", json.dumps(faster))) == expected
    chunks = {"text": "...", "chunks": [{"timestamp": [0.0, 2.4], "text": " Grasp the gallbladder."},
                                        {"timestamp": [3, 5.5], "text": "Retract it."}]}
    assert read_transcript(write(tmp_path / "d.json", json.dumps(chunks))) == expected


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"segments": [{"start": 0, "end": 1, "text": "a"}, {"start": 2, "text": "b"}]}',
         r"x.json: segments\[1\]: missing 'end'"),
        ('[{"start": "0:01", "end": 2, "text": "a"}]', r"x.json: item \[0\]: 'start' must be a number"),
        ('[{"start": 3, "end": 2, "text": "a"}]', r"x.json: item \[0\]: needs 0 <= start <= end"),
        ('{"chunks": [{"timestamp": [0, null], "text": "a"}]}', r"x.json: chunks\[0\]: 'end' must be a number"),
        ('{"segments": [\n{"start": 0,\n "end": 1 "text": "a"}]}', r"x.json:3: not valid JSON"),
        ('{"result": []}', r"x.json: expected a list of segments or an object with a 'segments'"),
        ('[{"start": 0, "end": 1, "text": 5}]', r"'text' must be a string"),
    ],
)
def test_malformed_json(tmp_path, content, match):
    with pytest.raises(TranscriptError, match=match):
        read_transcript(write(tmp_path / "x.json", content))


def test_unsupported_and_missing_files(tmp_path):
    assert TRANSCRIPT_SUFFIXES == (".srt", ".vtt", ".json")
    with pytest.raises(TranscriptError, match=r"notes.txt: unsupported transcript suffix '.txt'; supported: .srt"):
        read_transcript(write(tmp_path / "notes.txt", "hi"))
    with pytest.raises(FileNotFoundError, match="absent.srt"):
        read_transcript(tmp_path / "absent.srt")
    (tmp_path / "latin.srt").write_bytes("1\n00:00:01,000 --> 00:00:02,000\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(TranscriptError, match="latin.srt: not UTF-8"):
        read_transcript(tmp_path / "latin.srt")


# ----------------------------------------------------------------------------- merging
def test_merge_into_procedural_units():
    segments = [
        Segment(2.5, 5.0, "We dissect the triangle."),  # out of order on purpose
        Segment(0.0, 1.0, "Now we"),
        Segment(1.0, 2.5, "open the port."),
        Segment(5.0, 6.0, "Then"),
        Segment(6.0, 9.0, "clip the artery."),
        Segment(20.0, 21.0, "Done."),  # after an 11 s silence
    ]
    assert merge_segments(segments) == [
        Segment(0.0, 5.0, "Now we open the port. We dissect the triangle."),  # closes at the first sentence end >= 4 s
        Segment(5.0, 9.0, "Then clip the artery."),
        Segment(20.0, 21.0, "Done."),  # shorter than min_duration: a gap follows
    ]
    # a larger gap allowance bridges the silence; a larger min_duration keeps merging
    assert merge_segments(segments, min_duration=10, max_gap=12) == [
        Segment(0.0, 21.0, "Now we open the port. We dissect the triangle. Then clip the artery. Done.")
    ]


def test_merge_never_exceeds_max_duration():
    segments = [Segment(10.0 * k, 10.0 * (k + 1), f"part {k} and") for k in range(4)]  # no sentence ends
    units = merge_segments(segments, min_duration=4, max_duration=30)
    assert [(u.start, u.end) for u in units] == [(0.0, 30.0), (30.0, 40.0)]
    assert units[0].text == "part 0 and part 1 and part 2 and"


def test_split_long_segment_at_sentence_boundaries():
    sentence = "Xxxxxxxxx xxxxxxxx."  # 19 characters each
    long = Segment(0.0, 60.0, " ".join([sentence] * 4))
    units = merge_segments([long], max_duration=30)
    assert [u.text for u in units] == [f"{sentence} {sentence}", f"{sentence} {sentence}"]
    assert units[0].start == 0.0 and units[-1].end == 60.0
    assert units[0].end == pytest.approx(30.0) and units[1].start == units[0].end
    assert all(u.duration <= 30 + 1e-9 for u in units)


def test_split_a_too_long_sentence_evenly_by_words():
    words = [f"w{i}" for i in range(12)]
    units = merge_segments([Segment(10.0, 100.0, " ".join(words))], max_duration=30)
    assert [(u.start, u.end) for u in units] == [(10.0, 40.0), (40.0, 70.0), (70.0, 100.0)]
    assert [u.text for u in units] == [" ".join(words[0:4]), " ".join(words[4:8]), " ".join(words[8:12])]


def test_merge_argument_checks_and_sentences():
    with pytest.raises(ValueError, match="min_duration <= max_duration"):
        merge_segments([], min_duration=40, max_duration=30)
    with pytest.raises(ValueError, match="max_gap >= 0"):
        merge_segments([], max_gap=-1)
    assert merge_segments([]) == []
    assert split_sentences('He said "stop." Then we cut! Why? Done') == ['He said "stop."', "Then we cut!", "Why?",
                                                                       "Done"]
    with pytest.raises(ValueError, match="0 <= start <= end"):
        Segment(5.0, 4.0, "backwards")


# ----------------------------------------------------------------------------- writing
def test_write_srt_round_trip_and_atomicity(tmp_path):
    segments = [Segment(0.0, 2.4567, "Grasp the gallbladder."), Segment(3.0, 3725.5, "Line one\n\nline two")]
    path = write_srt(segments, tmp_path / "out" / "talk.srt")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(
        "1\n00:00:00,000 --> 00:00:02,457\nGrasp the gallbladder.\n\n2\n00:00:03,000 --> 01:02:05,500\n"
    )
    assert "Line one\nline two" in text  # the blank line would have ended the cue
    assert read_transcript(path) == [Segment(0.0, 2.457, "Grasp the gallbladder."),
                                     Segment(3.0, 3725.5, "Line one line two")]
    assert [p.name for p in path.parent.iterdir()] == ["talk.srt"]  # no temporary file left
    with pytest.raises(ValueError, match=r"segment 0 \(1.0-2.0 s\) has no text"):
        write_srt([Segment(1.0, 2.0, "  ")], tmp_path / "empty.srt")
    assert not (tmp_path / "empty.srt").exists()
