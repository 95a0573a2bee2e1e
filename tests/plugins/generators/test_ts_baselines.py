"""Baseline generators: what each copies (or does not), seeding, fitted VAR recovers a planted
process, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from probekit import get_generator
from probekit.errors import DataWarning, NotPreparedError, ValidationError

NAMES = ["copycat", "splice", "block-bootstrap", "var", "gaussian-noise"]


@pytest.fixture(scope="module")
def train():
    rng = np.random.default_rng(0)
    return np.cumsum(rng.normal(size=(30, 40, 2)), axis=1)


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_seeding(name, train):
    gen = get_generator(name)().fit(train)
    a, b, c = gen.sample(7, seed=1), gen.sample(7, seed=1), gen.sample(7, seed=2)
    assert a.shape == (7, 40, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.isfinite(a).all()


@pytest.mark.parametrize("name", NAMES)
def test_sample_before_fit_and_bad_inputs(name, train):
    gen = get_generator(name)()
    with pytest.raises(NotPreparedError, match="call fit"):
        gen.sample(3, seed=0)
    with pytest.raises(ValidationError, match="3-d timeseries"):
        gen.fit(train[:, :, 0])
    with pytest.raises(ValidationError, match="at least 1"):
        gen.fit(train).sample(0, seed=0)


def test_copycat_is_a_training_series_plus_scaled_noise(train):
    samples = get_generator("copycat")(noise=0.0).fit(train).sample(10, seed=0)
    flat = train.reshape(30, -1).astype(np.float32)
    assert all((flat == s.ravel()).all(axis=1).any() for s in samples)
    noisy = get_generator("copycat")(noise=0.1).fit(train).sample(200, seed=0).astype(float)
    nearest = np.array([np.abs(flat - s.ravel()).sum(axis=1).argmin() for s in noisy])
    resid = noisy - train[nearest]
    np.testing.assert_allclose(resid.std(axis=(0, 1)), 0.1 * train.std(axis=(0, 1)), rtol=0.05)


@pytest.mark.parametrize("aligned", [True, False])
def test_splice_pieces_are_exact_copies_of_distinct_series(aligned, train):
    samples = get_generator("splice")(n_pieces=3, aligned=aligned).fit(train).sample(10, seed=0)
    bounds = [0, 13, 27, 40]  # round(j * 40 / 3)
    for s in samples:
        sources = []
        for a, b in itertools.pairwise(bounds):
            piece = s[a:b]
            hits = [(i, q) for i in range(30) for q in range(40 - (b - a) + 1)
                    if np.array_equal(train[i, q : q + b - a].astype(np.float32), piece)]
            assert hits, "every piece is cut from a training series"
            if aligned:
                assert any(q == a for _, q in hits)
            sources.append({i for i, _ in hits})
        assert len(set.union(*sources)) >= 3  # three different source series


def test_block_bootstrap_blocks_come_from_one_series(train):
    samples = get_generator("block-bootstrap")(block=8).fit(train).sample(10, seed=0)
    for s in samples:
        blocks = [s[j : j + 8] for j in range(0, 40, 8)]
        owners = [
            {i for i in range(30) for q in range(33)
             if np.array_equal(train[i, q : q + 8].astype(np.float32), block)}
            for block in blocks
        ]
        assert set.intersection(*owners), "all blocks of a sample come from one series"


def test_var_recovers_a_planted_var1_process():
    rng = np.random.default_rng(1)
    A = np.array([[0.6, 0.2], [-0.1, 0.5]])
    b = np.array([0.3, -0.2])
    x = np.zeros((200, 100, 2))
    for t in range(1, 100):
        x[:, t] = b + x[:, t - 1] @ A.T + rng.normal(size=(200, 2)) * [1.0, 0.5]
    gen = get_generator("var")(order=1).fit(x[:, 20:])
    np.testing.assert_allclose(gen.coef_[:2].T, A, atol=0.02)
    np.testing.assert_allclose(gen.coef_[2], b, atol=0.03)
    np.testing.assert_allclose(np.diag(gen.noise_cov_), [1.0, 0.25], rtol=0.05)
    assert gen.spectral_radius_ < 1
    # its samples have the process's lag-1 regression
    s = gen.sample(300, seed=0).astype(float)
    lhs, rhs = s[:, 1:].reshape(-1, 2), s[:, :-1].reshape(-1, 2)
    X = np.concatenate([rhs, np.ones((len(rhs), 1))], axis=1)
    coef = np.linalg.lstsq(X, lhs, rcond=None)[0]
    np.testing.assert_allclose(coef[:2].T, A, atol=0.03)


def test_var_warns_when_the_fit_is_unstable():
    x = np.cumsum(np.ones((5, 30, 1)), axis=1) * 1.1 ** np.arange(30)[None, :, None]
    with pytest.warns(DataWarning, match="not stable"):
        get_generator("var")(order=1).fit(x)
    with pytest.raises(ValidationError, match="longer than order"):
        get_generator("var")(order=5).fit(x[:, :6])


@pytest.mark.parametrize("match", ["channel", "timestep"])
def test_gaussian_noise_matches_moments_and_has_no_memory(match, train):
    s = get_generator("gaussian-noise")(match=match).fit(train).sample(4000, seed=0)
    axes = (0, 1) if match == "channel" else (0,)
    np.testing.assert_allclose(s.mean(axis=axes), train.mean(axis=axes),
                               atol=0.1 * train.std())
    np.testing.assert_allclose(s.std(axis=axes), train.std(axis=axes), rtol=0.1)
    lag1 = np.mean((s[:, 1:] - s.mean(1, keepdims=True)) * (s[:, :-1] - s.mean(1, keepdims=True)))
    assert abs(lag1) < 0.05 * s.var()


def test_settings_are_validated(train):
    with pytest.raises(ValidationError, match="n_pieces"):
        get_generator("splice")(n_pieces=31).fit(train)
    with pytest.raises(ValidationError, match="block must be at most"):
        get_generator("block-bootstrap")(block=41).fit(train)
    with pytest.raises(ValidationError, match="unknown option"):
        get_generator("copycat")(nois=0.1)
