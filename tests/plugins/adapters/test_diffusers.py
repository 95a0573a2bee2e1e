"""diffusers adapter on tiny UNet2DModel / UNet1DModel checkpoints created and saved here."""

from __future__ import annotations

import json

import numpy as np
import pytest

diffusers = pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from probekit import Checkpoint, get_adapter, get_probe  # noqa: E402
from probekit.errors import InputFileError, ValidationError  # noqa: E402
from probekit.series import discover_series  # noqa: E402


def tiny_unet2d(seed: int):
    torch.manual_seed(seed)
    return diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=(8, 16), norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    )


def tiny_unet1d(seed: int):
    torch.manual_seed(seed)
    return diffusers.UNet1DModel(
        sample_size=16, in_channels=2, out_channels=2, block_out_channels=(32, 32),
        extra_in_channels=64, down_block_types=("DownBlock1DNoSkip", "DownBlock1D"),
        up_block_types=("UpBlock1D", "UpBlock1DNoSkip"), time_embedding_type="fourier",
        use_timestep_embedding=False,
    )


@pytest.fixture(scope="module")
def run_2d(tmp_path_factory):
    """``train_unconditional.py``'s layout: checkpoint-<step>/unet plus scheduler/ beside."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("diffusers2d")
    for step, seed in ((10, 0), (20, 1)):
        tiny_unet2d(seed).save_pretrained(root / f"checkpoint-{step}" / "unet")
    diffusers.DDPMScheduler(num_train_timesteps=1000, clip_sample=False).save_pretrained(
        root / "scheduler")
    return root


def load(root, step, **settings):
    return get_adapter("diffusers")(**settings).load(Checkpoint(step, root / f"checkpoint-{step}"))


def test_discovery_picks_the_diffusers_adapter(run_2d):
    series = discover_series(run_2d)
    assert series.steps == [10, 20] and series.default_adapter == "diffusers"


def test_generation_is_seeded_batch_independent_and_starts_from_the_same_noise(run_2d):
    handles = [load(run_2d, 10, num_inference_steps=4), load(run_2d, 20, num_inference_steps=4)]
    first_inputs = []
    for handle in handles:
        seen = []
        handle.model.register_forward_pre_hook(lambda m, args, seen=seen: seen.append(
            args[0].clone()))
        out = handle.generate(5, seed=3)
        assert out.shape == (5, 1, 8, 8) and out.dtype == np.float32
        first_inputs.append(seen[0])
    # the same initial noise x_T at both checkpoints (which have different weights)
    torch.testing.assert_close(first_inputs[0], first_inputs[1], rtol=0, atol=0)
    expected = torch.randn((5, 1, 8, 8), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(first_inputs[0], expected, rtol=0, atol=0)
    a = handles[0].generate(5, seed=3)
    np.testing.assert_array_equal(a, handles[0].generate(5, seed=3))
    assert not np.allclose(a, handles[0].generate(5, seed=4))
    assert not np.allclose(a, handles[1].generate(5, seed=3))
    small = load(run_2d, 10, num_inference_steps=4, batch_size=2).generate(5, seed=3)
    np.testing.assert_allclose(small, a, rtol=1e-5, atol=1e-5)
    ddpm = [load(run_2d, 10, sampler="ddpm", num_inference_steps=4, batch_size=b)
            .generate(5, seed=3) for b in (256, 2)]
    np.testing.assert_allclose(ddpm[0], ddpm[1], rtol=1e-5, atol=1e-5)


def test_predict_noise_and_schedule(run_2d):
    handle = load(run_2d, 10)
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(handle.alphas_cumprod, np.cumprod(1 - betas), rtol=1e-5)
    x = np.random.default_rng(0).normal(size=(3, 1, 8, 8)).astype(np.float32)
    t = np.array([40, 40, 500])
    with torch.no_grad():
        direct = handle.model(torch.from_numpy(x), torch.from_numpy(t)).sample.numpy()
    np.testing.assert_allclose(handle.predict_noise(x, t), direct, rtol=1e-5, atol=1e-6)
    assert get_adapter("diffusers").can_predict_noise


def test_v_prediction_is_converted_to_noise(tmp_path):
    tiny_unet2d(0).save_pretrained(tmp_path / "checkpoint-5" / "unet")
    diffusers.DDPMScheduler(prediction_type="v_prediction").save_pretrained(
        tmp_path / "checkpoint-5" / "scheduler")
    handle = load(tmp_path, 5)
    x = np.random.default_rng(1).normal(size=(2, 1, 8, 8)).astype(np.float32)
    t = np.array([40, 900])
    with torch.no_grad():
        v = handle.model(torch.from_numpy(x), torch.from_numpy(t)).sample.numpy()
    abar = handle.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    expected = np.sqrt(abar) * v + np.sqrt(1 - abar) * x
    np.testing.assert_allclose(handle.predict_noise(x, t), expected, rtol=1e-5, atol=1e-6)


def test_unet1d_uses_the_time_series_layout(tmp_path):
    tiny_unet1d(0).save_pretrained(tmp_path / "checkpoint-3")  # model directly in the folder
    config = diffusers.DDIMScheduler(num_train_timesteps=1000).config
    (tmp_path / "checkpoint-3" / "scheduler_config.json").write_text(json.dumps(dict(config)))
    handle = load(tmp_path, 3, num_inference_steps=3)
    out = handle.generate(4, seed=0)
    assert out.shape == (4, 16, 2)  # (n_samples, n_timesteps, n_channels)
    eps = handle.predict_noise(out, np.full(4, 40))
    assert eps.shape == out.shape
    with torch.no_grad():
        direct = handle.model(torch.from_numpy(out).transpose(1, 2),
                              torch.full((4,), 40)).sample.transpose(1, 2).numpy()
    np.testing.assert_allclose(eps, direct, rtol=1e-5, atol=1e-6)


def test_loss_gap_runs_through_the_adapter(run_2d):
    rng = np.random.default_rng(0)
    train, holdout = rng.normal(size=(6, 1, 8, 8)), rng.normal(size=(6, 1, 8, 8))
    result = get_probe("loss-gap")(n_draws=2).prepare(train, holdout=holdout).evaluate(
        model=load(run_2d, 20))
    assert np.isfinite(result.value) and result.values["loss_train"] > 0


def test_errors(tmp_path, run_2d):
    tiny_unet2d(0).save_pretrained(tmp_path / "checkpoint-1" / "unet")
    with pytest.raises(InputFileError, match=r"no scheduler_config\.json.*scheduler=PATH"):
        load(tmp_path, 1)
    ok = load(tmp_path, 1, scheduler=str(run_2d / "scheduler"))
    assert ok.alphas_cumprod.shape == (1000,)
    (tmp_path / "checkpoint-2").mkdir()
    with pytest.raises(InputFileError, match="holds no model config"):
        load(tmp_path, 2)
    (tmp_path / "checkpoint-4" / "unet").mkdir(parents=True)
    (tmp_path / "checkpoint-4" / "unet" / "config.json").write_text(
        json.dumps({"_class_name": "UNet2DConditionModel"}))
    with pytest.raises(ValidationError, match="unconditional"):
        load(tmp_path, 4)
    with pytest.raises(ValidationError, match="sampler"):
        get_adapter("diffusers")(sampler="euler")
