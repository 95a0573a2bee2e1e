"""The checkpoint-series evaluator: planted f_mem per step, parity with the probe run by hand,
resume after SIGKILL and Ctrl-C, config checks, reference-run defaults, the training-loop
callback, progress on a terminal only, and one-line CLI errors."""

from __future__ import annotations

import io
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from probekit import (
    Adapter,
    ModelHandle,
    Probe,
    Result,
    SeriesEvaluator,
    evaluate_series,
    get_probe,
    hookimpl,
    register_plugin,
)
from probekit.cli import main
from probekit.errors import ConfigMismatchError, ValidationError
from probekit.store import load_config, load_results, load_rows, load_timings

N_TRAIN, N_SAMPLES, SEED = 48, 40, 3
STEPS = [0, 250, 500, 1000]

SAMPLER = textwrap.dedent(
    """
    # Stands in for a model's sampler: at step s a fraction min(1, s / 1000) of the samples are
    # near-copies of training samples, the rest fresh noise. The initial noise depends on the
    # seed only, so it is the same at every step.
    import os, signal
    import numpy as np

    TRAIN = np.load({train!r})
    CALLS = []

    def generate(step, n, seed):
        CALLS.append((step, seed))
        if os.environ.get("PK_KILL_AT") == str(step):
            os.kill(os.getpid(), signal.SIGKILL)
        if os.environ.get("PK_INTERRUPT_AT") == str(step):
            os.kill(os.getpid(), signal.SIGINT)
        noise = np.random.default_rng(seed).normal(size=(n, *TRAIN.shape[1:]))
        n_copy = int(round(min(1.0, step / 1000) * n))
        pick = np.random.default_rng(seed + 1).integers(0, len(TRAIN), n)
        out = noise.copy()
        out[:n_copy] = TRAIN[pick[:n_copy]] + 0.01 * noise[:n_copy]
        return out.astype(np.float32)
    """
)


def planted_f_mem(step: int) -> float:
    return round(min(1.0, step / 1000) * N_SAMPLES) / N_SAMPLES


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(N_TRAIN, 1, 4, 4)).astype(np.float32)
    holdout = rng.normal(size=(N_TRAIN, 1, 4, 4)).astype(np.float32)
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "holdout.npy", holdout)
    sampler = tmp_path / "sampler.py"
    sampler.write_text(SAMPLER.format(train=str(tmp_path / "train.npy")))
    spec = f"{sampler}:generate"
    argv = ["evaluate", spec, "--adapter", "callable", "--train", str(tmp_path / "train.npy"),
            "--holdout", str(tmp_path / "holdout.npy"), "--n-samples", str(N_SAMPLES),
            "--seed", str(SEED), "--steps", ",".join(map(str, STEPS)), "--no-report"]
    return {"train": tmp_path / "train.npy", "holdout": tmp_path / "holdout.npy", "spec": spec,
            "train_array": train, "argv": argv}


def run_callable(data, out, **kwargs):
    kwargs.setdefault("probes", "nn-ratio")
    kwargs.setdefault("steps", STEPS)
    return evaluate_series(
        data["spec"], adapter="callable", train=data["train"], holdout=data["holdout"],
        out=out, n_samples=N_SAMPLES, seed=SEED, quiet=True, reports=False, **kwargs,
    )


def comparable(rows):
    """Rows with NaN made comparable (NaN != NaN)."""
    return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in rows]


def sampler_module(spec):
    from probekit_plugins.adapters.callable import load_function

    return load_function(spec).__globals__


# -- plugins registered at run time by the tests ---------------------------------------------------


class MeanShift(Probe):
    """Mean of the samples minus the training mean: cheap and exact."""

    name = "mean-shift"
    headline = "shift"
    requires = ("train", "samples")

    def prepare(self, train, *, holdout=None):
        self.train_mean_ = float(np.mean(train, dtype=np.float64))
        return self

    def evaluate(self, samples=None, *, model=None):
        self._check_prepared("train_mean_")
        shift = float(np.mean(samples, dtype=np.float64)) - self.train_mean_
        return Result(self.name, "shift", {"shift": shift},
                      self.make_provenance(n_samples=len(samples), n_reference=1),
                      per_sample={"sample_mean": samples.reshape(len(samples), -1).mean(1)})


