"""fid: equals ``python -m pytorch_fid`` on the same images saved as PNG (to 1e-3), with a
seeded random state dict standing in for the real weights in a temporary torch hub cache;
reference statistics are computed once and cacheable; identical sets give 0; conformance.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from probekit_plugins.features import inception
from probekit_plugins.features.inception import WEIGHTS_FILENAME, save_png_folder
from probekit_plugins.metrics.fid import FrechetInceptionDistance

from probekit import get_metric
from probekit.cli import main
from probekit.testing import ConformanceData, check_measure


@pytest.fixture(scope="session")
def random_torch_home(tmp_path_factory):
    """A torch home whose hub cache holds seeded random Inception weights (shared by tests)."""
    home = tmp_path_factory.getbasetemp() / "torch-home-random-inception"
    path = home / "hub" / "checkpoints" / WEIGHTS_FILENAME
    if not path.exists():
        inception.write_random_weights(path, seed=0)
    return home


@pytest.fixture
def hub(random_torch_home, monkeypatch):
    """TORCH_HOME → the random weights; one BLAS and torch thread (the CPUs are shared)."""
    from threadpoolctl import threadpool_limits

    monkeypatch.setenv("TORCH_HOME", str(random_torch_home))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield random_torch_home / "hub" / "checkpoints" / WEIGHTS_FILENAME
    torch.set_num_threads(threads)


def digit_like(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Small grayscale images in [-1, 1]: a bright bar at a random row, plus noise."""
    rng = np.random.default_rng(seed)
    x = np.full((n, 1, 8, 8), -1.0)
    rows = rng.integers(0, 8, n)
    x[np.arange(n), 0, rows, :] = 1.0
    x += rng.normal(0, 0.3, x.shape) + shift
    return np.clip(x, -1, 1).astype(np.float32)


@pytest.mark.slow  # one 2048-d scipy sqrtm in the pytorch-fid CLI dominates (~15-30 s)
def test_equals_pytorch_fid_cli_on_the_same_pngs(hub, tmp_path):
    reference, samples = digit_like(8, 0), digit_like(8, 1, shift=0.4)
    save_png_folder(reference, tmp_path / "reference", value_range=(-1, 1))
    save_png_folder(samples, tmp_path / "samples", value_range=(-1, 1))
    env = {**os.environ, "TORCH_HOME": str(hub.parents[2]), "OMP_NUM_THREADS": "1"}
    # the paper's route runs in the background while the in-memory route runs here
    paper_route = subprocess.Popen(
        [sys.executable, "-m", "pytorch_fid", str(tmp_path / "reference"),
         str(tmp_path / "samples"), "--device", "cpu", "--num-workers", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        result = FrechetInceptionDistance(value_range=(-1, 1)).prepare(reference).evaluate(
            samples
        )
        stdout, stderr = paper_route.communicate(timeout=600)
    finally:
        paper_route.kill()
    assert paper_route.returncode == 0, stderr[-2000:]
    cli = float(re.search(r"FID:\s+(\S+)", stdout).group(1))
    assert cli > 1.0  # the sets differ: agreement below is not agreement of two zeros
    assert abs(result.value - cli) < 1e-3
    prov = result.provenance
    assert prov.feature_weights_sha256 == hashlib.sha256(hub.read_bytes()).hexdigest()
    assert prov.feature_space == "inception" and prov.preprocessing.startswith("pytorch-fid-png")
    assert (prov.n_reference, prov.n_samples, prov.extra["n_features"]) == (8, 8, 2048)
    assert any("fewer samples than dimensions" in w for w in result.warnings)


def test_reference_statistics_are_computed_once_and_cacheable(hub, monkeypatch):
    reference = digit_like(8, 2)
    checkpoints = [digit_like(8, 3 + i, shift=0.2 * i) for i in range(3)]
    metric = FrechetInceptionDistance(value_range=(-1, 1), dims=64).prepare(reference)
    calls = []
    extract = metric.extractor.extract
    monkeypatch.setattr(metric.extractor, "extract", lambda x: calls.append(len(x)) or extract(x))
    values = [metric.evaluate(x).value for x in checkpoints]
    assert calls == [8, 8, 8]  # only the samples of each checkpoint went through the network
    assert values[0] < values[2]  # the planted shift moves the samples away

    state = metric.reference_state()
    ref_feats = metric.extractor.extract(reference).astype(np.float64)
    np.testing.assert_allclose(state["mean"], ref_feats.mean(0), rtol=1e-10)
    restored = FrechetInceptionDistance(value_range=(-1, 1), dims=64).load_reference_state(
        {k: np.array(v) for k, v in state.items()}
    )
    assert restored.evaluate(checkpoints[1]).value == pytest.approx(values[1], rel=1e-12)


def test_identical_sets_give_zero_and_batches_do_not_matter(hub):
    x = digit_like(9, 4)
    fid = FrechetInceptionDistance(value_range=(-1, 1), dims=64, batch_size=4)
    assert fid.prepare(x).evaluate(x).value == pytest.approx(0.0, abs=1e-9)
    y = digit_like(9, 5, shift=0.3)
    a = fid.evaluate(y).value
    b = FrechetInceptionDistance(value_range=(-1, 1), dims=64, forward_batch_size=2).prepare(
        x
    ).evaluate(y).value
    assert a > 0.01
    assert b == pytest.approx(a, rel=1e-5)


def test_a_wrong_value_range_is_reported(hub):
    x, y = digit_like(6, 11), digit_like(6, 12)  # values in [-1, 1]
    wrong = FrechetInceptionDistance(dims=64).prepare(x).evaluate(y)  # default range [0, 1]
    assert wrong.provenance.extra["clipped_fraction_generated"] > 0.3
    assert any("outside value_range (0.0, 1.0)" in w for w in wrong.warnings)
    right = FrechetInceptionDistance(dims=64, value_range="-1,1").prepare(x).evaluate(y)
    assert right.provenance.extra["clipped_fraction_reference"] == 0.0
    assert not any("value_range" in w for w in right.warnings)


def test_conformance(hub):
    data = ConformanceData(digit_like(9, 6), digit_like(9, 7), digit_like(9, 8, shift=0.2))
    check_measure(get_metric("fid"), data=data, settings={"dims": 64}, rtol=1e-5)


def test_cli_metric_fid_writes_json_and_missing_weights_exit_2(hub, tmp_path, capsys,
                                                                monkeypatch):
    np.save(tmp_path / "ref.npy", digit_like(8, 9))
    np.save(tmp_path / "gen.npy", digit_like(8, 10, shift=0.3))
    out = tmp_path / "out.json"
    argv = ["metric", "fid", "--reference", str(tmp_path / "ref.npy"), "--samples",
            str(tmp_path / "gen.npy"), "--set", "value_range=-1,1", "--set", "dims=64",
            "--json", str(out)]
    assert main(argv) == 0
    saved = json.loads(out.read_text())
    assert saved["headline"] == "fid" and saved["fid"] == saved["values"]["fid"] > 0
    assert "fid = " in capsys.readouterr().out

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights-here"))
    inception._MODELS.clear()
    out.unlink()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and WEIGHTS_FILENAME in err[0]
    assert not out.exists()


def test_registered_under_fid():
    assert get_metric("fid") is FrechetInceptionDistance
    assert FrechetInceptionDistance.higher_is_better is False
