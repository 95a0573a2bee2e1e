"""Running a benchmark: every dataset's rows, one at a time, each saved as soon as it finishes.

For each dataset the protocol is the same for every generator:

1. Load the dataset's ``train`` and ``holdout`` splits; cut the holdout in two halves with a
   seeded permutation: the **reference** half is what the quality metrics compare with, the
   **fresh** half is a row of its own (``holdout``): real series the generators never saw, the
   floor of every quality metric and the false-positive rate of every probe. A seeded subset
   of the training series as large as the reference half is the ``train (real)`` row, scored
   by the quality metrics only.
2. Prepare the quality metrics on the reference half and the memorization probes on the
   training split (``subsequence-match``: on the continuous training stretches when the
   dataset keeps them, or on a file given as ``--set subsequence-match.train=FILE``), once,
   and only when some row of the dataset has to be computed.
3. Each generator: ``fit(train)``, ``sample(n, seed)`` with ``n`` = the size of the reference
   half, then every metric and probe on the samples.

Anything a plugin raises (not only probekit's errors) is caught where it happens: a dataset
that cannot be loaded fails its rows, a generator that fails in ``fit`` or ``sample`` gets a
``failed`` row with the one-line reason (``Type: message``, no traceback), a measure that fails
leaves its cell empty with the reason in the row; the run goes on. Warnings are recorded with
their row. Ctrl-C keeps every finished row (see :mod:`probekit.bench.rows`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from probekit.bench.plan import QUICK_BOOTSTRAP, REAL_ROW, TRAIN_ROW, BenchPlan, fingerprint
from probekit.bench.rows import FAILED, REFERENCE, Row, RowStore
from probekit.errors import ValidationError

#: Settings that say where or how fast a generator runs, not what it computes (left out of
#: row keys, so moving the output folder or changing threads reuses finished rows).
LOCATION_SETTINGS = ("work_dir", "threads", "verbose")


def failure_reason(exc: BaseException) -> str:
    """One line: the error's type and the first line of its message (at most 300 chars)."""
    text = str(exc).strip().splitlines()
    first = text[0].strip() if text else ""
    if len(first) > 300:
        first = first[:297] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@contextlib.contextmanager
def captured(into: list[str], what: str) -> Iterator[None]:
    """Record the warnings raised inside the block in ``into`` (instead of printing them),
    each prefixed with ``what`` unless it already names it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                text = str(w.message)
                into.append(text if text.startswith(f"{what}:") else f"{what}: {text}")


def log(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def holdout_halves(holdout: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(reference, fresh)`` halves of a holdout set: a seeded permutation cut in two
    (each half keeps the original order)."""
    order = np.random.default_rng([seed, 7]).permutation(len(holdout))
    half = len(holdout) // 2
    return holdout[np.sort(order[:half])], holdout[np.sort(order[half:])]


