"""Reports on run directories written through the run store, with planted copying."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest

from probekit import reports
from probekit.cli import main
from probekit.errors import ValidationError
from probekit.registry import get_probe
from probekit.store import RunStore, load_rows
from probekit.timescales import estimate_tau_gen, estimate_tau_mem, fit_scaling
from probekit.types import Provenance, Result

STEPS = [0, 100, 300, 1000, 3000, 10000, 30000, 100000]
N_SAMPLES = 200
N_KEEP = 64


def copy_fraction(step: int, onset: float) -> float:
    """Planted fraction of copied samples: 0 until ``onset``, then 0.15 per decade (max 0.6)."""
    if step <= onset:
        return 0.0
    return min(0.6, 0.15 * math.log10(step / onset))


def planted_fid(step: int) -> float:
    return 200.0 / (1.0 + step / 50.0) + 12.0


def _fid_result(step: int, with_ci: bool) -> Result:
    value = planted_fid(step)
    return Result(
        measure="fid",
        headline="fid",
        values={"fid": value},
        ci={"fid": (value - 3.0, value + 3.0)} if with_ci else {},
        provenance=Provenance(measure="fid", plugin="test", plugin_version="0",
                              probekit_version="0", settings={}),
    )


def _gap_result(step: int, onset: float) -> Result:
    """A loss gap (holdout - train) that is 0 until ``onset``, then grows; CI half-width 0.01."""
    gap = 0.0 if step <= onset else 0.02 * math.log10(step / onset)
    return Result(
        measure="loss-gap", headline="gap", values={"gap": gap},
        ci={"gap": (gap - 0.01, gap + 0.01)},
        provenance=Provenance(measure="loss-gap", plugin="test", plugin_version="0",
                              probekit_version="0", settings={}),
    )


def make_run(root, *, n_train=50, onset=1000.0, modality="image", steps=STEPS, fid=True,
             fid_ci=False, seed=0, timescales=None, gap=False):
    """A run directory written through the store: real nn-ratio results on planted copies."""
    rng = np.random.default_rng(seed)
    if modality == "image":
        train = rng.normal(size=(n_train, 1, 8, 8)).astype(np.float32)
    else:
        t = np.linspace(0, 4 * np.pi, 32)
        phase = rng.uniform(0, 2 * np.pi, n_train)
        freq = rng.uniform(0.5, 2.0, n_train)
        train = np.sin(freq[:, None] * t[None] + phase[:, None])[:, :, None]
        train = (train + 0.3 * rng.normal(size=train.shape)).astype(np.float32)
    root.mkdir(parents=True, exist_ok=True)
    train_path = root / "train.npy"
    np.save(train_path, train)
    run_dir = root / "run"
    measures = [{"name": "nn-ratio", "kind": "probe", "headline": "f_mem",
                 "higher_is_better": False, "settings": {}, "plugin": "nn-ratio",
                 "version": "0"}]
    if fid:
        measures.append({"name": "fid", "kind": "metric", "headline": "fid",
                         "higher_is_better": False, "settings": {}, "plugin": "test",
                         "version": "0"})
    config = {
        "probekit_version": "0.1.0", "series": f"synthetic-{modality}", "adapter": "samples",
        "adapter_settings": {}, "train": str(train_path), "holdout": None, "dataset": None,
        "dataset_settings": {}, "n_train": n_train, "modality": modality,
        "n_samples": N_SAMPLES, "seed": seed, "steps": list(steps), "measures": measures,
        "timescales": {"mem_measure": "nn-ratio", "mem_level": 0.01, "quality_measure": None,
                       "gen_tol": 0.1, "gen_mode": "relative", "gen_threshold": None,
                       **(timescales or {})},
        "versions": {"numpy": np.__version__},
    }
    if gap:
        measures.append({"name": "loss-gap", "kind": "probe", "headline": "gap",
                         "higher_is_better": False, "settings": {}, "plugin": "test",
                         "version": "0"})
    probe = get_probe("nn-ratio")(n_bootstrap=200).prepare(train)
    planted = {}
    with RunStore.open(run_dir, config) as store:
        for step in steps:
            n_copy = round(copy_fraction(step, onset) * N_SAMPLES)
            source = rng.choice(n_train, n_copy)
            fresh = rng.normal(size=(N_SAMPLES - n_copy, *train.shape[1:])) * train.std()
            copies = train[source] + 1e-3 * rng.normal(size=(n_copy, *train.shape[1:]))
            # copies first, so the kept samples (the first 64) show some when there are any
            samples = np.concatenate([copies, fresh]).astype(np.float32)
            planted[step] = {"n_copy": n_copy, "source": source}
            results = [probe.evaluate(samples)]
            if fid:
                results.append(_fid_result(step, fid_ci))
            if gap:
                results.append(_gap_result(step, onset))
            store.commit_checkpoint(step, f"ckpt-{step}", results, samples=samples[:N_KEEP],
                                    n_samples=N_SAMPLES)
    return run_dir, planted


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    run_dir, planted = make_run(tmp_path_factory.mktemp("img"))
    summary = reports.write_reports(run_dir, quiet=True)
    return run_dir, planted, summary


def test_outputs_are_written(image_run):
    run_dir, _, summary = image_run
    for name in ("results.csv", "summary.json", "report.html", "plots/curves.png",
                 "plots/measures.png", "plots/neighbors.png"):
        assert (run_dir / name).is_file(), name
    for png in (run_dir / "plots").iterdir():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run_dir / "summary.json").read_text())["tau_mem"] == summary["tau_mem"]
    assert not list(run_dir.rglob("*.tmp"))


def test_results_csv_is_the_tidy_store(image_run):
    run_dir, _, _ = image_run
    with open(run_dir / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    rows = load_rows(run_dir)
    assert list(table[0]) == ["step", "measure", "field", "value", "ci_low", "ci_high"]
    assert len(table) == len(rows)
    by_key = {(r["step"], r["measure"], r["field"]): r for r in rows}
    for t in table:
        r = by_key[(int(t["step"]), t["measure"], t["field"])]
        assert float(t["value"]) == r["value"]
        if math.isnan(r["ci_low"]):
            assert t["ci_low"] == ""
        else:
            assert float(t["ci_low"]) == r["ci_low"]
    f_mem = [t for t in table if t["field"] == "f_mem"]
    assert [int(t["step"]) for t in f_mem] == STEPS


def test_summary_taus_match_the_planted_copying(image_run):
    run_dir, planted, summary = image_run
    # the probe finds every planted copy and nothing else, so f_mem is the planted fraction
    f_true = np.array([planted[s]["n_copy"] / N_SAMPLES for s in STEPS])
    rows = [r for r in load_rows(run_dir) if r["field"] == "f_mem"]
    np.testing.assert_array_equal([r["value"] for r in rows], f_true)
    expected = estimate_tau_mem(STEPS, f_true, ci_low=[r["ci_low"] for r in rows],
                                ci_high=[r["ci_high"] for r in rows])
    assert summary["tau_mem"]["value"] == pytest.approx(expected.value)
    assert summary["tau_mem"]["ci_low"] == pytest.approx(expected.ci[0])
    # planted onset 1000: 0 copies at 1000, 0.15*log10(3) = 7% at 3000 -> tau between them
    assert 1000 < summary["tau_mem"]["value"] < 3000
    gen = estimate_tau_gen(STEPS, [planted_fid(s) for s in STEPS], higher_is_better=False)
    assert summary["tau_gen"]["value"] == pytest.approx(gen.value)
    t = summary["thresholds"]
    assert t["mem_level"] == 0.01
    assert t["gen_mode"] == "relative"
    assert t["gen_tol"] == 0.1
    assert t["quality_measure"] == "fid"
    assert t["gen_threshold"] == pytest.approx(gen.level)
    assert summary["versions"]["report"]["probekit"]
    assert summary["provenance"]["measures"][0]["name"] == "nn-ratio"
    evaluated = summary["provenance"]["evaluations"]["nn-ratio"]
    assert evaluated["n_checkpoints"] == len(STEPS)
    assert evaluated["provenance"]["feature_space"] == "pixels"
    assert evaluated["provenance"]["n_samples"] == N_SAMPLES


def test_recommended_checkpoint_is_the_brute_force_choice(image_run):
    run_dir, _, summary = image_run
    rows = load_rows(run_dir)
    upper = {r["step"]: r["ci_high"] for r in rows if r["field"] == "f_mem"}
    fid = {r["step"]: r["value"] for r in rows if r["measure"] == "fid"}
    safe = [s for s in STEPS if upper[s] < 0.01]
    best = min(safe, key=lambda s: (fid[s], s))
    assert summary["recommended_checkpoint"]["step"] == best
    assert summary["window"]["empty"] is False
    lo, hi = summary["tau_gen"]["value"], summary["tau_mem"]["value"]
    assert summary["window"]["checkpoints"] == [s for s in STEPS if lo <= s < hi]


def test_report_html_is_self_contained(image_run):
    run_dir, _, summary = image_run
    page = (run_dir / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 3
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page
    assert "https://" not in page
    assert "<link" not in page
    for text in ("tau_gen", "tau_mem", "mem_level", "gen_mode", "relative", "nn-ratio",
                 "recommended checkpoint", f"step {summary['recommended_checkpoint']['step']}"):
        assert text in page, text


def test_neighbor_panels_point_to_the_copied_training_samples(image_run):
    run_dir, planted, _ = image_run
    a = reports.analyze_run(run_dir, reports.read_config(run_dir), load_rows(run_dir))
    panels, _ = reports.neighbor_panels(a)
    assert 2 <= len(panels) <= reports.GRID_CHECKPOINTS
    assert panels[0].step == STEPS[0]
    assert panels[-1].step == STEPS[-1]
    train = np.load(run_dir.parent / "train.npy")
    for p in panels:
        n_copy = planted[p.step]["n_copy"]
        k = min(n_copy, len(p.generated))
        source = planted[p.step]["source"][:k]
        np.testing.assert_array_equal(p.nearest[:k], train[source])
        assert p.memorized[:k].all()
        assert not p.memorized[k:].any()


def test_rebuilding_gives_the_same_numbers(image_run, tmp_path):
    run_dir, _, summary = image_run
    again = reports.write_reports(run_dir, quiet=True, out=tmp_path)
    for key in ("tau_mem", "tau_gen", "window", "recommended_checkpoint", "thresholds"):
        assert again[key] == summary[key]
    assert (tmp_path / "results.csv").read_text() == (run_dir / "results.csv").read_text()


def test_overrides_and_absolute_mode(image_run, tmp_path):
    run_dir, _, _ = image_run
    with pytest.raises(ValidationError, match="needs gen_threshold"):
        reports.write_reports(run_dir, quiet=True, out=tmp_path,
                              overrides={"gen_mode": "absolute"})
    assert not any(tmp_path.iterdir())
    s = reports.write_reports(run_dir, quiet=True, out=tmp_path,
                              overrides={"gen_mode": "absolute", "gen_threshold": 40.0,
                                         "mem_level": 0.05})
    assert s["thresholds"]["gen_mode"] == "absolute"
    assert s["tau_gen"]["level"] == 40.0
    assert s["thresholds"]["mem_level"] == 0.05
    f_rows = [r for r in load_rows(run_dir) if r["field"] == "f_mem"]
    expected = estimate_tau_mem(STEPS, [r["value"] for r in f_rows], mem_level=0.05)
    assert s["tau_mem"]["value"] == pytest.approx(expected.value)


def test_a_failure_writes_nothing(image_run, tmp_path, monkeypatch):
    run_dir, _, _ = image_run

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(reports, "render_run_html", broken)
    with pytest.raises(RuntimeError, match="boom"):
        reports.write_reports(run_dir, quiet=True, out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_run_without_quality_and_with_ci_free_fid(tmp_path):
    run_dir, _ = make_run(tmp_path / "a", fid=False, steps=[100, 1000, 10000, 100000])
    s = reports.write_reports(run_dir, quiet=True)
    assert s["tau_gen"] is None
    assert "no quality measure" in s["window"]["basis"]
    assert any("no quality metric" in n for n in s["notes"])
    assert "tau_gen: not estimated" in s["verdict"][0]
    assert "tau_gen" in (run_dir / "report.html").read_text()


def test_timeseries_run_gets_overlays(tmp_path):
    run_dir, _ = make_run(tmp_path, modality="timeseries", steps=[100, 1000, 10000, 100000],
                          fid_ci=True)
    s = reports.write_reports(run_dir, quiet=True)
    assert (run_dir / "plots" / "neighbors.png").is_file()
    assert s["tau_gen"]["ci_low"] is not None
    assert s["tau_gen"]["ci_low"] <= s["tau_gen"]["value"] <= s["tau_gen"]["ci_high"]


def test_missing_or_changed_training_set_skips_the_grid_with_a_note(tmp_path):
    from probekit.cache import array_sha256

    run_dir, _ = make_run(tmp_path, steps=[100, 1000, 10000])
    train = np.load(tmp_path / "train.npy")
    config = json.loads((run_dir / "config.json").read_text())
    config["train_sha256"] = array_sha256(train)
    (run_dir / "config.json").write_text(json.dumps(config))
    reports.write_reports(run_dir, quiet=True, out=tmp_path / "same")
    assert (tmp_path / "same" / "plots" / "neighbors.png").is_file()

    np.save(tmp_path / "train.npy", train[::-1])  # same shape, other order: indices go wrong
    s = reports.write_reports(run_dir, quiet=True, out=tmp_path / "changed")
    assert not (tmp_path / "changed" / "plots" / "neighbors.png").exists()
    assert any("train_sha256 mismatch" in n for n in s["notes"])

    (tmp_path / "train.npy").unlink()
    s = reports.write_reports(run_dir, quiet=True, out=tmp_path / "missing")
    assert not (tmp_path / "missing" / "plots" / "neighbors.png").exists()
    assert any("no nearest-neighbour plot" in n for n in s["notes"])
    # the caller that holds the training set (the evaluator) can pass it
    reports.write_reports(run_dir, quiet=True, out=tmp_path / "given", train=train)
    assert (tmp_path / "given" / "plots" / "neighbors.png").is_file()


def test_loss_gap_onset_is_reported_beside_tau_mem(tmp_path):
    run_dir, _ = make_run(tmp_path, gap=True, onset=1000.0)
    s = reports.write_reports(run_dir, quiet=True)
    onset = s["loss_gap_onset"]
    # gap CI lower bound: -0.01 up to 1000, 0.02*log10(3)-0.01 = -0.0005 at 3000, > 0 at 10000
    low_3000 = 0.02 * math.log10(3) - 0.01
    low_10000 = 0.02 * math.log10(10) - 0.01
    frac = (0 - low_3000) / (low_10000 - low_3000)
    assert onset["status"] == "crossed"
    assert onset["step"] == pytest.approx(3000 * (10000 / 3000) ** frac)
    assert onset["used_ci"] is True
    assert any(line.startswith("loss-gap onset") for line in s["verdict"])
    assert "loss-gap onset" in (run_dir / "report.html").read_text()


def test_single_checkpoint_run(tmp_path):
    run_dir, _ = make_run(tmp_path, steps=[5000], onset=100.0)
    s = reports.write_reports(run_dir, quiet=True)
    assert s["tau_mem"]["status"] == "from_first"
    assert s["tau_mem"]["confirmed"] is False
    assert s["tau_gen"]["status"] == "from_first"
    assert s["window"]["empty"] is True
    assert "≤ 5000" in (run_dir / "report.html").read_text()


def test_empty_run_is_an_error(tmp_path):
    run_dir = tmp_path / "run"
    RunStore.open(run_dir, {"series": "x", "measures": []}).close()
    with pytest.raises(ValidationError, match="no results yet"):
        reports.write_reports(run_dir, quiet=True)


# -- several runs --------------------------------------------------------------------------------

SCALING_STEPS = [100, 300, 1000, 3000, 10000, 30000, 100000, 300000]


@pytest.fixture(scope="module")
def scaling_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("scaling")
    runs = []
    for i, n in enumerate((30, 60, 120)):
        run_dir, _ = make_run(root / f"n{n}", n_train=n, onset=20.0 * n, seed=i,
                              steps=SCALING_STEPS[: 6 + i])  # runs of different lengths
        runs.append(run_dir)
    return root, runs


def test_scaling_report(scaling_runs):
    root, runs = scaling_runs
    out = root / "scaling"
    s = reports.write_scaling_report(runs, out, quiet=True)
    for name in ("runs.csv", "summary.json", "report.html", "plots/collapse.png",
                 "plots/scaling.png"):
        assert (out / name).is_file(), name
    taus = [r["tau_mem"]["value"] for r in s["runs"]]
    expected = fit_scaling([30, 60, 120], taus)
    assert s["fit"]["slope"] == pytest.approx(expected.slope)
    assert s["fit"]["slope_ci"] == pytest.approx(list(expected.slope_ci))
    assert s["fit"]["r2"] == pytest.approx(expected.r2)
    # planted onset 20 n: tau_mem grows with n
    assert taus == sorted(taus)
    # tau_gen with one common threshold: the same planted FID curve gives the same tau_gen for
    # runs of different length; the relative mode does not
    assert s["thresholds"]["gen_mode"] == "absolute"
    assert "largest-n run (n=120)" in s["thresholds"]["gen_threshold_source"]
    gens = [r["tau_gen"]["value"] for r in s["runs"]]
    assert gens == pytest.approx([gens[0]] * 3)
    rel = [r["tau_gen_relative"]["value"] for r in s["runs"]]
    assert rel[0] < rel[1] < rel[2]
    assert s["fit"]["tau_gen_cv"] == pytest.approx(0.0, abs=1e-9)
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    with open(out / "runs.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [float(t["n"]) for t in table] == [30, 60, 120]


def test_scaling_needs_runs_that_differ_in_n(tmp_path):
    runs = [make_run(tmp_path / f"r{i}", steps=[100, 1000, 10000], seed=i)[0] for i in range(2)]
    with pytest.raises(ValidationError, match="must differ in n"):
        reports.write_scaling_report(runs, tmp_path / "out", quiet=True)


# -- command line --------------------------------------------------------------------------------


def test_cli_report_one_run(image_run, tmp_path, capsys):
    run_dir, _, _ = image_run
    assert main(["report", str(run_dir), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tau_mem" in out
    assert "recommended checkpoint" in out
    assert (tmp_path / "report.html").is_file()


def test_cli_report_several_runs(scaling_runs, tmp_path, capsys):
    _, runs = scaling_runs
    out_dir = tmp_path / "cmp"
    assert main(["report", *map(str, runs), "--out", str(out_dir), "--quiet"]) == 0
    assert (out_dir / "plots" / "collapse.png").is_file()
    for run_dir in runs:
        assert (run_dir / "report.html").is_file()
    assert capsys.readouterr().out == ""


def test_cli_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("probekit report: error:")
    assert err.count("\n") == 1
