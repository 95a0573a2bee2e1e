"""DDPM forward process and loss against direct formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probekit.reference.config import DiffusionConfig
from probekit.reference.diffusion import (
    alphas_cumprod,
    denoising_loss,
    linear_betas,
    q_sample,
    sample_timesteps,
)


def test_schedule_is_the_linear_ddpm_schedule():
    cfg = DiffusionConfig()
    betas = linear_betas(cfg).numpy()
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    assert np.allclose(np.diff(betas), (0.02 - 1e-4) / 999)
    abar = alphas_cumprod(cfg).numpy()
    brute = np.array([np.prod([1 - b for b in betas[: t + 1]]) for t in range(1000)])
    assert np.allclose(abar, brute, rtol=1e-12)


def test_q_sample_has_the_planted_mean_and_variance():
    abar = alphas_cumprod(DiffusionConfig())
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000, 1), 0.7)
    for t in (1, 300, 999):
        noise = torch.randn(x0.shape, generator=gen)
        xt = q_sample(x0, torch.full((len(x0),), t), noise, abar)
        a = abar[t].item()
        assert xt.mean().item() == pytest.approx(a**0.5 * 0.7, abs=4 * (1 - a) ** 0.5 / 447)
        assert xt.var().item() == pytest.approx(1 - a, rel=0.02)


def test_timesteps_are_uniform_on_1_to_t_minus_1():
    t = sample_timesteps(100_000, 10, generator=torch.Generator().manual_seed(1))
    counts = np.bincount(t.numpy(), minlength=10)
    assert counts[0] == 0
    assert counts[1:].min() > 0.9 * 100_000 / 9


def test_loss_is_plain_mse_on_the_noise():
    abar = alphas_cumprod(DiffusionConfig())

    def model(x, t):
        return 0.5 * x

    x0, noise = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    t = torch.arange(1, 9) * 100
    a = abar[t].float().view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    expected = ((noise - 0.5 * xt) ** 2).mean()
    assert denoising_loss(model, x0, t, noise, abar).item() == pytest.approx(expected.item())
