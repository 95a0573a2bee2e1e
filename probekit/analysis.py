"""Analysis of runs: curves from the store's rows, tau_gen, tau_mem, the window, and the scaling
across runs (DESIGN §5). Pure functions on rows and configurations: nothing is read from disk
or written; :mod:`probekit.reports` renders what these return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from probekit.base import build_settings
from probekit.errors import ValidationError
from probekit.timescales import (
    INTERPOLATION,
    PERSISTENCE,
    QualityThreshold,
    ScalingFit,
    TauEstimate,
    TimescaleSettings,
    Window,
    common_quality_threshold,
    early_stopping_window,
    estimate_onset,
    estimate_tau_gen,
    estimate_tau_mem,
    fit_scaling,
    split_measure_spec,
)

#: Memorization signal without sampling, reported beside tau_mem when the run has it.
LOSS_GAP_MEASURE = "loss-gap"


@dataclass(frozen=True)
class Curve:
    """One measure field across checkpoints (CI bounds NaN where there is none)."""

    measure: str
    field: str
    steps: np.ndarray
    value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    higher_is_better: bool | None = None

    @property
    def has_ci(self) -> bool:
        return bool(np.isfinite(self.ci_low).all() and np.isfinite(self.ci_high).all())

    @property
    def label(self) -> str:
        return f"{self.measure}: {self.field}"


# -- one run ------------------------------------------------------------------------------------


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
    mem_source: str = ""
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
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    # a threshold given now replaces the stored mode; a relative mode given now drops the
    # stored threshold (each implies the other's absence)
    if "gen_threshold" in given and "gen_mode" not in given:
        values.pop("gen_mode", None)
    if given.get("gen_mode") == "relative":
        values.pop("gen_threshold", None)
    values.update(given)
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

    f_mem, mem_source = _mem_curve(curves, measures, settings)
    tau_mem = None
    if f_mem is None:
        notes.append(mem_source)
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
    else:
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
        mem_source=mem_source,
    )


def _headline_curve(curves, measures, name: str, *, default_field: str) -> Curve | None:
    fld = measures.get(name, {}).get("headline") or default_field
    return curves.get((name, fld))


def _role(info: Mapping[str, Any]) -> str:
    """A measure's role; runs written before roles existed: probes memorization, metrics
    quality (what every measure of those runs was)."""
    return str(info.get("role") or ("memorization" if info.get("kind") == "probe" else "quality"))


def check_measure_spec(spec: str, measures: Mapping[str, Mapping[str, Any]], *, what: str,
                       fields: Sequence[str] | None = None) -> None:
    """Refuse a ``NAME[:FIELD]`` that names no measure of the run (or, when the run's stored
    ``fields`` of that measure are given, no field of it), listing the known ones: a measure
    asked for by name must exist, never be quietly skipped."""
    from probekit.validation import closest_name

    name, fld = split_measure_spec(spec)
    flag = "--" + what.replace("_", "-")
    if name not in measures:
        hint = closest_name(name, measures)
        did_you_mean = f" Did you mean {hint!r}?" if hint else ""
        raise ValidationError(
            f"timescales: {what} must name a measure of the run; got {name!r}, and the run's "
            f"measures are {', '.join(measures) or 'none'}.{did_you_mean} Fix {flag}."
        )
    if fld is not None and fields and fld not in fields:
        raise ValidationError(
            f"timescales: {what} {spec!r} names no field of {name}; its fields are "
            f"{', '.join(fields)}. Fix {flag} (NAME or NAME:FIELD)."
        )


def _spec_curve(curves, measures, spec: str, what: str, *, explicit: bool = False
                ) -> tuple[Curve | None, str | None]:
    """The curve ``NAME`` (its headline) or ``NAME:FIELD`` names, or why there is none
    (``explicit``: a name the user gave, so an unknown measure or field is an error)."""
    name, fld = split_measure_spec(spec)
    known = sorted(f for m, f in curves if m == name)
    if explicit:
        check_measure_spec(spec, measures, what=what, fields=known)
    elif name not in measures:
        return None, (f"timescales: {what} {name!r} is not a measure of this run (measures: "
                      f"{', '.join(measures) or 'none'}): the {what} is not read.")
    fld = fld or str(measures[name].get("headline") or name)
    curve = curves.get((name, fld))
    if curve is None:
        return None, (f"no results for {name}:{fld} (fields of {name}: "
                      f"{', '.join(known) or 'none yet'}).")
    return curve, None


def _mem_curve(curves, measures, settings: TimescaleSettings) -> tuple[Curve | None, str]:
    """The f_mem curve for tau_mem and a sentence saying how it was chosen (or why none)."""
    spec = settings.mem_measure
    if spec is not None:
        curve, problem = _spec_curve(curves, measures, spec, "mem_measure", explicit=True)
        return curve, problem or f"timescales.mem_measure = {spec!r} (given)"
    if "nn-ratio" in measures:
        curve, problem = _spec_curve(curves, measures, "nn-ratio", "mem_measure")
        if curve is None:
            return None, f"{problem} tau_mem, the window and the recommended checkpoint are " \
                "not estimated."
        return curve, "default: nn-ratio (its f_mem), which this run has"
    others = [m for m, info in measures.items() if info.get("kind") == "probe"
              and _role(info) == "memorization"]
    hint = (f" Pass --mem-measure NAME[:FIELD] to read it from another probe ({', '.join(others)})."
            if others else "")
    return None, ("no nn-ratio in this run: tau_mem, the window and the recommended checkpoint "
                  "are not estimated." + hint)


def _quality_curve(curves, measures, settings: TimescaleSettings) -> tuple[Curve | None, str]:
    """The quality curve for tau_gen and a sentence saying how it was chosen (or why none)."""
    spec = settings.quality_measure
    if spec is not None:
        curve, problem = _spec_curve(curves, measures, spec, "quality_measure", explicit=True)
        if curve is None:
            return None, f"{problem} tau_gen is not estimated."
        return curve, f"timescales.quality_measure = {spec!r} (given)"
    quality = [m for m, info in measures.items() if info.get("kind") == "metric"
               and _role(info) == "quality"]
    if not quality:
        others = [m for m, info in measures.items() if info.get("kind") == "metric"]
        hint = (" Metrics whose role is not 'quality' are never chosen by default "
                f"({', '.join(others)}); pass --quality-measure NAME to use one."
                if others else "")
        return None, "no quality metric in this run: tau_gen is not estimated." + hint
    name = quality[0]
    curve = _headline_curve(curves, measures, name, default_field=name)
    if curve is None:
        return None, f"no results for the quality metric {name!r}: tau_gen is not estimated."
    return curve, f"default: the run's first metric whose role is 'quality' ({name})"


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


# -- the answers -------------------------------------------------------------------------------


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
        "mem_measure": None if a.f_mem is None else a.f_mem.measure,
        "mem_field": None if a.f_mem is None else a.f_mem.field,
        "mem_measure_source": a.mem_source,
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




def headline_curves(a: RunAnalysis) -> list[Curve]:
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



# -- several runs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingAnalysis:
    """tau_mem and tau_gen across runs that differ in the training-set size ``n``.

    ``tau_gen[i]`` is read with one common quality threshold (``gen_mode="absolute"``) or each
    run's own improvement (``"relative"``); ``per_run`` is one plain dictionary per run (the rows
    of ``runs.csv``).
    """

    runs: tuple[RunAnalysis, ...]
    sizes: tuple[float, ...]
    tau_mem: tuple[TauEstimate | None, ...]
    tau_gen: tuple[TauEstimate | None, ...]
    fit: ScalingFit
    gen_mode: str
    threshold: QualityThreshold | None
    quality_measure: str | None
    higher_is_better: bool | None
    settings: TimescaleSettings
    notes: tuple[str, ...] = ()

    @property
    def per_run(self) -> list[dict[str, Any]]:
        out = []
        for a, tg in zip(self.runs, self.tau_gen, strict=True):
            out.append({
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
        return out

    def thresholds(self) -> dict[str, Any]:
        """Every threshold and mode used across the runs."""
        base = self.settings
        return {
            "mem_measure": base.mem_measure or "nn-ratio",
            "mem_level": base.mem_level,
            "quality_measure": self.quality_measure,
            "higher_is_better": self.higher_is_better,
            "gen_mode": self.gen_mode,
            "gen_tol": base.gen_tol,
            "gen_threshold": None if self.threshold is None else self.threshold.value,
            "gen_threshold_source": (
                "each run's own improvement (relative)" if self.gen_mode == "relative"
                else None if self.threshold is None else self.threshold.source
            ),
            "crossing_rule": PERSISTENCE,
            "interpolation": INTERPOLATION,
        }


def analyze_scaling(
    analyses: Sequence[RunAnalysis], *, gen_mode: str = "absolute",
    gen_threshold: float | None = None,
) -> ScalingAnalysis:
    """Scaling of tau_mem and tau_gen with ``n`` across analysed runs (DESIGN §5).

    The runs must have been analysed with ``gen_mode="relative"`` (their own tau_gen); with
    ``gen_mode="absolute"`` tau_gen is read again at one threshold: ``gen_threshold`` if given,
    else the 90%-improvement level of the largest-n run over the step range common to all runs
    (:func:`~probekit.timescales.common_quality_threshold`) — otherwise longer runs get a later
    tau_gen for no real reason.
    """
    if gen_mode not in ("absolute", "relative"):
        raise ValidationError(
            f"scaling: gen_mode must be 'absolute' or 'relative'; got {gen_mode!r}."
        )
    if len(analyses) < 2:
        raise ValidationError(
            f"scaling: run_dirs must hold at least 2 runs; got {len(analyses)}."
        )
    sizes = []
    for a in analyses:
        if a.n_train is None:
            raise ValidationError(
                f"scaling: config.json of {str(a.run_dir)!r} has no n_train; every run must say "
                "its training-set size."
            )
        sizes.append(a.n_train)
    if len(set(sizes)) < 2:
        raise ValidationError(
            f"scaling: the runs must differ in n; got n = {sorted(set(sizes))}. Give runs "
            "trained on training sets of different sizes."
        )
    base = analyses[0].settings
    for a in analyses[1:]:
        for key in ("mem_level", "mem_measure", "gen_tol"):
            if getattr(a.settings, key) != getattr(base, key):
                raise ValidationError(
                    f"scaling: runs use different {key} ({getattr(base, key)!r} in "
                    f"{str(analyses[0].run_dir)!r}, {getattr(a.settings, key)!r} in "
                    f"{str(a.run_dir)!r}); override it so all runs share one."
                )
    quality_names = {a.quality.measure for a in analyses if a.quality is not None}
    if len(quality_names) > 1:
        raise ValidationError(
            f"scaling: runs use different quality metrics {sorted(quality_names)}; set "
            "timescales.quality_measure (--quality-measure) to one of them."
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
        if a.quality is None or gen_mode == "relative" or threshold is None:
            tau_gen.append(a.tau_gen)
            continue
        tau_gen.append(estimate_tau_gen(
            a.quality.steps, a.quality.value, higher_is_better=bool(hib), gen_tol=base.gen_tol,
            mode="absolute", threshold=threshold.value, ci_low=a.quality.ci_low,
            ci_high=a.quality.ci_high,
        ))
    tau_mem = [a.tau_mem for a in analyses]
    fit = fit_scaling(sizes, tau_mem, tau_gen=tau_gen if with_quality else None)
    return ScalingAnalysis(
        runs=tuple(analyses), sizes=tuple(sizes), tau_mem=tuple(tau_mem),
        tau_gen=tuple(tau_gen), fit=fit, gen_mode=gen_mode, threshold=threshold,
        quality_measure=next(iter(quality_names), None), higher_is_better=hib,
        settings=base, notes=tuple(fit.notes),
    )


# -- per-prompt tables of conditional runs -----------------------------------------------------

#: Per-sample fields of conditional probes that a per-prompt table averages, and what their
#: mean over a prompt's generations is.
PER_PROMPT_FIELDS = {
    "copied": "fraction of the prompt's generations that copy a training image",
    "copied_own": "fraction that copy the training image of their own caption",
    "memorized": "fraction memorized (d1/d2 < k over the whole training set)",
    "memorized_prompt": "fraction memorized among the prompt's own training items",
    "clique_size": "largest clique of near-identical generations (extraction)",
    "score": "noise magnitude of the prompt (noise-magnitude)",
}


@dataclass(frozen=True)
class PromptRow:
    """One row of ``per_prompt.csv``: a per-sample ``field`` of ``measure`` averaged over the
    ``n`` generations of ``prompt`` at ``step``, with a percentile-bootstrap CI over them."""

    step: int
    measure: str
    field: str
    prompt: Any
    n: int
    value: float
    ci_low: float
    ci_high: float


def per_prompt_rows(artifacts: Mapping[tuple[int, str], Mapping[str, np.ndarray]], *,
                    n_bootstrap: int = 1000, seed: int = 0) -> list[PromptRow]:
    """The per-prompt rows of a run from its per-sample artifacts.

    ``artifacts`` maps ``(step, measure)`` to that result's per-sample arrays; those with a
    ``condition`` array (one caption or label per generation) give one row per prompt for
    each field of :data:`PER_PROMPT_FIELDS` they hold (NaN entries, e.g. ``copied_own`` of an
    unseen caption, are left out of ``n``). Rows are ordered by step, measure, field, then
    prompt in order of first appearance.
    """
    from probekit.conditions import decode_conditions, summarize_by_condition

    rows: list[PromptRow] = []
    for (step, measure) in sorted(artifacts):
        arrays = artifacts[(step, measure)]
        if "condition" not in arrays:
            continue
        conditions = decode_conditions(arrays["condition"])
        for name in PER_PROMPT_FIELDS:
            values = arrays.get(name)
            if values is None or np.ndim(values) != 1 or len(values) != len(conditions):
                continue
            for summary in summarize_by_condition(conditions, np.asarray(values, dtype=float),
                                                  n_bootstrap=n_bootstrap, seed=seed):
                rows.append(PromptRow(int(step), measure, name, summary.condition,
                                      summary.n_samples, summary.value, *summary.ci))
    return rows


def prompt_field(rows: Sequence[PromptRow], measure: str) -> str | None:
    """The field a per-prompt table shows for ``measure``: the first of
    :data:`PER_PROMPT_FIELDS` it has rows for (``copied`` for prompt-copy)."""
    present = {r.field for r in rows if r.measure == measure}
    return next((f for f in PER_PROMPT_FIELDS if f in present), None)


__all__ = [
    "LOSS_GAP_MEASURE",
    "PER_PROMPT_FIELDS",
    "Curve",
    "PromptRow",
    "RunAnalysis",
    "ScalingAnalysis",
    "analyze_run",
    "analyze_scaling",
    "check_measure_spec",
    "curves_from_rows",
    "headline_curves",
    "measure_table",
    "per_prompt_rows",
    "prompt_field",
    "run_size",
    "thresholds",
    "timescale_settings",
    "verdict_lines",
]
