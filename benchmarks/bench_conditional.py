"""Planted truth for the conditional probes, at a larger scale than the tests: the tiny
text-to-image reference fine-tunes (``probekit.reference.text2image``), full and LoRA, evaluated
checkpoint by checkpoint with ``prompt-copy``, ``extraction``, ``noise-magnitude`` and
``nn-ratio`` (``scope=prompt``) through the ``diffusers-text2image`` adapter.

For every checkpoint it generates ``--per-prompt`` samples for each training caption, each
unseen caption (same form, classes no fine-tune image has) and each same-class unseen caption
(a fine-tune image's class word with an unseen pair), and prints one line per (method, step,
prompt family): the copy fraction in pixel space at a threshold calibrated on the
held-out digits (the 99th percentile of their nearest-training cosine similarity: fresh real
digits are not copies), the fraction of generations that copy *their own* training image,
the extraction rate and clique sizes, and the noise-magnitude AUC / flagged fraction of training
captions against unseen ones.

Usage::

    nice python benchmarks/bench_conditional.py --out /tmp/t2i [--per-prompt 12]
        [--checkpoints 100,200,400,800] [--guidance 3.0] [--json results.json]

The first run trains the reference runs (minutes on one CPU thread; cached under ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

import numpy as np


def main(argv: list[str] | None = None) -> dict:
    import torch

    from probekit import Checkpoint, get_adapter, get_probe
    from probekit.reference.text2image import TinyText2ImageConfig, build_runs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench-conditional")
    parser.add_argument("--per-prompt", type=int, default=12)
    parser.add_argument("--checkpoints", default=None, help="comma-separated steps")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps")
    parser.add_argument("--methods", default="full,lora")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = TinyText2ImageConfig()
    if args.checkpoints:
        steps = tuple(int(v) for v in args.checkpoints.split(","))
        config = replace(config, checkpoints=steps, lora_checkpoints=steps)
    started = time.perf_counter()
    runs = build_runs(args.out, config)
    print(f"reference runs ready in {time.perf_counter() - started:.0f} s "
          f"({runs.seconds or 'reused'}); load {os.getloadavg()[0]:.1f}", flush=True)
    families = {"train": runs.captions, "unseen": runs.unseen_captions,
                "same-class": runs.same_class_captions}
    conditions = [c for caps in families.values() for c in caps for _ in range(args.per_prompt)]
    family_of = np.array([f for f, caps in families.items() for _ in caps
                          for _ in range(args.per_prompt)])
    # copy threshold: fresh real digits are not copies
    copy = get_probe("prompt-copy")(features="pixels", threshold=1.0)
    copy.prepare(runs.train, holdout=runs.holdout, train_conditions=runs.captions)
    threshold = float(np.quantile(copy.holdout_similarity_, 0.99))
    print(f"copy threshold (99th pct of held-out nearest-training cosine): {threshold:.4f}")
    copy = get_probe("prompt-copy")(features="pixels", threshold=threshold)
    copy.prepare(runs.train, holdout=runs.holdout, train_conditions=runs.captions)
    extraction = get_probe("extraction")(min_clique=min(10, args.per_prompt))
    extraction.prepare(runs.train, train_conditions=runs.captions)
    noise = get_probe("noise-magnitude")(n_steps=5)
    noise.prepare(runs.train, train_conditions=runs.captions)
    out: dict = {"threshold": threshold, "rows": []}
    for method in args.methods.split(","):
        adapter = get_adapter("diffusers-text2image")(
            base=str(runs.base), num_inference_steps=args.steps, guidance_scale=args.guidance,
            batch_size=64, vae_batch_size=64)
        for step in runs.steps_of(method):
            t0 = time.perf_counter()
            handle = adapter.load(Checkpoint(step, runs.checkpoint(method, step)))
            images = handle.generate(len(conditions), seed=0, conditions=conditions)
            r_copy = copy.evaluate(images, conditions=conditions)
            r_ext = extraction.evaluate(images, conditions=conditions)
            trace_conds = [c for f in ("train", "unseen") for c in families[f]
                           for _ in range(4)]
            r_noise = noise.evaluate(model=handle, conditions=trace_conds)
            own = r_copy.per_sample["own_similarity"]
            for family in families:
                m = family_of == family
                sim = r_copy.per_sample["similarity"][m]
                row = {
                    "method": method, "step": step, "family": family,
                    "f_copy": float((sim > threshold).mean()),
                    "f_copy_own": float((own[m] > threshold).mean()) if family == "train"
                    else float("nan"),
                    "f_in_clique": float(r_ext.per_sample["in_clique"][m].mean()),
                    "max_clique": int(r_ext.per_sample["clique_size"][m].max()),
                }
                out["rows"].append(row)
                print(f"{method:4s} step {step:5d} {family:10s} f_copy {row['f_copy']:.2f} "
                      f"own {row['f_copy_own']:.2f} in-clique {row['f_in_clique']:.2f} "
                      f"max-clique {row['max_clique']:2d}", flush=True)
            v = r_noise.values
            print(f"{method:4s} step {step:5d} noise-magnitude auc "
                  f"{v.get('auc', float('nan')):.2f} f_flagged {v['f_flagged']:.2f} (train "
                  f"{v['mean_score_training']:.2f} / unseen {v.get('mean_score_unseen', 0):.2f}); "
                  f"{time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)
            out["rows"].append({"method": method, "step": step, "family": "noise-magnitude",
                                **{k: float(v) for k, v in r_noise.values.items()}})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
