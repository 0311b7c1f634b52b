"""Hub I/O: open_clip hub folders, ``hf-hub:org/name@rev`` ids, local folders, run export.

A hub folder (what :func:`save_model_folder` writes and open_clip's ``hf-hub:``/``local-dir:``
loading reads)::

    open_clip_config.json          {"model_cfg", "preprocess_cfg", "domainclip_cfg"}
    open_clip_model.safetensors    the CLIP's state dict, keys as in plain open_clip
    domainclip_tower.safetensors   domain tower layers only (video pooling, view fusion), if any
    text_config/config.json        transformers config of a Hugging Face text tower, if any
    tokenizer*.json, vocab...      Hugging Face tokenizer files, if the model uses one
    recipe.yaml                    the resolved training recipe, when given
    eval_results.json              {task: {metric: value}}
    README.md                      model card: YAML front matter + description + usage + eval table

Domain-tower weights live in their own file because open_clip loads ``local-dir:``/``hf-hub:``
weights with ``strict=True``: plain open_clip loads the CLIP (the frame / view encoder) from such a
folder unchanged and never sees the tower; domainclip loads both.

Hub ids resolve through the Hugging Face cache (``cache_dir`` argument, else ``HF_HUB_CACHE``, else
``HF_HOME/hub``); with ``HF_HUB_OFFLINE=1`` or no network only cached snapshots are used, and a
missing one fails naming the repo, the revision and the cache folder. Only safetensors weights are
written or downloaded; nothing is unpickled without ``weights_only=True``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
import yaml
from open_clip.hf_model import HFTextEncoder
from open_clip.tokenizer import SimpleTokenizer
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from domainclip.core.errors import InputError, InputNotFoundError, OutputError, OutputExistsError
from domainclip.core.io import new_file_mode, new_folder_mode
from domainclip.core.models import (
    DomainCLIP,
    build_model_from_info,
    create_model,
    get_image_transform,
    get_tokenizer,
    unwrap_clip,
)
from domainclip.core.models.registry import HF_TEXT_CONFIG_DIR, _check_config
from domainclip.core.plugins import UnknownNameError, require

__all__ = [
    "CONFIG_NAME",
    "EVAL_RESULTS_NAME",
    "MODEL_CARD_NAME",
    "RECIPE_NAME",
    "TOWER_WEIGHTS_NAME",
    "WEIGHTS_NAME",
    "RANDOM_WEIGHTS_SEED",
    "HubNotFoundError",
    "ModelFileError",
    "ModelSource",
    "ResolvedFolder",
    "check_device",
    "download_hub_folder",
    "export_hf_clip",
    "export_run",
    "find_weights_file",
    "hf_cache_dir",
    "hf_offline",
    "latest_checkpoint",
    "load_any_model",
    "load_folder_weights",
    "load_model",
    "load_run",
    "locate_model",
    "parse_hf_hub_id",
    "read_folder_config",
    "render_model_card",
    "resolve_folder",
    "save_model_folder",
]

logger = logging.getLogger(__name__)

HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
TOWER_WEIGHTS_NAME = "domainclip_tower.safetensors"
RECIPE_NAME = "recipe.yaml"
EVAL_RESULTS_NAME = "eval_results.json"
MODEL_CARD_NAME = "README.md"
#: Weight files of a folder, most preferred first (open_clip's order, safetensors first).
WEIGHTS_PREFERENCE = (
    WEIGHTS_NAME,
    "open_clip_pytorch_model.safetensors",
    "model.safetensors",
    "open_clip_pytorch_model.bin",
    "pytorch_model.bin",
)
#: Files never fetched from the hub: pickled or foreign-framework duplicates of the weights.
SKIPPED_HUB_FILES = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.msgpack", "*.h5", "*.onnx", "*.npz"]
#: Run-dir layout written by the engine.
RUN_MODEL_INFO = "model_info.json"
RUN_RECIPE = "recipe.resolved.yaml"
RUN_EVAL_RESULTS = Path("eval") / "results.json"
CHECKPOINT_WEIGHTS = "model.safetensors"
_REPO_ID = re.compile(r"^(?:[\w.\-]+/)?[\w.\-]+$")
_CARD_KEYS = (
    "name",
    "repo_id",
    "description",
    "license",
    "tags",
    "datasets",
    "base_model",
    "pipeline_tag",
    "language",
    "domain",
    "intended_use",
    "limitations",
    "citation",
)


#: Seed of the random weights a registry name is loaded with (:func:`load_model`), so two
#: evaluations of the same untrained architecture give the same numbers.
RANDOM_WEIGHTS_SEED = 0


class HubNotFoundError(InputNotFoundError):
    """A hub id could not be resolved (not cached while offline, unknown repo or revision)."""


class ModelFileError(InputError, RuntimeError):
    """A model file (weights, ``model_info.json``) cannot be read or does not fit the architecture."""


@dataclass(frozen=True)
class ResolvedFolder:
    """A model folder on disk and the spec recorded as its source.

    Args:
        path: the folder (a local folder or an HF cache snapshot).
        spec: ``local-dir:PATH`` or ``hf-hub:org/name@<commit>`` (the exact snapshot loaded).

    """

    path: Path
    spec: str


# ----------------------------------------------------------------------------------------------------
# resolving hub ids and folders
# ----------------------------------------------------------------------------------------------------


def parse_hf_hub_id(hub_id: str) -> tuple[str, str | None]:
    """Split ``org/name@revision`` (prefix ``hf-hub:`` optional) into ``(repo_id, revision or None)``."""
    if hub_id.startswith(HF_HUB_PREFIX):
        hub_id = hub_id[len(HF_HUB_PREFIX) :]
    repo_id, sep, revision = hub_id.partition("@")
    if not _REPO_ID.match(repo_id) or (sep and not revision):
        raise InputError(f"invalid hub id {hub_id!r}: expected org/name or org/name@revision")
    return repo_id, revision or None


def _env_true(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def hf_offline() -> bool:
    """Whether Hugging Face network access is disabled (``HF_HUB_OFFLINE``, read at call time)."""
    from huggingface_hub import constants

    flag = _env_true("HF_HUB_OFFLINE")
    return constants.HF_HUB_OFFLINE if flag is None else flag


def hf_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Return the Hugging Face hub cache: ``cache_dir``, else ``HF_HUB_CACHE``, else ``HF_HOME/hub``."""
    from huggingface_hub import constants

    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def download_hub_folder(hub_id: str, *, cache_dir: str | Path | None = None) -> ResolvedFolder:
    """Resolve ``org/name[@revision]`` to a snapshot folder of the HF cache, downloading when online.

    Every file but pickled/foreign weight duplicates (:data:`SKIPPED_HUB_FILES`) is fetched.
    Offline, or when the hub cannot be reached, the cached snapshot is used.

    Raises:
        HubNotFoundError: one line naming the repo, the revision and the cache folder looked in.

    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    repo_id, revision = parse_hf_hub_id(hub_id)
    cache = hf_cache_dir(cache_dir)
    offline = hf_offline()
    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=str(cache),
            local_files_only=offline,
            ignore_patterns=SKIPPED_HUB_FILES,
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled) as e:
        where = "not in the Hugging Face cache (offline: HF_HUB_OFFLINE=1)" if offline else "could not be fetched"
        raise HubNotFoundError(
            f"hf-hub:{repo_id} revision {revision or 'main'} {where}; looked in {cache} "
            f"({type(e).__name__}). Download it with network access, or point cache_dir / HF_HUB_CACHE / "
            "HF_HOME at the cache that holds it."
        ) from e
    folder = Path(path)
    return ResolvedFolder(folder, f"{HF_HUB_PREFIX}{repo_id}@{folder.name}")


def resolve_folder(
    spec: str | Path, *, cache_dir: str | Path | None = None, bare_paths: bool = False
) -> ResolvedFolder | None:
    """Turn ``hf-hub:...`` / ``local-dir:PATH`` (or, with ``bare_paths``, an existing folder) into a folder.

    Returns None when ``spec`` is none of these (a registry name, a file, an open_clip tag).
    """
    text = str(spec)
    if text.startswith(HF_HUB_PREFIX):
        return download_hub_folder(text, cache_dir=cache_dir)
    if text.startswith(LOCAL_DIR_PREFIX):
        path = Path(text[len(LOCAL_DIR_PREFIX) :]).expanduser()
        if not path.is_dir():
            raise InputNotFoundError(f"model folder not found: {path} (from {text!r})")
        return ResolvedFolder(path.resolve(), f"{LOCAL_DIR_PREFIX}{path.resolve()}")
    if (bare_paths or isinstance(spec, Path)) and Path(text).expanduser().is_dir():
        path = Path(text).expanduser().resolve()
        return ResolvedFolder(path, f"{LOCAL_DIR_PREFIX}{path}")
    return None


def read_folder_config(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Read ``open_clip_config.json`` of a model folder as ``{model_cfg, preprocess_cfg, domainclip_cfg}``."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise InputNotFoundError(
            f"{path} not found: a model folder needs {CONFIG_NAME} (model_cfg + preprocess_cfg)"
        )
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_cfg"), dict):
        raise InputError(f"{path} has no 'model_cfg' mapping (open_clip hub config layout)")
    _check_config(str(path), cfg["model_cfg"], str(path))
    out = {
        "model_cfg": cfg["model_cfg"],
        "preprocess_cfg": cfg.get("preprocess_cfg") or {},
        "domainclip_cfg": cfg.get("domainclip_cfg") or {},
    }
    for key in ("preprocess_cfg", "domainclip_cfg"):
        if not isinstance(out[key], dict):
            raise InputError(f"{path}: {key!r} must be a mapping")
    return out


def find_weights_file(folder: str | Path) -> Path:
    """Find a folder's CLIP weights, preferring ``open_clip_model.safetensors`` (open_clip's order)."""
    folder = Path(folder)
    for name in WEIGHTS_PREFERENCE:
        if (folder / name).is_file():
            return folder / name
    others = sorted(p for p in folder.glob("*.safetensors") if p.name != TOWER_WEIGHTS_NAME)
    if others:
        return others[0]
    raise InputNotFoundError(f"no weights in {folder}: expected {WEIGHTS_NAME} (hub downloads are safetensors only)")


def load_folder_weights(model: nn.Module, folder: str | Path, *, require_tower: bool = False) -> None:
    """Load a folder's CLIP weights (strict, via open_clip) and its domain tower weights if present.

    Args:
        model: a model from :func:`domainclip.core.models.create_model` of the folder's architecture.
        folder: a hub folder.
        require_tower: fail if ``model`` has tower parameters and the folder has no tower file
            (the folder's own config declares the tower); otherwise the tower keeps its initialisation.

    """
    folder = Path(folder)
    weights = find_weights_file(folder)
    try:
        open_clip.load_checkpoint(unwrap_clip(model), str(weights), strict=True, weights_only=True)
    except SafetensorError as e:
        raise ModelFileError(f"{weights} is not a readable safetensors file: {e}") from e
    except RuntimeError as e:
        raise ModelFileError(f"weights in {weights} do not fit the architecture: {e}") from e
    tower_file = folder / TOWER_WEIGHTS_NAME
    if isinstance(model, DomainCLIP):
        if tower_file.is_file():
            model.load_tower_state_dict(_read_safetensors(tower_file))
        elif model.tower_state_dict():
            if require_tower:
                raise InputNotFoundError(
                    f"{tower_file} not found: the folder's config declares a {model.tower_name} tower with weights"
                )
            logger.info("%s has no %s: the %s tower layers start fresh", folder, TOWER_WEIGHTS_NAME, model.tower_name)
    elif tower_file.is_file():
        logger.warning("%s holds domain tower weights that this plain CLIP does not use", tower_file)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or :class:`ModelFileError` naming a damaged one."""
    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise ModelFileError(f"{path} is not a readable safetensors file: {e}") from e


# ----------------------------------------------------------------------------------------------------
# writing a hub folder
# ----------------------------------------------------------------------------------------------------


def _model_info(model: nn.Module) -> dict[str, Any]:
    info = getattr(model, "domainclip_info", None)
    if not isinstance(info, dict):
        raise TypeError("model has no domainclip_info: create it with domainclip.core.models.create_model")
    return info


def _safetensors_ready(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors, one storage each: tied / shared weights are cloned so every key is kept."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state_dict.items():
        tensor = value.detach().cpu()
        storage = tensor.untyped_storage()
        whole = storage.nbytes() == tensor.numel() * tensor.element_size()
        if storage.data_ptr() in seen or not tensor.is_contiguous() or not whole:
            tensor = tensor.contiguous().clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[key] = tensor
    return out


def _format_value(value: float | int) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def _numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    return {
        k: v
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
    }


def _eval_table(eval_results: Mapping[str, Mapping[str, Any]]) -> str:
    rows = {task: _numeric_metrics(metrics) for task, metrics in eval_results.items()}
    columns: list[str] = []
    for metrics in rows.values():
        columns.extend(m for m in metrics if m not in columns)
    lines = ["| task | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for task, metrics in rows.items():
        cells = [_format_value(metrics[c]) if c in metrics else "–" for c in columns]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _check_eval_results(eval_results: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(eval_results, Mapping) or not all(isinstance(v, Mapping) for v in eval_results.values()):
        raise TypeError("eval_results must map task name -> {metric: value}")
    return {str(task): dict(metrics) for task, metrics in eval_results.items()}


def _architecture_lines(info: Mapping[str, Any]) -> list[str]:
    model_cfg = info["model_cfg"]
    vision, text = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
    if vision.get("timm_model_name"):
        vision_desc = f"timm `{vision['timm_model_name']}`"
    else:
        vision_desc = (
            f"ViT, width {vision.get('width')}, {vision.get('layers')} layers, patch {vision.get('patch_size')}"
        )
    if text.get("hf_model_name"):
        text_desc = f"Hugging Face `{text['hf_model_name']}`"
    else:
        text_desc = f"transformer, width {text.get('width')}, {text.get('layers')} layers"
    pp = info["preprocess_cfg"]
    lines = [
        f"- **Architecture:** `{info['name']}` (embedding width {model_cfg.get('embed_dim')})",
        f"- **Image tower:** {vision_desc}; input {pp.get('size')}",
        f"- **Text tower:** {text_desc}; context length {text.get('context_length', 77)}",
        f"- **Preprocessing:** mean {pp.get('mean')}, std {pp.get('std')}, interpolation "
        f"{pp.get('interpolation')}, resize mode {pp.get('resize_mode')}",
    ]
    if info.get("domainclip_cfg"):
        settings = ", ".join(f"{k}={v}" for k, v in info["domainclip_cfg"].items() if k != "tower")
        lines.append(f"- **Domain tower:** {info['domainclip_cfg']['tower']} ({settings})")
    if info.get("pretrained"):
        lines.append(f"- **Initialised from:** `{info['pretrained']}`")
    return lines


def _base_model(pretrained: str | None) -> str | None:
    if pretrained and pretrained.startswith(HF_HUB_PREFIX):
        return parse_hf_hub_id(pretrained)[0]
    return None


def render_model_card(
    info: Mapping[str, Any],
    *,
    eval_results: Mapping[str, Mapping[str, Any]] | None = None,
    model_card: Mapping[str, Any] | None = None,
    recipe: Mapping[str, Any] | None = None,
) -> str:
    """Write the README.md model card: YAML front matter, description, usage, eval table.

    Args:
        info: the model's ``domainclip_info``.
        eval_results: ``{task: {metric: value}}``; numeric metrics go in the table and the
            front matter's ``model-index``.
        model_card: optional fields: name, repo_id (used in the load snippets), description,
            license (default ``other``), tags, datasets, base_model, pipeline_tag, language, domain,
            intended_use, limitations, citation (a string or a list).
        recipe: the training recipe (its ``domain`` key becomes a tag).

    """
    card = dict(model_card or {})
    for key in card:
        if key not in _CARD_KEYS:
            raise UnknownNameError("model card field", key, list(_CARD_KEYS))
    eval_results = _check_eval_results(eval_results or {})
    title = str(card.get("name") or info["name"])
    repo_id = str(card.get("repo_id") or "ORG/NAME")
    pipeline_tag = card.get("pipeline_tag", "zero-shot-image-classification")
    domain = card.get("domain") or ((recipe or {}).get("domain") if isinstance(recipe, Mapping) else None)
    tower = (info.get("domainclip_cfg") or {}).get("tower")
    tags = ["clip", "open_clip", "domainclip"]
    for tag in [domain, tower, *(card.get("tags") or [])]:
        if isinstance(tag, str) and tag and tag not in tags:
            tags.append(tag)

    front: dict[str, Any] = {
        "library_name": "open_clip",
        "pipeline_tag": pipeline_tag,
        "license": card.get("license", "other"),
        "tags": tags,
    }
    if card.get("language"):
        front["language"] = card["language"]
    if card.get("datasets"):
        front["datasets"] = list(card["datasets"])
    base_model = card.get("base_model") or _base_model(info.get("pretrained"))
    if base_model:
        front["base_model"] = base_model
    numeric = {task: _numeric_metrics(m) for task, m in eval_results.items()}
    if any(numeric.values()):
        front["model-index"] = [
            {
                "name": title,
                "results": [
                    {
                        "task": {"type": pipeline_tag},
                        "dataset": {"name": task, "type": task},
                        "metrics": [{"type": k, "name": k, "value": float(v)} for k, v in metrics.items()],
                    }
                    for task, metrics in numeric.items()
                    if metrics
                ],
            }
        ]

    description = card.get("description") or (
        f"A CLIP model{f' for {domain}' if domain else ''} trained with "
        "[domainclip](https://github.com/domainclip/domainclip) on top of open_clip."
    )
    parts = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        f"# {title}",
        "",
        str(description).strip(),
        "",
        "## Model details",
        "",
        *_architecture_lines(info),
    ]
    if recipe:
        parts.append(f"- **Training recipe:** [`{RECIPE_NAME}`]({RECIPE_NAME}) (resolved, as trained)")
    for key, heading in (("intended_use", "Intended use"), ("limitations", "Limitations")):
        if card.get(key):
            parts += ["", f"## {heading}", "", str(card[key]).strip()]

    hub = f"hf-hub:{repo_id}"
    parts += [
        "",
        "## How to load",
        "",
        "With domainclip (also rebuilds the domain tower and its preprocessing):",
        "",
        "```python",
        "import domainclip",
        "",
        f'model, preprocess, tokenizer = domainclip.load_model("{hub}")  # or a local folder path',
        "```",
        "",
        "With plain open_clip:",
        "",
        "```python",
        "import open_clip",
        "",
        f'model, preprocess = open_clip.create_model_from_pretrained("{hub}")  # or "local-dir:PATH"',
        f'tokenizer = open_clip.get_tokenizer("{hub}")',
        "```",
    ]
    if tower:
        parts += [
            "",
            f"Plain open_clip loads the CLIP that embeds single frames/views; the {tower} tower's own "
            f"layers are in `{TOWER_WEIGHTS_NAME}` and are used by domainclip.",
        ]
    parts += ["", "## Evaluation results", ""]
    if eval_results:
        parts += [
            f"Full results: [`{EVAL_RESULTS_NAME}`]({EVAL_RESULTS_NAME}).",
            "",
            _eval_table(eval_results),
        ]
    else:
        parts.append("No evaluation results were recorded for this model.")
    citations = card.get("citation")
    if citations:
        parts += ["", "## Citation", ""]
        for citation in [citations] if isinstance(citations, str) else citations:
            parts += ["```bibtex", str(citation).strip(), "```"]
    return "\n".join(parts) + "\n"


def _start_output(out_dir: Path, *, overwrite: bool, marker: str) -> Path:
    """Check that a model folder may be written to ``out_dir``; return a fresh build folder beside it.

    An existing non-empty ``out_dir`` is refused unless ``overwrite``, and even then unless it holds
    ``marker`` (it is a model folder, not someone's other files).

    Raises:
        OutputExistsError: ``out_dir`` holds files this export must not replace.
        OutputError: ``out_dir`` is a file, or it or its parent cannot be created or written.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output {out_dir} is a file, not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise OutputExistsError(
                f"{out_dir} exists and is not empty; pass overwrite=True (--overwrite) to replace it"
            )
        if not (out_dir / marker).is_file():
            raise OutputExistsError(
                f"{out_dir} holds files but no {marker}, so it is not a model folder; overwrite only replaces a "
                "model folder: move them or choose another folder"
            )
    for folder in (out_dir, out_dir.parent):
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write output folder {out_dir}: {folder} is not writable")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    except OSError as e:
        raise OutputError(f"cannot write output folder {out_dir}: {e.strerror or e}") from None


def _publish_modes(folder: Path) -> None:
    """Give ``folder`` and everything in it the modes of a new folder and file under the umask.

    ``tempfile.mkdtemp`` makes its folder 0700 and safetensors writes its file 0600; an exported
    model is meant to be read by others, so it gets what ``mkdir`` and ``open`` would give (0755 and
    0644 under umask 022).
    """
    file_mode, dir_mode = new_file_mode(), new_folder_mode()
    for root, dirs, files in os.walk(folder):
        for name, mode in [(d, dir_mode) for d in dirs] + [(f, file_mode) for f in files]:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, mode)
    os.chmod(folder, dir_mode)


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` to ``out_dir``, replacing a folder there; on failure ``out_dir`` is as before."""
    _publish_modes(tmp)
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    try:
        os.replace(out_dir, old / out_dir.name)
        os.replace(tmp, out_dir)
    except OSError:
        if (old / out_dir.name).exists() and not out_dir.exists():
            os.replace(old / out_dir.name, out_dir)
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def save_model_folder(
    model: nn.Module,
    out_dir: str | Path,
    *,
    recipe: Mapping[str, Any] | None = None,
    eval_results: Mapping[str, Mapping[str, Any]] | None = None,
    model_card: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as an open_clip hub folder (layout in the module docstring), atomically.

    The folder is built in a temporary folder beside ``out_dir`` and renamed into place, so a
    crash never leaves a half-written model.

    Args:
        model: a model from :func:`domainclip.core.models.create_model` (it has ``domainclip_info``).
        out_dir: destination folder.
        recipe: resolved training recipe, saved as ``recipe.yaml``.
        eval_results: ``{task: {metric: value}}``, saved as ``eval_results.json`` and tabled in the card.
        model_card: model card fields (see :func:`render_model_card`).
        overwrite: replace an existing non-empty ``out_dir`` that is a model folder (holds
            ``open_clip_config.json``); a folder holding other files is always refused.

    Returns:
        ``out_dir``. The folder and its files get the ordinary modes under the user's umask.

    Raises:
        OutputExistsError: ``out_dir`` is not empty and may not be replaced.
        OutputError: ``out_dir`` cannot be written.

    """
    info = _model_info(model)
    eval_results = _check_eval_results(eval_results or {})
    out_dir = Path(out_dir).expanduser().resolve()
    tmp = _start_output(out_dir, overwrite=overwrite, marker=CONFIG_NAME)
    try:
        config = {
            "model_cfg": info["model_cfg"],
            "preprocess_cfg": info["preprocess_cfg"],
            "domainclip_cfg": info["domainclip_cfg"],
        }
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        clip = unwrap_clip(model)
        save_file(_safetensors_ready(clip.state_dict()), str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        if isinstance(model, DomainCLIP) and model.tower_state_dict():
            save_file(
                _safetensors_ready(model.tower_state_dict()),
                str(tmp / TOWER_WEIGHTS_NAME),
                metadata={"format": "pt"},
            )
        if isinstance(getattr(clip, "text", None), HFTextEncoder):
            clip.text.config.save_pretrained(str(tmp / HF_TEXT_CONFIG_DIR))
            hf_name = info["model_cfg"]["text_cfg"].get("hf_model_name", "")
            if Path(hf_name).expanduser().exists():
                logger.warning(
                    "text_cfg.hf_model_name is a local path (%s): plain open_clip needs it to exist; "
                    "domainclip uses the copy in %s/",
                    hf_name,
                    HF_TEXT_CONFIG_DIR,
                )
        if info["model_cfg"]["text_cfg"].get("hf_tokenizer_name"):
            # open_clip's local-dir / hf-hub loading reads a Hugging Face tokenizer from the folder itself
            get_tokenizer(model).save_pretrained(str(tmp))
        if recipe is not None:
            (tmp / RECIPE_NAME).write_text(
                yaml.safe_dump(dict(recipe), sort_keys=False, allow_unicode=True), encoding="utf-8"
            )
        (tmp / EVAL_RESULTS_NAME).write_text(json.dumps(eval_results, indent=2) + "\n", encoding="utf-8")
        card = render_model_card(info, eval_results=eval_results, model_card=model_card, recipe=recipe)
        (tmp / MODEL_CARD_NAME).write_text(card, encoding="utf-8")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


# ----------------------------------------------------------------------------------------------------
# loading and exporting
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSource:
    """What a model spec resolved to: the files :func:`load_model` reads, for results files to record.

    Args:
        spec: the spec as given.
        kind: ``"run"`` (a training run or one of its checkpoint folders), ``"folder"`` (a local
            hub folder), ``"hf-hub"`` (a snapshot of the Hugging Face cache) or ``"registry"`` (an
            architecture name: random weights, seeded with :data:`RANDOM_WEIGHTS_SEED`).
        path: the run, hub or snapshot folder; ``None`` for a registry name.
        weights: the weight files read (none for a registry name).
        hub_id: ``org/name`` of a hub model.
        revision: the commit of the hub snapshot.
        checkpoint: the checkpoint folder of a run.
    """

    spec: str
    kind: str
    path: Path | None = None
    weights: tuple[Path, ...] = ()
    hub_id: str | None = None
    revision: str | None = None
    checkpoint: Path | None = None

    @property
    def random_weights(self) -> bool:
        """Whether the model has no trained weights (a registry name)."""
        return self.kind == "registry"

    def load_spec(self) -> str:
        """The spec :func:`~domainclip.core.models.create_model` loads a folder, hub or registry model from."""
        if self.kind == "hf-hub":
            return f"{HF_HUB_PREFIX}{self.hub_id}@{self.revision}"
        if self.kind == "folder":
            return f"{LOCAL_DIR_PREFIX}{self.path}"
        return self.spec

    def record(self) -> dict[str, Any]:
        """The JSON record: spec, kind, resolved path / hub id and revision, and each weight file's sha256.

        Weight files are named relative to ``path``; a registry name records ``"random_weights": true``
        and its seed instead.
        """
        out: dict[str, Any] = {"spec": self.spec, "kind": self.kind}
        if self.hub_id is not None:
            out |= {"hub_id": self.hub_id, "revision": self.revision}
        if self.path is not None:
            out["path"] = str(self.path)
        if self.checkpoint is not None:
            out["checkpoint"] = _relative(self.checkpoint, self.path)
        out["random_weights"] = self.random_weights
        if self.random_weights:
            out["seed"] = RANDOM_WEIGHTS_SEED
        out["weights_sha256"] = {_relative(w, self.path): _sha256(w) for w in self.weights}
        return out


def _relative(path: Path, root: Path | None) -> str:
    return str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(functools.partial(f.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _folder_weights(folder: Path) -> tuple[Path, ...]:
    """The weight files :func:`load_folder_weights` reads from a hub folder."""
    read_folder_config(folder)  # a folder without a valid config fails here, naming the config
    tower = folder / TOWER_WEIGHTS_NAME
    return (find_weights_file(folder), *((tower,) if tower.is_file() else ()))


def locate_model(spec: str | Path, *, cache_dir: str | Path | None = None) -> ModelSource:
    """Resolve a model spec to what :func:`load_model` would read, without building the model.

    Args:
        spec: a training run folder (its newest checkpoint) or one of its ``checkpoints/step_*``
            folders, a hub folder path, ``local-dir:PATH``, ``hf-hub:org/name[@revision]`` (resolved
            through the HF cache, offline included) or a registry name (random weights).
        cache_dir: Hugging Face cache folder.

    Raises:
        InputNotFoundError: a folder that is neither a run nor a hub folder, a run without a
            checkpoint, a path that does not exist, or a hub id that cannot be resolved.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if not text.startswith((HF_HUB_PREFIX, LOCAL_DIR_PREFIX)) and path.is_dir():
        if _is_run_dir(path):
            run_dir, weights = _resolve_run(path, None)
            weights = weights.resolve()
            return ModelSource(text, "run", run_dir.resolve(), (weights,), checkpoint=weights.parent)
        if not (path / CONFIG_NAME).is_file() and (path / "checkpoints").is_dir():
            raise InputNotFoundError(f"not a domainclip run dir: {path / RUN_MODEL_INFO} missing")
    folder = resolve_folder(spec, cache_dir=cache_dir, bare_paths=True)
    if folder is not None:
        weights = _folder_weights(folder.path)
        if folder.spec.startswith(HF_HUB_PREFIX):
            hub_id, revision = parse_hf_hub_id(folder.spec)
            return ModelSource(text, "hf-hub", folder.path, weights, hub_id=hub_id, revision=revision)
        return ModelSource(text, "folder", folder.path, weights)
    if path.exists() or os.sep in text or text.startswith((".", "~")):
        kind = "file" if path.exists() else "path that does not exist"
        raise InputNotFoundError(
            f"model {text!r} is a {kind}: expected a run folder, a hub folder, hf-hub:org/name or a registry name"
        )
    return ModelSource(text, "registry")


def check_device(device: str | torch.device) -> torch.device:
    """The torch device ``device`` names, refused when this machine does not have it.

    Raises:
        InputError: ``device`` is not a device name, or names a GPU this machine lacks.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"device {str(device)!r} is not a torch device (cpu, cuda, cuda:N, mps): {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {str(device)!r}: no CUDA GPU is available on this machine; use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {str(device)!r}: Apple MPS is not available on this machine; use cpu")
    return dev


def load_model(
    spec: str | Path,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    cache_dir: str | Path | None = None,
) -> tuple[nn.Module, Any, Any]:
    """Load a model for inference: ``(model in eval mode, preprocess_val, tokenizer)``.

    This is how ``domainclip eval --model`` loads its model; see :func:`locate_model` for what
    ``spec`` may be. A registry name gives random weights, drawn with :data:`RANDOM_WEIGHTS_SEED`
    (the global random state is left as it was), so two loads give the same model.

    Args:
        spec: a training run folder or one of its checkpoint folders, a hub folder path,
            ``local-dir:PATH``, ``hf-hub:org/name[@revision]`` or a registry name.
        device: where to put the model.
        precision: see :data:`domainclip.core.models.registry.PRECISIONS`.
        cache_dir: Hugging Face cache folder.

    Returns:
        The model, its validation transform and its tokenizer. ``model.domainclip_source`` holds
        :meth:`ModelSource.record`: the spec as given, what it resolved to and the sha256 of every
        weight file read.

    """
    check_device(device)
    source = locate_model(spec, cache_dir=cache_dir)
    cache = str(cache_dir) if cache_dir is not None else None
    if source.kind == "run":
        model = load_run(source.path, checkpoint=source.checkpoint, device=device, precision=precision)
    elif source.random_weights:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            model = create_model(source.load_spec(), device=device, precision=precision, cache_dir=cache)
    else:
        model = create_model(source.load_spec(), device=device, precision=precision, cache_dir=cache)
    model.eval()
    model.domainclip_source = source.record()
    return model, get_image_transform(model, is_train=False), get_tokenizer(model, cache_dir=cache)


def latest_checkpoint(run_dir: str | Path) -> Path:
    """Find the newest ``checkpoints/step_<step>`` folder of a run that holds ``model.safetensors``."""
    from domainclip.core.engine.checkpoint import list_checkpoints

    root = Path(run_dir) / "checkpoints"
    found = [ckpt for ckpt in list_checkpoints(root) if (ckpt / CHECKPOINT_WEIGHTS).is_file()]
    if not found:
        raise InputNotFoundError(
            f"no checkpoint in {root}: expected step_<8-digit step>/{CHECKPOINT_WEIGHTS} (has the run saved one yet?)"
        )
    return found[-1]


def _is_run_dir(path: Path) -> bool:
    return (path / RUN_MODEL_INFO).is_file() or (
        (path / CHECKPOINT_WEIGHTS).is_file() and (path.parent.parent / RUN_MODEL_INFO).is_file()
    )


def _resolve_run(run_dir: str | Path, checkpoint: str | Path | None) -> tuple[Path, Path]:
    """Return ``(run folder, checkpoint weights file)``; a checkpoint folder may stand for its run."""
    run_dir = Path(run_dir).expanduser()
    if checkpoint is None and (run_dir / CHECKPOINT_WEIGHTS).is_file() and not (run_dir / RUN_MODEL_INFO).is_file():
        checkpoint, run_dir = run_dir, run_dir.parent.parent  # given RUN_DIR/checkpoints/step_X
    if not (run_dir / RUN_MODEL_INFO).is_file():
        raise InputNotFoundError(f"not a domainclip run dir: {run_dir / RUN_MODEL_INFO} missing")
    if checkpoint is None:
        return run_dir, latest_checkpoint(run_dir) / CHECKPOINT_WEIGHTS
    checkpoint = Path(checkpoint)
    weights = checkpoint if checkpoint.is_file() else checkpoint / CHECKPOINT_WEIGHTS
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
    run_dir, weights = _resolve_run(run_dir, checkpoint)
    info_path = run_dir / RUN_MODEL_INFO
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{info_path} is not valid JSON: {e}") from e
    if not isinstance(info, dict):
        raise ModelFileError(f"{info_path} must hold a JSON object, got {type(info).__name__}")
    try:
        model = build_model_from_info(info, device=device, precision=precision)
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFileError(f"{info_path} does not describe a model: {e}") from e
    try:
        model.load_state_dict(_read_safetensors(weights), strict=True)
    except RuntimeError as e:
        raise ModelFileError(f"{weights} does not match the architecture in {info_path}: {e}") from e
    return model.eval()


def _read_run_eval_results(path: Path) -> dict[str, dict[str, Any]] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid JSON: {e}") from e
    if isinstance(data, dict) and isinstance(data.get("results"), dict):
        data = data["results"]  # the eval report layout: {run info..., "results": {task: metrics}}
    try:
        return _check_eval_results(data)
    except TypeError as e:
        raise InputError(f"{path}: {e}") from e


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
        model_card: model card fields (see :func:`render_model_card`).
        overwrite: replace an existing non-empty ``out_dir`` that is a model folder.

    Raises:
        InputNotFoundError: not a run folder, or no checkpoint.
        ModelFileError: the run's ``model_info.json`` or weights are damaged.
        InputError: its recipe or eval results are damaged.
        OutputExistsError: ``out_dir`` is not empty and may not be replaced.

    """
    model = load_run(run_dir, checkpoint=checkpoint)
    run_dir = _resolve_run(run_dir, checkpoint)[0]
    recipe = None
    recipe_path = run_dir / RUN_RECIPE
    if recipe_path.is_file():
        try:
            recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise InputError(f"{recipe_path} is not valid YAML: {' '.join(str(e).split())}") from e
        if recipe is not None and not isinstance(recipe, dict):
            raise InputError(f"{recipe_path} must hold a mapping")
    eval_results = _read_run_eval_results(run_dir / RUN_EVAL_RESULTS)
    return save_model_folder(
        model, out_dir, recipe=recipe, eval_results=eval_results, model_card=model_card, overwrite=overwrite
    )


def load_any_model(
    spec: str | Path,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    cache_dir: str | Path | None = None,
) -> tuple[nn.Module, Any, Any]:
    """The same as :func:`load_model` (which takes run folders too); kept for existing callers."""
    return load_model(spec, device=device, precision=precision, cache_dir=cache_dir)


# ----------------------------------------------------------------------------------------------------
# transformers CLIPModel export
# ----------------------------------------------------------------------------------------------------

#: open_clip ViT / text-transformer settings that transformers' CLIPModel reproduces exactly.
_HF_VISION_DEFAULTS = {
    "ls_init_value": None,
    "attentional_pool": False,
    "no_ln_pre": False,
    "pos_embed_type": "learnable",
    "pool_type": "tok",
    "act_kwargs": None,
    "norm_kwargs": None,
    "block_type": None,
    "qk_norm": False,
    "scaled_cosine_attn": False,
    "scale_heads": False,
    "scale_attn_inner": False,
    "scale_attn": False,
    "scale_fc": False,
}
_HF_TEXT_DEFAULTS = {
    "vocab_size": 49408,
    "hf_tokenizer_name": None,
    "ls_init_value": None,
    "embed_cls": False,
    "no_causal_mask": False,
    "final_ln_after_pool": False,
    "pool_type": "argmax",
    "proj_bias": False,
    "proj_type": "linear",
    "act_kwargs": None,
    "norm_kwargs": None,
    "block_type": None,
    "qk_norm": False,
    "scaled_cosine_attn": False,
    "scale_heads": False,
    "scale_attn_inner": False,
    "scale_attn": False,
    "scale_fc": False,
}
_HF_TOP_DEFAULTS = {"init_logit_bias": None, "nonscalar_logit_scale": False, "custom_text": False}


def _hf_export_blockers(model_cfg: Mapping[str, Any]) -> list[str]:
    vision, text = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
    blockers = []
    if vision.get("timm_model_name") or isinstance(vision.get("layers"), list | tuple):
        blockers.append("image tower is not open_clip's ViT")
    if text.get("hf_model_name"):
        blockers.append("text tower is a Hugging Face model")
    if "multimodal_cfg" in model_cfg:
        blockers.append("CoCa models have a decoder")
    size = vision.get("image_size", 224)
    if isinstance(size, list | tuple) and len(set(size)) != 1:
        blockers.append("image size is not square")
    for section, defaults in (("vision_cfg", _HF_VISION_DEFAULTS), ("text_cfg", _HF_TEXT_DEFAULTS)):
        cfg = model_cfg.get(section, {})
        blockers += [f"{section}.{k}={cfg[k]!r}" for k, default in defaults.items() if k in cfg and cfg[k] != default]
    blockers += [f"{k}={model_cfg[k]!r}" for k, d in _HF_TOP_DEFAULTS.items() if k in model_cfg and model_cfg[k] != d]
    return blockers


def _hf_block_weights(prefix: str, src: Mapping[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    out = {}
    for i in range(layers):
        s, d = f"{prefix[0]}.resblocks.{i}.", f"{prefix[1]}.encoder.layers.{i}."
        q, k, v = src[s + "attn.in_proj_weight"].chunk(3)
        qb, kb, vb = src[s + "attn.in_proj_bias"].chunk(3)
        out |= {
            d + "self_attn.q_proj.weight": q,
            d + "self_attn.k_proj.weight": k,
            d + "self_attn.v_proj.weight": v,
            d + "self_attn.q_proj.bias": qb,
            d + "self_attn.k_proj.bias": kb,
            d + "self_attn.v_proj.bias": vb,
            d + "self_attn.out_proj.weight": src[s + "attn.out_proj.weight"],
            d + "self_attn.out_proj.bias": src[s + "attn.out_proj.bias"],
            d + "layer_norm1.weight": src[s + "ln_1.weight"],
            d + "layer_norm1.bias": src[s + "ln_1.bias"],
            d + "layer_norm2.weight": src[s + "ln_2.weight"],
            d + "layer_norm2.bias": src[s + "ln_2.bias"],
            d + "mlp.fc1.weight": src[s + "mlp.c_fc.weight"],
            d + "mlp.fc1.bias": src[s + "mlp.c_fc.bias"],
            d + "mlp.fc2.weight": src[s + "mlp.c_proj.weight"],
            d + "mlp.fc2.bias": src[s + "mlp.c_proj.bias"],
        }
    return out


def _save_hf_clip_tokenizer(out_dir: Path, context_length: int) -> None:
    """Write open_clip's BPE vocabulary as a transformers CLIPTokenizer (vocab.json + merges.txt)."""
    transformers = require("transformers", "transformers", "export to transformers' CLIPModel")
    bpe = SimpleTokenizer()
    vocab_path, merges_path = out_dir / "vocab.json", out_dir / "merges.txt"
    special = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}  # transformers' names
    vocab = {special.get(token, token): index for token, index in bpe.encoder.items()}
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges = sorted(bpe.bpe_ranks.items(), key=lambda item: item[1])
    merges_path.write_text("#version: 0.2\n" + "\n".join(" ".join(pair) for pair, _ in merges) + "\n", "utf-8")
    tokenizer = transformers.CLIPTokenizer(str(vocab_path), str(merges_path), model_max_length=context_length)
    tokenizer.save_pretrained(str(out_dir))


def export_hf_clip(model: nn.Module, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Export the CLIP part of ``model`` to transformers' ``CLIPModel`` layout (atomically).

    Possible for open_clip's own ViT image tower with the standard causal text transformer and
    open_clip's BPE tokenizer (e.g. ``ViT-B-32``, ``dc-test-vit``, ``dc-tiny-vit``); timm / Hugging
    Face towers, SigLIP, CoCa and custom attention blocks are refused with the reasons listed.
    Writes ``config.json``, ``model.safetensors``, the tokenizer and ``preprocessor_config.json``,
    so ``transformers.CLIPModel.from_pretrained(out_dir)`` gives the same embeddings. The folder
    and its files get the ordinary modes under the user's umask.

    Args:
        model: a model from :func:`domainclip.core.models.create_model` with an open_clip ViT CLIP.
        out_dir: destination folder.
        overwrite: replace an existing non-empty ``out_dir`` that holds a ``config.json``.

    Returns:
        ``out_dir``.
    """
    transformers = require("transformers", "transformers", "export to transformers' CLIPModel")
    info = _model_info(model)
    model_cfg = info["model_cfg"]
    blockers = _hf_export_blockers(model_cfg)
    clip = unwrap_clip(model)
    if not isinstance(clip, open_clip.CLIP):
        blockers.append(f"{type(clip).__name__} is not open_clip.CLIP")
    if blockers:
        raise ValueError(f"{info['name']} cannot be exported to transformers' CLIPModel: {'; '.join(blockers)}")

    vision, text = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    size = vision.get("image_size", 224)
    size = int(size[0] if isinstance(size, list | tuple) else size)
    v_width, t_width = vision.get("width", 768), text.get("width", 512)
    act = "quick_gelu" if model_cfg.get("quick_gelu") else "gelu"
    context_length = text.get("context_length", 77)
    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": text.get("vocab_size", 49408),
            "hidden_size": t_width,
            "intermediate_size": int(t_width * text.get("mlp_ratio", 4.0)),
            "num_hidden_layers": text.get("layers", 12),
            "num_attention_heads": text.get("heads", 8),
            "max_position_embeddings": context_length,
            "hidden_act": act,
            "layer_norm_eps": 1e-5,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 0,
            "projection_dim": model_cfg["embed_dim"],
        },
        vision_config={
            "hidden_size": v_width,
            "intermediate_size": int(v_width * vision.get("mlp_ratio", 4.0)),
            "num_hidden_layers": vision.get("layers", 12),
            "num_attention_heads": v_width // vision.get("head_width", 64),
            "image_size": size,
            "patch_size": vision.get("patch_size", 16),
            "hidden_act": act,
            "layer_norm_eps": 1e-5,
            "projection_dim": model_cfg["embed_dim"],
        },
        projection_dim=model_cfg["embed_dim"],
        logit_scale_init_value=float(clip.logit_scale.detach().float()),
    )

    src = {k: v.detach().float().cpu() for k, v in clip.state_dict().items()}
    weights = {
        "vision_model.embeddings.patch_embedding.weight": src["visual.conv1.weight"],
        "vision_model.embeddings.class_embedding": src["visual.class_embedding"],
        "vision_model.embeddings.position_embedding.weight": src["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": src["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": src["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": src["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": src["visual.ln_post.bias"],
        "visual_projection.weight": src["visual.proj"].T,
        "text_model.embeddings.token_embedding.weight": src["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": src["positional_embedding"],
        "text_model.final_layer_norm.weight": src["ln_final.weight"],
        "text_model.final_layer_norm.bias": src["ln_final.bias"],
        "text_projection.weight": src["text_projection"].T,
        "logit_scale": src["logit_scale"].reshape(()),
    }
    weights |= _hf_block_weights(("visual.transformer", "vision_model"), src, vision.get("layers", 12))
    weights |= _hf_block_weights(("transformer", "text_model"), src, text.get("layers", 12))

    hf_model = transformers.CLIPModel(config)
    missing, unexpected = hf_model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"CLIPModel weight mapping mismatch: missing {missing}, unexpected {unexpected}")

    out_dir = Path(out_dir).expanduser().resolve()
    tmp = _start_output(out_dir, overwrite=overwrite, marker="config.json")
    try:
        hf_model.save_pretrained(str(tmp), safe_serialization=True)
        _save_hf_clip_tokenizer(tmp, context_length)
        pp = info["preprocess_cfg"]
        transformers.CLIPImageProcessor(
            size={"shortest_edge": size},
            crop_size={"height": size, "width": size},
            image_mean=list(pp["mean"]),
            image_std=list(pp["std"]),
            resample=3 if pp.get("interpolation", "bicubic") == "bicubic" else 2,
        ).save_pretrained(str(tmp))
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
