"""``prdc``: precision, recall, density and coverage (Naeem et al. 2020) with k = 5.

With ``r_i`` the distance from real sample ``x_i`` to its k-th nearest other real sample and
``r'_j`` the same for generated sample ``y_j`` among the generated samples:

- precision = fraction of generated ``y_j`` inside some real ball: ``∃ i: |y_j - x_i| < r_i``
- recall    = fraction of real ``x_i`` inside some generated ball: ``∃ j: |x_i - y_j| < r'_j``
- density   = ``1/(k M) Σ_j #{i : |y_j - x_i| < r_i}`` (how many real balls hold each sample)
- coverage  = fraction of real ``x_i`` whose nearest generated sample is inside ``x_i``'s ball

Strict inequalities, as in the authors' code (clovaai/generative-evaluation-prdc). The
k-nearest-neighbour searches (radii, coverage) go through :mod:`probekit.neighbors` (exact
float64 distances); the "inside some ball" counts are exact range queries computed block by
block (:func:`count_inside_balls`), with memory bounded by the block size.
"""

from __future__ import annotations

import numpy as np
import pydantic

from probekit import Result, hookimpl
from probekit.errors import ValidationError
from probekit.features import FeatureMetric, FeatureSettings
from probekit.neighbors import NearestNeighborIndex


def kth_neighbor_radii(index: NearestNeighborIndex, points: np.ndarray, k: int) -> np.ndarray:
    """Distance from each indexed point to its k-th nearest *other* point (the search of
    k + 1 neighbours includes the point itself, at distance 0, as in the authors' code)."""
    dist, _ = index.search(points, k + 1)
    return dist[:, k]


def count_inside_balls(
    queries: np.ndarray, points: np.ndarray, radii: np.ndarray, *, block: int = 1024
) -> np.ndarray:
    """``#{i : |q - p_i| < radii[i]}`` for each query ``q`` (exact float64 distances).

    A range query with one radius per ball, which a k-nearest-neighbour search cannot answer
    without visiting almost every point in high dimension. Blocks of queries are compared with
    all points through ``|q|² + |p|² - 2 q·p`` (centred, float64, BLAS); the rare pairs whose
    squared distance lies within the rounding bound of a ball's border are recomputed from the
    differences, so the decision is the one of the exact distance, as in :mod:`probekit.neighbors`.
    """
    center = points.mean(axis=0)
    P = np.asarray(points, dtype=np.float64) - center
    Q = np.asarray(queries, dtype=np.float64) - center
    p_sq = np.einsum("ij,ij->i", P, P)
    r = np.asarray(radii, dtype=np.float64)
    r_sq = r * r
    scale = 2.0 * (P.shape[1] + 4) * np.finfo(np.float64).eps
    counts = np.zeros(len(Q), dtype=np.int64)
    for s in range(0, len(Q), block):
        q = Q[s : s + block]
        q_sq = np.einsum("ij,ij->i", q, q)
        d_sq = q_sq[:, None] + p_sq[None, :] - 2.0 * (q @ P.T)
        err = scale * (q_sq[:, None] + p_sq[None, :]) + 4 * np.finfo(np.float64).eps * r_sq
        inside = d_sq < r_sq - err
        rows, cols = np.nonzero(np.abs(d_sq - r_sq) <= err)
        if rows.size:  # too close to the border to trust the expansion: exact differences
            diff = q[rows] - P[cols]
            inside[rows, cols] = np.sqrt(np.einsum("ij,ij->i", diff, diff)) < r[cols]
        counts[s : s + block] = inside.sum(axis=1)
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
    real_balls_holding = count_inside_balls(generated, real, real_radii)
    gen_balls_holding = count_inside_balls(real, generated, gen_radii)
    nearest_generated, _ = gen_index.search(real, 1)
    return {
        "precision": float((real_balls_holding > 0).mean()),
        "recall": float((gen_balls_holding > 0).mean()),
        "density": float(real_balls_holding.mean() / k),
        "coverage": float((nearest_generated[:, 0] < real_radii).mean()),
    }


class PRDCSettings(FeatureSettings):
    k: int = pydantic.Field(5, ge=1, description="nearest neighbours defining each ball")


class PrecisionRecallDensityCoverage(FeatureMetric):
    """Fidelity (precision, density) and diversity (recall, coverage) of generated samples."""

    name = "prdc"
    description = "precision, recall, density, coverage (Naeem et al. 2020), k-NN balls, k=5"
    headline = "coverage"
    headline_range = (0.0, 1.0)
    higher_is_better = True
    role = "quality"

    Settings = PRDCSettings
    settings: PRDCSettings

    @property
    def min_samples(self) -> int:  # type: ignore[override]
        """k nearest neighbours among the samples need k + 1 of them."""
        return self.settings.k + 1

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
