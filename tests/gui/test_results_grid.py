"""The results grid on real widgets: columns merged by path, review order, filters, corrections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QStyleOptionViewItem

from fewshot_gui.core.predictions import ERROR_INDEX, UNKNOWN_INDEX, Labels, Prediction
from fewshot_gui.core.support import UNKNOWN
from fewshot_gui.gui.class_model import ClassModel
from fewshot_gui.gui.edits import SessionEditor
from fewshot_gui.gui.results_model import (
    CONFIDENCE_ROLE,
    CORRECTED_FILTER,
    ERROR_FILTER,
    LABEL_ROLE,
    PATH_ROLE,
    ResultsModel,
)
from fewshot_gui.gui.results_panel import LINE_BREAK, ResultsPanel
from fewshot_gui.gui.review_order import ReviewOrder
from fewshot_gui.gui.thumbnails import ThumbnailCache

NAMES = ("bass", "crab")


def labels(paths: list[Path], label: list[int], confidence: list[float], **extra) -> Labels:
    """Labels as the labeler sends them: nearest is the label or 0; novelty 1 - confidence."""
    n = len(paths)
    label_array = np.array(label, np.int64)
    return Labels(
        paths=list(paths),
        class_names=extra.pop("class_names", NAMES),
        label=label_array,
        nearest=np.maximum(label_array, 0),
        confidence=np.array(confidence, np.float32),
        runner_up=np.full(n, ERROR_INDEX),
        runner_up_confidence=np.zeros(n, np.float32),
        novelty=1 - np.array(confidence, np.float32),
        errors=extra.pop("errors", [""] * n),
        **extra,
    )


@pytest.fixture
def thumbnails(qtbot):
    cache = ThumbnailCache()
    yield cache
    cache.wait()


@pytest.fixture
def panel(qtbot, thumbnails):
    classes = ClassModel(thumbnails)
    classes.restore(tuple((name, ()) for name in NAMES))
    results = ResultsModel(thumbnails)
    panel = ResultsPanel(results, classes, thumbnails)
    panel.editor = SessionEditor(classes)
    panel.correctRequested.connect(panel.editor.correct)
    panel.editor.changed.connect(lambda: results.set_corrections(panel.editor.corrections))
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    return panel


def shown(panel) -> list[str]:
    proxy = panel.proxy
    return [proxy.index(row, 0).data(PATH_ROLE).name for row in range(proxy.rowCount())]


def select(panel, *rows: int) -> None:
    selection = panel.view.selectionModel()
    for row in rows:
        flag = QItemSelectionModel.SelectionFlag.Select
        selection.setCurrentIndex(panel.proxy.index(row, 0), flag)


def test_add_merges_by_path_and_updates_only_changed_rows(qtbot, thumbnails, tmp_path):
    model = ResultsModel(thumbnails)
    a, b, c, d = (tmp_path / f"{name}.png" for name in "abcd")
    inserted, updated, resets = [], [], []
    model.rowsInserted.connect(lambda _p, first, last: inserted.append((first, last)))
    model.rowsUpdated.connect(lambda rows: updated.append(rows.tolist()))
    model.modelReset.connect(lambda: resets.append(True))

    model.add(labels([a, b], [0, 1], [0.9, 0.8]))
    # A new batch names its classes in another order: labels follow the names, not the index.
    model.add(
        labels([b, c, d], [0, 1, UNKNOWN_INDEX], [0.8, 0.7, 0.3], class_names=("crab", "bass"))
    )
    assert inserted == [(0, 1), (2, 3)]
    assert updated == []  # b came again with the same label and confidence
    assert [p for p, _ in model.labeled_items()] == [a, b, c, d]
    assert dict(model.labeled_items()) == {a: "bass", b: "crab", c: "bass", d: UNKNOWN}

    model.add(labels([a, b, c, d], [0, 1, 1, 0], [0.9, 0.8, 0.6, 0.5]))
    assert updated == [[2, 3]] and resets == [] and inserted == [(0, 1), (2, 3)]
    assert dict(model.labeled_items())[c] == "crab"
    assert model.index(3).data(Qt.ItemDataRole.DisplayRole) == "d.png\nbass 50%"
    np.testing.assert_allclose(model.novelties(), [0.1, 0.2, 0.4, 0.5], rtol=1e-6)


def test_old_predictions_and_errors_and_pins(qtbot, thumbnails, tmp_path):
    model = ResultsModel(thumbnails)
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    model.add(
        [
            Prediction(good, "bass", 0.75, "crab", 0.2, 0.1, nearest="bass", pinned=True),
            Prediction(bad, "", 0.0, "", 0.0, 0.0, "cannot identify image file"),
        ]
    )
    assert dict(model.labeled_items()) == {good: "bass", bad: ""}
    assert model.predictions()[0].pinned and model.predictions()[0].runner_up == "crab"
    assert model.predictions()[1].error == "cannot identify image file"
    assert model.index(1).data(LABEL_ROLE) == ERROR_FILTER
    assert "could not be read" in model.index(1).data(Qt.ItemDataRole.ToolTipRole)
    np.testing.assert_allclose(model.novelties(), [0.1])
    # The file became readable: the error goes with the next labels.
    model.add(labels([bad], [1], [0.6], pinned=np.array([False])))
    assert dict(model.labeled_items())[bad] == "crab"
    assert model.effective_predictions()[1].error == ""


def test_review_order_sorts_least_sure_first_with_corrections_last(panel, tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(5)]
    panel.model.add(labels(paths, [0, 1, ERROR_INDEX, 0, UNKNOWN_INDEX], [0.9, 0.5, 0.0, 0.7, 0.2]))
    assert shown(panel) == ["2.png", "4.png", "1.png", "3.png", "0.png"]
    keys = [panel.proxy.index(r, 0).data(CONFIDENCE_ROLE) for r in range(5)]
    assert keys == sorted(keys)

    panel.model.set_corrections({paths[4]: "crab", paths[0]: UNKNOWN})
    assert shown(panel) == ["2.png", "1.png", "3.png", "0.png", "4.png"]
    assert panel.proxy.index(4, 0).data(Qt.ItemDataRole.DisplayRole) == "4.png\n✓ crab"
    assert panel.proxy.index(3, 0).data(LABEL_ROLE) == UNKNOWN

    panel.review.setCurrentIndex(panel.review.findData("labeled"))
    assert shown(panel) == [f"{i}.png" for i in range(5)]


def test_filters_show_counts_and_masks(panel, tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(6)]
    panel.model.add(
        labels(
            paths,
            [0, 0, 1, UNKNOWN_INDEX, UNKNOWN_INDEX, ERROR_INDEX],
            [0.9, 0.8, 0.7, 0.3, 0.2, 0.0],
            errors=["", "", "", "", "", "truncated"],
        )
    )
    panel.model.set_corrections({paths[3]: "crab"})
    entries = [panel.filter.itemText(row) for row in range(panel.filter.count())]
    assert entries == [
        "All images (6)",
        "bass (2)",
        "crab (2)",
        "unknown (1)",
        "unreadable (1)",
        "labeled by you (1)",
        "duplicates (0)",
    ]
    for value, expected in [
        ("crab", ["2.png", "3.png"]),
        (UNKNOWN, ["4.png"]),
        (ERROR_FILTER, ["5.png"]),
        (CORRECTED_FILTER, ["3.png"]),
        ("bass", ["1.png", "0.png"]),
    ]:
        panel.set_filter(value)
        assert shown(panel) == expected, value
        assert panel.count.text() == f"{len(expected)} of 6"

    # A relabel moves 1.png from bass to crab: it leaves the filter without a reset.
    resets = []
    panel.proxy.modelReset.connect(lambda: resets.append(True))
    panel.model.add(labels(paths[:2], [0, 1], [0.9, 0.8]))
    assert shown(panel) == ["0.png"] and resets == []
    assert panel.filter.itemText(1) == "bass (1)"


def test_a_relabel_keeps_the_selection_and_changes_only_changed_rows(panel, tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(6)]
    confidence = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    panel.model.add(labels(paths, [0] * 6, confidence))
    select(panel, 1, 4)
    assert panel.selected_paths() == [paths[1], paths[4]]

    changed, resets = [], []
    panel.proxy.dataChanged.connect(lambda top, bottom: changed.append((top.row(), bottom.row())))
    panel.proxy.modelReset.connect(lambda: resets.append(True))
    panel.model.add(labels(paths, [0] * 6, [0.1, 0.2, 0.35, 0.4, 0.5, 0.6]))
    assert changed == [(2, 2)] and resets == []

    # A new order is a layout change: the selection stays on its images.
    panel.model.add(labels(paths, [0] * 6, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]))
    assert shown(panel) == ["5.png", "4.png", "3.png", "2.png", "1.png", "0.png"]
    assert sorted(panel.selected_paths()) == [paths[1], paths[4]]
    assert panel.view.currentIndex().data(PATH_ROLE) == paths[4]
    assert resets == []

    # Most rows leaving at once reset the view, and the selection comes back.
    panel.set_filter("bass")
    panel.model.add(labels(paths, [1, 0, 1, 1, 0, 1], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]))
    assert shown(panel) == ["4.png", "1.png"]
    assert sorted(panel.selected_paths()) == [paths[1], paths[4]]


def test_streamed_rows_join_the_order_throttled(qtbot, thumbnails, tmp_path):
    results = ResultsModel(thumbnails)
    order = ReviewOrder(results, throttle_rows=0, throttle_ms=300)
    paths = [tmp_path / f"{i}.png" for i in range(48)]
    for start in range(0, 48, 16):
        batch = paths[start : start + 16]
        results.add(labels(batch, [0] * 16, np.linspace(0.9, 0.1, 16)))
    assert results.rowCount() == 48
    assert order.rowCount() == 16  # the first batch at once, the others wait for the throttle
    qtbot.waitUntil(lambda: order.rowCount() == 48, timeout=2000)
    keys = [order.index(r).data(CONFIDENCE_ROLE) for r in range(48)]
    assert keys == sorted(keys)


def test_none_of_these_by_key_0_and_by_the_context_menu(qtbot, panel, tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    panel.editor.add_examples({"bass": [paths[2]]})
    panel.model.add(labels(paths, [0, 1, 0], [0.3, 0.4, 0.5]))
    panel.view.setFocus()
    select(panel, 0)
    qtbot.keyClick(panel.view, Qt.Key.Key_0)
    assert panel.editor.corrections == {paths[0]: UNKNOWN}
    assert panel.editor.classes.names() == list(NAMES)
    assert panel.proxy.index(2, 0).data(Qt.ItemDataRole.DisplayRole) == "0.png\n✓ unknown"

    menu = panel.context_menu([paths[2]])
    label_as = next(a.menu() for a in menu.actions() if a.menu() is not None)
    none = next(a for a in label_as.actions() if "None of these" in a.text())
    none.trigger()
    assert panel.editor.corrections == {paths[0]: UNKNOWN, paths[2]: UNKNOWN}
    assert panel.editor.classes.examples(0) == []  # no longer an example of bass
    assert UNKNOWN not in panel.editor.classes.names()

    # A class correction still makes an example; key 2 is the second class.
    select(panel, 0)
    panel.view.selectionModel().clearSelection()
    panel.view.selectionModel().select(
        panel.proxy.index(0, 0), QItemSelectionModel.SelectionFlag.Select
    )
    qtbot.keyClick(panel.view, Qt.Key.Key_2)
    assert panel.editor.corrections[paths[1]] == "crab"
    assert panel.editor.classes.examples(1) == [paths[1]]
    panel.editor.undo_stack.undo()
    panel.editor.undo_stack.undo()
    assert panel.editor.classes.examples(0) == [paths[2]]
    assert panel.editor.corrections == {paths[0]: UNKNOWN}


def test_tiles_show_file_names_elided_in_the_middle(panel, tmp_path):
    short = tmp_path / "bass.png"
    long = tmp_path / ("a_very_long_file_name_from_a_camera_" * 3 + "0417.jpg")
    panel.model.add(labels([short, long], [0, 0], [0.5, 0.6]))
    texts = []
    for row in range(2):
        index = panel.proxy.index(row, 0)
        option = QStyleOptionViewItem()
        option.rect = panel.view.visualRect(index)
        option.fontMetrics = panel.view.fontMetrics()
        panel.view.itemDelegate().initStyleOption(option, index)
        texts.append(option.text.split(LINE_BREAK))
    assert texts[0] == ["bass.png", "bass 50%"]
    name, verdict = texts[1]
    assert verdict == "bass 60%" and "…" in name and name.endswith("0417.jpg")
    assert panel.view.fontMetrics().horizontalAdvance(name) <= panel.view.gridSize().width()


def test_only_tiles_in_view_load_thumbnails(qtbot, panel, pattern_class, tmp_path):
    paths = pattern_class(tmp_path / "many", seed=1, count=300)
    loaded: list[str] = []
    panel.thumbnails.ready.connect(loaded.append)
    panel.model.add(labels(paths, [0] * 300, np.linspace(0.1, 0.9, 300)))
    rows = panel.visible_rows()
    assert 0 < len(rows) < 60
    in_view = {str(paths[panel.order.source_row(r)]) for r in rows}
    qtbot.waitUntil(lambda: set(loaded) >= in_view, timeout=10_000)
    qtbot.wait(100)
    assert set(loaded) == in_view  # nothing beyond the tiles drawn

    # Scrolled past the middle to the end before the middle loaded: the middle is dropped.
    def paths_in_view() -> set[str]:
        panel.view.viewport().repaint()  # paints, and so requests, without running the loop
        return {str(paths[panel.order.source_row(r)]) for r in panel.visible_rows()}

    loaded.clear()
    panel.view.scrollTo(panel.proxy.index(150, 0))
    middle = paths_in_view()
    panel.view.scrollToBottom()
    at_end = paths_in_view()
    assert middle - at_end and set(panel.thumbnails.pending(112)) & middle
    panel.retain_visible_thumbnails()
    assert set(panel.thumbnails.pending(112)) <= at_end
    qtbot.waitUntil(lambda: set(loaded) >= at_end, timeout=10_000)
    qtbot.wait(100)
    assert len(set(loaded) & middle) <= 4  # those a thread had already begun