class Observer:
    """Records the evaluator's observation hooks."""

    def __init__(self):
        self.evaluated, self.finished = [], []

    @hookimpl
    def checkpoint_evaluated(self, run_dir, step, results):
        self.evaluated.append((step, [r.measure for r in results]))

    @hookimpl
    def evaluation_finished(self, run_dir, summary):
        self.finished.append(summary)


class MeanShiftPlugin:
    @hookimpl
    def register_probes(self):
        return [MeanShift]


@pytest.fixture
def plugins(fresh_host):
    observer = Observer()
    register_plugin(MeanShiftPlugin(), name="mean-shift-plugin")
    register_plugin(observer, name="observer")
    return observer


# -- the main job ----------------------------------------------------------------------------------


def test_planted_f_mem_at_every_step_and_parity_with_the_probe(data, tmp_path):
    out = tmp_path / "run"
    summary = run_callable(data, out)
    assert summary["steps"] == STEPS
    f_mem = {r["step"]: r["value"] for r in load_rows(out) if r["field"] == "f_mem"}
    assert f_mem == {s: planted_f_mem(s) for s in STEPS}
    module = sampler_module(data["spec"])
    assert {seed for _, seed in module["CALLS"]} == {SEED}  # same initial noise at every step
    probe = get_probe("nn-ratio")().prepare(data["train_array"])
    for step in STEPS:
        (stored,) = load_results(out, step)
        direct = probe.evaluate(module["generate"](step, N_SAMPLES, SEED))
        assert stored.values == direct.values and stored.ci == direct.ci
        for name, values in direct.per_sample.items():
            np.testing.assert_array_equal(stored.per_sample[name], values)
        kept = np.load(out / "samples" / f"step-{step:08d}.npy")
        np.testing.assert_array_equal(kept, module["generate"](step, N_SAMPLES, SEED)[:40])
    config = load_config(out)
    for key in ("probekit_version", "series", "adapter", "adapter_settings", "train", "holdout",
                "dataset", "dataset_settings", "n_train", "modality", "n_samples", "seed",
                "steps", "measures", "timescales", "versions"):
        assert key in config, key
    assert (config["steps"], config["n_train"], config["modality"]) == (STEPS, N_TRAIN, "image")
    assert set(config["measures"][0]) >= {"name", "kind", "headline", "higher_is_better",
                                          "settings", "plugin", "version"}
    assert config["timescales"]["mem_measure"] is None  # nn-ratio, read when reporting
    assert config["settings"]["probes"] == ["nn-ratio"]
    assert config["adapter_settings"] == {"function": data["spec"]}
    timings = load_timings(out)
    assert [t["step"] for t in timings] == STEPS and all(t["seconds_generate"] >= 0
                                                         for t in timings)


def test_resume_skips_finished_pairs_and_grows_by_steps_and_measures(data, tmp_path, plugins):
    out, clean = tmp_path / "run", tmp_path / "clean"
    run_callable(data, out, steps=[0, 500])
    assert plugins.evaluated == [(0, ["nn-ratio"]), (500, ["nn-ratio"])]
    plugins.evaluated.clear()
    run_callable(data, out)  # every step: only 250 and 1000 are new
    assert plugins.evaluated == [(250, ["nn-ratio"]), (1000, ["nn-ratio"])]
    plugins.evaluated.clear()
    run_callable(data, out, probes="nn-ratio,mean-shift")  # a new measure: only it runs
    assert plugins.evaluated == [(s, ["mean-shift"]) for s in STEPS]
    plugins.evaluated.clear()
    run_callable(data, out, probes="nn-ratio,mean-shift")  # nothing left to do
    assert plugins.evaluated == []
    assert len(plugins.finished) == 4
    run_callable(data, clean, probes="nn-ratio,mean-shift")
    assert comparable(load_rows(out)) == comparable(load_rows(clean))
    assert [m["name"] for m in load_config(out)["measures"]] == ["nn-ratio", "mean-shift"]


