"""Issue 15, items 1 and 2 on a CPU: the n-sweep and the W-sweep of the ``mnist32-small`` preset
(32×32 MNIST digits), with the issue's checks, wall times and load averages.

Runs (or resumes — every run resumes where it stopped) exactly the two documented commands

    probekit reference sweep --preset mnist32-small --n 8 16 32 64 --out OUT/mnist32-n --jobs 2
    probekit reference sweep --preset mnist32-small --n 16 --width 4 8 16 --out OUT/mnist32-w \
        --jobs 2

then prints both tables (tau per n and per W with CIs, the log-log slopes with CIs), the
issue's checks (tau_mem increasing in n, tau_gen(16) within a factor 2 of tau_gen(64)) and the
cost, and writes ``OUT/bench.json``. ``--docs`` copies the figures into ``docs/figures``.

    python benchmarks/bench_mnist32_sweep.py --out runs/mnist32 [--docs]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import time
from pathlib import Path

N_SWEEP = (8, 16, 32, 64)
W_SWEEP_N = 16
W_SWEEP = (4, 8, 16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--docs", action="store_true", help="copy the figures to docs/figures")
    args = parser.parse_args(argv)

    from probekit.reference.sweep import format_table, sweep

    out = Path(args.out)
    report: dict = {"cpu_count": os.cpu_count()}
    for name, kwargs in (("n", {"ns": N_SWEEP}),
                         ("w", {"ns": (W_SWEEP_N,), "width": W_SWEEP})):
        load = os.getloadavg()[0]
        started = time.perf_counter()
        summary = sweep("mnist32-small", out=out / f"mnist32-{name}", jobs=args.jobs,
                        threads=args.jobs,
                        seed=0, quiet=True, **kwargs)
        wall = time.perf_counter() - started
        print(f"== {name}-sweep ({wall / 60:.1f} min wall; load average {load:.1f} at the "
              f"start, {os.getloadavg()[0]:.1f} at the end)")
        print(format_table(summary))
        report[name] = {"summary": summary, "wall_s": wall, "load_start": load,
                        "load_end": os.getloadavg()[0]}

    runs = {int(r["n"]): r for r in report["n"]["summary"]["runs"]}
    mem = [(runs[n]["tau_mem"] or {}).get("value") for n in N_SWEEP]
    checks = {
        "tau_mem_increasing": None not in mem and all(a < b for a, b in itertools.pairwise(mem)),
        "tau_gen_16_over_64": None,
    }
    g16, g64 = ((runs[n]["tau_gen"] or {}).get("value") for n in (16, 64))
    if g16 is not None and g64 is not None:
        checks["tau_gen_16_over_64"] = g16 / g64
    print("checks:", json.dumps(checks))
    from probekit.reference.grid_analysis import GridRun, analyze_runs, tau_dict
    from probekit.reference.grid_report import plot_phase

    pairs = [GridRun(n, 8, out / "mnist32-n" / f"n-{n}" / "eval") for n in N_SWEEP] + [
        GridRun(W_SWEEP_N, w, out / "mnist32-w" / f"n-{W_SWEEP_N}-w-{w}" / "eval")
        for w in W_SWEEP if w != 8]
    level = report["n"]["summary"]["thresholds"]["mem_level"]
    phase = []
    for (n, w), a in analyze_runs(pairs, mem_level=level).items():
        tau = tau_dict(a.tau_mem)
        phase.append({"n": n, "width": w, "tau_mem": tau["value"] if tau["status"] == "crossed"
                      else None, "last_step": float(a.f_mem.steps[-1])})
    report["phase"] = phase
    print("phase:", json.dumps(phase))
    (out / "phase.png").write_bytes(plot_phase(phase, mem_level=level, cap=20_000))
    report["checks"] = checks
    (out / "bench.json").write_text(json.dumps(report, indent=2, default=str))
    if args.docs:
        figures = Path(__file__).resolve().parent.parent / "docs" / "figures"
        for source, target in ((out / "mnist32-n" / "scaling" / "plots" / "scaling.png",
                                "mnist32-n-scaling.png"),
                               (out / "mnist32-n" / "scaling" / "plots" / "collapse.png",
                                "mnist32-n-collapse.png"),
                               (out / "mnist32-w" / "grid.png", "mnist32-w-grid.png"),
                               (out / "phase.png", "mnist32-phase.png")):
            if source.exists():
                shutil.copyfile(source, figures / target)
                print(f"copied {source} to {figures / target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
