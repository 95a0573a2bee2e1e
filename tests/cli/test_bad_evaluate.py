"""``probekit evaluate``: every bad input is one line on stderr and exit code 2, refused before a
checkpoint is opened or anything is created (issue 16: series, data and output paths, every
numeric setting, damaged run directories); a checkpoint that cannot be evaluated is exit 3
with its one-line reason, the others evaluated."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from .harness import BAD_INPUT_FILES, assert_refused, bad_input, make_inputs, run_cli

STEPS = (0, 100, 200)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    paths = make_inputs(root / "data")
    rng = np.random.default_rng(1)
    series = root / "series"
    series.mkdir()
    for step in STEPS:
        np.save(series / f"step-{step}.npy", rng.random((24, 1, 4, 4)).astype(np.float32))
    paths["series_dir"] = series
    # folders that are not series
    for name, files in {
        "empty_series": [],
        "mixed_series": ["step-1.npy", "ckpt-2.pt"],
        "huge_step": ["step-99999999999999999999.npy"],
        "ambiguous": ["step-1.npy", "step-01.npy"],
        "pipe_step": ["step-1.npy"],
    }.items():
        folder = root / name
        folder.mkdir()
        for f in files:
            np.save(folder / f, np.zeros((4, 1, 4, 4), np.float32)) if f.endswith(".npy") \
                else (folder / f).write_bytes(b"x")
        paths[name] = folder
    os.mkfifo(paths["pipe_step"] / "step-2.npy")  # a checkpoint that is a named pipe
    os.mkfifo(root / "pipe.json")  # a manifest that is one
    paths["pipe_manifest"] = root / "pipe.json"
    manifests = {
        "bad_json": "{not json",
        "list_of_numbers": "[1, 2, 3]",
        "negative_step": json.dumps({"-5": "series/step-0.npy"}),
        "huge_step_key": json.dumps({"99999999999999999999999": "series/step-0.npy"}),
        "missing_path": json.dumps({"5": "series/nope.npy"}),
        "empty_path": json.dumps({"5": ""}),
        "duplicate_key": '{"5": "series/step-0.npy", "5": "series/step-100.npy"}',
    }
    for name, text in manifests.items():
        paths[name] = root / f"{name}.json"
        paths[name].write_text(text)
    paths["bad_toml"] = root / "bad.toml"
    paths["bad_toml"].write_text("[checkpoints\n0 = ")
    # a finished run, and damaged copies of it
    run = root / "run"
    outcome = run_cli(["evaluate", str(series), "--train", str(paths["train"]), "--holdout",
                       str(paths["holdout"]), "--probes", "nn-ratio", "--out", str(run),
                       "--quiet", "--no-report"])
    assert outcome.code == 0, outcome.stderr
    paths["run"] = run
    for name, damage in {
        "config_list": lambda d: (d / "config.json").write_text("[1, 2]"),
        "config_folder": lambda d: ((d / "config.json").unlink(), (d / "config.json").mkdir()),
        "config_garbage": lambda d: (d / "config.json").write_bytes(b"\xff\xfe not json"),
        "config_measures": lambda d: (d / "config.json").write_text(
            json.dumps({**json.loads((run / "config.json").read_text()), "measures": 3})),
        "sqlite_garbage": lambda d: (d / "results.sqlite").write_bytes(b"not a database" * 9),
        "sqlite_folder": lambda d: ((d / "results.sqlite").unlink(),
                                    (d / "results.sqlite").mkdir()),
        "foreign": lambda d: ((d / "config.json").unlink(),),
    }.items():
        copy = root / f"damaged-{name}"
        shutil.copytree(run, copy)
        damage(copy)
        paths[name] = copy
    return root, paths


@pytest.fixture
def case(root, monkeypatch):
    monkeypatch.chdir(root[0])
    return root


def _argv(paths, *extra, series=None, out=None):
    return ["evaluate", str(series or paths["series_dir"]), "--train", str(paths["train"]),
            "--holdout", str(paths["holdout"]), "--probes", "nn-ratio",
            "--out", str(out or paths["series_dir"].parent / "new-run"), "--quiet", *extra]


@pytest.mark.parametrize(("key", "message"), [
    ("missing", "does not exist"),
    ("file", "suffix-less file"),
    ("fifo", "is a named pipe"),
    ("empty_series", "holds no checkpoints"),
    ("mixed_series", "mixes naming schemes"),
    ("huge_step", "beyond the largest step"),
    ("ambiguous", "ambiguous"),
    ("bad_json", "cannot read manifest"),
    ("bad_toml", "cannot read manifest"),
    ("list_of_numbers", "must map steps to paths"),
    ("negative_step", "non-negative integer"),
    ("huge_step_key", "beyond the largest step"),
    ("missing_path", "do not exist"),
    ("empty_path", "non-empty string"),
    ("duplicate_key", "more than once"),
    ("pipe_step", "step 2 .'step-2.npy'. is a named pipe"),
    ("pipe_manifest", "is a named pipe"),
])
def test_bad_series(case, key, message):
    root, paths = case
    assert_refused(_argv(paths, series=paths[key]), root, match=message)


@pytest.mark.parametrize(("steps", "message"), [
    ("abc", "each item must be a step"),
    ("-1", "each item must be a step|non-negative"),
    ("5", "not in"),
    ("300:400", "matches no checkpoint"),
    ("99999999999999999999", "at most"),
    (",", "comma-separated"),
])
def test_bad_steps(case, steps, message):
    root, paths = case
    assert_refused(_argv(paths, "--steps", steps), root, match=message)


@pytest.mark.parametrize(("label", "key", "message"), BAD_INPUT_FILES,
                         ids=[c[0] for c in BAD_INPUT_FILES])
def test_bad_train_files(case, label, key, message):
    root, paths = case
    argv = _argv(paths)
    argv[argv.index("--train") + 1] = bad_input(paths, key)
    assert_refused(argv, root, match=message)


@pytest.mark.parametrize(("label", "key", "message"), BAD_INPUT_FILES[:6] + BAD_INPUT_FILES[-3:],
                         ids=[c[0] for c in BAD_INPUT_FILES[:6] + BAD_INPUT_FILES[-3:]])
def test_bad_holdout_files(case, label, key, message):
    root, paths = case
    argv = _argv(paths)
    argv[argv.index("--holdout") + 1] = bad_input(paths, key)
    assert_refused(argv, root, match=message)


@pytest.mark.parametrize(("out", "message"), [
    ("{data}/a-file", "is a file"),
    ("{data}/a-file/run", "is a file, not a folder"),
    ("{data}/fifo.npy", "is a file"),
    ("{root}/series", "not an evaluation run directory"),
    ("", "empty string"),
])
def test_bad_out(case, out, message):
    root, paths = case
    target = out.format(data=paths["train"].parent, root=root)
    assert_refused([*_argv(paths)[:-3], "--out", target, "--quiet"], root, match=message)


def test_out_on_a_read_only_file_system(case, read_only):
    root, paths = case
    assert_refused(_argv(paths), root, match="read-only file system")


@pytest.mark.parametrize(("cache_dir", "message"), [
    ("{data}/a-file", "cache_dir must be a folder"),
    ("{data}/a-file/cache", "is a file, not a folder"),
])
def test_bad_cache_dir(case, cache_dir, message):
    root, paths = case
    target = cache_dir.format(data=paths["train"].parent)
    assert_refused(_argv(paths, "--cache-dir", target), root, match=message)


@pytest.mark.parametrize(("key", "message"), [
    ("config_list", "config.json' is damaged: it must hold a JSON object"),
    ("config_folder", "config.json' is damaged: it is a folder"),
    ("config_garbage", "config.json' is damaged: not valid JSON"),
    ("config_measures", "'measures' must be a list"),
    ("sqlite_garbage", "results.sqlite' is damaged: file is not a database"),
    ("sqlite_folder", "results.sqlite' is damaged"),
    ("foreign", "not an evaluation run directory"),
])
def test_damaged_run_directories(case, key, message):
    root, paths = case
    outcome = assert_refused(_argv(paths, out=paths[key]), root, match=message)
    if "damaged" in message:
        assert "--overwrite" in outcome.stderr  # the repair


def test_a_run_made_with_other_settings(case):
    root, paths = case
    assert_refused(_argv(paths, "--seed", "7", out=paths["run"]), root,
                   match="another configuration: seed: 0 .stored. vs 7 .now.")


@pytest.mark.parametrize(("extra", "message"), [
    (["--n-samples", "0"], "'n_samples'"),
    (["--n-samples", "-4"], "'n_samples'"),
    (["--n-samples", "abc"], "'n_samples'"),
    (["--n-samples", "100"], "at most the samples stored per checkpoint"),
    (["--n-samples", "1", "--metrics", "fd"], "fd: needs at least 2 generated samples"),
    (["--n-samples", "3", "--metrics", "prdc"], "prdc: needs at least 6 generated samples"),
    (["--seed", "-1"], "'seed'"),
    (["--seed", "1.5"], "'seed'"),
    (["--seed", str(2**64)], "'seed'"),
    (["--n-keep", "-1"], "'n_keep'"),
    (["--workers", "0", "--executor", "processes"], "'workers'"),
    (["--workers", "2"], "workers applies to executor='processes'"),
    (["--executor", "bogus"], "invalid choice"),
    (["--ray-address", "auto"], "ray_address applies to executor='ray'"),
    (["--executor", "ray", "--cpus-per-task", "0"], "'cpus_per_task'"),
    (["--executor", "ray", "--max-retries", "-1"], "'max_retries'"),
    (["--mem-level", "0"], "mem_level'"),
    (["--mem-level", "1.5"], "mem_level'"),
    (["--mem-level", "nan"], "mem_level'"),
    (["--gen-tol", "1"], "gen_tol'"),
    (["--gen-tol", "-0.1"], "gen_tol'"),
    (["--gen-threshold", "nan"], "gen_threshold'"),
    (["--gen-threshold", "inf"], "gen_threshold'"),
    (["--gen-threshold", "abc"], "gen_threshold'"),
    (["--gen-mode", "absolute"], "gen_mode='absolute' needs gen_threshold"),
    (["--gen-mode", "relative", "--gen-threshold", "5"], "applies only with gen_mode='absolute'"),
    (["--quality-measure", "nope"], "quality_measure must name a measure of the run; got 'nope'"),
    (["--mem-measure", "nn-ratoi"], "Did you mean 'nn-ratio'"),
    (["--quality-measure", "fd:"], "NAME or NAME:FIELD"),
    (["--metrics", "nope"], "unknown metric 'nope'"),
    (["--probes", "nope"], "unknown probe 'nope'"),
    (["--probes", "nn-ratio,nn-ratio"], "may appear once"),
    (["--set", "nn-ratio.k=5"], "'k'"),
    (["--set", "nn-ratio.n_bootstrap=1000000000000"], "'n_bootstrap'"),
    (["--set", "fd.k=1"], "not among the measures"),
    (["--set", "k=1"], "MEASURE.KEY=VALUE"),
    (["--adapter", "nope"], "unknown adapter 'nope'"),
    (["--adapter-set", "bogus=1"], "unknown option 'bogus'"),
    (["--metrics", "fid", "--set", "fid.device=bogus"], "must be cpu, cuda, cuda:N or mps"),
    (["--metrics", "fid", "--set", "fid.device=cuda:7"], "'cuda:7' is not available"),
    # refused while preparing (no inception weights): the new run directory is removed again
    (["--metrics", "fd", "--set", "fd.features=inception"], "inception"),
    (["--metrics", "prdc", "--set", "prdc.k=30"], "prdc"),
    (["--dataset", "nope"], "give either a dataset"),
    (["--dataset-set", "n_train=4"], "without a dataset"),
    (["--no-cache", "--cache-dir", "somewhere"], "choose one"),
    (["--probes", "loss-gap"], "cannot .it only gives samples."),
])
def test_bad_settings(case, extra, message):
    root, paths = case
    argv = _argv(paths, *extra)
    if "--probes" in extra:  # replace the default probe
        i = argv.index("--probes")
        del argv[i:i + 2]
    assert_refused(argv, root, match=message)


@pytest.mark.parametrize(("extra", "message"), [
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--dataset", "digits", "--dataset-set", "n_train=-3"], "'n_train'"),
    (["--dataset", "digits", "--dataset-set", "bogus=1"], "unknown option 'bogus'"),
    ([], "train must be given"),
])
def test_bad_datasets(case, extra, message):
    root, paths = case
    argv = ["evaluate", str(paths["series_dir"]), "--probes", "nn-ratio", "--out",
            str(root / "new-run"), "--quiet", *extra]
    assert_refused(argv, root, match=message)


@pytest.mark.parametrize(("extra", "message"), [
    (["--n-samples", str(10**15)], "n_samples=1000000000000000 generated samples .* needs about"),
    ([], "--steps must list the steps"),
    (["--steps", "0:10"], "must be listed one by one"),
])
def test_a_sampler_function_with_absurd_settings(case, extra, message):
    root, paths = case
    sampler = root / "sampler.py"
    if not sampler.exists():
        sampler.write_text("import numpy as np\n\ndef generate(step, n, seed):\n"
                           "    return np.zeros((n, 1, 4, 4), np.float32)\n")
    extra = extra if any(e.startswith("--steps") for e in extra) or not extra else \
        [*extra, "--steps", "0,1"]
    argv = ["evaluate", f"{sampler}:generate", "--adapter", "callable", "--train",
            str(paths["train"]), "--probes", "nn-ratio", "--out", str(root / "new-run"),
            "--quiet", *extra]
    assert_refused(argv, root, match=message)


def test_the_series_and_data_must_match(case):
    root, paths = case
    argv = _argv(paths)
    argv[argv.index("--train") + 1] = str(paths["wide"])
    assert_refused(argv, root, match="same per-sample shape")


# -- class 1: a checkpoint that cannot be evaluated is recorded, the others go on -----------------


@pytest.mark.parametrize("damage", ["truncated", "empty", "object", "scalar", "series-shape",
                                    "garbage"])
def test_a_corrupt_checkpoint_is_exit_3_with_one_line(tmp_path, damage, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = make_inputs(tmp_path / "data")
    series = tmp_path / "series"
    series.mkdir()
    rng = np.random.default_rng(0)
    for step in STEPS:
        np.save(series / f"step-{step}.npy", rng.random((24, 1, 4, 4)).astype(np.float32))
    bad = series / "step-100.npy"
    if damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:100])
    elif damage == "empty":
        bad.write_bytes(b"")
    elif damage == "object":
        np.save(bad, np.array([1, "a"], dtype=object), allow_pickle=True)
    elif damage == "scalar":
        np.save(bad, np.float32(1))
    elif damage == "garbage":  # numpy reads bytes without a header as a pickle
        bad.write_bytes(b"garbage, not an array")
    else:
        np.save(bad, rng.random((24, 16, 1)).astype(np.float32))
    out = tmp_path / "run"
    outcome = run_cli(_argv(paths, series=series, out=out))
    assert outcome.code == 3, outcome.stderr
    assert "Traceback" not in outcome.stderr and "\x1b" not in outcome.stderr
    assert len(outcome.lines) == 2, outcome.stderr  # the failed step, then what to do
    assert outcome.lines[0].startswith("probekit evaluate: step 100 failed: ")
    assert "allow_pickle" not in outcome.stderr and "pickle.load" not in outcome.stderr
    assert "retry only those" in outcome.lines[1]
    summary = json.loads((out / "summary.json").read_text())
    assert [f["step"] for f in summary["failures"]] == [100]
    page = (out / "report.html").read_text()
    assert "Failed checkpoints" in page and "step-100.npy" in page
