"""bootstrap_ci: equals a naive resampling loop with the same generator; covers the truth."""

from __future__ import annotations

import numpy as np
import pytest

from probekit.errors import ValidationError
from probekit.stats import bootstrap_ci


def naive_bootstrap(values, n_resamples, seed, confidence=0.95):
    rng = np.random.default_rng(seed)
    stats = [values[rng.integers(0, len(values), size=len(values))].mean()
             for _ in range(n_resamples)]
    alpha = (1 - confidence) / 2
    return tuple(np.quantile(stats, [alpha, 1 - alpha]))


def test_matches_naive_loop():
    values = np.random.default_rng(0).random(200) < 0.3
    got = bootstrap_ci(values, n_resamples=300, seed=5)
    want = naive_bootstrap(values.astype(float), 300, 5)
    np.testing.assert_allclose(got, want)


def test_blocks_do_not_change_the_answer():
    values = np.random.default_rng(1).normal(size=500)
    a = bootstrap_ci(values, seed=2)
    b = bootstrap_ci(values, seed=2, max_block=1000)  # many small blocks
    assert a == b


def test_coverage_of_a_known_mean():
    rng = np.random.default_rng(3)
    hits = 0
    for trial in range(200):
        sample = rng.random(300) < 0.1
        low, high = bootstrap_ci(sample, n_resamples=400, seed=trial)
        hits += low <= 0.1 <= high
    assert 0.88 <= hits / 200 <= 0.99


def test_custom_statistic_and_errors():
    values = np.arange(10.0)
    low, high = bootstrap_ci(values, lambda r: np.median(r, axis=1), seed=0)
    assert low <= 4.5 <= high
    assert np.isnan(bootstrap_ci(np.array([]))[0])
    with pytest.raises(ValidationError, match="confidence"):
        bootstrap_ci(values, confidence=1.5)
