"""``series-file``: the user's own time series from files (``.npy``, ``.npz``, ``.csv``, ``.pt``).

Read through :func:`probekit.io.load_array`: a CSV holds one univariate series per row; a 2-d
array ``(n_samples, n_timesteps)`` is taken as univariate and gets a channel axis; a 3-d array
must already be ``(n_samples, n_timesteps, n_channels)``. Without a holdout file, a seeded
random ``holdout_fraction`` of the series is held out. Normalization defaults to ``"none"``
(the values the user's model was trained on) and, like every dataset's, is recorded.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pydantic

from probekit import Dataset, DatasetSplits, hookimpl, load_array
from probekit.errors import ValidationError
from probekit.timeseries import SeriesDatasetSettings, check_series, make_splits
from probekit.validation import describe


class SeriesFileSettings(SeriesDatasetSettings):
    train: str = pydantic.Field(description="file with the training series (the pool)")
    holdout: str | None = pydantic.Field(None, description="file with held-out series")
    holdout_fraction: float = pydantic.Field(
        0.2, gt=0, lt=1, description="share of `train` held out when no holdout file is given"
    )
    key: str | None = pydantic.Field(None, description="array name inside .npz/.pt files")
    seed: int = pydantic.Field(0, description="seed of the holdout split")
    normalization: Literal["zscore", "minmax", "none"] = pydantic.Field(
        "none", description="per-channel map fitted on the training split, applied to both"
    )


class SeriesFile(Dataset):
    """Time series from the user's files, as ``(n_samples, n_timesteps, n_channels)``."""

    name = "series-file"
    modality = "timeseries"
    description = "your own series from .npy/.npz/.csv/.pt files (train, optional holdout)"
    Settings = SeriesFileSettings
    settings: SeriesFileSettings

    def read(self, path: str) -> np.ndarray:
        x = load_array(path, key=self.settings.key)
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim != 3:
            raise ValidationError(
                f"{self.name}: {path!r} must hold (n_samples, n_timesteps) or (n_samples, "
                f"n_timesteps, n_channels) series; got {describe(x)}."
            )
        return check_series(x, who=self.name, name=path, min_samples=2)

    def load(self) -> DatasetSplits:
        s = self.settings
        pool = self.read(s.train)
        if s.holdout is not None:
            holdout = self.read(s.holdout)
            if holdout.shape[1:] != pool.shape[1:]:
                raise ValidationError(
                    f"{self.name}: train and holdout series must have the same (n_timesteps, "
                    f"n_channels); got {pool.shape[1:]} and {holdout.shape[1:]}."
                )
        else:
            order = np.random.default_rng(s.seed).permutation(len(pool))
            n_holdout = max(1, round(s.holdout_fraction * len(pool)))
            pool, holdout = pool[order[n_holdout:]], pool[order[:n_holdout]]
        return make_splits(pool, holdout, s, self.name)


@hookimpl
def register_datasets():
    return [SeriesFile]
