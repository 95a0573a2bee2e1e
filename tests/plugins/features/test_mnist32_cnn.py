"""mnist32-cnn: trains deterministically on mnist32 pool[1024:] only, reaches >= 95% on the
1,000 held-out digits, cached and reused; as an fd feature space it orders sample sets by
quality, in either value range."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from probekit_plugins.datasets.mnist32 import load_mnist32_pool
from probekit_plugins.features import mnist32_cnn
from probekit_plugins.features.mnist32_cnn import (
    MNIST32CNNFeatures,
    load_or_train,
    train_mnist32_cnn,
)

from probekit import get_metric
from probekit.errors import InputFileError, ValidationError
from probekit.reference.mnist32 import MNIST32_POOL_MEAN


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh cache directory; the classifier is trained once here."""
    directory = tmp_path_factory.mktemp("probekit-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROBEKIT_CACHE_DIR", str(directory))
        load_or_train()
        yield directory


def test_accuracy_training_data_and_cache(cache, monkeypatch):
    _, meta, sha, path = load_or_train()
    assert meta["test_accuracy"] >= 0.95
    assert meta["train"] == "mnist32 pool[1024:]" and meta["n_train"] == 4000 - 1024
    assert path.parent == cache / "mnist32-cnn" and path.name.startswith("mnist32-cnn-v1-")

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the weights are cached")

    monkeypatch.setattr(mnist32_cnn, "train_mnist32_cnn", no_training)
    assert load_or_train()[2] == sha


def test_training_is_deterministic():
    short = {**mnist32_cnn.RECIPE, "epochs": 1}
    a, _ = train_mnist32_cnn(short)
    b, _ = train_mnist32_cnn(short)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unreadable_cache_is_an_input_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBEKIT_CACHE_DIR", str(tmp_path))
    path = mnist32_cnn.weights_file()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"broken")
    with pytest.raises(InputFileError, match="Delete the file"):
        load_or_train()


def test_fd_in_mnist32_cnn_space_orders_sets_by_quality(cache):
    pool, _, holdout, _ = load_mnist32_pool()
    rng = np.random.default_rng(0)
    fd = get_metric("fd")(features="mnist32-cnn").prepare(holdout)
    real = fd.evaluate(pool[:300])
    values = [real.value]
    for noise in (0.3, 0.6, 1.0):
        noisy = np.clip(pool[:300] + rng.normal(0, noise, pool[:300].shape), -1, 1)
        values.append(fd.evaluate(noisy.astype(np.float32)).value)
    assert values == sorted(values) and values[-1] > 5 * values[0]
    assert real.provenance.extra["mnist32_cnn_test_accuracy"] >= 0.95
    # the centred data with its value range gives the same features
    low, high = -MNIST32_POOL_MEAN, 1 - MNIST32_POOL_MEAN
    centred = ((pool[:20] + 1) / 2 - MNIST32_POOL_MEAN).astype(np.float32)
    np.testing.assert_allclose(MNIST32CNNFeatures(value_range=(low, high)).extract(centred),
                               MNIST32CNNFeatures().extract(pool[:20]), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValidationError, match="32×32"):
        MNIST32CNNFeatures().extract(np.zeros((2, 1, 8, 8), np.float32))
