"""Seeded synthetic time-series datasets: ``sines``, ``ar-process``, ``regime-switching``.

Series ``i`` of the training pool is drawn from its own generator
``default_rng([seed, 0, i])`` (holdout series from ``[seed, 1, i]``), so training sets of
different sizes are nested and the holdout never depends on ``n_train``. Fresh draws of the same
process are the ground truth "never memorized" for the probes.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import pydantic

from probekit import DatasetSplits, hookimpl
from probekit.base import Dataset
from probekit.timeseries import SeriesDatasetSettings, make_splits


class SyntheticSettings(SeriesDatasetSettings):
    n_train: int | None = pydantic.Field(500, ge=2, description="training series")
    n_holdout: int = pydantic.Field(500, ge=1, description="held-out series")
    n_timesteps: int = pydantic.Field(64, ge=2, description="length of each series")
    n_channels: int = pydantic.Field(1, ge=1, description="channels (independent)")
    seed: int = pydantic.Field(0, ge=0, description="seed of the process")

    @pydantic.model_validator(mode="after")
    def _fits_in_memory(self) -> SyntheticSettings:
        from probekit.validation import check_memory

        n = (self.n_train or 0) + self.n_holdout
        check_memory(16 * n * self.n_timesteps * self.n_channels, who="dataset",
                     what=f"{n} series of {self.n_timesteps} x {self.n_channels} values",
                     fix="Lower n_train, n_holdout, n_timesteps or n_channels")
        return self


class SyntheticDataset(Dataset):
    """Base: :meth:`draw` makes series from one generator per series."""

    modality = "timeseries"
    Settings = SyntheticSettings
    settings: SyntheticSettings

    @abstractmethod
    def draw(self, rngs: list[np.random.Generator]) -> np.ndarray:
        """One series per generator, ``(len(rngs), n_timesteps, n_channels)`` float64."""

    def series(self, split: int, n: int) -> np.ndarray:
        """Series ``0..n-1`` of ``split`` (0: training pool, 1: holdout)."""
        seed = self.settings.seed
        return self.draw([np.random.default_rng([seed, split, i]) for i in range(n)])

    def load(self) -> DatasetSplits:
        s = self.settings
        pool = self.series(0, s.n_train or 500)
        return make_splits(pool, self.series(1, s.n_holdout), s, self.name)


class SinesSettings(SyntheticSettings):
    frequency: tuple[float, float] = pydantic.Field(
        (1.0, 5.0), description="range of the uniform frequency, in cycles per series"
    )
    noise: float = pydantic.Field(0.1, ge=0, description="std of the added white noise")


class Sines(SyntheticDataset):
    """``sin(2π f t / T + φ) + noise`` with ``f`` uniform in ``frequency`` and ``φ`` uniform
    in ``[0, 2π)``, independently per series and channel; amplitude 1."""

    name = "sines"
    description = "random-frequency, random-phase sines plus white noise (seeded)"
    Settings = SinesSettings
    settings: SinesSettings

    def draw(self, rngs):
        s = self.settings
        low, high = s.frequency
        t = np.arange(s.n_timesteps) / s.n_timesteps
        out = np.empty((len(rngs), s.n_timesteps, s.n_channels))
        for i, rng in enumerate(rngs):
            freq = rng.uniform(low, high, s.n_channels)
            phase = rng.uniform(0.0, 2 * np.pi, s.n_channels)
            noise = rng.normal(0.0, 1.0, (s.n_timesteps, s.n_channels))
            out[i] = np.sin(2 * np.pi * freq * t[:, None] + phase) + s.noise * noise
        return out


class ARSettings(SyntheticSettings):
    coefficients: tuple[float, ...] = pydantic.Field(
        (0.6, -0.3, 0.2), min_length=1, description="AR coefficients phi_1..phi_p"
    )
    noise: float = pydantic.Field(1.0, gt=0, description="std of the innovations")
    burn_in: int = pydantic.Field(200, ge=0, description="steps discarded from a zero start")

    @pydantic.field_validator("coefficients")
    @classmethod
    def _stationary(cls, phi: tuple[float, ...]) -> tuple[float, ...]:
        if spectral_radius(np.asarray(phi)) >= 1.0:
            raise ValueError(
                "must define a stationary AR process (companion-matrix eigenvalues inside the "
                "unit circle), e.g. (0.6, -0.3, 0.2)"
            )
        return phi


def spectral_radius(phi: np.ndarray) -> float:
    """Largest eigenvalue modulus of the AR(p) companion matrix (< 1: stationary)."""
    p = len(phi)
    companion = np.zeros((p, p))
    companion[0] = phi
    companion[1:, :-1] = np.eye(p - 1)
    return float(np.abs(np.linalg.eigvals(companion)).max())


class ARProcess(SyntheticDataset):
    """Stationary AR(p): ``x_t = sum_k phi_k x_{t-k} + noise * e_t``, per channel."""

    name = "ar-process"
    description = "stationary AR(p) process with Gaussian innovations (seeded)"
    Settings = ARSettings
    settings: ARSettings

    def draw(self, rngs):
        s = self.settings
        phi = np.asarray(s.coefficients)
        p, total = len(phi), s.burn_in + s.n_timesteps
        e = np.stack([rng.normal(0.0, s.noise, (total, s.n_channels)) for rng in rngs])
        x = np.zeros((len(rngs), total + p, s.n_channels))
        for t in range(total):
            # x[:, t + p - k] for k = 1..p, i.e. the p previous values, newest first
            x[:, t + p] = np.einsum("k,nkc->nc", phi, x[:, t + p - 1 :: -1][:, :p]) + e[:, t]
        return x[:, p + s.burn_in :]


class RegimeSettings(SyntheticSettings):
    means: tuple[float, float] = pydantic.Field((-1.0, 1.0), description="level per regime")
    phis: tuple[float, float] = pydantic.Field((0.8, 0.3), description="AR(1) coefficient")
    noise: tuple[float, float] = pydantic.Field((0.1, 0.4), description="innovation std")
    switch_probability: float = pydantic.Field(
        0.05, ge=0, le=1, description="chance per step of switching regime"
    )

    @pydantic.field_validator("phis")
    @classmethod
    def _stable(cls, phis: tuple[float, float]) -> tuple[float, float]:
        if max(abs(v) for v in phis) >= 1:
            raise ValueError("must be in (-1, 1) for stable regimes")
        return phis


class RegimeSwitching(SyntheticDataset):
    """Two-regime Markov-switching AR(1): the regime (shared by the channels) switches with
    probability ``switch_probability`` per step; within regime ``r``,
    ``x_t = m_r + phi_r (x_{t-1} - m_r) + noise_r e_t``. Starts in a uniformly drawn regime at
    its level."""

    name = "regime-switching"
    description = "two-regime Markov-switching AR(1) (seeded)"
    Settings = RegimeSettings
    settings: RegimeSettings

    def draw(self, rngs):
        s = self.settings
        n, t_len, c = len(rngs), s.n_timesteps, s.n_channels
        start = np.empty(n, dtype=np.int64)
        switches = np.empty((n, t_len), dtype=bool)
        e = np.empty((n, t_len, c))
        for i, rng in enumerate(rngs):
            start[i] = rng.integers(2)
            switches[i] = rng.random(t_len) < s.switch_probability
            e[i] = rng.normal(size=(t_len, c))
        regime = (start[:, None] + np.cumsum(switches, axis=1) - switches[:, :1]) % 2
        means, phis, noise = (np.asarray(v) for v in (s.means, s.phis, s.noise))
        x = np.empty((n, t_len, c))
        x[:, 0] = means[regime[:, 0], None]
        for t in range(1, t_len):
            r = regime[:, t]
            x[:, t] = means[r, None] + phis[r, None] * (x[:, t - 1] - means[r, None]) + (
                noise[r, None] * e[:, t]
            )
        return x


@hookimpl
def register_datasets():
    return [Sines, ARProcess, RegimeSwitching]
