"""``acf-distance``: how far the temporal correlation of generated series is from the real one.

For every series and channel, the sample autocorrelation at lags ``1..max_lag`` (the usual biased
estimator with the series' own mean; :func:`probekit.timeseries.autocorrelation`); averaged over
series, separately for the real and the generated set. The distance is the root mean square,
over lags and channels, of the difference of the two mean ACFs: 0 for equal correlation
structure, at most 2. Values alone do not matter (white noise with the right marginals scores as
far as its missing correlations), which makes it complementary to ``marginal-distance``.
A constant series has no autocorrelation: it counts as 0 at every lag and is counted in the
provenance.
"""

from __future__ import annotations

import math

import numpy as np
import pydantic

from probekit import MeasureSettings, Metric, Result, hookimpl
from probekit.errors import ValidationError
from probekit.stats import bootstrap_ci
from probekit.timeseries import autocorrelation, check_series


class ACFDistanceSettings(MeasureSettings):
    max_lag: int = pydantic.Field(16, ge=1, description="largest lag compared")
    n_bootstrap: int = pydantic.Field(1000, ge=100, description="bootstrap resamples for the CI")
    confidence: float = pydantic.Field(0.95, gt=0, lt=1, description="CI level")


def rms(diff: np.ndarray) -> np.ndarray:
    """Root mean square over the last two axes (lags, channels)."""
    return np.sqrt(np.mean(diff * diff, axis=(-2, -1)))


class ACFDistance(Metric):
    """RMS difference of the mean autocorrelation functions of real and generated series."""

    name = "acf-distance"
    modality = "timeseries"
    description = "RMS difference of mean autocorrelations (lags 1..max_lag) real vs generated"
    headline = "acf_distance"
    headline_range = (0.0, math.inf)
    higher_is_better = False
    role = "quality"
    requires = ("holdout", "samples")
    non_sample_arrays = ("acf_reference", "acf_samples")  # per lag and channel
    Settings = ACFDistanceSettings
    settings: ACFDistanceSettings

    def _acf(self, x: np.ndarray, name: str) -> tuple[np.ndarray, int]:
        x = check_series(x, who=self.name, name=name)
        if x.shape[1] <= self.settings.max_lag:
            raise ValidationError(
                f"{self.name}: {name} must be longer than max_lag={self.settings.max_lag}; got "
                f"{x.shape[1]} timesteps. Lower max_lag."
            )
        acf, constant = autocorrelation(x, self.settings.max_lag)
        return acf[:, 1:], int(constant.sum())

    def prepare(self, reference: np.ndarray):
        """Mean autocorrelation of the real series (once per run)."""
        acf, n_constant = self._acf(reference, "reference")
        self.reference_acf_ = acf.mean(axis=0)
        self.n_reference_ = len(acf)
        self.n_reference_constant_ = n_constant
        self.n_channels_ = acf.shape[2]
        self.reset()
        return self

    def reset(self) -> None:
        self._acfs: list[np.ndarray] = []
        self._n_constant = 0

    def update(self, samples: np.ndarray) -> None:
        self._check_prepared("reference_acf_")
        acf, n_constant = self._acf(samples, "samples")
        if acf.shape[2] != self.n_channels_:
            raise ValidationError(
                f"{self.name}: samples must have {self.n_channels_} channel(s) like the "
                f"reference; got {acf.shape[2]}."
            )
        self._acfs.append(acf)
        self._n_constant += n_constant

    def compute(self) -> Result:
        self._check_prepared("reference_acf_")
        s = self.settings
        if not self._acfs:
            raise ValidationError(f"{self.name}: no samples given; call update(samples) first.")
        acfs = np.concatenate(self._acfs)
        mean = acfs.mean(axis=0)
        diff = mean - self.reference_acf_
        reference = self.reference_acf_

        def statistic(resampled: np.ndarray) -> np.ndarray:
            return rms(resampled.mean(axis=1) - reference)

        return Result(
            measure=self.name,
            headline="acf_distance",
            values={
                "acf_distance": float(rms(diff)),
                "max_abs_difference": float(np.abs(diff).max()),
            },
            ci={"acf_distance": bootstrap_ci(
                acfs, statistic, n_resamples=s.n_bootstrap, confidence=s.confidence, seed=s.seed
            )},
            per_sample={"acf_reference": reference, "acf_samples": mean},
            provenance=self.make_provenance(
                feature_space="pixels",
                preprocessing=f"autocorrelation at lags 1..{s.max_lag} per series and channel",
                n_reference=self.n_reference_,
                n_samples=len(acfs),
                extra={"n_constant_reference_channels": self.n_reference_constant_,
                       "n_constant_sample_channels": self._n_constant},
            ),
        )


@hookimpl
def register_metrics():
    return [ACFDistance]
