"""The batched ensemble (issue 15, item 3): k runs trained at once through ``vmap`` give the
losses, checkpoints and samples of k plain runs with the same seeds; resume, early stop and the
compiled / bf16 paths."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from probekit.errors import ValidationError
from probekit.reference.diffusion import alphas_cumprod
from probekit.reference.ensemble import check_stackable, train_ensemble
from probekit.reference.handle import DiffusionHandle
from probekit.reference.train import (
    list_checkpoints,
    load_checkpoint,
    model_from_checkpoint,
    train,
)
from probekit.types import Provenance, Result


def _config(tiny, n, seed, optimizer="sgd", steps=12, ema=True):
    """The tiny digits config with full batches min(n, 512) (so members of different n have
    different batches and the ensemble pads), dropout 0.1 and attention at 4×4."""
    cfg = tiny(n=n, steps=steps, seed=seed, with_replacement=False, batch_size=512,
               optimizer=optimizer, lr=0.01 if optimizer == "sgd" else 1e-3)
    train_cfg = dataclasses.replace(cfg.train, log_every=1,
                                    ema_decay=cfg.train.ema_decay if ema else None)
    sampler = dataclasses.replace(cfg.sampler, use_ema=ema)
    unet = dataclasses.replace(cfg.unet, dropout=0.1, attention_resolutions=(4,))
    return dataclasses.replace(cfg, train=train_cfg, unet=unet, sampler=sampler)


def _losses(run_dir):
    lines = (json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines())
    return [(r["step"], r["loss"]) for r in lines if r["event"] == "train"]


def _samples(ckpt_path, n=8):
    ckpt = load_checkpoint(ckpt_path)
    model, cfg = model_from_checkpoint(ckpt)
    handle = DiffusionHandle(model, alphas_cumprod(cfg.diffusion), step=ckpt["step"],
                             sample_shape=tuple(ckpt["sample_shape"]), ddim_steps=5,
                             clip=cfg.sampler.clip)
    return handle.generate(n, seed=3)


def _assert_same_runs(plain, batched, *, exact_weights):
    """Same per-step losses to 1e-5, the same checkpoint steps, the same samples (to 1e-4 in
    [-1, 1]; 1e-3 with Adam, see below)."""
    assert [s for s, _ in list_checkpoints(plain)] == [s for s, _ in list_checkpoints(batched)]
    a, b = _losses(plain), _losses(batched)
    assert [s for s, _ in a] == [s for s, _ in b] and len(a) > 0
    np.testing.assert_allclose([v for _, v in b], [v for _, v in a], rtol=0, atol=1e-5)
    last = list_checkpoints(plain)[-1][1]
    other = batched / last.name
    np.testing.assert_allclose(_samples(other), _samples(last), rtol=0,
                               atol=1e-4 if exact_weights else 1e-3)
    if exact_weights:
        wa, wb = load_checkpoint(last)["weights"], load_checkpoint(other)["weights"]
        for k in wa:
            torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=1e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_ensemble_equals_one_run_at_a_time(tmp_path, tiny, optimizer):
    cfgs = [_config(tiny, 8, 0, optimizer), _config(tiny, 12, 1, optimizer)]
    for i, cfg in enumerate(cfgs):
        train(cfg, tmp_path / f"plain-{i}", quiet=True)
    outcomes = train_ensemble(cfgs, [tmp_path / f"ens-{i}" for i in range(2)], quiet=True)
    assert [o.last_step for o in outcomes] == [12, 12]
    for i in range(2):
        # SGD: the weights agree too. Adam divides each gradient by its running RMS, so in the
        # directions the loss (almost) does not depend on (the per-group mean of a bias before a
        # GroupNorm, the key bias of attention) float32 rounding noise of ~1e-9 becomes steps
        # of ±lr: those weights drift apart by up to ~5e-3, the losses stay equal to 1e-5 and
        # the samples to ~2e-4 (measured).
        _assert_same_runs(tmp_path / f"plain-{i}", tmp_path / f"ens-{i}",
                          exact_weights=optimizer == "sgd")
    # members write plain run directories: resume state only in the newest checkpoint
    ckpts = list_checkpoints(tmp_path / "ens-1")
    assert ["resume" in load_checkpoint(p) for _, p in ckpts] == [False] * (len(ckpts) - 1) + \
        [True]
    assert load_checkpoint(ckpts[-1][1])["config"]["data"]["n_train"] == 12


def test_ensemble_resumes_and_extends_like_a_plain_run(tmp_path, tiny):
    cfgs = [_config(tiny, 8, 0), _config(tiny, 12, 1)]
    for i, cfg in enumerate(cfgs):
        train(cfg, tmp_path / f"plain-{i}", quiet=True)
    short = [dataclasses.replace(c, train=dataclasses.replace(c.train, steps=10)) for c in cfgs]
    outs = [tmp_path / f"ens-{i}" for i in range(2)]
    train_ensemble(short, outs, quiet=True)
    outcomes = train_ensemble(cfgs, outs, quiet=True)
    assert [o.resumed_from for o in outcomes] == [10, 10]
    for i in range(2):
        _assert_same_runs(tmp_path / f"plain-{i}", outs[i], exact_weights=True)


def test_members_at_different_steps_are_trained_in_groups(tmp_path, tiny):
    cfgs = [_config(tiny, 8, 0), _config(tiny, 12, 1)]
    for i, cfg in enumerate(cfgs):
        train(cfg, tmp_path / f"plain-{i}", quiet=True)
    outs = [tmp_path / f"ens-{i}" for i in range(2)]
    ten = dataclasses.replace(cfgs[0], train=dataclasses.replace(cfgs[0].train, steps=10))
    train(ten, outs[0], quiet=True)  # one member trained alone to step 10 first
    outcomes = train_ensemble(cfgs, outs, quiet=True)
    assert [o.resumed_from for o in outcomes] == [10, None]
    for i in range(2):
        _assert_same_runs(tmp_path / f"plain-{i}", outs[i], exact_weights=True)


def _fake_probe(schedule):
    """A callback whose f_mem is ``schedule(step)``, as an evaluator's result."""
    prov = Provenance(measure="nn-ratio", plugin="t", plugin_version="0", probekit_version="0",
                      settings={})

    def callback(step, handle):
        return [Result(measure="nn-ratio", headline="f_mem", values={"f_mem": schedule(step)},
                       provenance=prov)]
    return callback


