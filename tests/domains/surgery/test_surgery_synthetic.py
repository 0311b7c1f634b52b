"""Tests of the synthetic cholecystectomy-like procedure generator (domainclip.domains.surgery.synthetic)."""

import csv
import json
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from domainclip.core.errors import InputError
from domainclip.core.plugins import UnknownNameError
from domainclip.domains.surgery.levels import read_level_table
from domainclip.domains.surgery.synthetic import (
    FILLER,
    LAYOUTS,
    NARRATION,
    PHASE_TOOL_PROBS,
    PHASES,
    TOOL_PERIOD,
    TOOLS,
    generate_procedure,
    generate_procedures,
    plan_procedure,
    render_frames,
    video_id_for,
)
from domainclip.domains.surgery.transcripts import read_transcript
from domainclip.domains.surgery.video import open_video

N_VIDEOS = 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three short procedures (about 20-25 s each) in the Cholec80 layout, decoded once."""
    out = tmp_path_factory.mktemp("surgery_synthetic")
    summary = generate_procedures(out, N_VIDEOS, seed=5, min_duration=20, max_duration=25, progress=False)
    frames = {}
    for vid in (v["video_id"] for v in summary["videos"]):
        with open_video(out / "videos" / f"{vid}.mp4", backend="pyav") as video:
            frames[vid] = (video.get_frames(np.arange(video.num_frames)), video.fps)
    return out, summary, frames


def _phase_rows(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "Frame\tPhase"
    rows = [line.split("\t") for line in lines[1:]]
    assert [int(f) for f, _ in rows] == list(range(len(rows)))
    return [p for _, p in rows]


def _tool_rows(path):
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["Frame", *TOOLS]
    return [[int(v) for v in line.split("\t")] for line in lines[1:]]


def _truths(summary):
    return {
        v["video_id"]: plan_procedure(v["video_id"], seed=v["seed"], duration_s=v["duration_s"])
        for v in summary["videos"]
    }


def test_files_in_cholec80_layout_and_summary(dataset):
    out, summary, _ = dataset
    assert [v["video_id"] for v in summary["videos"]] == ["video01", "video02", "video03"]
    for v in summary["videos"]:
        vid = v["video_id"]
        for rel in (f"videos/{vid}.mp4", f"phase_annotations/{vid}-phase.txt", f"tool_annotations/{vid}-tool.txt",
                    f"transcripts/{vid}.srt"):
            assert (out / rel).stat().st_size > 0, rel
        assert 20 <= v["duration_s"] <= 25
    assert (out / "levels.csv").is_file() and (out / "synthetic-summary.json").is_file()
    assert not list(out.rglob("*.tmp")), "temporary files were left behind"
    assert summary["num_frames"] == sum(v["num_frames"] for v in summary["videos"])
    assert sum(summary["frames_per_phase"].values()) == summary["num_frames"]
    assert summary["level_rows"]["phase"] == sum(len(v["phases"]) for v in summary["videos"])


def test_annotation_rows_equal_decoded_frames(dataset):
    out, summary, frames = dataset
    for v in summary["videos"]:
        vid = v["video_id"]
        decoded, fps = frames[vid]
        phases = _phase_rows(out / "phase_annotations" / f"{vid}-phase.txt")
        assert len(phases) == len(decoded) == v["num_frames"] == round(v["duration_s"] * 25)
        assert fps == pytest.approx(25.0)
        assert decoded.shape[1:] == (120, 160, 3)
        tools = _tool_rows(out / "tool_annotations" / f"{vid}-tool.txt")
        assert [r[0] for r in tools] == list(range(0, len(decoded), TOOL_PERIOD))


def test_cholec80_adapter_reads_the_generated_dataset(dataset):
    from domainclip.domains.surgery.datasets.cholec80 import Cholec80

    out, summary, frames = dataset
    truths = _truths(summary)
    ds = Cholec80(out, split=list(range(1, N_VIDEOS + 1)), fps=1, tools=True, backend="pyav")
    assert len(ds) == sum(-(-v["num_frames"] // TOOL_PERIOD) for v in summary["videos"])
    for i in (0, len(ds) // 2, len(ds) - 1):
        sample = ds[i]
        vid, frame = sample["meta"]["video_id"], sample["meta"]["frame"]
        truth = truths[vid]
        assert sample["label"] == truth.frame_phases()[frame]
        assert sample["tools"].tolist() == list(truth.tools_at(frame))
        assert np.array_equal(np.asarray(sample["image"]), frames[vid][0][frame])


def test_phase_order_is_kept_and_phases_may_be_skipped(dataset):
    out, summary, _ = dataset
    for v in summary["videos"]:
        labels = [PHASES.index(p) for p in _phase_rows(out / "phase_annotations" / f"{v['video_id']}-phase.txt")]
        assert all(a <= b for a, b in zip(labels, labels[1:])), "phases out of order"
        assert [PHASES[i] for i in dict.fromkeys(labels)] == v["phases"]
    seen_skips = set()
    for seed in range(40):
        truth = plan_procedure("video01", seed=seed, duration_s=30)
        order = [PHASES.index(p.phase) for p in truth.phases]
        assert order == sorted(order) and len(set(order)) == len(order)
        mandatory = {"CalotTriangleDissection", "ClippingCutting", "GallbladderDissection"}
        assert mandatory <= {p.phase for p in truth.phases}
        assert truth.phases[0].start_frame == 0 and truth.phases[-1].end_frame == truth.num_frames
        assert all(a.end_frame == b.start_frame for a, b in zip(truth.phases, truth.phases[1:]))
        assert all(p.end_frame - p.start_frame >= 25 for p in truth.phases)  # at least 1 s each
        seen_skips |= set(PHASES) - {p.phase for p in truth.phases}
    assert "CleaningCoagulation" in seen_skips


def test_transcript_segments_fall_inside_their_phases(dataset):
    out, summary, _ = dataset
    truths = _truths(summary)
    fillers = {text for text, _, _ in FILLER}
    total = 0
    for v in summary["videos"]:
        vid = v["video_id"]
        phases = _phase_rows(out / "phase_annotations" / f"{vid}-phase.txt")
        segments = read_transcript(out / "transcripts" / f"{vid}.srt")
        truth = truths[vid]
        assert [s.text for s in segments] == [n.text for n in truth.narration]
        spoken_phases = set()
        for seg in segments:
            first, last = int(seg.start * 25), int(np.ceil(seg.end * 25)) - 1
            assert seg.end > seg.start
            assert phases[first] == phases[last], f"{vid}: {seg} crosses a phase boundary"
            spoken_phases.add(phases[first])
            assert seg.text in {s for s, _ in NARRATION[phases[first]]} | fillers
        assert spoken_phases == set(v["phases"]), "every phase is narrated"
        total += len(segments)
    assert total >= 3 * N_VIDEOS


def test_levels_csv_nests_task_in_step_in_phase(dataset):
    out, summary, _ = dataset
    with open(out / "levels.csv", newline="") as f:
        assert next(csv.reader(f)) == ["video_id", "start", "end", "level", "text", "is_descriptive",
                                       "is_surgical_content"]
    spans = read_level_table(out / "levels.csv", descriptive_only=False, surgical_only=False)
    kept = read_level_table(out / "levels.csv")
    flagged = [s for s in spans if not (s.is_descriptive and s.is_surgical_content)]
    assert len(kept) == len(spans) - len(flagged)
    assert all(s.level == "task" and s.text in {t for t, _, _ in FILLER} for s in flagged)
    for v in summary["videos"]:
        mine = [s for s in spans if s.video_id == v["video_id"]]
        by_level = {lv: [s for s in mine if s.level == lv] for lv in ("phase", "step", "task")}
        phases = by_level["phase"]
        assert len(phases) == len(v["phases"])
        assert phases[0].start == 0 and phases[-1].end == pytest.approx(v["duration_s"], abs=1e-3)
        assert all(a.end == b.start for a, b in zip(phases, phases[1:]))
        for child_level, parent_level in (("step", "phase"), ("task", "step")):
            for child in by_level[child_level]:
                parents = [p for p in by_level[parent_level] if p.start <= child.start and child.end <= p.end]
                assert len(parents) == 1, f"{child} is not inside exactly one {parent_level}"
        per_phase = [sum(1 for s in by_level["step"] if p.start <= s.start < p.end) for p in phases]
        assert all(1 <= n <= 3 for n in per_phase) and sum(n >= 2 for n in per_phase) >= len(phases) - 1
        assert len(by_level["task"]) >= 3


def test_tool_annotations_match_the_drawn_schedule(dataset):
    out, summary, _ = dataset
    truths = _truths(summary)
    for vid, truth in truths.items():
        rows = _tool_rows(out / "tool_annotations" / f"{vid}-tool.txt")
        assert [tuple(r[1:]) for r in rows] == list(truth.tool_schedule)
        phase_rows = _phase_rows(out / "phase_annotations" / f"{vid}-phase.txt")
        for frame, *presence in rows:
            probs = PHASE_TOOL_PROBS[phase_rows[frame]]
            assert all(p > 0 for p, on in zip(probs, presence) if on), "a tool drawn where its phase never uses it"
            assert sum(presence[:6]) <= 3
    # Over many blocks, tool presence follows the per-phase probabilities.
    counts = np.zeros((len(PHASES), len(TOOLS)))
    blocks = np.zeros(len(PHASES))
    for seed in range(12):
        truth = plan_procedure("video01", seed=seed, duration_s=120)
        phase_of = truth.frame_phases()
        for k, row in enumerate(truth.tool_schedule):
            counts[phase_of[k * TOOL_PERIOD]] += row
            blocks[phase_of[k * TOOL_PERIOD]] += 1
    rates = counts / blocks[:, None]
    expected = np.array([PHASE_TOOL_PROBS[p] for p in PHASES])
    assert np.abs(rates - expected).max() < 0.2
    assert rates[PHASES.index("CalotTriangleDissection"), TOOLS.index("Hook")] > 0.7
    assert rates[PHASES.index("GallbladderPackaging"), TOOLS.index("SpecimenBag")] > 0.7
    assert rates[PHASES.index("CalotTriangleDissection"), TOOLS.index("SpecimenBag")] == 0


def test_drawn_tools_are_visible_in_the_pixels():
    # Any schedule is drawn as given: cycle through no tool, each tool alone, and the bag alone.
    plan = plan_procedure("video01", seed=11, duration_s=16)
    cycle = [()] + [(i,) for i in range(len(TOOLS))]
    schedule = tuple(tuple(int(i in cycle[k % len(cycle)]) for i in range(len(TOOLS)))
                     for k in range(len(plan.tool_schedule)))
    truth = replace(plan, tool_schedule=schedule)
    stats = []
    for f, (frame, tools) in enumerate(render_frames(truth)):
        assert tools == schedule[f // TOOL_PERIOD]
        if f % TOOL_PERIOD < 3:  # let the smoke of the previous block clear
            continue
        x = frame.astype(np.int16)
        spread, mean = x.max(-1) - x.min(-1), x.mean(-1)
        grey = ((spread < 16) & (mean > 80) & (mean < 215)).mean()
        blue = ((x[..., 2] - x[..., 0] > 60) & (x[..., 2] > 110)).sum()
        white = ((spread < 40) & (mean > 185)).mean()
        stats.append((tools, grey, blue, white))

    def values(column, keep):
        return np.array([row[column] for row in stats if keep(row[0])])

    no_instrument = values(1, lambda t: not any(t))
    for i, tool in enumerate(TOOLS[:6]):
        alone = values(1, lambda t, i=i: t[i] == 1)
        assert np.median(alone) > 3 * np.median(no_instrument) + 0.005, tool
    assert values(2, lambda t: t[1] == 1).min() >= 30  # the blue insulation band of the bipolar forceps
    assert np.median(values(2, lambda t: t[1] == 0)) == 0
    assert np.median(values(3, lambda t: t[6] == 1)) > 0.01  # the white specimen bag
    assert np.median(values(3, lambda t: not any(t))) < 0.002


def _stats(frame):
    x = frame.astype(np.float32) / 255
    return np.concatenate([x.mean((0, 1)), x.std((0, 1)), np.abs(np.diff(x, axis=1)).mean((0, 1))])


def test_phases_are_distinguishable_by_simple_frame_statistics(dataset):
    from sklearn.neighbors import NearestCentroid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out, summary, frames = dataset
    feats, labels = {}, {}
    for v in summary["videos"]:
        vid = v["video_id"]
        phases = _phase_rows(out / "phase_annotations" / f"{vid}-phase.txt")
        decoded, _ = frames[vid]
        feats[vid] = np.stack([_stats(decoded[i]) for i in range(0, len(decoded), 5)])
        labels[vid] = np.array([PHASES.index(phases[i]) for i in range(0, len(decoded), 5)])
    for held_out in feats:  # train on two videos, test on the frames of the third
        train = [vid for vid in feats if vid != held_out]
        clf = make_pipeline(StandardScaler(), NearestCentroid())
        clf.fit(np.concatenate([feats[v] for v in train]), np.concatenate([labels[v] for v in train]))
        accuracy = (clf.predict(feats[held_out]) == labels[held_out]).mean()
        assert accuracy > 0.8, f"{held_out}: nearest-centroid accuracy {accuracy:.2f}"
    # Not one flat colour: frames have texture inside every phase.
    all_feats = np.concatenate(list(feats.values()))
    assert all_feats[:, 3:6].min() > 0.03 and all_feats[:, 6:9].min() > 0.01


def test_same_seed_same_files_and_pixels(tmp_path):
    a = generate_procedure(tmp_path / "a", "video07", seed=42, duration_s=10)
    b = generate_procedure(tmp_path / "b", "video07", seed=42, duration_s=10)
    c = generate_procedure(tmp_path / "c", "video07", seed=43, duration_s=10)
    for key in ("phase", "tool", "transcript"):
        assert Path(a.paths[key]).read_bytes() == Path(b.paths[key]).read_bytes()
    assert a.to_dict() | {"paths": {}} == b.to_dict() | {"paths": {}}
    with open_video(a.paths["video"], backend="pyav") as va, open_video(b.paths["video"], backend="pyav") as vb, \
            open_video(c.paths["video"], backend="pyav") as vc:
        idx = np.arange(0, va.num_frames, 7)
        fa, fb, fc = va.get_frames(idx), vb.get_frames(idx), vc.get_frames(idx)
    assert np.array_equal(fa, fb)
    assert np.abs(fa.astype(int) - fc.astype(int)).mean() > 5


@pytest.mark.slow
def test_workers_do_not_change_the_output(tmp_path):
    one = generate_procedures(tmp_path / "one", 2, seed=3, min_duration=10, max_duration=12, progress=False)
    two = generate_procedures(tmp_path / "two", 2, seed=3, min_duration=10, max_duration=12, workers=2,
                              progress=False)
    assert one["videos"] == two["videos"]
    assert (tmp_path / "one" / "levels.csv").read_bytes() == (tmp_path / "two" / "levels.csv").read_bytes()
    for v in one["videos"]:
        rel = f"tool_annotations/{v['video_id']}-tool.txt"
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes()


def test_rendering_streams_long_videos():
    truth = plan_procedure("video01", seed=0, duration_s=3600)
    assert truth.num_frames == 90_000 and len(truth.tool_schedule) == 3600
    tracemalloc.start()
    try:
        frames = render_frames(truth)
        first, _ = next(frames)
        second, _ = next(frames)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20  # the whole hour would be 90,000 x 57.6 KB = 5.2 GB: nothing is rendered ahead
    assert first.shape == (120, 160, 3) and first.dtype == np.uint8 and not np.array_equal(first, second)


def test_other_sizes_and_frame_rates(tmp_path):
    truth = generate_procedure(tmp_path, "video01", seed=1, size=(96, 64), duration_s=12)
    assert truth.num_frames == 300
    with open_video(truth.paths["video"], backend="pyav") as video:
        assert (video.num_frames, video.width, video.height) == (300, 96, 64)
        assert video.fps == pytest.approx(25.0)
    assert len(_phase_rows(tmp_path / "phase_annotations" / "video01-phase.txt")) == 300
    planned = plan_procedure("video01", seed=1, fps=10, size=(96, 64), duration_s=12)
    assert planned.num_frames == 120 and next(render_frames(planned))[0].shape == (64, 96, 3)
    assert LAYOUTS["cholec80"][0] == 25  # the layout sets the rate: one phase row per frame at 25 fps


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(InputError, match="even"):
        plan_procedure("video01", seed=0, size=(161, 120))
    with pytest.raises(InputError, match="duration_s must be a number >= 10; got 5"):
        plan_procedure("video01", seed=0, duration_s=5)
    with pytest.raises(UnknownNameError, match="cholec80"):
        generate_procedure(tmp_path, "video01", seed=0, layout="cholec8")
    with pytest.raises(InputError, match="n must be an integer >= 1; got 0"):
        generate_procedures(tmp_path, 0)
    with pytest.raises(InputError, match="min_duration 30.0 is above max_duration 20.0"):
        generate_procedures(tmp_path, 1, min_duration=30, max_duration=20)
    with pytest.raises(InputError, match="size must be even"):
        generate_procedures(tmp_path, 1, size=(64, 47))
    with pytest.raises(ValueError):
        video_id_for(-1)
    assert [video_id_for(i) for i in (0, 8, 79, 99)] == ["video01", "video09", "video80", "video100"]


def test_prepare_command_runs_from_the_cli(tmp_path, capsys):
    from domainclip.cli import main

    argv = ["prepare", "surgery", "synthetic", "--out", str(tmp_path / "o"), "--n", "1", "--seed", "2", "--size",
            "64x48", "--min-duration", "10", "--max-duration", "10", "--no-progress"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 1 and summary["seed"] == 2 and summary["size"] == [64, 48]
    assert summary["videos"][0]["num_frames"] == 250 and (tmp_path / "o" / "videos" / "video01.mp4").is_file()
    with pytest.raises(SystemExit) as caught:
        main(["prepare", "surgery", "synthetic", "--out", str(tmp_path / "p"), "--size", "65x48"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "domainclip prepare surgery synthetic: error: argument --size: size must be even and at least 32x32 "
        "(H.264 4:2:0), got 65x48"
    )
    assert not (tmp_path / "p").exists()
