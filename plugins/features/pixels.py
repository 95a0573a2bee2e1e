"""``pixels``: the identity feature space (flattened sample values)."""

from __future__ import annotations

import numpy as np

from probekit import FeatureExtractor, hookimpl


class PixelFeatures(FeatureExtractor):
    """Flattened raw values; the default space of distance-based probes (DESIGN §5)."""

    name = "pixels"
    modality = "any"
    description = "flattened sample values (no network, no weights)"
    preprocessing = "none"

    def extract(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return x.reshape(len(x), -1)


@hookimpl
def register_feature_extractors():
    return [PixelFeatures]
