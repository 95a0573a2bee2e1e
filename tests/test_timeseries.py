"""probekit.timeseries: windows, z-normalization, autocorrelation, lagged pairs, normalization."""

from __future__ import annotations

import numpy as np
import pytest

from probekit.errors import ValidationError
from probekit.timeseries import (
    Normalizer,
    SeriesDatasetSettings,
    autocorrelation,
    lagged_design,
    make_splits,
    sliding_windows,
    window_starts,
    znormalize,
)


def test_sliding_windows_match_slices():
    x = np.random.default_rng(0).normal(size=(3, 20, 2))
    w = sliding_windows(x, 5, 3)
    starts = window_starts(20, 5, 3)
    assert w.shape == (3, len(starts), 5, 2)
    for j, s in enumerate(starts):
        np.testing.assert_array_equal(w[:, j], x[:, s : s + 5])
    assert window_starts(4, 5, 1).size == 0


def test_znormalize_per_channel_and_constant_convention():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 10, 2)) * [1.0, 100.0] + [5.0, -3.0]
    w[1, :, 0] = 7.0  # constant channel
    w[2, :, 1] = 0.0  # all-zero channel
    out, constant = znormalize(w, 1e-8)
    assert constant.tolist() == [[False, False], [True, False], [False, True], [False, False]]
    np.testing.assert_array_equal(out[1, :, 0], 0.0)
    np.testing.assert_array_equal(out[2, :, 1], 0.0)
    varying = ~constant
    np.testing.assert_allclose(out.mean(axis=1)[varying], 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=1)[varying], 1.0, rtol=1e-12)
    # a tiny rounding-level wiggle on a large constant counts as constant
    w2 = np.full((1, 10, 1), 1e6) + 1e-9 * rng.normal(size=(1, 10, 1))
    assert znormalize(w2, 1e-8)[1].all()


def test_autocorrelation_against_direct_sums():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 25, 2))
    x[2, :, 1] = 4.0
    acf, constant = autocorrelation(x, 5)
    assert constant.tolist() == [[False, False], [False, False], [False, True]]
    for i in range(3):
        for c in range(2):
            v = x[i, :, c] - x[i, :, c].mean()
            for lag in range(6):
                if constant[i, c]:
                    expected = 1.0 if lag == 0 else 0.0
                else:
                    expected = np.sum(v[: 25 - lag] * v[lag:]) / np.sum(v * v)
                assert acf[i, lag, c] == pytest.approx(expected, abs=1e-12)


def test_lagged_design_pairs():
    x = np.arange(2 * 6 * 2, dtype=float).reshape(2, 6, 2)
    inputs, targets = lagged_design(x, 3)
    assert inputs.shape == (2, 3, 6) and targets.shape == (2, 3, 2)
    np.testing.assert_array_equal(inputs[1, 2], x[1, 2:5].ravel())
    np.testing.assert_array_equal(targets[1, 2], x[1, 5])


@pytest.mark.parametrize("method", ["zscore", "minmax", "none"])
def test_normalizer_is_fitted_on_train_and_recorded(method):
    rng = np.random.default_rng(2)
    train = rng.normal(3.0, 2.0, size=(50, 30, 2))
    holdout = rng.normal(3.0, 2.0, size=(20, 30, 2))
    splits = make_splits(train, holdout, SeriesDatasetSettings(normalization=method), "test")
    assert splits.train.dtype == np.float32 and splits.holdout.shape == (20, 30, 2)
    if method == "zscore":
        np.testing.assert_allclose(splits.train.mean(axis=(0, 1)), 0.0, atol=1e-5)
        np.testing.assert_allclose(splits.train.std(axis=(0, 1)), 1.0, rtol=1e-5)
        assert "z-score" in splits.normalization
    elif method == "minmax":
        np.testing.assert_allclose(splits.train.min(axis=(0, 1)), -1.0, atol=1e-6)
        np.testing.assert_allclose(splits.train.max(axis=(0, 1)), 1.0, atol=1e-6)
        assert "min-max" in splits.normalization
    else:
        np.testing.assert_allclose(splits.train, train.astype(np.float32))
        assert splits.normalization == "none"
    # the recorded map reproduces the holdout values
    norm = Normalizer.fit(train, method)
    np.testing.assert_array_equal(norm.transform(holdout), splits.holdout)
    low, high = splits.value_range
    assert low == min(splits.train.min(), splits.holdout.min())
    assert high == max(splits.train.max(), splits.holdout.max())


def test_make_splits_takes_a_prefix_and_checks_size():
    pool = np.random.default_rng(3).normal(size=(10, 8, 1))
    settings = SeriesDatasetSettings(n_train=4, normalization="none")
    splits = make_splits(pool, pool[:2], settings, "test")
    np.testing.assert_array_equal(splits.train, pool[:4].astype(np.float32))
    with pytest.raises(ValidationError, match="at most the pool size 10"):
        make_splits(pool, pool[:2], SeriesDatasetSettings(n_train=11), "test")
    with pytest.raises(ValueError, match="normalization"):
        Normalizer.fit(pool, "robust")
