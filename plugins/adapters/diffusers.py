"""``diffusers``: checkpoints saved by the diffusers library (optional extra
``probekit[diffusers]``).

Reads ``UNet2DModel`` (images) and ``UNet1DModel`` (time series) folders — a checkpoint folder
with the model in ``unet/`` (as diffusers' ``train_unconditional.py`` writes
``checkpoint-<step>/unet/``) or directly in the folder — and the DDPM/DDIM noise schedule from
a ``scheduler_config.json`` found in ``<checkpoint>/scheduler/``, in ``scheduler/`` next to the
checkpoint folders (where the final pipeline is saved), or given with ``scheduler=PATH``.

Sampling starts from ``torch.randn`` drawn with a generator seeded by ``seed`` — the same
initial noise at every checkpoint — and runs DDIM (``eta = 0``: deterministic) or ancestral
DDPM; the noise of stochastic steps is drawn for all samples at once, so results do not depend
on ``batch_size``. Samples are returned in the model's value range (usually [-1, 1]); time
series in probekit's layout ``(n_samples, n_timesteps, n_channels)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic

from probekit import Adapter, Checkpoint, ModelHandle, Settings, hookimpl
from probekit.errors import InputFileError, MissingResourceError, ValidationError
from probekit.progress import progress
from probekit.validation import TorchDevice, describe

SUPPORTED_MODELS = ("UNet2DModel", "UNet1DModel")


class DiffusersAdapterSettings(Settings):
    subfolder: str | None = pydantic.Field(
        None, description="model folder inside the checkpoint (None: 'unet' if present, else "
        "the checkpoint folder itself; 'unet_ema' for EMA weights)"
    )
    scheduler: str | None = pydantic.Field(
        None, description="scheduler_config.json or its folder (None: searched next to the model)"
    )
    sampler: Literal["ddim", "ddpm"] = pydantic.Field("ddim", description="sampling method")
    num_inference_steps: int = pydantic.Field(50, ge=1, description="sampling steps")
    eta: float = pydantic.Field(0.0, ge=0.0, le=1.0, description="DDIM eta (0: deterministic)")
    batch_size: int = pydantic.Field(256, gt=0, description="samples per network call")
    device: TorchDevice = pydantic.Field("cpu", description="torch device, e.g. 'cpu' or 'cuda'")


def _import_diffusers():
    try:
        import diffusers
    except ImportError:
        raise MissingResourceError(
            "diffusers: the diffusers package is not installed; install the extra with "
            "`pip install 'probekit[diffusers]'`."
        ) from None
    return diffusers


def _model_dir(checkpoint: Path, subfolder: str | None) -> Path:
    candidates = [checkpoint / subfolder] if subfolder else [checkpoint / "unet", checkpoint]
    for folder in candidates:
        if (folder / "config.json").is_file():
            return folder
    looked = ", ".join(repr(str(c / "config.json")) for c in candidates)
    raise InputFileError(
        f"diffusers: checkpoint {str(checkpoint)!r} holds no model config; looked for {looked}. "
        "Point to a folder saved with model.save_pretrained(...), or set subfolder=..."
    )


def _checked_weights(model_dir: Path) -> dict[str, Any] | None:
    """Check the weights file before diffusers reads it, so that a corrupt or unsafe file is
    one line saying what is wrong (never diffusers' text or advice to load pickles).

    Returns ``None`` (diffusers then loads the file itself, safely), or the state dict of a
    ``.bin`` holding pickled objects when ``PROBEKIT_ALLOW_PICKLE=1`` says the user trusts it.
    """
    from probekit.io import load_torch_file, pickle_allowed
    from probekit.validation import check_input_path, one_line

    safetensors_file = model_dir / "diffusion_pytorch_model.safetensors"
    bin_file = model_dir / "diffusion_pytorch_model.bin"
    if safetensors_file.exists():
        check_input_path(safetensors_file, who="diffusers", name="weights", kind="file")
        from safetensors import safe_open

        try:
            with safe_open(str(safetensors_file), framework="pt") as f:
                f.keys()
        except Exception as exc:
            raise InputFileError(
                f"diffusers: cannot read {str(safetensors_file)!r}: not a valid safetensors "
                f"file ({one_line(exc, limit=120)}). Is it complete? Save the checkpoint again."
            ) from None
        return None
    if bin_file.exists():
        if pickle_allowed():  # only then can the file need more than torch's safe loader
            return load_torch_file(bin_file, who="diffusers")
        load_torch_file(bin_file, who="diffusers")  # refuses pickled objects in one line
    return None


def _scheduler_config(checkpoint: Path, model_dir: Path, setting: str | None) -> dict[str, Any]:
    if setting:
        given = Path(setting).expanduser()
        candidates = [given if given.suffix == ".json" else given / "scheduler_config.json"]
    else:
        candidates = [
            checkpoint / "scheduler" / "scheduler_config.json",
            checkpoint / "scheduler_config.json",
            model_dir / "scheduler_config.json",
            checkpoint.parent / "scheduler" / "scheduler_config.json",
        ]
    for path in candidates:
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise InputFileError(f"diffusers: cannot read {str(path)!r}: {exc}.") from None
    looked = ", ".join(repr(str(c)) for c in candidates)
    raise InputFileError(
        f"diffusers: no scheduler_config.json for checkpoint {str(checkpoint)!r}; looked for "
        f"{looked}. Save the training scheduler with scheduler.save_pretrained(...) or pass "
        "scheduler=PATH (--adapter-set scheduler=PATH)."
    )


class DiffusersHandle(ModelHandle):
    """A loaded diffusers U-Net with its noise schedule."""

    def __init__(self, model: Any, scheduler_config: dict[str, Any],
                 settings: DiffusersAdapterSettings, step: int):
        import torch

        diffusers = _import_diffusers()
        self.model = model
        self.settings = settings
        self.step = step
        self.device = torch.device(settings.device)
        self.scheduler_config = scheduler_config
        training = diffusers.DDPMScheduler.from_config(scheduler_config)
        self.alphas_cumprod = training.alphas_cumprod.double().numpy()
        self.prediction_type = scheduler_config.get("prediction_type", "epsilon")
        if self.prediction_type not in ("epsilon", "sample", "v_prediction"):
            raise ValidationError(
                f"diffusers: prediction_type must be 'epsilon', 'sample' or 'v_prediction'; got "
                f"{self.prediction_type!r} in the scheduler config."
            )
        cfg = model.config
        self.is_1d = type(model).__name__ == "UNet1DModel"
        size = cfg.sample_size
        if self.is_1d:
            self.model_shape = (int(cfg.in_channels), int(size))
        else:
            height, width = (size, size) if isinstance(size, int) else tuple(size)
            self.model_shape = (int(cfg.in_channels), int(height), int(width))

    # probekit layout <-> model layout (only time series differ: (n, L, C) vs (n, C, L))
    def _to_model(self, x: np.ndarray):
        import torch

        tensor = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
        return (tensor.transpose(1, 2) if self.is_1d else tensor).to(self.device)

    def _from_model(self, tensor) -> np.ndarray:
        tensor = tensor.detach().float().cpu()
        return (tensor.transpose(1, 2) if self.is_1d else tensor).contiguous().numpy()

    def _forward(self, x, t) -> Any:
        import torch

        outs = []
        for start in range(0, len(x), self.settings.batch_size):
            batch = x[start : start + self.settings.batch_size]
            tb = t if t.ndim == 0 else t[start : start + self.settings.batch_size]
            outs.append(self.model(batch, tb).sample)
        return torch.cat(outs)

    def generate(self, n: int, seed: int) -> np.ndarray:
        """``n`` samples from the seeded initial noise (same noise at every checkpoint)."""
        import torch

        diffusers = _import_diffusers()
        s = self.settings
        scheduler_cls = diffusers.DDIMScheduler if s.sampler == "ddim" else diffusers.DDPMScheduler
        scheduler = scheduler_cls.from_config(self.scheduler_config)
        scheduler.set_timesteps(s.num_inference_steps)
        generator = torch.Generator().manual_seed(int(seed))
        x = torch.randn((n, *self.model_shape), generator=generator, dtype=torch.float32)
        x = (x * scheduler.init_noise_sigma).to(self.device)
        with torch.inference_mode():
            for t in progress(scheduler.timesteps, desc=f"sampling step {self.step}"):
                out = self._forward(x, t.to(self.device))
                if s.sampler == "ddim":
                    noise = torch.randn(x.shape, generator=generator) if s.eta > 0 else None
                    x = scheduler.step(out.cpu(), t, x.cpu(), eta=s.eta,
                                       variance_noise=noise).prev_sample
                else:
                    x = scheduler.step(out.cpu(), t, x.cpu(), generator=generator).prev_sample
                x = x.to(self.device)
        return self._from_model(x)

    def predict_noise(self, x_t: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``eps_theta(x_t, t)``, converted from the model's prediction type when needed."""
        import torch

        t = np.asarray(t, dtype=np.int64).reshape(-1)
        if len(t) not in (1, len(x_t)):
            raise ValidationError(
                f"diffusers: t must hold one timestep or one per sample; got {describe(t)} for "
                f"{len(x_t)} samples."
            )
        x = self._to_model(x_t)
        with torch.inference_mode():
            out = self._forward(x, torch.as_tensor(np.broadcast_to(t, (len(x_t),)).copy(),
                                                   device=self.device))
            if self.prediction_type != "epsilon":
                abar = torch.as_tensor(self.alphas_cumprod[np.broadcast_to(t, (len(x_t),))],
                                       dtype=torch.float32, device=self.device)
                abar = abar.reshape(-1, *([1] * (x.ndim - 1)))
                if self.prediction_type == "sample":
                    out = (x - abar.sqrt() * out) / (1 - abar).sqrt()
                else:  # v = sqrt(abar) eps - sqrt(1-abar) x0, so
                    # eps = sqrt(abar) v + sqrt(1-abar) x_t
                    out = abar.sqrt() * out + (1 - abar).sqrt() * x
        return self._from_model(out)


class DiffusersAdapter(Adapter):
    """Loads ``UNet2DModel`` / ``UNet1DModel`` checkpoints with their DDPM/DDIM schedule."""

    name = "diffusers"
    modality = "any"
    description = "diffusers UNet2DModel/UNet1DModel folders (checkpoint-<step>/), DDPM/DDIM"
    can_predict_noise = True
    Settings = DiffusersAdapterSettings
    settings: DiffusersAdapterSettings

    def load(self, checkpoint: Checkpoint) -> DiffusersHandle:
        diffusers = _import_diffusers()
        folder = Path(checkpoint.path)
        model_dir = _model_dir(folder, self.settings.subfolder)
        try:
            class_name = json.loads((model_dir / "config.json").read_text())["_class_name"]
        except (ValueError, KeyError) as exc:
            raise InputFileError(
                f"diffusers: {str(model_dir / 'config.json')!r} is not a diffusers model config "
                f"({type(exc).__name__}: {exc})."
            ) from None
        if class_name not in SUPPORTED_MODELS:
            raise ValidationError(
                f"diffusers: the model must be one of {SUPPORTED_MODELS} (unconditional); got "
                f"{class_name!r} in {str(model_dir)!r}. Use the callable adapter for other models."
            )
        scheduler_config = _scheduler_config(folder, model_dir, self.settings.scheduler)
        state = _checked_weights(model_dir)
        model_class = getattr(diffusers, class_name)
        verbosity = diffusers.utils.logging.get_verbosity()
        diffusers.utils.logging.set_verbosity_error()  # no multi-line advice on stderr
        try:
            if state is None:
                model = model_class.from_pretrained(model_dir, low_cpu_mem_usage=False)
            else:  # a pickled .bin the user trusts (PROBEKIT_ALLOW_PICKLE=1)
                model = model_class.from_config(model_class.load_config(model_dir))
                model.load_state_dict(state)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            from probekit.validation import one_line

            raise InputFileError(
                f"diffusers: cannot load the model in {str(model_dir)!r}: "
                f"{one_line(exc, limit=200)}"
            ) from None
        finally:
            diffusers.utils.logging.set_verbosity(verbosity)
        model = model.to(self.settings.device).eval()
        return DiffusersHandle(model, scheduler_config, self.settings, checkpoint.step)


@hookimpl
def register_adapters():
    return [DiffusersAdapter]
