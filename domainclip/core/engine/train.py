"""The training loop: one readable function, in commented phases.

``schedules -> forward/backward -> clip/step -> log -> eval/checkpoint``. Precision, distribution,
checkpoints and logging live in the small modules beside this one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml

from domainclip.core.engine.checkpoint import (
    capture_rng_state,
    find_latest_checkpoint,
    full_training_state,
    load_resume_point,
    load_training_state,
    restore_rng_state,
    save_checkpoint,
)
from domainclip.core.engine.compile import compile_blocks, compile_forward, resolve_compile_mode
from domainclip.core.engine.distributed import DistInfo, init_distributed, wrap_model
from domainclip.core.engine.optim import build_optimizer, build_scheduler
from domainclip.core.engine.precision import autocast_context, make_grad_scaler
from domainclip.core.engine.run_log import RunLogger
from domainclip.core.engine.runs import (
    CHECKPOINTS_DIR,
    EVAL_DIR,
    MODEL_INFO_NAME,
    RECIPE_NAME,
    RESULTS_NAME,
    WEIGHTS_NAME,
    step_dir_name,
)
from domainclip.core.engine.tasks import Task, get_task
from domainclip.core.errors import DomainClipError
from domainclip.core.io import atomic_write_text
from domainclip.core.outputs import OutputFolder
from domainclip.core.recipe import Recipe, check_recipe_files, key_default, recipe_to_dict, resolve_urls

__all__ = [
    "DATA_WAIT_WARN",
    "RESUME_MUTABLE",
    "DataWait",
    "NonFiniteLossError",
    "RefreshContext",
    "TrainResult",
    "data_wait_message",
    "prepare_data",
    "resume_changes",
    "train",
]


class NonFiniteLossError(DomainClipError, FloatingPointError):
    """The loss was NaN/Inf for too many consecutive steps (the message says which recipe keys to change)."""


@dataclass
class TrainResult:
    """What a finished run leaves behind."""

    run_dir: Path
    steps: int
    final_checkpoint: Path | None
    final_loss: float
    corrupt_counts: dict[str, int] = field(default_factory=dict)
    eval_results: dict[str, dict[str, float]] = field(default_factory=dict)


#: Above this share of the training time spent waiting for batches, the end-of-run summary warns
#: that the data loader did not keep up.
DATA_WAIT_WARN = 0.05


class DataWait:
    """Time the loop spends waiting for batches: per log interval, and over the run for its summary.

    A wait is timed from asking the loader's iterator for the step's batches until it returns them
    (with a loader that prefetches to the GPU, until they are on the device). The run's summary
    leaves out the first step, whose wait is the loader's start-up (workers, shuffle buffer).
    """

    def __init__(self) -> None:
        self._interval = 0.0
        self._total = 0.0
        self._steps = 0
        self._from: float | None = None

    def add(self, asked: float, arrived: float) -> None:
        """Record one step's wait, from ``asked`` to ``arrived`` (``time.perf_counter()`` values)."""
        self._interval += arrived - asked
        self._steps += 1
        if self._steps == 2:
            self._from = asked
        if self._steps >= 2:
            self._total += arrived - asked

    def interval(self, steps: int, elapsed: float) -> tuple[float, float]:
        """Mean wait per step and share of ``elapsed`` (the interval's wall time) since the last call.

        Args:
            steps: steps in the interval.
            elapsed: its wall-clock seconds.
        """
        wait, self._interval = self._interval, 0.0
        return wait / max(steps, 1), min(1.0, wait / max(elapsed, 1e-9))

    def summary(self) -> dict[str, Any] | None:
        """Wait and wall seconds from the second step to now, their ratio and whether the loader kept up."""
        if self._from is None:
            return None
        wall = time.perf_counter() - self._from
        frac = min(1.0, self._total / max(wall, 1e-9))
        return {"steps": self._steps - 1, "wait_s": round(self._total, 3), "wall_s": round(wall, 3),
                "data_wait_frac": round(frac, 4), "kept_up": frac <= DATA_WAIT_WARN}


