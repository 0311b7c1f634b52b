"""Training recipes: a YAML delta over one default, validated, with ``--set`` overrides.

A recipe is resolved in three layers (dinov2 style): the defaults of :class:`Recipe` <- the YAML
file (which may name a ``base`` recipe it extends) <- ``--set a.b=c`` overrides from the command
line. Validation gives one clear message per mistake: an unknown key (with close matches), a value
of the wrong type, or a file that does not exist. The resolved recipe is written next to every
checkpoint and into the exported hub folder.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import glob
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import braceexpand
import yaml

from domainclip.core.errors import DomainClipError, RecipeError
from domainclip.core.mappings import deep_merge
from domainclip.core.options import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Range,
    UnitFloat,
    convert,
)

__all__ = [
    "DataConfig",
    "EvalConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "PrepareStep",
    "Recipe",
    "NO_DEFAULT",
    "RecipeError",
    "SourceConfig",
    "TrainConfig",
    "apply_overrides",
    "key_default",
    "load_recipe",
    "recipe_to_dict",
    "save_recipe",
]


@dataclass
class ModelConfig:
    """Which model to build and how to treat its towers."""

    #: registry name (``domainclip list models``), ``hf-hub:org/name@rev``, ``local-dir:PATH`` or a
    #: published model ``zoo:NAME`` (``domainclip zoo``) to fine-tune
    name: str = "dc-test-vit"
    #: open_clip tag (``openai``), ``hf-hub:org/name@rev``, a local folder or a ``.safetensors`` file
    pretrained: str | None = None
    cache_dir: str | None = None
    lock_image: bool = False
    lock_image_unlocked_groups: NonNegativeInt = 0
    lock_text: bool = False
    lock_text_unlocked_layers: NonNegativeInt = 0
    grad_checkpointing: bool = False
    #: extra keyword arguments for create_model (e.g. force_image_size)
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceConfig:
    """One stream of shards; several are mixed by weight."""

    urls: str | list[str] = ""
    weight: PositiveFloat = 1.0
    resampled: bool = False
    name: str | None = None


@dataclass
class PrepareStep:
    """A ``domainclip prepare`` command run before training when the shards are missing."""

    #: ``"<domain>/<command>"``, e.g. ``"math/synthetic"`` or ``"core/shapes"``
    command: str = ""
    #: options of that command, as on its command line without the dashes (``{"n": 2000}``)
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Streaming input: sources, batching and the corrupt-sample policy."""

    #: relative shard paths and ``{root}`` in URLs are resolved against this folder
    root: str = "data"
    train: list[SourceConfig] = field(default_factory=list)
    #: global batch size, split evenly over ranks
    batch_size: PositiveInt = 32
    num_workers: NonNegativeInt = 2
    shuffle_buffer: NonNegativeInt = 1000
    #: shards each data worker reads at once per source, one sample from each in turn, before the
    #: shuffle buffer: shards written in topic order (cluster by cluster) then still give batches of
    #: many topics (``bench/bench_shard_mixing.py``); costs that many open streams per worker
    shard_interleave: PositiveInt = 8
    #: ``shard``: each rank reads its own shards (scalable); ``sample``: every rank reads the whole
    #: stream and keeps every world_size-th sample after shuffling (global batches identical to a
    #: one-process run, at the cost of reading everything on every rank)
    split: Literal["shard", "sample"] = "shard"
    #: caption choice when a sample holds several: ``random`` | ``first`` | ``all``
    text_choice: Literal["random", "first", "all"] = "random"
    #: when a sample's text holds several languages (``{en: [...], pt: [...]}``): language -> weight
    #: of the one language drawn per sample (``{en: 2, pt: 1}``; a language the sample lacks is
    #: skipped, the others renormalised); empty: every language of the sample equally. With
    #: ``text_choice: all`` every caption of every listed language is kept
    languages: dict[str, PositiveFloat] = field(default_factory=dict)
    #: apply the model's training augmentation (else the evaluation transform)
    augment: bool = True
    max_corrupt_fraction: UnitFloat = 0.01
    #: largest image (width x height pixels) a training sample may hold; a larger one is skipped and
    #: counted as ``bad_image`` before it is decoded (a 400 KB PNG can decode to gigabytes)
    max_image_pixels: PositiveInt = 50_000_000
    #: let shard URLs be ``pipe:`` shell commands. Off by default; refused in a recipe read from a hub
    #: folder or a checkpoint, which is data from elsewhere, never code to run
    allow_pipe: bool = False
    #: options of the task's own sample decoder (e.g. ``{num_frames: 16}`` for video tasks)
    decoder_args: dict[str, Any] = field(default_factory=dict)
    #: where training images are decoded: ``cpu`` (in the data workers, with PIL) or ``cuda`` (the
    #: workers pass JPEG bytes through; each batch is decoded at once with nvJPEG and cropped, resized
    #: and normalised on the GPU, as the model's transform does on CPU; other formats are decoded in
    #: the workers and counted). Needs a CUDA ``train.device`` and a task on the core image decoder
    decode_device: Literal["cpu", "cuda"] = "cpu"
    #: page-locked batches, so host-to-GPU copies run asynchronously: ``auto`` (on with CUDA) | true | false
    pin_memory: Literal["auto"] | bool = "auto"
    prepare: list[PrepareStep] = field(default_factory=list)


