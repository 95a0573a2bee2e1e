"""``probekit report``: every bad input is one line on stderr and exit code 2, and no report is
written (issue 16): damaged run directories, output folders, and the silent successes of
before (an unknown ``--quality-measure``, ``--gen-threshold nan``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from .harness import assert_refused, make_inputs, run_cli


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    paths = make_inputs(root / "data")
    rng = np.random.default_rng(2)
    series = root / "series"
    series.mkdir()
    for step in (0, 100, 200):
        np.save(series / f"step-{step}.npy", rng.random((24, 1, 4, 4)).astype(np.float32))
    run = root / "run"
    outcome = run_cli(["evaluate", str(series), "--train", str(paths["train"]), "--holdout",
                       str(paths["holdout"]), "--probes", "nn-ratio", "--metrics", "fd",
                       "--out", str(run), "--quiet"])
    assert outcome.code == 0, outcome.stderr
    paths["run"] = run
    for name, damage in {
        "config_list": lambda d: (d / "config.json").write_text("[1, 2]"),
        "config_folder": lambda d: ((d / "config.json").unlink(), (d / "config.json").mkdir()),
        "config_missing": lambda d: (d / "config.json").unlink(),
        "config_truncated": lambda d: (d / "config.json").write_text(
            (run / "config.json").read_text()[:40]),
        "sqlite_garbage": lambda d: (d / "results.sqlite").write_bytes(b"not a database" * 9),
        "sqlite_empty_tables": lambda d: _drop_tables(d / "results.sqlite"),
        "sqlite_missing": lambda d: (d / "results.sqlite").unlink(),
        "config_scalar_timescales": lambda d: (d / "config.json").write_text(json.dumps(
            {**json.loads((run / "config.json").read_text()), "timescales": {"mem_level": 7}})),
    }.items():
        copy = root / f"damaged-{name}"
        shutil.copytree(run, copy)
        damage(copy)
        paths[name] = copy
    return root, paths


def _drop_tables(path):
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("DROP TABLE results")
    con.commit()
    con.close()


@pytest.fixture
def case(root, monkeypatch):
    monkeypatch.chdir(root[0])
    return root


@pytest.mark.parametrize(("run_of", "message"), [
    (lambda p, r: r / "nope", "does not exist"),
    (lambda p, r: p["file"], "it is a file"),
    (lambda p, r: p["fifo"], "it is a file"),
    (lambda p, r: p["folder"], "no config.json"),
    (lambda p, r: p["config_list"], "config.json' is damaged: it must hold a JSON object"),
    (lambda p, r: p["config_folder"], "config.json' is damaged: it is a folder"),
    (lambda p, r: p["config_missing"], "has no config.json"),
    (lambda p, r: p["config_truncated"], "config.json' is damaged: not valid JSON"),
    (lambda p, r: p["sqlite_garbage"], "results.sqlite' is damaged: file is not a database"),
    (lambda p, r: p["sqlite_empty_tables"], "results.sqlite' is damaged: no such table"),
    (lambda p, r: p["sqlite_missing"], "has no results.sqlite"),
    (lambda p, r: p["config_scalar_timescales"], "mem_level"),
])
def test_bad_run_directories(case, run_of, message):
    root, paths = case
    assert_refused(["report", str(run_of(paths, root))], root, match=message)


@pytest.mark.parametrize(("extra", "message"), [
    (["--quality-measure", "UNKNOWN"], "quality_measure must name a measure of the run"),
    (["--quality-measure", "fd:nope"], "names no field of fd; its fields are"),
    (["--quality-measure", ":fd"], "NAME or NAME:FIELD"),
    (["--mem-measure", "UNKNOWN"], "mem_measure must name a measure of the run"),
    (["--mem-measure", "nn-ratio:nope"], "names no field of nn-ratio"),
    (["--gen-threshold", "nan"], "gen_threshold' input should be a finite number"),
    (["--gen-threshold=-inf"], "gen_threshold' input should be a finite number"),
    (["--gen-threshold", "five"], "gen_threshold' input should be a valid number"),
    (["--gen-mode", "absolute"], "needs gen_threshold"),
    (["--gen-mode", "relative", "--gen-threshold", "5"], "applies only with gen_mode='absolute'"),
    (["--gen-mode", "sideways"], "invalid choice"),
    (["--mem-level", "0"], "mem_level' input should be greater than 0"),
    (["--mem-level", "2"], "mem_level' input should be less than or equal to 1"),
    (["--mem-level", "nan"], "mem_level' input should be a finite number"),
    (["--gen-tol", "1"], "gen_tol' input should be less than 1"),
    (["--gen-tol=-1"], "gen_tol' input should be greater than or equal to 0"),
])
def test_bad_settings(case, extra, message):
    root, paths = case
    assert_refused(["report", str(paths["run"]), *extra], root, match=message)


@pytest.mark.parametrize(("out_of", "message"), [
    (lambda p: p["file"], "must be a folder"),
    (lambda p: p["file"] / "report", "is a file, not a folder"),
    (lambda p: p["file"] / "a" / "b", "is a file, not a folder"),
    (lambda p: p["fifo"], "must be a folder"),
])
def test_bad_out(case, out_of, message):
    root, paths = case
    assert_refused(["report", str(paths["run"]), "--out", str(out_of(paths))], root,
                   match=message)


def test_a_run_on_a_read_only_file_system(case, read_only):
    root, paths = case
    assert_refused(["report", str(paths["run"])], root, match="read-only file system")


@pytest.mark.parametrize(("runs_of", "message"), [
    (lambda p: [p["run"], p["run"]], "each run may be given once"),
    (lambda p: [p["run"], p["config_list"]], "config.json' is damaged"),
    (lambda p: [p["run"], p["sqlite_garbage"]], "results.sqlite' is damaged"),
    (lambda p: [p["run"], p["file"]], "it is a file"),
])
def test_bad_groups_of_runs_write_nothing(case, runs_of, message):
    root, paths = case
    assert_refused(["report", *map(str, runs_of(paths))], root, match=message)


def test_a_threshold_given_alone_implies_absolute_mode(case):
    root, paths = case
    out = root / "absolute"
    outcome = run_cli(["report", str(paths["run"]), "--gen-threshold", "5", "--out", str(out),
                       "--quiet"])
    assert outcome.code == 0, outcome.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["thresholds"]["gen_mode"] == "absolute"
    assert summary["thresholds"]["gen_threshold"] == 5
    shutil.rmtree(out)
