"""``loss-gap``: the denoising-loss gap between held-out and training samples, a sampling-free
sign of memorization (Bonnaire et al. 2025, Sect. 2; Favero et al. 2025).

For each of ``m`` training and ``m`` held-out samples ``x`` (the same number of each) and
``n_draws`` Gaussian noise draws ``eps``, the per-sample loss is

    L(x) = mean over draws of  ||eps - eps_theta(sqrt(abar_t) x + sqrt(1 - abar_t) eps, t)||^2 / d

at the DDPM index ``t = 40`` (OU time 0.01 for the linear schedule), with ``d`` the number of
values per sample (the training MSE's scale). The gap is ``mean L(holdout) - mean L(train)``:
near zero while the model generalizes, positive once it fits its training samples better than
unseen ones. The CI is a seeded two-sample percentile bootstrap (train and held-out resampled
independently).
"""

from __future__ import annotations

import numpy as np
import pydantic

from probekit import MeasureSettings, ModelHandle, Probe, Result, hookimpl
from probekit.errors import ValidationError
from probekit.stats import bootstrap_ci
from probekit.validation import check_array, check_same_sample_shape, describe

#: Seed-stream labels of the two sets, so train and held-out noise never coincide.
_ROLE = {"train": 0, "holdout": 1}


class LossGapSettings(MeasureSettings):
    timestep: int = pydantic.Field(
        40, ge=0, description="DDPM index t of the loss (40: OU time 0.01 with linear betas)"
    )
    n_draws: int = pydantic.Field(5, ge=1, description="noise draws per sample")
    max_samples: int | None = pydantic.Field(
        None, ge=2, description="use at most this many train and as many holdout samples "
        "(None: as many as the smaller set)"
    )
    n_bootstrap: int = pydantic.Field(1000, ge=100, description="bootstrap resamples for CIs")
    confidence: float = pydantic.Field(0.95, gt=0, lt=1, description="CI level")


def draw_noise(shape: tuple[int, ...], *, seed: int, role: str, draw: int) -> np.ndarray:
    """The noise of one draw for one set, float64, independent of how samples are batched."""
    rng = np.random.default_rng([seed, _ROLE[role], draw])
    return rng.standard_normal(shape)


