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


# -- near ties: the cases the float64 refinement and its certificate exist for ----------------

#: (name, NearestNeighborIndex keyword arguments, dtype of the reference): every code path.
PATHS = [
    ("in-place float32", {}, np.float32),
    ("cached float32 copy", {}, np.float64),
    ("chunks converted per search", {"cache_bytes": 0, "chunk_size": 37}, np.float64),
    ("torch engine on the CPU", {"engine": "torch", "chunk_size": 50}, np.float64),
    ("torch engine, chunks", {"engine": "torch", "cache_bytes": 0, "chunk_size": 29},
     np.float32),
]


def near_tie_data(dtype, seed=3):
    """Queries whose nearest rows are closer together than float32 can resolve.

    For each query ``q``: a row at squared distance ``s``, and rows at ``s (1 + 1e-9)`` and
    ``s (1 - 1e-9)`` *before* it in index order (float32 sees the three as one distance, the
    float64 answer does not: ties by index would pick the wrong one), plus a cluster of 20 rows
    (more than the margin) whose distances differ by 1e-10 relative."""
    rng = np.random.default_rng(seed)
    dim, n_q = 48, 12
    background = 3.0 * rng.normal(size=(400, dim))
    queries = rng.normal(size=(n_q, dim))
    rows = []
    for q in queries:
        v = rng.normal(size=dim)
        v *= 0.5 / np.linalg.norm(v)
        w = rng.permutation(v)  # same norm, another direction
        u = rng.permutation(v)
        rows += [q + w * np.sqrt(1 + 1e-9), q + u * np.sqrt(1 - 1e-9), q + v]
        cluster = [q + rng.permutation(v) * 2.0 * np.sqrt(1 + 1e-10 * j) for j in range(20)]
        rows += cluster[::-1]
    ref = np.vstack([background[:200], np.array(rows), background[200:]]).astype(dtype)
    if dtype == np.float32:  # the float32 values are the data; queries stay float64
        ref = ref.astype(np.float32)
    return queries, ref


@pytest.mark.parametrize(("name", "kwargs", "dtype"), PATHS, ids=[p[0] for p in PATHS])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_near_ties_match_brute_force(name, kwargs, dtype, k):
    queries, ref = near_tie_data(dtype)
    want_d, want_i = brute_force(queries, ref, k)
    # the planted ties are below float32 resolution: a float32 search alone gets them wrong
    d32 = ((queries[:, None, :].astype(np.float32) - ref[None].astype(np.float32)) ** 2).sum(-1)
    assert (np.argsort(d32, axis=1, kind="stable")[:, :k] != want_i).any()
    index = NearestNeighborIndex(ref, **kwargs)
    got_d, got_i = index.search(queries, k, batch_size=5)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-13)


@pytest.mark.parametrize(("name", "kwargs", "dtype"), PATHS, ids=[p[0] for p in PATHS])
def test_cluster_beyond_margin_falls_back_exactly(name, kwargs, dtype):
    """k = 7 inside a 20-row cluster tied in float32: more ties than candidates, so the
    certificate cannot hold and the float64 brute force must answer."""
    queries, ref = near_tie_data(dtype, seed=5)
    index = NearestNeighborIndex(ref, margin=4, **kwargs)
    d, i = index.search(queries, 7)
    want_d, want_i = brute_force(queries, ref, 7)
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_allclose(d, want_d, rtol=1e-13)
    assert index.n_fallbacks_ > 0


def test_refines_only_what_can_change_the_order(monkeypatch):
    """Well separated neighbours: exactly k float64 distances per query, no fallback."""
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(2000, 32)).astype(np.float32)
    queries = ref[:50] + 0.01 * rng.normal(size=(50, 32))
    index = NearestNeighborIndex(ref)
    calls = []
    original = index._sqdist64
    monkeypatch.setattr(index, "_sqdist64", lambda q, i: calls.append(len(q)) or original(q, i))
    _, i = index.search(queries, 2)
    assert sum(calls) == 2 * 50 and index.n_fallbacks_ == 0
    np.testing.assert_array_equal(i, brute_force(queries, ref, 2)[1])


def test_in_place_search_makes_no_copy():
    """A float32 reference near the origin is searched where it lies; a far one is shifted."""
    rng = np.random.default_rng(6)
    ref = rng.normal(size=(300, 16)).astype(np.float32)
    index = NearestNeighborIndex(ref)
    assert np.shares_memory(index._ref32, ref) and index.shift_ is None
    far = NearestNeighborIndex(ref + 100.0)
    assert far.shift_ is not None and far._ref32 is not None
    np.testing.assert_array_equal(
        far.search(ref[:20] + 100.0, 3)[1], brute_force(ref[:20] + 100.0, ref + 100.0, 3)[1]
    )


@pytest.mark.parametrize("k", [1, 4])
def test_torch_engine_equals_faiss_engine(data, k):
    """The GPU code path, run on the CPU: identical indices and distances (both exact)."""
    queries, ref = data
    a = NearestNeighborIndex(ref, engine="faiss").search(queries, k)
    b = NearestNeighborIndex(ref, engine="torch", chunk_size=64).search(queries, k)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])


def test_device_from_environment(monkeypatch, data):
    _, ref = data
    monkeypatch.setenv("PROBEKIT_KNN_DEVICE", "cpu")
    assert NearestNeighborIndex(ref).engine == "faiss"
    with pytest.raises(ValidationError, match="engine='faiss' runs on the CPU only"):
        NearestNeighborIndex(ref, engine="faiss", device="cuda")
    monkeypatch.setenv("PROBEKIT_KNN_DEVICE", "not-a-device")
    with pytest.raises(ValidationError, match="must be a torch device"):
        NearestNeighborIndex(ref)
    import torch

    if not torch.cuda.is_available():
        monkeypatch.setenv("PROBEKIT_KNN_DEVICE", "cuda")
        with pytest.raises(ValidationError, match="no CUDA device is available"):
            NearestNeighborIndex(ref)


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
