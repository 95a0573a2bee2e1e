"""Issue 15, items 1, 2 and 4 on a CPU: the n-sweep and the W-sweep of the ``mnist32-small``
preset (32×32 MNIST digits), analysed together as one (n, W) grid, with the issue's checks.

The two sweeps are the documented commands (``docs/reference_pipeline.md``)::

    nice -n 19 probekit reference sweep --preset mnist32-small --n 8 16 32 64 --width 8 \
        --jobs 2 --threads 2 --stop-after-mem 0.05 --out RUNS/mnist32-n
    nice -n 19 probekit reference sweep --preset mnist32-small --n 16 --width 4 8 16 \
        --jobs 2 --threads 2 --stop-after-mem 0.05 --out RUNS/mnist32-w

(``--train`` runs them from here; every run resumes where it stopped). This script then reads
the runs of both folders — ``n-<n>`` at W = 8 and ``n-16-w-<W>`` — as one grid (the (16, 8) run
is the same recipe and seed in both; the W-sweep's copy is used), and writes into ``--out``:

* ``grid.json`` / ``grid.csv`` / ``grid.png`` — tau_gen and tau_mem per n (W = 8) and per W
  (n = 16) with their CIs (the bracketing checkpoints), the log-log slopes with 95% CIs, the
  collapse panels on step/n and step·W;
* ``phase.png`` — the (n, W) points run: where f_mem reached the 5% level and where not;
* ``bench.json`` — all of it plus the issue's checks and the paper's numbers beside ours.

A run that never reached the level is censored: its last step is a lower bound of tau_mem (the
table says ``not crossed``; the fits leave it out, and the check that needs it says ``None``).
``--docs`` copies the figures into ``docs/figures``.

    python benchmarks/bench_mnist32_sweep.py --n-sweep RUNS/mnist32-n --w-sweep RUNS/mnist32-w \
        --out RUNS/mnist32-grid [--train] [--docs]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import time
from pathlib import Path

N_SWEEP = (8, 16, 32, 64)
N_WIDTH = 8
W_SWEEP_N = 16
W_SWEEP = (4, 8, 16)
MEM_LEVEL = 0.05  # mnist32_measures(): tau_mem at f_mem = 5% of 128 samples
STOP_LEVEL = 0.05  # stop a run once tau_mem is established (two checkpoints at the level)
PAPER = {"tau_mem_vs_n_slope": 1.0, "tau_mem_vs_w_slope": -1.0, "tau_gen_vs_w_slope": -1.0,
         "tau_gen_vs_n_slope": 0.0, "tau_mem_over_n_at_w32": 300.0}


def sweep_commands(n_dir: Path, w_dir: Path, jobs: int) -> list[list[str]]:
    """The two documented ``probekit reference sweep`` argument lists."""
    common = ["--preset", "mnist32-small", "--jobs", str(jobs), "--threads", str(jobs),
              "--stop-after-mem", str(STOP_LEVEL)]
    return [["reference", "sweep", *common, "--n", *map(str, N_SWEEP), "--width", str(N_WIDTH),
             "--out", str(n_dir)],
            ["reference", "sweep", *common, "--n", str(W_SWEEP_N), "--width",
             *map(str, W_SWEEP), "--out", str(w_dir)]]


def find_runs(n_dir: Path, w_dir: Path):
    """``GridRun`` of every evaluated run in the two sweep folders."""
    from probekit.reference.grid_analysis import GridRun

    runs: dict[tuple[int, int], GridRun] = {}
    for d in sorted(n_dir.glob("n-*")):
        m = re.fullmatch(r"n-(\d+)", d.name)
        if m and (d / "eval" / "config.json").exists():
            runs[(int(m[1]), N_WIDTH)] = GridRun(int(m[1]), N_WIDTH, d / "eval")
    for d in sorted(w_dir.glob("n-*-w-*")):
        m = re.fullmatch(r"n-(\d+)-w-(\d+)", d.name)
        if m and (d / "eval" / "config.json").exists():
            runs[(int(m[1]), int(m[2]))] = GridRun(int(m[1]), int(m[2]), d / "eval")
    return [runs[k] for k in sorted(runs)]


def checks(summary: dict) -> dict:
    """The issue's checks and the paper's numbers beside ours (None where a tau is censored)."""
    n_rows = {int(r["n"]): r for r in (summary.get("n_sweep") or {}).get("runs", [])}
    mem = [n_rows.get(n, {}).get("tau_mem", {}).get("value") for n in N_SWEEP]
    g16, g64 = (n_rows.get(n, {}).get("tau_gen", {}).get("value") for n in (16, 64))
    out = {
        "tau_mem_per_n": dict(zip(map(str, N_SWEEP), mem, strict=True)),
        "tau_mem_increasing_in_n": None if None in mem
        else all(a < b for a, b in itertools.pairwise(mem)),
        "tau_gen_16_over_64": None if g16 is None or g64 is None else g16 / g64,
        "tau_mem_over_n": {str(n): (v / n if v is not None else None)
                           for n, v in zip(N_SWEEP, mem, strict=True)},
        "paper": PAPER,
    }
    for axis in ("n", "width"):
        block = summary.get(f"{axis}_sweep") or {}
        out[f"tau_mem_vs_{axis}"] = {k: block.get("fit", {}).get(k)
                                     for k in ("slope", "slope_ci", "r2")}
        out[f"tau_gen_vs_{axis}"] = {k: block.get("gen_fit", {}).get(k)
                                     for k in ("slope", "slope_ci", "r2")}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sweep", required=True, help="folder of the n-sweep (n-<n>/)")
    parser.add_argument("--w-sweep", required=True, help="folder of the W-sweep (n-16-w-<W>/)")
    parser.add_argument("--out", required=True, help="folder for grid.*, phase.png, bench.json")
    parser.add_argument("--train", action="store_true", help="run (resume) the two sweeps first")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--docs", action="store_true", help="copy the figures to docs/figures")
    args = parser.parse_args(argv)

    from probekit.io import atomic_write_bytes, atomic_write_json, atomic_write_text
    from probekit.reference.grid_analysis import analyze_grid, grid_summary
    from probekit.reference.grid_report import format_grid, grid_csv, plot_grid, plot_phase

    n_dir, w_dir, out = Path(args.n_sweep), Path(args.w_sweep), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"cpu_count": os.cpu_count(), "commands": [
        "probekit " + " ".join(c) for c in sweep_commands(n_dir, w_dir, args.jobs)]}
    if args.train:
        from probekit.cli import main as cli

        for command in sweep_commands(n_dir, w_dir, args.jobs):
            load, started = os.getloadavg()[0], time.perf_counter()
            cli(command)
            report.setdefault("train", []).append(
                {"command": command, "wall_s": time.perf_counter() - started,
                 "load_start": load, "load_end": os.getloadavg()[0]})

    runs = find_runs(n_dir, w_dir)
    grid = analyze_grid(runs, mem_level=MEM_LEVEL, base_width=N_WIDTH, base_n=W_SWEEP_N)
    summary = {**grid_summary(grid), "grid": True, "preset": "mnist32-small"}
    print(format_grid(summary))
    atomic_write_json(out / "grid.json", summary)
    atomic_write_text(out / "grid.csv", grid_csv(summary))
    atomic_write_bytes(out / "grid.png", plot_grid(
        grid, summary, title="mnist32-small (CPU): tau_gen and tau_mem against n (W = 8) and "
        "W (n = 16)", quality_label="fd, mnist32-cnn features (lower is better)",
        ref_width=N_WIDTH))
    phase = [{"n": r["n"], "width": r["width"], "tau_mem": r["tau_mem"]["value"],
              "last_step": r["last_step"]} for r in summary["all_runs"]]
    atomic_write_bytes(out / "phase.png", plot_phase(phase, mem_level=MEM_LEVEL))
    report.update({"summary": summary, "phase": phase, "checks": checks(summary),
                   "load_at_analysis": os.getloadavg()})
    print("phase:", json.dumps(phase))
    print("checks:", json.dumps(report["checks"]))
    atomic_write_json(out / "bench.json", json.loads(json.dumps(report, default=str)))
    if args.docs:
        figures = Path(__file__).resolve().parent.parent / "docs" / "figures"
        figures.mkdir(exist_ok=True)
        for source, target in ((out / "grid.png", "mnist32-grid.png"),
                               (out / "phase.png", "mnist32-phase.png"),
                               (n_dir / "scaling" / "plots" / "collapse.png",
                                "mnist32-n-collapse.png")):
            if source.exists():
                shutil.copyfile(source, figures / target)
                print(f"copied {source} to {figures / target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
