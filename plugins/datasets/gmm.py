"""``gmm`` dataset: the Gaussian-mixture experiment of Bonnaire et al. (2025),
½N(+1_d, I) + ½N(−1_d, I), with nested training sets."""

from __future__ import annotations

import math

import pydantic

from probekit import Dataset, DatasetSplits, Settings, hookimpl
from probekit.reference.gmm import GMM_DIM, mixture_samples


class GaussianMixtureSettings(Settings):
    n_train: int = pydantic.Field(1024, ge=2, description="training samples (first n of a pool)")
    n_holdout: int = pydantic.Field(2048, ge=2, description="held-out samples")
    dim: int = pydantic.Field(GMM_DIM, ge=1, description="dimension d")
    separation: float = pydantic.Field(1.0, gt=0, description="component means ±separation·1_d")
    seed: int = pydantic.Field(0, ge=0, description="seed of the pool and of the held-out set")

    @pydantic.model_validator(mode="after")
    def _fits_in_memory(self) -> GaussianMixtureSettings:
        from probekit.validation import check_memory

        n = self.n_train + self.n_holdout
        check_memory(16 * n * self.dim, who="dataset", what=f"{n} samples of dimension {self.dim}",
                     fix="Lower n_train, n_holdout or dim")
        return self



class GaussianMixture(Dataset):
    """``½N(+1_d, I) + ½N(-1_d, I)``: the training set is the first ``n_train`` draws of a
    seeded pool (nested across ``n``), the held-out set an independent seeded sample."""

    name = "gmm"
    modality = "any"
    description = "two-Gaussian mixture ½N(+1,I)+½N(-1,I) in d=8 (Bonnaire et al. 2025)"
    Settings = GaussianMixtureSettings
    settings: GaussianMixtureSettings

    def load(self) -> DatasetSplits:
        s = self.settings
        train = mixture_samples(s.n_train, dim=s.dim, separation=s.separation, seed=s.seed)
        holdout = mixture_samples(s.n_holdout, dim=s.dim, separation=s.separation, seed=s.seed,
                                  stream=1)
        return DatasetSplits(train=train, holdout=holdout,
                             value_range=(-math.inf, math.inf), normalization="none")


@hookimpl
def register_datasets():
    return [GaussianMixture]
