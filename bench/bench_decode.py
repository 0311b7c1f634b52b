"""Image decode rate per core of the shard reader's image path, and of the GPU path (``data.decode_device: cuda``).

Usage::

    python -m bench.bench_decode [--images 256] [--repeats 5] [--target 3200] [--out FILE.json]

The images are 224 x 224 JPEG patches at quality 95, the pathology patcher's output
(``patch_slides``' default size and quality), generated: smooth stain-like colour fields with
nuclei-sized blobs and grain, so they compress like tissue patches (about 20-30 KB each here, as
printed). One process, one torch thread, so every rate is **per core**: images per CPU-second of
the process (the wall-clock rate is reported too; on a shared machine it also counts time other
jobs held the core). Side by side, interleaved,
``--repeats`` times, medians:

* ``pil+transform``: what a data worker does per sample on the CPU path: PIL decode to RGB, then the
  model's open_clip training transform (RandomResizedCrop 224, bicubic; ToTensor; Normalize), the
  work that runs after the reader seeds the sample's RNG;
* ``pil``: the PIL decode alone;
* ``decode_jpeg``: ``torchvision.io.decode_jpeg`` on CPU alone (the same libjpeg-turbo);
* ``decode_jpeg+transform``: the GPU path's code run on CPU tensors (batched ``decode_jpeg`` and
  :class:`~domainclip.core.data.gpu_decode.DeviceImageTransform` in torchvision v2 ops);
* ``cuda batched`` (with CUDA only): :class:`~domainclip.core.data.gpu_decode.DeviceImageDecoder`
  on the GPU: one batched nvJPEG ``decode_jpeg`` of ``--batch-size`` images plus the per-image
  crop/resize/normalise, timed to a ``torch.cuda.synchronize``.

Before timing, the outputs are compared: PIL and ``decode_jpeg`` pixels (max difference), the
device path on CPU against the CPU transform with the same crop boxes, and on CUDA nvJPEG's output
against the CPU path (mean and max difference in 8-bit levels). The result says how many cores the
CPU path needs for ``--target`` images/s (the issue's 3,200, 40% MFU for ViT-B/16 on one H100).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.common import RESULTS_DIR, load_average, machine_info, markdown_table, median, write_result

__all__ = ["make_patches", "main"]


def make_patches(n: int, size: int = 224, quality: int = 95, seed: int = 0) -> list[bytes]:
    """``n`` JPEG patches that compress like H&E tissue: colour fields, nucleus-sized blobs and grain.

    Args:
        n: number of patches.
        size: side in pixels.
        quality: JPEG quality (the patcher's default is 95).
        seed: generator seed.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    out = []
    for _ in range(n):
        pink = np.array([230, 170, 200], np.float32) + rng.normal(0, 10, 3)
        purple = np.array([120, 70, 160], np.float32) + rng.normal(0, 10, 3)
        field = 0.5 + 0.5 * np.sin(x / rng.uniform(15, 40) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(15, 40))
        image = pink * (1 - 0.3 * field[..., None])
        for cx, cy, r in zip(rng.uniform(0, size, 40), rng.uniform(0, size, 40), rng.uniform(3, 8, 40)):
            blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
            image = image * (1 - blob) + purple * blob
        image += rng.normal(0, 6, image.shape)
        buf = io.BytesIO()
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def _levels(a: torch.Tensor, b: torch.Tensor, std: tuple[float, ...]) -> torch.Tensor:
    return ((a - b) * torch.tensor(std).view(1, -1, 1, 1) * 255).abs()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table, write the JSON result; returns the result."""
    from open_clip.transform import image_transform
    from torchvision.io import ImageReadMode, decode_jpeg

    from domainclip.core.data.decode import _decode_image_bytes
    from domainclip.core.data.gpu_decode import DeviceImageDecoder, DeviceImageTransform
    from domainclip.core.data.reader import _seed_globals

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="patches per timed pass")
    parser.add_argument("--batch-size", type=int, default=256, help="images per batched decode call")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved passes per side")
    parser.add_argument("--target", type=float, default=3200.0, help="images/s the training step needs")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "decode.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # every rate is per core

    patches = make_patches(args.images)
    tensors = [torch.frombuffer(bytearray(p), dtype=torch.uint8) for p in patches]
    cpu_transform = image_transform(224, is_train=True)
    device_path = DeviceImageTransform.from_transform(cpu_transform)
    print(f"{len(patches)} patches of 224 px, JPEG q95, {np.mean([len(p) for p in patches]) / 1024:.1f} KB mean; "
          f"load average {load_average()}", flush=True)

    def encoded(k: int, data: bytes):
        _seed_globals(k)
        return device_path(_decode_image_bytes(data, "jpg", None, keep_jpeg=True))

    batch = {"image": [encoded(k, p) for k, p in enumerate(patches)]}

    # ---- same pixels first
    pil = [np.array(Image.open(io.BytesIO(p)).convert("RGB")) for p in patches[:16]]
    tv = [decode_jpeg(t, mode=ImageReadMode.RGB).permute(1, 2, 0).numpy() for t in tensors[:16]]
    decode_diff = int(max(np.abs(a.astype(int) - b).max() for a, b in zip(pil, tv)))
    reference = []
    for k, p in enumerate(patches):
        _seed_globals(k)
        reference.append(cpu_transform(Image.open(io.BytesIO(p)).convert("RGB")))
    reference = torch.stack(reference)
    on_cpu = DeviceImageDecoder(device_path, "cpu")(batch)["image"]
    cpu_diff = _levels(on_cpu, reference, device_path.std)
    checks: dict[str, Any] = {
        "pil_vs_decode_jpeg_max_levels": decode_diff,
        "device_path_on_cpu_vs_cpu_path": {"mean_levels": round(float(cpu_diff.mean()), 4),
                                           "max_levels": round(float(cpu_diff.max()), 2)},
    }
    if decode_diff > 1 or float(cpu_diff.mean()) > 0.5:
        raise SystemExit(f"the two paths do not give the same pixels: {checks}")

    # ---- timed sides
    def pil_transform() -> int:
        for k, p in enumerate(patches):
            torch.manual_seed(k)
            cpu_transform(Image.open(io.BytesIO(p)).convert("RGB"))
        return len(patches)

    def pil_only() -> int:
        for p in patches:
            Image.open(io.BytesIO(p)).convert("RGB")
        return len(patches)

    def tv_only() -> int:
        for t in tensors:
            decode_jpeg(t, mode=ImageReadMode.RGB)
        return len(patches)

    cpu_decoder = DeviceImageDecoder(device_path, "cpu")

    def tv_transform() -> int:
        for i in range(0, len(patches), args.batch_size):
            cpu_decoder({"image": batch["image"][i:i + args.batch_size]})
        return len(patches)

    sides = {"pil+transform": pil_transform, "pil": pil_only, "decode_jpeg": tv_only,
             "decode_jpeg+transform": tv_transform}
    cuda = torch.cuda.is_available()
    if cuda:
        gpu_decoder = DeviceImageDecoder(device_path, "cuda")
        gpu = gpu_decoder(batch)["image"].cpu()
        gpu_diff = _levels(gpu, reference, device_path.std)
        checks["cuda_vs_cpu_path"] = {"mean_levels": round(float(gpu_diff.mean()), 4),
                                      "max_levels": round(float(gpu_diff.max()), 2)}
        if float(gpu_diff.mean()) > 2:
            raise SystemExit(f"nvJPEG's pixels are too far from the CPU path's: {checks}")

        def cuda_batched() -> int:
            torch.cuda.synchronize()
            for i in range(0, len(patches), args.batch_size):
                gpu_decoder({"image": batch["image"][i:i + args.batch_size]})
            torch.cuda.synchronize()
            return len(patches)

        sides["cuda batched"] = cuda_batched
        cuda_batched()  # warm-up: nvJPEG handles, kernels

    rates: dict[str, list[float]] = {name: [] for name in sides}
    cpu_rates: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(args.repeats):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            start, cpu_start = time.perf_counter(), time.process_time()
            n = sides[name]()
            rates[name].append(n / (time.perf_counter() - start))
            cpu_rates[name].append(n / max(time.process_time() - cpu_start, 1e-9))
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()),
              flush=True)

    # per core = per CPU-second of this one-thread process: on a shared machine the wall-clock rate
    # also counts the time other jobs held the core; the GPU side is reported by wall clock
    medians = {name: median(v) for name, v in rates.items()}
    per_cpu_s = {name: median(v) for name, v in cpu_rates.items()}
    cores = {name: args.target / per_cpu_s[name] for name in medians if name != "cuda batched"}
    rows = [[name, medians[name], per_cpu_s[name] if name in cores else None, cores.get(name)] for name in medians]
    print(markdown_table(["path", "images/s (wall)", "images per CPU-s", f"cores for {args.target:.0f}/s"], rows))
    summary = [{
        "benchmark": "decode",
        "measurement": "224 px JPEG q95 per core: decode_jpeg+transform vs PIL+transform (images per CPU-s)",
        "domainclip": round(per_cpu_s["decode_jpeg+transform"], 1),
        "reference": round(per_cpu_s["pil+transform"], 1),
        "ratio": round(per_cpu_s["decode_jpeg+transform"] / per_cpu_s["pil+transform"], 3),
        "goal": None,
        "met": None,
    }]
    if cuda:
        summary.append({
            "benchmark": "decode",
            "measurement": f"GPU batched decode+transform vs {args.target:.0f} images/s needed",
            "domainclip": round(medians["cuda batched"], 1),
            "reference": args.target,
            "ratio": round(medians["cuda batched"] / args.target, 3),
            "goal": 1.0,
            "met": medians["cuda batched"] >= args.target,
        })
    result = {
        "benchmark": "decode",
        "images": len(patches),
        "mean_jpeg_bytes": int(np.mean([len(p) for p in patches])),
        "repeats": args.repeats,
        "target_images_per_s": args.target,
        "checks": checks,
        "images_per_s_median": {k: round(v, 1) for k, v in medians.items()},
        "images_per_s_all": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "images_per_cpu_s_median": {k: round(v, 1) for k, v in per_cpu_s.items() if k in cores},
        "cores_for_target": {k: round(v, 1) for k, v in cores.items()},
        "machine": machine_info(),
        "load_average_end": load_average(),
        "summary": summary,
    }
    if cuda:
        result["gpu"] = torch.cuda.get_device_name()
    write_result(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
