"""Throughput of the reference pipeline: training steps/s and DDIM samples/s.

``python -m probekit.reference.speed --preset digits --threads 1`` times the real training step
(batch drawing, forward, backward, optimizer, EMA) and the real sampler on random data of the
preset's shape, so it needs no dataset (CelebA included). Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time

import torch

from probekit.reference.config import PRESETS, preset
from probekit.reference.diffusion import alphas_cumprod, denoising_loss
from probekit.reference.sample import ddim_sample, initial_noise
from probekit.reference.train import batch_indices, build_model, build_optimizer, ema_decay_at
from probekit.reference.unet import count_parameters


def time_training(name: str, *, n: int, steps: int, warmup: int = 3, width: int | None = None,
                  device: str = "cpu") -> dict:
    """Steps/s of the training step of preset ``name`` on random data of its shape."""
    cfg = preset(name, n=n, width=width)
    u = cfg.unet
    data = torch.randn(n, u.in_channels, *([u.resolution] * u.dims), device=device)
    model = build_model(cfg).to(device)
    ema = copy.deepcopy(model) if cfg.train.ema_decay else None
    opt = build_optimizer(model, cfg.train)
    abar = alphas_cumprod(cfg.diffusion).float().to(device)
    gen = torch.Generator().manual_seed(0)

    def step(s: int) -> None:
        x0 = data[batch_indices(s, n, cfg.train).to(device)]
        t = torch.randint(1, cfg.diffusion.num_timesteps, (len(x0),), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        loss = denoising_loss(model, x0, t.to(device), noise.to(device), abar)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()),
                                     1.0 - ema_decay_at(s, cfg.train))
        loss.item()

    for s in range(warmup):
        step(s)
    start = time.perf_counter()
    for s in range(steps):
        step(warmup + s)
    seconds = time.perf_counter() - start
    return {"what": "train", "preset": name, "width": u.base_width, "n": n,
            "batch": min(n, cfg.train.batch_size), "parameters": count_parameters(model),
            "steps": steps, "seconds": round(seconds, 3), "steps_per_s": steps / seconds}


def time_sampling(name: str, *, n_samples: int, ddim_steps: int | None = None,
                  width: int | None = None, device: str = "cpu") -> dict:
    """Samples/s of DDIM with the preset's sampler settings (random weights: the cost is the
    same)."""
    cfg = preset(name, n=64, width=width)
    u = cfg.unet
    steps = ddim_steps or cfg.sampler.ddim_steps
    model = build_model(cfg).to(device)
    noise = initial_noise(n_samples, (u.in_channels, *([u.resolution] * u.dims)), 0)
    abar = alphas_cumprod(cfg.diffusion)
    ddim_sample(model, noise[:2], abar, ddim_steps=2, device=device)  # warm-up
    start = time.perf_counter()
    ddim_sample(model, noise, abar, ddim_steps=steps, batch_size=cfg.sampler.batch_size,
                device=device)
    seconds = time.perf_counter() - start
    return {"what": "ddim", "preset": name, "width": u.base_width, "ddim_steps": steps,
            "batch": cfg.sampler.batch_size, "n_samples": n_samples,
            "seconds": round(seconds, 3), "samples_per_s": n_samples / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=PRESETS, required=True)
    parser.add_argument("--width", type=int)
    parser.add_argument("--n", type=int, default=256, help="training-set size (batch = min)")
    parser.add_argument("--steps", type=int, default=200, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--samples", type=int, default=256, help="timed DDIM samples (0: skip)")
    parser.add_argument("--ddim-steps", type=int, help="default: the preset's")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    context = {"threads": args.threads, "device": args.device,
               "load_average_1min": round(os.getloadavg()[0], 2), "torch": torch.__version__}
    if args.steps:
        print(json.dumps({**time_training(args.preset, n=args.n, steps=args.steps,
                                          warmup=args.warmup, width=args.width,
                                          device=args.device), **context}))
    if args.samples:
        print(json.dumps({**time_sampling(args.preset, n_samples=args.samples,
                                          ddim_steps=args.ddim_steps, width=args.width,
                                          device=args.device), **context}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
