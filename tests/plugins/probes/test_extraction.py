"""extraction: the largest clique against a brute force over subsets, the tiled distance
against a loop, planted extraction (a prompt whose generations collapse onto a training image)
against fresh and self-consistent-but-novel prompts, conformance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from probekit_plugins.probes.extraction import max_clique, tiled_distance, to_tiles

from probekit import get_probe
from probekit.errors import NotPreparedError
from probekit.testing import check_measure


def brute_force_clique_size(adj: np.ndarray) -> int:
    n = len(adj)
    for size in range(n, 0, -1):
        for subset in itertools.combinations(range(n), size):
            if all(adj[i, j] for i, j in itertools.combinations(subset, 2)):
                return size
    return 0


@pytest.mark.parametrize("density", [0.2, 0.5, 0.8])
def test_max_clique_matches_brute_force(density):
    rng = np.random.default_rng(int(density * 10))
    for trial in range(25):
        n = int(rng.integers(1, 11))
        upper = np.triu(rng.uniform(size=(n, n)) < density, 1)
        adj = upper | upper.T
        clique = max_clique(adj)
        assert len(clique) == brute_force_clique_size(adj), (trial, adj.astype(int))
        assert all(adj[i, j] for i, j in itertools.combinations(clique, 2))
        assert clique == sorted(clique) and max_clique(adj) == clique  # deterministic


def test_tiled_distance_is_the_largest_tile_rms():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(3, 2, 9, 10))
    b = rng.uniform(size=(4, 2, 9, 10))
    d = tiled_distance(to_tiles(a, 3), to_tiles(b, 3))
    rows = np.array_split(np.arange(9), 3)
    cols = np.array_split(np.arange(10), 3)
    for i in range(3):
        for j in range(4):
            rms = [np.sqrt(((a[i][:, r][:, :, c] - b[j][:, r][:, :, c]) ** 2).mean())
                   for r in rows for c in cols]
            assert d[i, j] == pytest.approx(max(rms), rel=1e-10)
    # a change confined to one tile is not averaged away
    c = a.copy()
    c[0, :, :3, :4] += 0.5  # exactly the first tile (rows 0-2, columns 0-3)
    local = tiled_distance(to_tiles(a[:1], 3), to_tiles(c[:1], 3))[0, 0]
    assert local == pytest.approx(0.5, rel=1e-9)
    assert np.sqrt(((a[0] - c[0]) ** 2).mean()) < 0.2  # plain RMS would dilute it


def planted(seed=0, n_gen=12):
    """8 training images; prompt A: 12 near-copies of training image 3; prompt B: 12
    near-identical generations of one image no training item resembles; prompt C: fresh;
    prompt D: half near-copies of image 5 (a clique of 6 < 10)."""
    rng = np.random.default_rng(seed)
    train = rng.uniform(0, 1, (8, 1, 16, 16))
    novel = rng.uniform(0, 1, (1, 16, 16))

    def jitter(x):
        return np.clip(x + 0.02 * rng.normal(size=x.shape), 0, 1)

    gens = ([jitter(train[3]) for _ in range(n_gen)] + [jitter(novel) for _ in range(n_gen)]
            + [rng.uniform(0, 1, (1, 16, 16)) for _ in range(n_gen)]
            + [jitter(train[5]) if k % 2 == 0 else rng.uniform(0, 1, (1, 16, 16))
               for k in range(n_gen)])
    conds = [p for p in "ABCD" for _ in range(n_gen)]
    return train, np.stack(gens), conds


def test_planted_extraction():
    train, gens, conds = planted()
    result = get_probe("extraction")().prepare(train).evaluate(gens, conditions=conds)
    assert result.values["n_prompts"] == 4 and result.values["n_extracted"] == 1
    assert result.value == 0.25
    size = result.per_sample["clique_size"]
    assert size[:12].tolist() == [12] * 12 and size[24] <= 1 and size[36] == 6
    assert result.per_sample["in_clique"].tolist() == [True] * 12 + [False] * 36
    assert result.per_sample["matched_train_index"][:12].tolist() == [3] * 12
    assert (result.per_sample["nn_index"][:12] == 3).all()
    # without the training match, the novel but self-consistent prompt B counts too
    free = get_probe("extraction")(require_training_match=False).prepare(train)
    assert free.evaluate(gens, conditions=conds).values["n_extracted"] == 2
    # a smaller K makes prompt D (6 copies) extracted as well
    small = get_probe("extraction")(min_clique=6).prepare(train)
    assert small.evaluate(gens, conditions=conds).values["n_extracted"] == 2


def test_value_range_and_warning():
    train, gens, conds = planted()
    a = get_probe("extraction")().prepare(train).evaluate(gens, conditions=conds)
    b = get_probe("extraction")(value_range="-1,1").prepare(train * 2 - 1).evaluate(
        gens * 2 - 1, conditions=conds)
    np.testing.assert_allclose(a.per_sample["nn_distance"], b.per_sample["nn_distance"],
                               rtol=1e-9)
    few = get_probe("extraction")().prepare(train).evaluate(gens[::2], conditions=conds[::2])
    assert any("fewer generations" in w for w in few.warnings)
    with pytest.raises(NotPreparedError):
        get_probe("extraction")().evaluate(gens)


def test_conformance():
    check_measure("extraction")
