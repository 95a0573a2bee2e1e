"""The conformance suite passes on every built-in and catches each mistake a plugin author can
make: every check is proven by a deliberately broken plugin that fails it (and only a correct
toy plugin of the same shape passes)."""

from __future__ import annotations

import dataclasses
import unittest

import numpy as np
import pydantic
import pytest
from probekit_plugins.probes.nn_ratio import NearestNeighborRatio

from probekit import FeatureExtractor, MeasureSettings, Metric, Probe, Result
from probekit.features import extract_in_batches, resolve_extractor
from probekit.neighbors import NearestNeighborIndex
from probekit.registry import registries
from probekit.stats import bootstrap_ci
from probekit.testing import (
    MEASURE_CHECKS,
    ConformanceReport,
    ConformanceSkipped,
    check_all_registered,
    check_extractor,
    check_measure,
    conformance_data,
)
from probekit.validation import check_array

#: Measures whose defaults need local network weights and minutes of CPU; their conformance
#: runs on small inputs in their own module (fid: tests/plugins/test_fid.py::test_conformance).
OWN_CONFORMANCE_TEST = {"fid": "needs Inception weights; see tests/plugins/test_fid.py"}


def _builtin_measures():
    regs = registries()
    return [
        pytest.param(n, marks=pytest.mark.skip(reason=OWN_CONFORMANCE_TEST[n]))
        if n in OWN_CONFORMANCE_TEST else n
        for n in [*regs.probes.names(), *regs.metrics.names()]
    ]


#: Measures whose default feature space needs weights run in a weight-free space here (their
#: default is reported as skipped by check_all_registered where the weights are missing).
CONFORMANCE_SETTINGS = {"prompt-copy": {"features": "pixels"}}


@pytest.mark.parametrize("name", _builtin_measures())
def test_builtins_pass(name):
    check_measure(name, settings=CONFORMANCE_SETTINGS.get(name))


#: Extractors that only take one input shape get conformance data of that shape.
EXTRACTOR_DATA = {"mnist32-cnn": {"image_size": 32}}


@pytest.mark.parametrize("name", registries().feature_extractors.names())
def test_builtin_extractors_pass(name):
    # an extractor whose weights are not installed here raises ConformanceSkipped, which
    # pytest reports as skipped with the reason (inception without its weights file)
    kwargs = EXTRACTOR_DATA.get(name)
    check_extractor(name, data=conformance_data("image", **kwargs) if kwargs else None)


# -- a correct toy probe and metric, and broken variants of each -----------------------------


class ToySettings(MeasureSettings):
    radius: float = pydantic.Field(0.5, gt=0)
    features: str = "pixels"


class ToyCopy(Probe):
    """Fraction of samples within ``radius`` of a training sample, in a feature space."""

    name = "toy-copy"
    plugin = "test"
    headline = "f_copied"
    headline_range = (0.0, 1.0)
    Settings = ToySettings

    def __init__(self, settings=None, **overrides):
        super().__init__(settings, **overrides)
        self.extractor = resolve_extractor(self.settings.features)

    def prepare(self, train, *, holdout=None):
        train = check_array(train, who=self.name, name="train", dtype=None)
        feats = extract_in_batches(self.extractor, train, self.settings.batch_size)
        self.index_ = NearestNeighborIndex(feats)
        return self

    def evaluate(self, samples=None, *, model=None):
        self._check_prepared("index_")
        samples = check_array(samples, who=self.name, name="samples")
        feats = extract_in_batches(self.extractor, samples, self.settings.batch_size)
        d1 = self.index_.search(feats, 1, batch_size=self.settings.batch_size)[0][:, 0]
        copied = d1 < self.settings.radius
        return Result(
            measure=self.name, headline="f_copied", values={"f_copied": float(copied.mean())},
            ci={"f_copied": self.ci(copied)}, per_sample={"d1": d1, "copied": copied},
            provenance=self.provenance(len(samples)),
        )

    def ci(self, copied):
        return bootstrap_ci(copied, seed=self.settings.seed)

    def provenance(self, n_samples):
        ex = self.extractor
        return self.make_provenance(
            feature_space=ex.name, feature_weights_sha256=ex.weights_sha256,
            preprocessing=ex.preprocessing, n_reference=self.index_.n_reference,
            n_samples=n_samples,
        )


