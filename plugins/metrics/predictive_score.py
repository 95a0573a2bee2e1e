"""``predictive-score``: train a next-step predictor on generated series, test it on real ones
("train on synthetic, test on real"; the predictive score of TimeGAN, Yoon et al. 2019).

The predictor is linear: ``x_t ≈ b + sum_k A_k x_{t-k}`` over the previous ``lags`` timesteps
of all channels, fitted by ridge least squares on every next-step pair of the generated series.
Its mean absolute error over every next-step pair of the real (reference) series is the score
(lower is better). The fit only needs the float64 sums ``X^T X`` and ``X^T y``, accumulated
batch by batch, so the score does not depend on batching. For scale, ``mae_real`` is the same
error for a predictor trained on real series (2-fold cross-fitting over the reference: each half
predicted by the predictor fitted on the other half), and ``mae_gap = mae - mae_real``.
TimeGAN uses a GRU predictor; a linear one is deterministic and cheap, and detects generated
series whose second-order (autocorrelation) structure differs from the real one.
"""

from __future__ import annotations

import math

import numpy as np
import pydantic

from probekit import MeasureSettings, Metric, Result, hookimpl
from probekit.errors import ValidationError
from probekit.stats import bootstrap_ci
from probekit.timeseries import check_series, lagged_design


class PredictiveScoreSettings(MeasureSettings):
    lags: int = pydantic.Field(8, ge=1, description="past timesteps the predictor sees")
    ridge: float = pydantic.Field(
        1e-6, ge=0, description="ridge penalty relative to the mean diagonal of X^T X"
    )
    n_bootstrap: int = pydantic.Field(1000, ge=100, description="bootstrap resamples for the CI")
    confidence: float = pydantic.Field(0.95, gt=0, lt=1, description="CI level")


class NormalEquations:
    """Float64 sums ``X^T X`` and ``X^T Y`` of a linear least-squares problem with intercept."""

    def __init__(self, n_inputs: int, n_outputs: int):
        self.gram = np.zeros((n_inputs + 1, n_inputs + 1))
        self.cross = np.zeros((n_inputs + 1, n_outputs))
        self.n = 0

    def update(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        X = np.concatenate([inputs, np.ones((len(inputs), 1))], axis=1)
        self.gram += X.T @ X
        self.cross += X.T @ targets
        self.n += len(X)

    def solve(self, ridge: float) -> np.ndarray:
        """Coefficients ``(n_inputs + 1, n_outputs)``, intercept last."""
        penalty = ridge * np.trace(self.gram) / len(self.gram)
        regularized = self.gram + penalty * np.eye(len(self.gram))
        return np.linalg.lstsq(regularized, self.cross, rcond=None)[0]


def series_mae(inputs: np.ndarray, targets: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Mean absolute next-step error of each series ``(n,)`` for ``inputs`` ``(n, m, d)``."""
    predicted = inputs @ coef[:-1] + coef[-1]
    return np.abs(predicted - targets).mean(axis=(1, 2))


class PredictiveScore(Metric):
    """MAE on real series of a next-step predictor trained on generated series."""

    name = "predictive-score"
    modality = "timeseries"
    description = "train a linear next-step predictor on generated series, MAE on real series"
    headline = "mae"
    headline_range = (0.0, math.inf)
    higher_is_better = False
    role = "quality"
    requires = ("holdout", "samples")
    Settings = PredictiveScoreSettings
    settings: PredictiveScoreSettings

    def prepare(self, reference: np.ndarray):
        """Next-step pairs of the real series and the real-on-real baseline (once per run)."""
        s = self.settings
        reference = check_series(reference, who=self.name, name="reference", min_samples=2)
        if reference.shape[1] <= s.lags:
            raise ValidationError(
                f"{self.name}: series must be longer than lags={s.lags}; got "
                f"{reference.shape[1]} timesteps. Lower lags."
            )
        self.series_shape_ = reference.shape[1:]
        self.reference_inputs_, self.reference_targets_ = lagged_design(reference, s.lags)
        halves = np.array_split(np.random.default_rng(s.seed).permutation(len(reference)), 2)
        baseline = np.empty(len(reference))
        for fit, test in (halves, halves[::-1]):
            eq = NormalEquations(self.reference_inputs_.shape[2], reference.shape[2])
            eq.update(self.reference_inputs_[fit].reshape(-1, self.reference_inputs_.shape[2]),
                      self.reference_targets_[fit].reshape(-1, reference.shape[2]))
            coef = eq.solve(s.ridge)
            baseline[test] = series_mae(self.reference_inputs_[test],
                                        self.reference_targets_[test], coef)
        self.baseline_mae_ = baseline
        self.reset()
        return self

    def reset(self) -> None:
        if hasattr(self, "series_shape_"):
            self._equations = NormalEquations(self.reference_inputs_.shape[2],
                                              self.series_shape_[1])
            self._n_series = 0

    def update(self, samples: np.ndarray) -> None:
        self._check_prepared("reference_inputs_")
        samples = check_series(samples, who=self.name, name="samples")
        if samples.shape[2] != self.series_shape_[1] or samples.shape[1] <= self.settings.lags:
            raise ValidationError(
                f"{self.name}: samples must have {self.series_shape_[1]} channel(s) and more "
                f"than lags={self.settings.lags} timesteps; got shape {samples.shape}."
            )
        inputs, targets = lagged_design(samples, self.settings.lags)
        self._equations.update(inputs.reshape(-1, inputs.shape[2]),
                               targets.reshape(-1, targets.shape[2]))
        self._n_series += len(samples)

    def compute(self) -> Result:
        self._check_prepared("reference_inputs_")
        s = self.settings
        eq = self._equations
        if eq.n <= eq.gram.shape[0]:
            raise ValidationError(
                f"{self.name}: the generated series give {eq.n} next-step pairs for "
                f"{eq.gram.shape[0]} coefficients; provide more or longer series."
            )
        mae = series_mae(self.reference_inputs_, self.reference_targets_, eq.solve(s.ridge))
        ci_kw = {"n_resamples": s.n_bootstrap, "confidence": s.confidence, "seed": s.seed}
        return Result(
            measure=self.name,
            headline="mae",
            values={
                "mae": float(mae.mean()),
                "mae_real": float(self.baseline_mae_.mean()),
                "mae_gap": float(mae.mean() - self.baseline_mae_.mean()),
            },
            ci={"mae": bootstrap_ci(mae, **ci_kw),
                "mae_gap": bootstrap_ci(mae - self.baseline_mae_, **ci_kw)},
            per_sample={"reference_mae": mae},
            provenance=self.make_provenance(
                feature_space="pixels",
                preprocessing=f"next-step pairs with {s.lags} lags",
                n_reference=len(mae),
                n_samples=self._n_series,
                extra={"n_pairs_generated": eq.n, "predictor": "linear, ridge least squares"},
            ),
        )


@hookimpl
def register_metrics():
    return [PredictiveScore]
