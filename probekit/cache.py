"""On-disk cache of reference-side work (training-set kNN index, reference feature statistics).

Preparing a measure — indexing the training set, computing the real-data feature statistics —
depends only on the measure and the reference data, never on the checkpoint. The evaluator
therefore prepares each measure once per run, and stores what
:meth:`~probekit.base.Measure.reference_state` returns under a key made of everything that
changes the number:

* the measure's registry name, the plugin that registered it and its version, its class,
* its validated settings (every default filled in),
* the SHA-256 of the weights of its feature extractor, when it has one,
* the SHA-256 (with dtype and shape) of each reference array it was prepared on.

A later run — a resumed one, or another run on the same data — restores the state with
:meth:`~probekit.base.Measure.load_reference_state` instead of preparing again. An unreadable
entry is recomputed and rewritten. Measures whose ``reference_state`` returns ``None`` are
simply prepared every time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from probekit.base import Measure, Metric
from probekit.io import atomic_write_json

#: Bumped when the key recipe or the file layout changes (old entries are then ignored).
CACHE_FORMAT = 1


def array_sha256(x: np.ndarray, *, chunk_bytes: int = 1 << 26) -> str:
    """SHA-256 of an array's dtype, shape and C-order bytes (read in bounded chunks)."""
    x = np.asarray(x)
    digest = hashlib.sha256(f"{x.dtype.str}|{x.shape}|".encode())
    flat = x.reshape(-1) if x.flags.c_contiguous else np.ascontiguousarray(x).reshape(-1)
    step = max(1, chunk_bytes // max(1, x.itemsize))
    for start in range(0, flat.size, step):
        digest.update(memoryview(np.ascontiguousarray(flat[start : start + step])).cast("B"))
    return digest.hexdigest()


def reference_roles(measure: Measure) -> tuple[str, ...]:
    """Which datasets ``prepare`` receives: probes get ``train`` (and ``holdout`` when they
    require it); metrics get one reference set, ``holdout`` when they require it, else
    ``train``."""
    if isinstance(measure, Metric):
        return ("holdout",) if "holdout" in measure.requires else ("train",)
    return ("train", "holdout") if "holdout" in measure.requires else ("train",)


def cache_key_fields(measure: Measure, reference_sha256: Mapping[str, str]) -> dict[str, Any]:
    """The fields hashed into a measure's cache key (also written next to the entry)."""
    cls = type(measure)
    extractor = getattr(measure, "extractor", None)
    return {
        "format": CACHE_FORMAT,
        "measure": measure.name,
        "plugin": cls.plugin,
        "plugin_version": cls.plugin_version,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "settings": measure.settings.model_dump(mode="json"),
        "feature_weights_sha256": getattr(extractor, "weights_sha256", None),
        "reference_sha256": dict(sorted(reference_sha256.items())),
    }


def cache_key(measure: Measure, reference_sha256: Mapping[str, str]) -> str:
    """Hex SHA-256 of :func:`cache_key_fields`."""
    text = json.dumps(cache_key_fields(measure, reference_sha256), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class PrepareOutcome:
    """How a measure was prepared: ``"cache"`` (restored), ``"computed"`` (and stored), or
    ``"uncached"`` (the measure offers no reference state)."""

    measure: Measure
    source: str
    key: str | None


class ReferenceCache:
    """A folder of prepared reference states, one ``.npz`` (plus a ``.json`` of its key fields)
    per key. ``root=None`` disables caching (every measure is prepared)."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root is not None else None

    def path(self, measure: Measure, key: str) -> Path:
        """Where the entry of ``key`` lives."""
        assert self.root is not None
        return self.root / measure.name / f"{key}.npz"

    def prepare(
        self,
        measure: Measure,
        *,
        train: np.ndarray | None,
        holdout: np.ndarray | None,
        reference_sha256: Mapping[str, str],
        train_conditions: Sequence[Any] | None = None,
    ) -> PrepareOutcome:
        """Prepare ``measure`` on its reference data, through the cache.

        ``reference_sha256`` holds :func:`array_sha256` of ``train`` / ``holdout`` (computed
        once by the caller, as the arrays can be large) and, with ``train_conditions`` (one
        caption or label per training item, given to measures that require
        ``"conditions"``), a hash of them under ``"train_conditions"``.
        """
        roles = reference_roles(measure)
        data = {"train": train, "holdout": holdout}
        conditional = train_conditions is not None and "conditions" in measure.requires
        if conditional:
            roles = (*roles, "train_conditions")
        key = None
        if self.root is not None:
            key = cache_key(measure, {r: reference_sha256[r] for r in roles})
            path = self.path(measure, key)
            state = _read_state(path)
            if state is not None:
                try:
                    measure.load_reference_state(state)
                    return PrepareOutcome(measure, "cache", key)
                except (NotImplementedError, KeyError, ValueError):
                    pass  # stale or foreign entry: prepare again and rewrite it
        if isinstance(measure, Metric):
            measure.prepare(data[roles[0]])
        elif conditional:
            measure.prepare(data["train"], holdout=data["holdout"] if "holdout" in roles else None,
                            train_conditions=train_conditions)
        else:
            measure.prepare(data["train"], holdout=data["holdout"] if "holdout" in roles else None)
        if self.root is None or key is None:
            return PrepareOutcome(measure, "uncached", None)
        state = measure.reference_state()
        if state is None:
            return PrepareOutcome(measure, "uncached", key)
        path = self.path(measure, key)
        _write_state(path, state)
        atomic_write_json(path.with_suffix(".json"),
                          cache_key_fields(measure, {r: reference_sha256[r] for r in roles}))
        return PrepareOutcome(measure, "computed", key)


def _read_state(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None


def _write_state(path: Path, state: Mapping[str, np.ndarray]) -> None:
    """``np.savez`` through a temporary file and an atomic rename (states can be large, so they
    are not built in memory first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in state.items()})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = [
    "PrepareOutcome",
    "ReferenceCache",
    "array_sha256",
    "cache_key",
    "cache_key_fields",
    "reference_roles",
]
