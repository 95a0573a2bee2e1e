"""Timescales across a grid of reference runs that differ in ``n`` and in the width ``W``.

The Gaussian-mixture and ``mnist32`` experiments train an n-sweep at one width and a W-sweep at
one ``n``. Each run is analysed by :func:`probekit.analysis.analyze_run` (its curves and
tau_mem); the n-sweep by :func:`probekit.analysis.analyze_scaling` (one absolute quality level
for all runs, the log-log fit); the W-sweep the same way along ``W``: one quality level — the
90%-improvement level of the widest run over the step range common to all runs
(:func:`probekit.timescales.common_quality_threshold`) — and the fit of ``log tau`` against
``log W``. Pure: rows and configurations in, frozen results out (rendering is in
:mod:`probekit.reference.grid_report`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probekit.analysis import RunAnalysis, analyze_run, analyze_scaling
from probekit.errors import ValidationError
from probekit.store import load_config, load_rows
from probekit.timescales import (
    ScalingFit,
    TauEstimate,
    common_quality_threshold,
    estimate_tau_gen,
    fit_scaling,
)

AXES = ("n", "width")


@dataclass(frozen=True)
class GridRun:
    """One finished run of a grid: its size, width and evaluation folder, plus training facts
    (seconds, steps/s, last step, stopped early) carried into the tables."""

    n: int
    width: int
    eval_dir: Path
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AxisSweep:
    """The runs along one axis (``"n"`` or ``"width"``) with the other held fixed."""

    axis: str
    fixed: int  # the width of an n-sweep, the n of a W-sweep
    runs: tuple[GridRun, ...]
    analyses: tuple[RunAnalysis, ...]
    tau_mem: tuple[TauEstimate | None, ...]
    tau_gen: tuple[TauEstimate | None, ...]
    fit: ScalingFit  # log tau_mem against log of the axis (tau_gen's spread beside it)
    gen_fit: ScalingFit  # log tau_gen against log of the axis (its ``slope``, ``slope_ci``)
    threshold: dict[str, Any] | None  # value, gen_tol, the run that set it, how

    def values(self) -> list[int]:
        return [getattr(r, self.axis) for r in self.runs]


@dataclass(frozen=True)
class GridAnalysis:
    """The n-sweep (at ``base_width``) and the W-sweep (at ``base_n``) of a grid."""

    mem_level: float
    gen_tol: float
    base_width: int
    base_n: int
    analyses: Mapping[tuple[int, int], RunAnalysis]  # (n, width) → analysis
    n_sweep: AxisSweep | None
    width_sweep: AxisSweep | None


def tau_dict(tau: TauEstimate | None) -> dict[str, Any]:
    """``value``, ``status``, CI bounds (the bracketing checkpoints) and ``level`` of a tau."""
    if tau is None:
        return {"value": None, "status": "no data", "ci_low": None, "ci_high": None,
                "level": None}
    low = tau.early.step if tau.early is not None else None
    high = tau.late.step if tau.late is not None else None
    return {"value": tau.value, "status": tau.status, "ci_low": low, "ci_high": high,
            "level": tau.level}


def analyze_runs(runs: Sequence[GridRun], *, mem_level: float, gen_tol: float = 0.1
                 ) -> dict[tuple[int, int], RunAnalysis]:
    """:func:`probekit.analysis.analyze_run` of every run (tau_gen relative to the run's own
    improvement; the sweeps read it again at a common level)."""
    overrides = {"mem_level": mem_level, "gen_tol": gen_tol, "gen_mode": "relative"}
    out = {}
    for r in runs:
        d = Path(r.eval_dir)
        out[(r.n, r.width)] = analyze_run(d, load_config(d), load_rows(d), overrides=overrides)
    return out


def analyze_grid(runs: Sequence[GridRun], *, mem_level: float, gen_tol: float = 0.1,
                 base_width: int | None = None, base_n: int | None = None) -> GridAnalysis:
    """tau_gen, tau_mem and the scaling fits of a grid of finished runs.

    ``base_width`` (default: the most common width) picks the n-sweep, ``base_n`` (default: the
    most common ``n``) the W-sweep; an axis with fewer than two runs is ``None``.
    """
    if not runs:
        raise ValidationError("grid analysis: runs must hold at least one run; got none.")
    keys = [(r.n, r.width) for r in runs]
    if len(set(keys)) != len(keys):
        raise ValidationError("grid analysis: every (n, width) must appear once.")

    def most_common(values: list[int]) -> int:
        return max(set(values), key=lambda v: (values.count(v), v))

    base_width = base_width or most_common([r.width for r in runs])
    base_n = base_n or most_common([r.n for r in runs])
    analyses = analyze_runs(runs, mem_level=mem_level, gen_tol=gen_tol)
    n_runs = sorted((r for r in runs if r.width == base_width), key=lambda r: r.n)
    w_runs = sorted((r for r in runs if r.n == base_n), key=lambda r: r.width)
    return GridAnalysis(
        mem_level=mem_level, gen_tol=gen_tol, base_width=base_width, base_n=base_n,
        analyses=analyses,
        n_sweep=_n_sweep(n_runs, analyses, base_width) if len(n_runs) >= 2 else None,
        width_sweep=_width_sweep(w_runs, analyses, base_n, gen_tol) if len(w_runs) >= 2
        else None,
    )


def _n_sweep(runs: list[GridRun], analyses, width: int) -> AxisSweep:
    picked = [analyses[(r.n, r.width)] for r in runs]
    sc = analyze_scaling(picked, gen_mode="absolute")
    threshold = None
    if sc.threshold is not None:
        threshold = {**sc.threshold.to_dict(), "axis": "n"}
    return AxisSweep("n", width, tuple(runs), tuple(picked), sc.tau_mem, sc.tau_gen, sc.fit,
                     fit_scaling([r.n for r in runs], list(sc.tau_gen)), threshold)


def _width_sweep(runs: list[GridRun], analyses, n: int, gen_tol: float) -> AxisSweep:
    picked = [analyses[(r.n, r.width)] for r in runs]
    with_quality = [(r, a) for r, a in zip(runs, picked, strict=True) if a.quality is not None]
    threshold, tau_gen = None, [None] * len(runs)
    if with_quality:
        hib = bool(with_quality[0][1].quality.higher_is_better)
        level = common_quality_threshold(
            [(r.width, a.quality.steps, a.quality.value) for r, a in with_quality],
            higher_is_better=hib, gen_tol=gen_tol)
        widest = max(r.width for r, _ in with_quality)
        threshold = {"value": level.value, "gen_tol": gen_tol, "axis": "width",
                     "source": f"{round((1 - gen_tol) * 100)}%-improvement level of the widest "
                               f"run (W={widest}) over the step range common to all runs"}
        tau_gen = [
            estimate_tau_gen(a.quality.steps, a.quality.value, higher_is_better=hib,
                             gen_tol=gen_tol, mode="absolute", threshold=level.value,
                             ci_low=a.quality.ci_low, ci_high=a.quality.ci_high)
            if a.quality is not None else None for a in picked]
    tau_mem = [a.tau_mem for a in picked]
    fit = fit_scaling([r.width for r in runs], tau_mem,
                      tau_gen=tau_gen if with_quality else None)
    return AxisSweep("width", n, tuple(runs), tuple(picked), tuple(tau_mem), tuple(tau_gen),
                     fit, fit_scaling([r.width for r in runs], tau_gen), threshold)


def sweep_summary(sweep: AxisSweep | None, *, quality_field: str | None = None
                  ) -> dict[str, Any] | None:
    """An axis sweep as plain JSON: one row per run (tau_gen, tau_mem, last step, last f_mem,
    best quality, training facts), the fit and the quality threshold."""
    if sweep is None:
        return None
    table = []
    for r, a, tg, tm in zip(sweep.runs, sweep.analyses, sweep.tau_gen, sweep.tau_mem,
                            strict=True):
        row = {"n": r.n, "width": r.width, "tau_gen": tau_dict(tg), "tau_mem": tau_dict(tm),
               "last_step": float(a.f_mem.steps[-1]) if a.f_mem is not None else None,
               "f_mem_last": float(a.f_mem.value[-1]) if a.f_mem is not None else None}
        if a.quality is not None:
            best = a.quality.value.max() if a.quality.higher_is_better else a.quality.value.min()
            row[f"{quality_field or a.quality.field}_best"] = float(best)
        row.update({k: v for k, v in r.facts.items() if k not in row})
        table.append(row)
    return {"runs": table, "fit": sweep.fit.to_dict(), "gen_fit": sweep.gen_fit.to_dict(),
            "quality_threshold": sweep.threshold}


def grid_summary(grid: GridAnalysis, *, quality_field: str | None = None) -> dict[str, Any]:
    """The whole grid as plain JSON (what ``gmm-sweep.json`` and a sweep's ``grid.json`` hold):
    the two sweeps, and tau_mem of every run (``all_runs``: the phase diagram in (n, W))."""
    all_runs = [{"n": n, "width": w, "tau_mem": tau_dict(a.tau_mem),
                 "last_step": float(a.f_mem.steps[-1]) if a.f_mem is not None else None,
                 "f_mem_last": float(a.f_mem.value[-1]) if a.f_mem is not None else None}
                for (n, w), a in sorted(grid.analyses.items())]
    return {"mem_level": grid.mem_level, "gen_tol": grid.gen_tol,
            "base_width": grid.base_width, "base_n": grid.base_n,
            "n_sweep": sweep_summary(grid.n_sweep, quality_field=quality_field),
            "width_sweep": sweep_summary(grid.width_sweep, quality_field=quality_field),
            "all_runs": all_runs}


__all__ = [
    "AXES",
    "AxisSweep",
    "GridAnalysis",
    "GridRun",
    "analyze_grid",
    "analyze_runs",
    "grid_summary",
    "sweep_summary",
    "tau_dict",
]
