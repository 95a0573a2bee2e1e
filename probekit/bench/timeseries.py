"""``probekit bench timeseries``: time-series generators side by side, on quality *and* on
memorization (DESIGN §1, job 3).

For each dataset the protocol is the same for every generator:

1. Load the dataset's ``train`` and ``holdout`` splits; cut the holdout in two halves with a
   seeded permutation: the **reference** half is what the quality metrics compare with, the
   **fresh** half is a row of its own (``holdout``): real series the generators never saw, the
   floor every quality metric can reach and the false-positive rate of every probe.
2. Prepare the quality metrics on the reference half and the memorization probes on ``train``,
   once.
3. Each generator: ``fit(train)``, ``sample(n, seed)`` with ``n`` = the size of the reference
   half, then every metric and probe on the samples. Warnings are recorded with the row; a
   generator that fails with a probekit error gets a ``failed`` row and the benchmark goes on.

Outputs (written only once everything is computed, each file atomically): ``leaderboard.md`` and
``leaderboard.csv`` (one row per generator × dataset, quality and memorization columns side by
side), ``results.csv`` (tidy: every field of every result, with CIs), ``provenance.json``
(settings, seeds, versions, dataset normalizations, every result's provenance, timings, what
each generator fitted) and ``plots/`` (quality against memorization, example series). Training
runs of generators that keep them (``ddpm-best``/``ddpm-last``) go to ``runs/``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import math
import platform
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from probekit.errors import ProbekitError, ValidationError
from probekit.types import Result, _jsonable

#: Quality metrics of the leaderboard (lower is better for all of them).
QUALITY_METRICS = ("ts-fd", "discriminative-score", "predictive-score", "marginal-distance",
                   "acf-distance")
#: Memorization probes of the leaderboard.
MEMORIZATION_PROBES = ("nn-ratio", "subsequence-match")
#: Generators of the default run: three that copy, two that model, the reference DDPM twice.
DEFAULT_GENERATORS = ("copycat", "splice", "block-bootstrap", "var", "gaussian-noise",
                      "ddpm-best", "ddpm-last")
#: Datasets of the default run (bundled, synthetic: series of 64 steps, so that the default run
#: fits in 20 minutes on a small CPU; add ``trace`` or ``ucr-*`` sets with ``--datasets``).
DEFAULT_DATASETS = ("sines", "ar-process", "regime-switching")
#: Name of the row of fresh real series (the held-out half the metrics do not use).
REAL_ROW = "holdout"
#: Extra fields shown next to a measure's headline in the leaderboard.
EXTRA_FIELDS = {"subsequence-match": ("longest_copy",)}
#: Short Markdown headers (the CSV keeps the registry names).
SHORT = {"ts-fd": "ts-fd", "discriminative-score": "discr.", "predictive-score": "pred. MAE",
         "marginal-distance": "marginal", "acf-distance": "ACF", "nn-ratio": "nn-ratio f_mem",
         "subsequence-match": "subseq. copied series",
         "subsequence-match:longest_copy": "longest copy"}

#: Dataset settings of the default run: synthetic sets get 64 training series (few enough that
#: the reference DDPM starts copying within its 3000 steps, so ``ddpm-best`` and ``ddpm-last``
#: differ) and 400 held-out ones (200 reference + 200 fresh); archives are split half and half,
#: as in docs/timeseries.md.
#: ``sines`` gets the noise of the ``ts-sines`` preset (0.3; see
#: :data:`probekit.reference.timeseries.SINES_NOISE`): at its default 0.1, fresh series near a
#: training series in (frequency, phase) count as memorized by ``nn-ratio``.
SYNTHETIC = ("sines", "ar-process", "regime-switching")
SINES_NOISE = 0.3
DEFAULT_DATASET_SETTINGS = {
    **{name: {"n_train": 64, "n_holdout": 400} for name in SYNTHETIC},
    "sines": {"n_train": 64, "n_holdout": 400, "noise": SINES_NOISE},
    "trace": {"holdout_fraction": 0.5},
}
#: The smoke variant (``--quick``): one small dataset, a tiny DDPM, fewer bootstrap resamples.
QUICK_DATASETS = ("sines",)
QUICK_DATASET_SETTINGS = {"sines": {"n_train": 48, "n_holdout": 64, "n_timesteps": 32,
                                    "noise": SINES_NOISE}}
QUICK_DDPM = {"width": 8, "steps": 300, "checkpoint_every": 100, "eval_samples": 32,
              "ddim_steps": 10}
QUICK_GENERATOR_SETTINGS = {"ddpm-best": QUICK_DDPM, "ddpm-last": QUICK_DDPM}
QUICK_BOOTSTRAP = 200


@dataclass(frozen=True)
class BenchPlan:
    """Everything that defines one benchmark run (recorded in ``provenance.json``)."""

    datasets: tuple[str, ...]  # registered time-series datasets
    generators: tuple[str, ...]  # registered generators
    metrics: tuple[str, ...] = QUALITY_METRICS  # quality metrics, prepared on the reference half
    probes: tuple[str, ...] = MEMORIZATION_PROBES  # memorization probes, prepared on train
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # by name
    n_samples: int | None = None  # series per generator (None: the reference half's size)
    seed: int = 0  # holdout halves, generator sampling, measure seeds
    quick: bool = False  # the smoke variant

    def to_dict(self) -> dict[str, Any]:
        return _jsonable({"datasets": self.datasets, "generators": self.generators,
                          "metrics": self.metrics, "probes": self.probes,
                          "settings": {k: dict(v) for k, v in self.settings.items()},
                          "n_samples": self.n_samples, "seed": self.seed, "quick": self.quick})


@dataclass
class Row:
    """One generator (or the fresh real series) on one dataset."""

    dataset: str
    generator: str
    status: str = "ok"  # "ok", "reference" (the holdout row) or "failed: <message>"
    results: dict[str, Result] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # fit, sample, measures
    warnings: list[str] = field(default_factory=list)
    fit_info: dict[str, Any] = field(default_factory=dict)
    examples: np.ndarray | None = None  # a few samples, for the plot


def _split_names(value: str | Sequence[str] | None, default: Sequence[str]) -> tuple[str, ...]:
    if value is None:
        return tuple(default)
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    names = [n for n in names if n]
    if not names:
        raise ValidationError("bench timeseries: a name list must not be empty.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValidationError(f"bench timeseries: each name may appear once; {repeated} repeat.")
    return tuple(names)


def make_plan(
    *,
    datasets: str | Sequence[str] | None = None,
    generators: str | Sequence[str] | None = None,
    metrics: str | Sequence[str] | None = None,
    probes: str | Sequence[str] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    quick: bool = False,
) -> BenchPlan:
    """Resolve names and defaults into a :class:`BenchPlan`; every name is checked against its
    registry (an unknown one lists the known ones) and every setting is addressed to a chosen
    dataset, generator or measure, so nothing runs with a typo."""
    from probekit.registry import get_dataset, get_generator, get_metric, get_probe

    plan = BenchPlan(
        datasets=_split_names(datasets, QUICK_DATASETS if quick else DEFAULT_DATASETS),
        generators=_split_names(generators, DEFAULT_GENERATORS),
        metrics=_split_names(metrics, QUALITY_METRICS),
        probes=_split_names(probes, MEMORIZATION_PROBES),
        n_samples=n_samples, seed=seed, quick=quick,
    )
    if n_samples is not None and n_samples < 2:
        raise ValidationError(f"bench timeseries: n_samples must be >= 2; got {n_samples}.")
    kinds = {}
    for names, lookup, kind in ((plan.datasets, get_dataset, "dataset"),
                                (plan.generators, get_generator, "generator"),
                                (plan.metrics, get_metric, "metric"),
                                (plan.probes, get_probe, "probe")):
        for name in names:
            cls = lookup(name)
            if cls.modality not in ("timeseries", "any"):
                raise ValidationError(
                    f"bench timeseries: {kind} {name!r} is for {cls.modality} data; choose "
                    "time-series ones (`probekit list`)."
                )
            if name in kinds:
                raise ValidationError(
                    f"bench timeseries: the name {name!r} is both a {kinds[name]} and a {kind}; "
                    "its settings would be ambiguous."
                )
            kinds[name] = kind
    unknown = sorted(set(settings or {}) - set(kinds))
    if unknown:
        raise ValidationError(
            f"bench timeseries: settings were given for {unknown}, which are not among the "
            f"chosen datasets, generators and measures ({', '.join(kinds)})."
        )
    merged: dict[str, dict[str, Any]] = {}
    for name, kind in kinds.items():
        base: dict[str, Any] = {}
        if kind == "dataset":
            base.update((QUICK_DATASET_SETTINGS if quick else DEFAULT_DATASET_SETTINGS)
                        .get(name, {}))
        elif kind == "generator" and quick:
            base.update(QUICK_GENERATOR_SETTINGS.get(name, {}))
        base.update((settings or {}).get(name, {}))
        merged[name] = base
    return BenchPlan(plan.datasets, plan.generators, plan.metrics, plan.probes, merged,
                     n_samples, seed, quick)


# -- running ---------------------------------------------------------------------------------


def _measure_settings(cls: type, given: Mapping[str, Any], *, seed: int, quick: bool,
                      n_timesteps: int) -> dict[str, Any]:
    """Settings of one measure: the seed, fewer resamples in quick mode, and for
    ``subsequence-match`` windows of ``min(32, n_timesteps // 4)`` at stride 2 (shorter than
    the pieces of ``splice``, a third of the series, so that its copies can be caught)."""
    fields = cls.Settings.model_fields
    out: dict[str, Any] = {}
    if "seed" in fields:
        out["seed"] = seed
    if quick and "n_bootstrap" in fields:
        out["n_bootstrap"] = QUICK_BOOTSTRAP
    if cls.name == "subsequence-match":
        out.update(window=max(2, min(32, n_timesteps // 4)), stride=2)
    out.update(given)
    return out


@contextlib.contextmanager
def _captured(row: Row, what: str) -> Iterator[None]:
    """Record the warnings raised inside the block with the row (instead of printing them)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            row.warnings.extend(f"{what}: {w.category.__name__}: {w.message}" for w in caught)


