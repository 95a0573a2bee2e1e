"""``check_*`` helpers: validate once, at the boundary, with messages a person can act on.

Every message reads ``"<who>: <param> must be <constraint>; got <what>. <how to fix>"`` and never
prints a whole array.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from probekit.errors import UnknownNameError, ValidationError

#: Number of array dimensions per modality: images (n_samples, channels, height, width),
#: time series (n_samples, n_timesteps, n_channels), feature vectors (n_samples, n_features).
MODALITY_NDIM = {"image": 4, "timeseries": 3, "features": 2}

_LAYOUT = {
    "image": "(n_samples, channels, height, width)",
    "timeseries": "(n_samples, n_timesteps, n_channels)",
    "features": "(n_samples, n_features)",
}


def describe(x: Any) -> str:
    """Short description of a value for error messages (never the whole array)."""
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}"
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def infer_modality(x: np.ndarray) -> str:
    """Modality implied by the number of dimensions (4: image, 3: timeseries, 2: features)."""
    for modality, ndim in MODALITY_NDIM.items():
        if x.ndim == ndim:
            return modality
    raise ValidationError(
        f"input: array must have 2, 3 or 4 dimensions {tuple(_LAYOUT.values())}; "
        f"got {describe(x)}. Reshape it to one of these layouts."
    )


def check_array(
    x: Any,
    *,
    who: str,
    name: str,
    modality: str | None = None,
    min_samples: int = 1,
    dtype: type | None = np.float64,
) -> np.ndarray:
    """Return ``x`` as a finite float array with the layout of ``modality``.

    Parameters
    ----------
    x : array-like
        The data to check.
    who, name : str
        Who is checking and the parameter name, both used in the message.
    modality : {"image", "timeseries", "features", "any", None}
        Required layout; ``None``/``"any"`` accepts 2, 3 or 4 dimensions.
    min_samples : int
        Minimum ``n_samples``.
    dtype : numpy dtype or None
        Float dtype of the returned array (no copy when already so); ``None`` keeps a
        floating dtype as it is and turns integers into float64.
    """
    if isinstance(x, list | tuple):
        x = np.asarray(x)
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise ValidationError(
            f"{who}: {name} must be a numpy array; got {describe(x)}. Pass np.asarray(...)."
        )
    if x.dtype.kind not in "biuf":
        raise ValidationError(
            f"{who}: {name} must hold real numbers; got dtype {x.dtype}. "
            "Convert it with .astype(np.float32)."
        )
    if modality in (None, "any"):
        infer_modality(x)
    else:
        ndim = MODALITY_NDIM[modality]
        if x.ndim != ndim:
            raise ValidationError(
                f"{who}: {name} must be a {ndim}-d {modality} array {_LAYOUT[modality]}; got "
                f"{describe(x)}. Add or remove axes (e.g. x[:, None] for one channel)."
            )
    if x.shape[0] < min_samples:
        raise ValidationError(
            f"{who}: {name} must have at least {min_samples} samples; got {x.shape[0]} "
            f"({describe(x)}). Provide more samples."
        )
    if x.size and 0 in x.shape[1:]:
        raise ValidationError(f"{who}: {name} has an empty axis; got {describe(x)}.")
    if dtype is None:
        dtype = x.dtype if x.dtype.kind == "f" else np.float64
    x = np.asarray(x, dtype=dtype)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise ValidationError(
            f"{who}: {name} must be finite; got NaN or inf in {bad} of {len(x)} samples "
            f"({describe(x)}). Drop or repair those samples."
        )
    return x


def check_same_sample_shape(
    a: tuple[int, ...], b: tuple[int, ...], *, who: str, a_name: str, b_name: str
) -> None:
    """Raise unless the per-sample shapes ``a`` and ``b`` are equal."""
    if tuple(a) != tuple(b):
        raise ValidationError(
            f"{who}: {a_name} and {b_name} must have the same per-sample shape; got "
            f"{tuple(a)} for {a_name} and {tuple(b)} for {b_name}. Generate samples at the "
            "training resolution, or compare in a feature space (features=...)."
        )


def check_in_range(
    value: float, *, who: str, name: str, low: float, high: float, inclusive: bool = False
) -> float:
    """Raise unless ``low < value < high`` (or ``<=`` when ``inclusive``)."""
    ok = low <= value <= high if inclusive else low < value < high
    if not ok:
        brackets = "[]" if inclusive else "()"
        raise ValidationError(
            f"{who}: {name} must be in {brackets[0]}{low}, {high}{brackets[1]}; got {value!r}."
        )
    return value


def closest_name(name: str, known: Iterable[str]) -> str | None:
    """The known name most similar to ``name``, or ``None``."""
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return matches[0] if matches else None


def check_known(name: str, known: Mapping[str, Any] | Iterable[str], *, kind: str) -> str:
    """Raise :class:`UnknownNameError` listing the known names and the closest match."""
    names = sorted(known)
    if name in names:
        return name
    hint = closest_name(name, names)
    did_you_mean = f" Did you mean {hint!r}?" if hint else ""
    listing = ", ".join(names) if names else "(none registered)"
    raise UnknownNameError(
        f"unknown {kind} {name!r}.{did_you_mean} Known {kind}s: {listing}. "
        f"Run `probekit list` to see every registered name."
    )


# -- text of messages ---------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[@-Z\\-_]")


def one_line(text: object, *, limit: int = 300) -> str:
    """``text`` as one line for a message: ANSI escape codes removed, whitespace (newlines
    included) collapsed, at most ``limit`` characters. A longer text loses its middle, not its
    end: a message ends with what to do (a long path in the middle must not cut that off)."""
    flat = " ".join(_ANSI.sub("", str(text)).split())
    if len(flat) <= limit:
        return flat
    tail = (limit - 3) * 2 // 5
    return flat[: limit - 3 - tail] + "..." + flat[len(flat) - tail :]


def format_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``; ``8e12`` → ``"7.3 TiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"  # pragma: no cover


# -- input paths ---------------------------------------------------------------------------------

_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _special_kind(mode: int) -> str | None:
    for test, what in _SPECIAL_KINDS:
        if test(mode):
            return what
    return None


def special_file_kind(path: str | os.PathLike) -> str | None:
    """``"a named pipe"``, ``"a socket"``, ``"a character device"`` or ``"a block device"``
    when ``path`` (links followed) is one; ``None`` for files, folders and missing paths."""
    try:
        return _special_kind(Path(path).stat().st_mode)
    except OSError:
        return None


def check_input_path(path: str | os.PathLike, *, who: str, name: str,
                     kind: str = "any") -> Path:
    """Return ``path`` if it is an existing regular file (``kind="file"``), folder
    (``kind="dir"``) or either (``kind="any"``).

    A named pipe, socket or device (``/dev/stdin``, ``/dev/zero``, ``<(...)``) is refused
    instead of read: reading one can wait forever or never end.

    Raises
    ------
    InputFileError
        The path does not exist, is of the wrong kind, or is not a regular file or folder.
    """
    from probekit.errors import InputFileError

    p = Path(path)
    try:
        mode = p.stat().st_mode  # follows links: /dev/stdin is judged by what it points to
    except FileNotFoundError:
        raise InputFileError(
            f"{who}: {name} {str(p)!r} does not exist. Check the path."
        ) from None
    except NotADirectoryError:
        raise InputFileError(
            f"{who}: {name} {str(p)!r} does not exist (a part of the path is a file, not a "
            "folder). Check the path."
        ) from None
    except OSError as exc:
        raise InputFileError(
            f"{who}: {name} {str(p)!r} cannot be read: {one_line(exc.strerror or exc)}."
        ) from None
    special = _special_kind(mode)
    if special is not None:
        raise InputFileError(
            f"{who}: {name} must be a regular file or a folder; {str(p)!r} is {special}, and "
            "reading it could wait forever. Save the data to a file and pass that."
        )
    if kind == "file" and stat.S_ISDIR(mode):
        raise InputFileError(f"{who}: {name} must be a file; {str(p)!r} is a folder.")
    if kind == "dir" and not stat.S_ISDIR(mode):
        raise InputFileError(f"{who}: {name} must be a folder; {str(p)!r} is a file.")
    return p


# -- output paths --------------------------------------------------------------------------------


def _read_only_fs(path: Path) -> bool:
    """Whether the file system holding the existing ``path`` is mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): rely on os.access
        return False


