"""The conformance suite passes on every built-in and catches broken measures."""

from __future__ import annotations

import numpy as np
import pytest
from probekit_plugins.probes.nn_ratio import NearestNeighborRatio

from probekit.registry import registries
from probekit.testing import check_measure, conformance_data

#: Measures whose defaults need local network weights and minutes of CPU; their conformance
#: runs on small inputs in their own module (fid: tests/plugins/test_fid.py::test_conformance).
OWN_CONFORMANCE_TEST = {"fid": "needs Inception weights; see tests/plugins/test_fid.py"}


def _builtin_measures():
    regs = registries()
    return [
        pytest.param(n, marks=pytest.mark.skip(reason=OWN_CONFORMANCE_TEST[n]))
        if n in OWN_CONFORMANCE_TEST else n
        for n in [*regs.probes.names(), *regs.metrics.names()]
    ]


@pytest.mark.parametrize("name", _builtin_measures())
def test_builtins_pass(name):
    check_measure(name)


class BatchDependent(NearestNeighborRatio):
    """Broken on purpose: only looks at the first batch of samples."""

    name = "batch-dependent"
    plugin = "test"

    def evaluate(self, samples=None, *, model=None):
        return super().evaluate(samples[: self.settings.batch_size], model=model)


class Unseeded(NearestNeighborRatio):
    """Broken on purpose: the bootstrap ignores the seed."""

    name = "unseeded"
    plugin = "test"
    _calls = 0

    def evaluate(self, samples=None, *, model=None):
        Unseeded._calls += 1
        self.settings = self.settings.model_copy(update={"seed": Unseeded._calls})
        return super().evaluate(samples, model=model)


class NoValidation(NearestNeighborRatio):
    """Broken on purpose: accepts NaN samples."""

    name = "no-validation"
    plugin = "test"

    def evaluate(self, samples=None, *, model=None):
        return super().evaluate(np.nan_to_num(samples), model=model)


@pytest.mark.parametrize(("cls", "message"), [
    (BatchDependent, "batch_size 1024 vs 7"),
    (Unseeded, "same seed"),
    (NoValidation, "NaN in samples"),
])
def test_broken_measures_fail(cls, message):
    with pytest.raises(AssertionError, match=message):
        check_measure(cls)


def test_conformance_data_layouts():
    assert conformance_data("image").train.shape == (96, 1, 8, 8)
    assert conformance_data("timeseries").samples.shape == (96, 48, 2)
