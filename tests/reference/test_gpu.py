"""The same code on CUDA (skipped without a GPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from probekit_plugins.adapters.ddpm import DDPMAdapter

from probekit.reference.train import list_checkpoints, train
from probekit.types import Checkpoint


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_and_sampling_run_on_cuda_like_on_cpu(tmp_path, tiny):
    cfg = tiny(n=8, steps=20)
    train(cfg, tmp_path / "cuda", device="cuda", quiet=True)
    train(cfg, tmp_path / "cpu", device="cpu", quiet=True)
    losses = {
        dev: [json.loads(line)["loss"]
              for line in (tmp_path / dev / "stats.jsonl").read_text().splitlines()
              if '"train"' in line]
        for dev in ("cuda", "cpu")
    }
    # same init, batches, timesteps and noise (all drawn on the CPU): only rounding differs
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=0.1)
    (step, path), = [c for c in list_checkpoints(tmp_path / "cuda") if c[0] == 20]
    on_gpu = DDPMAdapter(device="cuda").load(Checkpoint(step, path)).generate(16, seed=0)
    on_cpu = DDPMAdapter().load(Checkpoint(step, path)).generate(16, seed=0)
    assert np.isfinite(on_gpu).all()
    # same weights, same initial noise: the devices agree up to float rounding
    assert np.allclose(on_gpu, on_cpu, atol=1e-3 * max(1.0, np.abs(on_cpu).max()))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_asking_for_cuda_without_one_is_a_clear_error(tmp_path, tiny):
    from probekit.errors import ValidationError

    with pytest.raises(ValidationError, match="no CUDA device"):
        train(tiny(n=8, steps=10), tmp_path / "run", device="cuda", quiet=True)
    assert not (tmp_path / "run").exists()
