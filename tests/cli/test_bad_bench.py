"""``probekit bench timeseries``: every bad input is one line on stderr and exit code 2, refused
before any generator is fitted or any file written (issue 16): the output folder, every name
list, every numeric setting, sizes that would not fit in memory."""

from __future__ import annotations

import pytest

from .harness import assert_refused, make_inputs

COMMAND = "probekit bench timeseries"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    return root, make_inputs(root / "data")


@pytest.fixture
def case(root, monkeypatch):
    monkeypatch.chdir(root[0])
    return root


def _argv(root, *extra, out=None):
    return ["bench", "timeseries", "--quick", "--generators", "copycat", "--out",
            str(out or root / "bench-out"), "--quiet", *extra]


@pytest.mark.parametrize(("out_of", "message"), [
    (lambda p: p["file"], "must be a folder"),
    (lambda p: p["file"] / "bench", "is a file, not a folder"),
    (lambda p: p["file"] / "a" / "b", "is a file, not a folder"),
    (lambda p: p["fifo"], "must be a folder"),
])
def test_bad_out(case, out_of, message):
    root, paths = case
    assert_refused(_argv(root, out=out_of(paths)), root, command=COMMAND, match=message)


def test_out_on_a_read_only_file_system(case, read_only):
    root, _ = case
    assert_refused(_argv(root), root, command=COMMAND, match="read-only file system")


@pytest.mark.parametrize(("extra", "message"), [
    (["--n-samples", "0"], "--n-samples: must be a positive integer"),
    (["--n-samples", "-5"], "--n-samples: must be a positive integer"),
    (["--n-samples", "1"], "n_samples must be >= 2"),
    (["--n-samples", "many"], "--n-samples: must be a positive integer"),
    (["--n-samples", str(10**13)], "needs about .* of memory; .* is available"),
    (["--seed", "-1"], "--seed: must be a seed"),
    (["--seed", str(2**64)], "--seed: must be a seed"),
    (["--datasets", "nope"], "unknown dataset 'nope'"),
    (["--datasets", ""], "must not be empty"),
    (["--datasets", "sines,sines"], "may appear once"),
    (["--datasets", "digits"], "is for image data"),
    (["--generators", "nope"], "unknown generator 'nope'"),
    (["--generators", "file:x"], "file:LABEL=PATH"),
    (["--metrics", "fid"], "is for image data"),
    (["--metrics", "nope"], "unknown metric 'nope'"),
    (["--probes", "nope"], "unknown probe 'nope'"),
    (["--set", "sines.n_train=-3"], "n_train"),
    (["--set", "sines.n_timesteps=1"], "n_timesteps"),
    (["--set", f"sines.n_timesteps={10**12}"], "needs about .* of memory"),
    (["--set", f"sines.n_holdout={10**12}"], "needs about .* of memory"),
    (["--set", "sines.seed=-1"], "'seed'"),
    (["--set", "sines.noise=nan"], "noise"),
    (["--set", "copycat.bogus=1"], "unknown option 'bogus'"),
    (["--set", "nn-ratio.n_bootstrap=1000000000000"], "n_bootstrap"),
    (["--set", "nn-ratio.k=2"], "'k'"),
    (["--set", "ts-fd.seed=-2"], "'seed'"),
    (["--set", "nope.k=1"], "not among the chosen"),
    (["--set", "k=1"], "NAME.KEY=VALUE"),
])
def test_bad_settings(case, extra, message):
    root, _ = case
    assert_refused(_argv(root, *extra), root, command=COMMAND, match=message)
