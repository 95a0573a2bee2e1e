"""Readers for sample files and atomic writers for outputs.

Readers return float arrays in probekit's layouts (DESIGN §4): ``.npy``, ``.npz`` (one array, or
the one named by ``key``), folders of PNG/JPEG images (sorted by name, values in [0, 1], layout
``(n, channels, height, width)``), CSV time series (one series per row), and torch tensor files
loaded with ``weights_only=True``. CSV tables may have a header row and a row-index column
(both detected; see :func:`read_csv_table`). Writers write to a temporary file and rename it,
so a failure never leaves a half-written output.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from probekit.errors import InputFileError, ValidationError
from probekit.validation import check_input_path, one_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_array(path: str | Path, *, key: str | None = None, mmap: bool = False) -> np.ndarray:
    """Read an array from ``.npy``, ``.npz``, ``.pt``/``.pth``, ``.csv`` or an image folder.

    ``mmap``: a ``.npy`` file is memory-mapped read-only (only the rows used are read)."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(
            f"input file {str(p)!r} does not exist. Expected a .npy, .npz, .pt, .csv file or a "
            "folder of PNG/JPEG images; check the path."
        )
    check_input_path(p, who="input", name="file")  # a pipe or device would never end
    try:
        if p.is_dir():
            return load_image_folder(p)
        suffix = p.suffix.lower()
        if suffix == ".npy":
            return np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
        if suffix == ".npz":
            return _load_npz(p, key)
        if suffix in (".pt", ".pth"):
            return _load_torch(p, key)
        if suffix == ".csv":
            return load_csv_series(p)
    except (InputFileError, ValidationError):
        raise
    except MemoryError:
        raise InputFileError(
            f"cannot read {str(p)!r}: it does not fit in memory. Use a smaller file, or a "
            ".npy file (read in chunks where a command supports it)."
        ) from None
    except Exception as exc:
        raise InputFileError(f"cannot read {str(p)!r}: {_read_problem(exc, p)}") from None
    raise InputFileError(
        f"cannot read {str(p)!r}: unsupported file type {p.suffix!r}. Expected .npy, .npz, "
        ".pt/.pth, .csv or a folder of .png/.jpg images."
    )


def _read_problem(exc: Exception, p: Path) -> str:
    """Why numpy (or a reader) could not read ``p``, in words a user can act on (never the
    advice to load pickled data)."""
    text = one_line(exc, limit=10_000)
    if "Object arrays cannot be loaded" in text:
        return ("it holds Python objects (dtype object), not numbers; loading them could run "
                "code, so it is refused. Save a numeric array (e.g. x.astype(np.float32)).")
    if "pickled" in text or "allow_pickle" in text:
        return (f"it is not a valid {p.suffix} file (no array header; it looks like pickled "
                "Python data). Save the array with numpy (np.save / np.savez).")
    if isinstance(exc, EOFError) or "No data left" in text or "truncated" in text.lower() \
            or "cannot reshape" in text or "buffer is smaller" in text:
        return f"the file is empty or truncated ({_first_sentence(text)}). Save it again."
    return (f"{type(exc).__name__}: {_first_sentence(text) or 'unreadable'}. Is it a valid "
            f"{p.suffix or 'input'} file?")


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


#: Environment variable that lets torch files given by the user run code while they load
#: (``PROBEKIT_ALLOW_PICKLE=1``): only for files you trust; never on by default.
ALLOW_PICKLE_ENV = "PROBEKIT_ALLOW_PICKLE"
_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def pickle_allowed() -> bool:
    """Whether ``PROBEKIT_ALLOW_PICKLE=1`` is set (torch files may then run code on load)."""
    return os.environ.get(ALLOW_PICKLE_ENV, "").strip() == "1"


def _first_sentence(text: str) -> str:
    flat = one_line(text, limit=10_000)
    head = re.split(r"(?<=[.!?])\s", flat, maxsplit=1)[0]
    return one_line(head, limit=200).rstrip(".")


