"""Executors (DESIGN §8): a process pool and Ray give the serial results bit for bit, survive a
worker killed mid-task, let a killed driver resume, and record a bad checkpoint as failed.

The Ray tests share one local instance with 2 CPUs (started here, shut down at the end)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from probekit import SeriesEvaluator, evaluate_series
from probekit.executors import ProcessExecutor, RayExecutor, SerialExecutor
from probekit.store import load_failures, load_rows, load_timings

STEPS = [0, 250, 500, 750, 1000, 1500]
N = 24

SAMPLER = textwrap.dedent(
    """
    # near-copies of training samples for a fraction min(1, step / 1000) of the samples
    import os, time
    from pathlib import Path
    import numpy as np

    TRAIN = np.load({train!r})
    KILL_STEP = {kill_step!r}
    MARKER = Path({marker!r})

    def generate(step, n, seed):
        if step == KILL_STEP and not MARKER.exists():
            MARKER.write_text(str(os.getpid()))  # the test kills this process now
            time.sleep(120)
        if step == 1500 and (Path(MARKER.parent) / "corrupt").exists():
            raise OSError("step 1500: truncated file")
        noise = np.random.default_rng(seed).normal(size=(n, *TRAIN.shape[1:]))
        n_copy = int(round(min(1.0, step / 1000) * n))
        out = noise.copy()
        out[:n_copy] = TRAIN[:n_copy] + 0.01 * noise[:n_copy]
        return out.astype(np.float32)
    """
)


@pytest.fixture
def series(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(40, 1, 4, 4)).astype(np.float32)
    holdout = rng.normal(size=(40, 1, 4, 4)).astype(np.float32)
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "holdout.npy", holdout)

    def sampler(kill_step=None):
        path = tmp_path / f"sampler_{kill_step}.py"
        path.write_text(SAMPLER.format(train=str(tmp_path / "train.npy"), kill_step=kill_step,
                                       marker=str(tmp_path / f"marker-{kill_step}")))
        return f"{path}:generate"

    return {"tmp": tmp_path, "sampler": sampler, "train": tmp_path / "train.npy",
            "holdout": tmp_path / "holdout.npy"}


def _evaluate(series, out, spec, **settings):
    with threadpool_limits(1):
        return evaluate_series(spec, out=out, adapter="callable", train=series["train"],
                               holdout=series["holdout"], probes="nn-ratio", metrics="fd",
                               n_samples=N, seed=3, steps=STEPS, quiet=True, reports=False,
                               **settings)


def _comparable(rows):
    return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in rows]


def _results_csv(out):
    from probekit.reports import results_csv

    return results_csv(load_rows(out))


def _kill_when_marked(marker: Path, timeout: float = 120) -> threading.Thread:
    """SIGKILL the process that writes its pid into ``marker`` (a worker, mid-task)."""

    def watch():
        deadline = time.time() + timeout
        while time.time() < deadline:
            if marker.exists() and marker.read_text().strip():
                os.kill(int(marker.read_text()), signal.SIGKILL)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance with the machine's 2 CPUs for every Ray test here."""
    ray = pytest.importorskip("ray")
    from probekit.ray_utils import init_ray

    started = init_ray("local", num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


# -- same numbers ---------------------------------------------------------------------------------


def test_processes_equal_serial_bit_for_bit(series):
    spec = series["sampler"]()
    serial, pool = series["tmp"] / "serial", series["tmp"] / "pool"
    _evaluate(series, serial, spec)
    _evaluate(series, pool, spec, executor="processes", workers=2)
    assert _results_csv(pool) == _results_csv(serial)
    timings = load_timings(pool)
    assert {t["step"] for t in timings} == set(STEPS)
    workers = {t["worker"] for t in timings}
    assert all(w and str(os.getpid()) not in w.split(":")[1] for w in workers)
    assert all(t["seconds_queue"] is not None and t["seconds_generate"] is not None
               for t in timings)


def test_ray_equals_serial_bit_for_bit(series, ray_instance):
    spec = series["sampler"]()
    serial, on_ray = series["tmp"] / "serial", series["tmp"] / "ray"
    _evaluate(series, serial, spec)
    _evaluate(series, on_ray, spec, executor="ray")
    assert _results_csv(on_ray) == _results_csv(serial)
    assert ray_instance.is_initialized()  # a running instance is joined, not shut down


def test_reference_run_series_on_ray_equals_serial(tmp_path, ray_instance):
    import torch
    from reference.conftest import tiny_config  # tests/reference (a package beside this file)

    from probekit.reference.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = tmp_path / "ref"
        train(tiny_config(n=8, steps=20), run, quiet=True)
        a, b = tmp_path / "serial", tmp_path / "ray"
        common = {"probes": "nn-ratio", "n_samples": 16, "quiet": True, "reports": False}
        with threadpool_limits(1):
            evaluate_series(run, out=a, **common)
            evaluate_series(run, out=b, executor="ray", **common)
    finally:
        torch.set_num_threads(threads)
    assert len(load_rows(a)) > 0 and _results_csv(b) == _results_csv(a)


# -- faults -------------------------------------------------------------------------------------


def test_a_worker_killed_mid_task_is_retried_by_ray(series, ray_instance):
    clean_spec, kill_spec = series["sampler"](), series["sampler"](kill_step=500)
    clean, killed = series["tmp"] / "clean", series["tmp"] / "killed"
    _evaluate(series, clean, clean_spec)
    watcher = _kill_when_marked(series["tmp"] / "marker-500")
    _evaluate(series, killed, kill_spec, executor="ray", max_retries=2)
    watcher.join(1)
    assert (series["tmp"] / "marker-500").exists()  # the worker was really killed mid-task
    assert load_failures(killed) == []
    assert _results_csv(killed) == _results_csv(clean)


def test_a_worker_killed_mid_task_is_retried_by_the_process_pool(series):
    clean_spec, kill_spec = series["sampler"](), series["sampler"](kill_step=500)
    clean, killed = series["tmp"] / "clean", series["tmp"] / "killed"
    _evaluate(series, clean, clean_spec)
    watcher = _kill_when_marked(series["tmp"] / "marker-500")
    _evaluate(series, killed, kill_spec, executor="processes", workers=2)
    watcher.join(1)
    assert load_failures(killed) == []
    assert _results_csv(killed) == _results_csv(clean)


def test_a_bad_checkpoint_is_recorded_as_failed_on_ray_as_in_serial(series, ray_instance):
    (series["tmp"] / "corrupt").write_text("")
    spec = series["sampler"]()
    a, b = series["tmp"] / "serial", series["tmp"] / "ray"
    _evaluate(series, a, spec)
    _evaluate(series, b, spec, executor="ray")
    for out in (a, b):
        (failure,) = load_failures(out)
        assert failure["step"] == 1500 and failure["reason"] == \
            "OSError: step 1500: truncated file"
    assert _results_csv(b) == _results_csv(a)


def test_a_killed_driver_resumes_with_identical_results(series):
    spec = series["sampler"]()
    out, clean = series["tmp"] / "run", series["tmp"] / "clean"
    argv = [sys.executable, "-m", "probekit.cli", "evaluate", spec, "--adapter", "callable",
            "--train", str(series["train"]), "--holdout", str(series["holdout"]),
            "--probes", "nn-ratio", "--metrics", "fd", "--n-samples", str(N), "--seed", "3",
            "--steps", ",".join(map(str, STEPS)), "--no-report", "--quiet", "--out", str(out),
            "--executor", "processes", "--workers", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill the driver once some checkpoints are committed
        time.sleep(0.05)
        try:
            if len({r["step"] for r in load_rows(out)}) >= 2:
                break
        except Exception:
            continue
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    done = {r["step"] for r in load_rows(out)}
    assert 2 <= len(done) < len(STEPS) or len(done) == len(STEPS)
    _evaluate(series, out, spec, executor="processes", workers=2)  # the same command again
    _evaluate(series, clean, spec)
    assert _results_csv(out) == _results_csv(clean)


# -- a training loop hands checkpoints over without waiting --------------------------------------


class SamplerHandle:
    """A picklable handle: the sampler spec and the step (as a model's weights would be)."""

    def __init__(self, spec, step):
        self.spec, self.step = spec, step

    def generate(self, n, seed):
        from probekit_plugins.adapters.callable import load_function

        return load_function(self.spec)(self.step, n, seed)


@pytest.mark.parametrize("kind", ["serial", "processes"])
def test_submit_does_not_wait_and_finish_collects(series, kind):
    spec = series["sampler"]()
    executor = SerialExecutor() if kind == "serial" else ProcessExecutor(2)
    out = series["tmp"] / kind
    ev = SeriesEvaluator(out, train=series["train"], holdout=series["holdout"],
                         probes="nn-ratio", n_samples=N, seed=3, quiet=True, reports=False,
                         executor=executor)
    started = time.perf_counter()
    for step in STEPS:
        ev.submit(step, PicklableHandle(spec, step))
    submitting = time.perf_counter() - started
    ev.finish()
    assert {r["step"] for r in load_rows(out)} == set(STEPS)
    clean = series["tmp"] / "clean"
    with threadpool_limits(1):
        evaluate_series(spec, out=clean, adapter="callable", train=series["train"],
                        holdout=series["holdout"], probes="nn-ratio", n_samples=N, seed=3,
                        steps=STEPS, quiet=True, reports=False)
    assert _comparable(load_rows(out)) == _comparable(load_rows(clean))
    assert submitting >= 0


from probekit import ModelHandle  # noqa: E402  (the handle class must be importable by name)


class PicklableHandle(SamplerHandle, ModelHandle):
    """Importable, so worker processes can unpickle it."""


def test_ray_executor_reserves_what_it_is_told(ray_instance):
    executor = RayExecutor(cpus_per_task=2)
    assert executor.workers == 1  # 2 CPUs in the instance, 2 per task
    executor.close()
    assert ray_instance.is_initialized()
