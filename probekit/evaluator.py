"""Evaluate a checkpoint series: the same measures at every checkpoint, resumable, reported.

Two doors, one engine:

* :func:`evaluate_series` — give it a series (folder, manifest, reference-pipeline run or steps
  of a ``module:function``), the data and the settings; it walks the checkpoints and writes the
  run directory and its reports. ``probekit evaluate`` calls the same pieces.
* :class:`SeriesEvaluator` — the same as a callback for any training loop::

      ev = SeriesEvaluator("runs/eval", train=train, holdout=holdout, probes="nn-ratio")
      for step in training:                      # your loop
          ...
          if step in checkpoint_steps:
              results = ev.evaluate_checkpoint(step, my_handle)   # a probekit.ModelHandle
      summary = ev.finish()                      # reports

Settings — which measures, how many samples, the seed, how tau is read, the executor — are one
frozen model, :class:`probekit.settings.EvaluationSettings`, given as an instance or as keyword
arguments (validated: a misspelt one is an error). What is read (series, data, run directory)
and how a call behaves (``overwrite``, ``quiet``, ``reports``) are plain arguments.

How the work is split (DESIGN §8): the reference side — indexing the training set, reference
feature statistics — is prepared once per run and cached on disk (:mod:`probekit.cache`).
Evaluating one checkpoint is then a pure task (:mod:`probekit.tasks`) handed to an executor
(:mod:`probekit.executors`: serial, a process pool, or Ray), and only the driver writes the run
store (:mod:`probekit.store`), one transaction per checkpoint as each task completes. A killed
or interrupted run resumes: the (checkpoint, measure) pairs already committed are skipped. A
checkpoint that cannot be evaluated is recorded as failed with its reason and retried by the
next run; the others go on.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import inspect
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from probekit.base import Adapter, Metric, ModelHandle, Probe
from probekit.cache import ReferenceCache, array_sha256
from probekit.errors import EvaluationInterrupted, ValidationError
from probekit.progress import Progress, quiet_progress
from probekit.series import Series, resolve_n_samples, resolve_series, series_label
from probekit.settings import (
    DEFAULT_N_SAMPLES,
    N_KEEP,
    EvaluationSettings,
    build_measures,
    make_settings,
    measure_config,
    versions,
)
from probekit.store import CACHE_DIR, RunStore, load_results
from probekit.tasks import (
    CheckpointOutcome,
    CheckpointTask,
    EvaluationContext,
    evaluate_checkpoint_task,
    failure_reason,
)
from probekit.types import Checkpoint, Result
from probekit.validation import check_array, describe

# -- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    train: np.ndarray | None
    holdout: np.ndarray | None
    train_path: str | None
    holdout_path: str | None
    dataset: str | None
    dataset_settings: dict[str, Any]
    #: One caption or class label per item, when the data carry them (DESIGN §4).
    train_conditions: tuple[Any, ...] | None = None
    holdout_conditions: tuple[Any, ...] | None = None


def _load_data(train: Any, holdout: Any, settings: EvaluationSettings) -> _Data:
    from probekit.io import load_array

    dataset, dataset_settings = settings.dataset, settings.dataset_settings
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

    from probekit.conditions import ConditionalSet, is_conditional_source, load_conditional_set

    def one(value: Any) -> tuple[np.ndarray | None, str | None, tuple[Any, ...] | None]:
        if value is None:
            return None, None, None
        if isinstance(value, ConditionalSet):
            return value.images, None, value.conditions
        if isinstance(value, str | Path):
            path = Path(value)
            if is_conditional_source(path):  # images with captions or labels
                cset = load_conditional_set(path)
                return cset.images, str(path.resolve()), cset.conditions
            return load_array(path), str(path.resolve()), None
        return value, None, None

    train_arr, train_path, train_conds = one(train)
    holdout_arr, holdout_path, holdout_conds = one(holdout)
    return _Data(train_arr, holdout_arr, train_path, holdout_path, None, {}, train_conds,
                 holdout_conds)


def _float_dtype(x: Any) -> type:
    dtype = getattr(x, "dtype", None)
    return dtype.type if dtype is not None and np.dtype(dtype).kind == "f" else np.float32


def _modality_of(x: np.ndarray) -> str:
    return {4: "image", 3: "timeseries", 2: "features"}[x.ndim]


# -- checks before anything is written -----------------------------------------------------------


def check_outputs(out: str | Path, settings: EvaluationSettings) -> None:
    """The run directory and the reference cache folder can be written (checked before any
    data is read or anything is created)."""
    from probekit.validation import check_output_dir

    check_output_dir(out, who="evaluate", name="out")
    if settings.cache and settings.cache_dir is not None:
        check_output_dir(settings.cache_dir, who="evaluate", name="cache_dir")


def check_run_settings(settings: EvaluationSettings, measures: Sequence[Any], n_samples: int,
                       out: Path) -> None:
    """What can be refused from the settings and measures alone, before anything is written:
    a measure that needs more generated samples than ``n_samples``; ``gen_mode='absolute'``
    without a threshold (a single run has nothing to derive one from); a ``mem_measure`` or
    ``quality_measure`` that names no measure of the run (this one's, or those an existing run
    directory already holds)."""
    from probekit.analysis import check_measure_spec

    for measure in measures:
        needed = int(getattr(measure, "min_samples", 1) or 1)
        if "samples" in type(measure).requires and n_samples < needed:
            raise ValidationError(
                f"{measure.name}: needs at least {needed} generated samples per checkpoint; "
                f"got n_samples={n_samples}. Pass --n-samples {needed} or more (n_samples=...)."
            )
    ts = settings.timescales
    if ts.gen_mode == "absolute" and ts.gen_threshold is None:
        raise ValidationError(
            "evaluate: gen_mode='absolute' needs gen_threshold (the quality level in the "
            "metric's units) for a single run; got none. Pass --gen-threshold VALUE (it implies "
            "absolute mode), or drop --gen-mode."
        )
    known: dict[str, dict[str, Any]] = {m.name: {} for m in measures}
    from probekit.store import CONFIG_FILE, load_config

    if (out / CONFIG_FILE).is_file():
        try:
            stored = load_config(out)
        except Exception:  # a damaged run directory is refused (with its repair) when opened
            stored = {}
        known.update({m["name"]: {} for m in stored.get("measures", [])
                      if isinstance(m, dict) and isinstance(m.get("name"), str)})
    for what in ("mem_measure", "quality_measure"):
        spec = getattr(ts, what)
        if spec is not None:
            check_measure_spec(spec, known, what=what)


def check_devices(plugins: Sequence[Any]) -> None:
    """Every torch device a plugin's settings name (``device=cuda``) is present, before any
    checkpoint is loaded (the syntax was checked by the settings model)."""
    from probekit.validation import check_device

    for plugin in plugins:
        device = getattr(getattr(plugin, "settings", None), "device", None)
        if isinstance(device, str) and device != "cpu":
            check_device(device, who=str(getattr(plugin, "name", "plugin")), name="device")


def check_sample_memory(n_samples: int, sample_shape: Sequence[int]) -> None:
    """Refuse an ``n_samples`` whose generated samples would not fit in memory (float64, the
    widest a measure converts them to), before any work."""
    from probekit.validation import check_memory

    per_sample = int(np.prod(sample_shape, dtype=object)) if len(sample_shape) else 1
    check_memory(
        8 * n_samples * per_sample, who="evaluate",
        what=f"n_samples={n_samples} generated samples of shape {tuple(sample_shape)} per "
        "checkpoint", fix="Lower --n-samples.",
    )


# -- the evaluator ------------------------------------------------------------------------------


class SeriesEvaluator:
    """Evaluates checkpoints into a run directory; usable from any training loop.

    Parameters
    ----------
    out : path
        The run directory (created, or resumed when its configuration matches).
    settings : EvaluationSettings or mapping, optional
        What to measure and how (:class:`probekit.settings.EvaluationSettings`); keyword
        arguments override its fields (``probes="nn-ratio"``, ``n_samples=500``, ...).
        ``probes``/``metrics`` may hold ready measure instances and ``adapter`` an adapter
        instance.
    train, holdout : array or path, optional
        Training set (what the model saw) and held-out set (same distribution, never seen);
        or ``dataset=NAME`` in the settings.
    series : str, optional
        What the checkpoints are (a folder, a manifest...), recorded in ``config.json``.
    overwrite : bool
        Delete the results of an existing run directory and start again.
    quiet : bool
        No progress, no report verdict on stdout.
    reports : bool
        Whether :meth:`finish` writes the reports.
    config_extra : mapping, optional
        More keys for ``config.json`` (e.g. the training recipe); they must not replace the
        evaluator's own keys.
    executor : probekit.executors.Executor, optional
        Where checkpoints are evaluated (default: the one ``settings.executor`` names, made when
        needed). With a process pool or Ray, :meth:`submit` hands a training loop's checkpoint
        over without waiting for its evaluation.
    """

    def __init__(
        self,
        out: str | Path,
        settings: EvaluationSettings | Mapping[str, Any] | None = None,
        *,
        train: np.ndarray | str | Path | None = None,
        holdout: np.ndarray | str | Path | None = None,
        series: str | None = None,
        overwrite: bool = False,
        quiet: bool = False,
        reports: bool = True,
        config_extra: Mapping[str, Any] | None = None,
        executor: Any = None,
        **overrides: Any,
    ):
        self.settings, instances, adapter = make_settings(settings, **overrides)
        self.executor = executor
        self._executor_started = False
        s = self.settings
        check_outputs(out, s)
        self.out = Path(out)
        self.quiet = quiet
        self.reports = reports
        self.n_samples = DEFAULT_N_SAMPLES if s.n_samples is None else s.n_samples
        self.seed, self.n_keep = s.seed, s.n_keep

        self.adapter = adapter if adapter is not None else self._make_adapter(s)
        if adapter is not None:  # record what the instance runs with
            self.settings = s = s.model_copy(update={
                "adapter_settings": adapter.settings.model_dump(mode="json")})
        self.measures = build_measures(s, instances)
        self.measure_names = [m.name for m in self.measures]
        check_run_settings(s, self.measures, self.n_samples, self.out)
        check_devices([self.adapter, *self.measures])
        data = _load_data(train, holdout, s)
        self.train, self.holdout = self._check_data(data)
        self.modality = _modality_of(self.train if self.train is not None else self.holdout)
        self.sample_shape = (self.train if self.train is not None else self.holdout).shape[1:]
        self.train_conditions = data.train_conditions
        self.plan = self._plan_samples(s)
        if self.plan is not None:  # a conditional model samples its prompts
            self.n_samples = self.plan.n_samples
            check_run_settings(s, self.measures, self.n_samples, self.out)
        self._check_requirements()
        check_sample_memory(self.n_samples, self.sample_shape)
        self.sha256 = {
            "train": array_sha256(self.train) if self.train is not None else None,
            "holdout": array_sha256(self.holdout) if self.holdout is not None else None,
        }
        if self.train_conditions is not None:  # part of the cache key of conditional measures
            from probekit.conditions import conditions_sha256

            self.sha256["train_conditions"] = conditions_sha256(train=self.train_conditions)
        conditions_config = self._conditions_config(s, data)
        config = {
            "probekit_version": versions([], None)["probekit"],
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
            "measures": [measure_config(m) for m in self.measures],
            "timescales": s.timescales.model_dump(mode="json"),
            **conditions_config,
            "settings": s.model_dump(mode="json"),
            "versions": versions(self.measures, self.adapter),
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        clash = sorted(set(config_extra or {}) & set(config))
        if clash:
            raise ValidationError(
                f"evaluator: config_extra must not replace the evaluator's own keys; got {clash}."
            )
        config.update(dict(config_extra or {}))

        if not s.cache:
            self.cache = ReferenceCache(None)
        else:
            self.cache = ReferenceCache(
                Path(s.cache_dir) if s.cache_dir is not None else
                self.out / CACHE_DIR / "reference")
        # everything is validated: only now is anything written
        self._created = not self.out.exists()  # removed again if preparing is refused
        self.store = RunStore.open(self.out, config, overwrite=overwrite)
        self._finished = self.store.finished()
        self._prepared: set[str] = set()
        #: How each measure was prepared: ``{name: ("cache" | "computed" | "uncached", s)}``.
        self.prepare_log: dict[str, tuple[str, float]] = {}
        #: ``{step: reason}`` of the checkpoints that failed in this run (and were not retried
        #: successfully since).
        self.failures: dict[int, str] = {}

    # -- validation ------------------------------------------------------------------------

    @staticmethod
    def _make_adapter(settings: EvaluationSettings) -> Adapter | None:
        if settings.adapter is None:
            if settings.adapter_settings:
                raise ValidationError("evaluator: adapter_settings were given without adapter.")
            return None
        from probekit.registry import get_adapter

        return get_adapter(settings.adapter)(settings.adapter_settings)

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

    @property
    def conditions(self) -> tuple[Any, ...] | None:
        """One condition per generated sample (``None``: unconditional, or labels drawn)."""
        return None if self.plan is None else self.plan.conditions

    def _model_kind(self, settings: EvaluationSettings) -> str | None:
        """``"text"``/``"class"`` for a conditional model, ``None`` for an unconditional one.
        Without an adapter (handles given later) a prompts file says the kind."""
        from probekit.conditions import adapter_condition_kind, condition_kind, load_prompts

        if self.adapter is not None:
            return adapter_condition_kind(self.adapter)
        if settings.prompts is None:
            return None
        return condition_kind([r.condition for r in load_prompts(settings.prompts)])

    def _plan_samples(self, settings: EvaluationSettings) -> Any:
        from probekit.conditions import plan_samples

        if settings.samples_per_prompt is not None and settings.prompts is None and \
                self.train_conditions is None:
            raise ValidationError(
                "evaluate: samples_per_prompt applies to a conditional model's prompts; there "
                "are none (no --prompts FILE, no training captions or labels). Drop "
                "--samples-per-prompt."
            )
        self._kind = self._model_kind(settings)
        name = f"adapter {self.adapter.name!r}" if self.adapter is not None else "the model"
        return plan_samples(
            prompts=settings.prompts, samples_per_prompt=settings.samples_per_prompt,
            n_samples=self.n_samples, train_conditions=self.train_conditions,
            model_kind=self._kind, model_name=name,
        )

    def _conditions_config(self, settings: EvaluationSettings, data: _Data) -> dict[str, Any]:
        """``config.json``'s record of what a conditional run sampled (``None`` for an
        unconditional one, as in run directories written before conditions existed)."""
        from probekit.conditions import conditions_sha256

        if self.plan is None and self.train_conditions is None and self._kind is None:
            return {"conditions": None, "conditions_sha256": None}
        plan = self.plan
        return {
            "conditions": {
                "model_kind": self._kind,
                "source": "drawn by the model" if plan is None and self._kind == "class"
                else None if plan is None else plan.source,
                "prompts_file": None if settings.prompts is None
                else str(Path(settings.prompts).resolve()),
                "prompts": None if plan is None else
                [[r.condition, r.n_samples] for r in plan.requests],
                "train_conditions": data.train_conditions is not None,
                "holdout_conditions": data.holdout_conditions is not None,
            },
            "conditions_sha256": conditions_sha256(
                samples=self.conditions, train=self.train_conditions),
        }

    def _check_requirements(self) -> None:
        from probekit.conditions import needs_conditions

        sampled = self.plan is not None or self._kind == "class"
        for measure in self.measures:
            if not needs_conditions(measure):
                continue
            if not sampled:
                raise ValidationError(
                    f"{measure.name}: needs the prompt (caption or label) of every generation; "
                    "this run samples none (the model is unconditional, or no prompts were "
                    "given). Use a conditional adapter with --prompts FILE or a captioned "
                    f"training set, or drop {measure.name}."
                )
            if self.train_conditions is None:
                raise ValidationError(
                    f"{measure.name}: needs the training set's captions or labels; --train has "
                    "none. Pass a folder with a metadata.jsonl (file_name, text) or an .npz "
                    f"with images and captions/labels, or drop {measure.name}."
                )
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
        from probekit.features import shared_features

        todo = [m for m in self.measures if m.name in set(names) and m.name not in self._prepared]
        if not todo:
            return
        # measures in one feature space prepared on one set extract its features once
        with Progress(len(todo), "preparing reference", leave=False) as bar, shared_features():
            for measure in todo:
                bar.set_status(measure.name)
                t0 = time.perf_counter()
                outcome = self.cache.prepare(
                    measure, train=self.train, holdout=self.holdout,
                    reference_sha256={k: v for k, v in self.sha256.items() if v is not None},
                    train_conditions=self.train_conditions,
                )
                self.prepare_log[measure.name] = (outcome.source, time.perf_counter() - t0)
                self._prepared.add(measure.name)
                bar.update()

    def _prepare_or_undo(self, names: Iterable[str]) -> None:
        """:meth:`_prepare`; when it refuses the input (missing weights, a reference too small
        for a measure) before anything was evaluated, a run directory this evaluator created
        is removed again, so that a refused command leaves the file system as it found it."""
        from probekit.errors import ProbekitError

        try:
            self._prepare(names)
        except ProbekitError:
            if self._created and not self._finished and not self.failures:
                import shutil

                self.close()
                shutil.rmtree(self.out, ignore_errors=True)
            raise

    def context(self) -> EvaluationContext:
        """The run-wide side of every checkpoint task (prepared measures, adapter, shapes)."""
        return EvaluationContext(
            measures={m.name: m for m in self.measures},
            adapter=self.adapter,
            modality=self.modality,
            sample_shape=self.sample_shape,
            adapter_name=self.adapter.name if self.adapter is not None else "handle",
            conditions=self.conditions,
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
        if outcome.failure is not None:
            with _sigint_deferred():
                self.store.record_failure(step, str(outcome.checkpoint.path), outcome.failure)
                self.store.add_steps([step])
            self.failures[step] = outcome.failure
            return
        with _sigint_deferred():
            self.store.commit_checkpoint(
                step, str(outcome.checkpoint.path), outcome.results,
                samples=outcome.kept_samples, n_samples=outcome.n_samples,
                seconds=outcome.seconds, measure_seconds=outcome.measure_seconds,
            )
            self._finished.update((step, r.measure) for r in outcome.results)
            self.store.add_steps([step])
        self.failures.pop(step, None)
        from probekit._plugins import get_host

        get_host().hook.checkpoint_evaluated(run_dir=self.out, step=step,
                                             results=list(outcome.results))

    # -- public API -----------------------------------------------------------------------

    def evaluate_checkpoint(self, step: int, handle: ModelHandle) -> list[Result]:
        """Evaluate one loaded checkpoint and commit its results.

        Measures already committed for ``step`` are not run again; their stored results are
        returned with the new ones (one :class:`~probekit.Result` per measure, in order).
        An error in the handle or a measure propagates (nothing is committed for the step).
        """
        step = self._check_step(step, handle)
        pending = self.pending(step)
        new: dict[str, Result] = {}
        if pending:
            with _quiet_if(self.quiet):
                self._prepare(pending)
                path = Path(str(getattr(handle, "path", "") or ""))
                task = CheckpointTask(Checkpoint(step, path), tuple(pending), self.n_samples,
                                      self.seed, self.n_keep)
                outcome = evaluate_checkpoint_task(task, self.context(), handle=handle)
                self._commit(outcome)
            new = {r.measure: r for r in outcome.results}
        stored = {} if len(new) == len(self.measure_names) else {
            r.measure: r for r in load_results(self.out, step)}
        return [new.get(n) or stored[n] for n in self.measure_names]

    def submit(self, step: int, handle: ModelHandle) -> None:
        """Hand one checkpoint over for evaluation without waiting for it (a training loop's
        door to a process pool or a Ray cluster; with the serial executor it is evaluated at
        once). The handle travels to a worker, so it must be picklable (e.g. a CPU copy of the
        weights and how to sample). Finished checkpoints are committed by :meth:`collect`,
        by later calls to :meth:`submit`, and by :meth:`finish`; a checkpoint that fails is
        recorded with its reason (``self.failures``)."""
        step = self._check_step(step, handle)
        pending = self.pending(step)
        if not pending:
            return
        with _quiet_if(self.quiet):
            self._prepare(pending)
            executor = self._started_executor()
            path = Path(str(getattr(handle, "path", "") or ""))
            task = CheckpointTask(Checkpoint(step, path), tuple(pending), self.n_samples,
                                  self.seed, self.n_keep, submitted_at=time.time())
            executor.submit(task, handle)
            if executor.name == "serial":
                self.collect(block=True)
            else:
                self.collect()

    def collect(self, *, block: bool = False) -> list[int]:
        """Commit the checkpoints whose evaluation has finished (``block``: wait for every one
        submitted); return their steps."""
        if self.executor is None or not self._executor_started:
            return []
        steps = []
        for outcome in self.executor.completed(block=block):
            self._commit(outcome)
            steps.append(outcome.checkpoint.step)
        return steps

    def _started_executor(self) -> Any:
        if self.executor is None:
            from probekit.executors import make_executor

            self.executor = make_executor(self.settings)
        if not self._executor_started:
            self.executor.start(self.context())
            self._executor_started = True
        return self.executor

    @staticmethod
    def _check_step(step: Any, handle: Any) -> int:
        if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
            raise ValidationError(f"evaluator: step must be a non-negative integer; got {step!r}.")
        if not isinstance(handle, ModelHandle):
            raise ValidationError(
                f"evaluator: handle must be a probekit.ModelHandle; got {describe(handle)}. "
                "Wrap your model in a ModelHandle subclass (generate, predict_noise)."
            )
        return int(step)

    def run(self, checkpoints: Sequence[Checkpoint], *, executor: Any = None) -> dict[str, int]:
        """Evaluate every checkpoint with the adapter, skipping finished (step, measure) pairs.

        ``executor`` is a :class:`probekit.executors.Executor` (default: the evaluator's, else
        the one the settings name, closed at the end). Returns
        ``{"evaluated", "skipped", "failed"}`` (numbers of checkpoints). A checkpoint that
        cannot be evaluated is recorded as failed with its reason (``self.failures``) and the
        others go on. On Ctrl-C the finished checkpoints stay committed and
        :class:`~probekit.errors.EvaluationInterrupted` (a ``KeyboardInterrupt``) is raised,
        its message saying what was saved.
        """
        if self.adapter is None:
            raise ValidationError("evaluator: run() needs an adapter; pass adapter=NAME.")
        self.store.add_steps(c.step for c in checkpoints)
        todo = [c for c in checkpoints if self.pending(c.step)]
        skipped = len(checkpoints) - len(todo)
        evaluated = failed = 0
        submitted: list[int] = []

        def tasks() -> Iterator[CheckpointTask]:
            for checkpoint in todo:
                submitted.append(checkpoint.step)
                yield self._timestamped(self._task(checkpoint))

        with _quiet_if(self.quiet):
            bar = Progress(len(todo), "checkpoints")
            executor = executor or self.executor
            own_executor = executor is None
            try:
                self._prepare_or_undo({n for c in todo for n in self.pending(c.step)})
                if own_executor:
                    from probekit.executors import make_executor

                    executor = make_executor(self.settings)
                with bar:
                    for outcome in executor.run(tasks(), self.context()):
                        self._commit(outcome)
                        step = outcome.checkpoint.step
                        if outcome.failure is None:
                            evaluated += 1
                            bar.update(status=f"step {step} done")
                        else:
                            failed += 1
                            bar.update(status=f"step {step} FAILED")
                            bar.note(f"step {step} failed: {outcome.failure}")
            except KeyboardInterrupt as interrupt:
                bar.close()
                done = sum(1 for c in todo if not self.pending(c.step))
                lost = [s for s in submitted if self.pending(s) and s not in self.failures]
                unsaved = "" if not lost else (
                    f"; step {lost[0]} was not saved" if len(lost) == 1 else
                    f"; steps {', '.join(map(str, lost))} were not saved")
                raise EvaluationInterrupted(
                    f"interrupted. {done} of {len(todo)} checkpoint(s) evaluated and saved in "
                    f"{str(self.out)!r}{unsaved}. Run the same evaluation again to resume "
                    "(finished checkpoints are skipped)."
                ) from interrupt
            finally:
                if own_executor and executor is not None:
                    executor.close()
                elif executor is self.executor:
                    self._executor_started = True  # started by run(); finish() closes it
        return {"evaluated": evaluated, "skipped": skipped, "failed": failed}

    @staticmethod
    def _timestamped(task: CheckpointTask) -> CheckpointTask:
        from dataclasses import replace

        return replace(task, submitted_at=time.time())

    def finish(self) -> dict[str, Any]:
        """Wait for submitted checkpoints, write the reports (unless ``reports=False``), close
        the store and the evaluator's executor, return the summary."""
        try:
            self.collect(block=True)
        finally:
            self._close_executor()
        self.store.close()
        if self.reports and self._finished:
            from probekit.reports import write_reports

            summary = write_reports(self.out, quiet=self.quiet, train=self.train)
        else:  # no reports asked for, or nothing evaluated yet (every checkpoint failed)
            from probekit.store import load_failures

            summary = {"run_dir": str(self.out), "steps": sorted({s for s, _ in self._finished}),
                       "measures": list(self.measure_names),
                       "failures": load_failures(self.out)}
        from probekit._plugins import get_host

        get_host().hook.evaluation_finished(run_dir=self.out, summary=summary)
        return summary

    def close(self) -> None:
        """Close the run store and the executor without writing reports (checkpoints still
        being evaluated are dropped; they are evaluated again by the next run)."""
        self._close_executor()
        self.store.close()

    def _close_executor(self) -> None:
        if self.executor is not None and self._executor_started:
            self.executor.close()
            self._executor_started = False

    def __enter__(self) -> SeriesEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quiet_if(quiet: bool) -> contextlib.AbstractContextManager:
    """Silence progress when ``quiet`` (otherwise leave the caller's choice alone)."""
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


