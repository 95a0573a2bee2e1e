"""nn-ratio: planted ground truth on the bundled digits, the 1/3 boundary, duplicates, CI."""

from __future__ import annotations

import numpy as np
import pytest

from probekit import FeatureExtractor, get_dataset, get_probe, hookimpl, register_plugin
from probekit.errors import DataWarning, NotPreparedError, ValidationError
from probekit.testing import check_measure


@pytest.fixture(scope="module")
def digits():
    splits = get_dataset("digits")().load()
    return splits.train[:1000], splits.holdout


def nn_ratio(**settings):
    return get_probe("nn-ratio")(**settings)


def test_copies_with_small_noise_are_memorized(digits):
    train, _ = digits
    rng = np.random.default_rng(0)
    copies = train[:500] + rng.normal(0, 0.02, train[:500].shape).astype(np.float32)
    result = nn_ratio().prepare(train).evaluate(copies)
    assert result.value >= 0.95
    assert (result.per_sample["nn_index"] == np.arange(500)).mean() >= 0.95


def test_heldout_digits_are_not_memorized(digits):
    train, holdout = digits
    result = nn_ratio().prepare(train).evaluate(holdout)
    assert result.value <= 0.02
    low, high = result.ci["f_mem"]
    assert low <= result.value <= high


@pytest.mark.parametrize("offset", [0.0, 100.0])
def test_ratio_one_third_boundary(offset):
    """Samples built at d1/d2 = 1/3 ± 1e-9 fall on the right side (float64 inputs), even in
    1024 dimensions with a large common offset that defeats float32 arithmetic."""
    dim, length = 1024, 3.0
    rng = np.random.default_rng(0)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    a = np.zeros(dim)
    b = length * direction
    far = 50.0 * rng.normal(size=(30, dim))  # other training samples, far away
    train = np.vstack([a, b, far]) + offset
    eps = 1e-9
    ratios = np.array([1 / 3 - eps, 1 / 3 + eps, 0.2, 0.5])
    t = ratios * length / (1 + ratios)  # on the segment a-b: d1 = t, d2 = length - t
    samples = t[:, None] * direction[None, :] + offset
    result = nn_ratio().prepare(train).evaluate(samples)
    assert result.per_sample["memorized"].tolist() == [True, False, True, False]
    np.testing.assert_allclose(result.per_sample["ratio"], ratios, rtol=1e-6)


def test_duplicates_are_collapsed_so_copies_still_count():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 16))
    train[7] = train[3]
    copy = train[3:4] + 1e-6
    with pytest.warns(DataWarning, match="1 exact duplicate"):
        probe = nn_ratio().prepare(train)
    result = probe.evaluate(copy)
    assert result.value == 1.0
    assert result.per_sample["nn_index"].tolist() == [3]
    assert result.provenance.extra["n_duplicates_collapsed"] == 1
    # without collapsing, the copy has two training samples at the same distance: ratio 1
    uncollapsed = nn_ratio(collapse_duplicates=False).prepare(train).evaluate(copy)
    assert uncollapsed.value == 0.0


def test_bootstrap_ci_is_seeded(digits):
    train, holdout = digits
    rng = np.random.default_rng(3)
    mixed = np.concatenate([train[:30] + 0.01 * rng.normal(size=train[:30].shape), holdout])
    a = nn_ratio(seed=1).prepare(train).evaluate(mixed)
    b = nn_ratio(seed=1).prepare(train).evaluate(mixed)
    c = nn_ratio(seed=2).prepare(train).evaluate(mixed)
    assert a.ci == b.ci
    assert a.ci != c.ci
    low, high = a.ci["f_mem"]
    assert low < a.value < high


class FirstHalf(FeatureExtractor):
    """Test-only feature space: the first half of the flattened values."""

    name = "first-half"
    description = "test extractor"

    def extract(self, x):
        flat = x.reshape(len(x), -1)
        return flat[:, : flat.shape[1] // 2]


class _Plugin:
    @hookimpl
    def register_feature_extractors(self):
        return [FirstHalf]


def test_any_registered_feature_space(fresh_host):
    register_plugin(_Plugin(), name="first-half-plugin")
    rng = np.random.default_rng(0)
    train = rng.normal(size=(40, 2, 4))
    # differs only in the second half: identical to train[0] in the first-half space
    sample = train[:1].copy()
    sample[0, 1] += 5.0
    pixels = nn_ratio().prepare(train).evaluate(sample)
    half = nn_ratio(features="first-half").prepare(train).evaluate(sample)
    assert pixels.value == 0.0
    assert half.value == 1.0
    assert half.provenance.feature_space == "first-half"


def test_validation_errors():
    probe = nn_ratio()
    with pytest.raises(NotPreparedError, match="call prepare"):
        probe.evaluate(np.zeros((2, 4, 4)))
    with pytest.raises(ValidationError, match="at least 2 samples"):
        probe.prepare(np.zeros((1, 4, 4)))
    with pytest.raises(ValidationError, match="at least 2 distinct"), pytest.warns(DataWarning):
        probe.prepare(np.zeros((3, 4, 4)))
    probe.prepare(np.random.default_rng(0).normal(size=(5, 4, 4)))
    with pytest.raises(ValidationError, match="same per-sample shape"):
        probe.evaluate(np.zeros((2, 4, 5)))
    with pytest.raises(ValidationError, match="unknown option 'kk'"):
        nn_ratio(kk=0.5)
    with pytest.raises(ValidationError, match="'k'"):
        nn_ratio(k=1.5)


def test_reference_state_round_trip(digits):
    train, holdout = digits
    a = nn_ratio().prepare(train)
    b = nn_ratio().load_reference_state(a.reference_state())
    ra, rb = a.evaluate(holdout[:50]), b.evaluate(holdout[:50])
    assert ra.values == rb.values
    np.testing.assert_array_equal(ra.per_sample["nn_index"], rb.per_sample["nn_index"])


def test_conformance():
    check_measure("nn-ratio")
