"""Membership inference: the shared part of the ``mia-*`` probes.

Members are training samples, non-members are held-out samples of the same distribution, in
equal numbers. Each attack maps a sample to a *membership score* (higher = more likely a member);
this module turns scores into the numbers the field reports: ROC AUC with a stratified bootstrap
CI, TPR at 1% and 0.1% FPR (flagged as unresolved when there are too few non-members to see that
FPR), and a balanced accuracy whose threshold is fitted on a calibration split disjoint from the
evaluation split. It also holds the few diffusion primitives the attacks share (noising, one
deterministic DDIM step), written against :class:`probekit.ModelHandle` so that any white-box
adapter works.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np
import pydantic
from scipy.stats import rankdata

from probekit.base import MeasureSettings, ModelHandle, Probe
from probekit.errors import ValidationError
from probekit.types import Result
from probekit.validation import check_array, check_same_sample_shape

#: FPR levels reported, with their field names.
FPR_LEVELS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_0_1pct_fpr": 0.001}


# -- scores to numbers ----------------------------------------------------------------------


def roc_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """Probability that a random member scores above a random non-member (ties count half),
    i.e. the Mann–Whitney U statistic normalised by ``n1 * n0``."""
    return float(_auc_rows(np.asarray(member_scores)[None], np.asarray(nonmember_scores)[None])[0])


def _auc_rows(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUC of each row pair (``pos`` (B, n1), ``neg`` (B, n0)) by average ranks."""
    n1, n0 = pos.shape[1], neg.shape[1]
    ranks = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    return (ranks[:, :n1].sum(axis=1) - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def tpr_at_fpr(member_scores: np.ndarray, nonmember_scores: np.ndarray, fpr: float) -> float:
    """Highest TPR over thresholds whose FPR is at most ``fpr`` (strict ``score > threshold``
    rule; a threshold above every non-member gives FPR 0)."""
    neg = np.sort(np.asarray(nonmember_scores))[::-1]
    pos = np.asarray(member_scores)
    allowed = int(np.floor(fpr * len(neg) + 1e-9))  # non-members that may score above
    threshold = neg[allowed] if allowed < len(neg) else -np.inf
    return float((pos > threshold).mean())


def auc_bootstrap_ci(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, *, n_resamples: int = 1000,
    confidence: float = 0.95, seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of the AUC, resampling members and non-members separately."""
    rng = np.random.default_rng(seed)
    pos, neg = np.asarray(member_scores), np.asarray(nonmember_scores)
    stats = np.empty(n_resamples)
    block = max(1, 2_000_000 // (len(pos) + len(neg)))
    for s in range(0, n_resamples, block):
        e = min(s + block, n_resamples)
        p = pos[rng.integers(0, len(pos), size=(e - s, len(pos)))]
        q = neg[rng.integers(0, len(neg), size=(e - s, len(neg)))]
        stats[s:e] = _auc_rows(p, q)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def calibrated_accuracy(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, *, calibration_fraction: float,
    seed: int,
) -> tuple[float, float]:
    """Balanced accuracy on an evaluation split of a threshold fitted on a disjoint calibration
    split. Returns ``(accuracy, threshold)``."""
    rng = np.random.default_rng(seed)
    splits = []
    for scores in (np.asarray(member_scores), np.asarray(nonmember_scores)):
        order = rng.permutation(len(scores))
        n_cal = round(calibration_fraction * len(scores))
        splits.append((scores[order[:n_cal]], scores[order[n_cal:]]))
    (pos_cal, pos_eval), (neg_cal, neg_eval) = splits
    candidates = np.unique(np.concatenate([pos_cal, neg_cal]))
    tpr = (pos_cal[None, :] > candidates[:, None]).mean(axis=1)
    tnr = (neg_cal[None, :] <= candidates[:, None]).mean(axis=1)
    threshold = float(candidates[np.argmax(tpr + tnr)])
    accuracy = 0.5 * ((pos_eval > threshold).mean() + (neg_eval <= threshold).mean())
    return float(accuracy), threshold


# -- diffusion primitives -------------------------------------------------------------------


def _abar(handle: ModelHandle, t: np.ndarray, ndim: int) -> np.ndarray:
    return handle.alphas_cumprod[np.asarray(t)].reshape(-1, *([1] * (ndim - 1)))


def add_noise(handle: ModelHandle, x0: np.ndarray, t: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` (Ho et al. 2020, Eq. 4)."""
    abar = _abar(handle, t, x0.ndim)
    return np.sqrt(abar) * x0 + np.sqrt(1.0 - abar) * eps


def ddim_step(handle: ModelHandle, x: np.ndarray, t_from: int, t_to: int) -> np.ndarray:
    """One deterministic DDIM step (η = 0; Song et al. 2021, Eq. 12) from ``t_from`` to
    ``t_to``, forward (inversion, ``t_to > t_from``) or backward. Index 0 is the first noisy
    step of the schedule."""
    n = len(x)
    eps = handle.predict_noise(x, np.full(n, t_from))
    a_from = handle.alphas_cumprod[t_from]
    a_to = handle.alphas_cumprod[t_to]
    x0_pred = (x - np.sqrt(1.0 - a_from) * eps) / np.sqrt(a_from)
    return np.sqrt(a_to) * x0_pred + np.sqrt(1.0 - a_to) * eps


# -- the probe base -------------------------------------------------------------------------


class MembershipSettings(MeasureSettings):
    """Settings shared by every membership-inference probe."""

    batch_size: int = pydantic.Field(256, gt=0, description="samples per model call")
    n_members: int | None = pydantic.Field(
        None, ge=2, description="members and non-members used (each); None: as many as both "
        "sets allow"
    )
    n_bootstrap: int = pydantic.Field(1000, ge=100, description="bootstrap resamples (AUC CI)")
    calibration_fraction: float = pydantic.Field(
        0.5, gt=0, lt=1, description="share of each set used only to fit the accuracy threshold"
    )


class MembershipInferenceProbe(Probe):
    """Base of the ``mia-*`` probes: pick members/non-members, score them, report.

    Subclasses set ``name``/``description`` and implement :meth:`membership_scores`.
    """

    modality = "any"
    headline = "auc"
    headline_range = (0.0, 1.0)
    higher_is_better = False  # a higher AUC means more leakage
    requires: ClassVar[tuple[str, ...]] = ("train", "holdout", "model")
    Settings = MembershipSettings
    settings: MembershipSettings

    def prepare(self, train: np.ndarray, *, holdout: np.ndarray | None = None):
        """Choose equal numbers of members (train) and non-members (holdout), seeded."""
        if holdout is None:
            raise ValidationError(
                f"{self.name}: holdout must be given (non-members of the same distribution as "
                "train); got None. Pass --holdout / holdout=..."
            )
        train = check_array(train, who=self.name, name="train", min_samples=2, dtype=None)
        holdout = check_array(holdout, who=self.name, name="holdout", min_samples=2, dtype=None)
        check_same_sample_shape(train.shape[1:], holdout.shape[1:], who=self.name,
                                a_name="train", b_name="holdout")
        n = min(len(train), len(holdout))
        if self.settings.n_members is not None:
            if self.settings.n_members > n:
                raise ValidationError(
                    f"{self.name}: n_members must be at most min(len(train), len(holdout)) = {n};"
                    f" got {self.settings.n_members}. Lower it or give more samples."
                )
            n = self.settings.n_members
        rng = np.random.default_rng(self.settings.seed)
        self.members_ = train[np.sort(rng.choice(len(train), n, replace=False))]
        self.nonmembers_ = holdout[np.sort(rng.choice(len(holdout), n, replace=False))]
        return self

    #: Gaussian noise draws per sample the attack needs (0: deterministic attack).
    n_noise_draws: ClassVar[int] = 0

    @abstractmethod
    def membership_scores(
        self, model: ModelHandle, x: np.ndarray, noise: np.ndarray
    ) -> np.ndarray:
        """One score per sample of the batch ``x``; higher means "more likely a member".

        ``noise`` has shape ``(n_draws, len(x), *x.shape[1:])``: drawn once per sample from the
        probe's seed, so scores do not depend on how samples are batched.
        """

    def _scores(self, model: ModelHandle, x: np.ndarray, stream: int) -> np.ndarray:
        rng = np.random.default_rng([self.settings.seed, stream])
        noise = rng.standard_normal((self._draws(), *x.shape)).astype(x.dtype, copy=False)
        step = self.settings.batch_size
        return np.concatenate([
            np.asarray(self.membership_scores(model, x[s : s + step], noise[:, s : s + step]),
                       dtype=np.float64)
            for s in range(0, len(x), step)
        ])

    def _draws(self) -> int:
        return type(self).n_noise_draws

    def evaluate(self, samples: np.ndarray | None = None, *, model: ModelHandle | None = None):
        """Score members and non-members with ``model`` and report AUC, TPR at low FPR."""
        self._check_prepared("members_")
        if model is None:
            raise ValidationError(
                f"{self.name}: model must be a white-box ModelHandle (predict_noise and "
                "alphas_cumprod); got None. Use an adapter that loads the network."
            )
        if getattr(model, "alphas_cumprod", None) is None:
            raise ValidationError(
                f"{self.name}: the model handle must expose alphas_cumprod; got None."
            )
        s = self.settings
        pos = self._scores(model, self.members_, stream=0)
        neg = self._scores(model, self.nonmembers_, stream=1)
        if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
            raise ValidationError(f"{self.name}: the model produced non-finite scores.")
        values = {"auc": roc_auc(pos, neg)}
        warnings = []
        for field, fpr in FPR_LEVELS.items():
            values[field] = tpr_at_fpr(pos, neg, fpr)
            needed = int(np.ceil(1.0 / fpr))
            resolved = len(neg) >= needed
            values[f"{field}_resolved"] = float(resolved)
            if not resolved:
                warnings.append(
                    f"{field} is unresolved: {len(neg)} non-members cannot resolve an FPR of "
                    f"{fpr:g} (needs at least {needed}); the value is the TPR at FPR 0."
                )
        values["accuracy"], values["threshold"] = calibrated_accuracy(
            pos, neg, calibration_fraction=s.calibration_fraction, seed=s.seed
        )
        values["n_members"] = float(len(pos))
        values["n_nonmembers"] = float(len(neg))
        return Result(
            measure=self.name,
            headline="auc",
            values=values,
            ci={"auc": auc_bootstrap_ci(pos, neg, n_resamples=s.n_bootstrap, seed=s.seed)},
            per_sample={
                "score": np.concatenate([pos, neg]),
                "is_member": np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)]),
            },
            warnings=tuple(warnings),
            provenance=self.make_provenance(
                n_reference=len(pos), n_samples=len(pos) + len(neg),
                extra={"step": getattr(model, "step", None)},
            ),
        )
