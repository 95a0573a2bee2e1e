"""The paper's ``celeba32`` preset on a GPU: training steps/s and DDIM-100 samples/s.

Issue 4, item 7. CelebA itself cannot be shipped or downloaded, so the run trains on a synthetic
CelebA-shaped folder (``img_align_celeba/000001.jpg …``, 178×218 RGB JPEGs of smooth random
content) through the real pipeline: the CelebA reader and its cache, ``probekit.reference.train``
with the preset's exact recipe (SGD lr 0.01, momentum 0.95, batch min(n, 512), T = 1000), the
log-spaced checkpoints, then the ``ddpm`` adapter sampling the paper's 10,000 DDIM-100 samples
from the last checkpoint. The per-width rows (first) time the bare training step for W = 8 … 64.

    python benchmarks/bench_celeba32_gpu.py --out bench-out --device cuda

Prints one JSON line per measurement and writes them to ``OUT/celeba32_gpu.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _write_images(args: tuple[Path, int, int]) -> None:
    folder, start, stop = args
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        small = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
        Image.fromarray(small).resize((178, 218), Image.BILINEAR).save(
            folder / f"{i:06d}.jpg", quality=95)


def make_celeba_shaped(root: Path, count: int) -> Path:
    """``root/img_align_celeba/`` with ``count`` CelebA-sized JPEGs (in parallel)."""
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True, exist_ok=True)
    chunks = [(folder, a, min(a + 256, count + 1)) for a in range(1, count + 1, 256)]
    with ProcessPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(_write_images, chunks))
    return root


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n", type=int, default=1024, help="training images (batch min(n, 512))")
    parser.add_argument("--steps", type=int, default=3000, help="training steps of the run")
    parser.add_argument("--samples", type=int, default=10_000, help="DDIM-100 samples timed")
    parser.add_argument("--widths", type=int, nargs="*", default=[8, 16, 32, 48, 64])
    parser.add_argument("--width-steps", type=int, default=50)
    args = parser.parse_args(argv)

    from probekit_plugins.adapters.ddpm import DDPMAdapter

    from probekit.reference.config import preset
    from probekit.reference.speed import time_training
    from probekit.reference.train import list_checkpoints, train
    from probekit.types import Checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    context = {"device": args.device, "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
               "precision": "float32 (torch defaults: no TF32, no autocast)"}

    def emit(row: dict) -> None:
        row = {**row, **context}
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / "celeba32_gpu.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    for width in args.widths:
        row = time_training("celeba32", n=512, steps=args.width_steps, width=width,
                            device=args.device)
        emit({**row, "what": "train-step", "steps_per_s": round(row["steps_per_s"], 2)})

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        root = make_celeba_shaped(tmp / "celeba", args.n + 2048)
        emit({"what": "synthetic-celeba", "images": args.n + 2048,
              "seconds": round(time.perf_counter() - t0, 2)})

        cfg = preset("celeba32", n=args.n, steps=args.steps,
                     data_options={"root": str(root), "cache_dir": str(tmp / "cache")})
        outcome = train(cfg, tmp / "run", device=args.device, quiet=True)
        emit({"what": "train-run", "preset": "celeba32", "width": 32, "n": args.n,
              "batch": min(args.n, 512), "steps": args.steps,
              "checkpoints": len(outcome.checkpoints), "wall_s": round(outcome.seconds, 1),
              "train_steps_per_s": round(outcome.train_steps_per_s, 2)})

        step, path = list_checkpoints(tmp / "run")[-1]
        handle = DDPMAdapter(device=args.device).load(Checkpoint(step, path))
        handle.generate(64, seed=1)  # warm-up (cuDNN autotuning, allocator)
        _sync(args.device)
        t0 = time.perf_counter()
        x = handle.generate(args.samples, seed=0)
        _sync(args.device)
        seconds = time.perf_counter() - t0
        emit({"what": "ddim-100", "preset": "celeba32", "width": 32, "samples": args.samples,
              "batch": cfg.sampler.batch_size, "seconds": round(seconds, 2),
              "samples_per_s": round(args.samples / seconds, 1),
              "finite": bool(np.isfinite(x).all()), "shape": list(x.shape)})

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
