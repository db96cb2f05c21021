"""Progress shown on a terminal: a redrawn bar, stage lines, and Ctrl-C as a polite stop."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO


def say(text: str) -> None:
    """A status line for the person at the terminal; stdout stays for results."""
    print(text, file=sys.stderr, flush=True)


class ProgressBar:
    """One redrawn line on a terminal, a line every few seconds elsewhere (logs, CI)."""

    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr) -> None:
        self.label, self.total, self.stream = label, total, stream
        self.started = time.perf_counter()
        self._last_line = 0.0
        self._tty = stream.isatty()
        self._first: tuple[float, int] | None = None  # a resumed job starts part-way

    def update(self, done: int, extra: str = "") -> None:
        now = time.perf_counter()
        if not self._tty and now - self._last_line < 5 and done < self.total:
            return
        self._last_line = now
        fraction = done / self.total if self.total else 1.0
        elapsed = now - self.started
        if self._first is None:
            self._first = (now, done)
            rate = done / elapsed if elapsed > 0 else 0.0
        else:
            since, done_then = self._first
            rate = (done - done_then) / (now - since) if now > since else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        bar = "#" * int(24 * fraction)
        line = (
            f"{self.label} [{bar:<24}] {done}/{self.total} "
            f"{elapsed:.0f}s elapsed, {eta:.0f}s left {extra}"
        )
        if self._tty:
            self.stream.write("\r\x1b[2K" + line)
            if done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()


@contextmanager
def interrupt_cancels(cancel: Callable[[], None]) -> Iterator[None]:
    """The first Ctrl-C asks the job to stop cleanly; a second one stops at once."""

    def handler(signum: int, frame: object) -> None:
        cancel()
        say("\nstopping after this step (Ctrl-C again to stop at once)")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def print_line(bar: ProgressBar, text: str) -> None:
    if bar.stream.isatty():
        bar.close()
    say(text)


def drive_with(job: Any, handlers: dict[type, Callable[[Any], None]]) -> Any:
    """Run a core generator, showing its events; stages go to stderr as plain lines."""
    from ..core.evaluation import Stage
    from ..core.jobs import drive

    def show(event: object) -> None:
        if isinstance(event, Stage):
            say(event.message)
        elif type(event) in handlers:
            handlers[type(event)](event)

    return drive(job, show)
