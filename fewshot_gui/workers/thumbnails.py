"""Thumbnail loading off the GUI thread: a thread pool runs `core.images.thumbnail_array`."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal

from fewshot_gui.core.images import thumbnail_array
from fewshot_gui.workers.labeling_worker import describe_error


class _Relay(QObject):
    # Emitted from a pool thread; the receiver in the GUI thread gets it queued.
    done = Signal(str, int, object, str)  # path, max side, uint8 (h, w, 3) array or None, error


class _Task(QRunnable):
    def __init__(self, relay: _Relay, path: str, max_side: int) -> None:
        super().__init__()
        self._relay, self._path, self._max_side = relay, path, max_side

    def run(self) -> None:
        try:
            pixels = thumbnail_array(Path(self._path), self._max_side)
        except Exception as error:
            self._relay.done.emit(self._path, self._max_side, None, describe_error(error))
        else:
            self._relay.done.emit(self._path, self._max_side, pixels, "")


class ThumbnailLoader(QObject):
    """Load each requested (path, max side) once at a time; `loaded` reports the array."""

    loaded = Signal(str, int, object, str)  # path, max side, array or None, error message

    def __init__(self, parent: QObject | None = None, threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, min(threads, QThread.idealThreadCount() - 1)))
        self._relay = _Relay(self)
        self._relay.done.connect(self._done)
        self._in_flight: set[tuple[str, int]] = set()

    def request(self, path: str, max_side: int) -> None:
        key = (path, max_side)
        if key in self._in_flight:
            return
        self._in_flight.add(key)
        self._pool.start(_Task(self._relay, path, max_side))

    def clear(self) -> None:
        """Drop requests that have not started yet (a new folder replaces the old one)."""
        self._pool.clear()
        self._in_flight.clear()

    def wait(self, timeout_ms: int = 10_000) -> bool:
        self._pool.clear()
        return self._pool.waitForDone(timeout_ms)

    def _done(self, path: str, max_side: int, pixels: object, error: str) -> None:
        self._in_flight.discard((path, max_side))
        self.loaded.emit(path, max_side, pixels, error)
