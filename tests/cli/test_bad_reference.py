"""``probekit reference train|sweep``: every bad input is one line on stderr and exit code 2,
refused before any data is loaded, any training starts or anything is created (issue 16:
``--steps 0`` hung, ``--device bogus`` and negative widths or threads gave tracebacks, an
absurd width allocated until it crashed)."""

from __future__ import annotations

import pytest

from .harness import assert_refused, make_inputs


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    return root, make_inputs(root / "data")


@pytest.fixture
def case(root, monkeypatch):
    monkeypatch.chdir(root[0])
    return root


def _train(root, *extra, out=None):
    return ["reference", "train", "--preset", "digits-small", "--n", "8", "--out",
            str(out or root / "run"), "--quiet", *extra]


def _sweep(root, *extra, out=None, ns=("8", "16")):
    return ["reference", "sweep", "--preset", "digits-small", "--n", *ns, "--out",
            str(out or root / "sweep"), "--quiet", *extra]


TRAIN_CASES = [
    (["--steps", "0"], "--steps: must be a positive integer"),
    (["--steps", "-5"], "--steps: must be a positive integer"),
    (["--steps", "ten"], "--steps: must be a positive integer"),
    (["--n", "0"], "--n: must be a positive integer"),
    (["--n", "1"], "n_train must be >= 2"),
    (["--n", "100000000"], "n_train"),
    (["--seed", "-1"], "--seed: must be a seed"),
    (["--device", "bogus"], "--device must be cpu, cuda, cuda:N or mps; got 'bogus'"),
    (["--device", "cuda:99"], "is not available"),
    (["--device", "gpu"], "--device must be cpu, cuda"),
    (["--width", "-8"], "--width: must be a positive integer"),
    (["--width", "0"], "--width: must be a positive integer"),
    (["--width", "5"], "divisible by norm_groups"),
    (["--width", "100000"], "needs about .* of memory; .* is available. Lower --width"),
    (["--threads", "0"], "--threads: must be a positive integer"),
    (["--threads", "-1"], "--threads: must be a positive integer"),
    (["--lr", "nan"], "--lr: must be a finite number"),
    (["--lr", "-0.1"], "--lr must be > 0"),
    (["--lr", "0"], "--lr must be > 0"),
    (["--stop-after-mem", "5"], r"--stop-after-mem must be in \[0, 1\]"),
    (["--stop-after-mem", "-0.5"], r"--stop-after-mem must be in \[0, 1\]"),
    (["--stop-after-mem", "inf"], "--stop-after-mem: must be a finite number"),
    (["--evaluate", "--metrics", "nope"], "unknown metric 'nope'"),
    (["--optimizer", "rmsprop"], "invalid choice"),
    (["--preset", "bogus"], "invalid choice"),
]


@pytest.mark.parametrize(("extra", "message"), TRAIN_CASES,
                         ids=[" ".join(c[0]) for c in TRAIN_CASES])
def test_bad_train_settings(case, extra, message):
    root, _ = case
    assert_refused(_train(root, *extra), root, command="probekit reference train",
                   match=message)


@pytest.mark.parametrize(("out_of", "message"), [
    (lambda p: p["file"], "must be a folder"),
    (lambda p: p["file"] / "run", "is a file, not a folder"),
    (lambda p: p["fifo"], "must be a folder"),
])
@pytest.mark.parametrize("action", ["train", "sweep"])
def test_bad_out(case, action, out_of, message):
    root, paths = case
    argv = (_train if action == "train" else _sweep)(root, out=out_of(paths))
    assert_refused(argv, root, command=f"probekit reference {action}", match=message)


def test_out_on_a_read_only_file_system(case, read_only):
    root, _ = case
    assert_refused(_train(root), root, command="probekit reference train",
                   match="read-only file system")


@pytest.mark.parametrize(("extra", "message"), [
    (["--data-root", "{data}/nope"], "img_align_celeba"),
    (["--data-root", "{data}/a-file"], "img_align_celeba"),
    ([], "no data root given"),
])
def test_celeba_without_its_data(case, extra, message):
    root, paths = case
    extra = [e.format(data=paths["file"].parent) for e in extra]
    argv = ["reference", "train", "--preset", "celeba32", "--n", "8", "--out",
            str(root / "celeba"), "--quiet", *extra]
    assert_refused(argv, root, command="probekit reference train", match=message)


SWEEP_CASES = [
    (["--jobs", "0"], "--jobs: must be a positive integer"),
    (["--jobs", "-2"], "--jobs: must be a positive integer"),
    (["--threads", "0"], "--threads: must be a positive integer"),
    (["--steps", "0"], "--steps: must be a positive integer"),
    (["--seed", "-3"], "--seed: must be a seed"),
    (["--width", "100000"], "needs about .* of memory"),
    (["--device", "bogus"], "--device must be"),
    (["--mem-level", "0"], "--mem-level must be in .0, 1]"),
    (["--mem-level", "1.5"], "--mem-level must be in .0, 1]"),
    (["--mem-level", "nan"], "--mem-level: must be a finite number"),
    (["--stop-after-mem", "2"], "--stop-after-mem must be in .0, 1]"),
    (["--min-steps", "-1"], "--min-steps: must be a non-negative integer"),
    (["--metrics", "nope"], "unknown metric 'nope'"),
]


@pytest.mark.parametrize(("extra", "message"), SWEEP_CASES,
                         ids=[" ".join(c[0]) for c in SWEEP_CASES])
def test_bad_sweep_settings(case, extra, message):
    root, _ = case
    assert_refused(_sweep(root, *extra), root, command="probekit reference sweep",
                   match=message)


@pytest.mark.parametrize(("ns", "message"), [
    (("8",), "at least 2 different sizes"),
    (("8", "8"), "each --n may be given once"),
    (("0", "8"), "--n: must be a positive integer"),
    (("8", "x"), "--n: must be a positive integer"),
])
def test_bad_sweep_sizes(case, ns, message):
    root, _ = case
    assert_refused(_sweep(root, ns=ns), root, command="probekit reference sweep", match=message)
