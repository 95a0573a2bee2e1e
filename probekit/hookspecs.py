"""Every hook probekit calls, documented like pytest's ``hookspec.py``.

A plugin is any module or object with functions marked ``@probekit.hookimpl`` whose names match
the specifications below. Installed plugins are found through the ``probekit`` entry-point
group (the built-ins use the same group); a plugin can also be registered at run time with
:func:`probekit.register_plugin`.

Hooks are grouped by phase:

* **Registration** (called once, when the registry is first used): ``register_*`` hooks return
  lists of classes. Each class carries metadata as class attributes: ``name`` (kebab-case, unique
  within its kind), ``modality`` (``"image"``, ``"timeseries"`` or ``"any"``), and for probes and
  metrics ``headline``, ``higher_is_better``, ``requires``, ``role`` and ``headline_range``. A
  class with abstract methods left undefined is refused. The registry stamps each class with its
  plugin and version. Returning ``None`` is the same as returning an empty list.

  Plugins are asked in a fixed order: the built-ins (the ``probekit`` distribution) first, then
  third parties sorted by (distribution, entry-point name). A name already registered keeps its
  first owner — so the built-ins always keep theirs — and the later class is refused with a
  warning naming both plugins. A function named like a hook but misspelt (a ``@hookimpl``
  without a specification here) makes its plugin fail to load; one without ``@hookimpl`` is
  ignored by pluggy and warned about.
* **Evaluation** (called by the checkpoint-series evaluator): observation hooks whose return
  values are ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from probekit.base import Adapter, Dataset, FeatureExtractor, Generator, Metric, Probe
    from probekit.types import Result

PROJECT = "probekit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- registration ---------------------------------------------------------------------------


@hookspec
def register_probes() -> list[type[Probe]] | None:
    """Return memorization probe classes (subclasses of :class:`probekit.Probe`).

    Called once per process when the registry is first used; every plugin's result is collected
    (not first-result). A probe scores generated samples (or the model itself) against the
    training set: ``prepare(train, holdout=...)`` once, then ``evaluate(samples, model=...)``.
    """


@hookspec
def register_metrics() -> list[type[Metric]] | None:
    """Return quality metric classes (subclasses of :class:`probekit.Metric`).

    Called once per process when the registry is first used; every plugin's result is collected.
    A metric compares generated samples with real (reference) samples: ``prepare(reference)``
    once, then ``reset``/``update``/``compute`` (or ``evaluate``) per checkpoint.
    """


@hookspec
def register_feature_extractors() -> list[type[FeatureExtractor]] | None:
    """Return feature-extractor classes (subclasses of :class:`probekit.FeatureExtractor`).

    Called once per process when the registry is first used; every plugin's result is collected.
    Extractors give the feature spaces that probes (``features=...``) and the ``fd`` metric
    measure distances in; ``pixels`` (flattened values) is the default.
    """


@hookspec
def register_adapters() -> list[type[Adapter]] | None:
    """Return model-adapter classes (subclasses of :class:`probekit.Adapter`).

    Called once per process when the registry is first used; every plugin's result is collected.
    An adapter loads one checkpoint of a training run and returns a handle that generates
    samples from a seed (same initial noise at every checkpoint) and, for white-box access,
    predicts the noise ``eps_theta(x_t, t)``.
    """


@hookspec
def register_datasets() -> list[type[Dataset]] | None:
    """Return dataset classes (subclasses of :class:`probekit.Dataset`).

    Called once per process when the registry is first used; every plugin's result is collected.
    A dataset returns train and holdout splits from data that ships inside a package or from a
    local path (nothing is downloaded).
    """


@hookspec
def register_generators() -> list[type[Generator]] | None:
    """Return time-series generator classes (subclasses of :class:`probekit.Generator`).

    Called once per process when the registry is first used; every plugin's result is collected.
    Generators are the contestants of ``probekit bench timeseries``: ``fit(train)`` then
    ``sample(n, seed)``.
    """


# -- evaluation -----------------------------------------------------------------------------


@hookspec
def checkpoint_evaluated(run_dir: Path, step: int, results: list[Result]) -> None:
    """Observe the results of one checkpoint, right after they are committed to the run store.

    Called by the evaluator once per evaluated checkpoint (not for checkpoints skipped on
    resume), on the driver process. ``results`` holds one :class:`probekit.Result` per measure.
    The return value is ignored; an exception aborts the evaluation after the commit.
    """


@hookspec
def evaluation_finished(run_dir: Path, summary: dict[str, Any]) -> None:
    """Observe the end of a checkpoint-series evaluation.

    Called once, after the reports are written; ``summary`` is the content of ``summary.json``
    (timescales, window, recommended checkpoint, thresholds). The return value is ignored.
    """


#: Registration hook name for each registry kind.
REGISTRATION_HOOKS = {
    "probe": "register_probes",
    "metric": "register_metrics",
    "feature-extractor": "register_feature_extractors",
    "adapter": "register_adapters",
    "dataset": "register_datasets",
    "generator": "register_generators",
}
