"""``recording``: long real recordings cut into windows, split into train and holdout **by time**.

Most real time series are one (or a few) long recordings — weekly CO₂, an ECG, a power meter —
that a generative model sees as windows. How they are cut decides whether a benchmark can be
trusted:

* **Split by time, then cut.** Each recording is cut at ``1 - holdout_fraction`` of its
  length; training windows come from the first stretch, holdout windows from the rest (after
  ``gap`` dropped steps). No holdout window shares a timestep with a training window. A random
  split of overlapping windows would put near-copies of training windows in the holdout, and
  the probes would flag "fresh" data as memorized.
* **Keep the stretch.** The continuous training stretches travel with the splits
  (:class:`probekit.timeseries.RecordingSplits`), and the benchmark gives them to
  ``subsequence-match`` as its reference: every training stretch exactly once, trivial
  matches defined on the recording itself.
* **Normalize explicitly.** ``zscore`` (default) fits one map per channel on the training
  stretch and applies it to both; ``window-zscore`` scales every window on its own (TSGBench's
  preprocessing, for comparison with papers that use it); ``minmax`` and ``none`` as for every
  dataset. The map is recorded.

Files are read by :func:`probekit.timeseries.load_recordings` (CSV rows = timesteps, columns =
channels; ``.npy``/``.npz``/``.pt`` arrays ``(n_timesteps,)`` or ``(n_timesteps, n_channels)``);
missing values are refused or, with ``missing="interpolate"``, filled linearly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pydantic

from probekit import Dataset, Settings, hookimpl
from probekit.errors import ValidationError
from probekit.timeseries import (
    Normalizer,
    RecordingSplits,
    cut_windows,
    load_recordings,
    observed_range,
    split_by_time,
    window_zscore,
)


class RecordingSettings(Settings):
    path: str = pydantic.Field(
        description="recording file(s), comma-separated (.csv/.npy/.npz/.pt)"
    )
    columns: list[str] | None = pydantic.Field(
        None, description="CSV columns used as channels, by name or 0-based position "
        "(default: every column but row labels)"
    )
    window: int = pydantic.Field(64, ge=2, description="window length (timesteps)")
    stride: int = pydantic.Field(1, ge=1, description="step between windows")
    holdout_fraction: float = pydantic.Field(
        0.25, gt=0, lt=1, description="last share of each recording held out (by time)"
    )
    gap: int = pydantic.Field(0, ge=0, description="timesteps dropped between train and holdout")
    n_train: int | None = pydantic.Field(
        None, ge=2, description="first n training windows in time order (all: None)"
    )
    normalization: Literal["zscore", "minmax", "window-zscore", "none"] = pydantic.Field(
        "zscore", description="per channel, fitted on the training stretch (window-zscore: "
        "each window on its own)"
    )
    missing: Literal["error", "interpolate"] = pydantic.Field(
        "error", description="missing values (empty cells, NaN): refuse, or fill linearly"
    )
    key: str | None = pydantic.Field(None, description="array name inside .npz/.pt files")
    index_column: Literal["auto", "drop", "keep"] = pydantic.Field(
        "auto", description="CSV: a first column of row labels (dates, index) is dropped"
    )
    header_row: Literal["auto", "present", "absent"] = pydantic.Field(
        "auto", description="CSV: whether the first line is a header (auto: detected)"
    )
    name: str | None = pydantic.Field(
        None, description="label in the benchmark's dataset column (default: the file's stem)"
    )

    @pydantic.field_validator("columns", mode="before")
    @classmethod
    def _split_columns(cls, value):
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


class Recording(Dataset):
    """Windows of long recordings, split by time; the training stretches kept for the probes."""

    name = "recording"
    modality = "timeseries"
    description = "your long recordings (CSV/npy) cut into windows, split train/holdout by time"
    Settings = RecordingSettings
    settings: RecordingSettings

    @property
    def label(self) -> str:
        """Name of the dataset in reports: ``name`` or the first file's stem."""
        return self.settings.name or Path(self.settings.path.split(",")[0].strip()).stem

    def load(self) -> RecordingSplits:
        s = self.settings
        recordings, notes = load_recordings(
            s.path, columns=s.columns, key=s.key, index_column=s.index_column,
            header_row=s.header_row, missing=s.missing, who=self.name,
        )
        stretches = []
        for i, rec in enumerate(recordings):
            train, holdout = split_by_time(rec, s.holdout_fraction, s.gap)
            for part, what in ((train, "training"), (holdout, "holdout")):
                if len(part) < s.window:
                    raise ValidationError(
                        f"{self.name}: the {what} stretch of recording {i} must hold at least "
                        f"window={s.window} timesteps; got {len(part)} of {len(rec)}. Lower "
                        "window, or change holdout_fraction/gap."
                    )
            stretches.append((train, holdout))
        # training windows in time order, recording by recording; n_train keeps the first ones
        kept, total = [], 0
        for train, _ in stretches:
            n_windows = (len(train) - s.window) // s.stride + 1
            take = n_windows if s.n_train is None else max(0, min(n_windows, s.n_train - total))
            kept.append(take)
            total += take
        if s.n_train is not None and total < s.n_train:
            raise ValidationError(
                f"{self.name}: n_train must be at most the {total} training windows; got "
                f"{s.n_train}. Lower n_train or the stride."
            )
        raw_train = tuple(train[: (take - 1) * s.stride + s.window]
                          for (train, _), take in zip(stretches, kept, strict=True) if take)
        method = "none" if s.normalization == "window-zscore" else s.normalization
        normalizer = Normalizer.fit(np.concatenate(raw_train)[None], method)

        def windows(parts: list[np.ndarray]) -> np.ndarray:
            out = np.concatenate([cut_windows(p, s.window, s.stride) for p in parts])
            if s.normalization == "window-zscore":
                return window_zscore(out).astype(np.float32)
            return normalizer.transform(out)

        train = windows(list(raw_train))
        holdout = windows([h for _, h in stretches])
        if s.normalization == "window-zscore":
            description = ("per-window z-score (each window and channel on its own); "
                           "train_recordings in the recording's own units")
            recs = raw_train
        else:
            description = normalizer.describe()
            recs = tuple(normalizer.transform(r[None])[0] for r in raw_train)
        description += (f"; windows of {s.window} at stride {s.stride}, split by time at "
                        f"{1 - s.holdout_fraction:.0%} of each recording (gap {s.gap})")
        if notes:
            description += "; " + "; ".join(notes)
        return RecordingSplits(
            train=train, holdout=holdout, value_range=observed_range(train, holdout),
            normalization=description, train_recordings=recs,
        )


@hookimpl
def register_datasets():
    return [Recording]
