"""mia-loss, mia-secmi, mia-pia: planted ground truth and the conformance suite."""

from __future__ import annotations

import numpy as np
import pytest

from probekit import get_probe
from probekit.errors import ValidationError
from probekit.testing import MemorizingModelHandle, ToyModelHandle, check_measure

ATTACKS = ["mia-loss", "mia-secmi", "mia-pia"]


@pytest.mark.parametrize("name", ATTACKS)
def test_memorizing_model_is_caught(name):
    """A model that memorized a tiny training set: every attack separates members."""
    rng = np.random.default_rng(0)
    train, holdout = rng.normal(size=(24, 1, 4, 4)), rng.normal(size=(24, 1, 4, 4))
    model = MemorizingModelHandle(train)
    result = get_probe(name)().prepare(train, holdout=holdout).evaluate(model=model)
    assert result.value >= 0.95
    assert result.ci["auc"][0] >= 0.85
    assert result.values["n_members"] == result.values["n_nonmembers"] == 24


@pytest.mark.parametrize("name", ATTACKS)
def test_unseen_halves_are_indistinguishable(name):
    """Two disjoint halves of unseen data: AUC within 0.5 ± 0.05 (1200 vs 1200)."""
    rng = np.random.default_rng(1)
    half_a, half_b = rng.normal(size=(1200, 8)), rng.normal(size=(1200, 8))
    model = ToyModelHandle(half_a)  # exact denoiser of N(0, I): generalizes perfectly
    result = get_probe(name)().prepare(half_a, holdout=half_b).evaluate(model=model)
    assert abs(result.value - 0.5) <= 0.05
    assert result.values["tpr_at_0_1pct_fpr_resolved"] == 1.0
    assert not result.warnings


def test_few_nonmembers_flag_low_fpr_as_unresolved():
    rng = np.random.default_rng(2)
    train, holdout = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    result = get_probe("mia-loss")().prepare(train, holdout=holdout).evaluate(
        model=ToyModelHandle(train))
    assert result.values["tpr_at_1pct_fpr_resolved"] == 0.0
    assert result.values["tpr_at_0_1pct_fpr_resolved"] == 0.0
    assert any("tpr_at_0_1pct_fpr is unresolved: 50 non-members" in w for w in result.warnings)


def test_equal_numbers_and_errors():
    rng = np.random.default_rng(3)
    train, holdout = rng.normal(size=(30, 6)), rng.normal(size=(80, 6))
    probe = get_probe("mia-pia")().prepare(train, holdout=holdout)
    assert len(probe.members_) == len(probe.nonmembers_) == 30
    with pytest.raises(ValidationError, match="holdout must be given"):
        get_probe("mia-pia")().prepare(train)
    with pytest.raises(ValidationError, match="n_members must be at most"):
        get_probe("mia-pia")(n_members=31).prepare(train, holdout=holdout)
    with pytest.raises(ValidationError, match="white-box ModelHandle"):
        probe.evaluate()
    with pytest.raises(ValidationError, match="t_sec must be below"):
        get_probe("mia-secmi")(t_sec=2000).prepare(train, holdout=holdout).evaluate(
            model=ToyModelHandle(train))


def test_loss_attack_averages_timesteps_and_draws():
    rng = np.random.default_rng(4)
    train, holdout = rng.normal(size=(16, 1, 3, 3)), rng.normal(size=(16, 1, 3, 3))
    model = MemorizingModelHandle(train)
    one = get_probe("mia-loss")().prepare(train, holdout=holdout).evaluate(model=model)
    many = get_probe("mia-loss")(timesteps=(20, 100, 300), n_draws=3).prepare(
        train, holdout=holdout).evaluate(model=model)
    assert many.provenance.settings["timesteps"] == (20, 100, 300)
    assert many.value >= one.value - 0.05


@pytest.mark.parametrize("name", ATTACKS)
def test_conformance(name):
    check_measure(name)
