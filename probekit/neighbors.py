"""Exact k-nearest-neighbour search in L2, shared by every distance-based probe and metric.

How a search runs
-----------------
1. **Float32 candidates.** faiss' exhaustive search finds the ``k + margin`` nearest reference
   rows of every query in float32, with its own blocking (a GEMM of 4096 queries by 1024
   reference rows fused with a heap). A float32 reference whose mean is small next to its
   spread is searched where it lies, with no copy; otherwise the rows are shifted by their
   mean (which removes the cancellation of ``|q|^2 + |r|^2 - 2 q.r`` for data far from the
   origin) into a float32 copy kept when at most ``cache_bytes``, or made chunk by chunk.
   On a GPU (``device="cuda"``) the candidates come from torch matrix products instead.
2. **Float64 only where it can matter.** A candidate's float32 squared distance is within
   ``e_q = (2 gamma_dim + 16 u) (|q|^2 + R^2)`` of its true one, whatever the summation order
   of the BLAS (``u = 2^-24``, ``gamma_dim = dim u / (1 - dim u)``, ``q`` the shifted query,
   ``R^2`` the largest squared norm of a shifted reference row). Only candidates whose float32
   distance is within ``2 e_q`` of the k-th can belong to the true top k: those (usually
   exactly ``k``) are recomputed in float64 as sums of squared differences of the *original*
   rows (no shift, so the values are those of a float64 brute force) and sorted by
   ``(distance, index)``, so ties break by the smaller reference index.
3. **Certificate.** If every candidate had to be recomputed, a row outside the candidates could
   still be closer; it cannot when the last candidate's float32 distance minus ``e_q`` exceeds
   the k-th float64 distance. Queries that fail go through the same steps with float64 matrix
   products (``2 k + margin`` candidates, the float64 bound), and only queries with exact ties
   over more rows than that reach a float64 brute force. Lists of ``k`` neighbours keep
   ``max(margin, k / 8)`` extra candidates: dense neighbourhoods (overlapping time-series
   windows) need the room.

The result is therefore the exact float64 answer, which matters for ratios such as ``d1 / d2``
near a threshold. Working memory is set by ``batch_size`` and ``chunk_size`` (plus the optional
cached copy), never by the reference size.

The reference may be an array, a ``np.memmap`` or any :class:`RowStore` (rows read on demand,
e.g. the shards of :mod:`probekit.index`).
"""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

import numpy as np

from probekit.duplicates import collapse_duplicates
from probekit.errors import ValidationError
from probekit.validation import check_array

_U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32
_U_TF32 = 2.0**-11  # unit roundoff of TF32 inputs (a GPU matmul that allows them)
_U_BF16 = 2.0**-8  # unit roundoff of bfloat16 inputs (float32 matmul precision "medium")
_U64 = float(np.finfo(np.float64).eps) / 2  # unit roundoff of float64
#: Environment variable naming the default device of the candidate search ("cpu", "cuda", ...).
DEVICE_ENV = "PROBEKIT_KNN_DEVICE"
#: Queries searched per faiss call at least (faiss blocks queries by 4096 itself).
_MIN_QUERY_BLOCK = 4096
#: Centre the reference when its mean's squared norm exceeds this share of the mean squared
#: distance to the mean: below it the float32 error bound grows by at most this factor.
_CENTRE_ABOVE = 0.1


@runtime_checkable
class RowStore(Protocol):
    """Rows read on demand (a reference that is not one array, e.g. a file shard).

    ``shape`` is ``(n_rows, dim)``; ``read_rows(start, stop)`` returns rows ``[start, stop)``
    as a 2-d float array; ``take_rows(rows)`` returns the rows at the ascending indices
    ``rows``. ``stats`` may hold precomputed ``{"sum": float64 (dim,), "max_sqnorm": float,
    "sum_sqnorm": float}`` of the raw rows (else one pass computes them).
    """

    shape: tuple[int, int]

    def read_rows(self, start: int, stop: int) -> np.ndarray: ...

    def take_rows(self, rows: np.ndarray) -> np.ndarray: ...


def _as_2d(x: Any, who: str, name: str) -> Any:
    if isinstance(x, RowStore):
        return x
    x = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if x.ndim < 2:
        raise ValidationError(
            f"{who}: {name} must have shape (n_samples, ...); got shape {x.shape}. "
            "Use x[None] for a single sample."
        )
    return x.reshape(len(x), -1)


