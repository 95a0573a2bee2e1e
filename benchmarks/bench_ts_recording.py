"""Does ``subsequence-match`` catch copies when the training set is stride-1 windows of a real
recording, each z-scored on its own (TSGBench's preprocessing)? Issue 17's done-when, on real
data read offline:

* ``co2`` — Mauna Loa weekly CO₂, 1958-2001 (2284 weeks, 59 missing weeks interpolated),
  bundled with statsmodels (``statsmodels/datasets/co2/co2.csv``);
* ``ecg`` — 7500 samples of an MIT-BIH ECG record, bundled with sktime
  (``sktime/datasets/data/mitdb/mitdb.csv``, column ``data``).

Each recording is read by the ``recording`` dataset (windows of 64 at stride 1,
``normalization="window-zscore"``, split by time at 75%). Planted positives: noisy copies of
training windows (noise ``sigma`` in units of the window's own std, several levels) and splices
(three pieces of 21-22 steps from three training windows). Negatives: every held-out window
(a later period, never overlapping a training window). The probe (windows of 16 — what the
benchmark sets for 64-step series, short enough for 21-step splice pieces — and 32; stride 2)
is prepared three ways:

    bit-exact   the windows, duplicates collapsed only when bit-exact (the old behaviour; w=16)
    windows     the windows, near-duplicates collapsed (the fix)
    stretch     the raw training stretch (the most faithful reference)

Usage:
    python benchmarks/bench_ts_recording.py                 # both recordings, ~2-4 min idle
    python benchmarks/bench_ts_recording.py --quick         # co2 only, fewer samples
    python benchmarks/bench_ts_recording.py --out results.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from probekit import get_dataset, get_probe


def package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed; it ships the recording used here.")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)


RECORDINGS = {
    "co2": lambda: {"path": str(package_file("statsmodels", "datasets", "co2", "co2.csv")),
                    "missing": "interpolate"},
    "ecg": lambda: {"path": str(package_file("sktime", "datasets", "data", "mitdb",
                                             "mitdb.csv")), "columns": ["data"]},
}
NOISE = (0.02, 0.05, 0.1, 0.2)


def planted(train: np.ndarray, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    source = rng.choice(len(train), n, replace=False)
    for sigma in NOISE:
        out[f"copies σ={sigma}"] = train[source] + sigma * rng.normal(size=train[source].shape)
    splices = np.empty((n, *train.shape[1:]))
    bounds = (0, 21, 43, train.shape[1])
    for i in range(n):
        for j, src in enumerate(rng.choice(len(train), 3, replace=False)):
            splices[i, bounds[j]:bounds[j + 1]] = train[src, bounds[j]:bounds[j + 1]]
    out["splices"] = splices
    return out


def run(name: str, n: int, n_old: int, seed: int, windows: tuple[int, ...]) -> dict:
    ds = get_dataset("recording")(window=64, stride=1, normalization="window-zscore",
                                  **RECORDINGS[name]())
    splits = ds.load()
    sets = planted(splits.train, n, seed)
    sets["held-out windows"] = splits.holdout
    report = {"recording": name, "normalization": splits.normalization,
              "n_train_windows": len(splits.train), "n_holdout_windows": len(splits.holdout),
              "stretch_steps": int(sum(len(r) for r in splits.train_recordings)),
              "n_planted": n, "rows": {}, "seconds": {}}
    references = {"windows": splits.train, "stretch": list(splits.train_recordings)}
    for window in windows:
        for how, reference in references.items():
            column = f"{how} w={window}"
            started = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                probe = get_probe("subsequence-match")(window=window, stride=2)
                probe.prepare(reference)
            report["seconds"][f"prepare {column}"] = time.perf_counter() - started
            report[f"prepare_warnings {column}"] = [str(w.message) for w in caught]
            started = time.perf_counter()
            for label, samples in sets.items():
                result = probe.evaluate(samples)
                report["rows"].setdefault(label, {})[column] = {
                    "f_copied_series": result.value,
                    "median_ratio": result.values["median_ratio"], "n": len(samples)}
            report["seconds"][f"evaluate {column}"] = time.perf_counter() - started
    # the old behaviour, on a few copies only (its exact search falls back to brute force on
    # the near-ties, which makes it slow)
    started = time.perf_counter()
    old = get_probe("subsequence-match")(window=16, stride=2, duplicate_rtol=0.0)
    old.prepare(splits.train)
    for label in (f"copies σ={NOISE[1]}", "splices"):
        result = old.evaluate(sets[label][:n_old])
        report["rows"][label]["bit-exact w=16"] = {
            "f_copied_series": result.value, "median_ratio": result.values["median_ratio"],
            "n": n_old, "warnings": list(result.warnings)}
    report["seconds"]["bit-exact"] = time.perf_counter() - started
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--recordings", nargs="+", default=None, choices=sorted(RECORDINGS))
    parser.add_argument("--n", type=int, default=200, help="planted series per kind")
    parser.add_argument("--n-old", type=int, default=21, help="copies for the old behaviour")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--windows", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    names = args.recordings or (["co2"] if args.quick else ["co2", "ecg"])
    n = 40 if args.quick else args.n
    reports = []
    for name in names:
        started = time.perf_counter()
        report = run(name, n, min(args.n_old, 8) if args.quick else args.n_old, args.seed,
                     tuple(args.windows))
        report["wall_seconds"] = time.perf_counter() - started
        report["load_average"] = os.getloadavg()
        reports.append(report)
        print(f"\n{name}: {report['n_train_windows']} training windows, "
              f"{report['n_holdout_windows']} held-out windows; {report['normalization']}")
        columns = ["bit-exact w=16", *(f"{h} w={w}" for w in args.windows
                                         for h in ("windows", "stretch"))]
        print(f"{'set':18s}" + "".join(f"{c:>16s}" for c in columns))
        for label, row in report["rows"].items():
            cells = [f"{row[c]['f_copied_series']:.3f}" if c in row else "–" for c in columns]
            print(f"{label:18s}" + "".join(f"{c:>16s}" for c in cells))
        print("seconds:", {k: round(v, 1) for k, v in report["seconds"].items()},
              f"wall {report['wall_seconds']:.0f} s, load {report['load_average'][0]:.1f}")
    if args.out:
        Path(args.out).write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
