"""``probekit reference …`` and ``probekit demo``: the command-line side of the reference
pipeline.

``probekit reference train --preset P --n N --out DIR [--steps S] [--seed] [--device]
[--stop-after-mem LEVEL]`` trains (or resumes) one run; ``probekit reference sweep --preset P
--n N1 N2 … --out DIR [--jobs J]`` trains one run per n, evaluates each as it trains and writes
the scaling report; ``probekit demo`` is the digits sweep.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from probekit.reference.config import COMPILE_MODES, PRESETS
from probekit.validation import finite_float, non_negative_int, positive_int, seed_int

Handler = Callable[[argparse.Namespace], int]


def add_reference_arguments(p: argparse.ArgumentParser, parser_class: type) -> Handler:
    """Add the ``reference`` actions to ``p``; return the dispatching handler."""
    sub = p.add_subparsers(dest="reference_command", metavar="ACTION", parser_class=parser_class)
    sub.required = True
    help_text = "train (or resume) one reference run"
    t = sub.add_parser("train", help=help_text, description=help_text)
    t.add_argument("--preset", required=True, choices=PRESETS,
                   help="celeba32: the paper's U-Net on CelebA (GPU); mnist32: the same U-Net "
                   "on 32x32 MNIST digits; digits, digits-small, mnist32-small: CPU")
    t.add_argument("--n", type=positive_int, required=True,
                   help="training-set size (first n images)")
    t.add_argument("--out", required=True, help="run directory (resumed when it exists)")
    t.add_argument("--steps", type=positive_int, help="optimizer steps (default: the preset's)")
    t.add_argument("--seed", type=seed_int, default=0, help="training seed (default 0)")
    t.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    t.add_argument("--evaluate", action="store_true",
                   help="evaluate every checkpoint as it is reached (nn-ratio and the preset's "
                   "quality metric) into OUT/eval, with reports")
    t.add_argument("--stop-after-mem", type=finite_float, metavar="LEVEL",
                   help="evaluate as with --evaluate, and stop once f_mem >= LEVEL at two "
                   "consecutive checkpoints")
    t.add_argument("--metrics", help="with --evaluate: quality metrics, comma-separated "
                   "('' for none; default: fd on digits-cnn features for digits, fid for "
                   "celeba32)")
    t.add_argument("--width", type=positive_int,
                   help="base width W (celeba32, mnist32) or C (digits)")
    t.add_argument("--bf16", action="store_true",
                   help="train and sample under bf16 autocast (faster on recent CPUs and GPUs; "
                   "changes the numerics)")
    t.add_argument("--compile", choices=COMPILE_MODES, metavar="MODE",
                   help="torch.compile the training step: default, reduce-overhead (CUDA "
                   "graphs on a GPU) or max-autotune")
    t.add_argument("--optimizer", choices=("sgd", "adam"),
                   help="celeba32: sgd (paper, lr 0.01) or adam (lr 1e-4)")
    t.add_argument("--lr", type=finite_float, help="learning rate (default: the preset's)")
    t.add_argument("--data-root", help="celeba32: folder holding img_align_celeba/")
    t.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's)")
    t.add_argument("--quiet", action="store_true", help="print nothing but errors")
    t.set_defaults(reference_handler=train_command)

    help_text = "train one run per n, evaluate each as it trains, write the scaling report"
    w = sub.add_parser("sweep", help=help_text, description=help_text)
    w.add_argument("--preset", required=True, choices=PRESETS, help="as for train")
    w.add_argument("--n", type=positive_int, nargs="+", required=True, metavar="N",
                   help="training-set sizes, e.g. --n 16 32 64 128 256")
    w.add_argument("--out", required=True, help="sweep folder (n-<n>/ per run, scaling/)")
    w.add_argument("--jobs", type=positive_int, default=1,
                   help="runs trained at once (default 1)")
    w.add_argument("--threads", type=positive_int,
                   help="CPU threads in all, split between the jobs (default: all cores)")
    w.add_argument("--steps", type=positive_int, help="step cap per run (default: the preset's)")
    w.add_argument("--seed", type=seed_int, default=0, help="training seed (default 0)")
    w.add_argument("--width", type=positive_int, nargs="+", metavar="W",
                   help="base width W (celeba32, mnist32) or C (digits); several widths train "
                   "every (n, W) pair and add the grid analysis against W (grid.json/png)")
    w.add_argument("--ensemble", action="store_true",
                   help="train the runs of one width at once as one batched ensemble (vmap; "
                   "the same results as one at a time)")
    w.add_argument("--bf16", action="store_true",
                   help="train and sample under bf16 autocast (changes the numerics)")
    w.add_argument("--compile", choices=COMPILE_MODES, metavar="MODE",
                   help="torch.compile the training step (reduce-overhead: CUDA graphs)")
    w.add_argument("--device", default="cpu", help="torch device (default cpu)")
    w.add_argument("--mem-level", type=finite_float, help="tau_mem level of f_mem "
                   "(default: 0.05 digits, 0.01 celeba32)")
    w.add_argument("--stop-after-mem", type=finite_float, metavar="LEVEL",
                   help="stop a run once f_mem >= LEVEL at two consecutive checkpoints "
                   "(default: twice the mem level; 0 or less: never stop early)")
    w.add_argument("--min-steps", type=non_negative_int,
                   help="never stop a run before this step (default: 1000 digits and mnist32, "
                   "200000 celeba32)")
    w.add_argument("--metrics", help="quality metrics, comma-separated ('' for none; "
                   "default: fd on digits-cnn / mnist32-cnn features for digits / mnist32, fid "
                   "for celeba32)")
    w.add_argument("--data-root", help="celeba32: folder holding img_align_celeba/")
    w.add_argument("--quiet", action="store_true", help="print only the table")
    w.set_defaults(reference_handler=sweep_command)

    from probekit.reference.theory_commands import add_theory_actions

    add_theory_actions(sub, parser_class)

    def run(args: argparse.Namespace) -> int:
        return args.reference_handler(args)

    return run


def train_command(args: argparse.Namespace) -> int:
    """``probekit reference train``."""
    import dataclasses

    import torch

    from probekit.reference.config import preset
    from probekit.reference.sweep import train_and_evaluate
    from probekit.reference.train import describe, train

    check_reference_args(args, who="reference train")
    options = {"root": args.data_root} if args.data_root else {}
    cfg = preset(args.preset, n=args.n, width=args.width, optimizer=args.optimizer, lr=args.lr,
                 steps=args.steps, seed=args.seed, data_options=options)
    if args.bf16:
        cfg = dataclasses.replace(
            cfg, train=dataclasses.replace(cfg.train, autocast_bf16=True),
            sampler=dataclasses.replace(cfg.sampler, autocast_bf16=True))
    check_width_memory(cfg, who="reference train")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if not args.quiet:
        print(describe(cfg), file=sys.stderr)
    if args.evaluate or args.stop_after_mem is not None:
        measures = dataclasses.replace(
            _measures(args.preset, args.metrics), stop_level=args.stop_after_mem, min_steps=0)
        done = train_and_evaluate(cfg, out, measures, device=args.device,
                                  compile_mode=args.compile, quiet=args.quiet)
        last, stopped, speed = done["last_step"], done["stopped_early"], \
            done["train_steps_per_s"]
        seconds = done["seconds"]
    else:
        outcome = train(cfg, out, device=args.device, compile_mode=args.compile,
                        quiet=args.quiet)
        last, stopped, speed = outcome.last_step, outcome.stopped_early, \
            outcome.train_steps_per_s
        seconds = outcome.seconds
    if not args.quiet:
        how = "stopped: f_mem reached the level twice" if stopped else "done"
        where = f"; evaluation in {out / 'eval'}" if (out / "eval").exists() else ""
        print(f"{how} at step {last}; checkpoints in {out}{where} ({speed:.1f} training "
              f"steps/s, {seconds:.0f} s in all)")
    return 0


def check_reference_args(args: argparse.Namespace, *, who: str) -> None:
    """What ``reference train|sweep`` can refuse before anything is loaded or created: the
    output folder, the torch device, levels outside (0, 1], a learning rate that is not
    positive, quality metrics that are not registered."""
    from probekit.errors import ValidationError
    from probekit.validation import check_device, check_output_dir

    check_output_dir(args.out, who=who, name="--out")
    check_device(args.device, who=who, name="--device")
    lr = getattr(args, "lr", None)
    if lr is not None and not lr > 0:
        raise ValidationError(f"{who}: --lr must be > 0; got {lr}.")
    # f_mem is a fraction: a stop level is in [0, 1] (sweep: 0 or less never stops early),
    # the tau_mem level in (0, 1]
    for flag, low in (("stop_after_mem", 0.0), ("mem_level", None)):
        value = getattr(args, flag, None)
        never = flag == "stop_after_mem" and who.endswith("sweep")
        too_low = value is not None and not never and (
            value < low if low is not None else value <= 0)
        if value is not None and (value > 1 or too_low):
            bounds = "[0, 1]" if low is not None else "(0, 1]"
            raise ValidationError(
                f"{who}: --{flag.replace('_', '-')} must be in {bounds} (a fraction of samples)"
                f"{'; 0 or less: never stop early' if never else ''}; got {value}."
            )
    if args.metrics:
        from probekit.registry import get_metric

        for name in (m.strip() for m in args.metrics.split(",")):
            if name:
                get_metric(name)
    # --data-root is checked by the dataset, whose message says where to get CelebA
    ns = args.n if isinstance(args.n, list) else [args.n]
    repeated = sorted({n for n in ns if ns.count(n) > 1})
    if repeated:
        raise ValidationError(f"{who}: each --n may be given once; {repeated} repeat.")


def check_width_memory(cfg, *, who: str) -> None:
    """Refuse a U-Net width whose parameters (weights, gradients, optimizer state, EMA:
    about 4000 W^2 parameters of 4 bytes, five copies) would not fit in memory."""
    from probekit.validation import check_memory

    unet = getattr(cfg, "unet", None)
    width = getattr(unet, "base_width", None)
    if width:
        widest = int(width) * max(getattr(unet, "channel_mults", (4,)) or (4,))
        check_memory(20 * 250 * widest ** 2, who=who,
                     what=f"a U-Net of width {width}", fix="Lower --width.")


def _measures(preset_name: str, metrics: str | None):
    """The preset's default measures, with ``--metrics`` replacing its quality metrics."""
    import dataclasses

    from probekit.reference.sweep import default_measures

    measures = default_measures(preset_name)
    if metrics is None:
        return measures
    names = tuple(m.strip() for m in metrics.split(",") if m.strip())
    return dataclasses.replace(
        measures, metrics=names,
        settings={k: v for k, v in measures.settings.items() if k in names})


