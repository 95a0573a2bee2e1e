"""Reports of a run directory: ``results.csv``, ``summary.json``, ``plots/`` and ``report.html``.

:func:`write_reports` reads one run (the store's rows, ``config.json``, ``samples/`` and
``artifacts/``), estimates tau_gen, tau_mem, the window and the recommended checkpoint with
:mod:`probekit.timescales`, and writes the four outputs. :func:`write_scaling_report` does the
same across runs that differ in the training-set size ``n``: scaling fit and collapse plot.
Every file is written atomically; the HTML page embeds its images, so it can be mailed alone.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from probekit import _plotting as plotting
from probekit._plotting import NeighborPanel
from probekit.analysis import (
    Curve,
    RunAnalysis,
    analyze_run,
    analyze_scaling,
    headline_curves,
    measure_table,
    thresholds,
    verdict_lines,
)
from probekit.errors import ProbekitError, ValidationError
from probekit.html import CSV_COLUMNS, render_run_html, render_scaling_html
from probekit.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from probekit.types import _jsonable

#: Memorization signal without sampling, reported beside tau_mem when the run has it.
LOSS_GAP_MEASURE = "loss-gap"
#: Generated samples shown per checkpoint in the nearest-neighbour grid.
GRID_SAMPLES = 8
#: Checkpoints shown in the nearest-neighbour grid, at most.
GRID_CHECKPOINTS = 4
SCHEMA_VERSION = 1


# -- reading a run (the one door to the store) ---------------------------------------------------


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Result rows of a run: ``{step, measure, field, value, ci_low, ci_high}`` (NaN: no CI)."""
    from probekit.store import load_rows

    return load_rows(run_dir)


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.json``."""
    from probekit.store import load_config

    return load_config(run_dir)


def read_provenance(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Per measure: the provenance of its latest evaluation, how many checkpoints it covers and
    the distinct warnings it raised (from the store's evaluations)."""
    from probekit.store import load_results

    out: dict[str, dict[str, Any]] = {}
    for r in load_results(run_dir, per_sample=False):  # sorted by step
        entry = out.setdefault(r.measure, {"n_checkpoints": 0, "warnings": []})
        entry["n_checkpoints"] += 1
        entry["provenance"] = r.provenance.to_dict()
        for w in r.warnings:
            if w not in entry["warnings"]:
                entry["warnings"].append(w)
    return out


# -- summary -------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Versions of what made the report."""
    import matplotlib

    from probekit import __version__

    return {
        "probekit": __version__,
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "python": platform.python_version(),
    }


