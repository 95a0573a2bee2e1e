"""Executors: where the checkpoint tasks of a series run (DESIGN §8).

An executor evaluates :class:`~probekit.tasks.CheckpointTask` objects against one run-wide
:class:`~probekit.tasks.EvaluationContext` — the prepared measures (the reference side, built
once by the driver or restored from its cache) and the adapter — and hands back each
:class:`~probekit.tasks.CheckpointOutcome` as it completes, in any order. The context is
shipped once per worker, never re-prepared per task; samples and features stay on the worker;
only result rows, timings and the few kept samples come back. The driver is the only writer of
the run store and commits each outcome as it arrives, so a killed driver resumes like a serial
run. A checkpoint that fails (a corrupt file) comes back as an outcome with ``failure`` set.

* :class:`SerialExecutor` — one task after another in this process.
* :class:`ProcessExecutor` — a local pool of ``workers`` processes (``spawn``: safe with torch
  and BLAS threads); a pool broken by a killed worker is restarted and its unfinished tasks
  retried, at most ``max_retries`` times each.
* :class:`RayExecutor` — Ray tasks on a local instance or a cluster (``ray_address``), with
  ``cpus_per_task``/``gpus_per_task`` reserved per task (GPU-aware placement), the context in
  the object store, and Ray's own retries of tasks whose worker died (``max_retries``).

The protocol: ``start(context)``, ``submit(task, handle=None)`` (a handle travels with the task,
for a training loop that hands over its model), ``completed(block)`` yielding outcomes that are
done (``block=True``: wait for all), ``pending``, ``close()``; :meth:`Executor.run` drives a whole
series with a bounded number of tasks in flight.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from probekit.base import ModelHandle
from probekit.errors import ValidationError
from probekit.settings import EvaluationSettings
from probekit.tasks import (
    CheckpointOutcome,
    CheckpointTask,
    EvaluationContext,
    evaluate_checkpoint_task,
    failure_reason,
)

# -- shipping the context ----------------------------------------------------------------------


def pack_context(context: EvaluationContext) -> bytes:
    """The context as bytes for other processes, with the registry's stamps (plugin name and
    version) of each class, which a fresh process would not have."""
    stamps = {}
    for obj in [*context.measures.values(), context.adapter]:
        if obj is not None:
            cls = type(obj)
            stamps[f"{cls.__module__}.{cls.__qualname__}"] = (cls, cls.plugin, cls.plugin_version)
    try:
        return pickle.dumps((context, stamps), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise ValidationError(
            f"executor: the prepared measures and adapter must be picklable to run in other "
            f"processes; pickling failed ({failure_reason(exc)}). Use --executor serial, or "
            "make the plugin picklable (see docs/writing_a_probe.md)."
        ) from None


def unpack_context(blob: bytes) -> EvaluationContext:
    """The context :func:`pack_context` packed, with the class stamps restored."""
    context, stamps = pickle.loads(blob)
    for cls, plugin, version in stamps.values():
        cls.plugin, cls.plugin_version = plugin, version
    return context


_THREAD_LIMITS: list[Any] = []


def _set_threads(threads: int | None) -> None:
    """Torch and BLAS threads of a worker (its share of the machine); numbers computed with
    BLAS reductions are bitwise equal to a serial run with as many threads."""
    if not threads:
        return
    from threadpoolctl import threadpool_limits

    _THREAD_LIMITS.append(threadpool_limits(threads))  # kept for the worker's lifetime
    import torch

    torch.set_num_threads(threads)


# -- the protocol ----------------------------------------------------------------------------


class Executor:
    """Base of the executors: the series loop on top of ``start``/``submit``/``completed``."""

    name = "executor"
    #: Tasks kept in flight per worker (more hides scheduling latency; fewer bounds memory).
    in_flight_per_worker = 2

    def __init__(self) -> None:
        self.context: EvaluationContext | None = None

    @property
    def workers(self) -> int:
        return 1

    def start(self, context: EvaluationContext) -> None:
        self.context = context

    def submit(self, task: CheckpointTask, handle: ModelHandle | None = None) -> None:
        raise NotImplementedError

    def completed(self, block: bool = False) -> Iterator[CheckpointOutcome]:
        raise NotImplementedError

    @property
    def pending(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers (unfinished tasks are cancelled)."""

    def run(self, tasks: Iterable[CheckpointTask], context: EvaluationContext
            ) -> Iterator[CheckpointOutcome]:
        """Evaluate ``tasks``; yield each outcome as it completes."""
        self.start(context)
        limit = max(1, self.workers * self.in_flight_per_worker)
        queue = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and self.pending < limit:
                task = next(queue, None)
                if task is None:
                    exhausted = True
                else:
                    self.submit(task)
            if self.pending == 0:
                return
            yield from self._one_or_more()

    def _one_or_more(self) -> Iterator[CheckpointOutcome]:
        """Wait until at least one task is done; yield every done one."""
        raise NotImplementedError


