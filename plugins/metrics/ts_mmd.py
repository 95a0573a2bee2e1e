"""``ts-mmd``: maximum mean discrepancy between real and generated time series in the feature
space of a fixed encoder (default ``ts-rocket``), with the machinery of ``kid``.

The unbiased MMD² (Gretton et al. 2012) with KID's cubic polynomial kernel
``k(x, y) = (x·y / d + 1)^3`` (Bińkowski et al. 2018), averaged over ``n_subsets`` seeded
random subsets of ``subset_size`` series from each set (:func:`kid_subsets`). The encoder's
features are first standardized with the reference's per-feature mean and std (the cubic
kernel is not scale-free, and ROCKET's "max" features are in data units while its "PPV" ones
are proportions). Unbiased, so it can be slightly negative when the sets match; its
expectation does not depend on the sample size (unlike ``ts-fd``), which makes values at
different ``n`` comparable. MMD is the discrepancy reported by most time-series generation
papers (e.g. TSGBench).
"""

from __future__ import annotations

import numpy as np
import pydantic
from probekit_plugins.metrics.kid import kid_subsets

from probekit import FeatureExtractor, Metric, Result, hookimpl
from probekit.errors import ValidationError
from probekit.features import extract_in_batches
from probekit.timeseries import (
    FeatureSpaceSettings,
    apply_channel_scale,
    channel_scale,
    check_series,
    make_extractor,
)

#: Largest subset drawn by default: ``min(DEFAULT_SUBSET_SIZE, n_reference, n_samples)``.
DEFAULT_SUBSET_SIZE = 1000


class TimeSeriesMMDSettings(FeatureSpaceSettings):
    n_subsets: int = pydantic.Field(100, ge=1, description="random subsets averaged")
    subset_size: int | None = pydantic.Field(
        None, ge=2, description=f"series per subset; default min({DEFAULT_SUBSET_SIZE}, n)"
    )


class TimeSeriesMMD(Metric):
    """Unbiased MMD² (cubic kernel, KID's estimator) on standardized encoder features."""

    name = "ts-mmd"
    modality = "timeseries"
    description = "unbiased MMD² (KID's cubic kernel) on standardized ROCKET features"
    headline = "mmd2"
    min_samples = 2  # unbiased MMD^2
    higher_is_better = False
    role = "quality"
    requires = ("holdout", "samples")
    Settings = TimeSeriesMMDSettings
    settings: TimeSeriesMMDSettings

    def __init__(self, settings=None, *, extractor: FeatureExtractor | None = None, **overrides):
        super().__init__(settings, **overrides)
        self.extractor = make_extractor(self.settings, extractor)

    def _features(self, x: np.ndarray) -> np.ndarray:
        x = apply_channel_scale(x, self.scale_)
        feats = np.asarray(extract_in_batches(self.extractor, x, self.settings.batch_size),
                           dtype=np.float64)
        return (feats - self.feature_mean_) / self.feature_std_

    def prepare(self, reference: np.ndarray):
        """Standardized features of the real series (once per run)."""
        reference = check_series(reference, who=self.name, name="reference", min_samples=2)
        self.scale_ = channel_scale(reference, self.settings.standardize)
        raw = np.asarray(extract_in_batches(self.extractor,
                                            apply_channel_scale(reference, self.scale_),
                                            self.settings.batch_size), dtype=np.float64)
        std = raw.std(axis=0)
        return self.load_reference_state({
            "features": raw, "feature_mean": raw.mean(axis=0),
            "feature_std": np.where(std > 0, std, 1.0),
            "series_shape": np.asarray(reference.shape[1:], dtype=np.int64),
            "scale_shift": self.scale_["shift"], "scale_scale": self.scale_["scale"],
        })

    def reference_state(self) -> dict[str, np.ndarray]:
        self._check_prepared("reference_features_")
        return {"features": self.raw_reference_features_,
                "feature_mean": self.feature_mean_, "feature_std": self.feature_std_,
                "series_shape": np.asarray(self.series_shape_, dtype=np.int64),
                "scale_shift": self.scale_["shift"], "scale_scale": self.scale_["scale"]}

    def load_reference_state(self, state: dict[str, np.ndarray]):
        self.feature_mean_ = np.asarray(state["feature_mean"], dtype=np.float64)
        self.feature_std_ = np.asarray(state["feature_std"], dtype=np.float64)
        self.raw_reference_features_ = np.asarray(state["features"], dtype=np.float64)
        self.reference_features_ = (
            self.raw_reference_features_ - self.feature_mean_
        ) / self.feature_std_
        self.series_shape_ = tuple(int(v) for v in state["series_shape"])
        self.scale_ = {"shift": np.asarray(state["scale_shift"], dtype=np.float64),
                       "scale": np.asarray(state["scale_scale"], dtype=np.float64)}
        self.reset()
        return self

    def reset(self) -> None:
        self._generated: list[np.ndarray] = []

    def update(self, samples: np.ndarray) -> None:
        self._check_prepared("reference_features_")
        samples = check_series(samples, who=self.name, name="samples")
        if samples.shape[1:] != self.series_shape_:
            raise ValidationError(
                f"{self.name}: samples must have (n_timesteps, n_channels) = "
                f"{self.series_shape_} like the reference; got {samples.shape[1:]}. The "
                "encoder's kernels depend on the series length, so both must match."
            )
        self._generated.append(self._features(samples))

    def compute(self) -> Result:
        self._check_prepared("reference_features_")
        s = self.settings
        real = self.reference_features_
        generated = np.concatenate(self._generated) if self._generated else real[:0]
        n_max = min(len(real), len(generated))
        size = s.subset_size if s.subset_size is not None else min(DEFAULT_SUBSET_SIZE, n_max)
        if size > n_max or size < 2:
            raise ValidationError(
                f"{self.name}: subset_size must be between 2 and the smaller set size "
                f"min(n_reference={len(real)}, n_samples={len(generated)}) = {n_max}; got "
                f"{size}. Set subset_size={max(2, n_max)} or less, or provide more series."
            )
        values = kid_subsets(real=real, generated=generated, n_subsets=s.n_subsets,
                             subset_size=size, seed=s.seed)
        return Result(
            measure=self.name,
            headline="mmd2",
            values={"mmd2": float(values.mean()), "mmd2_std": float(values.std()),
                    "subset_size": float(size)},
            provenance=self.make_provenance(
                feature_space=self.extractor.name,
                feature_weights_sha256=self.extractor.weights_sha256,
                preprocessing=self.extractor.preprocessing,
                n_reference=len(real),
                n_samples=len(generated),
                extra={"kernel": "(x.y/d + 1)^3", "n_subsets": s.n_subsets,
                       "features_standardized": "by the reference's mean and std",
                       "series_standardized": s.standardize,
                       "feature_settings": self.extractor.settings.model_dump()},
            ),
        )


@hookimpl
def register_metrics():
    return [TimeSeriesMMD]
