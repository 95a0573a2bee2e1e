"""The training loop of the reference pipeline (shaped like nanoGPT's ``train.py`` and EDM's
``training_loop.py``).

A run directory holds ``config.json`` (``"kind": "probekit-reference-run"``), one
``ckpt-<step:08d>.pt`` per checkpoint step and a ``stats.jsonl`` log. Checkpoints carry their
config and load with ``torch.load(..., weights_only=True)``. Only the latest checkpoint keeps the
state needed to resume (optimizer, raw weights when sampling uses the EMA), so a dense schedule
stays small on disk; a killed run resumes from it and continues exactly as if never stopped,
because every random draw of step ``s`` comes from generators seeded by ``(seed, s)``.

Evaluating as training goes works with any loop: pass ``callback(step, handle)`` — for example
``SeriesEvaluator(...).evaluate_checkpoint`` — and it is called at every checkpoint step with a
:class:`probekit.ModelHandle` of the current weights. When it returns results that include the
memorization probe, ``stop_after_mem=LEVEL`` ends the run once ``f_mem >= LEVEL`` at two
consecutive checkpoints.
"""

from __future__ import annotations

import copy
import io
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from probekit.base import ModelHandle
from probekit.errors import ConfigMismatchError, InputFileError, ValidationError
from probekit.io import atomic_write_bytes, atomic_write_json
from probekit.reference.config import COMPILE_MODES, RunConfig, ScheduleConfig, TrainConfig
from probekit.reference.diffusion import alphas_cumprod, denoising_loss
from probekit.reference.handle import DiffusionHandle
from probekit.reference.unet import UNet, count_parameters
from probekit.types import Result

RUN_KIND = "probekit-reference-run"
CHECKPOINT_FORMAT = "probekit-ddpm-checkpoint/1"
Callback = Callable[[int, ModelHandle], "Sequence[Result] | None"]


# -- schedule and randomness -----------------------------------------------------------------


def checkpoint_steps(schedule: ScheduleConfig, total: int) -> list[int]:
    """Checkpoint steps: 0, every ``dense_every`` up to ``dense_until``, then ``per_decade``
    log-spaced steps per decade rounded to ``dense_every``, and ``total`` itself."""
    every = schedule.dense_every
    steps = set(range(0, min(schedule.dense_until, total) + 1, every))
    if total > schedule.dense_until:
        decades = math.log10(total / schedule.dense_until)
        count = max(2, math.ceil(decades * schedule.per_decade) + 1)
        for s in np.geomspace(schedule.dense_until, total, count):
            steps.add(round(float(s) / every) * every)
    steps.add(total)
    return sorted(s for s in steps if 0 <= s <= total)


def _stream_seed(seed: int, stream: int, index: int) -> int:
    """A 63-bit seed for random stream ``stream`` at ``index`` (step or epoch)."""
    words = np.random.SeedSequence([seed, stream, index]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31 ^ int(words[1])) & (2**63 - 1)


