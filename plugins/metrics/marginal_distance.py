"""``marginal-distance``: how far the distribution of generated *values* is from the real one.

For each channel, the 1-Wasserstein distance between the empirical distributions of all real
and all generated values (pooled over series and timesteps), averaged over channels. With
``per_timestep=True`` the distance is taken separately at every (timestep, channel) and averaged,
which also sees values that are right overall but at the wrong time (e.g. a peak in the wrong
place). In the data's units (standard deviations for probekit's z-scored datasets); 0 for equal
distributions; a generator that only shifts every value by ``c`` scores exactly ``|c|``.
Exact, not binned: ``W1 = integral |F_real(x) - F_gen(x)| dx`` over the merged sorted values
(as :func:`scipy.stats.wasserstein_distance`).

Beside it, the shape of the marginals the field reports: ``skewness_difference`` and
``kurtosis_difference``, the mean over distributions of ``|skew_real - skew_gen|`` and
``|kurt_real - kurt_gen|`` (population skewness and excess kurtosis; a Gaussian has 0 and 0).
They see heavy tails and asymmetry that a small Wasserstein distance can hide.
"""

from __future__ import annotations

import math

import numpy as np
import pydantic

from probekit import MeasureSettings, Metric, Result, hookimpl
from probekit.errors import ValidationError
from probekit.timeseries import check_series


class MarginalDistanceSettings(MeasureSettings):
    per_timestep: bool = pydantic.Field(
        False, description="one distribution per (timestep, channel) instead of per channel"
    )


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact 1-Wasserstein distance between the empirical distributions of the columns of
    ``a`` ``(n_a, m)`` and ``b`` ``(n_b, m)``: one distance per column ``(m,)``."""
    a = np.sort(np.asarray(a, dtype=np.float64), axis=0)
    b = np.sort(np.asarray(b, dtype=np.float64), axis=0)
    out = np.empty(a.shape[1])
    for j in range(a.shape[1]):
        merged = np.sort(np.concatenate([a[:, j], b[:, j]]))
        widths = np.diff(merged)
        cdf_a = np.searchsorted(a[:, j], merged[:-1], side="right") / len(a)
        cdf_b = np.searchsorted(b[:, j], merged[:-1], side="right") / len(b)
        out[j] = float(np.sum(np.abs(cdf_a - cdf_b) * widths))
    return out


def shape_moments(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skewness and excess kurtosis of each column of ``a`` ``(n, m)`` (population moments,
    float64; 0 and 0 for a constant column)."""
    a = np.asarray(a, dtype=np.float64)
    centred = a - a.mean(axis=0)
    var = np.mean(centred**2, axis=0)
    flat = var <= 1e-300
    safe = np.where(flat, 1.0, var)
    skew = np.mean(centred**3, axis=0) / safe**1.5
    kurt = np.mean(centred**4, axis=0) / safe**2 - 3.0
    return np.where(flat, 0.0, skew), np.where(flat, 0.0, kurt)


class MarginalDistance(Metric):
    """Mean per-channel 1-Wasserstein distance between real and generated value distributions."""

    name = "marginal-distance"
    modality = "timeseries"
    description = "mean per-channel 1-Wasserstein distance of the value distributions"
    headline = "marginal_distance"
    headline_range = (0.0, math.inf)
    higher_is_better = False
    role = "quality"
    requires = ("holdout", "samples")
    #: per channel, and per distribution compared
    non_sample_arrays = ("distance_per_channel", "distance_per_distribution")
    Settings = MarginalDistanceSettings
    settings: MarginalDistanceSettings

    def _columns(self, x: np.ndarray) -> np.ndarray:
        """Values as ``(n_values, n_distributions)``: per channel, or per (timestep, channel)."""
        if self.settings.per_timestep:
            return x.reshape(len(x), -1)
        return x.reshape(-1, x.shape[2])

    def prepare(self, reference: np.ndarray):
        """Sorted real values of every distribution (once per run)."""
        reference = check_series(reference, who=self.name, name="reference")
        return self.load_reference_state({
            "values": np.sort(self._columns(reference), axis=0),
            "series_shape": np.asarray(reference.shape[1:], dtype=np.int64),
        })

    def reference_state(self) -> dict[str, np.ndarray]:
        self._check_prepared("reference_values_")
        return {"values": self.reference_values_,
                "series_shape": np.asarray(self.series_shape_, dtype=np.int64)}

    def load_reference_state(self, state: dict[str, np.ndarray]):
        self.reference_values_ = np.asarray(state["values"], dtype=np.float64)
        self.series_shape_ = tuple(int(v) for v in state["series_shape"])
        self.reset()
        return self

    def reset(self) -> None:
        self._values: list[np.ndarray] = []
        self._n_series = 0

    def update(self, samples: np.ndarray) -> None:
        self._check_prepared("reference_values_")
        samples = check_series(samples, who=self.name, name="samples")
        needed = self.series_shape_ if self.settings.per_timestep else self.series_shape_[1:]
        got = samples.shape[1:] if self.settings.per_timestep else samples.shape[2:]
        if got != needed:
            raise ValidationError(
                f"{self.name}: samples must have the reference's "
                f"{'(n_timesteps, n_channels)' if self.settings.per_timestep else 'n_channels'} "
                f"= {needed}; got {got}."
            )
        self._values.append(self._columns(samples))
        self._n_series += len(samples)

    def compute(self) -> Result:
        self._check_prepared("reference_values_")
        if not self._values:
            raise ValidationError(f"{self.name}: no samples given; call update(samples) first.")
        generated = np.concatenate(self._values)
        distances = wasserstein_1d(self.reference_values_, generated)
        per_channel = distances.reshape(-1, self.series_shape_[1]).mean(axis=0)
        skew_r, kurt_r = shape_moments(self.reference_values_)
        skew_g, kurt_g = shape_moments(generated)
        return Result(
            measure=self.name,
            headline="marginal_distance",
            values={
                "marginal_distance": float(distances.mean()),
                "max_channel_distance": float(per_channel.max()),
                "skewness_difference": float(np.mean(np.abs(skew_r - skew_g))),
                "kurtosis_difference": float(np.mean(np.abs(kurt_r - kurt_g))),
            },
            per_sample={"distance_per_channel": per_channel,
                        "distance_per_distribution": distances},
            provenance=self.make_provenance(
                feature_space="pixels",
                preprocessing="values per (timestep, channel)" if self.settings.per_timestep
                else "values pooled per channel",
                n_reference=len(self.reference_values_) if self.settings.per_timestep
                else len(self.reference_values_) // self.series_shape_[0],
                n_samples=self._n_series,
            ),
        )


@hookimpl
def register_metrics():
    return [MarginalDistance]
