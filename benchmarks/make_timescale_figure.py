"""Regenerate the figures of docs/timescales.md and docs/reports.md from synthetic curves.

    .venv/bin/python benchmarks/make_timescale_figure.py

Writes ``docs/figures/timescales.png`` (how tau_gen, tau_mem, the window and the collapse are
read off the curves) and ``docs/figures/report_curves.png`` (the main plot of a run's report).
Everything is seeded; the numbers in the figures come from :mod:`probekit.timescales`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import transforms
from matplotlib.figure import Figure

from probekit import _plotting as plotting
from probekit.io import atomic_write_bytes
from probekit.stats import bootstrap_ci
from probekit.timescales import (
    early_stopping_window,
    estimate_tau_gen,
    estimate_tau_mem,
    fit_scaling,
)

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"
STEPS = np.array([0, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000])
N_SAMPLES = 2000


def quality_curve(steps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A FID-like curve: falls from ~265 to ~17, with a little noise."""
    return 250.0 / (1.0 + (steps / 800.0) ** 1.2) + 15.0 + rng.normal(0, 1.0, len(steps))


def f_mem_curve(steps: np.ndarray, n: float, rng: np.random.Generator, *, blip_at=None):
    """Memorized fractions drawn from a logistic-in-log(step) curve centred at ``100 * n`` steps
    (it reaches 1% near ``22 * n``), with bootstrap CIs; an optional isolated blip above 1%
    that drops back."""
    x = np.log10(np.maximum(steps, 1) / (100.0 * n))
    p = 0.5 / (1.0 + np.exp(-6.0 * x))
    p[steps == 0] = 0.0
    if blip_at is not None:
        p[steps == blip_at] = 0.02
    values, low, high = [], [], []
    for i, pi in enumerate(p):
        memorized = rng.random(N_SAMPLES) < pi
        values.append(memorized.mean())
        lo, hi = bootstrap_ci(memorized, seed=i)
        low.append(lo)
        high.append(hi)
    return np.array(values), np.array(low), np.array(high)


