"""``ts-fd``: Fréchet distance between real and generated time series in the feature space of a
fixed, deterministic encoder (default ``ts-rocket``: random convolutional kernels, no download).

``ts_fd = ||mu_r - mu_g||² + Tr(S_r + S_g - 2 (S_r S_g)^½)`` with float64 streaming moments of
the features (:class:`probekit.stats.StreamingMoments`) and the stable Fréchet distance of
:func:`probekit.stats.frechet_distance` — the same numerics as FID, on a time-series encoder
(in the spirit of the "context-FID" of Jeha et al. 2022, with a fixed instead of a trained
encoder, so numbers are comparable across papers and machines).
"""

from __future__ import annotations

import math

import numpy as np

from probekit import FeatureExtractor, Metric, Result, hookimpl
from probekit.errors import ValidationError
from probekit.features import extract_in_batches
from probekit.stats import StreamingMoments, frechet_distance, trace_sqrt_product
from probekit.timeseries import (
    FeatureSpaceSettings,
    apply_channel_scale,
    channel_scale,
    check_series,
    make_extractor,
)


class TimeSeriesFrechetDistance(Metric):
    """Fréchet distance of Gaussians fitted to encoder features of real and generated series."""

    name = "ts-fd"
    modality = "timeseries"
    description = "Fréchet distance on fixed random-kernel (ROCKET) features of the series"
    headline = "ts_fd"
    headline_range = (0.0, math.inf)
    min_samples = 2  # a covariance
    higher_is_better = False
    role = "quality"
    requires = ("holdout", "samples")
    Settings = FeatureSpaceSettings
    settings: FeatureSpaceSettings

    def __init__(self, settings=None, *, extractor: FeatureExtractor | None = None, **overrides):
        super().__init__(settings, **overrides)
        self.extractor = make_extractor(self.settings, extractor)

    def _features(self, x: np.ndarray, name: str) -> np.ndarray:
        x = apply_channel_scale(check_series(x, who=self.name, name=name), self.scale_)
        return np.asarray(extract_in_batches(self.extractor, x, self.settings.batch_size),
                          dtype=np.float64)

    def prepare(self, reference: np.ndarray):
        """Float64 moments of the reference features (once per run)."""
        reference = check_series(reference, who=self.name, name="reference", min_samples=2)
        self.series_shape_ = reference.shape[1:]
        self.scale_ = channel_scale(reference, self.settings.standardize)
        moments = StreamingMoments().update(self._features(reference, "reference"))
        return self.load_reference_state(
            {**moments.to_state(), "series_shape": np.asarray(self.series_shape_),
             "scale_shift": self.scale_["shift"], "scale_scale": self.scale_["scale"]}
        )

    def reference_state(self) -> dict[str, np.ndarray]:
        self._check_prepared("reference_moments_")
        return {**self.reference_moments_.to_state(),
                "series_shape": np.asarray(self.series_shape_, dtype=np.int64),
                "scale_shift": self.scale_["shift"], "scale_scale": self.scale_["scale"]}

    def load_reference_state(self, state: dict[str, np.ndarray]):
        self.series_shape_ = tuple(int(v) for v in state["series_shape"])
        self.scale_ = {"shift": np.asarray(state["scale_shift"], dtype=np.float64),
                       "scale": np.asarray(state["scale_scale"], dtype=np.float64)}
        self.reference_moments_ = StreamingMoments.from_state(state)
        self.reset()
        return self

    def reset(self) -> None:
        self._moments = StreamingMoments()

    def update(self, samples: np.ndarray) -> None:
        self._check_prepared("reference_moments_")
        samples = check_series(samples, who=self.name, name="samples")
        if samples.shape[1:] != self.series_shape_:
            raise ValidationError(
                f"{self.name}: samples must have (n_timesteps, n_channels) = "
                f"{self.series_shape_} like the reference; got {samples.shape[1:]}. The "
                "encoder's kernels depend on the series length, so both must match."
            )
        self._moments.update(self._features(samples, "samples"))

    def compute(self) -> Result:
        self._check_prepared("reference_moments_")
        ref, gen = self.reference_moments_, self._moments
        if gen.n < 2:
            raise ValidationError(
                f"{self.name}: samples must hold at least 2 series for a covariance; got "
                f"{gen.n}."
            )
        cov_r, cov_g = ref.covariance(), gen.covariance()
        diff = ref.mean - gen.mean
        d = ref.n_features
        warnings = ()
        if min(ref.n, gen.n) < d:
            warnings = (
                f"{self.name}: {gen.n} generated and {ref.n} reference series for {d} feature "
                "dimensions: the covariances are rank-deficient and the distance is biased "
                "upwards; compare values only at equal sample sizes.",
            )
        return Result(
            measure=self.name,
            headline="ts_fd",
            values={
                "ts_fd": frechet_distance(ref.mean, cov_r, gen.mean, cov_g),
                "mean_term": float(diff @ diff),
                "covariance_term": float(
                    np.trace(cov_r) + np.trace(cov_g) - 2.0 * trace_sqrt_product(cov_r, cov_g)
                ),
            },
            warnings=warnings,
            provenance=self.make_provenance(
                feature_space=self.extractor.name,
                feature_weights_sha256=self.extractor.weights_sha256,
                preprocessing=self.extractor.preprocessing,
                n_reference=ref.n,
                n_samples=gen.n,
                extra={"n_features": d, "series_standardized": self.settings.standardize,
                       "feature_settings": self.extractor.settings.model_dump()},
            ),
        )


@hookimpl
def register_metrics():
    return [TimeSeriesFrechetDistance]
