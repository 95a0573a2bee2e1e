"""In-memory FID (probekit ``fid``) against the paper's route on the same samples.

The paper's route, per checkpoint: write the generated samples as PNG files, then run
``python -m pytorch_fid REFERENCE_DIR SAMPLES_DIR`` (which recomputes the reference statistics
every time and takes scipy's ``sqrtm`` of a 2048×2048 product). probekit's route: ``prepare``
the reference statistics once, then ``evaluate`` each checkpoint's samples in memory (batch
norms folded into the convolutions, symmetric eigendecompositions for the square root).

Also timed, to be fair to pytorch-fid: its best use, with the reference statistics saved once
(``--save-stats``) and each checkpoint compared against the ``.npz``.

Every route runs on one CPU thread (``OMP_NUM_THREADS=1`` for the CLI, one torch and one BLAS
thread here) and the routes are interleaved checkpoint by checkpoint, so that the load of a
shared machine falls on all of them alike. The ratios are what to read; absolute seconds
depend on the machine.

The real Inception weights cannot be fetched here, so a seeded random state dict with the same
keys and shapes stands in for them (``write_random_weights``), in a temporary torch hub cache
that both routes read. The values are therefore not FIDs of anything; the point is that both
routes agree and how long each takes.

Usage:
    python benchmarks/bench_fid.py                 # 200 reference, 3 checkpoints × 200 samples
    python benchmarks/bench_fid.py --quick         # 50 reference, 2 checkpoints × 50 samples
    python benchmarks/bench_fid.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def checkpoint_samples(pool: np.ndarray, n: int, noise: float, seed: int) -> np.ndarray:
    """Stand-ins for one checkpoint's samples: digits with noise that shrinks over training."""
    rng = np.random.default_rng(seed)
    x = pool[rng.choice(len(pool), n, replace=False)]
    return np.clip(x + rng.normal(0, noise, x.shape), -1, 1).astype(np.float32)


