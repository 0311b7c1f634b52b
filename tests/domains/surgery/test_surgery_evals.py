"""Surgery eval suites: exact scores with a colour-reading stub model, ranges with tiny random models."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import to_tensor

from domainclip.core.errors import DatasetNotFoundError, InputError
from domainclip.core.eval.features import encode_inputs
from domainclip.core.eval.zero_shot import build_prompt_classifier
from domainclip.core.models import create_model, create_model_and_transforms, get_tokenizer
from domainclip.domains.surgery import evals, labels

_spec = importlib.util.spec_from_file_location("surgery_eval_fixture_evals", Path(__file__).with_name("data.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)

NUM_PHASES = 7
DIM = NUM_PHASES + len(labels.CHOLEC80_TOOLS)


def _prompt_directions() -> dict[str, int]:
    """Every prompt of the three label spaces -> the embedding axis the stub gives it."""
    groups = [
        (labels.cholec80_phase_prompts(), 0),
        (labels.autolaparo_phase_prompts(), 0),
        (labels.cholec80_tool_prompts(), NUM_PHASES),
    ]
    out: dict[str, int] = {}
    for prompts, offset in groups:
        for axis, texts in enumerate(prompts.values()):
            for text in texts:
                assert out.setdefault(text, offset + axis) == offset + axis, f"prompt {text!r} is ambiguous"
    return out


class ColourStub(torch.nn.Module):
    """Reads a frame's solid colour: phase one-hot (from :data:`PALETTE`) plus the phase's tools.

    A prompt of phase ``c`` embeds on axis ``c``, a prompt of tool ``k`` on axis ``7 + k``, so every
    frame is most similar to its own phase and scores every tool it shows above every tool it lacks.
    """

    num_frames = 4

    def __init__(self, wrong: bool = False):
        super().__init__()
        self.palette = torch.tensor(fixture.PALETTE, dtype=torch.float32) / 255
        self.tools = torch.tensor(fixture.PHASE_TOOLS, dtype=torch.float32)
        self.wrong = wrong

    def encode_image(self, image, normalize=False):
        colour = image.float().mean(dim=(2, 3))
        phase = torch.cdist(colour, self.palette).argmin(1)
        if self.wrong:
            phase = (phase + 1) % NUM_PHASES
        features = torch.cat([F.one_hot(phase, NUM_PHASES).float(), self.tools[phase]], dim=1)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_video(self, video, normalize=False):
        return self.encode_image(video.mean(1), normalize)

    def encode_text(self, tokens, normalize=False):
        return F.one_hot(tokens[:, 0], DIM).float()


def stub_tokenizer(texts):
    directions = _prompt_directions()
    return torch.tensor([[directions[t]] for t in texts])


@pytest.fixture(scope="module")
def cholec80(tmp_path_factory):
    root = tmp_path_factory.mktemp("cholec80")
    fixture.make_cholec80(root)
    return root


@pytest.fixture(scope="module")
def autolaparo(tmp_path_factory):
    root = tmp_path_factory.mktemp("autolaparo")
    fixture.make_autolaparo(root)
    return root


@pytest.fixture(scope="module")
def clip_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    phase_prompts = list(labels.cholec80_phase_prompts("descriptive").values())
    captions = [phase_prompts[i][0] for i in range(NUM_PHASES)]
    colours = fixture.write_clip_shards(root, captions, per_shard=3)
    assert colours == list(range(NUM_PHASES))
    return root


@pytest.fixture(scope="module", params=["dc-test-vit", "dc-test-video"])
def tiny(request):
    torch.manual_seed(0)
    model, _, preprocess = create_model_and_transforms(request.param)
    return model.eval(), preprocess, get_tokenizer(model)


SPLIT = [49, 50, 51]


# ----------------------------------------------------------------------------- metrics
def test_phase_recognition_metrics_by_hand():
    # video a: 4 frames, 3 right; video b: 2 frames, both right
    pred = [0, 0, 1, 2, 1, 1]
    true = [0, 0, 1, 1, 1, 1]
    out = evals.phase_recognition_metrics(pred, true, ["a", "a", "a", "a", "b", "b"], ["p0", "p1", "p2"])
    f1_a = (1.0 + 2 / 3 + 0.0) / 3  # classes 0, 1, 2 present in a's truth or predictions
    assert out["per_video"]["a"] == {"accuracy": 0.75, "f1": pytest.approx(f1_a), "num_frames": 4}
    assert out["per_video"]["b"]["f1"] == 1.0
    assert out["accuracy_mean"] == pytest.approx(0.875) and out["accuracy_std"] == pytest.approx(0.125)
    assert out["f1_mean"] == pytest.approx((f1_a + 1) / 2)
    assert out["f1_std"] == pytest.approx((1 - f1_a) / 2)
    p1 = out["per_phase"]["p1"]  # in a: precision 1, recall 1/2; in b: 1 and 1
    assert p1["precision"] == 1.0 and p1["recall"] == pytest.approx(0.75)
    assert p1["jaccard"] == pytest.approx(0.75) and p1["support"] == 4 and p1["num_videos"] == 2
    assert out["per_phase"]["p0"]["num_videos"] == 1 and out["per_phase"]["p0"]["f1"] == 1.0
    assert np.isnan(out["per_phase"]["p2"]["f1"]) and out["per_phase"]["p2"]["num_videos"] == 0
    with pytest.raises(ValueError, match="equal-length"):
        evals.phase_recognition_metrics([0], [0, 1], ["a", "a"], ["p0", "p1"])


def test_prompt_classifier_averages_each_class():
    weights = build_prompt_classifier(
        ColourStub(), stub_tokenizer, {"a": ["a laparoscopic video frame during preparation."],
                                       "b": list(labels.cholec80_tool_prompts()["Hook"])}
    )
    assert weights.shape == (DIM, 2)
    assert weights[0, 0] == pytest.approx(1.0) and weights[NUM_PHASES + 2, 1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-empty list of prompts"):
        build_prompt_classifier(ColourStub(), stub_tokenizer, {"a": "a prompt"})


# ----------------------------------------------------------------------------- exact scores
def test_cholec80_phase_suite_is_perfect_for_a_colour_reader(cholec80, tmp_path):
    results = evals.cholec80_phase_suite(
        ColourStub(), stub_tokenizer, to_tensor, data=cholec80, out_dir=tmp_path, batch_size=4, split=SPLIT
    )
    metrics = results["cholec80_phase/zeroshot_classification"]
    assert metrics["accuracy_mean"] == 1.0 and metrics["f1_mean"] == 1.0
    assert metrics["accuracy_std"] == 0.0 and metrics["f1_std"] == 0.0
    assert metrics["acc1"] == 1.0 and metrics["num_videos"] == 3 and metrics["num_samples"] == 13
    details = json.loads((tmp_path / "cholec80_phase_details.json").read_text())
    assert set(details["per_video"]) == {"video49", "video50", "video51"}
    assert details["per_phase"]["ClippingCutting"]["f1"] == 1.0
    assert details["per_phase"]["Preparation"]["support"] == 2
    assert np.trace(np.array(details["confusion_matrix"])) == 13
    assert "| CalotTriangleDissection |" in (tmp_path / "cholec80_phase_per_phase.md").read_text()
    assert (tmp_path / "cholec80_phase_confusion_matrix.png").stat().st_size > 1000


def test_cholec80_phase_suite_scores_a_wrong_model_low(cholec80, tmp_path):
    results = evals.cholec80_phase_suite(
        ColourStub(wrong=True), stub_tokenizer, to_tensor, data=cholec80, out_dir=tmp_path, split=SPLIT
    )
    metrics = results["cholec80_phase/zeroshot_classification"]
    assert metrics["accuracy_mean"] == 0.0 and metrics["f1_mean"] == 0.0 and metrics["acc1"] == 0.0


def test_cholec80_phase_suite_default_split_is_camma_test(cholec80, tmp_path, monkeypatch):
    assert evals.CHOLEC80_EVAL_SPLIT == "camma_test" and evals.EVAL_FPS == 1.0
    with pytest.raises(FileNotFoundError, match=r"video52\.mp4"):
        evals.cholec80_phase_suite(ColourStub(), stub_tokenizer, to_tensor, data=cholec80, out_dir=tmp_path)
    monkeypatch.setattr(evals, "CHOLEC80_EVAL_SPLIT", [50])
    results = evals.cholec80_phase_suite(ColourStub(), stub_tokenizer, to_tensor, data=cholec80, out_dir=tmp_path)
    assert results["cholec80_phase/zeroshot_classification"]["num_samples"] == 5


def test_cholec80_tool_suite_is_perfect_for_a_colour_reader(cholec80, tmp_path):
    results = evals.cholec80_tool_suite(
        ColourStub(), stub_tokenizer, to_tensor, data=cholec80, out_dir=tmp_path, batch_size=5, split=SPLIT
    )
    summary = results["cholec80_tool/zeroshot_multilabel"]
    assert summary["mAP"] == 1.0 and summary["num_classes_scored"] == 7 and summary["num_samples"] == 13
    assert results["cholec80_tool/per_tool_ap"] == {tool: 1.0 for tool in labels.CHOLEC80_TOOLS}
    details = json.loads((tmp_path / "cholec80_tool_details.json").read_text())
    assert details["positives"]["Grasper"] == 11 and details["positives"]["Scissors"] == 1


def test_autolaparo_phase_suite_is_perfect_for_a_colour_reader(autolaparo, tmp_path, monkeypatch):
    monkeypatch.setattr(evals, "AUTOLAPARO_EVAL_SPLIT", [15, 16])
    results = evals.autolaparo_phase_suite(
        ColourStub(), stub_tokenizer, to_tensor, data=autolaparo, out_dir=tmp_path, batch_size=4
    )
    metrics = results["autolaparo_phase/zeroshot_classification"]
    assert metrics["accuracy_mean"] == 1.0 and metrics["f1_mean"] == 1.0 and metrics["num_samples"] == 9
    assert (tmp_path / "autolaparo_phase_confusion_matrix.png").is_file()
    wrong = evals.autolaparo_phase_suite(
        ColourStub(wrong=True), stub_tokenizer, to_tensor, data=autolaparo, out_dir=tmp_path
    )
    assert wrong["autolaparo_phase/zeroshot_classification"]["acc1"] == 0.0


def test_retrieval_suite_is_perfect_for_a_colour_reader(clip_shards, tmp_path):
    results = evals.retrieval_suite(
        ColourStub(), stub_tokenizer, to_tensor, data=clip_shards, out_dir=tmp_path, batch_size=3
    )
    metrics = results["surgery_clips/retrieval"]
    assert metrics["num_images"] == metrics["num_texts"] == NUM_PHASES
    assert metrics["image_retrieval_recall@1"] == 1.0 and metrics["text_retrieval_recall@1"] == 1.0


def test_retrieval_suite_rejects_damaged_shards(tmp_path):
    from domainclip.core.data.writer import ShardWriter

    with ShardWriter(tmp_path / "bad") as writer:
        writer.write({"__key__": "a", "mp4": fixture.clip_bytes(fixture.PALETTE[0]), "text": "a clip"})
        writer.write({"__key__": "b", "mp4": b"not a video at all", "text": "a broken clip"})
    with pytest.raises(InputError, match="(?s)surgery/retrieval: unusable samples .* bad_video: 1"):
        evals.retrieval_suite(ColourStub(), stub_tokenizer, to_tensor, data=tmp_path / "bad", out_dir=tmp_path)


def test_suites_need_data(tmp_path):
    for suite in (evals.cholec80_phase_suite, evals.cholec80_tool_suite, evals.autolaparo_phase_suite,
                  evals.retrieval_suite):
        with pytest.raises(FileNotFoundError, match="needs --data"):
            suite(ColourStub(), stub_tokenizer, to_tensor, data=None, out_dir=tmp_path)


def test_missing_dataset_folders_are_dataset_not_found_errors(tmp_path):
    missing = tmp_path / "missing"
    expected = {
        evals.cholec80_phase_suite: f"Cholec80 not found: {missing} is not a folder; expected videos/videoNN.mp4",
        evals.cholec80_tool_suite: f"Cholec80 not found: {missing} is not a folder; expected videos/videoNN.mp4",
        evals.autolaparo_phase_suite: f"AutoLaparo not found: {missing} is not a folder; expected videos/NN.mp4",
        evals.retrieval_suite: f"surgery/retrieval: dataset not found at {missing}: shard {missing} does not exist",
    }
    for suite, message in expected.items():
        with pytest.raises(DatasetNotFoundError) as caught:
            suite(ColourStub(), stub_tokenizer, to_tensor, data=missing, out_dir=tmp_path)
        assert str(caught.value).startswith(message), str(caught.value)
    missing.mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"dataset not found at .* holds no .*\.tar.* expected held-out"):
        evals.retrieval_suite(ColourStub(), stub_tokenizer, to_tensor, data=missing, out_dir=tmp_path)


# ----------------------------------------------------------------------------- random tiny models
def test_phase_and_tool_suites_with_tiny_models(tiny, cholec80, autolaparo, tmp_path, monkeypatch):
    model, preprocess, tokenizer = tiny
    monkeypatch.setattr(evals, "CHOLEC80_EVAL_SPLIT", SPLIT)
    monkeypatch.setattr(evals, "AUTOLAPARO_EVAL_SPLIT", [15, 16])
    kw = {"out_dir": tmp_path, "device": "cpu", "batch_size": 8}
    phase = evals.cholec80_phase_suite(model, tokenizer, preprocess, data=cholec80, **kw)
    metrics = phase["cholec80_phase/zeroshot_classification"]
    for name in ("accuracy_mean", "f1_mean", "acc1", "balanced_accuracy", "weighted_f1"):
        assert 0.0 <= metrics[name] <= 1.0
    assert 0.0 <= metrics["accuracy_std"] <= 0.5 and metrics["acc1"] <= metrics["acc5"]
    tool = evals.cholec80_tool_suite(model, tokenizer, preprocess, data=cholec80, **kw)
    assert 0.0 < tool["cholec80_tool/zeroshot_multilabel"]["mAP"] <= 1.0
    auto = evals.autolaparo_phase_suite(model, tokenizer, preprocess, data=autolaparo, **kw)
    assert auto["autolaparo_phase/zeroshot_classification"]["num_videos"] == 2


def test_retrieval_suite_with_tiny_models(tiny, clip_shards, tmp_path):
    model, preprocess, tokenizer = tiny
    metrics = evals.retrieval_suite(
        model, tokenizer, preprocess, data=clip_shards, out_dir=tmp_path, batch_size=4
    )["surgery_clips/retrieval"]
    assert metrics["num_images"] == NUM_PHASES
    for direction in ("image", "text"):
        recalls = [metrics[f"{direction}_retrieval_recall@{k}"] for k in (1, 5, 10)]
        assert 0.0 <= recalls[0] <= recalls[1] <= recalls[2] == 1.0  # 7 clips: R@10 covers all


def test_retrieval_suite_embeds_an_image_clip_as_its_mean_video_tower(clip_shards, tmp_path, monkeypatch):
    """Evaluation embeds a clip the way training does: the same weights give the same clip embedding."""
    torch.manual_seed(0)
    image_model, _, preprocess = create_model_and_transforms("dc-test-vit")
    video_model = create_model("dc-test-vit", domainclip_cfg={"tower": "video", "pooling": "mean"})
    video_model.clip.load_state_dict(image_model.state_dict())
    clips = torch.randn(3, 4, 3, 32, 32)  # frames that differ, so their embeddings' norms differ too
    embedded, real = [], evals.evaluate_retrieval

    def spy(encoder, tokenizer, loader, device, **kwargs):
        embedded.append(encode_inputs(encoder, clips, "video"))
        return real(encoder, tokenizer, loader, device, **kwargs)

    monkeypatch.setattr(evals, "evaluate_retrieval", spy)
    tokenizer = get_tokenizer(image_model)
    kw = {"data": clip_shards, "out_dir": tmp_path, "batch_size": 4, "num_frames": 4}
    from_image = evals.retrieval_suite(image_model.eval(), tokenizer, preprocess, **kw)
    from_video = evals.retrieval_suite(video_model.eval(), tokenizer, preprocess, **kw)
    frames = F.normalize(image_model.encode_image(clips.flatten(0, 1)), dim=-1).reshape(3, 4, -1)
    assert torch.allclose(embedded[0], F.normalize(frames.mean(1), dim=-1), atol=1e-5)  # SurgCLIP's clip embedding
    assert torch.allclose(embedded[0], embedded[1], atol=1e-6)
    assert from_image == from_video
