"""loss-gap: planted memorizing vs generalizing models, brute-force parity, errors."""

from __future__ import annotations

import numpy as np
import pytest
from probekit_plugins.probes.loss_gap import draw_noise, two_sample_bootstrap_ci

from probekit import ModelHandle, get_probe
from probekit.errors import NotPreparedError, ValidationError
from probekit.testing import check_measure

BETAS = np.linspace(1e-4, 0.02, 1000)
ABAR = np.cumprod(1.0 - BETAS)
T = 40


class MemorizingModel(ModelHandle):
    """The empirical optimal denoiser at small noise: denoises towards the nearest training
    point, so its noise prediction is exact for training points."""

    def __init__(self, train: np.ndarray):
        self.train = train.reshape(len(train), -1).astype(np.float64)
        self.alphas_cumprod = ABAR
        self.step = 7
        self.calls = 0

    def generate(self, n, seed):
        raise AssertionError("loss-gap must not sample")

    def predict_noise(self, x_t, t):
        self.calls += 1
        abar = ABAR[np.asarray(t)][:, None]
        flat = x_t.reshape(len(x_t), -1).astype(np.float64)
        d2 = ((flat[:, None, :] / np.sqrt(abar)[:, None] - self.train[None]) ** 2).sum(-1)
        x0 = self.train[d2.argmin(axis=1)]
        return ((flat - np.sqrt(abar) * x0) / np.sqrt(1 - abar)).reshape(x_t.shape)


class GaussianOptimalModel(ModelHandle):
    """The exact denoiser of N(0, I) data: E[eps | x_t] = sqrt(1 - abar) x_t (generalizes)."""

    alphas_cumprod = ABAR
    step = 0

    def generate(self, n, seed):
        raise AssertionError

    def predict_noise(self, x_t, t):
        abar = ABAR[np.asarray(t)].reshape(-1, *([1] * (x_t.ndim - 1)))
        return np.sqrt(1 - abar) * x_t


class BlackBox(ModelHandle):
    alphas_cumprod = ABAR

    def generate(self, n, seed):
        return np.zeros((n, 1, 2, 2))


