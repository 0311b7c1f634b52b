"""Surgery phase timelines: exact timelines of colour-coded videos read by a colour-lookup model, the Cholec80
alignment, smoothing, the picture, user errors, and the real cockatoo.mp4 through the public API."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import to_tensor

from domainclip.core.errors import InputError, InputNotFoundError, OutputExistsError
from domainclip.core.explore import class_colours
from domainclip.domains.surgery import explore, labels
from domainclip.domains.surgery.datasets import AnnotationError
from domainclip.domains.surgery.video import VideoDecodeError, open_video, sample_indices

_spec = importlib.util.spec_from_file_location("surgery_explore_fixture", Path(__file__).with_name("data.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)

PHASES = labels.CHOLEC80_PHASES
C = len(PHASES)


def _axes_of_texts() -> dict[str, int]:
    """Each phase's name and its Cholec80 prompts -> the embedding axis of that phase."""
    out = {name: i for i, name in enumerate(PHASES)}
    for i, texts in enumerate(labels.cholec80_phase_prompts().values()):
        out.update({t: i for t in texts})
    return out


def tokenizer(texts):
    axes = _axes_of_texts()
    return torch.tensor([[axes[t]] for t in texts])


class ColourLookup(torch.nn.Module):
    """An image model that knows the fixture's colours: a frame embeds on the axis of its phase colour."""

    def __init__(self, shift: int = 0):
        super().__init__()
        self.palette = torch.tensor(fixture.PALETTE, dtype=torch.float32) / 255
        self.shift = shift

    def encode_image(self, image, normalize=False):
        phase = torch.cdist(image.float().mean(dim=(2, 3)), self.palette).argmin(1)
        return F.one_hot((phase + self.shift) % C, C).float()

    def encode_text(self, tokens, normalize=False):
        return F.one_hot(tokens[:, 0], C).float()


class VideoLookup(ColourLookup):
    """A video tower: a clip embeds as the mean colour-phase one-hot of its ``num_frames`` frames."""

    num_frames = 4

    def encode_video(self, video, normalize=False):
        b, t = video.shape[:2]
        frames = self.encode_image(video.flatten(0, 1)).reshape(b, t, -1).mean(1)
        return F.normalize(frames, dim=-1)


def lookup(model=None):
    return (model or ColourLookup(), to_tensor, tokenizer)


@pytest.fixture(scope="module")
def procedure(tmp_path_factory):
    """Cholec80 video01: 2 s Preparation, 3 s GallbladderDissection, 2 s CleaningCoagulation (25 fps)."""
    root = tmp_path_factory.mktemp("cholec80")
    fixture.make_cholec80(root, {1: [(0, 2), (3, 3), (5, 2)]})
    return root / "videos" / "video01.mp4", root / "phase_annotations" / "video01-phase.txt"


EXPECTED = [0, 0, 3, 3, 3, 5, 5]