def _provenance(config: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("series", "adapter", "adapter_settings", "train", "holdout", "dataset",
            "dataset_settings", "n_train", "modality", "n_samples", "seed")
    return {
        "run": {k: config.get(k) for k in keys if k in config},
        "measures": [
            {k: m.get(k) for k in ("name", "kind", "headline", "higher_is_better", "plugin",
                                   "version", "settings")}
            for m in config.get("measures") or []
        ],
    }


def build_summary(a: RunAnalysis, *, files: Mapping[str, Any],
                  evaluations: Mapping[str, Any] | None = None,
                  failures: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The content of ``summary.json`` (``failures``: checkpoints that could not be evaluated,
    with their one-line reasons)."""
    w = a.window
    rec = None
    if w is not None and w.recommended_step is not None:
        step = w.recommended_step
        rec = {"step": step, "basis": w.basis, "values": _values_at(a, step)}
    return _jsonable({
        "kind": "probekit-summary",
        "schema_version": SCHEMA_VERSION,
        "run_dir": str(a.run_dir),
        "series": a.config.get("series"),
        "modality": a.config.get("modality"),
        "n_train": a.n_train,
        "steps": a.steps,
        "verdict": verdict_lines(a) + ([
            f"{len(failures)} checkpoint(s) failed and are missing from the curves: steps "
            + ", ".join(str(f["step"]) for f in failures)] if failures else []),
        "failures": [dict(f) for f in failures],
        "tau_mem": None if a.tau_mem is None else a.tau_mem.to_dict(),
        "tau_gen": None if a.tau_gen is None else a.tau_gen.to_dict(),
        "window": None if w is None else w.to_dict(),
        "recommended_checkpoint": rec,
        "loss_gap_onset": a.gap_onset,
        "thresholds": thresholds(a),
        "headlines": {
            f"{c.measure}:{c.field}": {"higher_is_better": c.higher_is_better,
                                       "best_step": _best_step(c)}
            for c in headline_curves(a)
        },
        "provenance": {**_provenance(a.config), "evaluations": dict(evaluations or {})},
        "versions": {"run": a.config.get("versions") or {}, "report": versions()},
        "probekit_version_of_run": a.config.get("probekit_version"),
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": dict(files),
        "notes": _all_notes(a),
    })


def _values_at(a: RunAnalysis, step: int) -> dict[str, Any]:
    out = {}
    for c in headline_curves(a):
        hit = np.flatnonzero(c.steps == step)
        if len(hit):
            i = int(hit[0])
            out[f"{c.measure}:{c.field}"] = {"value": float(c.value[i]),
                                             "ci_low": float(c.ci_low[i]),
                                             "ci_high": float(c.ci_high[i])}
    return out


def _best_step(c: Curve) -> int | None:
    if c.higher_is_better is None:
        return None
    i = int(np.argmax(c.value) if c.higher_is_better else np.argmin(c.value))
    return int(c.steps[i])


def _all_notes(a: RunAnalysis) -> list[str]:
    notes = list(a.notes)
    for est in (a.tau_gen, a.tau_mem):
        if est is not None:
            notes += list(est.notes)
    if a.window is not None:
        notes += list(a.window.notes)
    return notes


# -- results.csv ---------------------------------------------------------------------------------


def results_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Tidy CSV: one row per (step, measure, field); an empty cell for a missing CI."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    ordered = sorted(rows, key=lambda r: (int(r["step"]), str(r["measure"]), str(r["field"])))
    for r in ordered:
        writer.writerow([int(r["step"]), r["measure"], r["field"],
                         *(_csv_number(r.get(k)) for k in ("value", "ci_low", "ci_high"))])
    return buf.getvalue()


def _csv_number(v: Any) -> str:
    x = math.nan if v is None or v == "" else float(v)
    return "" if not math.isfinite(x) else repr(x)


# -- nearest-neighbour panels --------------------------------------------------------------------


def _step_file(run_dir: Path, folder: str, step: int, suffix: str) -> Path:
    return run_dir / folder / f"step-{step:08d}{suffix}"


def load_training_set(config: Mapping[str, Any]) -> tuple[np.ndarray, tuple[float, float] | None]:
    """The run's training set (``train`` path, else the registered ``dataset``) and its value
    range when the dataset declares one.

    When ``config.json`` records ``train_sha256``, the set read now must hash to it: the
    nearest-neighbour indices of the artifacts point into that exact array.
    """
    from probekit.io import load_array

    if config.get("train"):
        from probekit.conditions import is_conditional_source, load_conditional_set

        train = (load_conditional_set(config["train"]).images
                 if is_conditional_source(config["train"]) else load_array(config["train"]))
        value_range = None
    elif config.get("dataset"):
        from probekit.registry import get_dataset

        splits = get_dataset(config["dataset"])(config.get("dataset_settings") or {}).load()
        train, value_range = splits.train, tuple(splits.value_range)
    else:
        raise ValidationError(
            "reports: config.json names neither a train path nor a dataset (the training set "
            "was passed as an array); pass train=... to write_reports to draw the grid."
        )
    expected = config.get("train_sha256")
    if expected:
        from probekit.cache import array_sha256

        # the evaluator hashes the set as it used it: float arrays as they are, others float32
        used = train if train.dtype.kind == "f" else train.astype(np.float32)
        if array_sha256(used) != expected:
            source = config.get("train") or config.get("dataset")
            raise ValidationError(
                f"reports: the training set read now ({source}) differs from the one the run "
                "was evaluated on (train_sha256 mismatch); the "
                "nearest-neighbour indices would point to the wrong images."
            )
    return train, value_range


def neighbor_panels(
    a: RunAnalysis, *, k: int = GRID_SAMPLES, train: np.ndarray | None = None
) -> tuple[list[NeighborPanel], tuple[float, float]]:
    """Generated samples and their nearest training samples at up to four checkpoints.

    Shows the first ``k`` kept samples of each checkpoint: the evaluator draws them from the same
    initial noise at every checkpoint, so the columns follow the same samples through training.
    ``train`` is the training set when the caller holds it (else it is read as the config says).
    """
    run_dir = a.run_dir
    if train is None:
        train, value_range = load_training_set(a.config)
    else:
        value_range = None
    candidates = []
    for step in a.steps:
        samples = _step_file(run_dir, "samples", step, ".npy")
        artifact = _neighbor_artifact(run_dir, _mem_name(a), step)
        if samples.exists() and artifact is not None:
            candidates.append(step)
    if not candidates:
        return [], (0.0, 1.0)
    panels = []
    f_values = {} if a.f_mem is None else dict(zip(a.f_mem.steps.tolist(),
                                                   a.f_mem.value.tolist(), strict=True))
    for step in _grid_steps(a, candidates):
        samples = np.load(_step_file(run_dir, "samples", step, ".npy"), allow_pickle=False)
        with np.load(_neighbor_artifact(run_dir, _mem_name(a), step),
                     allow_pickle=False) as art:
            m = min(k, len(samples), len(art["nn_index"]))
            # which generated sample each kept one is (round-robin over prompts when the
            # run samples prompts; the first n_keep otherwise)
            from probekit.reports_conditional import kept_sample_indices

            at = kept_sample_indices(a.config, len(art["nn_index"]))[:m]
            nn = np.asarray(art["nn_index"][at], dtype=np.int64)
            label, score = _panel_score(art, at)
            ratio = score
            memorized = np.asarray(art["memorized"][at], dtype=bool) if "memorized" in art \
                else np.zeros(m, dtype=bool)
        if (nn < 0).any() or (nn >= len(train)).any():
            raise ValidationError(
                f"reports: artifacts of step {step} point to training index {int(nn.max())} but "
                f"the training set in config.json has {len(train)} samples. Is it the same set?"
            )
        panels.append(NeighborPanel(step, samples[:m], train[nn], ratio, memorized,
                                    f_values.get(step), score_label=label))
    if value_range is None:
        lo, hi = np.percentile(train, [0.5, 99.5])
        value_range = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
    return panels, value_range


def roc_panels(run_dir: Path, config: Mapping[str, Any], a: RunAnalysis
               ) -> list[plotting.RocPanel]:
    """Per-sample membership scores (``is_member``, ``score`` artifacts of the ``mia-*``-style
    probes) at the first, recommended and last checkpoints."""
    wanted = {a.steps[0], a.steps[-1]} if len(a.steps) else set()
    if a.window is not None and a.window.recommended_step is not None:
        wanted.add(int(a.window.recommended_step))
    panels = []
    for name in measure_table(config):
        by_step = {}
        for step in sorted(wanted):
            path = _step_file(run_dir / "artifacts", name, int(step), ".npz")
            if not path.is_file():
                continue
            with np.load(path, allow_pickle=False) as data:
                if {"is_member", "score"} <= set(data.files):
                    by_step[int(step)] = (data["is_member"].astype(bool), data["score"])
        if by_step:
            panels.append(plotting.RocPanel(name, by_step))
    return panels


def _mem_name(a: RunAnalysis) -> str:
    """The memorization probe the run's tau_mem is read from (nn-ratio by default)."""
    if a.f_mem is not None:
        return a.f_mem.measure
    return (a.settings.mem_measure or "nn-ratio").partition(":")[0]


#: The per-sample score shown under each pair, by artifact field, and its label.
_SCORE_LABELS = {"ratio": "d1/d2", "similarity": "similarity", "score": "score",
                 "distance": "distance", "d1": "d1"}


def _panel_score(art: Any, at: np.ndarray) -> tuple[str, np.ndarray]:
    """The per-sample score (at the sample indices ``at``) of a neighbour artifact: ``ratio``
    (nn-ratio's d1/d2), else the first of the known score fields, else the first other float
    array of matching length."""
    m = len(at)
    for key, label in _SCORE_LABELS.items():
        if key in art.files:
            return label, np.asarray(art[key][at], dtype=float)
    for key in art.files:
        value = art[key]
        if key not in ("nn_index", "memorized") and value.ndim == 1 and \
                value.dtype.kind == "f" and len(value) >= int(at.max(initial=-1)) + 1:
            return key, np.asarray(value[at], dtype=float)
    return "score", np.full(m, np.nan)


def _neighbor_artifact(run_dir: Path, mem_measure: str, step: int) -> Path | None:
    for measure in dict.fromkeys((mem_measure, "nn-ratio")):
        path = _step_file(run_dir, f"artifacts/{measure}", step, ".npz")
        if path.exists():
            with np.load(path, allow_pickle=False) as art:
                if "nn_index" in art:
                    return path
    return None


def _grid_steps(a: RunAnalysis, candidates: list[int]) -> list[int]:
    """First, recommended, first-at-mem_level and last checkpoint (among those with files),
    topped up with evenly spaced ones."""
    wanted = [candidates[0], candidates[-1]]
    if a.window is not None and a.window.recommended_step is not None:
        wanted.append(a.window.recommended_step)
    if a.tau_mem is not None and a.tau_mem.estimate.index is not None:
        wanted.append(int(a.f_mem.steps[a.tau_mem.estimate.index]))
    chosen = {s for s in wanted if s in candidates}
    spaced = np.linspace(0, len(candidates) - 1, GRID_CHECKPOINTS).round().astype(int)
    for i in spaced:
        if len(chosen) >= GRID_CHECKPOINTS:
            break
        chosen.add(candidates[int(i)])
    return sorted(chosen)[:GRID_CHECKPOINTS]


# -- writing one run -----------------------------------------------------------------------------


def write_reports(
    run_dir: Path,
    *,
    quiet: bool = False,
    out: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    train: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write ``results.csv``, ``summary.json``, ``plots/`` and ``report.html`` for one run.

    Parameters
    ----------
    run_dir : Path
        The run directory (``config.json``, ``results.sqlite``, ``samples/``, ``artifacts/``).
    quiet : bool
        Do not print the verdict.
    out : Path, optional
        Where to write (default: ``run_dir``).
    overrides : mapping, optional
        Timescale settings that replace the run's (``mem_level``, ``gen_mode``, ...).
    train : array, optional
        The training set, when the caller holds it (the evaluator); otherwise it is read from
        the ``train`` path or ``dataset`` of ``config.json`` for the nearest-neighbour grid.

    Returns
    -------
    dict
        The summary (the content of ``summary.json``).
    """
    run_dir = Path(run_dir)
    out = run_dir if out is None else Path(out)
    config = read_config(run_dir)
    rows = read_rows(run_dir)
    a = analyze_run(run_dir, config, rows, overrides=overrides)

    images: dict[str, bytes] = {}
    title = f"{config.get('series') or run_dir.name} (n = {_fmt_n(a.n_train)})"
    if a.f_mem is not None or a.quality is not None or a.gap is not None:
        images["curves.png"] = plotting.plot_curves(
            quality=a.quality, f_mem=a.f_mem, gap=a.gap, tau_gen=a.tau_gen, tau_mem=a.tau_mem,
            window=a.window, mem_level=a.settings.mem_level,
            recommended_step=None if a.window is None else a.window.recommended_step,
            title=title,
            gap_onset=None if a.gap_onset is None else a.gap_onset["step"],
        )
    headline = headline_curves(a)
    if len(headline) >= 2:  # one measure alone is already the curves plot
        images["measures.png"] = plotting.plot_measures(headline, title="every measure")
    rocs = roc_panels(run_dir, config, a)
    if rocs:
        images["roc.png"] = plotting.plot_roc(
            rocs, title="membership inference: log-log ROC at the first, recommended and last "
            "checkpoints")
    try:
        panels, value_range = neighbor_panels(a, train=train)
    except ProbekitError as exc:
        panels, value_range = [], (0.0, 1.0)
        a.notes.append(f"no nearest-neighbour plot: {exc}")
    if panels:
        modality = config.get("modality") or ("image" if panels[0].generated.ndim == 4 else
                                              "timeseries")
        if modality == "image":
            images["neighbors.png"] = plotting.plot_neighbor_grid(
                panels, value_range=value_range,
                title=f"generated (top) vs nearest training sample (bottom); "
                f"{panels[0].score_label} under each pair, red = memorized by {_mem_name(a)}",
            )
        elif panels[0].generated.ndim == 3:
            images["neighbors.png"] = plotting.plot_neighbor_overlays(
                panels, title="generated series vs nearest training series")
        else:  # feature vectors (n, d), e.g. the Gaussian-mixture runs: no picture to draw
            a.notes.append("no nearest-neighbour plot: samples are feature vectors")

    from probekit.reports_conditional import conditional_report

    if train is None and config.get("conditions"):
        try:
            train, _ = load_training_set(config)
        except ProbekitError:
            train = None
    prompts = conditional_report(a, train=train, value_range=value_range if panels else None)
    images.update(prompts.images)
    files = {"results_csv": "results.csv", "summary_json": "summary.json",
             "report_html": "report.html", "plots": [f"plots/{k}" for k in images]}
    if "per_prompt.csv" in prompts.texts:
        files["per_prompt_csv"] = "per_prompt.csv"
    from probekit.store import load_failures

    summary = build_summary(a, files=files, evaluations=read_provenance(run_dir),
                            failures=load_failures(run_dir))
    # everything is computed before the first file is written: a failure writes nothing
    page = render_run_html(a, summary, images, conditional_html=prompts.html)
    table = results_csv(rows)
    _write_outputs(out, images, {"results.csv": table, **prompts.texts, "report.html": page},
                   summary)
    if not quiet:
        print(f"probekit report: {run_dir}")
        for line in summary["verdict"]:
            print(f"  {line}")
        print(f"  wrote {out / 'report.html'}")
    return summary


def _write_outputs(out: Path, images: Mapping[str, bytes], texts: Mapping[str, str],
                   summary: Mapping[str, Any]) -> None:
    """Write plots, tables and the summary, each atomically; the page last, as it shows them."""
    for name, data in images.items():
        atomic_write_bytes(out / "plots" / name, data)
    for name, text in texts.items():
        if name != "report.html":
            atomic_write_text(out / name, text)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "report.html", texts["report.html"])


def _fmt_n(n: float | None) -> str:
    return "?" if n is None else f"{n:g}"


# -- several runs --------------------------------------------------------------------------------


def write_scaling_report(
    run_dirs: Sequence[Path],
    out: Path,
    *,
    gen_mode: str = "absolute",
    gen_threshold: float | None = None,
    quiet: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Scaling of tau_mem and tau_gen with the training-set size across runs (DESIGN §5).

    tau_gen is compared with one absolute quality threshold by default: ``gen_threshold`` if
    given, else the 90%-improvement level of the largest-n run over the step range common to all
    runs (:func:`~probekit.timescales.common_quality_threshold`). ``gen_mode="relative"`` uses
    each run's own improvement instead (longer runs then get a later tau_gen for no real reason).

    Writes ``runs.csv`` (one row per run), ``summary.json``, ``plots/collapse.png``,
    ``plots/scaling.png`` and ``report.html`` into ``out``; returns the summary.
    """
    ov = {**(overrides or {}), "gen_mode": "relative", "gen_threshold": None}
    analyses = [
        analyze_run(Path(d), read_config(Path(d)), read_rows(Path(d)), overrides=ov)
        for d in run_dirs
    ]
    sc = analyze_scaling(analyses, gen_mode=gen_mode, gen_threshold=gen_threshold)
    base = sc.settings
    per_run = sc.per_run
    sizes, tau_mem, tau_gen, fit = list(sc.sizes), list(sc.tau_mem), list(sc.tau_gen), sc.fit
    images = {}
    mem_runs = [(a.n_train, a.f_mem) for a in sc.runs if a.f_mem is not None]
    if mem_runs:
        images["collapse.png"] = plotting.plot_collapse(mem_runs, mem_level=base.mem_level)
    images["scaling.png"] = plotting.plot_scaling(sizes, tau_mem, tau_gen, fit)
    summary = _jsonable({
        "kind": "probekit-scaling-summary",
        "schema_version": SCHEMA_VERSION,
        "runs": per_run,
        "fit": fit.to_dict(),
        "thresholds": sc.thresholds(),
        "versions": {"report": versions()},
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": {"runs_csv": "runs.csv", "summary_json": "summary.json",
                  "report_html": "report.html", "plots": [f"plots/{k}" for k in images]},
        "notes": list(sc.notes),
    })
    page = render_scaling_html(summary, images)
    _write_outputs(Path(out), images, {"runs.csv": runs_csv(per_run), "report.html": page},
                   summary)
    if not quiet:
        print(f"probekit report: scaling across {len(sc.runs)} runs")
        for line in scaling_lines(summary):
            print(f"  {line}")
        print(f"  wrote {out / 'report.html'}")
    return summary


def runs_csv(per_run: Sequence[Mapping[str, Any]]) -> str:
    """One row per run: n, tau_mem and tau_gen with CIs and status."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    cols = ["run_dir", "n"]
    for name in ("tau_mem", "tau_gen"):
        cols += [name, f"{name}_ci_low", f"{name}_ci_high", f"{name}_status"]
    writer.writerow(cols)
    for r in per_run:
        row = [r["run_dir"], r["n"]]
        for name in ("tau_mem", "tau_gen"):
            t = r[name] or {}
            row += [_csv_number(t.get("value")), _csv_number(t.get("ci_low")),
                    _csv_number(t.get("ci_high")), t.get("status", "")]
        writer.writerow(row)
    return buf.getvalue()


def scaling_lines(summary: Mapping[str, Any]) -> list[str]:
    """The scaling answers, one per line."""
    fit = summary["fit"]
    lines = []
    if fit["slope"] is not None:
        ci = "" if fit["slope_ci"] is None else \
            f" (95% CI {fit['slope_ci'][0]:.2f} to {fit['slope_ci'][1]:.2f})"
        lines.append(f"log tau_mem = {fit['intercept']:.2f} + {fit['slope']:.2f}{ci} log n, "
                     f"R² = {fit['r2']:.3f}")
    else:
        lines.append("log-log fit: not possible (fewer than 2 runs with a crossed tau_mem)")
    if fit["linear_coef"] is not None:
        ci = "" if fit["linear_coef_ci"] is None else \
            f" (95% CI {fit['linear_coef_ci'][0]:.3g} to {fit['linear_coef_ci'][1]:.3g})"
        lines.append(f"tau_mem = c·n with c = {fit['linear_coef']:.3g}{ci}")
    if fit["tau_gen_cv"] is not None:
        lines.append(f"tau_gen: mean {fit['tau_gen_mean']:.3g}, coefficient of variation "
                     f"across n {fit['tau_gen_cv']:.2f}")
    return lines


__all__ = [
    "CSV_COLUMNS",
    "read_config",
    "read_rows",
    "results_csv",
    "write_reports",
    "write_scaling_report",
]
