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
``Z + 1`` neighbours yields the exact ``d2``, with no approximation (a query whose candidates are
all trivial, possible only with collapsed duplicates below, is searched again with twice as
many). An FFT distance profile (MASS) was measured against it in
``benchmarks/bench_subsequence.py``: with the current :mod:`probekit.neighbors` the kNN search is
2.7-3.3x faster from 32- to 256-step windows, so it is the only engine (the numbers are in
docs/probes/subsequence-match.md).

Training sets of overlapping windows. When the training series are overlapping windows of one
recording (stride-1 windows, each normalized on its own: TSGBench's preprocessing), the same
stretch appears in many training series, differing only by float rounding after the probe's own
z-normalization. Such near-duplicate windows are collapsed (:func:`probekit.find_duplicates`,
within ``duplicate_rtol`` of the distance scale), and a trivial match is taken over *every*
occurrence of the matched stretch: a window near any occurrence of it, in the same series, is
the same stretch shifted a little. With windows at least ``w + w // 2`` long this gives the
same decisions as passing the raw recording, which ``prepare`` also accepts (recordings of any
lengths, each at least ``w``) and which is the most faithful reference.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pydantic

from probekit import MeasureSettings, Probe, Result, hookimpl
from probekit.duplicates import DEFAULT_RTOL, duplicate_message, find_duplicates, ratios_near_one
from probekit.errors import DataWarning, ValidationError
from probekit.neighbors import NearestNeighborIndex
from probekit.stats import bootstrap_ci
from probekit.timeseries import check_recordings, check_series, sliding_windows, znormalize

#: Largest number of (window, window) trivial-match pairs kept for collapsed duplicates.
MAX_TRIVIAL_PAIRS = 50_000_000


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
        True, description="merge duplicate and near-duplicate training windows (after "
        "normalization) first"
    )
    duplicate_rtol: float = pydantic.Field(
        DEFAULT_RTOL, ge=0, description="near-duplicate windows: within this share of the "
        "distance scale (0: bit-exact only)"
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
    headline_range = (0.0, 1.0)
    higher_is_better = False
    requires = ("train", "samples")
    Settings = SubsequenceMatchSettings
    settings: SubsequenceMatchSettings

    # -- reference side --------------------------------------------------------------------

    def prepare(self, train, *, holdout: np.ndarray | None = None):
        """Cut, normalize and index every training window (once per run).

        ``train`` is a 3-d array ``(n_samples, n_timesteps, n_channels)`` or a list of
        recordings of any lengths (each ``(n_timesteps,)`` or ``(n_timesteps, n_channels)``
        and at least ``window`` long), e.g. the raw recordings training windows were cut from.
        """
        s = self.settings
        series_list = check_recordings(train, who=self.name, name="train")
        lengths = np.array([len(x) for x in series_list], dtype=np.int64)
        if len(series_list) < 2 and lengths[0] < s.window:
            raise ValidationError(
                f"{self.name}: train must hold at least 2 samples or one recording of at least "
                f"window={s.window} timesteps; got 1 series of {lengths[0]}."
            )
        if lengths.min() < s.window:
            raise ValidationError(
                f"{self.name}: window must be at most the training series length "
                f"({lengths.min()}); got window={s.window}. Set window=... to a length the "
                "series can hold."
            )
        c = series_list[0].shape[1]
        parts, series, starts = [], [], []
        for i, x in enumerate(series_list):
            windows = sliding_windows(x[None], s.window, s.train_stride)[0]  # (p, w, c)
            parts.append(windows)
            series.append(np.full(len(windows), i, dtype=np.int64))
            starts.append(np.arange(len(windows), dtype=np.int64) * s.train_stride)
        vectors = self._normalize(np.concatenate(parts))[0]
        series, starts = np.concatenate(series), np.concatenate(starts)
        group = np.arange(len(vectors), dtype=np.int64)
        kept = group
        if s.collapse_duplicates:
            found = find_duplicates(vectors, rtol=s.duplicate_rtol)
            kept, group = found.kept, found.group
            if found.n_near:  # bit-exact repeats (flat stretches) are routine; rounding is not
                warnings.warn(
                    duplicate_message(found, len(vectors), who=self.name, what="window"),
                    DataWarning, stacklevel=2,
                )
        state = {
            "windows": vectors[kept], "series": series[kept], "starts": starts[kept],
            "lengths": lengths, "n_channels": np.asarray(c, dtype=np.int64),
            "n_windows": np.asarray(len(vectors), dtype=np.int64),
            "trivial_pairs": self._trivial_pairs(series, starts, group, len(kept)),
        }
        return self.load_reference_state(state)

    def _trivial_pairs(self, series: np.ndarray, starts: np.ndarray, group: np.ndarray,
                       n_groups: int) -> np.ndarray:
        """Sorted keys ``a * n_groups + b`` of the collapsed windows ``(a, b)`` that are trivial
        matches through a duplicated occurrence: some occurrence of ``b`` lies in the same
        series as some occurrence of ``a``, within ``window // 2`` of it. Pairs of windows that
        occur once are left to the direct rule (same series and start of their one
        occurrence)."""
        s = self.settings
        counts = np.bincount(group, minlength=n_groups)
        if counts.max(initial=0) <= 1:
            return np.empty(0, dtype=np.int64)
        multi = counts[group] > 1
        reach = (s.window // 2) // s.train_stride
        if 2 * int(multi.sum()) * reach > MAX_TRIVIAL_PAIRS:
            raise ValidationError(
                f"{self.name}: the training windows hold too many duplicated stretches "
                f"({int(multi.sum())} windows) to track their trivial matches. Pass the raw "
                "recordings as train, raise train_stride, or set collapse_duplicates=false."
            )
        keys = []
        for d in range(1, reach + 1):
            a, b = np.arange(len(group) - d), np.arange(d, len(group))
            pair = (series[a] == series[b]) & (multi[a] | multi[b])
            ga, gb = group[a[pair]], group[b[pair]]
            keys += [ga * n_groups + gb, gb * n_groups + ga]
        return np.unique(np.concatenate(keys)) if keys else np.empty(0, dtype=np.int64)

    def reference_state(self) -> dict[str, np.ndarray]:
        """Normalized (collapsed) training windows with their series and start positions, the
        series lengths and the trivial-match pairs of duplicated stretches (cacheable)."""
        self._check_prepared("train_index_")
        return {
            "windows": np.asarray(self.train_index_.reference_),
            "series": self.train_series_,
            "starts": self.train_starts_,
            "lengths": self.train_lengths_,
            "n_channels": np.asarray(self.n_channels_, dtype=np.int64),
            "n_windows": np.asarray(self.n_train_windows_, dtype=np.int64),
            "trivial_pairs": self.trivial_pairs_,
        }

    def load_reference_state(self, state: dict[str, np.ndarray]):
        s = self.settings
        self.train_series_ = np.asarray(state["series"], dtype=np.int64)
        self.train_starts_ = np.asarray(state["starts"], dtype=np.int64)
        self.train_lengths_ = np.asarray(state["lengths"], dtype=np.int64)
        self.n_channels_ = int(state["n_channels"])
        self.n_train_windows_ = int(state["n_windows"])
        self.trivial_pairs_ = np.asarray(state["trivial_pairs"], dtype=np.int64)
        per_series = (int(self.train_lengths_.max()) - s.window) // s.train_stride + 1
        zone = min(per_series, 2 * ((s.window // 2) // s.train_stride) + 1)
        if len(self.train_lengths_) < 2 and per_series <= zone:
            raise ValidationError(
                f"{self.name}: one training recording must hold more windows than a match's "
                f"trivial-match zone ({zone}); got {per_series}. Provide at least 2 samples, or "
                "a longer recording."
            )
        self.train_index_ = NearestNeighborIndex(state["windows"], chunk_size=s.chunk_size)
        # at most `zone` candidates are trivial matches of the nearest one (more only through
        # collapsed duplicates: those queries are searched again)
        self.n_candidates_ = min(self.train_index_.n_reference, zone + 1)
        return self

    def _trivial(self, idx: np.ndarray) -> np.ndarray:
        """Which candidates ``idx`` ``(m, K)`` are trivial matches of each row's first one."""
        series, starts = self.train_series_[idx], self.train_starts_[idx]
        trivial = (series == series[:, :1]) & (
            np.abs(starts - starts[:, :1]) <= self.settings.window // 2
        )
        if self.trivial_pairs_.size:
            keys = idx[:, :1] * self.train_index_.n_reference + idx
            pos = np.searchsorted(self.trivial_pairs_, keys)
            pos = np.minimum(pos, self.trivial_pairs_.size - 1)
            trivial |= self.trivial_pairs_[pos] == keys
        trivial[:, 0] = True
        return trivial

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
        k = self.n_candidates_
        dist, idx = self.train_index_.search(vectors, k, batch_size=4096)
        d1, nn = dist[:, 0], idx[:, 0]
        d2 = np.full(len(vectors), np.inf)
        todo = np.arange(len(vectors))
        while True:
            trivial = self._trivial(idx)
            found = ~trivial.all(axis=1)
            first = np.argmax(~trivial, axis=1)  # first non-trivial candidate
            d2[todo[found]] = dist[found, first[found]]
            todo = todo[~found]
            if not len(todo) or k >= self.train_index_.n_reference:
                break
            k = min(2 * k, self.train_index_.n_reference)
            dist, idx = self.train_index_.search(vectors[todo], k, batch_size=4096)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 1.0)
        ratio = np.where(np.isfinite(d2), ratio, 1.0)
        out = {
            "d1": d1, "d2": d2, "ratio": ratio,
            "nn_series": self.train_series_[nn], "nn_start": self.train_starts_[nn],
            "constant": constant,
        }
        return {key: value.reshape(n, p) for key, value in out.items()}

    def evaluate(self, samples: np.ndarray | None = None, *, model=None) -> Result:
        """``f_copied_series``, ``f_copied_windows`` and ``longest_copy`` of ``samples``."""
        self._check_prepared("train_index_")
        s = self.settings
        samples = check_series(samples, who=self.name, name="samples")
        if samples.shape[2] != self.n_channels_:
            raise ValidationError(
                f"{self.name}: samples must have {self.n_channels_} channel(s) like the "
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
        notes = []
        near_one = ratios_near_one(win["ratio"][~win["constant"]], who=self.name)
        if near_one:
            notes.append(near_one)
        if win["constant"].any():
            notes.append(
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
            warnings=tuple(notes),
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
                    "n_train_series": len(self.train_lengths_),
                    "train_length_range": [int(self.train_lengths_.min()),
                                           int(self.train_lengths_.max())],
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
