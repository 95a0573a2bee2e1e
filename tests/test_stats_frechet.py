"""StreamingMoments and frechet_distance (probekit/stats.py): equal to numpy's mean/cov and to
pytorch-fid's Fréchet distance where that one works; exact on planted low-rank cases where
pytorch-fid's ``sqrtm`` fails with an imaginary component.

(bootstrap_ci is tested in tests/test_stats.py.)
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from probekit.errors import ValidationError
from probekit.stats import (
    StreamingMoments,
    frechet_distance,
    frechet_distance_from_moments,
    frechet_terms,
    frechet_terms_from_moments,
    psd_sqrt_factor,
    trace_sqrt_product,
)


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrices: one BLAS thread is faster on the shared 2-core machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def pytorch_fid_distance(m1, s1, m2, s2):
    """pytorch-fid's reference implementation (scipy ``sqrtm`` of the product)."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():
        # scipy >= 1.16 deprecates sqrtm's `disp` argument, which pytorch-fid passes
        warnings.simplefilter("ignore", DeprecationWarning)
        return calculate_frechet_distance(m1, s1, m2, s2)


def exact_low_rank_distance(X, Y):
    """FD of the empirical moments of X and Y via the small n×n problem: the non-zero
    eigenvalues of S1 S2 are the squared singular values of A B^T / sqrt((n1-1)(n2-1)), with
    A, B the centred data, so Tr sqrt(S1 S2) is a nuclear norm (no d×d square root at all)."""
    A, B = X - X.mean(0), Y - Y.mean(0)
    n1, n2 = len(X), len(Y)
    diff = X.mean(0) - Y.mean(0)
    tr1 = (A * A).sum() / (n1 - 1)
    tr2 = (B * B).sum() / (n2 - 1)
    nuclear = np.linalg.svd(A @ B.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    return diff @ diff + tr1 + tr2 - 2 * nuclear


# -- StreamingMoments --------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 7, 64, 1000])
def test_moments_equal_numpy_for_any_batching(batch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5)) + rng.normal(size=5)
    acc = StreamingMoments()
    for s in range(0, len(x), batch):
        acc.update(x[s : s + batch])
    assert acc.n == 300
    np.testing.assert_allclose(acc.mean, x.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(acc.covariance(), np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)


def test_moments_survive_a_large_offset():
    # E[xx^T] - mu mu^T loses every digit here (offset 1e6, spread 1e-2); merging centred
    # batches does not
    rng = np.random.default_rng(1)
    x = 1e6 + 1e-2 * rng.normal(size=(2000, 3))
    acc = StreamingMoments()
    for s in range(0, len(x), 37):
        acc.update(x[s : s + 37])
    want = np.cov(x - 1e6, rowvar=False)
    np.testing.assert_allclose(acc.covariance(), want, rtol=1e-6, atol=1e-12)
    naive = (x.T @ x - len(x) * np.outer(x.mean(0), x.mean(0))) / (len(x) - 1)
    assert np.abs(naive - want).max() > 1e-2 * np.abs(want).max()  # the trap is real


def test_merge_equals_one_pass_and_state_round_trips():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 4))
    a = StreamingMoments().update(x[:50])
    b = StreamingMoments().update(x[50:])
    whole = StreamingMoments().update(x)
    a.merge(b)
    np.testing.assert_allclose(a.mean, whole.mean, rtol=1e-13)
    np.testing.assert_allclose(a.scatter, whole.scatter, rtol=1e-12)
    restored = StreamingMoments.from_state(a.to_state())
    assert restored.n == 120
    np.testing.assert_array_equal(restored.covariance(), a.covariance())


def test_moments_reject_bad_input():
    acc = StreamingMoments().update(np.zeros((3, 4)))
    with pytest.raises(ValidationError, match="4 features"):
        acc.update(np.zeros((3, 5)))
    with pytest.raises(ValidationError, match="more than 1"):
        StreamingMoments().update(np.zeros((1, 2))).covariance()


# -- Fréchet distance --------------------------------------------------------------------------


def test_planted_commuting_covariances():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    want = 1.0 + 4.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(want, rel=1e-12)


def test_equals_pytorch_fid_on_well_conditioned_statistics():
    rng = np.random.default_rng(3)
    for d in (8, 64):
        X = rng.normal(size=(4 * d, d)) @ rng.normal(size=(d, d))
        Y = rng.normal(size=(4 * d, d)) * 1.5 + 0.3
        m1, s1, m2, s2 = X.mean(0), np.cov(X, rowvar=False), Y.mean(0), np.cov(Y, rowvar=False)
        ours = frechet_distance(m1, s1, m2, s2)
        assert ours == pytest.approx(pytorch_fid_distance(m1, s1, m2, s2), rel=1e-9)
        assert ours == pytest.approx(exact_low_rank_distance(X, Y), rel=1e-9)


def test_near_singular_covariances_where_pytorch_fid_fails():
    # fewer samples than dimensions and a large scale: the classic "Imaginary component"
    # failure of scipy's sqrtm on the non-symmetric product. Ours is exact there.
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(4):
        X = 100 * rng.normal(size=(20, 256))
        Y = 100 * rng.normal(size=(20, 256)) + 10
        m1, s1, m2, s2 = X.mean(0), np.cov(X, rowvar=False), Y.mean(0), np.cov(Y, rowvar=False)
        want = exact_low_rank_distance(X, Y)
        assert frechet_distance(m1, s1, m2, s2) == pytest.approx(want, rel=1e-9)
        try:
            pytorch_fid_distance(m1, s1, m2, s2)
        except ValueError as exc:
            errors.append(str(exc))
    assert errors, "the planted inputs no longer make pytorch-fid's sqrtm fail"
    assert all("Imaginary component" in e for e in errors)


