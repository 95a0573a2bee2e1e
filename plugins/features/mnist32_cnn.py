"""``mnist32-cnn``: features of a small CNN classifier of the ``mnist32`` digits.

The quality feature space of the ``mnist32`` reference presets on a machine without Inception
weights (what ``digits-cnn`` is to the 8×8 digits). Generators train on the first ``n`` images
of the 4,000-image ``mnist32`` pool (nested subsets, ``n <= 1024`` in our experiments) and the
1,000 held-out digits are the quality reference, so the classifier trains on ``pool[1024:]``
(2,976 digits no generator sees) and is tested on the 1,000 held-out digits; its accuracy is
recorded with the weights and in the provenance of every metric computed in this space.
Training is deterministic (fixed seed, one CPU thread, fixed epoch count, no early stopping on
the test set) and takes about a minute; the weights are cached under ``$PROBEKIT_CACHE_DIR``
(default ``~/.cache/probekit``) and written atomically. Features are the 64 penultimate-layer
activations (after ReLU), like Inception's pool3 for FID.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from probekit import hookimpl
from probekit.classifier_features import (
    ClassifierFeatures,
    ClassifierSpec,
    train_classifier,
)
from probekit.classifier_features import load_or_train as load_or_train_classifier

#: Bump when the architecture or the recipe changes (a new cache file is trained).
VERSION = 1
#: Generators train on pool[:TRAIN_START] at most; the CNN trains on pool[TRAIN_START:].
TRAIN_START = 1024
N_FEATURES = 64
#: The recipe; part of the cache key.
RECIPE = {
    "version": VERSION,
    "train": f"mnist32 pool[{TRAIN_START}:]",
    "test": "mnist32 holdout (1000)",
    "epochs": 12,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "augment": "random shift by up to 2 pixels (background padded)",
    "seed": 0,
}
#: Minimum held-out accuracy; below it the training is refused (a broken recipe, not a model).
MIN_ACCURACY = 0.95


def build_network():
    """conv(1→16) pool → conv(16→32) pool → conv(32→64) pool → 1024 → 64 → 10 (ReLUs)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 16×16
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8×8
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4×4
        nn.Flatten(), nn.Linear(1024, N_FEATURES), nn.ReLU(),  # features
        nn.Linear(N_FEATURES, 10),
    )


def _load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from probekit_plugins.datasets.mnist32 import load_mnist32_pool

    pool, pool_labels, holdout, holdout_labels = load_mnist32_pool()
    return pool[TRAIN_START:], pool_labels[TRAIN_START:], holdout, holdout_labels


SPEC = ClassifierSpec(
    name="mnist32-cnn", version=VERSION, image_shape=(1, 32, 32), recipe=RECIPE,
    min_accuracy=MIN_ACCURACY, build_network=build_network, load_data=_load_data, shift_pad=2,
    n_features=N_FEATURES,
)


def weights_file(directory: Path | None = None) -> Path:
    return SPEC.weights_file(directory)


def train_mnist32_cnn(
    recipe: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the classifier (deterministic, one thread); return ``(state_dict, metadata)``."""
    return train_classifier(SPEC, recipe)


def load_or_train(directory: Path | None = None) -> tuple[Any, dict[str, Any], str, Path]:
    """The trained network (cached on disk after the first call), its metadata, the SHA-256
    of the weights file and the file's path."""
    return load_or_train_classifier(SPEC, directory, trainer=lambda: train_mnist32_cnn())


class MNIST32CNNFeatures(ClassifierFeatures):
    """64-d penultimate features of a CNN trained on the mnist32 digits no generator sees."""

    name = "mnist32-cnn"
    description = "64-d features of a small CNN trained on mnist32 pool[1024:] (cached)"
    spec = SPEC


@hookimpl
def register_feature_extractors():
    return [MNIST32CNNFeatures]
