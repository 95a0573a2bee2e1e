"""Resolve the feature space a probe or metric measures in, and extract features in batches."""

from __future__ import annotations

import numpy as np

from probekit.base import FeatureExtractor
from probekit.errors import ValidationError


def resolve_extractor(name: str, extractor: FeatureExtractor | None = None) -> FeatureExtractor:
    """The extractor instance to use: ``extractor`` if given (its name must match), else the
    registered class ``name`` with default settings."""
    if extractor is not None:
        if extractor.name != name:
            raise ValidationError(
                f"features: the extractor passed is {extractor.name!r} but settings name "
                f"{name!r}; set features={extractor.name!r}."
            )
        return extractor
    from probekit.registry import get_feature_extractor

    return get_feature_extractor(name)()


def extract_in_batches(extractor: FeatureExtractor, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Features of ``x`` computed ``batch_size`` samples at a time, as one float array."""
    parts = [extractor.extract(x[s : s + batch_size]) for s in range(0, len(x), batch_size)]
    feats = np.concatenate(parts) if parts else np.empty((0, 0))
    if feats.ndim != 2 or len(feats) != len(x):
        raise ValidationError(
            f"feature extractor {extractor.name!r} must return (n_samples, n_features); got "
            f"shape {feats.shape} for {len(x)} samples."
        )
    return feats
