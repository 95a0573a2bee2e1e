"""``probekit reference …``: the command-line side of the reference pipeline.

``probekit reference train --preset P --n N --out DIR [--steps S] [--seed] [--device]
[--stop-after-mem LEVEL]`` trains (or resumes) one run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from probekit.reference.config import PRESETS

Handler = Callable[[argparse.Namespace], int]


def add_reference_arguments(p: argparse.ArgumentParser, parser_class: type) -> Handler:
    """Add the ``reference`` actions to ``p``; return the dispatching handler."""
    sub = p.add_subparsers(dest="reference_command", metavar="ACTION", parser_class=parser_class)
    sub.required = True
    help_text = "train (or resume) one reference run"
    t = sub.add_parser("train", help=help_text, description=help_text)
    t.add_argument("--preset", required=True, choices=PRESETS,
                   help="celeba32: the paper's U-Net on CelebA (GPU); digits, digits-small: CPU")
    t.add_argument("--n", type=int, required=True, help="training-set size (first n images)")
    t.add_argument("--out", required=True, help="run directory (resumed when it exists)")
    t.add_argument("--steps", type=int, help="optimizer steps (default: the preset's)")
    t.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    t.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    t.add_argument("--stop-after-mem", type=float, metavar="LEVEL",
                   help="evaluate nn-ratio at every checkpoint and stop once f_mem >= LEVEL "
                   "at two consecutive checkpoints")
    t.add_argument("--width", type=int, help="base width W (celeba32) or C (digits)")
    t.add_argument("--optimizer", choices=("sgd", "adam"),
                   help="celeba32: sgd (paper, lr 0.01) or adam (lr 1e-4)")
    t.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    t.add_argument("--data-root", help="celeba32: folder holding img_align_celeba/")
    t.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    t.add_argument("--quiet", action="store_true", help="print nothing but errors")
    t.set_defaults(reference_handler=train_command)

    def run(args: argparse.Namespace) -> int:
        return args.reference_handler(args)

    return run


def train_command(args: argparse.Namespace) -> int:
    """``probekit reference train``."""
    import torch

    from probekit.reference.config import preset
    from probekit.reference.train import describe, train

    if args.threads:
        torch.set_num_threads(args.threads)
    options = {"root": args.data_root} if args.data_root else {}
    cfg = preset(args.preset, n=args.n, width=args.width, optimizer=args.optimizer, lr=args.lr,
                 steps=args.steps, seed=args.seed, data_options=options)
    out = Path(args.out)
    callback = None
    if args.stop_after_mem is not None:
        callback = memorization_callback(cfg)
    if not args.quiet:
        print(describe(cfg), file=sys.stderr)
    outcome = train(cfg, out, device=args.device, callback=callback,
                    stop_after_mem=args.stop_after_mem, quiet=args.quiet)
    if not args.quiet:
        how = "stopped: f_mem reached the level twice" if outcome.stopped_early else "done"
        print(f"{how} at step {outcome.last_step}; {len(outcome.checkpoints)} checkpoints in "
              f"{out} ({outcome.train_steps_per_s:.1f} training steps/s, "
              f"{outcome.seconds:.0f} s in all)")
    return 0


def memorization_callback(cfg):
    """nn-ratio on the run's own sampler settings, prepared once on the training set."""
    from probekit.reference.data import load_splits
    from probekit.reference.train import ProbeCallback
    from probekit.registry import get_probe

    train_images = load_splits(cfg.data).train
    probe = get_probe("nn-ratio")().prepare(train_images)
    return ProbeCallback([probe], n_samples=cfg.sampler.n_samples, seed=cfg.sampler.seed)


__all__ = ["add_reference_arguments", "memorization_callback", "train_command"]
