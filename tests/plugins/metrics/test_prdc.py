"""prdc: equal to a brute-force implementation of Naeem et al.'s definitions (full distance
matrices, strict inequalities); a planted mode collapse pins which set is real and which is
generated (precision high / recall low, and the mirror image when swapped); identical sets."""

from __future__ import annotations

import numpy as np
import pytest
from probekit_plugins.metrics.prdc import (
    PrecisionRecallDensityCoverage,
    compute_prdc,
    count_inside_balls,
)

from probekit.errors import ValidationError
from probekit.testing import check_measure


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrix products: one BLAS thread is faster on the shared 2-core machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def brute_force_prdc(real, generated, k):
    """The definitions, written out with full float64 distance matrices."""
    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    d_rr, d_gg, d_rg = dist(real, real), dist(generated, generated), dist(real, generated)
    r_real = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    r_gen = np.sort(d_gg, axis=1)[:, k]
    inside_real = d_rg < r_real[:, None]  # [i, j]: generated j inside real i's ball
    inside_gen = d_rg < r_gen[None, :]  # [i, j]: real i inside generated j's ball
    return {
        "precision": inside_real.any(axis=0).mean(),
        "recall": inside_gen.any(axis=1).mean(),
        "density": inside_real.sum(axis=0).mean() / k,
        "coverage": (d_rg.min(axis=1) < r_real).mean(),
    }


@pytest.mark.parametrize("k", [1, 5])
def test_equals_brute_force(k):
    rng = np.random.default_rng(0)
    real = rng.normal(size=(150, 6))
    generated = np.concatenate([rng.normal(size=(60, 6)) * 0.5, rng.normal(size=(60, 6)) + 2])
    got = compute_prdc(real=real, generated=generated, k=k)
    want = brute_force_prdc(real, generated, k)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


def test_range_counts_are_exact_at_the_border():
    # balls of very different sizes, queries placed exactly on some borders (radius = the
    # float64 distance, so `<` must say no) and a point mass far from the origin (cancellation
    # in |q|² + |p|² - 2 q·p)
    rng = np.random.default_rng(1)
    points = 1e3 + rng.normal(size=(200, 3))
    queries = 1e3 + rng.normal(size=(40, 3))
    d = np.sqrt(((queries[:, None] - points[None]) ** 2).sum(-1))
    radii = rng.uniform(0.2, 2.0, 200)
    radii[0] = 10.0
    radii[1:21] = d[np.arange(20), np.arange(1, 21)]  # query j sits on ball j+1's border
    want = (d < radii[None, :]).sum(axis=1)
    for block in (7, 1024):
        np.testing.assert_array_equal(count_inside_balls(queries, points, radii, block=block),
                                      want)


def test_mode_collapse_pins_which_set_is_which():
    # real: N(0, I) in 2-d; generated: all samples squeezed near the centre. Every generated
    # sample is realistic (precision ~1) but it covers little of the real data (recall low).
    rng = np.random.default_rng(2)
    real = rng.normal(size=(1000, 2))
    collapsed = 0.1 * rng.normal(size=(1000, 2))
    metric = PrecisionRecallDensityCoverage().prepare(real).evaluate(collapsed)
    assert metric.values["precision"] > 0.95
    assert metric.values["recall"] < 0.2
    assert metric.values["coverage"] < 0.2
    swapped = compute_prdc(real=collapsed, generated=real)
    assert swapped["precision"] < 0.2 and swapped["recall"] > 0.95
    # the functional form and the metric agree
    direct = compute_prdc(real=real, generated=collapsed)
    for key, value in direct.items():
        assert metric.values[key] == pytest.approx(value, abs=1e-12)


def test_identical_sets():
    x = np.random.default_rng(3).normal(size=(300, 3))
    values = PrecisionRecallDensityCoverage().prepare(x).evaluate(x).values
    assert values["precision"] == values["recall"] == values["coverage"] == 1.0
    # each point lies in its own ball and in those of the points it is among the k nearest of
    assert values["density"] == pytest.approx(1.0 + 1.0 / 5, abs=0.25)


def test_needs_more_than_k_samples_and_keeps_reference_state():
    rng = np.random.default_rng(4)
    with pytest.raises(ValidationError, match="more than k=5"):
        PrecisionRecallDensityCoverage().prepare(rng.normal(size=(5, 2)))
    metric = PrecisionRecallDensityCoverage().prepare(rng.normal(size=(50, 2)))
    with pytest.raises(ValidationError, match="more than k=5"):
        metric.evaluate(rng.normal(size=(4, 2)))
    gen = rng.normal(size=(40, 2))
    restored = PrecisionRecallDensityCoverage().load_reference_state(metric.reference_state())
    assert restored.evaluate(gen).values == metric.evaluate(gen).values


def test_small_sample_warning():
    rng = np.random.default_rng(5)
    result = PrecisionRecallDensityCoverage().prepare(rng.normal(size=(30, 1, 8, 8))).evaluate(
        rng.normal(size=(30, 1, 8, 8))
    )
    assert any("fewer samples than dimensions" in w for w in result.warnings)


def test_conformance():
    check_measure("prdc")