def run_cli(args: list[str], env: dict[str, str]) -> str:
    """``python -m pytorch_fid ARGS`` on the CPU; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "pytorch_fid", *args, "--device", "cpu", "--num-workers", "0"],
        capture_output=True, text=True, env=env, check=True,
    )
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-reference", type=int, default=200)
    parser.add_argument("--n-samples", type=int, default=200)
    parser.add_argument("--checkpoints", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="50 / 50 / 2 checkpoints")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    if args.quick:
        args.n_reference, args.n_samples, args.checkpoints = 50, 50, 2

    work = Path(tempfile.mkdtemp(prefix="bench-fid-"))
    os.environ["TORCH_HOME"] = str(work / "torch")
    os.environ.pop("PROBEKIT_INCEPTION_WEIGHTS", None)
    import torch
    from probekit_plugins.datasets.digits import load_digits_pool
    from probekit_plugins.features.inception import (
        WEIGHTS_FILENAME,
        default_weights_path,
        save_png_folder,
        write_random_weights,
    )
    from probekit_plugins.metrics.fid import FrechetInceptionDistance
    from threadpoolctl import threadpool_limits

    write_random_weights(default_weights_path(), seed=0)
    assert default_weights_path().name == WEIGHTS_FILENAME
    one_thread = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env = {**os.environ, **one_thread}
    torch.set_num_threads(1)
    limits = threadpool_limits(1)

    pool, holdout = load_digits_pool()
    reference = holdout[: args.n_reference]
    noises = np.linspace(0.8, 0.1, args.checkpoints)
    series = [checkpoint_samples(pool, args.n_samples, s, seed=i) for i, s in enumerate(noises)]
    vr = (-1.0, 1.0)

    # once per run: the reference PNGs (paper route), the reference statistics (pytorch-fid's
    # --save-stats; probekit's prepare)
    t = time.perf_counter()
    save_png_folder(reference, work / "reference", value_range=vr)
    paper_once = time.perf_counter() - t
    t = time.perf_counter()
    run_cli(["--save-stats", str(work / "reference"), str(work / "reference.npz")], env)
    stats_once = time.perf_counter() - t
    t = time.perf_counter()
    fid = FrechetInceptionDistance(value_range=vr).prepare(reference)
    prepare_seconds = time.perf_counter() - t

    paper, paper_times, stats_route, stats_times, ours, ours_times = [], [], [], [], [], []
    for i, samples in enumerate(series):
        # the paper's route: PNGs + `python -m pytorch_fid REF_DIR SAMPLES_DIR`
        t = time.perf_counter()
        save_png_folder(samples, work / f"ckpt{i}", value_range=vr)
        out = run_cli([str(work / "reference"), str(work / f"ckpt{i}")], env)
        paper.append(float(re.search(r"FID:\s+(\S+)", out).group(1)))
        paper_times.append(time.perf_counter() - t)
        # pytorch-fid at its best: saved reference statistics (the PNGs are already written;
        # writing them is counted in the paper route only)
        t = time.perf_counter()
        out = run_cli([str(work / "reference.npz"), str(work / f"ckpt{i}")], env)
        stats_route.append(float(re.search(r"FID:\s+(\S+)", out).group(1)))
        stats_times.append(time.perf_counter() - t)
        # probekit: in memory against the prepared reference
        t = time.perf_counter()
        ours.append(fid.evaluate(samples).value)
        ours_times.append(time.perf_counter() - t)
    limits.unregister()
    paper_total = paper_once + sum(paper_times)
    stats_total = stats_once + sum(stats_times)
    ours_total = prepare_seconds + sum(ours_times)

    diffs = [abs(a - b) for a, b in zip(ours, paper, strict=True)]
    report = {
        "n_reference": args.n_reference,
        "n_samples": args.n_samples,
        "checkpoints": args.checkpoints,
        "weights": "seeded random state dict (real weights not available here)",
        "fid_probekit": ours,
        "fid_pytorch_fid_cli": paper,
        "fid_pytorch_fid_saved_stats": stats_route,
        "max_abs_difference": max(diffs),
        "seconds_paper_route": paper_total,
        "seconds_paper_route_per_checkpoint": paper_times,
        "seconds_pytorch_fid_saved_stats": stats_total,
        "seconds_probekit": ours_total,
        "seconds_probekit_prepare": prepare_seconds,
        "seconds_probekit_per_checkpoint": ours_times,
        "speedup_vs_paper_route": paper_total / ours_total,
        "speedup_vs_saved_stats": stats_total / ours_total,
        "speedup_one_checkpoint_with_reference": (paper_once + paper_times[0])
        / (prepare_seconds + ours_times[0]),
        "threads_per_route": 1,
    }
    print(f"{args.checkpoints} checkpoints × {args.n_samples} samples, {args.n_reference} "
          "reference images (random-weights Inception)")
    print(f"{'route':<44}{'seconds':>9}{'probekit is':>14}")
    print(f"{'paper: PNGs + python -m pytorch_fid per ckpt':<44}{paper_total:>9.1f}"
          f"{report['speedup_vs_paper_route']:>13.1f}×")
    print(f"{'pytorch-fid with saved reference stats':<44}{stats_total:>9.1f}"
          f"{report['speedup_vs_saved_stats']:>13.1f}×")
    print(f"{'probekit fid (prepare once, in memory)':<44}{ours_total:>9.1f}{'—':>14}")
    one = report["speedup_one_checkpoint_with_reference"]
    print(f"one checkpoint incl. its reference: {one:.1f}×")
    for i, (a, b, c) in enumerate(zip(ours, paper, stats_route, strict=True)):
        print(f"  ckpt {i}: probekit {a:.6f}  pytorch-fid {b:.6f}  (saved stats {c:.6f})  "
              f"|diff| {abs(a - b):.2e}")
    print(f"max |probekit - pytorch-fid| = {max(diffs):.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
