"""Readers and atomic writers."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from probekit.errors import InputFileError
from probekit.io import atomic_write_json, atomic_write_text, load_array, load_torch_file


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


class _Payload:
    """Runs code when unpickled (what a hostile checkpoint does)."""

    def __reduce__(self):
        return (exec, ("import os; os.environ['PROBEKIT_TEST_PAYLOAD_RAN'] = '1'",))


def test_torch_pickles_are_refused_in_one_line_with_the_opt_in(tmp_path, monkeypatch):
    monkeypatch.delenv("PROBEKIT_ALLOW_PICKLE", raising=False)
    monkeypatch.delenv("PROBEKIT_TEST_PAYLOAD_RAN", raising=False)
    torch.save({"samples": torch.zeros(2, 3), "obj": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(InputFileError) as info:
        load_array(tmp_path / "evil.pt", key="samples")
    message = str(info.value)
    assert "refused to load" in message and "would run code" in message
    assert "PROBEKIT_ALLOW_PICKLE=1" in message
    assert "\n" not in message and "\x1b" not in message  # one line, no ANSI escapes
    assert "weights_only" not in message and "safe_globals" not in message  # not torch's advice
    assert "PROBEKIT_TEST_PAYLOAD_RAN" not in os.environ
    # the explicit opt-in, for files the user trusts
    monkeypatch.setenv("PROBEKIT_ALLOW_PICKLE", "1")
    assert load_array(tmp_path / "evil.pt", key="samples").shape == (2, 3)
    assert os.environ.get("PROBEKIT_TEST_PAYLOAD_RAN") == "1"


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "cannot read"),
    (b"garbage" * 20, "not a valid torch file"),
    (None, "cannot read"),  # truncated zip
])
def test_corrupt_torch_files_are_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save(torch.zeros(100), path)
        path.write_bytes(path.read_bytes()[:60])
    else:
        path.write_bytes(content)
    with pytest.raises(InputFileError, match=expected) as info:
        load_torch_file(path, who="test")
    assert "\n" not in str(info.value) and "weights_only" not in str(info.value)


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: p.write_bytes(b""), "empty or truncated"),
    (lambda p: p.write_bytes(b"not numpy at all"), "not a valid .npy file"),
    (lambda p: np.save(p, np.array([1, "a"], dtype=object), allow_pickle=True),
     "Python objects"),
    (lambda p: os.mkfifo(p), "named pipe"),
])
def test_bad_npy_files_are_one_line(tmp_path, make, expected):
    path = tmp_path / "x.npy"
    make(path)
    with pytest.raises(InputFileError, match=expected) as info:
        load_array(path)
    assert "\n" not in str(info.value) and "allow_pickle" not in str(info.value)


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
