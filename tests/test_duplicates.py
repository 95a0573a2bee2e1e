"""probekit.duplicates: near-duplicate groups equal those of a brute-force pairwise search,
bit-exact collapse is the rtol=0 case, tolerance relative to the scale, the ratio warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from probekit.duplicates import (
    collapse_duplicates,
    distance_scale,
    find_duplicates,
    ratios_near_one,
)
from probekit.errors import DataWarning


def brute_groups(x, tol):
    """Connected components of the pairs within ``tol`` (all pairs), first row of each."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    d = np.sqrt(((flat[:, None] - flat[None]) ** 2).sum(-1))
    _, labels = connected_components(d <= tol, directed=False)
    first = {lab: i for i, lab in reversed(list(enumerate(labels)))}
    return np.array(sorted(first.values())), labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(60, 12))
    pick = rng.integers(0, 60, 80)
    x = np.concatenate([base, base[pick] + 1e-9 * rng.normal(size=(80, 12)), base[:7]])
    x = x[rng.permutation(len(x))]
    found = find_duplicates(x)
    kept, labels = brute_groups(x, found.tolerance)
    np.testing.assert_array_equal(found.kept, kept)
    # rows share a group exactly when brute force says so
    same = found.group[:, None] == found.group[None]
    np.testing.assert_array_equal(same, labels[:, None] == labels[None])
    assert found.n_exact + found.n_near == len(x) - len(kept) and found.n_exact >= 7


def test_tolerance_is_relative_to_the_distance_scale():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 8))
    x = np.concatenate([x, x[:5] + 1e-7])
    for scale in (1e-3, 1.0, 1e4):
        found = find_duplicates(x * scale)
        assert found.n_near == 5
        assert found.scale == pytest.approx(distance_scale(x) * scale, rel=1e-12)
    assert find_duplicates(x, rtol=0.0).n_collapsed == 0  # bit-exact only
    assert find_duplicates(x, rtol=1e-9).n_collapsed == 0


def test_distance_scale_is_rms_pairwise_distance():
    x = np.random.default_rng(4).normal(size=(40, 5))
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    assert distance_scale(x) == pytest.approx(np.sqrt(d2.sum() / (40 * 39) * 39 / 40), rel=1e-12)


def test_collapse_warns_once_with_counts():
    x = np.array([[0.0, 1.0], [5.0, 2.0], [0.0, 1.0], [5.0, 2.0 + 1e-12], [9.0, 9.0]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unique, kept = collapse_duplicates(x, who="t")
    assert len(caught) == 1 and issubclass(caught[0].category, DataWarning)
    assert "1 exact duplicate" in str(caught[0].message)
    assert "1 near-duplicate" in str(caught[0].message)
    assert kept.tolist() == [0, 1, 4]
    np.testing.assert_array_equal(unique, x[[0, 1, 4]])


def test_ratio_warning():
    assert ratios_near_one(np.ones(10), who="p") is not None
    assert ratios_near_one(np.r_[np.ones(4), np.full(6, 0.5)], who="p") is None
    assert ratios_near_one(np.full(10, 1 - 1e-7), who="p") is not None
