"""Progress bars: drawn on terminals only, silenced by quiet, nested on one line, honest ETA."""

from __future__ import annotations

import io

import pytest

from probekit import progress as _progress
from probekit.progress import Progress, format_seconds, progress, quiet_progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(_progress.time, "perf_counter", fake)
    return fake


def test_eta_from_the_mean_time_per_item(clock):
    stream = Terminal()
    with Progress(4, "checkpoints", stream=stream) as bar:
        clock.now += 10
        bar.update(2, status="step 500")
        assert bar.eta() == pytest.approx(10.0)
        assert "checkpoints 2/4 [" in stream.getvalue()
        assert "00:10<00:10 step 500" in stream.getvalue()
        clock.now += 30
        bar.update(2)
    final = stream.getvalue().rsplit("\r", 1)[-1]
    assert final.startswith("checkpoints 4/4 [====================] 00:40<00:00")
    assert final.endswith("\n")  # the outermost bar leaves its last line


def test_off_a_terminal_outer_bars_print_plain_lines_and_quiet_prints_nothing(clock):
    plain = io.StringIO()
    with Progress(3, "x", stream=plain) as bar:
        bar.update(status="a")  # first line
        clock.now += 0.5
        bar.update()  # within LINE_INTERVAL of the last line: not printed
        clock.now += 0.5
        bar.update(status="c")  # the last item is always printed
    lines = plain.getvalue().splitlines()
    assert lines == ["probekit: x 1/3 [=======             ] 00:00<00:00 a",
                     "probekit: x 3/3 [====================] 00:01<00:00 c"]
    inner = io.StringIO()
    with Progress(3, "inner", stream=inner, leave=False) as bar:  # inner bars stay silent
        bar.update(3)
    assert inner.getvalue() == ""
    with quiet_progress():
        quiet_plain = io.StringIO()
        with Progress(3, "x", stream=quiet_plain) as bar:
            bar.update(3)
            bar.note("hidden")
        assert quiet_plain.getvalue() == ""

def test_nothing_is_drawn_on_a_terminal_when_quiet_unless_forced():
    terminal = Terminal()
    with quiet_progress(), Progress(3, "x", stream=terminal) as bar:
        bar.update()
    assert terminal.getvalue() == ""
    forced = io.StringIO()
    with quiet_progress(), Progress(3, "x", stream=forced, enabled=True) as bar:
        bar.update()
    assert "x 1/3" in forced.getvalue()


def test_nested_bars_share_one_line(clock):
    stream = Terminal()
    with Progress(2, "checkpoints", stream=stream) as outer:
        for _ in progress(range(3), desc="sampling", stream=stream):
            clock.now += 1
        assert "checkpoints 0/2 [" in stream.getvalue()
        assert " | sampling 3/3 [" in stream.getvalue()
        after_inner = stream.getvalue().rsplit("\r", 1)[-1]
        assert "sampling" not in after_inner and after_inner.startswith("checkpoints 0/2")
        outer.update(2)
    assert _progress._ACTIVE == []


def test_format_seconds_and_unknown_totals():
    assert format_seconds(75.2) == "01:15"
    assert format_seconds(3725) == "1:02:05"
    assert format_seconds(float("nan")) == "--:--"
    stream = Terminal()
    with Progress(None, "items", stream=stream) as bar:
        bar.update(5)
    assert "items 5 00:00" in stream.getvalue() and " [" not in stream.getvalue()


def test_a_broken_stream_never_breaks_the_work():
    class Broken(Terminal):
        def write(self, text):
            raise OSError("closed")

    with Progress(2, "x", stream=Broken()) as bar:
        bar.update(2)
    assert not bar.enabled
