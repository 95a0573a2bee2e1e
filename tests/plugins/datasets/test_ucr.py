"""UCR datasets read from sktime's package data (skipped without sktime): shapes against the
archive's documented sizes, splits, normalization, the .ts reader, a missing-sktime error."""

from __future__ import annotations

import numpy as np
import pytest
from probekit_plugins.datasets import ucr

from probekit import get_dataset
from probekit.errors import InputFileError, MissingResourceError

needs_sktime = pytest.mark.skipif(
    ucr.sktime_data_dir() is None,
    reason="sktime is not installed; the UCR files ship in its wheel (pip install "
    "'probekit[timeseries]')",
)

# name: (n_train_file, n_test_file, n_timesteps, n_channels), from the archive's descriptions
SIZES = {
    "ucr-gunpoint": (50, 150, 150, 1),
    "ucr-arrowhead": (36, 175, 251, 1),
    "ucr-italy-power-demand": (67, 1029, 24, 1),
    "ucr-osuleaf": (200, 242, 427, 1),
    "ucr-acsf1": (100, 100, 1460, 1),
    "ucr-basic-motions": (40, 40, 100, 6),
}


@needs_sktime
@pytest.mark.parametrize("name", sorted(SIZES))
def test_official_split_has_the_archive_sizes(name):
    n_train, n_test, length, channels = SIZES[name]
    splits = get_dataset(name)(split="official", normalization="none").load()
    assert splits.train.shape == (n_train, length, channels)
    assert splits.holdout.shape == (n_test, length, channels)
    assert splits.normalization == "none"


@needs_sktime
def test_pooled_split_nested_subsets_and_recorded_normalization():
    full = get_dataset("ucr-gunpoint")(normalization="none").load()
    assert full.train.shape == (140, 150, 1) and full.holdout.shape == (60, 150, 1)
    small = get_dataset("ucr-gunpoint")(n_train=20, normalization="none").load()
    np.testing.assert_array_equal(small.train, full.train[:20])
    np.testing.assert_array_equal(small.holdout, full.holdout)
    # pooled = the train+test files, re-split: no series lost or duplicated
    official = get_dataset("ucr-gunpoint")(split="official", normalization="none").load()
    both = np.concatenate([official.train, official.holdout]).reshape(200, -1)
    pooled = np.concatenate([full.train, full.holdout]).reshape(200, -1)
    assert sorted(map(bytes, both)) == sorted(map(bytes, pooled))
    z = get_dataset("ucr-gunpoint")().load()
    np.testing.assert_allclose(z.train.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.train.std(), 1.0, rtol=1e-4)
    assert "z-score" in z.normalization and z.value_range[0] < z.value_range[1]


def test_read_ts_file(tmp_path):
    path = tmp_path / "toy.ts"
    path.write_text(
        "# comment\n@problemName toy\n@univariate false\n@dimensions 2\n@equalLength true\n"
        "@classLabel true a b\n@data\n1,2,3:4,5,6:a\n7,8,9:10,11,12:b\n"
    )
    x = ucr.read_ts_file(path)
    assert x.shape == (2, 3, 2)
    np.testing.assert_array_equal(x[1, :, 1], [10, 11, 12])
    path.write_text("@classLabel false\n@data\n1,2,?\n")
    with pytest.raises(InputFileError, match="missing values"):
        ucr.read_ts_file(path)
    path.write_text("@classLabel false\n@data\n1,2,3\n1,2\n")
    with pytest.raises(InputFileError, match="one length"):
        ucr.read_ts_file(path)


def test_missing_sktime_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(ucr, "sktime_data_dir", lambda: None)
    with pytest.raises(MissingResourceError, match=r"pip install 'probekit\[timeseries\]'"):
        get_dataset("ucr-gunpoint")().load()
