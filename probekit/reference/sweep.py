"""Train several runs that differ only in the training-set size ``n``, evaluate each as it trains,
and compare them: tau_gen and tau_mem per ``n``, the log-log slope, the collapse plot.

Every run evaluates itself through the evaluator's public callback API — exactly what a user
would call from their own loop::

    ev = SeriesEvaluator(out=run_dir / "eval", dataset="digits", dataset_settings={...},
                         probes=["nn-ratio"], metrics=["fd"], ...)
    train(cfg, run_dir, callback=ev.evaluate_checkpoint, stop_after_mem=0.1)
    ev.finish()

Layout of a sweep folder: ``n-<n>/`` (a reference run: ``config.json``, ``ckpt-*.pt``,
``stats.jsonl``), ``n-<n>/eval/`` (its evaluation: ``results.sqlite``, reports), and
``scaling/`` (the scaling report across runs).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from probekit.errors import ValidationError
from probekit.reference.config import RunConfig, preset

EVAL_DIR = "eval"
SCALING_DIR = "scaling"


@dataclass(frozen=True)
class SweepMeasures:
    """What each run is evaluated with, and how its timescales are read."""

    probes: tuple[str, ...] = ("nn-ratio",)  # memorization probes
    metrics: tuple[str, ...] = ()  # quality metrics (the first one gives tau_gen)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per measure
    mem_level: float = 0.01  # tau_mem: first step with f_mem >= mem_level (and the next)
    stop_level: float | None = 0.02  # stop a run once f_mem >= this twice in a row (None: never)
    min_steps: int = 0  # but never before this step (the common range for tau_gen)


def default_measures(preset_name: str) -> SweepMeasures:
    """The protocol of each preset (issue 4): digits — nn-ratio, and the Fréchet distance in
    ``digits-cnn`` features against the 500 held-out digits, tau_mem at f_mem = 5%;
    celeba32 — nn-ratio and FID (needs the Inception weights), tau_mem at f_mem = 1%."""
    if preset_name == "celeba32":
        return SweepMeasures(metrics=("fid",), mem_level=0.01, stop_level=0.02,
                             min_steps=200_000)
    if preset_name.startswith("ts-"):  # series: nn-ratio, subsequence-match and ts-fd
        from probekit.reference.timeseries import ts_measures

        return ts_measures(preset_name)
    if preset_name in ("mnist32", "mnist32-small"):  # nn-ratio and fd on mnist32-cnn
        from probekit.reference.mnist32 import mnist32_measures

        return mnist32_measures()
    if preset_name in ("gmm", "gmm-small"):  # nn-ratio and the exact MMD to the mixture
        from probekit.reference.gmm import gmm_measures

        return gmm_measures()
    return SweepMeasures(metrics=("fd",), settings={"fd": {"features": "digits-cnn"}},
                         mem_level=0.05, stop_level=0.10, min_steps=1000)


def make_evaluator(cfg: RunConfig, run_dir: Path, measures: SweepMeasures, *,
                   quiet: bool = True):
    """A :class:`probekit.evaluator.SeriesEvaluator` writing to ``run_dir/eval``."""
    from probekit.evaluator import SeriesEvaluator

    return SeriesEvaluator(
        out=run_dir / EVAL_DIR,
        dataset=cfg.data.dataset,
        dataset_settings=cfg.data.settings(),
        probes=list(measures.probes),
        metrics=list(measures.metrics),
        measure_settings={k: dict(v) for k, v in measures.settings.items()},
        n_samples=cfg.sampler.n_samples,
        seed=cfg.sampler.seed,
        adapter="ddpm",
        series=str(run_dir),
        timescales={"mem_level": measures.mem_level},
        quiet=quiet,
        config_extra={"reference_run": str(run_dir), "preset": cfg.preset},
    )


def train_and_evaluate(cfg: RunConfig, run_dir: str | Path, measures: SweepMeasures, *,
                       device: str = "cpu", compile_mode: str | None = None,
                       quiet: bool = True) -> dict[str, Any]:
    """Train one run, evaluating every checkpoint as it is reached; write its reports."""
    return train_and_evaluate_many([cfg], [run_dir], measures, device=device,
                                   compile_mode=compile_mode, ensemble=False, quiet=quiet)[0]


def train_and_evaluate_many(cfgs: Sequence[RunConfig], run_dirs: Sequence[str | Path],
                            measures: SweepMeasures, *, device: str = "cpu",
                            compile_mode: str | None = None, ensemble: bool = True,
                            quiet: bool = True) -> list[dict[str, Any]]:
    """Train several runs — one after the other, or as one batched ensemble
    (:func:`probekit.reference.ensemble.train_ensemble`; the runs must share the network and
    the optimizer) — each evaluated at every checkpoint into ``run_dir/eval``."""
    from probekit.reference.ensemble import train_ensemble
    from probekit.reference.train import train

    run_dirs = [Path(d) for d in run_dirs]
    started = time.perf_counter()
    evaluators = [make_evaluator(cfg, d, measures, quiet=True)
                  for cfg, d in zip(cfgs, run_dirs, strict=True)]
    common = {"device": device, "stop_after_mem": measures.stop_level,
              "mem_measure": measures.probes[0], "min_steps": measures.min_steps,
              "compile_mode": compile_mode, "quiet": quiet}
    try:
        if ensemble:
            outcomes = train_ensemble(cfgs, run_dirs,
                                      callbacks=[e.evaluate_checkpoint for e in evaluators],
                                      **common)
        else:
            outcomes = [train(cfg, d, callback=e.evaluate_checkpoint, **common)
                        for cfg, d, e in zip(cfgs, run_dirs, evaluators, strict=True)]
    except BaseException:
        for e in evaluators:
            e.close()
        raise
    summaries = [e.finish() for e in evaluators]
    seconds = time.perf_counter() - started
    return [{"n": cfg.data.n_train, "width": _width(cfg), "run_dir": str(d),
             "last_step": o.last_step, "stopped_early": o.stopped_early,
             "train_steps_per_s": o.train_steps_per_s,
             "seconds": o.seconds if not ensemble else seconds, "ensemble": ensemble,
             "summary": summary}
            for cfg, d, o, summary in zip(cfgs, run_dirs, outcomes, summaries, strict=True)]


def _width(cfg: RunConfig) -> int:
    return cfg.mlp.width if cfg.mlp is not None else cfg.unet.base_width


def _worker(job: dict[str, Any]) -> dict[str, Any]:
    """One run in a worker process (spawned: set its threads first)."""
    import torch

    torch.set_num_threads(job["threads"])
    cfg = RunConfig.from_dict(job["config"])
    measures = SweepMeasures(**{**job["measures"], "probes": tuple(job["measures"]["probes"]),
                                "metrics": tuple(job["measures"]["metrics"])})
    return train_and_evaluate(cfg, Path(job["run_dir"]), measures, device=job["device"],
                              compile_mode=job["compile_mode"], quiet=job["quiet"])


def _warm_caches(cfg: RunConfig, measures: SweepMeasures) -> None:
    """Build cached feature extractors once, before workers race to build them."""
    from probekit.reference.data import load_splits
    from probekit.registry import get_feature_extractor

    names = {s.get("features") for s in measures.settings.values()} - {None, "pixels"}
    if names:
        holdout = load_splits(cfg.data).holdout[:2]
        for name in sorted(names):
            get_feature_extractor(name)().extract(holdout)


def sweep(
    preset_name: str,
    ns: Sequence[int],
    out: str | Path,
    *,
    jobs: int = 1,
    threads: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    width: int | Sequence[int] | None = None,
    device: str = "cpu",
    measures: SweepMeasures | None = None,
    data_options: Mapping[str, Any] | None = None,
    ensemble: bool = False,
    bf16: bool = False,
    compile_mode: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train and evaluate one run per ``n`` (and per width when several are given), then write
    the scaling report; return its summary plus ``"runs_done"`` (per-run training facts) and
    ``"seconds"``.

    One width (or none: the preset's): runs ``out/n-<n>``, ``jobs`` at a time with the CPU
    threads split between them, and the scaling report of tau against ``n`` in
    ``out/scaling``. Several widths: runs ``out/n-<n>-w-<W>`` for every pair, and besides the
    n-sweep's scaling report (at the most common width) the grid analysis of tau against
    ``n`` and ``W`` (:mod:`probekit.reference.grid_analysis`) in ``out/grid.json``,
    ``grid.csv`` and ``grid.png``; the summary is then the grid's, with ``"grid": True``.

    ``ensemble``: the runs of one width are trained as one batched ensemble in this process
    with all ``threads`` (``jobs`` is then not used; widths are trained one after the other).
    ``bf16``: training and DDIM sampling under bf16 autocast. ``compile_mode``:
    ``torch.compile`` of the training step.
    """
    import dataclasses

    from probekit.reports import write_scaling_report

    started = time.perf_counter()
    ns = sorted({int(n) for n in ns})
    widths = sorted({int(w) for w in ([width] if isinstance(width, int) or width is None
                                      else width) if w is not None})
    grid = len(widths) > 1
    if len(ns) < 2 and not grid:
        raise ValidationError(
            f"reference sweep: --n must list at least 2 different sizes; got {ns}."
        )
    if jobs < 1:
        raise ValidationError(f"reference sweep: jobs must be >= 1; got {jobs}.")
    measures = measures or default_measures(preset_name)
    pairs = [(n, w) for w in (widths or [None]) for n in ns]
    configs = {}
    for n, w in pairs:
        cfg = preset(preset_name, n=n, steps=steps, seed=seed, width=w,
                     data_options=data_options)
        if bf16:
            cfg = dataclasses.replace(
                cfg, train=dataclasses.replace(cfg.train, autocast_bf16=True),
                sampler=dataclasses.replace(cfg.sampler, autocast_bf16=True))
        configs[(n, w)] = cfg
    out = Path(out)
    run_dirs = {(n, w): out / (f"n-{n}-w-{w}" if grid else f"n-{n}") for n, w in pairs}
    total_threads = threads or os.cpu_count() or 1
    per_job = max(1, total_threads // min(jobs, len(pairs))) if not ensemble else total_threads
    _warm_caches(configs[pairs[0]], measures)
    if not quiet:
        how = ("one batched ensemble per width" if ensemble
               else f"{jobs} job(s) x {per_job} thread(s)")
        print(f"reference sweep: {preset_name}, n = {', '.join(map(str, ns))}"
              f"{'; W = ' + ', '.join(map(str, widths)) if widths else ''}; {how}; output in "
              f"{out}", file=sys.stderr)
    done: list[dict[str, Any]] = []
    order = sorted(pairs, key=lambda p: (-p[0], p[1] or 0))  # longest runs first
    if ensemble or jobs == 1:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(per_job)
        try:
            if ensemble:
                for w in (widths or [None]):
                    group = [p for p in order if p[1] == w]
                    done += train_and_evaluate_many(
                        [configs[p] for p in group], [run_dirs[p] for p in group], measures,
                        device=device, compile_mode=compile_mode, ensemble=True, quiet=quiet)
            else:
                for p in order:
                    done.append(train_and_evaluate(configs[p], run_dirs[p], measures,
                                                   device=device, compile_mode=compile_mode,
                                                   quiet=quiet))
        finally:
            torch.set_num_threads(before)
    else:
        job_args = [{"config": configs[p].to_dict(), "run_dir": str(run_dirs[p]),
                     "measures": asdict(measures), "threads": per_job, "device": device,
                     "compile_mode": compile_mode, "quiet": quiet} for p in order]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            done = list(pool.map(_worker, job_args))
    facts = sorted(({k: v for k, v in d.items() if k != "summary"} for d in done),
                   key=lambda d: (d["n"], d["width"]))
    if grid:
        summary = _grid_outputs(preset_name, pairs, run_dirs, facts, measures, out)
    else:
        summary = write_scaling_report([run_dirs[p] / EVAL_DIR for p in pairs],
                                       out / SCALING_DIR, quiet=True)
    summary["runs_done"] = facts
    summary["seconds"] = time.perf_counter() - started
    return summary


def _grid_outputs(preset_name, pairs, run_dirs, facts, measures, out: Path) -> dict[str, Any]:
    """Grid analysis and its files; the n-sweep's scaling report when it has two sizes."""
    from probekit.io import atomic_write_bytes, atomic_write_json, atomic_write_text
    from probekit.reference.grid_analysis import GridRun, analyze_grid, grid_summary
    from probekit.reference.grid_report import grid_csv, plot_grid
    from probekit.reports import write_scaling_report

    by_pair = {(f["n"], f["width"]): f for f in facts}
    runs = [GridRun(n, w, run_dirs[(n, w)] / EVAL_DIR,
                    {"train_seconds": by_pair[(n, w)]["seconds"],
                     "train_steps_per_s": by_pair[(n, w)]["train_steps_per_s"],
                     "stopped_early": by_pair[(n, w)]["stopped_early"]})
            for n, w in pairs]
    grid = analyze_grid(runs, mem_level=measures.mem_level)
    n_dirs = [r.eval_dir for r in runs if r.width == grid.base_width]
    if len(n_dirs) >= 2:
        write_scaling_report(n_dirs, out / SCALING_DIR, quiet=True)
    summary = {**grid_summary(grid), "grid": True, "preset": preset_name}
    atomic_write_json(out / "grid.json", summary)
    atomic_write_text(out / "grid.csv", grid_csv(summary))
    quality = measures.metrics[0] if measures.metrics else "quality"
    atomic_write_bytes(out / "grid.png", plot_grid(
        grid, summary, title=f"{preset_name}: tau_gen and tau_mem against n and W",
        quality_label=f"{quality} (lower is better)", ref_width=grid.base_width))
    return summary


def format_table(summary: Mapping[str, Any]) -> str:
    """The sweep's answer as a small text table plus the fitted slope."""
    if summary.get("grid"):
        from probekit.reference.grid_report import format_grid

        return format_grid(summary)
    def tau(t: Mapping[str, Any] | None) -> str:
        if not t or t.get("value") is None:
            return "never" if t else "n/a"
        low, high = t.get("ci_low"), t.get("ci_high")
        ci = "" if low is None and high is None else \
            f" [{'?' if low is None else f'{low:.0f}'}, {'>' if high is None else ''}" \
            f"{t['last_step'] if high is None else high:.0f}]"
        return f"{t['value']:.0f}{ci}"

    rows = [["n", "tau_gen [95% CI]", "tau_mem [95% CI]", "tau_mem / n"]]
    for r in sorted(summary["runs"], key=lambda r: r["n"]):
        ratio = r.get("tau_mem_over_n")
        rows.append([f"{r['n']:.0f}", tau(r.get("tau_gen")), tau(r.get("tau_mem")),
                     "n/a" if ratio is None else f"{ratio:.1f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    fit = summary["fit"]
    if fit.get("slope") is not None:
        ci = fit.get("slope_ci")
        ci_text = "" if ci is None else f" (95% CI {ci[0]:.2f} to {ci[1]:.2f})"
        lines.append(f"log-log slope of tau_mem vs n: {fit['slope']:.2f}{ci_text}, "
                     f"R² = {fit['r2']:.3f}")
    if fit.get("tau_gen_cv") is not None:
        lines.append(f"tau_gen spread across n: coefficient of variation "
                     f"{fit['tau_gen_cv']:.2f}")
    return "\n".join(lines)


__all__ = [
    "SweepMeasures",
    "default_measures",
    "format_table",
    "make_evaluator",
    "sweep",
    "train_and_evaluate",
    "train_and_evaluate_many",
]
