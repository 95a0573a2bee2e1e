"""Frozen data types passed between probekit's parts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from probekit.errors import ValidationError


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and paths into plain JSON values (NaN/inf become None)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Provenance:
    """Where a number comes from: enough to reproduce it.

    Attributes
    ----------
    measure : str
        Registry name of the probe or metric (``"nn-ratio"``).
    plugin, plugin_version : str
        Plugin (entry-point name) that registered the measure and the version of its distribution.
    probekit_version : str
        Version of probekit that computed the result.
    settings : dict
        The validated settings the measure ran with (every default filled in).
    feature_space : str
        Registry name of the feature extractor (``"pixels"`` for raw values).
    feature_weights_sha256 : str or None
        Hash of the extractor's weights, when it has any.
    preprocessing : str
        Named preprocessing choice applied before features were computed.
    seed : int or None
        Seed of every random choice (bootstrap, subsets).
    n_reference, n_samples : int
        Number of reference (training / real) and evaluated samples actually used.
    extra : dict
        Anything else a plugin wants recorded (e.g. number of collapsed duplicates).
    """

    measure: str
    plugin: str
    plugin_version: str
    probekit_version: str
    settings: Mapping[str, Any]
    feature_space: str = "pixels"
    feature_weights_sha256: str | None = None
    preprocessing: str = "none"
    seed: int | None = None
    n_reference: int = 0
    n_samples: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary."""
        return _jsonable(
            {
                "measure": self.measure,
                "plugin": self.plugin,
                "plugin_version": self.plugin_version,
                "probekit_version": self.probekit_version,
                "settings": dict(self.settings),
                "feature_space": self.feature_space,
                "feature_weights_sha256": self.feature_weights_sha256,
                "preprocessing": self.preprocessing,
                "seed": self.seed,
                "n_reference": self.n_reference,
                "n_samples": self.n_samples,
                "extra": dict(self.extra),
            }
        )


@dataclass(frozen=True)
class Result:
    """What one probe or metric returns for one set of samples.

    Attributes
    ----------
    measure : str
        Registry name of the probe or metric.
    headline : str
        Name of the field that summarises the result (``"f_mem"`` for nn-ratio, ``"fid"``).
    values : dict[str, float]
        Summary fields; ``values[headline]`` is the headline number.
    ci : dict[str, tuple[float, float]]
        95% confidence intervals for the fields that have one.
    per_sample : dict[str, np.ndarray]
        Per-sample values (e.g. ``d1``, ``d2``, ``ratio``, ``nn_index``); may be empty.
    warnings : tuple[str, ...]
        Honest caveats (too few samples for the feature dimension, unresolved TPR, ...).
    provenance : Provenance
        How the numbers were made.
    """

    measure: str
    headline: str
    values: Mapping[str, float]
    provenance: Provenance
    ci: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    per_sample: Mapping[str, np.ndarray] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.headline not in self.values:
            raise ValidationError(
                f"Result of {self.measure!r}: headline field {self.headline!r} must be one of "
                f"values; got {sorted(self.values)[:20]}. Put the headline number in values "
                "under the headline's name."
            )

    @property
    def value(self) -> float:
        """The headline number."""
        return float(self.values[self.headline])

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows: one per field, ``{measure, field, value, ci_low, ci_high}``."""
        rows = []
        for name, value in self.values.items():
            low, high = self.ci.get(name, (math.nan, math.nan))
            rows.append(
                {
                    "measure": self.measure,
                    "field": name,
                    "value": float(value),
                    "ci_low": float(low),
                    "ci_high": float(high),
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """One JSON object: the headline under its own field name, then the rest."""
        out: dict[str, Any] = {"measure": self.measure, "headline": self.headline}
        out[self.headline] = self.values[self.headline]
        if self.headline in self.ci:
            out["ci_low"], out["ci_high"] = self.ci[self.headline]
        out["values"] = dict(self.values)
        out["ci"] = {k: list(v) for k, v in self.ci.items()}
        out["warnings"] = list(self.warnings)
        out["provenance"] = self.provenance.to_dict()
        return _jsonable(out)


@dataclass(frozen=True, order=True)
class Checkpoint:
    """One checkpoint of a training run: its step and where it lives."""

    step: int
    path: Path


__all__ = ["Checkpoint", "Provenance", "Result"]
