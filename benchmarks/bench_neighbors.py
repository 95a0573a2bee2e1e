"""Speed of the nn-ratio computation (k = 2 exact neighbours) against three baselines, in one
process so that the ratios compare like with like.

    (a) the paper code's brute force: for each batch of 100 samples, the norm of the difference
        to all training samples, then topk(2)   [torch, float32]
    (b) scikit-learn NearestNeighbors(algorithm="brute").kneighbors(k=2)
    (c) the float32 matrix product queries @ train.T alone (the machine's ceiling)

Slow baselines are timed on a subset of the queries and scaled linearly (their cost is linear
in the number of queries); the subset is printed. Peak memory is the growth of the process's
peak RSS during each method (Linux /proc, reset between methods).

Usage:
    python benchmarks/bench_neighbors.py            # 10,000 x 50,000 x 1,024 (minutes)
    python benchmarks/bench_neighbors.py --quick    # 2,000 x 10,000 x 256
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

from probekit.neighbors import NearestNeighborIndex


def _reset_peak() -> int:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _rss_peak()


def _rss_peak() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def timed(fn):
    base = _reset_peak()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    return out, seconds, max(0, _rss_peak() - base)


def paper_brute_force(queries: torch.Tensor, train: torch.Tensor, piece: int = 1024):
    """Batches of 100 samples: ||x - train|| then topk(2) (train split in pieces to fit RAM)."""
    out = []
    for s in range(0, len(queries), 100):
        batch = queries[s : s + 100]
        dist = torch.cat([
            torch.linalg.vector_norm(batch[:, None, :] - train[None, p : p + piece], dim=-1)
            for p in range(0, len(train), piece)
        ], dim=1)
        out.append(torch.topk(dist, 2, dim=1, largest=False).indices)
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small size for a quick run")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    nq, nt, dim = (2_000, 10_000, 256) if args.quick else (10_000, 50_000, 1_024)
    rng = np.random.default_rng(0)
    train = rng.standard_normal((nt, dim), dtype=np.float32)
    queries = rng.standard_normal((nq, dim), dtype=np.float32)
    queries[: nq // 10] = train[: nq // 10] + 0.01  # some near-copies
    print(f"nn-ratio kNN benchmark: {nq} queries x {nt} training x {dim} dims, "
          f"{torch.get_num_threads()} threads")

    (ours, seconds_ours, mem_ours) = timed(
        lambda: NearestNeighborIndex(train).search(queries, 2)
    )
    _, seconds_gemm, mem_gemm = timed(lambda: queries @ train.T)

    sub = min(nq, 500 if not args.quick else 400)
    tq, tt = torch.from_numpy(queries[:sub]), torch.from_numpy(train)
    paper_idx, seconds_paper_sub, mem_paper = timed(lambda: paper_brute_force(tq, tt))
    seconds_paper = seconds_paper_sub * nq / sub

    sk_sub = min(nq, 2000)
    nn = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(train)
    (_sk_d, sk_i), seconds_sk_sub, mem_sk = timed(lambda: nn.kneighbors(queries[:sk_sub]))
    seconds_sk = seconds_sk_sub * nq / sk_sub

    agree_paper = float((paper_idx.numpy() == ours[1][:sub]).all(axis=1).mean())
    agree_sk = float((sk_i == ours[1][:sk_sub]).all(axis=1).mean())
    rows = {
        "size": {"queries": nq, "train": nt, "dim": dim},
        "probekit_s": seconds_ours,
        "paper_bruteforce_s": seconds_paper,
        "paper_subset_queries": sub,
        "sklearn_s": seconds_sk,
        "sklearn_subset_queries": sk_sub,
        "float32_matmul_s": seconds_gemm,
        "speedup_vs_paper": seconds_paper / seconds_ours,
        "speedup_vs_sklearn": seconds_sk / seconds_ours,
        "ratio_to_matmul": seconds_ours / seconds_gemm,
        "peak_extra_rss_mb": {"probekit": mem_ours / 2**20, "matmul": mem_gemm / 2**20,
                              "paper": mem_paper / 2**20, "sklearn": mem_sk / 2**20},
        "index_agreement": {"paper": agree_paper, "sklearn": agree_sk},
    }
    print(f"  probekit (exact, float64-refined)  {seconds_ours:8.2f} s   "
          f"peak +{mem_ours / 2**20:7.0f} MB")
    print(f"  (a) paper brute force              {seconds_paper:8.2f} s   "
          f"(x{rows['speedup_vs_paper']:.1f}; timed on {sub} queries)")
    print(f"  (b) sklearn NearestNeighbors       {seconds_sk:8.2f} s   "
          f"(x{rows['speedup_vs_sklearn']:.1f}; timed on {sk_sub} queries)")
    print(f"  (c) float32 matmul alone           {seconds_gemm:8.2f} s   "
          f"(probekit takes {rows['ratio_to_matmul']:.2f}x of it)")
    print(f"  neighbour agreement: paper {agree_paper:.4f}, sklearn {agree_sk:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