def test_another_configuration_is_refused_unless_overwritten(data, tmp_path):
    out = tmp_path / "run"
    run_callable(data, out, steps=[0, 250])
    with pytest.raises(ConfigMismatchError, match=r"seed: 3 \(stored\) vs 4 \(now\).*--overwrite"):
        evaluate_series(data["spec"], adapter="callable", train=data["train"], out=out,
                        probes="nn-ratio", n_samples=N_SAMPLES, seed=4, steps=[0],
                        quiet=True, reports=False)
    with pytest.raises(ConfigMismatchError, match=r"nn-ratio settings: k=0\.33.* vs 0\.5"):
        run_callable(data, out, measure_settings={"nn-ratio": {"k": 0.5}})
    with pytest.raises(ConfigMismatchError, match="train_sha256"):
        evaluate_series(data["spec"], adapter="callable", train=data["holdout"],
                        holdout=data["holdout"], out=out, probes="nn-ratio",
                        n_samples=N_SAMPLES, seed=SEED, steps=[0], quiet=True, reports=False)
    run_callable(data, out, steps=[0], measure_settings={"nn-ratio": {"k": 0.5}},
                 overwrite=True)
    assert {r["step"] for r in load_rows(out)} == {0}
    assert load_config(out)["measures"][0]["settings"]["k"] == 0.5


def test_reference_side_is_prepared_once_and_cached_on_disk(data, tmp_path):
    shared = tmp_path / "shared-cache"
    logs = []
    for out in (tmp_path / "a", tmp_path / "b"):
        with SeriesEvaluator(out, train=data["train"], holdout=data["holdout"],
                             probes="nn-ratio", n_samples=N_SAMPLES, adapter="callable",
                             adapter_settings={"function": data["spec"]}, cache_dir=shared,
                             quiet=True, reports=False) as ev:
            from probekit.series import series_from_steps

            ev.run(series_from_steps(STEPS, label=data["spec"]).checkpoints)
            logs.append(ev.prepare_log["nn-ratio"][0])
    assert logs == ["computed", "cache"]
    assert comparable(load_rows(tmp_path / "a")) == comparable(load_rows(tmp_path / "b"))
    # the default cache lives in the run directory
    run_callable(data, tmp_path / "c")
    assert list((tmp_path / "c" / "cache" / "reference" / "nn-ratio").glob("*.npz"))


# -- interruption ----------------------------------------------------------------------------------


def _default_sigint() -> None:
    # A test run launched in the background (`make test &`, nohup) inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: give the child the default disposition,
    # as an interactive terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli_subprocess(argv, env_extra):
    env = {**os.environ, **env_extra, "PYTHONUNBUFFERED": "1"}
    code = "import sys; from probekit.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env=env, timeout=120, preexec_fn=_default_sigint)


