"""Hub I/O: ``hf-hub:org/name@rev`` ids, local ``local-dir:`` folders, hub folders and model cards.

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

This module sits below the model factory (as timm's ``_hub.py`` does): :mod:`domainclip.core.models`
resolves names and reads folders through it, and the writers here take a model by what it
records, ``model.domainclip_info``, never importing the factory. Loading a model from any spec is
:func:`domainclip.core.models.loading.load_model`; training runs are :mod:`domainclip.core.engine.runs`.
"""

from __future__ import annotations

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
from open_clip.tokenizer import DEFAULT_CONTEXT_LENGTH, HFTokenizer, SimpleTokenizer
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from domainclip.core.errors import InputError, InputNotFoundError, OutputError, OutputExistsError
from domainclip.core.io import new_file_mode, new_folder_mode
from domainclip.core.plugins import UnknownNameError, require

__all__ = [
    "CONFIG_NAME",
    "EVAL_RESULTS_NAME",
    "HF_TEXT_CONFIG_DIR",
    "MODEL_CARD_NAME",
    "RECIPE_NAME",
    "TOWER_WEIGHTS_NAME",
    "WEIGHTS_NAME",
    "HubNotFoundError",
    "ModelFileError",
    "ResolvedFolder",
    "cached_hf_config",
    "check_eval_results",
    "download_hub_folder",
    "export_hf_clip",
    "find_weights_file",
    "hf_cache_dir",
    "hf_offline",
    "hf_tokenizer",
    "parse_hf_hub_id",
    "read_safetensors",
    "render_model_card",
    "resolve_folder",
    "safetensors_ready",
    "save_model_folder",
]

logger = logging.getLogger(__name__)

HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
TOWER_WEIGHTS_NAME = "domainclip_tower.safetensors"
#: Sub-folder holding the transformers config of a Hugging Face text tower.
HF_TEXT_CONFIG_DIR = "text_config"
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


def cached_hf_config(name: str, *, cache_dir: str | Path | None = None) -> Path | None:
    """The folder holding the ``config.json`` of the transformers model ``name`` in the Hugging Face cache.

    A Hugging Face text tower names its model by hub id (``"xlm-roberta-base"`` in open_clip's
    ``xlm-roberta-base-ViT-B-32`` and in RS-M-CLIP's folder); transformers would look it up in its own
    default cache only. This finds it in the cache domainclip reads (``cache_dir``, ``HF_HUB_CACHE``,
    ``HF_HOME``), fetching that one file when online, so a model and its text tower's config come
    from one cache, offline included.

    Args:
        name: ``text_cfg.hf_model_name``: a hub id (``org/name[@revision]``) or a local folder.
        cache_dir: Hugging Face cache folder.

    Returns:
        The snapshot folder, or None when ``name`` is a local path or not a hub id, or the cache
        does not hold it (transformers then resolves ``name`` itself and names it when it fails).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError, OfflineModeIsEnabled

    if Path(name).expanduser().exists() or not _REPO_ID.match(name.partition("@")[0]):
        return None
    repo_id, revision = parse_hf_hub_id(name)
    try:
        path = hf_hub_download(
            repo_id, "config.json", revision=revision, cache_dir=str(hf_cache_dir(cache_dir)),
            local_files_only=hf_offline(),
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, HFValidationError, OfflineModeIsEnabled):
        return None
    return Path(path).parent


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


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or :class:`ModelFileError` naming a damaged one.

    Args:
        path: the ``.safetensors`` file.
    """
    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise ModelFileError(f"{path} is not a readable safetensors file: {e}") from e


def hf_tokenizer(
    text_cfg: Mapping[str, Any],
    folder: str | Path | None = None,
    *,
    context_length: int | None = None,
    cache_dir: str | Path | None = None,
) -> HFTokenizer | None:
    """The Hugging Face tokenizer of a text tower config, or None when it uses one of open_clip's own.

    The tokenizer files in the model folder the config came from are read before the hub id in
    ``hf_tokenizer_name``, so a folder written by :func:`save_model_folder` tokenizes offline.

    Args:
        text_cfg: an open_clip ``text_cfg`` (``hf_tokenizer_name``, ``context_length``,
            ``tokenizer_kwargs``, ``tokenizer_mode``).
        folder: the model folder the config came from, if any.
        context_length: tokens per text (default: the config's, else open_clip's 77).
        cache_dir: Hugging Face cache folder.
    """
    name = text_cfg.get("hf_tokenizer_name")
    if not name:
        return None
    if folder is not None and (Path(folder) / "tokenizer_config.json").is_file():
        name = str(folder)
    return HFTokenizer(
        name,
        context_length=context_length or text_cfg.get("context_length") or DEFAULT_CONTEXT_LENGTH,
        cache_dir=str(hf_cache_dir(cache_dir)),
        tokenizer_mode=text_cfg.get("tokenizer_mode"),
        **dict(text_cfg.get("tokenizer_kwargs") or {}),
    )