def definitions_figure() -> bytes:
    rng = np.random.default_rng(0)
    n = 1000
    fid = quality_curve(STEPS, rng)
    f, f_lo, f_hi = f_mem_curve(STEPS, n, rng, blip_at=2000)
    gen = estimate_tau_gen(STEPS, fid, higher_is_better=False)
    mem = estimate_tau_mem(STEPS, f, ci_low=f_lo, ci_high=f_hi)
    window = early_stopping_window(STEPS, f_hi, tau_gen=gen, tau_mem=mem, quality=fid,
                                   higher_is_better=False)

    fig = Figure(figsize=(12, 8.4), layout="constrained")
    (ax_q, ax_f), (ax_s, ax_c) = fig.subplots(2, 2)

    # (a) tau_gen
    first, best = fid[0], fid.min()
    x, y = plotting.interpolant(STEPS.astype(float), fid)
    ax_q.plot(x, y, "-", color=plotting.GEN_COLOR)
    ax_q.plot(STEPS, fid, "o", color=plotting.GEN_COLOR, markersize=4, label="quality (FID)")
    ax_q.axhline(first, color="gray", linewidth=0.8, linestyle=":")
    ax_q.axhline(best, color="gray", linewidth=0.8, linestyle=":")
    ax_q.axhline(gen.level, color=plotting.GEN_COLOR, linestyle="-.", linewidth=1,
                 label=f"first + 90% of (best − first) = {gen.level:.1f}")
    ax_q.axvline(gen.value, color=plotting.GEN_COLOR, linestyle="--",
                 label=f"tau_gen = {gen.value:.0f}")
    ax_q.annotate("first checkpoint", (STEPS[1] / 2, first), xytext=(4, -12),
                  textcoords="offset points", fontsize=8, color="gray")
    ax_q.annotate("best checkpoint", (STEPS[1] / 2, best), xytext=(4, 4),
                  textcoords="offset points", fontsize=8, color="gray")
    plotting.set_step_axis(ax_q, STEPS)
    ax_q.set_ylabel("FID (lower is better)")
    ax_q.set_title("(a) tau_gen: 90% of the quality improvement (relative mode)", fontsize=10)
    ax_q.legend(fontsize=8)

    # (b) tau_mem
    x, y = plotting.interpolant(STEPS.astype(float), f)
    _, lo = plotting.interpolant(STEPS.astype(float), f_lo)
    _, hi = plotting.interpolant(STEPS.astype(float), f_hi)
    ax_f.fill_between(x, lo, hi, color=plotting.MEM_COLOR, alpha=0.18, linewidth=0,
                      label="95% bootstrap CI of f_mem")
    ax_f.plot(x, y, "-", color=plotting.MEM_COLOR)
    ax_f.plot(STEPS, f, "o", color=plotting.MEM_COLOR, markersize=4, label="f_mem")
    ax_f.axhline(0.01, color=plotting.MEM_COLOR, linestyle="-.", linewidth=1,
                 label="mem_level = 0.01")
    ax_f.axvline(mem.value, color=plotting.MEM_COLOR, linestyle="--",
                 label=f"tau_mem = {mem.value:.0f}")
    early, late = mem.ci
    trans = transforms.blended_transform_factory(ax_f.transData, ax_f.transAxes)
    ax_f.plot([early, late], [0.975, 0.975], transform=trans, color=plotting.MEM_COLOR,
              linewidth=6, alpha=0.45, solid_capstyle="butt",
              label=f"tau_mem CI [{early:.0f}, {late:.0f}] from the CI bounds")
    blip = int(np.flatnonzero(STEPS == 2000)[0])
    ax_f.annotate("blip: drops back at the\nnext checkpoint, ignored", (2000, f[blip]),
                  xytext=(25, 12), textcoords="offset points", fontsize=8,
                  bbox={"boxstyle": "round", "fc": "white", "alpha": 0.85, "lw": 0},
                  arrowprops={"arrowstyle": "->", "color": "gray"})
    ax_f.axvspan(window.start, window.end, color=plotting.WINDOW_COLOR, alpha=0.12,
                 linewidth=0, label="window [tau_gen, tau_mem)")
    ax_f.axvline(gen.value, color=plotting.GEN_COLOR, linestyle="--", linewidth=1)
    rec = window.recommended_step
    ax_f.plot([rec], [f[window.recommended_index]], "*", color="gold", markeredgecolor="black",
              markersize=14, label=f"recommended checkpoint: {rec}")
    plotting.set_step_axis(ax_f, STEPS)
    ax_f.set_yscale("symlog", linthresh=0.01)
    ax_f.set_ylim(0, 0.6)
    ax_f.set_ylabel("f_mem (symlog: linear below 1%)")
    ax_f.set_title("(b) tau_mem: f_mem reaches 1% and stays there", fontsize=10)
    ax_f.legend(fontsize=7.5, loc="upper left")

    # (c), (d) collapse across n
    sizes = [500, 1000, 2000, 4000]
    taus, curves = [], []
    for i, size in enumerate(sizes):
        fi, lo_i, hi_i = f_mem_curve(STEPS, size, np.random.default_rng(10 + i))
        taus.append(estimate_tau_mem(STEPS, fi, ci_low=lo_i, ci_high=hi_i))
        curves.append(fi)
    fit = fit_scaling(sizes, taus)
    import matplotlib as mpl

    cmap = mpl.colormaps["viridis"]
    for i, (size, fi) in enumerate(zip(sizes, curves, strict=True)):
        color = cmap(0.1 + 0.8 * i / (len(sizes) - 1))
        for ax, xs in ((ax_s, STEPS.astype(float)), (ax_c, STEPS / size)):
            xd, yd = plotting.interpolant(xs, fi)
            ax.plot(xd, yd, "-", color=color)
            ax.plot(xs, fi, "o", color=color, markersize=3, label=f"n = {size}")
    scaled = np.concatenate([STEPS / size for size in sizes])
    for ax, xs, label in ((ax_s, STEPS, "training step"), (ax_c, scaled, "step / n")):
        ax.axhline(0.01, color=plotting.MEM_COLOR, linestyle="-.", linewidth=1)
        plotting.set_step_axis(ax, np.asarray(xs, dtype=float), label=label)
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_ylim(0, 0.6)
    ax_s.set_ylabel("f_mem")
    ax_s.set_title("(c) f_mem against step: later onset for larger n", fontsize=10)
    ax_c.set_title(
        f"(d) against step / n the curves collapse: slope {fit.slope:.2f} "
        f"[{fit.slope_ci[0]:.2f}, {fit.slope_ci[1]:.2f}], c = {fit.linear_coef:.0f}",
        fontsize=10,
    )
    ax_s.legend(fontsize=8, loc="upper left")
    fig.suptitle("Reading tau_gen, tau_mem and the window off the curves (synthetic data)",
                 fontsize=12)
    return plotting.to_png(fig)


def report_curves_figure() -> bytes:
    rng = np.random.default_rng(1)
    fid = quality_curve(STEPS, rng)
    f, f_lo, f_hi = f_mem_curve(STEPS, 1000, rng)
    nan = np.full(len(STEPS), np.nan)
    quality = plotting.Curve("fid", "fid", STEPS, fid, nan, nan, False)
    f_mem = plotting.Curve("nn-ratio", "f_mem", STEPS, f, f_lo, f_hi, False)
    gen = estimate_tau_gen(STEPS, fid, higher_is_better=False)
    mem = estimate_tau_mem(STEPS, f, ci_low=f_lo, ci_high=f_hi)
    window = early_stopping_window(STEPS, f_hi, tau_gen=gen, tau_mem=mem, quality=fid,
                                   higher_is_better=False)
    return plotting.plot_curves(
        quality=quality, f_mem=f_mem, gap=None, tau_gen=gen, tau_mem=mem, window=window,
        mem_level=0.01, recommended_step=window.recommended_step,
        title="synthetic run (n = 1000)",
    )


def main() -> None:
    atomic_write_bytes(FIGURES / "timescales.png", definitions_figure())
    atomic_write_bytes(FIGURES / "report_curves.png", report_curves_figure())
    print(f"wrote {FIGURES / 'timescales.png'} and {FIGURES / 'report_curves.png'}")


if __name__ == "__main__":
    main()
