"""Evaluate a checkpoint series: the same measures at every checkpoint, resumable, reported.

Two doors, one engine:

* :func:`evaluate_series` — give it a series (folder, manifest, reference-pipeline run or steps
  of a ``module:function``), an adapter, the data and the measures; it walks the checkpoints
  and writes the run directory and its reports. ``probekit evaluate`` calls it.
* :class:`SeriesEvaluator` — the same as a callback for any training loop::

      ev = SeriesEvaluator(out="runs/eval", train=train, holdout=holdout, probes=["nn-ratio"])
      for step in training:                      # your loop
          ...
          if step in checkpoint_steps:
              results = ev.evaluate_checkpoint(step, my_handle)   # a probekit.ModelHandle
      summary = ev.finish()                      # reports

How the work is split (DESIGN §8): the reference side — indexing the training set, reference
feature statistics — is prepared once per run and cached on disk (:mod:`probekit.cache`).
Evaluating one checkpoint is then a pure task, :func:`evaluate_checkpoint_task`:
``(checkpoint, run settings, prepared reference) -> results``, handed to an executor (serial
today; a process pool or Ray/Dask later), and only the driver writes the run store
(:mod:`probekit.store`), one transaction per checkpoint. A killed or interrupted run resumes:
the (checkpoint, measure) pairs already committed are skipped.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from probekit.base import Adapter, Measure, Metric, ModelHandle, Probe, build_settings
from probekit.cache import ReferenceCache, array_sha256
from probekit.errors import EvaluationInterrupted, InputFileError, ValidationError
from probekit.progress import Progress, clear_line, quiet_progress
from probekit.series import Series, discover_series, read_reference_run, series_from_steps
from probekit.store import CACHE_DIR, RunStore, load_results
from probekit.types import Checkpoint, Result
from probekit.validation import MODALITY_NDIM, check_array, describe

#: Generated samples per checkpoint when ``n_samples`` is not given (pre-generated samples:
#: as many as every checkpoint holds).
DEFAULT_N_SAMPLES = 1000
#: Generated samples kept per checkpoint in ``samples/`` for the reports' pictures.
N_KEEP = 64
#: Folder (inside a reference-pipeline run) that its evaluation goes to by default.
REFERENCE_EVAL_DIR = "eval"

MeasureLike = str | Measure


# -- the pure per-checkpoint task ---------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointTask:
    """One unit of work: evaluate ``measures`` at ``checkpoint``.

    Everything in it is plain data, so a task can be sent to another process.
    """

    checkpoint: Checkpoint
    measures: tuple[str, ...]
    n_samples: int
    seed: int
    n_keep: int


@dataclass
class EvaluationContext:
    """The run-wide, read-only side of every task: the prepared measures (the cached
    reference), the adapter, and what generated samples must look like."""

    measures: Mapping[str, Measure]
    adapter: Adapter | None
    modality: str
    sample_shape: tuple[int, ...] | None
    adapter_name: str = "handle"


@dataclass
class CheckpointOutcome:
    """What a task returns to the driver (which commits it)."""

    checkpoint: Checkpoint
    results: list[Result]
    kept_samples: np.ndarray | None
    n_samples: int
    seconds: dict[str, float] = field(default_factory=dict)
    measure_seconds: dict[str, float] = field(default_factory=dict)


def evaluate_checkpoint_task(
    task: CheckpointTask, context: EvaluationContext, handle: ModelHandle | None = None
) -> CheckpointOutcome:
    """Load the checkpoint (unless ``handle`` is given), generate samples if a measure needs
    them, and run every measure of ``task``. Writes nothing."""
    step = task.checkpoint.step
    started = time.perf_counter()
    if handle is None:
        if context.adapter is None:
            raise ValidationError("evaluator: a task needs an adapter or a loaded handle.")
        handle = context.adapter.load(task.checkpoint)
    loaded = time.perf_counter()
    measures = [context.measures[name] for name in task.measures]
    samples = None
    if any("samples" in m.requires for m in measures):
        samples = _check_samples(handle.generate(task.n_samples, task.seed), task, context)
    generated = time.perf_counter()
    results, measure_seconds = [], {}
    for measure in measures:
        t0 = time.perf_counter()
        results.append(_evaluate_measure(measure, samples, handle, step))
        measure_seconds[measure.name] = time.perf_counter() - t0
    done = time.perf_counter()
    kept = None
    if samples is not None and task.n_keep > 0:
        kept = np.array(samples[: task.n_keep], dtype=np.float32)
    return CheckpointOutcome(
        checkpoint=task.checkpoint,
        results=results,
        kept_samples=kept,
        n_samples=task.n_samples if samples is not None else 0,
        seconds={"load": loaded - started, "generate": generated - loaded,
                 "measures": done - generated},
        measure_seconds=measure_seconds,
    )


def _check_samples(samples: Any, task: CheckpointTask, context: EvaluationContext) -> np.ndarray:
    step = task.checkpoint.step
    who = f"adapter {context.adapter_name!r} at step {step}"
    modality = context.modality if context.modality in MODALITY_NDIM else None
    samples = check_array(samples, who=who, name="samples", modality=modality,
                          dtype=_float_dtype(samples))
    if len(samples) != task.n_samples:
        raise ValidationError(
            f"{who}: generate(n={task.n_samples}, ...) must return {task.n_samples} samples; got "
            f"{describe(samples)}. Fix the adapter's generate()."
        )
    if context.sample_shape is not None and samples.shape[1:] != context.sample_shape:
        raise ValidationError(
            f"{who}: samples must have the per-sample shape of the training set "
            f"{context.sample_shape}; got {samples.shape[1:]}. Generate at the training "
            "resolution and layout (images (n, channels, height, width); series (n, "
            "n_timesteps, n_channels))."
        )
    return samples


def _evaluate_measure(measure: Measure, samples: np.ndarray | None, handle: ModelHandle,
                      step: int) -> Result:
    if isinstance(measure, Metric):
        return measure.evaluate(samples)
    model = handle if "model" in measure.requires else None
    if model is not None and type(model).predict_noise is ModelHandle.predict_noise:
        raise ValidationError(
            f"{measure.name}: needs a model that predicts noise, but the handle of step {step} "
            f"({type(model).__name__}) cannot. Use a white-box adapter (diffusers, ddpm) or "
            f"drop {measure.name}."
        )
    return measure.evaluate(samples if "samples" in measure.requires else None, model=model)


class SerialExecutor:
    """Runs tasks one after the other in this process, lazily (one task's samples in memory
    at a time). Any object with the same ``map`` can replace it."""

    def map(self, fn: Callable[[CheckpointTask], CheckpointOutcome],
            tasks: Iterable[CheckpointTask]) -> Iterator[CheckpointOutcome]:
        for task in tasks:
            yield fn(task)


# -- building blocks ------------------------------------------------------------------------------


def _float_dtype(x: Any) -> type:
    dtype = getattr(x, "dtype", None)
    return dtype.type if dtype is not None and np.dtype(dtype).kind == "f" else np.float32


def _split_names(value: str | Sequence[MeasureLike] | None) -> list[MeasureLike]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


def build_measures(
    probes: str | Sequence[MeasureLike] | None,
    metrics: str | Sequence[MeasureLike] | None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Measure]:
    """Instantiate the measures: registry names (with ``settings[name]``) or ready instances."""
    from probekit.registry import get_metric, get_probe

    settings = dict(settings or {})
    measures: list[Measure] = []
    for kind, items, base, lookup in (("probe", probes, Probe, get_probe),
                                      ("metric", metrics, Metric, get_metric)):
        for item in _split_names(items):
            if isinstance(item, str):
                measures.append(lookup(item)(settings.pop(item, None)))
            elif isinstance(item, base):
                if item.name in settings:
                    raise ValidationError(
                        f"evaluator: settings for {item.name!r} were given both in the instance "
                        "and in settings=; give them in one place."
                    )
                measures.append(item)
            else:
                raise ValidationError(
                    f"evaluator: each of {kind}s must be a registered name or a "
                    f"probekit.{base.__name__}; got {describe(item)}."
                )
    if not measures:
        raise ValidationError(
            "evaluator: probes and metrics must name at least one measure; got none. "
            "Example: --probes nn-ratio (see `probekit list probes`)."
        )
    names = [m.name for m in measures]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValidationError(f"evaluator: each measure may appear once; {repeated} repeat.")
    if settings:
        unknown = sorted(settings)
        raise ValidationError(
            f"evaluator: settings were given for {unknown}, which are not among the measures "
            f"{names}. Add them to --probes/--metrics or fix the name."
        )
    return measures


def _measure_config(measure: Measure) -> dict[str, Any]:
    cls = type(measure)
    return {
        "name": measure.name,
        "kind": "probe" if isinstance(measure, Probe) else "metric",
        "headline": cls.headline,
        "higher_is_better": bool(cls.higher_is_better),
        "requires": list(cls.requires),
        "settings": measure.settings.model_dump(mode="json"),
        "plugin": cls.plugin,
        "version": cls.plugin_version,
    }


def _versions(measures: Sequence[Measure], adapter: Adapter | None) -> dict[str, Any]:
    from probekit import __version__

    versions: dict[str, Any] = {
        "probekit": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    if "torch" in sys.modules:
        versions["torch"] = sys.modules["torch"].__version__
    plugins = {type(m).plugin: type(m).plugin_version for m in measures}
    if adapter is not None:
        plugins[type(adapter).plugin] = type(adapter).plugin_version
    versions["plugins"] = dict(sorted(plugins.items()))
    return versions


@dataclass(frozen=True)
class _Data:
    train: np.ndarray | None
    holdout: np.ndarray | None
    train_path: str | None
    holdout_path: str | None
    dataset: str | None
    dataset_settings: dict[str, Any]


def _load_data(train: Any, holdout: Any, dataset: str | None,
               dataset_settings: Mapping[str, Any] | None) -> _Data:
    from probekit.io import load_array

    if dataset is not None and (train is not None or holdout is not None):
        raise ValidationError(
            f"evaluator: give either a dataset ({dataset!r}) or train/holdout data, not both."
        )
    if dataset is None and dataset_settings:
        raise ValidationError(
            "evaluator: dataset_settings were given without a dataset; pass --dataset NAME."
        )
    if dataset is not None:
        from probekit.registry import get_dataset

        ds = get_dataset(dataset)(dataset_settings)
        splits = ds.load()
        return _Data(splits.train, splits.holdout, None, None, dataset,
                     ds.settings.model_dump(mode="json"))

    def one(value: Any, name: str) -> tuple[np.ndarray | None, str | None]:
        if value is None:
            return None, None
        if isinstance(value, str | Path):
            path = Path(value)
            return load_array(path), str(path.resolve())
        return value, None

    train_arr, train_path = one(train, "train")
    holdout_arr, holdout_path = one(holdout, "holdout")
    return _Data(train_arr, holdout_arr, train_path, holdout_path, None, {})


def _modality_of(x: np.ndarray) -> str:
    return {4: "image", 3: "timeseries", 2: "features"}[x.ndim]


# -- the evaluator --------------------------------------------------------------------------


class SeriesEvaluator:
    """Evaluates checkpoints one at a time into a run directory; usable from any training loop.

    Parameters
    ----------
    out : path
        The run directory (created, or resumed when its configuration matches).
    train, holdout : array or path, optional
        Training set (what the model saw) and held-out set (same distribution, never seen).
    dataset, dataset_settings : optional
        A registered dataset instead of ``train``/``holdout`` (e.g. ``"digits"``).
    probes, metrics : names or instances
        Measures to evaluate at every checkpoint (``"nn-ratio"``, or ``"nn-ratio,loss-gap"``).
    settings : mapping, optional
        Per-measure settings by name, e.g. ``{"nn-ratio": {"k": 0.5}}``.
    n_samples, seed : int
        Samples generated per checkpoint, and the seed of their initial noise (the same at
        every checkpoint).
    adapter, adapter_settings : optional
        The adapter that loads checkpoints (a name or an instance); needed by :meth:`run`,
        recorded in ``config.json``. :meth:`evaluate_checkpoint` takes loaded handles instead.
    series : str, optional
        What the checkpoints are (a folder, a manifest...), recorded in ``config.json``.
    n_keep : int
        Generated samples kept per checkpoint for the report's pictures.
    timescales : mapping, optional
        How reports read tau_gen / tau_mem (:class:`probekit.timescales.TimescaleSettings`).
    cache_dir : path, None or False
        Reference-state cache (default ``<out>/cache/reference``; ``False`` disables it).
    overwrite : bool
        Delete the results of an existing run directory and start again.
    quiet : bool
        No progress bars, no report verdict on stdout.
    reports : bool
        Whether :meth:`finish` writes the reports.
    config_extra : mapping, optional
        More keys for ``config.json`` (e.g. the training recipe); they must not replace the
        evaluator's own keys.
    """

    def __init__(
        self,
        out: str | Path,
        *,
        train: np.ndarray | str | Path | None = None,
        holdout: np.ndarray | str | Path | None = None,
        dataset: str | None = None,
        dataset_settings: Mapping[str, Any] | None = None,
        probes: str | Sequence[MeasureLike] | None = None,
        metrics: str | Sequence[MeasureLike] | None = None,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        n_samples: int = DEFAULT_N_SAMPLES,
        seed: int = 0,
        adapter: str | Adapter | None = None,
        adapter_settings: Mapping[str, Any] | None = None,
        series: str | None = None,
        n_keep: int = N_KEEP,
        timescales: Mapping[str, Any] | None = None,
        cache_dir: str | Path | bool | None = None,
        overwrite: bool = False,
        quiet: bool = False,
        reports: bool = True,
        config_extra: Mapping[str, Any] | None = None,
    ):
        from probekit.timescales import TimescaleSettings

        self.out = Path(out)
        self.quiet = quiet
        self.reports = reports
        for name, value, low in (("n_samples", n_samples, 1), ("n_keep", n_keep, 0)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValidationError(
                    f"evaluator: {name} must be an integer >= {low}; got {value!r}."
                )
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ValidationError(f"evaluator: seed must be an integer; got {seed!r}.")
        self.n_samples, self.seed, self.n_keep = int(n_samples), int(seed), int(n_keep)

        self.adapter = self._make_adapter(adapter, adapter_settings)
        self.measures = build_measures(probes, metrics, settings)
        self.measure_names = [m.name for m in self.measures]
        data = _load_data(train, holdout, dataset, dataset_settings)
        self.train, self.holdout = self._check_data(data)
        self.modality = _modality_of(self.train if self.train is not None else self.holdout)
        self.sample_shape = (self.train if self.train is not None else self.holdout).shape[1:]
        self._check_requirements()
        self.sha256 = {
            "train": array_sha256(self.train) if self.train is not None else None,
            "holdout": array_sha256(self.holdout) if self.holdout is not None else None,
        }

        ts_defaults = {"quality_measure": next(
            (m.name for m in self.measures if isinstance(m, Metric)), None)}
        timescale_settings = build_settings(
            TimescaleSettings, "timescales", {**ts_defaults, **dict(timescales or {})})

        config = {
            "probekit_version": _versions([], None)["probekit"],
            "series": series,
            "adapter": self.adapter.name if self.adapter is not None else "handle",
            "adapter_settings": (self.adapter.settings.model_dump(mode="json")
                                 if self.adapter is not None else {}),
            "train": data.train_path,
            "holdout": data.holdout_path,
            "train_sha256": self.sha256["train"],
            "holdout_sha256": self.sha256["holdout"],
            "dataset": data.dataset,
            "dataset_settings": data.dataset_settings,
            "n_train": len(self.train) if self.train is not None else None,
            "n_holdout": len(self.holdout) if self.holdout is not None else None,
            "modality": self.modality,
            "sample_shape": list(self.sample_shape),
            "n_samples": self.n_samples,
            "seed": self.seed,
            "n_keep": self.n_keep,
            "steps": [],
            "measures": [_measure_config(m) for m in self.measures],
            "timescales": timescale_settings.model_dump(mode="json"),
            "versions": _versions(self.measures, self.adapter),
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        clash = sorted(set(config_extra or {}) & set(config))
        if clash:
            raise ValidationError(
                f"evaluator: config_extra must not replace the evaluator's own keys; got {clash}."
            )
        config.update(dict(config_extra or {}))

        if cache_dir is False:
            self.cache = ReferenceCache(None)
        else:
            self.cache = ReferenceCache(
                Path(cache_dir) if cache_dir not in (None, True) else self.out / CACHE_DIR /
                "reference")
        # everything is validated: only now is anything written
        self.store = RunStore.open(self.out, config, overwrite=overwrite)
        self._finished = self.store.finished()
        self._prepared: set[str] = set()
        #: How each measure was prepared: ``{name: ("cache" | "computed" | "uncached", s)}``.
        self.prepare_log: dict[str, tuple[str, float]] = {}

    # -- validation ------------------------------------------------------------------------

    @staticmethod
    def _make_adapter(adapter: str | Adapter | None,
                      adapter_settings: Mapping[str, Any] | None) -> Adapter | None:
        if adapter is None:
            if adapter_settings:
                raise ValidationError("evaluator: adapter_settings were given without adapter.")
            return None
        if isinstance(adapter, Adapter):
            if adapter_settings:
                raise ValidationError(
                    "evaluator: give adapter settings either in the instance or in "
                    "adapter_settings, not both."
                )
            return adapter
        if not isinstance(adapter, str):
            raise ValidationError(
                f"evaluator: adapter must be a registered name or a probekit.Adapter; got "
                f"{describe(adapter)}."
            )
        from probekit.registry import get_adapter

        return get_adapter(adapter)(adapter_settings)

    def _check_data(self, data: _Data) -> tuple[np.ndarray | None, np.ndarray | None]:
        def check(x: Any, name: str) -> np.ndarray | None:
            if x is None:
                return None
            return check_array(x, who="evaluator", name=name, min_samples=2,
                               dtype=_float_dtype(x))

        train, holdout = check(data.train, "train"), check(data.holdout, "holdout")
        if train is None and holdout is None:
            raise ValidationError(
                "evaluator: train must be given (the training set the model saw); got neither "
                "train nor holdout. Pass --train PATH (and --holdout PATH) or --dataset NAME."
            )
        if train is not None and holdout is not None and train.shape[1:] != holdout.shape[1:]:
            raise ValidationError(
                f"evaluator: train and holdout must have the same per-sample shape; got "
                f"{train.shape[1:]} and {holdout.shape[1:]}."
            )
        return train, holdout

    def _check_requirements(self) -> None:
        available = {"train": self.train is not None, "holdout": self.holdout is not None}
        hints = {"train": "--train PATH (train=...)", "holdout": "--holdout PATH (holdout=...)"}
        for measure in self.measures:
            for need in ("train", "holdout"):
                if need in measure.requires and not available[need]:
                    raise ValidationError(
                        f"{measure.name}: requires a {need} set; none was given. Pass "
                        f"{hints[need]}, or use a --dataset that has one."
                    )
            if "model" in measure.requires and self.adapter is not None and \
                    not type(self.adapter).can_predict_noise:
                raise ValidationError(
                    f"{measure.name}: requires a model that predicts noise, and adapter "
                    f"{self.adapter.name!r} cannot (it only gives samples). Use an adapter that "
                    f"loads the network (diffusers, ddpm), or drop {measure.name}."
                )
            if measure.modality not in ("any", self.modality):
                raise ValidationError(
                    f"{measure.name}: works on {measure.modality} data; the training set is "
                    f"{self.modality} data of shape {self.sample_shape}. Choose a measure for "
                    f"{self.modality} data (`probekit list`)."
                )

    # -- preparing ------------------------------------------------------------------------

    def _prepare(self, names: Iterable[str]) -> None:
        todo = [m for m in self.measures if m.name in set(names) and m.name not in self._prepared]
        if not todo:
            return
        with Progress(len(todo), "preparing reference", leave=False) as bar:
            for measure in todo:
                bar.set_status(measure.name)
                t0 = time.perf_counter()
                outcome = self.cache.prepare(
                    measure, train=self.train, holdout=self.holdout,
                    reference_sha256={k: v for k, v in self.sha256.items() if v is not None},
                )
                self.prepare_log[measure.name] = (outcome.source, time.perf_counter() - t0)
                self._prepared.add(measure.name)
                bar.update()

    def _context(self) -> EvaluationContext:
        return EvaluationContext(
            measures={m.name: m for m in self.measures},
            adapter=self.adapter,
            modality=self.modality,
            sample_shape=self.sample_shape,
            adapter_name=self.adapter.name if self.adapter is not None else "handle",
        )

    def pending(self, step: int) -> list[str]:
        """The measures not yet committed for ``step``, in order."""
        return [n for n in self.measure_names if (step, n) not in self._finished]

    def _task(self, checkpoint: Checkpoint) -> CheckpointTask:
        return CheckpointTask(checkpoint, tuple(self.pending(checkpoint.step)), self.n_samples,
                              self.seed, self.n_keep)

    # -- committing -----------------------------------------------------------------------

    def _commit(self, outcome: CheckpointOutcome) -> None:
        step = outcome.checkpoint.step
        with _sigint_deferred():
            self.store.commit_checkpoint(
                step, str(outcome.checkpoint.path), outcome.results,
                samples=outcome.kept_samples, n_samples=outcome.n_samples,
                seconds=outcome.seconds, measure_seconds=outcome.measure_seconds,
            )
            self._finished.update((step, r.measure) for r in outcome.results)
            self.store.add_steps([step])
        from probekit._plugins import get_host

        get_host().hook.checkpoint_evaluated(run_dir=self.out, step=step,
                                             results=list(outcome.results))

    # -- public API -----------------------------------------------------------------------

    def evaluate_checkpoint(self, step: int, handle: ModelHandle) -> list[Result]:
        """Evaluate one loaded checkpoint and commit its results.

        Measures already committed for ``step`` are not run again; their stored results are
        returned with the new ones (one :class:`~probekit.Result` per measure, in order).
        """
        if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
            raise ValidationError(f"evaluator: step must be a non-negative integer; got {step!r}.")
        if not isinstance(handle, ModelHandle):
            raise ValidationError(
                f"evaluator: handle must be a probekit.ModelHandle; got {describe(handle)}. "
                "Wrap your model in a ModelHandle subclass (generate, predict_noise)."
            )
        step = int(step)
        pending = self.pending(step)
        new: dict[str, Result] = {}
        if pending:
            with _quiet_if(self.quiet):
                self._prepare(pending)
                path = Path(str(getattr(handle, "path", "") or ""))
                task = CheckpointTask(Checkpoint(step, path), tuple(pending), self.n_samples,
                                      self.seed, self.n_keep)
                outcome = evaluate_checkpoint_task(task, self._context(), handle=handle)
                self._commit(outcome)
            new = {r.measure: r for r in outcome.results}
        stored = {} if len(new) == len(self.measure_names) else {
            r.measure: r for r in load_results(self.out, step)}
        return [new.get(n) or stored[n] for n in self.measure_names]

    def run(self, checkpoints: Sequence[Checkpoint], *, executor: Any = None,
            resume_hint: str | None = None) -> dict[str, int]:
        """Evaluate every checkpoint with the adapter, skipping finished (step, measure) pairs.

        Returns ``{"evaluated": ..., "skipped": ...}`` (numbers of checkpoints). On Ctrl-C the
        finished checkpoints stay committed, a message on stderr says how to resume, and
        :class:`EvaluationInterrupted` (a ``KeyboardInterrupt``) is raised.
        """
        if self.adapter is None:
            raise ValidationError("evaluator: run() needs an adapter; pass adapter=NAME.")
        self.store.add_steps(c.step for c in checkpoints)
        todo = [c for c in checkpoints if self.pending(c.step)]
        skipped = len(checkpoints) - len(todo)
        executor = executor or SerialExecutor()
        evaluated = 0
        current: int | None = None
        context = self._context()
        with _quiet_if(self.quiet):
            bar = Progress(len(todo), "checkpoints")
            try:
                self._prepare({n for c in todo for n in self.pending(c.step)})
                with bar:

                    def work(task: CheckpointTask) -> CheckpointOutcome:
                        nonlocal current
                        current = task.checkpoint.step
                        bar.set_status(f"step {current}")
                        return evaluate_checkpoint_task(task, context)

                    for outcome in executor.map(work, (self._task(c) for c in todo)):
                        self._commit(outcome)
                        evaluated += 1
                        bar.update(status=f"step {outcome.checkpoint.step} done")
            except KeyboardInterrupt as interrupt:
                clear_line()
                evaluated = sum(1 for c in todo if not self.pending(c.step))
                unfinished = f"; step {current} was not saved" if current is not None and \
                    self.pending(current) else ""
                print(
                    f"probekit: interrupted. {evaluated} of {len(todo)} checkpoint(s) evaluated "
                    f"and saved in {str(self.out)!r}{unfinished}. To resume, run "
                    f"{resume_hint or 'the same evaluation again'} (finished checkpoints are "
                    "skipped).",
                    file=sys.stderr,
                )
                raise EvaluationInterrupted(str(self.out)) from interrupt
        return {"evaluated": evaluated, "skipped": skipped}

    def finish(self) -> dict[str, Any]:
        """Write the reports (unless ``reports=False``), close the store, return the summary."""
        self.store.close()
        if self.reports:
            from probekit.reports import write_reports

            summary = write_reports(self.out, quiet=self.quiet)
        else:
            summary = {"run_dir": str(self.out), "steps": sorted({s for s, _ in self._finished}),
                       "measures": list(self.measure_names)}
        from probekit._plugins import get_host

        get_host().hook.evaluation_finished(run_dir=self.out, summary=summary)
        return summary

    def close(self) -> None:
        """Close the run store without writing reports."""
        self.store.close()

    def __enter__(self) -> SeriesEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quiet_if(quiet: bool) -> contextlib.AbstractContextManager:
    """Silence progress bars when ``quiet`` (otherwise leave the caller's choice alone)."""
    return quiet_progress(True) if quiet else contextlib.nullcontext()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the block (a commit) is done, then raise it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


# -- evaluate_series ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _ResolvedSeries:
    series: Series
    adapter: str | None
    adapter_settings: dict[str, Any]
    dataset: str | None
    dataset_settings: dict[str, Any] | None
    out: Path | None
    full: Series | None = None  # before --steps selected from it
    n_samples: int | None = None  # default of a reference run: what its training evaluated


def resolve_series(
    series: str | Path | Series | Sequence[int],
    *,
    adapter: str | None,
    adapter_settings: Mapping[str, Any] | None,
    steps: Iterable[int] | str | None,
) -> _ResolvedSeries:
    """What to evaluate, with the defaults a reference-pipeline run directory implies."""
    adapter_settings = dict(adapter_settings or {})
    if isinstance(series, Series):
        return _ResolvedSeries(series.select(steps), adapter or series.default_adapter,
                               adapter_settings, None, None, None)
    if not isinstance(series, str | Path):
        if steps is not None:
            raise ValidationError("evaluate: give the steps either as series or as steps.")
        return _ResolvedSeries(series_from_steps(list(series), label="steps"), adapter,
                               adapter_settings, None, None, None)
    path = Path(series)
    if path.exists():
        reference = read_reference_run(path) if path.is_dir() else None
        full = discover_series(path)
        found = full.select(steps)
        if reference is not None:
            return _ResolvedSeries(
                found, adapter or reference.get("adapter", "ddpm"), adapter_settings,
                reference.get("dataset"), reference.get("dataset_settings") or {},
                path / REFERENCE_EVAL_DIR, full, reference.get("n_samples"),
            )
        return _ResolvedSeries(found, adapter or found.default_adapter, adapter_settings,
                               None, None, None, full)
    spec = str(series)
    if ":" in spec and (adapter in (None, "callable")):
        if adapter_settings.get("function", spec) != spec:
            raise ValidationError(
                f"evaluate: series {spec!r} and function={adapter_settings['function']!r} "
                "disagree; give the function once."
            )
        if steps is None:
            raise ValidationError(
                f"evaluate: series {spec!r} is a function, so --steps must list the steps to "
                "evaluate (e.g. --steps 0,250,500,1000)."
            )
        return _ResolvedSeries(series_from_steps(steps, label=spec), "callable",
                               {**adapter_settings, "function": spec}, None, None, None)
    raise InputFileError(
        f"series: {spec!r} does not exist. Pass a folder of checkpoints, a .toml/.json manifest, "
        "a reference-pipeline run directory, or module:function with --adapter callable."
    )


def _resolve_n_samples(n_samples: int | None, series: Series, adapter: Adapter) -> int:
    """``n_samples`` or, when not given, every stored sample (pre-generated samples: the
    smallest count over the whole series, whatever ``steps`` selects, so that evaluating a
    subset first and the rest later resolves the same number) or :data:`DEFAULT_N_SAMPLES`."""
    if n_samples is not None:
        return n_samples
    counts = []
    for checkpoint in series.checkpoints:
        handle = adapter.load(checkpoint)
        available = getattr(handle, "n_available", None)
        if available is None:
            return DEFAULT_N_SAMPLES
        counts.append(int(available))
    return min(counts)


def evaluate_series(
    series: str | Path | Series | Sequence[int],
    *,
    out: str | Path | None = None,
    adapter: str | None = None,
    adapter_settings: Mapping[str, Any] | None = None,
    train: np.ndarray | str | Path | None = None,
    holdout: np.ndarray | str | Path | None = None,
    dataset: str | None = None,
    dataset_settings: Mapping[str, Any] | None = None,
    probes: str | Sequence[MeasureLike] | None = None,
    metrics: str | Sequence[MeasureLike] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    steps: Iterable[int] | str | None = None,
    n_keep: int = N_KEEP,
    timescales: Mapping[str, Any] | None = None,
    cache_dir: str | Path | bool | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    reports: bool = True,
    resume_hint: str | None = None,
    on_counts: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Evaluate every checkpoint of a series and write the run directory and its reports.

    Parameters
    ----------
    series :
        A folder of checkpoints (``ckpt-<step>.pt``, ``Model_<step>``, ``checkpoint-<step>/``,
        ``step-<step>.npy|npz|dir``), a ``.toml``/``.json`` manifest, a reference-pipeline run
        directory (adapter, dataset and ``out`` then default to its own), or
        ``"module:function"`` with the ``callable`` adapter and ``steps``.
    out :
        The run directory (default for a reference-pipeline run: ``<run>/eval``).
    adapter, adapter_settings :
        How to load checkpoints (default: implied by the series' naming scheme).
    steps :
        Evaluate only these steps (``"250,500"``, ``"1000:5000"``, or a list).
    n_samples :
        Samples per checkpoint (default: all stored samples for pre-generated ones, else 1000).
    resume_hint, on_counts :
        For the command line: the command to repeat after Ctrl-C, and a callback receiving
        ``{"evaluated": ..., "skipped": ..., "out": ...}`` (checkpoint counts, run directory).

    The other parameters are those of :class:`SeriesEvaluator`.

    Returns
    -------
    dict
        The summary written to ``summary.json`` (``reports=False``: run directory, steps and
        measures).
    """
    resolved = resolve_series(series, adapter=adapter, adapter_settings=adapter_settings,
                              steps=steps)
    if resolved.adapter is None:
        from probekit.registry import registries

        names = ", ".join(registries().adapters.names())
        raise ValidationError(
            f"evaluate: adapter must be given for a series named {resolved.series.scheme!r} "
            f"(no default); known adapters: {names}. Example: --adapter callable."
        )
    if train is None and holdout is None and dataset is None and resolved.dataset:
        dataset, dataset_settings = resolved.dataset, resolved.dataset_settings
    out = out if out is not None else resolved.out
    if out is None:
        raise ValidationError(
            "evaluate: out must be given (the run directory to write); got none. "
            "Example: --out runs/my-eval"
        )
    from probekit.registry import get_adapter

    adapter_obj = get_adapter(resolved.adapter)(resolved.adapter_settings)
    if n_samples is None:
        n_samples = resolved.n_samples
    n = _resolve_n_samples(n_samples, resolved.full or resolved.series, adapter_obj)
    evaluator = SeriesEvaluator(
        out, train=train, holdout=holdout, dataset=dataset, dataset_settings=dataset_settings,
        probes=probes, metrics=metrics, settings=settings, n_samples=n, seed=seed,
        adapter=adapter_obj, series=_series_label(resolved.series), n_keep=n_keep,
        timescales=timescales, cache_dir=cache_dir, overwrite=overwrite, quiet=quiet,
        reports=reports,
    )
    try:
        counts = evaluator.run(resolved.series.checkpoints, resume_hint=resume_hint)
    except BaseException:
        evaluator.close()
        raise
    summary = evaluator.finish()
    if on_counts is not None:
        on_counts({**counts, "out": str(out)})
    return summary


def _series_label(series: Series) -> str:
    if series.scheme == "steps":
        return series.source
    return str(Path(series.source).resolve())


__all__ = [
    "DEFAULT_N_SAMPLES",
    "N_KEEP",
    "CheckpointOutcome",
    "CheckpointTask",
    "EvaluationContext",
    "EvaluationInterrupted",
    "SerialExecutor",
    "SeriesEvaluator",
    "build_measures",
    "evaluate_checkpoint_task",
    "evaluate_series",
    "resolve_series",
]
