"""Which engine should ``subsequence-match`` use: exact kNN over all training windows
(probekit.neighbors) or an FFT distance profile (MASS; Mueen et al. 2017)? Measured here, in one
process so that the numbers compare like with like.

    knn         the probe's engine: NearestNeighborIndex.search with Z + 1 neighbours (Z = size of
                the trivial-match zone), then the first non-trivial candidate as d2   [exact]
    knn-k2      the same search with only 2 neighbours (a lower bound of the kNN cost; it cannot
                give d2 because the second neighbour is usually a trivial match)
    fft         z-normalized distance profiles of every generated window against every training
                series via real FFTs (scipy.fft), then d1 and the zone-excluded d2 from the full
                profile                                                                  [float64]
    gemm        float64 matrix product of the normalized windows alone (the machine's ceiling
                for a dense method; no selection)

Each configuration is a random-walk-plus-sine dataset the size of a UCR set. The d1/d2 of the
fft engine are checked against the knn engine (max relative difference printed).

Usage:
    python benchmarks/bench_subsequence.py            # GunPoint-, OSULeaf- and ACSF1-sized sets
    python benchmarks/bench_subsequence.py --quick    # small sizes, a few seconds
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import scipy.fft
from probekit_plugins.probes.subsequence_match import SubsequenceMatch

from probekit.timeseries import sliding_windows, znormalize


def make_series(n: int, t: int, seed: int) -> np.ndarray:
    """Random walks plus a random sine: smooth, varied, no exact repeats."""
    rng = np.random.default_rng(seed)
    steps = np.cumsum(rng.normal(size=(n, t)), axis=1) / np.sqrt(t)
    time_axis = np.arange(t) / t
    sine = np.sin(2 * np.pi * rng.uniform(1, 6, (n, 1)) * time_axis + rng.uniform(0, 6.3, (n, 1)))
    return (steps + sine + 0.05 * rng.normal(size=(n, t)))[:, :, None]


def fft_engine(train: np.ndarray, samples: np.ndarray, window: int, stride: int,
               batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """d1 and zone-excluded d2 of every generated window from full z-normalized distance
    profiles (univariate). d^2 = 2 w (1 - QT / (w sigma)) with the query z-normalized."""
    t = train.shape[1]
    x = train[:, :, 0]
    p = t - window + 1
    windows = sliding_windows(train, window, 1)[:, :, :, 0]
    sigma = windows.std(axis=2)  # (n, p)
    nfft = scipy.fft.next_fast_len(t, real=True)
    fx = scipy.fft.rfft(x, nfft, axis=1)  # (n, f)
    q = znormalize(sliding_windows(samples, window, stride), 1e-8)[0][:, :, :, 0]
    q = q.reshape(-1, window)
    zone = window // 2
    d1 = np.empty(len(q))
    d2 = np.empty(len(q))
    for s in range(0, len(q), batch):
        qb = q[s : s + batch]
        fq = scipy.fft.rfft(qb[:, ::-1], nfft, axis=1)  # reversed: correlation by convolution
        qt = scipy.fft.irfft(fq[:, None, :] * fx[None], nfft, axis=2)[:, :, window - 1 : t]
        dist2 = np.maximum(2.0 * window * (1.0 - qt / (window * sigma[None])), 0.0)
        flat = dist2.reshape(len(qb), -1)
        best = np.argmin(flat, axis=1)
        d1[s : s + batch] = np.sqrt(flat[np.arange(len(qb)), best])
        series, start = np.divmod(best, p)
        lo, hi = np.maximum(start - zone, 0), np.minimum(start + zone, p - 1)
        rows = np.arange(len(qb))
        mask = np.zeros_like(dist2, dtype=bool)
        positions = np.arange(p)
        mask[rows, series] = (positions >= lo[:, None]) & (positions <= hi[:, None])
        d2[s : s + batch] = np.sqrt(np.where(mask, np.inf, dist2).reshape(len(qb), -1).min(1))
    return d1, d2


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run(config: dict) -> dict:
    train = make_series(config["n_train"], config["t"], seed=0)
    samples = make_series(config["n_samples"], config["t"], seed=1)
    w, stride = config["window"], config["stride"]
    probe = SubsequenceMatch(window=w, stride=stride)
    t_prepare, _ = timed(lambda: probe.prepare(train))
    vectors = znormalize(sliding_windows(samples, w, stride), 1e-8)[0].reshape(-1, w)
    index = probe.train_index_
    t_knn, win = timed(lambda: probe.match_windows(samples))
    t_k2, _ = timed(lambda: index.search(vectors, 2))
    t_fft, (d1, d2) = timed(lambda: fft_engine(train, samples, w, stride))
    ref = np.ascontiguousarray(index.reference_)
    t_gemm, _ = timed(lambda: [float((vectors[s : s + 256] @ ref.T).max())
                               for s in range(0, len(vectors), 256)])
    rel = max(
        float(np.max(np.abs(d1 - win["d1"].ravel()) / np.maximum(win["d1"].ravel(), 1e-3))),
        float(np.max(np.abs(d2 - win["d2"].ravel()) / win["d2"].ravel())),
    )
    flips = int(np.sum((d1 / d2 < probe.settings.k) != (win["ratio"].ravel() < probe.settings.k)))
    return {
        **config,
        "n_queries": len(vectors),
        "n_train_windows": index.n_reference,
        "n_candidates": probe.n_candidates_,
        "prepare_s": round(t_prepare, 3),
        "knn_s": round(t_knn, 3),
        "knn_k2_s": round(t_k2, 3),
        "fft_s": round(t_fft, 3),
        "gemm_s": round(t_gemm, 3),
        "fft_vs_knn_max_rel_diff": rel,
        "fft_vs_knn_decision_flips": flips,
    }


CONFIGS = {
    "quick": [
        {"name": "small", "n_train": 50, "t": 100, "n_samples": 50, "window": 16, "stride": 1},
        {"name": "small-long-window", "n_train": 50, "t": 200, "n_samples": 20, "window": 128,
         "stride": 1},
    ],
    "full": [
        {"name": "gunpoint-size", "n_train": 140, "t": 150, "n_samples": 256, "window": 32,
         "stride": 1},
        {"name": "osuleaf-size", "n_train": 309, "t": 427, "n_samples": 128, "window": 64,
         "stride": 1},
        {"name": "osuleaf-size-w128", "n_train": 309, "t": 427, "n_samples": 64, "window": 128,
         "stride": 1},
        {"name": "acsf1-size-w256", "n_train": 140, "t": 1460, "n_samples": 16, "window": 256,
         "stride": 4},
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = [run(c) for c in CONFIGS["quick" if args.quick else "full"]]
    keys = ["name", "n_queries", "n_train_windows", "window", "n_candidates", "knn_s",
            "knn_k2_s", "fft_s", "gemm_s", "fft_vs_knn_max_rel_diff", "fft_vs_knn_decision_flips"]
    print(" | ".join(keys))
    for r in results:
        print(" | ".join(f"{r[k]:.2e}" if isinstance(r[k], float) and k.endswith("diff")
                         else str(r[k]) for k in keys))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
