"""Duplicate and near-duplicate training items: collapsed before a nearest-neighbour ratio is
taken, so that a copy of a duplicated item still has a distinct second neighbour (DESIGN §5).

Bit-exact duplicates are the special case. The common real case is *near*-duplicates that
differ only by float rounding: overlapping windows of one recording, each normalized on its
own (TSGBench's preprocessing), hold the same stretch several times, and after the probe's own
z-normalization those copies differ by ~1e-7. Left alone, each acts as a second neighbour at
``d2 ≈ d1`` and no copy of it is ever flagged. Two rows are near-duplicates when their L2
distance is at most ``rtol`` times the set's *distance scale*, the root-mean-square distance
between two rows (``sqrt(2 * total variance)``), so the tolerance does not depend on units.

The search is exact (no approximation): rows are projected on one seeded random direction and
sorted; any pair within the tolerance is within it in projection too, so only pairs inside a
band of that width are candidates, and every candidate's float64 distance is computed.
Near-duplicate pairs are joined into connected groups; each group is represented by its
first row in the original order.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from probekit.errors import DataWarning, ValidationError

#: Default relative tolerance: rows closer than ``DEFAULT_RTOL`` x the distance scale are one.
#: Float32 rounding of O(1) values moves a row by ~1e-7 of the scale; genuinely different
#: samples are many orders of magnitude further apart.
DEFAULT_RTOL = 1e-6
#: Float64 values handled at once when computing distances of candidate pairs.
_CHUNK_VALUES = 1 << 22


@dataclass(frozen=True)
class DuplicateGroups:
    """Which rows of a set are (near-)duplicates of which.

    Attributes
    ----------
    kept : int64 array (n_groups,)
        Original index of each group's representative (its first row), ascending.
    group : int64 array (n_rows,)
        For every original row, the position in ``kept`` of its representative.
    n_exact : int
        Rows dropped as bit-exact repeats of an earlier row.
    n_near : int
        Further rows dropped as near-duplicates (within ``tolerance``).
    tolerance : float
        Absolute distance below which two rows were merged (``rtol * scale``).
    scale : float
        The set's distance scale: root-mean-square distance between two rows.
    """

    kept: np.ndarray
    group: np.ndarray
    n_exact: int
    n_near: int
    tolerance: float
    scale: float

    @property
    def n_collapsed(self) -> int:
        """Rows dropped in all."""
        return self.n_exact + self.n_near


def distance_scale(x: np.ndarray) -> float:
    """Root-mean-square L2 distance between two rows of ``x`` ``(n, d)``:
    ``sqrt(2 * sum_j var_j)`` (float64, read in chunks)."""
    n = len(x)
    if n < 2:
        return 0.0
    step = max(1, _CHUNK_VALUES // max(1, x.shape[1]))
    total = np.zeros(x.shape[1])
    for s in range(0, n, step):
        total += np.asarray(x[s : s + step], dtype=np.float64).sum(axis=0)
    mean = total / n
    ss = 0.0
    for s in range(0, n, step):
        centred = np.asarray(x[s : s + step], dtype=np.float64) - mean
        ss += float(np.einsum("ij,ij->", centred, centred))
    return float(np.sqrt(2.0 * ss / n))


def _close_pairs(u: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``(i, j)``, ``i != j``, of rows of ``u`` with ``||u_i - u_j|| <= tol``."""
    direction = np.random.default_rng(0).normal(size=u.shape[1])
    direction /= np.linalg.norm(direction)
    proj = u @ direction
    order = np.argsort(proj, kind="stable")
    sorted_proj = proj[order]
    ends = np.searchsorted(sorted_proj, sorted_proj + tol, side="right")
    widths = ends - np.arange(len(u)) - 1
    firsts, seconds = [], []
    pos = np.flatnonzero(widths > 0)
    step = max(1, _CHUNK_VALUES // u.shape[1])
    offset = 1
    while len(pos):
        a, b = order[pos], order[pos + offset]
        for s in range(0, len(a), step):
            diff = u[a[s : s + step]] - u[b[s : s + step]]
            close = np.einsum("ij,ij->i", diff, diff) <= tol * tol
            firsts.append(a[s : s + step][close])
            seconds.append(b[s : s + step][close])
        offset += 1
        pos = pos[widths[pos] >= offset]
    if not firsts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)


