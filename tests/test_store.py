"""Run store: tidy rows, one transaction per checkpoint, resume, config checks, SIGKILL safety."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from probekit.errors import ConfigMismatchError, InputFileError, ProbekitError, ValidationError
from probekit.store import (
    RunStore,
    config_differences,
    load_config,
    load_results,
    load_rows,
    load_timings,
)
from probekit.types import Provenance, Result

CONFIG = {
    "series": "/data/run",
    "adapter": "samples",
    "adapter_settings": {},
    "train_sha256": "aa",
    "holdout_sha256": None,
    "dataset": None,
    "dataset_settings": {},
    "modality": "image",
    "n_samples": 8,
    "seed": 0,
    "steps": [1, 2],
    "measures": [
        {"name": "a", "kind": "probe", "headline": "f", "higher_is_better": False,
         "settings": {"k": 0.5}, "plugin": "p", "version": "1"},
        {"name": "b", "kind": "metric", "headline": "g", "higher_is_better": False,
         "settings": {}, "plugin": "p", "version": "1"},
    ],
}


def make_result(measure: str, step: int, with_ci: bool = True) -> Result:
    """A deterministic result whose numbers encode (measure, step)."""
    base = step * 10.0 + (1.0 if measure == "a" else 2.0)
    return Result(
        measure=measure,
        headline="f" if measure == "a" else "g",
        values={"f" if measure == "a" else "g": base, "extra": base / 2, "nan_field": math.nan},
        ci={"f" if measure == "a" else "g": (base - 1, base + 1)} if with_ci else {},
        per_sample={"d1": np.arange(4.0) + step, "memorized": np.array([1, 0, 0, 1], bool)}
        if measure == "a" else {},
        warnings=("careful",) if measure == "b" else (),
        provenance=Provenance(measure=measure, plugin="p", plugin_version="1",
                              probekit_version="0.1.0", settings={"k": 0.5}, seed=0,
                              n_reference=10, n_samples=8, extra={"x": 1}),
    )


def fill(store: RunStore, steps=(1, 2)) -> None:
    for step in steps:
        store.commit_checkpoint(
            step, f"ckpt-{step}.pt", [make_result("a", step), make_result("b", step)],
            samples=np.full((3, 1, 2, 2), step, np.float32), n_samples=8,
            seconds={"load": 0.1, "generate": 0.2, "measures": 0.3},
            measure_seconds={"a": 0.1, "b": 0.2},
        )


def test_rows_are_tidy_and_round_trip(tmp_path):
    with RunStore.open(tmp_path / "run", CONFIG) as store:
        fill(store)
        assert store.finished() == {(1, "a"), (1, "b"), (2, "a"), (2, "b")}
    rows = load_rows(tmp_path / "run")
    assert [(r["step"], r["measure"], r["field"]) for r in rows] == [
        (s, m, f) for s in (1, 2) for m in ("a", "b")
        for f in (("f" if m == "a" else "g"), "extra", "nan_field")
    ]
    first = rows[0]
    assert set(first) == {"step", "measure", "field", "value", "ci_low", "ci_high"}
    assert (first["value"], first["ci_low"], first["ci_high"]) == (11.0, 10.0, 12.0)
    extra = rows[1]
    assert extra["value"] == 5.5 and math.isnan(extra["ci_low"]) and math.isnan(extra["ci_high"])
    assert math.isnan(rows[2]["value"])

    run = tmp_path / "run"
    config = load_config(run)
    assert config["kind"] == "probekit-evaluation" and config["n_samples"] == 8
    assert np.load(run / "samples" / "step-00000002.npy").tolist() == np.full(
        (3, 1, 2, 2), 2.0).tolist()
    with np.load(run / "artifacts" / "a" / "step-00000001.npz") as art:
        assert art["d1"].tolist() == [1.0, 2.0, 3.0, 4.0]
        assert art["memorized"].dtype == bool
    assert not (run / "artifacts" / "b").exists()  # no per-sample arrays, no file

    back = {(r.measure, r.provenance.n_samples): r for r in load_results(run, step=2)}
    original = make_result("a", 2)
    restored = back[("a", 8)]
    assert restored.values["f"] == original.values["f"]
    assert restored.ci["f"] == original.ci["f"]
    assert restored.provenance == original.provenance
    assert restored.per_sample["d1"].tolist() == original.per_sample["d1"].tolist()
    assert back[("b", 8)].warnings == ("careful",)
    assert [t["step"] for t in load_timings(run)] == [1, 2]
    assert load_timings(run)[0]["seconds_generate"] == 0.2


def test_readers_refuse_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(InputFileError, match="not an evaluation run directory"):
        load_rows(tmp_path)
    with pytest.raises(InputFileError, match="not an evaluation run directory"):
        load_config(tmp_path)


def test_same_config_resumes_and_grows(tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, CONFIG) as store:
        fill(store, steps=[1])
    more = {**CONFIG, "steps": [2, 3],
            "measures": [*CONFIG["measures"],
                         {"name": "c", "kind": "probe", "headline": "h", "higher_is_better": False,
                          "settings": {}, "plugin": "p", "version": "1"}]}
    with RunStore.open(run, more) as store:
        assert store.finished() == {(1, "a"), (1, "b")}
        assert [m["name"] for m in store.config["measures"]] == ["a", "b", "c"]
        assert store.config["steps"] == [1, 2, 3]
    # fewer measures later keeps the others in the config (the run keeps their rows)
    with RunStore.open(run, {**CONFIG, "measures": CONFIG["measures"][1:]}) as store:
        assert [m["name"] for m in load_config(run)["measures"]] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"n_samples": 16}, "n_samples: 8 (stored) vs 16 (now)"),
        ({"train_sha256": "bb"}, "train_sha256: 'aa' (stored) vs 'bb' (now)"),
        ({"adapter_settings": {"key": "x"}}, 'adapter_settings: key=<unset>'),
        ({"measures": [{**CONFIG["measures"][0], "settings": {"k": 0.25}}]},
         "a settings: k=0.5 (stored) vs 0.25 (now)"),
        ({"measures": [{**CONFIG["measures"][0], "version": "2"}]},
         "a version: '1' (stored) vs '2' (now)"),
    ],
)
def test_another_config_is_refused_with_what_differs(tmp_path, change, expected):
    run = tmp_path / "run"
    with RunStore.open(run, CONFIG) as store:
        fill(store, steps=[1])
    with pytest.raises(ConfigMismatchError) as info:
        RunStore.open(run, {**CONFIG, **change})
    message = str(info.value)
    assert expected in message and "--overwrite" in message
    assert isinstance(info.value, ValueError)
    assert load_config(run)["n_samples"] == 8  # untouched
    assert len(load_rows(run)) == 6


def test_timescale_settings_are_not_a_mismatch():
    assert config_differences({**CONFIG, "timescales": {"mem_level": 0.01}},
                              {**CONFIG, "timescales": {"mem_level": 0.05}}) == []


def test_overwrite_starts_again_but_keeps_the_cache(tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, CONFIG) as store:
        fill(store)
    (run / "cache" / "reference").mkdir(parents=True)
    (run / "cache" / "reference" / "x.npz").write_bytes(b"keep")
    (run / "report.html").write_text("old")
    with RunStore.open(run, {**CONFIG, "n_samples": 16}, overwrite=True) as store:
        assert store.finished() == set()
    assert load_rows(run) == []
    assert load_config(run)["n_samples"] == 16
    assert not (run / "samples").exists() and not (run / "artifacts").exists()
    assert not (run / "report.html").exists()
    assert (run / "cache" / "reference" / "x.npz").read_bytes() == b"keep"


def test_a_run_without_results_takes_the_new_config(tmp_path):
    run = tmp_path / "run"
    RunStore.open(run, CONFIG).close()
    with RunStore.open(run, {**CONFIG, "n_samples": 16}) as store:
        assert store.config["n_samples"] == 16


def test_refuses_folders_that_are_not_evaluation_runs(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ValidationError, match=r"not an evaluation run directory.*thesis\.tex"):
        RunStore.open(tmp_path / "mine", CONFIG, overwrite=True)
    assert (tmp_path / "mine" / "thesis.tex").exists()
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "config.json").write_text(json.dumps({"kind": "probekit-reference-run"}))
    with pytest.raises(ValidationError, match="RUN/eval"):
        RunStore.open(ref, CONFIG, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValidationError, match="must be a folder"):
        RunStore.open(tmp_path / "file", CONFIG)


def test_failed_commit_leaves_nothing_of_that_checkpoint(tmp_path):
    run = tmp_path / "run"
    with RunStore.open(run, CONFIG) as store:
        fill(store, steps=[1])
        bad = make_result("b", 2)
        object.__setattr__(bad.provenance, "extra", {"x": object()})  # not JSON-able
        with pytest.raises(TypeError, match="JSON serializable"):
            store.commit_checkpoint(2, "ckpt-2.pt", [make_result("a", 2), bad])
        assert store.finished() == {(1, "a"), (1, "b")}
        assert {r["step"] for r in load_rows(run)} == {1}
        with pytest.raises(ProbekitError, match="another process"):
            store.commit_checkpoint(1, "ckpt-1.pt", [make_result("a", 1)])
        fill(store, steps=[2])  # the store still works after both failures
    assert {r["step"] for r in load_rows(run)} == {1, 2}


KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_store import CONFIG, fill
    from probekit.store import RunStore

    class KillAfterRows:
        # forwards to the real connection; SIGKILLs the process inside the transaction of
        # step 2, after the rows of measure "a" are inserted and before the commit
        def __init__(self, con):
            self.con = con
        def __getattr__(self, name):
            return getattr(self.con, name)
        def execute(self, sql, *args):
            if sql.startswith("INSERT INTO evaluations") and args[0][0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return self.con.execute(sql, *args)

    store = RunStore.open(sys.argv[1], CONFIG)
    store._con = KillAfterRows(store._con)
    fill(store, steps=[1, 2, 3])
    """
)


def test_sigkill_inside_a_transaction_then_resume_equals_uninterrupted(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT.format(tests=os.path.dirname(__file__)))
    proc = subprocess.run([sys.executable, str(script), str(killed)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    # step 2's artifact file was written before the transaction; its rows were not committed
    assert (killed / "artifacts" / "a" / "step-00000002.npz").exists()
    with RunStore.open(killed, CONFIG) as store:
        assert store.finished() == {(1, "a"), (1, "b")}
        assert {r["step"] for r in load_rows(killed)} == {1}
        todo = [s for s in (1, 2, 3) if (s, "a") not in store.finished()]
        fill(store, steps=todo)
    with RunStore.open(clean, CONFIG) as store:
        fill(store, steps=[1, 2, 3])

    def same(rows):
        return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
                 for k, v in r.items()} for r in rows]

    assert same(load_rows(killed)) == same(load_rows(clean))
    assert len(load_rows(killed)) == 3 * 2 * 3
    for step in (1, 2, 3):
        a = np.load(killed / "artifacts" / "a" / f"step-{step:08d}.npz")["d1"]
        b = np.load(clean / "artifacts" / "a" / f"step-{step:08d}.npz")["d1"]
        assert a.tolist() == b.tolist()