def test_sigkill_during_a_checkpoint_then_resume_equals_an_uninterrupted_run(data, tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    argv = [*data["argv"], "--probes", "nn-ratio", "--out", str(killed)]
    proc = run_cli_subprocess(argv, {"PK_KILL_AT": "500"})
    assert proc.returncode == -9, proc.stderr
    assert {r["step"] for r in load_rows(killed)} == {0, 250}
    assert main([*argv, "--quiet"]) == 0  # the same command resumes
    run_callable(data, clean)
    assert comparable(load_rows(killed)) == comparable(load_rows(clean))
    assert len(load_rows(killed)) == len(STEPS) * 4  # no duplicates, none missing
    for step in STEPS:
        a = np.load(killed / "artifacts" / "nn-ratio" / f"step-{step:08d}.npz")
        b = np.load(clean / "artifacts" / "nn-ratio" / f"step-{step:08d}.npz")
        for name in b.files:
            np.testing.assert_array_equal(a[name], b[name])


TRIPWIRE = textwrap.dedent(
    """
    # Python API run with two probes; the second SIGKILLs the process on its N-th call, i.e.
    # in the middle of a checkpoint, after nn-ratio was computed for it but before the commit.
    import os, signal, sys
    import numpy as np
    from probekit import Probe, Result, evaluate_series, hookimpl, register_plugin

    class Tripwire(Probe):
        name = "tripwire"
        headline = "spread"
        requires = ("train", "samples")
        calls = 0

        def prepare(self, train, *, holdout=None):
            self.scale_ = float(np.std(train))
            return self

        def evaluate(self, samples=None, *, model=None):
            type(self).calls += 1
            if str(type(self).calls) == os.environ.get("PK_KILL_CALL"):
                os.kill(os.getpid(), signal.SIGKILL)
            return Result(self.name, "spread", {{"spread": float(np.std(samples)) / self.scale_}},
                          self.make_provenance(n_samples=len(samples), n_reference=1))

    class Plugin:
        @hookimpl
        def register_probes(self):
            return [Tripwire]

    REGISTERED = []

    def main(out):
        if not REGISTERED:
            REGISTERED.append(register_plugin(Plugin(), name="tripwire-plugin"))
        evaluate_series({spec!r}, adapter="callable", train={train!r}, out=out,
                        probes="nn-ratio,tripwire", n_samples={n}, seed={seed}, steps={steps},
                        quiet=True, reports=False)

    if __name__ == "__main__":
        main(sys.argv[1])
    """
)


def test_sigkill_between_two_measures_of_a_checkpoint(data, tmp_path, fresh_host):
    script = tmp_path / "tripwire.py"
    script.write_text(TRIPWIRE.format(spec=data["spec"], train=str(data["train"]), n=N_SAMPLES,
                                      seed=SEED, steps=STEPS))
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.run([sys.executable, str(script), str(killed)],
                          env={**os.environ, "PK_KILL_CALL": "3"}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    rows = load_rows(killed)
    assert {(r["step"], r["measure"]) for r in rows} == {
        (s, m) for s in (0, 250) for m in ("nn-ratio", "tripwire")}
    # the same script resumes (here in this process, with the same plugin)
    from probekit_plugins.adapters.callable import _module_from_file

    tripwire = _module_from_file(script, "tripwire")
    tripwire.main(str(killed))
    assert tripwire.Tripwire.calls == 2  # only steps 500 and 1000 were evaluated
    tripwire.main(str(clean))
    assert comparable(load_rows(killed)) == comparable(load_rows(clean))
    assert len(load_rows(killed)) == len(STEPS) * 5


def test_ctrl_c_commits_finished_work_and_says_how_to_resume(data, tmp_path):
    out, clean = tmp_path / "run", tmp_path / "clean"
    argv = [*data["argv"], "--probes", "nn-ratio", "--out", str(out)]
    proc = run_cli_subprocess(argv, {"PK_INTERRUPT_AT": "500"})
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert "interrupted" in message and "2 of 4 checkpoint(s)" in message
    assert "step 500 was not saved" in message
    assert {r["step"] for r in load_rows(out)} == {0, 250}
    hint = message.split("To resume, run ")[1].split(" (finished")[0]
    command = shlex.split(hint)
    assert command[:2] == ["probekit", "evaluate"]
    assert main([*command[1:], "--quiet"]) == 0  # the printed command resumes
    run_callable(data, clean)
    assert comparable(load_rows(out)) == comparable(load_rows(clean))


# -- progress --------------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize(("stream", "quiet", "expect"),
                         [(FakeTerminal, False, "bar"), (FakeTerminal, True, "nothing"),
                          (io.StringIO, False, "lines"), (io.StringIO, True, "nothing")])
def test_progress_bar_on_a_terminal_lines_in_a_log_nothing_with_quiet(
        data, tmp_path, monkeypatch, stream, quiet, expect):
    err = stream()
    monkeypatch.setattr(sys, "stderr", err)
    argv = [*data["argv"], "--probes", "nn-ratio", "--out", str(tmp_path / "run")]
    assert main(argv + (["--quiet"] if quiet else [])) == 0
    text = err.getvalue()
    if expect == "bar":
        assert "checkpoints 4/4 [" in text and "<00:00" in text
        assert "\r" in text
    elif expect == "lines":  # a log: plain lines, no carriage returns or escape codes
        lines = text.splitlines()
        assert lines and all(line.startswith("probekit: checkpoints ") for line in lines)
        assert lines[-1].startswith("probekit: checkpoints 4/4") and "step 1000 done" in lines[-1]
        assert "\r" not in text and "\x1b" not in text
    else:
        assert text == ""


# -- reference runs, callbacks, samples ------------------------------------------------------------


class DigitsCopier(ModelHandle):
    """A fake reference checkpoint: returns digits pool images (copies) from step 100 on."""

    def __init__(self, step):
        self.step = step

    def generate(self, n, seed):
        from probekit_plugins.datasets.digits import load_digits_pool

        pool, holdout = load_digits_pool()
        source = pool[:32] if self.step >= 100 else holdout
        return source[np.random.default_rng(seed).integers(0, len(source), n)]


class FakeDdpm(Adapter):
    name = "fake-ddpm"

    def load(self, checkpoint):
        return DigitsCopier(checkpoint.step)


class FakeDdpmPlugin:
    @hookimpl
    def register_adapters(self):
        return [FakeDdpm]


def test_a_reference_run_directory_brings_its_own_defaults(tmp_path, fresh_host):
    register_plugin(FakeDdpmPlugin(), name="fake-ddpm-plugin")
    run = tmp_path / "ref-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({
        "kind": "probekit-reference-run", "adapter": "fake-ddpm", "dataset": "digits",
        "dataset_settings": {"n_train": 32}, "n_samples": 30}))
    for step in (0, 100, 200):
        (run / f"ckpt-{step:08d}.pt").write_bytes(b"fake")
    (run / "stats.jsonl").write_text("")
    assert main(["evaluate", str(run), "--probes", "nn-ratio", "--no-report", "--quiet"]) == 0
    out = run / "eval"
    config = load_config(out)
    assert (config["adapter"], config["dataset"], config["n_train"]) == ("fake-ddpm", "digits", 32)
    assert config["n_samples"] == 30  # what the training run evaluated, not the generic 1000
    assert config["dataset_settings"] == {"n_train": 32}
    f_mem = {r["step"]: r["value"] for r in load_rows(out) if r["field"] == "f_mem"}
    assert f_mem[0] < 0.2 and f_mem[100] == f_mem[200] == 1.0  # copies of the first 32
    # the run directory itself is not a place to write the evaluation
    assert main(["evaluate", str(run), "--probes", "nn-ratio", "--out", str(run),
                 "--n-samples", "30", "--no-report", "--quiet"]) == 2


