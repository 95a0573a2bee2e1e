"""Throughput of the reference pipeline: training steps/s and DDIM samples/s.

``python -m probekit.reference.speed --preset digits --threads 1`` times the real training step
(batch drawing, forward, backward, optimizer, EMA) and the real sampler on random data of the
preset's shape, so it needs no dataset (CelebA included). Prints one JSON line per measurement.

:func:`time_variants` times the speed-ups of issue 15 against the plain step, in one process:
bf16 autocast, ``torch.compile`` of the step (``reduce-overhead``: CUDA graphs on a GPU), and
``k`` runs trained at once as one batched ensemble (:mod:`probekit.reference.ensemble`);
``--variants`` runs it from the command line.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time

import torch

from probekit.reference.config import PRESETS, preset
from probekit.reference.diffusion import alphas_cumprod
from probekit.reference.sample import ddim_sample, initial_noise
from probekit.reference.train import batch_indices, build_model, build_optimizer, ema_decay_at
from probekit.reference.unet import count_parameters


def time_training(name: str, *, n: int, steps: int, warmup: int = 3, width: int | None = None,
                  device: str = "cpu") -> dict:
    """Steps/s of the training step of preset ``name`` on random data of its shape (the plain
    float32 step of :func:`time_variants`)."""
    cfg = preset(name, n=n, width=width)
    u = cfg.unet
    dev = torch.device(device)
    data = torch.randn(n, u.in_channels, *([u.resolution] * u.dims), device=dev)
    step = _variant_step(cfg, data, dev, 1, None)
    for s in range(warmup):
        step(s)
    _sync(dev)
    start = time.perf_counter()
    for s in range(steps):
        step(warmup + s)
    _sync(dev)
    seconds = time.perf_counter() - start
    return {"what": "train", "preset": name, "width": u.base_width, "n": n,
            "batch": len(batch_indices(0, n, cfg.train)),
            "parameters": count_parameters(build_model(cfg)),
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


#: The variants of :func:`time_variants`: precision, compile, ensemble.
VARIANTS = ("fp32", "bf16", "fp32+compile", "bf16+compile", "ensemble-fp32", "ensemble-bf16",
            "ensemble-bf16+compile")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _variant_step(cfg, data: torch.Tensor, device: torch.device, members: int,
                  compile_mode: str | None):
    """The training step of one variant, as a function of the step index."""
    import dataclasses

    from probekit.reference.ensemble import StackedModels, stack_batches
    from probekit.reference.train import autocast, compiled_loss, seed_dropout, step_draws

    abar = alphas_cumprod(cfg.diffusion).float().to(device)
    ema_on = cfg.train.ema_decay is not None
    if members == 1:
        model = build_model(cfg).to(device)
        ema = copy.deepcopy(model).requires_grad_(False) if ema_on else None
        opt = build_optimizer(model, cfg.train)
        loss_fn = compiled_loss(compile_mode)

        def step(s: int) -> None:
            seed_dropout(s, cfg.train)
            x0, t, noise = step_draws(s, data, cfg)
            masks = model.draw_dropout_masks(len(x0), device) if compile_mode else None
            with autocast(device, cfg.train.autocast_bf16):
                loss = loss_fn(model, x0, t, noise, abar, dropout_masks=masks)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()),
                                         1.0 - ema_decay_at(s, cfg.train))
        return step

    cfgs = [dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=i))
            for i in range(members)]
    models = [build_model(c).to(device) for c in cfgs]
    stack = StackedModels(models, cfg, emas=[copy.deepcopy(m) for m in models] if ema_on
                          else None, device=device, compile_mode=compile_mode)

    def ensemble_step(s: int) -> None:
        draws, masks = [], []
        for c in cfgs:
            seed_dropout(s, c.train)
            draws.append(step_draws(s, data, c))
            masks.append(stack.draw_dropout_masks(len(draws[-1][0])))
        stack.step(*stack_batches(draws, masks, abar),
                   ema_decay=ema_decay_at(s, cfg.train) if ema_on else None)
    return ensemble_step


def time_variants(name: str, *, n: int, width: int | None = None, k: int = 8, steps: int = 20,
                  warmup: int = 3, device: str = "cpu", compile_mode: str = "reduce-overhead",
                  variants: tuple[str, ...] = VARIANTS, optimizer: str | None = None
                  ) -> list[dict]:
    """Training steps/s of preset ``name`` (its batch for ``n`` training samples) for each
    variant, on random data: one row per variant with ``steps_per_s`` (optimizer steps of the
    whole stack per second) and ``model_steps_per_s`` (``k ×`` that for an ensemble of ``k``).
    Compile time is left out (``warmup`` steps first, at least 3 with compile)."""
    import dataclasses

    dev = torch.device(device)
    rows = []
    for variant in variants:
        if variant not in VARIANTS:
            raise ValueError(f"speed: unknown variant {variant!r}; known: {', '.join(VARIANTS)}.")
        mode = compile_mode if "compile" in variant else None
        members = k if variant.startswith("ensemble") else 1
        cfg = preset(name, n=n, width=width, optimizer=optimizer)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(
            cfg.train, autocast_bf16="bf16" in variant))
        u = cfg.unet
        data = torch.randn(n, u.in_channels, *([u.resolution] * u.dims), device=dev)
        step = _variant_step(cfg, data, dev, members, mode)
        started = time.perf_counter()
        for s in range(max(warmup, 3) if mode else warmup):
            step(s)
        _sync(dev)
        warm = time.perf_counter() - started
        start = time.perf_counter()
        for s in range(steps):
            step(1000 + s)
        _sync(dev)
        seconds = time.perf_counter() - start
        rows.append({"what": "train-variant", "variant": variant, "preset": name,
                     "width": u.base_width, "n": n, "optimizer": cfg.train.optimizer,
                     "batch": len(batch_indices(0, n, cfg.train)), "k": members,
                     "steps": steps, "seconds": round(seconds, 3),
                     "warmup_seconds": round(warm, 1), "steps_per_s": steps / seconds,
                     "model_steps_per_s": members * steps / seconds})
    return rows


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
    parser.add_argument("--variants", nargs="*", choices=VARIANTS, metavar="V",
                        help=f"time these speed-ups instead ({', '.join(VARIANTS)})")
    parser.add_argument("--k", type=int, default=8, help="ensemble size of the variants")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    context = {"threads": args.threads, "device": args.device,
               "load_average_1min": round(os.getloadavg()[0], 2), "torch": torch.__version__}
    if args.variants:
        for row in time_variants(args.preset, n=args.n, width=args.width, k=args.k,
                                 steps=args.steps, warmup=args.warmup, device=args.device,
                                 variants=tuple(args.variants)):
            print(json.dumps({**row, **context}), flush=True)
        return 0
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
