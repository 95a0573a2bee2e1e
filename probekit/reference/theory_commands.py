"""``probekit reference theory …``: figures and tables of the paper's theory (random-features
spectrum and dynamics, the Gaussian-mixture sweep)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from probekit.cli import text_table as _table
from probekit.validation import (
    check_memory,
    check_output_dir,
    finite_float,
    positive_int,
    seed_int,
)


def positive_float(text: str) -> float:
    """``argparse`` type: a finite number > 0."""
    import argparse

    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0; got {text!r}")
    return value


def fraction(text: str) -> float:
    """``argparse`` type: a fraction in (0, 1]."""
    import argparse

    value = finite_float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1]; got {text!r}")
    return value


def _check_random_features(args: argparse.Namespace, psi_ns: list[float], who: str) -> None:
    """The output folder, and the random-features problem's memory: p = psi_p d features,
    n = psi_n d samples; the p x p matrices dominate."""
    check_output_dir(args.out, who=who, name="--out")
    if not args.name or "/" in args.name or args.name in (".", ".."):
        from probekit.errors import ValidationError

        raise ValidationError(f"{who}: --name must be a file name stem; got {args.name!r}.")
    p = args.psi_p * args.d
    n = max(psi_ns) * args.d
    check_memory(8 * (4 * p * p + 2 * n * p + n * args.d), who=who,
                 what=f"d = {args.d}, p = {p:.0f} features and n = {n:.0f} samples",
                 fix="Lower --d, --psi-p or --psi-n.")


def add_theory_actions(sub: Any, parser_class: type) -> None:
    """Add ``theory spectrum|dynamics|gmm`` to the ``reference`` actions ``sub``; the group's
    dispatcher calls ``args.reference_handler``."""
    text = "the paper's theory: random-features spectrum and dynamics, Gaussian-mixture sweep"
    theory = sub.add_parser("theory", help=text, description=text)
    actions = theory.add_subparsers(dest="theory_command", metavar="WHAT",
                                    parser_class=parser_class)
    actions.required = True
    text = "Fig. 4: spectrum of U (exact, Gaussian-equivalent, theory) and the slow-bulk edges"
    s = actions.add_parser("spectrum", help=text, description=text)
    s.add_argument("--psi-n", type=positive_float, default=8.0, help="n/d (default 8)")
    text = "Fig. 5: train/test loss and score error along gradient flow; tau_mem vs psi_n"
    d = actions.add_parser("dynamics", help=text, description=text)
    d.add_argument("--psi-n", type=positive_float, nargs="+", default=[4, 8, 16, 32],
                   help="n/d values (default 4 8 16 32)")
    for q, name in ((s, "theory-spectrum"), (d, "theory-dynamics")):
        q.add_argument("--out", required=True, help="folder for the PNG, JSON (and CSV)")
        q.add_argument("--name", default=name, help=f"file name stem (default {name})")
        q.add_argument("--d", type=positive_int, default=100,
                       help="data dimension (default 100)")
        q.add_argument("--psi-p", type=positive_float, default=64.0, help="p/d (default 64)")
        q.add_argument("--t", type=positive_float, default=0.1,
                       help="diffusion time (default 0.1)")
        q.add_argument("--seed", type=seed_int, default=0,
                       help="seed of W and the data (default 0)")
        q.add_argument("--threads", type=positive_int, help="BLAS threads (default: all cores)")
    s.set_defaults(reference_handler=_theory_spectrum)
    d.set_defaults(reference_handler=_theory_dynamics)
    text = "Gaussian-mixture sweep over n and W: tau_gen, tau_mem, scaling exponents"
    g = actions.add_parser("gmm", help=text, description=text)
    g.add_argument("--out", required=True, help="sweep folder (runs, scaling/, figure, tables)")
    g.add_argument("--n", type=positive_int, nargs="+", default=[128, 256, 512, 1024],
                   help="training-set sizes at the base width (default 128 256 512 1024)")
    g.add_argument("--widths", type=positive_int, nargs="*", default=[64, 128, 256],
                   help="widths W of the W-sweep (default 64 128 256)")
    g.add_argument("--width-n", type=positive_int, default=128,
                   help="n of the W-sweep (default 128)")
    g.add_argument("--base-width", type=positive_int, default=128,
                   help="W of the n-sweep (default 128)")
    g.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                   help="adam (default: fits a CPU) or sgd (the paper's lr 6e-3, momentum 0.95)")
    g.add_argument("--lr", type=positive_float,
                   help="learning rate (default: adam 1e-3, sgd 6e-3)")
    g.add_argument("--steps-per-sample", type=positive_float,
                   help="step cap per training sample at W = 128 (default: adam 48, sgd 640)")
    g.add_argument("--mem-level", type=fraction, default=0.01,
                   help="tau_mem level (default 0.01)")
    g.add_argument("--stop-level", type=fraction, default=0.05,
                   help="stop a run once f_mem >= this twice in a row (default 0.05)")
    g.add_argument("--preset", choices=("gmm", "gmm-small"), default="gmm",
                   help="gmm (paper) or gmm-small (smoke)")
    g.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's)")
    g.add_argument("--quiet", action="store_true", help="print only the table")
    g.set_defaults(reference_handler=_theory_gmm)


def _blas_threads(threads: int | None):
    import contextlib

    if not threads:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(threads)


def _theory_spectrum(args: argparse.Namespace) -> int:
    from probekit.reference.random_features import write_spectrum_figure

    _check_random_features(args, [args.psi_n], "reference theory spectrum")
    with _blas_threads(args.threads):
        summary = write_spectrum_figure(args.out, name=args.name, d=args.d, psi_p=args.psi_p,
                                        psi_n=args.psi_n, t=args.t, seed=args.seed)
    rows = [[k, f"{v['low']:.4f}", f"{v['high']:.4f}", f"{v['low_vs_formula']:+.1%}",
             f"{v['high_vs_formula']:+.1%}"] for k, v in summary["slow_bulk_edges"].items()]
    print(_table(rows, ["slow bulk", "low", "high", "low vs formula", "high vs formula"]))
    print(f"{summary['seconds']:.0f} s; figure: {Path(args.out) / (args.name + '.png')}")
    return 0


def _theory_dynamics(args: argparse.Namespace) -> int:
    from probekit.reference.random_features import write_dynamics_figure

    _check_random_features(args, list(args.psi_n), "reference theory dynamics")
    with _blas_threads(args.threads):
        summary = write_dynamics_figure(
            args.out, name=args.name, d=args.d, psi_p=args.psi_p, psi_ns=args.psi_n, t=args.t,
            seed=args.seed, progress=lambda m: print(m, file=sys.stderr))
    rows = [[f"{r['psi_n']:g}", f"{r['tau_mem_predicted']:.4g}", f"{r['tau_gap_10']:.4g}",
             f"{r['tau_mem_measured']:.4g}", f"{r['tau_gap_90']:.4g}",
             f"{r['measured_over_predicted']:.2f}", f"{r['tau_gen']:.3g}"]
            for r in summary["runs"]]
    print(_table(rows, ["psi_n", "predicted", "gap 10%", "gap 50%", "gap 90%",
                        "50%/predicted", "tau_gen"]))
    sc = summary["scaling"]
    print(f"log-log slope vs psi_n: measured {sc['slope_measured']:.2f}, formula "
          f"{sc['slope_predicted']:.2f}; {summary['seconds']:.0f} s")
    return 0


def _theory_gmm(args: argparse.Namespace) -> int:
    import torch

    from probekit.reference.gmm_sweep import format_sweep, run_sweep

    check_output_dir(args.out, who="reference theory gmm", name="--out")
    widest = max([args.base_width, *args.widths])
    check_memory(20 * 8 * widest ** 2 + 16 * 8 * max([*args.n, args.width_n]) * widest,
                 who="reference theory gmm", what=f"a score network of width {widest}",
                 fix="Lower --widths or --base-width.")
    if args.threads:
        torch.set_num_threads(args.threads)

    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    summary = run_sweep(args.out, ns=args.n, widths=args.widths, width_n=args.width_n,
                        base_width=args.base_width, optimizer=args.optimizer, lr=args.lr,
                        steps_per_sample=args.steps_per_sample, mem_level=args.mem_level,
                        stop_level=args.stop_level, preset_name=args.preset, progress=say)
    print(format_sweep(summary))
    print(f"{summary['seconds']:.0f} s; figure: {Path(args.out) / 'theory-gmm.png'}")
    return 0


__all__ = ["add_theory_actions"]