class ToyMeanGap(Metric):
    """Distance between the float64 means of the samples and of the reference."""

    name = "toy-mean-gap"
    plugin = "test"
    headline = "gap"
    headline_range = (0.0, float("inf"))
    role = "quality"

    def prepare(self, reference):
        reference = check_array(reference, who=self.name, name="reference")
        self.reference_mean_ = reference.reshape(len(reference), -1).mean(0)
        self.n_reference_ = len(reference)
        self.reset()
        return self

    def reset(self):
        self.sum_, self.n_ = 0.0, 0

    def update(self, samples):
        self._check_prepared("reference_mean_")
        samples = check_array(samples, who=self.name, name="samples")
        self.sum_ = self.sum_ + samples.reshape(len(samples), -1).sum(0)
        self.n_ += len(samples)

    def reference_state(self):
        return {"mean": self.reference_mean_, "n": np.asarray(self.n_reference_)}

    def load_reference_state(self, state):
        self.reference_mean_, self.n_reference_ = state["mean"], int(state["n"])
        self.reset()
        return self

    def compute(self):
        gap = float(np.linalg.norm(self.sum_ / self.n_ - self.reference_mean_))
        return Result(measure=self.name, headline="gap", values={"gap": gap},
                      provenance=self.make_provenance(n_reference=self.n_reference_,
                                                      n_samples=self.n_))


def _with_values(result, **values):
    return dataclasses.replace(result, values={**result.values, **values})


class WrongRange(ToyCopy):
    """Broken on purpose: declares a range its headline leaves."""

    headline_range = (0.0, 0.1)


class FixedSeed(ToyCopy):
    """Broken on purpose: the bootstrap always uses seed 0, whatever the setting."""

    def ci(self, copied):
        return bootstrap_ci(copied, seed=0)


class InvertedCI(ToyCopy):
    """Broken on purpose: returns (high, low)."""

    def ci(self, copied):
        low, high = super().ci(copied)
        return high, low


class CIMissesValue(ToyCopy):
    """Broken on purpose: the CI is shifted away from the value."""

    def ci(self, copied):
        low, high = super().ci(copied)
        return low + 0.5, high + 0.5


class ShortPerSample(ToyCopy):
    """Broken on purpose: drops the last sample's distance."""

    def evaluate(self, samples=None, *, model=None):
        result = super().evaluate(samples, model=model)
        per_sample = {**result.per_sample, "d1": result.per_sample["d1"][:-1]}
        return dataclasses.replace(result, per_sample=per_sample)


class RemembersFirstCall(ToyCopy):
    """Broken on purpose: caches the first result (state hidden between checkpoints)."""

    def evaluate(self, samples=None, *, model=None):
        if not hasattr(self, "first_"):
            self.first_ = super().evaluate(samples, model=model)
        return self.first_


class MutatesFloat64(ToyCopy):
    """Broken on purpose: centers the training set in place (check_array does not copy a
    float array of the requested dtype)."""

    def prepare(self, train, *, holdout=None):
        train = check_array(train, who=self.name, name="train", dtype=None)
        train -= 0.0 if train.dtype == np.float32 else 1.0  # only float64 input is changed
        return super().prepare(train, holdout=holdout)


class ImagesOnly(ToyCopy):
    """Broken on purpose: declares modality 'any' but only accepts images."""

    def prepare(self, train, *, holdout=None):
        check_array(train, who=self.name, name="train", modality="image")
        return super().prepare(train, holdout=holdout)


class ClaimsPixels(ToyCopy):
    """Broken on purpose: provenance says 'pixels' whatever space was used."""

    def provenance(self, n_samples):
        return dataclasses.replace(super().provenance(n_samples), feature_space="pixels",
                                   feature_weights_sha256=None, preprocessing="none")


class BadRole(ToyCopy):
    role = "copying"


class NoReset(ToyMeanGap):
    """Broken on purpose: ``reset`` only initialises; later checkpoints accumulate."""

    def reset(self):
        if not hasattr(self, "n_"):
            super().reset()


