"""``prompt-copy``: per-prompt copy search in a copy-detection feature space (Somepalli et al.,
"Diffusion Art or Digital Forgery?", CVPR 2023; "Understanding and Mitigating Copying in
Diffusion Models", NeurIPS 2023).

For every generation its most similar training image is found by cosine similarity of
L2-normalized features (SSCD descriptors by default, as in both papers); the generation is a
*copy* when that similarity exceeds ``threshold`` (0.5 by default: the SSCD level above which
Somepalli et al. found visually evident copies — recalibrate it for any other feature space).
``f_copy`` is the fraction of copies overall; with the conditions (the prompt each generation
was drawn for) it is also reported per prompt, and the CI of the overall fraction resamples
whole prompts (generations of one prompt are not independent). The training items that were
copied most often are ranked: they are what a user deduplicates or removes.

With training conditions, each generation is also compared with the training images *of its own
prompt* (``own_similarity``): ``f_copy_own`` counts copies of the image the caption was
trained on, the planted memorization of a fine-tune. With a held-out set, ``holdout_f_copy`` is
the fraction of fresh real images that the threshold would call copies — the false-positive
rate of the threshold in this feature space.

Search: exact (``probekit.neighbors``: for unit vectors, the largest cosine is the smallest L2
distance, ``cos = 1 - d^2 / 2``), ties to the smallest training index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pydantic

from probekit import Probe, Result, hookimpl
from probekit.conditions import (
    Condition,
    check_conditions,
    cluster_bootstrap_ci,
    decode_conditions,
    encode_conditions,
    group_by_condition,
    grouped_neighbors,
)
from probekit.errors import ValidationError
from probekit.features import FeatureMeasure, FeatureSettings
from probekit.neighbors import NearestNeighborIndex
from probekit.stats import bootstrap_ci
from probekit.validation import check_array


class PromptCopySettings(FeatureSettings):
    features: str = pydantic.Field(
        "sscd", description="registered feature extractor (sscd: the copy-detection descriptor)"
    )
    threshold: float = pydantic.Field(
        0.5, ge=-1.0, le=1.0, description="a generation is a copy when its largest cosine "
        "similarity to a training image exceeds this (0.5 is calibrated for sscd)"
    )
    n_bootstrap: int = pydantic.Field(1000, ge=100, description="bootstrap resamples for CIs")
    confidence: float = pydantic.Field(0.95, gt=0, lt=1, description="CI level")
    chunk_size: int = pydantic.Field(16384, gt=0, description="training rows searched at once")
    n_top_items: int = pydantic.Field(
        20, ge=1, description="most-copied training items listed (top_items)"
    )


def unit_rows(feats: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return feats / np.where(norms > 0, norms, 1.0)


def cosine_from_distance(d: np.ndarray) -> np.ndarray:
    """Cosine similarity of unit vectors from their L2 distance."""
    return 1.0 - 0.5 * d**2


class PromptCopy(FeatureMeasure, Probe):
    """Fraction of generations whose most similar training image (cosine, copy-detection
    features) exceeds a threshold; per prompt, with the most-copied training items."""

    name = "prompt-copy"
    modality = "image"
    description = ("fraction of generations above a copy-similarity threshold to a training "
                   "image, per prompt (Somepalli et al. 2023)")
    headline = "f_copy"
    higher_is_better = False
    headline_range = (0.0, 1.0)
    requires = ("train", "samples", "conditions")
    non_sample_arrays = ("top_items", "top_item_counts")
    Settings = PromptCopySettings
    settings: PromptCopySettings

    def prepare(self, train: np.ndarray, *, holdout: np.ndarray | None = None,
                train_conditions: Sequence[Condition] | None = None) -> PromptCopy:
        """Index the normalized training features; score the held-out set once (when given)."""
        train = check_array(train, who=self.name, name="train", modality="image")
        conds = None
        if train_conditions is not None:
            conds = check_conditions(train_conditions, len(train), who=self.name,
                                     name="train_conditions")
        feats = unit_rows(self.features_of(train, "train"))
        holdout_sim = np.empty(0)
        if holdout is not None:
            holdout = check_array(holdout, who=self.name, name="holdout", modality="image")
            index = NearestNeighborIndex(feats, chunk_size=self.settings.chunk_size)
            d, _ = index.search(unit_rows(self.features_of(holdout, "holdout")), 1,
                                batch_size=self.settings.batch_size)
            holdout_sim = cosine_from_distance(d[:, 0])
        return self._set_reference(feats, conds, holdout_sim, train.shape[1:])

    def _set_reference(self, feats, conds, holdout_sim, train_shape) -> PromptCopy:
        self.train_index_ = NearestNeighborIndex(feats, chunk_size=self.settings.chunk_size)
        self.train_features_ = feats
        self.train_conditions_ = conds
        self.holdout_similarity_ = np.asarray(holdout_sim, dtype=np.float64)
        self.train_shape_ = tuple(int(v) for v in train_shape)
        return self

    def reference_state(self) -> dict[str, np.ndarray]:
        """Normalized training features, their conditions and the held-out similarities."""
        self._check_prepared("train_index_")
        state = {
            "features": self.train_features_,
            "holdout_similarity": self.holdout_similarity_,
            "train_shape": np.asarray(self.train_shape_, dtype=np.int64),
        }
        if self.train_conditions_ is not None:
            state["train_conditions"] = encode_conditions(self.train_conditions_)
        return state

    def load_reference_state(self, state: dict[str, np.ndarray]) -> PromptCopy:
        conds = decode_conditions(state["train_conditions"]) if "train_conditions" in state \
            else None
        return self._set_reference(np.asarray(state["features"], dtype=np.float64), conds,
                                   state["holdout_similarity"], state["train_shape"])

    def evaluate(self, samples: np.ndarray | None = None, *, model=None,
                 conditions: Sequence[Condition] | None = None) -> Result:
        """``f_copy`` of ``samples``; per-sample ``similarity``, ``nn_index``, ``copied`` (and
        ``condition``, ``own_similarity``, ``copied_own`` when the conditions are known)."""
        self._check_prepared("train_index_")
        s = self.settings
        samples = check_array(samples, who=self.name, name="samples", modality="image")
        if samples.shape[1:] != self.train_shape_ and self.extractor.name == "pixels":
            raise ValidationError(
                f"{self.name}: samples must have the training images' shape {self.train_shape_} "
                f"in pixel space; got {samples.shape[1:]}. Generate at the training resolution."
            )
        conds = None if conditions is None else check_conditions(
            conditions, len(samples), who=self.name)
        feats = unit_rows(self.features_of(samples, "samples"))
        self.check_feature_dim(self.train_features_.shape[1], feats)
        d, idx = self.train_index_.search(feats, 1, batch_size=s.batch_size)
        similarity = cosine_from_distance(d[:, 0])
        nn_index = idx[:, 0]
        copied = similarity > s.threshold
        values = {
            "f_copy": float(copied.mean()),
            "n_copies": float(copied.sum()),
            "mean_similarity": float(similarity.mean()),
            "median_similarity": float(np.median(similarity)),
        }
        if conds is None:
            ci = bootstrap_ci(copied, n_resamples=s.n_bootstrap, confidence=s.confidence,
                              seed=s.seed)
        else:
            ci = cluster_bootstrap_ci(conds, copied, n_bootstrap=s.n_bootstrap,
                                      confidence=s.confidence, seed=s.seed)
        cis = {"f_copy": ci}
        per_sample: dict[str, np.ndarray] = {
            "similarity": similarity, "nn_index": nn_index, "copied": copied,
        }
        if conds is not None:
            per_prompt = np.array([copied[g].mean() for g in group_by_condition(conds).values()])
            values.update(
                n_prompts=float(len(per_prompt)),
                n_prompts_with_copy=float((per_prompt > 0).sum()),
                max_prompt_f_copy=float(per_prompt.max()),
            )
            per_sample["condition"] = encode_conditions(conds)
        if conds is not None and self.train_conditions_ is not None:
            own_d, _ = grouped_neighbors(self.train_features_, self.train_conditions_, feats,
                                         conds, 1, chunk_size=s.chunk_size,
                                         batch_size=s.batch_size)
            own = cosine_from_distance(own_d[:, 0])  # nan: the prompt is not a training caption
            seen = ~np.isnan(own)
            per_sample["own_similarity"] = own
            # 1/0: copies its own caption's training image or not; nan: not a training caption
            per_sample["copied_own"] = np.where(seen, (own > s.threshold).astype(float), np.nan)
            values["n_training_prompt_samples"] = float(seen.sum())
            if seen.any():
                own_copied = own[seen] > s.threshold
                values["f_copy_own"] = float(own_copied.mean())
                cis["f_copy_own"] = cluster_bootstrap_ci(
                    [c for c, k in zip(conds, seen, strict=True) if k], own_copied,
                    n_bootstrap=s.n_bootstrap, confidence=s.confidence, seed=s.seed)
        if len(self.holdout_similarity_):
            values["holdout_f_copy"] = float((self.holdout_similarity_ > s.threshold).mean())
        counts = np.bincount(nn_index[copied], minlength=len(self.train_features_))
        order = np.lexsort((np.arange(len(counts)), -counts))
        top = order[: s.n_top_items]
        top = top[counts[top] > 0]
        per_sample["top_items"] = top.astype(np.int64)
        per_sample["top_item_counts"] = counts[top].astype(np.int64)
        values["n_items_copied"] = float((counts > 0).sum())
        return Result(
            measure=self.name, headline="f_copy", values=values, ci=cis, per_sample=per_sample,
            provenance=self.provenance_for(
                len(self.train_features_), len(samples), threshold=s.threshold,
                similarity="cosine", n_holdout=len(self.holdout_similarity_),
                conditions_given=conds is not None,
            ),
        )


@hookimpl
def register_probes():
    return [PromptCopy]