def _evaluate_all(row: Row, measures: Mapping[str, Any], samples: np.ndarray) -> None:
    started = time.perf_counter()
    for name, measure in measures.items():
        with _captured(row, name):
            row.results[name] = measure.evaluate(samples)
        row.warnings.extend(f"{name}: {w}" for w in row.results[name].warnings)
    row.seconds["measures"] = time.perf_counter() - started


def _log(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def holdout_halves(holdout: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(reference, fresh)`` halves of a holdout set: a seeded permutation cut in two
    (each half keeps the original order)."""
    order = np.random.default_rng([seed, 7]).permutation(len(holdout))
    half = len(holdout) // 2
    return holdout[np.sort(order[:half])], holdout[np.sort(order[half:])]


def run_dataset(plan: BenchPlan, dataset: str, runs_dir: Path, *, quiet: bool = True
                ) -> tuple[list[Row], dict[str, Any]]:
    """Every generator of ``plan`` on ``dataset``: the rows and the dataset's facts."""
    from probekit.registry import get_dataset, get_generator, get_metric, get_probe

    ds = get_dataset(dataset)(plan.settings.get(dataset, {}))
    splits = ds.load()
    train, holdout = splits.train, splits.holdout
    if train.ndim != 3:
        raise ValidationError(
            f"bench timeseries: dataset {dataset!r} must give series (n_samples, n_timesteps, "
            f"n_channels); got train of shape {train.shape}."
        )
    if len(holdout) < 4:
        raise ValidationError(
            f"bench timeseries: dataset {dataset!r} must hold out at least 4 series (two "
            f"halves of 2); got {len(holdout)}. Raise its holdout size."
        )
    reference, fresh = holdout_halves(holdout, plan.seed)
    n = plan.n_samples or len(reference)
    t = train.shape[1]
    measures: dict[str, Any] = {}
    for name in plan.metrics:
        cls = get_metric(name)
        measures[name] = cls(_measure_settings(cls, plan.settings.get(name, {}), seed=plan.seed,
                                               quick=plan.quick, n_timesteps=t))
        measures[name].prepare(reference)
    for name in plan.probes:
        cls = get_probe(name)
        measures[name] = cls(_measure_settings(cls, plan.settings.get(name, {}), seed=plan.seed,
                                               quick=plan.quick, n_timesteps=t))
        measures[name].prepare(train, holdout=reference)
    facts = {
        "settings": ds.settings.model_dump(mode="json"),
        "normalization": splits.normalization,
        "value_range": list(splits.value_range),
        "series_shape": list(train.shape[1:]),
        "n_train": len(train), "n_reference": len(reference), "n_fresh": len(fresh),
        "n_samples": n,
        "measure_settings": {k: m.settings.model_dump(mode="json") for k, m in measures.items()},
    }

    rows = [Row(dataset, REAL_ROW, status="reference", examples=fresh[:3])]
    _evaluate_all(rows[0], measures, fresh)
    for name in plan.generators:
        row = Row(dataset, name)
        rows.append(row)
        cls = get_generator(name)
        given = dict(plan.settings.get(name, {}))
        if "work_dir" in cls.Settings.model_fields and "work_dir" not in given:
            given["work_dir"] = str(runs_dir)
        _log(quiet, f"bench timeseries: {dataset}: {name} …")
        try:
            generator = cls(given)
            started = time.perf_counter()
            with _captured(row, "fit"):
                generator.fit(train)
            row.seconds["fit"] = time.perf_counter() - started
            started = time.perf_counter()
            with _captured(row, "sample"):
                samples = generator.sample(n, plan.seed)
            row.seconds["sample"] = time.perf_counter() - started
            if samples.shape != (n, *train.shape[1:]):
                raise ValidationError(
                    f"generator {name!r}: sample(n={n}, ...) must return series of shape "
                    f"{(n, *train.shape[1:])}; got {samples.shape}."
                )
        except ProbekitError as exc:
            row.status = f"failed: {exc}"
            _log(quiet, f"bench timeseries: {dataset}: {name} failed: {exc}")
            continue
        describe_fit = getattr(generator, "describe_fit", None)
        row.fit_info = {"settings": generator.settings.model_dump(mode="json"),
                        "plugin": cls.plugin, "version": cls.plugin_version,
                        **({"fitted": describe_fit()} if callable(describe_fit) else {})}
        row.examples = np.asarray(samples[:3])
        _evaluate_all(row, measures, samples)
    return rows, facts


def run_benchmark(out: str | Path, plan: BenchPlan, *, quiet: bool = False,
                  argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run ``plan``, write the leaderboard, tables, plots and provenance into ``out``; return
    the provenance dictionary (also ``out/provenance.json``)."""
    out = Path(out)
    started = time.perf_counter()
    rows: list[Row] = []
    facts: dict[str, Any] = {}
    for dataset in plan.datasets:
        t0 = time.perf_counter()
        dataset_rows, facts[dataset] = run_dataset(plan, dataset, out / "runs", quiet=quiet)
        facts[dataset]["seconds"] = time.perf_counter() - t0
        rows.extend(dataset_rows)
        _log(quiet, f"bench timeseries: {dataset} done in {facts[dataset]['seconds']:.0f} s")
    wall = time.perf_counter() - started
    columns = leaderboard_columns(plan)
    provenance = _jsonable({
        "kind": "probekit-bench-timeseries",
        "command": list(argv) if argv is not None else None,
        "plan": plan.to_dict(),
        "protocol": ("holdout cut in two seeded halves: metrics prepared on the reference half, "
                     "probes on train; each generator fit on train and sampled n = reference "
                     f"size with seed {plan.seed}; the '{REAL_ROW}' row is the fresh half"),
        "versions": _versions(),
        "datasets": facts,
        "rows": [_row_record(r) for r in rows],
        "wall_seconds": wall,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": {"leaderboard_md": "leaderboard.md", "leaderboard_csv": "leaderboard.csv",
                  "results_csv": "results.csv", "plots": ["plots/quality_vs_memorization.png",
                                                          "plots/samples.png"]},
    })
    from probekit.io import atomic_write_bytes, atomic_write_json, atomic_write_text

    images = {"quality_vs_memorization.png": plot_quality_vs_memorization(rows, plan),
              "samples.png": plot_samples(rows, plan)}
    texts = {"leaderboard.csv": leaderboard_csv(rows, columns),
             "leaderboard.md": leaderboard_markdown(rows, columns, plan, wall),
             "results.csv": results_csv(rows)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    for name, data in images.items():
        atomic_write_bytes(out / "plots" / name, data)
    for name, text in texts.items():
        atomic_write_text(out / name, text)
    atomic_write_json(out / "provenance.json", provenance)
    _log(quiet, f"bench timeseries: {len(rows)} rows in {wall:.0f} s; wrote "
                f"{out / 'leaderboard.md'}")
    return provenance


def _versions() -> dict[str, str]:
    from importlib import metadata

    from probekit import __version__

    out = {"probekit": __version__, "python": platform.python_version(),
           "numpy": np.__version__}
    for dist in ("torch", "scikit-learn", "tslearn", "faiss-cpu", "sktime"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _row_record(row: Row) -> dict[str, Any]:
    return {"dataset": row.dataset, "generator": row.generator, "status": row.status,
            "seconds": row.seconds, "warnings": row.warnings, "fit": row.fit_info,
            "results": {k: r.to_dict() for k, r in row.results.items()}}


# -- tables ----------------------------------------------------------------------------------


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


def _value(row: Row, col: Column) -> tuple[float, float, float]:
    result = row.results.get(col.measure)
    if result is None or col.field not in result.values:
        return math.nan, math.nan, math.nan
    low, high = result.ci.get(col.field, (math.nan, math.nan))
    return float(result.values[col.field]), float(low), float(high)


def _num(v: float) -> str:
    if not math.isfinite(v):
        return ""
    return f"{v:.6g}"


def leaderboard_csv(rows: Sequence[Row], columns: Sequence[Column]) -> str:
    """One row per generator × dataset: every column's value and CI, timings, status."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["dataset", "generator", "status"]
    for c in columns:
        header += [c.name, f"{c.name}:ci_low", f"{c.name}:ci_high"]
    header += ["fit_seconds", "sample_seconds", "measure_seconds", "n_warnings"]
    w.writerow(header)
    for r in rows:
        line = [r.dataset, r.generator, r.status.split(":")[0]]
        for c in columns:
            line += [_num(v) for v in _value(r, c)]
        line += [_num(r.seconds.get(k, math.nan)) for k in ("fit", "sample", "measures")]
        line.append(len(r.warnings))
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


def _warning_lines(rows: Sequence[Row]) -> list[str]:
    """Each distinct warning once: ``all rows:`` when every row of the dataset has it."""
    seen: dict[str, list[str]] = {}
    for r in rows:
        for w in dict.fromkeys(r.warnings):
            seen.setdefault(w, []).append(r.generator)
    lines = []
    for w, who in seen.items():
        label = "all rows" if len(who) == len(rows) else ", ".join(who)
        lines.append(f"- {label}: {w}")
    return lines


def leaderboard_markdown(rows: Sequence[Row], columns: Sequence[Column], plan: BenchPlan,
                         wall: float) -> str:
    """One table per dataset, quality columns then memorization columns."""
    lines = ["# Time-series generator benchmark", ""]
    quality = ", ".join(c.name for c in columns if c.kind == "quality" and c.headline)
    memo = ", ".join(c.name for c in columns if c.kind == "memorization" and c.headline)
    lines += [
        f"Quality ({quality}; lower is better) against memorization ({memo}; the fraction of "
        "generated series that copy a training series, whole or in part). The "
        f"`{REAL_ROW}` row is fresh real series: the floor of each metric and the probes' "
        f"false-positive rate. Seed {plan.seed}{', quick variant' if plan.quick else ''}; "
        f"{wall:.0f} s in all. Settings, versions and every result's provenance: "
        "`provenance.json`.", ""]
    for dataset in plan.datasets:
        lines += [f"## {dataset}", ""]
        head = ["generator", *(SHORT.get(c.name, c.name) for c in columns), "fit s"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for r in rows:
            if r.dataset != dataset:
                continue
            if r.status.startswith("failed"):
                lines.append(f"| {r.generator} | {r.status} |" + " |" * (len(head) - 2))
                continue
            cells = [r.generator]
            cells += [_cell(_value(r, c)[0]) for c in columns]
            cells.append(_seconds(r.seconds.get("fit")))
            lines.append("| " + " | ".join(cells) + " |")
        ours = [r for r in rows if r.dataset == dataset]
        real = [r.results["predictive-score"].values.get("mae_real") for r in ours
                if "predictive-score" in r.results]
        if real:
            lines += ["", f"pred. MAE of the same predictor trained on real series: "
                          f"{_cell(float(real[0]))}."]
        notes = _warning_lines(ours)
        if notes:
            lines += ["", "Warnings:", *notes]
        lines.append("")
    return "\n".join(lines)


# -- plots -----------------------------------------------------------------------------------


def _first(names: Sequence[str], preferred: str) -> str | None:
    return preferred if preferred in names else (names[0] if names else None)


def plot_quality_vs_memorization(rows: Sequence[Row], plan: BenchPlan) -> bytes:
    """One panel per dataset: each generator at (memorization headline, quality headline)."""
    from matplotlib.figure import Figure

    from probekit._plotting import to_png

    x_name = _first(plan.probes, "subsequence-match")
    y_name = _first(plan.metrics, "ts-fd")
    k = len(plan.datasets)
    fig = Figure(figsize=(4.2 * k + 0.4, 3.8), layout="constrained")
    axes = fig.subplots(1, k, squeeze=False)[0]
    colors = {g: f"C{i}" for i, g in enumerate([REAL_ROW, *plan.generators])}
    for ax, dataset in zip(axes, plan.datasets, strict=True):
        for r in rows:
            if r.dataset != dataset or x_name not in r.results or y_name not in r.results:
                continue
            x, y = r.results[x_name].value, r.results[y_name].value
            marker = "*" if r.generator == REAL_ROW else "o"
            ax.scatter([x], [max(y, 1e-12)], s=90 if marker == "*" else 45, marker=marker,
                       color=colors[r.generator], label=r.generator, zorder=3)
            ax.annotate(r.generator, (x, max(y, 1e-12)), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
        ax.set_yscale("log")
        ax.set_xlim(-0.05, 1.05)
        ax.set_xlabel(f"{x_name} (memorization →)", fontsize=8)
        ax.set_ylabel(f"{y_name} (lower is better)", fontsize=8)
        ax.set_title(dataset, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
    fig.suptitle("quality against memorization, per generator", fontsize=10)
    return to_png(fig)


def plot_samples(rows: Sequence[Row], plan: BenchPlan) -> bytes:
    """Three example series (channel 0) of each generator and of the fresh holdout."""
    from matplotlib.figure import Figure

    from probekit._plotting import to_png

    names = [REAL_ROW, *plan.generators]
    fig = Figure(figsize=(1.9 * len(names) + 0.6, 1.6 * len(plan.datasets) + 0.6),
                 layout="constrained")
    axes = fig.subplots(len(plan.datasets), len(names), squeeze=False, sharey="row")
    by_key = {(r.dataset, r.generator): r for r in rows}
    for i, dataset in enumerate(plan.datasets):
        for j, name in enumerate(names):
            ax = axes[i, j]
            r = by_key.get((dataset, name))
            if r is not None and r.examples is not None:
                for k, series in enumerate(r.examples):
                    ax.plot(series[:, 0], linewidth=0.9, color=f"C{k}")
            else:
                ax.text(0.5, 0.5, "failed", ha="center", va="center", transform=ax.transAxes)
            if i == 0:
                ax.set_title(name, fontsize=8)
            if j == 0:
                ax.set_ylabel(dataset, fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle("three series from each generator (channel 0)", fontsize=10)
    return to_png(fig)


__all__ = [
    "DEFAULT_DATASETS",
    "DEFAULT_GENERATORS",
    "MEMORIZATION_PROBES",
    "QUALITY_METRICS",
    "REAL_ROW",
    "BenchPlan",
    "Column",
    "Row",
    "holdout_halves",
    "leaderboard_columns",
    "leaderboard_csv",
    "leaderboard_markdown",
    "make_plan",
    "plot_quality_vs_memorization",
    "plot_samples",
    "results_csv",
    "run_benchmark",
    "run_dataset",
]
