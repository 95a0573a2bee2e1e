"""A trained reference U-Net as a :class:`probekit.ModelHandle`.

Used twice: by the training loop, to hand the in-memory model to a per-checkpoint callback
(e.g. :class:`probekit.evaluator.SeriesEvaluator`), and by the ``ddpm`` adapter, which loads a
``ckpt-<step>.pt`` file into the same handle.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from probekit.base import ModelHandle
from probekit.errors import ValidationError
from probekit.reference.sample import ddim_sample, initial_noise
from probekit.validation import check_array


class DiffusionHandle(ModelHandle):
    """Samples with deterministic DDIM from a seed; predicts the noise for white-box probes.

    Parameters
    ----------
    model : nn.Module
        ``eps_theta(x_t, t)``.
    alpha_bar : torch.Tensor
        Cumulative noise schedule, length T (float64).
    step : int
        Training step of the weights.
    sample_shape : tuple of int
        Shape of one sample, e.g. ``(1, 32, 32)``.
    ddim_steps, batch_size : int
        Sampler settings.
    clip : (low, high) or None
        Clip each step's clean estimate to the data range (``None``: no clipping).
    device : str or torch.device
        Where the network runs.
    bf16 : bool
        Sample under bf16 autocast (``SamplerConfig.autocast_bf16``).
    """

    def __init__(self, model: nn.Module, alpha_bar: torch.Tensor, *, step: int,
                 sample_shape: tuple[int, ...], ddim_steps: int, batch_size: int = 1024,
                 clip: tuple[float, float] | None = None, device: torch.device | str = "cpu",
                 bf16: bool = False):
        self.model = model
        self.step = int(step)
        self.alpha_bar_ = alpha_bar.double().cpu()
        self.alphas_cumprod = self.alpha_bar_.numpy().copy()
        self.sample_shape = tuple(sample_shape)
        self.ddim_steps = int(ddim_steps)
        self.batch_size = int(batch_size)
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))
        self.device = torch.device(device)
        self.bf16 = bool(bf16)

    def generate(self, n: int, seed: int) -> np.ndarray:
        """``n`` DDIM samples from the initial noise of ``seed`` (identical at every step)."""
        noise = initial_noise(int(n), self.sample_shape, int(seed))
        x = ddim_sample(self.model, noise, self.alpha_bar_, ddim_steps=self.ddim_steps,
                        batch_size=self.batch_size, clip=self.clip, device=self.device,
                        bf16=self.bf16)
        return x.numpy()

    def predict_noise(self, x_t: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``eps_theta(x_t, t)`` for integer timesteps ``t`` (one per sample, or one for all)."""
        x_t = check_array(x_t, who="ddpm", name="x_t", dtype=np.float32)
        t = np.broadcast_to(np.asarray(t), (len(x_t),))
        if not np.issubdtype(t.dtype, np.integer) or t.min(initial=0) < 0 or \
                t.max(initial=0) >= len(self.alphas_cumprod):
            raise ValidationError(
                f"ddpm: t must hold integer timesteps in [0, {len(self.alphas_cumprod) - 1}]; "
                f"got dtype {t.dtype}, range [{t.min()}, {t.max()}]."
            )
        if x_t.shape[1:] != self.sample_shape:
            raise ValidationError(
                f"ddpm: x_t must have per-sample shape {self.sample_shape}; got {x_t.shape[1:]}."
            )
        was_training = self.model.training
        self.model.eval()
        out = []
        try:
            with torch.inference_mode():
                for start in range(0, len(x_t), self.batch_size):
                    xb = torch.from_numpy(x_t[start : start + self.batch_size]).to(self.device)
                    tb = torch.from_numpy(t[start : start + self.batch_size].astype(np.int64))
                    out.append(self.model(xb, tb.to(self.device)).float().cpu())
        finally:
            self.model.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros_like(x_t)


__all__ = ["DiffusionHandle"]
