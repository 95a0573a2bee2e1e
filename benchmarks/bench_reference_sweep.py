"""The demo's two-timescale result, repeated: the ``digits`` sweep with three training seeds and
n = 512 added (issue 4, item 6).

Each seed trains one run per n (``probekit.reference.sweep.sweep``: evaluated at every
checkpoint, stopped once f_mem >= 10% twice in a row, never before step 1000) and reads
tau_gen and tau_mem off its curves exactly as ``probekit demo`` does. The seed changes the
initialisation and every training draw (batches, timesteps, noise); the evaluation noise is the
same for all runs. Reported per n: tau_mem and tau_gen of each seed, their mean, and
tau_mem / n; per seed: the log-log slope of tau_mem against n with its CI; and one pooled fit
over every (seed, n) point.

Usage:
    python benchmarks/bench_reference_sweep.py --out runs/bench-sweep          # ~1 h on 2 cores
    python benchmarks/bench_reference_sweep.py --out runs/b --preset digits-small --n 16 64
    python benchmarks/bench_reference_sweep.py --out runs/bench-sweep --json bench.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from probekit.reference.sweep import format_table, sweep


def pooled_fit(points: list[tuple[float, float]]) -> dict:
    """OLS of log tau_mem on log n over all points: slope, its 95% t interval, R²."""
    x = np.log([p[0] for p in points])
    y = np.log([p[1] for p in points])
    fit = stats.linregress(x, y)
    half = stats.t.ppf(0.975, len(x) - 2) * fit.stderr if len(x) > 2 else math.nan
    return {"slope": fit.slope, "slope_ci": [fit.slope - half, fit.slope + half],
            "r2": fit.rvalue**2, "points": len(points)}


def value(tau: dict | None) -> float | None:
    return None if not tau else tau.get("value")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for seed-<s>/ sweeps")
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--n", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    out = Path(args.out)
    per_seed = []
    for seed in args.seeds:
        started = time.perf_counter()
        load_before = os.getloadavg()[0]
        summary = sweep(args.preset, args.n, out / f"seed-{seed}", jobs=args.jobs,
                        threads=os.cpu_count(), seed=seed, quiet=True)
        seconds = time.perf_counter() - started
        print(f"\nseed {seed}: {seconds:.0f} s (1-min load average {load_before:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after)\n{format_table(summary)}", flush=True)
        per_seed.append({
            "seed": seed, "seconds": seconds,
            "load_average_1min": [load_before, os.getloadavg()[0]],
            "runs": {int(r["n"]): {"tau_mem": value(r.get("tau_mem")),
                                   "tau_gen": value(r.get("tau_gen"))}
                     for r in summary["runs"]},
            "fit": {k: summary["fit"].get(k) for k in ("slope", "slope_ci", "r2", "tau_gen_cv")},
        })

    rows = ["| n | tau_mem per seed | mean tau_mem | mean tau_mem / n | tau_gen per seed |",
            "|---:|---|---:|---:|---|"]
    points = []
    for n in sorted(args.n):
        mems = [s["runs"][n]["tau_mem"] for s in per_seed]
        gens = [s["runs"][n]["tau_gen"] for s in per_seed]
        points += [(n, m) for m in mems if m is not None]
        ok = [m for m in mems if m is not None]
        mean = sum(ok) / len(ok) if ok else None

        def fmt(v):
            return "never" if v is None else f"{v:.0f}"

        rows.append(f"| {n} | {', '.join(map(fmt, mems))} | {fmt(mean)} | "
                    f"{'n/a' if mean is None else f'{mean / n:.1f}'} | "
                    f"{', '.join(map(fmt, gens))} |")
    pooled = pooled_fit(points) if len({p[0] for p in points}) >= 2 else None
    print("\n" + "\n".join(rows))
    for s in per_seed:
        f = s["fit"]
        if f.get("slope") is not None:
            print(f"seed {s['seed']}: slope {f['slope']:.2f} (95% CI {f['slope_ci'][0]:.2f} to "
                  f"{f['slope_ci'][1]:.2f}), R² {f['r2']:.3f}")
    if pooled:
        print(f"pooled over {pooled['points']} runs: slope {pooled['slope']:.2f} (95% CI "
              f"{pooled['slope_ci'][0]:.2f} to {pooled['slope_ci'][1]:.2f}), "
              f"R² {pooled['r2']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"preset": args.preset, "n": args.n,
                                               "seeds": per_seed, "pooled": pooled,
                                               "table": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
