"""nn-ratio against a training set too big to keep searching in memory: in-memory exact vs the
sharded exact index vs IVF + exact re-ranking (several nprobe) vs scikit-learn brute force (on
a subsample of the queries), in one process so the ratios compare like with like.

Data: synthetic clustered vectors (``--clusters`` Gaussian clusters) with planted copies: of
the ``--queries`` generated samples, 10% are training rows plus noise of 1% of the within-
cluster spread (memorized by construction), the rest are fresh draws from the mixture. The
training set is written once to ``--data`` as a float32 ``.npy`` (1,000,000 x 512 is 2 GB; put
it under /tmp, not in the repository) and the index is built next to it (build time reported,
not part of the comparison).

For every method: search seconds (min and median of ``--repeats``, round-robin), peak memory
(growth of the process's peak RSS during the search; the in-memory method's 2 GB of loaded
training features are reported apart), recall@2 against the exact answer on *all* queries,
f_mem with its 95% bootstrap CI, and how many memorization decisions differ from exact search.
The load average is recorded before and after.

Usage:
    python benchmarks/bench_index.py --data /tmp/pk-index-bench          # 10k x 1M x 512
    python benchmarks/bench_index.py --data /tmp/pk-index-small --quick  # 2k x 50k x 64
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import time
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from probekit.index import FeatureIndex, build_index
from probekit.neighbors import NearestNeighborIndex
from probekit.stats import bootstrap_ci

K_RATIO = 1 / 3


def _reset_peak() -> int:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _rss("VmHWM")


def _rss(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def make_data(folder: Path, n: int, dim: int, n_queries: int, n_clusters: int, seed: int = 0
              ) -> tuple[Path, np.ndarray, np.ndarray]:
    """``train.npy`` (written in chunks, once), the queries and which of them are copies."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.npy"
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    spread = 0.5
    if not path.exists():
        tmp = folder / "train.npy.tmp"
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
        step = 65536
        for s in range(0, n, step):
            r = np.random.default_rng([seed, s])
            m = min(step, n - s)
            arr[s : s + m] = centres[r.integers(n_clusters, size=m)] + spread * r.normal(
                size=(m, dim)).astype(np.float32)
        arr.flush()
        del arr
        os.replace(tmp, path)
    train = np.load(path, mmap_mode="r")
    r = np.random.default_rng([seed, 999])
    n_copies = n_queries // 10
    fresh = centres[r.integers(n_clusters, size=n_queries - n_copies)] + spread * r.normal(
        size=(n_queries - n_copies, dim)).astype(np.float32)
    rows = np.sort(r.choice(n, size=n_copies, replace=False))
    copies = np.asarray(train[rows]) + 0.01 * spread * r.normal(size=(n_copies, dim)).astype(
        np.float32)
    queries = np.vstack([copies, fresh]).astype(np.float32)
    is_copy = np.arange(n_queries) < n_copies
    return path, queries, is_copy


