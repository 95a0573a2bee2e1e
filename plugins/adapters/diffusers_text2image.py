"""``diffusers-text2image``: latent text-to-image pipelines saved by diffusers (the Stable
Diffusion layout) and the checkpoint series of their fine-tunes (optional extra
``probekit[diffusers]``).

A *pipeline folder* holds ``model_index.json``, ``unet/`` (``UNet2DConditionModel``), ``vae/``
(``AutoencoderKL``), ``text_encoder/`` (``CLIPTextModel``), ``tokenizer/`` and ``scheduler/``.
A checkpoint of a fine-tune is any of what diffusers' training scripts write:

* ``checkpoint-<step>/unet/`` — a full fine-tune (``train_text_to_image.py``; ``unet_ema/``
  with ``subfolder=unet_ema``);
* ``checkpoint-<step>/pytorch_lora_weights.safetensors`` (or ``.bin``) — a LoRA
  (``train_text_to_image_lora.py``, DreamBooth LoRA; text-encoder LoRA layers included);
* a peft adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``) in the
  checkpoint, or in its ``unet/`` / ``unet_lora/`` (and ``text_encoder/``) subfolders;
* a whole pipeline folder (e.g. the base model itself as step 0).

Everything a checkpoint does not contain comes from the *base pipeline*: the ``base`` setting
(``--adapter-set base=PATH``), else the checkpoint folder's parent when it is a pipeline folder
(the scripts save the final pipeline in their ``output_dir``, beside the ``checkpoint-*``
folders). LoRA layers are applied to a fresh copy of the base networks at every checkpoint.

Sampling (:class:`GuidedHandle`, shared with ``diffusers-class-conditional``): DDIM (``eta =
0``) or DPM-Solver++ (multistep, 2nd order) built from the pipeline's own scheduler config;
classifier-free guidance ``eps = eps(x, null) + g (eps(x, c) - eps(x, null))`` with the empty
prompt as null condition (as ``StableDiffusionPipeline`` does without a negative prompt);
latents decoded by the VAE in chunks of ``vae_batch_size``. The initial latent of sample *i* is
:func:`probekit.conditions.initial_noise`: it depends only on ``(seed, prompt, index of the
sample among those of its prompt)``, so each checkpoint starts a prompt's *k*-th generation
from the same noise, and samples do not depend on ``batch_size``. Images are returned in
``value_range`` ([0, 1] by default, like the pipeline's ``output_type="np"``).

Weights load safely: safetensors, or ``torch.load(weights_only=True)`` for ``.bin`` files
(diffusers' and peft's loaders do so; LoRA files are read here the same way).
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pydantic

from probekit import Adapter, Checkpoint, Settings, hookimpl
from probekit.conditions import Condition, ConditionalModelHandle, initial_noise
from probekit.errors import InputFileError, MissingResourceError, ValidationError
from probekit.features import parse_value_range
from probekit.validation import TorchDevice, describe

#: Samplers offered, with the diffusers scheduler class each is built from.
SAMPLERS = {"ddim": "DDIMScheduler", "dpm-solver": "DPMSolverMultistepScheduler"}
#: LoRA weight files diffusers' training scripts write into ``checkpoint-<step>/``.
LORA_FILES = ("pytorch_lora_weights.safetensors", "pytorch_lora_weights.bin")
DTYPES = ("float32", "float16", "bfloat16")


def import_diffusers():
    """The ``diffusers`` module, or a one-line error saying which extra to install."""
    try:
        import diffusers
    except ImportError:
        raise MissingResourceError(
            "diffusers: the diffusers package is not installed; install the extra with "
            "`pip install 'probekit[diffusers]'` (diffusers, transformers, peft, safetensors)."
        ) from None
    return diffusers


def check_output_range(value: tuple[float, float]) -> tuple[float, float]:
    """The adapter writes images in [0, 1] or [-1, 1], nothing else."""
    if tuple(value) not in ((0.0, 1.0), (-1.0, 1.0)):
        raise ValueError("must be (0, 1) or (-1, 1)")
    return (float(value[0]), float(value[1]))


class GuidedSamplingSettings(Settings):
    """Sampling and memory settings shared by the conditional diffusers adapters."""

    base: str | None = pydantic.Field(
        None, description="base pipeline folder (None: the checkpoints' parent folder when it "
        "holds the pipeline, else the checkpoint itself)"
    )
    sampler: Literal["ddim", "dpm-solver"] = pydantic.Field(
        "ddim", description="DDIM (eta 0) or DPM-Solver++ (2nd order multistep)"
    )
    num_inference_steps: int = pydantic.Field(50, ge=1, description="sampling steps")
    batch_size: int = pydantic.Field(
        8, gt=0, description="samples per network call (guidance doubles the batch)"
    )
    vae_batch_size: int = pydantic.Field(8, gt=0, description="latents per VAE decode call")
    device: TorchDevice = pydantic.Field("cpu", description="torch device, e.g. 'cpu' or 'cuda'")
    dtype: Literal["float32", "float16", "bfloat16"] = pydantic.Field(
        "float32", description="network dtype (float16 needs a GPU); latents stay float32"
    )
    value_range: tuple[float, float] = pydantic.Field(
        (0.0, 1.0), description="range of the returned images: 0,1 or -1,1"
    )

    _parse_range = pydantic.field_validator("value_range", mode="before")(parse_value_range)
    _check_range = pydantic.field_validator("value_range")(check_output_range)


class Text2ImageSettings(GuidedSamplingSettings):
    subfolder: str | None = pydantic.Field(
        None, description="UNet folder of a full fine-tune checkpoint (None: 'unet'; "
        "'unet_ema' for EMA weights)"
    )
    guidance_scale: float = pydantic.Field(
        7.5, ge=0.0, description="classifier-free guidance scale g (1: no guidance)"
    )
    negative_prompt: str = pydantic.Field(
        "", description="null condition of guidance (the empty prompt by default)"
    )
    lora_scale: float = pydantic.Field(1.0, ge=0.0, description="scale of LoRA layers")


# -- guided sampling, shared by the conditional adapters ---------------------------------------


class GuidedHandle(ConditionalModelHandle):
    """A conditional diffusers network with its VP noise schedule, sampled with classifier-free
    guidance. Subclasses say how a condition enters the network (:meth:`_embed`,
    :meth:`_null`, :meth:`_network`)."""

    #: Whether a null condition exists (guidance and ``guidance_trace`` need one).
    has_null: bool = True

    def __init__(self, *, network: Any, vae: Any | None, scheduler_config: dict[str, Any],
                 settings: GuidedSamplingSettings, step: int, guidance_scale: float,
                 latent_shape: tuple[int, ...], source: str):
        import torch

        diffusers = import_diffusers()
        self.network = network
        self.vae = vae
        self.settings = settings
        self.step = step
        self.source = source
        self.guidance_scale = float(guidance_scale)
        self.latent_shape = tuple(int(v) for v in latent_shape)
        self.device = torch.device(settings.device)
        self.dtype = getattr(torch, settings.dtype)
        self.scheduler_config = dict(scheduler_config)
        training = diffusers.DDPMScheduler.from_config(self.scheduler_config)
        self.alphas_cumprod = training.alphas_cumprod.double().numpy()
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValidationError(
                f"{type(self).__name__}: prediction_type must be 'epsilon' or 'v_prediction'; "
                f"got {self.prediction_type!r} in the scheduler config."
            )

    # -- what subclasses provide
    def _embed(self, conditions: Sequence[Condition]) -> Any:
        """Condition inputs of the network for ``conditions`` (one per sample)."""
        raise NotImplementedError

    def _null(self, n: int) -> Any:
        """Null-condition inputs for ``n`` samples."""
        raise NotImplementedError

    def _network(self, x: Any, t: Any, cond: Any) -> Any:
        """Raw network output (the scheduler's prediction type) for latents ``x``."""
        raise NotImplementedError

    @staticmethod
    def _cat(a: Any, b: Any) -> Any:
        import torch

        return torch.cat([a, b])

    @staticmethod
    def _take(cond: Any, start: int, stop: int) -> Any:
        return cond[start:stop]

    # -- sampling
    def _scheduler(self):
        diffusers = import_diffusers()
        cls = getattr(diffusers, SAMPLERS[self.settings.sampler])
        config = dict(self.scheduler_config)
        if self.settings.sampler == "dpm-solver":
            config.update(algorithm_type="dpmsolver++", solver_order=2)
        scheduler = cls.from_config(config)
        with warnings.catch_warnings():
            # DPMSolverMultistepScheduler passes a tensor to np.array(..., copy=False): a numpy 2
            # DeprecationWarning inside diffusers, harmless here
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            scheduler.set_timesteps(self.settings.num_inference_steps)
        return scheduler

    def _outputs(self, x: Any, t: Any, cond: Any, guided: bool) -> tuple[Any, Any | None]:
        """``(conditional, null)`` network outputs in float32 (null ``None`` unguided)."""
        if not guided:
            return self._network(x, t, cond).float(), None
        both = self._network(self._cat(x, x), t, self._cat(cond, self._null(len(x))))
        out_c, out_u = both.float().chunk(2)
        return out_c, out_u

    def _to_eps(self, out: Any, x: Any, t: Any) -> Any:
        if self.prediction_type == "epsilon":
            return out
        abar = float(self.alphas_cumprod[int(t)])
        return abar ** 0.5 * out + (1.0 - abar) ** 0.5 * x  # eps from v (Salimans & Ho 2022)

    def _check_guidance(self, trace: bool) -> None:
        if (trace or self.guidance_scale != 1.0) and not self.has_null:
            raise ValidationError(
                f"{type(self).__name__}: guidance needs a null condition, which this model has "
                "not; set guidance_scale=1 (or null_class=...)."
            )

    def _sample(self, seed: int, conditions: tuple[Condition, ...], *,
                n_steps: int | None = None) -> tuple[Any, np.ndarray | None]:
        """Final latents (``n_steps is None``) or the guidance trace of the first ``n_steps``."""
        import torch

        trace = n_steps is not None
        self._check_guidance(trace)
        guided = trace or self.guidance_scale != 1.0
        noise = initial_noise(self.latent_shape, seed, conditions)
        n = len(conditions)
        norms = np.zeros((n, n_steps or 0))
        latents = []
        bs = self.settings.batch_size
        with torch.inference_mode():
            for s in range(0, n, bs):
                cond = self._embed(conditions[s : s + bs])
                scheduler = self._scheduler()
                x = (noise[s : s + bs] * scheduler.init_noise_sigma).to(self.device)
                steps = scheduler.timesteps if n_steps is None else scheduler.timesteps[:n_steps]
                for i, t in enumerate(steps):
                    model_in = scheduler.scale_model_input(x, t)
                    out_c, out_u = self._outputs(model_in, t, cond, guided)
                    out = out_c if out_u is None else out_u + self.guidance_scale * (out_c - out_u)
                    if trace:
                        diff = self._to_eps(out_c, model_in, t) - self._to_eps(out_u, model_in, t)
                        norms[s : s + bs, i] = diff.flatten(1).norm(dim=1).double().cpu().numpy()
                    x = scheduler.step(out, t, x).prev_sample
                latents.append(x.float().cpu())
        return torch.cat(latents), (norms if trace else None)

    def _decode(self, latents: Any) -> np.ndarray:
        import torch

        low, high = self.settings.value_range
        if self.vae is None:
            images = latents.float()
        else:
            cfg = self.vae.config
            scale = float(getattr(cfg, "scaling_factor", 1.0) or 1.0)
            shift = getattr(cfg, "shift_factor", None) or 0.0
            parts = []
            with torch.inference_mode():
                for s in range(0, len(latents), self.settings.vae_batch_size):
                    z = latents[s : s + self.settings.vae_batch_size] / scale + shift
                    z = z.to(self.device, self.dtype)
                    parts.append(self.vae.decode(z).sample.float().cpu())
            images = torch.cat(parts) if parts else latents.new_zeros((0,))
        images = images.clamp(-1.0, 1.0)
        if (low, high) == (0.0, 1.0):
            images = images / 2.0 + 0.5
        return images.contiguous().numpy().astype(np.float32)

    def generate(self, n: int, seed: int, *,
                 conditions: Sequence[Condition] | None = None) -> np.ndarray:
        """``n`` images, one per condition, from the per-(prompt, index) initial noise."""
        conds = self.resolve_conditions(n, seed, conditions)
        latents, _ = self._sample(int(seed), conds)
        return self._decode(latents)

    def guidance_trace(self, seed: int, conditions: Sequence[Condition],
                       n_steps: int) -> np.ndarray:
        """Per sample and step, ``||eps(x_t, c) - eps(x_t, null)||_2`` over the latent, along the
        guided trajectory of ``generate(seed, conditions)`` (Wen et al. 2024)."""
        conds = self.resolve_conditions(len(conditions), seed, conditions)
        total = self.settings.num_inference_steps
        if not 1 <= n_steps <= total:
            raise ValidationError(
                f"{type(self).__name__}: n_steps must be in [1, {total}] (num_inference_steps); "
                f"got {n_steps}."
            )
        _, norms = self._sample(int(seed), conds, n_steps=int(n_steps))
        assert norms is not None
        return norms

    def predict_noise(self, x_t: np.ndarray, t: np.ndarray, *,
                      conditions: Sequence[Condition] | None = None) -> np.ndarray:
        """``eps_theta(x_t, t, c)`` on latents ``x_t`` (``conditions=None``: the null
        condition), converted from ``v`` when the model predicts it."""
        import torch

        x_t = np.asarray(x_t, dtype=np.float32)
        if x_t.ndim != 1 + len(self.latent_shape) or x_t.shape[1:] != self.latent_shape:
            raise ValidationError(
                f"{type(self).__name__}: x_t must be latents of shape (n_samples, "
                f"{', '.join(map(str, self.latent_shape))}); got {describe(x_t)}."
            )
        t = np.broadcast_to(np.asarray(t, dtype=np.int64).reshape(-1), (len(x_t),)).copy()
        if conditions is None:
            self._check_guidance(True)
        else:
            conditions = self.resolve_conditions(len(x_t), 0, conditions)
        out = []
        bs = self.settings.batch_size
        with torch.inference_mode():
            for s in range(0, len(x_t), bs):
                x = torch.from_numpy(x_t[s : s + bs]).to(self.device)
                tb = torch.from_numpy(t[s : s + bs]).to(self.device)
                cond = self._null(len(x)) if conditions is None else self._embed(
                    conditions[s : s + bs])
                pred = self._network(x, tb, cond).float()
                if self.prediction_type != "epsilon":
                    abar = torch.as_tensor(self.alphas_cumprod[t[s : s + bs]],
                                           dtype=torch.float32, device=self.device)
                    abar = abar.reshape(-1, *([1] * (x.ndim - 1)))
                    pred = abar.sqrt() * pred + (1 - abar).sqrt() * x
                out.append(pred.cpu().numpy())
        return np.concatenate(out).astype(np.float32)


# -- text-to-image -----------------------------------------------------------------------------


class Text2ImageHandle(GuidedHandle):
    """One checkpoint of a latent text-to-image pipeline."""

    condition_kind: ClassVar[str] = "text"

    def __init__(self, *, tokenizer: Any, text_encoder: Any, unet: Any, vae: Any,
                 scheduler_config: dict[str, Any], settings: Text2ImageSettings, step: int,
                 source: str, has_lora: bool):
        vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)
        size = unet.config.sample_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        super().__init__(network=unet, vae=vae, scheduler_config=scheduler_config,
                         settings=settings, step=step, guidance_scale=settings.guidance_scale,
                         latent_shape=(int(unet.config.in_channels), int(height), int(width)),
                         source=source)
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.unet = unet
        self.has_lora = has_lora
        self.image_size = (int(height) * vae_scale, int(width) * vae_scale)
        self._null_embedding = None

    def _encode(self, prompts: Sequence[str]) -> Any:
        import torch

        tok = self.tokenizer(list(prompts), padding="max_length",
                             max_length=self.tokenizer.model_max_length, truncation=True,
                             return_tensors="pt")
        mask = None
        if getattr(self.text_encoder.config, "use_attention_mask", False):
            mask = tok.attention_mask.to(self.device)
        with torch.inference_mode():
            return self.text_encoder(tok.input_ids.to(self.device), attention_mask=mask)[0]

    def _embed(self, conditions: Sequence[Condition]) -> Any:
        unique = list(dict.fromkeys(conditions))
        table = self._encode([str(c) for c in unique])
        where = {c: i for i, c in enumerate(unique)}
        return table[[where[c] for c in conditions]]

    def _null(self, n: int) -> Any:
        if self._null_embedding is None:
            self._null_embedding = self._encode([self.settings.negative_prompt])  # type: ignore[attr-defined]
        return self._null_embedding.expand(n, *self._null_embedding.shape[1:])

    def _network(self, x: Any, t: Any, cond: Any) -> Any:
        kwargs = {}
        scale = self.settings.lora_scale  # type: ignore[attr-defined]
        if self.has_lora and scale != 1.0:
            kwargs["cross_attention_kwargs"] = {"scale": scale}
        return self.unet(x.to(self.dtype), t, encoder_hidden_states=cond.to(self.dtype),
                         **kwargs).sample


