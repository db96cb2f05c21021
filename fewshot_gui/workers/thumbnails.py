"""Thumbnail loading off the GUI thread: a thread pool runs `core.images.thumbnail_array`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal

from fewshot_gui.core.images import thumbnail_array
from fewshot_gui.workers.labeling_worker import describe_error

# Requests nobody withdraws (no `retain`) are capped: the oldest wait longest and go first.
MAX_PENDING = 1000


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
    """Load each requested (path, max side) once; `loaded` reports the array.

    Requests wait in a queue of their own, not the pool's, so that `retain` can drop the
    ones for tiles scrolled out of sight before a thread decodes them.
    """

    loaded = Signal(str, int, object, str)  # path, max side, array or None, error message

    def __init__(self, parent: QObject | None = None, threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._threads = max(1, min(threads, QThread.idealThreadCount() - 1))
        self._pool.setMaxThreadCount(self._threads)
        self._relay = _Relay(self)
        self._relay.done.connect(self._done)
        self._pending: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._running: set[tuple[str, int]] = set()

    def request(self, path: str, max_side: int) -> None:
        key = (path, max_side)
        if key in self._running or key in self._pending:
            return
        self._pending[key] = None
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        self._start()

    def retain(self, max_side: int, paths: Collection[str]) -> None:
        """Drop waiting requests of `max_side` whose path is not in `paths` (no longer shown)."""
        for key in [k for k in self._pending if k[1] == max_side and k[0] not in paths]:
            del self._pending[key]

    def pending(self) -> list[tuple[str, int]]:
        """The (path, max side) requests not yet handed to a thread, oldest first."""
        return list(self._pending)

    def clear(self) -> None:
        """Drop requests that have not started yet (a new folder replaces the old one)."""
        self._pending.clear()

    def wait(self, timeout_ms: int = 10_000) -> bool:
        self._pending.clear()
        return self._pool.waitForDone(timeout_ms)

    def _start(self) -> None:
        while self._pending and len(self._running) < self._threads:
            (path, max_side), _ = self._pending.popitem(last=False)
            self._running.add((path, max_side))
            self._pool.start(_Task(self._relay, path, max_side))

    def _done(self, path: str, max_side: int, pixels: object, error: str) -> None:
        self._running.discard((path, max_side))
        self._start()
        self.loaded.emit(path, max_side, pixels, error)
