"""One checkpoint series evaluated by each executor: serial, a process pool, Ray.

The series: ``--checkpoints`` checkpoints of a small DDIM sampler (the MLP denoiser of
``bench_evaluator.py``: 64 -> 512 -> 512 -> 64, ``--ddim-steps`` steps, ``--n-samples`` 8x8
samples per checkpoint, one torch thread) probed with ``nn-ratio`` against the 1297 bundled
digits. Each executor evaluates the same series into its own run directory; the results must be
identical (results.csv compared). Read:

* the wall-time ratio serial / executor (the machine's cores are the ceiling);
* the per-task overhead: ``(wall × workers − Σ task seconds) / n_tasks`` (scheduling, shipping
  the task and its outcome, the driver's commit), as a share of the mean task time. The task
  time is what the worker spent loading, sampling and measuring (the run store's timings).

The load average is printed: on a busy machine the ratios fall for reasons of their own.

Usage:
    python benchmarks/bench_executors.py              # 24 checkpoints, 2 workers
    python benchmarks/bench_executors.py --quick      # 6 checkpoints, fewer samples
    python benchmarks/bench_executors.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_evaluator import SAMPLER_SOURCE  # noqa: E402  (the same sampler as that benchmark)


def run(executor: str, out: Path, spec: str, train: Path, steps: list[int], n: int,
        workers: int) -> dict:
    from threadpoolctl import threadpool_limits

    from probekit import evaluate_series
    from probekit.store import load_timings

    extra = {"workers": workers} if executor == "processes" else {}
    started = time.perf_counter()
    with threadpool_limits(1):
        evaluate_series(spec, out=out, adapter="callable", train=train, probes="nn-ratio",
                        n_samples=n, seed=0, steps=steps, quiet=True, reports=False,
                        executor=executor, **extra)
    wall = time.perf_counter() - started
    timings = load_timings(out)
    task = [sum(t[k] or 0.0 for k in ("seconds_load", "seconds_generate", "seconds_measures"))
            for t in timings]
    used = 1 if executor == "serial" else workers
    overhead = (wall * used - sum(task)) / len(task)
    return {"executor": executor, "wall_s": wall, "workers": used,
            "mean_task_s": sum(task) / len(task), "overhead_per_task_s": overhead,
            "overhead_share": overhead / (sum(task) / len(task)),
            "queue_s_median": sorted(t["seconds_queue"] or 0.0 for t in timings)[len(task) // 2]}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=24)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    if args.quick:
        args.checkpoints, args.n_samples, args.ddim_steps = 6, 200, 20

    import numpy as np

    from probekit import get_dataset
    from probekit.ray_utils import init_ray
    from probekit.reports import results_csv
    from probekit.store import load_rows

    work = Path(tempfile.mkdtemp(prefix="bench-executors-"))
    train = get_dataset("digits")(n_train=1297).load().train
    np.save(work / "train.npy", train)
    sampler = work / "sampler.py"
    sampler.write_text(SAMPLER_SOURCE.format(ddim_steps=args.ddim_steps))
    spec = f"{sampler}:generate"
    steps = [250 * (i + 1) for i in range(args.checkpoints)]
    started_ray = init_ray("local", num_cpus=args.workers)  # started once, before the timing
    try:
        rows = [run(name, work / name, spec, work / "train.npy", steps, args.n_samples,
                    args.workers) for name in ("serial", "processes", "ray")]
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    tables = {r["executor"]: results_csv(load_rows(work / r["executor"])) for r in rows}
    serial = rows[0]["wall_s"]
    out = {
        "checkpoints": args.checkpoints, "n_samples": args.n_samples,
        "ddim_steps": args.ddim_steps, "workers": args.workers,
        "load_average_after": os.getloadavg(),
        "runs": [{**r, "speedup_vs_serial": serial / r["wall_s"]} for r in rows],
        "identical_results": len(set(tables.values())) == 1,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
