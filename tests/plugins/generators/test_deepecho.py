"""deepecho (PAR from the SDV project) as a contestant: shape, seeding, no copies, a rough fit
of the training scale, the fitting record, and a one-line error without the extra. Kept small
(16 series of 24 steps, a few seconds) so that CI runs it."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from probekit import get_dataset, get_generator, get_probe
from probekit.errors import MissingResourceError

pytest.importorskip("deepecho", reason="the optional extra probekit[generators] is missing")


@pytest.fixture(scope="module")
def fitted():
    train = get_dataset("ar-process")(n_train=16, n_holdout=4, n_timesteps=24).load().train
    return train, get_generator("deepecho")(epochs=48).fit(train)


def test_shape_seeding_and_global_rng_untouched(fitted):
    _, gen = fitted
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = gen.sample(3, seed=5), gen.sample(3, seed=5)
    assert torch.equal(before, torch.random.get_rng_state())
    assert a.shape == (3, 24, 1) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, gen.sample(3, seed=6))
    info = gen.describe_fit()
    assert info["epochs"] == 48 and info["fit_seconds"] > 0 and info["deepecho"]


def test_a_model_not_a_copy(fitted):
    train, gen = fitted
    samples = gen.sample(16, seed=0)
    assert get_probe("nn-ratio")().prepare(train).evaluate(samples).value == 0.0
    ratio = samples.std() / train.std()
    assert 0.3 < ratio < 3.0  # the training scale, roughly (PAR standardizes each variable)


def test_missing_package_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepecho", None)  # import deepecho -> ImportError
    with pytest.raises(MissingResourceError, match=r"probekit\[generators\]"):
        get_generator("deepecho")().fit(np.zeros((4, 8, 1)))
