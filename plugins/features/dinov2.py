"""``dinov2``: DINOv2 image features (Oquab et al., "DINOv2: Learning Robust Visual Features
without Supervision", 2023) through timm, from a local weights file — a general-purpose feature
space for copy search (``prompt-copy``, ``nn-ratio``) and for Fréchet distances (``fd``).

The network is timm's ``vit_small_patch14_dinov2`` (``architecture`` setting: any timm
``vit_*_patch14_dinov2`` or ``*_reg4_dinov2``) built at 224 × 224; its weights come from the file
the user names (``weights`` setting or ``$PROBEKIT_DINOV2_WEIGHTS``): timm's ``model.safetensors``
from the Hugging Face hub or the official ``dinov2_vits14_pretrain.pth`` (converted by timm's own
checkpoint filter, position embeddings resampled to 224). Nothing is downloaded; a ``.pth`` is
read with ``torch.load(weights_only=True)``.

Preprocessing ``dinov2-224`` (recorded in provenance) is the DINOv2 evaluation transform:
shorter side resized to 256 (bicubic), center crop 224, ImageNet normalization; grayscale is
replicated to RGB, values are mapped from ``value_range`` to [0, 1]. Features are the final
normalized class token (384-d for ViT-S/14), as timm returns it with ``num_classes=0``.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pydantic

from probekit import FeatureExtractor, Settings, hookimpl
from probekit.errors import MissingResourceError, ValidationError
from probekit.features import ValueRange
from probekit.pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Recipe,
    file_sha256,
    load_state_dict,
    preprocess,
    resolve_weights,
)

WEIGHTS_ENV = "PROBEKIT_DINOV2_WEIGHTS"
WEIGHTS_FILENAME = "model.safetensors"
WEIGHTS_URL = ("https://huggingface.co/timm/vit_small_patch14_dinov2.lvd142m (or "
               "dinov2_vits14_pretrain.pth from https://dl.fbaipublicfiles.com/dinov2/)")
DOCS = "docs/features/dinov2.md"
RECIPE = Recipe("dinov2-224", 256, 224, "bicubic", IMAGENET_MEAN, IMAGENET_STD)


class DINOv2Settings(Settings):
    weights: str | None = pydantic.Field(
        None, description=f"weights file (.safetensors or .pth; default ${WEIGHTS_ENV})"
    )
    architecture: str = pydantic.Field(
        "vit_small_patch14_dinov2", description="timm architecture of the weights"
    )
    value_range: ValueRange = pydantic.Field(
        (0.0, 1.0), description="range of the input values, mapped to [0, 1] (e.g. -1,1)"
    )
    batch_size: int = pydantic.Field(32, gt=0, description="images per network forward")
    device: str = pydantic.Field("cpu", description="torch device, e.g. cpu or cuda")


    @pydantic.field_validator("architecture")
    @classmethod
    def _check_model(cls, value: str) -> str:
        if "dinov2" not in value:
            raise ValueError(f"must be a timm DINOv2 architecture such as "
                             f"'vit_small_patch14_dinov2'; got {value!r}")
        return value


def build_network(model: str):
    """timm's DINOv2 ``model`` at 224 × 224 without a classifier head (random weights)."""
    try:
        import timm
    except ImportError:
        raise MissingResourceError(
            "dinov2: timm is not installed; install the extra with "
            "`pip install 'probekit[features]'`."
        ) from None
    return timm.create_model(model, pretrained=False, num_classes=0, img_size=224)


_LOADED: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()


class DINOv2Features(FeatureExtractor):
    """DINOv2 class-token features (timm) from a local weights file."""

    name = "dinov2"
    modality = "image"
    description = "DINOv2 ViT class token via timm (local weights file you supply)"
    preprocessing = RECIPE.name
    Settings = DINOv2Settings
    settings: DINOv2Settings

    def _path(self):
        return resolve_weights(self.name, self.settings.weights, WEIGHTS_ENV,
                               filename=WEIGHTS_FILENAME, url=WEIGHTS_URL, docs=DOCS)

    @property
    def weights_sha256(self) -> str:
        return file_sha256(self._path())

    def _network(self):
        from timm.models.vision_transformer import checkpoint_filter_fn

        path = self._path()
        key = (str(path.resolve()), self.settings.architecture, self.settings.device)
        with _LOCK:
            if key not in _LOADED:
                net = build_network(self.settings.architecture)
                state = checkpoint_filter_fn(load_state_dict(path, self.name), net)
                try:
                    net.load_state_dict(state, strict=True)
                except RuntimeError as exc:
                    raise ValidationError(
                        f"dinov2: the weights in {str(path)!r} do not fit architecture="
                        f"{self.settings.architecture!r} ({str(exc).splitlines()[0]}); set "
                        "architecture= to the one they were saved from."
                    ) from None
                _LOADED[key] = net.to(self.settings.device).eval()
            return _LOADED[key]

    def extract(self, x: np.ndarray) -> np.ndarray:
        """``(n_samples, embed_dim)`` class-token features."""
        import torch

        net = self._network()
        out = []
        bs = self.settings.batch_size
        with torch.inference_mode():
            for s in range(0, len(x), bs):
                batch = preprocess(x[s : s + bs], RECIPE, self.settings.value_range, self.name)
                out.append(net(batch.to(self.settings.device)).double().cpu().numpy())
        return np.concatenate(out) if out else np.empty((0, 0))

    def provenance_extra(self) -> dict[str, Any]:
        return {"dinov2_architecture": self.settings.architecture,
                "dinov2_weights_file": self._path().name}


@hookimpl
def register_feature_extractors():
    return [DINOv2Features]
