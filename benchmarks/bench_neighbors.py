"""Speed of the nn-ratio computation (k = 2 exact neighbours, build + search as a probe does it)
against its engine and three baselines, interleaved in one process so the ratios compare like
with like on a shared machine.

    probekit   NearestNeighborIndex(train).search(queries, 2)          [exact, float64 answer]
    faiss      bare faiss: IndexFlatL2(dim).add(train).search(q, 2)    [float32; the ceiling]
    matmul     the float32 product queries @ train.T alone, in blocks of 4096 queries
    sklearn    NearestNeighbors(algorithm="brute").kneighbors(k=2)     [timed on a subset]
    paper      the paper code's brute force: for each batch of 100 samples, the norm of the
               difference to all training samples, then topk(2)         [torch; on a subset]

Every method runs ``--repeats`` times (round-robin, so load changes hit all methods alike); the
minimum and the median wall time are reported, with ratios to bare faiss, and the process's CPU
time (all threads; less sensitive to other processes on a shared machine). Slow baselines are
timed on a subset of the queries and scaled linearly. Peak memory is the growth of the
process's peak RSS during one run of each method (Linux /proc, reset between methods). The load
average is recorded before and after. Threads: ``--threads`` (default 2) for faiss, torch
and the BLAS.

``--stages`` also times probekit's own steps in CPU seconds (statistics pass / copy, float32
candidates, float64 refinement + certificate on those candidates).

Usage:
    python benchmarks/bench_neighbors.py                 # 10,000 x 50,000 x 1,024 (docs size)
    python benchmarks/bench_neighbors.py --queries 5000  # the issue's 5,000 x 50,000 x 1,024
    python benchmarks/bench_neighbors.py --quick         # 2,000 x 10,000 x 256
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

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
    """``(output, wall seconds, CPU seconds of the process, peak RSS growth in bytes)``."""
    base = _reset_peak()
    cpu = time.process_time()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    return out, seconds, time.process_time() - cpu, max(0, _rss_peak() - base)


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


def bare_faiss(train: np.ndarray, queries: np.ndarray, k: int):
    index = faiss.IndexFlatL2(train.shape[1])
    index.add(train)
    return index.search(queries, k)


def blocked_matmul(train: np.ndarray, queries: np.ndarray) -> float:
    total = 0.0
    for s in range(0, len(queries), 4096):
        total += float((queries[s : s + 4096] @ train.T)[0, 0])
    return total


def stages(train: np.ndarray, queries: np.ndarray, k: int = 2) -> dict[str, float]:
    """CPU seconds of probekit's steps: build (statistics, and the shifted copy if one is
    made), float32 candidates, the float64 refinement with its certificate (on those very
    candidates), and how many candidates per query the refinement recomputed."""
    from probekit.neighbors import float32_error_unit, refine_candidates

    cpu = time.process_time()
    index = NearestNeighborIndex(train)
    build = time.process_time() - cpu
    kc = k + index.margin
    cpu = time.process_time()
    cand_d, cand_i = index.candidates(queries, kc)
    candidates = time.process_time() - cpu
    calls = []

    def sqdist(q, i):
        calls.append(len(q))
        return index.exact_sqdist(q, i)

    cpu = time.process_time()
    q32 = np.asarray(queries, dtype=np.float32)
    err = float32_error_unit(index.dim) * (
        np.einsum("ij,ij->i", q32, q32).astype(np.float64) + index._max_sqnorm)
    _, _, uncertain = refine_candidates(queries, cand_d, cand_i, k, err, sqdist)
    refine = time.process_time() - cpu
    return {"build_cpu_s": build, "candidates_cpu_s": candidates, "refine_cpu_s": refine,
            "refined_per_query": sum(calls) / len(queries), "uncertain": len(uncertain),
            "copy_made": index._ref32 is not None and not np.shares_memory(index._ref32, train)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 x 10,000 x 256")
    parser.add_argument("--queries", type=int, help="number of queries (default 10,000)")
    parser.add_argument("--train", type=int, help="training vectors (default 50,000)")
    parser.add_argument("--dim", type=int, help="dimensions (default 1,024)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="threads (default 2)")
    parser.add_argument("--no-baselines", action="store_true",
                        help="only probekit, bare faiss and the matmul")
    parser.add_argument("--stages", action="store_true", help="time probekit's steps too")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    nq, nt, dim = (2_000, 10_000, 256) if args.quick else (10_000, 50_000, 1_024)
    nq, nt, dim = args.queries or nq, args.train or nt, args.dim or dim
    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    train = rng.standard_normal((nt, dim), dtype=np.float32)
    queries = rng.standard_normal((nq, dim), dtype=np.float32)
    queries[: nq // 10] = train[: nq // 10] + 0.01  # some near-copies
    load_before = os.getloadavg()
    print(f"nn-ratio kNN benchmark: {nq} queries x {nt} training x {dim} dims, "
          f"{args.threads} threads, {args.repeats} repeats; load {load_before[0]:.2f}")

    sub = min(nq, 400 if args.quick else 500)
    sk_sub = min(nq, 2000)
    tq, tt = torch.from_numpy(queries[:sub]), torch.from_numpy(train)
    methods = {
        "probekit": lambda: NearestNeighborIndex(train).search(queries, 2),
        "faiss": lambda: bare_faiss(train, queries, 2),
        "matmul": lambda: blocked_matmul(train, queries),
    }
    scale = {"probekit": 1.0, "faiss": 1.0, "matmul": 1.0}
    if not args.no_baselines:
        nn = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(train)
        methods["sklearn"] = lambda: nn.kneighbors(queries[:sk_sub])
        methods["paper"] = lambda: paper_brute_force(tq, tt)
        scale.update(sklearn=nq / sk_sub, paper=nq / sub)
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    cpu_seconds: dict[str, list[float]] = {m: [] for m in methods}
    peak: dict[str, float] = {}
    outputs = {}
    with threadpool_limits(limits=args.threads):
        for _ in range(args.repeats):
            for name, fn in methods.items():
                out, sec, cpu, mem = timed(fn)
                seconds[name].append(sec * scale[name])
                cpu_seconds[name].append(cpu * scale[name])
                peak[name] = max(peak.get(name, 0.0), mem / 2**20)
                outputs[name] = out
                print(f"    {name}: {sec * scale[name]:.2f} s wall, {cpu * scale[name]:.2f} s "
                      f"CPU (load {os.getloadavg()[0]:.2f})", flush=True)
        stage_times = stages(train, queries) if args.stages else None
    load_after = os.getloadavg()

    ours_i = outputs["probekit"][1]
    agreement = {"faiss": float((outputs["faiss"][1] == ours_i).all(axis=1).mean())}
    if "sklearn" in outputs:
        agreement["sklearn"] = float((outputs["sklearn"][1] == ours_i[:sk_sub]).all(axis=1).mean())
        agreement["paper"] = float((outputs["paper"].numpy() == ours_i[:sub]).all(axis=1).mean())
    summary = {
        name: {"min_s": min(v), "median_s": statistics.median(v), "runs_s": v,
               "cpu_min_s": min(cpu_seconds[name]), "cpu_runs_s": cpu_seconds[name],
               "peak_extra_rss_mb": peak[name]}
        for name, v in seconds.items()
    }
    base = summary["faiss"]
    for row in summary.values():
        row["ratio_to_faiss_min"] = row["min_s"] / base["min_s"]
        row["ratio_to_faiss_median"] = row["median_s"] / base["median_s"]
        row["cpu_ratio_to_faiss_min"] = row["cpu_min_s"] / base["cpu_min_s"]
    rows = {
        "size": {"queries": nq, "train": nt, "dim": dim},
        "threads": args.threads,
        "repeats": args.repeats,
        "load_before": load_before,
        "load_after": load_after,
        "subset_queries": {"paper": sub, "sklearn": sk_sub},
        "methods": summary,
        "index_agreement_with_probekit": agreement,
        "stages": stage_times,
    }
    labels = {
        "probekit": "probekit (exact, float64 answer)",
        "faiss": "bare faiss IndexFlatL2",
        "matmul": "float32 matmul alone",
        "sklearn": f"sklearn brute ({sk_sub} queries)",
        "paper": f"paper brute force ({sub} queries)",
    }
    print(f"  {'method':36s} {'min s':>8s} {'median s':>9s} {'/faiss':>7s} {'CPU s':>8s} "
          f"{'/faiss':>7s} {'peak MB':>8s}")
    for name, row in summary.items():
        print(f"  {labels[name]:36s} {row['min_s']:8.2f} {row['median_s']:9.2f} "
              f"{row['ratio_to_faiss_median']:7.2f} {row['cpu_min_s']:8.2f} "
              f"{row['cpu_ratio_to_faiss_min']:7.2f} {row['peak_extra_rss_mb']:8.0f}")
    ratio = summary["probekit"]
    print(f"  probekit / bare faiss: {ratio['ratio_to_faiss_min']:.3f} (min wall), "
          f"{ratio['ratio_to_faiss_median']:.3f} (median wall), "
          f"{ratio['cpu_ratio_to_faiss_min']:.3f} (min CPU time)")
    print("  neighbour agreement with probekit: "
          + ", ".join(f"{k} {v:.4f}" for k, v in agreement.items()))
    if stage_times:
        print("  probekit stages: " + ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in stage_times.items()))
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
