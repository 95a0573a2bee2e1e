"""``probekit reference theory spectrum|dynamics|gmm``: every bad input is one line on stderr
and exit code 2, before any matrix is allocated or file written (issue 16: the theory
command's dimensions allocated until they crashed)."""

from __future__ import annotations

import pytest

from .harness import assert_refused, make_inputs


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("theory")
    return root, make_inputs(root / "data")


@pytest.fixture
def case(root, monkeypatch):
    monkeypatch.chdir(root[0])
    return root


RANDOM_FEATURES = [
    (["--d", "0"], "--d: must be a positive integer"),
    (["--d", "-10"], "--d: must be a positive integer"),
    (["--d", "100000"], "needs about .* of memory; .* is available"),
    (["--psi-p", "0"], "--psi-p: must be > 0"),
    (["--psi-p", "nan"], "--psi-p: must be a finite number"),
    (["--psi-p", "1e9"], "needs about .* of memory"),
    (["--t", "0"], "--t: must be > 0"),
    (["--t", "-1"], "--t: must be > 0"),
    (["--t", "inf"], "--t: must be a finite number"),
    (["--seed", "-1"], "--seed: must be a seed"),
    (["--threads", "0"], "--threads: must be a positive integer"),
    (["--name", "a/b"], "--name must be a file name stem"),
    (["--name", ""], "--name must be a file name stem"),
]


@pytest.mark.parametrize(("extra", "message"), RANDOM_FEATURES,
                         ids=[" ".join(c[0]) for c in RANDOM_FEATURES])
@pytest.mark.parametrize("what", ["spectrum", "dynamics"])
def test_bad_random_features_settings(case, what, extra, message):
    root, _ = case
    argv = ["reference", "theory", what, "--out", str(root / what), *extra]
    assert_refused(argv, root, command=f"probekit reference theory {what}", match=message)


@pytest.mark.parametrize(("what", "extra", "message"), [
    ("spectrum", ["--psi-n", "0"], "--psi-n: must be > 0"),
    ("dynamics", ["--psi-n", "4", "-8"], "--psi-n: must be > 0|expected"),
    ("dynamics", ["--psi-n", "1e8"], "needs about .* of memory"),
])
def test_bad_psi_n(case, what, extra, message):
    root, _ = case
    argv = ["reference", "theory", what, "--out", str(root / what), *extra]
    assert_refused(argv, root, command=f"probekit reference theory {what}", match=message)


GMM = [
    (["--n", "0"], "--n: must be a positive integer"),
    (["--widths", "-64"], "--widths: must be a positive integer"),
    (["--widths", "1000000"], "needs about .* of memory"),
    (["--base-width", "0"], "--base-width: must be a positive integer"),
    (["--width-n", "-1"], "--width-n: must be a positive integer"),
    (["--lr", "nan"], "--lr: must be a finite number"),
    (["--lr", "-1"], "--lr: must be > 0"),
    (["--steps-per-sample", "0"], "--steps-per-sample: must be > 0"),
    (["--mem-level", "2"], "--mem-level: must be in .0, 1]"),
    (["--stop-level", "0"], "--stop-level: must be in .0, 1]"),
    (["--threads", "0"], "--threads: must be a positive integer"),
    (["--preset", "huge"], "invalid choice"),
]


@pytest.mark.parametrize(("extra", "message"), GMM, ids=[" ".join(c[0]) for c in GMM])
def test_bad_gmm_settings(case, extra, message):
    root, _ = case
    argv = ["reference", "theory", "gmm", "--out", str(root / "gmm"), *extra]
    assert_refused(argv, root, command="probekit reference theory gmm", match=message)


@pytest.mark.parametrize("what", ["spectrum", "dynamics", "gmm"])
@pytest.mark.parametrize(("out_of", "message"), [
    (lambda p: p["file"], "must be a folder"),
    (lambda p: p["file"] / "x", "is a file, not a folder"),
])
def test_bad_out(case, what, out_of, message):
    root, paths = case
    argv = ["reference", "theory", what, "--out", str(out_of(paths))]
    assert_refused(argv, root, command=f"probekit reference theory {what}", match=message)
