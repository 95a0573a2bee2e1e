"""``samples``: samples generated beforehand, one file or image folder per checkpoint.

For runs whose samples were saved during training (``step-00250.npy``, ``step-00250/`` of PNGs,
``.npz``, ``.pt``, ``.csv``): the handle returns the first ``n`` samples of the checkpoint's
file. The seed cannot change samples that already exist, so compare like with like by saving
samples from the same initial noise at every checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydantic

from probekit import Adapter, Checkpoint, ModelHandle, Settings, hookimpl
from probekit.errors import ValidationError
from probekit.io import load_array


class SamplesAdapterSettings(Settings):
    key: str | None = pydantic.Field(
        None, description="array to read from .npz/.pt files that hold several"
    )


class SamplesHandle(ModelHandle):
    """The pre-generated samples of one checkpoint (read on first use)."""

    def __init__(self, path: Path, step: int, key: str | None = None):
        self.path = Path(path)
        self.step = step
        self.key = key
        self._samples: np.ndarray | None = None

    def _load(self) -> np.ndarray:
        if self._samples is None:
            # a .npy file is memory-mapped: only the rows asked for are read
            self._samples = load_array(self.path, key=self.key, mmap=True)
        return self._samples

    @property
    def n_available(self) -> int:
        """How many samples the file holds."""
        return len(self._load())

    def generate(self, n: int, seed: int) -> np.ndarray:
        """The first ``n`` stored samples (``seed`` is ignored: the samples already exist)."""
        samples = self._load()
        if len(samples) < n:
            raise ValidationError(
                f"samples: n_samples must be at most the number of stored samples; step "
                f"{self.step} ({self.path.name}) holds {len(samples)} and {n} were asked for. "
                f"Pass --n-samples {len(samples)} (or fewer), or store more samples."
            )
        return np.array(samples[:n])


class SamplesAdapter(Adapter):
    """Reads samples saved per checkpoint (``step-<step>.npy|npz|pt|csv`` or image folders)."""

    name = "samples"
    modality = "any"
    description = "samples generated beforehand: a .npy/.npz/.pt/.csv file or image folder per step"
    can_predict_noise = False
    Settings = SamplesAdapterSettings
    settings: SamplesAdapterSettings

    def load(self, checkpoint: Checkpoint) -> SamplesHandle:
        return SamplesHandle(checkpoint.path, checkpoint.step, self.settings.key)


@hookimpl
def register_adapters():
    return [SamplesAdapter]