@dataclass
class LossConfig:
    """The contrastive objective (``domainclip.core.losses`` registry)."""

    name: str = "clip"
    local_loss: bool = False
    gather_with_grad: bool = True
    #: extra constructor arguments of the loss
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """AdamW with linear warmup and cosine decay."""

    lr: PositiveFloat = 5e-4
    weight_decay: NonNegativeFloat = 0.2
    betas: list[Annotated[float, Range(0, 1, high_open=True)]] = field(default_factory=lambda: [0.9, 0.98])
    eps: PositiveFloat = 1e-6
    warmup_steps: NonNegativeInt = 100
    #: final learning rate as a fraction of ``lr``
    min_lr_ratio: UnitFloat = 0.0
    #: ``cosine`` | ``constant`` | ``linear``
    schedule: Literal["cosine", "constant", "linear"] = "cosine"
    #: parameters never decayed: biases, norms, embeddings, logit scale (open_clip's rule)
    no_decay: list[str] = field(
        default_factory=lambda: ["bias", "norm", "ln_", "bn", "logit_scale", "logit_bias", "embedding", "token"]
    )
    #: clip the gradient norm to this value; ``null`` or 0 turns clipping off
    grad_clip: NonNegativeFloat | None = 1.0
    accum_steps: PositiveInt = 1


@dataclass
class TrainConfig:
    """Loop length, precision, distribution, logging and checkpoints."""

    steps: PositiveInt = 1000
    seed: NonNegativeInt = 0
    #: ``image_text`` | ``multi_caption`` | ``video_text`` | ``views_text`` (engine task registry), or a
    #: domain's task as ``<domain>/<task>`` (e.g. ``surgery/video_clip``)
    task: str = "image_text"
    #: ``fp32`` | ``bf16`` | ``fp16`` (autocast; mixed precision only on GPU)
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    #: torch threads of each training process; 0 = on CPU the cores left after the data workers
    threads: NonNegativeInt = 0
    #: keep conv weights (and so activations) in channels-last layout, as timm's ``--channels-last``:
    #: faster convolutions on CPU (oneDNN) and on tensor-core GPUs; no effect on transformer towers
    channels_last: bool = False
    #: ``auto`` (a GPU when there is one) | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``
    device: str = "auto"
    #: ``ddp`` | ``fsdp`` (FSDP2, GPU)
    strategy: Literal["ddp", "fsdp"] = "ddp"
    #: ``torch.compile`` of the model (domainclip/core/engine/compile.py): ``auto`` (``blocks`` on CUDA,
    #: ``off`` elsewhere) | ``model`` (the whole forward) | ``blocks`` (each repeated block on its own:
    #: regional compilation, fast start-up) | ``off``; ``true`` / ``false`` mean ``model`` / ``off``
    compile: bool | Literal["auto", "model", "blocks", "off"] = "auto"
    log_every: PositiveInt = 10
    checkpoint_every: PositiveInt = 500
    keep_checkpoints: NonNegativeInt = 3
    eval_every: NonNegativeInt = 0
    #: stop when the loss is NaN/Inf this many steps in a row (a single bad step is skipped)
    max_bad_steps: PositiveInt = 5
    tensorboard: bool = True
    progress: bool = True
    deterministic: bool = False


