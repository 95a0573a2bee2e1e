"""``discriminative-score``: how well a classifier tells generated series from real ones
(the "discriminative score" of TimeGAN, Yoon, Jarrett & van der Schaar 2019).

Real (reference) and generated series are balanced to the same count by a seeded subsample of
the larger set, split into a training and a held-out test part (stratified, seeded), and a
classifier is trained on the training part. The score is ``|accuracy - 0.5|`` on the held-out
part: 0 when the classifier is at chance (generated series indistinguishable), 0.5 when it
separates them perfectly. TimeGAN uses a post-hoc GRU; here the classifier is a ridge classifier
(cross-validated penalty) on standardized ``ts-rocket`` features, the ROCKET recipe (Dempster et
al. 2020): deterministic, fast on a CPU, and a strong time-series classifier.
"""

from __future__ import annotations

import numpy as np
import pydantic

from probekit import FeatureExtractor, Metric, Result, hookimpl
from probekit.errors import ValidationError
from probekit.features import extract_in_batches
from probekit.stats import bootstrap_ci
from probekit.timeseries import (
    FeatureSpaceSettings,
    apply_channel_scale,
    channel_scale,
    check_series,
    make_extractor,
)

#: Ridge penalties tried by leave-one-out cross-validation.
ALPHAS = np.logspace(-3, 3, 7)


class DiscriminativeScoreSettings(FeatureSpaceSettings):
    test_fraction: float = pydantic.Field(
        0.3, gt=0, lt=1, description="share of each class held out to measure the accuracy"
    )
    n_bootstrap: int = pydantic.Field(1000, ge=100, description="bootstrap resamples for the CI")
    confidence: float = pydantic.Field(0.95, gt=0, lt=1, description="CI level")


class DiscriminativeScore(Metric):
    """``|accuracy - 0.5|`` of a held-out real-vs-generated classifier (0: indistinguishable)."""

    name = "discriminative-score"
    modality = "timeseries"
    description = "|accuracy - 0.5| of a held-out classifier of real vs generated series"
    headline = "discriminative_score"
    headline_range = (0.0, 0.5)
    min_samples = 3  # a held-out split of each class
    higher_is_better = False
    role = "quality"
    requires = ("holdout", "samples")
    non_sample_arrays = ("test_correct",)  # one per item of the internal test split
    Settings = DiscriminativeScoreSettings
    settings: DiscriminativeScoreSettings

    def __init__(self, settings=None, *, extractor: FeatureExtractor | None = None, **overrides):
        super().__init__(settings, **overrides)
        self.extractor = make_extractor(self.settings, extractor)

    def _features(self, x: np.ndarray) -> np.ndarray:
        x = apply_channel_scale(x, self.scale_)
        return np.asarray(extract_in_batches(self.extractor, x, self.settings.batch_size),
                          dtype=np.float64)

    def prepare(self, reference: np.ndarray):
        """Features of the real series (once per run)."""
        reference = check_series(reference, who=self.name, name="reference", min_samples=4)
        self.scale_ = channel_scale(reference, self.settings.standardize)
        return self.load_reference_state({
            "features": self._features(reference),
            "series_shape": np.asarray(reference.shape[1:], dtype=np.int64),
            "scale_shift": self.scale_["shift"], "scale_scale": self.scale_["scale"],
        })

    def reference_state(self) -> dict[str, np.ndarray]:
        self._check_prepared("reference_features_")
        return {"features": self.reference_features_,
                "series_shape": np.asarray(self.series_shape_, dtype=np.int64),
                "scale_shift": self.scale_["shift"], "scale_scale": self.scale_["scale"]}

    def load_reference_state(self, state: dict[str, np.ndarray]):
        self.reference_features_ = np.asarray(state["features"], dtype=np.float64)
        self.scale_ = {"shift": np.asarray(state["scale_shift"], dtype=np.float64),
                       "scale": np.asarray(state["scale_scale"], dtype=np.float64)}
        self.series_shape_ = tuple(int(v) for v in state["series_shape"])
        self.reset()
        return self

    def reset(self) -> None:
        self._sample_features: list[np.ndarray] = []

    def update(self, samples: np.ndarray) -> None:
        self._check_prepared("reference_features_")
        samples = check_series(samples, who=self.name, name="samples")
        if samples.shape[1:] != self.series_shape_:
            raise ValidationError(
                f"{self.name}: samples must have (n_timesteps, n_channels) = "
                f"{self.series_shape_} like the reference; got {samples.shape[1:]}."
            )
        self._sample_features.append(self._features(samples))

    def compute(self) -> Result:
        self._check_prepared("reference_features_")
        s = self.settings
        real = self.reference_features_
        fake = (np.concatenate(self._sample_features) if self._sample_features
                else np.empty((0, real.shape[1])))
        n = min(len(real), len(fake))
        n_test = round(s.test_fraction * n)
        if n_test < 1 or n - n_test < 2:
            raise ValidationError(
                f"{self.name}: needs at least 2 training and 1 test series per class; got "
                f"{len(fake)} generated and {len(real)} real series with test_fraction="
                f"{s.test_fraction}. Provide more series."
            )
        correct = held_out_correct(real, fake, n, n_test, seed=s.seed)
        accuracy = float(correct.mean())

        def score(resampled: np.ndarray) -> np.ndarray:
            return np.abs(resampled.mean(axis=1) - 0.5)

        return Result(
            measure=self.name,
            headline="discriminative_score",
            values={
                "discriminative_score": abs(accuracy - 0.5),
                "accuracy": accuracy,
                "n_test": float(len(correct)),
            },
            ci={"discriminative_score": bootstrap_ci(
                correct, score, n_resamples=s.n_bootstrap, confidence=s.confidence, seed=s.seed
            )},
            per_sample={"test_correct": correct},
            provenance=self.make_provenance(
                feature_space=self.extractor.name,
                feature_weights_sha256=self.extractor.weights_sha256,
                preprocessing=self.extractor.preprocessing,
                n_reference=len(real),
                n_samples=len(fake),
                extra={"n_per_class": n, "n_test_per_class": n_test,
                       "classifier": "RidgeClassifierCV on standardized features",
                       "feature_settings": self.extractor.settings.model_dump()},
            ),
        )


def held_out_correct(
    real: np.ndarray, fake: np.ndarray, n: int, n_test: int, *, seed: int
) -> np.ndarray:
    """Whether each held-out series (``n_test`` real, then ``n_test`` generated) is classified
    correctly, after training on the other ``n - n_test`` of each class.

    Both classes are subsampled to ``n`` and split with one seeded generator; features are
    standardized with the training part's mean and std.
    """
    from sklearn.linear_model import RidgeClassifierCV

    rng = np.random.default_rng(seed)
    real = real[rng.permutation(len(real))[:n]]
    fake = fake[rng.permutation(len(fake))[:n]]
    x_train = np.concatenate([real[n_test:], fake[n_test:]])
    y_train = np.repeat([0, 1], n - n_test)
    x_test = np.concatenate([real[:n_test], fake[:n_test]])
    y_test = np.repeat([0, 1], n_test)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    model = RidgeClassifierCV(alphas=ALPHAS).fit((x_train - mean) / std, y_train)
    return model.predict((x_test - mean) / std) == y_test


@hookimpl
def register_metrics():
    return [DiscriminativeScore]
