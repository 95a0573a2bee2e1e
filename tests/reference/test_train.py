"""The training loop: schedule, batches, checkpoints, resume after SIGKILL, early stop."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys

import pytest
import torch

from probekit.errors import ConfigMismatchError, ValidationError
from probekit.reference.config import ScheduleConfig, TrainConfig
from probekit.reference.train import (
    RUN_KIND,
    batch_indices,
    checkpoint_steps,
    ema_decay_at,
    list_checkpoints,
    load_checkpoint,
    train,
)
from probekit.types import Provenance, Result


def test_schedule_is_dense_then_log_spaced():
    steps = checkpoint_steps(ScheduleConfig(dense_every=50, dense_until=1000, per_decade=10),
                             100_000)
    assert steps[:3] == [0, 50, 100] and steps[-1] == 100_000
    assert set(range(0, 1001, 50)) <= set(steps)
    late = [s for s in steps if s > 1000]
    assert all(s % 50 == 0 for s in late)
    ratios = [b / a for a, b in zip([1000, *late[:-1]], late, strict=True)]
    assert max(ratios) < 10 ** (1 / 10) * 1.05 and min(ratios) > 10 ** (1 / 10) / 1.05
    assert len(late) == pytest.approx(20, abs=1)  # two decades, ten per decade
    assert checkpoint_steps(ScheduleConfig(dense_every=50, dense_until=1000), 120) == [
        0, 50, 100, 120]


def test_batches_are_full_iid_or_epochs():
    base = TrainConfig(batch_size=4, seed=3)
    assert torch.equal(batch_indices(7, 3, base), torch.arange(3))  # n <= batch: full batch
    epochs = dataclasses.replace(base, with_replacement=False)
    seen = torch.cat([batch_indices(s, 10, epochs) for s in range(3)])  # ceil(10/4) = 3 steps
    assert sorted(seen.tolist()) == list(range(10))  # one epoch = every sample once
    assert not torch.equal(seen, torch.cat([batch_indices(s, 10, epochs) for s in range(3, 6)]))
    iid = dataclasses.replace(base, with_replacement=True)
    draws = torch.cat([batch_indices(s, 10, iid) for s in range(500)])
    assert draws.min() == 0 and draws.max() == 9 and len(draws) == 2000
    assert torch.equal(batch_indices(5, 10, iid), batch_indices(5, 10, iid))  # pure function
    # i.i.d. draws keep the batch size when n < batch (the digits recipe: 64 draws at n = 16)
    small = torch.stack([batch_indices(s, 3, iid) for s in range(300)])
    assert small.shape == (300, 4) and set(small.flatten().tolist()) == {0, 1, 2}
    assert (small == small[:, :1]).all(dim=1).float().mean() < 0.1  # a batch is not one image


def test_ema_warmup_follows_diffusers_and_caps_at_the_decay():
    plain = TrainConfig(ema_decay=0.99)
    assert [ema_decay_at(s, plain) for s in (0, 5, 5000)] == [0.99, 0.99, 0.99]
    warm = dataclasses.replace(plain, ema_warmup=True)
    # diffusers EMAModel.get_decay (use_ema_warmup=False): 0 at the first update, then
    # (1 + s) / (10 + s), capped at the decay
    assert ema_decay_at(0, warm) == 0.0
    assert ema_decay_at(1, warm) == pytest.approx(2 / 11)
    assert ema_decay_at(90, warm) == pytest.approx(91 / 100)
    assert ema_decay_at(890, warm) == pytest.approx(0.99)
    assert ema_decay_at(10**6, warm) == 0.99
    with pytest.raises(ValidationError, match="no EMA"):
        ema_decay_at(3, TrainConfig(ema_decay=None))


def test_tiny_training_writes_a_run_directory(tmp_path, tiny):
    cfg = tiny(n=8, steps=60)
    outcome = train(cfg, tmp_path, quiet=True)
    assert outcome.checkpoints == checkpoint_steps(cfg.schedule, 60) == list(range(0, 61, 10))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["kind"] == RUN_KIND and config["adapter"] == "ddpm"
    assert config["dataset"] == "digits" and config["dataset_settings"]["n_train"] == 8
    assert config["steps"] == outcome.checkpoints
    stats = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in stats if r["event"] == "train"]
    assert len(losses) == 12 and losses[-1] < losses[0]
    for step, path in list_checkpoints(tmp_path):
        raw = torch.load(path, map_location="cpu", weights_only=True)
        assert raw["step"] == step and raw["config"] == cfg.to_dict()
        assert ("resume" in raw) == (step == 60)  # only the latest keeps optimizer state
    assert "optimizer" in load_checkpoint(tmp_path / "ckpt-00000060.pt")["resume"]


_KILLED_RUN = """
import json, os, signal, sys, torch
torch.set_num_threads(1)
from probekit.reference.config import RunConfig
from probekit.reference.train import train
cfg = RunConfig.from_dict(json.load(open(sys.argv[1])))
def die(step, handle):
    if step == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
