"""The labeling worker: lives in one long-lived thread, owns the Labeler, answers requests.

Only `LabelingClient` (labeling_client.py) talks to it. Torch is imported inside the worker
thread, never at import time of this module.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from itertools import takewhile
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from fewshot_gui.core.errors import FewShotError
from fewshot_gui.core.images import iter_image_files
from fewshot_gui.core.jobs import CancelToken
from fewshot_gui.workers.stepping import SteppedJob

# At most this many progress signals a second; predictions travel in batches between them.
EMIT_INTERVAL_S = 0.05
PROBE_POLL_MS = 200  # how often the worker reads the engine measurement's progress
KINDS = ("model", "engine", "support", "label", "relabel", "duplicates", "map", "discover")


@dataclass(frozen=True)
class ModelInfo:
    """What the status bar and the model chooser show about the loaded model."""

    name: str
    device: str
    engine: str
    card: dict[str, Any]


@dataclass(frozen=True)
class Progress:
    """Labeling progress as the GUI shows it; `new` predictions arrive separately."""

    done: int
    total: int
    images_per_second: float
    seconds_left: float


def describe_error(error: BaseException) -> str:
    """A message a person can read: the core's own words, or the exception's kind and text."""
    if isinstance(error, FewShotError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


@dataclass(frozen=True)
class Adaptation:
    """One edit's worth of what the model adapts to: examples, corrections, threshold."""

    support: dict[str, list[Path]]  # class name -> example paths
    corrections: dict[Path, str]  # path -> class name or `unknown`
    unknown: str | float  # "auto", "off" or a novelty threshold


class _LabelJob:
    def __init__(self, gen: int, job: Generator[Any, None, Any], token: CancelToken) -> None:
        self.gen, self.job, self.token = gen, job, token
        self.pending: list[Any] = []  # core.predictions.Labels, one per batch
        self.last_emit = 0.0
        self.progress: Progress | None = None


