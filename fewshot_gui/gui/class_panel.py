"""The class panel: classes with their examples, edited by drops, paste, buttons and keys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QMimeData, QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QGuiApplication, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QMessageBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from fewshot_gui.core.images import IMAGE_SUFFIXES
from fewshot_gui.core.support import DroppedFiles, sort_dropped
from fewshot_gui.gui.class_model import (
    CLASS_THUMB,
    EXAMPLE_THUMB,
    PATH_ROLE,
    ClassModel,
    ExampleModel,
)
from fewshot_gui.gui.edits import SessionEditor
from fewshot_gui.gui.hint_view import HintListView
from fewshot_gui.gui.results_model import RESULTS_MIME

Ask = Callable[[str, str], bool]  # (title, question) -> yes
# Examples are a few typical images; a drop of more than this onto one class is asked about.
MANY_EXAMPLES = 20


def ask_with_message_box(parent: QWidget) -> Ask:
    """An Ask that shows a Yes/No question over `parent`."""

    def ask(title: str, text: str) -> bool:
        answer = QMessageBox.question(parent, title, text)
        return answer == QMessageBox.StandardButton.Yes

    return ask


def local_paths(mime: QMimeData) -> list[Path]:
    """The local files named by a drop or the clipboard (file URLs only)."""
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


CLASSES_HINT = (
    "Drop a few example images of each class here,\nor a folder with one subfolder per class"
)


class _DropList(HintListView):
    """A list that takes file drops and result drops; `dropped(row, mime)`, row -1 for none."""

    dropped = Signal(int, QMimeData)
    deletePressed = Signal()

    def __init__(self, parent: QWidget | None = None, hint: str = "") -> None:
        super().__init__(parent, hint)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasFormat(RESULTS_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        index = self.indexAt(event.position().toPoint())
        self.dropped.emit(index.row() if index.isValid() else -1, event.mimeData())
        event.acceptProposedAction()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.deletePressed.emit()
            return
        super().keyPressEvent(event)


class ClassPanel(QWidget):
    """Classes above, the selected class's examples below; `message` goes to the status bar.

    `ask` puts a yes/no question to the person before a drop adds many examples at once.
    """

    message = Signal(str)
    resultsDropped = Signal(list, str)  # result paths dropped onto a class: a correction

    def __init__(
        self,
        editor: SessionEditor,
        examples: ExampleModel,
        parent: QWidget | None = None,
        ask: Ask | None = None,
    ):
        super().__init__(parent)
        self.ask = ask or ask_with_message_box(self)
        self.editor = editor
        self.classes: ClassModel = editor.classes
        self.example_model = examples

        self.class_list = _DropList(self, CLASSES_HINT)
        self.class_list.setModel(self.classes)
        self.class_list.setIconSize(QSize(CLASS_THUMB, CLASS_THUMB))
        self.class_list.setSpacing(2)
        self.class_list.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.class_list.setToolTip(
            "Drop images or folders onto a class to add examples; drop a folder of "
            "subfolders to make one class per subfolder. Double-click to rename."
        )
        self.example_list = _DropList(self)
        self.example_list.setModel(examples)
        self.example_list.setViewMode(QListView.ViewMode.IconMode)
        self.example_list.setIconSize(QSize(EXAMPLE_THUMB, EXAMPLE_THUMB))
        self.example_list.setGridSize(QSize(EXAMPLE_THUMB + 8, EXAMPLE_THUMB + 8))
        self.example_list.setUniformItemSizes(True)
        self.example_list.setResizeMode(QListView.ResizeMode.Adjust)
        self.example_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.example_list.setToolTip("Examples of the selected class; Delete removes the selected")
        self.example_list.setMovement(QListView.Movement.Static)

        self.examples_title = QLabel("Examples")
        buttons = QHBoxLayout()
        for text, tip, slot in (
            ("+ Class", "Add a class (Ctrl+Shift+N)", self.add_class),
            ("Add…", "Add example images to the selected class", self.add_from_dialog),
            ("Rename", "Rename the selected class (F2)", self.rename_selected),
            ("Delete", "Delete the selected class", self.delete_selected_class),
        ):
            button = QToolButton(self)
            button.setText(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        buttons.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.class_list, 2)
        layout.addWidget(self.examples_title)
        layout.addWidget(self.example_list, 3)

        self.class_list.dropped.connect(self._on_class_drop)
        self.example_list.dropped.connect(self._on_example_drop)
        self.class_list.deletePressed.connect(self.delete_selected_class)
        self.example_list.deletePressed.connect(self.delete_selected_examples)
        self.class_list.selectionModel().currentChanged.connect(self._on_current)
        self.classes.renameRequested.connect(self._on_rename)
        self.classes.modelReset.connect(self._keep_selection)
        self._on_current(QModelIndex(), QModelIndex())

    def current_class(self) -> str:
        index = self.class_list.currentIndex()
        return self.classes.names()[index.row()] if index.isValid() else ""

    def select_class(self, name: str) -> None:
        row = self.classes.row_of(name)
        if row >= 0:
            self.class_list.setCurrentIndex(self.classes.index(row))

    def add_class(self) -> str:
        name = self.editor.add_class()
        self.select_class(name)
        return name

    def add_files(self, paths: list[Path], target: str, *, confirm: bool = False) -> int:
        """Add dropped or pasted paths to the class `target` ('' for none); returns the count.

        With `confirm`, a drop that would add many examples to a class, or a folder's images to
        the class it was dropped on, is asked about first; declined, it adds nothing.
        """
        dropped = sort_dropped(paths, into_target=bool(target))
        groups = {
            name or target: list(dict.fromkeys(files)) for name, files in dropped.groups.items()
        }
        if confirm and not self._confirm(paths, target, groups):
            self.message.emit("Added no examples: the drop was declined")
            return 0
        already = {
            name: sum(path in have for path in files)
            for name, files in groups.items()
            if (have := set(self.classes.examples(self.classes.row_of(name))))
        }
        added = self.editor.add_examples(groups) if groups else 0
        self.message.emit(_added_message(added, groups, already, dropped))
        if groups and not self.current_class():
            self.select_class(next(iter(groups)))
        elif target:
            self.select_class(target)
        return added

    def _confirm(self, paths: list[Path], target: str, groups: dict[str, list[Path]]) -> bool:
        many = {name: len(files) for name, files in groups.items() if len(files) > MANY_EXAMPLES}
        into_target = groups.get(target, []) if target else []
        folders = [p for p in paths if p.is_dir() and any(f.is_relative_to(p) for f in into_target)]
        if not many and not folders:
            return True
        if folders:
            count = len(into_target)
            title = f"Add {count} example(s) to {target}?"
            what = f"the folder {folders[0].name}" + (" and more" if len(folders) > 1 else "")
            text = f"You dropped {what} on the class {target}: {count} image(s)."
        else:
            title = f"Add {sum(many.values())} examples?"
            counts = ", ".join(f"{n} to {name}" for name, n in many.items())
            text = f"This drop adds {counts}."
        text += (
            " A few typical images per class are enough for examples. To label a folder, "
            "drop it on the results instead. Add them all as examples?"
        )
        return self.ask(title, text)

    def add_from_dialog(self) -> None:
        target = self.current_class() or self.add_class()
        patterns = " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))
        files, _ = QFileDialog.getOpenFileNames(
            self, f"Add examples to {target}", "", f"Images ({patterns})"
        )
        if files:
            self.add_files([Path(f) for f in files], target)

    def paste(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        paths = local_paths(mime) if mime is not None else []
        if not paths:
            self.message.emit("The clipboard holds no files to paste")
            return
        self.add_files(paths, self.current_class(), confirm=True)

    def rename_selected(self) -> None:
        index = self.class_list.currentIndex()
        if index.isValid():
            self.class_list.edit(index)

    def delete_selected_class(self) -> None:
        name = self.current_class()
        if name:
            self.editor.delete_class(name)

    def delete_selected_examples(self) -> None:
        rows = self.example_list.selectionModel().selectedIndexes()
        paths = [index.data(PATH_ROLE) for index in rows]
        if paths and self.example_model.class_name:
            self.editor.remove_examples(self.example_model.class_name, paths)

    def _on_class_drop(self, row: int, mime: QMimeData) -> None:
        target = self.classes.names()[row] if row >= 0 else ""
        self._drop(mime, target)

    def _on_example_drop(self, _row: int, mime: QMimeData) -> None:
        self._drop(mime, self.example_model.class_name)

    def _drop(self, mime: QMimeData, target: str) -> None:
        if mime.hasFormat(RESULTS_MIME):
            paths = [Path(p) for p in bytes(mime.data(RESULTS_MIME).data()).decode().splitlines()]
            self.resultsDropped.emit(paths, target or self.add_class())
            return
        self.add_files(local_paths(mime), target, confirm=True)

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        name = self.classes.names()[current.row()] if current.isValid() else ""
        self.example_model.show_class(name)
        self.examples_title.setText(f"Examples of {name}" if name else "Examples")
        self.example_list.set_hint(
            f"Drop images here to add examples of {name}" if name else "Select a class"
        )

    def _on_rename(self, row: int, name: str) -> None:
        old = self.classes.names()[row]
        if self.editor.rename_class(old, name):
            self.select_class(name)
        else:
            self.message.emit(f"There is already a class named {name}")

    def _keep_selection(self) -> None:
        name = self.example_model.class_name
        if name in self.classes.names():
            self.select_class(name)
        elif self.classes.rowCount():
            self.class_list.setCurrentIndex(self.classes.index(0))
        else:
            self._on_current(QModelIndex(), QModelIndex())


def _added_message(
    added: int, groups: dict[str, list[Path]], already: dict[str, int], dropped: DroppedFiles
) -> str:
    """What a drop did, and why any of it was not added."""
    names = ", ".join(groups)
    sentences = [f"Added {added} example(s) to {names}" if added else "Added no examples"]
    for name, count in already.items():
        if count == len(groups[name]) and count:
            sentences.append(f"All {count} are already examples of {name}")
        elif count:
            sentences.append(f"{count} already example(s) of {name}")
    missing = [p for p in dropped.rejected if not p.exists()]
    folders = [p for p in dropped.rejected if p.is_dir()]
    others = [p for p in dropped.rejected if p not in missing and p not in folders]
    if others:
        kinds = ", ".join(sorted(s.lstrip(".").upper() for s in IMAGE_SUFFIXES))
        sentences.append(f"Not an image: {_names(others)} (images are {kinds})")
    if folders:
        sentences.append(f"No images found in {_names(folders)}")
    if missing:
        sentences.append(f"Not found: {_names(missing)}")
    if len(sentences) == 1 and not added:
        sentences.append("Nothing to add")
    return ". ".join(sentences)


def _names(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths[:3]) + ("…" if len(paths) > 3 else "")
