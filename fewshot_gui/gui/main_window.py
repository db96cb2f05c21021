"""The main window: wires the class panel, results, threshold, worker, sessions and export."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QMainWindow,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from fewshot_gui.core.model_choice import chooser_entries
from fewshot_gui.core.paths import resources_dir
from fewshot_gui.core.session import Session, last_session_path
from fewshot_gui.gui.about import FIRST_RUN_HINT
from fewshot_gui.gui.banner import Banner
from fewshot_gui.gui.class_model import ClassModel, ExampleModel
from fewshot_gui.gui.class_panel import Ask, ClassPanel, ask_with_message_box, local_paths
from fewshot_gui.gui.confusion_dialog import ConfusionDialog
from fewshot_gui.gui.edits import SessionEditor
from fewshot_gui.gui.export_dialog import ExportDialog
from fewshot_gui.gui.map_dock import MapDock
from fewshot_gui.gui.menus import build_menus
from fewshot_gui.gui.proposals_panel import ProposalsPanel
from fewshot_gui.gui.results_model import ResultsModel
from fewshot_gui.gui.results_panel import ResultsPanel
from fewshot_gui.gui.sessions import SessionFiles
from fewshot_gui.gui.threshold import ThresholdBar
from fewshot_gui.gui.thumbnails import ThumbnailCache
from fewshot_gui.gui.work_status import WorkStatus
from fewshot_gui.workers.background import BackgroundJob
from fewshot_gui.workers.labeling_client import Adaptation, LabelingClient, ModelInfo, Progress

SUPPORT_DELAY_MS = 30  # edits in one burst (one event-loop turn or so) re-adapt once
QUIT_BUDGET_S = 0.75  # quitting waits at most this long for background work, all of it


class MainWindow(QMainWindow):
    """Build with the settings to use, then `start()` once the window has painted."""

    def __init__(
        self,
        settings: QSettings,
        *,
        last_session: Path | None = None,
        cache_dir: Path | None = None,
        device: str = "auto",
        batch_size: int | None = None,
        engine: str = "auto",
        model: str = "",
        ask: Ask | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("FewShot Labeler")
        self.setAcceptDrops(True)
        self.settings = settings
        self.client: LabelingClient | None = None
        self.folder: Path | None = None
        self.model_name = model
        self.model_info: ModelInfo | None = None
        self.last_journal: Path | None = None
        self.last_error = ""
        self.quit_unfinished: list[str] = []  # what was still running when the window closed
        self._worker_options = {
            "cache_dir": cache_dir,
            "device": device,
            "batch_size": batch_size,
            "engine": engine,
        }
        self._models: list = []  # (name, card) of each installed model, as last listed
        self._label_when_ready = False
        self._stale_relabel = False
        self._sent: Adaptation | None = None
        self._ask = ask or ask_with_message_box(self)

        self.thumbnails = ThumbnailCache(self)
        self.classes = ClassModel(self.thumbnails, self)
        self.editor = SessionEditor(self.classes, self)
        self.results = ResultsModel(self.thumbnails, self)
        self.class_panel = ClassPanel(
            self.editor, ExampleModel(self.classes, self.thumbnails, self), ask=self._ask
        )
        self.results_panel = ResultsPanel(self.results, self.classes, self.thumbnails, self)
        self.threshold = ThresholdBar(self)
        self.banner = Banner(self)
        self.sessions = SessionFiles(
            self, settings, last_session or last_session_path(), self.capture
        )
        self._build_layout()
        self.map_dock = MapDock(self)  # View ▸ Map, beside the grid
        self.proposals = ProposalsPanel(self.editor, self.thumbnails, self)  # Tools ▸ Discover
        self.confusion = ConfusionDialog(self)  # Tools ▸ Examples' Confusion
        self.work = WorkStatus(self.statusBar(), self)
        build_menus(self)
        self._support_timer = QTimer(self, singleShot=True, interval=SUPPORT_DELAY_MS)
        self._support_timer.timeout.connect(self._sync_support)
        self._wire()
        self.restoreGeometry(settings.value("window/geometry", b""))
        self.restoreState(settings.value("window/state", b""))

    # --- construction ----------------------------------------------------------------------

    def _build_layout(self) -> None:
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.class_panel)
        splitter.addWidget(self.results_panel)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([300, 900])
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.threshold)
        self.setCentralWidget(central)
        self.resize(1200, 800)

    def _wire(self) -> None:
        self.editor.changed.connect(self._on_edit)
        self.class_panel.message.connect(self.show_message)
        self.class_panel.resultsDropped.connect(self.editor.correct)
        self.results_panel.correctRequested.connect(self.editor.correct)
        self.results_panel.acceptRequested.connect(self.accept_predictions)
        self.threshold.modeChanged.connect(self._on_threshold)
        self.sessions.opened.connect(self.restore)
        self.sessions.message.connect(self.show_message)
        self.work.cancel_button.clicked.connect(self.cancel)
        self.model_box.activated.connect(lambda _row: self.load_model(self.model_box.currentData()))

    # --- start, worker replies -------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (which imports torch) and bring back the last session."""
        self.client = client = LabelingClient(self, **self._worker_options)
        client.modelsListed.connect(self._on_models)
        client.modelLoaded.connect(self._on_model_loaded)
        client.engineProgress.connect(self._on_engine_progress)
        client.engineChanged.connect(self._on_engine_changed)
        client.stage.connect(self.show_message)
        client.supportReady.connect(self._on_support_ready)
        client.relabeled.connect(self._on_relabeled)
        client.labelStarted.connect(self._on_label_started)
        client.labelProgress.connect(self._on_progress)
        client.labelFinished.connect(self._on_finished)
        client.failed.connect(self._on_failed)
        client.busyChanged.connect(self._on_busy)
        self.map_dock.start(client)
        self.proposals.start(client)
        self.confusion.start(client)
        self.proposals.message.connect(self.show_message)
        self.results_panel.find_duplicates_with(client)
        last = self.sessions.last()
        if last is not None:
            self.restore(last)
            self.show_message("Restored your last session")
        client.list_models()
        if not self.settings.value("hints/first_run_done", False, type=bool):
            self.banner.show_info(FIRST_RUN_HINT)
            self.settings.setValue("hints/first_run_done", True)

    @property
    def first_launch(self) -> bool:
        """Nothing was ever opened here: the demo shows only then (or from File ▸ Open Demo)."""
        return (
            not self.settings.value("demo/shown", False, type=bool) and self.sessions.last() is None
        )

    def open_demo(self) -> None:
        """The bundled demo: its example classes and its folder of photos to label."""
        self.settings.setValue("demo/shown", True)
        demo = resources_dir() / "demo"
        self.new_session()
        self.class_panel.add_files([demo / "examples"], "")
        self.editor.undo_stack.clear()
        self.label_folder(demo / "unlabeled")

    def new_session(self) -> None:
        """Start empty: no classes, no folder, no corrections; the model stays."""
        if self.client is not None and self.client.labeling:
            self.client.cancel()
        self.restore(Session(threshold="auto", model=self.model_name))
        self.sessions.path = None
        self.sessions.changed()

    def _on_models(self, models: list) -> None:
        self._models = models
        entries, default = self._fill_model_box()
        names = [name for name, _text in entries]
        if not names and not self.model_name:
            self.work.show_no_model()
            self.show_error(
                "No models are installed. Put a model folder in the models folder, "
                "or train one with `fewshot train`."
            )
            return
        wanted = self.model_name or default
        if wanted not in names:
            self.model_box.addItem(wanted, wanted)
        self.model_box.setCurrentIndex(self.model_box.findData(wanted))
        self.load_model(wanted)

    def _fill_model_box(self) -> tuple[list[tuple[str, str]], str]:
        """Each model with what it trades and its speed here once measured; the default."""
        cache = self._worker_options["cache_dir"]
        engines = None if cache is None else Path(str(cache)) / "engines"
        entries, default = chooser_entries(
            self._models, str(self._worker_options["device"]), engines
        )
        current = self.model_box.currentData()
        self.model_box.clear()
        for name, text in entries:
            self.model_box.addItem(text, name)
        if current is not None:
            if self.model_box.findData(current) < 0:
                self.model_box.addItem(current, current)  # a folder, or gone since listed
            self.model_box.setCurrentIndex(self.model_box.findData(current))
        return entries, default

    def load_model(self, name: str) -> None:
        if not name or self.client is None:
            return
        self.model_name = name
        self.model_info = None
        self.work.show_loading(Path(name).name)
        self._label_when_ready = self.folder is not None
        self.client.load_model(name)
        self.sessions.changed()

    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.model_info = info
        self._sent = None
        self.work.show_model(info)
        self.show_message(f"Model {info.name} ready on {info.device}")
        self._sync_support()

    def _on_engine_progress(self, percent: int) -> None:
        if self.model_info is not None:
            self.work.show_preparing(self.model_info, percent)

    def _on_engine_changed(self, info: ModelInfo) -> None:
        self.model_info = info
        self._fill_model_box()  # the speed just measured
        self.work.show_model(info)
        self.show_message(f"Now running on {info.engine}, the fastest measured here")

    def _on_support_ready(self, report: object) -> None:
        self.show_message(f"Adapted to {len(self.classes.mapping())} classes")
        if report.mismatch:  # type: ignore[attr-defined]
            self.banner.show_info(report.mismatch)  # type: ignore[attr-defined]
        self.classes.set_report(report)
        self.threshold.set_auto(report.threshold)  # type: ignore[attr-defined]
        self.threshold.set_novelties(self._novelties())
        if self._label_when_ready and self.folder is not None and self.client is not None:
            self._label_when_ready = False
            # The relabel that follows this report is of the last run's images: not this folder's.
            self._stale_relabel = True
            self.results.clear()
            self.client.label(self.folder)

    def _on_relabeled(self, labels: object) -> None:
        if self._stale_relabel:
            return
        self.results.add(labels)
        self.threshold.set_novelties(self._novelties())

    def _on_label_started(self, total: int) -> None:
        self._stale_relabel = False
        self.work.start_run(total)
        self.show_message(f"Labeling {total} images in {self.folder}")

    def _on_progress(self, progress: Progress, new: list) -> None:
        for labels in new:
            self.results.add(labels)
        self.work.show_progress(progress)

    def _on_finished(self, summary: object) -> None:
        s = summary
        done = "Cancelled after" if s.cancelled else "Labeled"  # type: ignore[attr-defined]
        self.show_message(
            f"{done} {s.labeled + s.unknown + s.errors} of {s.total} images in {s.seconds:.1f} s: "  # type: ignore[attr-defined]
            f"{s.unknown} unknown, {s.errors} unreadable"  # type: ignore[attr-defined]
        )
        self.threshold.set_novelties(self._novelties())

    def _on_busy(self, busy: bool) -> None:
        self._stale_relabel = self._stale_relabel and busy  # a run that failed to start
        self.work.set_busy(busy)
        self.cancel_action.setEnabled(busy)

    def _on_failed(self, kind: str, message: str) -> None:
        what = {
            "model": "The model could not be loaded",
            "engine": "Measuring the faster engines failed; labeling goes on as before",
            "label": "Labeling stopped",
            "map": "The map could not be made",
            "duplicates": "Looking for duplicates failed",
            "discover": "Looking for new classes failed",
        }
        self.show_error(f"{what.get(kind, 'The model could not adapt')}: {message}")
        if kind == "model":
            self.work.show_no_model()
        elif kind == "engine" and self.model_info is not None:
            self.work.show_model(self.model_info)

    # --- actions ---------------------------------------------------------------------------

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def show_error(self, text: str) -> None:
        self.last_error = text
        self.banner.show_error(text)
        self.show_message(text)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder to label", str(self.folder or ""))
        if folder:
            self.label_folder(Path(folder))

    def label_folder(self, folder: Path) -> None:
        self.folder = folder
        self.sessions.changed()
        self.label_again()

    def label_again(self) -> None:
        if self.folder is None:
            self.choose_folder()
            return
        self.results.clear()
        self.thumbnails.clear_pending()
        ready = self.client is not None and self.model_info is not None and self.classes.mapping()
        if not ready:
            self._label_when_ready = True
            self.show_message("Will label as soon as the model is ready and classes have examples")
            return
        # Set first: with the model already adapted to these classes, the support set is sent
        # again anyway, and its reply starts the run.
        self._label_when_ready = True
        self._sync_support()

    def cancel(self) -> None:
        if self.client is not None:
            self.client.cancel()

    def accept_predictions(self, paths: list[Path]) -> None:
        """Confirm the labels of `paths` as given: each becomes an example of its class, or
        an `unknown` correction (a confirmation teaches as a correction does)."""
        labels = {item[0]: item[1] for item in self.results.labeled_items()}
        self.editor.undo_stack.beginMacro(f"Accept {len(paths)} prediction(s)")
        for name in {labels.get(p, "") for p in paths} - {""}:
            self.editor.correct([p for p in paths if labels.get(p) == name], name)
        self.editor.undo_stack.endMacro()

    def open_export(self) -> None:
        meta = {
            "model": self.model_name,
            "threshold": self.threshold.mode,
            "classes": self.classes.names(),
            "folder": str(self.folder) if self.folder else None,
        }
        dialog = ExportDialog(self.results, self.last_journal, self, meta)
        dialog.exported.connect(self._on_exported)
        dialog.open()

    def _on_exported(self, journal: object) -> None:
        if isinstance(journal, Path):  # a manifest alone moves no file: the last export stays
            self.last_journal = journal
            self.sessions.changed()

    # --- support, threshold, sessions ------------------------------------------------------

    def _on_edit(self) -> None:
        self.results.set_corrections(self.editor.corrections)
        self.sessions.changed()
        self._support_timer.start()

    def _sync_support(self) -> None:
        self._support_timer.stop()
        mapping = self.classes.mapping()
        if self.client is None or self.model_info is None:
            return
        if not mapping:
            self.show_message("Add example images to a class to start")
            return
        adaptation = Adaptation(mapping, dict(self.editor.corrections), self.threshold.mode)
        if adaptation == self._sent and not self._label_when_ready:
            return  # e.g. an empty class was added: nothing for the model to learn
        self._sent = adaptation
        self.client.adapt(adaptation)

    def _on_threshold(self, mode: object) -> None:
        self.sessions.changed()
        if self.client is not None and self.model_info is not None and self._sent is not None:
            self._sent = Adaptation(self._sent.support, self._sent.corrections, mode)  # type: ignore[arg-type]
            self.client.set_unknown(mode)  # type: ignore[arg-type]

    def _novelties(self) -> np.ndarray:
        return self.results.novelties()

    def capture(self) -> Session:
        return Session(
            classes=[(name, list(examples)) for name, examples in self.classes.snapshot()],
            folder=self.folder,
            corrections=dict(self.editor.corrections),
            threshold=self.threshold.mode,
            model=self.model_name,
            last_export_journal=self.last_journal,
        )

    def restore(self, session: Session) -> None:
        self.editor.reset(
            tuple((name, tuple(examples)) for name, examples in session.classes),
            session.corrections,
        )
        self.threshold.set_mode(session.threshold)
        self.proposals.forget()  # another session's rejections and proposals mean nothing here
        self.last_journal = session.last_export_journal
        self.results.clear()
        self.folder = session.folder
        self._label_when_ready = session.folder is not None
        if session.model and session.model != self.model_name and self.client is not None:
            self.load_model(session.model)
        else:
            self.model_name = session.model or self.model_name
            self._sync_support()

    # --- window events ---------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folders = [p for p in local_paths(event.mimeData()) if p.is_dir()]
        if folders:
            self.label_folder(folders[0])
        else:
            self.show_message("Drop a folder here to label it; drop example images on a class")
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Quit within QUIT_BUDGET_S whatever runs: hide at once, keep the session, cancel
        everything, and wait only briefly; `quit_unfinished` says what did not stop."""
        self.hide()
        QApplication.processEvents()  # the window goes away now, not when the work stops
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.sessions.save_last()
        deadline = time.monotonic() + QUIT_BUDGET_S

        def left_ms() -> int:
            return max(0, round(1000 * (deadline - time.monotonic())))

        jobs = self.findChildren(BackgroundJob)
        for job in jobs:
            job.cancel()
        if self.client is not None:
            self.client.cancel()
        self.thumbnails.clear_pending()
        unfinished = [] if self.client is None or self.client.shutdown(left_ms()) else ["model"]
        unfinished += ["export"] * sum(not job.wait(left_ms()) for job in jobs)
        unfinished += [] if self.thumbnails.wait(left_ms()) else ["thumbnails"]
        self.quit_unfinished = unfinished
        self.settings.sync()
        super().closeEvent(event)
