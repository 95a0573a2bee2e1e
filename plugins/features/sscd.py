"""``sscd``: the copy-detection descriptor SSCD (Pizzi et al., "A Self-Supervised Descriptor for
Image Copy Detection", CVPR 2022) — the feature space Somepalli et al. (2023) used to find
copies of training images in Stable Diffusion outputs, and ``prompt-copy``'s default.

The network comes from the file the user names — the ``weights`` setting or
``$PROBEKIT_SSCD_WEIGHTS``; nothing is downloaded and no default location is searched. Two
formats of the official release (``format`` setting; by default told apart by the file name):

* ``*.torchscript.pt`` (e.g. ``sscd_disc_mixup.torchscript.pt``, ResNet-50, 512-d), loaded with
  ``torch.jit.load``. A TorchScript file runs code when loaded: name only a file you fetched
  yourself from the release (docs/features/sscd.md).
* ``*.torchvision.pt`` (e.g. ``sscd_disc_mixup.torchvision.pt``): a plain state dict, read with
  ``torch.load(weights_only=True)`` into the network of the release's ``sscd/models/model.py``
  (torchvision ResNet with ``num_classes`` = descriptor size, GeM pooling with p = 3 in place of
  average pooling, L2 normalization) — no code is run, so prefer it where you can.

Preprocessing follows the SSCD README (``preprocessing`` setting, recorded in provenance):
``sscd-resize288`` (default; the README's ``small_288``: shorter side resized to 288, bilinear)
or ``sscd-skew320`` (``skew_320``: resized to 320 × 320), then ImageNet normalization;
grayscale is replicated to RGB, values are mapped from ``value_range`` to [0, 1]. Descriptors
are L2-normalized (the release's models already return unit vectors; normalizing again makes
the cosine similarity a plain dot product whatever the file).
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from probekit import hookimpl
from probekit.errors import InputFileError, ValidationError
from probekit.pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PretrainedFeatures,
    PretrainedFeatureSettings,
    Recipe,
    load_state_dict,
)

WEIGHTS_ENV = "PROBEKIT_SSCD_WEIGHTS"
WEIGHTS_FILENAME = "sscd_disc_mixup.torchscript.pt"
WEIGHTS_URL = "https://dl.fbaipublicfiles.com/sscd-copy-detection/" + WEIGHTS_FILENAME
DOCS = "docs/features/sscd.md"
#: The two preprocessing recipes of the SSCD README.
RECIPES = {
    "sscd-resize288": Recipe("sscd-resize288", 288, None, "bilinear", IMAGENET_MEAN,
                             IMAGENET_STD),
    "sscd-skew320": Recipe("sscd-skew320", (320, 320), None, "bilinear", IMAGENET_MEAN,
                           IMAGENET_STD),
}




class SSCDSettings(PretrainedFeatureSettings):
    weights: str | None = pydantic.Field(
        None, description=f"SSCD release file (default ${WEIGHTS_ENV}); a TorchScript file runs "
        "code when loaded: name only a file from the official release"
    )
    format: Literal["auto", "torchscript", "torchvision"] = pydantic.Field(
        "auto", description="release format (auto: *.torchvision.pt and .safetensors are state "
        "dicts, anything else TorchScript)"
    )
    backbone: Literal["resnet50", "resnet18", "resnext101_32x8d"] = pydantic.Field(
        "resnet50", description="torchvision trunk of a *.torchvision.pt file"
    )
    preprocessing: Literal["sscd-resize288", "sscd-skew320"] = pydantic.Field(
        "sscd-resize288", description="README recipe: shorter side to 288, or 320x320"
    )



def load_torchscript(path):
    """The release's TorchScript model. torch deprecates TorchScript (a ``FutureWarning`` since
    torch 2.10) but still loads it; the warning is silenced here because this release format is
    what the user named — the state-dict format avoids it."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise InputFileError(
            f"sscd: {str(path)!r} is not a TorchScript model ({type(exc).__name__}); use an "
            f"sscd_*.torchscript.pt file from {WEIGHTS_URL.rsplit('/', 1)[0]}/, or set "
            "format=torchvision for a *.torchvision.pt state dict."
        ) from None


def build_torchvision_sscd(backbone: str, dims: int):
    """The network of the release's ``Model("TV_*", dims, 3.0)``: a torchvision trunk with
    ``num_classes=dims``, GeM pooling in place of average pooling; L2 normalization is applied
    by :meth:`SSCDFeatures.extract`."""
    import torch
    from torchvision import models

    class GeM(torch.nn.Module):
        """Generalized-mean pooling over space (the release's ``GlobalGeMPool2d``, p = 3)."""

        def __init__(self, p: float = 3.0):
            super().__init__()
            self.p = p

        def forward(self, x):
            return x.flatten(2).clamp(min=1e-6).pow(self.p).mean(dim=2).pow(1.0 / self.p)

    class TorchvisionSSCD(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = getattr(models, backbone)(num_classes=dims)
            self.backbone.avgpool = GeM(3.0)

        def forward(self, x):
            return torch.nn.functional.normalize(self.backbone(x))

    return TorchvisionSSCD()


def load_torchvision(path, backbone: str):
    """A ``*.torchvision.pt`` state dict (``backbone.*`` keys) in its torchvision network."""
    state = load_state_dict(path, "sscd")
    fc = state.get("backbone.fc.weight")
    if fc is None:
        raise InputFileError(
            f"sscd: {str(path)!r} is not an SSCD torchvision state dict (no 'backbone.fc.weight'"
            "); use an sscd_*.torchvision.pt file, or format=torchscript for a TorchScript one."
        )
    model = build_torchvision_sscd(backbone, int(fc.shape[0]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValidationError(
            f"sscd: the weights in {str(path)!r} do not fit backbone={backbone!r} "
            f"({str(exc).splitlines()[0]}); set backbone= to the file's trunk."
        ) from None
    return model


class SSCDFeatures(PretrainedFeatures):
    """L2-normalized SSCD descriptors from the official release."""

    name = "sscd"
    description = "SSCD copy-detection descriptors (TorchScript file you supply; Pizzi et al.)"
    preprocessing = "sscd-resize288"
    Settings = SSCDSettings
    settings: SSCDSettings
    weights_env, weights_filename, weights_url, docs = (WEIGHTS_ENV, WEIGHTS_FILENAME,
                                                        WEIGHTS_URL, DOCS)
    unit_length = True

    def __init__(self, settings=None, **overrides):
        super().__init__(settings, **overrides)
        self.preprocessing = self.settings.preprocessing  # type: ignore[misc]

    def _format(self, path) -> str:
        if self.settings.format != "auto":
            return self.settings.format
        torchvision = path.name.endswith(".torchvision.pt") or path.suffix == ".safetensors"
        return "torchvision" if torchvision else "torchscript"

    def network_key(self) -> tuple[Any, ...]:
        return (self._format(self.weights_path()), self.settings.backbone)

    def load_network(self, path):
        if self._format(path) == "torchscript":
            return load_torchscript(path)
        return load_torchvision(path, self.settings.backbone)

    def recipe(self, network: Any) -> Recipe:
        """The README recipe named by ``preprocessing``."""
        return RECIPES[self.settings.preprocessing]

    def provenance_extra(self) -> dict[str, Any]:
        """The weights file name and the README recipe."""
        path = self.weights_path()
        return {"sscd_weights_file": path.name, "sscd_format": self._format(path),
                "sscd_preprocessing": self.settings.preprocessing}


@hookimpl
def register_feature_extractors():
    return [SSCDFeatures]