class HalfRestored(ToyMeanGap):
    """Broken on purpose: a cache hit (load_reference_state, no prepare) leaves the reference
    count unset."""

    def load_reference_state(self, state):
        self.reference_mean_ = state["mean"]
        self.reset()
        return self


class NoEvaluate(Probe):
    """Broken on purpose: forgot ``evaluate``."""

    name = "no-evaluate"
    plugin = "test"
    headline = "x"

    def prepare(self, train, *, holdout=None):
        return self


def test_the_correct_toys_pass():
    check_measure(ToyCopy)
    check_measure(ToyMeanGap)


@pytest.mark.parametrize(("cls", "check", "message"), [
    (WrongRange, "result", r"outside the declared headline_range \(0.0, 0.1\)"),
    (FixedSeed, "seed", "the `seed` setting is ignored"),
    (InvertedCI, "result", "is inverted"),
    (CIMissesValue, "result", "does not contain its value"),
    (ShortPerSample, "result", r"per-sample array 'd1' has shape \(95,\), but 96 samples"),
    (RemembersFirstCall, "hidden-state", "evaluate.a. after evaluate.b. differs"),
    (MutatesFloat64, "no-mutation", "changed its float64 train input"),
    (ImagesOnly, "timeseries", "must run on time series"),
    (ClaimsPixels, "feature-space", "provenance.feature_space is 'pixels'"),
    (BadRole, "metadata", "role must be one of"),
    (NoEvaluate, "metadata", r"must define the abstract method\(s\) evaluate"),
    (NoReset, "reset", "reset.. does not clear the sample state"),
    (HalfRestored, "reference-state", "evaluate after load_reference_state .* raised "
                                      "AttributeError"),
])
def test_each_check_catches_its_broken_plugin(cls, check, message):
    with pytest.raises(AssertionError, match=rf"^{check}: .*{message}"):
        check_measure(cls)


def test_no_reset_is_caught_by_hidden_state_too():
    with pytest.raises(AssertionError, match=r"^hidden-state: "):
        check_measure(NoReset, skip_checks={"reset": "proving hidden-state alone"})


def test_skip_checks_must_name_checks():
    from probekit.errors import ValidationError

    with pytest.raises(ValidationError, match="skip_checks must name checks"):
        check_measure(ToyCopy, skip_checks={"sed": "typo"})
    assert list(MEASURE_CHECKS)[:3] == ["metadata", "unknown-option", "not-prepared"]


# -- the original broken nn-ratio variants ----------------------------------------------------


class BatchDependent(NearestNeighborRatio):
    """Broken on purpose: only looks at the first batch of samples."""

    name = "batch-dependent"
    plugin = "test"

    def evaluate(self, samples=None, *, model=None, **given):
        return super().evaluate(samples[: self.settings.batch_size], model=model, **given)


class Unseeded(NearestNeighborRatio):
    """Broken on purpose: the bootstrap ignores the seed."""

    name = "unseeded"
    plugin = "test"
    _calls = 0

    def evaluate(self, samples=None, *, model=None, **given):
        Unseeded._calls += 1
        self.settings = self.settings.model_copy(update={"seed": Unseeded._calls})
        return super().evaluate(samples, model=model, **given)


class NoValidation(NearestNeighborRatio):
    """Broken on purpose: accepts NaN samples."""

    name = "no-validation"
    plugin = "test"

    def evaluate(self, samples=None, *, model=None, **given):
        return super().evaluate(np.nan_to_num(samples), model=model, **given)


class FreshEntropy(NearestNeighborRatio):
    """Broken on purpose: draws a subset from an unseeded generator (the draw does not change
    the result here, so only the seed check can see it)."""

    name = "fresh-entropy"
    plugin = "test"

    def evaluate(self, samples=None, *, model=None, **given):
        np.random.default_rng().permutation(3)
        return super().evaluate(samples, model=model, **given)


@pytest.mark.parametrize(("cls", "message"), [
    (BatchDependent, "batch_size 1024 vs 7"),
    (Unseeded, "same seed"),
    (NoValidation, "NaN in samples"),
    (FreshEntropy, "created without a seed"),
])
def test_broken_measures_fail(cls, message):
    with pytest.raises(AssertionError, match=message):
        check_measure(cls)


