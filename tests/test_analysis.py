"""Which curves drive tau_gen and tau_mem: measures declare a role, only quality metrics are the
tau_gen axis by default, nn-ratio is the tau_mem axis by default, any probe (or any field) can
be chosen by name, and the summary says how the choice was made."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from probekit.analysis import analyze_run, analyze_scaling, thresholds, timescale_settings
from probekit.errors import ValidationError

STEPS = [0, 100, 300, 1000, 3000, 10000]


def _measure(name, kind, headline, role=None, higher_is_better=False):
    entry = {"name": name, "kind": kind, "headline": headline,
             "higher_is_better": higher_is_better}
    if role is not None:
        entry["role"] = role
    return entry


def _rows(measure, field, values):
    return [{"step": s, "measure": measure, "field": field, "value": v, "ci_low": math.nan,
             "ci_high": math.nan} for s, v in zip(STEPS, values, strict=True)]


#: nn-ratio copies from step 3000 on; a quality metric improving by step 300; a third-party
#: "noise" metric (role other) that is "best" at step 100; a custom copy probe with two fields.
F_MEM = [0, 0, 0, 0, 0.2, 0.5]
FD = [100, 40, 12, 11, 10.5, 10]
NOISE = [5, 9, 1, 3, 2, 4]
COPY = [0, 0, 0.3, 0.6, 0.8, 0.9]
ROWS = (_rows("nn-ratio", "f_mem", F_MEM) + _rows("fd", "fd", FD)
        + _rows("noise", "score", NOISE) + _rows("copy", "f_copy", COPY)
        + _rows("copy", "max_similarity", [0.1, 0.2, 0.5, 0.7, 0.9, 0.95]))


def _config(measures, **timescales):
    return {"n_train": 64, "measures": measures, "timescales": timescales}


def test_a_metric_whose_role_is_other_never_becomes_the_quality_axis():
    measures = [_measure("nn-ratio", "probe", "f_mem", "memorization"),
                _measure("noise", "metric", "score", "other", higher_is_better=True),
                _measure("fd", "metric", "fd", "quality")]
    a = analyze_run(Path("run"), _config(measures), ROWS)
    assert a.quality.measure == "fd"
    assert "role is 'quality'" in a.quality_source
    t = thresholds(a)
    assert t["quality_measure"] == "fd" and "quality" in t["quality_measure_source"]
    assert t["mem_measure"] == "nn-ratio" and "default" in t["mem_measure_source"]


def test_no_quality_metric_means_no_tau_gen_and_a_note_saying_how_to_choose_one():
    measures = [_measure("nn-ratio", "probe", "f_mem", "memorization"),
                _measure("noise", "metric", "score", "other", higher_is_better=True)]
    a = analyze_run(Path("run"), _config(measures), ROWS)
    assert a.quality is None and a.tau_gen is None
    assert any("--quality-measure" in n and "noise" in n for n in a.notes)
    chosen = analyze_run(Path("run"), _config(measures, quality_measure="noise"), ROWS)
    assert chosen.quality.measure == "noise" and chosen.tau_gen is not None
    assert "given" in chosen.quality_source


def test_runs_written_before_roles_read_every_metric_as_quality():
    measures = [_measure("nn-ratio", "probe", "f_mem"), _measure("fd", "metric", "fd")]
    a = analyze_run(Path("run"), _config(measures), ROWS)
    assert a.quality.measure == "fd"


def test_mem_measure_names_a_custom_probe_and_field():
    measures = [_measure("copy", "probe", "f_copy", "memorization"),
                _measure("fd", "metric", "fd", "quality")]
    none = analyze_run(Path("run"), _config(measures), ROWS)
    assert none.tau_mem is None and any("--mem-measure" in n and "copy" in n
                                        for n in none.notes)
    by_name = analyze_run(Path("run"), _config(measures, mem_measure="copy"), ROWS)
    assert (by_name.f_mem.measure, by_name.f_mem.field) == ("copy", "f_copy")
    assert by_name.tau_mem.estimate.index == 2  # f_copy >= 0.01 first at step 300
    by_field = analyze_run(Path("run"),
                           _config(measures, mem_measure="copy:max_similarity", mem_level=0.6),
                           ROWS)
    assert by_field.f_mem.field == "max_similarity" and by_field.tau_mem.estimate.index == 3
    # a measure or field asked for by name must exist (issue 16: never a silent note)
    with pytest.raises(ValidationError, match="names no field of copy; its fields are f_copy"):
        analyze_run(Path("run"), _config(measures, mem_measure="copy:nope"), ROWS)
    with pytest.raises(ValidationError, match=r"must name a measure of the run; got 'cpy'.*"
                                              r"Did you mean 'copy'"):
        analyze_run(Path("run"), _config(measures, mem_measure="cpy"), ROWS)


def test_a_threshold_given_later_replaces_the_stored_mode_and_relative_drops_it():
    stored = {"timescales": {"gen_mode": "relative", "gen_threshold": None}}
    assert timescale_settings(stored, {"gen_threshold": 20.0}).gen_mode == "absolute"
    absolute = {"timescales": {"gen_mode": "absolute", "gen_threshold": 20.0}}
    back = timescale_settings(absolute, {"gen_mode": "relative"})
    assert back.gen_mode == "relative" and back.gen_threshold is None
    with pytest.raises(ValidationError, match="gen_threshold"):
        timescale_settings(stored, {"gen_threshold": math.nan})


def test_scaling_needs_runs_that_differ_in_n():
    measures = [_measure("nn-ratio", "probe", "f_mem", "memorization"),
                _measure("fd", "metric", "fd", "quality")]
    a = analyze_run(Path("a"), _config(measures), ROWS)
    with pytest.raises(ValidationError, match="differ in n"):
        analyze_scaling([a, a])
