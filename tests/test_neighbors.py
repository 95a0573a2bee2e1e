"""Exact kNN: parity with a float64 brute force, deterministic ties, chunking, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from probekit.errors import DataWarning, ValidationError
from probekit.neighbors import NearestNeighborIndex, collapse_duplicates, knn


def brute_force(queries, reference, k):
    """Float64 sums of squared differences; ties broken by the smaller index."""
    q = queries.reshape(len(queries), -1).astype(np.float64)
    r = reference.reshape(len(reference), -1).astype(np.float64)
    d = ((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)
    idx = np.broadcast_to(np.arange(len(r)), d.shape)
    order = np.lexsort((idx, d), axis=1)[:, :k]
    return np.sqrt(np.take_along_axis(d, order, axis=1)), order


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(700, 24))
    ref[10] = ref[11] = ref[12]  # exact ties
    queries = rng.normal(size=(150, 24))
    queries[:20] = ref[:20] + 1e-4 * rng.normal(size=(20, 24))  # near copies
    queries[20] = ref[12]  # equidistant to three reference rows
    return queries, ref


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 700, 5000])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_matches_brute_force(data, chunk_size, k):
    queries, ref = data
    want_d, want_i = brute_force(queries, ref, k)
    got_d, got_i = knn(queries, ref, k, chunk_size=chunk_size, batch_size=33)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-12, atol=1e-12)


def test_ties_break_by_smallest_index(data):
    queries, ref = data
    _, idx = knn(queries[20:21], ref, 3)
    assert idx.tolist() == [[10, 11, 12]]


def test_large_offset_cancellation_is_exact():
    # values near 1000 with tiny differences: float32 |x|^2 + |y|^2 - 2xy loses everything
    rng = np.random.default_rng(1)
    ref = 1000.0 + 1e-3 * rng.normal(size=(300, 256))
    queries = 1000.0 + 1e-3 * rng.normal(size=(40, 256))
    want_d, want_i = brute_force(queries, ref, 2)
    got_d, got_i = knn(queries, ref, 2, chunk_size=50)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-10)


def test_certificate_falls_back_when_float32_cannot_decide():
    # many reference rows at exactly the same distance: more ties than candidates
    ref = np.zeros((40, 4))
    ref[:, 0] = np.arange(40) % 2 * 2 - 1  # +-1 on the first axis: all at distance 1 from 0
    ref[:, 1] = 0.0
    ref = np.vstack([ref, np.full((5, 4), 9.0)])
    index = NearestNeighborIndex(ref, margin=2)
    d, i = index.search(np.zeros((1, 4)), 3)
    want_d, want_i = brute_force(np.zeros((1, 4)), ref, 3)
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_allclose(d, want_d)
    assert index.n_fallbacks_ == 1


def test_uncached_and_memmap_reference(tmp_path, data):
    queries, ref = data
    path = tmp_path / "ref.npy"
    np.save(path, ref)
    mm = np.load(path, mmap_mode="r")
    a = NearestNeighborIndex(ref).search(queries, 4)
    b = NearestNeighborIndex(mm, chunk_size=100, cache_bytes=0).search(queries, 4)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], rtol=1e-12)


def test_working_memory_does_not_grow_with_reference(tmp_path):
    """Peak traced memory of a search over a memmapped reference is set by the chunk size."""
    rng = np.random.default_rng(2)
    queries = rng.normal(size=(64, 128)).astype(np.float32)
    peaks = []
    for n in (8_000, 32_000):
        path = tmp_path / f"ref{n}.npy"
        np.save(path, rng.normal(size=(n, 128)).astype(np.float32))
        index = NearestNeighborIndex(np.load(path, mmap_mode="r"), chunk_size=2048,
                                     cache_bytes=0)
        tracemalloc.start()
        index.search(queries, 2)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_errors():
    ref = np.zeros((5, 3))
    with pytest.raises(ValidationError, match="k must be in"):
        knn(np.zeros((1, 3)), ref, 6)
    with pytest.raises(ValidationError, match="must have 3 features"):
        knn(np.zeros((1, 4)), ref, 2)


def test_collapse_duplicates_keeps_first_and_warns():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0], [3.0, 4.0]])
    with pytest.warns(DataWarning, match="2 exact duplicate"):
        unique, kept = collapse_duplicates(x)
    assert kept.tolist() == [0, 1, 3]
    np.testing.assert_array_equal(unique, x[[0, 1, 3]])
