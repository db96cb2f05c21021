"""Drops, labeling, cancel, corrections with undo, and the threshold, on a real window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from fewshot_gui.core.paths import resources_dir
from fewshot_gui.core.support import UNKNOWN
from fewshot_gui.gui.results_model import CONFIDENCE_ROLE, LABEL_ROLE

TIMEOUT = 20_000


def drop(widget, paths: list[Path], at: QPoint, mime: QMimeData | None = None) -> None:
    """Deliver a real drag-enter and drop of file URLs, as a file manager does."""
    if mime is None:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    actions = Qt.DropAction.CopyAction
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(at, actions, mime, buttons, modifiers)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(widget, QDropEvent(QPointF(at), actions, mime, buttons, modifiers))


def row_point(view, row: int) -> QPoint:
    return view.visualRect(view.model().index(row, 0)).center()


def has(label: str):
    return lambda predictions: any(p.label == label for p in predictions)


def lacks(label: str):
    return lambda predictions: all(p.label != label for p in predictions)


def labels(window) -> dict[Path, str]:
    return {p: label for p, label in window.results.labeled_items()}


def with_two_classes(window, pattern_class, root: Path) -> None:
    window.class_panel.add_files([root / "examples"], "")
    assert window.classes.names() == ["circle", "square"]


def make_examples(pattern_class, root: Path) -> None:
    pattern_class(root / "examples" / "circle", seed=1, count=3)
    pattern_class(root / "examples" / "square", seed=2, count=3)


def label_to_the_end(qtbot, window, folder: Path, count: int) -> None:
    window.label_folder(folder)
    qtbot.waitUntil(
        lambda: window.results.rowCount() == count and not window.client.labeling, timeout=TIMEOUT
    )


def test_drops_of_files_and_folders_onto_a_class(qtbot, make_window, pattern_class, tmp_path):
    window = make_window(wait=False)
    panel = window.class_panel
    name = panel.add_class()
    files = pattern_class(tmp_path / "loose", seed=1, count=2)
    note = tmp_path / "notes.txt"
    note.write_text("not an image")
    drop(panel.class_list.viewport(), [*files, note], row_point(panel.class_list, 0))
    assert window.classes.examples(0) == files
    assert "Not an image: notes.txt" in window.statusBar().currentMessage()
    assert panel.example_list.model().rowCount() == 2

    make_examples(pattern_class, tmp_path)
    drop(panel.class_list.viewport(), [tmp_path / "examples"], QPoint(5, 300))
    assert window.classes.names() == [name, "circle", "square"]
    assert len(window.classes.examples(1)) == 3

    panel.select_class(name)
    panel.example_list.setCurrentIndex(panel.example_list.model().index(0, 0))
    qtbot.keyClick(panel.example_list, Qt.Key.Key_Delete)
    assert window.classes.examples(0) == files[1:]


def test_labels_a_folder_and_reviews_least_sure_first(qtbot, make_window, pattern_class, tmp_path):
    make_examples(pattern_class, tmp_path)
    circles = pattern_class(tmp_path / "unlabeled" / "a", seed=1, count=15, start=100)
    squares = pattern_class(tmp_path / "unlabeled" / "b", seed=2, count=15, start=100)
    window = make_window()
    with_two_classes(window, pattern_class, tmp_path)
    window.threshold.enabled.setChecked(False)
    label_to_the_end(qtbot, window, tmp_path / "unlabeled", 30)
    qtbot.waitUntil(lambda: "Labeled 30 of 30" in window.statusBar().currentMessage())
    found = labels(window)
    assert all(found[p] == "circle" for p in circles)
    assert all(found[p] == "square" for p in squares)
    report = window.classes.index(0).data(Qt.ItemDataRole.UserRole + 2)
    assert report is not None and report.examples == 3
    assert "leave-one-out" in window.classes.index(0).data(Qt.ItemDataRole.DisplayRole)

    proxy = window.results_panel.proxy
    order = [proxy.index(r, 0).data(CONFIDENCE_ROLE) for r in range(proxy.rowCount())]
    assert order == sorted(order)
    window.results_panel.set_filter("square")
    assert proxy.rowCount() == 15
    assert {proxy.index(r, 0).data(LABEL_ROLE) for r in range(15)} == {"square"}


def test_cancel_in_the_middle(qtbot, make_window, pattern_class, tmp_path):
    make_examples(pattern_class, tmp_path)
    pattern_class(tmp_path / "many", seed=3, count=300)
    window = make_window(batch_size=2)
    with_two_classes(window, pattern_class, tmp_path)
    window.label_folder(tmp_path / "many")
    qtbot.waitUntil(lambda: window.results.rowCount() > 0, timeout=TIMEOUT)
    assert window.work.cancel_button.isVisible()
    qtbot.mouseClick(window.work.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.client.labeling, timeout=TIMEOUT)
    assert "Cancelled after" in window.statusBar().currentMessage()
    assert 0 < window.results.rowCount() < 300
    assert not window.work.cancel_button.isVisible()


def test_a_correction_relabels_the_rest_and_undoes(qtbot, make_window, pattern_class, tmp_path):
    make_examples(pattern_class, tmp_path)
    triangles = pattern_class(tmp_path / "unlabeled", seed=7, count=10)
    window = make_window()
    with_two_classes(window, pattern_class, tmp_path)
    window.threshold.enabled.setChecked(False)
    label_to_the_end(qtbot, window, tmp_path / "unlabeled", 10)
    assert set(labels(window).values()) <= {"circle", "square"}
    window.editor.add_class("triangle")

    view = window.results_panel.view
    view.setFocus()
    view.setCurrentIndex(window.results_panel.proxy.index(0, 0))
    corrected = window.results_panel.selected_paths()
    with qtbot.waitSignal(
        window.client.relabeled, timeout=TIMEOUT, check_params_cb=has("triangle")
    ):
        qtbot.keyClick(view, "3")
    assert window.editor.corrections == {corrected[0]: "triangle"}
    assert window.classes.examples(2) == corrected
    assert set(labels(window).values()) == {"triangle"}
    assert all(labels(window)[p] == "triangle" for p in triangles)

    with qtbot.waitSignal(
        window.client.relabeled, timeout=TIMEOUT, check_params_cb=lacks("triangle")
    ):
        window.editor.undo_stack.undo()
    assert window.editor.corrections == {}
    assert set(labels(window).values()) <= {"circle", "square"}
    with qtbot.waitSignal(
        window.client.relabeled, timeout=TIMEOUT, check_params_cb=has("triangle")
    ):
        window.editor.undo_stack.redo()
    assert set(labels(window).values()) == {"triangle"}


def test_dragging_a_result_onto_a_class_corrects_it(qtbot, make_window, pattern_class, tmp_path):
    make_examples(pattern_class, tmp_path)
    pattern_class(tmp_path / "unlabeled", seed=1, count=4, start=50)
    window = make_window()
    with_two_classes(window, pattern_class, tmp_path)
    label_to_the_end(qtbot, window, tmp_path / "unlabeled", 4)
    source = window.results.index(0, 0)
    mime = window.results.mimeData([source])
    target = window.class_panel.class_list
    with qtbot.waitSignal(window.client.relabeled, timeout=TIMEOUT):
        drop(target.viewport(), [], row_point(target, 1), mime)
    path = source.data(Qt.ItemDataRole.UserRole + 1)
    assert window.editor.corrections == {path: "square"}
    assert labels(window)[path] == "square"


def test_the_threshold_moves_images_to_unknown(qtbot, make_window, pattern_class, tmp_path):
    make_examples(pattern_class, tmp_path)
    pattern_class(tmp_path / "unlabeled", seed=1, count=8, start=50)
    window = make_window()
    with_two_classes(window, pattern_class, tmp_path)
    window.threshold.enabled.setChecked(False)
    label_to_the_end(qtbot, window, tmp_path / "unlabeled", 8)
    assert UNKNOWN not in labels(window).values()
    window.threshold.enabled.setChecked(True)
    with qtbot.waitSignal(window.client.relabeled, timeout=TIMEOUT, check_params_cb=has(UNKNOWN)):
        window.threshold.slider.setValue(0)
    assert set(labels(window).values()) == {UNKNOWN}
    window.results_panel.set_filter(UNKNOWN)
    assert window.results_panel.proxy.rowCount() == 8
    top = window.threshold.slider.maximum()
    with qtbot.waitSignal(window.client.relabeled, timeout=TIMEOUT, check_params_cb=lacks(UNKNOWN)):
        window.threshold.slider.setValue(top)
    assert set(labels(window).values()) == {"circle"}
    assert window.results_panel.proxy.rowCount() == 0


def test_labeling_again_after_the_model_has_adapted(qtbot, make_window, pattern_class, tmp_path):
    make_examples(pattern_class, tmp_path)
    pattern_class(tmp_path / "first", seed=1, count=3, start=50)
    pattern_class(tmp_path / "second", seed=2, count=5, start=50)
    window = make_window()
    with qtbot.waitSignal(window.client.supportReady, timeout=TIMEOUT):
        with_two_classes(window, pattern_class, tmp_path)
    # The support set is unchanged, so nothing else would start these runs.
    label_to_the_end(qtbot, window, tmp_path / "first", 3)
    label_to_the_end(qtbot, window, tmp_path / "second", 5)
    window.label_again()  # clears the grid, then fills it again
    qtbot.waitUntil(lambda: window.results.rowCount() == 5, timeout=TIMEOUT)


def test_a_model_that_does_not_suit_the_examples_says_so(qtbot, make_window, tmp_path):
    window = make_window()  # the tiny handwriting (Conv-4, grayscale) model
    photos = resources_dir() / "demo" / "examples"
    drop(window.class_panel.class_list.viewport(), [photos], QPoint(5, 300))
    assert window.classes.names() == ["cup", "dalmatian", "ferry", "motorbike"]
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=TIMEOUT)
    qtbot.waitUntil(lambda: "photo model" in window.banner.text.text(), timeout=TIMEOUT)
