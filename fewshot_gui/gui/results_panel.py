"""The results grid with its filter and order, the large preview, and corrections by key or menu."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import (
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QKeySequence, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QMenu,
    QSizePolicy,
    QSplitter,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from fewshot_gui.core.support import UNKNOWN
from fewshot_gui.gui.class_model import ClassModel
from fewshot_gui.gui.hint_view import HintListView
from fewshot_gui.gui.results_model import (
    CORRECTED_FILTER,
    DUPLICATES_FILTER,
    ERROR_FILTER,
    PATH_ROLE,
    RESULT_THUMB,
    ResultsModel,
)
from fewshot_gui.gui.review_order import ReviewOrder, index_cache
from fewshot_gui.gui.thumbnails import ThumbnailCache
from fewshot_gui.workers.labeling_client import LabelingClient

if TYPE_CHECKING:
    from fewshot_gui.core.duplicates import DuplicateGroups, DuplicateProgress

PREVIEW_SIDE = 768
PREVIEW_HINT = "Select a result to see it large here"
TILE = QSize(RESULT_THUMB + 28, RESULT_THUMB + 44)
LINE_BREAK = "\u2028"  # what the delegate turns a model's "\n" into, for the text layout
_NAME_ROLE = Qt.ItemDataRole.UserRole + 1  # a filter entry's name, without its count
REVIEW_ORDERS = (  # (shown, ReviewOrder mode)
    ("Least sure first", "least_sure"),
    ("Check next", "check_next"),
    ("As labeled", "labeled"),
)
RETAIN_MS = 50  # after a scroll settles this long, loads for tiles out of view are dropped
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


class TileDelegate(QStyledItemDelegate):
    """A tile: the thumbnail above the file name, elided in the middle to fit, and the label."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        super().initStyleOption(option, index)
        option.decorationPosition = QStyleOptionViewItem.Position.Top
        option.displayAlignment = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
        name, _, verdict = option.text.partition(LINE_BREAK)
        width = max(option.rect.width() - 8, RESULT_THUMB)
        # Middle, so that the end of the name and the extension stay (IMG_2041…0417.jpg).
        name = option.fontMetrics.elidedText(name, Qt.TextElideMode.ElideMiddle, width)
        option.text = f"{name}{LINE_BREAK}{verdict}"

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        # Every tile is the grid's size; asking the model would load a thumbnail for nothing.
        return TILE


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
        self.model, self.classes, self.thumbnails = model, classes, thumbnails
        self.order = ReviewOrder(model, self)
        # The view's model: answers the view's per-row calls in C++ (see index_cache).
        self.proxy = index_cache(self.order, self)

        self.filter = QComboBox(self)
        self.filter.setToolTip(
            "Show one class, unknown, unreadable files, your corrections or everything"
        )
        self.filter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.review = QComboBox(self)
        for text, data in REVIEW_ORDERS:
            self.review.addItem(text, data)
        self.review.setToolTip(
            "Review order: least sure first; check next (unsure and unlike anything confirmed"
            " yet: confirm with Enter); or as labeled"
        )
        self.count = QLabel(self)

        self.view = HintListView(self, EMPTY_HINT)
        self.view.setModel(self.proxy)
        # List mode flowing left to right lays out 100,000 tiles twice as fast as icon mode;
        # the delegate puts the text under the thumbnail as icon mode would.
        self.view.setViewMode(QListView.ViewMode.ListMode)
        self.view.setFlow(QListView.Flow.LeftToRight)
        self.view.setWrapping(True)
        self.view.setItemDelegate(TileDelegate(self.view))
        self.view.setIconSize(QSize(RESULT_THUMB, RESULT_THUMB))
        self.view.setGridSize(TILE)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(5000)  # a 100,000-tile layout in 20 steps of a few ms each
        self.view.setWordWrap(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setDragEnabled(True)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.setToolTip(
            "Drag results onto a class, press 1-9 (0: none of these), or right-click to correct"
        )
        self.preview = Preview(thumbnails, self)

        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.filter, 1)
        top.addWidget(self.review)
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

        for number in range(10):
            action = QAction(self)
            action.setShortcut(QKeySequence(str(number)))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(lambda _=False, n=number: self.correct_to_number(n))
            self.view.addAction(action)

        confirm = QAction(self)  # a confirmation pins the label as it is: it teaches too
        confirm.setShortcuts([QKeySequence(Qt.Key.Key_Return), QKeySequence(Qt.Key.Key_Enter)])
        confirm.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        confirm.triggered.connect(lambda: self.acceptRequested.emit(self.selected_paths()))
        self.view.addAction(confirm)

        self._retain_timer = QTimer(self)
        self._retain_timer.setSingleShot(True)
        self._retain_timer.setInterval(RETAIN_MS)
        self._retain_timer.timeout.connect(self.retain_visible_thumbnails)
        self._kept: tuple[np.ndarray, int | None] = (np.zeros(0, np.int64), None)
        self._client: LabelingClient | None = None  # finds the duplicates, off this thread
        self._duplicates_status = ""  # while a search runs: how far it is

        self.filter.currentIndexChanged.connect(self._on_filter)
        self.review.currentIndexChanged.connect(self._on_review_order)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.selectionModel().currentChanged.connect(self._on_current)
        self.view.verticalScrollBar().valueChanged.connect(lambda _: self._retain_timer.start())
        for signal in (classes.modelReset, classes.dataChanged):
            signal.connect(self._refresh_filters)
        for signal in (model.rowsInserted, model.rowsUpdated, model.modelReset):
            signal.connect(self._update_counts)
        for signal in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset):
            signal.connect(self._update_count)
        for signal in (self.proxy.layoutChanged, self.proxy.modelReset, self.proxy.rowsInserted):
            signal.connect(lambda *_: self._retain_timer.start())
        self.order.modelAboutToBeReset.connect(self._keep_selection)
        self.order.modelReset.connect(self._restore_selection)
        self._refresh_filters()
        self._update_count()

    def _on_review_order(self) -> None:
        order = self.review.currentData()
        if self._client is not None:  # the worker ranks only while this order is shown
            self._client.rank_check_next(order == "check_next")
        self.order.set_check_next(order == "check_next")
        self.order.set_least_sure_first(order == "least_sure")

    def selected_paths(self) -> list[Path]:
        rows = self.view.selectionModel().selectedIndexes()
        return [index.data(PATH_ROLE) for index in rows]

    def correct_to_number(self, number: int) -> None:
        """Keys 1-9 label the selection as that class; 0 as none of these (unknown)."""
        names = self.classes.names()
        paths = self.selected_paths()
        if paths and number == 0:
            self.correctRequested.emit(paths, UNKNOWN)
        elif paths and number <= len(names):
            self.correctRequested.emit(paths, names[number - 1])

    def set_filter(self, label: str | None) -> None:
        row = self.filter.findData(label)
        self.filter.setCurrentIndex(max(row, 0))

    def visible_rows(self) -> range:
        """The rows of `proxy` whose tiles are at least partly in view."""
        viewport = self.view.viewport().rect()
        if not self.proxy.rowCount() or viewport.isEmpty():
            return range(0)
        # Probes half a tile apart, and on the far edges, hit every tile in view.
        xs = [*range(0, viewport.width(), TILE.width() // 2), viewport.width() - 1]
        ys = [*range(0, viewport.height(), TILE.height() // 2), viewport.height() - 1]
        found = [self.view.indexAt(QPoint(x, y)).row() for y in ys for x in xs]
        found = [row for row in found if row >= 0]
        return range(min(found), max(found) + 1) if found else range(0)

    def retain_visible_thumbnails(self) -> None:
        """Drop waiting thumbnail loads of tiles scrolled out of view."""
        rows = self.visible_rows()
        sources = self.order.source_rows(np.arange(rows.start, rows.stop))
        paths = {str(self.model.path(int(row))) for row in sources}
        self.thumbnails.retain(RESULT_THUMB, paths)

    def _refresh_filters(self) -> None:
        current = self.order.label_filter
        self.filter.blockSignals(True)
        self.filter.clear()
        entries = [("All images", None), *((n, n) for n in self.classes.names())]
        entries += [(UNKNOWN, UNKNOWN), ("unreadable", ERROR_FILTER)]
        entries += [("labeled by you", CORRECTED_FILTER), ("duplicates", DUPLICATES_FILTER)]
        for row, (text, value) in enumerate(entries):
            self.filter.addItem(text, value)
            self.filter.setItemData(row, text, _NAME_ROLE)
        self._update_counts()
        row = self.filter.findData(current)
        self.filter.setCurrentIndex(max(row, 0))
        self.filter.blockSignals(False)
        if row < 0:
            self.order.set_label_filter(None)

    def _update_counts(self) -> None:
        """Each filter's entry says how many images it shows: "bass (41)"."""
        counts = self.model.counts()
        for row in range(self.filter.count()):
            name, value = self.filter.itemData(row, _NAME_ROLE), self.filter.itemData(row)
            text = f"{name} ({counts.get(value, 0)})"
            if text != self.filter.itemText(row):  # a batch changes one or two counts
                self.filter.setItemText(row, text)

    def _on_filter(self, _row: int) -> None:
        self.order.set_label_filter(self.filter.currentData())
        self._update_count()
        self._find_duplicates()

    # --- duplicates ------------------------------------------------------------------------

    def find_duplicates_with(self, client: LabelingClient) -> None:
        """Showing "duplicates" asks `client` for the groups among the results, again after
        each labeling run; the worker finds them, never this thread."""
        self._client = client
        client.duplicatesProgress.connect(self._on_duplicates_progress)
        client.duplicatesFound.connect(self._on_duplicates_found)
        client.labelFinished.connect(lambda _summary: self._find_duplicates())
        client.failed.connect(self._on_duplicates_failed)

    def _find_duplicates(self) -> None:
        shown = self.filter.currentData() == DUPLICATES_FILTER
        if not shown or self._client is None or self.model.duplicates_current():
            return
        self._duplicates_status = "Looking for duplicates…"
        self._update_count()
        self._client.find_duplicates([self.model.path(r) for r in range(self.model.rowCount())])

    def _on_duplicates_progress(self, progress: DuplicateProgress) -> None:
        if self._duplicates_status:
            self._duplicates_status = (
                f"Looking for duplicates: {progress.stage} {progress.done} of {progress.total}"
            )
            self._update_count()

    def _on_duplicates_found(self, found: DuplicateGroups) -> None:
        self._duplicates_status = ""
        if not found.cancelled:
            self.model.set_duplicates(found)
        self._update_counts()
        self._update_count()

    def _on_duplicates_failed(self, kind: str, _message: str) -> None:
        if kind == "duplicates":  # the window's banner says why
            self._duplicates_status = ""
            self._update_count()

    def _update_count(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        if self.count.text() != f"{shown} of {total}":
            self.count.setText(f"{shown} of {total}")
        shown_as = self.filter.currentData(_NAME_ROLE)
        hint = f"No images in “{shown_as}”"
        if self.filter.currentData() == DUPLICATES_FILTER:
            hint = self._duplicates_status or f"No copies among these {total} images"
        self.view.set_hint(EMPTY_HINT if not total else hint)

    def _keep_selection(self) -> None:
        # A reset (a new filter, or many rows leaving it) would drop the selection: keep it by
        # results row, in ranges, so that selecting all of 100,000 stays cheap.
        selection = self.view.selectionModel()
        ranges = [(r.top(), r.bottom()) for r in selection.selection()]
        selected = [self.order.source_rows(np.arange(a, b + 1)) for a, b in ranges]
        current = selection.currentIndex()
        self._kept = (
            np.concatenate(selected) if selected else np.zeros(0, np.int64),
            self.order.source_row(current.row()) if current.isValid() else None,
        )

    def _restore_selection(self) -> None:
        selected, current = self._kept
        self._kept = (np.zeros(0, np.int64), None)
        rows = np.sort(self.order.shown_rows(selected))
        rows = rows[rows >= 0]
        selection = QItemSelection()
        if len(rows):
            breaks = np.flatnonzero(np.diff(rows) != 1)
            for first, last in zip(
                np.r_[rows[0], rows[breaks + 1]], np.r_[rows[breaks], rows[-1]], strict=True
            ):
                selection.select(self.proxy.index(int(first), 0), self.proxy.index(int(last), 0))
        model = self.view.selectionModel()
        model.select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        row = -1 if current is None else self.order.shown_row(current)
        if row >= 0:
            index = self.proxy.index(row, 0)
            model.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)
            self.view.scrollTo(index)

    def _on_current(self, current: QModelIndex | QPersistentModelIndex, _previous: object) -> None:
        valid = current.isValid()
        self.preview.show_path(
            current.data(PATH_ROLE) if valid else None,
            current.data(Qt.ItemDataRole.ToolTipRole) if valid else "",
        )

    def _context_menu(self, position: QPoint) -> None:
        paths = self.selected_paths()
        if paths:
            self.context_menu(paths).popup(self.view.viewport().mapToGlobal(position))

    def context_menu(self, paths: list[Path]) -> QMenu:
        """The right-click menu for `paths`: accept, or label as a class or none of these."""
        menu = QMenu(self)
        accept = menu.addAction("Confirm label (Enter): an example of its class, or unknown")
        accept.triggered.connect(lambda: self.acceptRequested.emit(paths))
        move = menu.addMenu("Label as")
        for number, name in enumerate(self.classes.names(), start=1):
            text = f"&{number} {name}" if number <= 9 else name
            action = move.addAction(text)
            action.triggered.connect(lambda _=False, n=name: self.correctRequested.emit(paths, n))
        move.addSeparator()
        none = move.addAction("&0 None of these (unknown)")
        none.triggered.connect(lambda: self.correctRequested.emit(paths, UNKNOWN))
        return menu
