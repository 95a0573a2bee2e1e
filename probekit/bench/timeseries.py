"""``probekit bench timeseries``: time-series generators side by side, on quality *and* on
memorization (DESIGN §1, job 3).

The application is split by concern; this module is its one door (the CLI and the tests
import from here):

* :mod:`probekit.bench.plan` — names, labels and settings resolved and checked
  (:func:`make_plan`), defaults of the run;
* :mod:`probekit.bench.runner` — the protocol, each dataset's rows computed (or reused) one at
  a time, failures and warnings kept with their row (:func:`run_benchmark`);
* :mod:`probekit.bench.rows` — a row and its persistence (``out/rows/``: a rerun skips
  finished rows);
* :mod:`probekit.bench.leaderboard` — ``leaderboard.md``/``.csv`` and ``results.csv``;
* :mod:`probekit.bench.plots` — ``plots/quality_vs_memorization.png``, ``plots/samples.png``.

Outputs: ``leaderboard.md`` and ``leaderboard.csv`` (one row per generator × dataset, quality
and memorization columns side by side), ``results.csv`` (tidy: every field of every result,
with CIs), ``provenance.json`` (settings, seeds, versions, dataset normalizations, every
result's provenance, timings, what each generator fitted), ``rows/`` (one JSON per finished
row), ``plots/`` and ``runs/`` (training runs of generators that keep them:
``ddpm-best``/``ddpm-last``).
"""

from __future__ import annotations

from probekit.bench.leaderboard import (
    EXTRA_FIELDS,
    SHORT,
    Column,
    checkpoint_note,
    leaderboard_columns,
    leaderboard_csv,
    leaderboard_markdown,
    results_csv,
)
from probekit.bench.plan import (
    DEFAULT_DATASETS,
    DEFAULT_GENERATORS,
    FILE_GENERATOR,
    MEMORIZATION_PROBES,
    QUALITY_METRICS,
    REAL_ROW,
    TRAIN_ROW,
    BenchPlan,
    make_plan,
)
from probekit.bench.plots import plot_quality_vs_memorization, plot_samples
from probekit.bench.rows import Row, RowStore
from probekit.bench.runner import (
    failure_reason,
    holdout_halves,
    run_benchmark,
    run_dataset,
    train_subset,
)

__all__ = [
    "DEFAULT_DATASETS",
    "DEFAULT_GENERATORS",
    "EXTRA_FIELDS",
    "FILE_GENERATOR",
    "MEMORIZATION_PROBES",
    "QUALITY_METRICS",
    "REAL_ROW",
    "SHORT",
    "TRAIN_ROW",
    "BenchPlan",
    "Column",
    "Row",
    "RowStore",
    "checkpoint_note",
    "failure_reason",
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
    "train_subset",
]
