"""marginal-distance: parity with scipy's Wasserstein distance, exact shifts, per-timestep
distributions, validation."""

from __future__ import annotations

import numpy as np
import pytest
from probekit_plugins.metrics.marginal_distance import wasserstein_1d
from scipy.stats import wasserstein_distance

from probekit import get_metric
from probekit.errors import ValidationError
from probekit.testing import check_measure


def metric(**settings):
    return get_metric("marginal-distance")(**settings)


def test_parity_with_scipy():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(40, 15, 3))
    fake = rng.standard_t(3, size=(25, 15, 3)) * 1.5 + 0.2
    result = metric().prepare(real).evaluate(fake)
    expected = [wasserstein_distance(real[:, :, c].ravel(), fake[:, :, c].ravel())
                for c in range(3)]
    np.testing.assert_allclose(result.per_sample["distance_per_channel"], expected, rtol=1e-12)
    assert result.value == pytest.approx(np.mean(expected), rel=1e-12)
    per_t = metric(per_timestep=True).prepare(real).evaluate(fake)
    expected_t = [wasserstein_distance(real[:, t, c], fake[:, t, c])
                  for t in range(15) for c in range(3)]
    np.testing.assert_allclose(per_t.per_sample["distance_per_distribution"], expected_t,
                               rtol=1e-12)
    a, b = rng.normal(size=(7, 2)), rng.normal(size=(11, 2))
    np.testing.assert_allclose(wasserstein_1d(a, b),
                               [wasserstein_distance(a[:, j], b[:, j]) for j in range(2)])


def test_planted_shift_and_same_distribution():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(500, 20, 2))
    m = metric().prepare(real)
    assert m.evaluate(real + 0.7).value == pytest.approx(0.7, rel=1e-12)
    assert m.evaluate(real).value == 0.0
    fresh = m.evaluate(rng.normal(size=(500, 20, 2))).value
    assert fresh < 0.05  # sampling error of W1 with 10,000 values per channel is ~0.01


def test_per_timestep_sees_values_at_the_wrong_time():
    t = np.arange(50)
    rng = np.random.default_rng(2)
    real = (np.exp(-((t - 10) ** 2) / 20.0)[None, :, None] + 0.05 * rng.normal(size=(200, 50, 1)))
    wrong_time = real[:, ::-1]  # the same values, the bump at t = 40 instead of t = 10
    assert metric().prepare(real).evaluate(wrong_time).value == pytest.approx(0.0, abs=1e-12)
    assert metric(per_timestep=True).prepare(real).evaluate(wrong_time).value > 0.1


def test_validation():
    rng = np.random.default_rng(3)
    m = metric().prepare(rng.normal(size=(10, 20, 2)))
    with pytest.raises(ValidationError, match="n_channels"):
        m.evaluate(rng.normal(size=(10, 20, 3)))
    assert m.evaluate(rng.normal(size=(10, 33, 2))).value > 0  # other lengths are fine pooled
    mt = metric(per_timestep=True).prepare(rng.normal(size=(10, 20, 2)))
    with pytest.raises(ValidationError, match="n_timesteps, n_channels"):
        mt.evaluate(rng.normal(size=(10, 33, 2)))


def test_conformance():
    check_measure("marginal-distance")
    check_measure("marginal-distance", settings={"per_timestep": True})


def test_skewness_and_kurtosis_differences_match_scipy():
    """The shape columns: |skew| and |excess kurtosis| differences, as scipy computes them;
    heavy tails of equal spread show up there."""
    from scipy.stats import kurtosis, skew

    rng = np.random.default_rng(2)
    real = rng.normal(size=(60, 20, 2))
    heavy = rng.standard_t(4, size=(60, 20, 2)) / np.sqrt(2.0)  # std 1, fat tails
    result = metric().prepare(real).evaluate(heavy)
    r, h = real.reshape(-1, 2), heavy.reshape(-1, 2)
    np.testing.assert_allclose(
        result.values["skewness_difference"],
        np.mean(np.abs(skew(r, axis=0) - skew(h, axis=0))), rtol=1e-10)
    np.testing.assert_allclose(
        result.values["kurtosis_difference"],
        np.mean(np.abs(kurtosis(r, axis=0) - kurtosis(h, axis=0))), rtol=1e-10)
    same = metric().prepare(real).evaluate(rng.normal(size=(60, 20, 2)))
    assert result.values["kurtosis_difference"] > 5 * same.values["kurtosis_difference"]
