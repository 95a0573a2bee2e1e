"""The Gaussian-mixture experiment of Bonnaire et al. (2025): ``tau_mem ∝ n / W`` on a CPU.

Data: ``½ N(+1_d, I) + ½ N(-1_d, I)`` in ``d = 8`` dimensions (registered dataset ``gmm``).
Network: the residual MLP of :mod:`probekit.reference.mlp` (3 blocks of width ``W``, time
embedding added at each block). Training, checkpoints, DDIM sampling and resuming are the
reference pipeline's own (:func:`probekit.reference.train.train`); the presets:

* ``gmm`` — the paper's recipe: ``W = 128``, full-batch SGD lr 6e-3 momentum 0.95
  (``optimizer="adam"``: Adam lr 6e-4, the paper's Adam setting); DDPM T = 1000.
* ``gmm-small`` — ``W = 32``, short runs, 128 DDIM-20 samples per checkpoint: smoke tests.

Quality (registered metric ``gmm-mmd``): the squared maximum mean discrepancy between the
generated samples and the *known* mixture with a Gaussian kernel of bandwidth ``h``,

    MMD² = E_{q,q} k - 2 E_{q,p} k + E_{p,p} k,   k(x, y) = exp(-|x - y|² / (2 h²)).

Both mixture terms are closed-form Gaussian integrals, so only the sample-sample term is
estimated (unbiased U-statistic): an exactly computable distance to the true distribution, not
to a finite held-out set, that needs no density estimate and no network. It is zero if and only
if the generated law is the mixture. Why not the paper's KL through the learned score: that is a
bound on the KL of the (stochastic) reverse-SDE sampler, not a distance of the DDIM samples the
memorization probe looks at; the MMD is computed on those very samples.

Memorization: ``nn-ratio`` (``d1/d2 < 1/3`` to the training set), through the registry.
:func:`run_sweep` trains one run per ``(n, W)``, evaluates every checkpoint with
:class:`probekit.evaluator.SeriesEvaluator`, and reads ``tau_gen``, ``tau_mem`` and the scaling
exponents with :mod:`probekit.timescales`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from probekit.errors import UnknownNameError
from probekit.reference.config import (
    DataConfig,
    DiffusionConfig,
    MLPConfig,
    RunConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    UNetConfig,
)

GMM_PRESETS = ("gmm", "gmm-small")
#: Dimension of the paper's mixture.
GMM_DIM = 8


# -- data --------------------------------------------------------------------------------------


def mixture_samples(n: int, *, dim: int = GMM_DIM, separation: float = 1.0, seed: int = 0,
                    stream: int = 0) -> np.ndarray:
    """``n`` draws of ``½N(+m, I) + ½N(-m, I)``, ``m = separation·1_dim``, float32.

    Components alternate ``+, -, +, …`` (balanced, as in the paper's data), and the draws of a
    smaller ``n`` are the first rows of a larger one: training sets are nested.
    """
    rng = np.random.default_rng([int(seed), int(stream)])
    noise = rng.standard_normal((n, dim))
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    return (noise + separation * signs[:, None]).astype(np.float32)


# -- presets -----------------------------------------------------------------------------------


def gmm_preset(
    name: str = "gmm",
    *,
    n: int,
    width: int | None = None,
    optimizer: str | None = None,
    lr: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    data_options: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The :class:`RunConfig` of the Gaussian-mixture experiment (``gmm`` or ``gmm-small``).

    Full-batch training (batch = n); SGD lr 6e-3 momentum 0.95, or Adam lr 6e-4; checkpoints
    every 50 steps to 1000, then 20 per decade; 1024 DDIM-50 samples per checkpoint.
    """
    if name not in GMM_PRESETS:
        raise UnknownNameError(f"unknown gmm preset {name!r}; known: {', '.join(GMM_PRESETS)}.")
    options = dict(data_options or {})
    dim = int(options.get("dim", GMM_DIM))
    optimizer = optimizer or "sgd"
    small = name == "gmm-small"
    mlp = MLPConfig(dim=dim, width=width or (32 if small else 128), blocks=3)
    train = TrainConfig(
        steps=steps or (2000 if small else 1_000_000), optimizer=optimizer,
        lr=lr or (6e-3 if optimizer == "sgd" else 6e-4), momentum=0.95,
        batch_size=max(int(n), 1), with_replacement=False, ema_decay=None, seed=seed,
        log_every=100,
    )
    schedule = ScheduleConfig(dense_every=50, dense_until=1000, per_decade=20)
    sampler = SamplerConfig(ddim_steps=20 if small else 50, n_samples=128 if small else 1024,
                            seed=0, batch_size=1024)
    data = DataConfig("gmm", n, options)
    cfg = RunConfig(name, data, UNetConfig(), DiffusionConfig(), train, schedule, sampler,
                    mlp=mlp)
    cfg.validate()
    return cfg


# -- the sweep ---------------------------------------------------------------------------------


def gmm_measures(*, mem_level: float = 0.01, stop_level: float | None = 0.1,
                 min_steps: int = 0):
    """The GMM protocol for :mod:`probekit.reference.sweep`: ``nn-ratio`` and ``gmm-mmd``,
    tau_mem at ``f_mem = mem_level``, runs stopped once ``f_mem >= stop_level`` twice."""
    from probekit.reference.sweep import SweepMeasures

    return SweepMeasures(probes=("nn-ratio",), metrics=("gmm-mmd",), mem_level=mem_level,
                         stop_level=stop_level, min_steps=min_steps)


#: Step cap per training sample at W = 128 (the cap scales as n·128/W, like tau_mem), so runs
#: stop on f_mem, not on the cap. Measured tau_mem/n (n = 128…1024): Adam lr 1e-3 ≈ 10–20 (cap
#: 2.4× the largest; tau_mem/n falls with n for Adam), SGD lr 6e-3 ≈ 156–204 (cap 3× the
#: largest: the n = 1024 run stopped at 292,500 steps, close to the former cap of 320·n).
STEPS_PER_SAMPLE = {"adam": 48, "sgd": 640}


def _curve(rows: Sequence[Mapping[str, Any]], measure: str, field: str
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    picked = sorted((r for r in rows if r["measure"] == measure and r["field"] == field),
                    key=lambda r: r["step"])
    arr = np.array([[r["step"], r["value"], r["ci_low"], r["ci_high"]] for r in picked],
                   dtype=np.float64).reshape(-1, 4)
    return arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]


def _tau_dict(tau) -> dict[str, Any]:
    low = tau.early.step if tau.early is not None else None
    high = tau.late.step if tau.late is not None else None
    return {"value": tau.value, "status": tau.status, "ci_low": low, "ci_high": high,
            "level": tau.level}


def analyze_sweep(runs: Sequence[Mapping[str, Any]], *, mem_level: float = 0.01,
                  gen_tol: float = 0.1) -> dict[str, Any]:
    """tau_gen, tau_mem and the scaling fits of finished runs.

    ``runs``: dicts with ``n``, ``width`` and ``eval_dir``. The n-sweep holds the runs at the
    most common width, the W-sweep those at the most common ``n``. tau_gen uses one absolute
    quality level per sweep (:func:`probekit.timescales.common_quality_threshold`: the
    90%-improvement level of the largest run over the common step range).
    """
    from probekit.store import load_rows
    from probekit.timescales import (
        common_quality_threshold,
        estimate_tau_gen,
        estimate_tau_mem,
        fit_scaling,
    )

    curves = []
    for run in runs:
        rows = load_rows(Path(run["eval_dir"]))
        f_steps, f_mem, f_lo, f_hi = _curve(rows, "nn-ratio", "f_mem")
        q_steps, q, q_lo, q_hi = _curve(rows, "gmm-mmd", "mmd2")
        curves.append({**run, "f": (f_steps, f_mem, f_lo, f_hi), "q": (q_steps, q, q_lo, q_hi)})

    def most_common(key: str) -> float:
        values = [c[key] for c in curves]
        return max(set(values), key=lambda v: (values.count(v), v))

    base_width, base_n = most_common("width"), most_common("n")
    groups = {"n": [c for c in curves if c["width"] == base_width],
              "width": [c for c in curves if c["n"] == base_n]}
    out: dict[str, Any] = {"mem_level": mem_level, "gen_tol": gen_tol,
                           "base_width": base_width, "base_n": base_n}
    for axis, group in groups.items():
        group = sorted(group, key=lambda c: c[axis])
        if len(group) < 2:
            out[f"{axis}_sweep"] = None
            continue
        threshold = common_quality_threshold(
            [(c[axis], c["q"][0], c["q"][1]) for c in group], higher_is_better=False,
            gen_tol=gen_tol)
        threshold_info = threshold.to_dict()
        if axis == "width":  # the helper speaks of n; here the runs differ in W
            threshold_info["source"] = threshold_info["source"].replace(
                "largest-n run (n=", "widest run (W=")
        table, taus_mem, taus_gen = [], [], []
        for c in group:
            tau_mem = estimate_tau_mem(c["f"][0], c["f"][1], ci_low=c["f"][2],
                                       ci_high=c["f"][3], mem_level=mem_level)
            tau_gen = estimate_tau_gen(c["q"][0], c["q"][1], higher_is_better=False,
                                       gen_tol=gen_tol, mode="absolute",
                                       threshold=threshold.value, ci_low=c["q"][2],
                                       ci_high=c["q"][3])
            taus_mem.append(tau_mem)
            taus_gen.append(tau_gen)
            table.append({"n": c["n"], "width": c["width"], "tau_gen": _tau_dict(tau_gen),
                          "tau_mem": _tau_dict(tau_mem),
                          "last_step": float(c["f"][0][-1]),
                          "f_mem_last": float(c["f"][1][-1]),
                          "mmd2_best": float(np.min(c["q"][1])),
                          "train_seconds": c.get("seconds"),
                          "train_steps_per_s": c.get("train_steps_per_s")})
        fit = fit_scaling([c[axis] for c in group], taus_mem, tau_gen=taus_gen)
        out[f"{axis}_sweep"] = {"runs": table, "fit": fit.to_dict(),
                                "quality_threshold": threshold_info}
    out["curves"] = curves
    return out


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
    ``width_n``), then analyse them (:func:`analyze_sweep`) and write ``gmm-sweep.json``,
    ``gmm-sweep.csv``, ``theory-gmm.png`` and the n-sweep's scaling report (``scaling/``) into
    ``out``. Runs live in ``out/n-<n>-w-<W>/`` and resume when run again.

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
        runs.append({"n": n, "width": width, "eval_dir": str(run_dir / EVAL_DIR),
                     "run_dir": str(run_dir), "seconds": done["seconds"],
                     "train_steps_per_s": done["train_steps_per_s"],
                     "last_step": done["last_step"], "stopped_early": done["stopped_early"]})
        if progress is not None:
            progress(f"n={n} W={width}: {done['last_step']} steps "
                     f"({'stopped on f_mem' if done['stopped_early'] else 'step cap'}), "
                     f"{done['seconds']:.0f} s, {done['train_steps_per_s']:.0f} steps/s")
    analysis = analyze_sweep(runs, mem_level=mem_level)
    n_dirs = [Path(r["eval_dir"]) for r in runs if r["width"] == analysis["base_width"]]
    if len(n_dirs) >= 2:
        write_scaling_report(n_dirs, out / "scaling", quiet=True)
    summary = {k: v for k, v in analysis.items() if k != "curves"}
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
    atomic_write_text(out / "gmm-sweep.csv", _sweep_csv(summary))
    atomic_write_bytes(out / "theory-gmm.png", plot_sweep(analysis))
    return summary


