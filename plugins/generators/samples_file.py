"""``samples-file``: series generated elsewhere, read from a file — a model trained in another
framework gets a leaderboard row without a plugin
(``probekit bench timeseries --generators file:mymodel=samples.npy``).

The file holds generated series like a ``series-file`` dataset: ``.npy``/``.npz``/``.pt``
arrays ``(n_samples, n_timesteps)`` (univariate) or ``(n_samples, n_timesteps, n_channels)``,
or a CSV with one univariate series per row (a header row and a pandas index column are
detected and dropped). ``fit(train)`` reads it and checks it against the dataset: the same
``(n_timesteps, n_channels)``, finite values, and — a warning only — the same scale (samples in
raw units beside a z-scored dataset are the usual slip: keep the dataset's normalization
``none``, its default for file datasets, when you bring samples). ``sample(n, seed)`` returns
``n`` of the file's series, a seeded subset in file order (all of them when the file holds
exactly ``n``); a file with fewer than ``n`` series is refused.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pydantic

from probekit import Generator, Settings, hookimpl, load_array
from probekit.errors import DataWarning, NotPreparedError, ValidationError
from probekit.io import load_csv_series
from probekit.timeseries import check_series
from probekit.validation import describe

#: A channel's samples are "on another scale" when their mean is this many training standard
#: deviations away, or their std this many times larger or smaller.
SCALE_TOLERANCE = 5.0


class SamplesFileSettings(Settings):
    path: str = pydantic.Field(description="file of generated series (.npy/.npz/.pt/.csv)")
    key: str | None = pydantic.Field(None, description="array name inside .npz/.pt files")
    index_column: Literal["auto", "drop", "keep"] = pydantic.Field(
        "auto", description="CSV: a first column of row labels (pandas' index) is dropped"
    )
    header_row: Literal["auto", "present", "absent"] = pydantic.Field(
        "auto", description="CSV: whether the first line is a header (auto: detected)"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SamplesFile(Generator):
    """Generated series read from a file, checked against the dataset's shape and scale."""

    name = "samples-file"
    modality = "timeseries"
    description = "series generated elsewhere, from a .npy/.npz/.pt/.csv file (no plugin needed)"
    Settings = SamplesFileSettings
    settings: SamplesFileSettings

    def read(self) -> np.ndarray:
        s = self.settings
        path = Path(s.path)
        if path.suffix.lower() == ".csv" and path.is_file():
            x = load_csv_series(path, index_column=s.index_column, header_row=s.header_row)
        else:
            x = load_array(path, key=s.key)
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim != 3:
            raise ValidationError(
                f"{self.name}: {s.path!r} must hold generated series (n_samples, n_timesteps) "
                f"or (n_samples, n_timesteps, n_channels); got {describe(x)}."
            )
        return check_series(x, who=self.name, name=s.path)

    def fit(self, train: np.ndarray) -> SamplesFile:
        """Read the file and check it against the training series (nothing is fitted)."""
        train = check_series(train, who=self.name, name="train")
        x = self.read()
        if x.shape[1:] != train.shape[1:]:
            raise ValidationError(
                f"{self.name}: the series in {self.settings.path!r} must have the dataset's "
                f"(n_timesteps, n_channels) = {train.shape[1:]}; got {x.shape[1:]}. Generate "
                "series of the dataset's length and channels."
            )
        mean_t, std_t = train.mean(axis=(0, 1)), train.std(axis=(0, 1))
        mean_s, std_s = x.mean(axis=(0, 1)), x.std(axis=(0, 1))
        unit = np.where(std_t > 0, std_t, 1.0)
        off = (np.abs(mean_s - mean_t) > SCALE_TOLERANCE * unit) | (
            (std_t > 0) & ((std_s > SCALE_TOLERANCE * std_t) | (std_s < std_t / SCALE_TOLERANCE))
        )
        if off.any():
            c = int(np.argmax(off))
            warnings.warn(
                f"{self.name}: the series in {self.settings.path!r} look like another scale "
                f"than the training set (channel {c}: mean {mean_s[c]:.3g} vs {mean_t[c]:.3g}, "
                f"std {std_s[c]:.3g} vs {std_t[c]:.3g}). Is the dataset normalized while your "
                "samples are in raw units? Use normalization='none' for the dataset.",
                DataWarning, stacklevel=2,
            )
        self.samples_ = x
        self.sha256_ = _sha256(Path(self.settings.path))
        return self

    def sample(self, n: int, seed: int) -> np.ndarray:
        if not hasattr(self, "samples_"):
            raise NotPreparedError(f"{self.name}: call fit(train) before sample(n, seed).")
        have = len(self.samples_)
        if n > have:
            raise ValidationError(
                f"{self.name}: {self.settings.path!r} holds {have} series; {n} are needed (the "
                "reference half of the holdout). Generate at least that many, or lower "
                "--n-samples."
            )
        if n == have:
            return self.samples_.astype(np.float32)
        keep = np.sort(np.random.default_rng(seed).permutation(have)[:n])
        return self.samples_[keep].astype(np.float32)

    def describe_fit(self) -> dict:
        """The file that was read (for the benchmark's provenance)."""
        if not hasattr(self, "samples_"):
            return {}
        return {"path": str(Path(self.settings.path).resolve()), "sha256": self.sha256_,
                "n_series": len(self.samples_)}


@hookimpl
def register_generators():
    return [SamplesFile]