def find_duplicates(x: np.ndarray, *, rtol: float = DEFAULT_RTOL) -> DuplicateGroups:
    """Group the rows of ``x`` ``(n, ...)`` that are bit-exact or near duplicates.

    Parameters
    ----------
    x : array (n_rows, ...)
        Rows (flattened to vectors).
    rtol : float
        Rows within ``rtol * distance_scale(x)`` of each other are merged (transitively);
        ``0`` merges bit-exact repeats only.
    """
    if rtol < 0:
        raise ValidationError(f"find_duplicates: rtol must be >= 0; got {rtol}.")
    flat = np.ascontiguousarray(np.asarray(x).reshape(len(x), -1))
    n = len(flat)
    if n == 0:
        empty = np.empty(0, np.int64)
        return DuplicateGroups(empty, empty, 0, 0, 0.0, 0.0)
    _, first, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    n_exact = n - len(first)
    # exact-unique rows, in the order of their first occurrence
    order = np.argsort(first, kind="stable")
    uniq_first = first[order]
    rank = np.empty(len(first), dtype=np.int64)
    rank[order] = np.arange(len(first))
    exact_group = rank[inverse]  # row -> index into uniq_first
    scale = distance_scale(flat)
    tol = float(rtol) * scale
    component = np.arange(len(uniq_first))
    if tol > 0 and len(uniq_first) > 1:
        u = flat[uniq_first].astype(np.float64)
        a, b = _close_pairs(u, tol)
        if len(a):
            from scipy.sparse import coo_matrix
            from scipy.sparse.csgraph import connected_components

            m = len(uniq_first)
            graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(m, m))
            _, labels = connected_components(graph, directed=False)
            # representative of a component: its member with the smallest original index
            # (uniq_first is ascending, so the smallest position in it)
            lowest = np.full(labels.max() + 1, m, dtype=np.int64)
            np.minimum.at(lowest, labels, np.arange(m))
            component = lowest[labels]
    reps = np.unique(component)
    kept = uniq_first[reps]
    position = np.empty(len(uniq_first), dtype=np.int64)
    position[reps] = np.arange(len(reps))
    group = position[component[exact_group]]
    n_near = len(uniq_first) - len(reps)
    return DuplicateGroups(kept.astype(np.int64), group.astype(np.int64), int(n_exact),
                           int(n_near), tol, scale)


def duplicate_message(groups: DuplicateGroups, n_rows: int, *, who: str, what: str = "sample"
                      ) -> str:
    """One line that says what was collapsed (the text of the warning)."""
    parts = []
    if groups.n_exact:
        parts.append(f"{groups.n_exact} exact duplicate {what}(s)")
    if groups.n_near:
        parts.append(
            f"{groups.n_near} near-duplicate {what}(s) (within {groups.tolerance:.2g}, i.e. "
            f"{groups.tolerance / groups.scale:.0e} of the distance scale {groups.scale:.3g})"
        )
    return (
        f"{who}: the training set holds {' and '.join(parts)}; they were collapsed "
        f"({len(groups.kept)} distinct of {n_rows}) so that a copy of a duplicated {what} still "
        "has a distinct second neighbour."
    )


def collapse_duplicates(
    x: np.ndarray, *, who: str = "probekit", warn: bool = True, rtol: float = DEFAULT_RTOL
) -> tuple[np.ndarray, np.ndarray]:
    """Drop bit-exact and near-duplicate rows (:func:`find_duplicates`), keeping the first
    occurrence of each group; warn once, with the counts.

    Returns
    -------
    unique : array
        The rows of ``x`` without repeats, in their original order.
    kept : int64 array
        Original index of each kept row.
    """
    groups = find_duplicates(x, rtol=rtol)
    if groups.n_collapsed and warn:
        warnings.warn(duplicate_message(groups, len(x), who=who), DataWarning, stacklevel=2)
    return x[groups.kept], groups.kept


def ratios_near_one(ratio: np.ndarray, *, who: str, atol: float = 1e-6) -> str | None:
    """A warning line when most ``d1/d2`` ratios are within ``atol`` of 1: the symptom of a
    reference set whose near-duplicates were not collapsed (every sample then has two
    equally near neighbours and nothing can ever be flagged); ``None`` otherwise."""
    ratio = np.asarray(ratio, dtype=np.float64).reshape(-1)
    if ratio.size == 0:
        return None
    share = float(np.mean(np.abs(ratio - 1.0) <= atol))
    if share <= 0.5:
        return None
    return (
        f"{who}: {share:.0%} of the d1/d2 ratios are within {atol:g} of 1, so nothing can be "
        "flagged: the reference holds near-duplicates that were not collapsed (e.g. "
        "overlapping windows each normalized on its own). Keep collapse_duplicates on (raise "
        "duplicate_rtol if they differ by more than rounding) or give the raw recordings."
    )


__all__ = [
    "DEFAULT_RTOL",
    "DuplicateGroups",
    "collapse_duplicates",
    "distance_scale",
    "duplicate_message",
    "find_duplicates",
    "ratios_near_one",
]
