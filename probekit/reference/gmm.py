"""The Gaussian-mixture experiment of Bonnaire et al. (2025): ``tau_mem ∝ n / W`` on a CPU.

Data: ``½ N(+1_d, I) + ½ N(-1_d, I)`` in ``d = 8`` dimensions (registered dataset ``gmm``).
Network: the residual MLP of :mod:`probekit.reference.mlp` (3 blocks of width ``W``, time
embedding added at each block). Training, checkpoints, DDIM sampling and resuming are the
reference pipeline's own (:func:`probekit.reference.train.train`); the presets:

* ``gmm`` — the paper's recipe: ``W = 128``, full-batch SGD lr 6e-3 momentum 0.95
  (``optimizer="adam"``: Adam lr 6e-4, the paper's Adam setting); DDPM T = 1000.
* ``gmm-small`` — ``W = 32``, short runs, 128 DDIM-20 samples per checkpoint: smoke tests.

Quality (registered metric ``gmm-mmd``): the squared maximum mean discrepancy between the
generated samples and the *known* mixture with a Gaussian kernel of bandwidth ``h``,

    MMD² = E_{q,q} k - 2 E_{q,p} k + E_{p,p} k,   k(x, y) = exp(-|x - y|² / (2 h²)).

Both mixture terms are closed-form Gaussian integrals, so only the sample-sample term is
estimated (unbiased U-statistic): an exactly computable distance to the true distribution, not
to a finite held-out set, that needs no density estimate and no network. It is zero if and only
if the generated law is the mixture. Why not the paper's KL through the learned score: that is a
bound on the KL of the (stochastic) reverse-SDE sampler, not a distance of the DDIM samples the
memorization probe looks at; the MMD is computed on those very samples.

Memorization: ``nn-ratio`` (``d1/d2 < 1/3`` to the training set), through the registry.

This module defines the experiment (data, presets, measures, step caps);
:func:`probekit.reference.gmm_sweep.run_sweep` trains and evaluates the grid of ``(n, W)``
runs, :mod:`probekit.reference.grid_analysis` reads ``tau_gen``, ``tau_mem`` and the scaling
exponents with :mod:`probekit.analysis`, and :mod:`probekit.reference.grid_report` renders them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from probekit.errors import UnknownNameError
from probekit.reference.config import (
    DataConfig,
    DiffusionConfig,
    MLPConfig,
    RunConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    UNetConfig,
)

GMM_PRESETS = ("gmm", "gmm-small")
#: Dimension of the paper's mixture.
GMM_DIM = 8


# -- data --------------------------------------------------------------------------------------


def mixture_samples(n: int, *, dim: int = GMM_DIM, separation: float = 1.0, seed: int = 0,
                    stream: int = 0) -> np.ndarray:
    """``n`` draws of ``½N(+m, I) + ½N(-m, I)``, ``m = separation·1_dim``, float32.

    Components alternate ``+, -, +, …`` (balanced, as in the paper's data), and the draws of a
    smaller ``n`` are the first rows of a larger one: training sets are nested.
    """
    rng = np.random.default_rng([int(seed), int(stream)])
    noise = rng.standard_normal((n, dim))
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    return (noise + separation * signs[:, None]).astype(np.float32)


# -- presets -----------------------------------------------------------------------------------


def gmm_preset(
    name: str = "gmm",
    *,
    n: int,
    width: int | None = None,
    optimizer: str | None = None,
    lr: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    data_options: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The :class:`RunConfig` of the Gaussian-mixture experiment (``gmm`` or ``gmm-small``).

    Full-batch training (batch = n); SGD lr 6e-3 momentum 0.95, or Adam lr 6e-4; checkpoints
    every 50 steps to 1000, then 20 per decade; 1024 DDIM-50 samples per checkpoint.
    """
    if name not in GMM_PRESETS:
        raise UnknownNameError(f"unknown gmm preset {name!r}; known: {', '.join(GMM_PRESETS)}.")
    options = dict(data_options or {})
    dim = int(options.get("dim", GMM_DIM))
    optimizer = optimizer or "sgd"
    small = name == "gmm-small"
    mlp = MLPConfig(dim=dim, width=width or (32 if small else 128), blocks=3)
    train = TrainConfig(
        steps=steps or (2000 if small else 1_000_000), optimizer=optimizer,
        lr=lr or (6e-3 if optimizer == "sgd" else 6e-4), momentum=0.95,
        batch_size=max(int(n), 1), with_replacement=False, ema_decay=None, seed=seed,
        log_every=100,
    )
    schedule = ScheduleConfig(dense_every=50, dense_until=1000, per_decade=20)
    sampler = SamplerConfig(ddim_steps=20 if small else 50, n_samples=128 if small else 1024,
                            seed=0, batch_size=1024)
    data = DataConfig("gmm", n, options)
    cfg = RunConfig(name, data, UNetConfig(), DiffusionConfig(), train, schedule, sampler,
                    mlp=mlp)
    cfg.validate()
    return cfg


# -- measures and step caps ----------------------------------------------------------------


def gmm_measures(*, mem_level: float = 0.01, stop_level: float | None = 0.1,
                 min_steps: int = 0):
    """The GMM protocol for :mod:`probekit.reference.sweep`: ``nn-ratio`` and ``gmm-mmd``,
    tau_mem at ``f_mem = mem_level``, runs stopped once ``f_mem >= stop_level`` twice."""
    from probekit.reference.sweep import SweepMeasures

    return SweepMeasures(probes=("nn-ratio",), metrics=("gmm-mmd",), mem_level=mem_level,
                         stop_level=stop_level, min_steps=min_steps)


#: Step cap per training sample at W = 128 (the cap scales as n·128/W, like tau_mem), so runs
#: stop on f_mem, not on the cap. Measured tau_mem/n (n = 128…1024): Adam lr 1e-3 ≈ 10–20 (cap
#: 2.4× the largest; tau_mem/n falls with n for Adam), SGD lr 6e-3 ≈ 156–204 (cap 3× the
#: largest: the n = 1024 run stopped at 292,500 steps, close to the former cap of 320·n).
STEPS_PER_SAMPLE = {"adam": 48, "sgd": 640}


__all__ = [
    "GMM_DIM",
    "GMM_PRESETS",
    "STEPS_PER_SAMPLE",
    "gmm_measures",
    "gmm_preset",
    "mixture_samples",
]

