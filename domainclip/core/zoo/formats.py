"""Native checkpoint formats of published models and the converters that turn them into domainclip models.

A published model ships in its authors' format: an open_clip hub folder, a bare open_clip state
dict (``.pt``, possibly wrapped in ``state_dict`` or prefixed ``module.``), a transformers
``CLIPModel`` folder, or a project's own layout (CAMMA's SurgVLP family, SurgCLIP). A *format* is a
converter function registered under a name::

    @register_format("open_clip_state_dict")
    def convert(entry: ZooEntry, folders: Mapping[str, Path]) -> ConvertedModel: ...

``folders`` maps each of the entry's source roles (``"weights"``, ``"text"``: see
:class:`~domainclip.core.zoo.registry.ZooSource`) to the local folder holding its files, verified
against their size and sha256. The converter reads the files (:func:`read_state_dict`: safetensors,
or ``torch.load(weights_only=True)``, never a pickled object), maps the keys to open_clip's layout
for the architecture it names, and returns them; :func:`~domainclip.core.zoo.loading.load_zoo_model`
builds the architecture with :func:`~domainclip.core.models.create_model` and loads the weights
strictly. A state dict the converter does not recognise is a :class:`~domainclip.core.hub.ModelFileError`
listing the unexpected and the missing keys (:func:`check_keys`).

Core formats live in :mod:`domainclip.core.zoo.loading` (open_clip state dicts and hub folders) and
:mod:`domainclip.core.zoo.hf_clip` (transformers ``CLIPModel``); a domain declares its own in
``DomainSpec.model_formats`` (``name -> "module:function"``), imported on first use.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from domainclip.core.hub import ModelFileError, read_safetensors
from domainclip.core.plugins import UnknownNameError

if TYPE_CHECKING:
    from domainclip.core.zoo.registry import ZooEntry

__all__ = [
    "ConvertedModel",
    "FormatConverter",
    "check_keys",
    "get_format",
    "hf_text_folder",
    "list_formats",
    "read_state_dict",
    "read_text_config",
    "register_format",
    "strip_prefix",
    "unwrap_state_dict",
    "weights_file",
]


@dataclass
class ConvertedModel:
    """What a format converter returns: an architecture and its weights in open_clip's layout.

    Args:
        arch: a registered architecture name (``"ViT-B-16"``, ``"surgvlp-rn50-clinicalbert"``) or an
            open_clip hub folder (its ``open_clip_config.json`` is the architecture).
        overrides: :func:`~domainclip.core.models.create_model` overrides deep-merged into the
            architecture's config: ``quick_gelu``, ``vision_cfg``, ``text_cfg`` (e.g. a Hugging Face
            text tower's config folder: ``{"hf_model_name": str(folder), "hf_tokenizer_name": str(folder)}``),
            ``preprocess_cfg`` and ``domainclip_cfg``.
        clip_state_dict: the CLIP's weights with the keys of ``model.clip.state_dict()`` (plain
            open_clip layout); ``None`` when ``arch`` is a folder whose own weights are loaded.
        tower_state_dict: a domain tower's own layers (keys not under ``clip.``), if any.
    """

    arch: str | Path
    overrides: dict[str, Any] = field(default_factory=dict)
    clip_state_dict: dict[str, torch.Tensor] | None = None
    tower_state_dict: dict[str, torch.Tensor] = field(default_factory=dict)


FormatConverter = Callable[["ZooEntry", Mapping[str, Path]], ConvertedModel]

_FORMATS: dict[str, FormatConverter] = {}
#: Core formats defined outside this module, imported on first use (``name -> "module:function"``).
_CORE_FORMATS = {
    "open_clip_state_dict": "domainclip.core.zoo.loading:convert_open_clip_state_dict",
    "open_clip_hub": "domainclip.core.zoo.loading:convert_open_clip_hub",
    "hf_clip": "domainclip.core.zoo.hf_clip:convert_hf_clip",
}


def register_format(name: str) -> Callable[[FormatConverter], FormatConverter]:
    """Register a converter function under a native format name (decorator)."""

    def decorator(fn: FormatConverter) -> FormatConverter:
        existing = _FORMATS.get(name)
        if existing is not None and (existing.__module__, existing.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"format {name!r} is already registered to {existing.__module__}.{existing.__qualname__}")
        _FORMATS[name] = fn
        return fn

    return decorator


def _declared_formats() -> dict[str, str]:
    from domainclip.core.plugins import get_domain, list_domains

    declared = dict(_CORE_FORMATS)
    for domain in list_domains():
        declared.update(getattr(get_domain(domain), "model_formats", {}) or {})
    return declared


def list_formats() -> list[str]:
    """Names of the registered native formats and of those core and domains declare."""
    return sorted(set(_FORMATS) | set(_declared_formats()))


def get_format(name: str) -> FormatConverter:
    """The converter of a native format, importing a domain's module on first use.

    Raises:
        UnknownNameError: no format of that name (the message lists close names).
    """
    if name not in _FORMATS:
        target = _declared_formats().get(name)
        if target is not None:
            from domainclip.core.plugins import resolve

            fn = resolve(target)
            _FORMATS.setdefault(name, fn)
    if name not in _FORMATS:
        raise UnknownNameError("model format", name, list_formats())
    return _FORMATS[name]


# ----------------------------------------------------------------------------------------------------
# reading state dicts
# ----------------------------------------------------------------------------------------------------


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """Read a weights file without unpickling objects.

    A safetensors file is read as it is, anything else with ``torch.load(weights_only=True)``
    (tensors, numbers, strings and containers only).

    Args:
        path: ``.safetensors``, ``.pt``, ``.pth``, ``.bin`` or ``.ckpt`` file.

    Returns:
        The file's top-level mapping as stored (use :func:`unwrap_state_dict` to reach the tensors).

    Raises:
        ModelFileError: one line: the file cannot be read, holds a pickled Python object, or is not a mapping.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return dict(read_safetensors(path))
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=_zip_file(path))
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
        what = f"a pickled Python object ({found.group(1)})" if found else "data that is not a tensor state dict"
        raise ModelFileError(
            f"{path} holds {what}: refused, weights are read with torch.load(weights_only=True) and nothing else is "
            "unpickled"
        ) from None
    except Exception as e:  # torch.load fails on damaged files in many ways (EOF, zip, index errors)
        raise ModelFileError(f"{path} cannot be read as a weights file: {type(e).__name__}: {_first_line(e)}") from e
    if not isinstance(data, Mapping):
        raise ModelFileError(f"{path} holds a {type(data).__name__}, not a state dict (a mapping of names to tensors)")
    return dict(data)


