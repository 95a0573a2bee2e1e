"""Duplicate training items: collapsed before a nearest-neighbour ratio is taken, so that a copy
of a duplicated item still has a distinct second neighbour (DESIGN §5)."""

from __future__ import annotations

import warnings

import numpy as np

from probekit.errors import DataWarning


def collapse_duplicates(
    x: np.ndarray, *, who: str = "probekit", warn: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Drop exact duplicate rows, keeping the first occurrence.

    Returns
    -------
    unique : array
        The rows of ``x`` without repeats, in their original order.
    kept : int64 array
        Original index of each kept row.
    """
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    _, first = np.unique(flat, axis=0, return_index=True)
    kept = np.sort(first).astype(np.int64)
    n_dup = len(x) - len(kept)
    if n_dup and warn:
        warnings.warn(
            f"{who}: the training set holds {n_dup} exact duplicate sample(s); they were "
            f"collapsed ({len(kept)} distinct of {len(x)}) so that a copy of a duplicated sample "
            "still has a distinct second neighbour.",
            DataWarning,
            stacklevel=2,
        )
    return x[kept], kept


__all__ = ["collapse_duplicates"]
