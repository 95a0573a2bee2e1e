"""A small progress bar with an ETA, on stderr, for every long loop.

Bars nest: a checkpoint loop's bar and an adapter's sampling bar share one line
(``checkpoints 3/10 [===    ] 00:42<01:38 | sampling 20/50``). Redraws are limited to ten per
second. When stderr is not a terminal (a log file, a pipe, a batch job), the outer bars
(``leave=True``: units of work such as checkpoints or runs) print one plain line per finished
item instead — at most one every :data:`LINE_INTERVAL` seconds, plus the last — and inner bars
print nothing, so a long job's log shows it is alive without filling up. Inside
``with quiet_progress():`` (the CLI's ``--quiet``) nothing is printed.
"""

from __future__ import annotations

import contextlib
import contextvars
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("probekit_quiet", default=False)
_ACTIVE: list[Progress] = []
_MIN_INTERVAL = 0.1
#: Seconds between two plain progress lines when stderr is not a terminal.
LINE_INTERVAL = 2.0


@contextlib.contextmanager
def quiet_progress(quiet: bool = True) -> Iterator[None]:
    """Within this block, bars created without an explicit ``enabled`` draw nothing."""
    token = _QUIET.set(quiet)
    try:
        yield
    finally:
        _QUIET.reset(token)


def format_seconds(seconds: float) -> str:
    """``75.2`` → ``"01:15"``; ``3725`` → ``"1:02:05"``."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "--:--"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """One bar. Use as a context manager, call :meth:`update` after each finished item.

    Parameters
    ----------
    total : int or None
        Number of items (``None``: count without a bar or ETA).
    desc : str
        What is being counted (``"checkpoints"``).
    enabled : bool or None
        Force drawing on or off; ``None`` draws when ``stream`` is a terminal and not quiet
        (and, off a terminal, prints plain lines for an outer bar: see the module notes).
    stream : text stream
        Where to draw (default: ``sys.stderr``).
    leave : bool
        Keep the final line when the outermost bar closes (inner bars always vanish).
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        leave: bool = True,
        width: int = 20,
    ):
        self.total = total
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        lines = False
        if enabled is None:
            terminal = bool(getattr(self.stream, "isatty", lambda: False)())
            enabled = not _QUIET.get() and terminal
            lines = not _QUIET.get() and not terminal and leave
        self.enabled = enabled
        #: Plain lines instead of a bar (not a terminal, an outer bar, not quiet).
        self.lines = lines
        self.leave = leave
        self.width = width
        self.done = 0
        self.status = ""
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._open = False

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> Progress:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> Progress:
        if not self._open:
            self._open = True
            self.start = time.perf_counter()
            if self.enabled:
                _ACTIVE.append(self)
                self._draw(force=True)
        return self

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        if not self.enabled:
            return
        outermost = bool(_ACTIVE) and _ACTIVE[0] is self
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if outermost and self.leave:
            self._write("\r" + self._fit(self.text()) + "\x1b[K\n")
        elif _ACTIVE:
            _ACTIVE[-1]._draw(force=True)
        else:
            self._write("\r\x1b[K")

    # -- updates ----------------------------------------------------------------------------

    def update(self, n: int = 1, *, status: str | None = None) -> None:
        """Count ``n`` more finished items; ``status`` is shown after the bar."""
        self.done += n
        if status is not None:
            self.status = status
        last = self.total is not None and self.done >= self.total
        if self.enabled and self._open:
            self._draw(force=last)
        elif self.lines and self._open:
            now = time.perf_counter()
            if last or now - self._last_draw >= LINE_INTERVAL:
                self._last_draw = now
                self._write(f"probekit: {self.text()}\n")

    def note(self, message: str) -> None:
        """Print ``message`` on a line of its own (above the bar on a terminal; a plain line
        in a log), unless quiet: for events a user must not miss, such as a failed item."""
        if _QUIET.get() and not self.enabled:
            return
        if self.enabled and self._open:
            self._write("\r\x1b[K" + message + "\n")
            self._draw(force=True)
        elif self.enabled or self.lines or not _QUIET.get():
            self._write(f"probekit: {message}\n")

    def set_status(self, status: str) -> None:
        """Change the text shown after the bar (what is being worked on now)."""
        self.status = status
        if self.enabled and self._open:
            self._draw(force=True)

    def eta(self) -> float:
        """Seconds left, from the mean time per finished item (``nan`` before the first)."""
        if not self.total or not self.done:
            return float("nan")
        elapsed = time.perf_counter() - self.start
        return elapsed / self.done * max(0, self.total - self.done)

    def text(self) -> str:
        """The bar as text (without the bars it is nested in)."""
        elapsed = time.perf_counter() - self.start
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = round(frac * self.width)
            bar = "=" * filled + " " * (self.width - filled)
            text = (f"{self.desc} {self.done}/{self.total} [{bar}] {format_seconds(elapsed)}"
                    f"<{format_seconds(self.eta())}")
        else:
            text = f"{self.desc} {self.done} {format_seconds(elapsed)}"
        return f"{text} {self.status}".rstrip()

    # -- drawing ----------------------------------------------------------------------------

    def _draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_draw < _MIN_INTERVAL:
            return
        self._last_draw = now
        line = " | ".join(bar.text() for bar in _ACTIVE) if self in _ACTIVE else self.text()
        self._write("\r" + self._fit(line) + "\x1b[K")

    def _fit(self, line: str) -> str:
        columns = shutil.get_terminal_size((100, 20)).columns
        return line if len(line) < columns else line[: max(10, columns - 2)] + "…"

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed or broken stream: progress is never fatal
            self.enabled = False


def progress(
    iterable: Iterable[T], *, total: int | None = None, desc: str, enabled: bool | None = None,
    stream: TextIO | None = None, leave: bool = False,
) -> Iterator[T]:
    """Iterate over ``iterable`` with a bar (``total`` defaults to ``len(iterable)``)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, enabled=enabled, stream=stream, leave=leave) as bar:
        for item in iterable:
            yield item
            bar.update()


def clear_line(stream: TextIO | None = None) -> None:
    """Erase the bar line before printing a message (bars redraw on their next update)."""
    if _ACTIVE:
        _ACTIVE[-1]._write("\r\x1b[K")


__all__ = ["Progress", "clear_line", "format_seconds", "progress", "quiet_progress"]
