"""``check_*`` helpers: validate once, at the boundary, with messages a person can act on.

Every message reads ``"<who>: <param> must be <constraint>; got <what>. <how to fix>"`` and never
prints a whole array.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

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
