"""EvaluationSettings: validated once, declared once — the flags of `probekit evaluate` and
`probekit report` are generated from the models, and `probekit list --settings` prints them."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from probekit import EvaluationSettings
from probekit.cli import build_parser, main
from probekit.cliargs import (
    add_settings_arguments,
    describe_settings,
    flag_of,
    iter_cli_fields,
    settings_from_args,
)
from probekit.errors import ValidationError
from probekit.settings import make_settings
from probekit.timescales import TimescaleSettings


def test_names_are_split_and_repeats_refused():
    s = EvaluationSettings(probes="nn-ratio, loss-gap", metrics=("fd",))
    assert s.probes == ("nn-ratio", "loss-gap") and s.metrics == ("fd",)
    with pytest.raises(ValueError, match="each measure may appear once"):
        EvaluationSettings(probes="nn-ratio,nn-ratio")


@pytest.mark.parametrize(("values", "message"), [
    ({"seed": -1}, "seed"),
    ({"n_samples": 0}, "n_samples"),
    ({"n_keep": -3}, "n_keep"),
    ({"workers": 2}, "workers applies to executor='processes'"),
    ({"ray_address": "auto"}, "ray_address applies to executor='ray'"),
    ({"cache": False, "cache_dir": "x"}, "cache_dir was given with cache=False"),
    ({"timescales": {"mem_level": math.nan}}, "mem_level"),
    ({"timescales": {"gen_threshold": math.inf}}, "gen_threshold"),
    ({"timescales": {"gen_mode": "relative", "gen_threshold": 3.0}},
     "gen_threshold applies only with gen_mode='absolute'"),
    ({"timescales": {"mem_measure": "nn-ratio:"}}, "NAME or NAME:FIELD"),
    ({"executor": "threads"}, "executor"),
    ({"probs": "nn-ratio"}, "unknown option 'probs'"),
])
def test_bad_settings_are_one_line(values, message):
    with pytest.raises(ValidationError, match=r"^evaluator: ") as caught:
        make_settings(**values)
    text = str(caught.value)
    assert message in text and "\n" not in text


def test_a_threshold_implies_absolute_mode_and_paths_are_accepted(tmp_path):
    s = EvaluationSettings(timescales={"gen_threshold": 5.0}, cache_dir=tmp_path)
    assert s.timescales.gen_mode == "absolute" and s.timescales.gen_threshold == 5.0
    assert s.cache_dir == str(tmp_path)


def _evaluate_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["evaluate"]


def test_every_setting_has_one_flag_with_its_default_in_the_help():
    parser = _evaluate_parser()
    flags = {s for a in parser._actions for s in a.option_strings}
    help_text = " ".join(parser.format_help().split())
    for path, field in iter_cli_fields(EvaluationSettings):
        flag = flag_of(path[-1], field)
        if field.annotation is bool and field.default is True:
            flag = "--no-" + flag[2:]
        assert flag in flags, path
        default = field.default
        if isinstance(default, int | float) and not isinstance(default, bool):
            assert f"(default: {default})" in help_text, path


def test_flags_give_only_what_was_typed_and_the_model_validates_it():
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser, EvaluationSettings)
    args = parser.parse_args(["--probes", "nn-ratio,loss-gap", "--set", "nn-ratio.k=0.5",
                              "--set", "loss-gap.n_draws=2", "--seed", "3", "--mem-level",
                              "0.05", "--gen-threshold", "12", "--no-cache",
                              "--adapter-set", "num_inference_steps=20"])
    given = settings_from_args(EvaluationSettings, args)
    assert given == {
        "probes": ("nn-ratio", "loss-gap"),
        "measure_settings": {"nn-ratio": {"k": "0.5"}, "loss-gap": {"n_draws": "2"}},
        "seed": "3", "timescales": {"mem_level": "0.05", "gen_threshold": "12"},
        "cache": False, "adapter_settings": {"num_inference_steps": "20"},
    }
    s = EvaluationSettings(**given)
    assert (s.seed, s.timescales.mem_level, s.timescales.gen_mode) == (3, 0.05, "absolute")
    assert settings_from_args(EvaluationSettings, parser.parse_args([])) == {}


def test_the_report_flags_come_from_the_timescale_settings():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    report = sub.choices["report"]
    flags = {s for a in report._actions for s in a.option_strings}
    for path, field in iter_cli_fields(TimescaleSettings):
        assert flag_of(path[-1], field) in flags


def test_list_settings_prints_defaults_and_constraints(capsys):
    assert main(["list", "--settings", "nn-ratio"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nn-ratio (probe, plugin nn-ratio")
    k_row = next(line for line in out.splitlines() if line.startswith("k "))
    assert "0.333" in k_row and "> 0" in k_row and "< 1" in k_row
    assert main(["list", "--settings", "evaluate"]) == 0
    out = capsys.readouterr().out
    assert "n_samples" in out and "executor" in out and "timescales" in out


def test_list_settings_of_an_unknown_name_is_one_line(capsys):
    assert main(["list", "probes", "--settings", "nn-ration"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nn-ratio" in err  # the closest match is suggested


def test_describe_settings_rows():
    rows = {r["name"]: r for r in describe_settings(TimescaleSettings)}
    assert rows["mem_level"]["default"] == "0.01"
    assert rows["mem_level"]["constraints"] == "> 0, <= 1"
    assert rows["gen_mode"]["type"] == "relative|absolute"


def test_the_settings_are_recorded_in_config_json(tmp_path):
    import numpy as np

    from probekit import SeriesEvaluator
    from probekit.store import load_config

    train = np.random.default_rng(0).normal(size=(20, 1, 4, 4)).astype(np.float32)
    ev = SeriesEvaluator(tmp_path / "run", train=train, probes="nn-ratio", seed=7,
                         quiet=True, reports=False)
    ev.close()
    config = load_config(Path(tmp_path / "run"))
    again = EvaluationSettings(**config["settings"])
    assert again == ev.settings and again.seed == 7