def data_wait_message(summary: dict[str, Any]) -> str:
    """The end-of-run line about the data loader, from :meth:`DataWait.summary`."""
    share = (f"{summary['data_wait_frac']:.1%} of the training time ({summary['wait_s']:.1f} s of "
             f"{summary['wall_s']:.1f} s over {summary['steps']} steps after the first)")
    if summary["kept_up"]:
        return f"data: the loader kept up: the steps waited for batches {share}"
    return (f"WARNING: the data loader did not keep up: the steps waited for batches {share}, over "
            f"{DATA_WAIT_WARN:.0%}; raise data.num_workers, or decode on the GPU")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


_STEP_REASONS = {
    "missing": "its output folder does not exist yet",
    "partial": "its earlier run did not finish",
    "different": "its output was made with other arguments",
}


def prepare_data(recipe: Recipe, info: DistInfo | None = None) -> list[dict[str, Any]]:
    """Make sure the recipe's prepared data is there and whole (main rank; the others wait).

    A prepare step's output folder is used only when its manifest says it is complete and was made
    by the same command with the same arguments. Otherwise the step runs again and replaces what a
    domainclip command wrote there before; a folder holding files domainclip did not write is
    refused with one line. Once a step runs, the steps after it run too (they may read its output).
    """
    from domainclip.core.prepare import run_prepare_step, step_state

    summaries: list[dict[str, Any]] = []
    where = recipe.source or "<recipe>"
    if recipe.data.prepare and (info is None or info.is_main):
        rerun = False
        for i, step in enumerate(recipe.data.prepare):
            state = step_state(step, recipe.data.root)
            if state == "done" and not rerun:
                continue
            if state == "foreign":
                from domainclip.core.recipe import RecipeError

                raise RecipeError(
                    f"{where}: data.prepare[{i}] ({step.command}) writes into a folder that holds files domainclip "
                    "did not write; move them, or point data.root elsewhere"
                )
            reason = _STEP_REASONS.get(state, "an earlier step ran again")
            print(f"prepare {step.command}: running, because {reason}", flush=True)
            summaries.append(run_prepare_step(step, root=recipe.data.root, overwrite=True))
            rerun = True
    if info is not None:
        _barrier(info)
    check_recipe_files(recipe, where, prepare_fills_gaps=False)
    return summaries


def _build_loader(
    recipe: Recipe, task: Task, preprocess: Callable, tokenizer: Callable, info: DistInfo, *, one_pass: bool = False
):
    """The training loader; ``one_pass``: one unshuffled pass over every source (this rank's share), not resampled.

    Its batches come on ``info.device`` (:class:`~domainclip.core.engine.tasks.DeviceBatches`), decoded
    there with ``data.decode_device: cuda``.
    """
    from domainclip.core.data.decode import SampleDecoder
    from domainclip.core.data.gpu_decode import DeviceImageDecoder, DeviceImageTransform
    from domainclip.core.data.reader import Source, build_loader
    from domainclip.core.engine.tasks import DeviceBatches
    from domainclip.core.options import option_names

    per_rank, rem = divmod(recipe.data.batch_size, info.world_size)
    if rem:
        from domainclip.core.recipe import RecipeError

        raise RecipeError(
            f"{recipe.source or '<recipe>'}: data.batch_size={recipe.data.batch_size} is not divisible by the "
            f"{info.world_size} processes"
        )
    sources = [
        Source(resolve_urls(recipe, s), weight=s.weight, resampled=s.resampled and not one_pass, name=s.name)
        for s in recipe.data.train
    ]
    text_choice = task.text_choice or recipe.data.text_choice
    on_device = None  # with data.decode_device: cuda, the image transform's device path
    if task.make_decoder is not None:  # its options are checked by load_recipe (core.checks)
        engine_args: dict[str, Any] = {"seed": recipe.train.seed, "text_choice": text_choice}
        if "max_image_pixels" in option_names(task.make_decoder):
            engine_args["max_image_pixels"] = recipe.data.max_image_pixels
        if "languages" in option_names(task.make_decoder):
            engine_args["languages"] = recipe.data.languages
        decoder = task.make_decoder(preprocess, tokenizer, **engine_args, **recipe.data.decoder_args)
    else:  # a task without its own decoder takes no data.decoder_args (load_recipe checks it)
        on_device = DeviceImageTransform.from_transform(preprocess) if recipe.data.decode_device == "cuda" else None
        decoder = SampleDecoder(
            image_transform=on_device or preprocess,  # the reader seeds global RNGs per sample: augmentations
            # resume exactly
            keep_jpeg=on_device is not None,  # JPEGs go to the device undecoded, with their crop box drawn here
            tokenizer=tokenizer,
            text_choice=text_choice,
            seed=recipe.train.seed,
            required=(task.visual_key, "text"),
            max_image_pixels=recipe.data.max_image_pixels,  # checked from the header, before decoding
            languages=recipe.data.languages,  # one language drawn per sample from multilingual captions
        )
    pin = recipe.data.pin_memory
    loader = build_loader(
        sources,
        decoder,
        batch_size=per_rank,
        num_workers=recipe.data.num_workers,
        seed=recipe.train.seed,
        rank=info.rank,
        world_size=info.world_size,
        shuffle_buffer=0 if one_pass else recipe.data.shuffle_buffer,
        shard_interleave=recipe.data.shard_interleave,
        max_corrupt_fraction=recipe.data.max_corrupt_fraction,
        split=recipe.data.split,
        allow_pipe=recipe.data.allow_pipe,  # pipe: URLs run shell commands: only when the recipe says so
        pin_memory=info.device.type == "cuda" if pin == "auto" else pin,
        **({"epochs": 1, "drop_last": False} if one_pass else {}),
    )
    return DeviceBatches(loader, info.device, DeviceImageDecoder(on_device, info.device) if on_device else None)


