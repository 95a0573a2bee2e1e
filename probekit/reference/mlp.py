"""The residual-MLP noise predictor of the Gaussian-mixture experiment (Bonnaire et al. 2025).

``eps_theta(x_t, t)`` for vector data ``(batch, dim)``: a linear map to the hidden width ``W``,
``blocks`` residual blocks and a linear map back. Each block adds the sinusoidal embedding of the
timestep to its input, then ``Linear → GELU → Linear`` and a residual connection followed by
LayerNorm::

    h ← LayerNorm(h + Linear(GELU(Linear(h + emb(t)))))

The embedding is the frozen sinusoidal table of the U-Net (:func:`probekit.reference.unet.
sinusoidal_table`) at width ``W``, shared by the blocks, so the time enters every block without
trainable parameters of its own, as in the paper's network.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual torch alias

from probekit.reference.config import MLPConfig
from probekit.reference.unet import sinusoidal_table


class ResidualTimeBlock(nn.Module):
    """``LayerNorm(h + Linear(GELU(Linear(h + emb))))``."""

    def __init__(self, width: int):
        super().__init__()
        self.inner = nn.Linear(width, width)
        self.outer = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.norm(h + self.outer(F.gelu(self.inner(h + emb))))


class ScoreMLP(nn.Module):
    """Noise predictor ``eps_theta(x, t)`` for ``x`` of shape ``(batch, dim)`` and integer
    timesteps ``t`` of shape ``(batch,)``."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.register_buffer("time_table", sinusoidal_table(cfg.num_timesteps, cfg.width),
                             persistent=False)
        self.inp = nn.Linear(cfg.dim, cfg.width)
        self.blocks = nn.ModuleList(ResidualTimeBlock(cfg.width) for _ in range(cfg.blocks))
        self.out = nn.Linear(cfg.width, cfg.dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_table[t]
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)


__all__ = ["ResidualTimeBlock", "ScoreMLP"]
