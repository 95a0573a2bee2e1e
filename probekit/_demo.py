"""``probekit demo``: the nn-ratio probe on bundled sklearn digits (no download).

A training subset is probed with (a) its own images plus small noise — a generator that copies
— and (b) held-out digits — fresh samples from the same distribution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from probekit.io import atomic_write_json


def run_demo(out: Path, n_train: int = 1000) -> int:
    """Run the demo and print both results."""
    from probekit.registry import get_dataset, get_probe

    splits = get_dataset("digits")().load()
    pool, holdout = splits.train, splits.holdout
    train = pool[:n_train]
    rng = np.random.default_rng(1)
    copies = train[rng.choice(n_train, 500, replace=False)]
    copies = copies + rng.normal(0.0, 0.02, copies.shape).astype(np.float32)
    probe = get_probe("nn-ratio")().prepare(train)
    print(f"nn-ratio probe, training set: {n_train} bundled digits (8x8, values in [-1, 1])")
    report = {}
    for label, samples in [("copies of training digits + noise (sigma=0.02)", copies),
                           ("held-out digits (never trained on)", holdout)]:
        r = probe.evaluate(samples)
        low, high = r.ci["f_mem"]
        print(f"  {label:<48} f_mem = {r.value:.3f}  (95% CI {low:.3f}–{high:.3f}, "
              f"n={len(samples)})")
        report[label] = r.to_dict()
    atomic_write_json(out / "demo.json", report)
    print(f"results written to {out / 'demo.json'}")
    return 0
