"""The ``lfw`` dataset plugin (scikit-image's bundled faces)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import lfw_subset

from probekit import ValidationError, get_dataset


def test_faces_are_cropped_centred_and_split():
    splits = get_dataset("lfw")().load()
    assert splits.train.shape == (80, 1, 24, 24) and splits.holdout.shape == (20, 1, 24, 24)
    faces = lfw_subset()[:100].astype(np.float64)
    faces = faces / 255.0 if faces.max() > 1 else faces
    crop = faces[:, None, 0:24, 0:24]  # 25 → 24 keeps rows and columns 0..23
    mean = crop[:80].mean()
    np.testing.assert_allclose(splits.train, crop[:80] - mean, atol=1e-6)
    np.testing.assert_allclose(splits.holdout, crop[80:] - mean, atol=1e-6)
    assert splits.value_range == pytest.approx((-mean, 1 - mean))


def test_nested_subsets_and_limits():
    small = get_dataset("lfw")(n_train=10).load()
    assert small.train.shape[0] == 10 and small.holdout.shape[0] == 20
    with pytest.raises(ValidationError):
        get_dataset("lfw")(n_train=90).load()
