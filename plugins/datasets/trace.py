"""``trace``: the Trace dataset that tslearn ships (200 series x 275 steps, 1 channel).

Read with ``tslearn.datasets.CachedDatasets``, which loads ``tslearn/.cached_datasets/Trace.npz``
from inside the installed package and never downloads (unlike ``UCR_UEA_datasets``). Splits as
for the UCR sets (:class:`probekit.timeseries.ArchiveDataset`).
"""

from __future__ import annotations

import numpy as np

from probekit import hookimpl
from probekit.errors import MissingResourceError
from probekit.timeseries import ArchiveDataset


class Trace(ArchiveDataset):
    """Trace (Roverso 2000, UCR archive): synthetic nuclear-plant transients, 4 classes."""

    name = "trace"
    description = "UCR Trace (200 series x 275 steps, 1 channel), bundled with tslearn"

    def read_archive(self) -> tuple[np.ndarray, np.ndarray]:
        from tslearn.datasets import CachedDatasets

        cached = CachedDatasets()
        if "Trace" not in cached.list_datasets():
            raise MissingResourceError(
                f"{self.name}: the installed tslearn does not ship Trace.npz in {cached.path}. "
                "Reinstall tslearn (pip install --force-reinstall tslearn)."
            )
        x_train, _, x_test, _ = cached.load_dataset("Trace")
        return np.asarray(x_train, dtype=np.float64), np.asarray(x_test, dtype=np.float64)


@hookimpl
def register_datasets():
    return [Trace]
