"""Export through the dialog, sessions saved and reopened, crash recovery, failures, quitting."""

from __future__ import annotations

import csv
import json
from argparse import Namespace
from pathlib import Path

from PySide6.QtCore import QSettings, Qt

from fewshot_gui.core.session import load_session
from fewshot_gui.gui.about import about_text
from fewshot_gui.gui.app import build_parser, preload
from fewshot_gui.gui.export_dialog import ExportDialog

TIMEOUT = 20_000


def labeled_window(qtbot, make_window, pattern_class, root: Path, **options):
    pattern_class(root / "examples" / "circle", seed=1, count=3)
    pattern_class(root / "examples" / "square", seed=2, count=3)
    circles = pattern_class(root / "unlabeled", seed=1, count=4, start=50)
    squares = pattern_class(root / "unlabeled", seed=2, count=4, start=60)
    window = make_window(**options)
    window.class_panel.add_files([root / "examples"], "")
    window.threshold.enabled.setChecked(False)
    window.label_folder(root / "unlabeled")
    qtbot.waitUntil(
        lambda: window.results.rowCount() == 8 and not window.client.labeling, timeout=TIMEOUT
    )
    return window, circles, squares


def test_export_through_the_dialog_and_undo(qtbot, make_window, pattern_class, tmp_path):
    window, circles, squares = labeled_window(qtbot, make_window, pattern_class, tmp_path)
    window.editor.correct([circles[0]], "square")
    qtbot.waitUntil(lambda: window.results.labeled_items()[0][1] in ("circle", "square"))
    dialog = ExportDialog(window.results, None, window, meta={"model": "tiny"})
    qtbot.addWidget(dialog)
    dialog.manifest_path.setText(str(tmp_path / "labels.csv"))
    dialog.files_box.setChecked(True)
    dialog.destination.setText(str(tmp_path / "sorted"))
    assert dialog.plan_model.rowCount() == 8
    assert not (tmp_path / "sorted").exists()  # the preview touches nothing
    with qtbot.waitSignal(dialog.exported, timeout=TIMEOUT) as exported:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    journal = exported.args[0]
    assert journal is not None and journal.exists()
    with open(tmp_path / "labels.csv", encoding="utf-8") as stream:
        rows = {r["path"]: r["label"] for r in csv.DictReader(stream)}
    assert rows[str(circles[0])] == "square"
    assert rows[str(circles[1])] == "circle"
    assert sorted(p.name for p in (tmp_path / "sorted" / "square").iterdir()) == sorted(
        p.name for p in [circles[0], *squares]
    )
    assert all(p.exists() for p in circles)  # copied, not moved

    assert dialog.undo_button.isEnabled()
    with qtbot.waitSignal(dialog.undone, timeout=TIMEOUT):
        qtbot.mouseClick(dialog.undo_button, Qt.MouseButton.LeftButton)
    assert not (tmp_path / "sorted" / "square").exists()
    assert "Undid the export" in dialog.status.text()


def test_json_manifest_keeps_the_meta(qtbot, make_window, pattern_class, tmp_path):
    window, _circles, _squares = labeled_window(qtbot, make_window, pattern_class, tmp_path)
    dialog = ExportDialog(window.results, None, window, meta={"model": "tiny"})
    qtbot.addWidget(dialog)
    dialog.manifest_path.setText(str(tmp_path / "labels.json"))
    with qtbot.waitSignal(dialog.exported, timeout=TIMEOUT):
        dialog.export()
    document = json.loads((tmp_path / "labels.json").read_text())
    assert document["meta"] == {"model": "tiny"} and len(document["results"]) == 8


def test_save_and_reopen_a_session(qtbot, make_window, pattern_class, tmp_path):
    window, circles, _squares = labeled_window(qtbot, make_window, pattern_class, tmp_path)
    window.editor.correct([circles[0]], "square")
    path = tmp_path / "work.fewshot.json"
    assert window.sessions.save(path)
    saved = load_session(path)
    assert saved.corrections == {circles[0]: "square"}
    assert saved.threshold == "off" and saved.folder == tmp_path / "unlabeled"
    window.close()

    again = make_window()
    assert again.sessions.recent() == [path]
    assert again.sessions.open(path)
    qtbot.waitUntil(
        lambda: again.results.rowCount() == 8 and not again.client.labeling, timeout=TIMEOUT
    )
    assert again.classes.names() == ["circle", "square"]
    assert again.editor.corrections == {circles[0]: "square"}
    assert dict(again.results.labeled_items())[circles[0]] == "square"
    assert again.threshold.mode == "off"


def test_a_worker_failure_shows_a_message(qtbot, make_window, tmp_path):
    window = make_window(model=str(tmp_path / "missing-model"), wait=False)
    qtbot.waitUntil(lambda: bool(window.last_error), timeout=TIMEOUT)
    assert "could not be loaded" in window.last_error
    assert "missing-model" in window.banner.text.text()
    assert window.banner.isVisible()


def test_window_geometry_is_restored(qtbot, make_window, settings_path):
    window = make_window(wait=False)
    window.resize(700, 500)
    window.close()
    assert QSettings(str(settings_path), QSettings.Format.IniFormat).value("window/geometry")
    again = make_window(wait=False)
    assert (again.width(), again.height()) == (700, 500)
    assert not again.banner.isVisible() or "Drag" not in again.banner.text.text()


def test_first_run_hint_and_about(make_window):
    window = make_window(wait=False)
    assert window.banner.isVisible() and "Drag a few example images" in window.banner.text.text()
    assert "LGPL-3.0" in about_text() and "PyTorch" in about_text()


def test_command_line_preloads_examples_and_images(qtbot, make_window, pattern_class, tmp_path):
    pattern_class(tmp_path / "examples" / "circle", seed=1, count=2)
    pattern_class(tmp_path / "examples" / "square", seed=2, count=2)
    pattern_class(tmp_path / "images", seed=2, count=3, start=9)
    args = build_parser().parse_args(
        ["--support", str(tmp_path / "examples"), "--images", str(tmp_path / "images")]
    )
    window = make_window()
    preload(window, args)
    assert window.classes.names() == ["circle", "square"]
    assert not window.editor.undo_stack.canUndo()
    qtbot.waitUntil(lambda: window.results.rowCount() == 3, timeout=TIMEOUT)
    assert set(dict(window.results.labeled_items()).values()) <= {"square", "unknown"}
    assert isinstance(args, Namespace)
