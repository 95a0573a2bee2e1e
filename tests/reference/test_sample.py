"""DDIM: exact on a planted one-point data set, deterministic, batch-independent."""

from __future__ import annotations

import pytest
import torch

from probekit.errors import ValidationError
from probekit.reference.config import DiffusionConfig, UNetConfig
from probekit.reference.diffusion import alphas_cumprod
from probekit.reference.sample import ddim_sample, ddim_timesteps, initial_noise
from probekit.reference.unet import UNet

ABAR = alphas_cumprod(DiffusionConfig())


class OnePointDenoiser(torch.nn.Module):
    """The exact noise predictor when the data is the single point ``x_star``."""

    def __init__(self, x_star):
        super().__init__()
        self.x_star = x_star

    def forward(self, x, t):
        a = ABAR[t].float().view(-1, *([1] * (x.ndim - 1)))
        return (x - a.sqrt() * self.x_star) / (1 - a).sqrt()


def test_ddim_lands_on_the_planted_point():
    x_star = torch.randn(1, 4, 4)
    out = ddim_sample(OnePointDenoiser(x_star), initial_noise(5, (1, 4, 4), 0), ABAR,
                      ddim_steps=10)
    assert torch.allclose(out, x_star.expand_as(out), atol=1e-4)


def test_timesteps_start_at_t_minus_1_and_never_reach_0():
    steps = ddim_timesteps(1000, 50)
    assert len(steps) == 50 and steps[0] == 999 and min(steps) > 0
    assert steps == sorted(steps, reverse=True)
    with pytest.raises(ValidationError, match="ddim_steps"):
        ddim_timesteps(1000, 1000)


def test_initial_noise_depends_only_on_the_seed():
    assert torch.equal(initial_noise(4, (1, 8, 8), 3), initial_noise(4, (1, 8, 8), 3))
    assert not torch.equal(initial_noise(4, (1, 8, 8), 3), initial_noise(4, (1, 8, 8), 4))
    # a longer draw starts with the shorter one: n_samples can grow without changing samples
    assert torch.equal(initial_noise(6, (1, 8, 8), 3)[:4], initial_noise(4, (1, 8, 8), 3))


def test_ddim_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    model = UNet(UNetConfig(resolution=8, base_width=8, channel_mults=(1, 2),
                            attention_resolutions=(4,), attention_heads=2, dropout=0.1))
    model.train()  # sampling must switch dropout off by itself, and restore the mode
    noise = initial_noise(6, (1, 8, 8), 0)
    a = ddim_sample(model, noise, ABAR, ddim_steps=4, batch_size=6)
    b = ddim_sample(model, noise, ABAR, ddim_steps=4, batch_size=6)
    c = ddim_sample(model, noise, ABAR, ddim_steps=4, batch_size=4)
    assert torch.equal(a, b)
    assert torch.allclose(a, c, atol=1e-5)
    assert model.training


def test_clipping_keeps_every_clean_estimate_in_the_data_range():
    x_star = torch.full((1, 2, 2), 3.0)  # a planted point outside [-1, 1]
    noise = initial_noise(4, (1, 2, 2), 0)
    free = ddim_sample(OnePointDenoiser(x_star), noise, ABAR, ddim_steps=10)
    clipped = ddim_sample(OnePointDenoiser(x_star), noise, ABAR, ddim_steps=10, clip=(-1, 1))
    assert torch.allclose(free, x_star.expand_as(free), atol=1e-4)
    assert torch.allclose(clipped, torch.ones_like(clipped))  # the last estimate, clipped
