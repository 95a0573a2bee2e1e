"""Shared time-series numerics: sliding windows, z-normalization, autocorrelation, lagged
design matrices, and the explicit normalization of dataset splits.

Time series use the layout ``(n_samples, n_timesteps, n_channels)`` (DESIGN §4). Everything here
is float64 and deterministic; nothing depends on how a caller batches its series.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pydantic

from probekit.base import Dataset, DatasetSplits, FeatureExtractor, MeasureSettings, Settings
from probekit.errors import ValidationError
from probekit.validation import check_array, describe

#: Normalizations a dataset can apply (recorded in :class:`probekit.DatasetSplits`).
NORMALIZATIONS = ("zscore", "minmax", "none")


def check_series(x: object, *, who: str, name: str, min_samples: int = 1) -> np.ndarray:
    """``x`` as a finite float64 ``(n_samples, n_timesteps, n_channels)`` array."""
    return check_array(x, who=who, name=name, modality="timeseries", min_samples=min_samples)


def check_recordings(x: object, *, who: str, name: str) -> list[np.ndarray]:
    """``x`` as a list of finite float64 ``(n_timesteps_i, n_channels)`` series of any lengths.

    Accepts a 3-d array ``(n_samples, n_timesteps, n_channels)`` (equal lengths) or a sequence
    of recordings, each 1-d ``(n_timesteps,)`` (univariate) or 2-d ``(n_timesteps,
    n_channels)``; every recording must have the same channels.
    """
    if isinstance(x, np.ndarray) or not isinstance(x, list | tuple):
        return list(check_series(x, who=who, name=name))
    if not x:
        raise ValidationError(f"{who}: {name} must hold at least one series; got none.")
    out = []
    for i, item in enumerate(x):
        arr = np.asarray(item, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValidationError(
                f"{who}: {name}[{i}] must be a recording (n_timesteps,) or (n_timesteps, "
                f"n_channels); got {describe(arr)}."
            )
        if not np.isfinite(arr).all():
            raise ValidationError(
                f"{who}: {name}[{i}] must be finite; got {int((~np.isfinite(arr)).sum())} "
                "NaN/inf value(s). Fill or drop missing values first."
            )
        if out and arr.shape[1] != out[0].shape[1]:
            raise ValidationError(
                f"{who}: every recording of {name} must have the same channels; {name}[0] has "
                f"{out[0].shape[1]} and {name}[{i}] has {arr.shape[1]}."
            )
        out.append(arr)
    return out


def window_starts(n_timesteps: int, window: int, stride: int) -> np.ndarray:
    """Start positions ``0, stride, 2*stride, ...`` of the windows that fit in the series."""
    if window > n_timesteps:
        return np.empty(0, dtype=np.int64)
    return np.arange(0, n_timesteps - window + 1, stride, dtype=np.int64)


def sliding_windows(x: np.ndarray, window: int, stride: int = 1) -> np.ndarray:
    """Windows of ``x`` ``(n, n_timesteps, n_channels)`` as ``(n, n_windows, window,
    n_channels)``: window ``j`` starts at timestep ``j * stride``. A read-only view."""
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=1)  # (n, T-w+1, C, w)
    return view[:, ::stride].transpose(0, 1, 3, 2)


def znormalize(windows: np.ndarray, constant_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Z-normalize each channel of each window over its timesteps.

    Parameters
    ----------
    windows : array (..., window, n_channels)
        Windows, any leading shape.
    constant_tol : float
        A channel of a window is *constant* when its standard deviation is at most
        ``constant_tol`` times its largest absolute value (an all-zero channel is constant).
        Its z-normalized values are set to 0: the usual convention (e.g. the matrix-profile
        literature), under which two constant windows are at distance 0 and a constant and a
        varying one at ``sqrt(window)`` per channel, instead of dividing by a rounding error.

    Returns
    -------
    normalized : float64 array, same shape as ``windows``
    constant : bool array (..., n_channels)
        Which channels of which windows were constant.
    """
    w = np.asarray(windows, dtype=np.float64)
    mean = w.mean(axis=-2, keepdims=True)
    centred = w - mean
    std = np.sqrt(np.mean(centred * centred, axis=-2, keepdims=True))
    scale = np.abs(w).max(axis=-2, keepdims=True)
    constant = std <= constant_tol * scale
    out = np.divide(centred, std, out=np.zeros_like(centred), where=~constant)
    return out, constant[..., 0, :]