def _sweep_csv(summary: Mapping[str, Any]) -> str:
    lines = ["sweep,n,width,tau_gen,tau_gen_ci_low,tau_gen_ci_high,tau_mem,tau_mem_ci_low,"
             "tau_mem_ci_high,last_step,f_mem_last,train_seconds"]
    for axis in ("n", "width"):
        block = summary.get(f"{axis}_sweep")
        for r in (block or {}).get("runs", []):
            g, m = r["tau_gen"], r["tau_mem"]
            lines.append(",".join(str(v) for v in (
                axis, r["n"], r["width"], g["value"], g["ci_low"], g["ci_high"], m["value"],
                m["ci_low"], m["ci_high"], r["last_step"], r["f_mem_last"],
                r["train_seconds"])))
    return "\n".join(lines) + "\n"


def format_sweep(summary: Mapping[str, Any]) -> str:
    """The sweep as text: one line per run, then the fitted exponents."""
    def tau(t: Mapping[str, Any]) -> str:
        if t["value"] is None:
            return t["status"]
        lo, hi = t["ci_low"], t["ci_high"]
        ci = f" [{'?' if lo is None else f'{lo:.0f}'}, {'?' if hi is None else f'{hi:.0f}'}]"
        return f"{t['value']:.0f}{ci}"

    lines = []
    for axis, name in (("n", "n-sweep"), ("width", "W-sweep")):
        block = summary.get(f"{axis}_sweep")
        if not block:
            continue
        lines.append(f"{name}:  n     W   tau_gen [95% CI]     tau_mem [95% CI]")
        for r in block["runs"]:
            lines.append(f"  {r['n']:>6.0f} {r['width']:>5.0f}   {tau(r['tau_gen']):<20} "
                         f"{tau(r['tau_mem'])}")
        fit = block["fit"]
        if fit.get("slope") is not None:
            ci = fit.get("slope_ci")
            ci_text = "" if ci is None else f" (95% CI {ci[0]:.2f} to {ci[1]:.2f})"
            lines.append(f"  log-log slope of tau_mem vs {axis}: {fit['slope']:.2f}{ci_text}, "
                         f"R² = {fit['r2']:.3f}")
    return "\n".join(lines)