# ----------------------------------------------------------------------------------------------------
# writing a hub folder
# ----------------------------------------------------------------------------------------------------


def _model_info(model: nn.Module) -> dict[str, Any]:
    info = getattr(model, "domainclip_info", None)
    if not isinstance(info, dict):
        raise TypeError("model has no domainclip_info: create it with domainclip.core.models.create_model")
    return info


def _clip_and_tower(model: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The open_clip model inside ``model``, its weights as plain open_clip loads them, and the tower's own weights.

    A model whose ``domainclip_info`` has a ``domainclip_cfg`` is a
    :class:`domainclip.core.models.DomainCLIP`: the CLIP is ``model.clip`` and its weights come from
    ``model.export_clip_state_dict()`` (LoRA merged, open_clip's key names). A plain CLIP exports its
    ``state_dict()`` and no tower weights; one whose attention was swapped for LoRA outside a tower is
    refused, since plain open_clip could not load its keys.
    """
    if _model_info(model)["domainclip_cfg"]:
        return model.clip, model.export_clip_state_dict(), model.tower_state_dict()
    state = model.state_dict()
    adapted = next((k for k in state if ".base_layer." in k or k.endswith(".attn.qkv.weight")), None)
    if adapted is not None:
        raise ValueError(
            f"this CLIP holds LoRA / swapped attention weights ({adapted}) outside a domain tower: plain open_clip "
            "cannot load them; export the tower (DomainCLIP.export_clip_state_dict merges them) or "
            "domainclip.core.models.lora.merged_state_dict(model)"
        )
    return model, state, {}


def safetensors_ready(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors, one storage each: tied / shared weights are cloned so every key is kept.

    Args:
        state_dict: what is to be written with ``safetensors.torch.save_file``.
    """
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


def check_eval_results(eval_results: Any) -> dict[str, dict[str, Any]]:
    """``eval_results`` as ``{task: {metric: value}}`` plain dicts, or TypeError.

    Args:
        eval_results: what a caller passes as a model's evaluation results.
    """
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
    from domainclip.core.eval.report import format_markdown_table, scalar_metrics

    card = dict(model_card or {})
    for key in card:
        if key not in _CARD_KEYS:
            raise UnknownNameError("model card field", key, list(_CARD_KEYS))
    eval_results = check_eval_results(eval_results or {})
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
    numeric = {
        task: {k: v for k, v in scalar_metrics(m).items() if math.isfinite(v)} for task, m in eval_results.items()
    }
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
            format_markdown_table(eval_results).rstrip("\n"),
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
    eval_results = check_eval_results(eval_results or {})
    out_dir = Path(out_dir).expanduser().resolve()
    tmp = _start_output(out_dir, overwrite=overwrite, marker=CONFIG_NAME)
    try:
        config = {
            "model_cfg": info["model_cfg"],
            "preprocess_cfg": info["preprocess_cfg"],
            "domainclip_cfg": info["domainclip_cfg"],
        }
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        clip, clip_state, tower = _clip_and_tower(model)
        save_file(safetensors_ready(clip_state), str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        if tower:
            save_file(safetensors_ready(tower), str(tmp / TOWER_WEIGHTS_NAME), metadata={"format": "pt"})
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
        tokenizer = hf_tokenizer(info["model_cfg"]["text_cfg"], info.get("source_dir"))
        if tokenizer is not None:
            # open_clip's local-dir / hf-hub loading reads a Hugging Face tokenizer from the folder itself
            tokenizer.save_pretrained(str(tmp))
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
    clip, clip_state, _ = _clip_and_tower(model)
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

    src = {k: v.detach().float().cpu() for k, v in clip_state.items()}
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
