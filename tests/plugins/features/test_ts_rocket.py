"""ts-rocket: the dilated, padded multichannel convolution against a direct loop; determinism,
batch independence, validation."""

from __future__ import annotations

import numpy as np
import pytest
from probekit_plugins.features.ts_rocket import apply_kernel, draw_kernels

from probekit import get_feature_extractor
from probekit.errors import ValidationError


def direct_output(x, kernel):
    """out[n, t] = bias + sum_c sum_j w[c, j] * xpad[n, t + j * d, channels[c]]."""
    n, length, _ = x.shape
    pad = kernel.padding
    taps = kernel.weights.shape[1]
    padded = np.zeros((n, length + 2 * pad, x.shape[2]))
    padded[:, pad : pad + length] = x
    n_out = length + 2 * pad - (taps - 1) * kernel.dilation
    out = np.full((n, n_out), kernel.bias)
    for i in range(n):
        for t in range(n_out):
            for c, channel in enumerate(kernel.channels):
                for j in range(taps):
                    out[i, t] += kernel.weights[c, j] * padded[i, t + j * kernel.dilation, channel]
    return out


@pytest.mark.parametrize(("length", "channels"), [(40, 1), (25, 3)])
def test_kernel_output_matches_direct_loop(length, channels):
    x = np.random.default_rng(0).normal(size=(2, length, channels))
    kernels = draw_kernels(12, length, channels, seed=0)
    assert any(k.padding for k in kernels) and any(not k.padding for k in kernels)
    assert any(k.dilation > 1 for k in kernels)
    for kernel in kernels:
        np.testing.assert_allclose(apply_kernel(x, kernel), direct_output(x, kernel),
                                   rtol=1e-12, atol=1e-12)


def test_kernel_distribution():
    for kernel in draw_kernels(200, 150, 4, seed=3):
        taps = kernel.weights.shape[1]
        assert taps in (7, 9, 11)
        np.testing.assert_allclose(kernel.weights.mean(axis=1), 0.0, atol=1e-12)
        assert -1 <= kernel.bias <= 1
        assert 1 <= kernel.dilation <= (150 - 1) / (taps - 1)
        assert 1 <= len(kernel.channels) <= 4 and len(set(kernel.channels)) == len(kernel.channels)


def test_features_are_deterministic_and_batch_independent():
    x = np.random.default_rng(1).normal(size=(9, 60, 2))
    rocket = get_feature_extractor("ts-rocket")
    whole = rocket(n_kernels=20).extract(x)
    parts = np.concatenate([rocket(n_kernels=20).extract(x[i : i + 2]) for i in range(0, 9, 2)])
    assert whole.shape == (9, 40)
    np.testing.assert_array_equal(whole, parts)
    ppv = whole[:, 0::2]
    assert ((ppv >= 0) & (ppv <= 1)).all()
    assert not np.array_equal(whole, rocket(n_kernels=20, seed=1).extract(x))


def test_short_series_are_rejected():
    with pytest.raises(ValidationError, match="at least 11 timesteps"):
        get_feature_extractor("ts-rocket")().extract(np.zeros((2, 10, 1)))