def sweep_command(args: argparse.Namespace) -> int:
    """``probekit reference sweep``."""
    import dataclasses

    from probekit.reference.sweep import format_table, sweep

    check_reference_args(args, who="reference sweep")
    from probekit.reference.config import preset

    widest = max(args.width) if args.width else None
    check_width_memory(preset(args.preset, n=max(args.n), width=widest, steps=args.steps,
                              seed=args.seed, data_options={"root": args.data_root}
                              if args.data_root else {}), who="reference sweep")
    measures = _measures(args.preset, args.metrics)
    changes: dict = {}
    if args.mem_level is not None:
        changes["mem_level"] = args.mem_level
        changes["stop_level"] = min(1.0, 2 * args.mem_level)
    if args.stop_after_mem is not None:
        changes["stop_level"] = args.stop_after_mem if args.stop_after_mem > 0 else None
    if args.min_steps is not None:
        changes["min_steps"] = args.min_steps
    measures = dataclasses.replace(measures, **changes)
    options = {"root": args.data_root} if args.data_root else {}
    summary = sweep(args.preset, args.n, args.out, jobs=args.jobs, threads=args.threads,
                    steps=args.steps, seed=args.seed, width=args.width, device=args.device,
                    measures=measures, data_options=options, ensemble=args.ensemble,
                    bf16=args.bf16, compile_mode=args.compile, quiet=args.quiet)
    print(format_table(summary))
    if not args.quiet:
        print(f"{summary['seconds']:.0f} s; scaling report: "
              f"{Path(args.out) / 'scaling' / 'report.html'}")
    return 0


__all__ = ["add_reference_arguments", "sweep_command", "train_command"]
