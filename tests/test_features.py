"""Feature spaces: measures of one checkpoint that use the same extractor share one extraction
(and give exactly the numbers they give alone); the feature-space base records the space used."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from probekit import FeatureExtractor, Settings, get_metric, hookimpl, register_plugin
from probekit.features import (
    FeatureMetric,
    extract_in_batches,
    feature_space_key,
    shared_features,
)
from probekit.tasks import CheckpointTask, EvaluationContext, evaluate_checkpoint_task
from probekit.types import Checkpoint


class CountingSettings(Settings):
    scale: float = pydantic.Field(1.0, description="features = scale * flattened input")
    batch_size: int = pydantic.Field(7, gt=0, description="does not change the features")


class CountingFeatures(FeatureExtractor):
    """Flattened pixels times ``scale``, counting the samples it was asked for."""

    name = "counting"
    Settings = CountingSettings
    seen = 0

    def extract(self, x):
        type(self).seen += len(x)
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1) * self.settings.scale


class CountingPlugin:
    @hookimpl
    def register_feature_extractors(self):
        return [CountingFeatures]


@pytest.fixture
def counting(fresh_host):
    register_plugin(CountingPlugin(), name="counting-plugin")
    CountingFeatures.seen = 0
    return CountingFeatures


class Handle:
    def __init__(self, samples):
        self.samples = samples

    def generate(self, n, seed):
        return self.samples[:n]


def _data():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(60, 1, 3, 3)).astype(np.float32)
    samples = rng.normal(0.3, 1.0, size=(40, 1, 3, 3)).astype(np.float32)
    return reference, samples


def _metrics(**feature_settings):
    options = {"features": "counting", "feature_settings": feature_settings}
    return [get_metric("fd")(options), get_metric("kid")({**options, "n_subsets": 5}),
            get_metric("prdc")(options)]


def test_one_extraction_per_checkpoint_and_the_same_numbers_as_alone(counting):
    from probekit import ModelHandle

    reference, samples = _data()
    alone = []
    for metric in _metrics():
        metric.prepare(reference)
        counting.seen = 0
        alone.append(metric.evaluate(samples))
        assert counting.seen == len(samples)  # each alone: a full pass
    shared = _metrics()
    with shared_features() as sharing:
        for metric in shared:
            metric.prepare(reference)
    assert (sharing.extracted, sharing.reused) == (1, 2)  # the reference, once

    class H(Handle, ModelHandle):
        pass

    context = EvaluationContext({m.name: m for m in shared}, None, "image", (1, 3, 3))
    task = CheckpointTask(Checkpoint(10, "x"), tuple(m.name for m in shared), 40, 0, 0)
    counting.seen = 0
    outcome = evaluate_checkpoint_task(task, context, handle=H(samples))
    assert counting.seen == len(samples)  # three metrics, one pass over the samples
    assert outcome.seconds["features"] >= 0
    for a, b in zip(alone, outcome.results, strict=True):
        assert a.values == b.values and a.ci == b.ci


def test_a_different_space_or_array_is_not_shared(counting):
    _reference, samples = _data()
    a = CountingFeatures({"scale": 1.0})
    b = CountingFeatures({"scale": 2.0})
    c = CountingFeatures({"scale": 1.0, "batch_size": 3})  # same space: batch size aside
    assert feature_space_key(a) != feature_space_key(b)
    assert feature_space_key(a) == feature_space_key(c)
    with shared_features() as sharing:
        fa = extract_in_batches(a, samples, 5)
        fb = extract_in_batches(b, samples, 5)
        fc = extract_in_batches(c, samples.copy(), 5)  # equal values, another array: shared
        fd = extract_in_batches(a, samples + 1, 5)  # other values: extracted
    assert (sharing.extracted, sharing.reused) == (3, 1)
    np.testing.assert_array_equal(fa, fc)
    np.testing.assert_array_equal(fb, 2 * fa)
    assert not np.array_equal(fd, fa)


def test_a_measure_changing_its_features_cannot_change_another(counting):
    _, samples = _data()
    ex = CountingFeatures()
    with shared_features():
        first = extract_in_batches(ex, samples, 8)
        first[:] = 0
        second = extract_in_batches(ex, samples, 8)
    assert np.abs(second).sum() > 0


def test_without_a_block_nothing_is_kept(counting):
    _, samples = _data()
    ex = CountingFeatures()
    extract_in_batches(ex, samples, 8)
    extract_in_batches(ex, samples, 8)
    assert counting.seen == 2 * len(samples)


def test_the_feature_metric_base_records_the_space_it_used(counting):
    reference, samples = _data()
    result = get_metric("fd")({"features": "counting", "feature_settings": '{"scale": 2}'}) \
        .prepare(reference).evaluate(samples)
    prov = result.provenance
    assert prov.feature_space == "counting" and prov.preprocessing == "none"
    assert prov.settings["feature_settings"] == {"scale": 2}
    assert issubclass(get_metric("kid"), FeatureMetric)
