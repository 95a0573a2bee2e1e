"""digits-cnn: trains deterministically on digits pool[512:] only, reaches >= 97% on the 500
held-out digits; cached atomically and reused; as an fd feature space it orders sample sets by
quality. (Its training time, seconds on one idle thread, is recorded, not asserted: timed tests
fail on a loaded machine.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from probekit_plugins.datasets.digits import N_POOL, load_digits_pool
from probekit_plugins.features import digits_cnn
from probekit_plugins.features.digits_cnn import DigitsCNNFeatures, load_or_train, train_digits_cnn

from probekit import get_metric
from probekit.errors import InputFileError, ValidationError


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh cache directory; the classifier is trained once here."""
    directory = tmp_path_factory.mktemp("probekit-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROBEKIT_CACHE_DIR", str(directory))
        load_or_train()
        yield directory


def test_accuracy_and_training_data_are_recorded(cache):
    _, meta, _, path = load_or_train()
    assert meta["test_accuracy"] >= 0.97
    assert meta["train"] == "digits pool[512:]" and meta["n_train"] == N_POOL - 512
    assert meta["test"] == "digits holdout (500)"
    assert meta["train_seconds"] > 0
    assert path.name.startswith("digits-cnn-v1-") and path.parent.name == "digits-cnn"


def test_cached_after_first_use_and_written_atomically(cache, monkeypatch):
    directory = cache
    first = load_or_train()

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the weights are cached")

    monkeypatch.setattr(digits_cnn, "train_digits_cnn", no_training)
    second = load_or_train()
    assert second[2] == first[2]  # same file, same hash
    leftovers = [p.name for p in (directory / "digits-cnn").iterdir()]
    assert leftovers == [first[3].name]  # no temporary files


def test_training_is_deterministic():
    short = {**digits_cnn.RECIPE, "epochs": 1}
    a, _ = train_digits_cnn(short)
    b, _ = train_digits_cnn(short)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unreadable_cache_is_an_input_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBEKIT_CACHE_DIR", str(tmp_path))
    path = digits_cnn.weights_file()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"broken")
    with pytest.raises(InputFileError, match="Delete the file"):
        load_or_train()


def test_features_and_value_range(cache):
    pool, _ = load_digits_pool()
    x = pool[:20]
    extractor = DigitsCNNFeatures()
    feats = extractor.extract(x)
    assert feats.shape == (20, 64) and feats.dtype == np.float32
    np.testing.assert_allclose(
        DigitsCNNFeatures(value_range=(0, 1)).extract((x + 1) / 2), feats, rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValidationError, match="8×8 grayscale"):
        extractor.extract(np.zeros((2, 1, 16, 16), np.float32))


def test_fd_in_digits_cnn_space_orders_sets_by_quality(cache):
    pool, holdout = load_digits_pool()
    rng = np.random.default_rng(0)
    fd = get_metric("fd")(features="digits-cnn").prepare(holdout)
    real = fd.evaluate(pool[:300])
    values = [real.value]
    for noise in (0.3, 0.6, 1.0):
        noisy = np.clip(pool[:300] + rng.normal(0, noise, pool[:300].shape), -1, 1)
        values.append(fd.evaluate(noisy.astype(np.float32)).value)
    assert values == sorted(values) and values[-1] > 5 * values[0]
    prov = real.provenance
    assert prov.feature_space == "digits-cnn" and prov.extra["digits_cnn_test_accuracy"] >= 0.97
    assert prov.extra["digits_cnn_train_data"] == "digits pool[512:]"
    assert prov.feature_weights_sha256 == load_or_train()[2]
