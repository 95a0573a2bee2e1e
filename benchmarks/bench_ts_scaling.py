"""The open question of issue 7: does the reference time-series DDPM show the two timescales of
Bonnaire et al. (2025) — quality good at tau_gen, copying from tau_mem, tau_mem growing with the
training-set size n?

    .venv/bin/python benchmarks/bench_ts_scaling.py --out runs/ts-scaling \\
        [--preset ts-sines-small] [--n 16 32 64 128] [--jobs 2] [--figures docs/figures]

Trains one run of the preset per n with :func:`probekit.reference.sweep.sweep` (each evaluated
as it trains: whole-series ``nn-ratio`` gives f_mem, ``subsequence-match`` is recorded beside
it, ``discriminative-score`` and ``ts-fd`` against the 500 held-out series give quality; a run
stops once f_mem >= 10% at two consecutive checkpoints, never before step 1000), writes the
scaling report (tau_gen with one absolute threshold for all runs, tau_mem at f_mem = 5%, the
log-log slope with its CI), and prints the table. It also measures each quality metric's floor
(fresh real series against the same holdout, at the same sample count), so tau_gen can be read
against it, and writes ``ts-scaling-curves.png`` (f_mem and quality against steps, per n) plus
copies of the report's ``scaling.png`` and ``collapse.png`` into ``--figures``.

One torch thread per run; ``--jobs`` runs at a time.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from probekit import _plotting as plotting
from probekit.io import atomic_write_bytes, atomic_write_json
from probekit.reference.config import preset
from probekit.reference.sweep import EVAL_DIR, SCALING_DIR, format_table, sweep
from probekit.reference.timeseries import ts_measures
from probekit.reports import analyze_run, read_config, read_rows, write_scaling_report


def quality_floor(preset_name: str, n_samples: int, metric: str, seed: int = 0) -> float:
    """``metric`` of fresh real series (pool series never trained on) against the holdout the
    runs are evaluated on, with as many series as a checkpoint's samples: the best a generator
    can score at this sample size."""
    from probekit.registry import get_dataset, get_metric

    cfg = preset(preset_name, n=2)
    settings = {**cfg.data.settings(), "n_train": 2048 + n_samples}
    splits = get_dataset(cfg.data.dataset)(settings).load()
    fresh = splits.train[2048:]
    return get_metric(metric)(seed=seed).prepare(splits.holdout).evaluate(fresh).value


def curves_figure(run_dirs: list[Path], mem_level: float, metrics: tuple[str, ...]) -> bytes:
    """f_mem (with CI) and each quality metric against steps, one line per n."""
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 1 + len(metrics))
    for i, run in enumerate(run_dirs):
        a = analyze_run(run, read_config(run), read_rows(run))
        color = f"C{i}"
        label = f"n = {a.n_train:.0f}"
        steps = np.maximum(a.f_mem.steps, 1)
        axes[0].plot(steps, a.f_mem.value, "-o", ms=2.5, color=color, label=label)
        axes[0].fill_between(steps, a.f_mem.ci_low, a.f_mem.ci_high, color=color, alpha=0.15)
        for ax, metric in zip(axes[1:], metrics, strict=True):
            curve = a.curves[(metric, _headline(metric))]
            ax.plot(np.maximum(curve.steps, 1), curve.value, "-", color=color, label=label)
    axes[0].axhline(mem_level, color="black", linestyle=":", linewidth=1)
    axes[0].set_ylabel("f_mem (nn-ratio, whole series)")
    for ax, title in zip(axes, ("memorization", *metrics), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("training step")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    for ax in axes[1:]:
        ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle("reference time-series DDPM on sines: memorization and quality per n",
                 fontsize=11)
    return plotting.to_png(fig)


def _headline(metric: str) -> str:
    from probekit.registry import get_metric

    return get_metric(metric).headline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="sweep folder")
    parser.add_argument("--preset", default="ts-sines-small", choices=("ts-sines",
                                                                        "ts-sines-small"))
    parser.add_argument("--n", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each")
    parser.add_argument("--steps", type=int, default=20_000, help="step cap per run")
    parser.add_argument("--figures", help="also copy the figures here (e.g. docs/figures)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    out = Path(args.out)
    measures = ts_measures(args.preset)  # tau_gen from the first metric
    summary = sweep(args.preset, args.n, out, jobs=args.jobs, threads=args.jobs,
                    steps=args.steps, measures=measures)
    runs = [out / f"n-{n}" / EVAL_DIR for n in sorted(args.n)]
    n_samples = preset(args.preset, n=2).sampler.n_samples
    floors = {m: quality_floor(args.preset, n_samples, m) for m in measures.metrics}
    # the same runs read with ts-fd for tau_gen (the sweep's report uses the first metric)
    by_fd = write_scaling_report(runs, out / "scaling-ts-fd", quiet=True,
                                 overrides={"quality_measure": "ts-fd"})
    curves = curves_figure(runs, measures.mem_level, measures.metrics)
    atomic_write_bytes(out / "curves.png", curves)
    result = {
        "command": [sys.executable, *sys.argv],
        "preset": args.preset, "n": sorted(args.n), "jobs": args.jobs,
        "mem_level": measures.mem_level, "stop_level": measures.stop_level,
        "min_steps": measures.min_steps,
        "quality_floors": floors,
        "table_discriminative": format_table(summary),
        "table_ts_fd": format_table(by_fd),
        "fit": summary["fit"], "fit_ts_fd": by_fd["fit"],
        "thresholds": summary["thresholds"], "thresholds_ts_fd": by_fd["thresholds"],
        "runs": summary["runs"], "runs_ts_fd": by_fd["runs"],
        "runs_done": summary["runs_done"],
        "seconds": time.perf_counter() - started,
    }
    atomic_write_json(out / "open_question.json", result)
    print(result["table_discriminative"])
    print(f"tau_gen from ts-fd instead:\n{result['table_ts_fd']}")
    print("quality floors (fresh real series, same sample count): " +
          ", ".join(f"{k} {v:.4g}" for k, v in floors.items()))
    print(f"{result['seconds']:.0f} s; {out / 'open_question.json'}")
    if args.figures:
        figures = Path(args.figures)
        atomic_write_bytes(figures / "ts-scaling-curves.png", curves)
        for name in ("scaling", "collapse"):
            shutil.copyfile(out / SCALING_DIR / "plots" / f"{name}.png",
                            figures / f"ts-{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