@dataclass
class EvalConfig:
    """Eval suites run at ``eval_every`` and at the end of training."""

    suites: list[str] = field(default_factory=list)
    #: data folder given to every suite (``{root}`` is ``data.root``); ``None`` lets suites generate theirs
    data: str | None = None
    #: per-suite data folders, overriding ``data`` (``{"surgery/retrieval": "{root}/heldout"}``)
    suite_data: dict[str, str] = field(default_factory=dict)
    batch_size: PositiveInt = 64
    #: per-suite keyword options (``{"pathology/slides": {"top_k": 10}}``)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Recipe:
    """A complete training recipe."""

    #: the domain the recipe belongs to (``core`` for the shared core)
    domain: str = "core"
    description: str = ""
    #: another recipe this one extends (``"<domain>/<name>"`` or a path)
    base: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    #: the paper the recipe follows and what differs from it
    paper: dict[str, Any] = field(default_factory=dict)
    #: where the recipe came from (set by load_recipe)
    source: str | None = None


# ---------------------------------------------------------------------------------------------
# validation


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``, building nested dataclasses.

    Other values follow the rules of :func:`domainclip.core.options.convert`.
    """
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, where)
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list and args and dataclasses.is_dataclass(args[0]):
        if not isinstance(value, list | tuple):
            raise RecipeError(f"{where}: must be a list; got {value!r}")
        return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    try:
        return convert(value, tp)
    except ValueError as e:
        raise RecipeError(f"{where}: {e}") from None


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            close = difflib.get_close_matches(key, names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise RecipeError(f"{where}: unknown key {key!r}{hint}; known keys: {', '.join(names)}")
        kwargs[key] = _convert(value, hints[key], f"{where}.{key}" if where else key)
    return cls(**kwargs)


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _check_values(recipe: Recipe, where: str) -> None:
    """The checks a field's type cannot make (types, choices and ranges are checked while building)."""
    if len(recipe.optim.betas) != 2:
        raise RecipeError(f"{where}: optim.betas must hold two numbers (beta1, beta2), got {recipe.optim.betas}")
    if not _DEVICE.match(recipe.train.device):
        raise RecipeError(
            f"{where}: train.device must be auto, cpu, cuda, cuda:N or mps, got {recipe.train.device!r}"
        )
    if recipe.data.decode_device == "cuda":
        _check_decode_device(recipe, where)
    for key in ("suite_data", "options"):
        for suite in getattr(recipe.eval, key):
            if suite not in recipe.eval.suites:
                raise RecipeError(
                    f"{where}: eval.{key} names {suite!r}, which is not in eval.suites ({recipe.eval.suites})"
                )


def _check_decode_device(recipe: Recipe, where: str) -> None:
    """``data.decode_device: cuda`` needs a CUDA device and the core decoder's ``image`` input."""
    device = recipe.train.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not device.startswith("cuda"):
        raise RecipeError(
            f"{where}: data.decode_device is cuda but the run's device is {device} (train.device: "
            f"{recipe.train.device}); use data.decode_device: cpu, or train on a CUDA GPU"
        )
    from domainclip.core.engine.tasks import get_task
    from domainclip.core.plugins import UnknownNameError

    try:
        task = get_task(recipe.train.task)
    except UnknownNameError:
        return  # the task check (core.checks) names it
    if task.visual_key != "image" or task.make_decoder is not None:
        raise RecipeError(
            f"{where}: data.decode_device: cuda decodes the image of the core image tasks (image_text, "
            f"multi_caption), not task {recipe.train.task!r}'s input; use data.decode_device: cpu"
        )


