"""The run folder: what a training run writes where, and reading a run back (:func:`load_run`, :func:`export_run`).

A run folder (``domainclip train RECIPE --out RUN_DIR``)::

    recipe.resolved.yaml            the resolved recipe the run trains with
    model_info.json                 the model's ``domainclip_info``: rebuilds the architecture offline
    log.jsonl, tensorboard/         the training log (:mod:`domainclip.core.engine.run_log`)
    checkpoints/step_<8 digits>/    model.safetensors + the training state (:mod:`domainclip.core.engine.checkpoint`)
    eval/step_<8 digits>/<suite>/   evaluations during training
    eval/results.json               the final evaluation: ``{..., "results": {task: {metric: value}}}``

A checkpoint folder stands for its run wherever a run folder is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.hub import ModelFileError, check_eval_results, read_safetensors, save_model_folder
from domainclip.core.models.registry import build_model_from_info_file

__all__ = [
    "CHECKPOINTS_DIR", "EVAL_DIR", "MODEL_INFO_NAME", "RECIPE_NAME", "RESULTS_NAME", "WEIGHTS_NAME",
    "export_run", "is_run_dir", "latest_checkpoint", "list_checkpoints", "load_run", "resolve_run", "step_dir_name",
]

RECIPE_NAME = "recipe.resolved.yaml"
MODEL_INFO_NAME = "model_info.json"
CHECKPOINTS_DIR = "checkpoints"
EVAL_DIR = "eval"
#: An evaluation's results file (the final one in ``eval/``, the others in ``eval/step_*/``).
RESULTS_NAME = "results.json"
#: The model weights in a checkpoint folder.
WEIGHTS_NAME = "model.safetensors"
_STEP_DIR = re.compile(r"^step_(\d{8})$")


def step_dir_name(step: int) -> str:
    """``step_<step, 8 digits>``: the folder name of a checkpoint or an evaluation during training.

    Args:
        step: optimizer steps done.
    """
    return f"step_{step:08d}"


def list_checkpoints(ckpt_root: str | Path) -> list[Path]:
    """Complete checkpoint folders under ``ckpt_root`` (a run's ``checkpoints/``), oldest first.

    Args:
        ckpt_root: the folder holding the ``step_<8 digits>`` folders.
    """
    if not Path(ckpt_root).is_dir():
        return []
    found = [p for p in Path(ckpt_root).iterdir() if p.is_dir() and _STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The newest ``checkpoints/step_<step>`` folder of a run that holds ``model.safetensors``.

    Args:
        run_dir: the run folder.

    Raises:
        InputNotFoundError: the run has no such checkpoint.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    found = [ckpt for ckpt in list_checkpoints(root) if (ckpt / WEIGHTS_NAME).is_file()]
    if not found:
        raise InputNotFoundError(
            f"no checkpoint in {root}: expected step_<8-digit step>/{WEIGHTS_NAME} (has the run saved one yet?)"
        )
    return found[-1]


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a run folder or one of its checkpoint folders.

    Args:
        path: a folder.
    """
    path = Path(path)
    return (path / MODEL_INFO_NAME).is_file() or (
        (path / WEIGHTS_NAME).is_file() and (path.parent.parent / MODEL_INFO_NAME).is_file()
    )


def resolve_run(run_dir: str | Path, checkpoint: str | Path | None = None) -> tuple[Path, Path]:
    """Return ``(run folder, checkpoint weights file)``; a checkpoint folder may stand for its run.

    Args:
        run_dir: the run folder, or one of its ``checkpoints/step_*`` folders.
        checkpoint: a checkpoint folder (or its ``model.safetensors``) instead of the newest.

    Raises:
        InputNotFoundError: not a run folder, or no checkpoint.
    """
    run_dir = Path(run_dir).expanduser()
    if checkpoint is None and (run_dir / WEIGHTS_NAME).is_file() and not (run_dir / MODEL_INFO_NAME).is_file():
        checkpoint, run_dir = run_dir, run_dir.parent.parent  # given RUN_DIR/checkpoints/step_X
    if not (run_dir / MODEL_INFO_NAME).is_file():
        raise InputNotFoundError(f"not a domainclip run dir: {run_dir / MODEL_INFO_NAME} missing")
    if checkpoint is None:
        return run_dir, latest_checkpoint(run_dir) / WEIGHTS_NAME
    checkpoint = Path(checkpoint)
    weights = checkpoint if checkpoint.is_file() else checkpoint / WEIGHTS_NAME
    if not weights.is_file():
        raise InputNotFoundError(f"no checkpoint weights at {weights}")
    return run_dir, weights


def load_run(
    run_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> nn.Module:
    """Rebuild a training run's model and load a checkpoint (the newest by default), in eval mode.

    The architecture comes from ``model_info.json`` (no pretrained weights are fetched).

    Args:
        run_dir: the run folder, or one of its ``checkpoints/step_*`` folders.
        checkpoint: a checkpoint folder (or its ``model.safetensors``) instead of the newest.
        device: where to put the model.
        precision: see :data:`domainclip.core.models.registry.PRECISIONS`.

    Raises:
        InputNotFoundError: not a run folder, or no checkpoint.
        ModelFileError: ``model_info.json`` or the weights are damaged or do not fit each other.
    """
    run_dir, weights = resolve_run(run_dir, checkpoint)
    info_path = run_dir / MODEL_INFO_NAME
    model = build_model_from_info_file(info_path, device=device, precision=precision)
    try:
        model.load_state_dict(read_safetensors(weights), strict=True)
    except RuntimeError as e:
        raise ModelFileError(f"{weights} does not match the architecture in {info_path}: {e}") from e
    return model.eval()


def _read_run_file(path: Path) -> Any:
    """A run's JSON or YAML file, parsed; None when the run has none."""
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid {path.suffix[1:].upper()}: {' '.join(str(e).split())}") from e


def _read_eval_results(path: Path) -> dict[str, dict[str, Any]] | None:
    data = _read_run_file(path)
    if isinstance(data, dict) and isinstance(data.get("results"), dict):
        data = data["results"]  # the eval report layout: {run info..., "results": {task: metrics}}
    try:
        return None if data is None else check_eval_results(data)
    except TypeError as e:
        raise InputError(f"{path}: {e}") from e


def _read_recipe(path: Path) -> dict[str, Any] | None:
    recipe = _read_run_file(path)
    if recipe is not None and not isinstance(recipe, dict):
        raise InputError(f"{path} must hold a mapping")
    return recipe


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    model_card: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Export a training run to a hub folder (``domainclip export RUN_DIR --out FOLDER``).

    Rebuilds the architecture from ``model_info.json`` (no pretrained weights fetched), loads the
    newest checkpoint's ``model.safetensors`` (or ``checkpoint``), and writes the folder with the
    resolved recipe and the task metrics of ``eval/results.json`` (either ``{task: {metric: value}}``
    or the eval report's ``{..., "results": {task: {metric: value}}}``).

    Args:
        run_dir: the run folder, or one of its ``checkpoints/step_*`` folders.
        out_dir: destination hub folder.
        checkpoint: a checkpoint folder (or its ``model.safetensors``) to export instead of the newest.
        model_card: model card fields (see :func:`domainclip.core.hub.render_model_card`).
        overwrite: replace an existing non-empty ``out_dir`` that is a model folder.

    Raises:
        InputNotFoundError: not a run folder, or no checkpoint.
        ModelFileError: the run's ``model_info.json`` or weights are damaged.
        InputError: its recipe or eval results are damaged.
        OutputExistsError: ``out_dir`` is not empty and may not be replaced.

    """
    model = load_run(run_dir, checkpoint=checkpoint)
    run_dir = resolve_run(run_dir, checkpoint)[0]
    return save_model_folder(
        model,
        out_dir,
        recipe=_read_recipe(run_dir / RECIPE_NAME),
        eval_results=_read_eval_results(run_dir / EVAL_DIR / RESULTS_NAME),
        model_card=model_card,
        overwrite=overwrite,
    )
