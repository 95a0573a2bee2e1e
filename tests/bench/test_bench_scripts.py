"""Smoke test of benchmarks/bench_ts_recording.py (the real-recording benchmark of
docs/probes/subsequence-match.md) on a few planted series."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_ts_recording.py"


def test_recording_benchmark_smoke():
    pytest.importorskip("statsmodels", reason="the CO2 recording ships with statsmodels")
    spec = importlib.util.spec_from_file_location("bench_ts_recording", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.run("co2", n=12, n_old=2, seed=0, windows=(16,))
    rows = report["rows"]
    assert report["n_train_windows"] == 1650 and report["n_holdout_windows"] == 508
    for label in ("copies σ=0.02", "splices", "held-out windows"):
        windows, stretch = rows[label]["windows w=16"], rows[label]["stretch w=16"]
        assert windows["f_copied_series"] == stretch["f_copied_series"]
        assert windows["median_ratio"] == pytest.approx(stretch["median_ratio"], rel=1e-5)
    assert rows["copies σ=0.02"]["windows w=16"]["f_copied_series"] == 1.0
    assert rows["splices"]["windows w=16"]["f_copied_series"] == 1.0
    assert rows["held-out windows"]["windows w=16"]["f_copied_series"] <= 0.02
    assert rows["copies σ=0.05"]["bit-exact w=16"]["f_copied_series"] == 0.0
