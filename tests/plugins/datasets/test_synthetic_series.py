"""Synthetic datasets: seeded, nested, fresh holdouts, and each process is what it claims."""

from __future__ import annotations

import numpy as np
import pytest

from probekit import get_dataset
from probekit.errors import ValidationError

NAMES = ["sines", "ar-process", "regime-switching"]


@pytest.mark.parametrize("name", NAMES)
def test_seeded_nested_and_shaped(name):
    ds = get_dataset(name)
    big = ds(n_train=60, n_holdout=10, n_channels=2, normalization="none").load()
    small = ds(n_train=20, n_holdout=30, n_channels=2, normalization="none").load()
    assert big.train.shape == (60, 64, 2) and big.holdout.shape == (10, 64, 2)
    np.testing.assert_array_equal(small.train, big.train[:20])
    np.testing.assert_array_equal(small.holdout[:10], big.holdout)
    other = ds(n_train=20, seed=1, normalization="none").load()
    assert not np.array_equal(other.train, small.train)
    flat_train = big.train.reshape(60, -1)
    assert not any((flat_train == h.ravel()).all(axis=1).any() for h in big.holdout)
    assert "z-score" in ds(n_train=20).load().normalization


def test_sines_have_the_drawn_frequencies():
    x = get_dataset("sines")(n_train=200, noise=0.0, frequency=(2.0, 2.0),
                             normalization="none").load().train[:, :, 0]
    spectrum = np.abs(np.fft.rfft(x, axis=1))
    assert np.all(spectrum.argmax(axis=1) == 2)  # two cycles per series
    np.testing.assert_allclose(np.abs(x).max(axis=1), 1.0, atol=0.01)


def test_ar_process_has_its_coefficients():
    phi = (0.6, -0.3, 0.2)
    x = get_dataset("ar-process")(n_train=300, n_timesteps=200, normalization="none",
                                  coefficients=phi).load().train[:, :, 0].astype(np.float64)
    X = np.stack([x[:, 2:-1], x[:, 1:-2], x[:, :-3]], axis=-1).reshape(-1, 3)
    estimate = np.linalg.lstsq(X, x[:, 3:].ravel(), rcond=None)[0]
    np.testing.assert_allclose(estimate, phi, atol=0.02)
    with pytest.raises(ValidationError, match="stationary"):
        get_dataset("ar-process")(coefficients=(1.0,))


def test_regime_switching_visits_both_levels():
    x = get_dataset("regime-switching")(n_train=200, n_timesteps=200, normalization="none",
                                        switch_probability=0.02).load().train[:, :, 0]
    values = x.ravel()
    near = [np.mean(np.abs(values - m) < 0.5) for m in (-1.0, 1.0)]
    assert min(near) > 0.2  # both regimes hold a good share of the time
    assert get_dataset("regime-switching")(switch_probability=0.0, n_train=50,
                                           normalization="none").load().train.shape[0] == 50
    with pytest.raises(ValidationError, match="phis"):
        get_dataset("regime-switching")(phis=(1.0, 0.5))
