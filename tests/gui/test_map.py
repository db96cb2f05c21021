"""The folder map on a real window: laid out through the worker, a real rectangle and lasso
drag labels what they sweep as one undoable edit, a click selects in the grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from fewshot_gui.core.map_image import class_colour
from fewshot_gui.core.support import UNKNOWN

# The first layout imports openTSNE (and scikit-learn) on the job's thread: seconds alone,
# much longer on a machine busy with other work.
TIMEOUT = 120_000
LEFT, NO_KEYS = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier


def labels(window) -> dict[Path, str]:
    return dict(window.results.labeled_items())


def mapped(qtbot, window, pattern_class, tmp_path: Path) -> list[Path]:
    """A window with two classes of examples and a labeled folder, its map laid out."""
    pattern_class(tmp_path / "examples" / "circle", seed=1, count=3)
    pattern_class(tmp_path / "examples" / "square", seed=2, count=3)
    folder = pattern_class(tmp_path / "folder" / "a", seed=1, count=12, start=100)
    folder += pattern_class(tmp_path / "folder" / "b", seed=2, count=12, start=100)
    window.class_panel.add_files([tmp_path / "examples"], "")
    window.label_folder(tmp_path / "folder")
    qtbot.waitUntil(
        lambda: window.results.rowCount() == 24 and not window.client.labeling, timeout=TIMEOUT
    )
    window.map_dock.show()
    dock = window.map_dock
    shown = None
    while shown is None or dock.folder_map is not shown:  # the last layout, not the first
        shown = dock.folder_map
        qtbot.waitUntil(lambda: settled(dock), timeout=TIMEOUT)
        qtbot.wait(500)  # a placement the first map asked for may follow it
    return folder


def settled(dock) -> bool:
    """A map is shown and nothing is on its way that could lay it out or place points again
    (a later map has other rows than the one a test read its points from)."""
    busy = dock.jobs is None or dock.jobs.busy or dock._refresh_timer.isActive()
    return dock.folder_map is not None and not busy


def drag(qtbot, plot, points: list[QPoint]) -> None:
    """A real press, moves with the button held, and a release, on the plot's viewport.
    QTest's moves carry no buttons, so those are sent as QMouseEvents."""
    viewport = plot.viewport()
    qtbot.mousePress(viewport, LEFT, NO_KEYS, points[0])
    for point in points[1:]:
        global_point = QPointF(viewport.mapToGlobal(point))
        move = QMouseEvent(
            QEvent.Type.MouseMove,
            QPointF(point),
            global_point,
            Qt.MouseButton.NoButton,
            LEFT,
            NO_KEYS,
        )
        QApplication.sendEvent(viewport, move)
    qtbot.mouseRelease(viewport, LEFT, NO_KEYS, points[-1])


def on_screen(plot, xy: np.ndarray) -> np.ndarray:
    """Viewport pixel positions (n, 2) of map points (n, 2)."""
    found = []
    for x, y in xy:
        scene = plot.box.mapViewToScene(QPointF(float(x), float(y)))
        found.append(plot.mapFromScene(scene).toTuple())
    return np.array(found, np.float64)