@dataclass
class RefreshContext:
    """What the engine offers a model's ``refresh(step, total_steps, context)`` hook (called before every step).

    A model that keeps state computed from the training data (e.g. a table of mined views)
    decides itself whether it is due and reads the data through :meth:`batches`.

    Args:
        recipe: the run's recipe.
        task: its training task (whose decoder :meth:`batches` uses).
        preprocess: the image transform of :meth:`batches` (the evaluation one: no augmentation).
        tokenizer: the model's tokenizer.
        info: this process's rank, world size and device.
        autocast: the run's autocast context factory.
    """

    recipe: Recipe
    task: Task
    preprocess: Callable
    tokenizer: Callable
    info: DistInfo
    autocast: Callable[[], Any]

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self.info.device

    @property
    def world_size(self) -> int:
        """Number of processes."""
        return self.info.world_size

    @property
    def seed(self) -> int:
        """The run's seed (``train.seed``)."""
        return self.recipe.train.seed

    @property
    def global_batch_size(self) -> int:
        """Samples per optimizer step over all processes (``data.batch_size`` x ``optim.accum_steps``)."""
        return self.recipe.data.batch_size * self.recipe.optim.accum_steps

    def batches(self) -> Any:
        """One finite, unshuffled pass over the training sources (this rank's share), decoded by the task's decoder.

        Resampled sources are read once, shard by shard; the training stream's position is not touched.
        """
        return iter(_build_loader(self.recipe, self.task, self.preprocess, self.tokenizer, self.info, one_pass=True))

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
        return _gather_objects(obj, self.info)


def _cpu_threads(recipe: Recipe, info: DistInfo) -> int:
    """Torch threads for the training process: ``train.threads``, or on CPU the cores left over.

    Data workers are processes of their own (one thread each); a training process that also
    starts one thread per core oversubscribes the CPU and, with OpenMP spinning, runs many times
    slower (bench/README.md). On CPU the default is therefore cores / processes - workers, at least 1.
    """
    if recipe.train.threads:
        return recipe.train.threads
    if info.device.type != "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // info.world_size - recipe.data.num_workers)


def _configure_towers(model: torch.nn.Module, recipe: Recipe) -> None:
    cfg = recipe.model
    if cfg.lock_image:
        model.lock_image_tower(unlocked_groups=cfg.lock_image_unlocked_groups)
    if cfg.lock_text:
        model.lock_text_tower(unlocked_layers=cfg.lock_text_unlocked_layers)
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)


def _gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