# -- check_extractor --------------------------------------------------------------------------


class Scaled(FeatureExtractor):
    name = "scaled"
    plugin = "test"
    preprocessing = "times-two"

    def extract(self, x):
        x = np.asarray(x, dtype=np.float64)
        return 2.0 * x.reshape(len(x), -1)


class BatchNormalized(Scaled):
    """Broken on purpose: centers each batch on its own mean."""

    def extract(self, x):
        feats = super().extract(x)
        return feats - feats.mean(axis=0)


class Noisy(Scaled):
    def extract(self, x):
        return super().extract(x) + np.random.default_rng().normal(size=1)


class Transposed(Scaled):
    def extract(self, x):
        return super().extract(x).T


class MutatingExtractor(Scaled):
    def extract(self, x):
        x = np.asarray(x, dtype=np.float64)
        x -= 1.0  # changes a float64 caller's array
        return x.reshape(len(x), -1)


class BadHash(Scaled):
    @property
    def weights_sha256(self):
        return "abc"


class NeedsWeights(Scaled):
    def __init__(self, settings=None, **overrides):
        from probekit.errors import MissingResourceError

        raise MissingResourceError("scaled: put scaled.pt in ~/.cache/scaled/")


def test_check_extractor_passes_a_correct_extractor():
    check_extractor(Scaled)


@pytest.mark.parametrize(("cls", "message"), [
    (BatchNormalized, "^batch: features depend on the batching"),
    (Noisy, "^determinism: a second instance gives other features"),
    (Transposed, r"^shape: extract must return \(n_samples, n_features\)"),
    (MutatingExtractor, "^no-mutation: extract changed its float64 input"),
    (BadHash, "^provenance: weights_sha256 must be None or 64 lowercase hex"),
])
def test_check_extractor_catches_broken_extractors(cls, message):
    with pytest.raises(AssertionError, match=message):
        check_extractor(cls)


def test_missing_weights_is_a_skip_with_the_reason():
    with pytest.raises(ConformanceSkipped, match=r"put scaled\.pt in"):
        check_extractor(NeedsWeights)
    assert issubclass(ConformanceSkipped, unittest.SkipTest)  # pytest reports it as skipped


# -- check_all_registered ---------------------------------------------------------------------


def test_check_all_registered_reports_passed_failed_and_skipped(fresh_host):
    import probekit

    class Plugin:
        @probekit.hookimpl
        def register_probes(self):
            return [ToyCopy, type("Broken", (ShortPerSample,), {"name": "toy-short"})]

        @probekit.hookimpl
        def register_feature_extractors(self):
            return [Scaled, type("NeedsW", (NeedsWeights,), {"name": "needs-weights"})]

    probekit.register_plugin(Plugin(), name="toys")
    report = check_all_registered(distribution="runtime")
    assert isinstance(report, ConformanceReport)
    assert set(report.passed) == {"toy-copy", "scaled"}
    assert list(report.failed) == ["toy-short"] and "per-sample array" in report.failed["toy-short"]
    assert "put scaled.pt in" in report.skipped["needs-weights"]
    with pytest.raises(AssertionError, match="FAILED toy-short: result: per-sample"):
        report.assert_ok()
    only = check_all_registered(distribution="runtime", skip={"toy-short": "known, issue 99"})
    only.assert_ok()
    assert only.skipped["toy-short"] == "known, issue 99"
    assert "SKIPPED needs-weights" in only.summary()


def test_conformance_data_layouts():
    assert conformance_data("image").train.shape == (96, 1, 8, 8)
    assert conformance_data("timeseries").samples.shape == (96, 48, 2)
    assert conformance_data("image").train_conditions is None
    data = conformance_data("image", conditional=True)
    assert len(data.train_conditions) == len(data.holdout_conditions) == 96
    seen = set(data.train_conditions)
    assert data.sample_conditions[:24] == data.train_conditions[:24]  # copies keep the caption
    assert not seen & set(data.sample_conditions[24:])                 # fresh: unseen prompts
    assert seen & set(data.holdout_conditions) and set(data.holdout_conditions) - seen
