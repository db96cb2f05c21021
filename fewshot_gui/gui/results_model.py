"""The labeled images: a list model of predictions and a proxy that filters and sorts them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QUrl,
)
from PySide6.QtGui import QGuiApplication, QPalette

from fewshot_gui.core.support import UNKNOWN
from fewshot_gui.gui.thumbnails import ThumbnailCache

Index = QModelIndex | QPersistentModelIndex
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
LABEL_ROLE = Qt.ItemDataRole.UserRole + 2  # the corrected label if any, else the prediction's
CONFIDENCE_ROLE = Qt.ItemDataRole.UserRole + 3  # review order: corrected ones sort last
PREDICTION_ROLE = Qt.ItemDataRole.UserRole + 4
CORRECTED_ROLE = Qt.ItemDataRole.UserRole + 5
RESULTS_MIME = "application/x-fewshot-results"
ERROR_FILTER = "\x00errors"  # filter value for images that could not be read
RESULT_THUMB = 112


class ResultsModel(QAbstractListModel):
    """One row per labeled image, in the order they were labeled; rows are added in batches."""

    def __init__(self, thumbnails: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []  # core.labeling.Prediction
        self._row_of: dict[Path, int] = {}
        self._corrections: dict[Path, str] = {}
        self._thumbnails = thumbnails
        thumbnails.ready.connect(self._on_thumbnail)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def flags(self, index: Index) -> Qt.ItemFlag:
        return super().flags(index) | Qt.ItemFlag.ItemIsDragEnabled

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        prediction = self._rows[index.row()]
        corrected = self._corrections.get(prediction.path)
        if role == Qt.ItemDataRole.DisplayRole:
            if corrected:
                return f"✓ {corrected}\nlabeled by you"
            if prediction.error:
                return "⚠ unreadable"
            if prediction.label == UNKNOWN:
                # The closest class as a guess: "nearest: …" would not fit under a thumbnail.
                nearest = f"{prediction.nearest}?" if prediction.nearest else ""
                return f"{UNKNOWN}\n{nearest}"
            return f"{prediction.label}\n{prediction.confidence:.0%}"
        if role == Qt.ItemDataRole.DecorationRole:
            return self._thumbnails.icon(str(prediction.path), RESULT_THUMB)
        if role == Qt.ItemDataRole.ForegroundRole and not corrected:
            if prediction.error or prediction.label == UNKNOWN:
                # Greyed, so the eye goes to what the model did name.
                return QGuiApplication.palette().color(QPalette.ColorRole.PlaceholderText)
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(prediction, corrected)
        if role == PATH_ROLE:
            return prediction.path
        if role == LABEL_ROLE:
            return corrected or (ERROR_FILTER if prediction.error else prediction.label)
        if role == CONFIDENCE_ROLE:
            return 2.0 if corrected else (-1.0 if prediction.error else prediction.confidence)
        if role == PREDICTION_ROLE:
            return prediction
        if role == CORRECTED_ROLE:
            return corrected is not None
        return None

    def mimeTypes(self) -> list[str]:
        return [RESULTS_MIME, "text/uri-list"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        paths = [self._rows[i.row()].path for i in indexes if i.isValid()]
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
        mime.setData(RESULTS_MIME, "\n".join(str(p) for p in paths).encode("utf-8"))
        return mime

    def predictions(self) -> list[Any]:
        return list(self._rows)

    def labeled_items(self) -> list[tuple[Path, str]]:
        """(path, label) of every row with corrections applied; '' for unreadable files."""
        return [(p.path, self._corrections.get(p.path, p.label)) for p in self._rows]

    def effective_predictions(self) -> list[Any]:
        """The predictions with the user's corrections as their labels, for a manifest."""
        return [
            replace(p, label=self._corrections[p.path]) if p.path in self._corrections else p
            for p in self._rows
        ]

    def clear(self) -> None:
        self.beginResetModel()
        self._rows, self._row_of = [], {}
        self.endResetModel()

    def add(self, predictions: Sequence[Any]) -> None:
        """Update rows already shown and append the new ones in one insertion."""
        new = []
        changed = []
        for prediction in predictions:
            row = self._row_of.get(prediction.path)
            if row is None:
                new.append(prediction)
            else:
                self._rows[row] = prediction
                changed.append(row)
        if changed:
            self.dataChanged.emit(self.index(min(changed)), self.index(max(changed)))
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for offset, prediction in enumerate(new):
                self._row_of[prediction.path] = first + offset
            self._rows.extend(new)
            self.endInsertRows()

    def set_corrections(self, corrections: dict[Path, str]) -> None:
        if corrections == self._corrections:
            return
        self._corrections = dict(corrections)
        if self._rows:
            self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1))

    def _on_thumbnail(self, path: str) -> None:
        row = self._row_of.get(Path(path))
        if row is not None:
            self.dataChanged.emit(
                self.index(row), self.index(row), [Qt.ItemDataRole.DecorationRole]
            )


def _tooltip(prediction: Any, corrected: str | None) -> str:
    if prediction.error:
        return f"{prediction.path}\ncould not be read: {prediction.error}"
    lines = [str(prediction.path)]
    if corrected:
        lines.append(f"labeled by you as {corrected}")
    lines.append(f"predicted {prediction.label} ({prediction.confidence:.1%})")
    if prediction.label == UNKNOWN and prediction.nearest:
        lines.append(f"nearest class {prediction.nearest}")
    if prediction.runner_up:
        lines.append(f"runner-up {prediction.runner_up} ({prediction.runner_up_confidence:.1%})")
    lines.append(f"novelty {prediction.novelty:.3g}")
    return "\n".join(lines)


class ResultsProxy(QSortFilterProxyModel):
    """Shows one class, `unknown`, unreadable files or everything; least sure first."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._label: str | None = None
        self.setSortRole(CONFIDENCE_ROLE)
        self.setDynamicSortFilter(True)
        self.sort(0, Qt.SortOrder.AscendingOrder)

    @property
    def label_filter(self) -> str | None:
        return self._label

    def set_label_filter(self, label: str | None) -> None:
        """None shows everything; UNKNOWN and ERROR_FILTER are filters too."""
        self.beginFilterChange()
        self._label = label
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_least_sure_first(self, least_sure_first: bool) -> None:
        if least_sure_first:
            self.setSortRole(CONFIDENCE_ROLE)
            self.sort(0, Qt.SortOrder.AscendingOrder)
        else:
            self.sort(-1)  # the order images were labeled in

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if self._label is None:
            return True
        index = self.sourceModel().index(source_row, 0, source_parent)
        return index.data(LABEL_ROLE) == self._label
