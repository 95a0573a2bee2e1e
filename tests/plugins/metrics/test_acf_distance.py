"""acf-distance: AR(1) autocorrelations phi^k recovered, the analytic distance between two AR(1)
processes, constant series, validation."""

from __future__ import annotations

import numpy as np
import pytest

from probekit import get_dataset, get_generator, get_metric
from probekit.errors import ValidationError
from probekit.testing import check_measure


def ar1(phi, seed, n=200, length=400):
    return get_dataset("ar-process")(
        coefficients=(phi,), n_train=n, n_holdout=2, n_timesteps=length, seed=seed,
    ).load().train


def test_recovers_ar1_autocorrelations_and_their_distance():
    """AR(1) has ACF phi^k; the metric between AR(0.7) and AR(0.2) is rms_k(0.7^k - 0.2^k).
    The biased ACF estimator is low by O(1 / T); with T = 400 that is below 0.01."""
    lags = np.arange(1, 11)
    real = ar1(0.7, seed=0)
    metric = get_metric("acf-distance")(max_lag=10).prepare(real)
    np.testing.assert_allclose(metric.reference_acf_[:, 0], 0.7**lags, atol=0.02)
    other = metric.evaluate(ar1(0.2, seed=1))
    expected = np.sqrt(np.mean((0.7**lags - 0.2**lags) ** 2))
    assert other.value == pytest.approx(expected, abs=0.01)
    same = metric.evaluate(ar1(0.7, seed=2))
    assert same.value < 0.01
    low, high = same.ci["acf_distance"]
    assert low <= same.value <= high
    # white noise with the right marginals has all of the correlation missing
    noise = get_generator("gaussian-noise")().fit(real).sample(200, seed=0)
    assert metric.evaluate(noise).value == pytest.approx(np.sqrt(np.mean(0.7 ** (2 * lags))),
                                                          abs=0.01)


def test_constant_series_count_as_uncorrelated():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(20, 30, 1))
    samples = np.concatenate([np.zeros((5, 30, 1)), real[:5]])
    result = get_metric("acf-distance")(max_lag=4).prepare(real).evaluate(samples)
    assert result.provenance.extra["n_constant_sample_channels"] == 5
    np.testing.assert_allclose(result.per_sample["acf_samples"],
                               get_metric("acf-distance")(max_lag=4).prepare(real[:5])
                               .reference_acf_ / 2)


def test_validation():
    rng = np.random.default_rng(1)
    with pytest.raises(ValidationError, match="longer than max_lag=30"):
        get_metric("acf-distance")(max_lag=30).prepare(rng.normal(size=(4, 30, 1)))
    metric = get_metric("acf-distance")(max_lag=4).prepare(rng.normal(size=(4, 30, 1)))
    with pytest.raises(ValidationError, match="1 channel"):
        metric.evaluate(rng.normal(size=(4, 30, 2)))


def test_conformance():
    check_measure("acf-distance")