#: Recipe keys that may change when a run is resumed: where things are, how often to log, save and
#: evaluate, and what to evaluate. Every other key (model, data stream, loss, optimizer, schedule,
#: steps, seed, precision, ...) defines the run, so ``--resume`` with another value is refused.
RESUME_MUTABLE: tuple[str, ...] = (
    "description", "paper", "source", "base", "model.cache_dir",
    "data.root", "data.prepare", "data.max_corrupt_fraction", "data.max_image_pixels", "data.allow_pipe",
    "data.pin_memory",
    "train.device", "train.threads", "train.compile", "train.log_every", "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.eval_every", "train.max_bad_steps", "train.tensorboard", "train.progress", "train.deterministic",
    "eval",
)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flatten(value, f"{prefix}{key}.") if isinstance(value, dict) and value else
                   {f"{prefix}{key}": value})
    return out


def resume_changes(saved_yaml: str, recipe: Recipe) -> list[str]:
    """Keys of :data:`RESUME_MUTABLE` in which ``recipe`` differs from a checkpoint's saved recipe.

    Raises:
        RecipeError: the recipe also differs in keys that define the run (each listed, old -> new).
    """
    from domainclip.core.recipe import RecipeError

    saved = _flatten(yaml.safe_load(saved_yaml) or {})
    current = _flatten(recipe_to_dict(recipe))
    # A key the checkpoint's recipe lacks was added to domainclip after the run started: at its default
    # it is what that run did, so it is no change.
    changed = sorted(
        k for k in set(saved) | set(current)
        if saved.get(k) != current.get(k) and not (k not in saved and current[k] == key_default(k))
    )

    def mutable(key: str) -> bool:
        return any(key == m or key.startswith(m + ".") for m in RESUME_MUTABLE)

    refused = [k for k in changed if not mutable(k)]
    if refused:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in refused[:4])
        more = f" and {len(refused) - 4} more" if len(refused) > 4 else ""
        raise RecipeError(
            f"{recipe.source or '<recipe>'}: --resume: the recipe differs from the checkpoint's in keys that "
            f"define the run ({shown}{more}); resume with the recipe the run started with, or start a new run "
            "in another --out"
        )
    return [k for k in changed if k not in ("source",)]


def _has_checkpoint(run_dir: Path) -> bool:
    return find_latest_checkpoint(run_dir / CHECKPOINTS_DIR) is not None


