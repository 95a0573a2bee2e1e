"""``probekit probe``: every bad input is one line on stderr, exit code 2, nothing written
(issue 16). Each path argument gets every kind of bad file; each setting its bad values."""

from __future__ import annotations

import pytest

from .harness import BAD_INPUT_FILES, assert_refused, bad_input, make_inputs, run_cli


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    return root, make_inputs(root / "data")


@pytest.fixture
def case(root, monkeypatch):
    monkeypatch.chdir(root[0])
    return root


def _argv(paths, *, train="train", samples="samples", extra=()):
    return ["probe", "nn-ratio", "--train", str(paths[train]) if train else "",
            "--samples", str(paths[samples]), *extra]


@pytest.mark.parametrize(("label", "key", "message"), BAD_INPUT_FILES,
                         ids=[c[0] for c in BAD_INPUT_FILES])
@pytest.mark.parametrize("argument", ["--train", "--samples"])
def test_bad_input_files(case, argument, label, key, message):
    root, paths = case
    argv = _argv(paths)
    argv[argv.index(argument) + 1] = bad_input(paths, key)
    assert_refused(argv, root, match=message)


@pytest.mark.parametrize(("label", "key", "message"), BAD_INPUT_FILES[:8],
                         ids=[c[0] for c in BAD_INPUT_FILES[:8]])
def test_bad_holdout_files(case, label, key, message):
    root, paths = case
    argv = ["probe", "mia-loss", "--train", str(paths["train"]), "--samples",
            str(paths["samples"]), "--holdout", bad_input(paths, key)]
    # mia-loss needs the model: refused before any file is read
    assert_refused(argv, root, match="needs the model itself")


@pytest.mark.parametrize(("target", "message"), [
    ("{data}", "is a folder"),
    ("{data}/a-file/result.json", "is a file, not a folder"),
    ("{data}/a-file/deeper/result.json", "is a file, not a folder"),
    ("{data}/fifo.npy", "named pipe"),
    ("", "empty string"),
])
def test_bad_json_outputs(case, target, message):
    root, paths = case
    out = target.format(data=paths["train"].parent)
    assert_refused(_argv(paths, extra=["--json", out]), root, match=message)


def test_json_on_a_read_only_file_system(case, read_only):
    root, paths = case
    assert_refused(_argv(paths, extra=["--json", str(root / "out.json")]), root,
                   match="read-only file system")


def test_json_in_an_unwritable_folder(case, monkeypatch):
    from probekit import validation

    monkeypatch.setattr(validation, "_writable_dir", lambda path: False)
    root, paths = case
    assert_refused(_argv(paths, extra=["--json", str(root / "out.json")]), root,
                   match="not writable by this user")


@pytest.mark.parametrize(("settings", "message"), [
    (["k=2"], "'k'"),
    (["k=0"], "'k'"),
    (["k=nan"], "'k'"),
    (["seed=-1"], "'seed'"),
    (["seed=abc"], "'seed'"),
    (["n_bootstrap=1000000000000"], "'n_bootstrap'"),
    (["n_bootstrap=5"], "'n_bootstrap'"),
    (["n_bootstrap=-1"], "'n_bootstrap'"),
    (["chunk_size=0"], "'chunk_size'"),
    (["batch_size=-1"], "'batch_size'"),
    (["confidence=1.5"], "'confidence'"),
    (["features=bogus"], "bogus"),
    (["metric=cosine"], "'metric'"),
    (["no_such_option=1"], "unknown option 'no_such_option'"),
    (["k"], "KEY=VALUE"),
    (["=3"], "KEY=VALUE"),
])
def test_bad_settings(case, settings, message):
    root, paths = case
    extra = [a for s in settings for a in ("--set", s)]
    assert_refused(_argv(paths, extra=extra), root, match=message)


@pytest.mark.parametrize(("argv_of", "message"), [
    (lambda p: ["probe", "nn-ratoi", "--train", str(p["train"]), "--samples",
                str(p["samples"])], "Did you mean 'nn-ratio'"),
    (lambda p: _argv(p, samples="series"), "same kind of data"),
    (lambda p: _argv(p, train="series"), "same kind of data"),
    (lambda p: _argv(p, samples="wide"), "same per-sample shape"),
    (lambda p: ["probe", "subsequence-match", "--train", str(p["train"]), "--samples",
                str(p["samples"])], "works on timeseries data"),
    (lambda p: ["probe", "loss-gap", "--train", str(p["train"]), "--samples",
                str(p["samples"])], "needs the model itself"),
    (lambda p: ["probe", "nn-ratio", "--train", str(p["train"])], "required"),
    (lambda p: ["probe", "--train", str(p["train"]), "--samples", str(p["samples"])],
     "required|invalid"),
    (lambda p: _argv(p, samples="empty_axis"), "empty axis"),
])
def test_bad_combinations(case, argv_of, message):
    root, paths = case
    assert_refused(argv_of(paths), root, match=message)


def test_an_unknown_flag_is_a_usage_error(case):
    root, paths = case
    assert_refused(_argv(paths, extra=["--bogus-flag"]), root, command="probekit",
                   match="unrecognized arguments: --bogus-flag")


def test_a_good_probe_still_works_and_writes_its_json(case):
    root, paths = case
    out = root / "good" / "result.json"
    outcome = run_cli(_argv(paths, extra=["--json", str(out)]))
    assert outcome.code == 0, outcome.stderr
    assert out.is_file() and "nn-ratio: f_mem" in outcome.stdout
    out.unlink()
    out.parent.rmdir()