# ---------------------------------------------------------------------------------------------
# loading


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from e
    except UnicodeDecodeError as e:
        raise RecipeError(f"{path}: not UTF-8 text (byte {e.start}); save the recipe as UTF-8") from None
    except IsADirectoryError:
        raise RecipeError(f"{path}: is a folder, not a recipe file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping at the top level")
    return data


#: Files that mark a folder as a published model or a checkpoint: a recipe inside is data, not code.
_UNTRUSTED_MARKERS = ("open_clip_config.json", "open_clip_model.safetensors", "state.pt", "model.safetensors")


def is_untrusted_recipe(path: str | Path) -> bool:
    """Whether a recipe file lies in a hub folder or a checkpoint (then it may never run a command)."""
    folder = Path(path).parent
    return any((folder / marker).is_file() for marker in _UNTRUSTED_MARKERS)


def _read_with_bases(path: Path, seen: tuple[Path, ...] = (), *, untrusted: list[Path]) -> dict[str, Any]:
    from domainclip.core.resources import recipe_path

    if path in seen:
        raise RecipeError(f"{path}: recipe 'base' chain loops: {' -> '.join(map(str, seen + (path,)))}")
    data = _read_yaml(path)
    if is_untrusted_recipe(path):
        untrusted.append(path)
    base = data.get("base")
    if base:
        base_path = recipe_path(base) if not (path.parent / base).is_file() else path.parent / base
        data = deep_merge(_read_with_bases(Path(base_path), seen + (path,), untrusted=untrusted), data)
    return data


