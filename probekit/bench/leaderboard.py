"""Leaderboard tables of a benchmark run, rendered from its rows (no computation here):
``leaderboard.csv`` (one row per generator x dataset, every column with its CI),
``leaderboard.md`` (one table per dataset) and ``results.csv`` (tidy: every field of every
result)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from probekit.bench.plan import REAL_ROW, TRAIN_ROW, BenchPlan
from probekit.bench.rows import Row

#: Extra fields shown next to a measure's headline in the leaderboard.
EXTRA_FIELDS = {"subsequence-match": ("longest_copy",),
                "marginal-distance": ("skewness_difference", "kurtosis_difference")}
#: Short Markdown headers (the CSV keeps the registry names).
SHORT = {"ts-fd": "ts-fd", "ts-mmd": "MMD²", "discriminative-score": "discr.",
         "predictive-score": "pred. MAE", "marginal-distance": "marginal",
         "marginal-distance:skewness_difference": "skew Δ",
         "marginal-distance:kurtosis_difference": "kurt. Δ",
         "acf-distance": "ACF", "nn-ratio": "nn-ratio f_mem",
         "subsequence-match": "subseq. copied series",
         "subsequence-match:longest_copy": "longest copy"}


@dataclass(frozen=True)
class Column:
    """A leaderboard column: one field of one measure."""

    measure: str
    field: str
    kind: str  # "quality" or "memorization"
    headline: bool

    @property
    def name(self) -> str:
        return self.measure if self.headline else f"{self.measure}:{self.field}"


def leaderboard_columns(plan: BenchPlan) -> list[Column]:
    """Quality columns first (each metric's headline, then its extra fields), memorization
    next."""
    from probekit.registry import get_metric, get_probe

    cols = []
    for names, lookup, kind in ((plan.metrics, get_metric, "quality"),
                                (plan.probes, get_probe, "memorization")):
        for name in names:
            cols.append(Column(name, lookup(name).headline, kind, True))
            cols += [Column(name, f, kind, False) for f in EXTRA_FIELDS.get(name, ())]
    return cols


def value_of(row: Row, col: Column) -> tuple[float, float, float]:
    """``(value, ci_low, ci_high)`` of a column in a row (NaN where absent)."""
    result = row.results.get(col.measure)
    if result is None or col.field not in result.values:
        return math.nan, math.nan, math.nan
    low, high = result.ci.get(col.field, (math.nan, math.nan))
    return float(result.values[col.field]), float(low), float(high)


def checkpoint_note(row: Row) -> str:
    """Which checkpoint a generator sampled, when it says (``ddpm-best``: ``step 750``, or
    ``step 3000 = last`` when the early-stopping pick is the last checkpoint)."""
    fitted = row.fit_info.get("fitted") or {}
    step = fitted.get("sampled_step")
    if step is None:
        return ""
    last = fitted.get("last_step")
    if fitted.get("checkpoint") == "best" and step == last:
        return f"step {step} = last"
    return f"step {step}"


def n_series(row: Row) -> int | None:
    """Number of series a row's measures saw (from their provenance)."""
    for result in row.results.values():
        if result.provenance.n_samples:
            return int(result.provenance.n_samples)
    return None


def _num(v: float) -> str:
    return f"{v:.6g}" if math.isfinite(v) else ""


def leaderboard_csv(rows: Sequence[Row], columns: Sequence[Column]) -> str:
    """One row per generator x dataset: every column's value and CI, timings, status."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["dataset", "generator", "status"]
    for c in columns:
        header += [c.name, f"{c.name}:ci_low", f"{c.name}:ci_high"]
    header += ["fit_seconds", "sample_seconds", "measure_seconds", "n_warnings", "checkpoint",
               "reason"]
    w.writerow(header)
    for r in rows:
        line = [r.dataset, r.generator, r.status.split(":")[0]]
        for c in columns:
            line += [_num(v) for v in value_of(r, c)]
        line += [_num(r.seconds.get(k, math.nan)) for k in ("fit", "sample", "measures")]
        reason = r.status.partition(": ")[2] if r.failed else "; ".join(
            f"{m}: {why}" for m, why in r.failures.items())
        line += [len(r.warnings), checkpoint_note(r), reason]
        w.writerow(line)
    return buf.getvalue()


def results_csv(rows: Sequence[Row]) -> str:
    """Tidy: dataset, generator, measure, field, value, ci_low, ci_high."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "generator", "measure", "field", "value", "ci_low", "ci_high"])
    for r in rows:
        for result in r.results.values():
            for item in result.rows():
                w.writerow([r.dataset, r.generator, item["measure"], item["field"],
                            _num(item["value"]), _num(item["ci_low"]), _num(item["ci_high"])])
    return buf.getvalue()


def _cell(v: float) -> str:
    if not math.isfinite(v):
        return "–"
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}" if abs(v) >= 0.01 else f"{v:.1e}"


