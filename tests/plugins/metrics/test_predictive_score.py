"""predictive-score: the analytic error of a mis-specified AR(1) predictor, parity with
scikit-learn's least squares, validation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from probekit import get_dataset, get_metric
from probekit.errors import ValidationError
from probekit.testing import check_measure

SQRT_2_OVER_PI = np.sqrt(2 / np.pi)  # E|e| for e ~ N(0, 1)


def ar1(phi, seed, n=300):
    return get_dataset("ar-process")(
        coefficients=(phi,), n_train=n, n_holdout=2, n_timesteps=100, seed=seed,
        normalization="none",
    ).load().train.astype(np.float64)


def test_train_on_synthetic_test_on_real_matches_theory():
    """Real AR(1) phi = 0.8 with unit innovations. A predictor fitted on AR(1) data with
    coefficient phi' predicts phi' x_{t-1}; its error on real data is N(0, 1 + (phi - phi')^2
    Var x) with Var x = 1 / (1 - phi^2), so MAE = sqrt(2/pi) sqrt(1 + (phi - phi')^2 Var x)."""
    real = ar1(0.8, seed=0)
    metric = get_metric("predictive-score")(lags=1, ridge=0.0).prepare(real)
    for phi_fake in (0.8, 0.3):
        result = metric.evaluate(ar1(phi_fake, seed=1))
        expected = SQRT_2_OVER_PI * np.sqrt(1 + (0.8 - phi_fake) ** 2 / (1 - 0.8**2))
        assert result.value == pytest.approx(expected, rel=0.03)
        assert result.values["mae_real"] == pytest.approx(SQRT_2_OVER_PI, rel=0.03)
        low, high = result.ci["mae"]
        assert low <= result.value <= high
    assert metric.evaluate(ar1(0.3, seed=1)).values["mae_gap"] > 0.2


def test_parity_with_sklearn_least_squares():
    rng = np.random.default_rng(0)
    real = np.cumsum(rng.normal(size=(20, 30, 2)), axis=1)
    fake = np.cumsum(rng.normal(size=(25, 30, 2)), axis=1)
    result = get_metric("predictive-score")(lags=3, ridge=0.0).prepare(real).evaluate(fake)
    past = np.lib.stride_tricks.sliding_window_view(fake[:, :-1], 3, axis=1)  # (n, m, c, 3)
    X = past.transpose(0, 1, 3, 2).reshape(-1, 6)
    model = LinearRegression().fit(X, fake[:, 3:].reshape(-1, 2))
    real_past = np.lib.stride_tricks.sliding_window_view(real[:, :-1], 3, axis=1)
    pred = model.predict(real_past.transpose(0, 1, 3, 2).reshape(-1, 6))
    expected = np.abs(pred - real[:, 3:].reshape(-1, 2)).mean()
    assert result.value == pytest.approx(expected, rel=1e-8)


def test_validation():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(10, 12, 1))
    with pytest.raises(ValidationError, match="longer than lags=12"):
        get_metric("predictive-score")(lags=12).prepare(real)
    metric = get_metric("predictive-score")(lags=4).prepare(real)
    with pytest.raises(ValidationError, match="1 channel"):
        metric.evaluate(rng.normal(size=(5, 12, 2)))
    with pytest.raises(ValidationError, match="next-step pairs"):
        metric.evaluate(rng.normal(size=(1, 5, 1)))


def test_conformance():
    check_measure("predictive-score")
