"""Evaluating one checkpoint: a pure task (DESIGN §8).

``(checkpoint, run settings, prepared reference) -> outcome``: :func:`evaluate_checkpoint_task`
loads the checkpoint with the adapter (or takes a loaded handle), generates the samples the
measures need, extracts each feature space once (:func:`probekit.features.shared_features`) and
runs every measure. It writes nothing: the driver commits the outcome to the run store. Every
input is plain data or a prepared measure, so an executor can run the task in another process
or on another machine (:mod:`probekit.executors`).

A checkpoint that cannot be evaluated — a truncated file, a corrupt safetensors, samples of the
wrong shape — gives an outcome with ``failure`` set to a one-line reason instead of results, so
the other checkpoints go on (:func:`failure_reason`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from probekit.base import Adapter, Measure, Metric, ModelHandle
from probekit.errors import ValidationError
from probekit.features import shared_features
from probekit.types import Checkpoint, Result
from probekit.validation import MODALITY_NDIM, check_array, describe


@dataclass(frozen=True)
class CheckpointTask:
    """One unit of work: evaluate ``measures`` at ``checkpoint`` (plain data, picklable)."""

    checkpoint: Checkpoint
    measures: tuple[str, ...]
    n_samples: int
    seed: int
    n_keep: int
    submitted_at: float | None = None


@dataclass
class EvaluationContext:
    """The run-wide, read-only side of every task: the prepared measures (the cached
    reference), the adapter, and what generated samples must look like."""

    measures: Mapping[str, Measure]
    adapter: Adapter | None
    modality: str
    sample_shape: tuple[int, ...] | None
    adapter_name: str = "handle"
    #: One condition (caption or class label) per generated sample of a conditional model,
    #: the same at every checkpoint (``None``: unconditional, or labels drawn by the handle).
    conditions: tuple[Any, ...] | None = None


@dataclass
class CheckpointOutcome:
    """What a task returns to the driver (which commits it).

    ``failure`` is ``None`` for a finished checkpoint; otherwise the one-line reason it could
    not be evaluated, and ``results`` is empty.
    """

    checkpoint: Checkpoint
    results: list[Result]
    kept_samples: np.ndarray | None
    n_samples: int
    seconds: dict[str, Any] = field(default_factory=dict)
    measure_seconds: dict[str, float] = field(default_factory=dict)
    failure: str | None = None


def failure_reason(exc: BaseException) -> str:
    """One line for a failed checkpoint: the error's type and the first line of its message
    (probekit's own errors are one line already; torch's unpickling errors are not)."""
    from probekit.validation import one_line

    text = str(exc).strip().splitlines()
    first = one_line(text[0] if text else "")
    if "Weights only load failed" in str(exc):  # a loader outside probekit.io: never relay
        first = ("refused to load a file that holds pickled Python objects (they would run "
                 "code while loading); only if you trust it, set PROBEKIT_ALLOW_PICKLE=1")
    name = type(exc).__name__
    return f"{name}: {first}" if first else name


def worker_name() -> str:
    """``host:pid`` of the process running a task (recorded with its timings)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def evaluate_checkpoint_task(
    task: CheckpointTask, context: EvaluationContext, handle: ModelHandle | None = None, *,
    catch: bool = False,
) -> CheckpointOutcome:
    """Load the checkpoint (unless ``handle`` is given), generate samples if a measure needs
    them, and run every measure of ``task``. Writes nothing.

    With ``catch``, an ``Exception`` (not a ``KeyboardInterrupt``) becomes an outcome whose
    ``failure`` says why; without it, the exception propagates.
    """
    started = time.perf_counter()
    queued = None if task.submitted_at is None else max(0.0, time.time() - task.submitted_at)
    seconds: dict[str, Any] = {"queue": queued, "worker": worker_name()}
    try:
        return _evaluate(task, context, handle, started, seconds)
    except Exception as exc:
        if not catch:
            raise
        seconds["total"] = time.perf_counter() - started
        return CheckpointOutcome(task.checkpoint, [], None, 0, seconds,
                                 failure=failure_reason(exc))