class WhiteBox(ModelHandle):
    """Generates fixed samples; predicts noise exactly for the training set (memorizing)."""

    def __init__(self, train, samples, step=0):
        betas = np.linspace(1e-4, 0.02, 1000)
        self.alphas_cumprod = np.cumprod(1 - betas)
        self.train = train.reshape(len(train), -1).astype(np.float64)
        self.samples = samples
        self.step = step
        self.generated = 0

    def generate(self, n, seed):
        self.generated += 1
        return self.samples[:n]

    def predict_noise(self, x_t, t):
        abar = self.alphas_cumprod[np.asarray(t)][:, None]
        flat = x_t.reshape(len(x_t), -1).astype(np.float64) / np.sqrt(abar)
        nearest = self.train[((flat[:, None] - self.train[None]) ** 2).sum(-1).argmin(1)]
        eps = (flat - nearest) * np.sqrt(abar) / np.sqrt(1 - abar)
        return eps.reshape(x_t.shape)


class BlackBox(ModelHandle):
    def __init__(self, samples):
        self.samples = samples

    def generate(self, n, seed):
        return self.samples[:n]


def test_training_loop_callback(tmp_path):
    rng = np.random.default_rng(1)
    train = (rng.normal(size=(32, 1, 4, 4)) * 5).astype(np.float32)
    holdout = (rng.normal(size=(32, 1, 4, 4)) * 5).astype(np.float32)
    ev = SeriesEvaluator(tmp_path / "run", train=train, holdout=holdout,
                         probes=["nn-ratio", get_probe("loss-gap")(n_draws=2)],
                         n_samples=16, quiet=True, reports=False,
                         config_extra={"recipe": {"lr": 0.01}})
    for step in (10, 20):
        handle = WhiteBox(train, train[:16] if step == 20 else holdout[:16], step)
        results = ev.evaluate_checkpoint(step, handle)
        assert [r.measure for r in results] == ["nn-ratio", "loss-gap"]
        again = ev.evaluate_checkpoint(step, handle)  # already committed: read back, not rerun
        assert handle.generated == 1
        assert [r.values for r in again] == [r.values for r in results]
    f_mem = {r["step"]: r["value"] for r in load_rows(tmp_path / "run") if r["field"] == "f_mem"}
    assert f_mem == {10: 0.0, 20: 1.0}
    gap = [r for r in load_rows(tmp_path / "run") if r["field"] == "loss_gap"]
    assert all(r["value"] > 0 and r["ci_low"] > 0 for r in gap)  # exact on training points
    with pytest.raises(ValidationError, match="loss-gap: needs a model that predicts noise"):
        ev.evaluate_checkpoint(30, BlackBox(holdout))
    with pytest.raises(ValidationError, match="step must be a non-negative integer"):
        ev.evaluate_checkpoint(-1, BlackBox(holdout))
    summary = ev.finish()
    assert summary["steps"] == [10, 20]
    config = load_config(tmp_path / "run")
    assert config["recipe"] == {"lr": 0.01} and config["steps"] == [10, 20]
    assert config["measures"][1]["settings"]["n_draws"] == 2
    with pytest.raises(ValidationError, match="must not replace"):
        SeriesEvaluator(tmp_path / "other", train=train, probes="nn-ratio",
                        config_extra={"seed": 1})


