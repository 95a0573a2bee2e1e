"""probekit.timeseries: windows, z-normalization, autocorrelation, lagged pairs, normalization."""

from __future__ import annotations

import numpy as np
import pytest

from probekit.errors import ValidationError
from probekit.timeseries import (
    Normalizer,
    SeriesDatasetSettings,
    autocorrelation,
    dtw_knn,
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


# -- DTW nearest neighbours (and nn-ratio's metric="dtw" option, which uses them) --------------


def dtw_reference(a, b):
    """Textbook dynamic programme: sqrt of the least summed squared difference over warping
    paths (steps (1,0), (0,1), (1,1))."""
    n, m = len(a), len(b)
    cost = np.full((n + 1, m + 1), np.inf)
    cost[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d = float(np.sum((a[i - 1] - b[j - 1]) ** 2))
            cost[i, j] = d + min(cost[i - 1, j], cost[i, j - 1], cost[i - 1, j - 1])
    return np.sqrt(cost[n, m])


def test_dtw_knn_matches_the_textbook_recursion():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(6, 9, 2))
    train[4] = train[1]  # a tie: the smaller index comes first
    queries = np.concatenate([rng.normal(size=(3, 9, 2)), train[1:2] + 1e-3])
    dist, idx = dtw_knn(queries, train, 3, batch_size=2)
    full = np.array([[dtw_reference(q, r) for r in train] for q in queries])
    expected = np.lexsort((np.broadcast_to(np.arange(6), full.shape), full), axis=1)[:, :3]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(dist, np.take_along_axis(full, expected, axis=1), rtol=1e-10)
    assert idx[3, :2].tolist() == [1, 4]


def test_dtw_refuses_large_sets(monkeypatch):
    import probekit.timeseries as ts

    monkeypatch.setattr(ts, "DTW_MAX_CELLS", 100)
    with pytest.raises(ValidationError, match="small sets"):
        ts.dtw_knn(np.zeros((2, 8, 1)), np.zeros((3, 8, 1)), 2)


def test_nn_ratio_with_dtw_flags_time_warped_copies():
    """Copies whose timing is warped (a smooth monotone time change) are far from their source
    in Euclidean distance but not under DTW; fresh series stay unflagged under both."""
    from scipy.ndimage import gaussian_filter1d

    from probekit import get_probe

    rng = np.random.default_rng(0)
    length = 48
    train = gaussian_filter1d(rng.normal(size=(30, length)), 2, axis=1)[:, :, None]
    t = np.arange(length, dtype=float)
    warp = (t + 5 * np.sin(np.pi * t / (length - 1))).clip(0, length - 1)
    warped = np.stack([np.interp(warp, t, s[:, 0]) for s in train[:10]])[:, :, None]
    fresh = gaussian_filter1d(rng.normal(size=(20, length)), 2, axis=1)[:, :, None]
    euclid = get_probe("nn-ratio")().prepare(train)
    dtw = get_probe("nn-ratio")(metric="dtw").prepare(train)
    assert euclid.evaluate(warped).value == 0.0
    flagged = dtw.evaluate(warped)
    assert flagged.value >= 0.8
    assert (flagged.per_sample["nn_index"] == np.arange(10)).mean() >= 0.8
    assert dtw.evaluate(fresh).value == 0.0
    with pytest.raises(ValidationError, match="metric='dtw'"):
        get_probe("nn-ratio")(metric="dtw", features="ts-rocket").prepare(train).evaluate(fresh)


def test_guide_example_runs(fresh_host, capsys):
    """docs/timeseries.md: the custom-generator example registers, samples and evaluates."""
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "timeseries.md"
    code = "\n".join(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S))
    assert "register_generators" in code
    exec(compile(code, "docs/timeseries.md", "exec"), {"__name__": "guide"})
    out = capsys.readouterr().out
    copied = float(re.search(r"copied series: ([0-9.]+)", out).group(1))
    assert copied == 0.0  # a random walk copies nothing