def _writable_dir(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def _check_creatable(target: Path, *, who: str, name: str, what: str,
                     folder: bool = False) -> None:
    """Refuse unless everything missing on the way to ``target`` (a file, or a ``folder``) can
    be created: the nearest existing ancestor is a folder, writable, on a writable file
    system."""
    ancestor = target if folder else target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        if ancestor.is_symlink():  # a dangling link: mkdir would fail
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise ValidationError(
            f"{who}: {name} {str(target)!r} cannot be created: {str(ancestor)!r} is a file, "
            f"not a folder. Choose {what}."
        )
    if not ancestor.exists():
        raise ValidationError(
            f"{who}: {name} {str(target)!r} cannot be created: {str(ancestor)!r} is a broken "
            f"link. Choose {what}."
        )
    if _read_only_fs(ancestor):
        raise ValidationError(
            f"{who}: {name} {str(target)!r} cannot be written: {str(ancestor)!r} is on a "
            f"read-only file system. Choose {what} on a writable disk."
        )
    if not _writable_dir(ancestor):
        raise ValidationError(
            f"{who}: {name} {str(target)!r} cannot be written: the folder {str(ancestor)!r} "
            f"is not writable by this user. Choose {what}, or fix its permissions."
        )


def check_output_file(path: str | os.PathLike, *, who: str, name: str) -> Path:
    """Check, before any work, that a file can be written (atomically) at ``path``.

    ``path`` must not be a folder or a special file, no part of its folder may be a regular
    file, and the nearest existing folder must be writable and on a writable file system.
    Nothing is created.
    """
    p = Path(path)
    if str(path) == "":
        raise ValidationError(f"{who}: {name} must be a file path; got an empty string.")
    if p.is_dir():
        raise ValidationError(
            f"{who}: {name} must be a file path; {str(p)!r} is a folder. Give a file name "
            f"(e.g. {str(p / 'result.json')!r})."
        )
    if p.exists():
        special = _special_kind(p.stat().st_mode)
        if special is not None:
            raise ValidationError(
                f"{who}: {name} must be a regular file; {str(p)!r} is {special}. Choose "
                "another file name."
            )
    _check_creatable(p, who=who, name=name, what="another file")
    return p


def check_output_dir(path: str | os.PathLike, *, who: str, name: str) -> Path:
    """Check, before any work, that ``path`` is a folder that can be created or written.

    ``path`` must not be a regular file, no part of it may be a regular file, and the folder
    (or its nearest existing ancestor) must be writable and on a writable file system.
    Nothing is created.
    """
    p = Path(path)
    if str(path) == "":
        raise ValidationError(f"{who}: {name} must be a folder path; got an empty string.")
    if p.exists() and not p.is_dir():
        raise ValidationError(
            f"{who}: {name} must be a folder; {str(p)!r} is a file. Choose another folder."
        )
    if p.is_dir():
        if _read_only_fs(p):
            raise ValidationError(
                f"{who}: {name} {str(p)!r} cannot be written: it is on a read-only file "
                "system. Choose a folder on a writable disk."
            )
        if not _writable_dir(p):
            raise ValidationError(
                f"{who}: {name} {str(p)!r} is not writable by this user. Choose another "
                "folder, or fix its permissions."
            )
        return p
    _check_creatable(p, who=who, name=name, what="another folder", folder=True)
    return p


# -- resources -----------------------------------------------------------------------------------

#: Environment variable that caps the memory probekit plans for (bytes, or with a K/M/G/T
#: suffix), below what the machine reports as available.
MEMORY_LIMIT_ENV = "PROBEKIT_MEMORY_LIMIT"


def _parse_bytes(text: str) -> int | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*", text, flags=re.I)
    if match is None:
        return None
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[match[2].upper()]
    return int(float(match[1]) * scale)


def _cgroup_room() -> int | None:
    """Memory left under a cgroup v2 limit (containers, batch jobs), or ``None``."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((base / "memory.current").read_text().strip())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes of memory available for new allocations: ``MemAvailable`` of ``/proc/meminfo``
    (else the free physical pages), lowered by a cgroup limit and by
    ``PROBEKIT_MEMORY_LIMIT``; ``None`` when it cannot be told."""
    candidates: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
                break
    except (OSError, ValueError, IndexError):
        pass
    if not candidates:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    room = _cgroup_room()
    if room is not None:
        candidates.append(room)
    env = os.environ.get(MEMORY_LIMIT_ENV)
    if env:
        parsed = _parse_bytes(env)
        if parsed is None:
            raise ValidationError(
                f"{MEMORY_LIMIT_ENV} must be a number of bytes (e.g. 8G, 512M); got {env!r}."
            )
        candidates.append(parsed)
    return min(candidates) if candidates else None


def check_memory(nbytes: float, *, who: str, what: str, fix: str) -> None:
    """Refuse work that needs more memory than is available, before allocating any.

    Parameters
    ----------
    nbytes : float
        Estimate of the bytes the work allocates at its peak.
    who, what : str
        Who asks and for what (``"nn-ratio"``, ``"n_bootstrap=10^12 resamples of 20 samples"``).
    fix : str
        How to need less (``"Lower n_bootstrap."``).
    """
    available = available_memory()
    if available is None or nbytes <= available:
        return
    raise ValidationError(
        f"{who}: {what} needs about {format_bytes(nbytes)} of memory; "
        f"{format_bytes(available)} is available. {fix}"
    )


def check_count(value: Any, *, who: str, name: str, low: int = 1,
                high: int | None = None) -> int:
    """Return ``value`` if it is an integer in ``[low, high]`` (``bool`` is refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(f"{who}: {name} must be an integer; got {describe(value)}.")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValidationError(f"{who}: {name} must be {bound}; got {int(value)}.")
    return int(value)


_DEVICE = re.compile(r"^(cpu|cuda|mps)(?::(\d+))?$")


def check_device(device: str, *, who: str, name: str = "device") -> str:
    """Return ``device`` if torch can use it: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and
    present on this machine (torch is only imported for a non-CPU device)."""
    text = str(device).strip()
    match = _DEVICE.match(text)
    if match is None:
        raise ValidationError(
            f"{who}: {name} must be cpu, cuda, cuda:N or mps; got {describe(device)}."
        )
    kind, index = match[1], match[2]
    if kind == "cpu":
        return text
    import torch

    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValidationError(
                f"{who}: {name} {text!r} is not available: torch sees no CUDA GPU on this "
                "machine. Use --device cpu, or run where a GPU is visible."
            )
        if index is not None and int(index) >= count:
            raise ValidationError(
                f"{who}: {name} {text!r} is not available: torch sees {count} CUDA GPU(s) "
                f"(cuda:0 to cuda:{count - 1})."
            )
        return text
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        raise ValidationError(
            f"{who}: {name} 'mps' is not available on this machine (Apple GPUs only). Use "
            "--device cpu."
        )
    return text


# -- argparse types ------------------------------------------------------------------------------


def _int_type(low: int, high: int | None, what: str):
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}; got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {what}; got {value}")
        return value

    parse.__name__ = what.replace(" ", "_")
    return parse


#: ``argparse`` type for a count that must be at least 1 (a usage error otherwise).
positive_int = _int_type(1, None, "a positive integer")
#: ``argparse`` type for an integer that must be at least 0.
non_negative_int = _int_type(0, None, "a non-negative integer")
#: ``argparse`` type for a seed (0 to 2**63 - 1).
seed_int = _int_type(0, 2**63 - 1, "a seed in [0, 2^63 - 1]")


def finite_float(text: str) -> float:
    """``argparse`` type for a finite float (``nan`` and ``inf`` are usage errors)."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text!r}")
    return value


