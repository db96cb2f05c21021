"""The export dialog: a manifest and/or files sorted into class folders, previewed, undoable."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSettings,
    Qt,
    Signal,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from fewshot_gui.core.errors import ExportError
from fewshot_gui.core.export import (
    DiskFullError,
    PlannedOp,
    default_journal_path,
    execute_export,
    plan_export,
)
from fewshot_gui.core.export_undo import journal_state, undo_export
from fewshot_gui.core.jobs import CancelToken
from fewshot_gui.core.manifest import write_manifest
from fewshot_gui.gui.results_model import DUPLICATES_FILTER, ResultsModel
from fewshot_gui.workers.background import BackgroundJob

Index = QModelIndex | QPersistentModelIndex
MODES = (
    ("Copy (keep the originals)", "copy"),
    ("Move", "move"),
    ("Link (symbolic links to the originals)", "link"),
)
PAST = {"copy": "copied", "move": "moved", "link": "linked"}
_KEY = "export/"  # QSettings group: the dialog opens as it was last used, also after a restart


class PlanModel(QAbstractTableModel):
    """The planned file operations: source, class, target."""

    HEADERS = ("File", "Class", "Goes to, inside the destination")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.plan: list[PlannedOp] = []
        self.destination: Path | None = None

    def set_plan(self, plan: list[PlannedOp], destination: Path | None = None) -> None:
        """`destination`: targets are shown relative to it, which is all that differs per row."""
        self.beginResetModel()
        self.plan, self.destination = plan, destination
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.plan)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 3

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role not in (
            Qt.ItemDataRole.DisplayRole,
            Qt.ItemDataRole.ToolTipRole,
        ):
            return None
        op = self.plan[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(op.source if column == 0 else op.target)
        target = op.target
        if self.destination is not None and target.is_relative_to(self.destination):
            target = target.relative_to(self.destination)
        return (op.source.name, op.label, str(target))[column]

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None


class ExportDialog(QDialog):
    """`exported(journal or None)` when an export finished; `undone()` after undo.

    Its choices are kept in `settings` (by default the parent's `settings`, as the main window
    has) when an export starts, and shown again the next time.
    """

    exported = Signal(object)
    undone = Signal()

    def __init__(
        self,
        results: ResultsModel,
        last_journal: Path | None,
        parent: QWidget | None = None,
        meta: dict[str, Any] | None = None,
        settings: QSettings | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.resize(760, 520)
        self.results, self.last_journal, self.meta = results, last_journal, meta or {}
        parent_settings = getattr(parent, "settings", None)
        if settings is None and isinstance(parent_settings, QSettings):
            settings = parent_settings
        self.settings = settings if settings is not None else QSettings()
        self.job = BackgroundJob(self)

        self.manifest_box = QGroupBox("Write a manifest (CSV or JSON)", self)
        self.manifest_box.setCheckable(True)
        self.manifest_path = QLineEdit(str(Path.home() / "labels.csv"), self)
        self.manifest_path.setToolTip("The file name's ending (.csv, .json) picks the format")
        manifest_row = self._with_browse(self.manifest_path, self._browse_manifest)
        QVBoxLayout(self.manifest_box).addLayout(manifest_row)

        self.files_box = QGroupBox("Sort the files into class folders", self)
        self.files_box.setCheckable(True)
        self.files_box.setChecked(False)
        self.destination = QLineEdit(self)
        self.destination.setPlaceholderText("Folder that receives one subfolder per class")
        self.mode = QComboBox(self)
        for text, mode in MODES:
            self.mode.addItem(text, mode)
        self.mode.setToolTip(
            "Copy and Link leave the originals where they are; a link takes no space, but breaks "
            "if the original moves"
        )
        self.include_unknown = QCheckBox("Also export 'unknown' images", self)
        form = QFormLayout(self.files_box)
        form.addRow("Destination:", self._with_browse(self.destination, self._browse_destination))
        form.addRow("How:", self.mode)
        form.addRow(self.include_unknown)

        copies = results.counts().get(DUPLICATES_FILTER, 0)
        self.one_per_group = QCheckBox(f"Keep one file per duplicate group ({copies} files)", self)
        self.one_per_group.setToolTip(
            "Leave the other copies out of the manifest and the class folders; each group "
            "keeps its largest file. Show “duplicates” in the results to find the groups"
        )
        self.one_per_group.setEnabled(copies > 0)

        self.plan_model = PlanModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.plan_model)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setToolTip("What will happen; nothing is ever overwritten")
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.progress = QProgressBar(self)
        self.progress.hide()

        buttons = QDialogButtonBox(self)
        self.export_button = buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.undo_button = QPushButton("Undo Last Export", self)
        self.undo_button.setToolTip("Move or delete what the last export put into class folders")
        self._enable_undo()
        buttons.addButton(self.undo_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)

        layout = QVBoxLayout(self)
        layout.addWidget(self.manifest_box)
        layout.addWidget(self.files_box)
        layout.addWidget(self.one_per_group)
        layout.addWidget(QLabel("Preview:"))
        layout.addWidget(self.table, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(buttons)

        self._restore_choices()
        self.export_button.clicked.connect(self.export)
        self.undo_button.clicked.connect(self.undo)
        buttons.rejected.connect(self.reject)
        for signal in (
            self.destination.textChanged,
            self.include_unknown.toggled,
            self.one_per_group.toggled,
        ):
            signal.connect(self.refresh_plan)
        self.files_box.toggled.connect(self.refresh_plan)
        self.mode.currentIndexChanged.connect(self.refresh_plan)  # "copied" or "moved"
        self.job.event.connect(self._on_event)
        self.job.finished.connect(self._on_finished)
        self.job.failed.connect(self._on_failed)
        self.refresh_plan()

    def _restore_choices(self) -> None:
        value = self.settings.value
        self.manifest_box.setChecked(value(_KEY + "write_manifest", True, type=bool))
        self.manifest_path.setText(value(_KEY + "manifest", self.manifest_path.text(), type=str))
        self.files_box.setChecked(value(_KEY + "sort_files", False, type=bool))
        self.destination.setText(value(_KEY + "destination", "", type=str))
        self.mode.setCurrentIndex(max(0, self.mode.findData(value(_KEY + "mode", "copy"))))
        self.include_unknown.setChecked(value(_KEY + "include_unknown", False, type=bool))
        self.one_per_group.setChecked(value(_KEY + "one_per_group", False, type=bool))

    def _save_choices(self) -> None:
        for key, choice in (
            ("write_manifest", self.manifest_box.isChecked()),
            ("manifest", self.manifest_path.text()),
            ("sort_files", self.files_box.isChecked()),
            ("destination", self.destination.text().strip()),
            ("mode", self.mode.currentData()),
            ("include_unknown", self.include_unknown.isChecked()),
            ("one_per_group", self.one_per_group.isChecked()),
        ):
            self.settings.setValue(_KEY + key, choice)
        self.settings.sync()

    def _enable_undo(self) -> None:
        # The journal says whether its export still stands: also for a session reopened later.
        self.undo_button.setEnabled(
            not self.job.running and journal_state(self.last_journal) == "exported"
        )

    def _with_browse(self, edit: QLineEdit, slot: Any) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(slot)
        row.addWidget(browse)
        return row

    def _browse_manifest(self) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self, "Manifest", self.manifest_path.text(), "CSV (*.csv);;JSON (*.json)"
        )
        if name:
            self.manifest_path.setText(name)

    def _browse_destination(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Destination", self.destination.text())
        if folder:
            self.destination.setText(folder)

    def refresh_plan(self) -> None:
        """Plan the file operations (read-only) so the table shows exactly what will happen."""
        self.plan_model.set_plan([])
        if not self.files_box.isChecked() or not self.destination.text().strip():
            self.status.setText(f"{self.results.rowCount()} labeled images")
            return
        destination = Path(self.destination.text().strip())
        items = self._kept(self.results.labeled_items())
        try:
            plan = plan_export(items, destination, include_unknown=self.include_unknown.isChecked())
        except ExportError as error:
            self.status.setText(str(error))
            return
        self.plan_model.set_plan(plan, destination)
        text = f"{len(plan)} files will be {PAST[self.mode.currentData()]}; nothing is overwritten"
        unreadable = sum(1 for _path, label in items if not label)
        if unreadable:
            text += (
                f". {unreadable} unreadable file(s) stay where they are, in no folder; "
                "the manifest lists them with the reason"
            )
        self.status.setText(text)

    def export(self) -> None:
        if self.job.running:
            return
        self.refresh_plan()
        manifest = Path(self.manifest_path.text()) if self.manifest_box.isChecked() else None
        plan = self.plan_model.plan if self.files_box.isChecked() else []
        if manifest is None and not plan:
            self.status.setText("Choose a manifest file or a destination folder")
            return
        self._save_choices()
        rows = [p.manifest_row() for p in self._kept(self.results.effective_predictions())]
        mode = self.mode.currentData()
        journal = default_journal_path(Path(self.destination.text().strip())) if plan else None
        meta = self.meta

        def run(token: CancelToken) -> Generator[Any, None, tuple[Path | None, str]]:
            done = []
            if manifest is not None:
                write_manifest(rows, manifest, meta=meta)
                done.append(f"wrote {manifest.name}")
            if plan and journal is not None:
                try:
                    summary = yield from execute_export(plan, mode, journal, cancel=token)
                except DiskFullError as error:
                    # What was done stands and its journal is whole: offer to undo it.
                    return error.journal, str(error)
                done.append(f"{PAST[mode]} {summary.done} file(s), {summary.failed} failed")
            return journal, "Export finished: " + "; ".join(done)

        self._busy(len(plan))
        self.job.start(run)

    def _kept(self, rows: list[Any]) -> list[Any]:
        """`rows` (one per result) without the copies that one per group leaves out."""
        if not (self.one_per_group.isEnabled() and self.one_per_group.isChecked()):
            return rows
        extras = self.results.duplicate_extras().tolist()
        return [row for row, extra in zip(rows, extras, strict=True) if not extra]

    def undo(self) -> None:
        if self.job.running or journal_state(self.last_journal) != "exported":
            return
        journal = self.last_journal
        self._busy(0)
        self.job.start(lambda _token: self._undo_job(journal))

    @staticmethod
    def _undo_job(journal: Path) -> Generator[Any, None, str]:
        summary = yield from undo_export(journal)
        if summary.already_undone:
            return "That export was already undone"
        return f"Undid the export; {summary.failed} file(s) could not be restored"

    def _busy(self, total: int) -> None:
        self.export_button.setEnabled(False)
        self.undo_button.setEnabled(False)
        self.progress.setRange(0, max(total, 0))
        self.progress.show()

    def _on_event(self, event: Any) -> None:
        self.progress.setRange(0, event.total)
        self.progress.setValue(event.index)

    def _on_finished(self, result: object) -> None:
        self.progress.hide()
        self.export_button.setEnabled(True)
        if isinstance(result, str):
            self._enable_undo()  # still enabled where some files could not be restored: retry
            self.refresh_plan()
            self.status.setText(result)
            self.undone.emit()
            return
        journal, message = result  # type: ignore[misc]
        self.last_journal = journal or self.last_journal
        self._enable_undo()
        self.status.setText(message)
        self.exported.emit(journal)

    def _on_failed(self, message: str) -> None:
        self.progress.hide()
        self.export_button.setEnabled(True)
        self._enable_undo()
        self.status.setText(f"Export failed: {message}")

    def done(self, result: int) -> None:
        self.job.wait()
        super().done(result)


def undo_last_export(parent: QWidget, results: ResultsModel, journal: Path | None) -> ExportDialog:
    """Open the export dialog on `journal` and start its undo, whose progress it shows."""
    dialog = ExportDialog(results, journal, parent)
    dialog.open()
    dialog.undo()
    return dialog