def separated_points(rng, n, d=16, spread=10.0):
    return (rng.normal(size=(n, 1, 4, d // 4)) * spread).astype(np.float32)


def test_memorizing_model_has_the_planted_gap():
    rng = np.random.default_rng(0)
    train = separated_points(rng, 48)
    # each held-out point sits at distance 3 from a training point, far from all others
    # (neighbours are ~50 apart; the noise at t=40 moves a point by ~0.3)
    offsets = rng.normal(size=(60, 16))
    offsets *= 3.0 / np.linalg.norm(offsets, axis=1, keepdims=True)
    holdout = (train[rng.integers(0, 48, 60)] + offsets.reshape(60, 1, 4, 4)).astype(np.float32)
    model = MemorizingModel(train)
    result = get_probe("loss-gap")().prepare(train, holdout=holdout).evaluate(model=model)
    # exact on training points: the loss is float32 rounding only
    assert result.values["loss_train"] < 1e-8
    # held-out: eps - eps_hat = -sqrt(abar / (1 - abar)) (x - NN(x)), so per value
    # loss = abar / (1 - abar) * 3^2 / 16 for every held-out point
    expected = ABAR[T] / (1 - ABAR[T]) * 9.0 / 16
    np.testing.assert_allclose(result.per_sample["loss_holdout"], expected, rtol=1e-4)
    assert result.value == pytest.approx(expected, rel=1e-4)
    m = 48  # as many held-out samples as training samples
    low, high = result.ci["loss_gap"]
    assert 0 < low < result.value < high
    assert len(result.per_sample["loss_train"]) == len(result.per_sample["loss_holdout"]) == m
    assert len(set(result.per_sample["holdout_index"])) == m  # a subset without repeats
    assert result.provenance.extra["alpha_bar"] == pytest.approx(ABAR[T])
    assert result.provenance.extra["step"] == 7


def test_generalizing_model_has_no_gap():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(400, 1, 4, 4))
    holdout = rng.normal(size=(400, 1, 4, 4))
    result = get_probe("loss-gap")().prepare(train, holdout=holdout).evaluate(
        model=GaussianOptimalModel())
    # both losses estimate Var(eps | x_t) = abar per value
    for field in ("loss_train", "loss_holdout"):
        low, high = result.ci[field]
        assert low < ABAR[T] < high
    low, high = result.ci["loss_gap"]
    assert low < 0 < high
    assert abs(result.value) < 0.05 * ABAR[T]


def brute_force_losses(model, x0, role, seed, n_draws, t=T):
    """Loop over samples and draws, one network call each (the definition, written plainly)."""
    losses = []
    noises = [draw_noise(x0.shape, seed=seed, role=role, draw=d) for d in range(n_draws)]
    for i, x in enumerate(x0.astype(np.float64)):
        per_draw = []
        for eps in noises:
            x_t = (np.sqrt(ABAR[t]) * x + np.sqrt(1 - ABAR[t]) * eps[i]).astype(np.float32)
            pred = model.predict_noise(x_t[None], np.array([t]))[0]
            per_draw.append(np.mean((eps[i] - pred) ** 2))
        losses.append(np.mean(per_draw))
    return np.array(losses)


def test_parity_with_brute_force_and_batch_independence():
    rng = np.random.default_rng(2)
    train, holdout = separated_points(rng, 30, spread=1.0), separated_points(rng, 30, spread=1.0)
    model = MemorizingModel(train)
    results = [get_probe("loss-gap")(batch_size=b, n_draws=3, seed=5)
               .prepare(train, holdout=holdout).evaluate(model=model) for b in (1024, 7)]
    for role, x in (("train", train), ("holdout", holdout)):
        expected = brute_force_losses(model, x, role, seed=5, n_draws=3)
        for result in results:
            np.testing.assert_allclose(result.per_sample[f"loss_{role}"], expected, rtol=1e-6,
                                       atol=1e-12)
    assert results[0].values == results[1].values and results[0].ci == results[1].ci


def test_equal_set_sizes_and_subsets():
    rng = np.random.default_rng(3)
    train, holdout = rng.normal(size=(50, 1, 2, 2)), rng.normal(size=(20, 1, 2, 2))
    probe = get_probe("loss-gap")().prepare(train, holdout=holdout)
    assert len(probe.train_) == len(probe.holdout_) == 20
    assert len(set(probe.train_index_)) == 20 and probe.holdout_index_.tolist() == list(range(20))
    capped = get_probe("loss-gap")(max_samples=8).prepare(train, holdout=holdout)
    assert len(capped.train_) == len(capped.holdout_) == 8
    again = get_probe("loss-gap")(max_samples=8).prepare(train, holdout=holdout)
    assert capped.train_index_.tolist() == again.train_index_.tolist()  # seeded


def test_two_sample_bootstrap_agrees_with_the_normal_approximation():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=3000), rng.normal(1.0, 2.0, size=2000)
    low, high = two_sample_bootstrap_ci(a, b, n_resamples=2000, confidence=0.9, seed=3)
    center = b.mean() - a.mean()
    half = 1.6449 * np.sqrt(a.var() / len(a) + b.var() / len(b))
    assert low == pytest.approx(center - half, abs=0.1 * half)
    assert high == pytest.approx(center + half, abs=0.1 * half)
    again = two_sample_bootstrap_ci(a, b, n_resamples=2000, confidence=0.9, seed=3)
    assert again == (low, high)


def test_errors_are_actionable():
    rng = np.random.default_rng(5)
    train, holdout = rng.normal(size=(10, 1, 2, 2)), rng.normal(size=(10, 1, 2, 2))
    probe = get_probe("loss-gap")()
    with pytest.raises(NotPreparedError):
        probe.evaluate(model=GaussianOptimalModel())
    with pytest.raises(ValidationError, match="holdout must be given"):
        probe.prepare(train)
    with pytest.raises(ValidationError, match="same per-sample shape"):
        probe.prepare(train, holdout=holdout[:, :, :1])
    probe.prepare(train, holdout=holdout)
    with pytest.raises(ValidationError, match="model must be given"):
        probe.evaluate()
    with pytest.raises(ValidationError, match=r"must predict noise.*BlackBox"):
        probe.evaluate(model=BlackBox())
    no_schedule = GaussianOptimalModel()
    no_schedule.alphas_cumprod = None
    with pytest.raises(ValidationError, match="alphas_cumprod"):
        probe.evaluate(model=no_schedule)
    with pytest.raises(ValidationError, match=r"timestep must be in \[0, 999\]"):
        get_probe("loss-gap")(timestep=1000).prepare(train, holdout=holdout).evaluate(
            model=GaussianOptimalModel())

    class WrongShape(GaussianOptimalModel):
        def predict_noise(self, x_t, t):
            return x_t.reshape(len(x_t), -1)

    with pytest.raises(ValidationError, match="shape of x_t"):
        probe.evaluate(model=WrongShape())


def test_conformance():
    check_measure("loss-gap")