def _zip_file(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] + (" ..." if len(text) > 300 else "")


#: Keys that wrap a state dict in training checkpoints, tried in this order.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")


def unwrap_state_dict(data: Mapping[str, Any], *, prefixes: Iterable[str] = ("module.",)) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, inside its ``state_dict``/``model``/``module`` wrapper if there is one.

    DDP's ``module.`` prefix (or the given ``prefixes``) is stripped when every key has it.

    Args:
        data: what :func:`read_state_dict` returned.
        prefixes: key prefixes to strip when all keys share them.
    """
    current: Mapping[str, Any] = data
    for _ in range(3):
        if any(isinstance(v, torch.Tensor) for v in current.values()):
            break
        inner = next((current[k] for k in WRAPPER_KEYS if isinstance(current.get(k), Mapping)), None)
        if inner is None:
            break
        current = inner
    tensors = {k: v for k, v in current.items() if isinstance(v, torch.Tensor)}
    for prefix in prefixes:
        tensors = strip_prefix(tensors, prefix)
    return tensors


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``state_dict`` with ``prefix`` removed from every key, when every key starts with it (else unchanged)."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def check_keys(
    got: Iterable[str], expected: Iterable[str], *, what: str, ignore: Iterable[str] = (), limit: int = 8
) -> None:
    """Refuse a state dict whose keys are not the expected ones, listing the unexpected and the missing.

    Args:
        got: the keys the converted state dict has.
        expected: the keys the architecture needs.
        what: the file and format, for the message (``"pathgenclip.pt (open_clip_state_dict)"``).
        ignore: keys that may be missing without harm (buffers rebuilt at init, e.g. ``position_ids``).
        limit: how many keys of each kind the message names.

    Raises:
        ModelFileError: one line naming ``what``, counting and listing unexpected and missing keys.
    """
    got, expected, ignore = set(got), set(expected), set(ignore)
    unexpected = sorted(got - expected)
    missing = sorted(expected - got - ignore)
    if not unexpected and not missing:
        return

    def show(keys: list[str]) -> str:
        return ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")

    parts = []
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {show(unexpected)}")
    if missing:
        parts.append(f"{len(missing)} missing key(s): {show(missing)}")
    raise ModelFileError(f"{what} is not in the layout this converter reads: {'; '.join(parts)}")


def hf_text_folder(folder: str | Path, model_type: str) -> Path:
    """A Hugging Face text model folder whose ``config.json`` names its ``model_type``.

    Configs saved before transformers 3 (Bio_ClinicalBERT's, among others) have no ``model_type``,
    which current transformers refuses. The files in the cache stay as downloaded: a folder beside
    the zoo's download cache gets a copy of ``config.json`` with the type added and links to the other
    files (tokenizer, vocabulary). A config that has the key is used where it is.

    Args:
        folder: the downloaded text model folder.
        model_type: the transformers model type the config describes (``"bert"``).

    Returns:
        ``folder`` itself, or the derived folder (named by the config's sha256, so it is stable).
    """
    import hashlib
    import json

    from domainclip.core.io import atomic_write_text
    from domainclip.core.zoo.fetch import url_cache_dir

    folder = Path(folder)
    path = folder / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
        config = json.loads(text)
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{path}: cannot read the text tower's config ({_first_line(e)})") from e
    if not isinstance(config, dict):
        raise ModelFileError(f"{path} is not a JSON object")
    if config.get("model_type"):
        return folder
    derived = url_cache_dir() / "derived" / hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    derived.mkdir(parents=True, exist_ok=True)
    for member in folder.iterdir():
        link = derived / member.name
        if member.name != "config.json" and not link.exists():
            try:
                link.symlink_to(member.resolve())
            except FileExistsError:  # another process made it first
                pass
    atomic_write_text(derived / "config.json", json.dumps({**config, "model_type": model_type}, indent=2))
    return derived


def weights_file(entry: ZooEntry, folders: Mapping[str, Path], fmt: str) -> Path:
    """The local path of an entry's (first) weights file.

    Args:
        entry: the zoo entry.
        folders: the converter's ``folders`` (``"weights"`` holds the weights source's files).
        fmt: the format's name, for the message.

    Raises:
        ModelFileError: the entry has no weights source with a file.
    """
    source = entry.source("weights")
    if source is None or not source.files:
        raise ModelFileError(f"zoo:{entry.name}: {fmt} needs a 'weights' source with the checkpoint file")
    return Path(folders["weights"]) / source.files[0].name


def read_text_config(folder: Path | None, what: str, needs: str, model_type: str = "bert") -> dict[str, Any]:
    """The ``config.json`` of an entry's Hugging Face text source, checked to describe ``model_type``.

    A config without ``model_type`` (saved before transformers had the key) is taken as ``model_type``.

    Args:
        folder: ``folders.get("text")`` of a converter.
        what: the file and format, for messages.
        needs: what the text source must hold, in words (``"Bio_ClinicalBERT's config.json and vocab.txt"``).
        model_type: the transformers model type expected.

    Raises:
        ModelFileError: no text source, an unreadable config, or one of another model type.
    """
    import json

    if folder is None:
        raise ModelFileError(f"{what}: needs a 'text' source with {needs}")
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{what}: cannot read the text tower's {path}: {e}") from e
    if not isinstance(config, dict) or config.get("model_type", model_type) != model_type:
        found = config.get("model_type") if isinstance(config, dict) else type(config).__name__
        raise ModelFileError(f"{what}: {path} is not a {model_type.upper()} config (model_type {found!r})")
    return config
