"""``probekit metric``: every bad input is one line on stderr, exit code 2, nothing written
(issue 16), including the silent successes of before: a time-series reference with image
samples (and the reverse) gave a value."""

from __future__ import annotations

import pytest

from .harness import BAD_INPUT_FILES, assert_refused, bad_input, make_inputs, run_cli


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("metric")
    return root, make_inputs(root / "data")


@pytest.fixture
def case(root, monkeypatch):
    monkeypatch.chdir(root[0])
    return root


def _argv(paths, name="fd", *, reference="holdout", samples="samples", extra=()):
    return ["metric", name, "--reference", str(paths[reference]), "--samples",
            str(paths[samples]), *extra]


@pytest.mark.parametrize(("label", "key", "message"), BAD_INPUT_FILES,
                         ids=[c[0] for c in BAD_INPUT_FILES])
@pytest.mark.parametrize("argument", ["--reference", "--samples"])
def test_bad_input_files(case, argument, label, key, message):
    root, paths = case
    argv = _argv(paths)
    argv[argv.index(argument) + 1] = bad_input(paths, key)
    assert_refused(argv, root, match=message)


@pytest.mark.parametrize(("target", "message"), [
    ("{data}", "is a folder"),
    ("{data}/a-file/result.json", "is a file, not a folder"),
    ("{data}/fifo.npy", "named pipe"),
])
def test_bad_json_outputs(case, target, message):
    root, paths = case
    out = target.format(data=paths["train"].parent)
    assert_refused(_argv(paths, extra=["--json", out]), root, match=message)


def test_json_on_a_read_only_file_system(case, read_only):
    root, paths = case
    assert_refused(_argv(paths, extra=["--json", str(root / "new" / "out.json")]), root,
                   match="read-only file system")


@pytest.mark.parametrize(("name", "settings", "message"), [
    ("fd", ["batch_size=0"], "'batch_size'"),
    ("fd", ["seed=-3"], "'seed'"),
    ("fd", ["features=nope"], "nope"),
    ("fd", ["bogus=1"], "unknown option 'bogus'"),
    ("kid", ["subset_size=100000000"], "subset_size"),
    ("kid", ["subset_size=1"], "'subset_size'"),
    ("kid", ["n_subsets=1000000000000"], "'n_subsets'"),
    ("kid", ["n_subsets=0"], "'n_subsets'"),
    ("prdc", ["k=0"], "'k'"),
    ("prdc", ["k=1000"], "k"),
    ("gmm-mmd", ["bandwidth=-1"], "bandwidth|unknown option"),
])
def test_bad_settings(case, name, settings, message):
    root, paths = case
    extra = [a for s in settings for a in ("--set", s)]
    assert_refused(_argv(paths, name, extra=extra), root, match=message)


@pytest.mark.parametrize(("argv_of", "message"), [
    # the silent successes of issue 16: series against images and the reverse
    (lambda p: _argv(p, samples="series"), "same kind of data"),
    (lambda p: _argv(p, reference="series"), "same kind of data"),
    (lambda p: _argv(p, "kid", samples="series"), "same kind of data"),
    (lambda p: _argv(p, samples="wide"), "same per-sample shape"),
    (lambda p: _argv(p, "ts-fd"), "works on timeseries data"),
    (lambda p: _argv(p, "acf-distance"), "works on timeseries data"),
    (lambda p: _argv(p, "fid", reference="series", samples="series"), "works on image data"),
    # fd's covariance needs two samples; prdc's k = 5 neighbours need six
    (lambda p: _argv(p, samples="one_sample"), "at least 2 samples"),
    (lambda p: _argv(p, "kid", samples="one_sample"), "at least 2 samples"),
    (lambda p: _argv(p, "prdc", samples="one_sample"), "at least 6 samples"),
    (lambda p: _argv(p, "fdd"), "Did you mean 'fd'"),
    (lambda p: _argv(p, "nn-ratio"), "unknown metric"),
])
def test_bad_combinations(case, argv_of, message):
    root, paths = case
    assert_refused(argv_of(paths), root, match=message)


def test_a_good_metric_still_works(case):
    _, paths = case
    outcome = run_cli(_argv(paths))
    assert outcome.code == 0, outcome.stderr
    assert outcome.stdout.startswith("fd: fd = ")
