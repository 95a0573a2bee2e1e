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
                       device: str = "cpu", quiet: bool = True) -> dict[str, Any]:
    """Train one run, evaluating every checkpoint as it is reached; write its reports."""
    from probekit.reference.train import train

    run_dir = Path(run_dir)
    started = time.perf_counter()
    evaluator = make_evaluator(cfg, run_dir, measures, quiet=True)
    try:
        outcome = train(cfg, run_dir, device=device, callback=evaluator.evaluate_checkpoint,
                        stop_after_mem=measures.stop_level, mem_measure=measures.probes[0],
                        min_steps=measures.min_steps, quiet=quiet)
    except BaseException:
        evaluator.close()
        raise
    summary = evaluator.finish()
    return {"n": cfg.data.n_train, "run_dir": str(run_dir), "last_step": outcome.last_step,
            "stopped_early": outcome.stopped_early, "train_steps_per_s":
            outcome.train_steps_per_s, "seconds": time.perf_counter() - started,
            "summary": summary}


def _worker(job: dict[str, Any]) -> dict[str, Any]:
    """One run in a worker process (spawned: set its threads first)."""
    import torch

    torch.set_num_threads(job["threads"])
    cfg = RunConfig.from_dict(job["config"])
    measures = SweepMeasures(**{**job["measures"], "probes": tuple(job["measures"]["probes"]),
                                "metrics": tuple(job["measures"]["metrics"])})
    return train_and_evaluate(cfg, Path(job["run_dir"]), measures, device=job["device"],
                              quiet=job["quiet"])


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
    width: int | None = None,
    device: str = "cpu",
    measures: SweepMeasures | None = None,
    data_options: Mapping[str, Any] | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train and evaluate one run per ``n`` (``jobs`` at a time, the CPU threads split between
    them), then write the scaling report into ``out/scaling``; return its summary plus
    ``"runs_done"`` (per-run training facts) and ``"seconds"``."""
    from probekit.reports import write_scaling_report

    started = time.perf_counter()
    ns = sorted({int(n) for n in ns})
    if len(ns) < 2:
        raise ValidationError(
            f"reference sweep: --n must list at least 2 different sizes; got {ns}."
        )
    if jobs < 1:
        raise ValidationError(f"reference sweep: jobs must be >= 1; got {jobs}.")
    measures = measures or default_measures(preset_name)
    configs = {n: preset(preset_name, n=n, steps=steps, seed=seed, width=width,
                         data_options=data_options) for n in ns}
    out = Path(out)
    total_threads = threads or os.cpu_count() or 1
    per_job = max(1, total_threads // min(jobs, len(ns)))
    _warm_caches(configs[ns[0]], measures)
    order = sorted(ns, reverse=True)  # longest runs first
    run_dirs = {n: out / f"n-{n}" for n in ns}
    if not quiet:
        print(f"reference sweep: {preset_name}, n = {', '.join(map(str, ns))}; {jobs} job(s) x "
              f"{per_job} thread(s); output in {out}", file=sys.stderr)
    done: list[dict[str, Any]] = []
    if jobs == 1:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(per_job)
        try:
            for n in order:
                done.append(train_and_evaluate(configs[n], run_dirs[n], measures,
                                               device=device, quiet=quiet))
        finally:
            torch.set_num_threads(before)
    else:
        job_args = [{"config": configs[n].to_dict(), "run_dir": str(run_dirs[n]),
                     "measures": asdict(measures), "threads": per_job, "device": device,
                     "quiet": quiet} for n in order]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            done = list(pool.map(_worker, job_args))
    summary = write_scaling_report([run_dirs[n] / EVAL_DIR for n in ns], out / SCALING_DIR,
                                   quiet=True)
    summary["runs_done"] = sorted(({k: v for k, v in d.items() if k != "summary"}
                                   for d in done), key=lambda d: d["n"])
    summary["seconds"] = time.perf_counter() - started
    return summary


def format_table(summary: Mapping[str, Any]) -> str:
    """The sweep's answer as a small text table plus the fitted slope."""
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
]
