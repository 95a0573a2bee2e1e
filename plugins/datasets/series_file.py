"""``series-file``: the user's own time series from files (``.npy``, ``.npz``, ``.csv``, ``.pt``).

Each file holds a *set of series of one length*. A 2-d array ``(n_samples, n_timesteps)`` is
taken as univariate and gets a channel axis; a 3-d array must already be ``(n_samples,
n_timesteps, n_channels)``. A CSV holds **one univariate series per row** (values separated by
commas); a header row and a row-label first column (what ``pandas.DataFrame.to_csv`` writes)
are detected and dropped (:func:`probekit.io.read_csv_table`; ``index_column`` and
``header_row`` override the detection). For one long recording (rows = timesteps) use the
``recording`` dataset instead.

Without a holdout file, a seeded random ``holdout_fraction`` of the series is held out: right
for independent series, wrong for overlapping windows of one recording (the holdout then
shares stretches with the training set; cut windows with ``recording``, which splits by time).

Normalization defaults to ``"none"``: the values stay those the user's model was trained on,
so that samples generated elsewhere (the ``samples-file`` generator) are compared on their own
scale. It is recorded, like every dataset's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pydantic

from probekit import Dataset, DatasetSplits, hookimpl, load_array
from probekit.errors import ValidationError
from probekit.io import load_csv_series
from probekit.timeseries import SeriesDatasetSettings, check_series, make_splits
from probekit.validation import describe


class SeriesFileSettings(SeriesDatasetSettings):
    train: str = pydantic.Field(description="file with the training series (the pool)")
    holdout: str | None = pydantic.Field(None, description="file with held-out series")
    holdout_fraction: float = pydantic.Field(
        0.2, gt=0, lt=1, description="share of `train` held out when no holdout file is given"
    )
    key: str | None = pydantic.Field(None, description="array name inside .npz/.pt files")
    seed: int = pydantic.Field(0, ge=0, description="seed of the holdout split")
    normalization: Literal["zscore", "minmax", "none"] = pydantic.Field(
        "none", description="per-channel map fitted on the training split, applied to both "
        "(none: keep your model's scale, needed when you bring generated samples)"
    )
    name: str | None = pydantic.Field(
        None, description="label in the benchmark's dataset column (default: the file's stem)"
    )
    index_column: Literal["auto", "drop", "keep"] = pydantic.Field(
        "auto", description="CSV: a first column of row labels (pandas' index) is dropped"
    )
    header_row: Literal["auto", "present", "absent"] = pydantic.Field(
        "auto", description="CSV: whether the first line is a header (auto: detected)"
    )


class SeriesFile(Dataset):
    """Time series from the user's files, as ``(n_samples, n_timesteps, n_channels)``."""

    name = "series-file"
    modality = "timeseries"
    description = "your own series from .npy/.npz/.csv/.pt files (train, optional holdout)"
    Settings = SeriesFileSettings
    settings: SeriesFileSettings

    @property
    def label(self) -> str:
        """Name of the dataset in reports: ``name`` or the training file's stem."""
        return self.settings.name or Path(self.settings.train).stem

    def read(self, path: str) -> np.ndarray:
        s = self.settings
        if Path(path).suffix.lower() == ".csv" and Path(path).is_file():
            x = load_csv_series(path, index_column=s.index_column, header_row=s.header_row)
        else:
            x = load_array(path, key=s.key)
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
