"""Reports of a run directory: ``results.csv``, ``summary.json``, ``plots/`` and ``report.html``.

:func:`write_reports` reads one run (the store's rows, ``config.json``, ``samples/`` and
``artifacts/``), estimates tau_gen, tau_mem, the window and the recommended checkpoint with
:mod:`probekit.timescales`, and writes the four outputs. :func:`write_scaling_report` does the
same across runs that differ in the training-set size ``n``: scaling fit and collapse plot.
Every file is written atomically; the HTML page embeds its images, so it can be mailed alone.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from probekit import _plotting as plotting
from probekit._plotting import Curve, NeighborPanel
from probekit.base import build_settings
from probekit.errors import ProbekitError, ValidationError
from probekit.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from probekit.timescales import (
    INTERPOLATION,
    PERSISTENCE,
    QualityThreshold,
    TauEstimate,
    TimescaleSettings,
    Window,
    common_quality_threshold,
    early_stopping_window,
    estimate_onset,
    estimate_tau_gen,
    estimate_tau_mem,
    fit_scaling,
)
from probekit.types import _jsonable

#: Columns of ``results.csv`` (DESIGN §7).
CSV_COLUMNS = ("step", "measure", "field", "value", "ci_low", "ci_high")
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


# -- analysis of one run -------------------------------------------------------------------------


def curves_from_rows(
    rows: Sequence[Mapping[str, Any]], measures: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[tuple[str, str], Curve]:
    """One :class:`Curve` per (measure, field), sorted by step, checkpoints with NaN dropped."""
    grouped: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}
    for r in rows:
        value = _float(r["value"])
        if not math.isfinite(value):
            continue
        grouped.setdefault((str(r["measure"]), str(r["field"])), []).append(
            (int(r["step"]), value, _float(r.get("ci_low")), _float(r.get("ci_high")))
        )
    out = {}
    for (measure, fld), items in sorted(grouped.items()):
        items.sort()
        arr = np.asarray(items, dtype=np.float64)
        steps = arr[:, 0].astype(np.int64)
        if len(np.unique(steps)) != len(steps):
            raise ValidationError(
                f"reports: measure {measure!r} field {fld!r} has several rows for one step; the "
                "run store must hold one row per (step, measure, field)."
            )
        hib = (measures or {}).get(measure, {}).get("higher_is_better")
        out[(measure, fld)] = Curve(measure, fld, steps, arr[:, 1], arr[:, 2], arr[:, 3],
                                    None if hib is None else bool(hib))
    return out


def _float(v: Any) -> float:
    return math.nan if v is None or v == "" else float(v)


@dataclass
class RunAnalysis:
    """Everything a report shows about one run."""

    run_dir: Path
    config: dict[str, Any]
    settings: TimescaleSettings
    curves: dict[tuple[str, str], Curve]
    f_mem: Curve | None
    quality: Curve | None
    gap: Curve | None
    tau_mem: TauEstimate | None
    tau_gen: TauEstimate | None
    window: Window | None
    gap_onset: dict[str, Any] | None
    quality_source: str
    steps: list[int]
    notes: list[str] = field(default_factory=list)

    @property
    def n_train(self) -> float | None:
        return run_size(self.config)


def measure_table(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``config["measures"]`` keyed by name."""
    return {str(m["name"]): dict(m) for m in config.get("measures") or []}


def run_size(config: Mapping[str, Any]) -> float | None:
    """Training-set size ``n`` of a run (``n_train``, else ``dataset_settings.n_train``)."""
    for value in (config.get("n_train"), (config.get("dataset_settings") or {}).get("n_train")):
        if value is not None:
            return float(value)
    return None


