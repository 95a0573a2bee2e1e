"""probekit bench timeseries: the --quick run end to end (planted copiers caught, files,
provenance), parity with calling the measures directly, plugin failures of any kind kept in
their row, rows saved as they finish and reused by a rerun, Ctrl-C, samples from a file,
labelled datasets, bad names rejected before anything is written."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest

from probekit import (
    Generator,
    get_dataset,
    get_generator,
    get_metric,
    get_probe,
    hookimpl,
    register_plugin,
)
from probekit.bench.plots import memorization_value
from probekit.bench.timeseries import (
    DEFAULT_GENERATORS,
    QUALITY_METRICS,
    REAL_ROW,
    TRAIN_ROW,
    Row,
    checkpoint_note,
    holdout_halves,
    leaderboard_columns,
    leaderboard_markdown,
    make_plan,
    run_benchmark,
    run_dataset,
)
from probekit.cli import main
from probekit.errors import DataWarning, EvaluationInterrupted, UnknownNameError
from probekit.types import Provenance, Result

SMALL_AR = {"n_train": 12, "n_holdout": 12, "n_timesteps": 24}


def _leaderboard(out, dataset=None):
    with (out / "leaderboard.csv").open() as f:
        return {r["generator"]: r for r in csv.DictReader(f)
                if dataset is None or r["dataset"] == dataset}


def test_quick_benchmark_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "timeseries", "--quick", "--out", str(out), "--quiet"]) == 0
    assert "leaderboard.md" in capsys.readouterr().out
    board = _leaderboard(out)
    assert list(board) == [REAL_ROW, TRAIN_ROW, *DEFAULT_GENERATORS]
    assert all(r["dataset"] == "sines" and r["status"] in ("ok", "reference")
               for r in board.values())
    value = {g: {k: float(v) if v else None for k, v in r.items() if k in (
        "ts-fd", "ts-mmd", "nn-ratio", "subsequence-match")} for g, r in board.items()}
    # planted truths: whole copies, pieces, and nothing
    assert value["copycat"]["nn-ratio"] == 1.0 and value["copycat"]["subsequence-match"] == 1.0
    assert value["splice"]["subsequence-match"] >= 0.9 and value["splice"]["nn-ratio"] <= 0.1
    for name in ("gaussian-noise", REAL_ROW):
        assert value[name]["nn-ratio"] == 0.0 and value[name]["subsequence-match"] <= 0.05
    assert value["gaussian-noise"]["ts-fd"] > 2 * value[REAL_ROW]["ts-fd"]
    assert value["gaussian-noise"]["ts-mmd"] > 10 * abs(value[REAL_ROW]["ts-mmd"])
    # the training series are scored by the quality metrics only (they *are* the training set)
    assert value[TRAIN_ROW]["nn-ratio"] is None and value[TRAIN_ROW]["ts-fd"] > 0

    prov = json.loads((out / "provenance.json").read_text())
    assert prov["status"] == "finished" and prov["plan"]["quick"] and prov["plan"]["seed"] == 0
    assert {"probekit", "numpy", "torch"} <= set(prov["versions"])
    facts = prov["datasets"]["sines"]
    assert facts["series_shape"] == [32, 1] and facts["n_samples"] == facts["n_reference"]
    assert facts["measure_settings"]["subsequence-match"]["window"] == 8
    assert facts["measure_settings"]["ts-fd"]["standardize"] == "reference"
    ddpm = {r["generator"]: r["fit"]["fitted"] for r in prov["rows"]
            if r["generator"].startswith("ddpm-")}
    assert ddpm["ddpm-best"]["run_dir"] == ddpm["ddpm-last"]["run_dir"]
    assert ddpm["ddpm-best"]["sampled_step"] == ddpm["ddpm-best"]["best_step"]
    assert ddpm["ddpm-last"]["sampled_step"] == ddpm["ddpm-last"]["last_step"] == 300
    results = next(r for r in prov["rows"] if r["generator"] == "copycat")["results"]
    assert results["nn-ratio"]["provenance"]["plugin"] == "nn-ratio"

    table = (out / "leaderboard.md").read_text()
    assert table.count("\n| ") == 1 + len(board)  # header + one line per row
    best = ddpm["ddpm-best"]
    note = f"step {best['sampled_step']}" + (" = last" if best["best_step"] == 300 else "")
    assert f"| ddpm-best ({note}) |" in table
    assert board["ddpm-best"]["checkpoint"] == note
    with (out / "results.csv").open() as f:
        tidy = list(csv.DictReader(f))
    measures = {"ts-fd", "ts-mmd", "discriminative-score", "predictive-score",
                "marginal-distance", "acf-distance", "nn-ratio", "subsequence-match"}
    assert {(r["generator"], r["measure"]) for r in tidy} == {
        (g, m) for g in board for m in measures
        if g != TRAIN_ROW or m not in ("nn-ratio", "subsequence-match")}
    for png in ("quality_vs_memorization.png", "samples.png"):
        assert (out / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "rows" / "sines").glob("*.json"))) == len(board)


def test_numbers_are_those_of_the_measures_called_directly(tmp_path):
    plan = make_plan(datasets="ar-process", generators="copycat,gaussian-noise",
                     metrics="acf-distance,ts-mmd", probes="nn-ratio",
                     settings={"ar-process": {"n_train": 20, "n_holdout": 22,
                                              "n_timesteps": 32}}, seed=3)
    rows, facts = run_dataset(plan, "ar-process", tmp_path)
    splits = get_dataset("ar-process")(n_train=20, n_holdout=22, n_timesteps=32).load()
    reference, fresh = holdout_halves(splits.holdout, 3)
    assert facts["n_reference"] == 11 and len(fresh) == 11
    for row in rows:
        if row.generator == TRAIN_ROW:
            continue
        if row.generator == REAL_ROW:
            samples = fresh
        else:
            samples = get_generator(row.generator)().fit(splits.train).sample(11, 3)
        acf = get_metric("acf-distance")(seed=3).prepare(reference).evaluate(samples)
        mmd = get_metric("ts-mmd")(seed=3, standardize="reference").prepare(
            reference).evaluate(samples)
        nn = get_probe("nn-ratio")(seed=3).prepare(splits.train).evaluate(samples)
        assert row.results["acf-distance"].values == acf.values
        assert row.results["ts-mmd"].values == mmd.values
        assert row.results["nn-ratio"].values == nn.values


class _Warns(Generator):
    name = "warns-on-fit"
    modality = "timeseries"

    def fit(self, train):
        warnings.warn("planted caveat", DataWarning, stacklevel=2)
        self.shape_ = train.shape[1:]
        return self

    def sample(self, n, seed):
        return np.random.default_rng(seed).normal(size=(n, *self.shape_)).astype(np.float32)


class _FailsOnSample(_Warns):
    name = "fails-on-sample"

    def fit(self, train):
        self.shape_ = train.shape[1:]
        return self

    def sample(self, n, seed):
        raise RuntimeError("CUDA out of memory\nTraceback lines that must not show")


class _FailsOnFit(_FailsOnSample):
    name = "fails-on-fit"

    def fit(self, train):
        return {}["missing key"]  # a plain KeyError from plugin code


class _NaNs(_FailsOnSample):
    name = "returns-nan"

    def sample(self, n, seed):
        return np.full((n, *self.shape_), np.nan)


class _Flaky(_FailsOnSample):
    """Fails until the marker file exists (a transient failure)."""

    name = "flaky"
    marker = None

    def sample(self, n, seed):
        if not _Flaky.marker.exists():
            raise OSError("disk full")
        return np.random.default_rng(seed).normal(size=(n, *self.shape_)).astype(np.float32)


class _Interrupts(_FailsOnSample):
    name = "interrupts"
    armed = True

    def fit(self, train):
        if _Interrupts.armed:
            raise KeyboardInterrupt
        return super().fit(train)


class _Plugin:
    @hookimpl
    def register_generators(self):
        return [_Warns, _FailsOnSample, _FailsOnFit, _NaNs, _Flaky, _Interrupts]


@pytest.fixture
def test_generators(fresh_host):
    register_plugin(_Plugin(), name="test-generators")


def test_any_plugin_exception_is_a_failed_row_and_the_rest_goes_on(test_generators, tmp_path):
    plan = make_plan(datasets="ar-process",
                     generators="warns-on-fit,fails-on-sample,fails-on-fit,returns-nan,var",
                     metrics="marginal-distance", probes="nn-ratio",
                     settings={"ar-process": SMALL_AR})
    run_benchmark(tmp_path / "b", plan, quiet=True)
    board = _leaderboard(tmp_path / "b")
    assert board["warns-on-fit"]["status"] == "ok" and board["var"]["status"] == "ok"
    assert board["fails-on-sample"]["status"] == "failed"
    assert board["fails-on-sample"]["reason"] == "RuntimeError: CUDA out of memory"
    assert board["fails-on-fit"]["reason"] == "KeyError: 'missing key'"
    assert "finite numbers" in board["returns-nan"]["reason"]
    assert board["var"]["marginal-distance"] != ""
    table = (tmp_path / "b" / "leaderboard.md").read_text()
    assert "| fails-on-sample | failed: RuntimeError: CUDA out of memory |" in table
    assert "Traceback" not in table and "planted caveat" in table
    prov = json.loads((tmp_path / "b" / "provenance.json").read_text())
    assert prov["status"] == "finished"


class _Broken:
    """A metric whose evaluate raises: its cell is empty, the row and the others stay."""

    @hookimpl
    def register_metrics(self):
        from probekit_plugins.metrics.acf_distance import ACFDistance

        class Broken(ACFDistance):
            name = "broken-metric"

            def compute(self):
                raise ZeroDivisionError("planted")

        return [Broken]


def test_a_failing_measure_leaves_its_cell_empty(fresh_host, tmp_path):
    register_plugin(_Broken(), name="broken")
    plan = make_plan(datasets="ar-process", generators="copycat", probes="nn-ratio",
                     metrics="broken-metric,acf-distance", settings={"ar-process": SMALL_AR})
    rows, _ = run_dataset(plan, "ar-process", tmp_path)
    copycat = rows[-1]
    assert copycat.status == "ok" and "acf-distance" in copycat.results
    assert copycat.failures == {"broken-metric": "ZeroDivisionError: planted"}
    table = leaderboard_markdown(rows, leaderboard_columns(plan), plan, 1.0)
    assert "copycat: broken-metric failed: ZeroDivisionError: planted" in table


def test_rows_are_saved_as_they_finish_and_reused(test_generators, tmp_path):
    _Flaky.marker = tmp_path / "fixed"
    out = tmp_path / "b"
    plan = make_plan(datasets="ar-process", generators="copycat,flaky,var",
                     metrics="acf-distance", probes="nn-ratio",
                     settings={"ar-process": SMALL_AR})
    first = run_benchmark(out, plan, quiet=True)
    assert _leaderboard(out)["flaky"]["reason"] == "OSError: disk full"
    _Flaky.marker.touch()
    second = run_benchmark(out, plan, quiet=True)
    reused = {r["generator"]: r["reused"] for r in second["rows"]}
    # finished rows are read back; the failed one is retried (and now works)
    assert reused == {REAL_ROW: True, TRAIN_ROW: True, "copycat": True, "flaky": False,
                      "var": True}
    assert _leaderboard(out)["flaky"]["status"] == "ok"
    same = {r["generator"]: r["results"] for r in first["rows"] if r["generator"] != "flaky"}
    assert same == {r["generator"]: r["results"] for r in second["rows"]
                    if r["generator"] != "flaky"}
    # a changed generator setting recomputes that row only
    changed = make_plan(datasets="ar-process", generators="copycat,flaky,var",
                        metrics="acf-distance", probes="nn-ratio",
                        settings={"ar-process": SMALL_AR, "var": {"order": 1}})
    third = run_benchmark(out, changed, quiet=True)
    assert [r["generator"] for r in third["rows"] if not r["reused"]] == ["var"]
    # a changed measure setting recomputes everything
    other = make_plan(datasets="ar-process", generators="copycat,flaky,var",
                      metrics="acf-distance", probes="nn-ratio",
                      settings={"ar-process": SMALL_AR, "var": {"order": 1},
                                "nn-ratio": {"k": 0.5}})
    assert not any(r["reused"] for r in run_benchmark(out, other, quiet=True)["rows"])


def test_ctrl_c_keeps_finished_rows(test_generators, tmp_path, capsys):
    out = tmp_path / "b"
    plan = make_plan(datasets="ar-process", generators="copycat,interrupts,var",
                     metrics="acf-distance", probes="nn-ratio",
                     settings={"ar-process": SMALL_AR})
    _Interrupts.armed = True
    with pytest.raises(EvaluationInterrupted, match="3 finished row"):
        run_benchmark(out, plan, quiet=True)
    assert "Run the same command again" in capsys.readouterr().err
    assert json.loads((out / "provenance.json").read_text())["status"] == "interrupted"
    assert list(_leaderboard(out)) == [REAL_ROW, TRAIN_ROW, "copycat"]
    _Interrupts.armed = False
    again = run_benchmark(out, plan, quiet=True)
    assert [r["generator"] for r in again["rows"] if not r["reused"]] == ["interrupts", "var"]


def test_samples_from_a_file_with_one_flag(tmp_path, capsys):
    splits = get_dataset("ar-process")(**SMALL_AR).load()
    reference, _ = holdout_halves(splits.holdout, 0)
    # "another framework's model": copies of training series, saved as a 2-d .npy
    copies = splits.train[np.arange(len(reference)) % len(splits.train), :, 0]
    np.save(tmp_path / "copies.npy", copies)
    np.save(tmp_path / "few.npy", copies[:2])
    np.save(tmp_path / "short.npy", copies[:, :10])
    out = tmp_path / "b"
    args = ["bench", "timeseries", "--out", str(out), "--quiet", "--datasets", "ar-process",
            "--metrics", "acf-distance", "--probes", "nn-ratio",
            "--generators", f"file:mine={tmp_path / 'copies.npy'},file:few="
                            f"{tmp_path / 'few.npy'},file:short={tmp_path / 'short.npy'}",
            *(f"--set=ar-process.{k}={v}" for k, v in SMALL_AR.items())]
    assert main(args) == 0
    board = _leaderboard(out)
    assert board["mine"]["status"] == "ok" and float(board["mine"]["nn-ratio"]) == 1.0
    assert board["few"]["reason"].startswith("ValidationError: samples-file: ")
    assert "holds 2 series; 6 are needed" in board["few"]["reason"]
    assert "(n_timesteps, n_channels) = (24, 1); got (10, 1)" in board["short"]["reason"]
    prov = json.loads((out / "provenance.json").read_text())
    fitted = next(r for r in prov["rows"] if r["generator"] == "mine")["fit"]["fitted"]
    assert fitted["n_series"] == len(reference) and len(fitted["sha256"]) == 64


def test_two_user_datasets_in_one_run(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "walks.npy", np.cumsum(rng.normal(size=(30, 20)), axis=1))
    np.save(tmp_path / "noise.npy", rng.normal(size=(30, 20)))
    plan = make_plan(datasets="a=series-file,series-file", generators="copycat",
                     metrics="acf-distance", probes="nn-ratio",
                     settings={"a": {"train": str(tmp_path / "walks.npy")},
                               "series-file": {"train": str(tmp_path / "noise.npy")}})
    assert [plan.label(k) for k in plan.datasets] == ["a", "noise"]
    run_benchmark(tmp_path / "b", plan, quiet=True)
    with (tmp_path / "b" / "leaderboard.csv").open() as f:
        datasets = [r["dataset"] for r in csv.DictReader(f)]
    assert datasets == ["a"] * 3 + ["noise"] * 3
    table = (tmp_path / "b" / "leaderboard.md").read_text()
    assert "## a\n" in table and "## noise\n" in table


def test_warnings_are_listed_once_per_dataset_without_a_doubled_prefix(tmp_path):
    plan = make_plan(datasets="ar-process", generators="copycat,var", metrics="ts-fd",
                     probes="nn-ratio", settings={"ar-process": SMALL_AR})
    rows, _ = run_dataset(plan, "ar-process", tmp_path)
    fd = [w for w in rows[-1].warnings if "rank-deficient" in w]
    assert fd and fd[0].startswith("ts-fd: ") and not fd[0].startswith("ts-fd: ts-fd:")
    table = leaderboard_markdown(rows, leaderboard_columns(plan), plan, 1.0)
    assert table.count("rank-deficient") == 1 and "- all rows: ts-fd: " in table


def _row(name, **values):
    results = {}
    for measure, value in values.items():
        measure = measure.replace("_", "-")
        prov = Provenance(measure=measure, plugin="x", plugin_version="0",
                          probekit_version="0", settings={})
        results[measure] = Result(measure=measure, headline="v", values={"v": value},
                                  provenance=prov)
    return Row("d", name, results=results)


def test_plot_memorization_is_the_larger_probe_and_best_last_is_said():
    probes = ("nn-ratio", "subsequence-match")
    assert memorization_value(_row("copycat", nn_ratio=1.0, subsequence_match=0.2),
                              probes) == 1.0
    assert memorization_value(_row("splice", nn_ratio=0.0, subsequence_match=0.9),
                              probes) == 0.9
    assert memorization_value(_row("x"), probes) is None
    row = Row("d", "ddpm-best", fit_info={"fitted": {"sampled_step": 300, "last_step": 300,
                                                     "checkpoint": "best"}})
    assert checkpoint_note(row) == "step 300 = last"
    row.fit_info["fitted"]["sampled_step"] = 200
    assert checkpoint_note(row) == "step 200"


@pytest.mark.parametrize(("args", "message"), [
    (["--generators", "copycat,nope"], "nope"),
    (["--datasets", "digits"], "is for image data"),
    (["--generators", "copycat", "--set", "splice.n_pieces=4"], "not among the chosen"),
    (["--generators", "copycat,copycat"], "may appear once"),
    (["--generators", "file:mine"], "file:LABEL=PATH"),
    (["--generators", "copycat", "--set", "copycat.noize=0.1"], "unknown option 'noize'"),
    (["--datasets", "sines,trace", "--set", "subsequence-match.train=x.csv"],
     "one reference file"),
])
def test_bad_names_and_settings_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "bench"
    assert main(["bench", "timeseries", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unknown_generator_is_a_lookup_error():
    with pytest.raises(UnknownNameError):
        make_plan(generators="copykat")
    assert "ts-mmd" in QUALITY_METRICS


@pytest.fixture(scope="module")
def seasonal(tmp_path_factory):
    """A seasonal AR recording of 1400 steps (weekly-like period 52)."""
    rng = np.random.default_rng(0)
    t = np.arange(1400)
    ar, e = np.zeros(1400), rng.normal(size=1400)
    for i in range(2, 1400):
        ar[i] = 0.7 * ar[i - 1] - 0.2 * ar[i - 2] + e[i]
    folder = tmp_path_factory.mktemp("seasonal")
    rec = 2 * np.sin(2 * np.pi * t / 52) + 0.01 * t + 0.5 * ar
    np.save(folder / "rec.npy", rec)
    return folder, rec


def test_recording_dataset_gives_the_probe_its_training_stretch(seasonal, tmp_path):
    folder, _ = seasonal
    plan = make_plan(datasets="recording", generators="copycat,splice,var",
                     metrics="acf-distance", probes="subsequence-match",
                     settings={"recording": {"path": str(folder / "rec.npy"), "window": 48,
                                             "stride": 2}})
    assert plan.label("recording") == "rec"
    rows, facts = run_dataset(plan, "recording", tmp_path)
    assert "continuous training stretch of 1 recording(s), 1050 steps" in (
        facts["probe_references"]["subsequence-match"])
    value = {r.generator: r.results.get("subsequence-match") for r in rows}
    assert value["copycat"].value == 1.0 and value["splice"].value >= 0.95
    assert value[REAL_ROW].value <= 0.02 and value["var"].value <= 0.05
    assert value[TRAIN_ROW] is None  # quality metrics only


def test_probe_reference_from_a_file(seasonal, tmp_path):
    """Windows prepared elsewhere (stride 1, each z-scored on its own; the holdout from a later
    period) as series-file datasets, the raw recording as the probe's reference."""
    _, rec = seasonal
    windows = np.lib.stride_tricks.sliding_window_view(rec, 48)
    windows = (windows - windows.mean(1, keepdims=True)) / windows.std(1, keepdims=True)
    np.save(tmp_path / "train.npy", windows[:1000].astype(np.float32))
    np.save(tmp_path / "hold.npy", windows[1100:].astype(np.float32))
    np.save(tmp_path / "stretch.npy", rec[: 1000 + 47])  # what the training windows cover
    np.save(tmp_path / "everything.npy", rec)

    def run(reference):
        plan = make_plan(datasets="series-file", generators="copycat,var",
                         metrics="acf-distance", probes="subsequence-match",
                         settings={"series-file": {"train": str(tmp_path / "train.npy"),
                                                   "holdout": str(tmp_path / "hold.npy")},
                                   "subsequence-match": {"train": str(reference)}})
        assert plan.reference_files == {"subsequence-match": str(reference)}
        rows, facts = run_dataset(plan, "series-file", tmp_path)
        assert facts["probe_references"]["subsequence-match"].startswith("file ")
        return {r.generator: r for r in rows}

    rows = run(tmp_path / "stretch.npy")
    value = {g: r.results.get("subsequence-match") for g, r in rows.items()}
    assert value["copycat"].value == 1.0
    assert value[REAL_ROW].value <= 0.02 and value["var"].value <= 0.05
    # a reference that includes the held-out period flags the fresh series: said in the row
    leaky = run(tmp_path / "everything.npy")[REAL_ROW]
    assert leaky.results["subsequence-match"].value == 1.0
    assert any("does its reference hold held-out data" in w for w in leaky.warnings)


def test_a_missing_reference_file_fails_that_probe_only(tmp_path):
    plan = make_plan(datasets="ar-process", generators="copycat", metrics="acf-distance",
                     probes="nn-ratio,subsequence-match",
                     settings={"ar-process": SMALL_AR,
                               "subsequence-match": {"train": str(tmp_path / "nope.npy")}})
    rows, facts = run_dataset(plan, "ar-process", tmp_path)
    copycat = rows[-1]
    assert "nn-ratio" in copycat.results and "subsequence-match" not in copycat.results
    assert copycat.failures["subsequence-match"].startswith("not prepared: reference file: ")
    assert "subsequence-match" in facts["measure_failures"]
