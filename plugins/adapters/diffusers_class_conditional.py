"""``diffusers-class-conditional``: class-conditional diffusers models, pixel or latent, U-Net or
DiT (optional extra ``probekit[diffusers]``).

Reads a ``UNet2DModel`` with class embeddings (``num_class_embeds``) or a DiT-style transformer
(``DiTTransformer2DModel``, or ``Transformer2DModel`` with ``num_embeds_ada_norm``) from a
checkpoint folder — ``checkpoint-<step>/unet/``, ``checkpoint-<step>/transformer/`` or the folder
itself (``subfolder`` setting) — with, when the model works in a latent space, the
``AutoencoderKL`` found in ``<checkpoint>/vae/``, ``<base>/vae/`` or ``vae/`` beside the
checkpoints (``DiTPipeline``'s layout), and the DDPM/DDIM ``scheduler_config.json`` from
``scheduler=PATH``, ``<checkpoint>/scheduler/``, ``<base>/scheduler/`` or ``scheduler/`` beside
the checkpoints.

Labels are the conditions: given one per sample, or drawn uniformly with the seed when none are
given (the same labels at every checkpoint). Sampling is the guided sampler of
``diffusers-text2image`` (DDIM or DPM-Solver++, initial noise per (seed, label, index within
the label)); classifier-free guidance (``guidance_scale`` > 1) needs a *null class*: DiT models
trained with label dropout have one (index ``num_classes``, found automatically); for other
models set ``null_class``. A DiT that predicts its variance (``out_channels`` = 2 ×
``in_channels``) is sampled with its noise half, as ``DiTPipeline`` does. Images are returned in
``value_range`` ([0, 1] by default).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pydantic
from probekit_plugins.adapters.diffusers_text2image import (
    GuidedHandle,
    GuidedSamplingSettings,
    import_diffusers,
    read_json,
)

from probekit import Adapter, Checkpoint, hookimpl
from probekit.conditions import Condition
from probekit.errors import InputFileError, ValidationError

#: Model classes read, and the subfolder diffusers' pipelines keep each in.
MODELS = {"UNet2DModel": "unet", "DiTTransformer2DModel": "transformer",
          "Transformer2DModel": "transformer"}


class ClassConditionalSettings(GuidedSamplingSettings):
    subfolder: str | None = pydantic.Field(
        None, description="model folder inside the checkpoint (None: unet/ or transformer/ if "
        "present, else the checkpoint folder itself)"
    )
    scheduler: str | None = pydantic.Field(
        None, description="scheduler_config.json or its folder (None: searched near the model)"
    )
    guidance_scale: float = pydantic.Field(
        1.0, ge=0.0, description="classifier-free guidance scale (1: none; > 1 needs a null class)"
    )
    null_class: int | None = pydantic.Field(
        None, ge=0, description="label of the null class (None: DiT's dropout class if any)"
    )
    n_classes: int | None = pydantic.Field(
        None, ge=1, description="number of classes to draw labels from (None: the model's)"
    )


class ClassConditionalHandle(GuidedHandle):
    """One checkpoint of a class-conditional U-Net or DiT."""

    condition_kind: ClassVar[str] = "class"

    def __init__(self, *, model: Any, vae: Any | None, scheduler_config: dict[str, Any],
                 settings: ClassConditionalSettings, step: int, source: str,
                 n_classes: int, null_class: int | None):
        cfg = model.config
        size = cfg.sample_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        super().__init__(network=model, vae=vae, scheduler_config=scheduler_config,
                         settings=settings, step=step, guidance_scale=settings.guidance_scale,
                         latent_shape=(int(cfg.in_channels), int(height), int(width)),
                         source=source)
        self.model = model
        self.n_classes = n_classes
        self.null_class = null_class
        self.has_null = null_class is not None
        self.is_unet = type(model).__name__ == "UNet2DModel"
        out = getattr(cfg, "out_channels", None) or cfg.in_channels
        self.learned_sigma = int(out) == 2 * int(cfg.in_channels)

    def _embed(self, conditions: Sequence[Condition]) -> Any:
        import torch

        return torch.tensor([int(c) for c in conditions], dtype=torch.long, device=self.device)

    def _null(self, n: int) -> Any:
        import torch

        return torch.full((n,), int(self.null_class), dtype=torch.long,  # type: ignore[arg-type]
                          device=self.device)

    def _network(self, x: Any, t: Any, labels: Any) -> Any:
        import torch

        x = x.to(self.dtype)
        if self.is_unet:
            return self.model(x, t, class_labels=labels).sample
        tb = torch.as_tensor(t, device=self.device).reshape(-1).expand(len(x))
        out = self.model(x, timestep=tb, class_labels=labels).sample
        return out[:, : x.shape[1]] if self.learned_sigma else out


def _label_table(model: Any) -> tuple[int | None, int | None]:
    """``(num_classes, table size)`` of a DiT's label embedding (``None`` when absent)."""
    for module in model.modules():
        if type(module).__name__ == "LabelEmbedding":
            return int(module.num_classes), int(module.embedding_table.num_embeddings)
    return None, None


def _find(candidates: list[Path], name: str) -> Path | None:
    for folder in candidates:
        if (folder / name).is_file():
            return folder
    return None


