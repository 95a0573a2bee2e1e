"""What feature extractors built on pretrained networks share: the local weights file and the
image preprocessing of the upstream release.

Weights are never downloaded. :func:`resolve_weights` finds the file a user named (a setting,
else an environment variable) and raises a one-line
:class:`~probekit.errors.MissingResourceError` saying which file to fetch from where and where
to put it; :func:`file_sha256` hashes it for provenance; :func:`load_state_dict` reads a state
dict safely (safetensors, or ``torch.load(weights_only=True)``).

:func:`preprocess` turns probekit image arrays ``(n_samples, channels, height, width)`` into
the network input of an upstream recipe, on float tensors so that no 8-bit rounding is added:
values mapped from ``value_range`` to [0, 1] and clipped (what ``ToTensor`` gives on an 8-bit
image), grayscale replicated to RGB (PIL's ``convert("RGB")``), a resize (the shorter side to
``resize``, or to a square), a center crop, then ``(x - mean) / std``. Resizing uses
torchvision's antialiased bilinear/bicubic kernels, which follow PIL's; the parity tests of
each extractor measure the remaining difference to the upstream PIL pipeline.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pydantic

from probekit.base import FeatureExtractor, Settings
from probekit.errors import InputFileError, MissingResourceError, ValidationError
from probekit.features import ValueRange
from probekit.validation import check_array

#: ImageNet channel statistics (SSCD, DINOv2, most torchvision/timm models).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: OpenAI CLIP channel statistics (open_clip's default for CLIP models).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class Recipe:
    """An upstream preprocessing recipe.

    Attributes
    ----------
    name : str
        Recorded in provenance (``"sscd-resize288"``).
    resize : int or tuple[int, int]
        An int resizes the shorter side to it (aspect ratio kept, like
        ``transforms.Resize(int)``); a pair resizes to exactly ``(height, width)``.
    crop : int or None
        Center crop to ``crop`` × ``crop`` after resizing.
    interpolation : {"bilinear", "bicubic"}
    mean, std : tuple of 3 floats
    """

    name: str
    resize: int | tuple[int, int]
    crop: int | None
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def resolve_weights(who: str, setting: str | None, env: str, *, filename: str, url: str,
                    docs: str) -> Path:
    """The weights file named by ``setting``, else by ``$env``; a missing or unnamed file is a
    :class:`MissingResourceError` saying where to get ``filename`` and where to put it."""
    if setting:
        path, source = Path(setting).expanduser(), "the `weights` setting"
    elif os.environ.get(env, "").strip():
        path, source = Path(os.environ[env].strip()).expanduser(), f"${env}"
    else:
        raise MissingResourceError(
            f"{who}: no weights file named; probekit never downloads weights. On a machine "
            f"with internet fetch {filename} from {url}, then pass --set "
            f"'feature_settings={{\"weights\": \"/path/to/{filename}\"}}' or set ${env} to its "
            f"path (see {docs})."
        )
    if not path.is_file():
        raise MissingResourceError(
            f"{who}: the weights file {str(path)!r} (from {source}) does not exist; fetch "
            f"{filename} from {url} and put it there, or fix the path (see {docs})."
        )
    return path


_SHA_CACHE: dict[tuple[str, float, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (1 MiB blocks; cached per path, mtime and size)."""
    p = Path(path)
    stat = p.stat()
    key = (str(p.resolve()), stat.st_mtime, stat.st_size)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def load_state_dict(path: Path, who: str) -> dict[str, Any]:
    """A state dict from ``.safetensors``, or from a pickle with ``weights_only=True`` (a
    ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped)."""
    from probekit.io import load_torch_file
    from probekit.validation import check_input_path, one_line

    if path.suffix != ".safetensors":  # torch: pickled objects refused in one line
        state: Any = load_torch_file(path, who=who)
    else:
        check_input_path(path, who=who, name="weights", kind="file")
        try:
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        except Exception as exc:
            raise InputFileError(
                f"{who}: cannot read weights {str(path)!r} ({type(exc).__name__}: "
                f"{one_line(exc, limit=160)}). Is the .safetensors file complete?"
            ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise InputFileError(
            f"{who}: {str(path)!r} must hold a state dict; got {type(state).__name__}."
        )
    return state


def to_unit_rgb(x: np.ndarray, value_range: tuple[float, float], who: str):
    """``(n, 1 or 3, h, w)`` array in ``value_range`` → float32 RGB tensor in [0, 1]."""
    import torch

    x = check_array(x, who=who, name="images", modality="image", dtype=np.float32)
    if x.shape[1] not in (1, 3):
        raise ValidationError(
            f"{who}: images must have 1 (grayscale) or 3 (RGB) channels; got {x.shape[1]} "
            f"(shape {x.shape}). Convert them to RGB first."
        )
    low, high = value_range
    t = torch.from_numpy((x - np.float32(low)) / np.float32(high - low)).clamp_(0.0, 1.0)
    return t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t


def preprocess(x: np.ndarray, recipe: Recipe, value_range: tuple[float, float], who: str):
    """Network input ``(n, 3, H, W)`` (float32 tensor) for ``recipe``."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as tvf

    t = to_unit_rgb(x, value_range, who)
    mode = InterpolationMode.BICUBIC if recipe.interpolation == "bicubic" else \
        InterpolationMode.BILINEAR
    size = [recipe.resize] if isinstance(recipe.resize, int) else list(recipe.resize)
    t = tvf.resize(t, size, interpolation=mode, antialias=True)
    if recipe.crop is not None:
        t = tvf.center_crop(t, [recipe.crop, recipe.crop])
    mean = torch.tensor(recipe.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(recipe.std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((t - mean) / std).contiguous()


def reference_pipeline(recipe: Recipe):
    """The upstream PIL pipeline of ``recipe`` (torchvision ``Resize``/``CenterCrop``/
    ``ToTensor``/``Normalize`` on a PIL image), for parity tests."""
    from torchvision import transforms

    mode = transforms.InterpolationMode.BICUBIC if recipe.interpolation == "bicubic" else \
        transforms.InterpolationMode.BILINEAR
    size = recipe.resize if isinstance(recipe.resize, int) else list(recipe.resize)
    steps = [transforms.Resize(size, interpolation=mode)]
    if recipe.crop is not None:
        steps.append(transforms.CenterCrop(recipe.crop))
    steps += [transforms.ToTensor(), transforms.Normalize(recipe.mean, recipe.std)]
    return transforms.Compose(steps)


def l2_normalize(feats: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero), float64."""
    feats = np.asarray(feats, dtype=np.float64)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return feats / np.where(norms > 0, norms, 1.0)


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PretrainedFeatureSettings",
    "PretrainedFeatures",
    "Recipe",
    "file_sha256",
    "l2_normalize",
    "load_state_dict",
    "preprocess",
    "reference_pipeline",
    "resolve_weights",
    "to_unit_rgb",
]