# -- locating and loading ----------------------------------------------------------------------


def read_json(path: Path, who: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{who}: cannot read {str(path)!r} ({type(exc).__name__}: "
                             f"{exc}).") from None


def is_pipeline(folder: Path) -> bool:
    return (folder / "model_index.json").is_file()


def resolve_base(setting: str | None, checkpoint: Path, who: str) -> Path | None:
    """The base pipeline folder: the setting, else the checkpoint's parent or the checkpoint
    itself when either is a pipeline folder; ``None`` when there is none."""
    if setting:
        base = Path(setting).expanduser()
        if not base.is_dir():
            raise InputFileError(
                f"{who}: base must be a pipeline folder (model_index.json, unet/, vae/, ...); "
                f"{str(base)!r} does not exist. Point --adapter-set base=PATH at the pipeline "
                "you fine-tuned (saved with pipeline.save_pretrained)."
            )
        return base
    for folder in (checkpoint.parent, checkpoint):
        if is_pipeline(folder):
            return folder
    return None


def _subfolder(base: Path, name: str, who: str) -> Path:
    folder = base / name
    if not folder.is_dir():
        raise InputFileError(
            f"{who}: the base pipeline {str(base)!r} has no {name}/ folder; save the whole "
            "pipeline with pipeline.save_pretrained(...), or set base=PATH to one that has."
        )
    return folder


def load_lora_state_dict(path: Path) -> dict[str, Any]:
    """A LoRA state dict from safetensors, or from a ``.bin`` with ``weights_only=True``."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    from probekit.io import load_torch_file

    state = load_torch_file(path, who="diffusers-text2image")  # pickles refused in one line
    if not isinstance(state, dict):
        raise InputFileError(f"diffusers-text2image: {str(path)!r} must hold a state dict; got "
                             f"{type(state).__name__}.")
    return state


def normalize_lora_keys(state: dict[str, Any]) -> dict[str, Any]:
    """One key format per LoRA file. ``convert_state_dict_to_diffusers`` (used by the SD LoRA
    scripts) writes attention layers in the old ``lora.down``/``lora.up`` format but other
    layers (``proj_in``, ``ff``, ...) as peft's ``lora_A``/``lora_B``; diffusers then reads the
    file as peft format and silently drops the attention layers. Such mixed files are turned
    into peft format throughout."""
    peft_keys = any(".lora_A." in k or ".lora_B." in k for k in state)
    old_keys = any(".lora.down." in k or ".lora.up." in k for k in state)
    if not (peft_keys and old_keys):
        return state
    return {k.replace(".lora.down.", ".lora_A.").replace(".lora.up.", ".lora_B."): v
            for k, v in state.items()}


def find_peft_folders(checkpoint: Path) -> dict[str, Path]:
    """peft adapter folders of a checkpoint: ``{"unet": ..., "text_encoder": ...}``."""
    found: dict[str, Path] = {}
    for target, names in (("unet", ("", "unet_lora", "unet")),
                          ("text_encoder", ("text_encoder_lora", "text_encoder"))):
        for name in names:
            folder = checkpoint / name if name else checkpoint
            if (folder / "adapter_config.json").is_file():
                found[target] = folder
                break
    return found


def apply_peft_folder(model: Any, folder: Path) -> Any:
    """Inject the peft adapter saved in ``folder`` into ``model`` (in place) and return it."""
    from peft import PeftModel

    wrapped = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    return wrapped.get_base_model()


class DiffusersText2ImageAdapter(Adapter):
    """Loads text-to-image checkpoints: full pipelines, full UNet fine-tunes and LoRAs."""

    name = "diffusers-text2image"
    modality = "image"
    description = ("diffusers latent text-to-image pipelines and their checkpoint-<step>/ "
                   "fine-tunes (unet/ or LoRA); images in [0, 1]")
    can_predict_noise = True
    #: Conditional: one caption per sample (``probekit evaluate`` passes them).
    condition_kind: ClassVar[str] = "text"
    Settings = Text2ImageSettings
    settings: Text2ImageSettings

    def __init__(self, settings=None, **overrides):
        super().__init__(settings, **overrides)
        self._base_cache: dict[str, Any] | None = None
        self._base_path: Path | None = None
        if self.settings.dtype == "float16" and self.settings.device == "cpu":
            raise ValidationError(
                "diffusers-text2image: dtype float16 needs a GPU; got device 'cpu'. Use "
                "dtype=float32 or bfloat16 on a CPU, or device=cuda."
            )

    def _base(self, base: Path) -> dict[str, Any]:
        """Components of the base pipeline, loaded once per adapter."""
        if self._base_cache is not None and self._base_path == base:
            return self._base_cache
        import torch
        import transformers

        diffusers = import_diffusers()
        who = self.name
        index = read_json(base / "model_index.json", who) if is_pipeline(base) else {}
        te_cls = (index.get("text_encoder") or ["transformers", "CLIPTextModel"])[1]
        tok_cls = (index.get("tokenizer") or ["transformers", "CLIPTokenizer"])[1]
        if "text_encoder_2" in index:
            raise ValidationError(
                f"{who}: {str(base)!r} is a two-text-encoder pipeline (SDXL); only the Stable "
                "Diffusion 1.x/2.x layout (one text encoder) is supported."
            )
        dtype = getattr(torch, self.settings.dtype)
        device = self.settings.device
        parts = {
            "tokenizer": getattr(transformers, tok_cls).from_pretrained(
                _subfolder(base, "tokenizer", who)),
            "text_encoder": getattr(transformers, te_cls).from_pretrained(
                _subfolder(base, "text_encoder", who), dtype=dtype).to(device).eval(),
            "vae": diffusers.AutoencoderKL.from_pretrained(
                _subfolder(base, "vae", who), torch_dtype=dtype).to(device).eval(),
            "unet": diffusers.UNet2DConditionModel.from_pretrained(
                _subfolder(base, "unet", who), torch_dtype=dtype).to(device).eval(),
            "scheduler": read_json(_subfolder(base, "scheduler", who) / "scheduler_config.json",
                                   who),
        }
        self._base_cache, self._base_path = parts, base
        return parts

    def load(self, checkpoint: Checkpoint) -> Text2ImageHandle:
        diffusers = import_diffusers()
        import torch

        who = self.name
        folder = Path(checkpoint.path)
        if not folder.is_dir():
            raise InputFileError(f"{who}: checkpoint {str(folder)!r} is not a folder.")
        s = self.settings
        dtype = getattr(torch, s.dtype)
        unet_dir = folder / (s.subfolder or "unet")
        lora_file = next((folder / f for f in LORA_FILES if (folder / f).is_file()), None)
        peft = find_peft_folders(folder)
        base = folder if is_pipeline(folder) and not s.base else resolve_base(s.base, folder, who)
        if base is None:
            raise InputFileError(
                f"{who}: no base pipeline for checkpoint {str(folder)!r}: neither it nor its "
                "parent holds model_index.json. Set --adapter-set base=PATH to the pipeline "
                "that was fine-tuned."
            )
        parts = self._base(base)
        text_encoder, unet = parts["text_encoder"], parts["unet"]
        has_lora = False
        if folder.resolve() == base.resolve():
            source = "base pipeline"
        elif is_pipeline(folder):
            source = "pipeline"
            unet = diffusers.UNet2DConditionModel.from_pretrained(
                folder / "unet", torch_dtype=dtype).to(s.device).eval()
        elif (unet_dir / "config.json").is_file() and not (unet_dir / "adapter_config.json"
                                                             ).is_file():
            source = f"full fine-tune ({unet_dir.name}/)"
            unet = diffusers.UNet2DConditionModel.from_pretrained(
                unet_dir, torch_dtype=dtype).to(s.device).eval()
        elif lora_file is not None:
            source = f"LoRA ({lora_file.name})"
            unet, text_encoder = copy.deepcopy(unet), copy.deepcopy(text_encoder)
            state = normalize_lora_keys(load_lora_state_dict(lora_file))
            pipe_cls = diffusers.StableDiffusionPipeline
            state, alphas = pipe_cls.lora_state_dict(state)
            pipe_cls.load_lora_into_unet(state, alphas, unet=unet)
            if any(k.startswith("text_encoder.") for k in state):
                pipe_cls.load_lora_into_text_encoder(state, alphas, text_encoder=text_encoder)
            has_lora = True
        elif peft:
            source = "peft adapter (" + ", ".join(f"{k}: {v.name or '.'}/"
                                                  for k, v in peft.items()) + ")"
            unet, text_encoder = copy.deepcopy(unet), copy.deepcopy(text_encoder)
            if "unet" in peft:
                unet = apply_peft_folder(unet, peft["unet"])
            if "text_encoder" in peft:
                text_encoder = apply_peft_folder(text_encoder, peft["text_encoder"])
            has_lora = True
        else:
            raise InputFileError(
                f"{who}: checkpoint {str(folder)!r} holds no model: looked for "
                f"{unet_dir.name}/config.json (full fine-tune), {' or '.join(LORA_FILES)} "
                "(LoRA), adapter_config.json (peft) and model_index.json (pipeline)."
            )
        if type(unet).__name__ != "UNet2DConditionModel":
            raise ValidationError(
                f"{who}: the denoiser must be a UNet2DConditionModel; got "
                f"{type(unet).__name__}. Use diffusers-class-conditional for class labels."
            )
        return Text2ImageHandle(
            tokenizer=parts["tokenizer"], text_encoder=text_encoder.to(s.device).eval(),
            unet=unet.to(s.device).eval(), vae=parts["vae"],
            scheduler_config=parts["scheduler"], settings=s, step=checkpoint.step,
            source=source, has_lora=has_lora,
        )


@hookimpl
def register_adapters():
    return [DiffusersText2ImageAdapter]
