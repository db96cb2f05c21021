"""A core generator stepped one event per turn of its thread's event loop, so that requests
queued for that thread (a new support set, a cancel) run between its steps."""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal


class SteppedJob(QObject):
    """Runs one generator at a time in the thread it lives in; `start` replaces the last.

    `event` carries the latest event at most every `emit_interval_s`; `finished` the
    generator's return value; `failed` the exception it raised. Each carries the job's `gen`.
    """

    event = Signal(int, object)
    finished = Signal(int, object)
    failed = Signal(int, object)

    def __init__(self, emit_interval_s: float, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._interval = emit_interval_s
        self._job: Generator[Any, None, Any] | None = None
        self._gen = 0
        self._last_emit = 0.0
        self._timer = QTimer(self)  # made with the job, so it belongs to the job's thread
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._step)

    def start(self, gen: int, job: Generator[Any, None, Any]) -> None:
        self.stop()
        self._job, self._gen, self._last_emit = job, gen, 0.0
        self._timer.start()

    def stop(self) -> None:
        job, self._job = self._job, None
        self._timer.stop()
        if job is not None:
            job.close()

    def _step(self) -> None:
        job = self._job
        if job is None:
            return
        try:
            event = next(job)
        except StopIteration as stop:
            self._job = None
            self._timer.stop()
            self.finished.emit(self._gen, stop.value)
            return
        except Exception as error:
            self._job = None
            self._timer.stop()
            self.failed.emit(self._gen, error)
            return
        if time.monotonic() - self._last_emit >= self._interval:
            self._last_emit = time.monotonic()
            self.event.emit(self._gen, event)
