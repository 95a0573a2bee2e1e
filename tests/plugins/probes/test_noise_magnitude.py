"""noise-magnitude: scores are the guidance trace averaged over steps and generations; AUC and
the flagged fraction against brute-force references; a handle whose memorized captions have a
large conditional noise magnitude is flagged, one where seen and unseen captions behave alike
is not. (The trained planted truth is in tests/conditional/.)"""

from __future__ import annotations

import numpy as np
import pytest

from probekit import get_probe
from probekit.conditions import ConditionalModelHandle, sample_seeds
from probekit.errors import NotPreparedError, ValidationError
from probekit.testing import ToyModelHandle, check_measure

TRAIN = [f"train {i}" for i in range(20)]
UNSEEN = [f"unseen {i}" for i in range(20)]


class Handle(ConditionalModelHandle):
    """Guidance norms ``base + gap * [caption memorized] + jitter`` per (seed, caption,
    index), step by step (deterministic)."""

    step = 0

    def __init__(self, memorized=(), gap=2.0, jitter=1.0):
        self.memorized, self.gap, self.jitter = set(memorized), gap, jitter
        self.calls = []

    def generate(self, n, seed, *, conditions=None):
        return np.zeros((n, 1, 4, 4))

    def guidance_trace(self, seed, conditions, n_steps):
        self.calls.append((seed, tuple(conditions), n_steps))
        u = np.array([(s % 10_000) / 10_000 for s in sample_seeds(seed, conditions)])
        level = np.array([self.gap * (c in self.memorized) for c in conditions])
        return 1.0 + level[:, None] + self.jitter * u[:, None] * (1 + np.arange(n_steps))


def prepared(**settings):
    train = np.zeros((len(TRAIN), 1, 4, 4))
    return get_probe("noise-magnitude")(**settings).prepare(train, train_conditions=TRAIN)


def prompts(per_prompt=3):
    return [c for c in TRAIN + UNSEEN for _ in range(per_prompt)]


def test_memorized_captions_are_flagged_and_fresh_ones_are_not():
    conds = prompts()
    late = prepared().evaluate(model=Handle(memorized=TRAIN), conditions=conds)
    assert late.values["auc"] == 1.0 and late.value == 1.0
    low, high = late.ci["auc"]
    assert low <= 1.0 <= high
    early = prepared().evaluate(model=Handle(memorized=()), conditions=conds)
    assert early.value <= 0.2 and early.values["auc"] < 0.8
    assert early.ci["f_flagged"][0] <= early.value <= early.ci["f_flagged"][1]
    assert any("cannot resolve a false-positive rate" in w for w in early.warnings)


def test_scores_auc_and_flagged_fraction_match_brute_force():
    from sklearn.metrics import roc_auc_score

    conds = prompts(per_prompt=2)
    handle = Handle(memorized=TRAIN[:10], gap=0.5)
    result = prepared(n_steps=3, seed=4).evaluate(model=handle, conditions=conds)
    assert handle.calls == [(4, tuple(conds), 3)]
    trace = handle.guidance_trace(4, conds, 3)
    np.testing.assert_allclose(result.per_sample["score"], trace.mean(1), rtol=1e-12)
    per_prompt = {c: trace.mean(1)[[i for i, d in enumerate(conds) if d == c]].mean()
                  for c in TRAIN + UNSEEN}
    seen = np.array([per_prompt[c] for c in TRAIN])
    unseen = np.array([per_prompt[c] for c in UNSEEN])
    labels = [1] * 20 + [0] * 20
    assert result.values["auc"] == pytest.approx(roc_auc_score(labels, np.r_[seen, unseen]))
    # calibrated threshold at 1% FPR with 20 unseen prompts: above every unseen score
    assert result.value == pytest.approx((seen > unseen.max()).mean())
    assert result.values["threshold"] == unseen.max()
    fixed = prepared(n_steps=3, seed=4, threshold=2.0).evaluate(model=handle, conditions=conds)
    assert fixed.value == pytest.approx((seen > 2.0).mean())
    assert result.per_sample["training_prompt"].tolist() == [c in TRAIN for c in conds]


def test_errors_are_actionable():
    conds = prompts()
    with pytest.raises(NotPreparedError):
        get_probe("noise-magnitude")().evaluate(model=Handle(), conditions=conds)
    with pytest.raises(ValidationError, match="train_conditions must give"):
        get_probe("noise-magnitude")().prepare(np.zeros((3, 1, 4, 4)))
    probe = prepared()
    with pytest.raises(ValidationError, match="conditional white-box handle"):
        probe.evaluate(model=ToyModelHandle(np.zeros((2, 1, 4, 4))), conditions=conds)
    with pytest.raises(ValidationError, match="conditions must list"):
        probe.evaluate(model=Handle())
    with pytest.raises(ValidationError, match="must include training captions"):
        probe.evaluate(model=Handle(), conditions=UNSEEN)
    with pytest.raises(ValidationError, match="unseen prompts to calibrate"):
        probe.evaluate(model=Handle(), conditions=TRAIN)
    only_seen = prepared(threshold=1.5).evaluate(model=Handle(TRAIN), conditions=TRAIN)
    assert only_seen.value == 1.0 and "auc" not in only_seen.values


def test_conformance():
    check_measure("noise-magnitude")
