"""Rendering of a grid analysis (:mod:`probekit.reference.grid_analysis`): a text table, a CSV
and the figure — f_mem and quality along training, the collapse of f_mem on ``step / n`` and on
``step · W``, and tau_gen, tau_mem against ``n`` and ``W`` with their fits. Render only: every
number comes from the analysis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from probekit.reference.grid_analysis import GridAnalysis

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f")


def _tau_text(t: Mapping[str, Any]) -> str:
    if t["value"] is None:
        return t["status"]
    lo, hi = t["ci_low"], t["ci_high"]
    ci = f" [{'?' if lo is None else f'{lo:.0f}'}, {'?' if hi is None else f'{hi:.0f}'}]"
    return f"{t['value']:.0f}{ci}"


def format_grid(summary: Mapping[str, Any]) -> str:
    """The grid as text: one line per run, then the fitted exponents of tau_mem and tau_gen."""
    lines = []
    for axis, name in (("n", "n-sweep"), ("width", "W-sweep")):
        block = summary.get(f"{axis}_sweep")
        if not block:
            continue
        lines.append(f"{name}:  n     W   tau_gen [95% CI]     tau_mem [95% CI]")
        for r in block["runs"]:
            lines.append(f"  {r['n']:>6.0f} {r['width']:>5.0f}   {_tau_text(r['tau_gen']):<20} "
                         f"{_tau_text(r['tau_mem'])}")
        fit = block["fit"]
        if fit.get("slope") is not None:
            ci = fit.get("slope_ci")
            ci_text = "" if ci is None else f" (95% CI {ci[0]:.2f} to {ci[1]:.2f})"
            lines.append(f"  log-log slope of tau_mem vs {axis}: {fit['slope']:.2f}{ci_text}, "
                         f"R² = {fit['r2']:.3f}")
        gen = (block.get("gen_fit") or {})
        if gen.get("slope") is not None:
            ci = gen.get("slope_ci")
            ci_text = "" if ci is None else f" (95% CI {ci[0]:.2f} to {ci[1]:.2f})"
            lines.append(f"  log-log slope of tau_gen vs {axis}: {gen['slope']:.2f}{ci_text}")
    return "\n".join(lines)


def grid_csv(summary: Mapping[str, Any]) -> str:
    """One CSV row per run of each sweep."""
    lines = ["sweep,n,width,tau_gen,tau_gen_ci_low,tau_gen_ci_high,tau_mem,tau_mem_ci_low,"
             "tau_mem_ci_high,last_step,f_mem_last,train_seconds"]
    for axis in ("n", "width"):
        block = summary.get(f"{axis}_sweep")
        for r in (block or {}).get("runs", []):
            g, m = r["tau_gen"], r["tau_mem"]
            lines.append(",".join(str(v) for v in (
                axis, r["n"], r["width"], g["value"], g["ci_low"], g["ci_high"], m["value"],
                m["ci_low"], m["ci_high"], r["last_step"], r["f_mem_last"],
                r.get("train_seconds"))))
    return "\n".join(lines) + "\n"


def plot_grid(grid: GridAnalysis, summary: Mapping[str, Any], *, title: str,
              quality_label: str, ref_width: float) -> bytes:
    """The six panels of a grid as PNG bytes. ``ref_width`` scales the collapse axes
    (``step · ref_width / (n W)`` and ``step · W / (ref_width n)``)."""
    from matplotlib.figure import Figure

    from probekit._plotting import to_png

    fig = Figure(figsize=(14, 7.5))
    axes = fig.subplots(2, 3)
    base_w, base_n = grid.base_width, grid.base_n
    n_runs = sorted(((n, w), a) for (n, w), a in grid.analyses.items() if w == base_w)
    w_runs = sorted(((w, n), a) for (n, w), a in grid.analyses.items() if n == base_n)
    for i, ((n, w), a) in enumerate(n_runs):
        color = _COLORS[i % len(_COLORS)]
        if a.f_mem is not None:
            x = np.maximum(a.f_mem.steps, 1)
            axes[0, 0].plot(x, a.f_mem.value, "-", color=color, label=f"n={n}")
            axes[0, 1].plot(x * ref_width / (n * w), a.f_mem.value, "-", color=color,
                            label=f"n={n}")
        if a.quality is not None:
            axes[0, 2].plot(np.maximum(a.quality.steps, 1), np.maximum(a.quality.value, 1e-5),
                            "-", color=color, label=f"n={n}")
    for i, ((w, n), a) in enumerate(w_runs):
        if a.f_mem is not None:
            axes[1, 2].plot(np.maximum(a.f_mem.steps, 1) * w / (n * ref_width), a.f_mem.value,
                            "-", color=_COLORS[i % len(_COLORS)], label=f"W={w}")
    for ax in (axes[0, 0], axes[0, 1], axes[1, 2]):
        ax.axhline(grid.mem_level, color="#7f7f7f", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_ylabel("f_mem (nn-ratio, d1/d2 < 1/3)")
        ax.legend(fontsize=7)
    axes[0, 0].set_xlabel("training step")
    axes[0, 0].set_title(f"memorized fraction, W={base_w}", fontsize=9)
    axes[0, 1].set_xlabel(f"step · {ref_width:g} / (n W)")
    axes[0, 1].set_title("collapse: f_mem against step/n", fontsize=9)
    axes[1, 2].set_xlabel(f"step · W / ({ref_width:g} n)")
    axes[1, 2].set_title(f"W-sweep at n={base_n}: f_mem against step·W", fontsize=9)
    axes[0, 2].set_xscale("log")
    axes[0, 2].set_yscale("log")
    axes[0, 2].set_xlabel("training step")
    axes[0, 2].set_ylabel(quality_label)
    axes[0, 2].set_title("quality (lower is better)", fontsize=9)
    axes[0, 2].legend(fontsize=7)
    for ax, axis, label in ((axes[1, 0], "n", "n (training samples)"),
                            (axes[1, 1], "width", "W (base width)")):
        block = summary.get(f"{axis}_sweep")
        if not block:
            ax.set_visible(False)
            continue
        xs = np.array([r[axis] for r in block["runs"]], dtype=float)
        for key, marker in (("tau_mem", "o-"), ("tau_gen", "s--")):
            ys = np.array([np.nan if r[key]["value"] is None else r[key]["value"]
                           for r in block["runs"]], dtype=float)
            lo = np.array([np.nan if r[key]["ci_low"] is None else r[key]["ci_low"]
                           for r in block["runs"]], dtype=float)
            hi = np.array([np.nan if r[key]["ci_high"] is None else r[key]["ci_high"]
                           for r in block["runs"]], dtype=float)
            err = np.vstack([ys - lo, hi - ys])
            err = np.where(np.isfinite(err), np.maximum(err, 0.0), 0.0)
            ok = np.isfinite(ys)
            ax.errorbar(xs[ok], ys[ok], yerr=err[:, ok], fmt=marker, ms=5, capsize=2, label=key)
        fit = block["fit"]
        if fit.get("slope") is not None:
            grid_x = np.geomspace(xs.min(), xs.max(), 20)
            ax.plot(grid_x, np.exp(fit["intercept"]) * grid_x ** fit["slope"], color="#7f7f7f",
                    lw=0.8, label=f"fit: slope {fit['slope']:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("training steps")
        ax.legend(fontsize=7)
        ax.set_title(f"timescales against {axis}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def plot_phase(runs: Sequence[Mapping[str, Any]], *, mem_level: float,
               cap: float | None = None) -> bytes:
    """The phase diagram in (n, W): a filled marker where f_mem reached ``mem_level`` within
    the run (annotated with tau_mem), an open one where it did not (annotated with the last
    step). ``runs``: dicts with ``n``, ``width``, ``tau_mem`` (a value or ``None``) and
    ``last_step`` (e.g. a grid summary's ``all_runs`` flattened)."""
    from matplotlib.figure import Figure

    from probekit._plotting import to_png

    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    for r in runs:
        reached = r["tau_mem"] is not None
        ax.scatter(r["n"], r["width"], s=90, marker="o",
                   facecolors="#d62728" if reached else "none", edgecolors="#d62728")
        label = f"{r['tau_mem']:.0f}" if reached else f">{r['last_step']:.0f}"
        ax.annotate(label, (r["n"], r["width"]), textcoords="offset points", xytext=(6, 6),
                    fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("n (training images)")
    ax.set_ylabel("W (base width)")
    budget = "" if cap is None else f" (step cap {cap:.0f})"
    ax.set_title(f"f_mem >= {mem_level:g} reached within the run{budget}:\n"
                 "filled = yes (tau_mem in steps), open = no (last step)", fontsize=8)
    fig.tight_layout()
    return to_png(fig)


__all__ = ["format_grid", "grid_csv", "plot_grid", "plot_phase"]