class PretrainedFeatureSettings(Settings):
    """Settings every pretrained-network extractor has (subclasses add their own)."""

    weights: str | None = pydantic.Field(
        None, description="weights file (default: the extractor's environment variable)"
    )
    value_range: ValueRange = pydantic.Field(
        (0.0, 1.0), description="range of the input values, mapped to [0, 1] (e.g. -1,1)"
    )
    batch_size: int = pydantic.Field(32, gt=0, description="images per network forward")
    device: str = pydantic.Field("cpu", description="torch device, e.g. cpu or cuda")


class PretrainedFeatures(FeatureExtractor):
    """An image feature extractor on a pretrained network read from a local weights file.

    A subclass names its weights (``weights_env``, ``weights_filename``, ``weights_url``,
    ``docs``) and says how to build the network (:meth:`load_network`), which upstream recipe
    prepares its input (:meth:`recipe`) and what one forward pass returns (:meth:`embed`). This
    base finds and hashes the file, loads each (file, settings) network once per process, and
    runs the batches.
    """

    modality = "image"
    weights_env: ClassVar[str]
    weights_filename: ClassVar[str]
    weights_url: ClassVar[str]
    docs: ClassVar[str]
    #: Normalize every feature vector to unit length (copy-detection descriptors, CLIP).
    unit_length: ClassVar[bool] = False
    settings: PretrainedFeatureSettings

    def weights_path(self) -> Path:
        return resolve_weights(self.name, self.settings.weights, self.weights_env,
                               filename=self.weights_filename, url=self.weights_url,
                               docs=self.docs)

    @property
    def weights_sha256(self) -> str:
        return file_sha256(self.weights_path())

    def network_key(self) -> tuple[Any, ...]:
        """What makes two networks different besides the file and the device."""
        return ()

    def load_network(self, path: Path) -> Any:
        """The network with the weights of ``path`` loaded (safely), on the CPU."""
        raise NotImplementedError

    def recipe(self, network: Any) -> Recipe:
        """The upstream preprocessing recipe of ``network``'s input."""
        raise NotImplementedError

    def embed(self, network: Any, batch: Any) -> Any:
        """One forward pass: ``(batch, n_features)`` torch features."""
        return network(batch)

    def network(self) -> Any:
        """The loaded network (once per process for the same file, settings and device)."""
        path = self.weights_path()
        key = (type(self).__name__, str(path.resolve()), self.settings.device,
               *self.network_key())
        with _NETWORK_LOCK:
            if key not in _NETWORKS:
                _NETWORKS[key] = self.load_network(path).to(self.settings.device).eval()
            return _NETWORKS[key]

    def extract(self, x: np.ndarray) -> np.ndarray:
        """``(n_samples, n_features)`` features, float64 (unit length if ``unit_length``)."""
        import torch

        net = self.network()
        recipe = self.recipe(net)
        out = []
        bs = self.settings.batch_size
        with torch.inference_mode():
            for s in range(0, len(x), bs):
                batch = preprocess(x[s : s + bs], recipe, self.settings.value_range, self.name)
                feats = self.embed(net, batch.to(self.settings.device))
                out.append(feats.double().cpu().numpy())
        feats = np.concatenate(out) if out else np.empty((0, 0))
        if feats.ndim != 2:
            raise ValidationError(
                f"{self.name}: the network must return (n_samples, n_features); got shape "
                f"{feats.shape}. Use a {self.weights_filename} file of the documented release."
            )
        return l2_normalize(feats) if self.unit_length else feats


_NETWORKS: dict[tuple[Any, ...], Any] = {}
_NETWORK_LOCK = threading.Lock()