class DiffusersClassConditionalAdapter(Adapter):
    """Loads class-conditional ``UNet2DModel`` / DiT checkpoints, pixel or latent."""

    name = "diffusers-class-conditional"
    modality = "image"
    description = ("diffusers class-conditional UNet2DModel or DiT (pixel or latent, VAE "
                   "decoded); labels given or drawn; images in [0, 1]")
    can_predict_noise = True
    #: Conditional: one class label per sample (``probekit evaluate`` passes them).
    condition_kind: ClassVar[str] = "class"
    Settings = ClassConditionalSettings
    settings: ClassConditionalSettings

    def __init__(self, settings=None, **overrides):
        super().__init__(settings, **overrides)
        if self.settings.dtype == "float16" and self.settings.device == "cpu":
            raise ValidationError(
                f"{self.name}: dtype float16 needs a GPU; got device 'cpu'. Use dtype=float32 "
                "or bfloat16 on a CPU, or device=cuda."
            )
        self._vae_cache: dict[str, Any] = {}

    def _model_dir(self, folder: Path) -> Path:
        s = self.settings
        candidates = [folder / s.subfolder] if s.subfolder else [
            folder / "unet", folder / "transformer", folder]
        found = _find(candidates, "config.json")
        if found is None:
            looked = ", ".join(repr(str(c / "config.json")) for c in candidates)
            raise InputFileError(
                f"{self.name}: checkpoint {str(folder)!r} holds no model config; looked for "
                f"{looked}. Save the model with save_pretrained(...), or set subfolder=..."
            )
        return found

    def _vae(self, folder: Path) -> Any | None:
        diffusers = import_diffusers()
        import torch

        bases = [Path(self.settings.base).expanduser()] if self.settings.base else []
        vae_dir = _find([folder / "vae", *(b / "vae" for b in bases), folder.parent / "vae"],
                        "config.json")
        if vae_dir is None:
            return None
        key = str(vae_dir.resolve())
        if key not in self._vae_cache:
            self._vae_cache[key] = diffusers.AutoencoderKL.from_pretrained(
                vae_dir, torch_dtype=getattr(torch, self.settings.dtype)
            ).to(self.settings.device).eval()
        return self._vae_cache[key]

    def _scheduler(self, folder: Path, model_dir: Path) -> dict[str, Any]:
        s = self.settings
        if s.scheduler:
            given = Path(s.scheduler).expanduser()
            candidates = [given.parent if given.suffix == ".json" else given]
        else:
            bases = [Path(s.base).expanduser()] if s.base else []
            candidates = [folder / "scheduler", folder, model_dir,
                          *(b / "scheduler" for b in bases), folder.parent / "scheduler"]
        found = _find(candidates, "scheduler_config.json")
        if found is None:
            looked = ", ".join(repr(str(c / "scheduler_config.json")) for c in candidates)
            raise InputFileError(
                f"{self.name}: no scheduler_config.json for checkpoint {str(folder)!r}; looked "
                f"for {looked}. Save the training scheduler with scheduler.save_pretrained(...) "
                "or pass scheduler=PATH."
            )
        return read_json(found / "scheduler_config.json", self.name)

    def load(self, checkpoint: Checkpoint) -> ClassConditionalHandle:
        diffusers = import_diffusers()
        import torch

        s = self.settings
        folder = Path(checkpoint.path)
        model_dir = self._model_dir(folder)
        class_name = json.loads((model_dir / "config.json").read_text()).get("_class_name")
        if class_name not in MODELS:
            raise ValidationError(
                f"{self.name}: the model must be one of {sorted(MODELS)}; got {class_name!r} in "
                f"{str(model_dir)!r}. Use diffusers-text2image for text-conditional U-Nets."
            )
        model = getattr(diffusers, class_name).from_pretrained(
            model_dir, torch_dtype=getattr(torch, s.dtype)).to(s.device).eval()
        if class_name == "UNet2DModel":
            n_model = model.config.num_class_embeds
            if n_model is None or model.config.class_embed_type not in (None, "embedding"):
                raise ValidationError(
                    f"{self.name}: the UNet2DModel in {str(model_dir)!r} has no class-label "
                    "embedding (num_class_embeds); it is unconditional: use the diffusers "
                    "adapter."
                )
            n_classes, table = int(n_model), int(n_model)
            null = s.null_class
        else:
            n_classes, table = _label_table(model)
            if n_classes is None or table is None:
                raise ValidationError(
                    f"{self.name}: the {class_name} in {str(model_dir)!r} has no class-label "
                    "embedding (num_embeds_ada_norm); only class-conditional DiTs are read."
                )
            null = s.null_class if s.null_class is not None else (
                n_classes if table > n_classes else None)
        if null is not None and null >= table:
            raise ValidationError(
                f"{self.name}: null_class must be a label of the model's embedding (< {table}); "
                f"got {null}."
            )
        if s.n_classes is not None:
            n_classes = min(n_classes, s.n_classes)
        return ClassConditionalHandle(
            model=model, vae=self._vae(folder), scheduler_config=self._scheduler(
                folder, model_dir), settings=s, step=checkpoint.step,
            source=f"{class_name} ({model_dir.name}/)", n_classes=n_classes, null_class=null,
        )


@hookimpl
def register_adapters():
    return [DiffusersClassConditionalAdapter]
