"""Item models of the support set: the classes, and the examples of the selected class."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from fewshot_gui.gui.thumbnails import Shape, ThumbnailCache

Index = QModelIndex | QPersistentModelIndex
ClassesSnapshot = tuple[tuple[str, tuple[Path, ...]], ...]
EXAMPLES_ROLE = Qt.ItemDataRole.UserRole + 1
REPORT_ROLE = Qt.ItemDataRole.UserRole + 2
PATH_ROLE = Qt.ItemDataRole.UserRole + 3
CLASS_THUMB = 48
EXAMPLE_THUMB = 72


@dataclass
class _Class:
    name: str
    examples: list[Path]
    report: Any = None  # core.labeling.ClassReport, once the worker has adapted
    extra: list[str] = field(default_factory=list)


class ClassModel(QAbstractListModel):
    """The classes in order; `supportChanged` fires when names or examples change."""

    supportChanged = Signal()
    renameRequested = Signal(int, str)

    def __init__(self, thumbnails: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(parent)
        self._classes: list[_Class] = []
        self._thumbnails = thumbnails
        thumbnails.ready.connect(self._on_thumbnail)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._classes)

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid():
            return base | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsDropEnabled
        return base | Qt.ItemFlag.ItemIsDropEnabled

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        item = self._classes[index.row()]
        if role == Qt.ItemDataRole.EditRole:
            return item.name
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{index.row() + 1 if index.row() < 9 else ' '}  {item.name}\n{_summary(item)}"
        if role == Qt.ItemDataRole.DecorationRole:
            if not item.examples:
                return self._thumbnails.placeholder(CLASS_THUMB)
            return self._thumbnails.icon(str(item.examples[0]), CLASS_THUMB, Shape.FILL)
        if role == Qt.ItemDataRole.ToolTipRole:
            return "\n".join([item.name, _summary(item), *_warnings(item)])
        if role == EXAMPLES_ROLE:
            return list(item.examples)
        if role == REPORT_ROLE:
            return item.report
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        # Renames go through the undo stack; whoever listens applies them with restore().
        name = str(value).strip()
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not name:
            return False
        if name != self._classes[index.row()].name:
            self.renameRequested.emit(index.row(), name)
        return False

    def names(self) -> list[str]:
        return [item.name for item in self._classes]

    def row_of(self, name: str) -> int:
        return self.names().index(name) if name in self.names() else -1

    def examples(self, row: int) -> list[Path]:
        return list(self._classes[row].examples) if 0 <= row < len(self._classes) else []

    def snapshot(self) -> ClassesSnapshot:
        return tuple((item.name, tuple(item.examples)) for item in self._classes)

    def restore(self, snapshot: ClassesSnapshot) -> None:
        """Show `snapshot`; reports of classes whose examples did not change are kept."""
        if snapshot == self.snapshot():
            return
        reports = {(c.name, tuple(c.examples)): c.report for c in self._classes}
        self.beginResetModel()
        self._classes = [
            _Class(name, list(examples), reports.get((name, examples)))
            for name, examples in snapshot
        ]
        self.endResetModel()
        self.supportChanged.emit()

    def mapping(self) -> dict[str, list[Path]]:
        """Class name -> examples, for the classes that have at least one example."""
        return {item.name: list(item.examples) for item in self._classes if item.examples}

    def set_report(self, report: Any) -> None:
        """Show the leave-one-out accuracy and warnings of a core SupportReport."""
        by_name = {c.name: c for c in report.classes}
        broken = [f"cannot read {path.name}: {why}" for path, why in report.errors]
        for item in self._classes:
            item.report = by_name.get(item.name)
            item.extra = [m for m in broken if any(p.name in m for p in item.examples)]
        if self._classes:
            self.dataChanged.emit(self.index(0), self.index(len(self._classes) - 1))

    def _on_thumbnail(self, path: str) -> None:
        for row, item in enumerate(self._classes):
            if item.examples and str(item.examples[0]) == path:
                self.dataChanged.emit(self.index(row), self.index(row))


def _summary(item: _Class) -> str:
    count = len(item.examples)
    text = f"{count} example{'s' if count != 1 else ''}"
    report = item.report
    if report is not None and report.loo_accuracy is not None:
        text += f" · leave-one-out {report.loo_accuracy:.0%}"
    warnings = _warnings(item)
    if warnings:
        text += f" · ⚠ {warnings[0]}"
    return text


def _warnings(item: _Class) -> list[str]:
    found = list(item.report.warnings) if item.report is not None else []
    if item.report is not None and item.report.confused_with:
        found.append(f"often confused with {item.report.confused_with}")
    return found + item.extra


class ExampleModel(QAbstractListModel):
    """The examples of one class of a ClassModel, as thumbnails."""

    def __init__(self, classes: ClassModel, thumbnails: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(parent)
        self._classes, self._thumbnails = classes, thumbnails
        self._name = ""
        self._paths: list[Path] = []
        classes.modelReset.connect(self._refresh)
        thumbnails.ready.connect(self._on_thumbnail)

    @property
    def class_name(self) -> str:
        return self._name

    def show_class(self, name: str) -> None:
        self._name = name
        self._refresh()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._paths)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        path = self._paths[index.row()]
        if role == Qt.ItemDataRole.DecorationRole:
            return self._thumbnails.icon(str(path), EXAMPLE_THUMB)
        if role == Qt.ItemDataRole.ToolTipRole:
            failure = self._thumbnails.failure(str(path))
            return f"{path}\n{failure}" if failure else str(path)
        if role == PATH_ROLE:
            return path
        return None

    def _refresh(self) -> None:
        self.beginResetModel()
        self._paths = self._classes.examples(self._classes.row_of(self._name))
        self.endResetModel()

    def _on_thumbnail(self, path: str) -> None:
        for row, example in enumerate(self._paths):
            if str(example) == path:
                self.dataChanged.emit(self.index(row), self.index(row))
