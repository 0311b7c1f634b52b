import importlib.util
import io
import json
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from domainclip.core.data.corrupt import CorruptTally
from domainclip.core.data.reader import iter_shard
from domainclip.core.errors import InputError, InputNotFoundError, NothingWrittenError
from domainclip.core.plugins import MissingExtraError, UnknownNameError
from domainclip.domains.surgery.clips import find_transcript, find_videos, make_clip_pairs
from domainclip.domains.surgery.decoder import VideoClipDecoder
from domainclip.domains.surgery.transcribe import (
    TRANSCRIBERS,
    FasterWhisperTranscriber,
    Transcriber,
    TranscriptFileTranscriber,
    get_transcriber,
    transcribe_folder,
    transcribe_videos,
)
from domainclip.domains.surgery.transcripts import Segment, read_transcript
from domainclip.domains.surgery.video import open_video, sample_indices

_spec = importlib.util.spec_from_file_location("surgery_fixtures_clips", Path(__file__).with_name("fixtures_clips.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

FPS = fx.FPS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Five videos: three captioned (SRT, VTT, JSON + SurgLaVi DB), one truncated, one without captions."""
    root = tmp_path_factory.mktemp("surgery_corpus")
    videos = root / "videos"
    fx.write_video(videos / "caseA.mp4", 20)
    fx.write_srt(
        videos / "caseA.srt",
        [
            (0.0, 2.0, "We grasp the gallbladder fundus."),
            (2.0, 5.0, "Then we retract it towards the shoulder."),  # merged with the first: [0, 5]
            (5.5, 7.0, "okay um let's see"),  # alone (gap of 3 s after it): non_descriptive
            (10.0, 16.0, "Now we dissect the cystic duct with the hook."),
            (16.0, 19.0, "Now we dissect the cystic duct with the hook!"),  # duplicate of the previous unit
        ],
    )
    fx.write_video(videos / "nested" / "caseB.mp4", 12)
    transcripts = root / "transcripts"
    transcripts.mkdir()
    fx.write_vtt(
        videos / "nested" / "caseB.vtt",
        [(1.0, 6.0, "We place two clips on the cystic artery."), (9.0, 10.0, "12 34 56 78")],
    )
    fx.write_video(videos / "caseC.mp4", 20)
    fx.write_json_transcript(videos / "caseC.json", [(0.0, 4.5, "The surgeon opens the peritoneum.")])
    fx.write_truncated_video(videos / "broken.mp4", videos / "caseA.mp4")
    fx.write_srt(videos / "broken.srt", [(0.0, 6.0, "This narration belongs to a damaged file.")])
    fx.write_video(videos / "silent.mp4", 2)
    rows = [
        {"video_id": 3, "level_id": 1, "start_time": 2.0, "end_time": 6.0, "caption": "Grasp the fundus with forceps."},
        {"video_id": 3, "level_id": 2, "start_time": 0.0, "end_time": 12.0, "caption": "Dissection of the triangle."},
        {"video_id": 3, "level_id": 3, "start_time": 0.0, "end_time": 20.0, "caption": "Calot triangle dissection."},
        {"video_id": 3, "level_id": 1, "start_time": 6.0, "end_time": 8.0, "caption": "We clip it."},
        {"video_id": 3, "level_id": 1, "start_time": 8.0, "end_time": 14.0, "caption": "The view is nice.",
         "is_descriptive": 0},
        {"video_id": 3, "level_id": 2, "start_time": 12.0, "end_time": 18.0, "caption": "Greetings to everyone.",
         "is_surgical_content": 0},
        {"video_id": 3, "level_id": 1, "start_time": 25.0, "end_time": 30.0, "caption": "Irrigate the liver bed."},
        {"video_id": 9, "level_id": 3, "start_time": 0.0, "end_time": 30.0, "caption": "Closure of the port sites."},
    ]  # fmt: skip
    db = fx.write_surglavi_db(root / "surglavi_beta.db", rows, videos=[(3, "caseC", 10.0), (9, "caseZ", 25.0)])
    return {"root": root, "videos": videos, "db": db, "transcripts": transcripts}


def read_samples(folder, pattern="*.tar"):
    """key -> {suffix: bytes} over every shard in ``folder``."""
    samples = defaultdict(dict)
    for path in sorted(Path(folder).glob(pattern)):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                key, _, suffix = member.name.partition(".")
                samples[key][suffix] = tar.extractfile(member).read()
    return dict(samples)


def pair_table(samples):
    rows = []
    for members in samples.values():
        meta = json.loads(members["json"])
        rows.append(
            (meta["video_id"], members["level.txt"].decode(), meta["level_id"], meta["start"], meta["end"],
             members["txt"].decode())
        )  # fmt: skip
    return sorted(rows)


EXPECTED_PAIRS = [
    ("caseA", "narration", None, 0.0, 5.0, "We grasp the gallbladder fundus. Then we retract it towards the shoulder."),
    ("caseA", "narration", None, 10.0, 16.0, "Now we dissect the cystic duct with the hook."),
    ("caseB", "narration", None, 1.0, 6.0, "We place two clips on the cystic artery."),
    ("caseC", "narration", None, 0.0, 4.5, "The surgeon opens the peritoneum."),
    ("caseC", "phase", 3, 0.0, 20.0, "Calot triangle dissection."),
    ("caseC", "step", 2, 0.0, 12.0, "Dissection of the triangle."),
    ("caseC", "task", 1, 2.0, 6.0, "Grasp the fundus with forceps."),
]
EXPECTED_DROPS = {
    "non_descriptive": 1,
    "duplicate": 1,
    "non_alphabetic": 1,
    "too_short": 1,
    "not_descriptive": 1,
    "not_surgical_content": 1,
    "outside_video": 1,
}


def _grey(frame):
    return float(np.asarray(frame, dtype=np.float64).mean())


@pytest.fixture(scope="module")
def mp4_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("clips_mp4")
    summary = make_clip_pairs(out, corpus["videos"], levels=corpus["db"], max_side=32, max_count=4, progress=False)
    return out, summary


def test_mp4_pairs_levels_spans_and_report(corpus, mp4_run):
    out, summary = mp4_run
    samples = read_samples(out)
    assert pair_table(samples) == EXPECTED_PAIRS
    assert summary["num_pairs"] == 7 and summary["num_videos"] == 5 and summary["videos_with_pairs"] == 3
    assert summary["pairs_by_level"] == {"narration": 4, "task": 1, "step": 1, "phase": 1}
    assert summary["filter"]["kept"] == 7 and summary["filter"]["dropped"] == EXPECTED_DROPS
    duplicate = "caseA 16.0-19.0 s: Now we dissect the cystic duct with the hook!"
    assert summary["filter"]["examples"]["duplicate"] == [duplicate]
    assert summary["level_videos_without_file"] == ["caseZ"]
    skipped = {Path(s["video"]).name: s for s in summary["videos_skipped"]}
    assert set(skipped) == {"broken.mp4", "silent.mp4"}
    assert skipped["broken.mp4"]["reason"] == "decode_error" and "broken.mp4" in skipped["broken.mp4"]["error"]
    assert "truncated" in skipped["broken.mp4"]["error"]
    assert skipped["silent.mp4"]["reason"] == "no_captions"
    assert f"{corpus['videos'] / 'silent.mp4'}: no transcript (silent.srt/.vtt/.json" in skipped["silent.mp4"]["error"]
    assert summary["videos_skipped_by_reason"] == {"decode_error": 1, "no_captions": 1}
    assert summary["shards"] == ["surgery-000000.tar", "surgery-000001.tar"] and summary["num_shards"] == 2
    index = json.loads((out / "surgery-index.json").read_text())
    assert index["complete"] and index["num_samples"] == 7 and [s["count"] for s in index["shards"]] == [4, 3]
    assert json.loads((out / "surgery-summary.json").read_text())["num_pairs"] == 7
    report = (out / "surgery-filter-report.md").read_text()
    assert "| kept | 7 | 50.0% | |" in report and "| dropped: outside_video | 1 | 7.1% |" in report


def test_mp4_members_meta_and_frames(corpus, mp4_run):
    out, _ = mp4_run
    for key, members in read_samples(out).items():
        assert set(members) == {"mp4", "txt", "level.txt", "json"}
        meta = json.loads(members["json"])
        assert key.split("_")[1] == meta["video_id"]
        assert meta["origin"] == ("transcript" if meta["level"] == "narration" else "levels")
        source = Path(meta["source"])
        expected_source = "surglavi_beta.db" if meta["origin"] == "levels" else f"{meta['video_id']}{source.suffix}"
        assert source.name == expected_source
        assert meta["duration"] == pytest.approx(meta["end"] - meta["start"])
        assert meta["fps"] == pytest.approx(FPS) and meta["encode"] == "mp4"
        assert ("caption_id" in meta) == (meta["origin"] == "levels")
        with open_video(members["mp4"], backend="pyav") as clip:
            assert (clip.width, clip.height) == (32, 24)
            assert clip.num_frames == round((meta["end"] - meta["start"]) * FPS)
            first, last = clip.get_frames([0, clip.num_frames - 1])
        start_index = round(meta["start"] * FPS)
        assert _grey(first) == pytest.approx(fx.frame_value(start_index), abs=3)
        assert _grey(last) == pytest.approx(fx.frame_value(start_index + clip.num_frames - 1), abs=3)


def test_shards_decode_with_video_clip_decoder(mp4_run):
    out, _ = mp4_run
    decoder = VideoClipDecoder(None, num_frames=4, train=False, required=("video", "text", "level", "meta"))
    tally = CorruptTally()
    decoded = [decoder(raw) for url in sorted(out.glob("*.tar")) for raw in iter_shard(str(url), tally)]
    assert len(decoded) == 7 and tally.counts == {}
    for sample in decoded:
        video, meta = sample["video"], sample["meta"]
        assert tuple(video.shape) == (4, 3, 24, 32) and str(video.dtype) == "torch.uint8"
        frames = round((meta["end"] - meta["start"]) * FPS)
        first = round(meta["start"] * FPS)
        expected = [fx.frame_value(first + i) for i in sample_indices("uniform", frames, 0, None, FPS, n=4)]
        np.testing.assert_allclose(video.float().mean(dim=(1, 2, 3)).numpy(), expected, atol=3)
        assert sample["level"] == meta["level"] and sample["text"]


@pytest.fixture(scope="module")
def frames_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("clips_frames")
    summary = make_clip_pairs(out, corpus["videos"], levels=corpus["db"], encode="frames", num_frames=5, max_side=16,
                              progress=False)  # fmt: skip
    return out, summary


def test_frames_encoding(frames_run):
    out, summary = frames_run
    samples = read_samples(out)
    assert pair_table(samples) == EXPECTED_PAIRS and summary["encode"] == "frames"
    for members in samples.values():
        assert set(members) == {"frames.npy", "txt", "level.txt", "json"}
        meta = json.loads(members["json"])
        frames = np.load(io.BytesIO(members["frames.npy"]))
        assert frames.shape == (5, 12, 16, 3) and frames.dtype == np.uint8 and meta["num_frames"] == 5
        indices = sample_indices("uniform", 200, meta["start"], meta["end"], FPS, n=5)
        np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), [fx.frame_value(i) for i in indices], atol=3)


@pytest.mark.slow
def test_workers_write_the_same_pairs(corpus, frames_run, tmp_path):
    out_one, one = frames_run
    two = make_clip_pairs(tmp_path, corpus["videos"], levels=corpus["db"], encode="frames", num_frames=5,
                          max_side=16, workers=2, progress=False)  # fmt: skip
    samples_one, samples_two = read_samples(out_one), read_samples(tmp_path)
    assert pair_table(samples_two) == EXPECTED_PAIRS
    assert samples_one == samples_two  # same keys and bytes, whatever the number of workers
    assert two["shards"] == ["surgery-w00-000000.tar", "surgery-w01-000000.tar"]
    assert two["indexes"] == ["surgery-w00-index.json", "surgery-w01-index.json"]
    assert two["filter"] == one["filter"] and two["pairs_by_level"] == one["pairs_by_level"]
    assert {Path(s["video"]).name for s in two["videos_skipped"]} == {"broken.mp4", "silent.mp4"}
    assert two["settings"]["workers"] == 2


@pytest.fixture(scope="module")
def filter_weights(tmp_path_factory):
    """Weights of a seeded ``dc-test-video``, as a file ``--filter-pretrained`` loads."""
    import torch
    from safetensors.torch import save_file

    from domainclip.core.models import create_model
    from domainclip.core.models.registry import unwrap_clip

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("filter") / "dc-test-video.safetensors"
    save_file({k: v.contiguous() for k, v in unwrap_clip(create_model("dc-test-video")).state_dict().items()}, path)
    return path


def test_similarity_filter_drops_low_scores(corpus, tmp_path, filter_weights):
    def run(threshold, name):
        summary = make_clip_pairs(tmp_path / name, corpus["videos"], levels=corpus["db"], encode="frames",
                                  num_frames=2, max_side=16, filter_model="dc-test-video",
                                  filter_pretrained=str(filter_weights), filter_threshold=threshold, filter_frames=4,
                                  filter_batch_size=3, progress=False)  # fmt: skip
        metas = [json.loads(m["json"]) for m in read_samples(tmp_path / name).values()]
        return summary, {(m["video_id"], m["level"], m["start"]): m["similarity"] for m in metas}

    everything, scores = run(-1.0, "all")
    assert everything["num_pairs"] == 7 and len(scores) == 7 and "low_similarity" not in everything["filter"]["dropped"]
    assert all(-1.0 <= s <= 1.0 for s in scores.values()) and len(set(scores.values())) > 1
    threshold = float(np.median(list(scores.values()))) - 1e-4  # stored scores are rounded to 1e-5
    half, kept = run(threshold, "half")
    assert set(kept) == {k for k, s in scores.items() if s >= threshold}
    assert half["filter"]["dropped"]["low_similarity"] == 7 - len(kept) == 3
    assert half["filter"]["dropped"]["duplicate"] == 1  # text rules still report first
    assert half["settings"]["similarity_threshold"] == threshold
    assert kept == pytest.approx({k: scores[k] for k in kept}, abs=1e-5)
    with pytest.raises(NothingWrittenError, match=r"low_similarity: 7 \(e\.g\. case[ABC] .*\(similarity "):
        run(1.0, "none")
    none = json.loads((tmp_path / "none" / "surgery-summary.json").read_text())
    assert none["num_pairs"] == 0 and none["filter"]["dropped"]["low_similarity"] == 7


def test_text_rules_flags_and_durations_are_options(corpus, tmp_path):
    summary = make_clip_pairs(
        tmp_path / "o", corpus["videos"], levels=corpus["db"], text_rules=(), min_duration=1.0, max_duration=5.5,
        level_max_duration=12.0, descriptive_only=False, surgical_only=False, max_side=16, encode="frames",
        num_frames=1, progress=False,
    )  # fmt: skip
    table = pair_table(read_samples(tmp_path / "o"))
    texts = [row[-1] for row in table]
    assert "okay um let's see" in texts and "12 34 56 78" in texts  # no text rules
    assert "The view is nice." in texts and "Greetings to everyone." in texts  # flags kept
    assert "Calot triangle dissection." not in texts  # 20 s phase > level_max_duration
    assert summary["filter"]["dropped"] == {"too_long": 1, "outside_video": 1}
    # units close at sentence ends after 1 s; the 6 s cue is split in two (max_duration 5.5), repeats are kept
    assert [(r[3], r[4], r[5]) for r in table if r[0] == "caseA"] == [
        (0.0, 2.0, "We grasp the gallbladder fundus."),
        (2.0, 5.0, "Then we retract it towards the shoulder."),
        (5.5, 7.0, "okay um let's see"),
        (10.0, 13.0, "Now we dissect the"),
        (13.0, 16.0, "cystic duct with the hook."),
        (16.0, 19.0, "Now we dissect the cystic duct with the hook!"),
    ]
    rules = make_clip_pairs(tmp_path / "r", corpus["videos"], text_rules=["min_words"], max_side=16,
                            encode="frames", num_frames=1, progress=False)  # fmt: skip
    assert rules["settings"]["text_rules"] == ["min_words"] and rules["filter"]["dropped"].get("duplicate") is None


def test_transcripts_dir_and_finders(corpus, tmp_path):
    videos = corpus["videos"]
    assert [p.name for p in find_videos(videos)] == ["broken.mp4", "caseA.mp4", "caseC.mp4", "caseB.mp4", "silent.mp4"]
    assert find_transcript(videos / "caseA.mp4") == videos / "caseA.srt"
    assert find_transcript(videos / "nested" / "caseB.mp4") == videos / "nested" / "caseB.vtt"
    assert find_transcript(videos / "silent.mp4") is None
    tdir = tmp_path / "t"
    tdir.mkdir()
    fx.write_srt(tdir / "silent.srt", [(0.0, 1.9, "The camera enters the abdomen.")])
    fx.write_vtt(tdir / "silent.vtt", [(0.0, 1.0, "Not this one, srt comes first.")])
    assert find_transcript(videos / "silent.mp4", tdir) == tdir / "silent.srt"
    summary = make_clip_pairs(tmp_path / "o", videos / "silent.mp4", transcripts=tdir, min_duration=1.0,
                              progress=False)  # fmt: skip
    assert pair_table(read_samples(tmp_path / "o")) == [
        ("silent", "narration", None, 0.0, 1.9, "The camera enters the abdomen.")
    ]
    assert summary["transcripts_dir"] == str(tdir)
    dup = tmp_path / "dup"
    fx.write_video(dup / "a" / "same.mp4", 1)
    fx.write_video(dup / "b" / "same.mp4", 1)
    with pytest.raises(ValueError, match="would both be written as 'same'"):
        find_videos(dup)
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        find_videos(tmp_path / "nothing_here")
    with pytest.raises(ValueError, match="no video files"):
        find_videos(tdir)


def test_bad_arguments(corpus, tmp_path):
    with pytest.raises(InputError, match="encode must be one of mp4, frames; got 'frame'"):
        make_clip_pairs(tmp_path, corpus["videos"], encode="frame")
    with pytest.raises(InputError, match="min_duration 10.0 is above max_duration 5.0"):
        make_clip_pairs(tmp_path, corpus["videos"], min_duration=10, max_duration=5)
    with pytest.raises(UnknownNameError, match="min_words"):
        make_clip_pairs(tmp_path, corpus["videos"], text_rules=["min_word"])
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        make_clip_pairs(tmp_path, corpus["videos"], transcripts=tmp_path / "no_such_dir")
    bad = tmp_path / "levels.csv"
    bad.write_text("video_id,start,end,level,text\ncaseC,0,4,stage,a b c\n")
    with pytest.raises(ValueError, match=r"levels\.csv:2: unknown surgical level 'stage'"):
        make_clip_pairs(tmp_path, corpus["videos"], levels=bad)


def test_bad_transcript_skips_only_its_video(corpus, tmp_path):
    videos = tmp_path / "v"
    fx.write_video(videos / "good.mp4", 6)
    fx.write_srt(videos / "good.srt", [(0.0, 5.0, "We open the abdomen carefully.")])
    fx.write_video(videos / "bad.mp4", 6)
    (videos / "bad.srt").write_text("1\n00:00:01,000 -> 00:00:04,000\nbroken arrow\n")
    summary = make_clip_pairs(tmp_path / "o", videos, progress=False)
    assert summary["num_pairs"] == 1
    assert [(Path(s["video"]).name, s["reason"]) for s in summary["videos_skipped"]] == [("bad.mp4", "bad_transcript")]
    assert "bad.srt:1: expected a cue number and a timing line" in summary["videos_skipped"][0]["error"]


def test_a_run_that_writes_nothing_raises_with_the_reasons(corpus, tmp_path):
    videos = tmp_path / "v"
    videos.mkdir()
    broken = videos / "broken.mp4"
    broken.write_bytes((corpus["videos"] / "broken.mp4").read_bytes())
    (videos / "broken.srt").write_text("1\n00:00:00,000 --> 00:00:05,000\nWe open the abdomen carefully.\n")
    fx.write_video(videos / "bad.mp4", 6)
    (videos / "bad.srt").write_text("1\n00:00:01,000 -> 00:00:04,000\nbroken arrow\n")
    fx.write_video(videos / "silent.mp4", 2)
    with pytest.raises(NothingWrittenError) as caught:
        make_clip_pairs(tmp_path / "o", videos, progress=False)
    message = str(caught.value)
    assert message.startswith(
        "surgery/clips wrote no clip-caption pairs from 3 videos (3 skipped, 0 candidate pairs): "
    ), message
    assert f"bad_transcript: 1 (e.g. {videos / 'bad.srt'}:1: expected a cue number and a timing line" in message
    assert f"decode_error: 1 (e.g. {broken}: " in message and "truncated" in message
    assert f"no_captions: 1 (e.g. {videos / 'silent.mp4'}: no transcript (silent.srt/.vtt/.json in {videos})" in message
    summary = json.loads((tmp_path / "o" / "surgery-summary.json").read_text())
    assert summary["num_pairs"] == 0
    assert summary["videos_skipped_by_reason"] == {"bad_transcript": 1, "decode_error": 1, "no_captions": 1}
    assert not read_samples(tmp_path / "o")


def test_bad_values_and_inputs_are_refused_before_any_work(corpus, tmp_path):
    out = tmp_path / "o"
    for kwargs, message in [
        ({"max_gap": -1.0}, "max_gap must be a number >= 0; got -1.0"),
        ({"max_side": 1}, "max_side must be an integer >= 2; got 1"),
        ({"clip_fps": 0.0}, "clip_fps must be a number > 0; got 0.0"),
        ({"workers": 0}, "workers must be an integer >= 1; got 0"),
        ({"filter_model": "dc-test-video"}, "filter_model and filter_threshold go together"),
        ({"filter_threshold": 0.5}, "filter_model and filter_threshold go together"),
    ]:
        with pytest.raises(InputError, match=message):
            make_clip_pairs(out, corpus["videos"], **kwargs)
    levels = tmp_path / "levels.json"
    levels.write_text('{"caseC": {"start": 0}}')
    with pytest.raises(InputError, match=r"levels\.json: video 'caseC' must map to a list of spans, got dict"):
        make_clip_pairs(out, corpus["videos"], levels=levels)
    with pytest.raises(InputNotFoundError, match="absent.csv does not exist"):
        make_clip_pairs(out, corpus["videos"], levels=tmp_path / "absent.csv")
    with pytest.raises(InputNotFoundError, match="no_such_dir does not exist"):
        make_clip_pairs(out, corpus["videos"], transcripts=tmp_path / "no_such_dir")
    assert not out.exists()


@pytest.mark.parametrize(
    ("flag", "value", "rule"),
    [
        ("--max-gap", "-1", "must be a number >= 0; got -1.0"),
        ("--min-duration", "0", "must be a number > 0; got 0.0"),
        ("--level-max-duration", "inf", "must be a finite number; got inf"),
        ("--num-frames", "0", "must be an integer >= 1; got 0"),
        ("--max-side", "1", "must be a number >= 2; got 1"),
        ("--max-side", "x", "takes a number of pixels or 'none'; got 'x'"),
        ("--clip-fps", "-5", "must be a number > 0; got -5.0"),
        ("--filter-threshold", "2", "must be a number in [-1, 1]; got 2.0"),
        ("--workers", "0", "must be an integer >= 1; got 0"),
        ("--encode", "frame", "invalid choice: 'frame' (choose from 'mp4', 'frames')"),
    ],
)
def test_cli_refuses_bad_flag_values_up_front(corpus, tmp_path, capsys, flag, value, rule):
    from domainclip.cli import main

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as caught:
        main(["prepare", "surgery", "clips", "--videos", str(corpus["videos"]), "--out", str(out), flag, value])
    assert caught.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("usage: domainclip prepare surgery clips ")
    assert lines[-1] == f"domainclip prepare surgery clips: error: argument {flag}: {rule}"
    assert not out.exists()


def test_cli_runs_the_command(corpus, tmp_path, capsys):
    from domainclip.cli import main

    argv = ["prepare", "surgery", "clips", "--videos", str(corpus["videos"] / "caseC.mp4"), "--levels",
            str(corpus["db"]), "--out", str(tmp_path / "o"), "--encode", "frames", "--num-frames", "3", "--max-side",
            "16", "--min-duration", "3", "--no-progress", "--prefix", "cli", "--text-rules", "min_words", "duplicate"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_pairs"] == 4 and summary["shards"] == ["cli-000000.tar"]
    assert summary["settings"]["text_rules"] == ["min_words", "duplicate"] and summary["settings"]["max_side"] == 16
    assert summary["pairs_by_level"] == {"narration": 1, "task": 1, "step": 1, "phase": 1}
    argv = ["prepare", "surgery", "clips", "--videos", str(corpus["videos"] / "caseC.mp4"), "--out",
            str(tmp_path / "n"), "--max-side", "none", "--text-rules", "none", "--no-progress"]
    assert main(argv) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert settings["max_side"] is None and settings["text_rules"] == []
    samples = read_samples(tmp_path / "n")
    with open_video(next(iter(samples.values()))["mp4"], backend="pyav") as clip:
        assert (clip.width, clip.height) == (fx.WIDTH, fx.HEIGHT)  # the size kept


def test_a_typo_in_a_recipe_prepare_step_is_refused_at_load(tmp_path):
    from domainclip.core.prepare import step_options
    from domainclip.core.recipe import PrepareStep, RecipeError, load_recipe

    def options(command, **args):
        return step_options(PrepareStep(command, {"out": "{root}/o", **args}), tmp_path)[1]

    assert options("surgery/clips", videos="{root}/v", max_side=None, text_rules=[]) == {
        "out": tmp_path / "o", "videos": [tmp_path / "v"], "max_side": None, "text_rules": []}
    assert options("surgery/synthetic", n=2, size=[64, 48])["size"] == (64, 48)
    assert options("surgery/synthetic", size="64x48")["size"] == (64, 48)
    for command, args, message in [
        ("surgery/clips", {"videos": "v", "transcript": "t"}, "unknown option 'transcript' (did you mean transcripts"),
        ("surgery/clips", {"videos": "v", "max_side": 1}, "surgery/clips args.max_side: must be an integer >= 2"),
        ("surgery/clips", {"videos": "v", "encode": "avi"}, "args.encode: must be one of mp4, frames; got 'avi'"),
        ("surgery/clips", {}, "missing required option(s) videos"),
        ("surgery/synthetic", {"n_videos": 4}, "unknown option 'n_videos'"),
        ("surgery/synthetic", {"min_duration_s": 40}, "unknown option 'min_duration_s' (did you mean min_duration"),
        ("surgery/synthetic", {"min_duration": 5}, "args.min_duration: must be a number >= 10; got 5"),
        ("surgery/synthetic", {"size": "64x47"}, "size must be even and at least 32x32"),
        ("surgery/transcribe", {"videos": "v", "model": "tiny"}, "unknown option 'model' (did you mean model_size"),
    ]:
        with pytest.raises(InputError) as caught:
            options(command, **args)
        assert message in str(caught.value), str(caught.value)
    recipe = {"domain": "surgery", "model": {"name": "dc-test-video"}, "loss": {"name": "multi_positive"},
              "data": {"train": [{"urls": "train/*.tar"}], "decoder_args": {"num_frames": 4},
                       "prepare": [{"command": "surgery/synthetic", "args": {"out": "p", "n": 2}}]},
              "train": {"task": "surgery/video_clip_levels"}}
    assert load_recipe(recipe).data.prepare[0].args == {"out": "p", "n": 2}
    recipe["data"]["prepare"][0]["args"]["max_durations"] = 50
    with pytest.raises(RecipeError, match=r"data.prepare\[0\]: .*unknown option 'max_durations' \(did you mean max_"):
        load_recipe(recipe)


@pytest.mark.parametrize("name", ["synthetic", "clips", "transcribe"])
def test_cli_help_shows_each_default_once_and_from_the_signature(name, capsys):
    import inspect
    import re

    from domainclip.cli import main
    from domainclip.core.prepare import get_prepare_command

    with pytest.raises(SystemExit):
        main(["prepare", "surgery", name, "--help"])
    text = " ".join(capsys.readouterr().out.partition("options:")[2].split())
    command = get_prepare_command("surgery", name)
    for param in inspect.signature(command).parameters.values():
        if param.default in (inspect.Parameter.empty, None, True, False):
            continue
        flag = "--" + param.name.replace("_", "-")
        entry = re.search(rf"{flag} \S+ (.*?)(?= --[a-z]|$)", text).group(1)
        assert entry.count("(default") == 1, (flag, entry)  # written once: in the signature
        shown = "x".join(map(str, param.default)) if isinstance(param.default, tuple) else str(param.default)
        assert entry.endswith(f"(default: {shown})"), (flag, entry)


# --------------------------------------------------------------------------- transcribers
def test_transcriber_registry_and_missing_extra():
    assert {"faster-whisper", "transcript-file"} <= set(TRANSCRIBERS)
    with pytest.raises(UnknownNameError, match="faster-whisper"):
        get_transcriber("faster-whispr")
    if importlib.util.find_spec("faster_whisper") is not None:
        pytest.skip("faster-whisper is installed here: the missing-extra error cannot be shown")
    message = r"'faster_whisper' is needed for transcribing audio.*domainclip\[asr\]"
    with pytest.raises(MissingExtraError, match=message):
        FasterWhisperTranscriber("tiny")
    with pytest.raises(MissingExtraError):
        get_transcriber("faster-whisper", model_size="tiny", device="cpu")


def test_transcript_file_transcriber(corpus, tmp_path):
    videos = corpus["videos"]
    reader = get_transcriber("transcript-file")
    assert isinstance(reader, Transcriber)
    assert reader(videos / "caseA.mp4") == read_transcript(videos / "caseA.srt")
    assert reader(videos / "nested" / "caseB.mp4")[0] == Segment(1.0, 6.0, "We place two clips on the cystic artery.")
    extra = tmp_path / "extra"
    extra.mkdir()
    fx.write_vtt(extra / "silent.vtt", [(0.0, 1.5, "Port placement.")])
    assert TranscriptFileTranscriber([extra])(videos / "silent.mp4") == [Segment(0.0, 1.5, "Port placement.")]
    assert TranscriptFileTranscriber([extra], suffixes=(".srt",)).find(videos / "silent.mp4") is None
    message = r"silent\.mp4: no transcript \(silent\.srt, silent\.vtt, silent\.json\)"
    with pytest.raises(FileNotFoundError, match=message):
        reader(videos / "silent.mp4")
    with pytest.raises(UnknownNameError):
        TranscriptFileTranscriber(suffixes=(".txt",))


def test_transcribe_folder_writes_srt_and_reports_failures(corpus, tmp_path):
    videos = corpus["videos"]
    out = tmp_path / "srt"
    result = transcribe_folder(videos, out, TranscriptFileTranscriber(), progress=False)
    assert sorted(Path(p).name for p in result["written"]) == ["broken.srt", "caseA.srt", "caseB.srt", "caseC.srt"]
    assert result["segments"] == {"broken": 1, "caseA": 5, "caseB": 2, "caseC": 1}
    assert [(Path(f["video"]).name, f["reason"]) for f in result["failed"]] == [("silent.mp4", "no_transcript")]
    assert "silent.mp4: no transcript (silent.srt" in result["failed"][0]["error"]
    assert result["failed_by_reason"] == {"no_transcript": 1}
    assert read_transcript(out / "caseB.srt") == read_transcript(videos / "nested" / "caseB.vtt")
    assert read_transcript(out / "caseC.srt") == [Segment(0.0, 4.5, "The surgeon opens the peritoneum.")]
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*"))

    calls = []

    def fake(media_path):
        calls.append(Path(media_path).name)
        return [Segment(0.0, 1.0, f"speech of {Path(media_path).stem}"), Segment(1.0, 2.0, "  ")]

    again = transcribe_folder(videos, out, fake, progress=False)
    assert calls == ["silent.mp4"] and len(again["skipped_existing"]) == 4
    assert read_transcript(out / "silent.srt") == [Segment(0.0, 1.0, "speech of silent")]
    forced = transcribe_folder([videos / "caseA.mp4"], out, fake, overwrite=True, progress=False)
    assert forced["written"] == [str(out / "caseA.srt")]
    assert read_transcript(out / "caseA.srt") == [Segment(0.0, 1.0, "speech of caseA")]


def test_transcribe_command(corpus, tmp_path):
    summary = transcribe_videos(tmp_path, corpus["videos"] / "caseA.mp4", transcriber="transcript-file", progress=False)
    assert summary["segments"] == {"caseA": 5} and (tmp_path / "caseA.srt").is_file()
    with pytest.raises(UnknownNameError, match="Did you mean: transcript-file"):
        transcribe_videos(tmp_path, corpus["videos"], transcriber="transcript_file")


def test_transcribe_where_every_video_fails_raises_with_the_reasons(corpus, tmp_path):
    videos = corpus["videos"]

    def deaf(media_path):
        raise RuntimeError("the model ran out of memory")

    with pytest.raises(NothingWrittenError) as caught:
        transcribe_folder([videos / "silent.mp4", videos / "caseA.mp4"], tmp_path / "a", deaf, progress=False)
    assert str(caught.value) == (
        "surgery/transcribe wrote no transcripts from 2 videos: transcriber_error: 2 "
        f"(e.g. {videos / 'silent.mp4'}: the model ran out of memory)"
    )
    expected = r"from 1 video: no_transcript: 1 \(e\.g\. .*silent\.mp4: no transcript"
    with pytest.raises(NothingWrittenError, match=expected):
        transcribe_folder([videos / "silent.mp4"], tmp_path / "b", TranscriptFileTranscriber(), progress=False)
    (tmp_path / "b" / "silent.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nHello.\n")
    again = transcribe_folder([videos / "silent.mp4"], tmp_path / "b", TranscriptFileTranscriber(), progress=False)
    assert again["failed"] == [] and again["skipped_existing"] == [str(tmp_path / "b" / "silent.srt")]


def test_transcribe_command_runs_from_the_cli(corpus, tmp_path, capsys):
    from domainclip.cli import main

    argv = ["prepare", "surgery", "transcribe", "--videos", str(corpus["videos"] / "caseA.mp4"), "--out",
            str(tmp_path / "srt"), "--transcriber", "transcript-file", "--no-progress"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["segments"] == {"caseA": 5}
    (tmp_path / "srt" / "caseA.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nStale.\n")
    assert main(argv) == 0  # resumable: a rerun into its own output keeps what is there
    assert [Path(p).name for p in json.loads(capsys.readouterr().out)["skipped_existing"]] == ["caseA.srt"]
    assert "Stale." in (tmp_path / "srt" / "caseA.srt").read_text()
    assert main([*argv, "--overwrite"]) == 0  # the prepare commands' --overwrite: transcribed again
    assert read_transcript(tmp_path / "srt" / "caseA.srt") == read_transcript(corpus["videos"] / "caseA.srt")


def test_faster_whisper_glue_with_a_stand_in_module(monkeypatch, tmp_path):
    import sys
    import types
    from collections import namedtuple

    Piece = namedtuple("Piece", "start end text")
    calls = {}

    class WhisperModel:
        def __init__(self, size, device, compute_type, download_root):
            calls["init"] = (size, device, compute_type, download_root)

        def transcribe(self, path, language, beam_size, vad_filter):
            calls.setdefault("transcribe", []).append((Path(path).name, language, beam_size, vad_filter))
            pieces = [Piece(0.0, 2.5, "  We  open the   abdomen."), Piece(2.5, 3.0, " "), Piece(3.0, 6.25, "Clip.")]
            return iter(pieces), {"language": "en"}

    monkeypatch.setitem(sys.modules, "faster_whisper", types.SimpleNamespace(WhisperModel=WhisperModel))
    whisper = get_transcriber("faster-whisper", model_size="tiny", device="cpu", compute_type="int8", language="en")
    assert "init" not in calls  # the model loads on first use
    expected = [Segment(0.0, 2.5, "We open the abdomen."), Segment(3.0, 6.25, "Clip.")]
    assert whisper(tmp_path / "case.mp4") == expected
    whisper(tmp_path / "other.mp4")
    assert calls["init"] == ("tiny", "cpu", "int8", None)
    assert calls["transcribe"] == [("case.mp4", "en", 5, True), ("other.mp4", "en", 5, True)]


def test_commands_resolve_from_the_domain_spec():
    from domainclip.core.plugins import get_domain, resolve
    from domainclip.core.prepare import get_prepare_command, list_prepare_commands
    from domainclip.domains.surgery.synthetic import generate_procedures

    spec = get_domain("surgery")
    assert list_prepare_commands("surgery") == ["clips", "synthetic", "transcribe"]
    assert get_prepare_command("surgery", "clips") is make_clip_pairs
    assert get_prepare_command("surgery", "transcribe") is transcribe_videos
    assert resolve(spec.prepare[spec.synthetic]) is generate_procedures and spec.demo == "surgery/quick"
    assert transcribe_videos.domainclip_resumable and not getattr(make_clip_pairs, "domainclip_resumable", False)
