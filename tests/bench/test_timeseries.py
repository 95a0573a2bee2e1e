"""probekit bench timeseries: the --quick run end to end (planted copiers caught, files,
provenance), parity with calling the measures directly, failures and warnings kept with their
row, bad names rejected before anything is written."""

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
from probekit.bench.timeseries import (
    DEFAULT_GENERATORS,
    REAL_ROW,
    holdout_halves,
    leaderboard_columns,
    leaderboard_markdown,
    make_plan,
    run_dataset,
)
from probekit.cli import main
from probekit.errors import DataWarning, UnknownNameError, ValidationError


def _leaderboard(out):
    with (out / "leaderboard.csv").open() as f:
        return {r["generator"]: r for r in csv.DictReader(f)}


def test_quick_benchmark_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "timeseries", "--quick", "--out", str(out), "--quiet"]) == 0
    assert "leaderboard.md" in capsys.readouterr().out
    board = _leaderboard(out)
    assert list(board) == [REAL_ROW, *DEFAULT_GENERATORS]  # one row per generator (+ real)
    assert all(r["dataset"] == "sines" and r["status"] in ("ok", "reference")
               for r in board.values())
    value = {g: {k: float(v) for k, v in r.items() if k in (
        "ts-fd", "nn-ratio", "subsequence-match")} for g, r in board.items()}
    # planted truths: whole copies, pieces, and nothing
    assert value["copycat"]["nn-ratio"] == 1.0 and value["copycat"]["subsequence-match"] == 1.0
    assert value["splice"]["subsequence-match"] >= 0.9 and value["splice"]["nn-ratio"] <= 0.1
    for name in ("gaussian-noise", REAL_ROW):
        assert value[name]["nn-ratio"] == 0.0 and value[name]["subsequence-match"] <= 0.05
    assert value["gaussian-noise"]["ts-fd"] > 2 * value[REAL_ROW]["ts-fd"]

    prov = json.loads((out / "provenance.json").read_text())
    assert prov["plan"]["quick"] and prov["plan"]["seed"] == 0
    assert {"probekit", "numpy", "torch"} <= set(prov["versions"])
    facts = prov["datasets"]["sines"]
    assert facts["series_shape"] == [32, 1] and facts["n_samples"] == facts["n_reference"]
    assert facts["measure_settings"]["subsequence-match"]["window"] == 8
    ddpm = {r["generator"]: r["fit"]["fitted"] for r in prov["rows"]
            if r["generator"].startswith("ddpm-")}
    assert ddpm["ddpm-best"]["run_dir"] == ddpm["ddpm-last"]["run_dir"]
    assert ddpm["ddpm-best"]["sampled_step"] == ddpm["ddpm-best"]["best_step"]
    assert ddpm["ddpm-last"]["sampled_step"] == ddpm["ddpm-last"]["last_step"] == 300
    results = next(r for r in prov["rows"] if r["generator"] == "copycat")["results"]
    assert results["nn-ratio"]["provenance"]["plugin"] == "nn-ratio"

    table = (out / "leaderboard.md").read_text()
    assert table.count("\n| ") == 1 + len(board)  # header + one line per row
    with (out / "results.csv").open() as f:
        tidy = list(csv.DictReader(f))
    assert {(r["generator"], r["measure"]) for r in tidy} == {
        (g, m) for g in board for m in ("ts-fd", "discriminative-score", "predictive-score",
                                        "marginal-distance", "acf-distance", "nn-ratio",
                                        "subsequence-match")}
    for png in ("quality_vs_memorization.png", "samples.png"):
        assert (out / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_numbers_are_those_of_the_measures_called_directly(tmp_path):
    plan = make_plan(datasets="ar-process", generators="copycat,gaussian-noise",
                     metrics="acf-distance", probes="nn-ratio",
                     settings={"ar-process": {"n_train": 20, "n_holdout": 22,
                                              "n_timesteps": 32}}, seed=3)
    rows, facts = run_dataset(plan, "ar-process", tmp_path)
    splits = get_dataset("ar-process")(n_train=20, n_holdout=22, n_timesteps=32).load()
    reference, fresh = holdout_halves(splits.holdout, 3)
    assert facts["n_reference"] == 11 and len(fresh) == 11
    for row in rows:
        if row.generator == REAL_ROW:
            samples = fresh
        else:
            samples = get_generator(row.generator)().fit(splits.train).sample(11, 3)
        acf = get_metric("acf-distance")(seed=3).prepare(reference).evaluate(samples)
        nn = get_probe("nn-ratio")(seed=3).prepare(splits.train).evaluate(samples)
        assert row.results["acf-distance"].values == acf.values
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


class _Fails(_Warns):
    name = "fails-on-sample"

    def fit(self, train):
        self.shape_ = train.shape[1:]
        return self

    def sample(self, n, seed):
        raise ValidationError("fails-on-sample: planted failure.")


class _Plugin:
    @hookimpl
    def register_generators(self):
        return [_Warns, _Fails]


def test_warnings_and_failures_stay_with_their_row(fresh_host, tmp_path):
    register_plugin(_Plugin(), name="test-generators")
    plan = make_plan(datasets="ar-process", generators="warns-on-fit,fails-on-sample",
                     metrics="marginal-distance", probes="nn-ratio",
                     settings={"ar-process": {"n_train": 10, "n_holdout": 8,
                                              "n_timesteps": 16}})
    rows, _ = run_dataset(plan, "ar-process", tmp_path)
    by_name = {r.generator: r for r in rows}
    assert by_name["warns-on-fit"].status == "ok"
    assert any("planted caveat" in w for w in by_name["warns-on-fit"].warnings)
    assert by_name["fails-on-sample"].status.startswith("failed: ")
    assert "planted failure" in by_name["fails-on-sample"].status
    assert not by_name["fails-on-sample"].results
    table = leaderboard_markdown(rows, leaderboard_columns(plan), plan, 1.0)
    assert "| fails-on-sample | failed: " in table and "planted caveat" in table


@pytest.mark.parametrize(("args", "message"), [
    (["--generators", "copycat,nope"], "nope"),
    (["--datasets", "digits"], "is for image data"),
    (["--generators", "copycat", "--set", "splice.n_pieces=4"], "not among the chosen"),
    (["--generators", "copycat,copycat"], "may appear once"),
])
def test_bad_names_and_settings_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "bench"
    assert main(["bench", "timeseries", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unknown_generator_is_a_lookup_error():
    with pytest.raises(UnknownNameError):
        make_plan(generators="copykat")