def _generator(seed: int, stream: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(_stream_seed(seed, stream, index))


def batch_indices(step: int, n: int, cfg: TrainConfig) -> torch.Tensor:
    """Training indices of ``step`` — a pure function of ``(seed, step)``.

    ``with_replacement``: ``batch_size`` i.i.d. draws from the ``n`` images, whatever ``n``
    (an image may appear several times, each time with its own timestep and noise). Otherwise
    the batch is ``min(n, batch_size)``: the full set when ``n`` fits (the paper's full batch),
    else consecutive slices of a fresh permutation per epoch.
    """
    if cfg.with_replacement:
        # Not min(n, batch_size): at n = 16 that would be a 4x smaller, 4x noisier batch than
        # at n >= 64, which slowed the small-n runs of the digits preset by ~2x in steps.
        return torch.randint(0, n, (cfg.batch_size,), generator=_generator(cfg.seed, 1, step))
    b = min(n, cfg.batch_size)
    if b == n:
        return torch.arange(n)
    per_epoch = math.ceil(n / b)
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(n, generator=_generator(cfg.seed, 2, epoch))
    return order[k * b : (k + 1) * b]


def ema_decay_at(step: int, cfg: TrainConfig) -> float:
    """Decay of the EMA update that follows optimizer step ``step`` (0-based).

    ``ema_warmup``: ``min(ema_decay, (1 + step) / (10 + step))`` and 0 at step 0 (the EMA is a
    copy of the weights after the first step) — the default of diffusers' ``EMAModel``. Without
    it the EMA starts from the initial weights with the full decay, so at decay 0.99 it still
    holds 0.99^s of the untrained network at step s (13% at step 200) and lags the trained
    weights by ~100 steps, which delayed sample quality and memorization of the digits preset
    by 100–300 steps.
    """
    if cfg.ema_decay is None:
        raise ValidationError("ema_decay_at: the run has no EMA (train.ema_decay is None).")
    if not cfg.ema_warmup:
        return float(cfg.ema_decay)
    return 0.0 if step <= 0 else min(float(cfg.ema_decay), (1.0 + step) / (10.0 + step))


# -- model, optimizer, checkpoints -----------------------------------------------------------


def build_model(cfg: RunConfig) -> nn.Module:
    """The network of ``cfg`` (the U-Net, or the residual MLP when ``cfg.mlp`` is set),
    initialised from ``cfg.train.seed``."""
    cfg.validate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        return _network(cfg)


def _network(cfg: RunConfig) -> nn.Module:
    if cfg.mlp is not None:
        from probekit.reference.mlp import ScoreMLP

        return ScoreMLP(cfg.mlp)
    return UNet(cfg.unet)


def network_sample_shape(cfg: RunConfig) -> tuple[int, ...]:
    """Shape of one training sample the network of ``cfg`` takes."""
    if cfg.mlp is not None:
        return (cfg.mlp.dim,)
    if cfg.unet.channels_last:  # a series (n_timesteps, n_channels), DESIGN §4
        return (cfg.unet.resolution, cfg.unet.in_channels)
    return (cfg.unet.in_channels, *([cfg.unet.resolution] * cfg.unet.dims))


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum or Adam over the trainable parameters."""
    return optimizer_for([p for p in model.parameters() if p.requires_grad], cfg)


def optimizer_for(params: Sequence[torch.Tensor], cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum or Adam over ``params`` (the batched ensemble's stacked tensors)."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(list(params), lr=cfg.lr)
    return torch.optim.SGD(list(params), lr=cfg.lr, momentum=cfg.momentum)


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """``run_dir/ckpt-<step:08d>.pt``."""
    return Path(run_dir) / f"ckpt-{step:08d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint in ``run_dir``, by step."""
    found = []
    for p in Path(run_dir).glob("ckpt-*.pt"):
        stem = p.stem.removeprefix("ckpt-")
        if stem.isdigit():
            found.append((int(stem), p))
    return sorted(found)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint dictionary, loaded with ``weights_only=True`` onto the CPU (a corrupt,
    unsafe or incomplete file is one line: :func:`probekit.io.load_torch_file`)."""
    from probekit.io import load_torch_file

    if not Path(path).exists():
        raise InputFileError(f"checkpoint {str(path)!r} does not exist.")
    ckpt = load_torch_file(path, who="reference checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputFileError(
            f"{str(path)!r} is not a probekit reference checkpoint (format "
            f"{CHECKPOINT_FORMAT!r}); it was not written by `probekit reference train`."
        )
    config = ckpt.get("config")
    missing = [k for k in ("config", "weights", "step") if k not in ckpt] + (
        [f"config.{k}" for k in ("preset", "data", "unet") if k not in config]
        if isinstance(config, dict) else [])
    if missing or not isinstance(config, dict) or not isinstance(ckpt.get("weights"), dict):
        raise InputFileError(
            f"reference checkpoint {str(path)!r} is incomplete: it lacks "
            f"{', '.join(missing) or 'a config and weights dictionary'}. It was not fully "
            "written; delete it and let `probekit reference train` write it again."
        )
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], device: torch.device | str = "cpu"
                          ) -> tuple[nn.Module, RunConfig]:
    """The sampling network of a checkpoint (EMA weights when the run samples with them)."""
    try:
        cfg = RunConfig.from_dict(ckpt["config"])
        model = _network(cfg)
        model.load_state_dict(ckpt["weights"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        from probekit.validation import one_line

        raise InputFileError(
            f"reference checkpoint does not match its own config ({type(exc).__name__}: "
            f"{one_line(exc, limit=160)}). Delete it and let `probekit reference train` write "
            "it again."
        ) from None
    return model.to(device).eval(), cfg


def _save(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _optimizer_state_cpu(opt: torch.optim.Optimizer) -> dict[str, Any]:
    def move(obj):
        if isinstance(obj, torch.Tensor):
            return obj.detach().cpu().clone()
        if isinstance(obj, dict):
            return {k: move(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [move(v) for v in obj]
        return obj

    return move(opt.state_dict())


def _strip_resume_state(path: Path) -> None:
    """Rewrite an older checkpoint without its resume state (optimizer, raw weights)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if "resume" in ckpt:
        del ckpt["resume"]
        _save(path, ckpt)


# -- run directory ---------------------------------------------------------------------------


def run_config_json(cfg: RunConfig, *, device: str) -> dict[str, Any]:
    """``config.json`` of a reference run (the keys the evaluator reads, plus the recipe)."""
    from probekit import __version__

    return {
        "kind": RUN_KIND,
        "probekit_version": __version__,
        "preset": cfg.preset,
        "adapter": "ddpm",
        "adapter_settings": {},
        "dataset": cfg.data.dataset,
        "dataset_settings": cfg.data.settings(),
        "n_train": cfg.data.n_train,
        "modality": ("features" if cfg.mlp is not None else
                     "image" if cfg.unet.dims == 2 else "timeseries"),
        "n_samples": cfg.sampler.n_samples,
        "seed": cfg.train.seed,
        "sample_seed": cfg.sampler.seed,
        "steps": checkpoint_steps(cfg.schedule, cfg.train.steps),
        "device": device,
        "reference": cfg.to_dict(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }


def _same_recipe(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal up to the run length (a run may be extended); fields added to the config since a
    run was written compare at their defaults."""
    a = RunConfig.from_dict(a).to_dict()
    b = RunConfig.from_dict(b).to_dict()
    a["train"].pop("steps")
    b["train"].pop("steps")
    return a == b


def _prepare_run_dir(out: Path, cfg: RunConfig, device: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    config_file = out / "config.json"
    if config_file.exists():
        old = json.loads(config_file.read_text())
        if old.get("kind") != RUN_KIND:
            raise ConfigMismatchError(
                f"reference train: {str(out)!r} holds a config.json that is not a reference "
                f"run (kind {old.get('kind')!r}). Choose an empty --out folder."
            )
        if not _same_recipe(old["reference"], cfg.to_dict()):
            raise ConfigMismatchError(
                f"reference train: {str(out)!r} holds a run made with other settings "
                f"(preset {old.get('preset')!r}, n_train {old.get('n_train')}). Resume it with "
                "the same settings, or choose another --out folder."
            )
    atomic_write_json(config_file, run_config_json(cfg, device=device))


# -- pieces shared by the plain loop and the batched ensemble ----------------------------------


def load_training_data(cfg: RunConfig, device: torch.device) -> torch.Tensor:
    """The training set of ``cfg`` on ``device`` (float32), checked against the network."""
    from probekit.reference.data import load_splits

    splits = load_splits(cfg.data)  # before the run directory exists: a data error leaves none
    expected = network_sample_shape(cfg)
    if tuple(splits.train.shape[1:]) != expected:
        raise ValidationError(
            f"reference train: dataset {cfg.data.dataset!r} has samples of shape "
            f"{tuple(splits.train.shape[1:])} but the U-Net of preset {cfg.preset!r} expects "
            f"{expected}. Use a preset made for this dataset, or set unet.resolution/in_channels."
        )
    return torch.from_numpy(np.ascontiguousarray(splits.train, dtype=np.float32)).to(device)


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device; a clear error when CUDA is asked for and absent."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValidationError(
            "reference train: device 'cuda' was asked for but torch sees no CUDA device. "
            "Use --device cpu, or install a CUDA build of torch."
        )
    return device


@dataclass
class ResumePoint:
    """Where a run directory stands: the step to continue from and its saved state."""

    step: int  # 0 for a fresh run
    checkpoint: dict[str, Any] | None  # the checkpoint holding the resume state (None: fresh)
    mem_streak: int  # consecutive checkpoints with f_mem at the stop level

    @property
    def resumed(self) -> bool:
        return self.checkpoint is not None


def resume_points(out: Path, cfg: RunConfig) -> list[ResumePoint]:
    """Every checkpoint of ``out`` that still holds resume state (at most ``cfg.train.steps``),
    newest first."""
    points = []
    for s, p in reversed([(s, p) for s, p in list_checkpoints(out) if s <= cfg.train.steps]):
        ckpt = load_checkpoint(p)
        if "resume" in ckpt:
            points.append(ResumePoint(s, ckpt, int(ckpt["resume"].get("mem_streak", 0))))
    return points


def is_finished(point: ResumePoint, cfg: RunConfig, stop_after_mem: float | None,
                min_steps: int) -> bool:
    """True when a run resumed at ``point`` has nothing left to train: it reached its step cap,
    or it stopped on f_mem (two consecutive checkpoints at the level, saved in the resume
    state) — a run that stopped stays stopped when run again."""
    if point.step >= cfg.train.steps:
        return True
    return (point.resumed and stop_after_mem is not None and point.mem_streak >= 2
            and point.step >= min_steps)


def step_draws(step: int, data: torch.Tensor, cfg: RunConfig
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x0, t, noise)`` of optimizer step ``step``: the batch, its timesteps in 1 … T-1 and
    its noise, each a pure function of ``(seed, step)`` (noise and t drawn on the CPU)."""
    tc = cfg.train
    g = _generator(tc.seed, 4, step)
    x0 = data[batch_indices(step, len(data), tc).to(data.device)]
    t = torch.randint(1, cfg.diffusion.num_timesteps, (len(x0),), generator=g)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float32)
    return x0, t.to(data.device), noise.to(data.device)


def seed_dropout(step: int, cfg: TrainConfig) -> None:
    """Seed the global generator that dropout draws from at ``step``."""
    torch.manual_seed(_stream_seed(cfg.seed, 3, step))


def checkpoint_payload(cfg: RunConfig, step: int, *, weights: dict[str, torch.Tensor],
                       weights_kind: str, sample_shape: tuple[int, ...],
                       resume: dict[str, Any]) -> dict[str, Any]:
    """The dictionary a ``ckpt-<step>.pt`` file holds."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": cfg.to_dict(),
        "step": step,
        "weights": weights,
        "weights_kind": weights_kind,
        "sample_shape": list(sample_shape),
        "resume": resume,
    }


def save_checkpoint(out: Path, step: int, payload: dict[str, Any], *,
                    strip_older: bool = True) -> None:
    """Write ``ckpt-<step>.pt``; with ``strip_older``, drop the resume state of the two
    checkpoints before it (only the newest keeps it; two, because of a kill in between)."""
    previous = [p for q, p in list_checkpoints(out) if q < step]
    _save(checkpoint_path(out, step), payload)
    if strip_older:
        for p in previous[-2:]:
            _strip_resume_state(p)


def strip_resume_before(out: Path, step: int, *, keep: int = 0) -> None:
    """Drop the resume state of the three checkpoints of ``out`` before ``step`` (older ones
    hold none), keeping it in the newest ``keep`` of them."""
    older = [p for q, p in list_checkpoints(out) if q < step]
    for p in older[-3:][: max(0, min(3, len(older)) - keep)]:
        _strip_resume_state(p)


def compiled_loss(compile_mode: str | None) -> Callable[..., torch.Tensor]:
    """:func:`~probekit.reference.diffusion.denoising_loss`, or its ``torch.compile`` (mode
    ``"default"``, ``"reduce-overhead"`` — CUDA graphs on a GPU — or ``"max-autotune"``)."""
    if compile_mode is None:
        return denoising_loss
    if compile_mode not in COMPILE_MODES:
        raise ValidationError(
            f"reference train: compile must be one of {', '.join(COMPILE_MODES)} or None; got "
            f"{compile_mode!r}."
        )
    return torch.compile(denoising_loss, mode=compile_mode, dynamic=False)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on ``device`` when ``enabled`` (a no-op context otherwise)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


# -- the loop --------------------------------------------------------------------------------


@dataclass
class TrainOutcome:
    """What :func:`train` did."""

    run_dir: Path
    last_step: int  # step of the last checkpoint written
    checkpoints: list[int]  # checkpoint steps present in run_dir
    stopped_early: bool  # stopped by stop_after_mem
    resumed_from: int | None  # step training resumed from, if it did
    seconds: float  # wall time of this call
    train_steps_per_s: float  # optimizer steps per second (checkpoints and callbacks excluded)


def _mem_value(results: object, measure: str) -> float | None:
    """Headline of ``measure`` among what a callback returned (anything else is ignored)."""
    if isinstance(results, list | tuple):
        for r in results:
            if isinstance(r, Result) and r.measure == measure:
                return r.value
    return None


def train(
    cfg: RunConfig,
    out: str | Path,
    *,
    device: str | torch.device = "cpu",
    callback: Callback | None = None,
    stop_after_mem: float | None = None,
    mem_measure: str = "nn-ratio",
    min_steps: int = 0,
    compile_mode: str | None = None,
    quiet: bool = False,
) -> TrainOutcome:
    """Train (or resume) the run ``cfg`` into ``out``; see the module docstring.

    Parameters
    ----------
    cfg : RunConfig
        The run (``preset(...)`` builds one).
    out : path
        Run directory; an existing one with the same recipe is resumed.
    device : str
        ``"cpu"`` (default) or ``"cuda"``; nothing touches a GPU unless asked.
    callback : callable, optional
        ``callback(step, handle)`` at every checkpoint step, before the checkpoint is written;
        may return the results it computed.
    stop_after_mem : float, optional
        Stop once the callback's ``mem_measure`` headline is ``>= stop_after_mem`` at two
        consecutive checkpoints, but not before ``min_steps`` (so that runs of a sweep share a
        step range long enough to read tau_gen from).
    compile_mode : str, optional
        ``torch.compile`` the forward pass and loss of the training step with this mode
        (``"reduce-overhead"`` uses CUDA graphs on a GPU). Dropout masks are drawn outside the
        compiled code, so the random draws are those of the plain loop.
    """
    started = time.perf_counter()
    cfg.validate()
    from probekit.validation import check_output_dir

    check_output_dir(out, who="reference train", name="out")  # before data or files
    if stop_after_mem is not None and callback is None:
        raise ValidationError(
            "reference train: stop_after_mem needs a callback that returns the "
            f"{mem_measure!r} result (e.g. SeriesEvaluator.evaluate_checkpoint)."
        )
    device = check_device(device)
    data = load_training_data(cfg, device)
    out = Path(out)
    _prepare_run_dir(out, cfg, str(device))
    tc = cfg.train
    sample_shape = tuple(data.shape[1:])

    model = build_model(cfg).to(device)
    ema = copy.deepcopy(model).requires_grad_(False) if tc.ema_decay is not None else None
    optimizer = build_optimizer(model, tc)
    alpha_bar = alphas_cumprod(cfg.diffusion)
    alpha_bar_dev = alpha_bar.float().to(device)
    todo = set(checkpoint_steps(cfg.schedule, tc.steps))
    loss_fn = compiled_loss(compile_mode)

    points = resume_points(out, cfg)
    point = points[0] if points else ResumePoint(0, None, 0)
    step, mem_streak = point.step, point.mem_streak
    resumed_from = point.step if point.resumed else None
    if point.checkpoint is not None:
        resume = point.checkpoint["resume"]
        model.load_state_dict(resume.get("model", point.checkpoint["weights"]))
        if ema is not None:
            ema.load_state_dict(point.checkpoint["weights"])
        optimizer.load_state_dict(resume["optimizer"])

    sampling_model = ema if (ema is not None and cfg.sampler.use_ema) else model

    def handle_at(s: int) -> DiffusionHandle:
        return DiffusionHandle(sampling_model, alpha_bar, step=s, sample_shape=sample_shape,
                               ddim_steps=cfg.sampler.ddim_steps,
                               batch_size=cfg.sampler.batch_size, clip=cfg.sampler.clip,
                               device=device, bf16=cfg.sampler.autocast_bf16)

    log = (out / "stats.jsonl").open("a")
    # A run that already stopped on f_mem (two consecutive checkpoints at the level, saved in
    # the resume state) stays stopped: running it again must not train past that checkpoint.
    stopped_before = (point.resumed and stop_after_mem is not None and mem_streak >= 2
                      and step >= min_steps)
    stopped = stopped_before

    def checkpoint(s: int) -> bool:
        """Callback, checkpoint, log; return True to stop."""
        nonlocal mem_streak
        f_mem = None
        if callback is not None:
            f_mem = _mem_value(callback(s, handle_at(s)), mem_measure)
            if f_mem is not None and stop_after_mem is not None:
                mem_streak = mem_streak + 1 if f_mem >= stop_after_mem else 0
        resume: dict[str, Any] = {"optimizer": _optimizer_state_cpu(optimizer),
                                  "mem_streak": mem_streak}
        if sampling_model is not model:
            resume["model"] = _cpu_state(model)
        save_checkpoint(out, s, checkpoint_payload(
            cfg, s, weights=_cpu_state(sampling_model),
            weights_kind="ema" if sampling_model is not model else "model",
            sample_shape=sample_shape, resume=resume))
        record = {"event": "checkpoint", "step": s, "time": time.time()}
        if f_mem is not None:
            record[mem_measure] = f_mem
        log.write(json.dumps(record) + "\n")
        log.flush()
        if not quiet:
            extra = f" {mem_measure}={f_mem:.3f}" if f_mem is not None else ""
            print(f"[{out.name}] checkpoint step {s}/{tc.steps}{extra}", file=sys.stderr)
        return stop_after_mem is not None and mem_streak >= 2 and s >= min_steps

    try:
        if resumed_from is None and 0 in todo:
            stopped = checkpoint(0)
        elif resumed_from is not None and callback is not None:
            # The callback of the resumed checkpoint may have been cut short; run it again
            # (an evaluator skips the measures it already committed).
            callback(step, handle_at(step))
        model.train()
        train_time, loss_sum, loss_count, window_start = 0.0, 0.0, 0, step
        while step < tc.steps and not stopped:
            t0 = time.perf_counter()
            seed_dropout(step, tc)
            x0, t, noise = step_draws(step, data, cfg)
            masks = model.draw_dropout_masks(len(x0), device) \
                if compile_mode is not None and hasattr(model, "draw_dropout_masks") else None
            with autocast(device, tc.autocast_bf16):
                loss = loss_fn(model, x0, t, noise, alpha_bar_dev, dropout_masks=masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                with torch.no_grad():  # ema += (1 - decay) * (model - ema), all tensors at once
                    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()),
                                         1.0 - ema_decay_at(step, tc))
            step += 1
            loss_sum += loss.item()
            loss_count += 1
            train_time += time.perf_counter() - t0
            if step % tc.log_every == 0 or step == tc.steps:
                log.write(json.dumps({
                    "event": "train", "step": step, "loss": loss_sum / loss_count,
                    "steps_per_s": (step - window_start) / max(train_time, 1e-9),
                    "time": time.time(),
                }) + "\n")
                loss_sum, loss_count = 0.0, 0
            if step in todo:
                stopped = checkpoint(step)
    finally:
        log.close()

    steps_done = step - (resumed_from or 0)
    if stopped and not stopped_before:
        with (out / "stats.jsonl").open("a") as f:
            f.write(json.dumps({"event": "stopped", "step": step,
                                "reason": f"{mem_measure} >= {stop_after_mem} at two "
                                          "consecutive checkpoints"}) + "\n")
    return TrainOutcome(
        run_dir=out,
        last_step=step,
        checkpoints=[s for s, _ in list_checkpoints(out)],
        stopped_early=stopped,
        resumed_from=resumed_from,
        seconds=time.perf_counter() - started,
        train_steps_per_s=steps_done / train_time if steps_done and train_time else float("nan"),
    )


def describe(cfg: RunConfig) -> str:
    """One line: preset, n, parameters, optimizer."""
    model = _network(cfg)
    return (f"{cfg.preset}: n={cfg.data.n_train}, {count_parameters(model):,} parameters "
            f"({count_parameters(model, trainable_only=True):,} trainable), "
            f"{cfg.train.optimizer} lr={cfg.train.lr}, batch={cfg.train.batch_size}, "
            f"ema={cfg.train.ema_decay}{' (warmup)' if cfg.train.ema_warmup else ''}, "
            f"steps={cfg.train.steps}")


__all__ = [
    "CHECKPOINT_FORMAT",
    "COMPILE_MODES",
    "RUN_KIND",
    "ResumePoint",
    "TrainOutcome",
    "batch_indices",
    "build_model",
    "build_optimizer",
    "checkpoint_path",
    "checkpoint_steps",
    "describe",
    "ema_decay_at",
    "list_checkpoints",
    "load_checkpoint",
    "model_from_checkpoint",
    "network_sample_shape",
    "optimizer_for",
    "run_config_json",
    "train",
]
