"""Executors: where the checkpoint tasks of a series run (DESIGN §8).

An executor has one method that matters, ``run(tasks, context)``: it evaluates each
:class:`~probekit.tasks.CheckpointTask` against the run-wide
:class:`~probekit.tasks.EvaluationContext` (the prepared measures, shipped once) and yields the
:class:`~probekit.tasks.CheckpointOutcome` of each as it completes — in any order. A checkpoint
that fails yields an outcome with ``failure`` set; the driver (the only writer of the run
store) commits each outcome as it arrives. ``close()`` releases workers.

* :class:`SerialExecutor` — one task after another in this process (one checkpoint's samples in
  memory at a time).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from probekit.settings import EvaluationSettings
from probekit.tasks import (
    CheckpointOutcome,
    CheckpointTask,
    EvaluationContext,
    evaluate_checkpoint_task,
)


class Executor(Protocol):
    """What the evaluator needs from an executor."""

    def run(self, tasks: Iterable[CheckpointTask], context: EvaluationContext
            ) -> Iterator[CheckpointOutcome]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Runs tasks one after the other in this process, lazily."""

    name = "serial"

    def run(self, tasks: Iterable[CheckpointTask], context: EvaluationContext
            ) -> Iterator[CheckpointOutcome]:
        for task in tasks:
            yield evaluate_checkpoint_task(task, context, catch=True)

    def close(self) -> None:
        """Nothing to release."""


def make_executor(settings: EvaluationSettings) -> Executor:
    """The executor ``settings.executor`` names, configured from the settings."""
    if settings.executor == "serial":
        return SerialExecutor()
    raise NotImplementedError(f"executor {settings.executor!r} is not available yet")


__all__ = ["Executor", "SerialExecutor", "make_executor"]
