"""Issue 15's CI smoke test: a tiny ``mnist32`` sweep (the CPU preset ``mnist32-small``, W = 8,
n = 16, 32, 64, fixed seeds, the three runs at once with one thread each) through the same
``sweep`` as ``probekit reference sweep``.

What it asserts, and what it cannot: the issue asks for tau_mem(16) < tau_mem(32) <
tau_mem(64) here, but at 32×32 that ordering is out of reach of a few CPU minutes. The full
sweep of ``docs/reference_pipeline.md`` measured tau_mem(16) ≈ 1.3·10³ steps at W = 8
(tau_mem ∝ n, so tau_mem(64) ≈ 5·10³), and one step of batch 64 with its share of the
evaluation costs ≈ 0.29 CPU-seconds on this machine (this test: 347 CPU-s for 3 × 400 steps):
reaching tau_mem(64) alone needs ≈ 25 CPU-minutes (the ordering is checked on the full sweep by
``benchmarks/bench_mnist32_sweep.py``). Within the smoke test's 400 steps no run
is anywhere near its tau_mem, and the test asserts what is measurable there and predicted:

* generation does not depend on n — tau_gen is reached by every run and tau_gen(16) is within a
  factor 2 of tau_gen(64) (the issue's assertion);
* nothing is memorized yet — f_mem = 0 at every checkpoint of every run, as the full sweep
  measured (the first copies appear after step 1000 at n = 16). A pipeline that leaked training
  images into the samples (the planted case of the nn-ratio tests) would fail here.

An earlier version asserted that the median nearest-neighbour ratio d1/d2 of the samples at the
last step is ordered 16 < 32 < 64; that ordering also holds for samples that copy nothing (with
more training images the two nearest ones are closer in distance), so it was dropped.
"""

from __future__ import annotations

import pytest

from probekit.reference.sweep import sweep
from probekit.store import load_rows

STEPS = 400


@pytest.mark.slow
def test_tiny_mnist32_sweep_generation_is_flat_in_n_and_nothing_is_copied_early(tmp_path):
    summary = sweep("mnist32-small", (16, 32, 64), tmp_path, jobs=3, threads=2, steps=STEPS,
                    seed=0, quiet=True)
    runs = {int(r["n"]): r for r in summary["runs"]}
    assert set(runs) == {16, 32, 64}
    for n in (16, 32, 64):
        rows = load_rows(tmp_path / f"n-{n}" / "eval")
        f_mem = {r["step"]: r["value"] for r in rows
                 if r["measure"] == "nn-ratio" and r["field"] == "f_mem"}
        assert max(f_mem) == STEPS and len(f_mem) >= 8, sorted(f_mem)
        assert all(v == 0.0 for v in f_mem.values()), (n, f_mem)
    gen16, gen64 = runs[16]["tau_gen"]["value"], runs[64]["tau_gen"]["value"]
    assert gen16 is not None and gen64 is not None, (gen16, gen64)
    assert 0.5 <= gen16 / gen64 <= 2.0, (gen16, gen64)
    assert (tmp_path / "scaling" / "report.html").exists()
