"""``ts-rocket``: fixed random convolutional kernels (ROCKET; Dempster, Petitjean & Webb 2020) as
a deterministic, download-free feature space for time series.

Each kernel has a length in {7, 9, 11}, N(0, 1) weights centred to mean 0, a bias uniform in
[-1, 1], a dilation ``floor(2^u)`` with ``u`` uniform in ``[0, log2((T - 1) / (length - 1))]``,
zero padding on half of the kernels, and (for several channels) a random subset of channels as
in multivariate ROCKET. Each kernel gives two features: the proportion of positive values (PPV)
and the maximum of its output. The kernels are drawn from ``default_rng([seed, T, C])``, so they
are the same in every process for a given series length ``T`` and channel count ``C``; no
weights file exists (``weights_sha256`` is ``None``) and nothing is fitted to data.

The bias range assumes values of order 1 (probekit's time-series datasets are z-scored by
default); rescale other data first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pydantic

from probekit import FeatureExtractor, Settings, hookimpl
from probekit.errors import ValidationError
from probekit.validation import check_array

#: Shortest series the kernels fit (the longest kernel has 11 taps).
MIN_TIMESTEPS = 11


class RocketSettings(Settings):
    n_kernels: int = pydantic.Field(100, ge=1, description="random kernels (2 features each)")
    seed: int = pydantic.Field(0, ge=0, description="seed of the kernels")


@dataclass(frozen=True)
class Kernel:
    """One random kernel: ``weights`` (n_used_channels, length), over ``channels``."""

    weights: np.ndarray
    channels: np.ndarray
    bias: float
    dilation: int
    padding: int


def draw_kernels(n_kernels: int, n_timesteps: int, n_channels: int, seed: int) -> list[Kernel]:
    """ROCKET's kernel distribution for series of ``n_timesteps`` x ``n_channels``."""
    rng = np.random.default_rng([seed, n_timesteps, n_channels])
    kernels = []
    for _ in range(n_kernels):
        length = int(rng.choice([7, 9, 11]))
        n_used = int(min(n_channels, np.floor(2 ** rng.uniform(0, np.log2(n_channels + 1)))))
        channels = np.sort(rng.choice(n_channels, size=max(1, n_used), replace=False))
        weights = rng.normal(size=(len(channels), length))
        weights -= weights.mean(axis=1, keepdims=True)
        bias = float(rng.uniform(-1.0, 1.0))
        top = np.log2(max(1.0, (n_timesteps - 1) / (length - 1)))
        dilation = int(np.floor(2 ** rng.uniform(0.0, top)))
        padding = (length - 1) * dilation // 2 if rng.integers(2) else 0
        kernels.append(Kernel(weights, channels, bias, dilation, padding))
    return kernels


def apply_kernel(x: np.ndarray, kernel: Kernel) -> np.ndarray:
    """Output ``(n, n_out)`` of one dilated kernel on ``x`` ``(n, T, C)`` (cross-correlation,
    zero padding), summed over the kernel's channels, plus the bias."""
    pad = kernel.padding
    xp = np.pad(x[:, :, kernel.channels], ((0, 0), (pad, pad), (0, 0)))
    length = kernel.weights.shape[1]
    n_out = xp.shape[1] - (length - 1) * kernel.dilation
    out = np.full((x.shape[0], n_out), kernel.bias)
    # element-wise multiply-adds in a fixed order (not a matrix product, whose rounding can
    # depend on the batch size): each series' output is the same however it is batched
    for c in range(len(kernel.channels)):
        for j in range(length):
            start = j * kernel.dilation
            out += kernel.weights[c, j] * xp[:, start : start + n_out, c]
    return out


class RocketFeatures(FeatureExtractor):
    """PPV and max of ``n_kernels`` fixed random convolutional kernels (ROCKET)."""

    name = "ts-rocket"
    modality = "timeseries"
    description = "ROCKET random convolutional kernels (PPV and max), fixed seed, no weights"
    preprocessing = "none"
    Settings = RocketSettings
    settings: RocketSettings

    def kernels(self, n_timesteps: int, n_channels: int) -> list[Kernel]:
        """The kernels for series of this shape (drawn once, then cached)."""
        cache = self.__dict__.setdefault("_kernels", {})
        key = (n_timesteps, n_channels)
        if key not in cache:
            s = self.settings
            cache[key] = draw_kernels(s.n_kernels, n_timesteps, n_channels, s.seed)
        return cache[key]

    def extract(self, x: np.ndarray) -> np.ndarray:
        """``(n, 2 * n_kernels)`` features: PPV and max of each kernel, interleaved."""
        x = check_array(x, who=self.name, name="x", modality="timeseries", min_samples=0)
        if x.shape[1] < MIN_TIMESTEPS:
            raise ValidationError(
                f"{self.name}: series must have at least {MIN_TIMESTEPS} timesteps (the longest "
                f"kernel); got {x.shape[1]}. Use a feature space for short series, e.g. pixels."
            )
        feats = np.empty((len(x), 2 * self.settings.n_kernels))
        if len(x) == 0:
            return feats
        for i, kernel in enumerate(self.kernels(x.shape[1], x.shape[2])):
            out = apply_kernel(x, kernel)
            feats[:, 2 * i] = (out > 0).mean(axis=1)
            feats[:, 2 * i + 1] = out.max(axis=1)
        return feats


@hookimpl
def register_feature_extractors():
    return [RocketFeatures]
