"""Plots of the reports: curves with tau markers, nearest-neighbour grids, collapse and scaling.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend
switch) and returned as PNG bytes, so the caller decides where and how atomically they land.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import ticker, transforms
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from probekit.analysis import Curve
from probekit.timescales import ScalingFit, TauEstimate, Window

GEN_COLOR = "#1f77b4"
MEM_COLOR = "#d62728"
GAP_COLOR = "#9467bd"
WINDOW_COLOR = "#2ca02c"
DPI = 110


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def step_text(step: float) -> str:
    """A step for people: whole numbers below a million, 3 significant digits above."""
    return f"{step:.0f}" if abs(step) < 1e6 else f"{step:.3g}"


def set_step_axis(ax, steps: np.ndarray, *, label: str = "training step") -> None:
    """Log x axis; symmetric-log when step 0 is present (linear up to the first positive step,
    which keeps step 0 on the axis), with ticks at 0 and at the powers of ten."""
    steps = np.asarray(steps, dtype=float)
    positive = steps[steps > 0]
    if len(positive) == 0:
        ax.set_xscale("linear")
    elif (steps <= 0).any():
        threshold = float(positive.min())
        top = float(steps.max())
        ax.set_xscale("symlog", linthresh=threshold, linscale=0.5)
        decades = 10.0 ** np.arange(math.ceil(math.log10(threshold)),
                                    math.floor(math.log10(top)) + 1)
        ax.set_xticks([0.0, *decades])
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(
            lambda v, _: "0" if v == 0 else f"$10^{{{round(math.log10(v))}}}$"))
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.set_xlim(-0.15 * threshold, top * 1.4)
    else:
        ax.set_xscale("log")
    if len(steps) == 1:
        s = float(steps[0])
        ax.set_xlim((s / 3, s * 3) if s > 0 else (-1, 1))
    ax.set_xlabel(label)
    ax.grid(True, which="major", alpha=0.3)


def _mem_y_axis(ax, curve: Curve, level: float) -> None:
    """Linear below the level, log above: the 1% crossing stays visible next to 50% copying."""
    top = float(np.nanmax([np.nanmax(curve.value), np.nanmax(curve.ci_high), level * 2]))
    ax.set_yscale("symlog", linthresh=level, linscale=1.0)
    ax.set_ylim(0, min(1.0, top * 1.3) if top < 1 else 1.0)


def interpolant(steps: np.ndarray, values: np.ndarray, per_segment: int = 24
                ) -> tuple[np.ndarray, np.ndarray]:
    """The curve as the timescales read it (linear in log step, linear in step from step 0),
    sampled densely, so that a drawn crossing sits where the tau estimate says it does on any
    axis scale."""
    if len(steps) < 2:
        return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    xs, ys = [], []
    for s0, s1, y0, y1 in zip(steps[:-1], steps[1:], values[:-1], values[1:], strict=True):
        if s0 > 0:
            x = np.geomspace(s0, s1, per_segment)
            frac = np.log(x / s0) / np.log(s1 / s0)
        else:
            x = np.linspace(s0, s1, per_segment)
            frac = (x - s0) / (s1 - s0)
        xs.append(x[:-1])
        ys.append(y0 + frac[:-1] * (y1 - y0))
    xs.append(np.asarray(steps[-1:], dtype=float))
    ys.append(np.asarray(values[-1:], dtype=float))
    return np.concatenate(xs), np.concatenate(ys)


def _draw_curve(ax, curve: Curve, color: str, label: str, *, x: np.ndarray | None = None,
                markersize: float = 4) -> None:
    """Checkpoints as markers, the interpolant between them as a line, the CI as a band."""
    x = curve.steps.astype(float) if x is None else x
    if curve.has_ci:
        xl, lo = interpolant(x, curve.ci_low)
        _, hi = interpolant(x, curve.ci_high)
        ax.fill_between(xl, lo, hi, color=color, alpha=0.18, linewidth=0, label="95% CI")
    xd, yd = interpolant(x, curve.value)
    (line,) = ax.plot(xd, yd, "-", color=color)
    ax.plot(x, curve.value, "o", color=color, markersize=markersize)
    ax.plot([], [], "o-", color=color, markersize=markersize, label=label)
    line.set_label("_line")


def _draw_tau(ax, tau: TauEstimate | None, color: str, *, annotate: bool = True) -> None:
    """Vertical line at tau; with ``annotate``, its CI as a bar along the top of the axes and
    'never' written on the axes when it is never reached."""
    if tau is None:
        return
    if annotate and tau.early is not None and tau.late is not None \
            and tau.early.status != "never":
        lo = tau.early.step
        open_ended = tau.late.status == "never"
        hi = tau.last_step if open_ended else tau.late.step
        trans = transforms.blended_transform_factory(ax.transData, ax.transAxes)
        ax.plot([lo, hi], [0.975, 0.975], transform=trans, color=color, linewidth=6,
                alpha=0.45, solid_capstyle="butt",
                label=f"{tau.name} 95% CI" + (" (beyond last step)" if open_ended else ""))
    if tau.status == "never":
        if annotate:
            ax.text(0.99, 0.93, f"{tau.name}: never (> {step_text(tau.last_step)})",
                    color=color, transform=ax.transAxes, ha="right", va="top", fontsize=9)
        return
    style = ":" if tau.status == "from_first" or not tau.estimate.confirmed else "--"
    relation = "≤" if tau.status == "from_first" else "="
    ax.axvline(tau.value, color=color, linestyle=style, linewidth=1.5,
               label=f"{tau.name} {relation} {step_text(tau.value)}")


def _draw_window(ax, window: Window | None, first_step: float, last_step: float) -> None:
    """Shade ``[tau_gen, tau_mem)``: from the first step without tau_gen, to the last step when
    the run never memorizes."""
    if window is None or window.empty:
        return
    lo = window.start if window.start is not None else first_step
    hi = window.end if window.end is not None else last_step
    if hi <= lo:
        return
    ax.axvspan(lo, hi, color=WINDOW_COLOR, alpha=0.10, linewidth=0, label="window")


def plot_curves(
    *,
    quality: Curve | None,
    f_mem: Curve | None,
    gap: Curve | None,
    tau_gen: TauEstimate | None,
    tau_mem: TauEstimate | None,
    window: Window | None,
    mem_level: float,
    recommended_step: int | None,
    title: str,
    gap_onset: float | None = None,
) -> bytes:
    """Quality, f_mem (and loss gap) against step on a log axis with CI bands and tau markers."""
    panels = [c for c in (quality, f_mem, gap) if c is not None]
    fig = Figure(figsize=(9.5, 2.9 * max(1, len(panels)) + 0.6), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    all_steps = np.unique(np.concatenate([c.steps for c in panels]))
    last = float(all_steps.max())
    for ax, curve in zip(axes, panels, strict=True):
        _draw_window(ax, window, float(all_steps.min()), last)
        if curve is quality:
            _draw_curve(ax, curve, GEN_COLOR, curve.label)
            if tau_gen is not None:
                ax.axhline(tau_gen.level, color=GEN_COLOR, alpha=0.5, linewidth=1,
                           linestyle="-.", label=f"tau_gen level {tau_gen.level:.3g}")
            _draw_tau(ax, tau_gen, GEN_COLOR)
            _draw_tau(ax, tau_mem, MEM_COLOR, annotate=False)
            arrow = "higher is better" if curve.higher_is_better else "lower is better"
            ax.set_ylabel(f"{curve.field}\n({arrow})")
        elif curve is f_mem:
            _draw_curve(ax, curve, MEM_COLOR, curve.label)
            ax.axhline(mem_level, color=MEM_COLOR, alpha=0.5, linewidth=1, linestyle="-.",
                       label=f"mem_level {mem_level:g}")
            _mem_y_axis(ax, curve, mem_level)
            _draw_tau(ax, tau_gen, GEN_COLOR, annotate=False)
            _draw_tau(ax, tau_mem, MEM_COLOR)
            ax.set_ylabel("f_mem (symlog)")
        else:
            _draw_curve(ax, curve, GAP_COLOR, curve.label)
            ax.axhline(0.0, color="black", linewidth=0.8)
            if gap_onset is not None:
                ax.axvline(gap_onset, color=GAP_COLOR, linestyle="--", linewidth=1.5,
                           label=f"loss-gap onset = {step_text(gap_onset)}")
            _draw_tau(ax, tau_mem, MEM_COLOR, annotate=False)
            ax.set_ylabel(curve.field)
        if recommended_step is not None and recommended_step in set(curve.steps.tolist()):
            i = int(np.flatnonzero(curve.steps == recommended_step)[0])
            ax.plot([recommended_step], [curve.value[i]], marker="*", markersize=15,
                    color="gold", markeredgecolor="black", linestyle="none",
                    label=f"recommended: step {recommended_step}", zorder=5)
        set_step_axis(ax, all_steps)
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    fig.suptitle(title, fontsize=11)
    return to_png(fig)


def plot_measures(curves: Sequence[Curve], *, title: str) -> bytes:
    """Small multiples: every measure's headline against step."""
    k = len(curves)
    cols = min(3, k)
    rows = math.ceil(k / cols)
    fig = Figure(figsize=(3.6 * cols + 0.4, 2.7 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, curve in zip(axes, curves, strict=False):
        _draw_curve(ax, curve, "#444444", curve.field)
        set_step_axis(ax, curve.steps)
        ax.set_title(curve.label, fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes[k:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    return to_png(fig)


# -- membership inference ------------------------------------------------------------------------


@dataclass(frozen=True)
class RocPanel:
    """Membership scores of one attack at a few checkpoints: ``{step: (is_member, score)}``."""

    measure: str
    by_step: dict[int, tuple[np.ndarray, np.ndarray]]


def roc_points(is_member: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and TPR of every threshold (``score > threshold`` means member), from (0, 0)."""
    order = np.argsort(-score, kind="stable")
    member = np.asarray(is_member, bool)[order]
    tpr = np.r_[0.0, np.cumsum(member) / max(1, member.sum())]
    fpr = np.r_[0.0, np.cumsum(~member) / max(1, (~member).sum())]
    return fpr, tpr


def plot_roc(panels: Sequence[RocPanel], *, title: str) -> bytes:
    """Log-log ROC curves (the scale where low-FPR behaviour is visible), one panel per attack,
    one curve per checkpoint; the dotted line marks the smallest resolvable FPR."""
    k = len(panels)
    fig = Figure(figsize=(3.6 * k + 0.4, 3.5), layout="constrained")
    axes = fig.subplots(1, k, squeeze=False).ravel()
    colors = ["#9aa7b8", "#4c78a8", "#e45756", "#54a24b"]
    for ax, panel in zip(axes, panels, strict=True):
        floor = 1.0
        for color, (step, (member, score)) in zip(colors, sorted(panel.by_step.items()),
                                                  strict=False):
            fpr, tpr = roc_points(member, score)
            floor = min(floor, 1.0 / max(1, int((~np.asarray(member, bool)).sum())))
            ax.step(np.maximum(fpr, floor / 2), np.maximum(tpr, floor / 2), where="post",
                    color=color, lw=1.6, label=f"step {step_text(step)}")
        ax.plot([floor / 2, 1], [floor / 2, 1], "--", color="grey", lw=0.8, label="chance")
        ax.axvline(floor, color="grey", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", xlabel="false positive rate",
               ylabel="true positive rate", xlim=(floor / 2, 1), ylim=(floor / 2, 1.05))
        ax.set_title(panel.measure, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=11)
    return to_png(fig)


# -- nearest neighbours --------------------------------------------------------------------------


@dataclass(frozen=True)
class NeighborPanel:
    """Generated samples of one checkpoint next to their nearest training samples."""

    step: int
    generated: np.ndarray  # (k, ...) first k kept samples of this checkpoint
    nearest: np.ndarray  # (k, ...) their nearest training samples
    ratio: np.ndarray  # (k,) the memorization probe's per-sample score, NaN when unknown
    memorized: np.ndarray  # (k,) bool
    f_mem: float | None
    score_label: str = "d1/d2"  # what ``ratio`` is (nn-ratio: d1/d2)


def _to_rgb(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(c, h, w)`` in ``[lo, hi]`` → ``(h, w, 3)`` in [0, 1]: gray replicated, RGB as is,
    other channel counts shown by their first channel."""
    x = np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    if x.shape[0] == 3:
        return np.transpose(x, (1, 2, 0))
    return np.repeat(x[0][:, :, None], 3, axis=2)


def neighbor_mosaic(
    panel: NeighborPanel, value_range: tuple[float, float], k: int
) -> tuple[np.ndarray, list[float], list[float]]:
    """One RGB image: generated samples on the top row, their nearest training samples below,
    each image framed in red when the pair is memorized, white gaps between cells. Also the
    pixel centers of the columns and of the two rows (for tick labels)."""
    lo, hi = value_range
    h, w = panel.generated.shape[-2:]
    frame = max(1, round(min(h, w) / 12))
    gap = max(1, round(min(h, w) / 6))
    cell_h, cell_w = h + 2 * frame + gap, w + 2 * frame + gap
    mosaic = np.ones((2 * cell_h + gap, k * cell_w + gap, 3))
    red = np.array([0.84, 0.15, 0.16])
    for j in range(min(k, len(panel.generated))):
        x0 = gap + j * cell_w
        for row, arr in ((0, panel.generated[j]), (1, panel.nearest[j])):
            y0 = gap + row * cell_h
            if panel.memorized[j]:
                mosaic[y0 : y0 + h + 2 * frame, x0 : x0 + w + 2 * frame] = red
            mosaic[y0 + frame : y0 + frame + h, x0 + frame : x0 + frame + w] = _to_rgb(arr, lo, hi)
    half_w, half_h = frame + (w - 1) / 2, frame + (h - 1) / 2
    columns = [gap + j * cell_w + half_w for j in range(min(k, len(panel.generated)))]
    rows = [gap + half_h, gap + cell_h + half_h]
    return mosaic, columns, rows


def plot_neighbor_grid(panels: Sequence[NeighborPanel], *, value_range: tuple[float, float],
                       title: str) -> bytes:
    """For each checkpoint: a row of generated images and, under it, their nearest training
    images; the ratio d1/d2 under each pair, red frame and label when memorized."""
    k = max(len(p.generated) for p in panels)
    fig = Figure(figsize=(max(6.0, 1.0 * k + 1.6), 2.35 * len(panels) + 0.5),
                 layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        mosaic, columns, rows = neighbor_mosaic(panel, value_range, k)
        ax.imshow(mosaic, interpolation="nearest", aspect="equal")
        ax.set_xticks(columns)
        ax.set_xticklabels(
            [f"{r:.2f}" if np.isfinite(r) else "?" for r in panel.ratio], fontsize=8
        )
        for label, mem in zip(ax.get_xticklabels(), panel.memorized, strict=True):
            if mem:
                label.set_color(MEM_COLOR)
                label.set_fontweight("bold")
        ax.set_yticks(rows)
        ax.set_yticklabels(["generated", "nearest\ntrain"], fontsize=8)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        f_text = "" if panel.f_mem is None else f" — f_mem = {panel.f_mem:.3f}"
        ax.set_title(f"step {panel.step}{f_text}", fontsize=10, loc="left")
        ax.set_xlabel(f"{panel.score_label} of each pair", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return to_png(fig)


def plot_neighbor_overlays(panels: Sequence[NeighborPanel], *, title: str,
                           max_series: int = 4) -> bytes:
    """Time series: each generated series (solid) over its nearest training series (dashed)."""
    k = min(max_series, max(len(p.generated) for p in panels))
    fig = Figure(figsize=(2.9 * k + 0.5, 2.0 * len(panels) + 0.6), layout="constrained")
    axes = fig.subplots(len(panels), k, squeeze=False)
    for i, panel in enumerate(panels):
        for j in range(k):
            ax = axes[i, j]
            if j >= len(panel.generated):
                ax.set_visible(False)
                continue
            gen, near = panel.generated[j], panel.nearest[j]
            t = np.arange(gen.shape[0])
            ax.plot(t, near[:, 0], "--", color="#555555", linewidth=1.2, label="nearest train")
            mem = bool(panel.memorized[j])
            ax.plot(t, gen[:, 0], "-", color=MEM_COLOR if mem else GEN_COLOR, linewidth=1.2,
                    label="generated")
            r = panel.ratio[j]
            ax.set_title(f"step {panel.step} #{j}  d1/d2={r:.2f}" + (" copied" if mem else ""),
                         fontsize=8, color=MEM_COLOR if mem else "black")
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(title + " (channel 0)", fontsize=10)
    return to_png(fig)


# -- several runs --------------------------------------------------------------------------------


def plot_collapse(runs: Sequence[tuple[float, Curve]], *, mem_level: float) -> bytes:
    """f_mem against step and against step / n: the curves collapse when tau_mem ∝ n."""
    import matplotlib as mpl

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_step, ax_scaled = fig.subplots(1, 2, sharey=True)
    ns = sorted(n for n, _ in runs)
    cmap = mpl.colormaps["viridis"]
    for n, curve in sorted(runs, key=lambda r: r[0]):
        color = cmap(0.1 + 0.8 * (ns.index(n) / max(1, len(ns) - 1)))
        for ax, x in ((ax_step, curve.steps), (ax_scaled, curve.steps / n)):
            if curve.has_ci:
                xl, lo = interpolant(x, curve.ci_low)
                _, hi = interpolant(x, curve.ci_high)
                ax.fill_between(xl, lo, hi, color=color, alpha=0.15, linewidth=0)
            xd, yd = interpolant(x, curve.value)
            ax.plot(xd, yd, "-", color=color)
            ax.plot(x, curve.value, "o", color=color, markersize=3)
            ax.plot([], [], "o-", color=color, markersize=3, label=f"n = {n:g}")
    every = np.concatenate([c.steps for _, c in runs])
    scaled = np.concatenate([c.steps / n for n, c in runs])
    top = max(float(np.nanmax(c.value)) for _, c in runs)
    for ax, x, label in ((ax_step, every, "training step"), (ax_scaled, scaled, "step / n")):
        ax.axhline(mem_level, color=MEM_COLOR, linestyle="-.", linewidth=1,
                   label=f"mem_level {mem_level:g}")
        set_step_axis(ax, x, label=label)
        ax.set_yscale("symlog", linthresh=mem_level)
        ax.set_ylim(0, min(1.0, max(top, 2 * mem_level) * 1.3))
    ax_step.set_ylabel("f_mem (symlog)")
    ax_step.set_title("f_mem vs step", fontsize=10)
    ax_scaled.set_title("f_mem vs step / n (collapse when tau_mem ∝ n)", fontsize=10)
    ax_scaled.legend(fontsize=8, loc="upper left")
    return to_png(fig)


def plot_scaling(
    n: Sequence[float],
    tau_mem: Sequence[TauEstimate | None],
    tau_gen: Sequence[TauEstimate | None],
    fit: ScalingFit,
) -> bytes:
    """tau_mem and tau_gen against n on log-log axes, with CIs, the fit and tau = c n."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_mem, ax_gen = fig.subplots(1, 2, sharex=True)
    n_arr = np.asarray(n, dtype=float)
    for ax, taus, color, name in ((ax_mem, tau_mem, MEM_COLOR, "tau_mem"),
                                  (ax_gen, tau_gen, GEN_COLOR, "tau_gen")):
        plotted = False
        for n_i, tau in zip(n_arr, taus, strict=True):
            if tau is None:
                continue
            if tau.status == "never":
                ax.plot([n_i], [tau.last_step], marker="^", color=color, linestyle="none",
                        markerfacecolor="none", markersize=9)
                ax.annotate("never", (n_i, tau.last_step), textcoords="offset points",
                            xytext=(6, 4), fontsize=8, color=color)
                continue
            if tau.status == "from_first":
                ax.plot([n_i], [tau.value], marker="v", color=color, linestyle="none",
                        markerfacecolor="none", markersize=9)
                continue
            early, late = tau.ci
            if early is not None:
                hi = late if late is not None else tau.last_step
                ax.errorbar([n_i], [tau.value], yerr=[[tau.value - early], [hi - tau.value]],
                            fmt="o", color=color, capsize=3,
                            label=None if plotted else f"{name} (95% CI)")
            else:
                ax.plot([n_i], [tau.value], "o", color=color,
                        label=None if plotted else name)
            plotted = True
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xticks(n_arr)
        ax.set_xlabel("training-set size n")
        ax.set_ylabel(f"{name} (steps)")
        ax.grid(True, which="both", alpha=0.25)
    grid = np.geomspace(n_arr.min() / 1.3, n_arr.max() * 1.3, 50)
    if fit.slope is not None:
        ci = "" if fit.slope_ci is None else f" [{fit.slope_ci[0]:.2f}, {fit.slope_ci[1]:.2f}]"
        ax_mem.plot(grid, np.exp(fit.intercept) * grid**fit.slope, "-", color="black",
                    linewidth=1, label=f"fit: slope {fit.slope:.2f}{ci}, R² {fit.r2:.3f}")
    if fit.linear_coef is not None:
        ax_mem.plot(grid, fit.linear_coef * grid, ":", color="gray",
                    label=f"tau = c·n, c = {fit.linear_coef:.3g}")
    if fit.tau_gen_mean is not None:
        cv = "" if fit.tau_gen_cv is None else f", CV {fit.tau_gen_cv:.2f}"
        ax_gen.axhline(fit.tau_gen_mean, color="black", linewidth=1,
                       label=f"mean {fit.tau_gen_mean:.3g}{cv}")
    ax_mem.set_title("memorization time vs n", fontsize=10)
    ax_gen.set_title("generalization time vs n", fontsize=10)
    for ax in (ax_mem, ax_gen):
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=8, loc="best")
    return to_png(fig)
