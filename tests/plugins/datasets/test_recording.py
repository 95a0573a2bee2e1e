"""recording: long series cut into windows and split by time — no holdout window shares a
timestep with a training window, the training stretch travels with the splits, files and
missing values are read as documented."""

from __future__ import annotations

import numpy as np
import pytest

from probekit import get_dataset
from probekit.errors import ValidationError
from probekit.timeseries import RecordingSplits


def recording(**settings):
    return get_dataset("recording")(**settings)


def test_time_split_never_overlaps_and_keeps_the_stretch(tmp_path):
    ramp = np.arange(1000, dtype=np.float64)  # each value is its own timestep
    np.save(tmp_path / "ramp.npy", ramp)
    splits = recording(path=str(tmp_path / "ramp.npy"), window=32, stride=3,
                       holdout_fraction=0.2, gap=5, normalization="none").load()
    assert isinstance(splits, RecordingSplits)
    train, holdout = splits.train[:, :, 0], splits.holdout[:, :, 0]
    assert train.max() < 800 <= holdout.min() - 5  # cut at 800, 5 steps dropped
    np.testing.assert_array_equal(train[:, 0], np.arange(0, 800 - 32 + 1, 3))
    np.testing.assert_array_equal(np.diff(train, axis=1), 1.0)  # contiguous windows
    (stretch,) = splits.train_recordings
    # exactly the steps the training windows cover
    np.testing.assert_array_equal(stretch[:, 0], np.arange(train[-1, -1] + 1))
    assert "split by time at 80%" in splits.normalization


def test_zscore_is_fitted_on_the_training_stretch_and_recorded(tmp_path):
    rng = np.random.default_rng(0)
    rec = 5.0 + 2.0 * rng.normal(size=(3000, 2))
    np.save(tmp_path / "r.npy", rec)
    splits = recording(path=str(tmp_path / "r.npy"), window=16, stride=8).load()
    (stretch,) = splits.train_recordings
    np.testing.assert_allclose(stretch.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(stretch.std(axis=0), 1.0, atol=1e-5)
    assert "z-score fitted on the training split" in splits.normalization
    # the windows are the normalized stretch, cut
    np.testing.assert_allclose(splits.train[1], stretch[8:24], atol=1e-6)
    per_window = recording(path=str(tmp_path / "r.npy"), window=16, stride=8,
                           normalization="window-zscore").load()
    np.testing.assert_allclose(per_window.train.mean(axis=1), 0.0, atol=1e-6)
    np.testing.assert_allclose(per_window.train.std(axis=1), 1.0, atol=1e-5)


def test_n_train_keeps_the_first_windows_in_time_order(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(500.0))
    np.save(tmp_path / "b.npy", np.arange(1000.0, 1400.0))
    paths = f"{tmp_path / 'a.npy'},{tmp_path / 'b.npy'}"
    full = recording(path=paths, window=20, stride=10, normalization="none").load()
    assert len(full.train_recordings) == 2
    some = recording(path=paths, window=20, stride=10, normalization="none", n_train=40).load()
    np.testing.assert_array_equal(some.train, full.train[:40])  # nested
    assert len(some.train_recordings) == 2
    assert len(some.train_recordings[1]) == (40 - 36 - 1) * 10 + 20  # 36 windows in a
    with pytest.raises(ValidationError, match="n_train must be at most"):
        recording(path=paths, window=20, stride=10, n_train=10_000).load()


def test_csv_with_dates_header_and_missing_values(tmp_path):
    rng = np.random.default_rng(1)
    values = np.cumsum(rng.normal(size=400))
    lines = ["date,co2,flag"] + [
        f"{19580101 + 7 * i},{'' if i in (10, 11, 200) else f'{v:.4f}'},{i % 2}"
        for i, v in enumerate(values)
    ]
    (tmp_path / "co2.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationError, match="3 missing value"):
        recording(path=str(tmp_path / "co2.csv"), columns="co2").load()
    ds = recording(path=str(tmp_path / "co2.csv"), columns="co2", missing="interpolate",
                   window=32, normalization="none")
    splits = ds.load()
    assert ds.label == "co2" and splits.train.shape[2] == 1
    (stretch,) = splits.train_recordings
    assert stretch[10, 0] == pytest.approx(values[9] + (values[12] - values[9]) / 3, abs=1e-3)
    assert "3 missing value(s) linearly interpolated" in splits.normalization
    assert "named 'date'" in splits.normalization
    both = recording(path=str(tmp_path / "co2.csv"), missing="interpolate").load()
    assert both.train.shape[2] == 2  # co2 and flag


def test_bad_recordings_are_one_line_errors(tmp_path):
    np.save(tmp_path / "wide.npy", np.zeros((5, 300)))
    with pytest.raises(ValidationError, match="transpose it"):
        recording(path=str(tmp_path / "wide.npy")).load()
    np.save(tmp_path / "short.npy", np.zeros(100))  # 75 + 25 steps
    with pytest.raises(ValidationError, match="holdout stretch of recording 0"):
        recording(path=str(tmp_path / "short.npy"), window=32).load()
    with pytest.raises(ValidationError, match="'path'"):
        recording()
