"""Which labeled images the grid shows and in what order: a numpy mask and argsort, not a proxy."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)

from fewshot_gui.gui.results_model import DUPLICATES_FILTER, ResultsModel

Index = QModelIndex | QPersistentModelIndex
# Past this many rows shown, streamed rows join the order at most every THROTTLE_MS: each
# join re-lays out the whole grid, so joins of single batches would flood the event loop.
THROTTLE_ROWS = 2_000
THROTTLE_MS = 250
# Rows leaving the view in more separate runs than this reset it (selection is kept by the
# panel) instead of one removal per run, each of which walks every row in Qt.
MAX_REMOVAL_RUNS = 16


class ReviewOrder(QAbstractListModel):
    """Rows of a ResultsModel under a label filter: least sure first, check next, as labeled.

    A relabel that keeps which rows are shown and their order emits `dataChanged` for the
    changed rows; a new order is a layout change, so selections and persistent indexes move
    with their images.
    """

    def __init__(
        self,
        results: ResultsModel,
        parent: Any = None,
        throttle_rows: int = THROTTLE_ROWS,
        throttle_ms: int = THROTTLE_MS,
    ) -> None:
        super().__init__(parent)
        self.results = results
        self._filter: str | None = None
        self._least_sure_first = True
        self._check_next = False  # core.review_priority's order, ahead of least sure first
        self._order = np.zeros(0, np.int64)  # shown row -> results row
        self._position: np.ndarray | None = None  # results row -> shown row or -1, lazily
        self._throttle_rows, self._throttle_ms = throttle_rows, throttle_ms
        self._last_sync = 0.0
        self._pending = QTimer(self)
        self._pending.setSingleShot(True)
        self._pending.timeout.connect(lambda: self.sync())
        results.rowsInserted.connect(self._on_inserted)
        results.rowsUpdated.connect(self.sync)
        results.modelReset.connect(self._reset)
        results.dataChanged.connect(self._on_results_data)

    # --- mapping ---------------------------------------------------------------------------

    def source_row(self, row: int) -> int:
        return int(self._order[row])

    def source_rows(self, rows: np.ndarray) -> np.ndarray:
        return self._order[rows]

    def shown_row(self, source_row: int) -> int:
        """Where a results row is shown, or -1 where the filter hides it."""
        position = self._positions()
        return int(position[source_row]) if source_row < len(position) else -1

    def shown_rows(self, source_rows: np.ndarray) -> np.ndarray:
        position = self._positions()
        inside = source_rows < len(position)
        return np.where(inside, position[np.where(inside, source_rows, 0)], -1)

    # --- filter and order ------------------------------------------------------------------

    @property
    def label_filter(self) -> str | None:
        return self._filter

    def set_label_filter(self, label: str | None) -> None:
        """None shows everything; UNKNOWN, ERROR_FILTER and CORRECTED_FILTER are filters too."""
        if label != self._filter:
            self._filter = label
            self._reset()

    def set_least_sure_first(self, least_sure_first: bool) -> None:
        """Review order (least sure first, corrected last), or the order they were labeled in."""
        if least_sure_first != self._least_sure_first:
            self._least_sure_first = least_sure_first
            self.sync()

    def set_check_next(self, check_next: bool) -> None:
        """The "check next" order (the images whose confirmation teaches most first), or not."""
        if check_next != self._check_next:
            self._check_next = check_next
            self.sync()

    def order(self) -> np.ndarray:
        """The results rows the filter shows, in the order to show them."""
        rows = np.flatnonzero(self.results.mask(self._filter))
        if self._filter == DUPLICATES_FILTER:  # each group's files side by side
            return rows[np.argsort(self.results.column("duplicate_group")[rows], kind="stable")]
        if self._check_next:
            return _sorted_by(self.results.check_next_keys()[rows], rows)
        if self._least_sure_first:
            rows = _sorted_by(self.results.review_keys()[rows], rows)
        return rows

    # --- Qt model --------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._order)

    def flags(self, index: Index) -> Qt.ItemFlag:
        return super().flags(index) | Qt.ItemFlag.ItemIsDragEnabled

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._order):
            return None
        return self.results.data(self.results.index(int(self._order[index.row()])), role)

    def mimeTypes(self) -> list[str]:
        return self.results.mimeTypes()

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        rows = [self.results.index(int(self._order[i.row()])) for i in indexes if i.isValid()]
        return self.results.mimeData(rows)

    # --- keeping up with the results -------------------------------------------------------

    def sync(self, changed: np.ndarray | None = None) -> None:
        """Catch up with the results in as few signals as it takes; `changed`: results rows."""
        self._pending.stop()
        self._last_sync = time.monotonic()
        self._apply(self.order(), np.zeros(0, np.int64) if changed is None else changed)

    def _on_inserted(self, _parent: QModelIndex, _first: int, _last: int) -> None:
        if len(self._order) < self._throttle_rows:
            self.sync()
            return
        wait_ms = self._throttle_ms - (time.monotonic() - self._last_sync) * 1000
        if wait_ms <= 0:
            self.sync()
        elif not self._pending.isActive():
            self._pending.start(int(wait_ms))

    def _reset(self) -> None:
        self._pending.stop()
        self.beginResetModel()
        self._order = self.order()
        self._position = None
        self.endResetModel()

    def _on_results_data(self, top: QModelIndex, bottom: QModelIndex, roles: list[int]) -> None:
        # Thumbnails arrive one row at a time; everything else comes through rowsUpdated.
        if top.row() != bottom.row() or roles != [Qt.ItemDataRole.DecorationRole]:
            return
        row = self.shown_row(top.row())
        if row >= 0:
            index = self.index(row)
            self.dataChanged.emit(index, index, roles)

    def _apply(self, new: np.ndarray, changed: np.ndarray) -> None:
        old = self._order
        if np.array_equal(old, new):
            self._emit_changed(changed)
            return
        size = self.results.rowCount()
        was_shown = np.zeros(size, bool)
        was_shown[old] = True
        is_shown = np.zeros(size, bool)
        is_shown[new] = True
        leaving = np.flatnonzero(~is_shown[old])
        runs = _runs(leaving)
        if len(runs) > MAX_REMOVAL_RUNS:
            self.beginResetModel()
            self._order, self._position = new, None
            self.endResetModel()
            return
        for first, last in reversed(runs):
            self.beginRemoveRows(QModelIndex(), first, last)
            self._order = np.delete(self._order, np.s_[first : last + 1])
            self._position = None
            self.endRemoveRows()
        joining = new[~was_shown[new]]
        if len(joining):
            first = len(self._order)
            self.beginInsertRows(QModelIndex(), first, first + len(joining) - 1)
            self._order = np.concatenate([self._order, joining])
            self._position = None
            self.endInsertRows()
        if np.array_equal(self._order, new):
            self._emit_changed(changed)
        else:
            self._move_to(new)

    def _move_to(self, new: np.ndarray) -> None:
        """Re-order the same rows as one layout change; persistent indexes follow their rows."""
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        sources = self._order[[index.row() for index in persistent]]
        self._order, self._position = new, None
        rows = self.shown_rows(sources)
        self.changePersistentIndexList(persistent, [self.index(int(r)) for r in rows])
        self.layoutChanged.emit()

    def _emit_changed(self, changed: np.ndarray) -> None:
        rows = self.shown_rows(changed)
        rows = rows[rows >= 0]
        if len(rows):
            self.dataChanged.emit(self.index(int(rows.min())), self.index(int(rows.max())))

    def _positions(self) -> np.ndarray:
        if self._position is None or len(self._position) != self.results.rowCount():
            position = np.full(self.results.rowCount(), -1, np.int64)
            position[self._order] = np.arange(len(self._order))
            self._position = position
        return self._position


def _sorted_by(keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`rows` by float32 `keys`, ties in row order: one sort of 64-bit integers.

    The key's bits, made to sort as the floats do, go above the row's: a plain sort then
    breaks ties by row, faster than a stable argsort of the keys.
    """
    bits = (keys.astype(np.float32) + np.float32(0)).view(np.uint32)  # -0.0 sorts as 0.0
    flip = np.where(bits >> 31 == 1, np.uint32(0xFFFFFFFF), np.uint32(0x80000000))
    composite = ((bits ^ flip).astype(np.uint64) << np.uint64(32)) | rows.astype(np.uint64)
    return (np.sort(composite) & np.uint64(0xFFFFFFFF)).astype(np.int64)


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of consecutive numbers in a sorted array."""
    if not len(rows):
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1)
    firsts = np.concatenate([[rows[0]], rows[breaks + 1]])
    lasts = np.concatenate([rows[breaks], [rows[-1]]])
    return list(zip(firsts.tolist(), lasts.tolist(), strict=True))


def index_cache(order: ReviewOrder, parent: Any = None) -> QSortFilterProxyModel:
    """A pass-through proxy for the view: it answers `index()` and `rowCount()` in C++.

    A list view lays out every row after each change and asks for each row's index; a
    Python model answers each of those calls in Python (0.3 s for 100,000 rows), this proxy
    from its own table (a few ms). It neither sorts nor filters: ReviewOrder does.
    """
    proxy = QSortFilterProxyModel(parent)
    proxy.setDynamicSortFilter(False)
    proxy.setSourceModel(order)
    return proxy
