"""``probekit index build|info``: bad input is one line on stderr and exit code 2, refused
before any feature is extracted or anything is written (issue 16)."""

from __future__ import annotations

import pytest

from .harness import BAD_INPUT_FILES, assert_refused, bad_input, make_inputs


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("index")
    return root, make_inputs(root / "data")


@pytest.fixture
def case(root, monkeypatch):
    monkeypatch.chdir(root[0])
    return root


FILES = BAD_INPUT_FILES


@pytest.mark.parametrize(("label", "key", "message"), FILES, ids=[c[0] for c in FILES])
def test_bad_train_files(case, label, key, message):
    root, paths = case
    argv = ["index", "build", "--train", bad_input(paths, key), "--out", str(root / "idx"),
            "--quiet"]
    assert_refused(argv, root, command="probekit index build", match=message)


@pytest.mark.parametrize(("extra", "message"), [
    (["--out", "{data}/a-file"], "--out must be a folder"),
    (["--out", "{data}/a-file/idx"], "is a file, not a folder"),
    (["--features", "nope"], "unknown feature-extractor 'nope'"),
    (["--features-set", "bogus=1"], "unknown option 'bogus'|takes no options"),
    (["--seed", "-1"], "'seed'"),
    (["--shards", "0"], "'shards'"),
    (["--shard-rows", "0"], "'shard_rows'"),
    (["--chunk-rows", "-1"], "'chunk_rows'"),
    (["--batch-size", "0"], "'batch_size'"),
    (["--nlist", "0"], "'nlist'"),
    (["--duplicate-rtol", "nan"], "'duplicate_rtol'"),
    (["--mode", "fuzzy"], "invalid choice"),
])
def test_bad_build_settings(case, extra, message):
    root, paths = case
    extra = [e.format(data=paths["file"].parent) for e in extra]
    argv = ["index", "build", "--train", str(paths["train"]), "--quiet", *extra]
    if "--out" not in extra:
        argv += ["--out", str(root / "idx")]
    assert_refused(argv, root, command="probekit index build", match=message)


@pytest.mark.parametrize("path_of", [
    lambda p, r: r / "nope",
    lambda p, r: p["file"],
    lambda p, r: p["folder"],
    lambda p, r: p["fifo"],
])
def test_info_of_something_that_is_not_an_index(case, path_of):
    root, paths = case
    assert_refused(["index", "info", str(path_of(paths, root))], root,
                   command="probekit index info", match="is not a complete probekit index")