_KIND_TEXT = {
    "image": "images (n_samples, channels, height, width)",
    "timeseries": "time series (n_samples, n_timesteps, n_channels)",
    "features": "feature vectors (n_samples, n_features)",
}


def check_compatible_sets(sets: Mapping[str, Any], *, who: str, modality: str = "any") -> str:
    """Refuse sets that cannot be compared; return their modality.

    Every set (``{"train": x, "samples": y}``; ``None`` values are skipped) must hold the same
    kind of data; images and feature vectors the same per-sample shape; time series the same
    ``n_channels`` (lengths may differ: some probes search long recordings). ``modality`` is
    what the measure works on (``"any"``: everything).
    """
    given = {k: v for k, v in sets.items() if v is not None}
    for name, x in given.items():
        dtype = getattr(x, "dtype", None)
        if dtype is not None and np.dtype(dtype).kind not in "biuf":
            raise ValidationError(
                f"{who}: {name} must hold real numbers; got {describe(x)}. Save a numeric "
                "array (e.g. x.astype(np.float32))."
            )
        if getattr(x, "ndim", 0) > 1 and 0 in tuple(x.shape[1:]):
            raise ValidationError(f"{who}: {name} has an empty axis; got {describe(x)}.")
    kinds = {name: infer_modality(np.asarray(x) if not hasattr(x, "ndim") else x)
             for name, x in given.items()}
    names = list(given)
    for name in names[1:]:
        a, b = names[0], name
        if kinds[a] != kinds[b]:
            raise ValidationError(
                f"{who}: {a} and {b} must hold the same kind of data; got "
                f"{_KIND_TEXT[kinds[a]]} of shape {tuple(given[a].shape)} for {a} and "
                f"{_KIND_TEXT[kinds[b]]} of shape {tuple(given[b].shape)} for {b}. Pass "
                "matching files."
            )
        shape_a, shape_b = tuple(given[a].shape[1:]), tuple(given[b].shape[1:])
        same = shape_a[-1:] == shape_b[-1:] if kinds[a] == "timeseries" else shape_a == shape_b
        if not same:
            what = "n_channels" if kinds[a] == "timeseries" else "per-sample shape"
            raise ValidationError(
                f"{who}: {a} and {b} must have the same {what}; got {shape_a} for {a} and "
                f"{shape_b} for {b}. Generate samples at the training resolution and layout."
            )
    kind = kinds[names[0]] if names else "any"
    if modality not in ("any", None) and names and kind != modality:
        raise ValidationError(
            f"{who}: works on {modality} data; got {_KIND_TEXT[kind]} of shape "
            f"{tuple(given[names[0]].shape)}. Choose a measure for this data (`probekit list`)."
        )
    return kind


def _device_syntax(value: str) -> str:
    text = str(value).strip()
    if _DEVICE.match(text) is None:
        raise ValueError(f"must be cpu, cuda, cuda:N or mps; got {value!r}")
    return text


def _torch_device_type() -> Any:
    import pydantic

    return Annotated[str, pydantic.AfterValidator(_device_syntax)]


#: Settings field type of a torch device: ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (checked when
#: the settings are made; whether the device is present is checked where it is used, with
#: :func:`check_device`).
TorchDevice = _torch_device_type()