def test_a_member_that_stops_on_f_mem_leaves_the_stack(tmp_path, tiny):
    cfgs = [_config(tiny, 8, 0, steps=24), _config(tiny, 12, 1, steps=24)]
    callbacks = [_fake_probe(lambda s: 1.0 if s >= 10 else 0.0), _fake_probe(lambda s: 0.0)]
    for i, cfg in enumerate(cfgs):
        train(cfg, tmp_path / f"plain-{i}", callback=callbacks[i], stop_after_mem=0.5,
              quiet=True)
    outs = [tmp_path / f"ens-{i}" for i in range(2)]
    outcomes = train_ensemble(cfgs, outs, callbacks=callbacks, stop_after_mem=0.5, quiet=True)
    assert [(o.last_step, o.stopped_early) for o in outcomes] == [(20, True), (24, False)]
    for i in range(2):  # the survivor's optimizer state was carried over exactly
        _assert_same_runs(tmp_path / f"plain-{i}", outs[i], exact_weights=True)
    again = train_ensemble(cfgs, outs, callbacks=callbacks, stop_after_mem=0.5, quiet=True)
    assert [(o.last_step, o.stopped_early) for o in again] == [(20, True), (24, False)]


def test_runs_that_cannot_share_a_stack_are_refused(tiny, tmp_path):
    a, b = _config(tiny, 8, 0), _config(tiny, 8, 0, optimizer="adam")
    with pytest.raises(ValidationError, match="optimizer"):
        check_stackable([a, b])
    wide = dataclasses.replace(a, unet=dataclasses.replace(a.unet, base_width=16))
    with pytest.raises(ValidationError, match="network"):
        train_ensemble([a, wide], [tmp_path / "a", tmp_path / "b"], quiet=True)
    with pytest.raises(ValidationError, match="distinct"):
        train_ensemble([a, a], [tmp_path / "a", tmp_path / "a"], quiet=True)


def test_bf16_autocast_trains_close_to_float32(tmp_path, tiny):
    cfg = _config(tiny, 8, 0, ema=False)
    bf16 = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, autocast_bf16=True),
                               sampler=dataclasses.replace(cfg.sampler, autocast_bf16=True))
    train(cfg, tmp_path / "fp32", quiet=True)
    train(bf16, tmp_path / "bf16", quiet=True)
    train_ensemble([bf16], [tmp_path / "ens-bf16"], quiet=True)
    a, b = _losses(tmp_path / "fp32"), _losses(tmp_path / "bf16")
    rel = np.abs(np.array([v for _, v in b]) - [v for _, v in a]) / np.array([v for _, v in a])
    assert rel.max() < 0.05, rel.max()  # bf16 has 8 mantissa bits: close, not equal
    assert rel.max() > 0  # and it did run in bf16
    np.testing.assert_allclose([v for _, v in _losses(tmp_path / "ens-bf16")],
                               [v for _, v in b], atol=2e-3)
    samples = _samples(list_checkpoints(tmp_path / "bf16")[-1][1])
    assert np.isfinite(samples).all()
