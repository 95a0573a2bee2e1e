"""``nn-ratio``: the nearest-neighbour ratio memorization probe (Bonnaire et al. 2025, Eq. 6).

A generated sample ``x`` is memorized when ``d1 / d2 < k``, where ``d1 <= d2`` are its L2
distances to the nearest and second-nearest *distinct* training samples (Yoon et al. 2023;
Gu et al. 2023). ``f_mem`` is the memorized fraction, with a seeded percentile-bootstrap CI.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pydantic

from probekit import FeatureExtractor, Probe, Result, hookimpl
from probekit.conditions import check_conditions, ratio_within_conditions
from probekit.duplicates import ratios_near_one
from probekit.errors import ValidationError
from probekit.features import extract_in_batches, resolve_extractor
from probekit.index import IndexSearchSettings, open_for_probe
from probekit.neighbors import NearestNeighborIndex, collapse_duplicates
from probekit.stats import bootstrap_ci
from probekit.validation import check_array, check_same_sample_shape


class NearestNeighborRatioSettings(IndexSearchSettings):  # MeasureSettings + index=...
    k: float = pydantic.Field(1 / 3, gt=0, lt=1, description="memorized when d1/d2 < k")
    features: str = pydantic.Field("pixels", description="registered feature extractor")
    n_bootstrap: int = pydantic.Field(1000, ge=100, le=10**7,
                                      description="bootstrap resamples for the CI")
    confidence: float = pydantic.Field(0.95, gt=0, lt=1, description="CI level")
    chunk_size: int = pydantic.Field(16384, gt=0, description="training rows searched at once")
    collapse_duplicates: bool = pydantic.Field(
        True, description="drop exact and near-duplicate training samples (probekit.duplicates)"
    )
    metric: Literal["euclidean", "dtw"] = pydantic.Field(
        "euclidean", description="distance; dtw (time series, pixels only, small sets) via tslearn"
    )
    scope: Literal["all", "prompt"] = pydantic.Field(
        "all", description="prompt: also d1/d2 among the training items of each sample's own "
        "prompt or class (f_mem_prompt; needs the conditions)"
    )


class NearestNeighborRatio(Probe):
    """Fraction of generated samples whose nearest training sample is much closer than the
    second nearest (``d1/d2 < k``)."""

    name = "nn-ratio"
    modality = "any"
    description = "fraction of samples with d1/d2 < k to the training set (Bonnaire et al. Eq. 6)"
    headline = "f_mem"
    headline_range = (0.0, 1.0)
    higher_is_better = False
    requires = ("train", "samples", "conditions")  # conditions: used by scope="prompt"
    Settings = NearestNeighborRatioSettings
    settings: NearestNeighborRatioSettings

    def __init__(self, settings=None, *, extractor: FeatureExtractor | None = None, **overrides):
        super().__init__(settings, **overrides)
        self.extractor = resolve_extractor(self.settings.features, extractor)

    def prepare(self, train: np.ndarray, *, holdout: np.ndarray | None = None,
                train_conditions=None):
        """Collapse duplicates and index the training set (done once per run)."""
        train = check_array(train, who=self.name, name="train", min_samples=2, dtype=None)
        self.train_conditions_ = self._check_scope(train_conditions, len(train), "train_conditions")
        if self.settings.index:  # a prebuilt index (probekit index build) replaces the set
            self.train_index_ = open_for_probe(self.settings, self.extractor, who=self.name,
                                               n_train=len(train), sample_shape=train.shape[1:])
            self.train_shape_, self.n_train_ = tuple(train.shape[1:]), len(train)
            self.train_kept_ = self.train_index_.kept_
            return self
        feats = extract_in_batches(self.extractor, train, self.settings.batch_size)
        kept = np.arange(len(train))
        if self.settings.collapse_duplicates:
            feats, kept = collapse_duplicates(feats, who=self.name)
        return self._index(feats, kept, train.shape[1:], len(train))

    def reference_state(self) -> dict[str, np.ndarray]:
        """Distinct training features and their original indices (cacheable)."""
        self._check_prepared("train_index_")
        if self.settings.index:
            return None  # the index on disk is the reference state
        return {
            "features": np.asarray(self.train_index_.reference_),
            "kept": self.train_kept_,
            "train_shape": np.asarray(self.train_shape_, dtype=np.int64),
            "n_train": np.asarray(self.n_train_),
            **({"train_conditions": np.asarray(self.train_conditions_)}
               if getattr(self, "train_conditions_", None) is not None else {}),
        }

    def load_reference_state(self, state: dict[str, np.ndarray]):
        if "train_conditions" in state:
            self.train_conditions_ = tuple(state["train_conditions"].tolist())
        return self._index(
            state["features"], state["kept"], tuple(int(v) for v in state["train_shape"]),
            int(state["n_train"]),
        )

    def _index(self, feats, kept, train_shape, n_train):
        if len(feats) < 2:
            raise ValidationError(
                f"{self.name}: train must hold at least 2 distinct samples; got {len(feats)} "
                f"distinct of {n_train}. Provide a larger training set."
            )
        self.train_shape_ = tuple(train_shape)
        self.n_train_ = n_train
        self.train_kept_ = kept
        self.train_index_ = NearestNeighborIndex(feats, chunk_size=self.settings.chunk_size)
        return self

    def _index_provenance(self) -> dict:
        """The index, its mode, measured recall and f_mem disagreement (``index`` setting)."""
        if not self.settings.index:
            return {}
        index = self.train_index_
        flips = index.decision_disagreement(
            lambda d: np.where(d[:, 1] > 0, d[:, 0] / np.where(d[:, 1] > 0, d[:, 1], 1.0), 1.0)
            < self.settings.k)
        return {**index.provenance(), **({} if flips is None else {
            "index_f_mem_disagreement": flips})}

    def _dtw_search(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Two nearest distinct training series under DTW (``metric="dtw"``)."""
        from probekit.timeseries import dtw_knn

        if self.settings.features != "pixels" or len(self.train_shape_) != 2:
            raise ValidationError(
                f"{self.name}: metric='dtw' compares raw time series (n_samples, n_timesteps, "
                f"n_channels) with features='pixels'; got features={self.settings.features!r} "
                f"and per-sample shape {self.train_shape_}."
            )
        train = np.asarray(self.train_index_.reference_).reshape(-1, *self.train_shape_)
        return dtw_knn(samples, train, 2, batch_size=self.settings.batch_size, who=self.name)

    def _check_scope(self, conditions, n: int, name: str):
        """Conditions validated when ``scope="prompt"`` needs them (ignored otherwise)."""
        if self.settings.scope == "all":
            return None
        if conditions is None or self.settings.index or self.settings.metric == "dtw":
            raise ValidationError(
                f"{self.name}: scope='prompt' needs {name} (one caption or label per item), "
                f"exact euclidean search and no prebuilt index; got {name}="
                f"{'None' if conditions is None else 'given'}, index={self.settings.index!r}, "
                f"metric={self.settings.metric!r}."
            )
        return check_conditions(conditions, n, who=self.name, name=name)

    def evaluate(self, samples: np.ndarray | None = None, *, model=None,
                 conditions=None) -> Result:
        """``f_mem`` of ``samples`` with per-sample ``d1``, ``d2``, ``ratio``, ``nn_index``
        (and the ``*_prompt`` fields of ``scope="prompt"``)."""
        self._check_prepared("train_index_")
        s = self.settings
        samples = check_array(samples, who=self.name, name="samples", dtype=None)
        conditions = self._check_scope(conditions, len(samples), "conditions")
        check_same_sample_shape(
            samples.shape[1:], self.train_shape_, who=self.name, a_name="samples", b_name="train"
        )
        feats = extract_in_batches(self.extractor, samples, s.batch_size)
        if s.metric == "dtw":
            dist, idx = self._dtw_search(samples)
        else:
            dist, idx = self.train_index_.search(feats, 2, batch_size=s.batch_size)
        d1, d2 = dist[:, 0], dist[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 1.0)
        memorized = ratio < s.k
        near_one = ratios_near_one(ratio, who=self.name)
        f_mem = float(memorized.mean())
        ci = bootstrap_ci(
            memorized, n_resamples=s.n_bootstrap, confidence=s.confidence, seed=s.seed
        )
        scoped = ({}, {}, {}, ()) if conditions is None else ratio_within_conditions(
            np.asarray(self.train_index_.reference_),
            [self.train_conditions_[i] for i in self.train_kept_], feats, conditions, k=s.k,
            n_bootstrap=s.n_bootstrap, confidence=s.confidence, seed=s.seed,
            chunk_size=s.chunk_size, batch_size=s.batch_size)
        return Result(
            measure=self.name,
            headline="f_mem",
            values={
                "f_mem": f_mem,
                "n_memorized": float(memorized.sum()),
                "median_ratio": float(np.median(ratio)),
                "mean_d1": float(d1.mean()),
                **scoped[0],
            },
            ci={"f_mem": ci, **scoped[1]},
            per_sample={
                "d1": d1,
                "d2": d2,
                "ratio": ratio,
                "nn_index": self.train_kept_[idx[:, 0]],
                "memorized": memorized,
                **scoped[2],
            },
            warnings=tuple(w for w in (near_one, s.index and self.train_index_.recall_warning(),
                                       *scoped[3]) if w),
            provenance=self.make_provenance(
                feature_space=self.extractor.name,
                feature_weights_sha256=self.extractor.weights_sha256,
                preprocessing=self.extractor.preprocessing,
                n_reference=self.train_index_.n_reference,
                n_samples=len(samples),
                extra={
                    "n_train_given": self.n_train_,
                    "n_duplicates_collapsed": self.n_train_ - self.train_index_.n_reference,
                    "n_exact_fallbacks": self.train_index_.n_fallbacks_,
                    **self._index_provenance(),
                },
            ),
        )


@hookimpl
def register_probes():
    return [NearestNeighborRatio]
