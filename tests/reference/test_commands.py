"""``probekit reference train`` end to end (a few steps of digits-small)."""

from __future__ import annotations

import json

from probekit.cli import main


def test_train_command_writes_a_run_and_stops_after_mem(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["reference", "train", "--preset", "digits-small", "--n", "16", "--out", str(out),
            "--steps", "50", "--width", "8", "--seed", "2", "--threads", "1",
            "--stop-after-mem", "1", "--metrics", ""]
    assert main(argv) == 0
    printed = capsys.readouterr()
    # f_mem never reaches 1 in 50 steps: the run ends at its step cap (stopping itself is
    # tested in test_train.py; the level must be a fraction in (0, 1])
    assert "nn-ratio=" in printed.err and printed.out.startswith("done")
    assert "step 50" in printed.out
    config = json.loads((out / "config.json").read_text())
    assert config["reference"]["unet"]["base_width"] == 8 and config["seed"] == 2
    assert sorted(p.name for p in out.glob("ckpt-*.pt")) == ["ckpt-00000000.pt",
                                                             "ckpt-00000050.pt"]
    # evaluated through the evaluator's callback API, with its reports
    from probekit.store import load_rows

    rows = load_rows(out / "eval")
    assert {(r["step"], r["measure"]) for r in rows if r["field"] == "f_mem"} == {
        (0, "nn-ratio"), (50, "nn-ratio")}
    assert (out / "eval" / "report.html").exists()


def test_data_errors_leave_no_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["reference", "train", "--preset", "digits", "--n", "5000", "--out",
                 str(out)]) == 2
    assert "n_train" in capsys.readouterr().err and not out.exists()
    assert main(["reference", "train", "--preset", "celeba32", "--n", "16", "--out", str(out),
                 "--data-root", str(tmp_path / "missing")]) == 2
    assert "img_align_celeba" in capsys.readouterr().err and not out.exists()
