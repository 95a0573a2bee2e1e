"""Issue 4's CI smoke test: the quick demo sweep (C = 16, n = 16, 32, 64, fixed seeds) shows
the two timescales — tau_mem grows with n, about linearly, and quality comes well before it."""

from __future__ import annotations

import pytest

from probekit.reference.demo import QUICK
from probekit.reference.sweep import sweep


@pytest.mark.slow
def test_quick_sweep_shows_tau_mem_growing_with_n_after_tau_gen(tmp_path):
    preset_name, ns = QUICK
    assert (preset_name, ns) == ("digits-small", (16, 32, 64))
    summary = sweep(preset_name, ns, tmp_path, jobs=2, threads=2, seed=0, quiet=True)
    runs = {int(r["n"]): r for r in summary["runs"]}
    mem = [runs[n]["tau_mem"]["value"] for n in ns]
    assert None not in mem, f"tau_mem not reached: {mem}"
    assert mem[0] < mem[1] < mem[2], f"tau_mem does not increase with n: {mem}"
    # thresholds of issue 4 (a linear law gives 4; the paper's tau_mem ∝ n)
    assert 2.5 <= mem[2] / mem[0] <= 8, f"tau_mem(64) / tau_mem(16) = {mem[2] / mem[0]:.2f}"
    gen64 = runs[64]["tau_gen"]["value"]
    assert gen64 is not None and gen64 < 0.5 * mem[2], f"tau_gen(64) = {gen64}, {mem}"
