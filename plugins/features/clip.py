"""``clip``: CLIP image embeddings (Radford et al., "Learning Transferable Visual Models From
Natural Language Supervision", 2021) through open_clip, from a local weights file — a semantic
feature space for copy search and Fréchet distances on text-to-image samples.

The network is open_clip's ``ViT-B-32`` (``architecture`` setting: any open_clip model name); its
weights come from the file the user names (``weights`` setting or ``$PROBEKIT_CLIP_WEIGHTS``):
an open_clip checkpoint (``open_clip_pytorch_model.bin`` / ``open_clip_model.safetensors`` from
the Hugging Face hub, e.g. ``laion/CLIP-ViT-B-32-laion2B-s34B-b79K``), read by open_clip's
``load_checkpoint`` with ``weights_only=True``. Nothing is downloaded; OpenAI's TorchScript
``.pt`` files are refused (they run code when loaded) — use the hub's open_clip copy instead.

Preprocessing ``clip-<size>`` (recorded in provenance) is open_clip's evaluation transform:
shorter side resized to the model's input size (bicubic), center crop, CLIP normalization;
grayscale replicated to RGB, values mapped from ``value_range`` to [0, 1]. Features are the
L2-normalized image embeddings (``encode_image(..., normalize=True)``).
"""

from __future__ import annotations

from typing import Any

import pydantic

from probekit import hookimpl
from probekit.errors import InputFileError, MissingResourceError
from probekit.pretrained import (
    CLIP_MEAN,
    CLIP_STD,
    PretrainedFeatures,
    PretrainedFeatureSettings,
    Recipe,
)

WEIGHTS_ENV = "PROBEKIT_CLIP_WEIGHTS"
WEIGHTS_FILENAME = "open_clip_pytorch_model.bin"
WEIGHTS_URL = "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
DOCS = "docs/features/clip.md"


class CLIPSettings(PretrainedFeatureSettings):
    weights: str | None = pydantic.Field(
        None, description=f"open_clip weights file (.bin/.safetensors; default ${WEIGHTS_ENV})"
    )
    architecture: str = pydantic.Field(
        "ViT-B-32", description="open_clip architecture of the weights"
    )



def import_open_clip():
    try:
        import open_clip
    except ImportError:
        raise MissingResourceError(
            "clip: open_clip is not installed; install the extra with "
            "`pip install 'probekit[features]'`."
        ) from None
    return open_clip


def build_network(model: str):
    """open_clip's ``model`` with random weights, in eval mode."""
    return import_open_clip().create_model(model, pretrained=None).eval()


def recipe_for(network: Any) -> Recipe:
    """open_clip's evaluation transform for the network's input size."""
    size = network.visual.image_size
    size = size if isinstance(size, int) else int(size[0])
    return Recipe(f"clip-{size}", size, size, "bicubic", CLIP_MEAN, CLIP_STD)


class CLIPFeatures(PretrainedFeatures):
    """L2-normalized CLIP image embeddings (open_clip) from a local weights file."""

    name = "clip"
    description = "CLIP image embeddings via open_clip (local weights file you supply)"
    preprocessing = "clip-224"
    Settings = CLIPSettings
    settings: CLIPSettings
    weights_env, weights_filename, weights_url, docs = (WEIGHTS_ENV, WEIGHTS_FILENAME,
                                                        WEIGHTS_URL, DOCS)
    unit_length = True

    def network_key(self) -> tuple[Any, ...]:
        return (self.settings.architecture,)

    def load_network(self, path):
        net = build_network(self.settings.architecture)
        try:
            import_open_clip().load_checkpoint(net, str(path), weights_only=True)
        except Exception as exc:
            raise InputFileError(
                f"clip: cannot load {str(path)!r} into open_clip architecture="
                f"{self.settings.architecture!r} safely ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); give an open_clip "
                "checkpoint of that architecture (not an OpenAI TorchScript .pt)."
            ) from None
        return net

    def network(self):
        net = super().network()
        self.preprocessing = recipe_for(net).name  # type: ignore[misc]
        return net

    def recipe(self, network: Any) -> Recipe:
        return recipe_for(network)

    def embed(self, network: Any, batch: Any) -> Any:
        """``(batch, embed_dim)`` unit image embeddings."""
        return network.encode_image(batch, normalize=True)

    def provenance_extra(self) -> dict[str, Any]:
        return {"clip_architecture": self.settings.architecture,
                "clip_weights_file": self.weights_path().name}


@hookimpl
def register_feature_extractors():
    return [CLIPFeatures]
