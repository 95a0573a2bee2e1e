"""The DDPM forward process and training loss (Ho et al. 2020), as small pure functions.

Indices follow the usual code convention: ``t = 0 … T-1`` and
``alpha_bar[t] = prod_{s <= t} (1 - beta_s)``. Training draws ``t`` uniformly in ``1 … T-1``
(Bonnaire et al. 2025), so index 0 is never trained on and never evaluated by the sampler.
"""

from __future__ import annotations

import torch
from torch import nn

from probekit.reference.config import DiffusionConfig


def linear_betas(cfg: DiffusionConfig) -> torch.Tensor:
    """``beta_t`` rising linearly from ``beta_start`` to ``beta_end`` (Ho et al. 2020, Sect. 4),
    float64."""
    return torch.linspace(cfg.beta_start, cfg.beta_end, cfg.num_timesteps, dtype=torch.float64)


def alphas_cumprod(cfg: DiffusionConfig) -> torch.Tensor:
    """``alpha_bar_t = prod_{s<=t} (1 - beta_s)`` (Ho et al. 2020, Eq. 4), float64, length T."""
    return torch.cumprod(1.0 - linear_betas(cfg), dim=0)


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` of shape ``(batch,)`` broadcast against ``like`` ``(batch, ...)``."""
    return values.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
             alpha_bar: torch.Tensor) -> torch.Tensor:
    """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps`` — a draw of ``q(x_t | x_0)``
    (Ho et al. 2020, Eq. 4)."""
    a = alpha_bar.to(x0.device)[t]
    return _per_sample(a.sqrt(), x0) * x0 + _per_sample((1.0 - a).sqrt(), x0) * noise


def sample_timesteps(batch: int, num_timesteps: int, *, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Training timesteps, uniform in ``1 … T-1`` (Bonnaire et al. 2025)."""
    return torch.randint(1, num_timesteps, (batch,), generator=generator).to(device)


def denoising_loss(model: nn.Module, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                   alpha_bar: torch.Tensor, *,
                   dropout_masks: list[torch.Tensor] | None = None) -> torch.Tensor:
    """``mean ||eps - eps_theta(x_t, t)||^2`` over every value: the plain MSE on the noise
    (Ho et al. 2020, Eq. 14, "L_simple"), in float32 also under autocast. ``dropout_masks``
    are handed to the U-Net (see :meth:`probekit.reference.unet.UNet.draw_dropout_masks`)."""
    x_t = q_sample(x0, t, noise, alpha_bar)
    eps = model(x_t, t) if dropout_masks is None else model(x_t, t, dropout_masks)
    return torch.mean((noise - eps.float()) ** 2)


__all__ = ["alphas_cumprod", "denoising_loss", "linear_betas", "q_sample", "sample_timesteps"]
