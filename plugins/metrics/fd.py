"""``fd``: the Fréchet distance between real and generated samples in any registered feature
space (DESIGN §5), on the :class:`probekit.features.FeatureMetric` base.

``fd = ||mu_r - mu_g||² + Tr(S_r + S_g - 2 (S_r S_g)^½)`` with ``mu``, ``S`` the float64 mean
and covariance of the features of the reference (real, held-out) set and of the generated set.
With pytorch-fid's Inception pool3 features this is FID (see ``fid``); with ``digits-cnn``
features it is the quality metric of the bundled-digits reference pipeline.
"""

from __future__ import annotations

import math

import numpy as np

from probekit import Result, hookimpl
from probekit.errors import ValidationError
from probekit.features import FeatureMetric, FeatureSettings
from probekit.stats import StreamingMoments, frechet_terms_from_moments


class FrechetDistance(FeatureMetric):
    """Fréchet distance between Gaussians fitted to reference and generated features."""

    name = "fd"
    description = "Fréchet distance of feature means/covariances (any registered extractor)"
    headline = "fd"
    headline_range = (0.0, math.inf)
    min_samples = 2  # a covariance
    higher_is_better = False
    role = "quality"
    Settings = FeatureSettings
    settings: FeatureSettings

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
