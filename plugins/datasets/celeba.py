"""``celeba``: CelebA 32×32 grayscale from a local ``img_align_celeba`` folder (never downloaded).

The paper's protocol (Bonnaire et al. 2025): file order → resize the shorter side to 32 →
center crop → grayscale, values in [0, 1] minus the training-set mean; training set = the first
``n_train`` images (nested subsets), held-out set = the last 2048. Preprocessed once and cached
as one tensor file (see :mod:`probekit.reference.data`).
"""

from __future__ import annotations

import os

import pydantic

from probekit import Dataset, DatasetSplits, MissingResourceError, Settings, hookimpl
from probekit.reference.data import CELEBA_HELP, CELEBA_N_HOLDOUT


class CelebASettings(Settings):
    root: str | None = pydantic.Field(
        None, description="folder holding img_align_celeba/ (default: $PROBEKIT_CELEBA_ROOT)"
    )
    n_train: int | None = pydantic.Field(
        None, ge=2, description="first n images as the training set (all but the holdout: None)"
    )
    n_holdout: int = pydantic.Field(CELEBA_N_HOLDOUT, ge=1, description="last images held out")
    size: int = pydantic.Field(32, ge=4, description="side of the square images")
    cache_dir: str | None = pydantic.Field(
        None, description="where the preprocessed tensor is cached (default ~/.cache/probekit)"
    )


class CelebA(Dataset):
    """CelebA as ``(n, 1, size, size)`` float32, [0, 1] minus the training-set mean."""

    name = "celeba"
    modality = "image"
    description = "CelebA 32x32 grayscale from a local img_align_celeba folder (paper protocol)"
    Settings = CelebASettings
    settings: CelebASettings

    def load(self) -> DatasetSplits:
        from probekit.reference.data import load_celeba_images, nested_splits

        s = self.settings
        root = s.root or os.environ.get("PROBEKIT_CELEBA_ROOT")
        if not root:
            raise MissingResourceError(f"celeba: no data root given. {CELEBA_HELP}")
        images = load_celeba_images(root, size=s.size, cache_dir=s.cache_dir).numpy()
        n = s.n_train or len(images) - s.n_holdout
        return nested_splits(images, n, s.n_holdout, who=self.name)


@hookimpl
def register_datasets():
    return [CelebA]
