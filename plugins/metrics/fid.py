"""``fid``: Fréchet Inception Distance as pytorch-fid computes it, in memory and offline.

Features: pytorch-fid's InceptionV3 pool3 (the ``inception`` extractor: local weights only,
grayscale replicated to RGB, preprocessing mode ``pytorch-fid-png`` reproducing the 8-bit PNG
round trip by default). Statistics: float64 streaming means and square-root factors of the
scatter matrices. Distance: :func:`probekit.stats.frechet_distance_from_moments` (a sum of
singular values: exact with fewer samples than dimensions, no imaginary-component failure on
near-singular covariances). The reference statistics are computed once in
``prepare`` and reused for every checkpoint; ``reference_state`` lets the evaluator cache them
on disk. ``fid`` equals ``python -m pytorch_fid REF_DIR SAMPLES_DIR`` on the same images saved
with :func:`probekit_plugins.features.inception.save_png_folder` (tested to 1e-3).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import pydantic
from probekit_plugins.features.inception import (
    InceptionFeatures,
    check_dims,
)
from probekit_plugins.metrics.fd import FrechetDistance

from probekit import FeatureExtractor, MeasureSettings, Result, hookimpl
from probekit.features import ValueRange, resolve_extractor
from probekit.validation import TorchDevice

#: Fraction of values outside ``value_range`` above which the result carries a warning (a few
#: overshooting samples are normal for diffusion models; a wrong range clips half the values).
CLIPPED_WARNING = 0.01


class FrechetInceptionDistanceSettings(MeasureSettings):
    weights: str | None = pydantic.Field(
        None, description="Inception weights file; default $PROBEKIT_INCEPTION_WEIGHTS, "
        "then <TORCH_HOME>/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth"
    )
    preprocessing: Literal["pytorch-fid-png", "pytorch-fid-float"] = pydantic.Field(
        "pytorch-fid-png", description="8-bit PNG round trip in memory (default), or float"
    )
    value_range: ValueRange = pydantic.Field(
        (0.0, 1.0), description="range of the sample values, mapped to [0, 1] (e.g. -1,1)"
    )
    dims: int = pydantic.Field(
        2048, description="Inception block as pytorch-fid's --dims; 2048 (pool3) is FID"
    )
    forward_batch_size: int = pydantic.Field(50, gt=0, description="images per network forward")
    device: TorchDevice = pydantic.Field("cpu", description="torch device for the network")
    optimize: bool = pydantic.Field(
        True, description="batch norms folded into convolutions, channels-last (faster; the "
        "same network up to float32 rounding)"
    )

    _check_dims = pydantic.field_validator("dims")(check_dims)


class FrechetInceptionDistance(FrechetDistance):
    """FID: Fréchet distance of Inception pool3 statistics (Heusel et al. 2017)."""

    name = "fid"
    modality = "image"
    description = "Fréchet Inception Distance, equal to pytorch-fid's; offline weights"
    headline = "fid"
    headline_range = (0.0, math.inf)
    higher_is_better = False
    role = "quality"
    Settings = FrechetInceptionDistanceSettings
    settings: FrechetInceptionDistanceSettings  # type: ignore[assignment]

    def make_extractor(self, extractor: FeatureExtractor | None) -> FeatureExtractor:
        if extractor is not None:
            return resolve_extractor("inception", extractor)
        s = self.settings
        return InceptionFeatures(
            weights=s.weights, preprocessing=s.preprocessing, value_range=s.value_range,
            dims=s.dims, batch_size=s.forward_batch_size, device=s.device, optimize=s.optimize,
        )

    # -- values outside value_range are clipped: count them, warn when it is not a few ------

    def features_of(self, x: np.ndarray, name: str) -> np.ndarray:
        feats = super().features_of(x, name)  # validates x first
        low, high = self.settings.value_range
        values = np.asarray(x)
        outside = int(np.count_nonzero((values < low) | (values > high)))
        counts = self._clipped.setdefault(name, [0, 0])
        counts[0] += outside
        counts[1] += values.size
        return feats

    def prepare(self, reference: np.ndarray) -> FrechetInceptionDistance:
        self._clipped = {}
        super().prepare(reference)
        self.reference_clipped_ = self._fraction("reference")
        return self

    def reference_state(self) -> dict[str, np.ndarray]:
        state = super().reference_state()
        state["clipped_fraction"] = np.asarray(self.reference_clipped_)
        return state

    def load_reference_state(self, state: dict[str, np.ndarray]) -> FrechetInceptionDistance:
        super().load_reference_state(state)
        self.reference_clipped_ = float(state.get("clipped_fraction", 0.0))
        return self

    def reset(self) -> None:
        super().reset()
        self._clipped = {"reference": getattr(self, "_clipped", {}).get("reference", [0, 0])}

    def compute(self) -> Result:
        result = super().compute()
        fractions = {"reference": self.reference_clipped_, "generated": self._fraction("samples")}
        notes = [
            f"fid: {100 * f:.1f}% of the {name} values lie outside value_range "
            f"{self.settings.value_range} and were clipped; set value_range to the range your "
            "data is in (e.g. value_range=-1,1 for the digits dataset and DDPM samples)."
            for name, f in fractions.items() if f > CLIPPED_WARNING
        ]
        provenance = dataclasses.replace(
            result.provenance,
            extra={**result.provenance.extra, **{f"clipped_fraction_{k}": v
                                                 for k, v in fractions.items()}},
        )
        return dataclasses.replace(
            result, warnings=(*result.warnings, *notes), provenance=provenance
        )

    def _fraction(self, name: str) -> float:
        outside, total = self._clipped.get(name, (0, 0))
        return outside / total if total else 0.0


@hookimpl
def register_metrics():
    return [FrechetInceptionDistance]