# ----------------------------------------------------------------------------- timelines with known answers
def test_image_model_timeline_is_the_colour_of_the_frame_at_each_second(procedure):
    video, _ = procedure
    result = explore.phase_timeline(video, lookup(), PHASES, progress=False)
    assert result.phases == PHASES
    np.testing.assert_array_equal(result.times, np.arange(7.0))
    np.testing.assert_array_equal(result.predicted, EXPECTED)
    np.testing.assert_array_equal(result.frames[:, 0], np.arange(7) * 25)  # the 1 fps frames 0, 25, 50, ...
    assert result.frames.shape == (7, 1) and result.clip_s is None
    # softmax of 100 x cosine: the own phase gets 1 / (1 + 6 e^-100)
    np.testing.assert_allclose(result.probabilities[np.arange(7), EXPECTED], 1.0, atol=1e-6)
    np.testing.assert_allclose(result.probabilities.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(result.probabilities, result.raw_probabilities)
    assert result.predicted_phases[2] == "GallbladderDissection"
    assert result.segments() == [("Preparation", 0.0, 2.0), ("GallbladderDissection", 2.0, 5.0),
                                 ("CleaningCoagulation", 5.0, 7.0)]
    assert result.duration_s == pytest.approx(7.0) and result.fps == 25.0


def test_a_wrong_model_is_reported_wrong(procedure):
    video, annotation = procedure
    result = explore.phase_timeline(video, lookup(ColourLookup(shift=1)), PHASES, progress=False)
    np.testing.assert_array_equal(result.predicted, [p + 1 for p in EXPECTED])
    assert explore.score_timeline(result, annotation)["accuracy"] == 0.0


def test_prompt_ensembles_and_templates(procedure):
    video, _ = procedure
    ensemble = explore.phase_timeline(video, lookup(), PHASES, prompts=labels.cholec80_phase_prompts(),
                                      progress=False)
    np.testing.assert_array_equal(ensemble.predicted, EXPECTED)
    # a subset of phases in another order: columns follow the order given
    subset = ["CleaningCoagulation", "Preparation", "GallbladderDissection"]
    result = explore.phase_timeline(video, lookup(), subset, prompts=["{}"], progress=False)
    assert result.phases == tuple(subset)
    np.testing.assert_array_equal(result.predicted, [1, 1, 2, 2, 2, 0, 0])


def test_video_tower_embeds_num_frames_around_each_time_point(procedure):
    video, _ = procedure
    result = explore.phase_timeline(video, lookup(VideoLookup()), PHASES, progress=False)
    assert result.frames.shape == (7, 4) and result.clip_s == 1.0
    # each second's own 25 frames, at the centres of 4 segments: 3, 9, 15, 21 after the second's first frame
    np.testing.assert_array_equal(result.frames, np.arange(7)[:, None] * 25 + [3, 9, 15, 21])
    np.testing.assert_array_equal(result.predicted, EXPECTED)
    # a 3 s clip around second 0 is shifted into the video: [0, 3) s; around second 2: [1, 4) s
    wide = explore.phase_timeline(video, lookup(VideoLookup()), PHASES, clip_s=3.0, progress=False)
    np.testing.assert_array_equal(wide.frames[0], [9, 28, 46, 65])
    np.testing.assert_array_equal(wide.frames[2], sample_indices("uniform", 175, 1.0, 4.0, 25.0, n=4))
    np.testing.assert_array_equal(wide.frames[6], sample_indices("uniform", 175, 4.0, 7.0, 25.0, n=4))
    # second 2 sees frames 34 (Preparation) and 53, 71, 90 (GallbladderDissection): 1/4 vs 3/4 of the clip
    # the clip embeds as (1/4, 3/4) / |(1/4, 3/4)| on those two axes; probabilities are softmax(100 x cosine)
    cosine = np.array([0.25, 0.75]) / np.hypot(0.25, 0.75)
    p = wide.raw_probabilities[2]
    assert p.argmax() == 3 and p[0] == pytest.approx(np.exp(100 * (cosine[0] - cosine[1])), rel=1e-3)
    assert p[1] == pytest.approx(np.exp(-100 * cosine[1]), rel=1e-3)


def test_steps_of_half_a_second_and_the_last_partial_step(procedure):
    video, _ = procedure
    result = explore.phase_timeline(video, lookup(), PHASES, step_s=0.5, progress=False)
    np.testing.assert_array_equal(result.times, np.arange(14) * 0.5)
    np.testing.assert_array_equal(result.predicted, np.repeat(EXPECTED, 2))
    coarse = explore.phase_timeline(video, lookup(), PHASES, step_s=2.0, progress=False)
    np.testing.assert_array_equal(coarse.times, [0, 2, 4, 6])
    np.testing.assert_array_equal(coarse.ends, [2, 4, 6, 7])  # the last step ends with the video
    np.testing.assert_array_equal(coarse.predicted, [0, 3, 3, 5])


def test_smoothing_removes_a_one_second_blip(tmp_path):
    fixture.make_cholec80(tmp_path, {2: [(0, 3), (1, 1), (0, 3)]})
    video = tmp_path / "videos" / "video02.mp4"
    raw = explore.phase_timeline(video, lookup(), PHASES, progress=False)
    np.testing.assert_array_equal(raw.predicted, [0, 0, 0, 1, 0, 0, 0])
    smooth = explore.phase_timeline(video, lookup(), PHASES, smooth_s=3, progress=False)
    np.testing.assert_array_equal(smooth.predicted, [0] * 7)
    np.testing.assert_allclose(smooth.probabilities[3, :2], [2 / 3, 1 / 3], atol=1e-6)
    np.testing.assert_array_equal(smooth.raw_probabilities, raw.raw_probabilities)
    assert smooth.smooth_s == 3.0


def test_smooth_probabilities_by_hand():
    probs = np.array([[1, 0], [0, 1], [1, 0], [1, 0]], dtype=np.float32)
    np.testing.assert_allclose(explore.smooth_probabilities(probs, 3),
                               [[0.5, 0.5], [2 / 3, 1 / 3], [2 / 3, 1 / 3], [1, 0]], atol=1e-6)
    # an even window reaches one point further back than forward: k-1..k
    np.testing.assert_allclose(explore.smooth_probabilities(probs, 2), [[1, 0], [0.5, 0.5], [0.5, 0.5], [1, 0]])
    np.testing.assert_array_equal(explore.smooth_probabilities(probs, 1), probs)
    with pytest.raises(InputError, match="at least one time point"):
        explore.smooth_probabilities(probs, 0)


def test_frames_are_decoded_a_chunk_at_a_time(procedure, monkeypatch):
    video, _ = procedure
    sizes = []
    with open_video(video) as source:
        original = source.get_frames
        monkeypatch.setattr(source, "get_frames", lambda idx: sizes.append(len(idx)) or original(idx))
        result = explore.phase_timeline(source, lookup(VideoLookup()), PHASES, batch_size=5, progress=False)
        assert source.get_frames([0]).shape[0] == 1  # an open video passed in is left open
    np.testing.assert_array_equal(result.predicted, EXPECTED)
    assert max(sizes) <= explore.DECODE_CHUNK and sum(sizes[:-1]) == 28  # 7 time points x 4 frames, each once


# ----------------------------------------------------------------------------- ground truth
def test_ground_truth_is_aligned_to_the_frame_shown_at_each_time(tmp_path):
    annotation = tmp_path / "video07-phase.txt"
    rows = ["Preparation"] * 30 + ["ClippingCutting"] * 20 + ["GallbladderPackaging"] * 10  # 60 frames, 2.4 s
    annotation.write_text("Frame\tPhase\n" + "".join(f"{i}\t{p}\n" for i, p in enumerate(rows)))
    truth = explore.phase_ground_truth(annotation, [0.0, 1.0, 1.19, 1.2, 2.0, 2.39, 2.4, 10.0])
    assert truth == ["Preparation", "Preparation", "Preparation", "ClippingCutting", "GallbladderPackaging",
                     "GallbladderPackaging", None, None]
    # another annotation rate: one row per second
    assert explore.phase_ground_truth(annotation, [29.0, 30.0], fps=1) == ["Preparation", "ClippingCutting"]


def test_ground_truth_of_a_timeline_and_its_score(procedure):
    video, annotation = procedure
    result = explore.phase_timeline(video, lookup(), PHASES, progress=False)
    truth = explore.phase_ground_truth(annotation, result)
    assert truth == [PHASES[p] for p in EXPECTED]
    score = explore.score_timeline(result, truth)
    assert score["accuracy"] == 1.0 and score["f1"] == 1.0 and score["num_labelled"] == 7
    # two seconds unlabelled, one label the timeline cannot predict
    partial = [None, None, "GallbladderDissection", "Suturing", "GallbladderDissection", "CleaningCoagulation",
               "CleaningCoagulation"]
    score = explore.score_timeline(result, partial)
    assert score["num_labelled"] == 5 and score["accuracy"] == pytest.approx(4 / 5)
    with pytest.raises(InputError, match="7 time points"):
        explore.score_timeline(result, ["Preparation"])


def test_ground_truth_errors(tmp_path):
    with pytest.raises(InputNotFoundError, match="phase annotation not found"):
        explore.phase_ground_truth(tmp_path / "video99-phase.txt", [0.0])
    bad = tmp_path / "video01-phase.txt"
    bad.write_text("Frame\tPhase\n0\tPreparation\n1\tSuturing\n")
    with pytest.raises(AnnotationError, match="unknown phase 'Suturing'"):
        explore.phase_ground_truth(bad, [0.0])
    assert issubclass(AnnotationError, InputError)


# ----------------------------------------------------------------------------- the picture and the table
def test_plot_draws_the_ribbons_in_the_phase_colours(procedure):
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    video, annotation = procedure
    result = explore.phase_timeline(video, lookup(), PHASES, progress=False)
    fig = explore.plot_phase_timeline(result, ground_truth=annotation)
    main = fig.axes[0]
    predicted, probs, truth = main.child_axes
    colours = class_colours(C)
    bars = list(predicted.collections)  # one broken_barh per run of a phase
    assert [tuple(b.get_facecolor()[0][:3]) for b in bars] == [colours[0], colours[3], colours[5]]
    assert [b.get_paths()[0].get_extents().x0 for b in bars] == pytest.approx([0.0, 2.0, 5.0])
    truth_bars = list(truth.collections)
    assert [tuple(b.get_facecolor()[0][:3]) for b in truth_bars] == [colours[0], colours[3], colours[5]]
    assert len([c for c in probs.collections if isinstance(c, PolyCollection)]) == C  # one stacked area per phase
    assert [t.get_text() for t in main.get_legend().get_texts()] == list(PHASES)
    assert "accuracy 1.00" in main.get_title()
    plt.close(fig)
    # drawn into a given axes, with line plots and labels the timeline does not know
    fig, ax = plt.subplots()
    out = explore.plot_phase_timeline(result, ax=ax, probabilities="lines",
                                      ground_truth=[None] * 6 + ["Suturing"])
    assert out is fig and len(ax.child_axes) == 3 and len(ax.child_axes[1].lines) == C
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "Suturing"
    plt.close(fig)
    with pytest.raises(InputError, match="'stacked' or 'lines'"):
        explore.plot_phase_timeline(result, probabilities="bars")


def test_table_and_csv(procedure, tmp_path):
    video, _ = procedure
    result = explore.phase_timeline(video, lookup(), PHASES, step_s=2.0, progress=False)
    rows = result.to_rows()
    assert [(r["time_s"], r["end_s"], r["phase"]) for r in rows] == [
        (0.0, 2.0, "Preparation"), (2.0, 4.0, "GallbladderDissection"), (4.0, 6.0, "GallbladderDissection"),
        (6.0, 7.0, "CleaningCoagulation")]
    assert rows[0]["p_Preparation"] == pytest.approx(1.0)
    path = result.to_csv(tmp_path / "timeline.csv")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("time_s,end_s,phase,p_Preparation") and len(lines) == 5
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        result.to_csv(path)
    result.to_csv(path, overwrite=True)


# ----------------------------------------------------------------------------- user errors
def test_user_errors(procedure, tmp_path):
    video, _ = procedure
    with pytest.raises(InputNotFoundError, match="video file not found"):
        explore.phase_timeline(tmp_path / "missing.mp4", lookup(), PHASES, progress=False)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 200)
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        explore.phase_timeline(broken, lookup(), PHASES, progress=False)
    assert issubclass(VideoDecodeError, InputError)
    with pytest.raises(InputError, match="phases is empty"):
        explore.phase_timeline(video, lookup(), [], progress=False)
    with pytest.raises(InputError, match="single string"):
        explore.phase_timeline(video, lookup(), "Preparation", progress=False)
    with pytest.raises(InputError, match="more than once"):
        explore.phase_timeline(video, lookup(), ["Preparation", "Preparation"], progress=False)
    with pytest.raises(InputError, match="no entry for the phase"):
        explore.phase_timeline(video, lookup(), PHASES, prompts={"Preparation": ["x"]}, progress=False)
    with pytest.raises(InputError, match="templates with"):
        explore.phase_timeline(video, lookup(), PHASES, prompts=["a frame"], progress=False)
    for option in ({"step_s": 0}, {"smooth_s": -1.0}, {"clip_s": float("nan")}):
        with pytest.raises(InputError, match="positive number of seconds"):
            explore.phase_timeline(video, lookup(), PHASES, progress=False, **option)
    with pytest.raises(InputError, match="batch_size"):
        explore.phase_timeline(video, lookup(), PHASES, batch_size=0, progress=False)


# ----------------------------------------------------------------------------- the real video, public API
def test_cockatoo_timeline_through_the_public_api(shared_data):
    import matplotlib.pyplot as plt

    import domainclip

    path = shared_data / "video" / "cockatoo.mp4"
    torch.manual_seed(0)
    model = domainclip.load_model("dc-test-video")  # an architecture name: random weights
    result = explore.phase_timeline(path, model, PHASES, prompts=labels.cholec80_phase_prompts(), smooth_s=3,
                                    progress=False)
    assert len(result) == 14 and result.fps == 20.0 and result.duration_s == pytest.approx(14.0)
    np.testing.assert_allclose(result.probabilities.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(result.predicted, result.probabilities.argmax(1))
    frames = model[0].num_frames
    assert result.frames.shape == (14, frames) and result.frames.min() >= 0 and result.frames.max() < 280
    # second k's clip holds frames of that second only (20 frames each)
    np.testing.assert_array_equal(result.frames // 20, np.repeat(np.arange(14)[:, None], frames, 1))
    fig = explore.plot_phase_timeline(result)
    assert "cockatoo.mp4" in fig.axes[0].get_title()
    plt.close(fig)