train(cfg, sys.argv[2], callback=die, quiet=True)
"""


@pytest.mark.slow
def test_a_killed_run_resumes_exactly(tmp_path, tiny):
    cfg = tiny(n=8, steps=40)
    cfg = dataclasses.replace(cfg, unet=dataclasses.replace(cfg.unet, dropout=0.1))
    reference = train(cfg, tmp_path / "whole", quiet=True)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(tmp_path / "cfg.json"),
                           str(killed), "30"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert [s for s, _ in list_checkpoints(killed)] == [0, 10, 20]

    resumed = train(cfg, killed, quiet=True)
    assert resumed.resumed_from == 20 and reference.resumed_from is None
    assert resumed.checkpoints == reference.checkpoints
    for step in (30, 40):
        a = load_checkpoint(tmp_path / "whole" / f"ckpt-{step:08d}.pt")
        b = load_checkpoint(killed / f"ckpt-{step:08d}.pt")
        for key in a["weights"]:
            assert torch.equal(a["weights"][key], b["weights"][key]), (step, key)
    assert "resume" not in load_checkpoint(killed / "ckpt-00000020.pt")


def test_resuming_with_another_recipe_is_refused(tmp_path, tiny):
    cfg = tiny(n=8, steps=10)
    train(cfg, tmp_path, quiet=True)
    with pytest.raises(ConfigMismatchError, match="other settings"):
        train(tiny(n=9, steps=10), tmp_path, quiet=True)
    # a longer run of the same recipe extends it
    longer = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=20))
    outcome = train(longer, tmp_path, quiet=True)
    assert outcome.resumed_from == 10 and outcome.checkpoints == [0, 10, 20]


def _fake_f_mem(value: float) -> Result:
    prov = Provenance(measure="nn-ratio", plugin="t", plugin_version="0", probekit_version="0",
                      settings={})
    return Result(measure="nn-ratio", headline="f_mem", values={"f_mem": value},
                  provenance=prov)


def test_stop_after_mem_needs_two_consecutive_checkpoints(tmp_path, tiny):
    planted = {0: 0.0, 10: 0.5, 20: 0.0, 30: 0.3, 40: 0.6, 50: 0.9, 60: 1.0}
    seen = []

    def callback(step, handle):
        seen.append(step)
        return [_fake_f_mem(planted[step])]

    outcome = train(tiny(n=8, steps=60), tmp_path, callback=callback, stop_after_mem=0.3,
                    quiet=True)
    assert outcome.stopped_early and outcome.last_step == 40
    assert seen == [0, 10, 20, 30, 40]
    assert json.loads((tmp_path / "stats.jsonl").read_text().splitlines()[-1])["event"] == \
        "stopped"


def test_a_run_that_stopped_on_f_mem_is_not_trained_further_when_run_again(tmp_path, tiny):
    planted = {0: 0.0, 10: 0.5, 20: 0.6, 30: 0.7, 40: 0.8}
    seen = []

    def callback(step, handle):
        seen.append(step)
        return [_fake_f_mem(planted[step])]

    cfg = tiny(n=8, steps=40)
    first = train(cfg, tmp_path, callback=callback, stop_after_mem=0.3, quiet=True)
    assert first.stopped_early and first.last_step == 20
    log_before = (tmp_path / "stats.jsonl").read_text()
    again = train(cfg, tmp_path, callback=callback, stop_after_mem=0.3, quiet=True)
    # resumed at the stopping checkpoint (its callback is repeated: an evaluator skips what it
    # committed) and stopped there: no new step, checkpoint or log line
    assert again.stopped_early and again.resumed_from == 20 and again.last_step == 20
    assert seen == [0, 10, 20, 20]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [0, 10, 20]
    assert (tmp_path / "stats.jsonl").read_text() == log_before