def timescale_settings(
    config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> TimescaleSettings:
    """The run's ``timescales`` settings with any overrides (e.g. from ``probekit report``)."""
    values = dict(config.get("timescales") or {})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_settings(TimescaleSettings, "timescales", values)


def analyze_run(
    run_dir: Path,
    config: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    *,
    overrides: Mapping[str, Any] | None = None,
) -> RunAnalysis:
    """Curves, tau_mem, tau_gen, window, recommended checkpoint and loss-gap onset of a run."""
    config = dict(config)
    settings = timescale_settings(config, overrides)
    measures = measure_table(config)
    curves = curves_from_rows(rows, measures)
    if not curves:
        raise ValidationError(
            f"reports: run {str(run_dir)!r} has no results yet. Evaluate some checkpoints first "
            "(`probekit evaluate ...`)."
        )
    notes: list[str] = []
    steps = sorted({int(s) for c in curves.values() for s in c.steps})

    f_mem = _headline_curve(curves, measures, settings.mem_measure, default_field="f_mem")
    tau_mem = None
    if f_mem is None:
        notes.append(
            f"no {settings.mem_measure!r} results: tau_mem, the window and the recommended "
            "checkpoint are not estimated."
        )
    else:
        tau_mem = estimate_tau_mem(f_mem.steps, f_mem.value, ci_low=f_mem.ci_low,
                                   ci_high=f_mem.ci_high, mem_level=settings.mem_level)

    quality, quality_source = _quality_curve(curves, measures, settings)
    tau_gen = None
    if quality is not None:
        if quality.higher_is_better is None:
            raise ValidationError(
                f"reports: config.json does not say whether a higher {quality.measure!r} is "
                "better (measures[].higher_is_better); it is needed for tau_gen."
            )
        if settings.gen_mode == "absolute" and settings.gen_threshold is None:
            raise ValidationError(
                "reports: gen_mode='absolute' needs gen_threshold (the quality level in the "
                "metric's units) for a single run; got none. Pass --gen-threshold VALUE, or "
                "--gen-mode relative, or compare runs with `probekit report RUN RUN ...`."
            )
        tau_gen = estimate_tau_gen(
            quality.steps, quality.value, higher_is_better=quality.higher_is_better,
            gen_tol=settings.gen_tol, mode=settings.gen_mode,
            threshold=settings.gen_threshold if settings.gen_mode == "absolute" else None,
            ci_low=quality.ci_low, ci_high=quality.ci_high,
        )
    elif quality_source:
        notes.append(quality_source)

    window = None
    if tau_mem is not None:
        window = _window(f_mem, quality, tau_gen, tau_mem, settings, notes)

    gap = _headline_curve(curves, measures, LOSS_GAP_MEASURE, default_field="gap")
    gap_onset = None
    if gap is not None:
        onset = estimate_onset(gap.steps, gap.value, ci_low=gap.ci_low if gap.has_ci else None)
        gap_onset = {
            "measure": LOSS_GAP_MEASURE,
            "field": gap.field,
            "step": onset.step,
            "status": onset.status,
            "confirmed": onset.confirmed,
            "rule": "first step whose gap CI lower bound (the gap itself without a CI) is > 0 "
            "and stays so at the next checkpoint; " + INTERPOLATION,
            "used_ci": gap.has_ci,
        }
    return RunAnalysis(
        run_dir=Path(run_dir), config=config, settings=settings, curves=curves, f_mem=f_mem,
        quality=quality, gap=gap, tau_mem=tau_mem, tau_gen=tau_gen, window=window,
        gap_onset=gap_onset, quality_source=quality_source, steps=steps, notes=notes,
    )


def _headline_curve(curves, measures, name: str, *, default_field: str) -> Curve | None:
    fld = measures.get(name, {}).get("headline") or default_field
    return curves.get((name, fld))


def _quality_curve(curves, measures, settings: TimescaleSettings) -> tuple[Curve | None, str]:
    """The quality curve for tau_gen and a sentence saying how it was chosen."""
    name = settings.quality_measure
    source = "timescales.quality_measure"
    if name is None:
        metrics = [m for m, info in measures.items() if info.get("kind") == "metric"]
        if not metrics:
            return None, "no quality metric in this run: tau_gen is not estimated."
        name = metrics[0]
        source = "the run's first metric (timescales.quality_measure is null)"
    curve = _headline_curve(curves, measures, name, default_field=name)
    if curve is None:
        return None, f"no results for the quality metric {name!r}: tau_gen is not estimated."
    return curve, source


def _window(f_mem: Curve, quality: Curve | None, tau_gen, tau_mem, settings, notes) -> Window:
    """The window on the checkpoints that have f_mem (and quality, when there is one)."""
    upper = f_mem.ci_high
    if not f_mem.has_ci:
        upper = f_mem.value
        notes.append("f_mem has no CI: the recommended checkpoint uses the point estimate.")
    upper = np.where(np.isfinite(upper), upper, f_mem.value)
    if quality is None:
        return early_stopping_window(f_mem.steps, upper, tau_gen=None, tau_mem=tau_mem,
                                     mem_level=settings.mem_level)
    common, i_mem, i_q = np.intersect1d(f_mem.steps, quality.steps, return_indices=True)
    if len(common) < len(f_mem.steps) or len(common) < len(quality.steps):
        notes.append(
            "the recommended checkpoint is chosen among the checkpoints that have both f_mem "
            f"and {quality.measure} ({len(common)} of them)."
        )
    if len(common) == 0:
        return early_stopping_window(f_mem.steps, upper, tau_gen=tau_gen, tau_mem=tau_mem,
                                     mem_level=settings.mem_level)
    return early_stopping_window(
        common, upper[i_mem], tau_gen=tau_gen, tau_mem=tau_mem,
        quality=quality.value[i_q], higher_is_better=quality.higher_is_better,
        mem_level=settings.mem_level,
    )


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


def verdict_lines(a: RunAnalysis) -> list[str]:
    """The answers, one per line: tau_gen, tau_mem, window, recommended checkpoint."""
    lines = []
    lines.append(a.tau_gen.describe() if a.tau_gen else "tau_gen: not estimated (no quality)")
    lines.append(a.tau_mem.describe() if a.tau_mem else "tau_mem: not estimated (no f_mem)")
    if a.gap_onset is not None:
        g = a.gap_onset
        step = "never" if g["status"] == "never" else f"{g['step']:.0f}"
        lines.append(f"loss-gap onset = {step}")
    if a.window is not None:
        lines.append(f"window = {a.window.describe()}")
        rec = a.window.recommended_step
        lines.append(
            "recommended checkpoint = " + ("none" if rec is None else f"step {rec}")
        )
    return lines


def thresholds(a: RunAnalysis) -> dict[str, Any]:
    """Every threshold and mode used (printed in every report)."""
    s = a.settings
    out: dict[str, Any] = {
        "mem_measure": s.mem_measure,
        "mem_field": None if a.f_mem is None else a.f_mem.field,
        "mem_level": s.mem_level,
        "quality_measure": None if a.quality is None else a.quality.measure,
        "quality_field": None if a.quality is None else a.quality.field,
        "quality_measure_source": a.quality_source,
        "higher_is_better": None if a.quality is None else a.quality.higher_is_better,
        "gen_mode": s.gen_mode,
        "gen_tol": s.gen_tol,
        "gen_threshold": None if a.tau_gen is None else a.tau_gen.level,
        "gen_threshold_source": (
            f"{1 - s.gen_tol:.0%} of the improvement from the first checkpoint to the best one "
            "of this run" if s.gen_mode == "relative" else "given (gen_threshold)"
        ),
        "crossing_rule": PERSISTENCE,
        "interpolation": INTERPOLATION,
        "ci_level": 0.95,
        "recommended_checkpoint_rule": None if a.window is None else a.window.basis,
    }
    return out


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
                  evaluations: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``summary.json``."""
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
        "verdict": verdict_lines(a),
        "tau_mem": None if a.tau_mem is None else a.tau_mem.to_dict(),
        "tau_gen": None if a.tau_gen is None else a.tau_gen.to_dict(),
        "window": None if w is None else w.to_dict(),
        "recommended_checkpoint": rec,
        "loss_gap_onset": a.gap_onset,
        "thresholds": thresholds(a),
        "headlines": {
            f"{c.measure}:{c.field}": {"higher_is_better": c.higher_is_better,
                                       "best_step": _best_step(c)}
            for c in _headline_curves(a)
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
    for c in _headline_curves(a):
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


def _headline_curves(a: RunAnalysis) -> list[Curve]:
    """Each measure's headline curve (config order), else every curve."""
    measures = measure_table(a.config)
    out = []
    for name, info in measures.items():
        c = a.curves.get((name, str(info.get("headline"))))
        if c is not None:
            out.append(c)
    known = {c.measure for c in out}
    out += [c for (m, _), c in a.curves.items() if m not in known and m not in measures]
    return out


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
    x = _float(v)
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
        train, value_range = load_array(config["train"]), None
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
        artifact = _neighbor_artifact(run_dir, a.settings.mem_measure, step)
        if samples.exists() and artifact is not None:
            candidates.append(step)
    if not candidates:
        return [], (0.0, 1.0)
    panels = []
    f_values = {} if a.f_mem is None else dict(zip(a.f_mem.steps.tolist(),
                                                   a.f_mem.value.tolist(), strict=True))
    for step in _grid_steps(a, candidates):
        samples = np.load(_step_file(run_dir, "samples", step, ".npy"), allow_pickle=False)
        with np.load(_neighbor_artifact(run_dir, a.settings.mem_measure, step),
                     allow_pickle=False) as art:
            m = min(k, len(samples), len(art["nn_index"]))
            nn = np.asarray(art["nn_index"][:m], dtype=np.int64)
            ratio = np.asarray(art["ratio"][:m], dtype=float) if "ratio" in art else \
                np.full(m, np.nan)
            memorized = np.asarray(art["memorized"][:m], dtype=bool) if "memorized" in art \
                else np.zeros(m, dtype=bool)
        if (nn < 0).any() or (nn >= len(train)).any():
            raise ValidationError(
                f"reports: artifacts of step {step} point to training index {int(nn.max())} but "
                f"the training set in config.json has {len(train)} samples. Is it the same set?"
            )
        panels.append(NeighborPanel(step, samples[:m], train[nn], ratio, memorized,
                                    f_values.get(step)))
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
    headline = _headline_curves(a)
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
                title="generated (top) vs nearest training sample (bottom); d1/d2 under each "
                "pair, red = memorized (d1/d2 < k)",
            )
        elif panels[0].generated.ndim == 3:
            images["neighbors.png"] = plotting.plot_neighbor_overlays(
                panels, title="generated series vs nearest training series")
        else:  # feature vectors (n, d), e.g. the Gaussian-mixture runs: no picture to draw
            a.notes.append("no nearest-neighbour plot: samples are feature vectors")

    files = {"results_csv": "results.csv", "summary_json": "summary.json",
             "report_html": "report.html", "plots": [f"plots/{k}" for k in images]}
    summary = build_summary(a, files=files, evaluations=read_provenance(run_dir))
    # everything is computed before the first file is written: a failure writes nothing
    page = render_run_html(a, summary, images)
    table = results_csv(rows)
    _write_outputs(out, images, {"results.csv": table, "report.html": page}, summary)
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
    if gen_mode not in ("absolute", "relative"):
        raise ValidationError(
            f"write_scaling_report: gen_mode must be 'absolute' or 'relative'; got {gen_mode!r}."
        )
    if len(run_dirs) < 2:
        raise ValidationError(
            f"write_scaling_report: run_dirs must hold at least 2 runs; got {len(run_dirs)}."
        )
    ov = {**(overrides or {}), "gen_mode": "relative", "gen_threshold": None}
    analyses = [
        analyze_run(Path(d), read_config(Path(d)), read_rows(Path(d)), overrides=ov)
        for d in run_dirs
    ]
    sizes = []
    for a in analyses:
        if a.n_train is None:
            raise ValidationError(
                f"write_scaling_report: config.json of {str(a.run_dir)!r} has no n_train; every "
                "run must say its training-set size."
            )
        sizes.append(a.n_train)
    if len(set(sizes)) < 2:
        raise ValidationError(
            f"write_scaling_report: the runs must differ in n; got n = {sorted(set(sizes))}. "
            "Give runs trained on training sets of different sizes."
        )
    notes: list[str] = []
    base = analyses[0].settings
    for a in analyses[1:]:
        for key in ("mem_level", "mem_measure", "gen_tol"):
            if getattr(a.settings, key) != getattr(base, key):
                raise ValidationError(
                    f"write_scaling_report: runs use different {key} ({getattr(base, key)!r} in "
                    f"{str(analyses[0].run_dir)!r}, {getattr(a.settings, key)!r} in "
                    f"{str(a.run_dir)!r}); override it so all runs share one."
                )
    quality_names = {a.quality.measure for a in analyses if a.quality is not None}
    if len(quality_names) > 1:
        raise ValidationError(
            f"write_scaling_report: runs use different quality metrics {sorted(quality_names)}; "
            "set timescales.quality_measure (--quality-measure) to one of them."
        )
    threshold: QualityThreshold | None = None
    with_quality = [a for a in analyses if a.quality is not None]
    hib = with_quality[0].quality.higher_is_better if with_quality else None
    if gen_mode == "absolute" and with_quality:
        if gen_threshold is not None:
            threshold = QualityThreshold(float(gen_threshold), base.gen_tol, bool(hib), "given")
        else:
            threshold = common_quality_threshold(
                [(a.n_train, a.quality.steps, a.quality.value) for a in with_quality],
                higher_is_better=bool(hib), gen_tol=base.gen_tol,
            )
    tau_gen: list[TauEstimate | None] = []
    for a in analyses:
        if a.quality is None or gen_mode == "relative":
            tau_gen.append(a.tau_gen)
            continue
        tau_gen.append(estimate_tau_gen(
            a.quality.steps, a.quality.value, higher_is_better=bool(hib), gen_tol=base.gen_tol,
            mode="absolute", threshold=threshold.value, ci_low=a.quality.ci_low,
            ci_high=a.quality.ci_high,
        ))
    tau_mem = [a.tau_mem for a in analyses]
    fit = fit_scaling(sizes, tau_mem, tau_gen=tau_gen if with_quality else None)
    per_run = []
    for a, tg in zip(analyses, tau_gen, strict=True):
        per_run.append({
            "run_dir": str(a.run_dir),
            "n": a.n_train,
            "steps": [a.steps[0], a.steps[-1]],
            "tau_mem": None if a.tau_mem is None else a.tau_mem.to_dict(),
            "tau_gen": None if tg is None else tg.to_dict(),
            "tau_gen_relative": None if a.tau_gen is None else a.tau_gen.to_dict(),
            "tau_mem_over_n": (
                a.tau_mem.value / a.n_train
                if a.tau_mem is not None and a.tau_mem.status == "crossed" else None
            ),
        })
    images = {}
    mem_runs = [(a.n_train, a.f_mem) for a in analyses if a.f_mem is not None]
    if mem_runs:
        images["collapse.png"] = plotting.plot_collapse(mem_runs, mem_level=base.mem_level)
    images["scaling.png"] = plotting.plot_scaling(sizes, tau_mem, tau_gen, fit)
    summary = _jsonable({
        "kind": "probekit-scaling-summary",
        "schema_version": SCHEMA_VERSION,
        "runs": per_run,
        "fit": fit.to_dict(),
        "thresholds": {
            "mem_measure": base.mem_measure,
            "mem_level": base.mem_level,
            "quality_measure": next(iter(quality_names), None),
            "higher_is_better": hib,
            "gen_mode": gen_mode,
            "gen_tol": base.gen_tol,
            "gen_threshold": None if threshold is None else threshold.value,
            "gen_threshold_source": (
                "each run's own improvement (relative)" if gen_mode == "relative"
                else None if threshold is None else threshold.source
            ),
            "crossing_rule": PERSISTENCE,
            "interpolation": INTERPOLATION,
        },
        "versions": {"report": versions()},
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": {"runs_csv": "runs.csv", "summary_json": "summary.json",
                  "report_html": "report.html", "plots": [f"plots/{k}" for k in images]},
        "notes": notes + list(fit.notes),
    })
    page = render_scaling_html(summary, images)
    _write_outputs(Path(out), images, {"runs.csv": runs_csv(per_run), "report.html": page},
                   summary)
    if not quiet:
        print(f"probekit report: scaling across {len(analyses)} runs")
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