class LabelingWorker(QObject):
    """Lives in the worker thread; every slot runs there. Only the client talks to it."""

    modelsListed = Signal(list)  # [(name, card)]
    modelLoaded = Signal(int, object)  # gen, ModelInfo
    engineProgress = Signal(int, int)  # gen, percent of the one-time engine measurement
    engineChanged = Signal(int, object)  # gen, ModelInfo with the measured engine
    stage = Signal(str)
    supportReady = Signal(int, object)  # gen, SupportReport
    labelStarted = Signal(int, int)  # gen, total
    labelProgress = Signal(int, object, list)  # gen, Progress, [Labels] of the new files
    labelFinished = Signal(int, object)  # gen, LabelSummary
    relabeled = Signal(int, object)  # gen, Labels of every file so far (the final labels)
    duplicatesProgress = Signal(int, object)  # gen, core.duplicates.DuplicateProgress
    duplicatesFound = Signal(int, object)  # gen, core.duplicates.DuplicateGroups
    mapProgress = Signal(int, object)  # gen, core.folder_map.MapProgress
    mapFeatures = Signal(int, object)  # gen, (readable paths, their embeddings (n, D))
    proposed = Signal(int, object)  # gen, [core.discover.Proposal]
    failed = Signal(str, int, str)  # kind, gen, message

    def __init__(
        self,
        cache_dir: Path | None = None,
        device: str = "auto",
        batch_size: int | None = None,
        engine: str = "auto",
    ) -> None:
        super().__init__()
        self._cache_dir, self._device, self._batch_size = cache_dir, device, batch_size
        self._engine = engine
        self._labeler: Any = None
        self._check_next = False  # rank for "check next" with each relabel: only when shown
        self._model_gen = 0
        self._job: _LabelJob | None = None
        self._timer: QTimer | None = None
        self._probe: Any = None  # core.engine_choice.EngineProbe while one measures
        self._probe_timer: QTimer | None = None
        self._duplicates: SteppedJob | None = None
        self._map: SteppedJob | None = None
        self._discovery: SteppedJob | None = None

    @Slot()
    def list_models(self) -> None:
        try:
            from fewshot_gui.core.checkpoint import list_models

            self.modelsListed.emit(list_models())
        except Exception as error:
            self.failed.emit("model", 0, describe_error(error))

    @Slot(int, str, object)
    def load_model(self, gen: int, name: str, token: CancelToken) -> None:
        if token.cancelled:
            return
        self._stop_job()
        self._stop_probe()
        try:
            self.stage.emit(f"Loading model {name}…")
            from fewshot_gui.core.checkpoint import load_model
            from fewshot_gui.core.labeling import Labeler

            loaded = load_model(name)
            self._labeler = None
            labeler = Labeler(
                loaded,
                device=self._device,
                cache_dir=self._cache_dir,
                batch_size=self._batch_size,
                engine=self._engine,
            )
            self._labeler, self._model_gen = labeler, gen
            self.modelLoaded.emit(gen, self._info())
            if labeler.engine_choice.measure_later and not token.cancelled:
                self._start_probe(loaded)
        except Exception as error:
            self.failed.emit("model", gen, describe_error(error))

    def _info(self) -> ModelInfo:
        labeler = self._labeler
        loaded = labeler.loaded
        return ModelInfo(loaded.name, labeler.device_name, labeler.engine_name, loaded.card)

    def _start_probe(self, loaded: Any) -> None:
        """Measure the faster engines in a child process; the safe engine labels meanwhile."""
        from fewshot_gui.core.engine_choice import EngineProbe

        engines = None if self._cache_dir is None else self._cache_dir / "engines"
        self._probe = EngineProbe(loaded, cache_dir=engines, batch_size=self._labeler.batch_size)
        if self._probe_timer is None:
            self._probe_timer = QTimer(self)  # made here, so it belongs to the worker thread
            self._probe_timer.setInterval(PROBE_POLL_MS)
            self._probe_timer.timeout.connect(self._poll_probe)
        self._probe_timer.start()

    def _poll_probe(self) -> None:
        probe, gen = self._probe, self._model_gen
        if probe is None:
            return
        try:
            progress = probe.step()
            if progress is not None:
                self.engineProgress.emit(gen, round(100 * progress))
                return
            self._stop_probe()
            self._labeler.use_engine(probe.choice())
            self.engineChanged.emit(gen, self._info())
        except Exception as error:  # the safe engine stays: a failed measurement costs speed
            self._stop_probe()
            self.failed.emit("engine", gen, describe_error(error))

    def _stop_probe(self) -> None:
        probe, self._probe = self._probe, None
        if self._probe_timer is not None:
            self._probe_timer.stop()
        if probe is not None:
            probe.kill()

    @Slot(int, object, object)
    def adapt(self, gen: int, adaptation: Adaptation, token: CancelToken) -> None:
        """Adapt to one edit's examples, corrections and threshold, then relabel what is
        labeled: one request per edit, stopped between steps once a newer one cancels it."""
        if token.cancelled or not self._require_model("support", gen):
            return
        self._flush()
        try:
            from fewshot_gui.core.labeling import SupportSet

            support = SupportSet.from_mapping(adaptation.support)
            self._labeler.set_unknown(adaptation.unknown)
            report = self._drive_stages(self._labeler.set_support(support, token))
            if token.cancelled:
                return
            self._labeler.set_corrections(adaptation.corrections)
            self.supportReady.emit(gen, report)
            if not token.cancelled:
                self.relabeled.emit(gen, self._relabeled())
        except Exception as error:
            if not token.cancelled:
                self.failed.emit("support", gen, describe_error(error))

    @Slot(int, object, object)
    def set_unknown(self, gen: int, mode: str | float, token: CancelToken) -> None:
        if token.cancelled or not self._require_model("relabel", gen):
            return
        self._flush()
        try:
            self._labeler.set_unknown(mode)
            self.relabeled.emit(gen, self._relabeled())
        except Exception as error:
            self.failed.emit("relabel", gen, describe_error(error))

    @Slot(int, object)
    def relabel(self, gen: int, token: CancelToken) -> None:
        if token.cancelled or not self._require_model("relabel", gen):
            return
        self._flush()
        try:
            self.relabeled.emit(gen, self._relabeled())
        except Exception as error:
            self.failed.emit("relabel", gen, describe_error(error))

    @Slot(int, object, object)
    def label(self, gen: int, target: Path | Sequence[Path], token: CancelToken) -> None:
        """Label a folder (every image under it) or a list of files, a batch per event loop turn."""
        self._stop_job()
        if token.cancelled or not self._require_model("label", gen):
            return
        try:
            paths = list(
                takewhile(
                    # 100,000 files take seconds to walk; a cancelled run still ends
                    # with its summary (marked cancelled), as the client promises.
                    lambda _: not token.cancelled,
                    iter_image_files(target) if isinstance(target, Path) else target,
                )
            )
            self._labeler.forget()  # a new run replaces the results of the last one
            job = self._labeler.label(paths, token)
        except Exception as error:
            self.failed.emit("label", gen, describe_error(error))
            return
        self._job = _LabelJob(gen, job, token)
        self.labelStarted.emit(gen, len(paths))
        if self._timer is None:
            # Created here so that it belongs to the worker thread.
            self._timer = QTimer(self)
            self._timer.setInterval(0)
            self._timer.timeout.connect(self._step)
        self._timer.start()

    @Slot(int, object, object)
    def find_duplicates(self, gen: int, paths: list[Path], token: CancelToken) -> None:
        """Group `paths` into copies with the loaded model (core.duplicates), a step per turn
        beside any labeling run; a newer request replaces this one."""
        if token.cancelled or not self._require_model("duplicates", gen):
            return
        from fewshot_gui.core.duplicates import find_duplicates, pipeline_embed

        if self._duplicates is None:  # made here, so that it belongs to the worker thread
            self._duplicates = SteppedJob(EMIT_INTERVAL_S, self)
            self._duplicates.event.connect(self.duplicatesProgress)
            self._duplicates.finished.connect(self.duplicatesFound)
            self._duplicates.failed.connect(
                lambda g, error: self.failed.emit("duplicates", g, describe_error(error))
            )
        self._duplicates.start(gen, find_duplicates(paths, pipeline_embed(self._labeler), token))

    @Slot(int, object, object)
    def map_features(self, gen: int, paths: list[Path], token: CancelToken) -> None:
        """The embeddings of `paths` for the folder map (core.folder_map), through the cache,
        a batch per turn; the layout itself runs elsewhere (workers/map_jobs.py)."""
        if token.cancelled or not self._require_model("map", gen):
            return
        from fewshot_gui.core.duplicates import pipeline_embed
        from fewshot_gui.core.folder_map import gather_features

        if self._map is None:  # made here, so that it belongs to the worker thread
            self._map = SteppedJob(EMIT_INTERVAL_S, self)
            self._map.event.connect(self.mapProgress)
            self._map.finished.connect(self.mapFeatures)
            self._map.failed.connect(
                lambda g, error: self.failed.emit("map", g, describe_error(error))
            )
        self._map.start(gen, gather_features(paths, pipeline_embed(self._labeler), token))

    @Slot(int, object, object)
    def discover(self, gen: int, rejected: list[frozenset[Path]], token: CancelToken) -> None:
        """Propose classes from the unknown pile of the files labeled so far (core.discover),
        a step per turn; a newer request replaces this one."""
        if token.cancelled or not self._require_model("discover", gen):
            return
        self._flush()
        from fewshot_gui.core.discover import discover

        if self._discovery is None:  # made here, so that it belongs to the worker thread
            self._discovery = SteppedJob(EMIT_INTERVAL_S, self)
            self._discovery.event.connect(lambda _gen, event: self.stage.emit(event.message))
            self._discovery.finished.connect(self.proposed)
            self._discovery.failed.connect(
                lambda g, error: self.failed.emit("discover", g, describe_error(error))
            )
        self._discovery.start(gen, discover(self._labeler, rejected=rejected, cancel=token))

    @Slot()
    def shutdown(self) -> None:
        """Close any running job; connected directly to the thread's `finished`."""
        self._stop_job()
        self._stop_probe()
        if self._duplicates is not None:
            self._duplicates.stop()
        if self._map is not None:
            self._map.stop()
        if self._discovery is not None:
            self._discovery.stop()

    def _step(self) -> None:
        # One batch per turn: queued requests (a new support set, a cancel) run in between.
        job = self._job
        if job is None:
            return
        try:
            event = next(job.job)
        except StopIteration as stop:
            self._job = None
            self._timer_stop()
            self._emit_progress(job)
            try:  # the stream was inductive; the final labels learn from the whole folder
                if not job.token.cancelled:
                    self.relabeled.emit(job.gen, self._relabeled())
            except Exception as error:
                self.failed.emit("relabel", job.gen, describe_error(error))
            self.labelFinished.emit(job.gen, stop.value)
            return
        except Exception as error:
            self._job = None
            self._timer_stop()
            self.failed.emit("label", job.gen, describe_error(error))
            return
        job.pending.append(event.new)
        job.progress = Progress(
            event.done, event.total, event.images_per_second, event.seconds_left
        )
        if time.monotonic() - job.last_emit >= EMIT_INTERVAL_S:
            self._emit_progress(job)

    def _emit_progress(self, job: _LabelJob) -> None:
        if job.progress is None and not job.pending:
            return
        job.last_emit = time.monotonic()
        pending, job.pending = job.pending, []
        progress = job.progress or Progress(0, 0, 0.0, 0.0)
        self.labelProgress.emit(job.gen, progress, pending)

    def _flush(self) -> None:
        if self._job is not None:
            self._emit_progress(self._job)

    def _stop_job(self) -> None:
        job, self._job = self._job, None
        self._timer_stop()
        if job is not None:
            job.token.cancel()
            job.job.close()

    def _timer_stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    @Slot(int, bool, object)
    def rank_check_next(self, gen: int, on: bool, token: CancelToken) -> None:
        """Rank for "check next" with every relabel from now on (the grid shows that order),
        or not: at 100,000 rows they took 145 ms beside a 1.2 s relabel (docs/benchmarks.md).
        On, what is labeled is ranked now; with no model or classes yet, at the first relabel."""
        self._check_next = on
        if on and self._labeler is not None and self._labeler.class_names:
            self.relabel(gen, token)

    def _relabeled(self) -> Any:
        """Every file labeled again, with its place in the "check next" order when asked:
        computed here, beside the relabel, never on the GUI thread."""
        from fewshot_gui.core.review_priority import labeler_ranks

        labels = self._labeler.relabel()
        if not self._check_next:
            return labels
        return replace(labels, review_rank=labeler_ranks(self._labeler, labels))

    def _require_model(self, kind: str, gen: int) -> bool:
        if self._labeler is None:
            self.failed.emit(kind, gen, "No model is loaded yet; choose one in the model list.")
            return False
        return True

    def _drive_stages(self, job: Generator[Any, None, Any]) -> Any:
        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
            message = getattr(event, "message", "")
            if message:
                self.stage.emit(message)
