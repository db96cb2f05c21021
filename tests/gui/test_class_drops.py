"""Drops and pastes of files on the class panel: the guard against big drops, and the reasons
a drop added fewer examples than it held. Real widgets, real drop events, real image files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication

from fewshot_gui.gui.class_model import ClassModel, ExampleModel
from fewshot_gui.gui.class_panel import MANY_EXAMPLES, ClassPanel
from fewshot_gui.gui.edits import SessionEditor
from fewshot_gui.gui.thumbnails import ThumbnailCache


class Asker:
    """Answers the panel's questions with `answer`, and keeps them."""

    def __init__(self) -> None:
        self.answer = False
        self.questions: list[tuple[str, str]] = []

    def __call__(self, title: str, text: str) -> bool:
        self.questions.append((title, text))
        return self.answer


@pytest.fixture
def asker() -> Asker:
    return Asker()


@pytest.fixture
def panel(qtbot, asker: Asker) -> Iterator[ClassPanel]:
    thumbnails = ThumbnailCache()
    classes = ClassModel(thumbnails)
    editor, examples = SessionEditor(classes), ExampleModel(classes, thumbnails)
    panel = ClassPanel(editor, examples, ask=asker)
    for owned in (thumbnails, classes, editor, examples):  # die with the panel, not before it
        owned.setParent(panel)
    panel.messages = []  # type: ignore[attr-defined]
    panel.message.connect(panel.messages.append)  # type: ignore[attr-defined]
    qtbot.addWidget(panel)
    panel.resize(300, 500)
    panel.show()
    yield panel
    thumbnails.wait()


def drop(panel: ClassPanel, paths: list[Path], row: int = -1) -> None:
    """A file manager's drag-enter and drop of `paths` on class `row` (-1: below the classes)."""
    view = panel.class_list
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    if row >= 0:
        at = view.visualRect(panel.classes.index(row)).center()
    else:
        at = QPoint(5, view.viewport().height() - 5)
    actions = Qt.DropAction.CopyAction
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(at, actions, mime, buttons, modifiers)
    QApplication.sendEvent(view.viewport(), enter)
    assert enter.isAccepted()
    QApplication.sendEvent(
        view.viewport(), QDropEvent(QPointF(at), actions, mime, buttons, modifiers)
    )


def last_message(panel: ClassPanel) -> str:
    return panel.messages[-1]  # type: ignore[attr-defined]


def test_many_files_on_a_class_ask_first(panel, asker, pattern_class, tmp_path) -> None:
    panel.add_class()
    files = pattern_class(tmp_path / "photos", seed=1, count=MANY_EXAMPLES + 1)
    drop(panel, files, row=0)
    ((title, text),) = asker.questions
    assert "21" in title and "21 to class 1" in text
    assert panel.classes.examples(0) == []
    assert "declined" in last_message(panel)

    asker.answer = True
    drop(panel, files, row=0)
    assert panel.classes.examples(0) == files
    assert len(asker.questions) == 2


def test_twenty_files_go_in_without_a_question(panel, asker, pattern_class, tmp_path) -> None:
    panel.add_class()
    files = pattern_class(tmp_path / "photos", seed=1, count=MANY_EXAMPLES)
    drop(panel, files, row=0)
    assert not asker.questions
    assert panel.classes.examples(0) == files
    assert last_message(panel) == "Added 20 example(s) to class 1"


def test_a_folder_of_images_on_a_class_asks_first(panel, asker, pattern_class, tmp_path) -> None:
    panel.add_class()
    files = pattern_class(tmp_path / "holiday", seed=1, count=3)
    drop(panel, [tmp_path / "holiday"], row=0)
    ((title, text),) = asker.questions
    assert "class 1" in title and "folder holiday" in text
    assert panel.classes.examples(0) == []

    asker.answer = True
    drop(panel, [tmp_path / "holiday"], row=0)
    assert sorted(panel.classes.examples(0)) == files


def test_a_big_folder_below_the_classes_asks_first(panel, asker, pattern_class, tmp_path) -> None:
    pattern_class(tmp_path / "unlabeled", seed=1, count=MANY_EXAMPLES + 5)
    drop(panel, [tmp_path / "unlabeled"])
    ((title, text),) = asker.questions
    assert "25" in title and "25 to unlabeled" in text
    assert panel.classes.rowCount() == 0


def test_a_folder_of_class_folders_makes_classes_unasked(panel, asker, pattern_class, tmp_path):
    pattern_class(tmp_path / "examples" / "circle", seed=1, count=3)
    pattern_class(tmp_path / "examples" / "square", seed=2, count=3)
    drop(panel, [tmp_path / "examples"])
    assert not asker.questions
    assert panel.classes.names() == ["circle", "square"]


def test_a_big_paste_asks_first(panel, asker, pattern_class, tmp_path) -> None:
    panel.add_class()
    files = pattern_class(tmp_path / "photos", seed=1, count=MANY_EXAMPLES + 2)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in files])
    clipboard = QGuiApplication.clipboard()
    clipboard.setMimeData(mime)
    try:
        panel.paste()
    finally:
        # The clipboard owns `mime` now; left there, Python and Qt both free it at exit.
        clipboard.clear()
    assert len(asker.questions) == 1
    assert panel.classes.examples(0) == []


def test_adding_nothing_says_why(panel, asker, pattern_class, tmp_path) -> None:
    panel.add_class()
    files = pattern_class(tmp_path / "photos", seed=1, count=3)
    drop(panel, files, row=0)
    drop(panel, files, row=0)
    assert last_message(panel) == "Added no examples. All 3 are already examples of class 1"

    drop(panel, [*files, *pattern_class(tmp_path / "more", seed=1, count=1)], row=0)
    assert last_message(panel) == ("Added 1 example(s) to class 1. 3 already example(s) of class 1")

    note = tmp_path / "notes.txt"
    note.write_text("not an image")
    (tmp_path / "empty").mkdir()
    gone = tmp_path / "gone.png"
    drop(panel, [note, tmp_path / "empty", gone], row=0)
    message = last_message(panel)
    assert message.startswith("Added no examples. Not an image: notes.txt (images are ")
    assert message.endswith(". No images found in empty. Not found: gone.png")
    assert not asker.questions
    assert len(panel.classes.examples(0)) == 4
