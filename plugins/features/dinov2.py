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

from typing import Any

import pydantic

from probekit import hookimpl
from probekit.errors import MissingResourceError, ValidationError
from probekit.pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PretrainedFeatures,
    PretrainedFeatureSettings,
    Recipe,
    load_state_dict,
)

WEIGHTS_ENV = "PROBEKIT_DINOV2_WEIGHTS"
WEIGHTS_FILENAME = "model.safetensors"
WEIGHTS_URL = ("https://huggingface.co/timm/vit_small_patch14_dinov2.lvd142m (or "
               "dinov2_vits14_pretrain.pth from https://dl.fbaipublicfiles.com/dinov2/)")
DOCS = "docs/features/dinov2.md"
RECIPE = Recipe("dinov2-224", 256, 224, "bicubic", IMAGENET_MEAN, IMAGENET_STD)


class DINOv2Settings(PretrainedFeatureSettings):
    weights: str | None = pydantic.Field(
        None, description=f"weights file (.safetensors or .pth; default ${WEIGHTS_ENV})"
    )
    architecture: str = pydantic.Field(
        "vit_small_patch14_dinov2", description="timm architecture of the weights"
    )


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


class DINOv2Features(PretrainedFeatures):
    """DINOv2 class-token features (timm) from a local weights file."""

    name = "dinov2"
    description = "DINOv2 ViT class token via timm (local weights file you supply)"
    preprocessing = RECIPE.name
    Settings = DINOv2Settings
    settings: DINOv2Settings
    weights_env, weights_filename, weights_url, docs = (WEIGHTS_ENV, WEIGHTS_FILENAME,
                                                        WEIGHTS_URL, DOCS)

    def network_key(self) -> tuple[Any, ...]:
        return (self.settings.architecture,)

    def load_network(self, path):
        from timm.models.vision_transformer import checkpoint_filter_fn

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
        return net

    def recipe(self, network: Any) -> Recipe:
        """timm's DINOv2 evaluation transform at 224."""
        return RECIPE

    def provenance_extra(self) -> dict[str, Any]:
        return {"dinov2_architecture": self.settings.architecture,
                "dinov2_weights_file": self.weights_path().name}


@hookimpl
def register_feature_extractors():
    return [DINOv2Features]
