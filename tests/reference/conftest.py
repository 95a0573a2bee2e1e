"""Small configs that train in a second or two on one CPU thread."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from probekit.reference.config import RunConfig, preset


def tiny_config(n: int = 8, steps: int = 20, **train_overrides) -> RunConfig:
    """``digits-small`` shrunk to C = 8, checkpoints every 10 steps, 5 DDIM steps."""
    cfg = preset("digits-small", n=n, steps=steps, width=8)
    return dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, log_every=5, **train_overrides),
        schedule=dataclasses.replace(cfg.schedule, dense_every=10, dense_until=steps),
        sampler=dataclasses.replace(cfg.sampler, ddim_steps=5, n_samples=16, batch_size=16),
    )


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny():
    """The :func:`tiny_config` builder."""
    return tiny_config