def autocorrelation(x: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample autocorrelation of each series and channel at lags ``0..max_lag``.

    The usual (biased) estimator: ``acf[k] = sum_t (x_t - m)(x_{t+k} - m) / sum_t (x_t - m)^2``
    with the series' own mean ``m``; it is bounded by 1 in absolute value. A constant channel has
    no defined autocorrelation: its ACF is set to 1 at lag 0 and 0 at every other lag (like
    white noise), and it is flagged.

    Returns
    -------
    acf : float64 array (n_samples, max_lag + 1, n_channels)
    constant : bool array (n_samples, n_channels)
    """
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=1, keepdims=True)
    denom = np.einsum("ntc,ntc->nc", centred, centred)
    scale = np.abs(x).max(axis=1)
    constant = denom <= (1e-12 * np.maximum(scale, np.finfo(np.float64).tiny)) ** 2 * x.shape[1]
    acf = np.empty((x.shape[0], max_lag + 1, x.shape[2]))
    for lag in range(max_lag + 1):
        num = np.einsum("ntc,ntc->nc", centred[:, : x.shape[1] - lag], centred[:, lag:])
        acf[:, lag] = np.divide(num, denom, out=np.zeros_like(num), where=~constant)
    acf[:, 0] = 1.0
    return acf, constant


def lagged_design(x: np.ndarray, lags: int) -> tuple[np.ndarray, np.ndarray]:
    """Next-step regression pairs of every series: inputs are the previous ``lags`` timesteps
    of all channels (flattened, oldest first), targets the current timestep's channels.

    Returns
    -------
    inputs : float64 array (n_samples, n_timesteps - lags, lags * n_channels)
    targets : float64 array (n_samples, n_timesteps - lags, n_channels)
    """
    x = np.asarray(x, dtype=np.float64)
    n, t, c = x.shape
    past = sliding_windows(x[:, :-1], lags, 1)  # (n, t - lags, lags, c)
    return past.reshape(n, t - lags, lags * c), x[:, lags:]


#: Largest number of DTW dynamic-programming cells (n_queries x n_reference x T^2) that
#: :func:`dtw_knn` accepts: about a minute or two on one core (tslearn's numba kernel).
DTW_MAX_CELLS = 10**10


def dtw_knn(
    queries: np.ndarray, reference: np.ndarray, k: int, *, batch_size: int = 256, who: str = "dtw"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest reference series of each query under dynamic time warping.

    DTW as in :func:`tslearn.metrics.cdist_dtw` (square root of the summed squared differences
    along the best warping path, no global constraint), which equals the Euclidean distance when
    no warping helps. Ties are broken by the smaller reference index. Brute force, for small
    sets only: more than :data:`DTW_MAX_CELLS` cells raise a :class:`ValidationError`.

    Returns
    -------
    distances : float64 (n_queries, k), ascending
    indices : int64 (n_queries, k)
    """
    from tslearn.metrics import cdist_dtw

    q = check_series(queries, who=who, name="samples")
    ref = check_series(reference, who=who, name="train")
    cells = len(q) * len(ref) * q.shape[1] * ref.shape[1]
    if cells > DTW_MAX_CELLS:
        raise ValidationError(
            f"{who}: DTW is brute force for small sets; {len(q)} samples x {len(ref)} training "
            f"series of lengths {q.shape[1]} and {ref.shape[1]} need {cells:.1e} cells (limit "
            f"{DTW_MAX_CELLS:.0e}). Subsample, or use the Euclidean distance."
        )
    dist = np.empty((len(q), k))
    idx = np.empty((len(q), k), dtype=np.int64)
    columns = np.arange(len(ref))
    for s in range(0, len(q), batch_size):
        d = np.asarray(cdist_dtw(q[s : s + batch_size], ref), dtype=np.float64)
        order = np.lexsort((np.broadcast_to(columns, d.shape), d), axis=1)[:, :k]
        dist[s : s + batch_size] = np.take_along_axis(d, order, axis=1)
        idx[s : s + batch_size] = order
    return dist, idx


@dataclass(frozen=True)
class Normalizer:
    """An affine per-channel map ``(x - shift) / scale`` fitted on a training split."""

    method: str
    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, train: np.ndarray, method: str) -> Normalizer:
        """Fit ``method`` on ``train`` ``(n, t, c)``: ``"zscore"`` (per-channel mean and std),
        ``"minmax"`` (per-channel range mapped onto [-1, 1]) or ``"none"``."""
        if method not in NORMALIZATIONS:
            raise ValidationError(
                f"normalization must be one of {NORMALIZATIONS}; got {method!r}."
            )
        x = np.asarray(train, dtype=np.float64)
        c = x.shape[2]
        if method == "zscore":
            shift, scale = x.mean(axis=(0, 1)), x.std(axis=(0, 1))
        elif method == "minmax":
            low, high = x.min(axis=(0, 1)), x.max(axis=(0, 1))
            shift, scale = (low + high) / 2.0, (high - low) / 2.0
        else:
            shift, scale = np.zeros(c), np.ones(c)
        scale = np.where(scale > 0, scale, 1.0)  # a constant channel is only shifted
        return cls(method, shift, scale)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Apply the map (float32 output, the dtype of probekit's datasets)."""
        return ((np.asarray(x, dtype=np.float64) - self.shift) / self.scale).astype(np.float32)

    def describe(self) -> str:
        """One line that records the map, e.g. for :attr:`probekit.DatasetSplits.normalization`."""
        if self.method == "none":
            return "none"
        shift = np.array2string(self.shift, precision=6, separator=", ")
        scale = np.array2string(self.scale, precision=6, separator=", ")
        what = {"zscore": "per-channel z-score", "minmax": "per-channel min-max to [-1, 1]"}[
            self.method
        ]
        return f"{what} fitted on the training split: (x - {shift}) / {scale}"


def observed_range(*arrays: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` over the given arrays (the value range a dataset states)."""
    return (float(min(a.min() for a in arrays)), float(max(a.max() for a in arrays)))


def _parse_json_object(value: Any) -> Any:
    """Accept a mapping, or (from the CLI) a JSON object string such as ``{"n_kernels": 64}``."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f'must be a JSON object such as {{"n_kernels": 64}} ({exc})') from None
    return value


class FeatureSpaceSettings(MeasureSettings):
    """Settings of a time-series metric computed in a registered feature space."""

    features: str = pydantic.Field("ts-rocket", description="registered feature extractor")
    feature_settings: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="settings of the feature extractor (JSON on the CLI)"
    )

    standardize: Literal["none", "reference"] = pydantic.Field(
        "none", description="scale series by the reference's per-channel mean and std before "
        "the features (ROCKET assumes values of order 1; use it for data in raw units)"
    )

    _parse_feature_settings = pydantic.field_validator("feature_settings", mode="before")(
        _parse_json_object
    )


def channel_scale(reference: np.ndarray, method: str) -> dict[str, np.ndarray]:
    """The per-channel map of ``FeatureSpaceSettings.standardize``: ``{"shift", "scale"}``
    fitted on the reference series (identity for ``"none"``; a constant channel is only
    shifted)."""
    c = reference.shape[2]
    if method == "none":
        return {"shift": np.zeros(c), "scale": np.ones(c)}
    x = np.asarray(reference, dtype=np.float64)
    std = x.std(axis=(0, 1))
    return {"shift": x.mean(axis=(0, 1)), "scale": np.where(std > 0, std, 1.0)}


def apply_channel_scale(x: np.ndarray, scale: dict[str, np.ndarray]) -> np.ndarray:
    """``(x - shift) / scale`` per channel (a no-op for the identity map)."""
    if not np.any(scale["shift"]) and np.all(scale["scale"] == 1.0):
        return x
    return (np.asarray(x, dtype=np.float64) - scale["shift"]) / scale["scale"]


def make_extractor(settings: FeatureSpaceSettings, extractor: FeatureExtractor | None = None
                   ) -> FeatureExtractor:
    """The extractor a metric measures in: ``extractor`` if given (its name must match the
    ``features`` setting), else the registered one built with ``feature_settings``."""
    from probekit.features import resolve_extractor
    from probekit.registry import get_feature_extractor

    if extractor is not None:
        return resolve_extractor(settings.features, extractor)
    return get_feature_extractor(settings.features)(settings.feature_settings)


class SeriesDatasetSettings(Settings):
    """Settings every time-series dataset shares."""

    n_train: int | None = pydantic.Field(
        None, ge=2, description="first n series of the pool as the training set (all: None)"
    )
    normalization: Literal["zscore", "minmax", "none"] = pydantic.Field(
        "zscore", description="per-channel map fitted on the training split, applied to both"
    )


def make_splits(
    pool: np.ndarray, holdout: np.ndarray, settings: SeriesDatasetSettings, who: str
) -> DatasetSplits:
    """Training set = the first ``n_train`` series of ``pool`` (nested subsets); both splits
    normalized by the map fitted on the training set, which is recorded in the result."""
    n = settings.n_train or len(pool)
    if n > len(pool):
        raise ValidationError(
            f"{who}: n_train must be at most the pool size {len(pool)}; got {n}. Lower n_train."
        )
    train = pool[:n]
    normalizer = Normalizer.fit(train, settings.normalization)
    train, holdout = normalizer.transform(train), normalizer.transform(holdout)
    return DatasetSplits(
        train=train, holdout=holdout, value_range=observed_range(train, holdout),
        normalization=normalizer.describe(),
    )


# -- recordings: long series cut into windows, split by time -----------------------------------


@dataclass(frozen=True)
class RecordingSplits(DatasetSplits):
    """Splits of windows cut from long recordings, with the continuous training stretches.

    ``train_recordings`` holds, per recording, the stretch the training windows were cut
    from (normalized like them unless the normalization is per window): the most faithful
    reference for ``subsequence-match``, which then needs no duplicate collapsing.
    """

    train_recordings: tuple[np.ndarray, ...] = ()


def fill_missing(x: np.ndarray, *, who: str, name: str) -> tuple[np.ndarray, int]:
    """Linear interpolation of NaN values in each channel of a recording ``(T, C)`` (the
    first/last valid value before/after the ends); returns the filled copy and the count."""
    x = np.array(x, dtype=np.float64)
    missing = np.isnan(x)
    for c in range(x.shape[1]):
        gaps = missing[:, c]
        if gaps.all():
            raise ValidationError(
                f"{who}: channel {c} of {name} holds no values (all missing). Drop it with "
                "columns=..."
            )
        if gaps.any():
            t = np.arange(len(x))
            x[gaps, c] = np.interp(t[gaps], t[~gaps], x[~gaps, c])
    return x, int(missing.sum())


def load_recordings(
    path: str, *, columns: list[str | int] | None = None, key: str | None = None,
    index_column: str = "auto", header_row: str = "auto", missing: str = "error",
    who: str = "recording",
) -> tuple[list[np.ndarray], list[str]]:
    """Long recordings from files, as float64 ``(n_timesteps, n_channels)`` arrays, and notes
    on what was done to them.

    ``path`` is one file or several separated by commas. A CSV is **one recording, rows =
    timesteps, columns = channels** (header and row-label columns detected, see
    :func:`probekit.io.read_csv_table`; ``columns`` picks channels). An ``.npy``/``.pt``
    array is one recording ``(n_timesteps,)`` or ``(n_timesteps, n_channels)``, or several of
    equal length ``(n_recordings, n_timesteps, n_channels)``; every array of an ``.npz`` (or
    the one named ``key``) is a recording. Missing values (empty CSV cells, NaN) are an error
    with ``missing="error"`` and linearly interpolated with ``missing="interpolate"``.
    """
    from pathlib import Path

    from probekit.errors import InputFileError
    from probekit.io import load_array, read_csv_table

    if missing not in ("error", "interpolate"):
        raise ValidationError(f"{who}: missing must be 'error' or 'interpolate'; got {missing!r}.")
    recordings: list[tuple[str, np.ndarray]] = []
    notes: list[str] = []
    for part in (p.strip() for p in str(path).split(",")):
        if not part:
            continue
        file = Path(part)
        if file.suffix.lower() == ".csv":
            if not file.is_file():
                raise InputFileError(f"{who}: recording file {part!r} does not exist.")
            names, values, dropped = read_csv_table(
                file, columns=columns, index_column=index_column, header_row=header_row,
                missing=True,
            )
            if dropped:
                notes.append(f"{file.name}: {dropped}")
            if names:
                notes.append(f"{file.name}: channels {names}")
            recordings.append((file.name, values))
            continue
        if file.suffix.lower() == ".npz" and key is None:
            with np.load(file, allow_pickle=False) as data:
                arrays = [(f"{file.name}:{k}", np.asarray(data[k])) for k in data.files]
        else:
            arrays = [(file.name, np.asarray(load_array(file, key=key)))]
        for label, arr in arrays:
            arr = arr.astype(np.float64)
            if arr.ndim == 1:
                recordings.append((label, arr[:, None]))
            elif arr.ndim == 2:
                if arr.shape[0] < arr.shape[1]:
                    raise ValidationError(
                        f"{who}: {label} has shape {arr.shape}, read as (n_timesteps, "
                        f"n_channels) = {arr.shape[0]} steps of {arr.shape[1]} channels. A "
                        "recording is longer than it is wide: transpose it, or save several "
                        "recordings as (n_recordings, n_timesteps, n_channels)."
                    )
                recordings.append((label, arr))
            elif arr.ndim == 3:
                recordings += [(f"{label}[{i}]", a) for i, a in enumerate(arr)]
            else:
                raise ValidationError(
                    f"{who}: {label} must be a recording (n_timesteps,) or (n_timesteps, "
                    f"n_channels), or recordings (n, n_timesteps, n_channels); got "
                    f"{describe(arr)}."
                )
    if not recordings:
        raise ValidationError(f"{who}: path must name at least one file; got {path!r}.")
    out = []
    for label, x in recordings:
        if x.shape[1] != recordings[0][1].shape[1]:
            raise ValidationError(
                f"{who}: every recording must have the same channels; {recordings[0][0]} has "
                f"{recordings[0][1].shape[1]} and {label} has {x.shape[1]}."
            )
        if np.isinf(x).any():
            raise ValidationError(f"{who}: {label} holds infinite values; remove them first.")
        n_missing = int(np.isnan(x).sum())
        if n_missing and missing == "error":
            raise ValidationError(
                f"{who}: {label} has {n_missing} missing value(s); set missing='interpolate' "
                "to fill them linearly, or fill them yourself."
            )
        if n_missing:
            x, _ = fill_missing(x, who=who, name=label)
            notes.append(f"{label}: {n_missing} missing value(s) linearly interpolated")
        out.append(x)
    return out, notes


def cut_windows(recording: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Windows ``(n_windows, window, n_channels)`` of one recording ``(T, C)``, starting at
    ``0, stride, 2*stride, ...`` (a copy)."""
    return np.ascontiguousarray(sliding_windows(np.asarray(recording)[None], window, stride)[0])


def split_by_time(recording: np.ndarray, holdout_fraction: float, gap: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(train stretch, holdout stretch)``: the first ``1 - holdout_fraction`` of the
    recording, then the rest after ``gap`` dropped timesteps. Windows cut inside each stretch
    never overlap the other one."""
    n = len(recording)
    cut = round((1.0 - holdout_fraction) * n)
    return recording[:cut], recording[min(n, cut + gap):]


def window_zscore(windows: np.ndarray) -> np.ndarray:
    """Each window and channel z-scored on its own (TSGBench's per-window scaling); a constant
    channel is only centred."""
    w = np.asarray(windows, dtype=np.float64)
    mean = w.mean(axis=1, keepdims=True)
    std = w.std(axis=1, keepdims=True)
    return (w - mean) / np.where(std > 0, std, 1.0)


class ArchiveSettings(SeriesDatasetSettings):
    split: Literal["pooled", "official"] = pydantic.Field(
        "pooled",
        description="pooled: the archive's train+test files shuffled (seed 0) and re-split; "
        "official: the archive's own train/test files as pool/holdout",
    )
    holdout_fraction: float = pydantic.Field(
        0.3, gt=0, lt=1, description="share of the pooled series held out (split='pooled')"
    )


class ArchiveDataset(Dataset):
    """A labelled classification archive (UCR/UEA style) reused as a generative dataset.

    Subclasses implement :meth:`read_archive`; labels are dropped. ``split="pooled"`` (default)
    concatenates the archive's train and test files, shuffles them with a fixed seed (0) and
    holds out the last ``holdout_fraction``; training sets are the first ``n_train`` series of
    the rest (nested subsets, as for ``digits``).
    """

    modality = "timeseries"
    Settings = ArchiveSettings
    settings: ArchiveSettings

    @abstractmethod
    def read_archive(self) -> tuple[np.ndarray, np.ndarray]:
        """The archive's own ``(train, test)`` series, each ``(n, n_timesteps, n_channels)``."""

    def load(self) -> DatasetSplits:
        first, second = self.read_archive()
        if self.settings.split == "official":
            return make_splits(first, second, self.settings, self.name)
        both = np.concatenate([first, second])
        both = both[np.random.default_rng(0).permutation(len(both))]
        n_holdout = round(self.settings.holdout_fraction * len(both))
        return make_splits(both[: len(both) - n_holdout], both[len(both) - n_holdout :],
                           self.settings, self.name)


__all__ = [
    "DTW_MAX_CELLS",
    "NORMALIZATIONS",
    "ArchiveDataset",
    "ArchiveSettings",
    "FeatureSpaceSettings",
    "Normalizer",
    "RecordingSplits",
    "SeriesDatasetSettings",
    "apply_channel_scale",
    "autocorrelation",
    "channel_scale",
    "check_recordings",
    "check_series",
    "cut_windows",
    "dtw_knn",
    "fill_missing",
    "lagged_design",
    "load_recordings",
    "make_extractor",
    "make_splits",
    "observed_range",
    "sliding_windows",
    "split_by_time",
    "window_starts",
    "window_zscore",
    "znormalize",
]
