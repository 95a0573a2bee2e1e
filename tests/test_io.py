"""Readers and atomic writers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from probekit.errors import InputFileError
from probekit.io import atomic_write_json, atomic_write_text, load_array


def test_formats(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", only=x)
    torch.save(torch.from_numpy(x), tmp_path / "c.pt")
    torch.save({"samples": torch.from_numpy(x)}, tmp_path / "d.pt")
    np.savetxt(tmp_path / "e.csv", x[0], delimiter=",")
    for name in ("a.npy", "b.npz", "c.pt", "d.pt"):
        np.testing.assert_array_equal(load_array(tmp_path / name), x)
    assert load_array(tmp_path / "e.csv").shape == (3, 4, 1)


def test_torch_pickles_are_refused(tmp_path):
    torch.save({"obj": object()}, tmp_path / "evil.pt")
    with pytest.raises(InputFileError, match="cannot read"):
        load_array(tmp_path / "evil.pt")


def test_image_folder_rgb_and_sizes(tmp_path):
    Image.new("RGB", (5, 4), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (5, 4), (0, 0, 255)).save(tmp_path / "b.jpg")
    x = load_array(tmp_path)
    assert x.shape == (2, 3, 4, 5)
    assert x[0, 0].mean() == pytest.approx(1.0)
    Image.new("RGB", (6, 4)).save(tmp_path / "c.png")
    with pytest.raises(InputFileError, match="must all have one size"):
        load_array(tmp_path)


def test_empty_folder(tmp_path):
    with pytest.raises(InputFileError, match=r"no \.png"):
        load_array(tmp_path)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    atomic_write_text(tmp_path / "x.txt", "old")
    with pytest.raises(ValueError, match="Out of range float"):
        atomic_write_json(tmp_path / "x.txt", {"bad": float("nan")})
    assert (tmp_path / "x.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_atomic_write_uses_the_usual_file_mode(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "y.txt", "hello")
    finally:
        os.umask(mask)
    assert (tmp_path / "y.txt").stat().st_mode & 0o777 == 0o644
