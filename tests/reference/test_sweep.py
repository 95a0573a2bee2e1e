"""Sweeps across n: runs in worker processes, each evaluated as it trains; the demo's verdict."""

from __future__ import annotations

import dataclasses

import pytest

from probekit.reference.demo import verdict
from probekit.reference.sweep import default_measures, format_table, sweep
from probekit.store import load_rows


@pytest.mark.slow
def test_two_jobs_train_evaluate_and_write_the_scaling_report(tmp_path):
    measures = dataclasses.replace(default_measures("digits-small"), metrics=(), settings={},
                                   stop_level=None, min_steps=0)
    summary = sweep("digits-small", [16, 8], tmp_path, jobs=2, threads=2, steps=50, width=8,
                    measures=measures, quiet=True)
    assert [r["n"] for r in summary["runs_done"]] == [8, 16]
    assert all(r["last_step"] == 50 for r in summary["runs_done"])
    for n in (8, 16):
        rows = load_rows(tmp_path / f"n-{n}" / "eval")
        assert {r["step"] for r in rows if r["field"] == "f_mem"} == {0, 50}
    assert (tmp_path / "scaling" / "report.html").exists()
    assert sorted(r["n"] for r in summary["runs"]) == [8, 16]
    table = format_table(summary)
    assert table.splitlines()[0].split()[0] == "n" and "never" in table  # 50 steps: no copies


def _summary(mem, gen):
    return {"runs": [{"n": n, "tau_mem": None if m is None else {"value": m},
                      "tau_gen": None if g is None else {"value": g}}
                     for n, m, g in zip((16, 32, 64), mem, gen, strict=True)]}


def test_verdict_reads_the_table_instead_of_assuming_it():
    assert "widens with n" in verdict(_summary([300, 600, 1200], [250, 260, 240]))
    assert "NOT grow" in verdict(_summary([300, 250, 1200], [250, 260, 240]))
    small_n_copies_first = verdict(_summary([300, 600, 1200], [350, 260, 240]))
    assert "not below tau_mem at n = 16 (empty window" in small_n_copies_first
    assert "below tau_mem at n = 32, 64" in small_n_copies_first
    assert "widens" not in small_n_copies_first
    never = verdict(_summary([300, 600, 1200], [None, 260, 240]))
    assert "never reached at n = 16" in never and "below tau_mem at n = 32, 64" in never
    assert "not reached" in verdict(_summary([300, None, 1200], [250, 260, 240]))
