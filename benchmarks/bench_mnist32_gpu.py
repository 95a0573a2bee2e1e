"""Issue 15, item 3: the paper's recipe on ``mnist32`` on a GPU — the speed-ups, then the widest
(n, W) grid that fits the budget, with its phase diagram.

One script for a session that is lent a device (15 minutes of device time in all, so every part
has a time budget):

1. **Card and software**: device name, torch and CUDA versions.
2. **Training-step speed-ups**, each timed in this process against the plain step (float32,
   eager, one model): bf16 autocast, ``torch.compile(mode="reduce-overhead")`` (CUDA graphs),
   both, then ``k`` runs trained at once as one batched ensemble (``torch.func.vmap`` over
   stacked weights) in float32, bf16, and bf16 + compile. Steps/s (optimizer steps of the whole
   stack) and model-steps/s (``k ×`` that) at the paper's batch min(n, 512) = 512, W = 8 and 32.
3. **An equality check on the device**: the ensemble against one run at a time for a few steps
   (float32, same seeds): the largest loss difference.
4. **DDIM sampling**: samples/s of 1,024 DDIM-100 samples in float32 and under bf16 autocast.
5. **The sweep**: ``probekit reference sweep --preset mnist32`` (the paper's U-Net and recipe:
   SGD lr 0.01, momentum 0.95, batch min(n, 512), no EMA) over ``--ns`` × ``--widths``, each
   width's runs as one batched ensemble with the fastest variant measured in 2., with a step cap
   per run chosen from the measured speed so that the grid fits ``--sweep-budget-s``; then the
   grid analysis (tau per n and W, slopes with CIs) and the phase diagram (which (n, W) reached
   f_mem >= 5% within the cap) in ``OUT/sweep/grid.json``, ``grid.png`` and ``phase.png``.

Everything is written to ``OUT/bench_mnist32_gpu.jsonl`` (one JSON line per measurement) as it
goes, so a run cut short keeps what it measured. ``--tiny`` runs the same code on a CPU at toy
size (``mnist32-small``, a few steps, no compile): ``tests/reference/test_bench_mnist32.py``.

    python benchmarks/bench_mnist32_gpu.py --out bench-out --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def equality_check(preset_name: str, *, width: int, ns: list[int], steps: int, device: str,
                   out: Path) -> dict:
    """The ensemble and one-run-at-a-time training on ``device`` for ``steps`` steps: the
    largest difference of the per-step losses."""
    import dataclasses

    from probekit.reference.config import preset
    from probekit.reference.ensemble import train_ensemble
    from probekit.reference.train import train

    cfgs = []
    for i, n in enumerate(ns):
        cfg = preset(preset_name, n=n, width=width, steps=steps, seed=i)
        cfgs.append(dataclasses.replace(
            cfg, train=dataclasses.replace(cfg.train, log_every=1),
            schedule=dataclasses.replace(cfg.schedule, dense_every=steps, dense_until=steps)))
    for i, cfg in enumerate(cfgs):
        train(cfg, out / f"plain-{i}", device=device, quiet=True)
    train_ensemble(cfgs, [out / f"ens-{i}" for i in range(len(cfgs))], device=device,
                   quiet=True)

    def losses(d: Path) -> list[float]:
        return [json.loads(x)["loss"] for x in (d / "stats.jsonl").read_text().splitlines()
                if '"train"' in x]

    diff = max(max(abs(a - b) for a, b in zip(losses(out / f"plain-{i}"),
                                              losses(out / f"ens-{i}"), strict=True))
               for i in range(len(cfgs)))
    return {"what": "ensemble-equality", "preset": preset_name, "width": width, "ns": ns,
            "steps": steps, "max_loss_diff": diff, "within_1e-5": diff <= 1e-5}


def time_sampling(preset_name: str, *, width: int, n_samples: int, ddim_steps: int,
                  device: str, bf16: bool) -> dict:
    """Samples/s of DDIM from a freshly built network (the cost does not depend on training)."""
    from probekit.reference.config import preset
    from probekit.reference.diffusion import alphas_cumprod
    from probekit.reference.sample import ddim_sample, initial_noise
    from probekit.reference.train import build_model

    cfg = preset(preset_name, n=64, width=width)
    model = build_model(cfg).to(device)
    shape = (cfg.unet.in_channels, cfg.unet.resolution, cfg.unet.resolution)
    abar = alphas_cumprod(cfg.diffusion)
    ddim_sample(model, initial_noise(8, shape, 1), abar, ddim_steps=2, device=device, bf16=bf16)
    _sync(device)
    start = time.perf_counter()
    x = ddim_sample(model, initial_noise(n_samples, shape, 0), abar, ddim_steps=ddim_steps,
                    batch_size=1024, device=device, bf16=bf16)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"what": "ddim", "preset": preset_name, "width": width, "ddim_steps": ddim_steps,
            "samples": n_samples, "bf16": bf16, "seconds": round(seconds, 3),
            "samples_per_s": n_samples / seconds, "finite": bool(np.isfinite(x.numpy()).all())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true",
                        help="toy size on any device: mnist32-small, a few steps, no compile")
    parser.add_argument("--speed-widths", type=int, nargs="*", default=[8, 32])
    parser.add_argument("--speed-steps", type=int, default=30)
    parser.add_argument("--k", type=int, default=8, help="ensemble size of the speed rows")
    parser.add_argument("--ns", type=int, nargs="*", default=[64, 128, 256, 512])
    parser.add_argument("--widths", type=int, nargs="*", default=[16, 32, 64])
    parser.add_argument("--sweep-budget-s", type=float, default=300.0,
                        help="wall time for the whole sweep (training and evaluation)")
    parser.add_argument("--max-steps", type=int, default=200_000, help="cap per run")
    args = parser.parse_args(argv)

    from probekit.reference.grid_report import plot_phase
    from probekit.reference.speed import VARIANTS, time_variants
    from probekit.reference.sweep import default_measures, format_table, sweep

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    preset_name = "mnist32-small" if args.tiny else "mnist32"
    cuda = args.device.startswith("cuda")
    context = {"device": args.device, "torch": torch.__version__,
               "cuda": torch.version.cuda, "threads": torch.get_num_threads(),
               "card": torch.cuda.get_device_name() if cuda else "cpu",
               "load_average_1min": round(os.getloadavg()[0], 2)}
    rows: list[dict] = []

    def emit(row: dict) -> None:
        row = {**row, **context}
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / "bench_mnist32_gpu.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    emit({"what": "context", "preset": preset_name,
          "cudnn": torch.backends.cudnn.version() if cuda else None})
    variants = [v for v in VARIANTS if not (args.tiny and "compile" in v)]
    speed_steps = 3 if args.tiny else args.speed_steps
    widths = [4] if args.tiny else args.speed_widths
    n_speed = 16 if args.tiny else 512
    best: dict[int, dict] = {}
    for width in widths:  # compile (minutes of compiling) at the widest width only
        chosen = [v for v in variants if width == max(widths) or "compile" not in v]
        for row in time_variants(preset_name, n=n_speed, width=width, k=2 if args.tiny else args.k,
                                 steps=speed_steps, warmup=1 if args.tiny else 5,
                                 device=args.device, variants=tuple(chosen)):
            emit(row)
            if row["variant"].startswith("ensemble") and (
                    width not in best or row["model_steps_per_s"] >
                    best[width]["model_steps_per_s"]):
                best[width] = row

    emit(equality_check(preset_name, width=4 if args.tiny else 8,
                        ns=[8, 12] if args.tiny else [64, 96], steps=5 if args.tiny else 20,
                        device=args.device, out=out / "equality"))
    for bf16 in (False, True):
        emit(time_sampling(preset_name, width=4 if args.tiny else 32,
                           n_samples=16 if args.tiny else 1024,
                           ddim_steps=5 if args.tiny else 100, device=args.device, bf16=bf16))

    # The sweep: the fastest ensemble variant; a step cap per run from its measured speed.
    ns = [8, 16] if args.tiny else args.ns
    sweep_widths = [4, 8] if args.tiny else args.widths
    fastest = max(best.values(), key=lambda r: r["model_steps_per_s"])
    bf16 = "bf16" in fastest["variant"]
    compile_mode = "reduce-overhead" if "compile" in fastest["variant"] else None
    stack_steps_per_s = fastest["steps_per_s"]  # one step of a whole width group
    # each width group trains its len(ns) runs at once; half the budget for evaluation
    cap = int(0.5 * args.sweep_budget_s * stack_steps_per_s / len(sweep_widths))
    cap = max(100, min(args.max_steps, cap - cap % 50)) if not args.tiny else 20
    emit({"what": "sweep-plan", "ns": ns, "widths": sweep_widths, "steps_cap": cap,
          "variant": fastest["variant"], "budget_s": args.sweep_budget_s})
    measures = default_measures(preset_name)
    started = time.perf_counter()
    summary = sweep(preset_name, ns, out / "sweep", width=sweep_widths, steps=cap,
                    threads=torch.get_num_threads(), device=args.device, ensemble=True,
                    bf16=bf16, compile_mode=compile_mode, quiet=True)
    wall = time.perf_counter() - started
    table = format_table(summary)
    print(table, flush=True)
    grid_runs = [{"n": r["n"], "width": r["width"], "tau_mem": r["tau_mem"]["value"],
                  "last_step": r["last_step"], "f_mem_last": r["f_mem_last"]}
                 for r in summary.get("all_runs", [])]
    if grid_runs:
        (out / "sweep" / "phase.png").write_bytes(
            plot_phase(grid_runs, mem_level=measures.mem_level, cap=cap))
    emit({"what": "sweep", "wall_s": round(wall, 1), "steps_cap": cap, "runs": grid_runs,
          "table": table})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