def _evaluate(task: CheckpointTask, context: EvaluationContext, handle: ModelHandle | None,
              started: float, seconds: dict[str, Any]) -> CheckpointOutcome:
    step = task.checkpoint.step
    if handle is None:
        if context.adapter is None:
            raise ValidationError("evaluator: a task needs an adapter or a loaded handle.")
        handle = context.adapter.load(task.checkpoint)
    loaded = time.perf_counter()
    measures = [context.measures[name] for name in task.measures]
    samples = None
    conditions = _conditions(handle, task, context)
    if any("samples" in m.requires for m in measures):
        generated_samples = handle.generate(task.n_samples, task.seed) if conditions is None \
            else handle.generate(task.n_samples, task.seed, conditions=conditions)
        samples = _check_samples(generated_samples, task, context)
    generated = time.perf_counter()
    results, measure_seconds = [], {}
    with shared_features() as sharing:
        for measure in measures:
            t0 = time.perf_counter()
            results.append(_evaluate_measure(measure, samples, handle, step, conditions))
            measure_seconds[measure.name] = time.perf_counter() - t0
    done = time.perf_counter()
    kept = None
    if samples is not None and task.n_keep > 0:
        from probekit.conditions import keep_indices

        kept = np.array(samples[keep_indices(context.conditions, len(samples), task.n_keep)],
                        dtype=np.float32)
    seconds.update({"load": loaded - started, "generate": generated - loaded,
                    "features": sharing.seconds, "measures": done - generated})
    return CheckpointOutcome(
        checkpoint=task.checkpoint,
        results=results,
        kept_samples=kept,
        n_samples=task.n_samples if samples is not None else 0,
        seconds=seconds,
        measure_seconds=measure_seconds,
    )


def _conditions(handle: ModelHandle, task: CheckpointTask,
                context: EvaluationContext) -> tuple[Any, ...] | None:
    """The conditions of this checkpoint's samples: the run's (checked against the handle),
    the labels a class-conditional handle draws itself, or ``None`` (unconditional)."""
    from probekit.conditions import is_conditional

    step = task.checkpoint.step
    if not is_conditional(handle):
        if context.conditions is not None:
            raise ValidationError(
                f"evaluator: the handle of step {step} ({type(handle).__name__}) is "
                "unconditional, but the run samples prompts; drop --prompts or use a conditional "
                "adapter (a probekit.conditions.ConditionalModelHandle)."
            )
        return None
    if context.conditions is not None and len(context.conditions) != task.n_samples:
        raise ValidationError(
            f"evaluator: {len(context.conditions)} conditions for n_samples={task.n_samples} "
            "samples; they must match (one prompt per sample)."
        )
    return handle.resolve_conditions(task.n_samples, task.seed, context.conditions)


def _float_dtype(x: Any) -> type:
    dtype = getattr(x, "dtype", None)
    return dtype.type if dtype is not None and np.dtype(dtype).kind == "f" else np.float32


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
                      step: int, conditions: tuple[Any, ...] | None = None) -> Result:
    if isinstance(measure, Metric):
        return measure.evaluate(samples)
    model = handle if "model" in measure.requires else None
    if model is not None and type(model).predict_noise is ModelHandle.predict_noise:
        raise ValidationError(
            f"{measure.name}: needs a model that predicts noise, but the handle of step {step} "
            f"({type(model).__name__}) cannot. Use a white-box adapter (diffusers, ddpm) or "
            f"drop {measure.name}."
        )
    given = samples if "samples" in measure.requires else None
    if conditions is None or "conditions" not in measure.requires:
        return measure.evaluate(given, model=model)
    result = measure.evaluate(given, model=model, conditions=conditions)
    if given is not None and result.per_sample and "condition" not in result.per_sample:
        # per-sample arrays follow the samples: record their prompts for per-prompt tables
        from dataclasses import replace

        from probekit.conditions import encode_conditions

        result = replace(result, per_sample={**result.per_sample,
                                             "condition": encode_conditions(conditions)})
    return result


__all__ = [
    "CheckpointOutcome",
    "CheckpointTask",
    "EvaluationContext",
    "evaluate_checkpoint_task",
    "failure_reason",
    "worker_name",
]