@dataclass
class PreparedSeries:
    """An evaluator opened on a series, with the checkpoints to evaluate (what
    :func:`evaluate_series` runs; the CLI uses it to report counts and resume hints)."""

    evaluator: SeriesEvaluator
    checkpoints: list[Checkpoint]
    out: Path


def open_series(
    series: str | Path | Series | Sequence[int],
    settings: EvaluationSettings | Mapping[str, Any] | None = None,
    *,
    out: str | Path | None = None,
    train: np.ndarray | str | Path | None = None,
    holdout: np.ndarray | str | Path | None = None,
    steps: Iterable[int] | str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    reports: bool = True,
    **overrides: Any,
) -> PreparedSeries:
    """Resolve ``series`` and open its :class:`SeriesEvaluator`, validating every input
    before anything is written; nothing is evaluated yet (:func:`evaluate_series` does that).

    Parameters
    ----------
    series :
        A folder of checkpoints (``ckpt-<step>.pt``, ``Model_<step>``, ``checkpoint-<step>/``,
        ``step-<step>.npy|npz|dir``), a ``.toml``/``.json`` manifest, a reference-pipeline run
        directory (adapter, dataset and ``out`` then default to its own), or
        ``"module:function"`` with the ``callable`` adapter and ``steps``.
    settings, **overrides :
        :class:`~probekit.settings.EvaluationSettings` (an instance or a mapping) and keyword
        overrides of its fields: ``probes``, ``metrics``, ``measure_settings``, ``adapter``,
        ``adapter_settings``, ``dataset``, ``dataset_settings``, ``n_samples`` (default: all
        stored samples for pre-generated ones, else 1000), ``seed``, ``n_keep``,
        ``timescales``, ``cache``, ``cache_dir``, ``executor``, ...
    out :
        The run directory (default for a reference-pipeline run: ``<run>/eval``).
    train, holdout :
        Training and held-out sets (arrays or paths), unless ``dataset`` is set.
    steps :
        Evaluate only these steps (``"250,500"``, ``"1000:5000"``, or a list).
    overwrite, quiet, reports :
        As for :class:`SeriesEvaluator`.
    """
    validated, instances, adapter_instance = make_settings(settings, **overrides)
    resolved = resolve_series(series, adapter=validated.adapter,
                              adapter_settings=validated.adapter_settings, steps=steps)
    if adapter_instance is None and resolved.adapter is None:
        from probekit.registry import registries

        names = ", ".join(registries().adapters.names())
        raise ValidationError(
            f"evaluate: adapter must be given for a series named {resolved.series.scheme!r} "
            f"(no default); known adapters: {names}. Example: --adapter callable."
        )
    changes: dict[str, Any] = {}
    if adapter_instance is None:
        changes.update(adapter=resolved.adapter, adapter_settings=resolved.adapter_settings)
    if train is None and holdout is None and validated.dataset is None and resolved.dataset:
        changes.update(dataset=resolved.dataset, dataset_settings=resolved.dataset_settings)
    out = out if out is not None else resolved.out
    if out is None:
        raise ValidationError(
            "evaluate: out must be given (the run directory to write); got none. "
            "Example: --out runs/my-eval"
        )
    check_outputs(out, validated)  # before any checkpoint is opened
    if adapter_instance is None:
        from probekit.registry import get_adapter

        adapter_instance = get_adapter(resolved.adapter)(resolved.adapter_settings)
    n_samples = validated.n_samples if validated.n_samples is not None else resolved.n_samples
    changes["n_samples"] = resolve_n_samples(n_samples, resolved.full or resolved.series,
                                              adapter_instance)
    values = {**validated.model_dump(), **changes,
              "probes": [*(m for m in instances if isinstance(m, Probe)),
                         *(n for n in validated.probes
                           if n not in {m.name for m in instances})],
              "metrics": [*(m for m in instances if isinstance(m, Metric)),
                          *(n for n in validated.metrics
                            if n not in {m.name for m in instances})],
              "adapter": adapter_instance}
    values.pop("adapter_settings", None)
    evaluator = SeriesEvaluator(
        out, values, train=train, holdout=holdout, series=series_label(resolved.series),
        overwrite=overwrite, quiet=quiet, reports=reports,
    )
    return PreparedSeries(evaluator, list(resolved.series.checkpoints), Path(out))


