"""What the checkpoint-series evaluator costs beyond the work it orchestrates, and whether its
memory grows with the number of checkpoints.

Per checkpoint the evaluator loads the checkpoint, has the adapter generate samples, runs the
measures (feature extraction, kNN, bootstrap), then commits: kept samples and per-sample
artifacts written atomically, one SQLite transaction, the config's step list, the observation
hook, the progress bar. Its *overhead* is everything but sampling and measuring::

    overhead = wall time of the checkpoint - time in adapter.generate - time in measure.evaluate

(the checkpoint's wall time runs from the end of the previous commit to the end of this one, so
loading, checks, commit and bookkeeping are all in the overhead). Two scenarios:

    sampled        a small torch denoiser (MLP, 64 -> 512 -> 512 -> 64) runs DDIM for
                   ``--ddim-steps`` steps on ``--n-samples`` 8x8 samples per checkpoint: the
                   cheapest honest stand-in for a diffusion model (real U-Nets cost far more,
                   so the overhead's share only shrinks)
    pre-generated  the ``samples`` adapter reads ``step-<step>.npy`` files: sampling is a file
                   read, the worst case for the overhead's share

Both probe with ``nn-ratio`` against the 1297 bundled digits. Memory: ``--memory-checkpoints``
cheap checkpoints are evaluated while the process's resident memory (RSS, /proc) and Python's
traced allocations (tracemalloc) are recorded after each commit; the growth per checkpoint is
the slope of a least-squares line over the second half of the run.

Usage:
    python benchmarks/bench_evaluator.py                 # ~1 minute on one core
    python benchmarks/bench_evaluator.py --quick         # a few seconds
    python benchmarks/bench_evaluator.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from probekit import evaluate_series, hookimpl, register_plugin
from probekit.store import load_timings

HERE = Path(__file__).resolve().parent


def rss_mib() -> float:
    """Current resident set size of this process, MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Recorder:
    """Observation hook: time and memory right after each checkpoint's commit."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.times, self.rss, self.traced, self.steps = [], [], [], []

    @hookimpl
    def checkpoint_evaluated(self, run_dir, step, results):
        self.times.append(time.perf_counter())
        self.rss.append(rss_mib())
        self.traced.append(tracemalloc.get_traced_memory()[0] / 2**20
                           if tracemalloc.is_tracing() else float("nan"))
        self.steps.append(step)


# -- the sampler of the "sampled" scenario --------------------------------------------------------

SAMPLER_SOURCE = '''
"""DDIM (eta = 0) with a small random MLP denoiser on 8x8 samples; seeded initial noise."""
import numpy as np
import torch

torch.set_num_threads(1)
DDIM_STEPS = int({ddim_steps})
BETAS = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
ABAR = torch.cumprod(1 - BETAS, 0).float()
NETS = {{}}


def net(step):
    # one network per checkpoint (a stand-in for loading weights)
    if step not in NETS:
        gen = torch.Generator().manual_seed(step)
        layers = [torch.nn.Linear(65, 512), torch.nn.SiLU(), torch.nn.Linear(512, 512),
                  torch.nn.SiLU(), torch.nn.Linear(512, 64)]
        model = torch.nn.Sequential(*layers)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
        NETS.clear()
        NETS[step] = model.eval()
    return NETS[step]


@torch.inference_mode()
def generate(step, n, seed):
    model = net(step)
    x = torch.randn((n, 64), generator=torch.Generator().manual_seed(seed))
    times = torch.linspace(999, 0, DDIM_STEPS).long()
    for i, t in enumerate(times):
        t_in = torch.full((n, 1), float(t) / 1000)
        eps = model(torch.cat([x, t_in], 1))
        a = ABAR[t]
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        a_prev = ABAR[times[i + 1]] if i + 1 < len(times) else torch.tensor(1.0)
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x.clamp(-1, 1).reshape(n, 1, 8, 8).numpy()
'''


def per_checkpoint(run_dir: Path, recorder: Recorder) -> list[dict]:
    """Wall, generate, measure and overhead seconds of every checkpoint but the first (whose
    wall time includes preparing the reference)."""
    timings = {t["step"]: t for t in load_timings(run_dir)}
    rows = []
    for i in range(1, len(recorder.steps)):
        t = timings[recorder.steps[i]]
        wall = recorder.times[i] - recorder.times[i - 1]
        work = t["seconds_generate"] + t["seconds_measures"]
        rows.append({"step": recorder.steps[i], "wall": wall, "generate": t["seconds_generate"],
                     "measures": t["seconds_measures"], "overhead": wall - work,
                     "overhead_share": (wall - work) / wall})
    return rows


def summarize(rows: list[dict]) -> dict:
    share = np.array([r["overhead_share"] for r in rows])
    over = np.array([r["overhead"] for r in rows])
    return {
        "checkpoints": len(rows),
        "wall_median_s": float(np.median([r["wall"] for r in rows])),
        "generate_median_s": float(np.median([r["generate"] for r in rows])),
        "measures_median_s": float(np.median([r["measures"] for r in rows])),
        "overhead_median_ms": float(np.median(over) * 1e3),
        "overhead_max_ms": float(over.max() * 1e3),
        "overhead_share_median": float(np.median(share)),
        "overhead_share_p90": float(np.quantile(share, 0.9)),
        "overhead_share_max": float(share.max()),
    }


def slope(values: list[float]) -> float:
    """Least-squares growth per checkpoint over the second half."""
    y = np.asarray(values[len(values) // 2 :], dtype=float)
    if len(y) < 2:
        return float("nan")
    x = np.arange(len(y), dtype=float)
    return float(np.polyfit(x, y, 1)[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--memory-checkpoints", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="6 checkpoints, 60 for memory")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.checkpoints, args.memory_checkpoints = 6, 60
    torch.set_num_threads(1)
    recorder = Recorder()
    register_plugin(recorder, name="bench-recorder")
    from probekit_plugins.datasets.digits import load_digits_pool

    train, _ = load_digits_pool()
    report: dict = {"machine": {"cpu_count": os.cpu_count(), "torch_threads": 1,
                                "python": sys.version.split()[0]},
                    "settings": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "train.npy", train)
        steps = [int(s) for s in np.unique(np.geomspace(1, 10**6, args.checkpoints).round())]

        # -- sampled: a torch DDIM sampler through the callable adapter -------------------------
        (tmp / "sampler.py").write_text(SAMPLER_SOURCE.format(ddim_steps=args.ddim_steps))
        recorder.reset()
        evaluate_series(f"{tmp / 'sampler.py'}:generate", adapter="callable",
                        train=tmp / "train.npy", probes="nn-ratio", out=tmp / "sampled",
                        n_samples=args.n_samples, steps=steps, quiet=True, reports=False)
        sampled = per_checkpoint(tmp / "sampled", recorder)
        report["sampled"] = summarize(sampled)

        # -- pre-generated: step files read by the samples adapter -------------------------------
        series = tmp / "series"
        series.mkdir()
        rng = np.random.default_rng(0)
        for step in steps:
            np.save(series / f"step-{step:08d}.npy",
                    rng.uniform(-1, 1, (args.n_samples, 1, 8, 8)).astype(np.float32))
        recorder.reset()
        evaluate_series(series, train=tmp / "train.npy", probes="nn-ratio",
                        out=tmp / "pregenerated", n_samples=args.n_samples, quiet=True,
                        reports=False)
        report["pre_generated"] = summarize(per_checkpoint(tmp / "pregenerated", recorder))

        # -- memory over many checkpoints ----------------------------------------------------------
        mem_steps = list(range(args.memory_checkpoints))
        cheap = tmp / "cheap.py"
        cheap.write_text(
            "import numpy as np\n"
            "def generate(step, n, seed):\n"
            "    return np.random.default_rng(seed).uniform(-1, 1, (n, 1, 8, 8))\n")
        recorder.reset()
        tracemalloc.start()
        started = rss_mib()
        evaluate_series(f"{cheap}:generate", adapter="callable", train=tmp / "train.npy",
                        probes="nn-ratio", out=tmp / "memory", n_samples=args.n_samples,
                        steps=mem_steps, quiet=True, reports=False)
        tracemalloc.stop()
        half = len(recorder.rss) // 2
        report["memory"] = {
            "checkpoints": len(recorder.rss),
            "rss_before_mib": started,
            "rss_after_first_checkpoint_mib": recorder.rss[0],
            "rss_at_half_mib": recorder.rss[half],
            "rss_at_end_mib": recorder.rss[-1],
            "rss_growth_per_checkpoint_kib": slope(recorder.rss) * 1024,
            "traced_at_half_mib": recorder.traced[half],
            "traced_at_end_mib": recorder.traced[-1],
            "traced_growth_per_checkpoint_kib": slope(recorder.traced) * 1024,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }

    s, p, m = report["sampled"], report["pre_generated"], report["memory"]
    print(f"evaluator overhead per checkpoint (nn-ratio, {args.n_samples} samples, "
          f"{len(steps) - 1} checkpoints timed)")
    print(f"  {'scenario':<15}{'wall':>9}{'generate':>10}{'measures':>10}{'overhead':>10}"
          f"{'share':>8}{'p90':>8}{'worst':>8}")
    for name, r in (("sampled", s), ("pre-generated", p)):
        print(f"  {name:<15}{r['wall_median_s']:>8.3f}s{r['generate_median_s']:>9.3f}s"
              f"{r['measures_median_s']:>9.3f}s{r['overhead_median_ms']:>8.1f}ms"
              f"{r['overhead_share_median']:>8.1%}{r['overhead_share_p90']:>8.1%}"
              f"{r['overhead_share_max']:>8.1%}")
    print(f"memory over {m['checkpoints']} checkpoints: RSS "
          f"{m['rss_after_first_checkpoint_mib']:.1f} -> {m['rss_at_half_mib']:.1f} -> "
          f"{m['rss_at_end_mib']:.1f} MiB "
          f"(second half: {m['rss_growth_per_checkpoint_kib']:+.2f} KiB/checkpoint); "
          f"traced Python/numpy {m['traced_at_half_mib']:.2f} -> {m['traced_at_end_mib']:.2f} MiB "
          f"({m['traced_growth_per_checkpoint_kib']:+.2f} KiB/checkpoint)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