def test_pre_generated_samples_default_to_all_stored(tmp_path):
    rng = np.random.default_rng(2)
    train = rng.normal(size=(20, 1, 3, 3)).astype(np.float32)
    series = tmp_path / "samples"
    series.mkdir()
    for step, n in ((5, 12), (50, 10)):
        np.save(series / f"step-{step}.npy", np.concatenate(
            [train[:n // 2], rng.normal(size=(n - n // 2, 1, 3, 3))]).astype(np.float32))
    summary = evaluate_series(series, train=train, probes="nn-ratio", out=tmp_path / "run",
                              quiet=True, reports=False)
    assert summary["steps"] == [5, 50]
    config = load_config(tmp_path / "run")
    assert config["adapter"] == "samples" and config["n_samples"] == 10  # the smallest count
    assert config["train"] is None and config["train_sha256"]
    f_mem = {r["step"]: r["value"] for r in load_rows(tmp_path / "run") if r["field"] == "f_mem"}
    assert f_mem == {5: 0.6, 50: 0.5}  # the first 10 of step 5 hold 6 copies


def test_generated_samples_are_checked(tmp_path):
    rng = np.random.default_rng(3)
    train = rng.normal(size=(20, 1, 3, 3)).astype(np.float32)
    ev = SeriesEvaluator(tmp_path / "run", train=train, probes="nn-ratio", n_samples=4,
                         quiet=True, reports=False)
    with pytest.raises(ValidationError, match=r"step 7.*per-sample shape.*\(1, 3, 3\)"):
        ev.evaluate_checkpoint(7, BlackBox(rng.normal(size=(4, 1, 4, 4))))
    bad = rng.normal(size=(4, 1, 3, 3))
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(ValidationError, match=r"step 8.*finite"):
        ev.evaluate_checkpoint(8, BlackBox(bad))
    with pytest.raises(ValidationError, match="must return 4 samples"):
        ev.evaluate_checkpoint(9, BlackBox(rng.normal(size=(3, 1, 3, 3))))
    ev.close()
    assert load_rows(tmp_path / "run") == []


def test_end_to_end_with_reports(data, tmp_path):
    reports = pytest.importorskip("probekit.reports")
    assert hasattr(reports, "write_reports")
    out = tmp_path / "run"
    summary = evaluate_series(data["spec"], adapter="callable", train=data["train"],
                              holdout=data["holdout"], out=out, probes="nn-ratio",
                              n_samples=N_SAMPLES, seed=SEED, steps=STEPS, quiet=True)
    assert (out / "report.html").is_file() and (out / "results.csv").is_file()
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--probes", "nn-ration"], "Did you mean 'nn-ratio'"),
        ([], "at least one measure"),
        (["--probes", "loss-gap"], "adapter 'callable' cannot"),
        (["--probes", "nn-ratio", "--set", "k=0.5"], "MEASURE.KEY=VALUE"),
        (["--probes", "nn-ratio", "--set", "nn-ratio.kk=0.5"], "unknown option 'kk'"),
        (["--probes", "nn-ratio", "--set", "fid.x=1"], "not among the measures"),
        (["--probes", "nn-ratio", "--steps", "0:500"], "listed one by one"),
        (["--probes", "nn-ratio", "--adapter-set", "function=x:y"], "disagree"),
        (["--probes", "nn-ratio", "--mem-level", "2"], "mem_level"),
        (["--probes", "nn-ratio", "--dataset", "digits"], "either a dataset"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(data, tmp_path, capsys, extra,
                                                         message):
    out = tmp_path / "run"
    assert main([*data["argv"], "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("probekit evaluate: error:"), err
    assert message in err
    assert not out.exists()


def test_series_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    cases = [
        (["evaluate", str(tmp_path / "missing"), "--probes", "nn-ratio"], "does not exist"),
        (["evaluate", str(tmp_path / "empty"), "--probes", "nn-ratio"], "holds no checkpoints"),
        (["evaluate", "pkg.mod:fn", "--probes", "nn-ratio", "--train", "x.npy"], "--steps"),
    ]
    for argv, message in cases:
        assert main([*argv, "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "Model_10").write_bytes(b"x")
    assert main(["evaluate", str(tmp_path / "ckpts"), "--probes", "nn-ratio",
                 "--out", str(tmp_path / "run")]) == 2
    assert "adapter must be given" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- docs stay true -------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs"


def code_blocks(page: Path) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block, in page order."""
    return re.findall(r"```(\w+)\n(.*?)```", page.read_text(), flags=re.S)


def printed_lines(code: str) -> list[str]:
    """The ``# ...`` comment lines that directly follow a ``print(`` line: expected output."""
    expected, lines = [], code.splitlines()
    for i, line in enumerate(lines):
        if "print(" in line:
            for follow in lines[i + 1:]:
                if not follow.startswith("# "):
                    break
                expected.append(follow[2:])
    return expected


def run_page(page: Path, capsys) -> None:
    """Run a page's python blocks in one namespace and its `probekit` commands; compare what
    they print with the page."""
    namespace = {"__name__": page.stem}
    blocks = code_blocks(page)
    for i, (language, code) in enumerate(blocks):
        if language == "python":
            exec(compile(code, f"{page.name} block {i}", "exec"), namespace)
            out = capsys.readouterr().out.splitlines()
            assert out == printed_lines(code), f"{page.name} block {i} printed {out}"
        elif language == "bash":
            for line in code.strip().splitlines():
                argv = shlex.split(line)
                assert argv[0] == "probekit"
                assert main(argv[1:]) == 0, line
            out = capsys.readouterr().out
            following = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
            if following[0] == "text":
                assert out == following[1], f"{page.name}: the command printed {out!r}"


def test_the_tutorial_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_page(DOCS / "evaluator.md", capsys)
    assert (tmp_path / "run" / "report.html").is_file()


def test_the_run_directory_page_lists_every_config_key_and_runs(data, tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.chdir(tmp_path)
    run_callable(data, tmp_path / "run")
    page = (DOCS / "run_directory.md").read_text()
    table = page.split("## config.json")[1].split("A training loop")[0]
    documented = set()
    for cell in re.findall(r"^\| ([^|]+) \|", table, flags=re.M):
        documented.update(re.findall(r"`(\w+)`", cell))
    assert documented - {"key"} == set(load_config(tmp_path / "run"))
    resume = page.split("**When does a run resume?**")[1].split("Equal:")[0]
    from probekit.store import IDENTITY_KEYS, MEASURE_IDENTITY_KEYS

    for key in (*IDENTITY_KEYS, *MEASURE_IDENTITY_KEYS):
        assert f"`{key}`" in resume, key
    run_page(DOCS / "run_directory.md", capsys)


def test_the_adapter_page_runs(tmp_path, monkeypatch, capsys, fresh_host):
    monkeypatch.chdir(tmp_path)
    run_page(DOCS / "adapters.md", capsys)
    results = load_results(tmp_path / "my-eval", step=1000)
    assert [r.measure for r in results] == ["nn-ratio", "loss-gap"]
    assert all(np.isfinite(r.value) for r in results)


class InterruptedWhilePreparing(MeanShift):
    name = "interrupted-while-preparing"

    def prepare(self, train, *, holdout=None):
        raise KeyboardInterrupt


class InterruptingPlugin:
    @hookimpl
    def register_probes(self):
        return [InterruptedWhilePreparing]


def test_ctrl_c_while_preparing_says_so(data, tmp_path, capsys, fresh_host):
    from probekit.evaluator import EvaluationInterrupted

    register_plugin(InterruptingPlugin(), name="interrupting")
    with pytest.raises(EvaluationInterrupted) as caught:
        run_callable(data, tmp_path / "run", probes="interrupted-while-preparing")
    message = str(caught.value)
    assert "interrupted. 0 of 4 checkpoint(s) evaluated" in message and "to resume" in message
