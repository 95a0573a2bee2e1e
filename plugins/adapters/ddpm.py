"""``ddpm``: checkpoints of probekit's reference pipeline (``ckpt-<step:08d>.pt``).

Each checkpoint carries its config, so the adapter rebuilds the U-Net, loads the sampling weights
(the EMA when the run samples with it) with ``weights_only=True`` and returns a handle that
generates with deterministic DDIM (η = 0) — the initial noise depends only on the seed, so it is
the same at every checkpoint — and predicts the noise for white-box probes.
"""

from __future__ import annotations

import pydantic

from probekit import Adapter, Checkpoint, Settings, hookimpl
from probekit.validation import TorchDevice


class DDPMAdapterSettings(Settings):
    device: TorchDevice = pydantic.Field("cpu", description="torch device the network runs on")
    ddim_steps: int | None = pydantic.Field(
        None, ge=1, description="DDIM steps per sample (default: the run's sampler setting)"
    )
    batch_size: int | None = pydantic.Field(
        None, ge=1, description="samples per forward pass (default: the run's sampler setting)"
    )


class DDPMAdapter(Adapter):
    """Loads a reference-pipeline checkpoint into a :class:`DiffusionHandle`."""

    name = "ddpm"
    modality = "any"
    description = "checkpoints of `probekit reference train` (DDIM sampling, white-box)"
    can_predict_noise = True
    Settings = DDPMAdapterSettings
    settings: DDPMAdapterSettings

    def load(self, checkpoint: Checkpoint):
        from probekit.reference.diffusion import alphas_cumprod
        from probekit.reference.handle import DiffusionHandle
        from probekit.reference.train import load_checkpoint, model_from_checkpoint

        s = self.settings
        ckpt = load_checkpoint(checkpoint.path)
        model, cfg = model_from_checkpoint(ckpt, s.device)
        shape = tuple(ckpt.get("sample_shape") or
                      (cfg.unet.in_channels, *([cfg.unet.resolution] * cfg.unet.dims)))
        return DiffusionHandle(
            model, alphas_cumprod(cfg.diffusion), step=int(ckpt["step"]), sample_shape=shape,
            ddim_steps=s.ddim_steps or cfg.sampler.ddim_steps,
            batch_size=s.batch_size or cfg.sampler.batch_size, clip=cfg.sampler.clip,
            device=s.device, bf16=cfg.sampler.autocast_bf16,
        )


@hookimpl
def register_adapters():
    return [DDPMAdapter]
