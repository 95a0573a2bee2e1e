"""Readers for sample files and atomic writers for outputs.

Readers return float arrays in probekit's layouts (DESIGN §4): ``.npy``, ``.npz`` (one array, or
the one named by ``key``), folders of PNG/JPEG images (sorted by name, values in [0, 1], layout
``(n, channels, height, width)``), CSV time series (one series per row), and torch tensor files
loaded with ``weights_only=True``. Writers write to a temporary file and rename it, so a failure
never leaves a half-written output.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from probekit.errors import InputFileError, ValidationError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_array(path: str | Path, *, key: str | None = None) -> np.ndarray:
    """Read an array from ``.npy``, ``.npz``, ``.pt``/``.pth``, ``.csv`` or an image folder."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(
            f"input file {str(p)!r} does not exist. Expected a .npy, .npz, .pt, .csv file or a "
            "folder of PNG/JPEG images; check the path."
        )
    try:
        if p.is_dir():
            return load_image_folder(p)
        suffix = p.suffix.lower()
        if suffix == ".npy":
            return np.load(p, allow_pickle=False)
        if suffix == ".npz":
            return _load_npz(p, key)
        if suffix in (".pt", ".pth"):
            return _load_torch(p, key)
        if suffix == ".csv":
            return load_csv_series(p)
    except (InputFileError, ValidationError):
        raise
    except Exception as exc:
        raise InputFileError(
            f"cannot read {str(p)!r}: {type(exc).__name__}: {exc}. Is it a valid {p.suffix} file?"
        ) from None
    raise InputFileError(
        f"cannot read {str(p)!r}: unsupported file type {p.suffix!r}. Expected .npy, .npz, "
        ".pt/.pth, .csv or a folder of .png/.jpg images."
    )


def _load_npz(p: Path, key: str | None) -> np.ndarray:
    with np.load(p, allow_pickle=False) as data:
        names = list(data.keys())
        if key is not None:
            if key not in names:
                raise InputFileError(f"{str(p)!r} has no array {key!r}; it holds {names}.")
            return data[key]
        if len(names) != 1:
            raise InputFileError(
                f"{str(p)!r} holds {len(names)} arrays {names}; name the one to use "
                "(e.g. path.npz:key on the command line)."
            )
        return data[names[0]]


def _load_torch(p: Path, key: str | None) -> np.ndarray:
    import torch

    obj = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        if key is None and len(obj) == 1:
            key = next(iter(obj))
        if key not in obj:
            raise InputFileError(f"{str(p)!r} holds a dict with keys {list(obj)}; name one.")
        obj = obj[key]
    if not isinstance(obj, torch.Tensor):
        raise InputFileError(f"{str(p)!r} must hold a tensor; got {type(obj).__name__}.")
    return obj.detach().cpu().numpy()


def load_image_folder(folder: Path) -> np.ndarray:
    """PNG/JPEG images of one size, sorted by file name, as ``(n, c, h, w)`` floats in [0, 1]."""
    from PIL import Image

    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputFileError(
            f"folder {str(folder)!r} holds no .png/.jpg/.jpeg images. Point to a folder of "
            "images or to an array file."
        )
    arrays = []
    for f in files:
        with Image.open(f) as im:
            mode = "L" if im.mode in ("L", "I", "I;16", "1", "LA") else "RGB"
            arr = np.asarray(im.convert(mode), dtype=np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        if arrays and arr.shape != arrays[0].shape:
            raise InputFileError(
                f"images in {str(folder)!r} must all have one size; {files[0].name} is "
                f"{arrays[0].shape} (c, h, w) and {f.name} is {arr.shape}. Resize them first."
            )
        arrays.append(arr)
    return np.stack(arrays)


def load_csv_series(path: Path) -> np.ndarray:
    """One univariate series per CSV row (no header) as ``(n_samples, n_timesteps, 1)``."""
    data = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    return data[:, :, None]


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")
