"""Loading a model from any spec for inference: :func:`load_model`, beside :func:`create_model`.

A spec is a training run folder or one of its checkpoint folders (:mod:`domainclip.core.engine.runs`),
a hub folder, ``local-dir:PATH``, ``hf-hub:org/name[@revision]`` (:mod:`domainclip.core.hub`), a
published model ``zoo:NAME`` (:mod:`domainclip.core.zoo`) or a registry name (random weights).
:func:`locate_model` says what a spec resolves to, and :class:`ModelSource` records it (with the
sha256 of every weight file) in results files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from domainclip.core.engine.runs import CHECKPOINTS_DIR, MODEL_INFO_NAME, is_run_dir, load_run, resolve_run
from domainclip.core.errors import InputError, InputNotFoundError
from domainclip.core.hub import (
    CONFIG_NAME,
    HF_HUB_PREFIX,
    LOCAL_DIR_PREFIX,
    TOWER_WEIGHTS_NAME,
    find_weights_file,
    parse_hf_hub_id,
    resolve_folder,
)
from domainclip.core.models.registry import create_model, get_image_transform, get_tokenizer, read_folder_config
from domainclip.core.zoo.registry import ZOO_PREFIX

__all__ = ["RANDOM_WEIGHTS_SEED", "ModelSource", "check_device", "load_model", "locate_model"]

#: Seed of the random weights a registry name is loaded with (:func:`load_model`), so two
#: evaluations of the same untrained architecture give the same numbers.
RANDOM_WEIGHTS_SEED = 0


@dataclass(frozen=True)
class ModelSource:
    """What a model spec resolved to: the files :func:`load_model` reads, for results files to record.

    Args:
        spec: the spec as given.
        kind: ``"run"`` (a training run or one of its checkpoint folders), ``"folder"`` (a local
            hub folder), ``"hf-hub"`` (a snapshot of the Hugging Face cache), ``"zoo"`` (a published
            model, :mod:`domainclip.core.zoo`) or ``"registry"`` (an architecture name: random
            weights, seeded with :data:`RANDOM_WEIGHTS_SEED`).
        path: the run, hub or snapshot folder; ``None`` for a registry name.
        weights: the weight files read (none for a registry name).
        hub_id: ``org/name`` of a hub model.
        revision: the commit of the hub snapshot.
        checkpoint: the checkpoint folder of a run.
        zoo: the zoo entry's name, format and licence, for a ``zoo:`` spec.
        digests: sha256 of weight files already hashed (the zoo's checks), by path.
    """

    spec: str
    kind: str
    path: Path | None = None
    weights: tuple[Path, ...] = ()
    hub_id: str | None = None
    revision: str | None = None
    checkpoint: Path | None = None
    zoo: dict[str, str] | None = None
    digests: dict[Path, str] | None = None

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
        if self.zoo is not None:
            out["zoo"] = dict(self.zoo)
        out["random_weights"] = self.random_weights
        if self.random_weights:
            out["seed"] = RANDOM_WEIGHTS_SEED
        known = self.digests or {}
        out["weights_sha256"] = {_relative(w, self.path): known.get(w) or _sha256(w) for w in self.weights}
        return out


def _relative(path: Path, root: Path | None) -> str:
    return str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _folder_weights(folder: Path) -> tuple[Path, ...]:
    """The weight files :func:`~domainclip.core.models.registry.load_folder_weights` reads from a hub folder."""
    read_folder_config(folder)  # a folder without a valid config fails here, naming the config
    tower = folder / TOWER_WEIGHTS_NAME
    return (find_weights_file(folder), *((tower,) if tower.is_file() else ()))


def locate_model(spec: str | Path, *, cache_dir: str | Path | None = None) -> ModelSource:
    """Resolve a model spec to what :func:`load_model` would read, without building the model.

    Args:
        spec: a training run folder (its newest checkpoint) or one of its ``checkpoints/step_*``
            folders, a hub folder path, ``local-dir:PATH``, ``hf-hub:org/name[@revision]`` (resolved
            through the HF cache, offline included), ``zoo:NAME`` (its files are fetched and checked
            against their sha256) or a registry name (random weights).
        cache_dir: Hugging Face cache folder.

    Raises:
        InputNotFoundError: a folder that is neither a run nor a hub folder, a run without a
            checkpoint, a path that does not exist, a hub id that cannot be resolved, or a zoo
            file missing offline.
        UnknownNameError: an unknown zoo name.
        ModelFileError: a zoo file that differs from its pinned sha256.
    """
    text = str(spec)
    if text.startswith(ZOO_PREFIX):
        return _locate_zoo(text, cache_dir)
    path = Path(text).expanduser()
    if not text.startswith((HF_HUB_PREFIX, LOCAL_DIR_PREFIX)) and path.is_dir():
        if is_run_dir(path):
            run_dir, weights = resolve_run(path)
            weights = weights.resolve()
            return ModelSource(text, "run", run_dir.resolve(), (weights,), checkpoint=weights.parent)
        if not (path / CONFIG_NAME).is_file() and (path / CHECKPOINTS_DIR).is_dir():
            raise InputNotFoundError(f"not a domainclip run dir: {path / MODEL_INFO_NAME} missing")
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


def _locate_zoo(text: str, cache_dir: str | Path | None) -> ModelSource:
    """Resolve ``zoo:NAME``: fetch and check the entry's files (downloading once, or from the cache offline)."""
    from domainclip.core.zoo.fetch import fetch_entry, file_sha256_cached
    from domainclip.core.zoo.registry import get_zoo_entry

    entry = get_zoo_entry(text)
    folders = fetch_entry(entry, cache_dir=cache_dir)
    source = entry.source("weights")
    assert source is not None
    folder = folders["weights"]
    weights = tuple(folder / f.name for f in source.files)
    revision = source.revision
    if source.hub is not None and revision is None and folder.parent.name == "snapshots":
        revision = folder.name
    return ModelSource(
        text, "zoo", folder, weights, hub_id=source.hub, revision=revision,
        zoo={"name": entry.name, "format": entry.format, "licence": entry.licence},
        digests={w: file_sha256_cached(w) for w in weights},
    )


def check_device(device: str | torch.device) -> torch.device:
    """The torch device ``device`` names, refused when this machine does not have it.

    Args:
        device: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or a torch device.

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
    elif source.kind == "zoo":
        from domainclip.core.models.registry import ZOO_LOADER
        from domainclip.core.plugins import resolve

        model = resolve(ZOO_LOADER)(str(spec), device=device, precision=precision, cache_dir=cache_dir)
    elif source.random_weights:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            model = create_model(source.load_spec(), device=device, precision=precision, cache_dir=cache)
    else:
        model = create_model(source.load_spec(), device=device, precision=precision, cache_dir=cache)
    model.eval()
    model.domainclip_source = source.record()
    return model, get_image_transform(model, is_train=False), get_tokenizer(model, cache_dir=cache)
