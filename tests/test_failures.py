"""A bad checkpoint never ends a run: it is recorded as failed with a one-line reason (progress,
summary.json, report.html, exit code 3), the others are evaluated, and a rerun after the file
is fixed retries only it — ending with the results of a clean run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from probekit.cli import EXIT_FAILED_CHECKPOINTS, main
from probekit.store import load_failures, load_rows, load_timings

STEPS = (0, 250, 500, 1000)
N = 30


def samples_at(train: np.ndarray, step: int) -> np.ndarray:
    """A fraction min(1, step/1000) of near-copies of training samples, the rest noise."""
    rng = np.random.default_rng(5)
    out = rng.normal(size=(N, *train.shape[1:])).astype(np.float32)
    n_copy = round(min(1.0, step / 1000) * N)
    out[:n_copy] = train[:n_copy] + 0.01 * out[:n_copy]
    return out


def _corrupt(path, kind: str) -> None:
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"\x00\x01this is not a numpy file" * 10)
    elif kind == "scalar":
        np.save(path, np.float32(3.0))
    elif kind == "object":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "wrong-shape":
        np.save(path, np.zeros((N, 2, 5, 5), dtype=np.float32))
    elif kind == "nan":
        bad = np.full((N, 1, 4, 4), np.nan, dtype=np.float32)
        np.save(path, bad)


@pytest.fixture
def series(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(40, 1, 4, 4)).astype(np.float32)
    holdout = rng.normal(size=(40, 1, 4, 4)).astype(np.float32)
    np.save(tmp_path / "train.npy", train)
    np.save(tmp_path / "holdout.npy", holdout)
    folder = tmp_path / "series"
    folder.mkdir()
    for step in STEPS:
        np.save(folder / f"step-{step:08d}.npy", samples_at(train, step))
    return {"folder": folder, "train": train, "tmp": tmp_path}


def _argv(series, out, *extra):
    tmp = series["tmp"]
    return ["evaluate", str(series["folder"]), "--train", str(tmp / "train.npy"),
            "--holdout", str(tmp / "holdout.npy"), "--probes", "nn-ratio", "--metrics", "fd",
            "--n-samples", str(N), "--out", str(out), *extra]


def _comparable(rows):
    return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in rows]


@pytest.mark.parametrize("kind", ["truncated", "empty", "garbage", "scalar", "object",
                                  "wrong-shape", "nan"])
def test_a_corrupt_checkpoint_is_recorded_and_the_others_are_evaluated(series, kind, capsys):
    _corrupt(series["folder"] / "step-00000500.npy", kind)
    out = series["tmp"] / "run"
    assert main(_argv(series, out, "--quiet")) == EXIT_FAILED_CHECKPOINTS
    err = capsys.readouterr().err
    assert "Traceback" not in err
    failed_lines = [line for line in err.splitlines() if "step 500 failed:" in line]
    assert len(failed_lines) == 1 and len(failed_lines[0]) < 400
    assert {r["step"] for r in load_rows(out)} == {0, 250, 1000}
    (failure,) = load_failures(out)
    assert failure["step"] == 500 and failure["attempts"] == 1 and "\n" not in failure["reason"]
    summary = json.loads((out / "summary.json").read_text())
    assert [f["step"] for f in summary["failures"]] == [500]
    assert any("failed" in line for line in summary["verdict"])
    assert "Failed checkpoints" in (out / "report.html").read_text()


def test_a_rerun_retries_only_the_failed_checkpoint_and_ends_like_a_clean_run(series, capsys):
    path = series["folder"] / "step-00000500.npy"
    good = path.read_bytes()
    _corrupt(path, "truncated")
    out, clean = series["tmp"] / "run", series["tmp"] / "clean"
    assert main(_argv(series, out, "--quiet")) == EXIT_FAILED_CHECKPOINTS
    assert main(_argv(series, out, "--quiet")) == EXIT_FAILED_CHECKPOINTS  # still broken
    assert load_failures(out)[0]["attempts"] == 2
    path.write_bytes(good)
    capsys.readouterr()
    assert main(_argv(series, out)) == 0
    assert "1 checkpoint(s) evaluated, 3 already done" in capsys.readouterr().out
    assert load_failures(out) == []
    assert main(_argv(series, clean, "--quiet")) == 0
    assert _comparable(load_rows(out)) == _comparable(load_rows(clean))
    assert sorted(t["step"] for t in load_timings(out)) == list(STEPS)


def test_every_checkpoint_failing_still_ends_with_a_summary(series, capsys):
    for step in STEPS:
        _corrupt(series["folder"] / f"step-{step:08d}.npy", "garbage")
    out = series["tmp"] / "run"
    assert main(_argv(series, out, "--quiet")) == EXIT_FAILED_CHECKPOINTS
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("failed:") == len(STEPS)
    assert [f["step"] for f in load_failures(out)] == list(STEPS)


def test_the_help_documents_the_exit_codes(capsys):
    assert main(["evaluate", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"{EXIT_FAILED_CHECKPOINTS} finished, but some checkpoints failed" in help_text
