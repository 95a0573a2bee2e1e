"""``lfw``: scikit-image's bundled ``lfw_subset`` faces (100 faces, 25×25; no download).

A small face set for pictures and quick checks. The 25×25 faces are center-cropped to 24×24
(divisible by 8, so a 3-level U-Net fits), scaled to [0, 1] and shifted by the training-set mean
as CelebA is; the first ``n_train`` faces train (nested subsets), the last ``n_holdout`` are
held out.
"""

from __future__ import annotations

import numpy as np
import pydantic

from probekit import Dataset, DatasetSplits, Settings, hookimpl

N_FACES = 100


class LFWSettings(Settings):
    n_train: int | None = pydantic.Field(
        None, ge=2, description="first n faces as the training set (all but the holdout: None)"
    )
    n_holdout: int = pydantic.Field(20, ge=1, le=N_FACES - 2, description="last faces held out")
    crop: int = pydantic.Field(24, ge=4, le=25, description="side of the center crop")


class LFWSubset(Dataset):
    """scikit-image's 100 LFW faces as ``(n, 1, crop, crop)`` float32, [0, 1] minus the mean."""

    name = "lfw"
    modality = "image"
    description = "scikit-image's 100 LFW faces, 24x24 grayscale, [0,1] minus the train mean"
    Settings = LFWSettings
    settings: LFWSettings

    def load(self) -> DatasetSplits:
        from probekit.reference.data import nested_splits

        s = self.settings
        faces = load_lfw_faces(s.crop)
        n = s.n_train or N_FACES - s.n_holdout
        return nested_splits(faces, n, s.n_holdout, who=self.name)


def load_lfw_faces(crop: int = 24) -> np.ndarray:
    """The 100 faces (the first half of ``skimage.data.lfw_subset()``), center-cropped to
    ``crop``, as ``(100, 1, crop, crop)`` float32 in [0, 1]."""
    from skimage.data import lfw_subset

    images = np.asarray(lfw_subset()[:N_FACES], dtype=np.float64)
    if images.max() > 1.0:  # uint8 in some scikit-image versions
        images = images / 255.0
    top = (images.shape[1] - crop) // 2
    left = (images.shape[2] - crop) // 2
    return images[:, None, top : top + crop, left : left + crop].astype(np.float32)


@hookimpl
def register_datasets():
    return [LFWSubset]
