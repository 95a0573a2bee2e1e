"""``fid``: Fréchet Inception Distance as pytorch-fid computes it, in memory and offline.

Features: pytorch-fid's InceptionV3 pool3 (the ``inception`` extractor: local weights only,
grayscale replicated to RGB, preprocessing mode ``pytorch-fid-png`` reproducing the 8-bit PNG
round trip by default). Statistics: float64 streaming moments. Distance:
:func:`probekit.stats.frechet_distance` (symmetric eigendecompositions; no imaginary-component
failure on near-singular covariances). The reference statistics are computed once in
``prepare`` and reused for every checkpoint; ``reference_state`` lets the evaluator cache them
on disk. ``fid`` equals ``python -m pytorch_fid REF_DIR SAMPLES_DIR`` on the same images saved
with :func:`probekit_plugins.inception.save_png_folder` (tested to 1e-3).
"""

from __future__ import annotations

from typing import Literal

import pydantic
from probekit_plugins.fd import FrechetDistance
from probekit_plugins.inception import (
    InceptionFeatures,
    check_dims,
    check_value_range,
    parse_value_range,
)

from probekit import FeatureExtractor, MeasureSettings, hookimpl
from probekit.features import resolve_extractor


class FrechetInceptionDistanceSettings(MeasureSettings):
    weights: str | None = pydantic.Field(
        None, description="Inception weights file; default $PROBEKIT_INCEPTION_WEIGHTS, "
        "then <TORCH_HOME>/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth"
    )
    preprocessing: Literal["pytorch-fid-png", "pytorch-fid-float"] = pydantic.Field(
        "pytorch-fid-png", description="8-bit PNG round trip in memory (default), or float"
    )
    value_range: tuple[float, float] = pydantic.Field(
        (0.0, 1.0), description="range of the sample values, mapped to [0, 1] (e.g. -1,1)"
    )
    dims: int = pydantic.Field(
        2048, description="Inception block as pytorch-fid's --dims; 2048 (pool3) is FID"
    )
    forward_batch_size: int = pydantic.Field(50, gt=0, description="images per network forward")
    device: str = pydantic.Field("cpu", description="torch device for the network")
    optimize: bool = pydantic.Field(
        True, description="batch norms folded into convolutions, channels-last (faster; the "
        "same network up to float32 rounding)"
    )

    _parse_range = pydantic.field_validator("value_range", mode="before")(parse_value_range)
    _check_range = pydantic.field_validator("value_range")(check_value_range)
    _check_dims = pydantic.field_validator("dims")(check_dims)


class FrechetInceptionDistance(FrechetDistance):
    """FID: Fréchet distance of Inception pool3 statistics (Heusel et al. 2017)."""

    name = "fid"
    modality = "image"
    description = "Fréchet Inception Distance, equal to pytorch-fid's; offline weights"
    headline = "fid"
    higher_is_better = False
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


@hookimpl
def register_metrics():
    return [FrechetInceptionDistance]
