"""Deterministic DDIM sampling (Song et al. 2021, η = 0).

The initial noise depends only on ``(seed, n, shape)`` — it is drawn on the CPU, whatever the
device — so every checkpoint of a sweep starts from the same noise and curves compare like with
like. Sampling runs under ``torch.inference_mode`` in large batches.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from probekit.errors import ValidationError


def initial_noise(n: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """``n`` standard normal draws of ``shape``, from a CPU generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn((n, *shape), generator=generator, dtype=torch.float32)


def ddim_timesteps(num_timesteps: int, ddim_steps: int) -> list[int]:
    """The ``ddim_steps`` noise levels the network is evaluated at, from ``T-1`` downward:
    ``S + 1`` evenly spaced points in ``[0, T-1]`` without the final 0 (Song et al. 2021,
    Sect. 4.2, "linear" sub-sequence), so index 0, never trained on, is never evaluated."""
    if not 1 <= ddim_steps < num_timesteps:
        raise ValidationError(
            f"ddim: ddim_steps must be in [1, {num_timesteps - 1}]; got {ddim_steps}."
        )
    points = np.round(np.linspace(num_timesteps - 1, 0, ddim_steps + 1)).astype(int)
    return [int(t) for t in points[:-1]]


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float,
              alpha_bar_prev: float, clip: tuple[float, float] | None = None) -> torch.Tensor:
    """One deterministic DDIM update (Song et al. 2021, Eq. 12 with sigma = 0):
    ``x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev) eps`` with
    ``x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)``, optionally clipped to the data range
    ``clip`` first (as diffusers' ``DDIMScheduler(clip_sample=True)``; ``eps`` is kept)."""
    x0_hat = (x_t - (1.0 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t**0.5
    if clip is not None:
        x0_hat = x0_hat.clamp(clip[0], clip[1])
    return alpha_bar_prev**0.5 * x0_hat + (1.0 - alpha_bar_prev) ** 0.5 * eps


def ddim_sample(model: nn.Module, noise: torch.Tensor, alpha_bar: torch.Tensor, *,
                ddim_steps: int, batch_size: int = 1024,
                clip: tuple[float, float] | None = None,
                device: torch.device | str = "cpu", bf16: bool = False) -> torch.Tensor:
    """Run DDIM from ``noise`` (CPU tensor ``(n, ...)``) to samples, returned on the CPU.

    ``bf16``: evaluate the network under bf16 autocast (its output is cast back to float32, so
    the DDIM updates themselves stay in float32).

    The last update goes to ``alpha_bar = 1`` (Song et al.'s ``alpha_0 := 1``), i.e. returns the
    clean estimate ``x0_hat`` (clipped to ``clip`` when given). Each sample depends only on its
    own noise, not on the batch it ran in (up to floating-point reduction order).
    """
    steps = ddim_timesteps(len(alpha_bar), ddim_steps)
    abar = [float(a) for a in alpha_bar.double().cpu()]
    targets = [*(abar[t] for t in steps[1:]), 1.0]
    was_training = model.training
    model.eval()
    out = []
    device = torch.device(device)
    try:
        with torch.inference_mode():
            for start in range(0, len(noise), batch_size):
                x = noise[start : start + batch_size].to(device)
                for t, a_prev in zip(steps, targets, strict=True):
                    tt = torch.full((len(x),), t, dtype=torch.long, device=device)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                        eps = model(x, tt)
                    x = ddim_step(x, eps.float(), abar[t], a_prev, clip)
                out.append(x.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else noise.new_zeros((0, *noise.shape[1:]))


__all__ = ["ddim_sample", "ddim_step", "ddim_timesteps", "initial_noise"]