def plot_sweep(analysis: Mapping[str, Any]) -> bytes:
    """f_mem and the MMD along training for each run, the collapse on ``step·W/n``, and tau_mem
    against ``n`` and ``W``."""
    from matplotlib.figure import Figure

    from probekit._plotting import to_png

    colors = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
    fig = Figure(figsize=(14, 7.5))
    axes = fig.subplots(2, 3)
    base_w, base_n = analysis["base_width"], analysis["base_n"]
    n_runs = sorted((c for c in analysis["curves"] if c["width"] == base_w), key=lambda c: c["n"])
    w_runs = sorted((c for c in analysis["curves"] if c["n"] == base_n), key=lambda c: c["width"])
    level = analysis["mem_level"]
    for i, c in enumerate(n_runs):
        color = colors[i % len(colors)]
        steps, f_mem = c["f"][0], c["f"][1]
        x = np.maximum(steps, 1)
        axes[0, 0].plot(x, f_mem, "-", color=color, label=f"n={c['n']}")
        axes[0, 1].plot(x * 128 / (c["n"] * c["width"]), f_mem, "-", color=color,
                        label=f"n={c['n']}")
        axes[0, 2].plot(np.maximum(c["q"][0], 1), np.maximum(c["q"][1], 1e-5), "-",
                        color=color, label=f"n={c['n']}")
    for i, c in enumerate(w_runs):
        color = colors[i % len(colors)]
        steps, f_mem = c["f"][0], c["f"][1]
        axes[1, 2].plot(np.maximum(steps, 1) * c["width"] / (base_n * 128), f_mem, "-",
                        color=color, label=f"W={c['width']}")
    for ax in (axes[0, 0], axes[0, 1], axes[1, 2]):
        ax.axhline(level, color="#7f7f7f", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_ylabel("f_mem (nn-ratio, d1/d2 < 1/3)")
        ax.legend(fontsize=7)
    axes[0, 0].set_xlabel("training step")
    axes[0, 0].set_title(f"memorized fraction, W={base_w}", fontsize=9)
    axes[0, 1].set_xlabel("step · 128 / (n W)")
    axes[0, 1].set_title("collapse: f_mem against step/n", fontsize=9)
    axes[1, 2].set_xlabel("step · W / (128 n)")
    axes[1, 2].set_title(f"W-sweep at n={base_n}: f_mem against step·W", fontsize=9)
    axes[0, 2].set_xscale("log")
    axes[0, 2].set_yscale("log")
    axes[0, 2].set_xlabel("training step")
    axes[0, 2].set_ylabel("MMD² to the mixture (gmm-mmd)")
    axes[0, 2].set_title("quality (lower is better)", fontsize=9)
    axes[0, 2].legend(fontsize=7)
    for ax, axis, label in ((axes[1, 0], "n", "n (training samples)"),
                            (axes[1, 1], "width", "W (hidden width)")):
        block = analysis.get(f"{axis}_sweep")
        if not block:
            ax.set_visible(False)
            continue
        xs = np.array([r[axis] for r in block["runs"]], dtype=float)
        for key, marker, name in (("tau_mem", "o-", "tau_mem"), ("tau_gen", "s--", "tau_gen")):
            ys = np.array([np.nan if r[key]["value"] is None else r[key]["value"]
                           for r in block["runs"]], dtype=float)
            lo = np.array([np.nan if r[key]["ci_low"] is None else r[key]["ci_low"]
                           for r in block["runs"]], dtype=float)
            hi = np.array([np.nan if r[key]["ci_high"] is None else r[key]["ci_high"]
                           for r in block["runs"]], dtype=float)
            err = np.vstack([ys - lo, hi - ys])
            err = np.where(np.isfinite(err), np.maximum(err, 0.0), 0.0)
            ok = np.isfinite(ys)
            ax.errorbar(xs[ok], ys[ok], yerr=err[:, ok], fmt=marker, ms=5, capsize=2,
                        label=name)
        fit = block["fit"]
        if fit.get("slope") is not None:
            grid = np.geomspace(xs.min(), xs.max(), 20)
            ax.plot(grid, np.exp(fit["intercept"]) * grid ** fit["slope"], color="#7f7f7f",
                    lw=0.8, label=f"fit: slope {fit['slope']:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("training steps")
        ax.legend(fontsize=7)
        ax.set_title(f"timescales against {axis}", fontsize=9)
    fig.suptitle("Gaussian mixture ½N(±1, I), d = 8: residual-MLP DDPM", fontsize=10)
    fig.tight_layout()
    return to_png(fig)


__all__ = [
    "GMM_DIM",
    "GMM_PRESETS",
    "analyze_sweep",
    "format_sweep",
    "gmm_measures",
    "gmm_preset",
    "mixture_samples",
    "plot_sweep",
    "run_sweep",
]

