"""GPU training throughput and MFU: domainclip's engine against ``open_clip_train``, same model, batch and shards.

Usage (one H100)::

    python -m bench.gpu_throughput                       # ViT-B-16, 224 px, bf16, --batch auto
    python -m bench.gpu_throughput --recipe pathology/pathgen_clip_vitb16 --batch 256
    python -m bench.gpu_throughput --recipe surgery/surgclip_vitb16 --batch 32
    python -m bench.gpu_throughput --device cpu --model dc-test-vit --steps 20   # the CPU smoke run

The bench writes synthetic shards (random JPEGs at ``--image-size`` with captions), then trains on
them through the real entry points, each in its own process, in one run: ``domainclip train
RECIPE`` and ``open_clip_train.main`` (``bench/peer_open_clip_train.py``, with open_clip_train's pins
from ``bench/.peer-site``). Both sides get the same model (randomly initialised), batch, shards,
data workers, precision (``--precision``), AdamW settings and compile setting (domainclip's
``train.compile``; open_clip_train's ``--torchcompile`` when it is on).

Reported per side: samples/s in the steady state (the log intervals after ``--warmup`` steps,
every ``--log-every`` steps, so the loss is read back no more often than a real run does), MFU =
samples/s x FLOP per sample / ``--peak-tflops`` (FLOP per sample of one training step, forward and
backward of both towers, counted from the model with :class:`torch.utils.flop_counter.FlopCounterMode`),
peak GPU memory (``torch.cuda.max_memory_allocated``), and the data-wait fraction (domainclip's
``data_wait_frac``; open_clip_train's ``Data (t)`` over ``Batch (t)``); then the ratio
domainclip / open_clip_train. ``--batch auto`` doubles the batch from 32 until a training step of
the model runs out of GPU memory and takes the last one that fitted.

``--recipe`` measures a domain's paper recipe instead (domainclip only): its model (random
initialisation: the GPU machine has no network), task, loss, optimiser and precision, on the data of
the domain's ``quick`` recipe (its synthetic prepare steps) or, for the core image-text tasks, on the
bench's JPEG shards. It reports samples/s (clips/s for video tasks) with the same fields.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    REPO_ROOT,
    RESULTS_DIR,
    ensure_peer_site,
    load_average,
    machine_info,
    markdown_table,
    peer_env,
    write_result,
)

__all__ = [
    "GOAL_MFU",
    "GOAL_RATIO",
    "H100_BF16_TFLOPS",
    "domainclip_recipe",
    "find_max_batch",
    "flops_per_sample",
    "jpeg_shards",
    "main",
    "open_clip_argv",
    "parse_domainclip_log",
    "parse_open_clip_log",
]

#: The H100 SXM's dense bf16 peak (TFLOP/s), the default denominator of MFU.
H100_BF16_TFLOPS = 989.0
#: The goals of issue 20: MFU and the ratio to open_clip_train.
GOAL_MFU = 0.40
GOAL_RATIO = 1.5
#: AdamW and schedule shared by both sides (open_clip's ViT-B/16 settings).
SETTINGS: dict[str, Any] = {"lr": 5e-4, "weight_decay": 0.2, "betas": (0.9, 0.98), "eps": 1e-6, "grad_clip": 1.0,
                            "seed": 0, "shuffle_buffer": 1000, "warmup_lr_steps": 10}
_OPEN_CLIP_LINE = re.compile(
    r"Train Epoch: \d+ \[\s*(?P<seen>\d+)/\s*\d+ .*?Data \(t\): (?P<data>[\d.]+) Batch \(t\): (?P<batch>[\d.]+),"
)
_CAPTION_WORDS = ("a photo of tissue with cells stained pink and purple under a microscope in a slide of "
                  "a patient sample showing glands stroma nuclei and vessels").split()


# ------------------------------------------------------------------------------------- data and model


def jpeg_shards(out_dir: Path, n: int, *, image_size: int, per_shard: int = 512) -> list[str]:
    """Write ``n`` random RGB JPEGs (quality 95, ``image_size`` square) with random captions as shards.

    Random pixels are the worst case for JPEG decoding (the most coefficients per block), so the
    loader's side of the measurement is not flattered by easy images.

    Returns:
        The shard paths, in order.
    """
    import numpy as np
    from PIL import Image

    from domainclip.core.data.writer import write_shards

    rng = np.random.default_rng(0)

    def samples():
        for _ in range(n):
            pixels = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
            words = rng.choice(_CAPTION_WORDS, size=int(rng.integers(8, 20)))
            yield {"image": Image.fromarray(pixels), "text": " ".join(words)}

    out = write_shards(samples(), out_dir, prefix="jpeg", max_count=per_shard, image_format="jpg", quality=95,
                       progress=False, total=n)
    return [str(Path(out_dir) / name) for name in out["shards"]]


def _model_inputs(model: Any, batch: int, device: Any) -> dict[str, Any]:
    """Random inputs of one training batch for ``model`` (its image size, frames/views, context length)."""
    import torch

    from domainclip.core.models import get_tokenizer

    size = model.domainclip_info["preprocess_cfg"]["size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    tokens = get_tokenizer(model)(["a photo of tissue"] * batch).to(device)
    if hasattr(model, "num_frames"):
        return {"video": torch.randn(batch, model.num_frames, 3, *size, device=device), "text": tokens}
    if hasattr(model, "num_views"):
        return {"views": torch.randn(batch, model.num_views, 3, *size, device=device), "text": tokens}
    return {"image": torch.randn(batch, 3, *size, device=device), "text": tokens}


def _training_step(model: Any, inputs: dict[str, Any], precision: str) -> None:
    """Forward of both towers, the CLIP loss and backward, under the run's autocast."""
    import torch

    from domainclip.core.engine.precision import autocast_context
    from domainclip.core.losses import create_loss

    device = next(model.parameters()).device
    with autocast_context(precision, device)():
        out = model(**inputs)
        loss = create_loss("clip")(out["image_features"], out["text_features"], out["logit_scale"])
    loss.backward()
    model.zero_grad(set_to_none=True)
    del out, loss
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_sample(model_name: str, overrides: dict[str, Any], device: str, precision: str) -> float:
    """FLOP of one training step per sample: forward + backward of both towers, counted with FlopCounterMode.

    Counted on a batch of 2 (every op of a CLIP step scales linearly with the batch except the
    ``B x B`` logits, a negligible share at any size); attention is counted by torch's SDPA rules.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from domainclip.core.models import create_model

    model = create_model(model_name, **overrides).to(device).train()
    inputs = _model_inputs(model, 2, torch.device(device))
    counter = FlopCounterMode(display=False)
    with counter:
        _training_step(model, inputs, precision)
    return counter.get_total_flops() / 2


def find_max_batch(model_name: str, overrides: dict[str, Any], device: str, precision: str, *,
                   start: int = 32, limit: int = 8192) -> int:
    """The largest batch, doubling from ``start``, whose training step fits in GPU memory (with AdamW's state)."""
    import torch

    from domainclip.core.models import create_model

    model = create_model(model_name, **overrides).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    for p in model.parameters():  # the optimizer's moments take their memory before the search
        p.grad = torch.zeros_like(p)
    optimizer.step()
    model.zero_grad(set_to_none=True)
    fits, batch = 0, start
    while batch <= limit:
        try:
            _training_step(model, _model_inputs(model, batch, torch.device(device)), precision)
        except torch.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
        print(f"  batch {batch}: fits", flush=True)
        fits, batch = batch, batch * 2
    if not fits:
        raise RuntimeError(f"batch {start} of {model_name} does not fit in GPU memory")
    return fits


# ------------------------------------------------------------------------------------- the two sides


def domainclip_recipe(shards: list[str], *, model: str, batch: int, workers: int, steps: int, log_every: int,
                      device: str, precision: str, compile_mode: str) -> dict[str, Any]:
    """The domainclip recipe of the measured run (written to YAML for ``domainclip train``)."""
    return {
        "domain": "core",
        "description": "bench/gpu_throughput.py",
        "model": {"name": model},
        "data": {"root": str(Path(shards[0]).parent), "train": [{"urls": list(shards)}], "batch_size": batch,
                 "num_workers": workers, "shuffle_buffer": SETTINGS["shuffle_buffer"], "text_choice": "first"},
        "optim": {"lr": SETTINGS["lr"], "weight_decay": SETTINGS["weight_decay"], "betas": list(SETTINGS["betas"]),
                  "eps": SETTINGS["eps"], "warmup_steps": SETTINGS["warmup_lr_steps"], "schedule": "cosine",
                  "grad_clip": SETTINGS["grad_clip"]},
        "train": {"steps": steps, "seed": SETTINGS["seed"], "precision": precision, "device": device,
                  "compile": compile_mode, "log_every": log_every, "checkpoint_every": steps, "keep_checkpoints": 1,
                  "tensorboard": False, "progress": False},
    }


def open_clip_argv(shards: list[str], logs: Path, *, model: str, batch: int, workers: int, steps: int,
                   log_every: int, device: str, precision: str, compile_on: bool) -> list[str]:
    """``open_clip_train.main`` arguments equivalent to :func:`domainclip_recipe`."""
    oc_precision = {"bf16": "amp_bf16", "fp16": "amp", "fp32": "fp32"}[precision]
    if device == "cpu":
        oc_precision = "fp32"  # domainclip runs fp32 on CPU whatever the recipe says
    argv = [
        "--train-data", "::".join(shards), "--dataset-type", "webdataset", "--dataset-resampled",
        "--train-num-samples", str(steps * batch), "--batch-size", str(batch), "--workers", str(workers),
        "--model", model, "--precision", oc_precision, "--device", device,
        "--lr", str(SETTINGS["lr"]), "--wd", str(SETTINGS["weight_decay"]),
        "--beta1", str(SETTINGS["betas"][0]), "--beta2", str(SETTINGS["betas"][1]), "--eps", str(SETTINGS["eps"]),
        "--warmup", str(SETTINGS["warmup_lr_steps"]), "--lr-scheduler", "cosine",
        "--grad-clip-norm", str(SETTINGS["grad_clip"]), "--epochs", "1", "--seed", str(SETTINGS["seed"]),
        "--log-every-n-steps", str(log_every), "--save-frequency", "0", "--zeroshot-frequency", "0",
        "--val-frequency", "0", "--report-to", "", "--logs", str(logs), "--name", "peer",
    ]
    return argv + (["--torchcompile"] if compile_on else [])


def _steady(intervals: list[tuple[int, float, float]], batch: int, warmup: int, where: str) -> dict[str, Any]:
    """Samples/s and data-wait share over the log intervals ending after ``warmup`` steps.

    ``intervals``: ``(last step, seconds per step, data-wait seconds per step)`` per log record.
    """
    measured, previous = [], None
    for step, step_s, wait_s in sorted(intervals):
        if previous is not None and previous >= warmup:
            measured.append((step - previous, step_s, wait_s))
        previous = step
    if not measured:
        raise RuntimeError(f"{where}: no log interval after the {warmup} warm-up steps ({intervals[:4]}...)")
    steps = sum(n for n, _, _ in measured)
    seconds = sum(n * s for n, s, _ in measured)
    waits = sum(n * w for n, _, w in measured)
    return {"samples_per_s": steps * batch / seconds, "measured_steps": steps, "step_s": seconds / steps,
            "data_wait_frac": waits / seconds}


def parse_domainclip_log(path: Path, *, batch: int, warmup: int) -> dict[str, Any]:
    """Steady-state samples/s, data wait and peak memory from a domainclip ``log.jsonl``."""
    intervals, memory = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "event" in record or "samples_per_s" not in record:
            continue
        intervals.append((int(record["step"]), batch / record["samples_per_s"], record["data_wait_s"]))
        memory = record.get("max_memory_gib", memory)
    return {**_steady(intervals, batch, warmup, str(path)), "max_memory_gib": memory}


def parse_open_clip_log(path: Path, *, batch: int, warmup: int) -> dict[str, Any]:
    """Steady-state samples/s and data wait from an open_clip_train ``out.log`` (its interval means)."""
    intervals = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _OPEN_CLIP_LINE.search(line)
        if match:
            intervals.append((int(match["seen"]) // batch, float(match["batch"]), float(match["data"])))
    return _steady(intervals, batch, warmup, str(path))


def _run(cmd: list[str], env: dict[str, str], where: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{where} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
    return time.perf_counter() - started


def run_domainclip(recipe: dict[str, Any], work: Path, *, batch: int, warmup: int) -> dict[str, Any]:
    """Train ``recipe`` with ``python -m domainclip train``; returns the steady-state measurement."""
    path, run_dir = work / "domainclip.yaml", work / "domainclip-run"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    load = load_average()
    wall = _run([sys.executable, "-m", "domainclip", "train", str(path), "--out", str(run_dir), "--overwrite"],
                dict(os.environ), "domainclip train")
    steady = parse_domainclip_log(run_dir / "log.jsonl", batch=batch, warmup=warmup)
    return {"side": "domainclip", "load_before": load, "wall_s": round(wall, 1), **steady}


def run_peer(argv: list[str], work: Path, *, batch: int, warmup: int, device: str) -> dict[str, Any]:
    """Train with open_clip_train (this module's ``--peer-child`` mode); returns the steady-state measurement."""
    memory_file = work / "peer-memory.json"
    load = load_average()
    wall = _run([sys.executable, "-m", "bench.gpu_throughput", "--peer-child", str(memory_file), "--", *argv],
                peer_env(), "open_clip_train")
    steady = parse_open_clip_log(work / "open_clip_logs" / "peer" / "out.log", batch=batch, warmup=warmup)
    memory = json.loads(memory_file.read_text())["max_memory_gib"] if device == "cuda" else None
    return {"side": "open_clip_train", "load_before": load, "wall_s": round(wall, 1), **steady,
            "max_memory_gib": memory}


def _peer_child(memory_file: str, argv: list[str]) -> int:
    """Run open_clip_train in this process, then write its peak GPU memory (``--peer-child``)."""
    import torch
    from open_clip_train.main import main as open_clip_main

    import domainclip.core.models  # noqa: F401  (registers the dc-* configs into open_clip)

    status = open_clip_main(argv) or 0
    memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    Path(memory_file).write_text(json.dumps({"max_memory_gib": memory}))
    return int(status)


# ------------------------------------------------------------------------------------- recipe mode


def recipe_mode_recipe(name: str, work: Path, *, batch: int | None, workers: int | None, steps: int,
                       log_every: int, device: str, compile_mode: str, image_size: int,
                       samples: int) -> tuple[dict[str, Any], str]:
    """A domain paper recipe made measurable offline: random init, synthetic data, no eval; and its unit.

    Returns:
        The recipe as a dict, and ``"samples"`` or ``"clips"`` (video tasks).
    """
    from domainclip.core.engine.tasks import get_task
    from domainclip.core.recipe import load_recipe, recipe_to_dict

    recipe = recipe_to_dict(load_recipe(name))
    task = get_task(recipe["train"]["task"])
    recipe["model"]["pretrained"] = None
    if task.visual_key == "image" and task.make_decoder is None:
        shards = jpeg_shards(work / "shards", samples, image_size=image_size)
        recipe["data"] = {**recipe["data"], "root": str(work / "shards"), "train": [{"urls": shards}],
                          "prepare": [], "text_choice": "first"}
    else:  # the domain's own synthetic data, as its quick recipe prepares it
        quick = recipe_to_dict(load_recipe(f"{recipe['domain']}/quick"))
        data = copy.deepcopy(quick["data"])
        data["root"] = str(work / "data")
        data["decoder_args"] = {**data.get("decoder_args", {}), **recipe["data"].get("decoder_args", {})}
        recipe["data"] = {**recipe["data"], **{k: data[k] for k in ("root", "train", "prepare", "decoder_args")}}
    if batch:
        recipe["data"]["batch_size"] = batch
    if workers is not None:
        recipe["data"]["num_workers"] = workers
    recipe["eval"] = {"suites": []}
    recipe["train"].update({"steps": steps, "log_every": log_every, "checkpoint_every": steps, "keep_checkpoints": 1,
                            "tensorboard": False, "progress": False, "device": device, "compile": compile_mode,
                            "strategy": "ddp"})
    recipe["source"] = None
    return recipe, "clips" if task.visual_key == "video" else "samples"


# ------------------------------------------------------------------------------------- main


def _mfu(samples_per_s: float, flops: float, peak_tflops: float) -> float:
    return samples_per_s * flops / (peak_tflops * 1e12)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table and write the JSON result; returns the result."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--peer-child"]:
        sys.exit(_peer_child(argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-16", help="a model config (open_clip's or domainclip's dc-*)")
    parser.add_argument("--recipe", help="measure a domain recipe instead, e.g. pathology/pathgen_clip_vitb16")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--batch", default="auto", help="per-step batch, or auto (the largest that fits, doubling)")
    parser.add_argument("--image-size", type=int, default=224, help="side of the generated JPEGs")
    parser.add_argument("--workers", type=int, default=None, help="data workers (default: CPU cores - 2, at most 12)")
    parser.add_argument("--warmup", type=int, default=20, help="steps left out (compilation, warm-up)")
    parser.add_argument("--steps", type=int, default=60, help="measured steps")
    parser.add_argument("--log-every", type=int, default=10, help="log interval of both sides")
    parser.add_argument("--compile", default=None, choices=["auto", "model", "blocks", "off"],
                        help="domainclip's train.compile (default auto: blocks on CUDA); the peer gets "
                             "--torchcompile unless this resolves to off")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_TFLOPS,
                        help="the device's dense peak in TFLOP/s for MFU (H100 SXM bf16: 989)")
    parser.add_argument("--samples", type=int, default=None, help="generated samples (default: enough for the run)")
    parser.add_argument("--no-peer", action="store_true", help="measure domainclip only")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from domainclip.core.engine.compile import resolve_compile_mode

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (use --device cpu for the smoke run)")
    if args.warmup < 1 or args.steps < 1 or args.log_every < 1:
        parser.error("--warmup, --steps and --log-every must be at least 1")
    warmup = -(-args.warmup // args.log_every) * args.log_every  # whole log intervals
    measured = -(-args.steps // args.log_every) * args.log_every
    total = warmup + measured
    compile_mode = args.compile or "auto"
    compile_on = resolve_compile_mode(compile_mode, torch.device(args.device)) != "off"
    workers = args.workers if args.workers is not None else max(0, min(12, (os.cpu_count() or 2) - 2))
    out = args.out or RESULTS_DIR / ("gpu_throughput.json" if args.device == "cuda" else "gpu_throughput_cpu.json")

    with tempfile.TemporaryDirectory(prefix="bench-gpu-throughput-") as tmp:
        work = Path(tmp)
        if args.recipe:
            batch_arg = None if args.batch == "auto" else int(args.batch)
            recipe, unit = recipe_mode_recipe(args.recipe, work, batch=batch_arg, workers=args.workers,
                                              steps=total, log_every=args.log_every, device=args.device,
                                              compile_mode=compile_mode, image_size=args.image_size,
                                              samples=args.samples or 4096)
            batch, model = recipe["data"]["batch_size"], recipe["model"]["name"]
            overrides = recipe["model"]["overrides"]
            precision = recipe["train"]["precision"]
        else:
            unit, model, overrides, precision = "samples", args.model, {}, args.precision
            if args.batch == "auto":
                batch = 8 if args.device == "cpu" else find_max_batch(model, overrides, args.device, precision)
            else:
                batch = int(args.batch)
            # both sides read the shards as an endless stream (domainclip's default, open_clip_train's
            # --dataset-resampled), so a few thousand distinct images serve any number of steps
            n = args.samples or max(2048, min(total * batch, 16_384))
            print(f"writing {n} random {args.image_size} px JPEGs ...", flush=True)
            shards = jpeg_shards(work / "shards", n, image_size=args.image_size)
            recipe = domainclip_recipe(shards, model=model, batch=batch, workers=workers, steps=total,
                                       log_every=args.log_every, device=args.device, precision=precision,
                                       compile_mode=compile_mode)
        print(f"counting FLOP per {unit[:-1]} of {model} ...", flush=True)
        flops = flops_per_sample(model, overrides, args.device, precision)
        what = f"{args.recipe or model}, batch {batch}, {precision}, compile {compile_mode}"
        print(f"{what}: {flops / 1e9:.3g} GFLOP per {unit[:-1]} (forward + backward)", flush=True)

        if args.device == "cpu":  # one intra-op thread per side, as bench_train_step (oversubscription: README)
            os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        rows = [run_domainclip(recipe, work, batch=batch, warmup=warmup)]
        if not args.recipe and not args.no_peer:
            ensure_peer_site()
            argv_peer = open_clip_argv(shards, work / "open_clip_logs", model=model, batch=batch,
                                       workers=workers, steps=total, log_every=args.log_every,
                                       device=args.device, precision=precision, compile_on=compile_on)
            rows.append(run_peer(argv_peer, work, batch=batch, warmup=warmup, device=args.device))

    for row in rows:
        row["mfu"] = _mfu(row["samples_per_s"], flops, args.peak_tflops)
    ours = rows[0]
    peer = rows[1] if len(rows) > 1 else None
    ratio = ours["samples_per_s"] / peer["samples_per_s"] if peer else None
    summary = [{
        "benchmark": "gpu throughput" if args.device == "cuda" else "gpu throughput (cpu smoke run)",
        "measurement": f"{what}, {unit}/s",
        "domainclip": round(ours["samples_per_s"], 1),
        "reference": None if peer is None else round(peer["samples_per_s"], 1),
        "reference_name": None if peer is None else "open_clip_train 3.3.0",
        "ratio": None if ratio is None else round(ratio, 3),
        "goal": GOAL_RATIO if peer and args.device == "cuda" else None,  # the goal is the GPU's
        "met": None if ratio is None or args.device != "cuda" else ratio >= GOAL_RATIO,
    }]
    result = {
        "benchmark": "GPU training throughput: domainclip engine vs open_clip_train",
        "settings": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "batch": batch, "model": model, "precision": precision, "warmup_steps": warmup,
                     "measured_steps": measured, "workers": recipe["data"]["num_workers"], **SETTINGS},
        "unit": unit,
        "flops_per_sample": flops,
        "peak_tflops": args.peak_tflops,
        "domainclip": ours,
        "open_clip_train": peer,
        "ratio": ratio,
        "goals": {"mfu": GOAL_MFU, "data_wait_frac_below": 0.05, "ratio": GOAL_RATIO},
        "summary": summary,
        "machine": {**machine_info(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    table = [[r["side"], r["samples_per_s"], f"{r['mfu']:.1%}", r["max_memory_gib"],
              f"{r['data_wait_frac']:.1%}", r["load_before"]] for r in rows]
    print(markdown_table(["side", f"{unit}/s", "MFU", "peak GiB", "data wait", "load"], table))
    print(f"{what}; {flops / 1e9:.3g} GFLOP per {unit[:-1]}, peak {args.peak_tflops:g} TFLOP/s"
          + (f"; domainclip / open_clip_train = {ratio:.2f}" if ratio else ""))
    write_result(out, result)
    return result


if __name__ == "__main__":
    main()
