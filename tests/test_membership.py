"""Membership-inference numerics: AUC, TPR at low FPR, bootstrap CI, calibrated accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from probekit.membership import (
    auc_bootstrap_ci,
    calibrated_accuracy,
    roc_auc,
    tpr_at_fpr,
)


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    pos = rng.normal(1.0, 1.0, 400)
    neg = rng.normal(0.0, 1.0, 1500)
    neg[:10] = pos[:10]  # ties across classes
    return pos, neg


def test_auc_matches_sklearn(scores):
    pos, neg = scores
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    assert roc_auc(pos, neg) == pytest.approx(roc_auc_score(labels, np.r_[pos, neg]), abs=1e-12)


@pytest.mark.parametrize("fpr", [0.0, 0.001, 0.01, 0.1, 0.5])
def test_tpr_at_fpr_matches_the_roc_curve(scores, fpr):
    pos, neg = scores
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    roc_fpr, roc_tpr, _ = roc_curve(labels, np.r_[pos, neg], drop_intermediate=False)
    want = roc_tpr[roc_fpr <= fpr + 1e-12].max()
    assert tpr_at_fpr(pos, neg, fpr) == pytest.approx(want)


def test_bootstrap_ci_brackets_and_is_seeded(scores):
    pos, neg = scores
    low, high = auc_bootstrap_ci(pos, neg, seed=3)
    assert low < roc_auc(pos, neg) < high
    assert (low, high) == auc_bootstrap_ci(pos, neg, seed=3)
    # width close to the normal approximation of the AUC's standard error (Hanley-McNeil)
    auc = roc_auc(pos, neg)
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    se = np.sqrt((auc * (1 - auc) + (len(pos) - 1) * (q1 - auc**2)
                  + (len(neg) - 1) * (q2 - auc**2)) / (len(pos) * len(neg)))
    assert (high - low) == pytest.approx(2 * 1.96 * se, rel=0.25)


def test_calibrated_threshold_does_not_overfit():
    """With no signal, a threshold fitted on the evaluated scores looks better than chance;
    the calibrated one, fitted on a disjoint split, does not."""
    rng = np.random.default_rng(0)
    calibrated, in_sample = [], []
    for seed in range(200):
        pos, neg = rng.normal(size=40), rng.normal(size=40)
        calibrated.append(calibrated_accuracy(pos, neg, calibration_fraction=0.5, seed=seed)[0])
        grid = np.r_[pos, neg]
        in_sample.append(max(0.5 * ((pos > t).mean() + (neg <= t).mean()) for t in grid))
    assert np.mean(in_sample) > 0.54  # optimistic by ~0.06 with 40 + 40 samples
    assert abs(np.mean(calibrated) - 0.5) < 0.02


def test_calibrated_accuracy_with_signal():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(2.0, 1.0, 2000), rng.normal(0.0, 1.0, 2000)
    acc, threshold = calibrated_accuracy(pos, neg, calibration_fraction=0.5, seed=0)
    # optimum for two unit Gaussians 2 apart: threshold 1, accuracy Phi(1) = 0.841
    assert threshold == pytest.approx(1.0, abs=0.2)
    assert acc == pytest.approx(0.841, abs=0.02)


def test_roc_points_match_sklearn():
    from probekit._plotting import roc_points

    rng = np.random.default_rng(5)
    score = np.r_[rng.normal(1, 1, 300), rng.normal(0, 1, 700)]  # no ties
    labels = np.r_[np.ones(300, bool), np.zeros(700, bool)]
    fpr, tpr = roc_points(labels, score)
    want_fpr, want_tpr, _ = roc_curve(labels, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, want_fpr)
    np.testing.assert_allclose(tpr, want_tpr)


def test_report_shows_roc_curves_per_checkpoint(tmp_path):
    """A run evaluated with an attack gets plots/roc.png and a section in report.html."""
    from probekit.evaluator import SeriesEvaluator
    from probekit.testing import MemorizingModelHandle, ToyModelHandle

    rng = np.random.default_rng(0)
    train, holdout = rng.normal(size=(20, 6)), rng.normal(size=(20, 6))
    ev = SeriesEvaluator(tmp_path / "run", train=train, holdout=holdout,
                         probes=["nn-ratio", "mia-loss"], n_samples=20, quiet=True)
    ev.evaluate_checkpoint(0, ToyModelHandle(holdout))
    ev.evaluate_checkpoint(100, MemorizingModelHandle(train, step=100))
    ev.finish()
    assert (tmp_path / "run" / "plots" / "roc.png").stat().st_size > 1000
    assert "Membership inference" in (tmp_path / "run" / "report.html").read_text()
