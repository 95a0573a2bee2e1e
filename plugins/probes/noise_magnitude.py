"""``noise-magnitude``: the training-data-free memorization detector of Wen et al. ("Detecting,
Explaining, and Mitigating Memorization in Diffusion Models", ICLR 2024).

A memorized prompt steers the denoiser hard towards one image, so its *text-conditional noise
prediction* is large: the score of a generation is

    d = mean over the first n_steps sampling steps t of ||eps(x_t, c) - eps(x_t, null)||_2

along the guided sampling trajectory from the generation's own initial noise (``null`` is the
empty prompt, the unconditional branch of classifier-free guidance; the norm is over the whole
latent), and the score of a prompt is the mean over its generations. It needs no training
images and only ``2 * n_steps`` network calls per generation — Wen et al. found the first step
alone already separates memorized from unseen prompts.

A prompt counts as *training* when it is one of the training captions (``train_conditions``).
The probe reports how well the score separates training prompts from the unseen prompts that
were evaluated with them: ROC AUC (with a stratified bootstrap CI) and ``f_flagged``, the
fraction of training prompts flagged as memorized — scoring above the threshold that keeps the
false-positive rate on the unseen prompts at ``fpr`` (the TPR at 1% FPR by default), or above a
fixed ``threshold`` when one is set. Early in a fine-tune ``f_flagged`` stays near ``fpr``;
once the training captions are memorized it rises towards 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pydantic

from probekit import MeasureSettings, Probe, Result, hookimpl
from probekit.conditions import (
    Condition,
    ConditionalModelHandle,
    check_conditions,
    encode_conditions,
    group_by_condition,
)
from probekit.errors import ValidationError
from probekit.membership import auc_bootstrap_ci, roc_auc, tpr_at_fpr
from probekit.validation import check_array, describe


class NoiseMagnitudeSettings(MeasureSettings):
    n_steps: int = pydantic.Field(
        5, ge=1, description="first sampling steps the noise magnitude is averaged over"
    )
    fpr: float = pydantic.Field(
        0.01, gt=0, lt=1, description="false-positive rate on unseen prompts that sets the "
        "threshold (when threshold is None)"
    )
    threshold: float | None = pydantic.Field(
        None, ge=0, description="fixed score threshold (None: calibrated on unseen prompts)"
    )
    n_bootstrap: int = pydantic.Field(1000, ge=100, description="bootstrap resamples for CIs")
    confidence: float = pydantic.Field(0.95, gt=0, lt=1, description="CI level")


def flagged_fraction(seen: np.ndarray, unseen: np.ndarray, fpr: float,
                     threshold: float | None) -> float:
    """Fraction of training-prompt scores above the fixed ``threshold``, or the TPR at ``fpr``
    against the unseen-prompt scores (strict ``>``)."""
    if threshold is not None:
        return float((seen > threshold).mean())
    return tpr_at_fpr(seen, unseen, fpr)


class NoiseMagnitude(Probe):
    """Text-conditional noise magnitude per prompt; how well it flags training captions."""

    name = "noise-magnitude"
    modality = "image"
    description = ("magnitude of the text-conditional noise prediction per prompt; flags "
                   "memorized training captions without training images (Wen et al. 2024)")
    headline = "f_flagged"
    higher_is_better = False
    headline_range = (0.0, 1.0)
    requires = ("train", "model", "conditions")
    #: Cannot run without the training captions and the prompt of every generation.
    needs_conditions = True
    Settings = NoiseMagnitudeSettings
    settings: NoiseMagnitudeSettings

    def prepare(self, train: np.ndarray, *, holdout: np.ndarray | None = None,
                train_conditions: Sequence[Condition] | None = None) -> NoiseMagnitude:
        """Remember which prompts are training captions (the images are not needed)."""
        train = check_array(train, who=self.name, name="train")
        if train_conditions is None:
            raise ValidationError(
                f"{self.name}: train_conditions must give the training captions (one per "
                "training image); got None. Give a training set with captions (metadata.jsonl "
                "or an .npz with captions)."
            )
        conds = check_conditions(train_conditions, len(train), who=self.name,
                                 name="train_conditions")
        self.training_prompts_ = frozenset(conds)
        self.n_train_ = len(train)
        return self

    def evaluate(self, samples: np.ndarray | None = None, *,
                 model: ConditionalModelHandle | None = None,
                 conditions: Sequence[Condition] | None = None) -> Result:
        """Scores of the prompts in ``conditions`` (one per generation) at ``model``'s
        checkpoint; ``f_flagged``, ``auc`` and per-generation ``score``."""
        self._check_prepared("training_prompts_")
        s = self.settings
        if not isinstance(model, ConditionalModelHandle):
            raise ValidationError(
                f"{self.name}: model must be a conditional white-box handle (from the "
                f"diffusers-text2image or diffusers-class-conditional adapter); got "
                f"{describe(model)}."
            )
        if conditions is None:
            raise ValidationError(
                f"{self.name}: conditions must list the prompt of every generation; got None. "
                "Sample training captions and unseen prompts (--prompts FILE)."
            )
        conds = check_conditions(conditions, None, who=self.name)
        norms = np.asarray(model.guidance_trace(s.seed, conds, s.n_steps), dtype=np.float64)
        if norms.shape != (len(conds), s.n_steps) or not np.isfinite(norms).all():
            raise ValidationError(
                f"{self.name}: the model's guidance_trace must return finite values of shape "
                f"({len(conds)}, {s.n_steps}); got {describe(norms)}."
            )
        score = norms.mean(axis=1)
        groups = group_by_condition(conds)
        prompts = list(groups)
        prompt_score = np.array([score[groups[p]].mean() for p in prompts])
        is_training = np.array([p in self.training_prompts_ for p in prompts])
        seen, unseen = prompt_score[is_training], prompt_score[~is_training]
        if not len(seen):
            raise ValidationError(
                f"{self.name}: conditions must include training captions; none of the "
                f"{len(prompts)} prompts is one. Add training captions to the prompts."
            )
        if s.threshold is None and not len(unseen):
            raise ValidationError(
                f"{self.name}: conditions must include unseen prompts to calibrate the "
                f"threshold; all {len(prompts)} prompts are training captions. Add prompts "
                "that are not in the training set, or set threshold=..."
            )
        values = {
            "f_flagged": flagged_fraction(seen, unseen, s.fpr, s.threshold),
            "mean_score_training": float(seen.mean()),
            "n_training_prompts": float(len(seen)),
            "n_unseen_prompts": float(len(unseen)),
        }
        ci = {"f_flagged": self._flagged_ci(seen, unseen)}
        warnings: tuple[str, ...] = ()
        if len(unseen):
            values["mean_score_unseen"] = float(unseen.mean())
            values["auc"] = roc_auc(seen, unseen)
            ci["auc"] = auc_bootstrap_ci(seen, unseen, n_resamples=s.n_bootstrap,
                                         confidence=s.confidence, seed=s.seed)
            if s.threshold is None:
                values["threshold"] = float(np.sort(unseen)[::-1][
                    min(int(np.floor(s.fpr * len(unseen) + 1e-9)), len(unseen) - 1)])
                if len(unseen) * s.fpr < 1:
                    warnings = (
                        f"{self.name}: {len(unseen)} unseen prompts cannot resolve a "
                        f"false-positive rate of {s.fpr}: the threshold is the highest unseen "
                        f"score (FPR 0); use at least {int(np.ceil(1 / s.fpr))} unseen prompts.",
                    )
        return Result(
            measure=self.name,
            headline="f_flagged",
            values=values,
            ci=ci,
            per_sample={
                "score": score,
                "step_norms": norms,
                "training_prompt": np.array([c in self.training_prompts_ for c in conds]),
                "condition": encode_conditions(conds),
            },
            warnings=warnings,
            provenance=self.make_provenance(
                feature_space="model",
                preprocessing="guided sampling trajectory; ||eps(x_t,c) - eps(x_t,null)||_2",
                n_reference=len(self.training_prompts_),
                n_samples=len(conds),
                extra={"n_train_images": self.n_train_, "step": getattr(model, "step", None),
                       "n_prompts": len(prompts)},
            ),
        )

    def _flagged_ci(self, seen: np.ndarray, unseen: np.ndarray) -> tuple[float, float]:
        """Percentile CI of ``f_flagged`` resampling training and unseen prompts separately."""
        s = self.settings
        rng = np.random.default_rng(s.seed)
        stats = np.empty(s.n_bootstrap)
        for b in range(s.n_bootstrap):
            a = seen[rng.integers(0, len(seen), len(seen))]
            u = unseen[rng.integers(0, len(unseen), len(unseen))] if len(unseen) else unseen
            stats[b] = flagged_fraction(a, u, s.fpr, s.threshold)
        alpha = (1 - s.confidence) / 2
        low, high = np.quantile(stats, [alpha, 1 - alpha])
        return float(low), float(high)


@hookimpl
def register_probes():
    return [NoiseMagnitude]
