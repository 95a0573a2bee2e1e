"""series-file: the user's CSV and .npy series as (n_samples, n_timesteps, n_channels)."""

from __future__ import annotations

import numpy as np
import pytest

from probekit import get_dataset
from probekit.errors import DataWarning, ValidationError


def test_csv_and_npy_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 15))
    np.savetxt(tmp_path / "s.csv", x, delimiter=",")
    np.save(tmp_path / "s2.npy", x)
    np.save(tmp_path / "s3.npy", x[:, :, None].repeat(2, axis=2))
    np.save(tmp_path / "hold.npy", x[:5])
    for name, channels in (("s.csv", 1), ("s2.npy", 1), ("s3.npy", 2)):
        splits = get_dataset("series-file")(
            train=str(tmp_path / name), holdout_fraction=0.25
        ).load()
        assert splits.train.shape == (15, 15, channels)
        assert splits.holdout.shape == (5, 15, channels)
        assert splits.normalization == "none"
        together = np.concatenate([splits.train, splits.holdout])[:, :, 0]
        assert sorted(map(bytes, together)) == sorted(map(bytes, x.astype(np.float32)))
    given = get_dataset("series-file")(train=str(tmp_path / "s2.npy"),
                                       holdout=str(tmp_path / "hold.npy"),
                                       normalization="zscore").load()
    assert given.train.shape == (20, 15, 1) and given.holdout.shape == (5, 15, 1)
    assert "z-score" in given.normalization


def test_bad_files(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 3, 2, 2)))
    with pytest.raises(ValidationError, match="n_timesteps"):
        get_dataset("series-file")(train=str(tmp_path / "a.npy")).load()
    np.save(tmp_path / "b.npy", np.ones((6, 10)))
    np.save(tmp_path / "c.npy", np.ones((6, 11)))
    with pytest.raises(ValidationError, match="same"):
        get_dataset("series-file")(train=str(tmp_path / "b.npy"),
                                   holdout=str(tmp_path / "c.npy")).load()
    with pytest.raises(ValidationError, match="'train'"):
        get_dataset("series-file")()


def test_pandas_csv_and_label(tmp_path):
    """A DataFrame written with its index and header is read as the series, not as an extra
    time step; the dataset's label is its name, or the file's stem."""
    import pandas as pd

    x = np.random.default_rng(0).normal(size=(12, 9))
    pd.DataFrame(x).to_csv(tmp_path / "mine.csv")
    ds = get_dataset("series-file")(train=str(tmp_path / "mine.csv"))
    with pytest.warns(DataWarning, match="row labels"):
        splits = ds.load()
    assert splits.train.shape[1:] == (9, 1) and ds.label == "mine"
    kept = get_dataset("series-file")(train=str(tmp_path / "mine.csv"), index_column="drop",
                                      name="ours")
    assert kept.load().train.shape[1:] == (9, 1) and kept.label == "ours"