def default_device() -> str:
    """``$PROBEKIT_KNN_DEVICE`` or ``"cpu"``."""
    return os.environ.get(DEVICE_ENV, "").strip() or "cpu"


def _float32(x: np.ndarray, shift: np.ndarray | None) -> np.ndarray:
    """``fl32(x - shift)`` as a C-contiguous float32 array: one rounding of the exact
    difference (float32 input and shift) or of the float64 difference (float64 input)."""
    if shift is None:
        return np.ascontiguousarray(x, dtype=np.float32)
    if x.dtype == np.float32:
        return np.subtract(x, shift, dtype=np.float32)
    return np.ascontiguousarray(np.subtract(x, shift, dtype=np.float64), dtype=np.float32)


def _sqnorms32(x: np.ndarray) -> np.ndarray:
    """Float32 squared row norms of a float32 array."""
    return np.einsum("ij,ij->i", x, x)


class NearestNeighborIndex:
    """Exact L2 nearest neighbours of queries among a fixed reference set.

    Parameters
    ----------
    reference : array of shape (n_reference, ...) or RowStore
        Reference samples; flattened to vectors. A ``np.memmap`` or a :class:`RowStore` is
        read in chunks.
    chunk_size : int
        Reference rows converted at a time when no float32 view or copy of the whole
        reference is kept; bounds the working memory.
    cache_bytes : int
        Keep the shifted float32 copy of the reference (when one is needed) if it is at most
        this large; otherwise chunks are converted on every search.
    margin : int
        Extra float32 candidates per query beyond ``k`` (what the certificate stands on).
    device : str or None
        ``"cpu"`` (faiss) or a torch device such as ``"cuda"`` for the float32 candidates;
        ``None`` reads ``$PROBEKIT_KNN_DEVICE`` (default ``"cpu"``). The float64 refinement
        always runs on the host, so the answer does not depend on the device.
    engine : {"auto", "faiss", "torch"}
        ``"auto"``: faiss on the CPU, torch elsewhere. ``"torch"`` on the CPU runs the GPU
        code path on the host (tests).
    """

    def __init__(
        self,
        reference: Any,
        *,
        chunk_size: int = 16384,
        cache_bytes: int = 2**30,
        margin: int = 8,
        device: str | None = None,
        engine: str = "auto",
    ):
        ref = _as_2d(reference, "NearestNeighborIndex", "reference")
        if ref.shape[0] < 1:
            raise ValidationError("NearestNeighborIndex: reference must not be empty; got 0 rows.")
        if chunk_size < 1 or margin < 0:
            raise ValidationError(
                f"NearestNeighborIndex: chunk_size must be >= 1 and margin >= 0; got "
                f"chunk_size={chunk_size}, margin={margin}."
            )
        if engine not in ("auto", "faiss", "torch"):
            raise ValidationError(
                f"NearestNeighborIndex: engine must be 'auto', 'faiss' or 'torch'; got {engine!r}."
            )
        self.reference_ = ref
        self.n_reference, self.dim = (int(v) for v in ref.shape)
        self.chunk_size = int(chunk_size)
        self.margin = int(margin)
        self.device = device or default_device()
        self.engine = engine if engine != "auto" else (
            "faiss" if self.device == "cpu" else "torch"
        )
        if self.engine == "faiss" and self.device != "cpu":
            raise ValidationError(
                f"NearestNeighborIndex: engine='faiss' runs on the CPU only; got device="
                f"{self.device!r}. Use engine='torch' (or 'auto') for a GPU."
            )
        if self.engine == "torch" and self.device != "cpu":
            _check_torch_device(self.device)
        self._cache_bytes = int(cache_bytes)
        self._store = isinstance(ref, RowStore)
        self._memmap = isinstance(ref, np.memmap)
        starts = range(0, self.n_reference, self.chunk_size)
        self._chunks = [(s, min(s + self.chunk_size, self.n_reference)) for s in starts]
        self._device_ref: Any = None
        self.n_fallbacks_ = 0
        self._build(int(cache_bytes))

    # -- build -------------------------------------------------------------------------------

    def _rows(self, start: int, stop: int) -> np.ndarray:
        if self._store:
            return np.asarray(self.reference_.read_rows(start, stop))
        return self.reference_[start:stop]

    def _stats(self) -> tuple[np.ndarray, float, float]:
        """Float64 sum of the rows, largest and total float32 squared row norm (one pass)."""
        stats = getattr(self.reference_, "stats", None) if self._store else None
        if stats:
            return (np.asarray(stats["sum"], dtype=np.float64), float(stats["max_sqnorm"]),
                    float(stats["sum_sqnorm"]))
        total = np.zeros(self.dim)
        max_sq, sum_sq = 0.0, 0.0
        for s, e in self._chunks:
            block = self._rows(s, e)
            total += block.sum(axis=0, dtype=np.float64)
            sq = _sqnorms32(_float32(block, None))
            max_sq = max(max_sq, float(sq.max()))
            sum_sq += float(sq.sum(dtype=np.float64))
        return total, max_sq, sum_sq

    def _build(self, cache_bytes: int) -> None:
        total, max_sq, sum_sq = self._stats()
        self.center_ = total / self.n_reference
        spread = max(sum_sq / self.n_reference - float(self.center_ @ self.center_), 0.0)
        centre = float(self.center_ @ self.center_) > _CENTRE_ABOVE * spread
        self.shift_ = self.center_.astype(np.float32) if centre else None
        raw = self.reference_
        in_place = (
            not centre and not self._store and not self._memmap
            and raw.dtype == np.float32 and raw.flags.c_contiguous
        )
        self._ref32: np.ndarray | None = None
        if in_place:  # search the caller's array itself: no copy, no pass
            self._ref32 = raw
            self._max_sqnorm = max_sq
        elif self.n_reference * self.dim * 4 <= cache_bytes:
            self._ref32 = np.empty((self.n_reference, self.dim), dtype=np.float32)
            max_sq = 0.0
            for s, e in self._chunks:
                self._ref32[s:e] = _float32(self._rows(s, e), self.shift_)
                max_sq = max(max_sq, float(_sqnorms32(self._ref32[s:e]).max()))
            self._max_sqnorm = max_sq
        elif centre:  # chunks are shifted on the fly: bound their norms once
            max_sq = 0.0
            for s, e in self._chunks:
                max_sq = max(max_sq, float(_sqnorms32(self._chunk32(s, e)).max()))
            self._max_sqnorm = max_sq
        else:
            self._max_sqnorm = max_sq
        # float32 norms are within gamma_dim (relative) of the true ones: make R^2 an upper bound
        self._max_sqnorm = sqnorm_upper_bound(self._max_sqnorm, self.dim)

    def _chunk32(self, s: int, e: int) -> np.ndarray:
        if self._ref32 is not None:
            return self._ref32[s:e]
        return _float32(self._rows(s, e), self.shift_)

    def _take64(self, idx: np.ndarray) -> np.ndarray:
        """Original rows at ``idx`` (any shape) in float64, shape ``idx.shape + (dim,)``."""
        flat = idx.ravel()
        if self._store or self._memmap:
            order = np.argsort(flat, kind="stable")  # sorted gathers suit files and memmaps
            rows = np.empty((flat.size, self.dim))
            sorted_idx = flat[order]
            if self._store:
                uniq, inv = np.unique(sorted_idx, return_inverse=True)
                rows[order] = np.asarray(self.reference_.take_rows(uniq))[inv]
            else:
                rows[order] = self.reference_[sorted_idx]
        else:
            rows = np.asarray(self.reference_[flat], dtype=np.float64)
        return rows.reshape(*idx.shape, self.dim)

    # -- search ------------------------------------------------------------------------------

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
        if batch_size < 1:
            raise ValidationError(
                f"NearestNeighborIndex.search: batch_size must be >= 1; got {batch_size}."
            )
        dist = np.empty((len(q), k))
        idx = np.empty((len(q), k), dtype=np.int64)
        self.n_fallbacks_ = 0
        step = max(batch_size, _MIN_QUERY_BLOCK)
        for s in range(0, len(q), step):
            e = min(s + step, len(q))
            dist[s:e], idx[s:e] = self._search_batch(q[s:e], k)
        return dist, idx

    def candidates(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Float32 squared distances and indices of the ``k`` nearest rows by the float32
        search alone (shifted queries; ascending); the first step of :meth:`search`."""
        q32 = _float32(np.asarray(queries).reshape(len(queries), -1), self.shift_)
        if self.engine == "torch":
            return self._torch_candidates(q32, k)
        return self._faiss_candidates(q32, k)

    def _faiss_candidates(self, q32: np.ndarray, kc: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        if self._ref32 is not None:  # one call: faiss' own blocking over the whole reference
            return faiss.knn(q32, self._ref32, kc)
        best_d = np.full((len(q32), 0), np.inf, dtype=np.float32)
        best_i = np.zeros((len(q32), 0), dtype=np.int64)
        for s, e in self._chunks:
            d, i = faiss.knn(q32, self._chunk32(s, e), min(kc, e - s))
            best_d, best_i = _merge(best_d, best_i, d, i + s, kc)
        return best_d, best_i

    def _torch_candidates(self, q32: np.ndarray, kc: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        device = torch.device(self.device)
        on_device = self._ref32 is not None and (
            self.device == "cpu" or self._ref32.nbytes <= self._cache_bytes)
        if self._device_ref is None and on_device:  # else chunks are sent on every search
            ref = torch.from_numpy(self._ref32).to(device)
            self._device_ref = (ref, (ref * ref).sum(dim=1))
        q = torch.from_numpy(q32).to(device)
        qn = (q * q).sum(dim=1, keepdim=True)
        best_d = torch.empty((len(q32), 0), dtype=torch.float32, device=device)
        best_i = torch.empty((len(q32), 0), dtype=torch.int64, device=device)
        with torch.inference_mode():
            for s, e in self._chunks:
                if self._device_ref is not None:
                    r, rn = self._device_ref[0][s:e], self._device_ref[1][s:e]
                else:
                    r = torch.from_numpy(np.ascontiguousarray(self._chunk32(s, e))).to(device)
                    rn = (r * r).sum(dim=1)
                d = (qn + rn[None, :] - 2.0 * (q @ r.T)).clamp_min_(0.0)
                d, i = torch.topk(d, min(kc, e - s), dim=1, largest=False, sorted=True)
                best_d = torch.cat([best_d, d], dim=1)
                best_i = torch.cat([best_i, i + s], dim=1)
                if best_d.shape[1] > kc:
                    best_d, keep = torch.topk(best_d, kc, dim=1, largest=False, sorted=True)
                    best_i = torch.gather(best_i, 1, keep)
        return best_d.cpu().numpy(), best_i.cpu().numpy()

    def _unit_error(self) -> float:
        """The constant ``c`` of the float32 error bound ``c (|q|^2 + R^2)``.

        ``2 gamma_dim`` for the dot product and the norms (any summation order), ``4 u`` for
        rounding the shifted vectors to float32, ``6 u`` for the final sums, with slack; times
        1.001, which also covers the float64 evaluation of the refined distances. A torch
        matmul that may round its inputs to TF32 or bfloat16 adds ``4 u`` of that format.
        """
        c = float32_error_unit(self.dim) / 1.001
        if self.engine == "torch":
            import torch

            if torch.get_float32_matmul_precision() != "highest":
                c += 4.0 * _U_BF16  # the CPU may then multiply in bfloat16
            if self.device != "cpu" and torch.backends.cuda.matmul.allow_tf32:
                c += 4.0 * _U_TF32
        return 1.001 * c

    def _margin(self, k: int) -> int:
        """Extra candidates: ``margin``, or k / 8 for long lists (dense neighbourhoods, e.g.
        overlapping time-series windows, need more room for the certificate)."""
        return max(self.margin, k // 8)

    def _search_batch(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q32 = _float32(q, self.shift_)
        kc = min(self.n_reference, k + self._margin(k))
        if self.engine == "torch":
            cand_d, cand_i = self._torch_candidates(q32, kc)
        else:
            cand_d, cand_i = self._faiss_candidates(q32, kc)
        err = self._unit_error() * (_sqnorms32(q32).astype(np.float64) + self._max_sqnorm)
        out_d, out_i, bad = refine_candidates(
            q, cand_d, cand_i, k, err, self._sqdist64, complete=kc >= self.n_reference
        )
        if bad.size:
            self.n_fallbacks_ += int(bad.size)
            out_d[bad], out_i[bad] = self._search_float64(q[bad], k)
        return np.sqrt(np.maximum(out_d, 0.0)), out_i

    def exact_sqdist(self, q: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Float64 squared distances between the queries ``q`` and the rows ``idx`` (one row
        per query), as sums of squared differences of the original values."""
        return self._sqdist64(q, idx)

    def _sqdist64(self, q: np.ndarray, idx: np.ndarray) -> np.ndarray:
        diff = self._take64(idx)
        diff -= q
        return np.einsum("ij,ij->i", diff, diff)

    def _search_float64(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The queries float32 could not settle: the same three steps with float64 matrix
        products (rows shifted by the float64 mean), then, for what even that cannot settle
        (ties over more rows than candidates), a brute force by sums of squared differences."""
        q64 = np.asarray(q, dtype=np.float64) - self.center_
        kc = min(self.n_reference, 2 * k + self._margin(k))
        best_d = np.full((len(q64), 0), np.inf)
        best_i = np.zeros((len(q64), 0), dtype=np.int64)
        q_sq = np.einsum("ij,ij->i", q64, q64)
        max_sq = 0.0
        for s, e in self._chunks:
            block = np.asarray(self._rows(s, e), dtype=np.float64) - self.center_
            r_sq = np.einsum("ij,ij->i", block, block)
            max_sq = max(max_sq, float(r_sq.max()))
            d = np.maximum(q_sq[:, None] + r_sq[None, :] - 2.0 * (q64 @ block.T), 0.0)
            kj = min(kc, e - s)
            part = np.argpartition(d, kj - 1, axis=1)[:, :kj] if kj < e - s else (
                np.broadcast_to(np.arange(e - s), d.shape))
            best_d, best_i = _merge(best_d, best_i, np.take_along_axis(d, part, axis=1),
                                    part + s, kc)
        du = self.dim * _U64
        unit = 1.001 * (2.0 * du / (1.0 - du) + 16.0 * _U64)
        err = unit * (q_sq + max_sq / (1.0 - 2.0 * (self.dim + 2) * _U64))
        out_d, out_i, bad = refine_candidates(
            q, best_d, best_i, k, err, self._sqdist64, complete=kc >= self.n_reference
        )
        if bad.size:
            out_d[bad], out_i[bad] = self._brute_force(q[bad], k)
        return out_d, out_i

    def _brute_force(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Float64 exhaustive search by sums of squared differences (no cancellation), ties
        by index: for queries with exact ties over more rows than even the float64 stage
        keeps as candidates."""
        q64 = np.asarray(q, dtype=np.float64)
        out_d = np.empty((len(q64), k))
        out_i = np.empty((len(q64), k), dtype=np.int64)
        for r, query in enumerate(q64):
            best_d, best_i = np.empty(0), np.empty(0, dtype=np.int64)
            for s, e in self._chunks:
                diff = np.asarray(self._rows(s, e), dtype=np.float64) - query
                cat_d = np.concatenate([best_d, np.einsum("ij,ij->i", diff, diff)])
                cat_i = np.concatenate([best_i, np.arange(s, e)])
                keep = np.lexsort((cat_i, cat_d))[:k]
                best_d, best_i = cat_d[keep], cat_i[keep]
            out_d[r], out_i[r] = best_d, best_i
        return out_d, out_i


def float32_error_unit(dim: int) -> float:
    """``c`` such that a float32 squared L2 distance of ``dim``-vectors, computed by any
    summation order (expanded ``|q|^2 + |r|^2 - 2 q.r`` or direct differences) from float32
    roundings of the true vectors, is within ``c (|q|^2 + |r|^2)`` of the true one:
    ``2 gamma_dim + 16 u``, times 1.001 (see the module docstring)."""
    du = dim * _U32
    return 1.001 * (2.0 * du / (1.0 - du) + 16.0 * _U32)


def sqnorm_upper_bound(max_sqnorm32: float, dim: int) -> float:
    """An upper bound of a squared norm whose float32 value is ``max_sqnorm32``."""
    return max_sqnorm32 / (1.0 - 2.0 * (dim + 2) * _U32)


def refine_candidates(
    q: np.ndarray, cand_d: np.ndarray, cand_i: np.ndarray, k: int, err: np.ndarray,
    sqdist64: Any, *, complete: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact float64 top ``k`` from approximate candidates, and which queries to search again.

    Parameters
    ----------
    q : array (n_queries, dim)
        The queries (original values).
    cand_d, cand_i : arrays (n_queries, n_candidates)
        Approximate squared distances (ascending per row; ``inf`` and any index for missing
        candidates) and reference indices.
    k : int
        Neighbours wanted (``<= n_candidates``).
    err : float64 array (n_queries,) or None
        Bound on ``|approximate - true|`` of every squared distance of the query (rows outside
        the candidates included). Candidates further than ``2 err`` beyond the k-th cannot be
        in the top k and are not recomputed. ``None``: no bound (e.g. product quantization),
        every candidate is recomputed and no query is certified.
    sqdist64 : callable ``(q_rows, idx) -> float64 squared distances``
        The exact evaluation of one candidate per query.
    complete : bool
        The candidates are the whole reference (nothing to certify).

    Returns
    -------
    sq_distances : float64 (n_queries, k)
        Exact squared distances, ascending, ties by index.
    indices : int64 (n_queries, k)
    uncertain : int64 array
        Queries whose answer the bound cannot certify (to be searched again exactly); empty
        when ``err`` is ``None`` or ``complete``.
    """
    cand_d = np.asarray(cand_d, dtype=np.float64)
    cand_i = np.asarray(cand_i, dtype=np.int64)
    valid = np.isfinite(cand_d) & (cand_i >= 0)
    if err is None:
        n_refine = valid.sum(axis=1)
    else:
        # candidates that may be in the true top k: distance <= k-th + 2 err
        n_refine = (cand_d <= (cand_d[:, k - 1] + 2.0 * err)[:, None]).sum(axis=1)
        n_refine = np.maximum(n_refine, k)
    exact = np.full(cand_d.shape, np.inf)
    for c in range(int(n_refine.max()) if len(n_refine) else 0):
        rows = np.flatnonzero((n_refine > c) & valid[:, c])
        if rows.size:
            exact[rows, c] = sqdist64(q[rows], cand_i[rows, c])
    order = np.lexsort((cand_i, exact), axis=1)[:, :k]
    out_d = np.take_along_axis(exact, order, axis=1)
    out_i = np.take_along_axis(cand_i, order, axis=1)
    if err is None or complete:
        return out_d, out_i, np.empty(0, dtype=np.int64)
    # rows outside the candidates are at least the last candidate's distance minus err; when
    # a candidate was left unrefined, that is already beyond the k-th by more than err
    full = np.flatnonzero(n_refine >= cand_d.shape[1])
    bound = cand_d[full, -1] - err[full]
    return out_d, out_i, full[~(bound > out_d[full, -1])]


def _check_torch_device(device: str) -> None:
    """A one-line error for a torch device that does not exist here."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValidationError(
            f"NearestNeighborIndex: device must be a torch device such as 'cpu' or 'cuda'; got "
            f"{device!r} ({exc}). Check ${DEVICE_ENV}."
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValidationError(
            f"NearestNeighborIndex: device is {device!r} but no CUDA device is available; use "
            f"device='cpu' (or unset ${DEVICE_ENV})."
        )


def _merge(
    best_d: np.ndarray, best_i: np.ndarray, d: np.ndarray, i: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest of two candidate lists per row, by (distance, index)."""
    cat_d = np.concatenate([best_d, d], axis=1)
    cat_i = np.concatenate([best_i, i.astype(np.int64, copy=False)], axis=1)
    keep = np.lexsort((cat_i, cat_d), axis=1)[:, :k]
    return np.take_along_axis(cat_d, keep, axis=1), np.take_along_axis(cat_i, keep, axis=1)


def merge_topk(
    parts: list[tuple[np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge exact per-part results ``(distances, global indices)`` into the exact top ``k``
    of their union, ties by the smaller index (the merge of sharded searches)."""
    best_d, best_i = parts[0]
    for d, i in parts[1:]:
        best_d, best_i = _merge(best_d, best_i, d, i, k)
    return best_d[:, :k], best_i[:, :k]


def knn(
    queries: np.ndarray, reference: np.ndarray, k: int, *, chunk_size: int = 16384,
    batch_size: int = 4096, cache_bytes: int = 2**30, device: str | None = None,
    engine: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest neighbours of ``queries`` in ``reference`` (L2, float64 distances)."""
    index = NearestNeighborIndex(reference, chunk_size=chunk_size, cache_bytes=cache_bytes,
                                 device=device, engine=engine)
    return index.search(queries, k, batch_size=batch_size)


__all__ = [
    "DEVICE_ENV",
    "NearestNeighborIndex",
    "RowStore",
    "check_array",
    "collapse_duplicates",
    "default_device",
    "float32_error_unit",
    "knn",
    "merge_topk",
    "refine_candidates",
    "sqnorm_upper_bound",
]
