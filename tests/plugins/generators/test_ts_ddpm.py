"""ddpm-best / ddpm-last: one shared training run, each sampling its own checkpoint; settings,
seeding, thread count restored, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probekit import get_dataset, get_generator
from probekit.errors import NotPreparedError, ValidationError

TINY = {"width": 8, "steps": 30, "checkpoint_every": 10, "eval_samples": 16, "ddim_steps": 4}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    train = get_dataset("sines")(n_train=10, n_holdout=2, n_timesteps=24).load().train
    work = tmp_path_factory.mktemp("runs")
    before = torch.get_num_threads()
    best = get_generator("ddpm-best")(**TINY, work_dir=str(work)).fit(train)
    last = get_generator("ddpm-last")(**TINY, work_dir=str(work)).fit(train)
    assert torch.get_num_threads() == before  # threads=1 only while fitting
    return train, work, best, last


def test_both_names_share_one_run_and_sample_their_own_checkpoint(fitted):
    _train, work, best, last = fitted
    assert len(list(work.glob("ddpm-*"))) == 1
    assert best.run_.run_dir == last.run_.run_dir
    assert best.settings.checkpoint == "best" and last.settings.checkpoint == "last"
    assert best.step_ == best.run_.best_step and last.step_ == last.run_.last_step == 30
    assert last.describe_fit()["sampled_step"] == 30
    x = last.sample(5, seed=2)
    assert x.shape == (5, 24, 1) and x.dtype == np.float32
    # the generator samples on one thread: equal up to the float reduction order of others
    np.testing.assert_allclose(x, last.run_.sample(30, 5, seed=2), rtol=0, atol=1e-4)
    np.testing.assert_allclose(best.sample(5, seed=2),
                               best.run_.sample(best.run_.best_step, 5, seed=2), rtol=0,
                               atol=1e-4)


def test_seeding(fitted):
    _, _, _, last = fitted
    a = last.sample(4, seed=0)
    np.testing.assert_array_equal(a, last.sample(4, seed=0))
    assert not np.array_equal(a, last.sample(4, seed=1))


def test_an_explicit_checkpoint_setting_wins(fitted):
    train, work, _, last = fitted
    gen = get_generator("ddpm-last")(**TINY, work_dir=str(work), checkpoint="best").fit(train)
    assert gen.step_ == last.run_.best_step


def test_errors():
    gen = get_generator("ddpm-best")(**TINY)
    with pytest.raises(NotPreparedError, match="call fit"):
        gen.sample(3, seed=0)
    with pytest.raises(ValidationError, match="checkpoint_every must be at most"):
        get_generator("ddpm-best")(steps=10, checkpoint_every=20).fit(np.zeros((4, 16, 1)))
    with pytest.raises(ValidationError, match="width"):
        get_generator("ddpm-best")(width=12)
    with pytest.raises(ValidationError, match="unknown option"):
        get_generator("ddpm-last")(stepz=3)
