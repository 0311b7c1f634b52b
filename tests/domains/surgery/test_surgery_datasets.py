"""Cholec80 / AutoLaparo adapters on fixtures in the exact public layouts, and the surgery label spaces."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from domainclip.core.plugins import UnknownNameError
from domainclip.domains.surgery import labels
from domainclip.domains.surgery.datasets import AnnotationError, DatasetNotFoundError
from domainclip.domains.surgery.datasets.autolaparo import AutoLaparo
from domainclip.domains.surgery.datasets.cholec80 import SPLITS, Cholec80

_spec = importlib.util.spec_from_file_location("surgery_eval_fixture_datasets", Path(__file__).with_name("data.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)


@pytest.fixture(scope="module")
def cholec80(tmp_path_factory):
    root = tmp_path_factory.mktemp("cholec80")
    return root, fixture.make_cholec80(root)


@pytest.fixture(scope="module")
def autolaparo(tmp_path_factory):
    root = tmp_path_factory.mktemp("autolaparo")
    return root, fixture.make_autolaparo(root)


def _colour(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(0)


# ----------------------------------------------------------------------------- labels
def test_label_spaces_follow_the_annotation_files():
    assert labels.CHOLEC80_PHASES == fixture.CHOLEC80_PHASES
    assert labels.CHOLEC80_TOOLS == fixture.TOOLS
    assert len(labels.AUTOLAPARO_PHASES) == 7 and labels.AUTOLAPARO_PHASES[3] == "Transecting the Vagina"


@pytest.mark.parametrize("fn", [labels.cholec80_phase_prompts, labels.cholec80_tool_prompts,
                                labels.autolaparo_phase_prompts])
def test_prompt_styles(fn):
    ensemble, descriptive, templates = fn("ensemble"), fn("descriptive"), fn("templates")
    assert len(ensemble) == 7
    for c in ensemble:
        assert ensemble[c] == descriptive[c] + templates[c]
        assert descriptive[c] and templates[c] and len(set(ensemble[c])) == len(ensemble[c])
    every = [p for prompts in ensemble.values() for p in prompts]
    assert len(set(every)) == len(every)  # no prompt is shared between two classes
    with pytest.raises(UnknownNameError, match="ensemble"):
        fn("ensembel")


def test_prompts_name_their_class():
    phases = labels.cholec80_phase_prompts("templates")
    assert phases["ClippingCutting"][0] == "a laparoscopic video frame during clipping and cutting."
    tools = labels.cholec80_tool_prompts("templates")
    assert all("a clip applier" in p for p in tools["Clipper"])
    assert labels.cholec80_phase_prompts("descriptive")["Preparation"][0].startswith("In the preparation phase")


# ----------------------------------------------------------------------------- Cholec80
def test_cholec80_one_fps_frames_and_labels(cholec80):
    root, phases = cholec80
    ds = Cholec80(root, split=[49, 50, 51])
    assert ds.video_ids == ["video49", "video50", "video51"]
    expected = [p for n in (49, 50, 51) for p in phases[n][::25]]
    assert len(ds) == len(expected) == 13
    assert ds.labels.tolist() == expected
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["label"] == expected[i]
        assert np.abs(_colour(sample["image"]) - fixture.PALETTE[expected[i]]).max() < 8
    assert ds[4]["meta"] == {"video_id": "video50", "frame": 0, "time_s": 0.0}
    assert ds[-1]["meta"] == {"video_id": "video51", "frame": 75, "time_s": 3.0}
    assert ds.sample_video.tolist() == [0] * 4 + [1] * 5 + [2] * 4
    assert ds._open is not None and ds._open[1] == 2  # only the last video is held open
    ds.close()
    assert ds._open is None


def test_cholec80_other_rates_and_transform(cholec80):
    root, phases = cholec80
    ds = Cholec80(root, split=[49], fps=5, transform=lambda im: torch.tensor(_colour(im)))
    assert ds.labels.tolist() == phases[49][::5]
    assert [ds[i]["meta"]["frame"] for i in (0, 1, 2)] == [0, 5, 10]
    assert torch.allclose(ds[6]["image"], torch.tensor(fixture.PALETTE[1], dtype=torch.float64), atol=8)
    with pytest.raises(ValueError, match="fps"):
        Cholec80(root, split=[49], fps=30)


def test_cholec80_tools(cholec80):
    root, _ = cholec80
    ds = Cholec80(root, split=[49, 50, 51], tools=True)
    assert len(ds) == 13
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["tools"].dtype == torch.float32
        assert sample["tools"].tolist() == list(fixture.PHASE_TOOLS[sample["label"]])


def test_cholec80_split_presets(cholec80):
    root, _ = cholec80
    assert SPLITS["camma_test"] == tuple(range(49, 81)) and SPLITS["train"] == tuple(range(1, 41))
    assert SPLITS["test"] == tuple(range(41, 81)) and SPLITS["camma_val"] == tuple(range(41, 49))
    with pytest.raises(DatasetNotFoundError, match=r"missing 58 file\(s\).*video52\.mp4"):
        Cholec80(root, split="camma_test")
    with pytest.raises(UnknownNameError, match="camma_test"):
        Cholec80(root, split="camma_tset")
    with pytest.raises(ValueError, match="distinct positive"):
        Cholec80(root, split=[49, 49])


def test_cholec80_parallel_workers_match_serial(cholec80):
    root, _ = cholec80
    ds = Cholec80(root, split=[49, 50, 51], transform=lambda im: torch.tensor(_colour(im)))
    serial = torch.stack([ds[i]["image"] for i in range(len(ds))])
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    batches = list(loader)
    assert torch.equal(torch.cat([b["image"] for b in batches]), serial)
    assert torch.cat([b["label"] for b in batches]).tolist() == ds.labels.tolist()


def test_cholec80_layout_errors_name_the_file(tmp_path):
    root = tmp_path / "c80"
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        Cholec80(root, split=[1])
    fixture.make_cholec80(root, {1: [(0, 1), (2, 1)]})
    (root / "tool_annotations" / "video01-tool.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"video01-tool\.txt"):
        Cholec80(root, split=[1], tools=True)
    phase = root / "phase_annotations" / "video01-phase.txt"
    good = phase.read_text()
    phase.write_text(good.replace("Frame\tPhase", "Frame\tLabel"))
    with pytest.raises(AnnotationError, match=r"video01-phase\.txt: header"):
        Cholec80(root, split=[1])
    phase.write_text(good.replace("30\tClippingCutting", "30\tClipping"))
    with pytest.raises(AnnotationError, match=r"video01-phase\.txt:32: unknown phase 'Clipping'"):
        Cholec80(root, split=[1])
    phase.write_text(good.replace("\n7\t", "\n8\t", 1))
    with pytest.raises(AnnotationError, match=r"video01-phase\.txt:9: frame numbers"):
        Cholec80(root, split=[1])


def test_cholec80_bad_tool_values(tmp_path):
    fixture.make_cholec80(tmp_path, {2: [(1, 2)]})
    tool = tmp_path / "tool_annotations" / "video02-tool.txt"
    tool.write_text(tool.read_text().replace("25\t1\t0", "25\t2\t0"))
    with pytest.raises(AnnotationError, match=r"video02-tool\.txt:3: tool presence must be 0 or 1"):
        Cholec80(tmp_path, split=[2], tools=True)


def test_cholec80_annotation_longer_than_video(tmp_path):
    fixture.make_cholec80(tmp_path / "long", {3: [(0, 2)]}, extra_rows=50)
    with pytest.raises(AnnotationError, match=r"video03-phase\.txt annotates 4\.00 s .*video03\.mp4 lasts 2\.00 s"):
        Cholec80(tmp_path / "long", split=[3])
    # within the one-second tolerance: kept, and the frame past the end reads the last frame
    fixture.make_cholec80(tmp_path / "short", {3: [(4, 2)]}, extra_rows=10)
    ds = Cholec80(tmp_path / "short", split=[3])
    assert len(ds) == 3 and ds[2]["meta"]["time_s"] == 2.0
    assert np.abs(_colour(ds[2]["image"]) - fixture.PALETTE[4]).max() < 8


def test_cholec80_unreadable_video_is_named(tmp_path):
    fixture.make_cholec80(tmp_path, {4: [(0, 1)]})
    video = tmp_path / "videos" / "video04.mp4"
    video.write_bytes(video.read_bytes()[:200])
    with pytest.raises(AnnotationError, match=r"video04\.mp4"):
        Cholec80(tmp_path, split=[4])


# ----------------------------------------------------------------------------- AutoLaparo
def test_autolaparo_frames_and_labels(autolaparo):
    root, seconds = autolaparo
    ds = AutoLaparo(root, split=[15, 16])
    expected = seconds[15] + seconds[16]
    assert len(ds) == 9 and ds.labels.tolist() == expected
    assert [ds[i]["label"] for i in range(len(ds))] == expected
    for i in (0, 3, 8):
        assert np.abs(_colour(ds[i]["image"]) - fixture.PALETTE[expected[i]]).max() < 8
    assert ds[5]["meta"] == {"video_id": "16", "frame": 0, "time_s": 0.0}
    with pytest.raises(DatasetNotFoundError, match=r"label_17\.txt"):
        AutoLaparo(root, split="test")


def test_autolaparo_accepts_label_without_underscore_and_zero_based_frames(tmp_path):
    fixture.make_autolaparo(tmp_path, {3: [(2, 2), (6, 1)]}, label_name="label{:02d}.txt", first_frame=0)
    ds = AutoLaparo(tmp_path, split=[3])
    assert ds.labels.tolist() == [2, 2, 6]


def test_autolaparo_bad_labels_name_the_file(tmp_path):
    fixture.make_autolaparo(tmp_path, {1: [(0, 3)]})
    label = tmp_path / "labels" / "label_01.txt"
    label.write_text("Frame\tPhase\n1\t1\n2\t8\n3\t1\n")
    with pytest.raises(AnnotationError, match=r"label_01\.txt:3: phase must be 1-7, got 8"):
        AutoLaparo(tmp_path, split=[1])
    label.write_text("Frame\tPhase\n1\t1\n3\t1\n")
    with pytest.raises(AnnotationError, match=r"label_01\.txt:3: frame numbers must be consecutive"):
        AutoLaparo(tmp_path, split=[1])
    label.write_text("Frame\tPhase\n" + "".join(f"{i}\t1\n" for i in range(1, 8)))
    with pytest.raises(AnnotationError, match=r"label_01\.txt annotates 7\.00 s .* lasts 3\.00 s"):
        AutoLaparo(tmp_path, split=[1])
