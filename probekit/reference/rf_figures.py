"""Figures of the random-features experiments (:mod:`probekit.reference.rf_experiments`): render
only, every number comes from the experiment objects."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from probekit.reference.rf_experiments import (
    DynamicsExperiment,
    SpectrumExperiment,
    dynamics_experiment,
    spectrum_experiment,
)
from probekit.reference.rf_theory import slow_bulk_edges

# -- plots -----------------------------------------------------------------------------------------

_PSI_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def plot_spectrum(exp: SpectrumExperiment) -> bytes:
    """Fig. 4: the two bulks of ``U`` — histograms of the exact and Gaussian-equivalent
    eigenvalues (density per ``p`` eigenvalues), the theory density, the slow-bulk formula."""
    from matplotlib.figure import Figure

    from probekit._plotting import to_png

    c = exp.constants
    lo, hi = slow_bulk_edges(exp.psi_p, exp.psi_n, c)
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    exact_groups = exp.empirical_edges(exp.eigenvalues)
    half = len(exp.grid) // 2
    panels = (
        (axes[0], exp.grid[:half], exp.density[:half], exp.paper_density[:half],
         (exp.grid[0], exp.grid[half - 1]), "slow bulk (memorization modes)"),
        (axes[1], exp.grid[half:], exp.density[half:], exp.paper_density[half:],
         (exp.grid[half], exp.grid[-1]), "fast bulk (population modes)"),
    )
    for ax, grid, dens, paper, (a, b), title in panels:
        bins = np.linspace(a, b, 60)
        for values, label, style in (
            (exp.eigenvalues, f"exact U of the tanh network (d={exp.d})", "bar"),
            (exp.gep_eigenvalues, "Gaussian-equivalent U (same W, X)", "step"),
        ):
            inside = values[(values >= a) & (values <= b)]
            weights = np.full(len(inside), 1.0 / (len(values) * (bins[1] - bins[0])))
            ax.hist(inside, bins=bins, weights=weights, histtype=style, alpha=0.45
                    if style == "bar" else 1.0, color="#7f7f7f" if style == "bar" else "#1f77b4",
                    label=label, lw=1.2)
        ax.plot(grid, dens, color="#d62728", lw=1.6, label="theory (deterministic equivalent)")
        ax.plot(grid, paper, color="#000000", lw=1.0, ls=":", label="Theorem 3.1 equations")
        ax.set_xlim(a, b)
        ax.set_xlabel("eigenvalue λ of U")
        ax.set_ylabel("density ρ(λ) (per p eigenvalues)")
        ax.set_title(title, fontsize=10)
    ax0 = axes[0]
    visible = exp.density[:half][exp.grid[:half] > 1.15 * c.s2]  # away from the delta peak
    top = 1.6 * float(np.nanmax(visible)) if len(visible) else ax0.get_ylim()[1]
    ax0.set_ylim(0, top)  # the exact U's smeared delta peak near s² is clipped
    for x, text in ((lo, "λ₋"), (hi, "λ₊")):
        ax0.axvline(x, color="#2ca02c", ls="--", lw=1.2)
        ax0.text(x, top * 0.5, f" {text}", color="#2ca02c", va="center")
    ax0.plot([], [], color="#2ca02c", ls="--", label="s² + v²(1 ∓ √(ψp/ψn))²")
    sub = exact_groups["sub"]
    ax0.axvspan(sub[0], sub[1], color="#ffbb78", alpha=0.25, lw=0,
                label=f"sub-bulk of d={exp.d} (exact U)")
    ax0.legend(fontsize=7, loc="upper right")
    fig.suptitle(
        f"Spectrum of U: ψp={exp.psi_p:g}, ψn={exp.psi_n:g}, t={exp.t:g}, p={exp.p}, n={exp.n} "
        f"(delta peak of mass {1 - (1 + exp.psi_n) / exp.psi_p:.2f} at s²={c.s2:.4f} not drawn)",
        fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def plot_dynamics(exp: DynamicsExperiment) -> bytes:
    """Fig. 5: train/test loss and score error along the gradient flow for each ``psi_n``,
    with ``tau_mem`` predicted (dashed) and measured (dot), and ``tau_mem`` against ``psi_n``."""
    from matplotlib.figure import Figure

    from probekit._plotting import to_png

    fig = Figure(figsize=(14, 4.2))
    ax_loss, ax_score, ax_tau = fig.subplots(1, 3)
    for i, run in enumerate(exp.runs):
        color = _PSI_COLORS[i % len(_PSI_COLORS)]
        cv = run.curves
        ax_loss.plot(cv.taus, cv.train, color=color, lw=1.5, label=f"ψn={run.psi_n:g} train")
        ax_loss.plot(cv.taus, cv.test, color=color, lw=1.5, ls="--", label=f"ψn={run.psi_n:g} test")
        ax_score.plot(cv.taus, cv.score_error, color=color, lw=1.5, label=f"ψn={run.psi_n:g}")
        for ax in (ax_loss, ax_score):
            ax.axvline(run.predicted_tau_mem, color=color, ls=":", lw=1.0)
        y = float(np.interp(math.log(run.measured.tau_mem), np.log(cv.taus), cv.test))
        ax_loss.plot([run.measured.tau_mem], [y], "o", color=color, ms=5)
    for ax, label in ((ax_loss, "loss (per dimension)"), (ax_score, "score error E_score")):
        ax.set_xscale("log")
        ax.set_xlabel("training time τ")
        ax.set_ylabel(label)
    ax_score.set_yscale("log")
    ax_loss.legend(fontsize=7, ncol=2)
    ax_score.legend(fontsize=7)
    ax_loss.set_title("train (solid) and test (dashed); dotted: predicted τ_mem,\n"
                      "dots: measured (half the final train–test gap)", fontsize=9)
    ax_score.set_title("score error ‖s_A − ∇log P_t‖²/d", fontsize=9)
    psi = np.array([r.psi_n for r in exp.runs])
    delta = exp.constants.delta
    onset = np.array([r.measured.tau_onset for r in exp.runs])
    complete = np.array([r.measured.tau_complete for r in exp.runs])
    ax_tau.fill_between(psi, onset, complete, color="#ff7f0e", alpha=0.15, lw=0,
                        label="measured: 10%–90% of the final gap")
    ax_tau.plot(psi, [r.measured.tau_mem for r in exp.runs], "o-", color="#ff7f0e", ms=5,
                label="measured: 50% of the final gap")
    ax_tau.plot(psi, [r.predicted_tau_mem for r in exp.runs], "s--", color="#1f77b4", ms=5,
                label="ψp/(Δt λ₋), λ₋ = s² + v²(1 − √(ψp/ψn))²")
    ax_tau.plot(psi, [exp.psi_p / (delta * r.slow_edges_formula[1]) for r in exp.runs], "v:",
                color="#1f77b4", ms=5, label="ψp/(Δt λ₊) (fastest slow mode)")
    guide = np.array([r.predicted_tau_mem for r in exp.runs])
    ax_tau.plot(psi, guide[0] * psi / psi[0], color="#7f7f7f", lw=0.8, label="∝ ψn")
    ax_tau.set_xscale("log")
    ax_tau.set_yscale("log")
    ax_tau.set_xlabel("ψn = n/d")
    ax_tau.set_ylabel("τ_mem")
    slopes = exp.scaling()
    ax_tau.set_title(f"τ_mem vs ψn: log-log slope measured {slopes['slope_measured']:.2f}, "
                     f"formula {slopes['slope_predicted']:.2f}", fontsize=9)
    ax_tau.legend(fontsize=7)
    fig.suptitle(f"Random-features gradient flow: ψp={exp.psi_p:g}, t={exp.t:g}, d={exp.d}",
                 fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def write_spectrum_figure(out: str, *, name: str = "theory-spectrum", **kwargs: Any
                          ) -> dict[str, Any]:
    """Run :func:`spectrum_experiment` and write ``<name>.png`` and ``<name>.json`` into the
    folder ``out``; return the summary."""
    from pathlib import Path

    from probekit.io import atomic_write_bytes, atomic_write_json

    exp = spectrum_experiment(**kwargs)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    summary = exp.summary()
    atomic_write_bytes(folder / f"{name}.png", plot_spectrum(exp))
    atomic_write_json(folder / f"{name}.json", summary)
    return summary


def write_dynamics_figure(out: str, *, name: str = "theory-dynamics", **kwargs: Any
                          ) -> dict[str, Any]:
    """Run :func:`dynamics_experiment` and write ``<name>.png``, ``<name>.json`` (table) and
    ``<name>-curves.csv`` into ``out``; return the summary."""
    from pathlib import Path

    from probekit.io import atomic_write_bytes, atomic_write_json, atomic_write_text

    exp = dynamics_experiment(**kwargs)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["psi_n,tau,train,test,score_error"]
    for run in exp.runs:
        cv = run.curves
        lines += [f"{run.psi_n:g},{a:.6g},{b:.8g},{c:.8g},{e:.8g}"
                  for a, b, c, e in zip(cv.taus, cv.train, cv.test, cv.score_error, strict=True)]
    summary = exp.summary()
    atomic_write_bytes(folder / f"{name}.png", plot_dynamics(exp))
    atomic_write_json(folder / f"{name}.json", summary)
    atomic_write_text(folder / f"{name}-curves.csv", "\n".join(lines) + "\n")
    return summary


__all__ = [
    "plot_dynamics",
    "plot_spectrum",
    "write_dynamics_figure",
    "write_spectrum_figure",
]
