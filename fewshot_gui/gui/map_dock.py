"""The map dock: keeps the folder map in step with the results, the classes and the grid.

A new folder lays the map out; a few new images are placed on it; a correction only
re-colours it. The layout waits while a folder is being labeled, and for the dock to show.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QItemSelectionModel, Qt, QTimer
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QDockWidget

from fewshot_gui.core.folder_map import FolderMap, MapProgress
from fewshot_gui.gui.results_panel import ResultsPanel
from fewshot_gui.workers.labeling_client import LabelingClient
from fewshot_gui.workers.map_jobs import MapJobs

if TYPE_CHECKING:
    from fewshot_gui.gui.main_window import MainWindow
    from fewshot_gui.gui.map_view import MapPanel

REFRESH_MS = 300  # results arrive in bursts: the map looks again once they settle
RECOLOUR_MS = 30  # after an edit has reached the results model


def select_in_grid(panel: ResultsPanel, path: Path) -> bool:
    """Make `path` the grid's selection and scroll to it, showing all images if the filter
    hides it; False when it is not among the results (an example from elsewhere)."""
    row = panel.model.row_of(path)
    if row is None:
        return False
    shown = panel.order.shown_row(row)
    if shown < 0:
        panel.set_filter(None)
        shown = panel.order.shown_row(row)
    index = panel.proxy.index(shown, 0)
    panel.view.selectionModel().setCurrentIndex(
        index, QItemSelectionModel.SelectionFlag.ClearAndSelect
    )
    panel.view.scrollTo(index)
    return True


class MapDock(QDockWidget):
    """View ▸ Map. `start(client)` once the worker runs; until then it only waits."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__("Map", window)
        self.setObjectName("map-dock")
        self.window_ = window
        self._panel: MapPanel | None = None  # built when first shown: pyqtgraph loads then
        self.folder_map: FolderMap | None = None
        self.jobs: MapJobs | None = None
        self._client: LabelingClient | None = None
        self._row_of: dict[Path, int] = {}
        self._asked: list[Path] = []  # the last request's paths, not asked again while it runs
        self._unreadable: set[Path] = set()  # asked for and not on the map: never ask again
        toggle = self.toggleViewAction()
        toggle.setText("&Map")
        toggle.setShortcut("Ctrl+M")
        toggle.setStatusTip("The folder as a map: similar images lie together")
        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self._recolour_timer = QTimer(self, singleShot=True, interval=RECOLOUR_MS)
        self._recolour_timer.timeout.connect(self.recolour)
        self._grid_timer = QTimer(self, singleShot=True, interval=RECOLOUR_MS)
        self._grid_timer.timeout.connect(self._show_grid_selection)
        results = window.results
        for signal in (results.modelReset, results.rowsInserted):
            signal.connect(self._refresh_timer.start)
        results.rowsUpdated.connect(self._recolour_timer.start)
        window.editor.changed.connect(self._recolour_timer.start)
        window.editor.changed.connect(self._refresh_timer.start)  # new examples to place
        self.visibilityChanged.connect(lambda shown: shown and self._refresh_timer.start())
        grid = window.results_panel.view.selectionModel()
        grid.selectionChanged.connect(self._grid_timer.start)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self)
        self.hide()

    @property
    def panel(self) -> MapPanel:
        """The map and its tools, built on first use: importing pyqtgraph took 0.8 s of the
        window's start-up (load 6) for a view most launches never open."""
        if self._panel is None:
            from fewshot_gui.gui.map_view import MapPanel

            window = self.window_
            self._panel = MapPanel(window.thumbnails, self)
            self._panel.correctRequested.connect(window.editor.correct)
            self._panel.pathClicked.connect(lambda path: select_in_grid(window.results_panel, path))
            self.setWidget(self._panel)
        return self._panel

    def showEvent(self, event: QShowEvent) -> None:
        self.panel  # noqa: B018 (built before the dock paints)
        super().showEvent(event)

    def start(self, client: LabelingClient) -> None:
        self._client = client
        self.jobs = MapJobs(client, self)
        self.jobs.progress.connect(self._on_progress)
        self.jobs.ready.connect(self._on_ready)
        self.jobs.failed.connect(self._on_failed)
        client.busyChanged.connect(lambda busy: busy or self._refresh_timer.start())

    def wanted(self) -> list[Path]:
        """The readable results and every example: what the map should show."""
        examples = [p for _name, paths in self.window_.classes.snapshot() for p in paths]
        readable = [path for path, label in self.window_.results.labeled_items() if label]
        return list(dict.fromkeys([*readable, *examples]))

    def refresh(self) -> None:
        """Lay out, place what is new, or only re-colour: whatever the results now need."""
        client, jobs = self._client, self.jobs
        if not self.isVisible() or client is None or jobs is None or client.labeling:
            return
        wanted = [p for p in self.wanted() if p not in self._unreadable]
        missing = [p for p in wanted if p not in self._row_of]
        self.recolour()
        if not missing or (jobs.busy and missing == self._asked):
            return
        self._asked = missing
        if self.folder_map is None or len(missing) > len(wanted) - len(missing):
            self.panel.status.setText(f"Laying out {len(wanted)} images…")
            jobs.lay_out(wanted)
        else:
            self.panel.status.setText(f"Placing {len(missing)} new images…")
            jobs.place(self.folder_map, missing)

    def recolour(self) -> None:
        """Colours from the current labels and examples; the layout stays."""
        if self._panel is None:
            return
        paths = self._panel.paths
        if not paths:
            return
        window = self.window_
        index = {name: i for i, name in enumerate(window.classes.names())}
        labels = dict(window.results.labeled_items())
        example_of = {p: name for name, ps in window.classes.snapshot() for p in ps}
        n = len(paths)
        names = [example_of.get(p) or labels.get(p, "") for p in paths]
        codes = np.fromiter((index.get(name, -1) for name in names), np.int64, n)
        examples = np.fromiter((p in example_of for p in paths), bool, n)
        shown = np.fromiter((bool(name) for name in names), bool, n)
        self.panel.class_names = window.classes.names()
        self.panel.new_class_name = window.editor.new_class_name()
        self.panel.set_colours(codes, examples, shown)
        self._show_grid_selection()

    def _show_grid_selection(self) -> None:
        if self.folder_map is not None and self._panel is not None:
            from fewshot_gui.gui.map_view import paths_rows  # loaded with the panel

            selected = self.window_.results_panel.selected_paths()
            self._panel.show_selection(paths_rows(selected, self._row_of))

    def _on_progress(self, progress: MapProgress) -> None:
        percent = 100 * progress.done // max(progress.total, 1)
        text = f"Map: {progress.stage} {percent}%"
        self.panel.status.setText(text)
        self.window_.statusBar().showMessage(text, 2000)

    def _on_ready(self, folder_map: FolderMap) -> None:
        asked, before = self._asked, self.folder_map
        self.folder_map = folder_map
        self._row_of = folder_map.row_of()
        self._unreadable |= {p for p in asked if p not in self._row_of}
        self._asked = []
        self.panel.set_map(folder_map, fit=before is None or before.seed != folder_map.seed)
        self.panel.status.setText(
            f"{len(folder_map)} images; similar ones lie together. "
            "Hover to see one, click to show it in the grid, drag a rectangle or lasso to label."
        )
        self.window_.statusBar().showMessage(f"Map of {len(folder_map)} images ready", 4000)
        self.recolour()
        self._refresh_timer.start()  # results that came while it was laid out

    def _on_failed(self, message: str) -> None:
        self._asked = []
        self.panel.status.setText(f"The map could not be made: {message}")
        self.window_.show_error(f"The map could not be made: {message}")
