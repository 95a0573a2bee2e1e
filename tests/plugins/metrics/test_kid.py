"""kid: the unbiased MMD² equals a brute-force double loop; in one dimension the cubic kernel
has the finite feature map (x³, √3x², √3x, 1), so the population value is known exactly;
subset size is checked against n; identical sets give ≈ 0; conformance."""

from __future__ import annotations

import numpy as np
import pytest
from probekit_plugins.metrics.kid import KernelInceptionDistance, kid_subsets, mmd2_unbiased

from probekit.errors import ValidationError
from probekit.testing import check_measure


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrix products: one BLAS thread is faster on the shared 2-core machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def brute_force_mmd2(real, generated):
    d = real.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1.0) ** 3

    m, n = len(real), len(generated)
    rr = sum(k(real[i], real[j]) for i in range(m) for j in range(m) if i != j)
    gg = sum(k(generated[i], generated[j]) for i in range(n) for j in range(n) if i != j)
    rg = sum(k(real[i], generated[j]) for i in range(m) for j in range(n))
    return rr / (m * (m - 1)) + gg / (n * (n - 1)) - 2 * rg / (m * n)


def test_equals_brute_force_double_loop():
    rng = np.random.default_rng(0)
    real, generated = rng.normal(size=(12, 3)), rng.normal(size=(9, 3)) + 0.5
    assert mmd2_unbiased(real=real, generated=generated) == pytest.approx(
        brute_force_mmd2(real, generated), rel=1e-12
    )
    with pytest.raises(TypeError):
        mmd2_unbiased(real, generated)  # which set is which is always named


def test_one_subset_of_everything_is_the_full_estimate():
    rng = np.random.default_rng(1)
    real, generated = rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) * 1.2
    full = mmd2_unbiased(real=real, generated=generated)
    got = kid_subsets(real=real, generated=generated, n_subsets=3, subset_size=30, seed=0)
    np.testing.assert_allclose(got, full, rtol=1e-12)  # permutations do not change it


def test_planted_one_dimensional_population_value():
    # k(x, y) = (xy + 1)^3 = φ(x)·φ(y) with φ(x) = (x³, √3 x², √3 x, 1), so the population
    # MMD² = (m3_P - m3_Q)² + 3 (m2_P - m2_Q)² + 3 (m1_P - m1_Q)² (raw moments).
    # P = U(-1, 1), Q = U(-1, 1) + s: bounded, so the cubic moments are not too noisy.
    s = 0.5
    m_p, m_q = (0.0, 1 / 3, 0.0), (s, 1 / 3 + s**2, s**3 + s)
    truth = (m_p[2] - m_q[2]) ** 2 + 3 * (m_p[1] - m_q[1]) ** 2 + 3 * (m_p[0] - m_q[0]) ** 2
    rng = np.random.default_rng(2)
    # unbiased: the average over many small independent sets converges to the truth
    draws = np.array([
        mmd2_unbiased(real=rng.uniform(-1, 1, (40, 1)), generated=rng.uniform(-1, 1, (40, 1)) + s)
        for _ in range(400)
    ])
    assert abs(draws.mean() - truth) < 4 * draws.std(ddof=1) / np.sqrt(len(draws))
    # the metric on one large pair of sets (its sampling std is about 0.08 at n = 3000)
    reference, samples = rng.uniform(-1, 1, (3000, 1)), rng.uniform(-1, 1, (3000, 1)) + s
    result = KernelInceptionDistance(n_subsets=50).prepare(reference).evaluate(samples)
    assert result.provenance.extra["subset_size"] == 1000
    assert abs(result.value - truth) < 0.25


def test_identical_sets_are_near_zero_and_different_sets_are_not():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    kid = KernelInceptionDistance(n_subsets=50, subset_size=100)
    same_distribution = kid.prepare(x).evaluate(y)
    assert abs(same_distribution.value) <= same_distribution.values["kid_std"]
    far = kid.evaluate(y + 1.0)
    assert far.value > 3 * far.values["kid_std"] > 0  # detectable even by a single subset
    # the very same samples on both sides: only the O(1/n) term of the shared points remains
    identical = KernelInceptionDistance().prepare(x).evaluate(x)
    assert abs(identical.value) < 0.05 * far.value


def test_subset_size_is_checked_against_n():
    rng = np.random.default_rng(4)
    ref, gen = rng.normal(size=(50, 2)), rng.normal(size=(40, 2))
    with pytest.raises(ValidationError, match="at most the reference size 50"):
        KernelInceptionDistance(subset_size=60).prepare(ref)
    metric = KernelInceptionDistance(subset_size=45).prepare(ref)
    with pytest.raises(ValidationError, match=r"min\(n_reference=50, n_samples=40\) = 40"):
        metric.evaluate(gen)
    assert KernelInceptionDistance().prepare(ref).evaluate(gen).provenance.extra[
        "subset_size"] == 40  # default: min(1000, n_reference, n_samples)


def test_small_sample_warning_and_seed():
    rng = np.random.default_rng(5)
    ref, gen = rng.normal(size=(20, 1, 8, 8)), rng.normal(size=(20, 1, 8, 8))
    a = KernelInceptionDistance(seed=1).prepare(ref).evaluate(gen)
    b = KernelInceptionDistance(seed=2).prepare(ref).evaluate(gen)
    assert any("fewer samples than dimensions" in w for w in a.warnings)
    assert a.value != b.value  # the subsets follow the seed


def test_conformance():
    check_measure("kid")
