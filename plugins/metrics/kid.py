"""``kid``: Kernel Inception Distance (Bińkowski et al. 2018) in any registered feature space.

The unbiased estimate of the squared maximum mean discrepancy between the real (reference)
and generated feature distributions with the cubic polynomial kernel
``k(x, y) = (x·y / d + 1)^3`` (``d`` = feature dimension):

    MMD²_u = 1/(m(m-1)) Σ_{i≠j} k(r_i, r_j) + 1/(m(m-1)) Σ_{i≠j} k(g_i, g_j)
             - 2/m² Σ_{i,j} k(r_i, g_j)

averaged over ``n_subsets`` random subsets of ``subset_size`` samples drawn without
replacement from each set (seeded). Unbiased, so it can be slightly negative when the sets
match, and its expectation does not depend on the sample size (unlike FID).
"""

from __future__ import annotations

import numpy as np
import pydantic

from probekit import Result, hookimpl
from probekit.errors import ValidationError
from probekit.features import FeatureMetric, FeatureSettings

DEFAULT_SUBSET_SIZE = 1000


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x·y / d + 1)^3`` for all pairs of rows, in float64."""
    base = x @ y.T / x.shape[1] + 1.0
    return base * base * base


def mmd2_unbiased(*, real: np.ndarray, generated: np.ndarray) -> float:
    """Unbiased MMD² between two feature sets (keyword-only: which is which is explicit)."""
    m, n = len(real), len(generated)
    if m < 2 or n < 2:
        raise ValidationError(f"kid: MMD² needs at least 2 samples per set; got {m} and {n}.")
    both = np.concatenate([real, generated])
    k = polynomial_kernel(both, both)  # one product for the three blocks
    k_rr, k_gg, k_rg = k[:m, :m], k[m:, m:], k[:m, m:]
    sum_rr = k_rr.sum() - np.trace(k_rr)
    sum_gg = k_gg.sum() - np.trace(k_gg)
    return float(sum_rr / (m * (m - 1)) + sum_gg / (n * (n - 1)) - 2.0 * k_rg.mean())


def kid_subsets(
    *, real: np.ndarray, generated: np.ndarray, n_subsets: int, subset_size: int, seed: int
) -> np.ndarray:
    """MMD²_u of ``n_subsets`` seeded random subsets (without replacement) of each set."""
    from probekit.validation import check_memory

    check_memory(8 * n_subsets + 8 * (2 * subset_size) ** 2 * 2, who="kid",
                 what=f"n_subsets={n_subsets} subsets of subset_size={subset_size}",
                 fix="Lower n_subsets or subset_size.")
    rng = np.random.default_rng(seed)
    out = np.empty(n_subsets)
    for s in range(n_subsets):
        r = real[rng.choice(len(real), subset_size, replace=False)]
        g = generated[rng.choice(len(generated), subset_size, replace=False)]
        out[s] = mmd2_unbiased(real=r, generated=g)
    return out


class KernelInceptionDistanceSettings(FeatureSettings):
    n_subsets: int = pydantic.Field(100, ge=1, le=10**5, description="random subsets averaged")
    subset_size: int | None = pydantic.Field(
        None, ge=2, description=f"samples per subset; default min({DEFAULT_SUBSET_SIZE}, n)"
    )


class KernelInceptionDistance(FeatureMetric):
    """Unbiased MMD² with a cubic polynomial kernel, averaged over random subsets."""

    name = "kid"
    description = "kernel inception distance: unbiased MMD², cubic kernel, subset average"
    headline = "kid"
    min_samples = 2  # subsets of at least 2
    higher_is_better = False
    role = "quality"
    Settings = KernelInceptionDistanceSettings
    settings: KernelInceptionDistanceSettings

    def prepare(self, reference: np.ndarray) -> KernelInceptionDistance:
        """Features of the reference (real) set, kept for the kernel sums."""
        size = self.settings.subset_size
        reference = np.asarray(reference)
        if size is not None and reference.ndim >= 1 and size > len(reference):
            raise ValidationError(
                f"kid: subset_size must be at most the reference size {len(reference)}; got "
                f"{size}. Lower subset_size or provide more reference samples."
            )
        self.reference_features_ = self.features_of(reference, "reference")
        self.reset()
        return self

    def reference_state(self) -> dict[str, np.ndarray]:
        self._check_prepared("reference_features_")
        return {"features": self.reference_features_}

    def load_reference_state(self, state: dict[str, np.ndarray]) -> KernelInceptionDistance:
        self.reference_features_ = np.asarray(state["features"], dtype=np.float64)
        self.reset()
        return self

    def reset(self) -> None:
        self._generated: list[np.ndarray] = []

    def update(self, samples: np.ndarray) -> None:
        self._check_prepared("reference_features_")
        feats = self.features_of(samples, "samples")
        self.check_feature_dim(self.reference_features_.shape[1], feats)
        self._generated.append(feats)

    def compute(self) -> Result:
        self._check_prepared("reference_features_")
        real = self.reference_features_
        generated = np.concatenate(self._generated) if self._generated else real[:0]
        s = self.settings
        n_max = min(len(real), len(generated))
        size = s.subset_size if s.subset_size is not None else min(DEFAULT_SUBSET_SIZE, n_max)
        if size > n_max or size < 2:
            raise ValidationError(
                f"kid: subset_size must be between 2 and the smaller set size "
                f"min(n_reference={len(real)}, n_samples={len(generated)}) = {n_max}; got "
                f"{size}. Set subset_size={n_max} or less, or provide more samples."
            )
        values = kid_subsets(
            real=real, generated=generated, n_subsets=s.n_subsets, subset_size=size, seed=s.seed
        )
        d = real.shape[1]
        return Result(
            measure=self.name,
            headline=self.headline,
            values={
                "kid": float(values.mean()),
                "kid_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            },
            warnings=self.small_sample_warnings(
                len(real), len(generated), d,
                "KID stays unbiased, but its variance is large; read kid_std before "
                "comparing checkpoints.",
            ),
            provenance=self.provenance_for(
                len(real), len(generated), n_features=d, subset_size=size,
                n_subsets=s.n_subsets, kernel="(x·y/d + 1)^3",
            ),
        )


@hookimpl
def register_metrics():
    return [KernelInceptionDistance]