def memorized(dist: np.ndarray) -> np.ndarray:
    d1, d2 = dist[:, 0], dist[:, 1]
    return np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 1.0) < K_RATIO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder for train.npy and the index")
    parser.add_argument("--quick", action="store_true", help="2,000 x 50,000 x 64")
    parser.add_argument("--train", type=int, help="training vectors (default 1,000,000)")
    parser.add_argument("--dim", type=int, help="dimensions (default 512)")
    parser.add_argument("--queries", type=int, help="generated samples (default 10,000)")
    parser.add_argument("--clusters", type=int, help="clusters (default 1,000)")
    parser.add_argument("--shards", type=int, default=4, help="shards (default 4)")
    parser.add_argument("--chunk-rows", type=int, default=32768,
                        help="rows per chunk of the sharded search (default 32,768)")
    parser.add_argument("--nlist", type=int, help="IVF lists (default: 4 sqrt(n))")
    parser.add_argument("--nprobe", default="2,4,8,16", help="comma-separated nprobe values")
    parser.add_argument("--rerank", type=int, default=16, help="candidates re-ranked per shard")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method (default 3)")
    parser.add_argument("--sklearn-queries", type=int, default=200,
                        help="seeded random queries for the scikit-learn baseline (its time "
                        "scaled linearly)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", help="only these methods, comma-separated: in-memory, "
                        "sharded, ivf, sklearn (in-memory always runs: it is the reference)")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    n, dim, nq, nc = (50_000, 64, 2_000, 100) if args.quick else (1_000_000, 512, 10_000, 1_000)
    n, dim, nq, nc = args.train or n, args.dim or dim, args.queries or nq, args.clusters or nc
    faiss.omp_set_num_threads(args.threads)
    folder = Path(args.data)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    path, queries, is_copy = make_data(folder, n, dim, nq, nc)
    data_s = time.perf_counter() - t0
    print(f"index benchmark: {nq} queries x {n} training x {dim} dims ({n * dim * 4 / 2**30:.2f} "
          f"GiB float32), {nc} clusters, {args.threads} threads; load {load_before[0]:.2f}",
          flush=True)
    nprobes = [int(v) for v in args.nprobe.split(",") if v.strip()]
    train_mm = np.load(path, mmap_mode="r")
    index_dir = folder / f"index-{args.shards}"
    t0 = time.perf_counter()
    with threadpool_limits(limits=args.threads):
        build_index(train_mm, index_dir, {
            "shards": args.shards, "mode": "approximate", "nlist": args.nlist,
            "rerank": args.rerank, "collapse_duplicates": False, "chunk_rows": 65536,
        }, source=str(path), quiet=True)
    build_s = time.perf_counter() - t0
    print(f"  index built in {build_s:.1f} s (data {data_s:.1f} s)", flush=True)

    def in_memory():
        train = np.load(path)  # the whole training set in RAM, as an in-memory probe holds it
        loaded = _reset_peak()
        start = time.perf_counter()
        out = NearestNeighborIndex(train).search(queries, 2)
        sec = time.perf_counter() - start
        peak = _rss("VmHWM") - loaded
        del train
        gc.collect()
        return out, sec, peak

    def sharded():
        with FeatureIndex.open(index_dir, mode="exact", chunk_rows=args.chunk_rows) as ix:
            base = _reset_peak()
            start = time.perf_counter()
            out = ix.search(queries, 2)
            return out, time.perf_counter() - start, _rss("VmHWM") - base

    def approximate(nprobe):
        def run():
            with FeatureIndex.open(index_dir, nprobe=nprobe, recall_floor=0.0) as ix:
                ix._searchers()  # load the IVF files first: opening is not searching
                base = _reset_peak()
                start = time.perf_counter()
                out = ix.search_approximate(queries, 2)
                sec = time.perf_counter() - start
                peak = _rss("VmHWM") - base
                start = time.perf_counter()
                ix.search(queries, 2)  # again, with the built-in recall measurement
                with_recall = time.perf_counter() - start
                report = {k: v for k, v in ix.last_search_.items()
                          if not isinstance(v, np.ndarray)}
                ivf_mb = sum((index_dir / sh["ivf"]).stat().st_size
                             for sh in ix.manifest["shards"]) / 2**20
                return out, sec, peak, with_recall, report, ivf_mb
        return run

    sk_q = min(nq, args.sklearn_queries)
    sk_rows = np.sort(np.random.default_rng(1).choice(nq, size=sk_q, replace=False))

    def sklearn_brute():
        from sklearn.neighbors import NearestNeighbors

        train = np.load(path)
        base = _reset_peak()
        start = time.perf_counter()
        nn = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(train)
        d, i = nn.kneighbors(queries[sk_rows])
        sec = (time.perf_counter() - start) * nq / sk_q
        peak = _rss("VmHWM") - base
        del train, nn
        gc.collect()
        return (d, i), sec, peak

    chosen = set((args.methods or "in-memory,sharded,ivf,sklearn").split(","))
    methods = {"in-memory exact": in_memory}
    if "sharded" in chosen:
        methods["sharded exact"] = sharded
    if "ivf" in chosen:
        methods.update({f"IVF-Flat nprobe={p}": approximate(p) for p in nprobes})
    if "sklearn" in chosen:
        methods["sklearn brute"] = sklearn_brute
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    extra: dict[str, dict] = {m: {} for m in methods}
    outputs: dict[str, tuple] = {}
    with threadpool_limits(limits=args.threads):
        for rep in range(args.repeats):
            for name, fn in methods.items():
                if name == "sklearn brute" and rep:
                    continue  # one run of the slow baseline
                res = fn()
                outputs[name] = res[0]
                seconds[name].append(res[1])
                extra[name]["peak_extra_rss_mb"] = max(
                    extra[name].get("peak_extra_rss_mb", 0.0), res[2] / 2**20)
                if len(res) > 3:
                    extra[name]["search_with_recall_measurement_s"] = res[3]
                    extra[name]["built_in_report"] = res[4]
                    extra[name]["ivf_files_mb"] = res[5]
                print(f"  [{rep}] {name}: {res[1]:.2f} s  (load {os.getloadavg()[0]:.2f})",
                      flush=True)
    load_after = os.getloadavg()

    exact_d, exact_i = outputs["in-memory exact"]
    exact_mem = memorized(exact_d)
    rows = {}
    for name in methods:
        d, i = outputs[name]
        sub = sk_rows if name == "sklearn brute" else slice(None)
        mem = memorized(d)
        hits = [len(set(a) & set(b)) for a, b in zip(i, exact_i[sub], strict=True)]
        ci = bootstrap_ci(mem, n_resamples=1000, confidence=0.95, seed=0)
        rows[name] = {
            "min_s": min(seconds[name]), "median_s": statistics.median(seconds[name]),
            "runs_s": seconds[name],
            "recall_at_2": float(np.sum(hits) / (2 * len(hits))),
            "f_mem": float(mem.mean()), "f_mem_ci": [float(ci[0]), float(ci[1])],
            "decisions_differing_from_exact": int(np.sum(mem != exact_mem[sub])),
            "queries": len(hits), **extra[name],
        }
    base = rows["in-memory exact"]
    for row in rows.values():
        row["speedup_vs_in_memory_exact_median"] = base["median_s"] / row["median_s"]
    if "sharded exact" in rows:
        rows["sharded exact"]["identical_to_in_memory"] = bool(
            np.array_equal(outputs["sharded exact"][1], exact_i)
            and np.array_equal(outputs["sharded exact"][0], exact_d))
    features_mb = n * dim * 4 / 2**20
    result = {
        "size": {"queries": nq, "train": n, "dim": dim, "clusters": nc, "copies": int(
            is_copy.sum())},
        "training_features_mb": features_mb, "shards": args.shards,
        "chunk_rows": args.chunk_rows, "threads": args.threads, "repeats": args.repeats,
        "index_build_s": build_s, "load_before": load_before, "load_after": load_after,
        "planted_copies_found_by_exact": float(exact_mem[is_copy].mean()),
        "fresh_flagged_by_exact": float(exact_mem[~is_copy].mean()),
        "methods": rows,
    }
    print(f"  {'method':24s} {'min s':>8s} {'median s':>9s} {'x exact':>8s} {'recall@2':>9s} "
          f"{'f_mem':>7s} {'95% CI':>15s} {'flips':>6s} {'peak MB':>8s}")
    for name, row in rows.items():
        print(f"  {name:24s} {row['min_s']:8.2f} {row['median_s']:9.2f} "
              f"{row['speedup_vs_in_memory_exact_median']:8.1f} {row['recall_at_2']:9.4f} "
              f"{row['f_mem']:7.4f} [{row['f_mem_ci'][0]:.4f}, {row['f_mem_ci'][1]:.4f}] "
              f"{row['decisions_differing_from_exact']:6d} {row['peak_extra_rss_mb']:8.0f}")
    if "sharded exact" in rows:
        sh = rows["sharded exact"]
        print(f"  training features {features_mb:.0f} MB; sharded exact identical to in-memory: "
              f"{sh['identical_to_in_memory']}; sharded/in-memory time "
              f"{sh['median_s'] / base['median_s']:.3f} (median), "
              f"{sh['min_s'] / base['min_s']:.3f} (min); sharded peak / features "
              f"{sh['peak_extra_rss_mb'] / features_mb:.3f}")
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
