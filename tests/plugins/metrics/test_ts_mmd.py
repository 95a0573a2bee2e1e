"""ts-mmd: parity with a direct transcription of the unbiased MMD², planted truth (fresh
series near 0, noise and shifted series far), sample-size behaviour, conformance."""

from __future__ import annotations

import numpy as np
import pytest

from probekit import get_dataset, get_feature_extractor, get_metric
from probekit.errors import ValidationError
from probekit.testing import check_measure


def metric(**settings):
    return get_metric("ts-mmd")(**settings)


@pytest.fixture(scope="module")
def ar():
    splits = get_dataset("ar-process")(n_train=200, n_holdout=200, n_timesteps=48).load()
    return splits.train, splits.holdout


def brute_mmd2(x, y):
    """Unbiased MMD² with k(a, b) = (a.b / d + 1)^3, by explicit double loops."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_agrees_with_the_definition(ar):
    train, holdout = ar
    real, fake = holdout[:20], 1.3 * train[:20] + 0.2
    result = metric(n_subsets=1, subset_size=20, standardize="reference",
                    feature_settings={"n_kernels": 16}).prepare(real).evaluate(fake)
    rocket = get_feature_extractor("ts-rocket")(n_kernels=16)
    mean, std = real.mean(axis=(0, 1)), real.std(axis=(0, 1))
    fr = rocket.extract((real - mean) / std).astype(np.float64)
    fg = rocket.extract((fake - mean) / std).astype(np.float64)
    mu, sd = fr.mean(axis=0), np.where(fr.std(axis=0) > 0, fr.std(axis=0), 1.0)
    expected = brute_mmd2((fr - mu) / sd, (fg - mu) / sd)
    assert result.value == pytest.approx(expected, rel=1e-6)  # ROCKET features are float32


def test_fresh_series_are_near_zero_and_planted_differences_are_not(ar):
    train, holdout = ar
    m = metric().prepare(holdout)
    fresh = m.evaluate(train).value
    noise = m.evaluate(np.random.default_rng(0).normal(size=train.shape)).value
    shifted = [m.evaluate(train + s).value for s in (0.25, 0.5, 1.0)]
    assert abs(fresh) < 0.05
    assert noise > 20 * max(abs(fresh), 1e-3)
    assert fresh < shifted[0] < shifted[1] < shifted[2]


def test_unbiased_so_sample_size_does_not_move_it_much(ar):
    train, holdout = ar
    m = metric().prepare(holdout)
    small = m.evaluate(train[:50]).value
    large = m.evaluate(train).value
    assert abs(small - large) < 0.05


def test_standardize_makes_units_irrelevant(ar):
    train, holdout = ar
    a = metric(standardize="reference").prepare(holdout).evaluate(train[:60])
    b = metric(standardize="reference").prepare(100 + 50 * holdout).evaluate(
        100 + 50 * train[:60])
    assert a.value == pytest.approx(b.value, rel=1e-6, abs=1e-9)


def test_validation(ar):
    train, holdout = ar
    with pytest.raises(ValidationError, match="subset_size must be between"):
        metric(subset_size=300).prepare(holdout).evaluate(train[:10])
    with pytest.raises(ValidationError, match="n_timesteps, n_channels"):
        metric().prepare(holdout).evaluate(train[:, :40])


def test_conformance():
    check_measure("ts-mmd")