def scaling_cards(summary: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(css class, title, value, detail) of the scaling report's answer cards."""
    fit = summary["fit"]
    cards = []
    if fit["slope"] is not None:
        ci = "no CI (needs >= 3 runs)" if fit["slope_ci"] is None else \
            f"95% CI {fit['slope_ci'][0]:.2f} to {fit['slope_ci'][1]:.2f}"
        cards.append(("mem", "log-log slope b (tau_mem ∝ n^b)", f"{fit['slope']:.2f}",
                      f"{ci}; R² = {fit['r2']:.3f}"))
    else:
        cards.append(("mem", "log-log slope b", "no fit",
                      "fewer than 2 runs with a crossed tau_mem"))
    if fit["linear_coef"] is not None:
        ci = "" if fit["linear_coef_ci"] is None else \
            f"95% CI {fit['linear_coef_ci'][0]:.3g} to {fit['linear_coef_ci'][1]:.3g}"
        cards.append(("mem", "c in tau_mem = c·n", f"{fit['linear_coef']:.3g}", ci))
    if fit["tau_gen_mean"] is not None:
        cv = "–" if fit["tau_gen_cv"] is None else f"{fit['tau_gen_cv']:.2f}"
        cards.append(("gen", "tau_gen spread across n (CV)", cv,
                      f"mean tau_gen {plotting.step_text(fit['tau_gen_mean'])}"))
    return cards


# -- HTML ----------------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
margin:0;background:#f6f7f9}
main{max-width:1080px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 10px;border-bottom:1px solid
#ddd;padding-bottom:4px}.sub{color:#666;margin:0 0 18px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:12px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;background:#fcfcfd}
.card .k{font-size:13px;color:#666}
.card .v{font-size:20px;font-weight:600;margin:2px 0}.card .d{font-size:13px;color:#555}
.card.gen{border-left:5px solid #1f77b4}.card.mem{border-left:5px solid #d62728}
.card.win{border-left:5px solid #2ca02c}.card.rec{border-left:5px solid #e6b800}
.card.gap{border-left:5px solid #9467bd}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border:1px solid #ddd;
padding:3px 8px;text-align:left;vertical-align:top}th{background:#f1f3f5}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.rec td{background:#fff6cc}tr.win td:first-child{border-left:4px solid #2ca02c}
img{max-width:100%;border:1px solid #eee}code,pre{font-size:12px;background:#f4f4f4}
pre{padding:6px;white-space:pre-wrap;word-break:break-word;margin:0}
.notes li{margin:3px 0}.muted{color:#777;font-size:13px}details{margin:8px 0}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, digits: int = 4) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def _img(images: Mapping[str, bytes], name: str, alt: str) -> str:
    if name not in images:
        return ""
    data = base64.b64encode(images[name]).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _kv_table(d: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(_plain(v))}</td></tr>" for k, v in d.items()
    )
    return f"<table>{rows}</table>"


def _plain(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, list) and all(isinstance(x, int | float) or x is None for x in v):
        return ", ".join(_num(x) for x in v) if v else "–"
    if isinstance(v, dict | list):
        return json.dumps(_jsonable(v), sort_keys=True)
    if isinstance(v, float):
        return _num(v, 6)
    return str(v)


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def _card(cls: str, key: str, value: str, detail: str) -> str:
    return (f'<div class="card {cls}"><div class="k">{_e(key)}</div><div class="v">{_e(value)}'
            f'</div><div class="d">{_e(detail)}</div></div>')


def _step(x: Any) -> str:
    return "–" if x is None else plotting.step_text(float(x))


def _tau_card(cls: str, tau: Mapping[str, Any] | None, what: str) -> str:
    if tau is None:
        return _card(cls, what, "not estimated", "")
    status, value = tau["status"], tau["value"]
    level = f"level {_num(tau['level'])}"
    if status == "never":
        return _card(cls, what, "never",
                     f"not reached by the last step ({_step(tau['last_step'])}); {level}")
    if status == "from_first":
        return _card(cls, what, f"≤ {_step(value)}",
                     f"from the first checkpoint (left-censored); {level}")
    main = _step(value) + ("" if tau["confirmed"] else " (unconfirmed)")
    detail = "no CI"
    if tau["ci_low_status"] is not None:
        low = ("≤ " if tau["ci_low_status"] == "from_first" else "") + _step(tau["ci_low"])
        high = f"> {_step(tau['last_step'])}" if tau["ci_high"] is None else \
            _step(tau["ci_high"])
        detail = f"95% CI {low} to {high}"
    return _card(cls, what, main, f"{detail}; {level}")


def _results_table(a: RunAnalysis) -> str:
    curves = _headline_curves(a)
    rec = a.window.recommended_step if a.window is not None else None
    inside = set(a.window.checkpoints) if a.window is not None else set()
    head = "".join(f"<th>{_e(c.measure)}<br><span class='muted'>{_e(c.field)}"
                   f"{' ↑' if c.higher_is_better else ' ↓' if c.higher_is_better is False else ''}"
                   "</span></th>" for c in curves)
    body = []
    for step in a.steps:
        cells = []
        for c in curves:
            hit = np.flatnonzero(c.steps == step)
            if not len(hit):
                cells.append("<td class='num'>–</td>")
                continue
            i = int(hit[0])
            ci = "" if not (math.isfinite(c.ci_low[i]) and math.isfinite(c.ci_high[i])) else \
                f" <span class='muted'>[{_num(c.ci_low[i], 3)}, {_num(c.ci_high[i], 3)}]</span>"
            cells.append(f"<td class='num'>{_num(c.value[i])}{ci}</td>")
        cls = " ".join(x for x in ("rec" if step == rec else "",
                                   "win" if step in inside else "") if x)
        body.append(f"<tr class='{cls}'><td class='num'>{step}</td>{''.join(cells)}</tr>")
    legend = ("<p class='muted'>Yellow row: recommended checkpoint. Green edge: checkpoints "
              "inside the window [tau_gen, tau_mem). ↑/↓: higher/lower is better. Brackets: 95% "
              "CI.</p>")
    return f"{legend}<table><tr><th>step</th>{head}</tr>{''.join(body)}</table>"


def _tidy_table(a: RunAnalysis) -> str:
    rows = []
    for (measure, fld), c in a.curves.items():
        for i, step in enumerate(c.steps):
            rows.append((int(step), measure, fld, c.value[i], c.ci_low[i], c.ci_high[i]))
    rows.sort()
    body = "".join(
        f"<tr><td class='num'>{s}</td><td>{_e(m)}</td><td>{_e(f)}</td><td class='num'>"
        f"{_num(v, 6)}</td><td class='num'>{_num(lo, 6)}</td><td class='num'>{_num(hi, 6)}</td>"
        "</tr>" for s, m, f, v, lo, hi in rows
    )
    return ("<details><summary>every field at every checkpoint (" + str(len(rows)) +
            " rows, as in results.csv)</summary><table><tr>" +
            "".join(f"<th>{c}</th>" for c in CSV_COLUMNS) + f"</tr>{body}</table></details>")


def _measures_table(config: Mapping[str, Any]) -> str:
    rows = []
    for m in config.get("measures") or []:
        rows.append(
            "<tr>" + "".join(f"<td>{_e(_plain(m.get(k)))}</td>" for k in
                             ("name", "kind", "headline", "higher_is_better", "plugin",
                              "version")) +
            f"<td><pre>{_e(json.dumps(m.get('settings') or {}, sort_keys=True))}</pre></td></tr>"
        )
    if not rows:
        return "<p class='muted'>config.json lists no measures.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("measure", "kind", "headline", "higher is better",
                                             "plugin", "version", "settings"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _evaluations_table(evaluations: Mapping[str, Any]) -> str:
    """What each measure actually ran with (its latest evaluation) and what it warned about."""
    if not evaluations:
        return ""
    keys = ("feature_space", "preprocessing", "feature_weights_sha256", "seed", "n_reference",
            "n_samples", "plugin", "plugin_version", "probekit_version")
    head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in ("measure", "checkpoints", *keys))
    rows = []
    for name, e in evaluations.items():
        prov = e.get("provenance") or {}
        cells = [f"<td>{_e(name)}</td>", f"<td class='num'>{e['n_checkpoints']}</td>"]
        cells += [f"<td>{_e(_plain(prov.get(k)))}</td>" for k in keys]
        rows.append("<tr>" + "".join(cells) + "</tr>")
        if e["warnings"]:
            warn = "; ".join(e["warnings"][:5]) + (" ..." if len(e["warnings"]) > 5 else "")
            rows.append(f"<tr><td></td><td colspan='{len(keys) + 1}'>warnings: {_e(warn)}</td>"
                        "</tr>")
    return ("<p class='muted'>As evaluated (the provenance of each measure's latest "
            f"checkpoint):</p><table><tr>{head}</tr>{''.join(rows)}</table>")


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}"
            f"</title><meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<style>{_CSS}</style></head><body><main>{body}</main></body></html>\n")


def render_run_html(a: RunAnalysis, summary: Mapping[str, Any],
                    images: Mapping[str, bytes]) -> str:
    """The self-contained report page of one run."""
    c = a.config
    title = f"probekit report — {c.get('series') or a.run_dir.name}"
    sub = (f"n_train = {_fmt_n(a.n_train)} · modality {c.get('modality', '?')} · "
           f"{_plural(len(a.steps), 'checkpoint')}, steps {a.steps[0]}–{a.steps[-1]} · "
           f"{c.get('n_samples', '?')} samples per checkpoint · seed {c.get('seed', '?')} · "
           f"generated {summary['generated_at']}")
    cards = [_tau_card("gen", summary["tau_gen"], "tau_gen (generates well)"),
             _tau_card("mem", summary["tau_mem"], "tau_mem (starts copying)")]
    w = summary["window"]
    if w is not None:
        if w["empty"]:
            cards.append(_card("win", "early-stopping window", "empty", w["empty_reason"]))
        else:
            cards.append(_card("win", "early-stopping window", w["text"],
                               f"{_plural(len(w['checkpoints']), 'checkpoint')} inside"))
        rec = summary["recommended_checkpoint"]
        cards.append(_card("rec", "recommended checkpoint",
                           "none" if rec is None else f"step {rec['step']}",
                           "" if rec is None else rec["basis"]))
    if summary["loss_gap_onset"] is not None:
        g = summary["loss_gap_onset"]
        cards.append(_card("gap", "loss-gap onset",
                           "never" if g["status"] == "never" else _num(g["step"]),
                           "holdout − train denoising loss > 0" +
                           (" (CI lower bound)" if g["used_ci"] else "")))
    notes = summary["notes"]
    notes_html = ("<ul class='notes'>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"
                  if notes else "<p class='muted'>none</p>")
    body = [
        f"<h1>{_e(title)}</h1><p class='sub'>{_e(sub)}</p>",
        f"<div class='cards'>{''.join(cards)}</div>",
        "<h2>Quality and memorization against training step</h2>",
        "<p class='muted'>Log step axis. Bands: 95% CIs. Dashed vertical lines: tau estimates "
        "(dotted: censored or unconfirmed), bars along the top: their 95% CIs. Green: the window "
        "[tau_gen, tau_mem). Star: recommended checkpoint.</p>",
        _img(images, "curves.png", "quality and f_mem against step"),
        "<h2>Thresholds and modes</h2>", _kv_table(summary["thresholds"]),
    ]
    if "neighbors.png" in images:
        body += ["<h2>Generated samples and their nearest training samples</h2>",
                 "<p class='muted'>The first kept samples of each shown checkpoint (the same "
                 "initial noise at every checkpoint), each above or over its nearest training "
                 "sample.</p>",
                 _img(images, "neighbors.png", "nearest-neighbour grid")]
    if "roc.png" in images:
        body += ["<h2>Membership inference</h2>",
                 "<p class='muted'>ROC curves of each attack on log-log axes, members (training "
                 "samples) against as many held-out non-members. The dotted line is 1 / "
                 "(number of non-members): below it the FPR is not resolved.</p>",
                 _img(images, "roc.png", "membership-inference ROC curves")]
    body += ["<h2>Results</h2>", _results_table(a), _tidy_table(a)]
    if "measures.png" in images:
        body += ["<h2>Every measure</h2>", _img(images, "measures.png", "every measure")]
    body += ["<h2>Notes</h2>", notes_html,
             "<h2>Provenance</h2>", "<h3>Run</h3>", _kv_table(summary["provenance"]["run"]),
             "<h3>Measures</h3>", _measures_table(c),
             _evaluations_table(summary["provenance"]["evaluations"]),
             "<h3>Versions</h3>",
             _kv_table({**{f"run: {k}": v for k, v in summary["versions"]["run"].items()},
                        **{f"report: {k}": v for k, v in summary["versions"]["report"].items()}}),
             _files_line(summary)]
    return _page(title, "\n".join(body))


def _files_line(summary: Mapping[str, Any]) -> str:
    names = ["results.csv", "summary.json", *summary["files"]["plots"]]
    return f"<p class='muted'>Files next to this page: {_e(', '.join(names))}</p>"


def render_scaling_html(summary: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    """The self-contained page of a scaling report."""
    title = "probekit scaling report"
    runs = summary["runs"]
    rows = []
    for r in runs:
        cells = [f"<td class='num'>{_num(r['n'])}</td>", f"<td>{_e(r['run_dir'])}</td>",
                 f"<td class='num'>{r['steps'][0]}–{r['steps'][1]}</td>"]
        for name in ("tau_mem", "tau_gen", "tau_gen_relative"):
            t = r[name]
            cells.append(f"<td>{_e(t['text'].split(' = ', 1)[1]) if t else '–'}</td>")
        cells.append(f"<td class='num'>{_num(r['tau_mem_over_n'])}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("n", "run", "steps", "tau_mem",
                                             "tau_gen (common threshold)"
                                             if summary["thresholds"]["gen_mode"] == "absolute"
                                             else "tau_gen", "tau_gen (own run, relative)",
                                             "tau_mem / n"))
    notes = summary["notes"]
    body = [
        f"<h1>{_e(title)}</h1><p class='sub'>{len(runs)} runs, n = "
        f"{_e(', '.join(_num(r['n']) for r in runs))} · generated {summary['generated_at']}</p>",
        "<div class='cards'>" + "".join(_card(cls, key, value, detail)
                                        for cls, key, value, detail in scaling_cards(summary))
        + "</div>",
        "<h2>Collapse of f_mem(step / n)</h2>", _img(images, "collapse.png", "collapse plot"),
        "<h2>Timescales against n</h2>", _img(images, "scaling.png", "scaling plot"),
        f"<h2>Runs</h2><table><tr>{head}</tr>{''.join(rows)}</table>",
        "<h2>Thresholds and modes</h2>", _kv_table(summary["thresholds"]),
        "<h2>Fit</h2>", _kv_table({k: v for k, v in summary["fit"].items()
                                    if k not in ("method", "notes")}),
        _kv_table(summary["fit"]["method"]),
        "<h2>Notes</h2>",
        ("<ul class='notes'>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
        if notes else "<p class='muted'>none</p>",
        "<h2>Versions</h2>", _kv_table(summary["versions"]["report"]),
    ]
    return _page(title, "\n".join(body))


__all__ = [
    "CSV_COLUMNS",
    "RunAnalysis",
    "analyze_run",
    "curves_from_rows",
    "read_config",
    "read_rows",
    "results_csv",
    "write_reports",
    "write_scaling_report",
]
