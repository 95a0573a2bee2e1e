"""``prdc``: precision, recall, density and coverage (Naeem et al. 2020) with k = 5.

With ``r_i`` the distance from real sample ``x_i`` to its k-th nearest other real sample and
``r'_j`` the same for generated sample ``y_j`` among the generated samples:

- precision = fraction of generated ``y_j`` inside some real ball: ``∃ i: |y_j - x_i| < r_i``
- recall    = fraction of real ``x_i`` inside some generated ball: ``∃ j: |x_i - y_j| < r'_j``
- density   = ``1/(k M) Σ_j #{i : |y_j - x_i| < r_i}`` (how many real balls hold each sample)
- coverage  = fraction of real ``x_i`` whose nearest generated sample is inside ``x_i``'s ball

Strict inequalities, as in the authors' code (clovaai/generative-evaluation-prdc). All
neighbour searches go through :mod:`probekit.neighbors` (exact float64 distances): the
"inside some ball" counts are exact range queries built from k-nearest-neighbour searches whose
``K`` doubles until the K-th neighbour lies beyond the largest radius.
"""

from __future__ import annotations

import numpy as np
import pydantic
from probekit_plugins.fd import FeatureMetric, FeatureMetricSettings

from probekit import Result, hookimpl
from probekit.errors import ValidationError
from probekit.neighbors import NearestNeighborIndex


def kth_neighbor_radii(index: NearestNeighborIndex, points: np.ndarray, k: int) -> np.ndarray:
    """Distance from each indexed point to its k-th nearest *other* point (the search of
    k + 1 neighbours includes the point itself, at distance 0, as in the authors' code)."""
    dist, _ = index.search(points, k + 1)
    return dist[:, k]


def count_inside_balls(
    queries: np.ndarray, index: NearestNeighborIndex, radii: np.ndarray, *, k_start: int = 16
) -> np.ndarray:
    """``#{i : |q - p_i| < radii[i]}`` for each query ``q`` and indexed points ``p_i`` (exact).

    A K-nearest-neighbour search answers the range query once the K-th neighbour is at least
    ``max(radii)`` away (no farther point can be inside its ball); otherwise K doubles.
    """
    n_ref = index.n_reference
    r_max = float(radii.max())
    counts = np.zeros(len(queries), dtype=np.int64)
    pending = np.arange(len(queries))
    K = min(n_ref, max(1, k_start))
    while pending.size:
        dist, idx = index.search(queries[pending], K)
        inside = (dist < radii[idx]).sum(axis=1)
        done = (dist[:, -1] >= r_max) | (n_ref == K)
        counts[pending[done]] = inside[done]
        pending = pending[~done]
        K = min(n_ref, 2 * K)
    return counts


def compute_prdc(*, real: np.ndarray, generated: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``generated`` features against ``real`` ones.

    Keyword-only on purpose: swapping the sets swaps precision with recall (a known bug class).
    """
    for name, x in (("real", real), ("generated", generated)):
        if len(x) <= k:
            raise ValidationError(
                f"prdc: {name} must have more than k={k} samples for k-nearest-neighbour "
                f"radii; got {len(x)}. Provide more samples or lower k."
            )
    real_index = NearestNeighborIndex(real)
    gen_index = NearestNeighborIndex(generated)
    real_radii = kth_neighbor_radii(real_index, real, k)
    gen_radii = kth_neighbor_radii(gen_index, generated, k)
    return _prdc_from(real, generated, real_index, real_radii, gen_index, gen_radii, k)


def _prdc_from(real, generated, real_index, real_radii, gen_index, gen_radii, k):
    real_balls_holding = count_inside_balls(generated, real_index, real_radii, k_start=4 * k)
    gen_balls_holding = count_inside_balls(real, gen_index, gen_radii, k_start=4 * k)
    nearest_generated, _ = gen_index.search(real, 1)
    return {
        "precision": float((real_balls_holding > 0).mean()),
        "recall": float((gen_balls_holding > 0).mean()),
        "density": float(real_balls_holding.mean() / k),
        "coverage": float((nearest_generated[:, 0] < real_radii).mean()),
    }


class PRDCSettings(FeatureMetricSettings):
    k: int = pydantic.Field(5, ge=1, description="nearest neighbours defining each ball")


class PrecisionRecallDensityCoverage(FeatureMetric):
    """Fidelity (precision, density) and diversity (recall, coverage) of generated samples."""

    name = "prdc"
    description = "precision, recall, density, coverage (Naeem et al. 2020), k-NN balls, k=5"
    headline = "coverage"
    higher_is_better = True
    Settings = PRDCSettings
    settings: PRDCSettings

    def prepare(self, reference: np.ndarray) -> PrecisionRecallDensityCoverage:
        """Index the real (reference) features and their k-th neighbour radii, once."""
        return self._set_reference(self.features_of(reference, "reference"))

    def _set_reference(self, feats: np.ndarray) -> PrecisionRecallDensityCoverage:
        k = self.settings.k
        if len(feats) <= k:
            raise ValidationError(
                f"prdc: reference must have more than k={k} samples; got {len(feats)}. "
                "Provide more reference samples or lower k."
            )
        self.reference_features_ = feats
        self.reference_index_ = NearestNeighborIndex(feats)
        self.reference_radii_ = kth_neighbor_radii(self.reference_index_, feats, k)
        self.reset()
        return self

    def reference_state(self) -> dict[str, np.ndarray]:
        self._check_prepared("reference_index_")
        return {"features": self.reference_features_}

    def load_reference_state(self, state: dict[str, np.ndarray]):
        return self._set_reference(np.asarray(state["features"], dtype=np.float64))

    def reset(self) -> None:
        self._generated: list[np.ndarray] = []

    def update(self, samples: np.ndarray) -> None:
        self._check_prepared("reference_index_")
        feats = self.features_of(samples, "samples")
        self.check_feature_dim(self.reference_features_.shape[1], feats)
        self._generated.append(feats)

    def compute(self) -> Result:
        self._check_prepared("reference_index_")
        k = self.settings.k
        real = self.reference_features_
        generated = np.concatenate(self._generated) if self._generated else real[:0]
        if len(generated) <= k:
            raise ValidationError(
                f"prdc: samples must have more than k={k} samples; got {len(generated)}."
            )
        gen_index = NearestNeighborIndex(generated)
        gen_radii = kth_neighbor_radii(gen_index, generated, k)
        values = _prdc_from(
            real, generated, self.reference_index_, self.reference_radii_, gen_index, gen_radii, k
        )
        d = real.shape[1]
        return Result(
            measure=self.name,
            headline=self.headline,
            values=values,
            warnings=self.small_sample_warnings(
                len(real), len(generated), d,
                "k-nearest-neighbour balls are large and noisy in so few points; precision "
                "and recall in particular are unreliable.",
            ),
            provenance=self.provenance_for(len(real), len(generated), n_features=d, k=k),
        )


@hookimpl
def register_metrics():
    return [PrecisionRecallDensityCoverage]
