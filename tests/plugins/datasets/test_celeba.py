"""The ``celeba`` dataset plugin on generated JPEGs laid out like CelebA."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from probekit import MissingResourceError, ValidationError, get_dataset


def _fake_celeba(root, n):
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(1, n + 1):
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(
            folder / f"{i:06d}.jpg")


def test_splits_follow_the_paper_protocol(tmp_path):
    _fake_celeba(tmp_path, 10)
    settings = {"root": str(tmp_path), "n_train": 4, "n_holdout": 3,
                "cache_dir": str(tmp_path / "cache")}
    splits = get_dataset("celeba")(settings).load()
    assert splits.train.shape == (4, 1, 32, 32) and splits.holdout.shape == (3, 1, 32, 32)
    assert abs(float(splits.train.mean())) < 1e-5  # centred on the training mean
    every = get_dataset("celeba")({**settings, "n_train": 7}).load()
    raw4 = splits.train - splits.value_range[0]  # back to [0, 1]
    raw7 = every.train - every.value_range[0]
    np.testing.assert_allclose(raw7[:4], raw4, atol=1e-5)  # nested subsets
    np.testing.assert_allclose(every.holdout - every.value_range[0],
                               splits.holdout - splits.value_range[0], atol=1e-5)
    assert "training mean" in splits.normalization
    with pytest.raises(ValidationError, match="n_train"):
        get_dataset("celeba")({**settings, "n_train": 8}).load()  # would overlap the holdout


def test_root_from_the_environment_and_missing_root(tmp_path, monkeypatch):
    monkeypatch.delenv("PROBEKIT_CELEBA_ROOT", raising=False)
    with pytest.raises(MissingResourceError, match="mmlab"):
        get_dataset("celeba")().load()
    with pytest.raises(MissingResourceError, match="img_align_celeba"):
        get_dataset("celeba")(root=str(tmp_path)).load()
    _fake_celeba(tmp_path, 4)
    monkeypatch.setenv("PROBEKIT_CELEBA_ROOT", str(tmp_path))
    splits = get_dataset("celeba")(n_holdout=1, cache_dir=str(tmp_path / "c")).load()
    assert len(splits.train) == 3 and len(splits.holdout) == 1
