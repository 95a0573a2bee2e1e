"""diffusers-class-conditional on tiny checkpoints built here: a pixel-space class-conditional
UNet2DModel and a latent DiT (learned variance, label dropout) with a VAE; labels given or
drawn, per-(label, index) noise, guidance only with a null class, noise predictions by hand."""

from __future__ import annotations

import numpy as np
import pytest

diffusers = pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from probekit import Checkpoint, get_adapter  # noqa: E402
from probekit.conditions import initial_noise  # noqa: E402
from probekit.errors import InputFileError, ValidationError  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("classcond")
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000)
    for step, seed in ((10, 0), (20, 1)):
        torch.manual_seed(seed)
        diffusers.UNet2DModel(
            sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
            block_out_channels=(8, 16), norm_num_groups=4, num_class_embeds=3,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
        ).save_pretrained(root / "unet" / f"checkpoint-{step}" / "unet")
        torch.manual_seed(seed)
        diffusers.DiTTransformer2DModel(
            num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
            num_layers=1, sample_size=8, patch_size=2, num_embeds_ada_norm=5,
        ).save_pretrained(root / "dit" / f"checkpoint-{step}" / "transformer")
    scheduler.save_pretrained(root / "unet" / "scheduler")
    scheduler.save_pretrained(root / "dit" / "scheduler")
    torch.manual_seed(2)
    diffusers.AutoencoderKL(
        in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
        latent_channels=4, layers_per_block=1, norm_num_groups=4, sample_size=16,
    ).save_pretrained(root / "dit" / "vae")
    return root


def load(root, kind, step, **settings):
    settings = {"num_inference_steps": 3, **settings}
    return get_adapter("diffusers-class-conditional")(**settings).load(
        Checkpoint(step, root / kind / f"checkpoint-{step}"))


def test_pixel_unet_labels_given_or_drawn(runs):
    a, b = load(runs, "unet", 10), load(runs, "unet", 20)
    assert a.n_classes == 3 and a.vae is None and not a.has_null
    x = a.generate(4, seed=0, conditions=[0, 2, 2, 1])
    assert x.shape == (4, 1, 8, 8) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    # labels drawn from the seed: the same at every checkpoint, and the same images as given
    drawn = a.resolve_conditions(6, 3, None)
    assert drawn == b.resolve_conditions(6, 3, None) and set(drawn) <= {0, 1, 2}
    np.testing.assert_allclose(a.generate(6, seed=3), a.generate(6, seed=3, conditions=drawn),
                               atol=1e-6)
    # per-(label, index) noise: label 2's first sample does not depend on what comes before
    alone = a.generate(1, seed=0, conditions=[2])
    np.testing.assert_allclose(x[1], alone[0], atol=1e-5)
    small = load(runs, "unet", 10, batch_size=1).generate(4, seed=0, conditions=[0, 2, 2, 1])
    np.testing.assert_allclose(small, x, atol=1e-5)
    with pytest.raises(ValidationError, match=r"\[0, 2\]"):
        a.generate(1, seed=0, conditions=[3])
    with pytest.raises(ValidationError, match="class labels"):
        a.generate(1, seed=0, conditions=["a caption"])


def test_pixel_unet_guidance_needs_a_null_class(runs):
    with pytest.raises(ValidationError, match="null condition"):
        load(runs, "unet", 10, guidance_scale=2.0).generate(2, seed=0, conditions=[0, 1])
    guided = load(runs, "unet", 10, guidance_scale=2.0, null_class=2)
    x_t = initial_noise((1, 8, 8), 0, [0, 1]).numpy()
    t = np.array([500, 500])
    eps = guided.predict_noise(x_t, t, conditions=[0, 1])
    with torch.no_grad():
        manual = guided.model(torch.from_numpy(x_t), torch.from_numpy(t),
                              class_labels=torch.tensor([0, 1])).sample.numpy()
    np.testing.assert_allclose(eps, manual, atol=1e-6)
    null = guided.predict_noise(x_t, t)
    with torch.no_grad():
        manual_null = guided.model(torch.from_numpy(x_t), torch.from_numpy(t),
                                   class_labels=torch.tensor([2, 2])).sample.numpy()
    np.testing.assert_allclose(null, manual_null, atol=1e-6)
    assert guided.guidance_trace(0, [0, 1], 2).shape == (2, 2)


def test_latent_dit_with_learned_variance_and_dropout_class(runs):
    a = load(runs, "dit", 10, guidance_scale=4.0)
    assert a.vae is not None and a.learned_sigma and a.null_class == 5 and a.n_classes == 5
    x = a.generate(3, seed=1, conditions=[4, 0, 4])
    assert x.shape == (3, 1, 16, 16)
    b = load(runs, "dit", 20, guidance_scale=4.0)
    assert not np.allclose(x, b.generate(3, seed=1, conditions=[4, 0, 4]), atol=1e-4)
    x_t = initial_noise((4, 8, 8), 1, [4, 0]).numpy()
    t = np.array([900, 900])
    eps = a.predict_noise(x_t, t, conditions=[4, 0])
    with torch.no_grad():
        out = a.model(torch.from_numpy(x_t), timestep=torch.from_numpy(t),
                      class_labels=torch.tensor([4, 0])).sample
    np.testing.assert_allclose(eps, out[:, :4].numpy(), atol=1e-6)  # the noise half
    trace = a.guidance_trace(1, [4, 0, 4], 2)
    assert trace.shape == (3, 2) and (trace > 0).all()


def test_errors(runs, tmp_path):
    adapter = get_adapter("diffusers-class-conditional")
    (tmp_path / "checkpoint-1").mkdir()
    with pytest.raises(InputFileError, match="holds no model config"):
        adapter().load(Checkpoint(1, tmp_path / "checkpoint-1"))
    torch.manual_seed(0)
    diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=(8, 16), norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    ).save_pretrained(tmp_path / "checkpoint-2" / "unet")
    with pytest.raises(ValidationError, match="unconditional"):
        adapter().load(Checkpoint(2, tmp_path / "checkpoint-2"))
    with pytest.raises(ValidationError, match="null_class must be"):
        load(runs, "unet", 10, null_class=7)
