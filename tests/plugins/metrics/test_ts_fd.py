"""ts-fd: parity with the textbook formula (scipy sqrtm), planted ground truth, validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from probekit import get_dataset, get_feature_extractor, get_generator, get_metric
from probekit.errors import NotPreparedError, ValidationError
from probekit.stats import frechet_distance
from probekit.testing import check_measure


@pytest.fixture(scope="module")
def sines():
    splits = get_dataset("sines")(n_train=200, n_holdout=200).load()
    return splits.train, splits.holdout


def test_matches_the_textbook_formula(sines):
    train, holdout = sines
    holdout = holdout[:200]
    samples = get_generator("var")().fit(train).sample(150, seed=0)
    result = get_metric("ts-fd")(feature_settings={"n_kernels": 40}).prepare(holdout)
    result = result.evaluate(samples)
    rocket = get_feature_extractor("ts-rocket")(n_kernels=40)
    fr, fg = rocket.extract(holdout), rocket.extract(samples)
    mr, mg = fr.mean(axis=0), fg.mean(axis=0)
    cr, cg = np.cov(fr, rowvar=False), np.cov(fg, rowvar=False)
    covmean = scipy.linalg.sqrtm(cr @ cg).real
    expected = np.sum((mr - mg) ** 2) + np.trace(cr + cg - 2 * covmean)
    assert result.value == pytest.approx(expected, rel=1e-6)
    assert result.values["mean_term"] == pytest.approx(np.sum((mr - mg) ** 2), rel=1e-9)
    assert result.provenance.feature_space == "ts-rocket"


def permutation_null(extractor, real, other, n_permutations=9, seed=0):
    """FDs between random re-splits of real ∪ other (the values under "same distribution")."""
    feats = extractor.extract(np.concatenate([real, other]))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_permutations):
        order = rng.permutation(len(feats))
        a, b = feats[order[: len(real)]], feats[order[len(real) :]]
        values.append(frechet_distance(a.mean(0), np.cov(a, rowvar=False),
                                       b.mean(0), np.cov(b, rowvar=False)))
    return np.array(values)


def test_planted_ground_truth(sines):
    """A permutation test at level 0.1: fresh draws of the process are not more distant than
    random re-splits; clearly different generators are farther than every re-split."""
    train, holdout = sines
    train, holdout = train[:200], holdout[:200]
    metric = get_metric("ts-fd")(feature_settings={"n_kernels": 16}).prepare(holdout)
    assert metric.evaluate(holdout).value == pytest.approx(0.0, abs=1e-8)
    candidates = {
        "fresh": train,
        "noise": get_generator("gaussian-noise")().fit(train).sample(200, 0),
        "shifted": train + 0.5,
    }
    for name, candidate in candidates.items():
        value = metric.evaluate(candidate).value
        null = permutation_null(metric.extractor, holdout, candidate)
        if name == "fresh":
            assert value < null.max(), name
        else:
            assert value > null.max(), name


def test_validation(sines):
    train, holdout = sines
    metric = get_metric("ts-fd")()
    with pytest.raises(NotPreparedError):
        metric.evaluate(train)
    metric.prepare(holdout)
    with pytest.raises(ValidationError, match="n_timesteps, n_channels"):
        metric.evaluate(train[:, :50])
    with pytest.raises(ValidationError, match="at least 2 series"):
        metric.evaluate(train[:1])
    with pytest.raises(ValidationError, match="feature_settings"):
        get_metric("ts-fd")(feature_settings="{not json")
    small = get_metric("ts-fd")(feature_settings='{"n_kernels": 8}').prepare(holdout)
    assert small.evaluate(train).provenance.extra["n_features"] == 16


def test_conformance():
    check_measure("ts-fd")
