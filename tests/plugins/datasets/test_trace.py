"""trace: tslearn's bundled Trace, loaded without any network access."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from probekit import get_dataset


def test_loads_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("trace must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    splits = get_dataset("trace")(normalization="none").load()
    assert splits.train.shape == (140, 275, 1) and splits.holdout.shape == (60, 275, 1)
    official = get_dataset("trace")(split="official", normalization="none").load()
    assert official.train.shape == (100, 275, 1) and official.holdout.shape == (100, 275, 1)


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_holdout_fraction(fraction):
    splits = get_dataset("trace")(holdout_fraction=fraction).load()
    assert len(splits.holdout) == round(200 * fraction)
    assert np.isfinite(splits.train).all()
