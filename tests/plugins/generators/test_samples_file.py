"""samples-file: series generated elsewhere, read from .npy/.csv, checked against the dataset
(shape, count, scale), seeded subsets."""

from __future__ import annotations

import numpy as np
import pytest

from probekit import get_generator
from probekit.errors import DataWarning, NotPreparedError, ValidationError


@pytest.fixture
def train():
    return np.random.default_rng(0).normal(size=(30, 16, 2))


def test_reads_npy_and_csv_and_returns_seeded_subsets(tmp_path, train):
    gen = np.random.default_rng(1).normal(size=(40, 16, 2)).astype(np.float32)
    np.save(tmp_path / "g.npy", gen)
    g = get_generator("samples-file")(path=str(tmp_path / "g.npy")).fit(train)
    a, b = g.sample(10, seed=3), g.sample(10, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (10, 16, 2)
    rows = [int(np.flatnonzero((gen == x).all(axis=(1, 2)))[0]) for x in a]
    assert rows == sorted(rows)  # a subset in file order
    np.testing.assert_array_equal(g.sample(40, seed=0), gen)  # all of them, as they are
    uni = np.random.default_rng(2).normal(size=(12, 16))
    np.savetxt(tmp_path / "u.csv", uni, delimiter=",")
    u = get_generator("samples-file")(path=str(tmp_path / "u.csv")).fit(train[:, :, :1])
    np.testing.assert_allclose(u.sample(12, 0)[:, :, 0], uni, rtol=1e-6)
    assert u.describe_fit()["n_series"] == 12


def test_refuses_what_does_not_fit(tmp_path, train):
    np.save(tmp_path / "short.npy", np.zeros((40, 10, 2)))
    with pytest.raises(ValidationError, match=r"\(n_timesteps, n_channels\) = \(16, 2\)"):
        get_generator("samples-file")(path=str(tmp_path / "short.npy")).fit(train)
    np.save(tmp_path / "few.npy", train[:3])
    g = get_generator("samples-file")(path=str(tmp_path / "few.npy")).fit(train)
    with pytest.raises(ValidationError, match="holds 3 series; 5 are needed"):
        g.sample(5, 0)
    with pytest.raises(NotPreparedError):
        get_generator("samples-file")(path=str(tmp_path / "few.npy")).sample(1, 0)


def test_warns_when_samples_are_on_another_scale(tmp_path, train):
    np.save(tmp_path / "raw.npy", 300 + 10 * train)
    with pytest.warns(DataWarning, match="another scale"):
        get_generator("samples-file")(path=str(tmp_path / "raw.npy")).fit(train)
