"""Figures of a benchmark run, rendered from its rows: quality against memorization per
dataset, and example series of each generator."""

from __future__ import annotations

import math
from collections.abc import Sequence

from probekit.bench.leaderboard import n_series
from probekit.bench.plan import REAL_ROW, TRAIN_ROW, BenchPlan
from probekit.bench.rows import Row

#: Markers cycled through the generators (with the colour, they tell the points apart; the
#: names are in one legend, so labels never overlap).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "8")


def _first(names: Sequence[str], preferred: str) -> str | None:
    return preferred if preferred in names else (names[0] if names else None)


def memorization_value(row: Row, probes: Sequence[str]) -> float | None:
    """The larger of the row's memorization headlines: whole-series copies (``nn-ratio``) and
    copied pieces (``subsequence-match``) both count as memorization."""
    values = [row.results[p].value for p in probes if p in row.results]
    values = [v for v in values if math.isfinite(v)]
    return max(values) if values else None


def plot_quality_vs_memorization(rows: Sequence[Row], plan: BenchPlan) -> bytes:
    """One panel per dataset: each generator at (memorization, quality headline). The x axis
    is the larger of the memorization probes, so a generator that copies whole series and one
    that copies pieces both sit to the right; the real training series are a dashed line (when
    they are as many as the other rows')."""
    from matplotlib.figure import Figure

    from probekit._plotting import to_png

    y_name = _first(plan.metrics, "ts-fd")
    labels = [plan.label(k) for k in plan.datasets]
    k = len(labels)
    fig = Figure(figsize=(4.0 * k + 2.2, 3.8), layout="constrained")
    axes = fig.subplots(1, k, squeeze=False)[0]
    names = [REAL_ROW, *plan.generators]
    style = {g: (f"C{i % 10}", "*" if g == REAL_ROW else MARKERS[i % len(MARKERS)])
             for i, g in enumerate(names)}
    handles = {}
    for ax, dataset in zip(axes, labels, strict=True):
        sizes = {r.generator: n_series(r) for r in rows if r.dataset == dataset}
        for r in rows:
            if r.dataset != dataset or y_name not in r.results or r.failed:
                continue
            y = max(r.results[y_name].value, 1e-12)
            if r.generator == TRAIN_ROW:
                if sizes.get(TRAIN_ROW) != sizes.get(REAL_ROW):
                    continue  # fewer series: a sample-size-biased metric would mislead
                handles[TRAIN_ROW] = ax.axhline(y, color="0.4", linestyle="--", linewidth=1,
                                                label=TRAIN_ROW)
                continue
            x = memorization_value(r, plan.probes)
            if x is None or r.generator not in style:
                continue
            color, marker = style[r.generator]
            handles[r.generator] = ax.scatter(
                [x], [y], s=110 if marker == "*" else 45, marker=marker, color=color,
                label=r.generator, zorder=3, alpha=0.85, edgecolors="none")
        ax.set_yscale("log")
        ax.set_xlim(-0.05, 1.05)
        ax.set_xlabel("memorization: max(" + ", ".join(plan.probes) + ")", fontsize=8)
        ax.set_ylabel(f"{y_name} (lower is better)", fontsize=8)
        ax.set_title(dataset, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
    order = [n for n in [*names, TRAIN_ROW] if n in handles]
    if order:
        fig.legend([handles[n] for n in order], order, loc="outside right center", fontsize=7,
                   frameon=False)
    fig.suptitle("quality against memorization, per generator", fontsize=10)
    return to_png(fig)


def plot_samples(rows: Sequence[Row], plan: BenchPlan) -> bytes:
    """Three example series (channel 0) of each generator and of the fresh holdout."""
    from matplotlib.figure import Figure

    from probekit._plotting import to_png

    names = [REAL_ROW, *plan.generators]
    labels = [plan.label(k) for k in plan.datasets]
    fig = Figure(figsize=(1.9 * len(names) + 0.6, 1.6 * len(labels) + 0.6),
                 layout="constrained")
    axes = fig.subplots(len(labels), len(names), squeeze=False, sharey="row")
    by_key = {(r.dataset, r.generator): r for r in rows}
    for i, dataset in enumerate(labels):
        for j, name in enumerate(names):
            ax = axes[i, j]
            r = by_key.get((dataset, name))
            if r is not None and r.examples is not None:
                for k, series in enumerate(r.examples):
                    ax.plot(series[:, 0], linewidth=0.9, color=f"C{k}")
            else:
                text = "failed" if r is not None and r.failed else "–"
                ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
            if i == 0:
                ax.set_title(name, fontsize=8)
            if j == 0:
                ax.set_ylabel(dataset, fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle("three series from each generator (channel 0)", fontsize=10)
    return to_png(fig)


__all__ = ["memorization_value", "plot_quality_vs_memorization", "plot_samples"]
