"""``digits-cnn``: features of a small CNN classifier of the bundled 8×8 digits.

A quality feature space for the digits reference pipeline on a machine without Inception
weights. The classifier trains on the part of the bundled digits that no generator trains on:
generators train on the first ``n`` images of the 1297-image pool (nested subsets, ``n <= 512``
in our experiments), the 500 held-out images are the quality reference, so the CNN trains on
``pool[512:]`` (785 images) and is tested on the 500 held-out images. Training is deterministic
(fixed seed, one CPU thread, fixed epoch count; no early stopping on the test set) and takes a
few seconds; the weights are cached under ``$PROBEKIT_CACHE_DIR`` (default
``~/.cache/probekit``) and written atomically. Features are the 64 penultimate-layer
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
TRAIN_START = 512
N_FEATURES = 64
#: The recipe; part of the cache key.
RECIPE = {
    "version": VERSION,
    "train": f"digits pool[{TRAIN_START}:]",
    "test": "digits holdout (500)",
    "epochs": 40,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "augment": "random shift by up to 1 pixel (zero padded)",
    "seed": 0,
}
#: Minimum held-out accuracy; below it the training is refused (a broken recipe, not a model).
MIN_ACCURACY = 0.97


def build_network():
    """conv(1→32) ReLU conv(32→32) ReLU maxpool → conv(32→64) ReLU maxpool → 64 → 10."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4×4
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 2×2
        nn.Flatten(), nn.Linear(256, N_FEATURES), nn.ReLU(),  # features
        nn.Linear(N_FEATURES, 10),
    )


def _load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from probekit_plugins.datasets.digits import load_digits_labels, load_digits_pool

    pool, holdout = load_digits_pool()
    pool_labels, holdout_labels = load_digits_labels()
    return pool[TRAIN_START:], pool_labels[TRAIN_START:], holdout, holdout_labels


SPEC = ClassifierSpec(
    name="digits-cnn", version=VERSION, image_shape=(1, 8, 8), recipe=RECIPE,
    min_accuracy=MIN_ACCURACY, build_network=build_network, load_data=_load_data, shift_pad=1,
    n_features=N_FEATURES,
)


def weights_file(directory: Path | None = None) -> Path:
    return SPEC.weights_file(directory)


def train_digits_cnn(
    recipe: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the classifier (deterministic, one thread); return ``(state_dict, metadata)``."""
    return train_classifier(SPEC, recipe)


def load_or_train(directory: Path | None = None) -> tuple[Any, dict[str, Any], str, Path]:
    """The trained network (cached on disk after the first call), its metadata, the SHA-256
    of the weights file and the file's path."""
    return load_or_train_classifier(SPEC, directory, trainer=lambda: train_digits_cnn())


class DigitsCNNFeatures(ClassifierFeatures):
    """64-d penultimate features of a CNN trained on the digits no generator trains on."""

    name = "digits-cnn"
    description = "64-d features of a small CNN trained on digits pool[512:] (cached)"
    spec = SPEC


@hookimpl
def register_feature_extractors():
    return [DigitsCNNFeatures]