class SerialExecutor(Executor):
    """Runs tasks one after the other in this process, lazily (one checkpoint's samples in
    memory at a time)."""

    name = "serial"
    in_flight_per_worker = 1  # nothing queued ahead: a Ctrl-C loses exactly one checkpoint

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[tuple[CheckpointTask, ModelHandle | None]] = deque()

    def submit(self, task: CheckpointTask, handle: ModelHandle | None = None) -> None:
        self._queue.append((task, handle))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def completed(self, block: bool = False) -> Iterator[CheckpointOutcome]:
        # serial work is done when asked for: a non-blocking call runs nothing
        while block and self._queue:
            yield from self._one_or_more()

    def _one_or_more(self) -> Iterator[CheckpointOutcome]:
        task, handle = self._queue.popleft()
        assert self.context is not None
        yield evaluate_checkpoint_task(task, self.context, handle=handle, catch=True)

    def close(self) -> None:
        self._queue.clear()


# -- a local process pool ----------------------------------------------------------------------

_WORKER_CONTEXT: EvaluationContext | None = None


def _init_worker(blob: bytes, threads: int | None) -> None:
    global _WORKER_CONTEXT
    _set_threads(threads)
    _WORKER_CONTEXT = unpack_context(blob)


def _run_in_worker(task: CheckpointTask, handle: ModelHandle | None) -> CheckpointOutcome:
    assert _WORKER_CONTEXT is not None, "worker started without a context"
    return evaluate_checkpoint_task(task, _WORKER_CONTEXT, handle=handle, catch=True)


