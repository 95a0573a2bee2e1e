"""``digits``: scikit-learn's bundled 8×8 handwritten digits (1797 images, no download).

Values scaled to [-1, 1]; a fixed permutation (seed 0) gives 1297 *pool* images, from which
training sets are the first ``n`` (nested subsets), and 500 held-out images.
"""

from __future__ import annotations

import numpy as np
import pydantic

from probekit import Dataset, DatasetSplits, Settings, hookimpl

N_POOL = 1297
N_HOLDOUT = 500


class DigitsSettings(Settings):
    n_train: int | None = pydantic.Field(
        None, ge=2, le=N_POOL, description="first n pool images as the training set (all: None)"
    )


class Digits(Dataset):
    """sklearn's digits as ``(n, 1, 8, 8)`` float32 in [-1, 1]."""

    name = "digits"
    modality = "image"
    description = "sklearn's 8x8 digits in [-1, 1]: 1297 pool (nested train subsets), 500 holdout"
    Settings = DigitsSettings
    settings: DigitsSettings

    def load(self) -> DatasetSplits:
        pool, holdout = load_digits_pool()
        n = self.settings.n_train or N_POOL
        return DatasetSplits(
            train=pool[:n], holdout=holdout, value_range=(-1.0, 1.0),
            normalization="pixel/16*2-1",
        )


def load_digits_pool() -> tuple[np.ndarray, np.ndarray]:
    """The fixed split: ``(pool, holdout)`` of shapes ``(1297, 1, 8, 8)`` and ``(500, 1, 8, 8)``."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32) / 16.0 * 2.0 - 1.0
    order = np.random.default_rng(0).permutation(len(images))
    images = images[order][:, None]
    return images[:N_POOL], images[N_POOL:]


def load_digits_labels() -> tuple[np.ndarray, np.ndarray]:
    """Labels of the pool and holdout images, in the order of :func:`load_digits_pool`."""
    from sklearn.datasets import load_digits

    labels = load_digits().target
    order = np.random.default_rng(0).permutation(len(labels))
    labels = labels[order]
    return labels[:N_POOL], labels[N_POOL:]


@hookimpl
def register_datasets():
    return [Digits]
