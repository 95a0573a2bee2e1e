"""Issue 15's CI smoke test: a tiny ``mnist32`` sweep (the CPU preset, n = 16, 32, 64, fixed
seeds) through ``probekit reference sweep``.

What a few minutes of this 2-core CPU can show at 32×32. tau_mem itself is out of reach here:
the sweep of ``docs/reference_pipeline.md`` measured tau_mem(16) ≈ 10³ steps and tau_mem ∝ n, so
tau_mem(64) needs ≈ 4·10³ steps (over 10 minutes of one idle core); the tau_mem ordering is
checked on that sweep (``benchmarks/bench_mnist32_sweep.py``). Within the smoke test's 500
steps every run is still below the f_mem level, and the test asserts the two things that are
measurable there and that the paper predicts: memorization progresses faster for fewer images
— the median nearest-neighbour ratio d1/d2 of the samples at the last step is ordered
16 < 32 < 64 — while generation does not depend on n — tau_gen(16) within a factor 2 of
tau_gen(64).
"""

from __future__ import annotations

import pytest

from probekit.reference.sweep import sweep
from probekit.store import load_rows

STEPS = 500


@pytest.mark.slow
def test_tiny_mnist32_sweep_orders_memorization_by_n_and_not_generation(tmp_path):
    summary = sweep("mnist32-small", (16, 32, 64), tmp_path, jobs=2, threads=2, steps=STEPS,
                    seed=0, quiet=True)
    runs = {int(r["n"]): r for r in summary["runs"]}
    assert set(runs) == {16, 32, 64}
    median = {}
    for n in (16, 32, 64):
        rows = load_rows(tmp_path / f"n-{n}" / "eval")
        last = max(r["step"] for r in rows)
        assert last == STEPS
        median[n] = next(r["value"] for r in rows if r["step"] == last
                         and r["measure"] == "nn-ratio" and r["field"] == "median_ratio")
    assert median[16] < median[32] < median[64], median
    gen16, gen64 = runs[16]["tau_gen"]["value"], runs[64]["tau_gen"]["value"]
    assert gen16 is not None and gen64 is not None, (gen16, gen64)
    assert 0.5 <= gen16 / gen64 <= 2.0, (gen16, gen64)
    assert (tmp_path / "scaling" / "report.html").exists()