class ProcessExecutor(Executor):
    """A local pool of worker processes; each receives the context once, at start."""

    name = "processes"

    def __init__(self, workers: int | None = None, *, max_retries: int = 3,
                 threads_per_worker: int | None = None):
        super().__init__()
        cores = os.cpu_count() or 1
        self._workers = int(workers or cores)
        self.max_retries = int(max_retries)
        self.threads = threads_per_worker or max(1, cores // self._workers)
        self._pool: cf.ProcessPoolExecutor | None = None
        self._blob: bytes | None = None
        self._futures: dict[cf.Future, tuple[CheckpointTask, ModelHandle | None]] = {}
        self._attempts: dict[int, int] = {}
        self._ready: deque[CheckpointOutcome] = deque()

    @property
    def workers(self) -> int:
        return self._workers

    def start(self, context: EvaluationContext) -> None:
        super().start(context)
        self._blob = pack_context(context)
        self._new_pool()

    def _new_pool(self) -> None:
        self._pool = cf.ProcessPoolExecutor(
            max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(self._blob, self.threads))

    def submit(self, task: CheckpointTask, handle: ModelHandle | None = None) -> None:
        assert self._pool is not None, "start() first"
        self._futures[self._pool.submit(_run_in_worker, task, handle)] = (task, handle)

    @property
    def pending(self) -> int:
        return len(self._futures) + len(self._ready)

    def completed(self, block: bool = False) -> Iterator[CheckpointOutcome]:
        while self._ready:
            yield self._ready.popleft()
        if block:
            while self.pending:
                yield from self._one_or_more()
        else:
            done = [f for f in self._futures if f.done()]
            yield from self._collect(done)

    def _one_or_more(self) -> Iterator[CheckpointOutcome]:
        while self._ready:
            yield self._ready.popleft()
        if not self._futures:
            return
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        yield from self._collect(done)

    def _collect(self, done: Iterable[cf.Future]) -> Iterator[CheckpointOutcome]:
        broken: list[tuple[CheckpointTask, ModelHandle | None]] = []
        for future in done:
            task, handle = self._futures.pop(future)
            try:
                yield future.result()
            except cf.process.BrokenProcessPool:
                broken.append((task, handle))
            except Exception as exc:  # the task could not even be sent or returned
                yield CheckpointOutcome(task.checkpoint, [], None, 0,
                                        failure=failure_reason(exc))
        if broken:
            # a worker died (killed, out of memory): every task of the pool is lost with it;
            # start a new pool and send them again, each at most max_retries times
            lost = broken + [self._futures.pop(f) for f in list(self._futures)]
            self._restart()
            for task, handle in lost:
                step = task.checkpoint.step
                self._attempts[step] = self._attempts.get(step, 0) + 1
                if self._attempts[step] > self.max_retries:
                    self._ready.append(CheckpointOutcome(
                        task.checkpoint, [], None, 0,
                        failure=f"WorkerDied: the worker process evaluating step {step} died "
                        f"{self._attempts[step]} times (killed, or out of memory)"))
                else:
                    self.submit(task, handle)

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._new_pool()

    def close(self) -> None:
        if self._pool is not None:
            for future in self._futures:
                future.cancel()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures.clear()


# -- Ray ---------------------------------------------------------------------------------------

#: Context unpacked once per Ray worker process, by the object id it came from.
_RAY_CONTEXTS: dict[str, EvaluationContext] = {}


def _ray_task(blob_ref: list[Any], task: CheckpointTask, handle: ModelHandle | None,
              threads: int | None) -> CheckpointOutcome:
    # the reference comes wrapped in a list, so Ray does not fetch it for every task: a
    # worker fetches and unpacks the context once, then reuses it for the run's later tasks
    key = blob_ref[0].hex()
    context = _RAY_CONTEXTS.get(key)
    if context is None:
        import ray

        _set_threads(threads)
        _RAY_CONTEXTS.clear()  # one run at a time per worker
        context = _RAY_CONTEXTS[key] = unpack_context(ray.get(blob_ref[0]))
    return evaluate_checkpoint_task(task, context, handle=handle, catch=True)


class RayExecutor(Executor):
    """Checkpoint tasks as Ray tasks: a local instance (started here and shut down at
    :meth:`close`) or a cluster (``address``: ``auto``, ``HOST:PORT``, ``ray://HOST:PORT``)."""

    name = "ray"

    def __init__(self, *, address: str | None = None, cpus_per_task: float = 1.0,
                 gpus_per_task: float = 0.0, max_retries: int = 3,
                 num_cpus: int | None = None):
        super().__init__()
        from probekit.ray_utils import import_ray, init_ray

        self.ray = import_ray()
        self._owned = init_ray(address, num_cpus=num_cpus)
        self.cpus_per_task = float(cpus_per_task)
        self.gpus_per_task = float(gpus_per_task)
        self.max_retries = int(max_retries)
        self._remote = self.ray.remote(_ray_task).options(
            num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
            max_retries=self.max_retries, retry_exceptions=False)
        self._refs: dict[Any, CheckpointTask] = {}
        self._blob_ref: Any = None

    @property
    def workers(self) -> int:
        total = self.ray.cluster_resources().get("CPU", 1.0)
        if self.gpus_per_task:
            return max(1, int(self.ray.cluster_resources().get("GPU", 0.0) //
                              self.gpus_per_task))
        return max(1, int(total // max(self.cpus_per_task, 1e-9)))

    def start(self, context: EvaluationContext) -> None:
        super().start(context)
        self._blob_ref = self.ray.put(pack_context(context))  # shipped once, shared by tasks

    def submit(self, task: CheckpointTask, handle: ModelHandle | None = None) -> None:
        threads = max(1, int(self.cpus_per_task))
        ref = self._remote.remote([self._blob_ref], task, handle, threads)
        self._refs[ref] = task

    @property
    def pending(self) -> int:
        return len(self._refs)

    def completed(self, block: bool = False) -> Iterator[CheckpointOutcome]:
        if block:
            while self._refs:
                yield from self._one_or_more()
            return
        if self._refs:
            done, _ = self.ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
            yield from self._collect(done)

    def _one_or_more(self) -> Iterator[CheckpointOutcome]:
        if not self._refs:
            return
        done, _ = self.ray.wait(list(self._refs), num_returns=1)
        yield from self._collect(done)

    def _collect(self, done: Iterable[Any]) -> Iterator[CheckpointOutcome]:
        for ref in done:
            task = self._refs.pop(ref)
            try:
                yield self.ray.get(ref)
            except Exception as exc:  # retries exhausted (WorkerCrashedError), or lost node
                yield CheckpointOutcome(task.checkpoint, [], None, 0,
                                        failure=failure_reason(exc))

    def close(self) -> None:
        for ref in list(self._refs):
            self.ray.cancel(ref, force=True)
        self._refs.clear()
        if self._owned:
            self.ray.shutdown()
            self._owned = False


def make_executor(settings: EvaluationSettings) -> Executor:
    """The executor ``settings.executor`` names, configured from the settings."""
    if settings.executor == "processes":
        return ProcessExecutor(settings.workers, max_retries=settings.max_retries)
    if settings.executor == "ray":
        return RayExecutor(address=settings.ray_address, cpus_per_task=settings.cpus_per_task,
                           gpus_per_task=settings.gpus_per_task,
                           max_retries=settings.max_retries)
    return SerialExecutor()


__all__ = [
    "Executor",
    "ProcessExecutor",
    "RayExecutor",
    "SerialExecutor",
    "make_executor",
    "pack_context",
    "unpack_context",
]
