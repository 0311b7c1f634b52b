from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from domainclip.core.eval import (
    format_markdown_table,
    plot_confusion_matrix,
    plot_loss_curve,
    plot_retrieval_examples,
    write_results,
)
from domainclip.core.eval.report import scalar_metrics, to_jsonable

RESULTS = {
    "shapes/zeroshot_classification": {"acc1": 0.123456, "acc5": 0.98765, "num_samples": 256,
                                       "confusion_matrix": [[1, 0], [0, 1]]},
    "shapes/zeroshot_retrieval": {"image_retrieval_recall@1": 1 / 3, "acc1": float("nan")},
}


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 50 and im.size[1] > 50
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_markdown_table_rows_columns_and_four_significant_digits():
    table = format_markdown_table(RESULTS)
    lines = table.strip().splitlines()
    assert lines[0] == "| task | acc1 | acc5 | num_samples | image_retrieval_recall@1 |"
    assert lines[1] == "|---|---:|---:|---:|---:|"
    assert lines[2] == "| shapes/zeroshot_classification | 0.1235 | 0.9877 | 256 | - |"
    assert lines[3] == "| shapes/zeroshot_retrieval | nan | - | - | 0.3333 |"
    assert "confusion_matrix" not in table


def test_markdown_escapes_pipes_and_handles_tensor_and_numpy_scalars():
    table = format_markdown_table({"a|b": {"m": torch.tensor(0.5), "n": np.float32(2.0), "flag": True}})
    assert "| a\\|b | 0.5 | 2 |" in table and "flag" not in table
    assert scalar_metrics({"t": torch.tensor([1.0, 2.0]), "x": np.int64(3)}) == {"x": 3}


def test_write_results_json_and_markdown(tmp_path):
    out = write_results(RESULTS, tmp_path / "run" / "results.json", extra={"suite": "core/synthetic", "steps": 3})
    payload = json.loads(out.read_text())
    assert payload["suite"] == "core/synthetic" and payload["steps"] == 3
    assert payload["results"]["shapes/zeroshot_classification"]["acc1"] == pytest.approx(0.123456)
    assert payload["results"]["shapes/zeroshot_classification"]["confusion_matrix"] == [[1, 0], [0, 1]]
    assert payload["results"]["shapes/zeroshot_retrieval"]["acc1"] is None  # NaN -> null: strict JSON
    md = (tmp_path / "run" / "results.md").read_text()
    assert "- **suite**: core/synthetic" in md
    assert "| shapes/zeroshot_classification | 0.1235 | 0.9877 | 256 | - |" in md
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["results.json", "results.md"]


def test_write_results_overwrites_atomically_and_rejects_reserved_key(tmp_path):
    path = tmp_path / "r.json"
    write_results({"a": {"acc1": 0.1}}, path)
    write_results({"a": {"acc1": 0.2}}, path)
    assert json.loads(path.read_text())["results"]["a"]["acc1"] == 0.2
    with pytest.raises(ValueError, match="reserved"):
        write_results({}, path, extra={"results": 1})
    with pytest.raises(TypeError, match="object"):
        to_jsonable({"x": object()})


def test_confusion_matrix_plot(tmp_path):
    cm = torch.tensor([[5, 1, 0], [0, 3, 3], [0, 0, 0]])
    assert_png(plot_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "cm.png"))
    assert_png(plot_confusion_matrix(cm.tolist(), ["a", "b", "c"], tmp_path / "cm_counts.png", normalize=False))
    with pytest.raises(ValueError, match="2 class names"):
        plot_confusion_matrix(cm, ["a", "b"], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix([[1, 2]], ["a"], tmp_path / "bad.png")


def test_retrieval_examples_plot_from_pil_tensors_and_mapping(tmp_path):
    pil = [Image.new("RGB", (16, 16), (i * 40, 0, 0)) for i in range(4)]
    tensors = [torch.randn(3, 16, 16) for _ in range(4)]  # normalised inputs: rescaled for display
    path = plot_retrieval_examples(pil, ["a red thing", "dark"], [[0, 1, 2], [3, 2]], [0, {2, 3}],
                                   tmp_path / "ex.png", title="examples")
    assert_png(path)
    assert_png(plot_retrieval_examples(tensors, ["q"], [[1, 0]], [1], tmp_path / "ex_t.png"))
    assert_png(plot_retrieval_examples({7: pil[0], 9: pil[1]}, ["q"], [[9, 7]], [[7]], tmp_path / "ex_m.png"))
    with pytest.raises(IndexError, match="not in the gallery"):
        plot_retrieval_examples({7: pil[0]}, ["q"], [[8]], [7], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="differ in length"):
        plot_retrieval_examples(pil, ["q", "r"], [[0]], [0], tmp_path / "bad.png")


def test_retrieval_examples_frames_are_green_and_red(tmp_path):
    pil = [Image.new("RGB", (32, 32), (128, 128, 128))] * 2
    path = plot_retrieval_examples(pil, ["q"], [[0, 1]], [0], tmp_path / "ex.png")
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
    green = ((pixels[:, 1] > 120) & (pixels[:, 0] < 60) & (pixels[:, 2] < 110)).sum()
    red = ((pixels[:, 0] > 180) & (pixels[:, 1] < 80) & (pixels[:, 2] < 80)).sum()
    assert green > 50 and red > 50


def test_loss_curve_plots_every_loss_key(tmp_path):
    log = tmp_path / "train.jsonl"
    records = [{"step": i, "loss": 3.0 / (i + 1), "loss/clip": 2.0 / (i + 1), "lr": 0.1} for i in range(20)]
    log.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    assert_png(plot_loss_curve(log, tmp_path / "loss.png"))


def test_loss_curve_errors_name_file_and_line(tmp_path):
    log = tmp_path / "train.jsonl"
    log.write_text('{"step": 0, "loss": 1.0}\n{not json\n')
    with pytest.raises(ValueError, match=r"train.jsonl:2: not valid JSON"):
        plot_loss_curve(log, tmp_path / "loss.png")
    log.write_text('{"step": 0, "lr": 1.0}\n')
    with pytest.raises(ValueError, match="starts with 'loss'"):
        plot_loss_curve(log, tmp_path / "loss.png")
    log.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="JSON object"):
        plot_loss_curve(log, tmp_path / "loss.png")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        plot_loss_curve(tmp_path / "missing.jsonl", tmp_path / "loss.png")
    assert not (tmp_path / "loss.png").exists()
