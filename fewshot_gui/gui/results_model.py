"""The labeled images as numpy columns, one row per file in the order they were labeled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import QGuiApplication, QPalette

from fewshot_gui.core.predictions import ERROR_INDEX, UNKNOWN_INDEX, Labels, Prediction
from fewshot_gui.core.support import UNKNOWN
from fewshot_gui.gui.thumbnails import ThumbnailCache

if TYPE_CHECKING:
    from fewshot_gui.core.duplicates import DuplicateGroups

Index = QModelIndex | QPersistentModelIndex
PATH_ROLE = Qt.ItemDataRole.UserRole + 1
LABEL_ROLE = Qt.ItemDataRole.UserRole + 2  # the corrected label if any, else the prediction's
CONFIDENCE_ROLE = Qt.ItemDataRole.UserRole + 3  # review order: corrected ones sort last
PREDICTION_ROLE = Qt.ItemDataRole.UserRole + 4
CORRECTED_ROLE = Qt.ItemDataRole.UserRole + 5
RESULTS_MIME = "application/x-fewshot-results"
ERROR_FILTER = "\x00errors"  # filter value for images that could not be read
CORRECTED_FILTER = "\x00corrected"  # filter value for images the user labeled
DUPLICATES_FILTER = "\x00duplicates"  # filter value for images in a group of copies
RESULT_THUMB = 112
NOT_CORRECTED = -3  # in the corrected column; otherwise a name code or UNKNOWN_INDEX

# Columns and their types; a label code is an index into the model's names, or
# UNKNOWN_INDEX / ERROR_INDEX as in core.predictions.Labels.
_COLUMNS = {
    "label": np.int32,
    "nearest": np.int32,
    "runner_up": np.int32,
    "confidence": np.float32,
    "runner_up_confidence": np.float32,
    "novelty": np.float32,
    "pinned": np.bool_,
    "corrected": np.int32,
    "duplicate_group": np.int32,  # 0: in no group of copies; else the group's number
    "duplicate_keep": np.bool_,  # the one file of its group that "one per group" keeps
    "review_rank": np.float32,  # place in "check next" (core.review_priority)
}
_COMPARED = ("label", "nearest", "runner_up", "confidence", "runner_up_confidence", "novelty")
UNRANKED = np.finfo(np.float32).max  # streamed rows, until a relabel ranks them


class ResultsModel(QAbstractListModel):
    """One row per labeled file; `add` merges labels by path, `set_corrections` overlays.

    `rowsUpdated(rows)` gives the rows whose label, confidence or correction changed, as an
    int64 array, for views that re-sort; `dataChanged` covers them with one range.
    """

    rowsUpdated = Signal(object)

    def __init__(self, thumbnails: ThumbnailCache, parent: Any = None) -> None:
        super().__init__(parent)
        self._thumbnails = thumbnails
        self._corrections: dict[Path, str] = {}
        self._names: list[str] = []  # label codes index this; names are never removed
        self._code_of: dict[str, int] = {}
        self._reset_rows()
        thumbnails.ready.connect(self._on_thumbnail)

    def _reset_rows(self) -> None:
        self._size = 0
        self._paths: list[Path] = []
        self._row_of: dict[Path, int] = {}
        self._errors: dict[int, str] = {}  # few rows fail: a dict, not a column of ''
        self._data = {name: np.zeros(0, dtype) for name, dtype in _COLUMNS.items()}
        self._duplicates_rows = -1  # how many rows the groups were found among; -1: never

    # --- columns ---------------------------------------------------------------------------

    def column(self, name: str) -> np.ndarray:
        """A read-only view of one column (see _COLUMNS) over the rows, in row order."""
        view = self._data[name][: self._size]
        view.flags.writeable = False
        return view

    def effective_codes(self) -> np.ndarray:
        """Label code per row with the user's corrections applied."""
        corrected = self._data["corrected"][: self._size]
        return np.where(corrected != NOT_CORRECTED, corrected, self._data["label"][: self._size])

    def review_keys(self) -> np.ndarray:
        """Sort key of the review order: least sure first, unreadable before, corrected last."""
        n = self._size
        corrected = self._data["corrected"][:n] != NOT_CORRECTED
        error = self._data["label"][:n] == ERROR_INDEX
        keys = np.where(error, np.float32(-1.0), self._data["confidence"][:n])
        return np.where(corrected, np.float32(2.0), keys)

    def check_next_keys(self) -> np.ndarray:
        """Sort key of the "check next" order: its rank from the last relabel, corrected last."""
        n = self._size
        corrected = self._data["corrected"][:n] != NOT_CORRECTED
        return np.where(corrected, np.float32(np.inf), self._data["review_rank"][:n])

    def mask(self, label_filter: str | None) -> np.ndarray:
        """Rows a filter shows: None (all), a class, UNKNOWN, ERROR_FILTER or CORRECTED_FILTER."""
        n = self._size
        if label_filter is None:
            return np.ones(n, bool)
        if label_filter == CORRECTED_FILTER:
            return self._data["corrected"][:n] != NOT_CORRECTED
        if label_filter == DUPLICATES_FILTER:
            return self._data["duplicate_group"][:n] > 0
        code = self._filter_code(label_filter)
        return np.zeros(n, bool) if code is None else self.effective_codes() == code

    def counts(self) -> dict[str | None, int]:
        """Rows per filter value (see `mask`), for the filter's menu."""
        codes = self.effective_codes()
        per_code = np.bincount(codes + 2, minlength=len(self._names) + 2)
        counts: dict[str | None, int] = {name: int(per_code[i + 2]) for i, name in self._codes()}
        counts[None] = self._size
        counts[UNKNOWN] = int(per_code[UNKNOWN_INDEX + 2])
        counts[ERROR_FILTER] = int(per_code[ERROR_INDEX + 2])
        counts[CORRECTED_FILTER] = int(
            (self._data["corrected"][: self._size] != NOT_CORRECTED).sum()
        )
        counts[DUPLICATES_FILTER] = int((self._data["duplicate_group"][: self._size] > 0).sum())
        return counts

    def novelties(self) -> np.ndarray:
        """Novelty of every readable file, float32, for the threshold's histogram."""
        n = self._size
        return self._data["novelty"][:n][self._data["label"][:n] != ERROR_INDEX].copy()

    def path(self, row: int) -> Path:
        return self._paths[row]

    def row_of(self, path: Path) -> int | None:
        return self._row_of.get(path)

    # --- the old surface: lists, built on demand ------------------------------------------

    def predictions(self) -> list[Prediction]:
        return [self._prediction(row, corrected=False) for row in range(self._size)]

    def effective_predictions(self) -> list[Prediction]:
        """The predictions with the user's corrections as their labels, for a manifest."""
        return [self._prediction(row, corrected=True) for row in range(self._size)]

    def labeled_items(self) -> list[tuple[Path, str]]:
        """(path, label) of every row with corrections applied; '' for unreadable files."""
        names = [*self._names, "", UNKNOWN]  # code -2 is '' and -1 is unknown, from the end
        return list(
            zip(self._paths, [names[c] for c in self.effective_codes().tolist()], strict=True)
        )

    # --- duplicates ------------------------------------------------------------------------

    def set_duplicates(self, found: DuplicateGroups) -> None:
        """Groups of copies (core.duplicates) among the rows; rows it did not look at join
        no group. The groups are current until rows are added or cleared."""
        n = self._size
        group, keep = np.zeros(n, np.int32), np.zeros(n, bool)
        for path, number, kept in zip(found.paths, found.group, found.keep, strict=True):
            row = self._row_of.get(path)
            if row is not None:
                group[row], keep[row] = number, kept
        old = self._data["duplicate_group"][:n]
        changed = np.flatnonzero(old != group)
        old[:] = group
        self._data["duplicate_keep"][:n] = keep
        self._duplicates_rows = n
        self._emit_updated(changed)

    def duplicates_current(self) -> bool:
        """Whether the groups were found among exactly the rows there are now."""
        return self._duplicates_rows == self._size

    def duplicate_extras(self) -> np.ndarray:
        """Per row, whether it is a copy that keeping one file per group leaves out."""
        n = self._size
        return (self._data["duplicate_group"][:n] > 0) & ~self._data["duplicate_keep"][:n]

    # --- Qt model --------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self._size

    def flags(self, index: Index) -> Qt.ItemFlag:
        return super().flags(index) | Qt.ItemFlag.ItemIsDragEnabled

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = index.row()
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{self._paths[row].name}\n{self._verdict(row)}"
        if role == Qt.ItemDataRole.DecorationRole:
            return self._thumbnails.icon(str(self._paths[row]), RESULT_THUMB)
        if role == Qt.ItemDataRole.ForegroundRole:
            code = int(self._data["label"][row])
            if self._corrected(row) is None and code < 0:
                # Greyed, so the eye goes to what the model did name.
                return QGuiApplication.palette().color(QPalette.ColorRole.PlaceholderText)
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row)
        if role == PATH_ROLE:
            return self._paths[row]
        if role == LABEL_ROLE:
            corrected = self._corrected(row)
            if corrected is not None:
                return corrected
            code = int(self._data["label"][row])
            return ERROR_FILTER if code == ERROR_INDEX else self._name(code)
        if role == CONFIDENCE_ROLE:
            return float(self.review_keys_at(row))
        if role == PREDICTION_ROLE:
            return self._prediction(row, corrected=False)
        if role == CORRECTED_ROLE:
            return self._corrected(row) is not None
        return None

    def review_keys_at(self, row: int) -> float:
        if self._corrected(row) is not None:
            return 2.0
        if self._data["label"][row] == ERROR_INDEX:
            return -1.0
        return float(self._data["confidence"][row])

    def mimeTypes(self) -> list[str]:
        return [RESULTS_MIME, "text/uri-list"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        paths = [self._paths[i.row()] for i in indexes if i.isValid()]
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
        mime.setData(RESULTS_MIME, "\n".join(str(p) for p in paths).encode("utf-8"))
        return mime

    # --- changes ---------------------------------------------------------------------------

    def clear(self) -> None:
        self.beginResetModel()
        self._reset_rows()
        self.endResetModel()

    def add(self, labels: Labels | Sequence[Prediction]) -> None:
        """Update the rows of known paths in place and append the new ones in one insertion.

        Also takes a list of `Prediction`, which labeling sent before it sent `Labels`.
        """
        if not isinstance(labels, Labels):
            labels = _as_labels(labels)
        if not len(labels):
            return
        paths = labels.paths if isinstance(labels.paths, list) else list(labels.paths)
        rows, new_paths = self._rows_for(paths)
        columns = self._codes_of(labels)
        known = rows < self._size
        if known.any():
            errors = labels.errors
            if not known.all():
                errors = [e for e, k in zip(errors, known.tolist(), strict=True) if k]
            updated = self._update(rows[known], {k: v[known] for k, v in columns.items()})
            failed = self._set_errors(rows[known], errors)
            if failed:
                updated = np.union1d(updated, np.fromiter(failed, np.int64, len(failed)))
            self._emit_updated(updated)
        if new_paths:
            first, last = self._size, self._size + len(new_paths) - 1
            self.beginInsertRows(QModelIndex(), first, last)
            self._append(new_paths, rows[~known], {k: v[~known] for k, v in columns.items()})
            self._set_errors(
                rows[~known],
                [e for e, k in zip(labels.errors, known.tolist(), strict=True) if not k],
            )
            self.endInsertRows()

    def set_corrections(self, corrections: dict[Path, str]) -> None:
        """The user's labels, by path; they show over the predictions and sort last."""
        if corrections == self._corrections:
            return
        self._corrections = dict(corrections)
        corrected = np.full(self._size, NOT_CORRECTED, np.int32)
        for path, name in corrections.items():
            row = self._row_of.get(path)
            if row is not None:
                corrected[row] = self._code(name)
        old = self._data["corrected"][: self._size]
        changed = np.flatnonzero(old != corrected)
        old[:] = corrected
        self._emit_updated(changed)

    # --- internals -------------------------------------------------------------------------

    def _rows_for(self, paths: list[Path]) -> tuple[np.ndarray, list[Path]]:
        """Row of each path, new paths numbered on from the end; and the new paths in order."""
        n = self._size
        rows = np.empty(len(paths), np.int64)
        # A relabel sends the labeled paths in the same order, often the very same objects:
        # one list comparison instead of hashing 100,000 paths.
        if n and len(paths) >= n and paths[:n] == self._paths:
            rows[:n] = np.arange(n)
            rest = range(n, len(paths))
        else:
            rest = range(len(paths))
        new_paths: list[Path] = []
        new_row_of: dict[Path, int] = {}
        row_of = self._row_of
        for i in rest:
            path = paths[i]
            row = row_of.get(path)
            if row is None:
                row = new_row_of.get(path)
                if row is None:
                    row = new_row_of[path] = n + len(new_paths)
                    new_paths.append(path)
            rows[i] = row
        return rows, new_paths

    def _codes_of(self, labels: Labels) -> dict[str, np.ndarray]:
        """The columns of `labels` with class indices turned into this model's name codes."""
        to_code = np.array([self._code(name) for name in labels.class_names] or [0], np.int32)

        def codes(values: np.ndarray) -> np.ndarray:
            values = np.asarray(values)
            return np.where(values >= 0, to_code[np.clip(values, 0, len(to_code) - 1)], values)

        n = len(labels)
        pinned = getattr(labels, "pinned", None)
        rank = getattr(labels, "review_rank", None)
        ranked = {} if rank is None else {"review_rank": np.asarray(rank, np.float32)}
        return ranked | {
            "label": codes(labels.label).astype(np.int32),
            "nearest": codes(labels.nearest).astype(np.int32),
            "runner_up": codes(labels.runner_up).astype(np.int32),
            "confidence": np.asarray(labels.confidence, np.float32),
            "runner_up_confidence": np.asarray(labels.runner_up_confidence, np.float32),
            "novelty": np.asarray(labels.novelty, np.float32),
            "pinned": np.zeros(n, bool) if pinned is None else np.asarray(pinned, bool),
        }

    def _update(self, rows: np.ndarray, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Write the columns of known rows; the rows where anything changed."""
        changed = np.zeros(len(rows), bool)
        for name in (*_COMPARED, "review_rank"):
            if name in columns:  # a streamed batch brings no rank
                changed |= self._data[name][rows] != columns[name]
        for name, values in columns.items():
            self._data[name][rows] = values
        return rows[changed]

    def _set_errors(self, rows: np.ndarray, errors: Sequence[str]) -> set[int]:
        """Store the message of each row ('' where it was read); the rows whose message changed."""
        failing = np.fromiter(map(bool, errors), bool, len(rows))
        if self._errors:
            # Rows that failed before and are labeled again may have been read this time.
            failing |= np.isin(rows, np.fromiter(self._errors, np.int64, len(self._errors)))
        changed = set()
        for at in np.flatnonzero(failing).tolist():
            row, message = int(rows[at]), str(errors[at])
            if message and self._errors.get(row) != message:
                self._errors[row] = message
                changed.add(row)
            elif not message and row in self._errors:
                del self._errors[row]
                changed.add(row)
        return changed

    def _append(self, paths: list[Path], rows: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        size = self._size + len(paths)
        capacity = len(self._data["label"])
        if size > capacity:
            # Grow by half again: streamed batches of 16 append in amortised constant time.
            capacity = max(size, capacity + capacity // 2, 1024)
            for name, old in self._data.items():
                grown = np.zeros(capacity, old.dtype)
                grown[: self._size] = old[: self._size]
                self._data[name] = grown
        self._data["review_rank"][self._size : size] = UNRANKED
        for name, values in columns.items():
            self._data[name][rows] = values  # a path twice in one batch: the last one wins
        corrected = self._data["corrected"][self._size : size]
        corrected[:] = NOT_CORRECTED
        for offset, path in enumerate(paths):
            self._row_of[path] = self._size + offset
            name = self._corrections.get(path) if self._corrections else None
            if name is not None:
                corrected[offset] = self._code(name)
        self._paths.extend(paths)
        self._size = size

    def _emit_updated(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        self.dataChanged.emit(self.index(int(rows.min())), self.index(int(rows.max())))
        self.rowsUpdated.emit(rows)

    def _code(self, name: str) -> int:
        if name == UNKNOWN:
            return UNKNOWN_INDEX
        code = self._code_of.get(name)
        if code is None:
            code = self._code_of[name] = len(self._names)
            self._names.append(name)
        return code

    def _codes(self) -> list[tuple[int, str]]:
        return list(enumerate(self._names))

    def _filter_code(self, label_filter: str) -> int | None:
        if label_filter == ERROR_FILTER:
            return ERROR_INDEX
        if label_filter == UNKNOWN:
            return UNKNOWN_INDEX
        return self._code_of.get(label_filter)

    def _name(self, code: int) -> str:
        if code == UNKNOWN_INDEX:
            return UNKNOWN
        return "" if code == ERROR_INDEX else self._names[code]

    def _corrected(self, row: int) -> str | None:
        code = int(self._data["corrected"][row])
        return None if code == NOT_CORRECTED else self._name(code)

    def _verdict(self, row: int) -> str:
        """The tile's second line: what the user or the model says the image is."""
        corrected = self._corrected(row)
        if corrected is not None:
            return f"✓ {corrected}"
        code = int(self._data["label"][row])
        if code == ERROR_INDEX:
            return "⚠ unreadable"
        if code == UNKNOWN_INDEX:
            # The closest class as a guess: "nearest: …" would not fit under a thumbnail.
            return f"{UNKNOWN} · {self._name(int(self._data['nearest'][row]))}?"
        return f"{self._names[code]} {self._data['confidence'][row]:.0%}"

    def _prediction(self, row: int, corrected: bool) -> Prediction:
        path, data = self._paths[row], self._data
        error = self._errors.get(row, "")
        label = self._corrected(row) if corrected else None
        if error:
            return Prediction(path, label or "", 0.0, "", 0.0, 0.0, error)
        second = int(data["runner_up"][row])
        return Prediction(
            path=path,
            label=label or self._name(int(data["label"][row])),
            confidence=float(data["confidence"][row]),
            runner_up=self._name(second) if second >= 0 else "",
            runner_up_confidence=float(data["runner_up_confidence"][row]) if second >= 0 else 0.0,
            novelty=float(data["novelty"][row]),
            nearest=self._name(int(data["nearest"][row])),
            pinned=bool(data["pinned"][row]),
        )

    def _tooltip(self, row: int) -> str:
        prediction = self._prediction(row, corrected=False)
        if prediction.error:
            return f"{prediction.path}\ncould not be read: {prediction.error}"
        lines = [str(prediction.path)]
        corrected = self._corrected(row)
        if corrected is not None:
            lines.append(f"labeled by you as {corrected}")
        elif prediction.pinned:
            lines.append("an example or correction: the model keeps this label")
        lines.append(f"predicted {prediction.label} ({prediction.confidence:.1%})")
        if prediction.label == UNKNOWN and prediction.nearest:
            lines.append(f"nearest class {prediction.nearest}")
        if prediction.runner_up:
            lines.append(
                f"runner-up {prediction.runner_up} ({prediction.runner_up_confidence:.1%})"
            )
        lines.append(f"novelty {prediction.novelty:.3g}")
        group = int(self._data["duplicate_group"][row])
        if group:
            kept = "kept" if self._data["duplicate_keep"][row] else "left out"
            lines.append(f"duplicate group {group} ({kept} when exporting one per group)")
        return "\n".join(lines)

    def _on_thumbnail(self, path: str) -> None:
        row = self._row_of.get(Path(path))
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


def _as_labels(predictions: Sequence[Prediction]) -> Labels:
    """Columns from a list of Prediction (the old contract), names in order of appearance."""
    names: dict[str, int] = {}
    for p in predictions:
        for name in (p.label, p.nearest, p.runner_up):
            if name and name != UNKNOWN:
                names.setdefault(name, len(names))

    def code(name: str) -> int:
        return UNKNOWN_INDEX if name == UNKNOWN else names.get(name, ERROR_INDEX)

    return Labels(
        paths=[p.path for p in predictions],
        class_names=tuple(names),
        label=np.array([ERROR_INDEX if p.error else code(p.label) for p in predictions]),
        nearest=np.array([max(code(p.nearest), 0) for p in predictions]),
        confidence=np.array([p.confidence for p in predictions], np.float32),
        runner_up=np.array(
            [code(p.runner_up) if p.runner_up else ERROR_INDEX for p in predictions]
        ),
        runner_up_confidence=np.array([p.runner_up_confidence for p in predictions], np.float32),
        novelty=np.array([p.novelty for p in predictions], np.float32),
        errors=[p.error for p in predictions],
        pinned=np.array([getattr(p, "pinned", False) for p in predictions], bool),
    )
