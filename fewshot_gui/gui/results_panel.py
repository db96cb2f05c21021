"""The results grid with its filter and order, the large preview, and corrections by key or menu."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QMenu,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from fewshot_gui.core.support import UNKNOWN
from fewshot_gui.gui.class_model import ClassModel
from fewshot_gui.gui.hint_view import HintListView
from fewshot_gui.gui.results_model import (
    ERROR_FILTER,
    PATH_ROLE,
    PREDICTION_ROLE,
    RESULT_THUMB,
    ResultsModel,
    ResultsProxy,
)
from fewshot_gui.gui.thumbnails import ThumbnailCache

PREVIEW_SIDE = 768
PREVIEW_HINT = "Select a result to see it large here"
EMPTY_HINT = (
    "Drop a folder here to label every image in it,\nor choose File ▸ Open Folder to Label (Ctrl+O)"
)


class Preview(QLabel):
    """The selected image, large, scaled to fit; loaded off the GUI thread like thumbnails."""

    def __init__(self, thumbnails: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._thumbnails = thumbnails
        self._path = ""
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setText(PREVIEW_HINT)
        self.setWordWrap(True)
        thumbnails.ready.connect(self._on_ready)

    def show_path(self, path: Path | None, caption: str = "") -> None:
        self._path = str(path) if path else ""
        self.setToolTip(caption)
        self._update()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._update()

    def _on_ready(self, path: str) -> None:
        if path == self._path:
            self._update()

    def _update(self) -> None:
        if not self._path:
            self.setText(PREVIEW_HINT)  # setText, not an empty pixmap, which blanks the label
            return
        pixmap = self._thumbnails.pixmap(self._path, PREVIEW_SIDE)
        if pixmap is None:
            failure = self._thumbnails.failure(self._path)
            self.setText(failure or "Loading…")
            return
        ratio = pixmap.devicePixelRatio()
        scaled = pixmap.scaled(
            self.size() * ratio,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        scaled.setDevicePixelRatio(ratio)
        self.setPixmap(scaled)


class ResultsPanel(QWidget):
    """`correctRequested(paths, class)` when the user moves results to a class."""

    correctRequested = Signal(list, str)
    acceptRequested = Signal(list)  # accept predictions as they are, as new examples

    def __init__(
        self,
        model: ResultsModel,
        classes: ClassModel,
        thumbnails: ThumbnailCache,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.model, self.classes = model, classes
        self.proxy = ResultsProxy(self)
        self.proxy.setSourceModel(model)

        self.filter = QComboBox(self)
        self.filter.setToolTip("Show one class, unknown, unreadable files or everything")
        self.least_sure = QCheckBox("Least sure first", self)
        self.least_sure.setChecked(True)
        self.least_sure.setToolTip("Review order: the images the model is least sure of come first")
        self.count = QLabel(self)

        self.view = HintListView(self, EMPTY_HINT)
        self.view.setModel(self.proxy)
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setIconSize(QSize(RESULT_THUMB, RESULT_THUMB))
        self.view.setGridSize(QSize(RESULT_THUMB + 28, RESULT_THUMB + 40))
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setWordWrap(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setDragEnabled(True)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.setToolTip("Drag results onto a class, press 1-9, or right-click to correct them")
        self.preview = Preview(thumbnails, self)

        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.filter, 1)
        top.addWidget(self.least_sure)
        top.addWidget(self.count)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.view)
        splitter.addWidget(self.preview)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)

        for number in range(1, 10):
            action = QAction(self)
            action.setShortcut(QKeySequence(str(number)))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(lambda _=False, n=number: self.correct_to_number(n))
            self.view.addAction(action)

        self.filter.currentIndexChanged.connect(self._on_filter)
        self.least_sure.toggled.connect(self.proxy.set_least_sure_first)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.selectionModel().currentChanged.connect(self._on_current)
        for signal in (classes.modelReset, classes.dataChanged):
            signal.connect(self._refresh_filters)
        for signal in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset):
            signal.connect(self._update_count)
        self._refresh_filters()
        self._update_count()

    def selected_paths(self) -> list[Path]:
        rows = self.view.selectionModel().selectedIndexes()
        return [index.data(PATH_ROLE) for index in rows]

    def correct_to_number(self, number: int) -> None:
        names = self.classes.names()
        paths = self.selected_paths()
        if paths and number <= len(names):
            self.correctRequested.emit(paths, names[number - 1])

    def set_filter(self, label: str | None) -> None:
        row = self.filter.findData(label)
        self.filter.setCurrentIndex(max(row, 0))

    def _refresh_filters(self) -> None:
        current = self.proxy.label_filter
        self.filter.blockSignals(True)
        self.filter.clear()
        self.filter.addItem("All images", None)
        for name in self.classes.names():
            self.filter.addItem(name, name)
        self.filter.addItem("unknown", UNKNOWN)
        self.filter.addItem("Unreadable", ERROR_FILTER)
        row = self.filter.findData(current)
        self.filter.setCurrentIndex(max(row, 0))
        self.filter.blockSignals(False)
        if row < 0:
            self.proxy.set_label_filter(None)

    def _on_filter(self, _row: int) -> None:
        self.proxy.set_label_filter(self.filter.currentData())
        self._update_count()

    def _update_count(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        self.count.setText(f"{shown} of {total}")
        shown_as = self.filter.currentText()
        self.view.set_hint(EMPTY_HINT if not total else f"No images in “{shown_as}”")

    def _on_current(self, current: object, _previous: object) -> None:
        index = self.view.currentIndex()
        prediction = index.data(PREDICTION_ROLE) if index.isValid() else None
        self.preview.show_path(
            prediction.path if prediction else None,
            index.data(Qt.ItemDataRole.ToolTipRole) if index.isValid() else "",
        )

    def _context_menu(self, position: QPoint) -> None:
        paths = self.selected_paths()
        if not paths:
            return
        menu = QMenu(self)
        accept = menu.addAction("Accept as example of its predicted class")
        accept.triggered.connect(lambda: self.acceptRequested.emit(paths))
        move = menu.addMenu("Label as")
        for number, name in enumerate(self.classes.names(), start=1):
            text = f"&{number} {name}" if number <= 9 else name
            action = move.addAction(text)
            action.triggered.connect(lambda _=False, n=name: self.correctRequested.emit(paths, n))
        menu.popup(self.view.viewport().mapToGlobal(position))