def train(recipe: Recipe, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train a model following ``recipe``, writing everything under ``out_dir``.

    The run folder is locked while the run lasts (a second run into it stops at once) and must be new
    or empty, unless ``resume`` continues the run in it or ``overwrite`` replaces what domainclip wrote
    there. A run that fails before its first checkpoint leaves nothing behind; one that fails later
    keeps its checkpoints, to resume.

    Args:
        recipe: a validated recipe (see :func:`domainclip.core.recipe.load_recipe`).
        out_dir: the run folder: ``recipe.resolved.yaml``, ``model_info.json``, ``log.jsonl``,
            ``tensorboard/``, ``checkpoints/step_<step, 8 digits>/`` and ``eval/``.
        resume: continue from the newest checkpoint that loads (model, optimizer, scheduler, scaler,
            data position and RNG states, and the state a model keeps beyond its weights when it
            has ``training_state()`` / ``load_training_state(state)``, e.g. a table of views mined
            from the data; a damaged newer one is skipped with a warning); on CPU the
            result is bit-identical to an uninterrupted run. The recipe may differ from the
            checkpoint's only in :data:`RESUME_MUTABLE` keys; the resolved recipe written then is
            the one in use.
        overwrite: replace an earlier run (or demo) that domainclip wrote into ``out_dir``; files it
            did not write are left alone.
    """
    info = init_distributed(recipe.train.device)
    run_dir = Path(out_dir)
    with contextlib.ExitStack() as stack:
        folder = None
        if info.is_main:
            folder = stack.enter_context(OutputFolder(
                run_dir, kind="run", command="train", args={"recipe": recipe.source}, overwrite=overwrite,
                resume=resume, allow_foreign=True, keep_on_error=_has_checkpoint,
                hint="pass --resume to continue it, --overwrite to replace it, or choose another --out",
            ))
        return _train(recipe, run_dir, info, folder, resume)


def _train(recipe: Recipe, run_dir: Path, info: DistInfo, folder: OutputFolder | None, resume: bool) -> TrainResult:
    """The body of :func:`train`, in its locked run folder (``folder`` is ``None`` off the main rank)."""
    from domainclip.core.losses import create_loss
    from domainclip.core.models import create_model_and_transforms, get_tokenizer

    ckpt_root = run_dir / CHECKPOINTS_DIR
    threads = _cpu_threads(recipe, info)
    if threads:
        torch.set_num_threads(threads)
    cfg_t, cfg_o = recipe.train, recipe.optim
    task = get_task(cfg_t.task)
    point = load_resume_point(ckpt_root) if resume else None
    changed = resume_changes(point.recipe_yaml, recipe) if point is not None and point.recipe_yaml else []
    recipe_yaml = yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / RECIPE_NAME, recipe_yaml)
    prepare_data(recipe, info)

    # ---- model, loss, optimizer -------------------------------------------------------------
    _seed_everything(cfg_t.seed)
    model, preprocess_train, preprocess_val = create_model_and_transforms(
        recipe.model.name, recipe.model.pretrained, cache_dir=recipe.model.cache_dir, **recipe.model.overrides
    )
    tokenizer = get_tokenizer(model)
    _configure_towers(model, recipe)
    if info.is_main:
        atomic_write_text(run_dir / MODEL_INFO_NAME, json.dumps(model.domainclip_info, indent=2, default=str))
    model.to(info.device)
    if cfg_t.channels_last:
        model.to(memory_format=torch.channels_last)
    compile_mode = resolve_compile_mode(cfg_t.compile, info.device)
    sharded = info.distributed and cfg_t.strategy == "fsdp"
    if compile_mode == "blocks" or (compile_mode == "model" and sharded):
        compile_blocks(model, dynamic=False)  # before FSDP2 sharding, as torchtitan; its hooks stay eager
    wrapped = wrap_model(model, info, cfg_t.strategy)
    if compile_mode == "model" and not sharded:
        compile_forward(wrapped, dynamic=False)  # after DDP wrapping (DDP's bucketing is then compiled in)
    loss_fn = create_loss(
        recipe.loss.name,
        local_loss=recipe.loss.local_loss,
        gather_with_grad=recipe.loss.gather_with_grad,
        rank=info.rank,
        world_size=info.world_size,
        **recipe.loss.kwargs,
    )
    optimizer = build_optimizer(
        model, lr=cfg_o.lr, weight_decay=cfg_o.weight_decay, betas=tuple(cfg_o.betas), eps=cfg_o.eps,
        no_decay=cfg_o.no_decay, fused=True,
    )
    scheduler = build_scheduler(
        optimizer, total=cfg_t.steps, warmup=cfg_o.warmup_steps, schedule=cfg_o.schedule,
        min_ratio=cfg_o.min_lr_ratio,
    )
    scaler = make_grad_scaler(cfg_t.precision, info.device)
    autocast = autocast_context(cfg_t.precision, info.device)
    preprocess = preprocess_train if recipe.data.augment else preprocess_val
    loader = _build_loader(recipe, task, preprocess, tokenizer, info)

    # ---- resume -----------------------------------------------------------------------------
    step, rng_state = 0, None
    if resume and point is None and info.is_main:
        print(f"--resume: no checkpoint in {ckpt_root}; starting from step 0", flush=True)
    if point is not None:
        state = point.state
        load_training_state(wrapped, optimizer, point.weights, state["optimizer"])  # every rank: FSDP2 shards both
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        loader.load_state_dict(state["data"][info.rank])
        if "model_state" in state and hasattr(model, "load_training_state"):
            model.load_training_state(state["model_state"])  # e.g. a table mined from the data
        rng_state = state["rng"][info.rank]
        step = int(state["step"])
    data_iter = iter(loader)
    if rng_state is not None:
        restore_rng_state(rng_state)

    logger = RunLogger(
        run_dir, enabled=info.is_main, tensorboard=cfg_t.tensorboard, progress=cfg_t.progress,
        total_steps=cfg_t.steps, initial_step=step,
    )
    if point is not None:
        logger.event("resume", checkpoint=str(point.path), step=step, changed=changed,
                     skipped_damaged=[{"checkpoint": str(p), "reason": why} for p, why in point.damaged])
    logger.event("start", world_size=info.world_size, device=str(info.device), steps=cfg_t.steps)

    def checkpoint(at_step: int) -> Path | None:
        data_states = _gather_objects(loader.state_dict(), info)
        rng_states = _gather_objects(capture_rng_state(), info)
        model_state, optimizer_state = full_training_state(wrapped, optimizer)  # every rank; rank 0 gets them
        path = None
        if info.is_main:
            train_state = {
                "step": at_step,
                "optimizer": optimizer_state,
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "data": data_states,
                "rng": rng_states,
            }
            if hasattr(model, "training_state"):  # the model's own state beyond its weights (rank 0's)
                train_state["model_state"] = model.training_state()
            path = save_checkpoint(ckpt_root, at_step, model_state, train_state, recipe_yaml, cfg_t.keep_checkpoints)
            logger.event("checkpoint", step=at_step, path=str(path))
            if folder is not None:
                folder.checkpoint()
        _barrier(info)
        return path

    # ---- the loop ---------------------------------------------------------------------------
    # Nothing in a step reads a tensor back to the host: losses, the gradient norm and the non-finite
    # guard stay on the device and are read at log steps, so the CPU queues the next step's kernels
    # while the GPU runs this one. A step whose loss is NaN/Inf on any rank leaves weights and
    # optimizer state as they were: the fused AdamW skips it on the device (``found_inf``, as
    # GradScaler does); the run stops at the first log step after max_bad_steps bad steps in a row.
    accum = cfg_o.accum_steps
    refresh = RefreshContext(recipe, task, preprocess_val, tokenizer, info, autocast)
    skip_on_device = getattr(optimizer, "_step_supports_amp_scaling", False)
    last_loss, final_ckpt = float("nan"), None
    zero = torch.zeros((), device=info.device)
    consecutive_bad, worst_bad, bad_in_interval = zero.clone(), zero.clone(), zero.clone()
    samples_since, t_since, steps_since = 0, time.perf_counter(), 0
    waits = DataWait()
    wrapped.train()
    try:
        while step < cfg_t.steps:
            # phase 1: schedules (the LambdaLR already holds this step's rate), the model's own refresh
            lr = optimizer.param_groups[0]["lr"]
            if hasattr(model, "refresh"):  # e.g. views mined again from the data; the model says when it is due
                model.refresh(step, cfg_t.steps, refresh)

            # phase 2: wait for the data (timed), forward/backward with exact gradient accumulation
            asked = time.perf_counter()
            batches = [next(data_iter) for _ in range(accum)]
            waits.add(asked, time.perf_counter())
            loss, parts = _forward_backward(wrapped, task, loss_fn, batches, info, autocast, scaler, as_tensors=True)
            samples_since += sum(b[task.visual_key].shape[0] for b in batches) * info.world_size

            # phase 3: non-finite guard (on the device), clip, step
            bad = (~torch.isfinite(loss)).to(torch.float32)
            if info.distributed:
                dist.all_reduce(bad, op=dist.ReduceOp.MAX)
            if scaler.is_enabled():
                pass  # fp16: GradScaler skips steps with non-finite gradients itself
            elif skip_on_device:
                optimizer.found_inf = bad  # read by the fused kernel: no update, step count unchanged
            elif bad.item():  # an optimizer without found_inf (not fused): decided on the host
                optimizer.zero_grad(set_to_none=True)
            consecutive_bad = (consecutive_bad + bad) * bad  # back to 0 on a finite step
            worst_bad = torch.maximum(worst_bad, consecutive_bad)
            bad_in_interval += bad
            scaler.unscale_(optimizer)
            grad_norm = None
            if cfg_o.grad_clip:
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg_o.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            if hasattr(model, "after_optimizer_step"):  # e.g. an EMA teacher follows the student
                model.after_optimizer_step(step, cfg_t.steps)
            step += 1
            steps_since += 1

            # phase 4: log (the only place tensors are read back)
            logger.advance()
            if step % cfg_t.log_every == 0 or step == cfg_t.steps:
                skipped, worst = int(bad_in_interval), int(worst_bad)
                if skipped:
                    logger.event("non_finite_loss", step=step, skipped_steps=skipped, consecutive=int(consecutive_bad))
                if worst >= cfg_t.max_bad_steps:
                    raise NonFiniteLossError(
                        f"loss was NaN/Inf for {worst} consecutive steps by step {step}; "
                        "lower optim.lr, raise optim.warmup_steps or use train.precision=fp32"
                    )
                last_loss = float(loss)
                elapsed = time.perf_counter() - t_since
                wait_s, wait_frac = waits.interval(steps_since, elapsed)
                scalars = {
                    "loss": last_loss,
                    **{f"loss/{k}": float(v) for k, v in parts.items()},
                    "lr": lr,
                    "logit_scale": float(model.logit_scale.detach().exp()),
                    "grad_norm": float("nan") if grad_norm is None else float(grad_norm),
                    "samples_per_s": samples_since / max(elapsed, 1e-9),
                    "data_wait_s": wait_s,
                    "data_wait_frac": wait_frac,
                }
                if info.device.type == "cuda":  # the allocator's peak so far (a host-side counter: no sync)
                    scalars["max_memory_gib"] = torch.cuda.max_memory_allocated(info.device) / 2**30
                logger.log(step, scalars)
                bad_in_interval.zero_()
                samples_since, t_since, steps_since = 0, time.perf_counter(), 0

            # phase 5: eval and checkpoint
            if step % cfg_t.checkpoint_every == 0 or step == cfg_t.steps:
                final_ckpt = checkpoint(step)
            if cfg_t.eval_every and step % cfg_t.eval_every == 0 and step < cfg_t.steps:
                _run_eval(recipe, model, preprocess_val, tokenizer, info, run_dir / EVAL_DIR / step_dir_name(step),
                          _run_source(run_dir, step))
    finally:
        corrupt = loader.corrupt_counts()
        if info.is_main and sum(corrupt.values()):
            logger.write(loader.corrupt_report())
        logger.event("corrupt_samples", counts=corrupt, samples_seen=loader.samples_seen, **loader.decode_counts())

    eval_results: dict[str, dict[str, float]] = {}
    if recipe.eval.suites:
        eval_results = _run_eval(recipe, model, preprocess_val, tokenizer, info, run_dir / EVAL_DIR,
                                 _run_source(run_dir, step))
    waited = waits.summary()
    if waited is not None:
        logger.event("data_wait", **waited)
        logger.write(data_wait_message(waited))
    logger.event("end", step=step, loss=last_loss)
    logger.close()
    if final_ckpt is None:
        final_ckpt = find_latest_checkpoint(ckpt_root)
    return TrainResult(run_dir, step, final_ckpt, last_loss, corrupt, eval_results)


def _forward_backward(
    wrapped: torch.nn.Module,
    task: Task,
    loss_fn: torch.nn.Module,
    batches: list[dict[str, Any]],
    info: DistInfo,
    autocast: Callable,
    scaler: torch.amp.GradScaler,
    *,
    as_tensors: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Backward of the full-batch objective over one or several micro-batches.

    The objective is the contrastive loss plus the model's own auxiliary losses: a model output may
    hold ``aux_losses``, ``{name: scalar tensor}`` (e.g. a self-distillation loss), each added to the
    objective and logged as ``loss/<name>``. An auxiliary loss must be a mean over its micro-batch's
    samples.

    With one micro-batch this is a plain forward/backward. With several, features of every
    micro-batch are first computed without gradients (and without the task's ``extra_inputs``);
    then each micro-batch is re-run with gradients and the contrastive loss is computed against the
    cached features of the others (GradCache), so its gradient equals that of the full batch,
    negatives included. Each re-run's auxiliary losses enter divided by the number of micro-batches:
    the step's gradient and the logged value are those of the full batch's mean.

    Returns:
        The objective's value and its named parts: detached 0-d tensors on the device with
        ``as_tensors`` (the training loop: nothing is read back to the host), else Python floats.
    """
    if len(batches) == 1:
        with autocast():
            out = task.forward(wrapped, batches[0], info.device)
            aux = out.pop("aux_losses", None) or {}
            parts = _with_aux(loss_fn(**out, output_dict=True), aux)
            loss = sum(parts.values())
        scaler.scale(loss).backward()
        return _values(loss.detach(), {k: v.detach() for k, v in parts.items()}, as_tensors)

    with torch.no_grad(), autocast():
        cached = [task.forward(wrapped, b, info.device, extra_inputs=False) for b in batches]
    parts_total: dict[str, torch.Tensor] = {}
    for j, batch in enumerate(batches):
        sync = j == len(batches) - 1
        defer_sync = info.distributed and not sync and hasattr(wrapped, "no_sync")
        ctx = wrapped.no_sync() if defer_sync else contextlib.nullcontext()
        with ctx:
            with autocast():
                live = task.forward(wrapped, batch, info.device)
                aux = {k: v / len(batches) for k, v in (live.pop("aux_losses", None) or {}).items()}
                outputs = [live if i == j else cached[i] for i in range(len(batches))]
                merged = task.merge(outputs, j)
                if j > 0:  # the temperature's gradient is counted once per optimizer step
                    merged["logit_scale"] = merged["logit_scale"].detach()
                    if merged.get("logit_bias") is not None:
                        merged["logit_bias"] = merged["logit_bias"].detach()
                parts = _with_aux(loss_fn(**merged, output_dict=True), aux)
                loss = sum(parts.values())
            scaler.scale(loss).backward()
        if j == 0:  # the contrastive parts are the full batch's in every re-run: keep the first
            parts_total = {k: v.detach().float() for k, v in parts.items() if k not in aux}
        for k, v in aux.items():
            parts_total[k] = parts_total.get(k, 0.0) + v.detach().float()
    return _values(sum(parts_total.values()), parts_total, as_tensors)


def _values(loss: torch.Tensor, parts: dict[str, torch.Tensor], as_tensors: bool) -> tuple[Any, dict[str, Any]]:
    """The loss and its parts as they are (``as_tensors``) or read back as Python floats."""
    if as_tensors:
        return loss, parts
    return float(loss), {k: float(v) for k, v in parts.items()}


def _with_aux(parts: dict[str, torch.Tensor], aux: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The loss's named parts and the model's auxiliary losses in one dict (a shared name is a bug)."""
    clash = sorted(set(parts) & set(aux))
    if clash:
        raise ValueError(f"the model's aux_losses reuse the loss's part names {clash}; rename them")
    return {**parts, **aux}


def _run_source(run_dir: Path, step: int) -> dict[str, Any]:
    """What produced an in-training evaluation: the run, the step and, when saved, that checkpoint's hash."""
    from domainclip.core.models.loading import ModelSource

    ckpt = run_dir / CHECKPOINTS_DIR / step_dir_name(step)
    weights = ckpt / WEIGHTS_NAME
    if weights.is_file():
        record = ModelSource(str(run_dir), "run", run_dir, (weights,), checkpoint=ckpt).record()
    else:
        record = {"spec": str(run_dir), "kind": "run", "path": str(run_dir), "random_weights": False}
    return {**record, "step": step}


def _run_eval(
    recipe: Recipe, model: torch.nn.Module, preprocess: Callable, tokenizer: Callable, info: DistInfo, out_dir: Path,
    source: dict[str, Any],
) -> dict[str, dict[str, float]]:
    """Run the recipe's eval suites on the main rank; returns task -> metrics (``source`` names the model).

    Under FSDP no rank holds the whole model, so every rank first sends its shards and the main rank
    evaluates a whole copy (the others wait at the barrier).
    """
    results: dict[str, dict[str, float]] = {}
    if recipe.train.strategy == "fsdp" and info.distributed:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        from domainclip.core.models import create_model

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if info.is_main:
            model = create_model(recipe.model.name, **recipe.model.overrides)
            model.load_state_dict(state)
            model.to(info.device).eval()
    if info.is_main:
        from domainclip.core.eval.suites import run_suite

        model.domainclip_source = source

        for suite in recipe.eval.suites:
            folder = recipe.eval.suite_data.get(suite, recipe.eval.data)
            data = Path(folder.replace("{root}", recipe.data.root)) if folder else None
            suite_out = out_dir / suite.replace("/", "_")
            res = run_suite(
                model, tokenizer, preprocess, suite, data=data, out_dir=suite_out, device=str(info.device),
                batch_size=recipe.eval.batch_size, options=recipe.eval.options.get(suite),
            )
            results.update({f"{suite}:{task}" if len(recipe.eval.suites) > 1 else task: m for task, m in res.items()})
        from domainclip.core.eval.report import write_results

        write_results(results, out_dir / RESULTS_NAME, extra={"model": source})
    _barrier(info)
    return results
