"""The folder map's jobs: embeddings from the labeling worker, then the layout (or the
placement of new images) on a pool thread, so that neither the window nor labeling waits.

One request at a time: a newer one cancels the one before, and only the newest answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from fewshot_gui.core.folder_map import FolderMap, MapProgress, layout, place
from fewshot_gui.workers.background import BackgroundJob
from fewshot_gui.workers.labeling_client import LabelingClient


class MapJobs(QObject):
    """`lay_out(paths)` makes a new map; `place(current, paths)` adds paths to `current`.

    `progress(MapProgress)` while either runs; `ready(FolderMap)` at the end; `failed(str)`.
    """

    progress = Signal(object)
    ready = Signal(object)
    failed = Signal(str)

    def __init__(self, client: LabelingClient, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._client = client
        self._job = BackgroundJob(self)
        self._gen = 0
        self._waiting: tuple[int, FolderMap | None] | None = None  # features asked for
        self._queued: tuple[int, FolderMap | None, object] | None = None  # behind a stale job
        self._running_gen = 0
        client.mapProgress.connect(self._on_progress)
        client.mapFeatures.connect(self._on_features)
        client.failed.connect(self._on_client_failed)
        self._job.event.connect(self._on_progress)
        self._job.finished.connect(self._on_finished)
        self._job.failed.connect(self._on_job_failed)

    @property
    def busy(self) -> bool:
        return self._waiting is not None or self._queued is not None or self._job.running

    def lay_out(self, paths: Sequence[Path]) -> None:
        """A new map of `paths` (those that cannot be read are left off)."""
        self._request(paths, None)

    def place(self, current: FolderMap, paths: Sequence[Path]) -> None:
        """`current` with `paths` (none of them on it) placed among its points."""
        self._request(paths, current)

    def cancel(self) -> None:
        self._gen += 1
        self._waiting = self._queued = None
        self._job.cancel()

    def _request(self, paths: Sequence[Path], current: FolderMap | None) -> None:
        self.cancel()
        self._waiting = (self._gen, current)
        self._client.map_features(paths)

    def _on_progress(self, event: object) -> None:
        if isinstance(event, MapProgress) and self.busy:
            self.progress.emit(event)

    def _on_features(self, found: object) -> None:
        if self._waiting is None or found is None:
            return
        gen, current = self._waiting
        self._waiting = None
        if self._job.running:  # a stale job still stopping: this one starts when it ends
            self._queued = (gen, current, found)
        else:
            self._start(gen, current, found)

    def _start(self, gen: int, current: FolderMap | None, found: object) -> None:
        paths, features = found  # type: ignore[misc]
        self._running_gen = gen
        if current is None:
            self._job.start(lambda token: layout(paths, features, token))
        else:
            self._job.start(lambda token: place(current, paths, features, token))

    def _after_job(self) -> None:
        if self._queued is not None:
            queued, self._queued = self._queued, None
            self._start(*queued)

    def _on_finished(self, result: object) -> None:
        current = self._running_gen == self._gen and self._queued is None
        self._after_job()
        if current and isinstance(result, FolderMap):
            self.ready.emit(result)

    def _on_job_failed(self, message: str) -> None:
        current = self._running_gen == self._gen and self._queued is None
        self._after_job()
        if current:
            self.failed.emit(message)

    def _on_client_failed(self, kind: str, message: str) -> None:
        if kind == "map" and self._waiting is not None:
            self._waiting = None
            self.failed.emit(message)

    def wait(self, timeout_ms: int) -> bool:
        """Stop and wait for the job on its thread, at most `timeout_ms`."""
        self.cancel()
        return self._job.wait(timeout_ms)
