"""fid + kid + prdc on one checkpoint in one Inception space: each measure extracting its own
features (before) against the evaluator's per-checkpoint feature sharing (after).

Both routes run in this process, interleaved repeat by repeat, on the same prepared metrics and
the same samples; the numbers must be identical, and the ratio of the times is what to read
(absolute seconds depend on the machine and its load, which is printed).

The real Inception weights cannot be fetched here, so a seeded random state dict with the same
keys and shapes stands in (``write_random_weights``); the values are not FIDs of anything.

Usage:
    python benchmarks/bench_shared_features.py            # 300 reference, 300 samples, 3 repeats
    python benchmarks/bench_shared_features.py --quick    # 40 / 40, 1 repeat
    python benchmarks/bench_shared_features.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-reference", type=int, default=300)
    parser.add_argument("--n-samples", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="40 / 40, one repeat")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    if args.quick:
        args.n_reference, args.n_samples, args.repeats = 40, 40, 1

    work = Path(tempfile.mkdtemp(prefix="bench-shared-"))
    import torch
    from probekit_plugins.features.inception import write_random_weights

    from probekit import get_metric
    from probekit.features import shared_features
    from probekit.tasks import CheckpointTask, EvaluationContext, evaluate_checkpoint_task
    from probekit.types import Checkpoint

    torch.set_num_threads(args.threads)
    weights = write_random_weights(work / "inception.pth")
    rng = np.random.default_rng(0)
    reference = rng.uniform(0, 1, (args.n_reference, 1, 32, 32)).astype(np.float32)
    samples = np.clip(reference[: args.n_samples] + rng.normal(0, 0.1, (args.n_samples, 1, 32,
                                                                        32)), 0, 1)
    samples = samples.astype(np.float32)
    inception = {"weights": str(weights)}
    metrics = [
        get_metric("fid")(weights=str(weights)),
        get_metric("kid")(features="inception", feature_settings=inception, n_subsets=20,
                          subset_size=min(args.n_samples, args.n_reference, 100)),
        get_metric("prdc")(features="inception", feature_settings=inception),
    ]
    with shared_features():  # the reference side once (what the evaluator does too)
        for m in metrics:
            m.prepare(reference)

    class Handle:
        def generate(self, n, seed):
            return samples[:n]

    from probekit import ModelHandle

    class H(Handle, ModelHandle):
        pass

    context = EvaluationContext({m.name: m for m in metrics}, None, "image", samples.shape[1:])
    task = CheckpointTask(Checkpoint(0, "bench"), tuple(m.name for m in metrics),
                          len(samples), 0, 0)
    before, after, after_features = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        alone = [m.evaluate(samples) for m in metrics]  # each extracts its own features
        before.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        outcome = evaluate_checkpoint_task(task, context, handle=H())
        after.append(time.perf_counter() - t0)
        after_features.append(outcome.seconds["features"])
        for a, b in zip(alone, outcome.results, strict=True):
            assert a.values == b.values, (a.measure, a.values, b.values)
    out = {
        "n_reference": args.n_reference, "n_samples": args.n_samples,
        "repeats": args.repeats, "threads": args.threads,
        "load_average": os.getloadavg(),
        "before_s": {"min": min(before), "median": statistics.median(before)},
        "after_s": {"min": min(after), "median": statistics.median(after)},
        "after_feature_extraction_s": statistics.median(after_features),
        "speedup_min": min(before) / min(after),
        "identical_results": True,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