def load_torch_file(path: str | Path, *, who: str, map_location: Any = "cpu") -> Any:
    """``torch.load`` of a file the user gave, safely: tensors and plain containers only
    (``weights_only=True``), and every failure one line.

    A file that holds pickled Python objects — which run code while they load, and so can
    carry a payload — is refused, naming what it references; ``PROBEKIT_ALLOW_PICKLE=1``
    loads it anyway, for files you trust. A truncated or corrupt file is an
    :class:`~probekit.errors.InputFileError` saying so. A named pipe or device is refused
    before it is opened.
    """
    import pickle

    import torch

    p = check_input_path(path, who=who, name="file", kind="file")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _REFUSED_GLOBAL.search(one_line(exc, limit=100_000))
        if refused is None:
            detail = one_line(str(exc).rsplit("WeightsUnpickler error:", 1)[-1], limit=10_000)
            detail = detail.split(" Check the documentation")[0].strip() or "unreadable data"
            raise InputFileError(
                f"{who}: cannot read {str(p)!r}: not a valid torch file "
                f"({one_line(detail, limit=80)}). Is it complete? Save it again, or point to "
                "another file."
            ) from None
        if pickle_allowed():
            return torch.load(p, map_location=map_location, weights_only=False)
        raise InputFileError(
            f"{who}: refused to load {str(p)!r}: it holds pickled Python objects "
            f"({refused[1]}) that would run code while loading, not only tensors. Only if you "
            f"trust this file, set {ALLOW_PICKLE_ENV}=1 to load it anyway."
        ) from None
    except InputFileError:
        raise
    except Exception as exc:  # truncated zip, wrong format, EOF, ...
        raise InputFileError(
            f"{who}: cannot read {str(p)!r}: {type(exc).__name__}: "
            f"{_first_sentence(str(exc)) or 'unreadable'}. Is it a complete torch file?"
        ) from None


def _load_torch(p: Path, key: str | None) -> np.ndarray:
    import torch

    obj = load_torch_file(p, who="input")
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


#: Header names of a first column that labels the rows (pandas writes ``""`` for its index).
ROW_LABEL_NAMES = ("", "unnamed: 0", "index", "id", "date", "time", "datetime", "timestamp")
#: Ways of treating a first column that looks like row labels (see :func:`read_csv_table`).
INDEX_COLUMN_MODES = ("auto", "drop", "keep")
#: Ways of treating the first line (see :func:`read_csv_table`).
HEADER_MODES = ("auto", "present", "absent")
_MISSING = ("", "na", "nan", "null", "none")


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _counts(values: list[str]) -> bool:
    """``0, 1, 2, ...`` or ``1, 2, 3, ...`` (at least 3): a counter, not data."""
    if len(values) < 3 or not all(_is_number(v) for v in values):
        return False
    x = np.array([float(v) for v in values])
    n = len(x)
    return bool(np.array_equal(x, np.arange(n)) or np.array_equal(x, np.arange(1, n + 1)))