def _parse_scalar(text: str, item: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise RecipeError(f"--set {item!r}: the value is not valid YAML ({problem})") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw recipe mapping.

    A number in the dotted key indexes a list: ``data.prepare.0.args.n=500``.
    """
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"--set {item!r}: expected key=value, e.g. --set optim.lr=1e-4")
        dotted, _, raw = item.partition("=")
        keys = dotted.strip().split(".")
        if not all(keys):
            raise RecipeError(f"--set {item!r}: {dotted!r} is not a dotted key such as optim.lr")
        node: Any = data
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise RecipeError(f"--set {item!r}: {'.'.join(keys[:depth])} is a list of {len(node)}; "
                                      f"{key!r} is not an index in it")
                key = int(key)
            elif not isinstance(node, dict):
                raise RecipeError(f"--set {item!r}: {keys[depth - 1]!r} is not a section")
            if last:
                node[key] = _parse_scalar(raw, item)
            else:
                node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    return data


def load_recipe(
    source: str | Path | dict[str, Any],
    overrides: list[str] | None = None,
    *,
    check_files: bool = False,
    check_plugins: bool = True,
) -> Recipe:
    """Resolve and validate a recipe.

    Args:
        source: ``"<domain>/<name>"`` of a shipped recipe, a path to a YAML file, or a mapping.
        overrides: ``key.sub=value`` strings applied last.
        check_files: also check that local shard paths exist (unless a prepare step makes them).
        check_plugins: resolve the prepare commands, task, loss and eval suites the recipe names and
            check their options against their signatures (:func:`domainclip.core.checks.check_plugins`);
            this imports the domains the recipe uses.

    Raises:
        RecipeError: naming the file and the offending key.
    """
    from domainclip.core.resources import recipe_path

    untrusted: list[Path] = []
    if isinstance(source, dict):
        where, data = "<recipe>", dict(source)
    else:
        path = recipe_path(str(source))
        where, data = str(path), _read_with_bases(path, untrusted=untrusted)
    data = apply_overrides(data, overrides or [])
    data.pop("source", None)
    try:
        recipe = _build(Recipe, data, "")
    except RecipeError as e:
        raise RecipeError(f"{where}: {e}") from None
    _check_values(recipe, where)
    if recipe.data.allow_pipe and untrusted:
        raise RecipeError(
            f"{where}: data.allow_pipe is refused for a recipe read from a hub folder or checkpoint "
            f"({untrusted[0]}): its pipe: URLs would run commands someone else wrote; copy the recipe, read it "
            "and set allow_pipe in your copy"
        )
    recipe.source = where
    if check_plugins:
        from domainclip.core.checks import check_plugins as check

        check(recipe, where)
    if check_files:
        check_recipe_files(recipe, where)
    return recipe


def _is_remote(url: str) -> bool:
    return url.startswith(("pipe:", "hf://", "http://", "https://", "s3://", "gs://"))


def resolve_urls(recipe: Recipe, source: SourceConfig) -> list[str]:
    """Shard URLs of one source with ``{root}`` and relative paths resolved against data.root."""
    urls = [source.urls] if isinstance(source.urls, str) else list(source.urls)
    root = recipe.data.root
    out = []
    for url in urls:
        url = url.replace("{root}", root)
        if not _is_remote(url) and not os.path.isabs(url):
            url = os.path.join(root, url)
        out.append(url)
    return out


def missing_shards(recipe: Recipe) -> list[tuple[int, list[str], int]]:
    """Local shards that do not exist: ``(source index, missing paths, paths in the source)``."""
    gaps = []
    for i, source in enumerate(recipe.data.train):
        for url in resolve_urls(recipe, source):
            if _is_remote(url):
                continue
            paths = [p for pattern in braceexpand.braceexpand(url) for p in (glob.glob(pattern) or [pattern])]
            missing = [p for p in paths if not os.path.exists(p)]
            if missing:
                gaps.append((i, missing, len(paths)))
    return gaps


def check_recipe_files(recipe: Recipe, where: str, *, prepare_fills_gaps: bool = True) -> None:
    """Fail clearly when a local shard pattern matches no file.

    Args:
        recipe: the recipe to check.
        where: the recipe's file, for the message.
        prepare_fills_gaps: missing shards are fine when the recipe has prepare steps that make them.
    """
    if not recipe.data.train:
        raise RecipeError(f"{where}: data.train lists no sources")
    if prepare_fills_gaps and recipe.data.prepare:
        return
    gaps = missing_shards(recipe)
    if gaps:
        i, missing, total = gaps[0]
        raise RecipeError(
            f"{where}: data.train[{i}].urls: {len(missing)} of {total} shard(s) missing, "
            f"e.g. {missing[0]} (run `domainclip prepare ...` or set data.root)"
        )
    from domainclip.core.outputs import require_complete

    for i, source in enumerate(recipe.data.train):
        folders = set()
        for url in resolve_urls(recipe, source):
            if _is_remote(url):
                continue
            for path in braceexpand.braceexpand(url):
                folders.add(path if os.path.isdir(path) else os.path.dirname(path) or ".")
        for folder in sorted(folders):
            try:
                require_complete(folder, f"data.train[{i}]:")
            except DomainClipError as e:
                raise RecipeError(f"{where}: {e}") from None


#: What :func:`key_default` returns for a key without a default (or not a recipe key).
NO_DEFAULT: Any = object()


def key_default(key: str) -> Any:
    """The default of a dotted recipe key (``"data.decode_device"``), or :data:`NO_DEFAULT` where it has none.

    Args:
        key: section and field names joined by dots, as :func:`recipe_to_dict` nests them.
    """
    cls: Any = Recipe
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(cls):
            return NO_DEFAULT
        found = {f.name: f for f in dataclasses.fields(cls)}.get(part)
        if found is None:
            return NO_DEFAULT
        if i == len(parts) - 1:
            if found.default is not dataclasses.MISSING:
                return found.default
            if found.default_factory is not dataclasses.MISSING:
                return found.default_factory()
            return NO_DEFAULT
        cls = typing.get_type_hints(cls).get(part)
    return NO_DEFAULT


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """Plain mapping of a recipe (for YAML/JSON)."""
    return dataclasses.asdict(recipe)


def save_recipe(recipe: Recipe, path: Path) -> Path:
    """Write the resolved recipe as YAML, atomically."""
    from domainclip.core.io import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False))
