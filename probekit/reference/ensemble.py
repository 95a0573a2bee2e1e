"""Several reference runs of one network trained at once, as one batched ensemble.

One small U-Net leaves a GPU idle: a step is bound by kernel launches, not arithmetic (≈ 60 ms
per step at W = 8 on an H200, whatever the batch). Runs that share the network and the
optimizer but differ in their training set (``n``), seed or length can instead be trained as
one model: their weights are stacked along a new leading axis
(``torch.func.stack_module_state``) and the forward pass is ``torch.func.vmap`` of
``torch.func.functional_call`` over that axis, so ``k`` runs cost about as many kernel launches
as one. The optimizer (SGD with momentum, or Adam) acts elementwise, so one optimizer over the
stacked tensors is ``k`` independent optimizers.

Every run gets exactly the random draws of a plain :func:`probekit.reference.train.train` of the
same config — its batch, timesteps and noise from ``(seed, step)``, its dropout masks drawn
outside ``vmap`` in the same order — and each member's batch (``min(n, batch_size)``, which
differs with ``n``) is padded to the largest one with zero-weight rows: the per-member loss
is ``Σ_rows w · mean_values (eps - eps_theta)²`` with ``w = 1/batch`` on real rows and 0 on
padding, which is the plain loss (GroupNorm, attention and dropout act per sample, so padding
never reaches a real row). Losses agree with one-run-at-a-time training to float32 rounding
(tested to 1e-5), and so do the checkpoints and samples.

Each member writes its own run directory — the same ``config.json``, ``ckpt-<step>.pt`` (its
own weights and optimizer state, in the format of a plain run, so either loop can resume it),
``stats.jsonl`` and evaluation callback as a plain run. A member that reaches its step cap or
stops on f_mem leaves the stack. After a kill, every member resumes from the newest checkpoint
that all of them still hold with resume state (the older resume state is dropped only once
every member has written the newer one); members whose newest states differ are trained in
groups, one group per resume step.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from probekit.errors import ValidationError
from probekit.reference.config import COMPILE_MODES, RunConfig
from probekit.reference.diffusion import alphas_cumprod, q_sample
from probekit.reference.handle import DiffusionHandle
from probekit.reference.train import (
    Callback,
    ResumePoint,
    TrainOutcome,
    _mem_value,
    _prepare_run_dir,
    autocast,
    build_model,
    check_device,
    checkpoint_payload,
    checkpoint_steps,
    ema_decay_at,
    is_finished,
    list_checkpoints,
    load_training_data,
    optimizer_for,
    resume_points,
    save_checkpoint,
    seed_dropout,
    step_draws,
    strip_resume_before,
    train,
)


def check_stackable(cfgs: Sequence[RunConfig]) -> None:
    """Raise :class:`ValidationError` unless the runs share what one stacked model needs: the
    network, the forward process, the optimizer and its settings, the EMA, the precision."""
    if not cfgs:
        raise ValidationError("reference ensemble: give at least one run config.")
    for cfg in cfgs:
        cfg.validate()
    for what, get in (
        ("network (unet / mlp)", lambda c: (c.unet, c.mlp)),
        ("diffusion", lambda c: c.diffusion),
        ("optimizer, lr, momentum", lambda c: (c.train.optimizer, c.train.lr,
                                               c.train.momentum)),
        ("EMA (ema_decay, ema_warmup, sampler.use_ema)",
         lambda c: (c.train.ema_decay, c.train.ema_warmup, c.sampler.use_ema)),
        ("train.autocast_bf16", lambda c: c.train.autocast_bf16),
    ):
        values = {repr(get(c)) for c in cfgs}
        if len(values) > 1:
            raise ValidationError(
                f"reference ensemble: the runs must share their {what}; got {len(values)} "
                "different ones. Train runs that differ there separately (or in separate "
                "ensembles)."
            )


@dataclass
class _Member:
    """One run of the ensemble: its config, directory, data and bookkeeping."""

    cfg: RunConfig
    out: Path
    data: torch.Tensor
    callback: Callback | None
    todo: set[int]
    point: ResumePoint
    view: nn.Module  # a plain network that receives this member's weights for its callback
    alpha_bar: torch.Tensor
    log: Any = None
    mem_streak: int = 0
    stopped: bool = False
    finished: bool = False
    train_time: float = 0.0
    loss_sum: float = 0.0
    loss_count: int = 0
    window_start: int = 0


def _slice_optimizer_state(state: dict[str, Any], j: int) -> dict[str, Any]:
    """Member ``j``'s share of the stacked optimizer's state dict, in a plain run's format
    (per-parameter tensors sliced on the leading axis; scalars such as Adam's step copied)."""
    def take(v):
        if isinstance(v, torch.Tensor):
            return (v[j] if v.ndim > 0 else v).detach().cpu().clone()
        return copy.deepcopy(v)

    return {"state": {k: {name: take(v) for name, v in s.items()}
                      for k, s in state["state"].items()},
            "param_groups": copy.deepcopy(state["param_groups"])}


def _stack_optimizer_states(states: Sequence[dict[str, Any]], device: torch.device
                            ) -> dict[str, Any]:
    """The inverse of :func:`_slice_optimizer_state` over all members."""
    first = states[0]
    stacked: dict[int, dict[str, Any]] = {}
    for k, s in first["state"].items():
        stacked[k] = {}
        for name, v in s.items():
            if isinstance(v, torch.Tensor) and v.ndim > 0:
                stacked[k][name] = torch.stack([st["state"][k][name] for st in states]).to(device)
            else:
                stacked[k][name] = v
    return {"state": stacked, "param_groups": copy.deepcopy(first["param_groups"])}


class StackedModels:
    """``k`` networks of one architecture as stacked tensors, with one optimizer (and EMA).

    ``step`` runs one batched training step (forward through ``vmap``, backward, optimizer,
    EMA) on inputs with a leading member axis, as built by :func:`stack_batches`; it returns
    the ``k`` losses. ``compile_mode`` compiles the batched forward pass and loss.
    """

    def __init__(self, models: Sequence[nn.Module], cfg: RunConfig, *,
                 emas: Sequence[nn.Module] | None = None,
                 opt_states: Sequence[dict[str, Any]] | None = None,
                 device: torch.device | str = "cpu", compile_mode: str | None = None):
        self.cfg = cfg
        self.device = torch.device(device)
        self.base = copy.deepcopy(models[0]).train()
        self.params, self.buffers = stack_module_state(list(models))
        self.emas = None
        if emas:
            ema_params, _ = stack_module_state(list(emas))
            self.emas = {k: v.detach().requires_grad_(False) for k, v in ema_params.items()}
        self.optimizer = optimizer_for(self.trainable, cfg.train)
        if opt_states:
            self.optimizer.load_state_dict(_stack_optimizer_states(opt_states, self.device))
        batched = vmap(_member_loss(self.base))
        self._losses = (torch.compile(batched, mode=compile_mode, dynamic=False)
                        if compile_mode is not None else batched)

    @property
    def trainable(self) -> list[torch.Tensor]:
        return [p for p in self.params.values() if p.requires_grad]

    def __len__(self) -> int:
        return len(next(iter(self.params.values())))

    def draw_dropout_masks(self, batch: int) -> list[torch.Tensor] | None:
        """One member's dropout masks for a batch (see :meth:`UNet.draw_dropout_masks`)."""
        draw = getattr(self.base, "draw_dropout_masks", None)
        return draw(batch, self.device) if draw is not None else None

    def step(self, x_t: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
             weight: torch.Tensor, masks: list[torch.Tensor], *,
             ema_decay: float | None = None) -> torch.Tensor:
        """One optimizer step of every member; returns their losses ``(k,)``."""
        with autocast(self.device, self.cfg.train.autocast_bf16):
            losses = self._losses(self.params, self.buffers, x_t, t, noise, weight, masks)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.optimizer.step()
        if self.emas is not None and ema_decay is not None:
            with torch.no_grad():  # ema += (1 - decay) * (model - ema), all tensors at once
                torch._foreach_lerp_(list(self.emas.values()),
                                     [p.detach() for p in self.params.values()],
                                     1.0 - ema_decay)
        return losses.detach()

    def member_state(self, j: int, ema: bool) -> dict[str, torch.Tensor]:
        """Member ``j``'s state dict (raw weights or EMA), on the CPU."""
        source = self.emas if ema else self.params
        state = {k: v[j].detach().cpu().clone() for k, v in source.items()}
        state.update({k: v[j].detach().cpu().clone() for k, v in self.buffers.items()})
        return state

    def optimizer_state(self, j: int) -> dict[str, Any]:
        """Member ``j``'s optimizer state, in a plain run's format."""
        return _slice_optimizer_state(self.optimizer.state_dict(), j)

    def keep(self, members: Sequence[int]) -> None:
        """Keep only ``members`` (weights, EMA and optimizer state), in that order."""
        index = torch.tensor(list(members), device=self.device)
        opt_state = self.optimizer.state_dict()
        self.params = {k: v.detach()[index].clone().requires_grad_(v.requires_grad)
                       for k, v in self.params.items()}
        self.buffers = {k: v[index].clone() for k, v in self.buffers.items()}
        if self.emas is not None:
            self.emas = {k: v[index].clone() for k, v in self.emas.items()}
        self.optimizer = optimizer_for(self.trainable, self.cfg.train)
        self.optimizer.load_state_dict(_stack_optimizer_states(
            [_slice_optimizer_state(opt_state, j) for j in members], self.device))


def stack_batches(draws: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                  masks: Sequence[list[torch.Tensor] | None], alpha_bar: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                             list[torch.Tensor]]:
    """Members' ``(x0, t, noise)`` and dropout masks → the stacked, padded inputs of
    :meth:`StackedModels.step`: ``x_t``, ``t``, ``noise``, the row weights (``1/batch`` on a
    member's rows, 0 on padding) and the masks."""
    rows = max(len(x0) for x0, _, _ in draws)
    x_t = torch.stack([_pad(q_sample(x0, t, noise, alpha_bar), rows) for x0, t, noise in draws])
    ts = torch.stack([_pad(t, rows, 1) for _, t, _ in draws])
    noises = torch.stack([_pad(noise, rows) for _, _, noise in draws])
    weight = torch.stack([_pad(torch.full((len(x0),), 1.0 / len(x0), device=x0.device), rows)
                          for x0, _, _ in draws])
    stacked: list[torch.Tensor] = []
    if masks and masks[0] is not None:
        stacked = [torch.stack([_pad(m[layer], rows, 1.0) for m in masks])
                   for layer in range(len(masks[0]))]
    return x_t, ts, noises, weight, stacked


def train_ensemble(
    cfgs: Sequence[RunConfig],
    outs: Sequence[str | Path],
    *,
    device: str | torch.device = "cpu",
    callbacks: Sequence[Callback | None] | None = None,
    stop_after_mem: float | None = None,
    mem_measure: str = "nn-ratio",
    min_steps: int = 0,
    compile_mode: str | None = None,
    quiet: bool = False,
) -> list[TrainOutcome]:
    """Train (or resume) the runs ``cfgs`` into ``outs`` at once; see the module docstring.

    The parameters are those of :func:`probekit.reference.train.train`, one config, directory
    and callback per run; ``compile_mode`` compiles the batched forward pass and loss. Returns
    one :class:`TrainOutcome` per run, in the order given (``train_steps_per_s`` counts the
    run's own steps per second of the shared training time).
    """
    cfgs = list(cfgs)
    outs = [Path(o) for o in outs]
    if len(outs) != len(cfgs):
        raise ValidationError(
            f"reference ensemble: give one output folder per run; got {len(cfgs)} configs and "
            f"{len(outs)} folders.")
    if len({o.resolve() for o in outs}) != len(outs):
        raise ValidationError("reference ensemble: the output folders must be distinct.")
    callbacks = list(callbacks) if callbacks is not None else [None] * len(cfgs)
    if len(callbacks) != len(cfgs):
        raise ValidationError(
            f"reference ensemble: give one callback (or None) per run; got {len(callbacks)} "
            f"for {len(cfgs)} runs.")
    if stop_after_mem is not None and any(c is None for c in callbacks):
        raise ValidationError(
            "reference ensemble: stop_after_mem needs a callback for every run that returns "
            f"the {mem_measure!r} result (e.g. SeriesEvaluator.evaluate_checkpoint).")
    if compile_mode is not None and compile_mode not in COMPILE_MODES:
        raise ValidationError(
            f"reference ensemble: compile must be one of {', '.join(COMPILE_MODES)} or None; "
            f"got {compile_mode!r}.")
    check_stackable(cfgs)
    device = check_device(device)
    started = time.perf_counter()
    outcomes: dict[int, TrainOutcome] = {}

    # Runs with nothing left to train go through the plain loop (it returns at once, running
    # the resumed checkpoint's callback again as a plain run would).
    datas = [load_training_data(cfg, device) for cfg in cfgs]
    pending = []
    for i, (cfg, out) in enumerate(zip(cfgs, outs, strict=True)):
        _prepare_run_dir(out, cfg, str(device))
        points = resume_points(out, cfg)
        if points and is_finished(points[0], cfg, stop_after_mem, min_steps):
            outcomes[i] = train(cfg, out, device=device, callback=callbacks[i],
                                stop_after_mem=stop_after_mem, mem_measure=mem_measure,
                                min_steps=min_steps, quiet=quiet)
        else:
            pending.append(i)
    # One resume step for all: the newest that every pending run holds with resume state.
    available = [{p.step: p for p in resume_points(outs[i], cfgs[i])} for i in pending]
    common = set.intersection(*(set(a) for a in available)) if available else set()
    if pending and (common or all(not a for a in available)):
        step = max(common) if common else 0
        plan = {step: [(i, available[k].get(step)) for k, i in enumerate(pending)]}
    else:  # runs at different points (e.g. trained apart before): one group per newest step
        plan = {}
        for k, i in enumerate(pending):
            newest = max(available[k]) if available[k] else 0
            plan.setdefault(newest, []).append((i, available[k].get(newest)))
    for _, members in sorted(plan.items()):
        results = _train_group(
            [cfgs[i] for i, _ in members], [outs[i] for i, _ in members],
            [datas[i] for i, _ in members], [callbacks[i] for i, _ in members],
            [p or ResumePoint(0, None, 0) for _, p in members], device=device,
            stop_after_mem=stop_after_mem, mem_measure=mem_measure, min_steps=min_steps,
            compile_mode=compile_mode, quiet=quiet)
        for (i, _), outcome in zip(members, results, strict=True):
            outcomes[i] = outcome
    seconds = time.perf_counter() - started
    return [TrainOutcome(o.run_dir, o.last_step, o.checkpoints, o.stopped_early, o.resumed_from,
                         seconds, o.train_steps_per_s) for _, o in sorted(outcomes.items())]


def _member_loss(base: nn.Module):
    """The per-member loss ``Σ_rows w · mean (noise - eps_theta(x_t, t))²`` for ``vmap``."""
    def loss(params, buffers, x_t, t, noise, weight, masks):
        kwargs = {"dropout_masks": masks} if masks else {}
        eps = functional_call(base, (params, buffers), (x_t, t), kwargs)
        per_row = ((noise - eps.float()) ** 2).flatten(1).mean(1)
        return (per_row * weight).sum()

    return loss


def _pad(x: torch.Tensor, rows: int, value: float = 0.0) -> torch.Tensor:
    if len(x) == rows:
        return x
    pad = x.new_full((rows - len(x), *x.shape[1:]), value)
    return torch.cat([x, pad])


def _train_group(cfgs, outs, datas, callbacks, points, *, device, stop_after_mem, mem_measure,
                 min_steps, compile_mode, quiet) -> list[TrainOutcome]:
    """Train runs that resume from the same step as one stack."""
    first = cfgs[0]
    models, emas, opt_states = [], [], []
    members: list[_Member] = []
    alpha_bar = alphas_cumprod(first.diffusion)
    alpha_bar_dev = alpha_bar.float().to(device)
    for cfg, out, data, callback, point in zip(cfgs, outs, datas, callbacks, points,
                                               strict=True):
        model = build_model(cfg).to(device)
        ema = copy.deepcopy(model).requires_grad_(False) if cfg.train.ema_decay else None
        if point.checkpoint is not None:
            resume = point.checkpoint["resume"]
            model.load_state_dict(resume.get("model", point.checkpoint["weights"]))
            if ema is not None:
                ema.load_state_dict(point.checkpoint["weights"])
            opt_states.append(resume["optimizer"])
        models.append(model)
        if ema is not None:
            emas.append(ema)
        view = copy.deepcopy(model).eval()
        members.append(_Member(cfg=cfg, out=out, data=data, callback=callback,
                               todo=set(checkpoint_steps(cfg.schedule, cfg.train.steps)),
                               point=point, view=view, alpha_bar=alpha_bar,
                               mem_streak=point.mem_streak))
    if opt_states and len(opt_states) != len(models):
        raise ValidationError("reference ensemble: runs resumed together must all hold resume "
                              "state at the same step.")
    use_ema = first.sampler.use_ema and first.train.ema_decay is not None
    stack = StackedModels(models, first, emas=emas or None, opt_states=opt_states or None,
                          device=device, compile_mode=compile_mode)
    del models, emas
    step = points[0].step
    resumed_from = step if points[0].resumed else None
    started = time.perf_counter()
    for m in members:
        m.log = (m.out / "stats.jsonl").open("a")
        m.window_start = step

    def handle(m: _Member, j: int, s: int) -> DiffusionHandle:
        m.view.load_state_dict(stack.member_state(j, ema=use_ema))
        return DiffusionHandle(m.view, m.alpha_bar, step=s, sample_shape=tuple(m.data.shape[1:]),
                               ddim_steps=m.cfg.sampler.ddim_steps,
                               batch_size=m.cfg.sampler.batch_size, clip=m.cfg.sampler.clip,
                               device=device, bf16=m.cfg.sampler.autocast_bf16)

    def checkpoint(m: _Member, j: int, s: int) -> None:
        f_mem = None
        if m.callback is not None:
            f_mem = _mem_value(m.callback(s, handle(m, j, s)), mem_measure)
            if f_mem is not None and stop_after_mem is not None:
                m.mem_streak = m.mem_streak + 1 if f_mem >= stop_after_mem else 0
        resume: dict[str, Any] = {"optimizer": stack.optimizer_state(j),
                                  "mem_streak": m.mem_streak}
        if use_ema:
            resume["model"] = stack.member_state(j, ema=False)
        save_checkpoint(m.out, s, checkpoint_payload(
            m.cfg, s, weights=stack.member_state(j, ema=use_ema),
            weights_kind="ema" if use_ema else "model",
            sample_shape=tuple(m.data.shape[1:]), resume=resume), strip_older=False)
        record = {"event": "checkpoint", "step": s, "time": time.time()}
        if f_mem is not None:
            record[mem_measure] = f_mem
        m.log.write(json.dumps(record) + "\n")
        m.log.flush()
        if not quiet:
            extra = f" {mem_measure}={f_mem:.3f}" if f_mem is not None else ""
            print(f"[{m.out.name}] checkpoint step {s}/{m.cfg.train.steps}{extra} (ensemble)",
                  file=sys.stderr)
        if stop_after_mem is not None and m.mem_streak >= 2 and s >= min_steps:
            m.stopped = True
        if s >= m.cfg.train.steps:
            m.finished = True

    active = list(range(len(members)))
    try:
        if resumed_from is None:
            for j, i in enumerate(active):
                if 0 in members[i].todo:
                    checkpoint(members[i], j, 0)
        else:
            for j, i in enumerate(active):
                if members[i].callback is not None:
                    members[i].callback(step, handle(members[i], j, step))
        active = _drop_done(stack, members, active)
        while active:
            t0 = time.perf_counter()
            draws, masks = [], []
            for i in active:
                m = members[i]
                seed_dropout(step, m.cfg.train)
                draws.append(step_draws(step, m.data, m.cfg))
                masks.append(stack.draw_dropout_masks(len(draws[-1][0])))
            losses = stack.step(*stack_batches(draws, masks, alpha_bar_dev),
                                ema_decay=ema_decay_at(step, first.train)
                                if stack.emas is not None else None)
            step += 1
            values = losses.cpu().tolist()
            elapsed = time.perf_counter() - t0
            for j, i in enumerate(active):
                m = members[i]
                m.loss_sum += values[j]
                m.loss_count += 1
                m.train_time += elapsed
                if step % m.cfg.train.log_every == 0 or step == m.cfg.train.steps:
                    m.log.write(json.dumps({
                        "event": "train", "step": step, "loss": m.loss_sum / m.loss_count,
                        "steps_per_s": (step - m.window_start) / max(m.train_time, 1e-9),
                        "ensemble_size": len(active), "time": time.time(),
                    }) + "\n")
                    m.loss_sum, m.loss_count = 0.0, 0
            written = []
            for j, i in enumerate(active):
                if step in members[i].todo:
                    checkpoint(members[i], j, step)
                    written.append(members[i])
            for m in written:  # older resume state goes only once every member wrote this step
                strip_resume_before(m.out, step, keep=0)
            active = _drop_done(stack, members, active)
    finally:
        for m in members:
            if m.log is not None:
                m.log.close()

    outcomes = []
    for m in members:
        last = max(s for s, _ in list_checkpoints(m.out))
        if m.stopped:
            with (m.out / "stats.jsonl").open("a") as f:
                f.write(json.dumps({"event": "stopped", "step": last,
                                    "reason": f"{mem_measure} >= {stop_after_mem} at two "
                                              "consecutive checkpoints"}) + "\n")
        steps_done = last - (resumed_from or 0)
        outcomes.append(TrainOutcome(
            run_dir=m.out, last_step=last, checkpoints=[s for s, _ in list_checkpoints(m.out)],
            stopped_early=m.stopped, resumed_from=resumed_from,
            seconds=time.perf_counter() - started,
            train_steps_per_s=(steps_done / m.train_time if steps_done and m.train_time
                               else float("nan"))))
    return outcomes


def _drop_done(stack: StackedModels, members: list[_Member], active: list[int]) -> list[int]:
    """Remove finished or stopped members from the stack."""
    keep = [j for j, i in enumerate(active) if not (members[i].stopped or members[i].finished)]
    if len(keep) == len(active):
        return active
    if keep:
        stack.keep(keep)
    return [active[j] for j in keep]


__all__ = ["StackedModels", "check_stackable", "stack_batches", "train_ensemble"]
