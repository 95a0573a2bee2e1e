"""Reference-state cache: the key covers everything that changes the number; a hit restores
exactly what preparing again would give; bad entries are recomputed."""

from __future__ import annotations

import numpy as np
import pytest

from probekit import Metric, Probe, Result, get_probe
from probekit.cache import ReferenceCache, array_sha256, cache_key, reference_roles


class CountingProbe(Probe):
    """Stores the mean of the data it was prepared on; counts ``prepare`` calls."""

    name = "counting"
    headline = "m"
    requires = ("train", "holdout", "samples")
    calls = 0

    def prepare(self, train, *, holdout=None):
        type(self).calls += 1
        self.train_mean_ = float(np.mean(train))
        self.holdout_mean_ = float(np.mean(holdout))
        return self

    def reference_state(self):
        return {"means": np.array([self.train_mean_, self.holdout_mean_])}

    def load_reference_state(self, state):
        self.train_mean_, self.holdout_mean_ = map(float, state["means"])
        return self

    def evaluate(self, samples=None, *, model=None):
        return Result(self.name, "m", {"m": self.train_mean_ - self.holdout_mean_},
                      self.make_provenance())


class ReferenceMetric(Metric):
    """Remembers which array it was prepared on; offers no cacheable state."""

    name = "ref-metric"
    headline = "v"
    seen = None

    def prepare(self, reference):
        type(self).seen = reference
        return self

    def reset(self):
        pass

    def update(self, samples):
        pass

    def compute(self):
        return Result(self.name, "v", {"v": 0.0}, self.make_provenance())


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(40, 1, 4, 4)).astype(np.float32),
            rng.normal(size=(30, 1, 4, 4)).astype(np.float32))


def shas(train, holdout):
    return {"train": array_sha256(train), "holdout": array_sha256(holdout)}


def test_array_sha256_is_about_content_dtype_and_shape(data):
    train, _ = data
    assert array_sha256(train) == array_sha256(train.copy())
    assert array_sha256(train) == array_sha256(np.asfortranarray(train))
    assert array_sha256(train) == array_sha256(train, chunk_bytes=7)  # chunking does not matter
    assert array_sha256(train) != array_sha256(train.astype(np.float64))
    assert array_sha256(train) != array_sha256(train.reshape(40, 16))
    changed = train.copy()
    changed[39, 0, 3, 3] += 1e-6
    assert array_sha256(train) != array_sha256(changed)


def test_each_measure_is_prepared_once_per_key(tmp_path, data):
    train, holdout = data
    cache = ReferenceCache(tmp_path)
    CountingProbe.calls = 0
    first = cache.prepare(CountingProbe(), train=train, holdout=holdout,
                          reference_sha256=shas(train, holdout))
    second = cache.prepare(CountingProbe(), train=train, holdout=holdout,
                           reference_sha256=shas(train, holdout))
    assert (first.source, second.source, CountingProbe.calls) == ("computed", "cache", 1)
    assert first.key == second.key
    assert second.measure.evaluate().value == pytest.approx(train.mean() - holdout.mean())
    assert (tmp_path / "counting" / f"{first.key}.json").is_file()


def test_the_key_changes_with_everything_that_changes_the_number(data, monkeypatch):
    train, holdout = data
    probe = CountingProbe()
    base = cache_key(probe, shas(train, holdout))
    assert cache_key(CountingProbe(), shas(train.copy(), holdout.copy())) == base
    assert cache_key(CountingProbe(seed=1), shas(train, holdout)) != base
    assert cache_key(probe, shas(train[:-1], holdout)) != base
    assert cache_key(probe, shas(train, holdout[:-1])) != base
    monkeypatch.setattr(CountingProbe, "plugin_version", "9.9")
    assert cache_key(probe, shas(train, holdout)) != base
    monkeypatch.undo()
    monkeypatch.setattr(CountingProbe, "plugin", "another-plugin")
    assert cache_key(probe, shas(train, holdout)) != base


def test_nn_ratio_from_the_cache_gives_identical_results(tmp_path, data):
    train, holdout = data
    samples = np.concatenate([train[:10] + 0.01, holdout[:10]])
    cache = ReferenceCache(tmp_path)
    fresh = get_probe("nn-ratio")().prepare(train).evaluate(samples)
    outcomes = [cache.prepare(get_probe("nn-ratio")(), train=train, holdout=holdout,
                              reference_sha256=shas(train, holdout)) for _ in range(2)]
    assert [o.source for o in outcomes] == ["computed", "cache"]
    cached = outcomes[1].measure.evaluate(samples)
    assert cached.values == fresh.values and cached.ci == fresh.ci
    for name, values in fresh.per_sample.items():
        np.testing.assert_array_equal(cached.per_sample[name], values)
    # nn-ratio only needs train: another holdout hits the same entry
    other = cache.prepare(get_probe("nn-ratio")(), train=train, holdout=holdout[:5],
                          reference_sha256=shas(train, holdout[:5]))
    assert other.source == "cache"
    # a settings change (even one that leaves the index alone) is a new entry
    changed = cache.prepare(get_probe("nn-ratio")(k=0.5), train=train, holdout=holdout,
                            reference_sha256=shas(train, holdout))
    assert changed.source == "computed" and changed.key != outcomes[0].key


def test_a_corrupt_entry_is_recomputed(tmp_path, data):
    train, holdout = data
    cache = ReferenceCache(tmp_path)
    CountingProbe.calls = 0
    outcome = cache.prepare(CountingProbe(), train=train, holdout=holdout,
                            reference_sha256=shas(train, holdout))
    cache.path(outcome.measure, outcome.key).write_bytes(b"not a zip file")
    again = cache.prepare(CountingProbe(), train=train, holdout=holdout,
                          reference_sha256=shas(train, holdout))
    assert again.source == "computed" and CountingProbe.calls == 2
    np.load(cache.path(again.measure, again.key))  # rewritten, readable


def test_uncacheable_measures_and_roles(tmp_path, data):
    train, holdout = data
    cache = ReferenceCache(tmp_path)
    assert reference_roles(ReferenceMetric()) == ("holdout",)
    assert reference_roles(CountingProbe()) == ("train", "holdout")
    assert reference_roles(get_probe("nn-ratio")()) == ("train",)
    outcome = cache.prepare(ReferenceMetric(), train=train, holdout=holdout,
                            reference_sha256=shas(train, holdout))
    assert outcome.source == "uncached"
    assert ReferenceMetric.seen is holdout  # metrics compare against the held-out set
    disabled = ReferenceCache(None).prepare(CountingProbe(), train=train, holdout=holdout,
                                            reference_sha256={})
    assert disabled.source == "uncached" and disabled.key is None


def test_the_key_covers_the_feature_extractor_weights(data):
    train, holdout = data

    class Weights:
        def __init__(self, sha):
            self.weights_sha256 = sha

    probe = get_probe("nn-ratio")()
    probe.extractor = Weights("a" * 64)
    key_a = cache_key(probe, shas(train, holdout))
    probe.extractor = Weights("b" * 64)
    assert cache_key(probe, shas(train, holdout)) != key_a
