"""Exact k-nearest-neighbour search in L2, shared by every distance-based probe and metric.

Engine: faiss-cpu's exhaustive float32 search (BLAS) finds ``k + margin`` candidates per query,
chunk by chunk over the reference set, so working memory does not grow with the reference size.
The candidates' distances are then recomputed in float64 and sorted by ``(distance, index)``, so
ties break deterministically (smallest reference index first). A per-query certificate checks
that no point outside the candidates can be closer than the k-th one given the worst-case
float32 rounding error; queries that fail it are searched again by float64 brute force. The
result is therefore the exact float64 answer, which matters for ratios such as ``d1 / d2`` near
a threshold.

The index type is hidden behind :class:`NearestNeighborIndex`, so an approximate or sharded
index can replace it later without touching any probe.
"""

from __future__ import annotations

import faiss
import numpy as np

from probekit.duplicates import collapse_duplicates
from probekit.errors import ValidationError
from probekit.validation import check_array

_U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32


def _as_2d(x: np.ndarray, who: str, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValidationError(
            f"{who}: {name} must have shape (n_samples, ...); got shape {x.shape}. "
            "Use x[None] for a single sample."
        )
    return x.reshape(len(x), -1)


class NearestNeighborIndex:
    """Exact L2 nearest neighbours of queries among a fixed reference set.

    Parameters
    ----------
    reference : array of shape (n_reference, ...)
        Reference samples; flattened to vectors. A ``np.memmap`` works and is read in chunks.
    chunk_size : int
        Reference rows searched at a time; bounds the working memory.
    cache_bytes : int
        Keep a centred float32 copy of the reference when it is at most this large (faster
        repeated searches); otherwise chunks are converted on the fly.
    margin : int
        Extra float32 candidates per query before the float64 refinement.
    """

    def __init__(
        self,
        reference: np.ndarray,
        *,
        chunk_size: int = 16384,
        cache_bytes: int = 2**30,
        margin: int = 8,
    ):
        ref = _as_2d(reference, "NearestNeighborIndex", "reference")
        if len(ref) < 1:
            raise ValidationError("NearestNeighborIndex: reference must not be empty; got 0 rows.")
        if chunk_size < 1 or margin < 0:
            raise ValidationError(
                f"NearestNeighborIndex: chunk_size must be >= 1 and margin >= 0; got "
                f"chunk_size={chunk_size}, margin={margin}."
            )
        self.reference_ = ref
        self.n_reference, self.dim = ref.shape
        self.chunk_size = int(chunk_size)
        self.margin = int(margin)
        starts = range(0, self.n_reference, self.chunk_size)
        self._chunks = [(s, min(s + self.chunk_size, self.n_reference)) for s in starts]
        total = np.zeros(self.dim)
        for s, e in self._chunks:
            total += ref[s:e].sum(axis=0, dtype=np.float64)
        self.center_ = total / self.n_reference
        self._cache: list[np.ndarray] | None = [] if ref.size * 4 <= cache_bytes else None
        self._max_sqnorm = np.empty(len(self._chunks))
        for j, (s, e) in enumerate(self._chunks):
            block = ref[s:e].astype(np.float64) - self.center_
            self._max_sqnorm[j] = float(np.einsum("ij,ij->i", block, block).max())
            if self._cache is not None:
                self._cache.append(np.ascontiguousarray(block, dtype=np.float32))
        self.n_fallbacks_ = 0

    def _chunk32(self, j: int) -> np.ndarray:
        if self._cache is not None:
            return self._cache[j]
        s, e = self._chunks[j]
        return np.ascontiguousarray(self.reference_[s:e] - self.center_, dtype=np.float32)

    def _rows64(self, idx: np.ndarray) -> np.ndarray:
        flat = idx.ravel()
        order = np.argsort(flat, kind="stable")  # sorted gathers are friendlier to memmaps
        rows = np.empty((flat.size, self.dim))
        rows[order] = self.reference_[flat[order]]
        return rows.reshape(*idx.shape, self.dim) - self.center_

    def search(self, queries: np.ndarray, k: int, *, batch_size: int = 4096):
        """The ``k`` nearest reference rows of each query.

        Returns
        -------
        distances : float64 array (n_queries, k)
            L2 distances, ascending.
        indices : int64 array (n_queries, k)
            Reference row indices; equal distances are ordered by index.
        """
        q = _as_2d(queries, "NearestNeighborIndex.search", "queries")
        if q.shape[1] != self.dim:
            raise ValidationError(
                f"NearestNeighborIndex.search: queries must have {self.dim} features like the "
                f"reference; got {q.shape[1]}. Use the same feature space for both."
            )
        if not 1 <= k <= self.n_reference:
            raise ValidationError(
                f"NearestNeighborIndex.search: k must be in [1, {self.n_reference}] (the "
                f"reference size); got {k}."
            )
        dist = np.empty((len(q), k))
        idx = np.empty((len(q), k), dtype=np.int64)
        self.n_fallbacks_ = 0
        for s in range(0, len(q), batch_size):
            e = min(s + batch_size, len(q))
            dist[s:e], idx[s:e] = self._search_batch(q[s:e], k)
        return dist, idx

    def _search_batch(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q64 = q.astype(np.float64) - self.center_
        q32 = np.ascontiguousarray(q64, dtype=np.float32)
        kc = min(self.n_reference, k + self.margin)
        best_d = np.full((len(q), 0), np.inf, dtype=np.float32)
        best_i = np.zeros((len(q), 0), dtype=np.int64)
        for j, (s, e) in enumerate(self._chunks):
            kj = min(kc, e - s)
            d, i = faiss.knn(q32, self._chunk32(j), kj)
            cat_d = np.concatenate([best_d, d], axis=1)
            cat_i = np.concatenate([best_i, i.astype(np.int64) + s], axis=1)
            keep = np.lexsort((cat_i, cat_d), axis=1)[:, :kc]
            best_d = np.take_along_axis(cat_d, keep, axis=1)
            best_i = np.take_along_axis(cat_i, keep, axis=1)
        # float64 refinement of the candidates, ties by index
        exact = np.empty(best_i.shape)
        for c in range(best_i.shape[1]):
            diff = self._rows64(best_i[:, c]) - q64
            exact[:, c] = np.einsum("ij,ij->i", diff, diff)
        order = np.lexsort((best_i, exact), axis=1)[:, :k]
        out_d = np.take_along_axis(exact, order, axis=1)
        out_i = np.take_along_axis(best_i, order, axis=1)
        if kc < self.n_reference:
            # certificate: every non-candidate has float32 distance >= the largest candidate's,
            # so its true distance is at least that minus the worst-case rounding error.
            q_sq = np.einsum("ij,ij->i", q64, q64)
            err = 2.0 * (self.dim + 4) * _U32 * (q_sq + self._max_sqnorm.max())
            bound = best_d[:, -1].astype(np.float64) - err
            bad = np.flatnonzero(~(bound > out_d[:, -1]))
            if bad.size:
                self.n_fallbacks_ += int(bad.size)
                out_d[bad], out_i[bad] = self._brute_force(q64[bad], k)
        return np.sqrt(np.maximum(out_d, 0.0)), out_i

    def _brute_force(self, q64: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Float64 exhaustive search by sums of squared differences (no cancellation), ties
        by index. Used only for the rare queries the float32 certificate cannot settle."""
        out_d = np.empty((len(q64), k))
        out_i = np.empty((len(q64), k), dtype=np.int64)
        for r, query in enumerate(q64):
            best_d, best_i = np.empty(0), np.empty(0, dtype=np.int64)
            for s, e in self._chunks:
                diff = self.reference_[s:e].astype(np.float64) - self.center_ - query
                cat_d = np.concatenate([best_d, np.einsum("ij,ij->i", diff, diff)])
                cat_i = np.concatenate([best_i, np.arange(s, e)])
                keep = np.lexsort((cat_i, cat_d))[:k]
                best_d, best_i = cat_d[keep], cat_i[keep]
            out_d[r], out_i[r] = best_d, best_i
        return out_d, out_i


def knn(
    queries: np.ndarray, reference: np.ndarray, k: int, *, chunk_size: int = 16384,
    batch_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest neighbours of ``queries`` in ``reference`` (L2, float64 distances)."""
    index = NearestNeighborIndex(reference, chunk_size=chunk_size)
    return index.search(queries, k, batch_size=batch_size)


__all__ = ["NearestNeighborIndex", "check_array", "collapse_duplicates", "knn"]
