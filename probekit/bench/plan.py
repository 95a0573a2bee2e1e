"""What one ``probekit bench timeseries`` run does: datasets, generators, measures and their
settings, resolved and checked before anything runs (a typo is an error, never a silent
default).

Names on the command line:

* ``--datasets sines,co2=recording`` — a registered dataset, or ``LABEL=KIND`` for a labelled
  instance of one (two user datasets in one run: ``a=series-file,b=series-file``). Settings
  are addressed by the label (``--set co2.path=co2.csv``). File datasets without a label are
  shown by their ``name`` setting or their file's stem.
* ``--generators copycat,file:mine=samples.npy,par=deepecho`` — a registered generator,
  ``LABEL=KIND``, or ``file:LABEL=PATH``: generated series from a file (the ``samples-file``
  generator; samples made elsewhere need no plugin).
* ``--set subsequence-match.train=FILE`` — the probe's reference series from FILE (e.g. the
  raw recordings the training windows were cut from) instead of the training split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from probekit.errors import ValidationError
from probekit.types import _jsonable

#: Quality metrics of the leaderboard (lower is better for all of them).
QUALITY_METRICS = ("ts-fd", "ts-mmd", "discriminative-score", "predictive-score",
                   "marginal-distance", "acf-distance")
#: Memorization probes of the leaderboard.
MEMORIZATION_PROBES = ("nn-ratio", "subsequence-match")
#: Generators of the default run: three that copy, two that model, the reference DDPM twice.
DEFAULT_GENERATORS = ("copycat", "splice", "block-bootstrap", "var", "gaussian-noise",
                      "ddpm-best", "ddpm-last")
#: Datasets of the default run (bundled, synthetic: series of 64 steps, so that the default run
#: fits in 20 minutes on a small CPU; add ``trace``, ``ucr-*`` or ``recording`` sets with
#: ``--datasets``).
DEFAULT_DATASETS = ("sines", "ar-process", "regime-switching")
#: Name of the row of fresh real series (the held-out half the metrics do not use).
REAL_ROW = "holdout"
#: Name of the row of real *training* series scored by the quality metrics: beside
#: ``holdout`` it shows how much of each quality number is drift between the two periods.
TRAIN_ROW = "train (real)"
#: Registry name of the generator that reads generated series from a file.
FILE_GENERATOR = "samples-file"
#: Prefix of a file generator on the command line: ``file:LABEL=PATH``.
FILE_PREFIX = "file:"
#: Settings key that gives a probe its reference series from a file.
REFERENCE_KEY = "train"

#: Dataset settings of the default run: synthetic sets get 64 training series (few enough that
#: the reference DDPM starts copying within its 3000 steps, so ``ddpm-best`` and ``ddpm-last``
#: differ) and 400 held-out ones (200 reference + 200 fresh); archives are split half and half,
#: as in docs/timeseries.md. ``sines`` gets the noise of the ``ts-sines`` preset (0.3; see
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
QUICK_GENERATOR_SETTINGS = {"ddpm-best": QUICK_DDPM, "ddpm-last": QUICK_DDPM,
                            "deepecho": {"epochs": 8}}
QUICK_BOOTSTRAP = 200


@dataclass(frozen=True)
class BenchPlan:
    """Everything that defines one benchmark run (recorded in ``provenance.json``).

    Datasets and generators are listed by *key*: their registry name, or the label given as
    ``LABEL=KIND``; ``kinds`` maps a key to its registry name and ``labels`` a dataset key to
    the name shown in the dataset column.
    """

    datasets: tuple[str, ...]  # dataset keys
    generators: tuple[str, ...]  # generator keys
    metrics: tuple[str, ...] = QUALITY_METRICS  # quality metrics, prepared on the reference half
    probes: tuple[str, ...] = MEMORIZATION_PROBES  # memorization probes, prepared on train
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # by key
    n_samples: int | None = None  # series per generator (None: the reference half's size)
    seed: int = 0  # holdout halves, generator sampling, measure seeds
    quick: bool = False  # the smoke variant
    kinds: Mapping[str, str] = field(default_factory=dict)  # dataset/generator key -> registry
    labels: Mapping[str, str] = field(default_factory=dict)  # dataset key -> shown name
    reference_files: Mapping[str, str] = field(default_factory=dict)  # probe -> series file

    def kind(self, key: str) -> str:
        """Registry name of a dataset or generator key."""
        return self.kinds.get(key, key)

    def label(self, key: str) -> str:
        """Name of a dataset in the leaderboard."""
        return self.labels.get(key, key)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable({"datasets": self.datasets, "generators": self.generators,
                          "metrics": self.metrics, "probes": self.probes,
                          "settings": {k: dict(v) for k, v in self.settings.items()},
                          "kinds": dict(self.kinds), "labels": dict(self.labels),
                          "reference_files": dict(self.reference_files),
                          "n_samples": self.n_samples, "seed": self.seed, "quick": self.quick})


def fingerprint(*parts: Any) -> str:
    """Short SHA-256 of JSON-able parts (keys of persisted rows)."""
    text = json.dumps(_jsonable(list(parts)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _split(value: str | Sequence[str] | None, default: Sequence[str]) -> list[str]:
    if value is None:
        return list(default)
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    names = [n for n in names if n]
    if not names:
        raise ValidationError("bench timeseries: a name list must not be empty.")
    return names


def _unique(keys: Sequence[str], what: str) -> tuple[str, ...]:
    repeated = sorted({k for k in keys if list(keys).count(k) > 1})
    if repeated:
        raise ValidationError(
            f"bench timeseries: each {what} may appear once; {repeated} repeat. Give repeated "
            "kinds their own labels: LABEL=KIND."
        )
    return tuple(keys)


def parse_entries(value: str | Sequence[str] | None, default: Sequence[str], *, what: str,
                  files: bool = False) -> tuple[tuple[str, ...], dict[str, str],
                                                dict[str, dict[str, Any]]]:
    """``(keys, kinds, settings)`` of a name list: ``NAME``, ``LABEL=KIND`` or (generators,
    ``files=True``) ``file:LABEL=PATH``."""
    keys: list[str] = []
    kinds: dict[str, str] = {}
    given: dict[str, dict[str, Any]] = {}
    for item in _split(value, default):
        if files and item.startswith(FILE_PREFIX):
            label, eq, path = item[len(FILE_PREFIX):].partition("=")
            if not eq or not label.strip() or not path.strip():
                raise ValidationError(
                    f"bench timeseries: a file generator must be file:LABEL=PATH; got {item!r}. "
                    "Example: --generators file:mymodel=samples.npy"
                )
            label = label.strip()
            kinds[label] = FILE_GENERATOR
            given[label] = {"path": path.strip()}
            keys.append(label)
            continue
        label, eq, kind = item.partition("=")
        label, kind = label.strip(), kind.strip()
        if eq and (not label or not kind):
            raise ValidationError(
                f"bench timeseries: a labelled {what} must be LABEL=KIND; got {item!r}."
            )
        kinds[label] = kind if eq else label
        keys.append(label)
    return _unique(keys, what), kinds, given


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
    """Resolve names and defaults into a :class:`BenchPlan`.

    Every name is checked against its registry (an unknown one lists the known ones), every
    setting must address a chosen dataset, generator or measure, and dataset and generator
    settings are validated against their settings models, so nothing runs with a typo.
    """
    from probekit.base import build_settings
    from probekit.registry import get_dataset, get_generator, get_metric, get_probe

    if n_samples is not None and n_samples < 2:
        raise ValidationError(f"bench timeseries: n_samples must be >= 2; got {n_samples}.")
    ds_keys, ds_kinds, _ = parse_entries(
        datasets, QUICK_DATASETS if quick else DEFAULT_DATASETS, what="dataset")
    gen_keys, gen_kinds, gen_given = parse_entries(
        generators, DEFAULT_GENERATORS, what="generator", files=True)
    metric_names = _unique(_split(metrics, QUALITY_METRICS), "metric")
    probe_names = _unique(_split(probes, MEMORIZATION_PROBES), "probe")
    roles: dict[str, tuple[str, type]] = {}
    for keys, kinds, lookup, what in ((ds_keys, ds_kinds, get_dataset, "dataset"),
                                      (gen_keys, gen_kinds, get_generator, "generator"),
                                      (metric_names, {}, get_metric, "metric"),
                                      (probe_names, {}, get_probe, "probe")):
        for key in keys:
            cls = lookup(kinds.get(key, key))
            if cls.modality not in ("timeseries", "any"):
                raise ValidationError(
                    f"bench timeseries: {what} {key!r} is for {cls.modality} data; choose "
                    "time-series ones (`probekit list`)."
                )
            if key in roles:
                raise ValidationError(
                    f"bench timeseries: the name {key!r} is both a {roles[key][0]} and a {what};"
                    " its settings would be ambiguous. Label one of them: LABEL=KIND."
                )
            roles[key] = (what, cls)
    settings = {k: dict(v) for k, v in (settings or {}).items()}
    unknown = sorted(set(settings) - set(roles))
    if unknown:
        raise ValidationError(
            f"bench timeseries: settings were given for {unknown}, which are not among the "
            f"chosen datasets, generators and measures ({', '.join(roles)})."
        )
    reference_files = {}
    for name in probe_names:
        path = settings.get(name, {}).pop(REFERENCE_KEY, None)
        if path is not None:
            reference_files[name] = str(path)
    if reference_files and len(ds_keys) > 1:
        raise ValidationError(
            f"bench timeseries: {', '.join(f'{p}.{REFERENCE_KEY}' for p in reference_files)} "
            f"gives one reference file, but {len(ds_keys)} datasets were chosen; run them one at "
            "a time, or use the recording dataset (it keeps each training stretch itself)."
        )
    merged: dict[str, dict[str, Any]] = {}
    labels: dict[str, str] = {}
    for key, (what, cls) in roles.items():
        kind = ds_kinds.get(key, gen_kinds.get(key, key))
        base: dict[str, Any] = {}
        if what == "dataset":
            base.update((QUICK_DATASET_SETTINGS if quick else DEFAULT_DATASET_SETTINGS)
                        .get(kind, {}))
        elif what == "generator" and quick:
            base.update(QUICK_GENERATOR_SETTINGS.get(kind, {}))
        base.update(gen_given.get(key, {}))
        base.update(settings.get(key, {}))
        merged[key] = base
        if what in ("dataset", "generator"):
            instance = cls(base)  # validates the settings now, before anything runs
            if what == "dataset":
                labelled = ds_kinds[key] != key
                labels[key] = key if labelled else getattr(instance, "label", None) or key
        else:
            build_settings(cls.Settings, key, {k: v for k, v in base.items()
                                               if k != REFERENCE_KEY})
    shown = list(labels.values())
    clash = sorted({v for v in shown if shown.count(v) > 1})
    if clash:
        raise ValidationError(
            f"bench timeseries: two datasets would both be shown as {clash}; give each a label "
            "(LABEL=KIND) or a name setting."
        )
    kinds = {**ds_kinds, **gen_kinds}
    return BenchPlan(ds_keys, gen_keys, metric_names, probe_names, merged, n_samples, seed,
                     quick, kinds, labels, reference_files)


__all__ = [
    "DEFAULT_DATASETS",
    "DEFAULT_GENERATORS",
    "FILE_GENERATOR",
    "MEMORIZATION_PROBES",
    "QUALITY_METRICS",
    "REAL_ROW",
    "TRAIN_ROW",
    "BenchPlan",
    "fingerprint",
    "make_plan",
    "parse_entries",
]