def train_subset(train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``min(n, len(train))`` training series, a seeded subset in their original order (the
    ``train (real)`` row)."""
    if n >= len(train):
        return train
    order = np.random.default_rng([seed, 11]).permutation(len(train))
    return train[np.sort(order[:n])]


def measure_settings(cls: type, given: Mapping[str, Any], *, seed: int, quick: bool,
                     n_timesteps: int) -> dict[str, Any]:
    """Settings of one measure: the seed, fewer resamples in quick mode, series standardized
    by the reference before ROCKET features (``standardize="reference"``: user datasets keep
    their units, which ROCKET's biases do not fit), and for ``subsequence-match`` windows of
    ``min(32, n_timesteps // 4)`` at stride 2 (shorter than the pieces of ``splice``, a third
    of the series, so that its copies can be caught)."""
    fields = cls.Settings.model_fields
    out: dict[str, Any] = {}
    if "seed" in fields:
        out["seed"] = seed
    if quick and "n_bootstrap" in fields:
        out["n_bootstrap"] = QUICK_BOOTSTRAP
    if "standardize" in fields:  # feature metrics see every dataset in units of order 1
        out["standardize"] = "reference"
    if cls.name == "subsequence-match":
        out.update(window=max(2, min(32, n_timesteps // 4)), stride=2)
    out.update(given)
    return out


def _file_stamps(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Size and modification time of every setting that names an existing file, so a
    regenerated samples file is not mistaken for the old one."""
    stamps = {}
    for key, value in settings.items():
        if isinstance(value, str) and value and os.path.isfile(value):
            st = os.stat(value)
            stamps[key] = [st.st_size, st.st_mtime_ns]
    return stamps


class _Measures:
    """The dataset's measures, prepared on first use (a fully resumed dataset prepares none);
    a measure that cannot be prepared is left out with its reason."""

    def __init__(self, plan: BenchPlan, settings: Mapping[str, dict[str, Any]],
                 reference: np.ndarray, probe_refs: Mapping[str, Any], train: np.ndarray):
        self.plan, self.settings = plan, settings
        self.reference, self.probe_refs, self.train = reference, probe_refs, train
        self.ready: dict[str, Any] | None = None
        self.failures: dict[str, str] = {}
        self.warnings: list[str] = []
        self.seconds = 0.0

    def get(self) -> dict[str, Any]:
        if self.ready is not None:
            return self.ready
        from probekit.registry import get_metric, get_probe

        started = time.perf_counter()
        self.ready = {}
        for names, lookup, probe in ((self.plan.metrics, get_metric, False),
                                     (self.plan.probes, get_probe, True)):
            for name in names:
                if name in self.failures:
                    continue
                try:
                    with captured(self.warnings, name):
                        measure = lookup(name)(self.settings[name])
                        if probe:
                            measure.prepare(self.probe_refs.get(name, self.train),
                                            holdout=self.reference)
                        else:
                            measure.prepare(self.reference)
                except Exception as exc:
                    self.failures[name] = failure_reason(exc)
                    continue
                self.ready[name] = measure
        self.seconds = time.perf_counter() - started
        return self.ready


def _evaluate_all(row: Row, measures: _Measures, samples: np.ndarray, *,
                  probes: bool = True) -> None:
    """Every prepared measure on ``samples``; a failing one leaves its reason in the row."""
    started = time.perf_counter()
    ready = measures.get()
    for name in (*measures.plan.metrics, *(measures.plan.probes if probes else ())):
        if name in measures.failures:
            row.failures[name] = f"not prepared: {measures.failures[name]}"
            continue
        try:
            with captured(row.warnings, name):
                result = ready[name].evaluate(samples)
        except Exception as exc:
            row.failures[name] = failure_reason(exc)
            continue
        row.results[name] = result
        row.warnings += [w if w.startswith(f"{name}:") else f"{name}: {w}"
                         for w in result.warnings]
    row.seconds["measures"] = time.perf_counter() - started


def _probe_references(plan: BenchPlan, splits: Any, settings: Mapping[str, dict[str, Any]],
                      ) -> tuple[dict[str, Any], dict[str, str]]:
    """Reference series of the probes that do not use the training split as is, and what
    each one is (for the facts)."""
    from probekit.timeseries import load_recordings

    refs: dict[str, Any] = {}
    described: dict[str, str] = {}
    for name in plan.probes:
        if name in plan.reference_files:
            path = plan.reference_files[name]
            recs, notes = load_recordings(path, who=f"{name}.train")
            refs[name] = recs
            described[name] = (f"file {path!r}: {len(recs)} series of "
                               f"{min(map(len, recs))}-{max(map(len, recs))} steps"
                               + (f" ({'; '.join(notes)})" if notes else ""))
            continue
        stretches = getattr(splits, "train_recordings", ())
        per_window = str(splits.normalization).startswith("per-window")
        if (name == "subsequence-match" and stretches
                and (settings[name].get("distance", "znorm") == "znorm" or not per_window)):
            refs[name] = list(stretches)
            described[name] = (f"the continuous training stretch of {len(stretches)} "
                               f"recording(s), {sum(map(len, stretches))} steps")
    return refs, described


def dataset_rows(plan: BenchPlan, key: str, runs_dir: Path, *, store: RowStore | None = None,
                 facts: dict[str, Any] | None = None, quiet: bool = True) -> Iterator[Row]:
    """The rows of one dataset, in order (``holdout``, ``train (real)``, the generators): read
    back from ``store`` when finished with the same key, else computed (and saved). ``facts``
    is filled with what the dataset was."""
    from probekit.cache import array_sha256
    from probekit.registry import get_dataset, get_metric, get_probe

    facts = facts if facts is not None else {}
    label, kind = plan.label(key), plan.kind(key)
    names = [REAL_ROW, TRAIN_ROW, *plan.generators]
    facts.update(kind=kind, label=label, warnings=[])
    try:
        with captured(facts["warnings"], label):
            ds = get_dataset(kind)(plan.settings.get(key, {}))
            splits = ds.load()
            train, holdout = np.asarray(splits.train), np.asarray(splits.holdout)
            if train.ndim != 3:
                raise ValidationError(
                    f"bench timeseries: dataset {label!r} must give series (n_samples, "
                    f"n_timesteps, n_channels); got train of shape {train.shape}."
                )
            if len(holdout) < 4:
                raise ValidationError(
                    f"bench timeseries: dataset {label!r} must hold out at least 4 series (two "
                    f"halves of 2); got {len(holdout)}. Raise its holdout size."
                )
    except Exception as exc:
        reason = failure_reason(exc)
        facts["error"] = reason
        log(quiet, f"bench timeseries: {label}: the dataset failed: {reason}")
        for name in names:
            yield Row(label, name, status=f"{FAILED}: dataset {label}: {reason}",
                      kind=plan.kind(name))
        return
    reference, fresh = holdout_halves(holdout, plan.seed)
    n = plan.n_samples or len(reference)
    t = train.shape[1]
    settings: dict[str, dict[str, Any]] = {}
    for names_, lookup in ((plan.metrics, get_metric), (plan.probes, get_probe)):
        for name in names_:
            cls = lookup(name)
            settings[name] = measure_settings(cls, plan.settings.get(name, {}), seed=plan.seed,
                                              quick=plan.quick, n_timesteps=t)
    ref_failures: dict[str, str] = {}
    try:
        probe_refs, described = _probe_references(plan, splits, settings)
    except Exception as exc:  # an unreadable reference file: those probes do not run
        probe_refs, described = {}, {}
        ref_failures = {p: f"reference file: {failure_reason(exc)}" for p in plan.reference_files}
    train_real = train_subset(train, len(reference), plan.seed)
    dataset_key = fingerprint(kind, ds.settings.model_dump(mode="json"), array_sha256(train),
                              array_sha256(holdout), plan.seed)
    measures_key = fingerprint(
        {m: [type_name(m), s] for m, s in settings.items()},
        {p: [array_sha256(np.concatenate(v)), [len(r) for r in v]]
         for p, v in probe_refs.items()},
    )
    facts.update({
        "settings": ds.settings.model_dump(mode="json"),
        "normalization": splits.normalization,
        "value_range": list(splits.value_range),
        "series_shape": list(train.shape[1:]),
        "n_train": len(train), "n_reference": len(reference), "n_fresh": len(fresh),
        "n_train_real": len(train_real), "n_samples": n,
        "measure_settings": settings,
        "probe_references": described,
        "fingerprint": dataset_key,
    })
    measures = _Measures(plan, settings, reference, probe_refs, train)
    measures.failures.update(ref_failures)

    def key_of(name: str, generator_settings: Mapping[str, Any]) -> str:
        kept = {k: v for k, v in generator_settings.items() if k not in LOCATION_SETTINGS}
        return fingerprint(dataset_key, measures_key, name, plan.kind(name), kept,
                           _file_stamps(kept), n, plan.seed)

    for name in names:
        real = name in (REAL_ROW, TRAIN_ROW)
        given = dict(plan.settings.get(name, {}))
        row_key = key_of(name, {} if real else given)
        if store is not None:
            done = store.load(label, name, row_key)
            if done is not None:
                yield done
                continue
        if real:
            series = fresh if name == REAL_ROW else train_real
            row = Row(label, name, status=REFERENCE, kind="real", key=row_key,
                      examples=series[:3])
            _evaluate_all(row, measures, series, probes=name == REAL_ROW)
            if name == REAL_ROW:
                row.warnings += _leak_warnings(row, plan.probes)
        else:
            row = _generator_row(plan, label, name, given, train, n, runs_dir, measures,
                                 quiet=quiet)
            row.key = row_key
        facts["measure_failures"] = {**facts.get("measure_failures", {}), **measures.failures}
        facts["prepare_warnings"] = measures.warnings
        facts["prepare_seconds"] = measures.seconds
        if store is not None:
            store.save(row)
        yield row


#: Share of the fresh held-out series a probe may flag before the row says it looks leaked.
LEAK_LEVEL = 0.5


def _leak_warnings(row: Row, probes: tuple[str, ...]) -> list[str]:
    """Fresh held-out series are never memorized: a probe that flags most of them was given a
    reference that holds held-out data (a random split of overlapping windows, or a reference
    file covering the whole recording)."""
    out = []
    for name in probes:
        result = row.results.get(name)
        if result is not None and result.value > LEAK_LEVEL:
            out.append(
                f"{name}: flags {result.value:.0%} of the fresh held-out series as copied: "
                "does its reference hold held-out data (windows split at random, or a "
                "reference file covering the held-out period)? Split by time (the recording "
                "dataset) and give only the training stretch."
            )
    return out


def type_name(measure: str) -> str:
    """``module.Class@version`` of a registered measure (part of the row keys)."""
    from probekit.registry import get_metric, get_probe

    try:
        cls = get_metric(measure)
    except LookupError:
        cls = get_probe(measure)
    return f"{cls.__module__}.{cls.__qualname__}@{cls.plugin_version}"


def _generator_row(plan: BenchPlan, label: str, name: str, given: dict[str, Any],
                   train: np.ndarray, n: int, runs_dir: Path, measures: _Measures, *,
                   quiet: bool) -> Row:
    from probekit.registry import get_generator

    kind = plan.kind(name)
    row = Row(label, name, kind=kind)
    log(quiet, f"bench timeseries: {label}: {name} …")
    try:
        cls = get_generator(kind)
        if "work_dir" in cls.Settings.model_fields and "work_dir" not in given:
            given["work_dir"] = str(runs_dir)
        generator = cls(given)
        started = time.perf_counter()
        with captured(row.warnings, "fit"):
            generator.fit(train)
        row.seconds["fit"] = time.perf_counter() - started
        started = time.perf_counter()
        with captured(row.warnings, "sample"):
            samples = np.asarray(generator.sample(n, plan.seed))
        row.seconds["sample"] = time.perf_counter() - started
        expected = (n, *train.shape[1:])
        if samples.shape != expected:
            raise ValidationError(
                f"generator {name!r}: sample(n={n}, ...) must return series of shape "
                f"{expected}; got {samples.shape}."
            )
        if not np.issubdtype(samples.dtype, np.number) or not np.isfinite(samples).all():
            bad = int((~np.isfinite(samples)).sum()) if np.issubdtype(
                samples.dtype, np.number) else samples.size
            raise ValidationError(
                f"generator {name!r}: sample(n={n}, ...) must return finite numbers; got "
                f"{bad} NaN/inf value(s)."
            )
    except Exception as exc:
        row.status = f"{FAILED}: {failure_reason(exc)}"
        log(quiet, f"bench timeseries: {label}: {name} failed: {row.status[8:]}")
        return row
    describe_fit = getattr(generator, "describe_fit", None)
    row.fit_info = {"settings": generator.settings.model_dump(mode="json"),
                    "plugin": cls.plugin, "version": cls.plugin_version}
    if callable(describe_fit):
        try:
            row.fit_info["fitted"] = describe_fit()
        except Exception as exc:
            row.warnings.append(f"describe_fit: {failure_reason(exc)}")
    row.examples = samples[:3]
    _evaluate_all(row, measures, samples)
    return row


def run_dataset(plan: BenchPlan, dataset: str, runs_dir: Path, *, quiet: bool = True,
                store: RowStore | None = None) -> tuple[list[Row], dict[str, Any]]:
    """Every row of ``plan`` on one dataset (by key): the rows and the dataset's facts."""
    facts: dict[str, Any] = {}
    rows = list(dataset_rows(plan, dataset, Path(runs_dir), store=store, facts=facts,
                             quiet=quiet))
    return rows, facts


def versions() -> dict[str, str]:
    """Versions of probekit and the libraries the numbers depend on."""
    import platform
    from importlib import metadata

    from probekit import __version__

    out = {"probekit": __version__, "python": platform.python_version(),
           "numpy": np.__version__}
    for dist in ("torch", "scikit-learn", "tslearn", "faiss-cpu", "sktime", "deepecho"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _provenance(plan: BenchPlan, rows: list[Row], facts: dict[str, Any], wall: float,
                argv: list[str] | None, *, status: str) -> dict[str, Any]:
    import datetime as _dt

    from probekit.types import _jsonable

    return _jsonable({
        "kind": "probekit-bench-timeseries",
        "status": status,
        "command": argv,
        "plan": plan.to_dict(),
        "protocol": ("holdout cut in two seeded halves: metrics prepared on the reference half, "
                     "probes on train (subsequence-match on the training stretches when the "
                     "dataset keeps them); each generator fit on train and sampled n = "
                     f"reference size with seed {plan.seed}; the '{REAL_ROW}' row is the fresh "
                     f"half, the '{TRAIN_ROW}' row a seeded subset of train of the same size "
                     "(quality metrics only); rows are saved in rows/ as they finish and "
                     "reused by a rerun with the same settings"),
        "versions": versions(),
        "datasets": facts,
        "rows": [{**r.to_record(), "reused": r.reused} for r in rows],
        "n_rows_reused": sum(r.reused for r in rows),
        "wall_seconds": wall,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": {"leaderboard_md": "leaderboard.md", "leaderboard_csv": "leaderboard.csv",
                  "results_csv": "results.csv", "rows": "rows/",
                  "plots": ["plots/quality_vs_memorization.png", "plots/samples.png"]},
    })


def write_outputs(out: Path, plan: BenchPlan, rows: list[Row], facts: dict[str, Any],
                  wall: float, argv: list[str] | None, *, status: str, plots: bool
                  ) -> dict[str, Any]:
    """Leaderboards, tidy results and provenance (and the plots when ``plots``), each file
    written atomically; returns the provenance."""
    from probekit.bench.leaderboard import (
        leaderboard_columns,
        leaderboard_csv,
        leaderboard_markdown,
        results_csv,
    )
    from probekit.io import atomic_write_bytes, atomic_write_json, atomic_write_text

    columns = leaderboard_columns(plan)
    provenance = _provenance(plan, rows, facts, wall, argv, status=status)
    texts = {"leaderboard.csv": leaderboard_csv(rows, columns),
             "leaderboard.md": leaderboard_markdown(rows, columns, plan, wall, facts),
             "results.csv": results_csv(rows)}
    out.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        atomic_write_text(out / name, text)
    if plots and rows:
        from probekit.bench.plots import plot_quality_vs_memorization, plot_samples

        (out / "plots").mkdir(exist_ok=True)
        atomic_write_bytes(out / "plots" / "quality_vs_memorization.png",
                           plot_quality_vs_memorization(rows, plan))
        atomic_write_bytes(out / "plots" / "samples.png", plot_samples(rows, plan))
    atomic_write_json(out / "provenance.json", provenance)
    return provenance


def run_benchmark(out: str | Path, plan: BenchPlan, *, quiet: bool = False,
                  argv: list[str] | None = None) -> dict[str, Any]:
    """Run ``plan`` into ``out``: every row saved as it finishes (``rows/``), the leaderboard,
    tables and provenance rewritten after each row, the plots at the end. Rows finished by an
    earlier run with the same settings are reused, failed ones retried. On Ctrl-C the finished
    rows are written out and :class:`~probekit.errors.EvaluationInterrupted` is raised.
    Returns the provenance dictionary (also ``out/provenance.json``)."""
    from probekit.errors import EvaluationInterrupted
    from probekit.validation import check_output_dir

    check_output_dir(out, who="bench timeseries", name="out")  # before any work
    out = Path(out)
    store = RowStore(out)
    started = time.perf_counter()
    rows: list[Row] = []
    facts: dict[str, Any] = {}
    argv = list(argv) if argv is not None else None
    try:
        for key in plan.datasets:
            label = plan.label(key)
            t0 = time.perf_counter()
            facts[label] = {}
            for row in dataset_rows(plan, key, out / "runs", store=store, facts=facts[label],
                                    quiet=quiet):
                rows.append(row)
                if not row.reused:
                    write_outputs(out, plan, rows, facts, time.perf_counter() - started, argv,
                                  status="running", plots=False)
            facts[label]["seconds"] = time.perf_counter() - t0
            reused = sum(r.reused for r in rows if r.dataset == label)
            log(quiet, f"bench timeseries: {label} done in {facts[label]['seconds']:.0f} s"
                       + (f" ({reused} finished row(s) reused)" if reused else ""))
    except KeyboardInterrupt as interrupt:
        done = sum(not r.failed for r in rows)
        write_outputs(out, plan, rows, facts, time.perf_counter() - started, argv,
                      status="interrupted", plots=True)
        message = (f"interrupted. {done} finished row(s) saved in {str(out)!r}. Run the same "
                   "command again to resume (finished rows are reused).")
        log(False, f"bench timeseries: {message}")
        raise EvaluationInterrupted(message) from interrupt
    wall = time.perf_counter() - started
    provenance = write_outputs(out, plan, rows, facts, wall, argv, status="finished",
                               plots=True)
    failed = sum(r.failed for r in rows)
    log(quiet, f"bench timeseries: {len(rows)} rows in {wall:.0f} s"
               + (f", {failed} failed" if failed else "") + f"; wrote {out / 'leaderboard.md'}")
    return provenance


__all__ = [
    "captured",
    "dataset_rows",
    "failure_reason",
    "holdout_halves",
    "measure_settings",
    "run_benchmark",
    "run_dataset",
    "train_subset",
    "write_outputs",
]
