"""Short one-off core jobs (export, undo of an export) run on a pool thread, one at a time."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from fewshot_gui.core.jobs import CancelToken
from fewshot_gui.workers.labeling_worker import EMIT_INTERVAL_S, describe_error

JobFactory = Callable[[CancelToken], Generator[Any, None, Any]]


class _Relay(QObject):
    event = Signal(object)
    finished = Signal(object)
    failed = Signal(str)


class _Task(QRunnable):
    def __init__(self, relay: _Relay, factory: JobFactory, token: CancelToken) -> None:
        super().__init__()
        self._relay, self._factory, self._token = relay, factory, token

    def run(self) -> None:
        last = 0.0
        try:
            job = self._factory(self._token)
            while True:
                try:
                    event = next(job)
                except StopIteration as stop:
                    self._relay.finished.emit(stop.value)
                    return
                now = time.monotonic()
                if now - last >= EMIT_INTERVAL_S:
                    last = now
                    self._relay.event.emit(event)
        except Exception as error:
            self._relay.failed.emit(describe_error(error))


class BackgroundJob(QObject):
    """Runs one core generator off the GUI thread; events are throttled to ~20 a second."""

    event = Signal(object)
    finished = Signal(object)  # the generator's return value
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._token = CancelToken()
        self._running = False
        self._relay = _Relay(self)
        self._relay.event.connect(self.event)
        self._relay.finished.connect(self._on_finished)
        self._relay.failed.connect(self._on_failed)

    @property
    def running(self) -> bool:
        return self._running

    def start(self, factory: JobFactory) -> None:
        if self._running:
            raise RuntimeError("a background job is already running")
        self._running = True
        self._token = CancelToken()
        self._pool.start(_Task(self._relay, factory, self._token))

    def cancel(self) -> None:
        self._token.cancel()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        self._token.cancel()
        return self._pool.waitForDone(timeout_ms)

    def _on_finished(self, result: object) -> None:
        self._running = False
        self.finished.emit(result)

    def _on_failed(self, message: str) -> None:
        self._running = False
        self.failed.emit(message)
