"""``fd``: the Fréchet distance between real and generated samples in any registered feature
space (DESIGN §5), and :class:`FeatureMetric`, the base the feature-space metrics share.

``fd = ||mu_r - mu_g||² + Tr(S_r + S_g - 2 (S_r S_g)^½)`` with ``mu``, ``S`` the float64 mean
and covariance of the features of the reference (real, held-out) set and of the generated set.
With pytorch-fid's Inception pool3 features this is FID (see ``fid``); with ``digits-cnn``
features it is the quality metric of the bundled-digits reference pipeline.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
import pydantic

from probekit import FeatureExtractor, MeasureSettings, Metric, Result, hookimpl
from probekit.errors import ValidationError
from probekit.features import extract_in_batches, resolve_extractor
from probekit.stats import StreamingMoments, frechet_terms_from_moments
from probekit.validation import check_array


def parse_json_object(value: Any) -> Any:
    """Accept a mapping, or (from the CLI) a JSON object string such as ``{"dims": 64}``."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be a JSON object such as {{\"dims\": 64}} ({exc})") from None
    return value


class FeatureMetricSettings(MeasureSettings):
    features: str = pydantic.Field("pixels", description="registered feature extractor")
    feature_settings: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="settings of the feature extractor (JSON on the CLI)"
    )

    _parse_feature_settings = pydantic.field_validator("feature_settings", mode="before")(
        parse_json_object
    )


class FeatureMetric(Metric):
    """A metric computed on features of the reference (real) and generated sets.

    Subclasses set the extractor with :meth:`make_extractor` (default: the ``features`` setting
    and its ``feature_settings``) and use :meth:`features_of` for validated float64 features.
    """

    modality: ClassVar[str] = "any"
    requires: ClassVar[tuple[str, ...]] = ("holdout", "samples")

    def __init__(self, settings=None, *, extractor: FeatureExtractor | None = None, **overrides):
        super().__init__(settings, **overrides)
        self.extractor = self.make_extractor(extractor)

    def make_extractor(self, extractor: FeatureExtractor | None) -> FeatureExtractor:
        """The extractor instance: ``extractor`` if given (its name must match the setting)."""
        name = self.settings.features
        if extractor is not None:
            return resolve_extractor(name, extractor)
        from probekit.registry import get_feature_extractor

        return get_feature_extractor(name)(self.settings.feature_settings)

    def features_of(self, x: np.ndarray, name: str) -> np.ndarray:
        """Validated ``x`` → float64 features ``(n_samples, n_features)``, in batches."""
        x = check_array(x, who=self.name, name=name, dtype=np.float32)
        feats = extract_in_batches(self.extractor, x, self.settings.batch_size)
        return np.asarray(feats, dtype=np.float64)

    def check_feature_dim(self, n_reference_features: int, feats: np.ndarray) -> None:
        if feats.shape[1] != n_reference_features:
            raise ValidationError(
                f"{self.name}: samples must have {n_reference_features} features in the "
                f"{self.extractor.name!r} space like the reference; got {feats.shape[1]}. "
                "Generate samples with the reference's shape (channels, height, width)."
            )

    def small_sample_warnings(
        self, n_reference: int, n_samples: int, n_features: int, consequence: str
    ) -> tuple[str, ...]:
        """The honest caveat when either set has fewer samples than feature dimensions."""
        if min(n_reference, n_samples) >= n_features:
            return ()
        return (
            f"{self.name}: {n_samples} generated and {n_reference} reference samples for "
            f"{n_features} feature dimensions (fewer samples than dimensions): {consequence}",
        )

    def provenance_for(self, n_reference: int, n_samples: int, **extra: Any):
        """Provenance with the feature space, its weights hash and preprocessing, plus what
        the extractor reports about itself (``provenance_extra()``, when it has one)."""
        ex = self.extractor
        described = getattr(ex, "provenance_extra", None)
        if callable(described):
            extra = {**described(), **extra}
        return self.make_provenance(
            feature_space=ex.name,
            feature_weights_sha256=ex.weights_sha256,
            preprocessing=ex.preprocessing,
            n_reference=n_reference,
            n_samples=n_samples,
            extra=extra,
        )


class FrechetDistance(FeatureMetric):
    """Fréchet distance between Gaussians fitted to reference and generated features."""

    name = "fd"
    description = "Fréchet distance of feature means/covariances (any registered extractor)"
    headline = "fd"
    higher_is_better = False
    role = "quality"
    Settings = FeatureMetricSettings
    settings: FeatureMetricSettings

    def prepare(self, reference: np.ndarray) -> FrechetDistance:
        """Float64 moments of the reference features (computed once, reused per checkpoint)."""
        feats = self.features_of(reference, "reference")
        return self._set_reference(StreamingMoments().update(feats))

    def _set_reference(self, moments: StreamingMoments) -> FrechetDistance:
        self._require_two("reference", moments.n)
        self.reference_moments_ = moments.compact()  # once, not at every checkpoint
        self.reset()
        return self

    def reference_state(self) -> dict[str, np.ndarray]:
        """The reference moments ``n``, ``mean``, ``factor`` (for the evaluator's cache)."""
        self._check_prepared("reference_moments_")
        return self.reference_moments_.to_state()

    def load_reference_state(self, state: dict[str, np.ndarray]) -> FrechetDistance:
        return self._set_reference(StreamingMoments.from_state(state))

    def reset(self) -> None:
        self._samples = StreamingMoments()

    def update(self, samples: np.ndarray) -> None:
        self._check_prepared("reference_moments_")
        feats = self.features_of(samples, "samples")
        self.check_feature_dim(self.reference_moments_.n_features, feats)
        self._samples.update(feats)

    def compute(self) -> Result:
        self._check_prepared("reference_moments_")
        ref, gen = self.reference_moments_, self._samples
        self._require_two("samples", gen.n)
        mean_term, covariance_term = frechet_terms_from_moments(ref, gen)
        d = ref.n_features
        return Result(
            measure=self.name,
            headline=self.headline,
            values={
                # = probekit.stats.frechet_distance_from_moments (clipped at 0: rounding)
                self.headline: max(mean_term + covariance_term, 0.0),
                "mean_term": mean_term,
                "covariance_term": covariance_term,
            },
            warnings=self.small_sample_warnings(
                ref.n, gen.n, d,
                "the covariance estimates are rank-deficient and the distance is biased "
                "upwards (it falls as n grows); compare values only at equal sample sizes.",
            ),
            provenance=self.provenance_for(ref.n, gen.n, n_features=d),
        )

    def _require_two(self, name: str, n: int) -> None:
        if n < 2:
            raise ValidationError(
                f"{self.name}: {name} must have at least 2 samples for a covariance; got {n}."
            )


@hookimpl
def register_metrics():
    return [FrechetDistance]
