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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from probekit.errors import InputFileError, MissingResourceError, ValidationError
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
    "Recipe",
    "file_sha256",
    "l2_normalize",
    "load_state_dict",
    "preprocess",
    "reference_pipeline",
    "resolve_weights",
    "to_unit_rgb",
]
