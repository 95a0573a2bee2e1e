"""The Gaussian-mixture sweep: train and evaluate an n-sweep and a W-sweep of the ``gmm``
preset, analyse them (:mod:`probekit.reference.grid_analysis`) and write the results
(``gmm-sweep.json``, ``gmm-sweep.csv``, ``theory-gmm.png``, the n-sweep's scaling report).

The experiment itself (data, presets, measures, step caps) is :mod:`probekit.reference.gmm`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from probekit.reference.gmm import STEPS_PER_SAMPLE, gmm_measures, gmm_preset
from probekit.reference.grid_analysis import GridRun, analyze_grid, grid_summary
from probekit.reference.grid_report import format_grid, grid_csv, plot_grid

#: The collapse axes are drawn at the paper's reference width.
REF_WIDTH = 128


def run_sweep(
    out: str | Path,
    *,
    ns: Sequence[int] = (128, 256, 512, 1024),
    widths: Sequence[int] = (64, 128, 256),
    width_n: int = 128,
    base_width: int = 128,
    optimizer: str = "adam",
    lr: float | None = None,
    steps_per_sample: float | None = None,
    mem_level: float = 0.01,
    stop_level: float = 0.05,
    seed: int = 0,
    preset_name: str = "gmm",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate the GMM runs of an n-sweep (at ``base_width``) and a W-sweep (at
    ``width_n``), analyse them and write ``gmm-sweep.json``, ``gmm-sweep.csv``,
    ``theory-gmm.png`` and the n-sweep's scaling report (``scaling/``) into ``out``. Runs live
    in ``out/n-<n>-w-<W>/`` and resume when run again.

    Each run is :func:`probekit.reference.sweep.train_and_evaluate`: the reference training loop
    with a :class:`probekit.evaluator.SeriesEvaluator` callback at every checkpoint. Its step
    cap is ``steps_per_sample · n · 128 / W``; it stops once ``f_mem >= stop_level`` at two
    consecutive checkpoints. ``lr`` defaults to 1e-3 for Adam (twice the paper's Adam rate, to
    fit a CPU budget) and to the preset's 6e-3 for SGD.
    """
    from probekit.io import atomic_write_bytes, atomic_write_json, atomic_write_text
    from probekit.reference.sweep import EVAL_DIR, train_and_evaluate
    from probekit.reports import write_scaling_report

    started = time.perf_counter()
    out = Path(out)
    per_sample = steps_per_sample or STEPS_PER_SAMPLE.get(optimizer, 64)
    if lr is None and optimizer == "adam":
        lr = 1e-3
    measures = gmm_measures(mem_level=mem_level, stop_level=stop_level)
    jobs = [(int(n), int(base_width)) for n in ns]
    jobs += [(int(width_n), int(w)) for w in widths if (int(width_n), int(w)) not in jobs]
    runs = []
    for n, width in jobs:
        cap = max(100, round(per_sample * n * 128 / width / 50) * 50)
        cfg = gmm_preset(preset_name, n=n, width=width, optimizer=optimizer, lr=lr, steps=cap,
                         seed=seed)
        run_dir = out / f"n-{n}-w-{width}"
        done = train_and_evaluate(cfg, run_dir, measures, quiet=True)
        runs.append(GridRun(n, width, run_dir / EVAL_DIR, {
            "train_seconds": done["seconds"], "train_steps_per_s": done["train_steps_per_s"]}))
        if progress is not None:
            progress(f"n={n} W={width}: {done['last_step']} steps "
                     f"({'stopped on f_mem' if done['stopped_early'] else 'step cap'}), "
                     f"{done['seconds']:.0f} s, {done['train_steps_per_s']:.0f} steps/s")
    grid = analyze_grid(runs, mem_level=mem_level, base_width=int(base_width),
                        base_n=int(width_n))
    n_dirs = [r.eval_dir for r in runs if r.width == grid.base_width]
    if len(n_dirs) >= 2:
        write_scaling_report(n_dirs, out / "scaling", quiet=True)
    summary = grid_summary(grid, quality_field="mmd2")
    summary.update({
        "settings": {"ns": list(ns), "widths": list(widths), "width_n": width_n,
                     "base_width": base_width, "optimizer": optimizer,
                     "lr": gmm_preset(preset_name, n=2, optimizer=optimizer, lr=lr).train.lr,
                     "full_batch": True,
                     "steps_per_sample": per_sample, "mem_level": mem_level,
                     "stop_level": stop_level, "seed": seed, "preset": preset_name},
        "seconds": time.perf_counter() - started,
    })
    atomic_write_json(out / "gmm-sweep.json", summary)
    atomic_write_text(out / "gmm-sweep.csv", grid_csv(summary))
    atomic_write_bytes(out / "theory-gmm.png", plot_grid(
        grid, summary, title="Gaussian mixture ½N(±1, I), d = 8: residual-MLP DDPM",
        quality_label="MMD² to the mixture (gmm-mmd)", ref_width=REF_WIDTH))
    return summary


#: The text table of a sweep's summary.
format_sweep = format_grid

__all__ = ["REF_WIDTH", "format_sweep", "run_sweep"]
