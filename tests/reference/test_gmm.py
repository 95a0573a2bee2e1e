"""The Gaussian-mixture experiment: data, the exact-MMD metric, the residual MLP, the presets on
the shared training loop, and a smoke run of the sweep."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from probekit.cli import main
from probekit.errors import ValidationError
from probekit.reference import gmm
from probekit.reference.config import MLPConfig, RunConfig, preset
from probekit.reference.mlp import ScoreMLP
from probekit.registry import get_dataset, get_metric
from probekit.testing import check_measure


@pytest.fixture(autouse=True)
def _one_thread():
    """Single-threaded torch and BLAS: the networks here are small, and threads only contend."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


# -- data -------------------------------------------------------------------------------------


def test_mixture_samples_are_balanced_nested_and_have_the_right_moments():
    x = gmm.mixture_samples(20_000, seed=1)
    assert x.shape == (20_000, 8) and x.dtype == np.float32
    plus, minus = x[0::2], x[1::2]
    se = 1 / math.sqrt(len(plus))
    assert np.abs(plus.mean(0) - 1).max() < 5 * se
    assert np.abs(minus.mean(0) + 1).max() < 5 * se
    assert np.abs(np.cov(plus.T) - np.eye(8)).max() < 0.05
    assert np.array_equal(gmm.mixture_samples(64, seed=1), x[:64])  # nested training sets


def test_gmm_dataset_through_the_registry():
    splits = get_dataset("gmm")({"n_train": 64, "n_holdout": 100}).load()
    assert splits.train.shape == (64, 8) and splits.holdout.shape == (100, 8)
    other = get_dataset("gmm")({"n_train": 128, "n_holdout": 100}).load()
    assert np.array_equal(other.train[:64], splits.train)
    assert np.array_equal(other.holdout, splits.holdout)
    assert not np.isin(splits.holdout, splits.train).any()


# -- the metric -------------------------------------------------------------------------------


def _prepared(**settings):
    return get_metric("gmm-mmd")(settings).prepare(gmm.mixture_samples(10))


def test_closed_form_mixture_terms_match_monte_carlo():
    metric = _prepared()
    h2 = metric.bandwidth**2
    rng = np.random.default_rng(0)
    y = gmm.mixture_samples(400_000, seed=7)
    x = rng.normal(size=(5, 8)) * 2
    for xi, exact in zip(x, metric.mixture_kernel_mean(x), strict=True):
        k = np.exp(-((y - xi) ** 2).sum(1) / (2 * h2))
        assert abs(k.mean() - exact) < 5 * k.std() / math.sqrt(len(k))
    y2 = gmm.mixture_samples(400_000, seed=8)
    k = np.exp(-((y - y2[np.random.default_rng(1).permutation(len(y2))]) ** 2).sum(1)
               / (2 * h2))
    assert abs(k.mean() - metric.pp_) < 5 * k.std() / math.sqrt(len(k))


def test_mmd_is_zero_for_the_mixture_and_positive_for_a_shifted_one():
    metric = _prepared()
    rng = np.random.default_rng(0)

    def iid(m):  # i.i.d. draws (mixture_samples balances the components exactly)
        return rng.normal(size=(m, 8)) + rng.choice([-1.0, 1.0], size=(m, 1))

    values = [metric.evaluate(iid(300)).value for _ in range(30)]
    assert abs(np.mean(values)) < 4 * np.std(values) / math.sqrt(len(values))  # unbiased
    wide = metric.evaluate(gmm.mixture_samples(500, separation=1.6, seed=3))
    # brute force: V-statistic between the shifted samples and a large mixture sample
    x = gmm.mixture_samples(500, separation=1.6, seed=3).astype(np.float64)
    y = gmm.mixture_samples(3000, seed=11).astype(np.float64)
    h2 = metric.bandwidth**2

    def k(a, b):
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
        return np.exp(-np.maximum(sq, 0) / (2 * h2))

    kxx = k(x, x)
    brute = (kxx.sum() - np.trace(kxx)) / (500 * 499) - 2 * k(x, y).mean() + (
        (k(y, y).sum() - len(y)) / (len(y) * (len(y) - 1)))
    assert wide.value == pytest.approx(brute, abs=3e-3)
    assert wide.ci["mmd2"][0] > 0
    assert wide.values["fraction_positive_mode"] == pytest.approx(0.5, abs=0.01)


def test_mmd_conformance_and_errors():
    check_measure("gmm-mmd")
    metric = _prepared()
    with pytest.raises(ValidationError, match="must have 8 values each"):
        metric.evaluate(np.zeros((4, 3)))


# -- network and presets ------------------------------------------------------------------------


def test_score_mlp_shapes_time_dependence_and_size():
    cfg = MLPConfig(dim=8, width=32, blocks=3)
    torch.manual_seed(0)
    net = ScoreMLP(cfg)
    x = torch.randn(5, 8)
    a, b = net(x, torch.full((5,), 10)), net(x, torch.full((5,), 900))
    assert a.shape == (5, 8) and not torch.allclose(a, b)
    per_block = 2 * (32 * 32 + 32) + 2 * 32  # two linears and a LayerNorm
    expected = (8 * 32 + 32) + 3 * per_block + (32 * 8 + 8)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_presets_run_on_the_shared_training_loop(tmp_path):
    cfg = preset("gmm", n=256)
    assert cfg.mlp.width == 128 and cfg.train.optimizer == "sgd" and cfg.train.lr == 6e-3
    assert cfg.train.momentum == 0.95 and cfg.train.batch_size == 256  # full batch
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert preset("gmm", n=8, optimizer="adam").train.lr == 6e-4
    out = tmp_path / "run"
    code = main(["reference", "train", "--preset", "gmm-small", "--n", "16", "--steps", "100",
                 "--out", str(out), "--quiet"])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "gmm" and config["modality"] == "features"
    # the ddpm adapter loads the MLP checkpoint and samples vectors
    from probekit.registry import get_adapter
    from probekit.types import Checkpoint

    handle = get_adapter("ddpm")({"ddim_steps": 10}).load(
        Checkpoint(100, out / "ckpt-00000100.pt"))
    samples = handle.generate(6, seed=0)
    assert samples.shape == (6, 8) and np.isfinite(samples).all()


def test_sweep_smoke(tmp_path, capsys):
    """``probekit reference theory gmm`` end to end on tiny runs (the full sweep is
    ``benchmarks/bench_gmm_sweep.py``)."""
    code = main(["reference", "theory", "gmm", "--out", str(tmp_path), "--n", "8", "16",
                 "--widths", "16", "--width-n", "8", "--base-width", "32", "--lr", "3e-3",
                 "--steps-per-sample", "6", "--preset", "gmm-small", "--quiet"])
    assert code == 0
    summary = json.loads((tmp_path / "gmm-sweep.json").read_text())
    assert summary["settings"]["optimizer"] == "adam"
    assert {r["n"] for r in summary["n_sweep"]["runs"]} == {8, 16}
    assert {r["width"] for r in summary["width_sweep"]["runs"]} == {16, 32}
    for name in ("gmm-sweep.json", "gmm-sweep.csv", "theory-gmm.png",
                 "scaling/report.html", "n-16-w-32/eval/report.html"):
        assert (tmp_path / name).exists(), name
    text = capsys.readouterr().out
    assert "n-sweep" in text and "W-sweep" in text