def assert_drawn(window, plot) -> None:
    """Each image's point is painted in its label's colour where the map puts it, in a
    grab of the whole window (the plot painted at its place in it, as on screen); points
    within a few pixels of another are left out, as one may cover the other."""
    image = window.grab().toImage()
    screen = on_screen(plot, plot.xy)
    apart = np.hypot(*(screen[:, None, :] - screen[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(apart, np.inf)
    # A point's stamp reaches 4 pixels; an example's diamond 6.
    near_example = apart[:, plot.examples].min(1) if plot.examples.any() else apart.min(1)
    alone = np.flatnonzero((apart.min(1) > 5) & (near_example > 7) & ~plot.examples)
    assert len(alone) >= 3
    for row in alone:
        at = plot.viewport().mapTo(window, QPoint(*np.rint(screen[row]).astype(int)))
        pixel = image.pixelColor(at)
        assert pixel.getRgb()[:3] == class_colour(int(plot.codes[row]))


def menu_action(menu, text: str):
    actions = [a for a in menu.actions() if text in a.text().replace("&", "")]
    for sub in (a.menu() for a in menu.actions() if a.menu()):
        actions += [a for a in sub.actions() if text in a.text().replace("&", "")]
    assert len(actions) == 1, [a.text() for a in menu.actions()]
    return actions[0]


def test_a_rectangle_makes_a_new_class_in_one_undoable_edit(
    qtbot, make_window, pattern_class, tmp_path
):
    window = make_window()
    folder = mapped(qtbot, window, pattern_class, tmp_path)
    dock, stack = window.map_dock, window.editor.undo_stack
    plot = dock.panel.plot
    folder_map = dock.folder_map
    assert set(folder) <= set(folder_map.paths)  # and the six examples
    assert len(folder_map) == 30 and int(dock.panel.plot.shown.sum()) == 30
    assert_drawn(window, plot)

    screen = on_screen(plot, folder_map.xy)
    # A rectangle over the left half of the points (by their place on screen).
    left, right = screen[:, 0].min() - 4, np.median(screen[:, 0])
    top, bottom = screen[:, 1].min() - 4, screen[:, 1].max() + 4
    inside = (screen[:, 0] > left) & (screen[:, 0] < right)
    inside &= (screen[:, 1] > top) & (screen[:, 1] < bottom)
    swept = {folder_map.paths[i] for i in np.flatnonzero(inside)}
    assert 0 < len(swept) < 30
    dock.panel.mode_buttons.buttons()[1].click()  # Rectangle
    corners = [QPoint(round(left), round(top)), QPoint(round((left + right) / 2), round(top))]
    corners.append(QPoint(round(right), round(bottom)))
    drag(qtbot, plot, corners)
    assert set(dock.panel.selected_paths()) == swept

    before, steps = labels(window), stack.count()
    menu = dock.panel.selection_menu()
    menu_action(menu, "a new class (class 3)").trigger()
    assert stack.count() == steps + 1  # one edit, however many images
    assert window.classes.names() == ["circle", "square", "class 3"]
    after = labels(window)
    assert all(after[p] == "class 3" for p in swept if p in after)
    assert folder_map is dock.folder_map  # a correction re-colours; it lays out nothing
    swept_rows = [folder_map.row_of()[p] for p in swept]
    # Each swept image is now an example of the new class: a diamond in its colour.
    qtbot.waitUntil(lambda: (plot.codes[swept_rows] == 2).all(), timeout=TIMEOUT)
    assert plot.examples[swept_rows].all()
    assert len(plot._examples.data) == int(plot.examples.sum())
    brushes = {b.color().getRgb()[:3] for b in plot._examples.data["brush"]}
    assert class_colour(2) in brushes

    stack.undo()
    assert window.classes.names() == ["circle", "square"] and labels(window) == before

    # A new example from elsewhere is placed on the map; nothing already there moves.
    new = pattern_class(tmp_path / "more", seed=2, count=1, start=500)
    window.editor.add_examples({"square": new})
    qtbot.waitUntil(lambda: len(dock.folder_map) == 31, timeout=TIMEOUT)
    placed = dock.folder_map
    assert placed.paths[:30] == folder_map.paths and placed.paths[30] == new[0]
    np.testing.assert_array_equal(placed.xy[:30], folder_map.xy)


def test_a_lasso_marks_unknown_and_clicks_pick_in_the_grid(
    qtbot, make_window, pattern_class, tmp_path
):
    window = make_window()
    folder = mapped(qtbot, window, pattern_class, tmp_path)
    dock, plot = window.map_dock, window.map_dock.panel.plot
    folder_map = dock.folder_map
    rows = [folder_map.row_of()[p] for p in folder]
    screen = on_screen(plot, folder_map.xy)

    # Click one labeled image: the grid selects it.
    target = rows[5]
    qtbot.mouseClick(plot.viewport(), LEFT, NO_KEYS, QPoint(*np.rint(screen[target]).astype(int)))
    assert window.results_panel.selected_paths() == [folder_map.paths[target]]
    # And the grid's selection shows on the map.
    qtbot.waitUntil(lambda: plot.selection.tolist() == [target], timeout=TIMEOUT)

    # A lasso: a small square drawn around one image's point sweeps what lies in it (on the
    # map as it is now: showing the pick in the grid may have had new points placed).
    qtbot.waitUntil(lambda: settled(dock), timeout=TIMEOUT)
    picked, folder_map = folder_map.paths[target], dock.folder_map
    target = folder_map.row_of()[picked]
    screen = on_screen(plot, folder_map.xy)
    cx, cy = np.rint(screen[target])
    dock.panel.mode_buttons.buttons()[2].click()  # Lasso
    outline = [(cx - 3, cy - 3), (cx + 3, cy - 3), (cx + 3, cy + 3), (cx - 3, cy + 3)]
    drag(qtbot, plot, [QPoint(round(a), round(b)) for a, b in [*outline, outline[0]]])
    near = {folder_map.paths[i] for i in np.flatnonzero((abs(screen - (cx, cy)) < 3).all(1))}
    assert folder_map.paths[target] in near and len(near) < len(screen)
    assert set(dock.panel.selected_paths()) == near
    steps = window.editor.undo_stack.count()
    menu_action(dock.panel.selection_menu(), f"none of these ({UNKNOWN})").trigger()
    assert window.editor.undo_stack.count() == steps + 1
    assert all(labels(window)[p] == UNKNOWN for p in near)
