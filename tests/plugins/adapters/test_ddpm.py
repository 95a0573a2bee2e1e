"""The ``ddpm`` adapter on checkpoints written by a tiny reference run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from probekit import Checkpoint, InputFileError, ValidationError, get_adapter
from probekit.reference.config import DiffusionConfig, preset
from probekit.reference.diffusion import alphas_cumprod
from probekit.reference.train import list_checkpoints, load_checkpoint, train
from probekit.reference.unet import UNet


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 20-step run of digits-small at C = 8, and the samples its callback saw."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = preset("digits-small", n=8, steps=20, width=8)
    cfg = dataclasses.replace(
        cfg,
        schedule=dataclasses.replace(cfg.schedule, dense_every=10, dense_until=20),
        sampler=dataclasses.replace(cfg.sampler, ddim_steps=5, batch_size=16),
    )
    out = tmp_path_factory.mktemp("ddpm-run")
    seen = {}
    train(cfg, out, quiet=True, callback=lambda step, h: seen.setdefault(step, h.generate(6, 7)))
    yield out, seen
    torch.set_num_threads(threads)


def _load(run_dir, step, **settings):
    path = dict(list_checkpoints(run_dir))[step]
    return get_adapter("ddpm")(settings).load(Checkpoint(step, path))


def test_adapter_is_registered_and_white_box():
    cls = get_adapter("ddpm")
    assert cls.can_predict_noise and cls.name == "ddpm"


def test_loaded_checkpoints_sample_what_training_sampled(run):
    run_dir, seen = run
    for step in (0, 10, 20):
        handle = _load(run_dir, step)
        assert handle.step == step
        np.testing.assert_array_equal(handle.generate(6, seed=7), seen[step])
    assert not np.allclose(seen[0], seen[20])  # the weights did change


def test_generation_is_deterministic_and_prefix_stable(run):
    handle = _load(run[0], 20)
    a, b = handle.generate(8, seed=3), handle.generate(8, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(handle.generate(4, seed=3), a[:4], atol=1e-5)
    assert not np.allclose(handle.generate(4, seed=4), a[:4])
    assert a.shape == (8, 1, 8, 8) and a.dtype == np.float32


def test_predict_noise_is_the_network_and_the_schedule_is_exposed(run):
    run_dir = run[0]
    handle = _load(run_dir, 20, ddim_steps=3)
    assert handle.ddim_steps == 3
    ckpt = load_checkpoint(dict(list_checkpoints(run_dir))[20])
    np.testing.assert_allclose(handle.alphas_cumprod, alphas_cumprod(DiffusionConfig()).numpy())
    model = UNet(preset("digits-small", n=8, width=8).unet)
    model.load_state_dict(ckpt["weights"])
    model.eval()
    x = np.random.default_rng(0).normal(size=(5, 1, 8, 8)).astype(np.float32)
    t = np.array([1, 40, 200, 600, 999])
    with torch.no_grad():
        expected = model(torch.from_numpy(x), torch.from_numpy(t)).numpy()
    np.testing.assert_allclose(handle.predict_noise(x, t), expected, atol=1e-6)
    with pytest.raises(ValidationError, match="integer timesteps"):
        handle.predict_noise(x, np.full(5, 1000))


def test_a_foreign_file_is_a_clear_error(tmp_path):
    path = tmp_path / "ckpt-00000001.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(InputFileError, match="not a probekit reference checkpoint"):
        get_adapter("ddpm")().load(Checkpoint(1, path))
