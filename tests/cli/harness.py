"""Harness of the bad-input tables (issue 16): run ``probekit ...`` in-process through
:func:`probekit.cli.main`, with a per-case timeout that catches hangs, and check the promise:

* the documented exit code (2 for bad input; never 1, which means the input got past the
  checks and something broke later);
* at most 3 lines on stderr, no ``Traceback``, no ANSI escape codes;
* the file system unchanged: names, kinds, sizes and modification times of everything under
  the case's root, before and after.

Data files are tiny and shared per module (``make_inputs``); the working directory is the root,
so that outputs with relative defaults (``demo-out``) are inside the snapshot. The fixtures
are in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from probekit.cli import main

#: Seconds a case may take before it counts as a hang (the table's cases take well under one).
CASE_TIMEOUT = 60
_ANSI = re.compile(r"\x1b\[")


class CaseTimeout(BaseException):
    """Raised by SIGALRM inside a case (a BaseException, so that no ``except Exception`` in the
    command swallows it)."""


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_cli(argv: Sequence[str], *, timeout: int = CASE_TIMEOUT) -> Outcome:
    """``probekit ARGV`` in this process; fails the test when it does not end in ``timeout``."""
    out, err = io.StringIO(), io.StringIO()

    def on_alarm(signum, frame):
        raise CaseTimeout(f"probekit {' '.join(argv)} did not end within {timeout} s (a hang)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            warnings.simplefilter("default")  # as on a terminal: shown, not raised
            code = main(list(argv))
    except CaseTimeout as exc:
        pytest.fail(str(exc))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return Outcome(int(code), out.getvalue(), err.getvalue())


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """``{relative path: (kind, size, mtime_ns)}`` of everything under ``root`` (links and
    special files by kind only)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            kind = stat.S_IFMT(st.st_mode)
            regular = stat.S_ISREG(st.st_mode)
            found[str(path.relative_to(root))] = (
                kind, st.st_size if regular else 0, st.st_mtime_ns if regular else 0)
    return found


def assert_refused(argv: Sequence[str], root: Path, *, code: int = 2, match: str | None = None,
                   command: str | None = None) -> Outcome:
    """Run ``argv`` and check the issue-16 promise for a refused input; return the outcome."""
    before = snapshot(root)
    outcome = run_cli(argv)
    shown = outcome.stderr[-2000:]
    assert outcome.code == code, f"exit {outcome.code}, expected {code}; stderr:\n{shown}"
    assert "Traceback" not in outcome.stderr, shown
    assert not _ANSI.search(outcome.stderr), shown
    assert 1 <= len(outcome.lines) <= 3, f"{len(outcome.lines)} lines on stderr:\n{shown}"
    if code == 2:
        who = command or f"probekit {argv[0]}"
        assert outcome.lines[-1].startswith(f"{who}: error: "), shown
    if match is not None:
        assert re.search(match, outcome.stderr), f"{match!r} not in:\n{shown}"
    after = snapshot(root)
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"the file system changed: {changed[:6]}"
    return outcome


# -- inputs ---------------------------------------------------------------------------------------


def _evil_torch_file(path: Path) -> None:
    import torch

    class Payload:
        def __reduce__(self):
            return (exec, ("raise SystemExit('payload ran')",))

    torch.save({"samples": torch.zeros(2, 1, 4, 4), "x": Payload()}, path)


def make_inputs(root: Path) -> dict[str, Path]:
    """Small good inputs and one bad file of each kind, under ``root``."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def save(name: str, array: np.ndarray) -> None:
        paths[name] = root / f"{name}.npy"
        np.save(paths[name], array)

    save("train", rng.random((24, 1, 4, 4)).astype(np.float32))
    save("holdout", rng.random((24, 1, 4, 4)).astype(np.float32))
    save("samples", rng.random((24, 1, 4, 4)).astype(np.float32))
    save("one_sample", rng.random((1, 1, 4, 4)).astype(np.float32))
    save("series", rng.random((24, 16, 1)).astype(np.float32))  # time series
    save("wide", rng.random((24, 1, 5, 5)).astype(np.float32))  # another image size
    save("scalar", np.float32(1.0))
    save("vector", rng.random(24).astype(np.float32))
    save("nan", np.full((24, 1, 4, 4), np.nan, dtype=np.float32))
    save("empty_axis", np.zeros((24, 0, 4, 4), dtype=np.float32))
    save("strings", np.array([["a", "b"]] * 24))
    paths["object"] = root / "object.npy"
    np.save(paths["object"], np.array([1, "a"], dtype=object), allow_pickle=True)
    paths["empty"] = root / "empty.npy"
    paths["empty"].write_bytes(b"")
    paths["garbage"] = root / "garbage.npy"
    paths["garbage"].write_bytes(b"this is not an array" * 5)
    paths["truncated"] = root / "truncated.npy"
    paths["truncated"].write_bytes(paths["train"].read_bytes()[:150])
    paths["unsupported"] = root / "data.xyz"
    paths["unsupported"].write_text("1,2,3\n")
    paths["bad_csv"] = root / "bad.csv"
    paths["bad_csv"].write_text("1,2,3\n4,five,6\n")
    paths["evil_pt"] = root / "evil.pt"
    _evil_torch_file(paths["evil_pt"])
    paths["garbage_pt"] = root / "garbage.pt"
    paths["garbage_pt"].write_bytes(b"garbage" * 20)
    paths["fifo"] = root / "fifo.npy"
    os.mkfifo(paths["fifo"])
    paths["folder"] = root / "no-images"
    paths["folder"].mkdir()
    (paths["folder"] / "notes.txt").write_text("no images here")
    paths["file"] = root / "a-file"
    paths["file"].write_text("a regular file")
    paths["missing"] = root / "missing.npy"
    paths["under_file"] = paths["file"] / "out"
    return paths


#: Bad values for any input-file argument: (label, key in make_inputs, what stderr says).
BAD_INPUT_FILES = [
    ("missing", "missing", "does not exist"),
    ("empty", "empty", "empty or truncated"),
    ("truncated", "truncated", "cannot read"),
    ("garbage", "garbage", "not a valid .npy"),
    ("object-dtype", "object", "Python objects"),
    ("scalar", "scalar", "dimensions"),
    ("vector", "vector", "dimensions"),
    ("nan", "nan", "finite"),
    ("strings", "strings", "real numbers|dimensions"),
    ("unsupported-suffix", "unsupported", "unsupported file type"),
    ("bad-csv", "bad_csv", "not a number"),
    ("pickled-torch", "evil_pt", "refused to load.*PROBEKIT_ALLOW_PICKLE=1"),
    ("garbage-torch", "garbage_pt", "not a valid torch file"),
    ("named-pipe", "fifo", "named pipe"),
    ("folder-without-images", "folder", "no .png"),
    ("dev-zero", None, "character device"),
]


def bad_input(paths: dict[str, Path], key: str | None) -> str:
    return "/dev/zero" if key is None else str(paths[key])