def two_sample_bootstrap_ci(
    a: np.ndarray, b: np.ndarray, *, n_resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile CI of ``mean(b) - mean(a)``, resampling ``a`` and ``b`` independently."""
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    block = max(1, 2**22 // max(len(a), len(b)))
    for s in range(0, n_resamples, block):
        e = min(s + block, n_resamples)
        ia = rng.integers(0, len(a), size=(e - s, len(a)))
        ib = rng.integers(0, len(b), size=(e - s, len(b)))
        stats[s:e] = b[ib].mean(axis=1) - a[ia].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)


class LossGap(Probe):
    """Held-out minus training denoising loss at a small diffusion time (needs the model)."""

    name = "loss-gap"
    modality = "any"
    description = "held-out minus training denoising loss at DDPM t=40 (sampling-free onset)"
    headline = "loss_gap"
    higher_is_better = False
    requires = ("train", "holdout", "model")
    Settings = LossGapSettings
    settings: LossGapSettings

    def prepare(self, train: np.ndarray, *, holdout: np.ndarray | None = None) -> LossGap:
        """Choose ``m`` training and ``m`` held-out samples (seeded when a subset is needed)."""
        train = check_array(train, who=self.name, name="train", min_samples=2)
        if holdout is None:
            raise ValidationError(
                f"{self.name}: holdout must be given; got None. The loss gap compares training "
                "samples with unseen ones: pass --holdout (same distribution, never trained on)."
            )
        holdout = check_array(holdout, who=self.name, name="holdout", min_samples=2)
        check_same_sample_shape(train.shape[1:], holdout.shape[1:], who=self.name,
                                a_name="train", b_name="holdout")
        m = min(len(train), len(holdout), self.settings.max_samples or len(train))
        rng = np.random.default_rng([self.settings.seed, 2])
        self.train_index_ = _subset(rng, len(train), m)
        self.holdout_index_ = _subset(rng, len(holdout), m)
        self.train_ = train[self.train_index_]
        self.holdout_ = holdout[self.holdout_index_]
        self.n_train_given_, self.n_holdout_given_ = len(train), len(holdout)
        return self

    def evaluate(self, samples: np.ndarray | None = None, *,
                 model: ModelHandle | None = None) -> Result:
        """Losses of the chosen samples under ``model`` (``samples`` are not used)."""
        self._check_prepared("train_")
        s = self.settings
        abar = self._alpha_bar(model)
        loss_train = self._losses(model, self.train_, "train", abar)
        loss_holdout = self._losses(model, self.holdout_, "holdout", abar)
        mean_train, mean_holdout = float(loss_train.mean()), float(loss_holdout.mean())
        gap = mean_holdout - mean_train
        boot = {"n_resamples": s.n_bootstrap, "confidence": s.confidence}
        ci = {
            "loss_gap": two_sample_bootstrap_ci(loss_train, loss_holdout, seed=s.seed, **boot),
            "loss_train": bootstrap_ci(loss_train, seed=s.seed + 1, **boot),
            "loss_holdout": bootstrap_ci(loss_holdout, seed=s.seed + 2, **boot),
        }
        return Result(
            measure=self.name,
            headline="loss_gap",
            values={
                "loss_gap": gap,
                "loss_train": mean_train,
                "loss_holdout": mean_holdout,
                "relative_gap": gap / mean_holdout if mean_holdout > 0 else float("nan"),
            },
            ci=ci,
            per_sample={
                "loss_train": loss_train,
                "loss_holdout": loss_holdout,
                "train_index": self.train_index_,
                "holdout_index": self.holdout_index_,
            },
            provenance=self.make_provenance(
                feature_space="none",
                n_reference=len(self.train_),
                n_samples=len(self.holdout_),
                extra={
                    "timestep": s.timestep,
                    "alpha_bar": abar,
                    "n_draws": s.n_draws,
                    "n_train_given": self.n_train_given_,
                    "n_holdout_given": self.n_holdout_given_,
                    "step": getattr(model, "step", None),
                },
            ),
        )

    def _alpha_bar(self, model: ModelHandle | None) -> float:
        if model is None:
            raise ValidationError(
                f"{self.name}: model must be given; got None. The loss gap needs white-box "
                "access: evaluate with an adapter that loads the network (ddpm, diffusers)."
            )
        if type(model).predict_noise is ModelHandle.predict_noise:
            raise ValidationError(
                f"{self.name}: model must predict noise; {type(model).__name__} cannot. Use an "
                "adapter that loads the network (ddpm, diffusers), or drop loss-gap."
            )
        schedule = getattr(model, "alphas_cumprod", None)
        if schedule is None:
            raise ValidationError(
                f"{self.name}: model.alphas_cumprod must be the noise schedule; got None. The "
                "adapter must expose its alpha_bar_t array."
            )
        schedule = np.asarray(schedule, dtype=np.float64)
        if not 0 <= self.settings.timestep < len(schedule):
            raise ValidationError(
                f"{self.name}: timestep must be in [0, {len(schedule) - 1}] (the model's schedule "
                f"has {len(schedule)} steps); got {self.settings.timestep}."
            )
        return float(schedule[self.settings.timestep])

    def _losses(self, model: ModelHandle, x0: np.ndarray, role: str, abar: float) -> np.ndarray:
        s = self.settings
        total = np.zeros(len(x0))
        x0 = x0.astype(np.float64)
        per_sample = x0[0].size
        for draw in range(s.n_draws):
            eps = draw_noise(x0.shape, seed=s.seed, role=role, draw=draw)
            x_t = np.sqrt(abar) * x0 + np.sqrt(1.0 - abar) * eps
            for start in range(0, len(x0), s.batch_size):
                stop = min(start + s.batch_size, len(x0))
                batch = x_t[start:stop].astype(np.float32)
                t = np.full(len(batch), s.timestep, dtype=np.int64)
                pred = np.asarray(model.predict_noise(batch, t), dtype=np.float64)
                if pred.shape != batch.shape:
                    raise ValidationError(
                        f"{self.name}: predict_noise must return the shape of x_t "
                        f"{batch.shape}; got {describe(pred)}. Check the adapter's layout."
                    )
                err = (eps[start:stop] - pred).reshape(len(batch), -1)
                total[start:stop] += np.einsum("ij,ij->i", err, err) / per_sample
        return total / s.n_draws


def _subset(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """All of ``range(n)`` when ``m == n``, else ``m`` seeded indices (ascending)."""
    if m >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=m, replace=False))


@hookimpl
def register_probes():
    return [LossGap]
