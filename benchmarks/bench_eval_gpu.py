"""What one checkpoint of an evaluation costs on a GPU, stage by stage, and the same on the CPU
at a small size for the ratio (issue 18 §2).

Two checkpoints are evaluated the way ``probekit evaluate`` does it:

``celeba32``
    a reference run of the paper's U-Net (preset ``celeba32``, trained for a few steps on a
    synthetic CelebA-shaped folder: the weights do not change the cost), sampled with the run's
    DDIM sampler through the ``ddpm`` adapter;
``diffusers``
    a CIFAR-size ``UNet2DModel`` (google/ddpm-cifar10-32's architecture, random weights) with a
    DDIM scheduler, through the ``diffusers`` adapter.

Stages, each timed alone (CUDA synchronized): sampling ``--samples`` images; Inception pool3
features (pytorch-fid's network, channels-last and batch-norm fused; the real weights when
found, else a seeded random state dict of the same shapes, which costs the same); digits-cnn
features (8x8 crops; CPU only, as the extractor is); the kNN of nn-ratio (k = 2 against the
training set, in pixels and in Inception space) with the candidate search on the device
(``NearestNeighborIndex(device=...)``, torch matrix products) and on the CPU (faiss), whose
answers must be identical (both are the exact float64 answer); and the measures' ``evaluate``
(nn-ratio, FID) with their reference side prepared beforehand.

With ``--device cuda`` the same stages then run on the CPU with ``--cpu-samples`` samples, and
the report gives seconds per 1,000 samples on each and their ratio. ``--tiny`` runs everything
on the CPU at toy sizes (8 samples, Inception's first block only) in about a minute (what CI
runs).

    python benchmarks/bench_eval_gpu.py --out OUT --device cuda            # 10,000 samples
    python benchmarks/bench_eval_gpu.py --out OUT --tiny                   # CI smoke run

Writes ``OUT/eval_gpu.jsonl`` (one JSON line per measurement) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _sync(device: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(device: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


# -- checkpoints --------------------------------------------------------------------------------


def reference_checkpoint(tmp: Path, device: str, tiny: bool) -> tuple[Any, np.ndarray, dict]:
    """A reference run trained for a few steps; its last checkpoint loaded by the ddpm
    adapter, and its training images."""
    from probekit_plugins.adapters.ddpm import DDPMAdapter

    from probekit.reference.config import preset
    from probekit.reference.train import list_checkpoints, load_training_data, train
    from probekit.types import Checkpoint

    if tiny:
        cfg = preset("digits-small", n=16, steps=2)
        name = "digits-small"
    else:
        from bench_celeba32_gpu import make_celeba_shaped

        n = 1024
        root = make_celeba_shaped(tmp / "celeba", n + 2048)
        cfg = preset("celeba32", n=n, steps=2, data_options={
            "root": str(root), "cache_dir": str(tmp / "cache")})
        name = "celeba32"
    train(cfg, tmp / f"run-{name}", device=device, quiet=True)
    step, path = list_checkpoints(tmp / f"run-{name}")[-1]
    adapter = DDPMAdapter(device=device, ddim_steps=2 if tiny else None)
    handle = adapter.load(Checkpoint(step, path))
    train_images = load_training_data(cfg, torch.device("cpu")).numpy()
    info = {"checkpoint": name, "sampler": f"DDIM-{2 if tiny else cfg.sampler.ddim_steps}",
            "sampler_batch": cfg.sampler.batch_size, "n_train": len(train_images)}
    return handle, train_images, info


def diffusers_checkpoint(tmp: Path, device: str, tiny: bool) -> tuple[Any, np.ndarray, dict]:
    """A ``UNet2DModel`` checkpoint (random weights) with a DDIM-50 scheduler."""
    import diffusers
    from probekit_plugins.adapters.diffusers import DiffusersAdapter

    from probekit.types import Checkpoint

    torch.manual_seed(0)
    if tiny:
        model = diffusers.UNet2DModel(
            sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
            block_out_channels=(8, 16), norm_num_groups=4,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"))
        shape, steps = (1, 8, 8), 2
    else:  # google/ddpm-cifar10-32's architecture (35.7M parameters)
        model = diffusers.UNet2DModel(
            sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
            block_out_channels=(128, 256, 256, 256),
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"))
        shape, steps = (3, 32, 32), 50
    root = tmp / "diffusers"
    model.save_pretrained(root / "checkpoint-0" / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=1000).save_pretrained(root / "scheduler")
    adapter = DiffusersAdapter(device=device, num_inference_steps=steps,
                               batch_size=64 if tiny else 500)
    handle = adapter.load(Checkpoint(0, root / "checkpoint-0"))
    rng = np.random.default_rng(0)
    train_images = rng.uniform(-1, 1, size=(64 if tiny else 5000, *shape)).astype(np.float32)
    info = {"checkpoint": "diffusers-unet2d", "sampler": f"DDIM-{steps}",
            "sampler_batch": adapter.settings.batch_size,
            "parameters": sum(p.numel() for p in model.parameters()),
            "n_train": len(train_images)}
    return handle, train_images, info


# -- one checkpoint -----------------------------------------------------------------------------


def inception_weights(tmp: Path) -> tuple[str, str]:
    """The real pytorch-fid weights when found, else seeded random ones of the same shapes."""
    from probekit_plugins.features import inception

    try:
        path, _ = inception.resolve_weights_path(None)
        return str(path), "pytorch-fid"
    except Exception:  # missing: the timing is the same with random weights
        path = tmp / inception.WEIGHTS_FILENAME
        if not path.exists():
            inception.write_random_weights(path, seed=0)
        return str(path), "random (same shapes; timing only)"


def evaluate_checkpoint(handle: Any, train_images: np.ndarray, *, n_samples: int,
                        device: str, weights: str, tiny: bool,
                        emit: Callable[[dict], None]) -> dict[str, float]:
    """Time every stage of one checkpoint on ``device``; return seconds by stage."""
    from probekit_plugins.features.digits_cnn import DigitsCNNFeatures
    from probekit_plugins.features.inception import InceptionFeatures
    from probekit_plugins.metrics.fid import FrechetInceptionDistance
    from probekit_plugins.probes.nn_ratio import NearestNeighborRatio

    from probekit.neighbors import NearestNeighborIndex

    seconds: dict[str, float] = {}

    def stage(name: str, fn: Callable[[], Any], **extra: Any) -> Any:
        try:
            out, sec = timed(device, fn)
        except Exception as exc:  # record and go on: one broken stage must not lose the rest
            emit({"stage": name, "device": device, "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc(limit=3)})
            return None
        seconds[name] = sec
        emit({"stage": name, "device": device, "samples": n_samples, "seconds": round(sec, 4),
              "per_1000_samples_s": round(sec / n_samples * 1000, 4), **extra})
        return out

    handle.generate(min(8, n_samples), seed=1)  # warm-up (cuDNN autotuning, allocator)
    x = stage("sampling", lambda: handle.generate(n_samples, seed=0))
    if x is None:
        return seconds
    value_range = (-1.0, 1.0) if x.min() < -0.01 else (0.0, 1.0)
    batch = 50 if device == "cpu" else 500
    dims = 64 if tiny else 2048  # tiny: pytorch-fid's first block only (same code path)
    inc = InceptionFeatures(weights=weights, device=device, batch_size=batch,
                            value_range=value_range, dims=dims)
    inc.extract(x[:2])  # load the network outside the timing
    feats = stage("inception", lambda: inc.extract(x), batch=batch, layout="channels-last")
    crops = np.ascontiguousarray(x[:, :1, :: max(1, x.shape[2] // 8), :: max(1, x.shape[3] // 8)]
                                 [:, :, :8, :8], dtype=np.float32)
    cnn = DigitsCNNFeatures(value_range=value_range)
    cnn.extract(crops[:2])
    stage("digits-cnn", lambda: cnn.extract(crops), note="CPU (the extractor has no device)")

    # the kNN of nn-ratio: candidates on the device, float64 refinement on the host
    train_flat = train_images.reshape(len(train_images), -1).astype(np.float32)
    spaces = {"pixels": (train_flat, x.reshape(len(x), -1).astype(np.float32))}
    if feats is not None:
        train_feats = inc.extract(train_images if train_images.shape[1] in (1, 3) else
                                  train_images[:, :1])
        spaces["inception"] = (train_feats, feats)
    for space, (ref, qry) in spaces.items():
        on_device = stage(f"knn-{space}", lambda ref=ref, qry=qry: NearestNeighborIndex(
            ref, device=device).search(qry, 2), engine="torch" if device != "cpu" else "faiss",
            n_reference=len(ref), dim=ref.shape[1])
        if device != "cpu" and on_device is not None:
            on_host = stage(f"knn-{space}-faiss-cpu", lambda ref=ref, qry=qry:
                            NearestNeighborIndex(ref, device="cpu").search(qry, 2))
            if on_host is not None:
                emit({"stage": f"knn-{space}-equal", "device": device,
                      "indices_equal": bool(np.array_equal(on_device[1], on_host[1])),
                      "distances_equal": bool(np.array_equal(on_device[0], on_host[0]))})

    probe = NearestNeighborRatio().prepare(train_images)
    stage("measure-nn-ratio", lambda: probe.evaluate(x))
    fid = FrechetInceptionDistance(weights=weights, device=device, forward_batch_size=batch,
                                   value_range=value_range, dims=dims)
    fid.prepare(train_images if not tiny else np.concatenate([train_images] * 2))
    stage("measure-fid", lambda: fid.evaluate(x))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for eval_gpu.jsonl")
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--samples", type=int, default=10_000, help="samples per checkpoint")
    parser.add_argument("--cpu-samples", type=int, default=200,
                        help="samples of the CPU run that gives the ratio (default 200)")
    parser.add_argument("--checkpoints", default="celeba32,diffusers",
                        help="which checkpoints: celeba32, diffusers (comma-separated)")
    parser.add_argument("--tiny", action="store_true", help="CPU, toy sizes (CI)")
    args = parser.parse_args(argv)
    device = "cpu" if args.tiny else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available (use --tiny on a CPU)")
    n = 8 if args.tiny else args.samples
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    context = {"torch": torch.__version__, "threads": torch.get_num_threads(),
               "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
               "load_average": os.getloadavg()[0]}

    def emit(row: dict) -> None:
        row = {**row, **context}
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / "eval_gpu.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    wanted = [c.strip() for c in args.checkpoints.split(",") if c.strip()]
    makers = {"celeba32": reference_checkpoint, "diffusers": diffusers_checkpoint}
    summary = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        weights, weights_kind = inception_weights(tmp)
        emit({"stage": "setup", "inception_weights": weights_kind, "device": device})
        for name in wanted:
            runs = [(device, n)] + ([("cpu", args.cpu_samples)] if device != "cpu" else [])
            per_device = {}
            for dev, count in runs:
                try:
                    handle, train_images, info = makers[name](tmp / dev, dev, args.tiny)
                except Exception as exc:
                    emit({"stage": "checkpoint", "checkpoint": name, "device": dev,
                          "error": f"{type(exc).__name__}: {exc}"})
                    continue
                emit({"stage": "checkpoint", "device": dev, **info})
                per_device[dev] = (count, evaluate_checkpoint(
                    handle, train_images, n_samples=count, device=dev, weights=weights,
                    tiny=args.tiny, emit=emit))
                with contextlib.suppress(Exception):
                    del handle
                    if dev.startswith("cuda"):
                        torch.cuda.empty_cache()
            for stage_name in sorted({s for _, secs in per_device.values() for s in secs}):
                row = {"checkpoint": name, "stage": stage_name}
                for dev, (count, secs) in per_device.items():
                    if stage_name in secs:
                        row[f"{'gpu' if dev != 'cpu' else 'cpu'}_per_1000_s"] = (
                            secs[stage_name] / count * 1000)
                if "gpu_per_1000_s" in row and "cpu_per_1000_s" in row:
                    row["cpu_over_gpu"] = row["cpu_per_1000_s"] / row["gpu_per_1000_s"]
                summary.append(row)
    emit({"stage": "summary", "rows": summary})
    print(f"{'checkpoint':18s} {'stage':26s} {'GPU s/1000':>11s} {'CPU s/1000':>11s} "
          f"{'CPU/GPU':>8s}")
    for row in summary:
        gpu = row.get("gpu_per_1000_s")
        cpu = row.get("cpu_per_1000_s")
        ratio = row.get("cpu_over_gpu")
        print(f"{row['checkpoint']:18s} {row['stage']:26s} "
              f"{'' if gpu is None else f'{gpu:11.3f}'} "
              f"{'' if cpu is None else f'{cpu:11.3f}'} "
              f"{'' if ratio is None else f'{ratio:8.1f}'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
