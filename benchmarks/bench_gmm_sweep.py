"""The full Gaussian-mixture sweep of Bonnaire et al. (2025) on a CPU: tau_gen, tau_mem and their
scaling with n and with the width W.

Data ½N(+1_8, I) + ½N(-1_8, I); the residual MLP of ``probekit.reference.mlp`` (3 blocks); full
batch; every checkpoint evaluated as it is reached (nn-ratio on 1024 DDIM-50 samples, and the
exact MMD² to the mixture); a run stops once f_mem >= ``--stop-level`` at two consecutive
checkpoints. Two sweeps:

    n-sweep   n = 128, 256, 512, 1024 at W = 128      (tau_mem ∝ n expected)
    W-sweep   W = 64, 128, 256 at n = 128             (tau_mem ∝ 1/W expected)

The optimizer is Adam at lr 1e-3 by default: with the paper's full-batch SGD (lr 6e-3, momentum
0.95) tau_mem is 8.5 times later in steps (≈ 170·n instead of ≈ 20·n at W = 128, n = 128), and
the sweep takes over an hour here (measured: the n = 1024 run alone 70 minutes under load);
``--optimizer sgd`` runs it. Measured: SGD gives tau_mem ∝ n^1.10 and W^-0.61, Adam n^0.67 and
W^-0.96 (docs/theory.md).

This is what ``probekit reference theory gmm`` runs; the script adds the wall time, the thread
count and the machine load to the summary, and can copy the figure into ``docs/figures``.

Usage:
    python benchmarks/bench_gmm_sweep.py --out runs/gmm-sweep            # the full sweep
    python benchmarks/bench_gmm_sweep.py --out runs/gmm-sweep --docs     # and the docs figure
    python benchmarks/bench_gmm_sweep.py --out /tmp/gmm --quick          # a minute: n = 32, 64
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="sweep folder (runs resume when it exists)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=float, default=None, help="default: adam 1e-3, sgd 6e-3")
    p.add_argument("--stop-level", type=float, default=0.05)
    p.add_argument("--quick", action="store_true", help="n = 32, 64 and W = 32, 64 at n = 32")
    p.add_argument("--docs", action="store_true", help="copy theory-gmm.png to docs/figures")
    args = p.parse_args(argv)

    import torch

    from probekit.reference.gmm_sweep import format_sweep, run_sweep

    torch.set_num_threads(args.threads)
    lr = args.lr or (1e-3 if args.optimizer == "adam" else 6e-3)
    if args.quick:
        sizes = {"ns": (32, 64), "widths": (32, 64), "width_n": 32, "base_width": 64}
    else:
        sizes = {"ns": (128, 256, 512, 1024), "widths": (64, 128, 256), "width_n": 128,
                 "base_width": 128}
    load_before = os.getloadavg()
    started = time.perf_counter()
    summary = run_sweep(args.out, optimizer=args.optimizer, lr=lr, stop_level=args.stop_level,
                        progress=lambda m: print(m, file=sys.stderr, flush=True), **sizes)
    wall = time.perf_counter() - started
    summary["benchmark"] = {"wall_s": wall, "threads": args.threads,
                            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                            "cpu_count": os.cpu_count()}
    (Path(args.out) / "bench.json").write_text(json.dumps(summary, indent=2))
    print(format_sweep(summary))
    print(f"wall time {wall / 60:.1f} min with {args.threads} thread(s); load average "
          f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    if args.docs:
        target = Path(__file__).resolve().parent.parent / "docs" / "figures" / "theory-gmm.png"
        shutil.copyfile(Path(args.out) / "theory-gmm.png", target)
        print(f"figure copied to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
