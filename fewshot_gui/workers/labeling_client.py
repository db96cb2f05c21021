"""The GUI's handle on the labeling worker thread.

`LabelingClient` lives in the GUI thread and is all the GUI sees. Each request gets a
generation number; a newer request of the same kind cancels the stale one's token, and
results of stale generations are dropped here, so the GUI only ever hears current answers.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal

from fewshot_gui.core.jobs import CancelToken
from fewshot_gui.workers.labeling_worker import (
    KINDS,
    Adaptation,
    LabelingWorker,
    ModelInfo,
    Progress,
)

__all__ = ["Adaptation", "LabelingClient", "ModelInfo", "Progress"]
QUIT_WAIT_MS = 1500  # quitting waits this long for the worker's current step, then gives up
# Every call from Qt into Python (a model's data(), a view's override, a timer's slot) takes
# the GIL back on the GUI thread; while the worker runs Python, each take waited out Python's
# 5 ms switch interval: 50 of them took 218 ms beside a busy thread, 18 ms at 0.2 ms.
GIL_SWITCH_S = 0.0002


class LabelingClient(QObject):
    """The GUI's handle on the worker thread: plain methods in, current-only signals out."""

    modelsListed = Signal(list)
    modelLoaded = Signal(object)  # ModelInfo
    engineProgress = Signal(int)  # percent of the one-time measurement of faster engines
    engineChanged = Signal(object)  # ModelInfo, now on the engine measured fastest
    stage = Signal(str)
    supportReady = Signal(object)  # SupportReport
    labelStarted = Signal(int)  # total
    labelProgress = Signal(object, list)  # Progress, [Labels] of the new files
    labelFinished = Signal(object)  # LabelSummary
    relabeled = Signal(object)  # Labels: the final labels of every file so far
    failed = Signal(str, str)  # kind, message
    busyChanged = Signal(bool)  # a labeling run started or ended
    duplicatesProgress = Signal(object)  # core.duplicates.DuplicateProgress
    duplicatesFound = Signal(object)  # core.duplicates.DuplicateGroups
    mapProgress = Signal(object)  # core.folder_map.MapProgress
    mapFeatures = Signal(object)  # (readable paths, their embeddings (n, D)) for the map
    proposed = Signal(object)  # [core.discover.Proposal]: candidate classes

    _listModels = Signal()
    _loadModel = Signal(int, str, object)
    _adapt = Signal(int, object, object)
    _setUnknown = Signal(int, object, object)
    _relabel = Signal(int, object)
    _rankCheckNext = Signal(int, bool, object)
    _label = Signal(int, object, object)
    _findDuplicates = Signal(int, object, object)
    _mapFeatures = Signal(int, object, object)
    _discover = Signal(int, object, object)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        cache_dir: Path | None = None,
        device: str = "auto",
        batch_size: int | None = None,
        engine: str = "auto",
    ) -> None:
        super().__init__(parent)
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_S))
        # The worker keeps the app's priority: a niced thread that holds the GIL waits behind
        # other processes for a core while the GUI thread waits for the GIL.
        self._gens = dict.fromkeys(KINDS, 0)
        self._tokens = {kind: CancelToken() for kind in KINDS}
        self._labeling = False
        self._worker_deleted = False
        self._thread = QThread()
        self._thread.setObjectName("labeling-worker")
        self._worker = LabelingWorker(cache_dir, device, batch_size, engine)
        self._worker.moveToThread(self._thread)
        self._thread.finished.connect(self._worker.shutdown)
        self._wire()
        self._thread.start()

    @property
    def labeling(self) -> bool:
        return self._labeling

    def list_models(self) -> None:
        self._listModels.emit()

    def load_model(self, name: str) -> None:
        self._cancel("label")
        self._labeling_done()
        gen, token = self._next("model")
        self._loadModel.emit(gen, name, token)

    def adapt(self, adaptation: Adaptation) -> None:
        """Adapt to an edit; any older adaptation or relabel still queued or running stops."""
        gen, token = self._next("support")
        self._supersede("relabel", gen)
        self._adapt.emit(gen, adaptation, token)

    def set_unknown(self, mode: str | float) -> None:
        gen, token = self._next("relabel")
        self._setUnknown.emit(gen, mode, token)

    def relabel(self) -> None:
        gen, token = self._next("relabel")
        self._relabel.emit(gen, token)

    def rank_check_next(self, on: bool) -> None:
        """Ask for the "check next" ranks with every relabel, or stop; on: ranks now."""
        # Off answers nothing, so it must not stop a relabel on its way.
        gen, token = self._next("relabel") if on else (0, CancelToken())
        self._rankCheckNext.emit(gen, on, token)

    def label(self, target: Path | Sequence[Path]) -> None:
        gen, token = self._next("label")
        self._gens["relabel"] = gen  # the run ends with the final labels of its files
        self._labeling = True
        self.busyChanged.emit(True)
        self._label.emit(gen, target if isinstance(target, Path) else list(target), token)

    def find_duplicates(self, paths: Sequence[Path]) -> None:
        """Group `paths` into copies with the loaded model; an older search stops."""
        gen, token = self._next("duplicates")
        self._findDuplicates.emit(gen, list(paths), token)

    def discover(self, rejected: Sequence[frozenset[Path]]) -> None:
        """Ask for classes in the unknown pile, none like a `rejected` one; an older ask stops."""
        gen, token = self._next("discover")
        self._discover.emit(gen, list(rejected), token)

    def map_features(self, paths: Sequence[Path]) -> None:
        """Ask for the embeddings of `paths` for the folder map; an older request stops."""
        gen, token = self._next("map")
        self._mapFeatures.emit(gen, list(paths), token)

    def cancel(self) -> None:
        """Stop the labeling run; the summary still arrives, marked cancelled."""
        self._tokens["label"].cancel()

    def shutdown(self, timeout_ms: int = QUIT_WAIT_MS) -> bool:
        """Cancel everything, stop a measuring child, stop the thread and wait for it; True
        when it ended in time (else a step that cannot be interrupted is still running)."""
        for token in self._tokens.values():
            token.cancel()
        # None if never imported (torch may not even be loaded), or still being imported.
        kill_probes = getattr(
            sys.modules.get("fewshot_gui.core.engine_choice"), "kill_all_probes", None
        )
        if kill_probes is not None:
            kill_probes()
        self._thread.quit()
        finished = self._thread.wait(timeout_ms)
        if finished and not self._worker_deleted:  # a second close must not delete it again
            self._worker_deleted = True
            self._worker.deleteLater()
        return finished

    def _next(self, kind: str) -> tuple[int, CancelToken]:
        self._tokens[kind].cancel()
        self._gens[kind] = gen = max(self._gens.values()) + 1
        self._tokens[kind] = token = CancelToken()
        return gen, token

    def _supersede(self, kind: str, gen: int) -> None:
        """A request of another kind answers for `kind` too: the older one stops. A newer
        request of `kind` drops this one's answer but does not stop it (its own token)."""
        self._tokens[kind].cancel()
        self._gens[kind], self._tokens[kind] = gen, CancelToken()

    def _cancel(self, kind: str) -> None:
        self._tokens[kind].cancel()
        self._gens[kind] = max(self._gens.values()) + 1

    def _current(self, kind: str, gen: int) -> bool:
        return self._gens[kind] == gen

    def _labeling_done(self) -> None:
        if self._labeling:
            self._labeling = False
            self.busyChanged.emit(False)

    def _wire(self) -> None:
        w = self._worker
        self._listModels.connect(w.list_models)
        self._loadModel.connect(w.load_model)
        self._adapt.connect(w.adapt)
        self._setUnknown.connect(w.set_unknown)
        self._relabel.connect(w.relabel)
        self._rankCheckNext.connect(w.rank_check_next)
        self._label.connect(w.label)
        self._findDuplicates.connect(w.find_duplicates)
        w.duplicatesProgress.connect(self._on_duplicates_progress)
        w.duplicatesFound.connect(self._on_duplicates_found)
        self._mapFeatures.connect(w.map_features)
        w.mapProgress.connect(self._on_map_progress)
        w.mapFeatures.connect(self._on_map_features)
        self._discover.connect(w.discover)
        w.proposed.connect(self._on_proposed)
        w.modelsListed.connect(self.modelsListed)
        w.stage.connect(self.stage)
        w.modelLoaded.connect(self._on_model)
        w.engineProgress.connect(self._on_engine_progress)
        w.engineChanged.connect(self._on_engine_changed)
        w.supportReady.connect(self._on_support)
        w.labelStarted.connect(self._on_label_started)
        w.labelProgress.connect(self._on_progress)
        w.labelFinished.connect(self._on_finished)
        w.relabeled.connect(self._on_relabeled)
        w.failed.connect(self._on_failed)

    def _on_model(self, gen: int, info: ModelInfo) -> None:
        if self._current("model", gen):
            self.modelLoaded.emit(info)

    def _on_engine_progress(self, gen: int, percent: int) -> None:
        if self._current("model", gen):
            self.engineProgress.emit(percent)

    def _on_engine_changed(self, gen: int, info: ModelInfo) -> None:
        if self._current("model", gen):
            self.engineChanged.emit(info)

    def _on_support(self, gen: int, report: object) -> None:
        if self._current("support", gen):
            self.supportReady.emit(report)

    def _on_label_started(self, gen: int, total: int) -> None:
        if self._current("label", gen):
            self.labelStarted.emit(total)

    def _on_progress(self, gen: int, progress: Progress, new: list) -> None:
        if self._current("label", gen):
            self.labelProgress.emit(progress, new)

    def _on_finished(self, gen: int, summary: object) -> None:
        if self._current("label", gen):
            self._labeling_done()
            self.labelFinished.emit(summary)

    def _on_relabeled(self, gen: int, labels: object) -> None:
        # A run's final labels, or a newer adaptation's relabel of it: the worker answers in
        # order, so the last one to arrive is the freshest.
        if self._current("relabel", gen) or self._current("label", gen):
            self.relabeled.emit(labels)

    def _on_duplicates_progress(self, gen: int, progress: object) -> None:
        if self._current("duplicates", gen):
            self.duplicatesProgress.emit(progress)

    def _on_duplicates_found(self, gen: int, found: object) -> None:
        if self._current("duplicates", gen):
            self.duplicatesFound.emit(found)

    def _on_map_progress(self, gen: int, progress: object) -> None:
        if self._current("map", gen):
            self.mapProgress.emit(progress)

    def _on_proposed(self, gen: int, proposals: object) -> None:
        if self._current("discover", gen):
            self.proposed.emit(proposals)

    def _on_map_features(self, gen: int, found: object) -> None:
        if self._current("map", gen):
            self.mapFeatures.emit(found)

    def _on_failed(self, kind: str, gen: int, message: str) -> None:
        if gen and not self._current("model" if kind == "engine" else kind, gen):
            return
        if kind == "label":
            self._labeling_done()
        self.failed.emit(kind, message)
