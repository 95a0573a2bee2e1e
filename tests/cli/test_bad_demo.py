"""``probekit demo``: bad input is one line on stderr and exit code 2 before any training
(issue 16: ``--jobs 0`` hung, ``--out`` under a file gave a traceback); off a terminal the demo
prints a line per finished checkpoint instead of staying silent for minutes."""

from __future__ import annotations

import io

import pytest

from .harness import assert_refused, make_inputs


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return root, make_inputs(root / "data")


@pytest.fixture
def case(root, monkeypatch):
    monkeypatch.chdir(root[0])
    return root


@pytest.mark.parametrize(("extra", "message"), [
    (["--jobs", "0"], "--jobs: must be a positive integer"),
    (["--jobs", "-1"], "--jobs: must be a positive integer"),
    (["--jobs", "two"], "--jobs: must be a positive integer"),
    (["--out", "{data}/a-file"], "--out must be a folder"),
    (["--out", "{data}/a-file/demo"], "is a file, not a folder"),
    (["--out", "{data}/fifo.npy"], "--out must be a folder"),
    (["--out", ""], "empty string"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_demo_input(case, extra, message):
    root, paths = case
    extra = [e.format(data=paths["file"].parent) for e in extra]
    command = "probekit" if extra == ["--bogus"] else "probekit demo"
    assert_refused(["demo", "--quick", *extra], root, command=command, match=message)


def test_demo_out_on_a_read_only_file_system(case, read_only):
    root, _ = case
    assert_refused(["demo", "--quick"], root, match="read-only file system")


@pytest.mark.parametrize(("tty", "quiet"), [(False, False), (True, True)])
def test_the_demo_reports_progress_when_stderr_is_a_log(tmp_path, monkeypatch, tty, quiet):
    """Off a terminal the sweep runs with quiet=False: the training loop then prints a line
    per checkpoint of every run (`[n-16] checkpoint step 250/...`)."""
    from probekit.reference import demo, sweep

    stream = io.StringIO()
    stream.isatty = lambda: tty  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stderr", stream)
    seen = {}

    def fake_sweep(preset_name, ns, out, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(sweep, "sweep", fake_sweep)
    with pytest.raises(SystemExit):
        demo.run_demo(tmp_path / "demo", quick=True, jobs=1)
    assert seen["quiet"] is quiet


def test_training_prints_a_line_per_checkpoint_off_a_terminal(tmp_path, capsys):
    import dataclasses

    import torch

    from probekit.reference.config import preset
    from probekit.reference.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = preset("digits-small", n=8, steps=20, width=8)
        cfg = dataclasses.replace(
            cfg, schedule=dataclasses.replace(cfg.schedule, dense_every=10, dense_until=20))
        train(cfg, tmp_path / "run", quiet=False)
    finally:
        torch.set_num_threads(threads)
    lines = [line for line in capsys.readouterr().err.splitlines() if "checkpoint step" in line]
    assert len(lines) >= 2, lines  # one per checkpoint, as each is reached