def read_csv_table(
    path: str | Path, *, columns: list[str | int] | None = None, index_column: str = "auto",
    header_row: str = "auto", missing: bool = False,
) -> tuple[list[str] | None, np.ndarray, str | None]:
    """A numeric CSV table: ``(column names or None, float64 values (n_rows, n_columns), a note
    of what was dropped or None)``.

    * **Header** (``header_row="auto"``): the first line is a header when it has a non-numeric
      field, an empty first field over a filled one (pandas' header of an unnamed index), or
      counts the columns in plain integers ``0,1,2,...`` (pandas' default column names;
      ``np.savetxt`` writes ``0.000e+00``, which stays data); ``"present"`` and ``"absent"``
      override the detection.
    * **Row labels** (``index_column="auto"``): a first column that labels the rows is dropped
      and reported: named ``""``, ``Unnamed: 0``, ``index``, ``id``, ``date``, ``time``,
      ``datetime`` or ``timestamp``; non-numeric (dates, names); or counting the rows
      (``0, 1, 2, ...`` or ``1, 2, 3, ...``: what ``DataFrame.to_csv`` writes). ``"drop"``
      always drops the first column, ``"keep"`` never does.
    * **Columns**: ``columns`` picks columns (header names, or 0-based positions after any
      row-label column was dropped); default all.
    * **Missing values**: empty cells (and ``nan``, ``NA``, ``null``) are NaN when
      ``missing=True``, an error otherwise. Any other non-numeric cell is an error naming its
      line and column.
    """
    import csv

    p = Path(path)
    for value, modes, what in ((header_row, HEADER_MODES, "header_row"),
                               (index_column, INDEX_COLUMN_MODES, "index_column")):
        if value not in modes:
            raise ValidationError(f"read_csv_table: {what} must be one of {modes}; got {value!r}.")
    with open(p, newline="", encoding="utf-8-sig") as f:
        lines = [[cell.strip() for cell in row] for row in csv.reader(f)
                 if row and any(cell.strip() for cell in row)]
    if not lines:
        raise InputFileError(f"{str(p)!r} holds no rows; expected numbers separated by commas.")
    first = lines[0]
    if header_row == "auto":
        has_header = any(cell and not _is_number(cell) for cell in first) or (
            len(lines) > 1 and len(first) > 1
            and ((not first[0] and bool(lines[1][0]))
                 or (all(cell.isdigit() for cell in first) and _counts(first)))
        )
    else:
        has_header = header_row == "present"
    header = first if has_header else None
    rows = lines[1:] if has_header else lines
    if not rows:
        raise InputFileError(f"{str(p)!r} holds a header row and no data rows.")
    width = len(header) if header is not None else len(rows[0])
    for r, row in enumerate(rows):
        if len(row) != width:
            raise InputFileError(
                f"{str(p)!r}: line {r + 1 + has_header} has {len(row)} fields; the "
                f"{'header' if has_header else 'first line'} has {width}. Every row must have "
                "the same number of values."
            )
    offset, dropped = 0, None
    if index_column != "keep" and width > 1:
        name = header[0] if header is not None else None
        label = [row[0] for row in rows]
        why = ("index_column='drop'" if index_column == "drop"
               else f"named {name!r}" if name is not None and name.lower() in ROW_LABEL_NAMES
               else "not numeric" if not all(_is_number(v) or v.lower() in _MISSING
                                             for v in label)
               else "counting the rows" if _counts(label) else None)
        if why:
            offset = 1
            dropped = (f"first column dropped as row labels ({why}); set index_column='keep' "
                       "to read it as data")
    names = header[offset:] if header is not None else None
    picked = list(range(width - offset))
    if columns is not None:
        picked = []
        for col in columns:
            if isinstance(col, str) and not col.lstrip("-").isdigit():
                if names is None or col not in names:
                    raise ValidationError(
                        f"read_csv_table: columns must name columns of {str(p)!r}; got {col!r}"
                        f", and its columns are {names or 'unnamed (no header row)'}."
                    )
                picked.append(names.index(col))
            elif not 0 <= int(col) < width - offset:
                raise ValidationError(
                    f"read_csv_table: column positions must be in [0, {width - offset}) for "
                    f"{str(p)!r}; got {col}."
                )
            else:
                picked.append(int(col))
    values = np.empty((len(rows), len(picked)))
    for r, row in enumerate(rows):
        for j, c in enumerate(picked):
            cell = row[c + offset]
            try:
                values[r, j] = float(cell)
            except ValueError:
                if cell.lower() in _MISSING and missing:
                    values[r, j] = np.nan
                    continue
                what = "an empty cell" if not cell else f"{cell[:20]!r}, not a number"
                fix = ("fill or drop missing values first" if cell.lower() in _MISSING
                       else "keep only numeric columns (or pick them with columns=...)")
                raise InputFileError(
                    f"{str(p)!r}: line {r + 1 + has_header}, column {c + offset + 1} holds "
                    f"{what}; {fix}."
                ) from None
    out_names = [names[c] for c in picked] if names is not None else None
    return out_names, values, dropped


def load_csv_series(path: str | Path, *, index_column: str = "auto",
                    header_row: str = "auto") -> np.ndarray:
    """One univariate series per CSV row as ``(n_samples, n_timesteps, 1)``: a header row is
    skipped and a row-index column dropped (:func:`read_csv_table`); missing values are an
    error. A row-label column dropped by detection is warned about
    (:class:`~probekit.errors.DataWarning`)."""
    _, values, dropped = read_csv_table(path, index_column=index_column, header_row=header_row)
    if dropped and index_column == "auto":
        import warnings

        from probekit.errors import DataWarning

        warnings.warn(f"{str(path)!r}: {dropped}.", DataWarning, stacklevel=2)
    return values[:, :, None]


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
