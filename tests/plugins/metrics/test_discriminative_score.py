"""discriminative-score: a planted Gaussian shift with a known Bayes accuracy, chance level for
one distribution, near-perfect separation of clearly different ones; validation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from probekit import get_dataset, get_generator, get_metric
from probekit.errors import ValidationError
from probekit.testing import check_measure


def test_recovers_the_bayes_accuracy_of_a_mean_shift():
    """Real N(0, I), generated N(delta, I) in 8 dimensions: the best possible accuracy is
    Phi(||delta|| / 2); a linear classifier on the raw values attains it."""
    rng = np.random.default_rng(0)
    bayes = 0.75
    shift = 2 * norm.ppf(bayes) / np.sqrt(8)
    real = rng.normal(size=(3000, 8, 1))
    fake = rng.normal(size=(3000, 8, 1)) + shift
    result = get_metric("discriminative-score")(features="pixels").prepare(real).evaluate(fake)
    low, high = result.ci["discriminative_score"]
    assert low <= bayes - 0.5 <= high
    assert result.values["n_test"] == 2 * 900


def test_same_distribution_is_at_chance():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(2000, 8, 1)), rng.normal(size=(2000, 8, 1))
    result = get_metric("discriminative-score")(features="pixels").prepare(real).evaluate(fake)
    n_test = result.values["n_test"]
    assert abs(result.values["accuracy"] - 0.5) <= 3 * np.sqrt(0.25 / n_test)


def test_rocket_features_separate_noise_from_sines_but_not_sines_from_sines():
    splits = get_dataset("sines")(n_train=300, n_holdout=300).load()
    metric = get_metric("discriminative-score")().prepare(splits.holdout)
    noise = get_generator("gaussian-noise")().fit(splits.train).sample(300, seed=0)
    assert metric.evaluate(noise).value >= 0.45
    same = metric.evaluate(splits.train)
    assert abs(same.values["accuracy"] - 0.5) <= 3 * np.sqrt(0.25 / same.values["n_test"])


def test_is_seeded_and_validated():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(60, 12, 1)), rng.normal(size=(80, 12, 1)) + 0.3
    metric = get_metric("discriminative-score")
    a = metric(seed=3).prepare(real).evaluate(fake)
    b = metric(seed=3).prepare(real).evaluate(fake)
    assert a.values == b.values and a.ci == b.ci
    assert a.provenance.extra["n_per_class"] == 60
    with pytest.raises(ValidationError, match="at least 2 training and 1 test"):
        metric().prepare(real).evaluate(fake[:2])
    with pytest.raises(ValidationError, match="n_timesteps, n_channels"):
        metric().prepare(real).evaluate(fake[:, :10])


def test_conformance():
    check_measure("discriminative-score")
