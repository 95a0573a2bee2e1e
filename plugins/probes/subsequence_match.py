"""``subsequence-match``: does a generated series contain a copied *piece* of a training series?

DESIGN §5. Every window of length ``w`` (stride ``s``) of every generated series is compared with
every training window (stride ``train_stride``, 1 by default: all of them). With ``d1`` the
distance to the nearest training window and ``d2`` the distance to the nearest one that is not a
*trivial match* of it — a window of the same training series starting within ``w // 2``
timesteps of the ``d1`` match, i.e. the same stretch shifted a little — the generated window is
copied when ``d1 / d2 < k`` (``k = 1/3``, as in ``nn-ratio``). A generator that stitches together
pieces of different training series is caught here even though no whole series is close to a
training series.

Search: exact kNN through :mod:`probekit.neighbors`. The exclusion zone of one match holds at most
``Z = 2 * floor((w // 2) / train_stride) + 1`` windows (fewer when the series is short), so among
the ``Z + 1`` nearest training windows at least one is non-trivial: one exact search with
``Z + 1`` neighbours yields the exact ``d2``, with no approximation and no retry. An FFT
distance profile (MASS) was measured against it in ``benchmarks/bench_subsequence.py``: the kNN
search is 3-5x faster for windows up to 128 steps, the FFT profile 2x faster for 256-step
windows (where ``Z`` is large); see docs/probes/subsequence-match.md.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pydantic

from probekit import MeasureSettings, Probe, Result, hookimpl
from probekit.errors import ValidationError
from probekit.neighbors import NearestNeighborIndex
from probekit.stats import bootstrap_ci
from probekit.timeseries import check_series, sliding_windows, znormalize


class SubsequenceMatchSettings(MeasureSettings):
    window: int = pydantic.Field(32, ge=2, description="window length w (timesteps)")
    stride: int = pydantic.Field(1, ge=1, description="step between generated windows")
    train_stride: int = pydantic.Field(
        1, ge=1, description="step between training windows (1: all training windows)"
    )
    k: float = pydantic.Field(1 / 3, gt=0, lt=1, description="copied when d1/d2 < k")
    distance: Literal["znorm", "raw"] = pydantic.Field(
        "znorm", description="z-normalized (per window and channel) or raw Euclidean distance"
    )
    constant_tol: float = pydantic.Field(
        1e-8, ge=0, description="a window channel is constant when std <= tol * max|value|"
    )
    collapse_duplicates: bool = pydantic.Field(
        True, description="drop exact duplicate training windows (after normalization) first"
    )
    n_bootstrap: int = pydantic.Field(1000, ge=100, description="bootstrap resamples for CIs")
    confidence: float = pydantic.Field(0.95, gt=0, lt=1, description="CI level")
    chunk_size: int = pydantic.Field(16384, gt=0, description="training windows searched at once")


class SubsequenceMatch(Probe):
    """Fraction of generated series that contain a window copied from a training series."""

    name = "subsequence-match"
    modality = "timeseries"
    description = (
        "fraction of generated series with a window whose d1/d2 < k to the training windows "
        "(trivial matches excluded)"
    )
    headline = "f_copied_series"
    higher_is_better = False
    requires = ("train", "samples")
    Settings = SubsequenceMatchSettings
    settings: SubsequenceMatchSettings

    # -- reference side --------------------------------------------------------------------

    def prepare(self, train: np.ndarray, *, holdout: np.ndarray | None = None):
        """Cut, normalize and index every training window (once per run)."""
        s = self.settings
        train = check_series(train, who=self.name, name="train", min_samples=2)
        n, t, c = train.shape
        if s.window > t:
            raise ValidationError(
                f"{self.name}: window must be at most the training series length ({t}); got "
                f"window={s.window}. Set window=... to a length the series can hold."
            )
        windows = sliding_windows(train, s.window, s.train_stride)  # (n, p, w, c)
        p = windows.shape[1]
        vectors = self._normalize(windows.reshape(n * p, s.window, c))[0]
        series = np.repeat(np.arange(n, dtype=np.int64), p)
        starts = np.tile(np.arange(p, dtype=np.int64) * s.train_stride, n)
        if s.collapse_duplicates:
            _, first = np.unique(vectors, axis=0, return_index=True)
            kept = np.sort(first)
            vectors, series, starts = vectors[kept], series[kept], starts[kept]
        state = {
            "windows": vectors, "series": series, "starts": starts,
            "train_shape": np.asarray(train.shape, dtype=np.int64),
        }
        return self.load_reference_state(state)

    def reference_state(self) -> dict[str, np.ndarray]:
        """Normalized training windows with their series and start positions (cacheable)."""
        self._check_prepared("train_index_")
        return {
            "windows": np.asarray(self.train_index_.reference_),
            "series": self.train_series_,
            "starts": self.train_starts_,
            "train_shape": np.asarray(self.train_shape_, dtype=np.int64),
        }

    def load_reference_state(self, state: dict[str, np.ndarray]):
        s = self.settings
        self.train_shape_ = tuple(int(v) for v in state["train_shape"])
        self.train_series_ = np.asarray(state["series"], dtype=np.int64)
        self.train_starts_ = np.asarray(state["starts"], dtype=np.int64)
        if len(np.unique(self.train_series_)) < 2:
            raise ValidationError(
                f"{self.name}: the training windows must come from at least 2 distinct series; "
                f"got {len(np.unique(self.train_series_))}. Provide more training series."
            )
        n_train, t = self.train_shape_[0], self.train_shape_[1]
        per_series = (t - s.window) // s.train_stride + 1
        zone = min(per_series, 2 * ((s.window // 2) // s.train_stride) + 1)
        self.train_index_ = NearestNeighborIndex(state["windows"], chunk_size=s.chunk_size)
        # at most `zone` candidates are trivial matches of the nearest one
        self.n_candidates_ = min(self.train_index_.n_reference, zone + 1)
        self.n_train_windows_ = n_train * per_series
        return self

    def _normalize(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flattened window vectors ``(m, w * c)`` and whether each window is constant."""
        m = len(windows)
        if self.settings.distance == "raw":
            return windows.reshape(m, -1).astype(np.float64), np.zeros(m, dtype=bool)
        normalized, constant = znormalize(windows, self.settings.constant_tol)
        return normalized.reshape(m, -1), constant.all(axis=-1)

    # -- generated side --------------------------------------------------------------------

    def match_windows(self, samples: np.ndarray) -> dict[str, np.ndarray]:
        """Per-window matches of ``samples`` ``(n, t, c)``: arrays of shape ``(n, n_windows)``
        ``d1``, ``d2``, ``ratio``, ``nn_series``, ``nn_start``, ``constant``."""
        s = self.settings
        n, c = samples.shape[0], samples.shape[2]
        windows = sliding_windows(samples, s.window, s.stride)
        p = windows.shape[1]
        vectors, constant = self._normalize(windows.reshape(n * p, s.window, c))
        dist, idx = self.train_index_.search(vectors, self.n_candidates_, batch_size=4096)
        series, starts = self.train_series_[idx], self.train_starts_[idx]
        trivial = (series == series[:, :1]) & (
            np.abs(starts - starts[:, :1]) <= s.window // 2
        )
        trivial[:, 0] = True
        has_d2 = ~trivial.all(axis=1)
        first = np.argmax(~trivial, axis=1)  # first non-trivial candidate
        d1 = dist[:, 0]
        d2 = np.where(has_d2, dist[np.arange(len(dist)), first], np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 1.0)
        ratio = np.where(np.isfinite(d2), ratio, 1.0)
        out = {
            "d1": d1, "d2": d2, "ratio": ratio,
            "nn_series": series[:, 0], "nn_start": starts[:, 0], "constant": constant,
        }
        return {key: value.reshape(n, p) for key, value in out.items()}

    def evaluate(self, samples: np.ndarray | None = None, *, model=None) -> Result:
        """``f_copied_series``, ``f_copied_windows`` and ``longest_copy`` of ``samples``."""
        self._check_prepared("train_index_")
        s = self.settings
        samples = check_series(samples, who=self.name, name="samples")
        if samples.shape[2] != self.train_shape_[2]:
            raise ValidationError(
                f"{self.name}: samples must have {self.train_shape_[2]} channel(s) like the "
                f"training series; got {samples.shape[2]} (samples of shape {samples.shape}). "
                "Generate series with the training set's channels."
            )
        if samples.shape[1] < s.window:
            raise ValidationError(
                f"{self.name}: samples must have at least window={s.window} timesteps; got "
                f"{samples.shape[1]}. Lower window=... or generate longer series."
            )
        parts = [
            self.match_windows(samples[start : start + s.batch_size])
            for start in range(0, len(samples), s.batch_size)
        ]
        win = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        copied = (win["ratio"] < s.k) & ~win["constant"]
        longest = longest_copied_span(
            copied, win["nn_series"], win["nn_start"], s.window, s.stride
        )
        copied_series = copied.any(axis=1)
        window_fraction = copied.mean(axis=1)
        best = np.argmin(np.where(win["constant"], np.inf, win["ratio"]), axis=1)
        rows = np.arange(len(samples))
        ci_kw = {"n_resamples": s.n_bootstrap, "confidence": s.confidence, "seed": s.seed}
        warnings = []
        if win["constant"].any():
            warnings.append(
                f"{int(win['constant'].sum())} generated window(s) are constant; they are never "
                "counted as copied (z-normalization is undefined for them)."
            )
        return Result(
            measure=self.name,
            headline="f_copied_series",
            values={
                "f_copied_series": float(copied_series.mean()),
                "f_copied_windows": float(copied.mean()),
                "longest_copy": float(longest.max()),
                "n_copied_series": float(copied_series.sum()),
                "n_windows": float(copied.size),
                "median_ratio": float(np.median(win["ratio"])),
            },
            ci={
                "f_copied_series": bootstrap_ci(copied_series, **ci_kw),
                "f_copied_windows": bootstrap_ci(window_fraction, **ci_kw),
            },
            per_sample={
                "copied": copied_series,
                "n_copied_windows": copied.sum(axis=1),
                "longest_copy": longest,
                "min_ratio": win["ratio"][rows, best],
                "nn_series": win["nn_series"][rows, best],
                "nn_start": win["nn_start"][rows, best],
                "window_d1": win["d1"],
                "window_d2": win["d2"],
                "window_ratio": win["ratio"],
                "window_copied": copied,
                "window_nn_series": win["nn_series"],
                "window_nn_start": win["nn_start"],
            },
            warnings=tuple(warnings),
            provenance=self.make_provenance(
                feature_space="subsequences",
                preprocessing=(
                    f"sliding windows w={s.window} (generated stride {s.stride}, training stride "
                    f"{s.train_stride}), "
                    + ("z-normalized per window and channel" if s.distance == "znorm" else "raw")
                ),
                n_reference=self.train_index_.n_reference,
                n_samples=len(samples),
                extra={
                    "n_train_series": self.train_shape_[0],
                    "n_train_windows": self.n_train_windows_,
                    "n_duplicate_windows_collapsed": (
                        self.n_train_windows_ - self.train_index_.n_reference
                    ),
                    "n_candidates_searched": self.n_candidates_,
                    "n_constant_windows": int(win["constant"].sum()),
                    "n_exact_fallbacks": self.train_index_.n_fallbacks_,
                },
            ),
        )


def longest_copied_span(
    copied: np.ndarray, nn_series: np.ndarray, nn_start: np.ndarray, window: int, stride: int
) -> np.ndarray:
    """Longest span (timesteps) of each generated series copied from *one* training series.

    Consecutive copied windows chain when they overlap or touch (``stride <= window``) and match
    the same training series at the same alignment (the match moves by ``stride`` too); a chain
    of ``m`` windows covers ``(m - 1) * stride + window`` timesteps. 0 when nothing is copied.
    """
    n, p = copied.shape
    best = np.where(copied.any(axis=1), window, 0).astype(np.int64)
    if p < 2 or stride > window:
        return best
    link = (
        copied[:, 1:] & copied[:, :-1] & (nn_series[:, 1:] == nn_series[:, :-1])
        & (nn_start[:, 1:] - nn_start[:, :-1] == stride)
    )
    run = np.zeros(n, dtype=np.int64)
    longest_run = np.zeros(n, dtype=np.int64)
    for j in range(p - 1):
        run = (run + 1) * link[:, j]
        np.maximum(longest_run, run, out=longest_run)
    return np.where(copied.any(axis=1), longest_run * stride + window, 0)


@hookimpl
def register_probes():
    return [SubsequenceMatch]
