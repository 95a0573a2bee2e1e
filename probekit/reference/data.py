"""Training data of the reference pipeline.

CelebA follows the paper's protocol (Bonnaire et al. 2025; DESIGN §6): ``img_align_celeba`` in
file order → resize the shorter side to 32 → center-crop 32×32 → grayscale, values in [0, 1];
the training set is the first ``n`` images (nested subsets), the held-out set the last 2048, and
both are shifted by the *training-set* mean (one scalar, as the paper's per-channel mean of a
grayscale set). The preprocessed images are cached as one tensor file, so the JPEGs are decoded
once. Nothing is ever downloaded.

The bundled sets (``digits``, ``lfw``) are registered dataset plugins; :func:`load_splits`
reads any registered dataset by name.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from probekit.base import DatasetSplits
from probekit.errors import MissingResourceError, ValidationError
from probekit.io import atomic_write_bytes
from probekit.reference.config import DataConfig

if TYPE_CHECKING:  # torch is imported where used, so that loading the plugins stays light
    import torch

CELEBA_FOLDER = "img_align_celeba"
CELEBA_N_HOLDOUT = 2048
CELEBA_HELP = (
    "CelebA is not bundled and never downloaded. Get the 'Align&Cropped Images' "
    "(img_align_celeba.zip, 202,599 JPEGs) from the CelebA page "
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (or its Google Drive / Kaggle mirrors), "
    "unzip it so that ROOT/img_align_celeba/000001.jpg exists, and pass --data-root ROOT "
    "(Python: root=ROOT; or set PROBEKIT_CELEBA_ROOT)."
)


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def find_celeba_images(root: str | Path) -> list[Path]:
    """The JPEGs of ``root/img_align_celeba`` (or ``root`` itself) in file order."""
    root = Path(root).expanduser()
    folder = root / CELEBA_FOLDER if (root / CELEBA_FOLDER).is_dir() else root
    files = []
    if folder.is_dir():
        files = [f for f in folder.iterdir() if f.suffix.lower() in (".jpg", ".jpeg")]
    if not files:
        raise MissingResourceError(
            f"celeba: found no {CELEBA_FOLDER}/*.jpg under {str(root)!r}. {CELEBA_HELP}"
        )
    return sorted(files, key=lambda f: _natural_key(f.name))


def preprocess_image(path: str | Path, size: int = 32) -> torch.Tensor:
    """One image as the paper prepares it: RGB in [0, 1] → resize the shorter side to ``size``
    (antialiased bilinear) → center crop ``size``×``size`` → grayscale (ITU-R 601 weights).
    Returns ``(1, size, size)`` float32."""
    from PIL import Image
    from torchvision.transforms import functional as TF  # noqa: N812 - torchvision alias

    with Image.open(path) as im:
        x = TF.to_tensor(im.convert("RGB"))
    x = TF.resize(x, size, antialias=True)
    x = TF.center_crop(x, [size, size])
    return TF.rgb_to_grayscale(x, num_output_channels=1)


def celeba_cache_path(files: list[Path], size: int, cache_dir: str | Path | None) -> Path:
    """Cache file named by a hash of the folder, its file list and the image size."""
    key = hashlib.sha256(
        f"{files[0].parent.resolve()}|{len(files)}|{files[0].name}|{files[-1].name}|{size}"
        .encode()
    ).hexdigest()[:16]
    base = Path(cache_dir) if cache_dir else default_cache_dir()
    return base / f"celeba{size}-{len(files)}-{key}.pt"


def default_cache_dir() -> Path:
    """``$PROBEKIT_CACHE_DIR``, else ``~/.cache/probekit`` (as every probekit cache)."""
    env = os.environ.get("PROBEKIT_CACHE_DIR", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "probekit"


def load_celeba_images(root: str | Path, *, size: int = 32, cache_dir: str | Path | None = None,
                       quiet: bool = True) -> torch.Tensor:
    """Every image of CelebA, preprocessed, ``(N, 1, size, size)`` float32 in [0, 1].

    The first call decodes the JPEGs and writes the cache atomically; later calls read it.
    """
    import torch

    files = find_celeba_images(root)
    cache = celeba_cache_path(files, size, cache_dir)
    if cache.exists():
        return torch.load(cache, map_location="cpu", weights_only=True)["images"]
    images = torch.empty((len(files), 1, size, size), dtype=torch.float32)
    for i, f in enumerate(files):
        images[i] = preprocess_image(f, size)
        if not quiet and (i + 1) % 10_000 == 0:
            print(f"celeba: preprocessed {i + 1}/{len(files)} images", file=sys.stderr)
    buffer = io.BytesIO()
    torch.save({"images": images, "n_files": len(files), "size": size}, buffer)
    atomic_write_bytes(cache, buffer.getvalue())
    return images


def center_splits(train: np.ndarray, holdout: np.ndarray, *, who: str) -> DatasetSplits:
    """Shift values in [0, 1] by the training-set mean (one scalar) — the paper's centring."""
    mean = float(np.mean(train, dtype=np.float64))
    return DatasetSplits(
        train=(train - mean).astype(np.float32), holdout=(holdout - mean).astype(np.float32),
        value_range=(-mean, 1.0 - mean), normalization=f"[0,1] minus training mean {mean:.6f}",
    )


def nested_splits(images: np.ndarray, n_train: int, n_holdout: int, *, who: str
                  ) -> DatasetSplits:
    """First ``n_train`` images for training, last ``n_holdout`` held out, centred by the
    training mean. Raises when the two would overlap."""
    pool = len(images) - n_holdout
    if n_holdout < 1 or pool < 2:
        raise ValidationError(
            f"{who}: n_holdout must leave at least 2 pool images; got n_holdout={n_holdout} "
            f"of {len(images)} images."
        )
    if not 2 <= n_train <= pool:
        raise ValidationError(
            f"{who}: n_train must be in [2, {pool}] (all images minus the {n_holdout} held "
            f"out); got {n_train}."
        )
    return center_splits(images[:n_train], images[pool:], who=who)


def load_splits(data: DataConfig) -> DatasetSplits:
    """Train/holdout splits of the registered dataset ``data.dataset``."""
    from probekit.registry import get_dataset

    return get_dataset(data.dataset)(data.settings()).load()


__all__ = [
    "CELEBA_HELP",
    "CELEBA_N_HOLDOUT",
    "center_splits",
    "find_celeba_images",
    "load_celeba_images",
    "load_splits",
    "nested_splits",
    "preprocess_image",
]