def evaluate_series(series: str | Path | Series | Sequence[int],
                    settings: EvaluationSettings | Mapping[str, Any] | None = None,
                    **options: Any) -> dict[str, Any]:
    """Evaluate every checkpoint of a series and write the run directory and its reports.

    Takes the arguments of :func:`open_series` (``out``, ``train``, ``holdout``, ``steps``,
    ``overwrite``, ``quiet``, ``reports`` and the settings fields as keywords), e.g.::

        evaluate_series("runs/my-run", out="runs/my-eval", train="train.npy",
                        holdout="holdout.npy", probes="nn-ratio", metrics="fd")

    Returns
    -------
    dict
        The summary written to ``summary.json`` (``reports=False``: run directory, steps,
        measures and failures). Failed checkpoints are listed under ``"failures"``.
    """
    prepared = open_series(series, settings, **options)
    evaluator = prepared.evaluator
    try:
        evaluator.run(prepared.checkpoints)
    except BaseException:
        evaluator.close()
        raise
    return evaluator.finish()


evaluate_series.__signature__ = inspect.signature(open_series).replace(  # type: ignore[attr-defined]
    return_annotation="dict[str, Any]")


__all__ = [
    "DEFAULT_N_SAMPLES",
    "N_KEEP",
    "CheckpointOutcome",
    "CheckpointTask",
    "EvaluationContext",
    "EvaluationInterrupted",
    "EvaluationSettings",
    "PreparedSeries",
    "SeriesEvaluator",
    "build_measures",
    "evaluate_checkpoint_task",
    "evaluate_series",
    "failure_reason",
    "make_settings",
    "measure_config",
    "open_series",
    "resolve_series",
]
