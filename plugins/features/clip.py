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

import threading
from typing import Any

import numpy as np
import pydantic

from probekit import FeatureExtractor, Settings, hookimpl
from probekit.errors import InputFileError, MissingResourceError
from probekit.features import ValueRange
from probekit.pretrained import (
    CLIP_MEAN,
    CLIP_STD,
    Recipe,
    file_sha256,
    l2_normalize,
    preprocess,
    resolve_weights,
)

WEIGHTS_ENV = "PROBEKIT_CLIP_WEIGHTS"
WEIGHTS_FILENAME = "open_clip_pytorch_model.bin"
WEIGHTS_URL = "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
DOCS = "docs/features/clip.md"


class CLIPSettings(Settings):
    weights: str | None = pydantic.Field(
        None, description=f"open_clip weights file (.bin/.safetensors; default ${WEIGHTS_ENV})"
    )
    architecture: str = pydantic.Field(
        "ViT-B-32", description="open_clip architecture of the weights"
    )
    value_range: ValueRange = pydantic.Field(
        (0.0, 1.0), description="range of the input values, mapped to [0, 1] (e.g. -1,1)"
    )
    batch_size: int = pydantic.Field(32, gt=0, description="images per network forward")
    device: str = pydantic.Field("cpu", description="torch device, e.g. cpu or cuda")



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


_LOADED: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()


class CLIPFeatures(FeatureExtractor):
    """L2-normalized CLIP image embeddings (open_clip) from a local weights file."""

    name = "clip"
    modality = "image"
    description = "CLIP image embeddings via open_clip (local weights file you supply)"
    preprocessing = "clip-224"
    Settings = CLIPSettings
    settings: CLIPSettings

    def _path(self):
        return resolve_weights(self.name, self.settings.weights, WEIGHTS_ENV,
                               filename=WEIGHTS_FILENAME, url=WEIGHTS_URL, docs=DOCS)

    @property
    def weights_sha256(self) -> str:
        return file_sha256(self._path())

    def _network(self):
        open_clip = import_open_clip()
        path = self._path()
        key = (str(path.resolve()), self.settings.architecture, self.settings.device)
        with _LOCK:
            if key not in _LOADED:
                net = build_network(self.settings.architecture)
                try:
                    open_clip.load_checkpoint(net, str(path), weights_only=True)
                except Exception as exc:
                    raise InputFileError(
                        f"clip: cannot load {str(path)!r} into open_clip architecture="
                        f"{self.settings.architecture!r} safely ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); give an open_clip "
                        "checkpoint of that architecture (not an OpenAI TorchScript .pt)."
                    ) from None
                _LOADED[key] = net.to(self.settings.device).eval()
            net = _LOADED[key]
        self.preprocessing = recipe_for(net).name  # type: ignore[misc]
        return net

    def extract(self, x: np.ndarray) -> np.ndarray:
        """``(n_samples, embed_dim)`` unit image embeddings."""
        import torch

        net = self._network()
        recipe = recipe_for(net)
        out = []
        bs = self.settings.batch_size
        with torch.inference_mode():
            for s in range(0, len(x), bs):
                batch = preprocess(x[s : s + bs], recipe, self.settings.value_range, self.name)
                emb = net.encode_image(batch.to(self.settings.device), normalize=True)
                out.append(emb.double().cpu().numpy())
        return l2_normalize(np.concatenate(out)) if out else np.empty((0, 0))

    def provenance_extra(self) -> dict[str, Any]:
        return {"clip_architecture": self.settings.architecture,
                "clip_weights_file": self._path().name}


@hookimpl
def register_feature_extractors():
    return [CLIPFeatures]