def test_rank_one_and_zero_covariances():
    # a single direction, and a point mass: square roots of singular matrices
    v = np.array([1.0, 2.0, 2.0])
    s1 = np.outer(v, v)  # eigenvalue 9 along v
    s2 = 4 * np.outer(v, v)  # eigenvalue 36 along v
    zero = np.zeros(3)
    assert frechet_distance(zero, s1, zero, s2) == pytest.approx((3 - 6) ** 2, rel=1e-12)
    assert frechet_distance(zero, s1, zero, np.zeros((3, 3))) == pytest.approx(9.0, rel=1e-12)


def test_identical_is_zero_and_order_does_not_matter():
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(50, 10)), rng.normal(size=(60, 10)) + 1
    m1, s1, m2, s2 = X.mean(0), np.cov(X, rowvar=False), Y.mean(0), np.cov(Y, rowvar=False)
    assert frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-10)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(
        frechet_distance(m2, s2, m1, s1), rel=1e-10
    )
    assert trace_sqrt_product(s1, s1) == pytest.approx(np.trace(s1), rel=1e-10)


def test_reference_factor_is_low_rank_and_reusable():
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(12, 40)), rng.normal(size=(15, 40)) + 0.2
    s1, s2 = np.cov(X, rowvar=False), np.cov(Y, rowvar=False)
    B = psd_sqrt_factor(s1)
    assert B.shape == (40, 11)  # rank n - 1: the per-checkpoint problem is 11 × 11
    np.testing.assert_allclose(B @ B.T, s1, atol=1e-12)
    direct = frechet_terms(X.mean(0), s1, Y.mean(0), s2)
    reused = frechet_terms(X.mean(0), s1, Y.mean(0), s2, factor1=B)
    assert reused == pytest.approx(direct, rel=1e-12)
    assert sum(direct) == pytest.approx(exact_low_rank_distance(X, Y), rel=1e-9)
    assert psd_sqrt_factor(np.zeros((3, 3))).shape == (3, 0)
    assert frechet_distance(np.zeros(3), np.zeros((3, 3)), np.ones(3), np.eye(3)) == (
        pytest.approx(3.0 + 3.0)
    )
    with pytest.raises(ValidationError, match="factor1 must have shape"):
        trace_sqrt_product(s1, s2, factor1=B[:5])


# -- from the accumulators (square-root factors) ----------------------------------------------


def moments(x, batch):
    acc = StreamingMoments()
    for s in range(0, len(x), batch):
        acc.update(x[s : s + batch])
    return acc


@pytest.mark.parametrize(("n", "d", "scale"), [(20, 256, 100.0), (300, 40, 1.0), (7, 3, 1e3)])
def test_from_moments_is_exact_in_every_regime(n, d, scale):
    # fewer samples than dimensions (the factors have n - 1 useful rows), and more
    rng = np.random.default_rng(6)
    X = scale * rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)
    Y = scale * rng.normal(size=(n + 3, d)) + scale / 10
    want = exact_low_rank_distance(X, Y)
    for batch in (1, 5, 1000):
        got = frechet_distance_from_moments(moments(X, batch), moments(Y, batch))
        assert got == pytest.approx(want, rel=1e-11)


def test_from_moments_beats_square_roots_of_tiny_eigenvalues():
    # a covariance spectrum over ~12 decades and n < d: covariance-based square roots (scipy's
    # and the eigendecomposition route alike) lose digits in the smallest directions; the
    # factors do not
    rng = np.random.default_rng(7)
    d, n = 300, 120
    spectrum = np.logspace(0, -6, d)
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    X = (rng.normal(size=(n, d)) * spectrum) @ basis.T
    Y = (rng.normal(size=(n, d)) * spectrum * 1.5) @ basis.T
    want = exact_low_rank_distance(X, Y)
    from_moments = frechet_distance_from_moments(moments(X, 16), moments(Y, 16))
    from_cov = frechet_distance(X.mean(0), np.cov(X, rowvar=False), Y.mean(0),
                                np.cov(Y, rowvar=False))
    assert abs(from_moments - want) < 1e-12 * np.trace(np.cov(X, rowvar=False))
    assert abs(from_moments - want) < abs(from_cov - want)


def test_from_moments_terms_and_checks():
    rng = np.random.default_rng(8)
    X, Y = rng.normal(size=(60, 5)), rng.normal(size=(50, 5)) + 1
    a, b = moments(X, 7), moments(Y, 7)
    want = frechet_terms(X.mean(0), np.cov(X, rowvar=False), Y.mean(0), np.cov(Y, rowvar=False))
    assert frechet_terms_from_moments(a, b) == pytest.approx(want, rel=1e-10)
    assert frechet_distance_from_moments(a, a) == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(ValidationError, match="same feature dimension"):
        frechet_terms_from_moments(a, moments(rng.normal(size=(9, 4)), 9))
    with pytest.raises(ValidationError, match="at least 2 samples"):
        frechet_terms_from_moments(a, moments(Y[:1], 1))
    # a legacy state holding the scatter matrix still loads
    legacy = {"n": np.asarray(a.n), "mean": a.mean, "scatter": a.scatter}
    restored = StreamingMoments.from_state(legacy)
    np.testing.assert_allclose(restored.covariance(), a.covariance(), atol=1e-12)


def test_mismatched_dimensions_are_an_error():
    with pytest.raises(ValidationError, match="same feature dimension"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValidationError, match="covariance"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