def _seconds(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def warning_lines(rows: Sequence[Row]) -> list[str]:
    """Each distinct warning of one dataset's rows once: ``all rows:`` when every row that
    ran has it (e.g. a metric's caveat about the sample size), else the rows that have it."""
    seen: dict[str, list[str]] = {}
    ran = [r for r in rows if not r.failed]
    for r in ran:
        for w in dict.fromkeys(r.warnings):
            seen.setdefault(w, []).append(r.generator)
    lines = []
    for w, who in seen.items():
        label = "all rows" if len(who) == len(ran) > 1 else ", ".join(who)
        lines.append(f"- {label}: {w}")
    return lines


def leaderboard_markdown(rows: Sequence[Row], columns: Sequence[Column], plan: BenchPlan,
                         wall: float, facts: Mapping[str, Mapping[str, Any]] | None = None
                         ) -> str:
    """One table per dataset, quality columns then memorization columns; failed rows say
    why; each dataset's notes (normalization, measures that could not run) and warnings
    follow its table once."""
    facts = facts or {}
    lines = ["# Time-series generator benchmark", ""]
    quality = ", ".join(c.name for c in columns if c.kind == "quality" and c.headline)
    memo = ", ".join(c.name for c in columns if c.kind == "memorization" and c.headline)
    lines += [
        f"Quality ({quality}; lower is better) against memorization ({memo}; the fraction of "
        "generated series that copy a training series, whole or in part). The "
        f"`{REAL_ROW}` row is fresh real series: the floor of each metric and the probes' "
        f"false-positive rate; the `{TRAIN_ROW}` row is real training series scored by the "
        "quality metrics: the gap between the two is drift between training and held-out data "
        f"(the probes are not run on it). Seed {plan.seed}"
        f"{', quick variant' if plan.quick else ''}; {wall:.0f} s in all. Settings, versions "
        "and every result's provenance: `provenance.json`.", ""]
    for key in plan.datasets:
        dataset = plan.label(key)
        ours = [r for r in rows if r.dataset == dataset]
        if not ours:
            continue
        lines += [f"## {dataset}", ""]
        head = ["generator", *(SHORT.get(c.name, c.name) for c in columns), "fit s"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        sizes = {r.generator: n_series(r) for r in ours}
        for r in ours:
            name = r.generator
            note = checkpoint_note(r)
            if r.generator == TRAIN_ROW and sizes.get(TRAIN_ROW) != sizes.get(REAL_ROW):
                note = f"{sizes[TRAIN_ROW]} series"
            if note:
                name += f" ({note})"
            if r.failed:
                reason = r.status.replace("|", "/")
                lines.append(f"| {name} | {reason} |" + " |" * (len(head) - 2))
                continue
            cells = [name, *(_cell(value_of(r, c)[0]) for c in columns),
                     _seconds(r.seconds.get("fit"))]
            lines.append("| " + " | ".join(cells) + " |")
        real = [r.results["predictive-score"].values.get("mae_real") for r in ours
                if "predictive-score" in r.results]
        if real and real[0] is not None and math.isfinite(real[0]):
            lines += ["", f"pred. MAE of the same predictor trained on real series: "
                          f"{_cell(float(real[0]))}."]
        info = facts.get(dataset, {})
        notes = [f"- normalization: {info['normalization']}"] if info.get("normalization") else []
        if sizes.get(TRAIN_ROW) is not None and sizes.get(TRAIN_ROW) != sizes.get(REAL_ROW):
            notes.append(
                f"- `{TRAIN_ROW}` holds {sizes[TRAIN_ROW]} series (all the training set), the "
                f"other rows {sizes.get(REAL_ROW)}: metrics biased by the sample size (ts-fd, "
                "discr.) are not comparable on that row; MMD² is unbiased.")
        if info.get("probe_references"):
            notes += [f"- {m} reference: {what}" for m, what in info["probe_references"].items()]
        notes += [f"- {m} could not be prepared: {why}"
                  for m, why in info.get("measure_failures", {}).items()]
        notes += [f"- dataset: {w}" for w in info.get("warnings", [])]
        notes += [f"- {w}" for w in info.get("prepare_warnings", [])]
        for r in ours:
            notes += [f"- {r.generator}: {m} failed: {why}" for m, why in r.failures.items()]
        if notes:
            lines += ["", "Notes:", *notes]
        warned = warning_lines(ours)
        if warned:
            lines += ["", "Warnings:", *warned]
        lines.append("")
    return "\n".join(lines)


__all__ = [
    "EXTRA_FIELDS",
    "SHORT",
    "Column",
    "checkpoint_note",
    "leaderboard_columns",
    "leaderboard_csv",
    "leaderboard_markdown",
    "results_csv",
    "value_of",
    "warning_lines",
]
