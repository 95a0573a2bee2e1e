"""Baseline time-series generators for the benchmark: ``fit(train)`` then ``sample(n, seed)``.

Two kinds, on purpose: generators that *copy* (``copycat``: whole training series plus a little
noise; ``splice``: pieces of different training series stitched together; ``block-bootstrap``:
blocks of one training series reshuffled) are the planted positives of the memorization probes;
generators that *model* (``var``: a vector autoregression fitted by least squares;
``gaussian-noise``: white noise with the training set's per-channel moments) copy nothing.
Every generator returns float32 ``(n, n_timesteps, n_channels)`` and is a pure function of the
training set, its settings and ``seed``.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pydantic

from probekit import Generator, Settings, hookimpl
from probekit.errors import DataWarning, NotPreparedError, ValidationError
from probekit.timeseries import check_series, lagged_design


class BaseSeriesGenerator(Generator):
    """Shared checks: ``fit`` validates and keeps the training series; ``sample`` before
    ``fit`` raises :class:`~probekit.errors.NotPreparedError`."""

    modality = "timeseries"
    #: Least number of training series ``fit`` accepts.
    min_train: int = 1

    def fit(self, train: np.ndarray):
        train = check_series(train, who=self.name, name="train", min_samples=self.min_train)
        self.train_ = train
        self.channel_std_ = np.where(train.std(axis=(0, 1)) > 0, train.std(axis=(0, 1)), 1.0)
        self._fit(train)
        return self

    def _fit(self, train: np.ndarray) -> None:
        """Extra fitting work of a subclass (none by default)."""

    def sample(self, n: int, seed: int) -> np.ndarray:
        if not hasattr(self, "train_"):
            raise NotPreparedError(f"{self.name}: call fit(train) before sample(n, seed).")
        if n < 1:
            raise ValidationError(f"{self.name}: n must be at least 1; got {n}.")
        return self._sample(int(n), np.random.default_rng(seed)).astype(np.float32)

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


class CopycatSettings(Settings):
    noise: float = pydantic.Field(
        0.01, ge=0, description="std of the added noise, relative to each channel's std"
    )


class Copycat(BaseSeriesGenerator):
    """Uniformly drawn training series plus Gaussian noise: a fully memorizing generator."""

    name = "copycat"
    description = "training series plus small Gaussian noise (memorizes everything)"
    Settings = CopycatSettings
    settings: CopycatSettings

    def _sample(self, n, rng):
        source = rng.integers(len(self.train_), size=n)
        noise = rng.normal(size=(n, *self.train_.shape[1:]))
        return self.train_[source] + self.settings.noise * self.channel_std_ * noise


class SpliceSettings(Settings):
    n_pieces: int = pydantic.Field(
        3, ge=2, description="pieces per series, each from a different training series"
    )
    aligned: bool = pydantic.Field(
        True, description="cut each piece at the time position it fills (else anywhere)"
    )
    noise: float = pydantic.Field(
        0.0, ge=0, description="std of added noise, relative to each channel's std"
    )


class Splice(BaseSeriesGenerator):
    """Series stitched from ``n_pieces`` consecutive pieces (boundaries at ``round(j T /
    n_pieces)``), each cut from a different, uniformly drawn training series: no whole series is
    close to a training series, yet every piece is a copy. The subsequence-match probe catches
    a piece when it is at least ``window + stride - 1`` long."""

    name = "splice"
    description = "pieces of different training series stitched together (copies pieces)"
    Settings = SpliceSettings
    settings: SpliceSettings

    def _fit(self, train):
        s = self.settings
        if len(train) < s.n_pieces:
            raise ValidationError(
                f"{self.name}: train must hold at least n_pieces={s.n_pieces} series; got "
                f"{len(train)}. Lower n_pieces."
            )
        if train.shape[1] < s.n_pieces:
            raise ValidationError(
                f"{self.name}: series must have at least n_pieces={s.n_pieces} timesteps; got "
                f"{train.shape[1]}."
            )

    def _sample(self, n, rng):
        s = self.settings
        t = self.train_.shape[1]
        bounds = np.round(np.arange(s.n_pieces + 1) * t / s.n_pieces).astype(int)
        out = np.empty((n, *self.train_.shape[1:]))
        for i in range(n):
            sources = rng.choice(len(self.train_), size=s.n_pieces, replace=False)
            for j, src in enumerate(sources):
                a, b = bounds[j], bounds[j + 1]
                start = a if s.aligned else int(rng.integers(0, t - (b - a) + 1))
                out[i, a:b] = self.train_[src, start : start + b - a]
        noise = rng.normal(size=out.shape)
        return out + s.noise * self.channel_std_ * noise


class BlockBootstrapSettings(Settings):
    block: int = pydantic.Field(16, ge=1, description="block length (timesteps)")


class BlockBootstrap(BaseSeriesGenerator):
    """Moving-block bootstrap (Künsch 1989) of one uniformly drawn training series: blocks of
    ``block`` consecutive values starting at uniform positions, concatenated and cut to length.
    Copies pieces of length ``block``."""

    name = "block-bootstrap"
    description = "moving-block bootstrap of one training series (copies blocks)"
    Settings = BlockBootstrapSettings
    settings: BlockBootstrapSettings

    def _fit(self, train):
        if self.settings.block > train.shape[1]:
            raise ValidationError(
                f"{self.name}: block must be at most the series length {train.shape[1]}; got "
                f"{self.settings.block}."
            )

    def _sample(self, n, rng):
        b = self.settings.block
        t = self.train_.shape[1]
        n_blocks = -(-t // b)
        source = rng.integers(len(self.train_), size=n)
        starts = rng.integers(0, t - b + 1, size=(n, n_blocks))
        offsets = (starts[:, :, None] + np.arange(b)).reshape(n, -1)[:, :t]
        return self.train_[source[:, None], offsets]


class VARSettings(Settings):
    order: int = pydantic.Field(2, ge=1, description="autoregressive order p")
    ridge: float = pydantic.Field(
        1e-6, ge=0, description="ridge penalty relative to the mean diagonal of X^T X"
    )


class VectorAutoregression(BaseSeriesGenerator):
    """VAR(p) with intercept, fitted by (ridge) least squares on every training series'
    next-step pairs, with Gaussian innovations of the residual covariance. The first ``p``
    values are drawn from a Gaussian fitted to the training series' first ``p`` values, so no
    training value is copied. An unstable fit (companion spectral radius >= 1) is warned."""

    name = "var"
    description = "vector autoregression VAR(p) fitted by least squares"
    Settings = VARSettings
    settings: VARSettings
    min_train = 2

    def _fit(self, train):
        p = self.settings.order
        n, t, c = train.shape
        if t <= p + 1:
            raise ValidationError(
                f"{self.name}: series must be longer than order + 1 = {p + 1}; got {t} "
                "timesteps. Lower order."
            )
        inputs, targets = lagged_design(train, p)
        X = np.concatenate([inputs.reshape(-1, p * c), np.ones((n * (t - p), 1))], axis=1)
        Y = targets.reshape(-1, c)
        gram = X.T @ X
        penalty = self.settings.ridge * np.trace(gram) / len(gram)
        self.coef_ = np.linalg.solve(gram + penalty * np.eye(len(gram)), X.T @ Y)
        resid = Y - X @ self.coef_
        self.noise_cov_ = resid.T @ resid / max(1, len(Y) - len(gram))
        first = train[:, :p].reshape(n, p * c)
        self.init_mean_ = first.mean(axis=0)
        self.init_cov_ = np.cov(first, rowvar=False).reshape(p * c, p * c)
        companion = np.zeros((p * c, p * c))
        # state = (x_{t-p+1}, ..., x_t) oldest first; the new value depends on it through coef_
        companion[:-c] = np.eye(p * c)[c:]
        companion[-c:] = self.coef_[:-1].T
        self.spectral_radius_ = float(np.abs(np.linalg.eigvals(companion)).max())
        if self.spectral_radius_ >= 1.0:
            warnings.warn(
                f"{self.name}: the fitted VAR({p}) is not stable (spectral radius "
                f"{self.spectral_radius_:.3f} >= 1); its samples may drift or diverge.",
                DataWarning,
                stacklevel=3,
            )

    def _sample(self, n, rng):
        p = self.settings.order
        _, t, c = self.train_.shape
        out = np.empty((n, t, c))
        out[:, :p] = _gaussian(rng, self.init_mean_, self.init_cov_, n).reshape(n, p, c)
        noise = _gaussian(rng, np.zeros(c), self.noise_cov_, n * (t - p)).reshape(n, t - p, c)
        for step in range(p, t):
            history = out[:, step - p : step].reshape(n, p * c)
            out[:, step] = history @ self.coef_[:-1] + self.coef_[-1] + noise[:, step - p]
        return out


def _gaussian(rng: np.random.Generator, mean: np.ndarray, cov: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws of N(mean, cov) for a PSD ``cov`` (symmetric square root, no Cholesky
    failure on singular matrices)."""
    w, U = np.linalg.eigh((cov + cov.T) / 2.0)
    root = U * np.sqrt(np.clip(w, 0.0, None))
    return mean + rng.normal(size=(n, len(mean))) @ root.T


class GaussianNoiseSettings(Settings):
    match: Literal["channel", "timestep"] = pydantic.Field(
        "channel",
        description="match the mean and std of each channel, or of each (timestep, channel)",
    )


class GaussianNoise(BaseSeriesGenerator):
    """Independent Gaussian values with the training set's mean and std (per channel, or per
    timestep and channel): right marginals, no temporal structure, copies nothing."""

    name = "gaussian-noise"
    description = "white Gaussian noise with the training mean and std (copies nothing)"
    Settings = GaussianNoiseSettings
    settings: GaussianNoiseSettings

    def _sample(self, n, rng):
        axes = (0, 1) if self.settings.match == "channel" else (0,)
        mean, std = self.train_.mean(axis=axes), self.train_.std(axis=axes)
        return mean + std * rng.normal(size=(n, *self.train_.shape[1:]))


@hookimpl
def register_generators():
    return [Copycat, Splice, BlockBootstrap, VectorAutoregression, GaussianNoise]
