"""prompt-copy: planted copies per prompt, parity with a brute-force cosine search, the
own-prompt comparison, the most-copied items, the held-out false-positive rate, conformance."""

from __future__ import annotations

import numpy as np
import pytest

from probekit import get_probe
from probekit.errors import NotPreparedError, ValidationError
from probekit.testing import check_measure


def planted(seed=0):
    """12 training 'images' with a caption each; 5 prompts x 6 generations: prompt 0 copies
    its own image, prompt 1 copies training item 7 (another prompt's), prompt 2 copies its own
    image in half of the generations, prompts 3 and 4 (unseen captions) are fresh."""
    rng = np.random.default_rng(seed)
    train = rng.uniform(0, 1, (12, 1, 6, 6))
    captions = [f"caption {i}" for i in range(12)]

    def near(i):
        return train[i] + 0.01 * rng.normal(size=train[i].shape)

    gens, conds = [], []
    for _ in range(6):
        gens.append(near(0))
        conds.append("caption 0")
    for _ in range(6):
        gens.append(near(7))
        conds.append("caption 1")
    for k in range(6):
        gens.append(near(2) if k % 2 == 0 else rng.uniform(0, 1, (1, 6, 6)))
        conds.append("caption 2")
    for p in (3, 4):
        for _ in range(6):
            gens.append(rng.uniform(0, 1, (1, 6, 6)))
            conds.append(f"unseen {p}")
    return train, captions, np.stack(gens), conds


def probe(**settings):
    return get_probe("prompt-copy")(**{"features": "pixels", "threshold": 0.95, **settings})


def test_planted_copies_per_prompt_and_overall():
    train, captions, gens, conds = planted()
    result = probe().prepare(train, train_conditions=captions).evaluate(gens, conditions=conds)
    copied = result.per_sample["copied"]
    assert copied.tolist() == [True] * 12 + [True, False] * 3 + [False] * 12
    assert result.value == pytest.approx(15 / 30)
    assert result.values["n_prompts"] == 5 and result.values["n_prompts_with_copy"] == 3
    assert result.values["max_prompt_f_copy"] == 1.0
    # own prompt: prompt 0 copies its own image, prompt 1 copies another's (item 7)
    own = result.per_sample["own_similarity"]
    assert (own[:6] > 0.95).all() and (own[6:12] < 0.95).all() and np.isnan(own[18:]).all()
    assert result.values["f_copy_own"] == pytest.approx(9 / 18)
    np.testing.assert_array_equal(result.per_sample["top_items"], [0, 7, 2])
    np.testing.assert_array_equal(result.per_sample["top_item_counts"], [6, 6, 3])
    low, high = result.ci["f_copy"]
    assert low <= 0.5 <= high and high - low > 0.2  # prompts, not generations, resampled
    assert list(result.per_sample["condition"][:2]) == ["caption 0", "caption 0"]


def test_similarity_and_nearest_item_match_brute_force():
    rng = np.random.default_rng(3)
    train = rng.normal(size=(40, 2, 3, 3))
    gens = rng.normal(size=(25, 2, 3, 3))
    result = probe(chunk_size=7, batch_size=4).prepare(train).evaluate(gens)
    a = gens.reshape(25, -1)
    b = train.reshape(40, -1)
    cos = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (
        b / np.linalg.norm(b, axis=1, keepdims=True)).T
    np.testing.assert_allclose(result.per_sample["similarity"], cos.max(1), atol=1e-12)
    np.testing.assert_array_equal(result.per_sample["nn_index"], cos.argmax(1))


def test_fresh_samples_do_not_copy_and_holdout_rate():
    rng = np.random.default_rng(1)
    train = rng.uniform(0, 1, (50, 1, 6, 6))
    holdout = rng.uniform(0, 1, (50, 1, 6, 6))
    fresh = rng.uniform(0, 1, (60, 1, 6, 6))
    result = probe().prepare(train, holdout=holdout).evaluate(fresh)
    assert result.value == 0.0 and result.values["holdout_f_copy"] == 0.0
    lax = probe(threshold=0.0).prepare(train, holdout=holdout).evaluate(fresh)
    assert lax.value == 1.0 and lax.values["holdout_f_copy"] == 1.0
    assert "f_copy_own" not in result.values and "condition" not in result.per_sample


def test_errors():
    train, captions, gens, _ = planted()
    with pytest.raises(NotPreparedError):
        probe().evaluate(gens)
    with pytest.raises(ValidationError, match="one condition per item"):
        probe().prepare(train, train_conditions=captions[:3])
    with pytest.raises(ValidationError, match="shape"):
        probe().prepare(train).evaluate(gens[:, :, :4, :4])


def test_reference_state_round_trip():
    train, captions, gens, conds = planted()
    prepared = probe().prepare(train, holdout=train[:4], train_conditions=captions)
    restored = probe().load_reference_state(prepared.reference_state())
    a = prepared.evaluate(gens, conditions=conds)
    b = restored.evaluate(gens, conditions=conds)
    assert a.values == b.values


def test_conformance():
    check_measure("prompt-copy", settings={"features": "pixels"})
