"""Shared numerics: percentile bootstrap confidence intervals (seeded).

Streaming float64 moments and the Fréchet distance live here too (see the image-metrics code).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from probekit.errors import ValidationError

#: Default number of bootstrap resamples and confidence level (DESIGN §5).
N_BOOTSTRAP = 1000
CONFIDENCE = 0.95


def bootstrap_ci(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] | str = "mean",
    *,
    n_resamples: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    max_block: int = 2**24,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``statistic(values)``.

    Parameters
    ----------
    values : array of shape (n_samples, ...)
        Per-sample values; resampling draws whole rows with replacement.
    statistic : "mean" or callable
        ``"mean"`` (vectorised) or a function mapping an array of resamples
        ``(n_resamples_block, n_samples, ...)`` to ``(n_resamples_block,)``.
    n_resamples, confidence, seed :
        Number of resamples, two-sided level, and the seed of the index draws.
    max_block : int
        Bound on the number of resampled values held at once (memory).
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    if not 0 < confidence < 1:
        raise ValidationError(f"bootstrap_ci: confidence must be in (0, 1); got {confidence}.")
    fn = (lambda r: r.mean(axis=1)) if statistic == "mean" else statistic
    rng = np.random.default_rng(seed)
    per_row = int(np.prod(values.shape[1:], dtype=np.int64)) if values.ndim > 1 else 1
    block = max(1, max_block // max(1, n * per_row))
    stats = np.empty(n_resamples)
    for s in range(0, n_resamples, block):
        e = min(s + block, n_resamples)
        idx = rng.integers(0, n, size=(e - s, n))
        stats[s:e] = fn(values[idx])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)
