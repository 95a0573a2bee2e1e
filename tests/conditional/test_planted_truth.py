"""Planted truth, not mocks: a latent text-to-image model really fine-tuned (fully and with a
LoRA) on 8 captioned digits until it copies them. Expectations (issue 14): the training
captions' copy fraction is near 0 at the first checkpoints and near 1 at the last, unseen
captions stay near 0 at every checkpoint, the noise-magnitude detector separates training
captions from unseen ones late in training (AUC >= 0.9), and tau_mem falls between the first
and the last checkpoint. Copies are judged in pixel space at a threshold calibrated on held-out
digits (the 99th percentile of their nearest-training cosine similarity: fresh real digits are,
by construction, not copies)."""

from __future__ import annotations

import numpy as np
import pytest

from probekit import get_probe
from probekit.timescales import estimate_tau_mem

pytestmark = pytest.mark.slow

METHODS = ("full", "lora")


def evaluated_steps(runs, method):
    """The base, an early checkpoint (200) and every checkpoint from 800 on (100 and 400 are
    skipped to keep the suite fast; the benchmark evaluates them all)."""
    return [s for s in runs.steps_of(method) if s in (0, 200) or s >= 800]


@pytest.fixture(scope="module")
def copy_probe(runs):
    probe = get_probe("prompt-copy")(features="pixels", threshold=1.0)
    probe.prepare(runs.train, holdout=runs.holdout, train_conditions=runs.captions)
    threshold = float(np.quantile(probe.holdout_similarity_, 0.99))
    probe = get_probe("prompt-copy")(features="pixels", threshold=threshold)
    return probe.prepare(runs.train, holdout=runs.holdout, train_conditions=runs.captions)


def copy_rates(copy_probe, evaluations, method, step):
    result = copy_probe.evaluate(evaluations.images(method, step),
                                 conditions=evaluations.conditions)
    train = evaluations.is_training
    own = result.per_sample["own_similarity"][train] > copy_probe.settings.threshold
    unseen = result.per_sample["copied"][~train]
    return result, float(own.mean()), float(unseen.mean())


@pytest.mark.parametrize("method", METHODS)
def test_training_captions_copy_late_and_unseen_captions_never(copy_probe, evaluations, runs,
                                                               method):
    steps = evaluated_steps(runs, method)
    rates = {step: copy_rates(copy_probe, evaluations, method, step) for step in steps}
    last = steps[-1]
    own = {step: r[1] for step, r in rates.items()}
    unseen = {step: r[2] for step, r in rates.items()}
    assert own[0] <= 0.1 and own[200] <= 0.1, own  # the base and an early checkpoint
    assert own[last] >= 0.9, own
    assert max(unseen.values()) <= 0.1, unseen  # at every checkpoint
    result = rates[last][0]
    assert result.values["holdout_f_copy"] <= 0.011  # the threshold: 1% of fresh digits
    assert len(set(result.per_sample["top_items"].tolist()) & set(range(8))) >= 7


@pytest.mark.parametrize("method", METHODS)
def test_tau_mem_lies_between_the_first_and_last_checkpoint(copy_probe, evaluations, runs,
                                                            method):
    steps = evaluated_steps(runs, method)  # 0 (the base) ... the last checkpoint
    curve, low, high = [], [], []
    for step in steps:
        result, _, _ = copy_rates(copy_probe, evaluations, method, step)
        curve.append(result.value)
        low.append(result.ci["f_copy"][0])
        high.append(result.ci["f_copy"][1])
    tau = estimate_tau_mem(steps, curve, ci_low=low, ci_high=high)  # default mem_level 1%
    assert tau.estimate.status == "crossed", (tau.estimate, curve)
    assert steps[0] < tau.estimate.step <= steps[-1], (tau.estimate, curve)


@pytest.mark.parametrize("method", METHODS)
def test_noise_magnitude_separates_training_captions_late(evaluations, runs, method):
    probe = get_probe("noise-magnitude")(n_steps=5)
    probe.prepare(runs.train, train_conditions=runs.captions)
    late = probe.evaluate(model=evaluations.handle(method, runs.steps_of(method)[-1]),
                          conditions=evaluations.conditions)
    assert late.values["auc"] >= 0.9, late.values
    early = probe.evaluate(model=evaluations.handle(method, runs.steps_of(method)[0]),
                           conditions=evaluations.conditions)
    assert early.values["auc"] < late.values["auc"], (early.values, late.values)


def test_extraction_of_training_captions_late(runs, evaluations):
    """Carlini et al.'s criterion is stricter than the copy search: a clique of 10 of 12
    generations must all lie within tiled l2 0.15 (4 x 4 tiles) of each other and of one
    training image. At the last checkpoint only some training prompts meet it (their copies
    deviate locally); every prompt that does is a training caption re-emitting its own image,
    none at the first checkpoint, and no unseen caption ever."""
    conditions = [c for c in (*runs.captions, *runs.unseen_captions[:4]) for _ in range(12)]
    probe = get_probe("extraction")(min_clique=10).prepare(runs.train,
                                                           train_conditions=runs.captions)
    steps = runs.steps_of("full")
    out = {}
    for step in (steps[0], steps[-1]):
        images = evaluations.handle("full", step).generate(len(conditions), seed=1,
                                                           conditions=conditions)
        out[step] = probe.evaluate(images, conditions=conditions)
    first, last = out[steps[0]], out[steps[-1]]
    assert first.values["n_extracted"] == 0, first.values
    size = last.per_sample["clique_size"].reshape(-1, 12)[:, 0]
    matched = last.per_sample["matched_train_index"].reshape(-1, 12).max(axis=1)
    extracted = size >= 10
    assert extracted[:8].any(), size  # some training captions are extracted ...
    assert (matched[:8][extracted[:8]] == np.flatnonzero(extracted[:8])).all()  # their own
    assert not extracted[8:].any(), size  # ... unseen captions never
    assert size[:8].mean() > first.per_sample["clique_size"].reshape(-1, 12)[:8, 0].mean()
