"""fd: planted Gaussians give the closed-form distance; equal to numpy + pytorch-fid's formula
on the same features; any registered extractor; small-sample warning; reference state; CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from probekit_plugins.metrics.fd import FrechetDistance

from probekit import FeatureExtractor, get_metric, hookimpl, register_plugin, unregister_plugin
from probekit.cli import main
from probekit.errors import UnknownNameError, ValidationError
from probekit.testing import check_measure


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrix products: one BLAS thread is faster on the shared 2-core machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def test_planted_gaussians_give_the_closed_form():
    # N(0, diag(a)) vs N(m, diag(b)): FD = |m|² + Σ (√a - √b)²
    rng = np.random.default_rng(0)
    a, b, m = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 1.0]), np.array([1.0, 0.0, -2.0])
    reference = rng.normal(size=(40000, 3)) * np.sqrt(a)
    samples = rng.normal(size=(40000, 3)) * np.sqrt(b) + m
    want = m @ m + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    result = FrechetDistance().prepare(reference).evaluate(samples)
    assert result.value == pytest.approx(want, rel=0.03)
    assert result.values["mean_term"] + result.values["covariance_term"] == pytest.approx(
        result.value
    )
    assert result.warnings == ()


def test_equals_pytorch_fid_formula_on_the_same_features():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(1)
    reference = rng.normal(size=(300, 1, 4, 4))
    samples = rng.normal(size=(250, 1, 4, 4)) * 1.3 + 0.2
    r, s = reference.reshape(300, -1), samples.reshape(250, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy's sqrtm `disp`
        want = calculate_frechet_distance(
            r.mean(0), np.cov(r, rowvar=False), s.mean(0), np.cov(s, rowvar=False)
        )
    got = FrechetDistance(batch_size=7).prepare(reference).evaluate(samples).value
    assert got == pytest.approx(want, rel=1e-6)  # float32 inputs, float64 statistics


def test_identical_sets_give_zero():
    x = np.random.default_rng(2).normal(size=(80, 1, 3, 3))
    assert FrechetDistance().prepare(x).evaluate(x).value == pytest.approx(0.0, abs=1e-9)


def test_fewer_samples_than_dimensions_warns_in_the_result():
    rng = np.random.default_rng(3)
    result = FrechetDistance().prepare(rng.normal(size=(20, 1, 8, 8))).evaluate(
        rng.normal(size=(30, 1, 8, 8))
    )
    assert len(result.warnings) == 1
    assert "20 reference samples for 64 feature dimensions" in result.warnings[0]


class Halves(FeatureExtractor):
    """Test extractor: mean of each half of the flattened sample (2 features)."""

    name = "halves"
    description = "test"

    def extract(self, x):
        flat = np.asarray(x).reshape(len(x), -1)
        h = flat.shape[1] // 2
        return np.stack([flat[:, :h].mean(1), flat[:, h:].mean(1)], axis=1)


class HalvesPlugin:
    @hookimpl
    def register_feature_extractors(self):
        return [Halves]


def test_any_registered_feature_extractor(fresh_host):
    register_plugin(HalvesPlugin(), name="halves-plugin")
    try:
        rng = np.random.default_rng(4)
        reference = rng.normal(size=(500, 1, 2, 2))
        samples = rng.normal(size=(500, 1, 2, 2)) + np.array([0, 0, 1, 1]).reshape(1, 1, 2, 2)
        result = get_metric("fd")(features="halves").prepare(reference).evaluate(samples)
        assert result.provenance.feature_space == "halves"
        assert result.provenance.extra["n_features"] == 2
        assert result.values["mean_term"] == pytest.approx(1.0, abs=0.15)  # second half +1
    finally:
        unregister_plugin("halves-plugin")
    with pytest.raises(UnknownNameError, match="halves"):
        FrechetDistance(features="halves")


def test_reference_state_round_trip_and_feature_dim_check():
    rng = np.random.default_rng(5)
    reference, samples = rng.normal(size=(50, 1, 3, 3)), rng.normal(size=(40, 1, 3, 3)) + 1
    fd = FrechetDistance().prepare(reference)
    restored = FrechetDistance().load_reference_state(fd.reference_state())
    assert restored.evaluate(samples).value == fd.evaluate(samples).value
    with pytest.raises(ValidationError, match="9 features"):
        fd.evaluate(rng.normal(size=(40, 1, 4, 4)))
    with pytest.raises(ValidationError, match="feature_settings"):
        FrechetDistance(feature_settings="{not json")


def test_conformance():
    check_measure("fd")


def test_cli_metric_fd(tmp_path, capsys):
    rng = np.random.default_rng(6)
    np.save(tmp_path / "ref.npy", rng.normal(size=(60, 1, 3, 3)).astype(np.float32))
    np.save(tmp_path / "gen.npy", (rng.normal(size=(60, 1, 3, 3)) + 1).astype(np.float32))
    out = tmp_path / "out.json"
    args = ["metric", "fd", "--reference", str(tmp_path / "ref.npy"), "--samples",
            str(tmp_path / "gen.npy"), "--json", str(out)]
    assert main(args) == 0
    saved = json.loads(out.read_text())
    assert saved["headline"] == "fd" and saved["fd"] > 5  # 9 dims shifted by 1
    assert "fd: fd = " in capsys.readouterr().out
    # bad input: one line on stderr, exit 2, no output file
    out.unlink()
    np.save(tmp_path / "bad.npy", np.full((60, 1, 3, 3), np.nan, np.float32))
    bad = [*args[:5], str(tmp_path / "bad.npy"), "--json", str(out)]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "must be finite" in err[0]
    assert not out.exists()
    assert main([*args, "--set", "no_such=1"]) == 2
    assert "unknown option 'no_such'" in capsys.readouterr().err


def test_usable_by_the_evaluator_with_a_cached_reference(tmp_path, monkeypatch):
    from probekit.evaluator import SeriesEvaluator
    from probekit.testing import ToyModelHandle

    rng = np.random.default_rng(7)
    train = rng.normal(size=(40, 1, 3, 3)).astype(np.float32)
    holdout = rng.normal(size=(50, 1, 3, 3)).astype(np.float32)
    samples = (rng.normal(size=(30, 1, 3, 3)) + 1).astype(np.float32)

    def run(out):
        ev = SeriesEvaluator(out, train=train, holdout=holdout, metrics=["fd", "kid", "prdc"],
                             n_samples=30, quiet=True, reports=False,
                             cache_dir=tmp_path / "cache")
        return {r.measure: r.value for r in ev.evaluate_checkpoint(0, ToyModelHandle(samples))}

    first = run(tmp_path / "run1")
    direct = FrechetDistance().prepare(holdout).evaluate(samples).value
    assert first["fd"] == pytest.approx(direct, rel=1e-12)

    def no_prepare(self, reference):
        raise AssertionError("prepared again although the reference state is cached")

    for name in ("fd", "kid", "prdc"):
        monkeypatch.setattr(type(get_metric(name)()), "prepare", no_prepare)
    assert run(tmp_path / "run2") == pytest.approx(first, rel=1e-12)
