"""The export dialog on a real labeled window: choices kept across restarts, links, unreadable
files kept out of the class folders, and the undo state read from the journal, also after a
session is reopened, also after a full disk stopped the export. About lists the engines."""

from __future__ import annotations

import csv
import errno
import os
import shutil
from importlib.metadata import version
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMenu

from fewshot_gui.core.engines import ENGINE_CHOICES
from fewshot_gui.core.export_undo import journal_state
from fewshot_gui.core.support import UNKNOWN
from fewshot_gui.gui.about import about_text
from fewshot_gui.gui.export_dialog import ExportDialog

TIMEOUT = 20_000


def labeled_window(qtbot, make_window, pattern_class, root: Path):
    """A window that labeled 8 pattern images and one file that is no image at all."""
    pattern_class(root / "examples" / "circle", seed=1, count=3)
    pattern_class(root / "examples" / "square", seed=2, count=3)
    images = [
        *pattern_class(root / "unlabeled", seed=1, count=4, start=50),
        *pattern_class(root / "unlabeled", seed=2, count=4, start=60),
    ]
    broken = root / "unlabeled" / "broken.png"
    broken.write_bytes(b"this is not a PNG")
    window = make_window()
    window.class_panel.add_files([root / "examples"], "")
    window.threshold.enabled.setChecked(False)
    window.label_folder(root / "unlabeled")
    qtbot.waitUntil(
        lambda: window.results.rowCount() == 9 and not window.client.labeling, timeout=TIMEOUT
    )
    assert dict(window.results.labeled_items())[broken] == ""
    return window, images, broken


def file_menu(window) -> QMenu:
    (menu,) = [a.menu() for a in window.menuBar().actions() if a.text() == "&File"]
    return menu


def undo_offered(window) -> bool:
    file_menu(window).aboutToShow.emit()
    return window.undo_export_action.isEnabled()


def export(qtbot, dialog: ExportDialog) -> Path:
    with qtbot.waitSignal(dialog.exported, timeout=TIMEOUT) as exported:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    return exported.args[0]


def test_links_keep_unreadable_files_out_and_choices_survive_a_restart(
    qtbot, make_window, pattern_class, tmp_path
):
    window, images, broken = labeled_window(qtbot, make_window, pattern_class, tmp_path)
    window.threshold.enabled.setChecked(True)
    with qtbot.waitSignal(
        window.client.relabeled,
        timeout=TIMEOUT,
        check_params_cb=lambda ps: all(p.label == UNKNOWN for p in ps if not p.error),
    ):
        window.threshold.slider.setValue(0)  # every readable image is unknown now
    dialog = ExportDialog(window.results, None, window, meta={"model": "tiny"})
    qtbot.addWidget(dialog)
    sorted_to = tmp_path / "sorted"
    dialog.manifest_path.setText(str(tmp_path / "labels.csv"))
    dialog.files_box.setChecked(True)
    dialog.destination.setText(str(sorted_to))
    dialog.mode.setCurrentIndex(dialog.mode.findData("link"))
    dialog.include_unknown.setChecked(True)
    assert dialog.plan_model.rowCount() == 8
    assert "8 files will be linked" in dialog.status.text()
    assert "1 unreadable file(s) stay where they are" in dialog.status.text()
    journal = export(qtbot, dialog)

    linked = sorted((sorted_to / UNKNOWN).iterdir())
    assert [p.name for p in linked] == sorted(p.name for p in images)
    assert all(p.is_symlink() and Path(os.readlink(p)).parent == broken.parent for p in linked)
    assert not any(p.name == broken.name for p in sorted_to.rglob("*"))
    with open(tmp_path / "labels.csv", encoding="utf-8") as stream:
        rows = {r["path"]: r for r in csv.DictReader(stream)}
    assert rows[str(broken)]["label"] == "" and rows[str(broken)]["error"]
    assert journal_state(journal) == "exported"
    window.close()

    again = make_window(wait=False)
    reopened = ExportDialog(again.results, None, again)
    qtbot.addWidget(reopened)
    assert reopened.destination.text() == str(sorted_to)
    assert reopened.mode.currentData() == "link"
    assert reopened.files_box.isChecked() and reopened.include_unknown.isChecked()
    assert reopened.manifest_path.text() == str(tmp_path / "labels.csv")


def test_undo_is_offered_only_while_the_export_stands(qtbot, make_window, pattern_class, tmp_path):
    window, images, _broken = labeled_window(qtbot, make_window, pattern_class, tmp_path)
    assert not undo_offered(window)
    window.open_export()
    dialog = window.findChild(ExportDialog)
    dialog.manifest_box.setChecked(False)
    dialog.files_box.setChecked(True)
    dialog.destination.setText(str(tmp_path / "sorted"))
    journal = export(qtbot, dialog)
    dialog.close()
    assert window.last_journal == journal
    assert undo_offered(window)
    standing = tmp_path / "standing.fewshot.json"
    assert window.sessions.save(standing)

    window.undo_export_action.trigger()  # File ▸ Undo Last Export
    qtbot.waitUntil(lambda: journal_state(journal) == "undone", timeout=TIMEOUT)
    assert not any((tmp_path / "sorted").rglob("*.png"))
    assert all(p.exists() for p in images)
    assert not undo_offered(window)
    undone = tmp_path / "undone.fewshot.json"
    assert window.sessions.save(undone)
    window.close()

    again = make_window()
    for session in (standing, undone):  # both files name the journal, which is now undone
        assert again.sessions.open(session)
        assert again.last_journal == journal
        assert not undo_offered(again)
        reopened = ExportDialog(again.results, again.last_journal, again)
        qtbot.addWidget(reopened)
        assert not reopened.undo_button.isEnabled()


def test_a_reopened_session_offers_undo_of_an_export_that_stands(
    qtbot, make_window, pattern_class, tmp_path
):
    window, _images, _broken = labeled_window(qtbot, make_window, pattern_class, tmp_path)
    dialog = ExportDialog(window.results, None, window)
    qtbot.addWidget(dialog)
    dialog.manifest_box.setChecked(False)
    dialog.files_box.setChecked(True)
    dialog.destination.setText(str(tmp_path / "sorted"))
    dialog.exported.connect(window._on_exported)
    journal = export(qtbot, dialog)
    assert window.sessions.save(tmp_path / "work.fewshot.json")
    window.close()

    again = make_window()
    assert again.sessions.open(tmp_path / "work.fewshot.json")
    assert again.last_journal == journal and undo_offered(again)
    reopened = ExportDialog(again.results, again.last_journal, again)
    qtbot.addWidget(reopened)
    assert reopened.undo_button.isEnabled()
    with qtbot.waitSignal(reopened.undone, timeout=TIMEOUT):
        qtbot.mouseClick(reopened.undo_button, Qt.MouseButton.LeftButton)
    assert not reopened.undo_button.isEnabled()
    assert "Undid the export" in reopened.status.text()


def test_about_lists_every_engine_with_its_version():
    text = about_text()
    for choice in set(ENGINE_CHOICES) - {"auto"}:
        assert choice in text
    for name, distribution in (
        ("PyTorch", "torch"),
        ("ONNX Runtime", "onnxruntime"),
        ("OpenVINO", "openvino"),
    ):
        assert f"<td>{name}</td><td>{version(distribution)}</td>" in text


def test_an_export_stopped_by_a_full_disk_can_be_undone(
    qtbot, make_window, pattern_class, tmp_path, monkeypatch
):
    window, images, _broken = labeled_window(qtbot, make_window, pattern_class, tmp_path)
    window.open_export()
    dialog = window.findChild(ExportDialog)
    dialog.manifest_box.setChecked(False)
    dialog.files_box.setChecked(True)
    dialog.destination.setText(str(tmp_path / "sorted"))
    real_copy, copies = shutil.copyfileobj, []

    def copyfileobj(reader, writer, length: int = 0) -> None:
        if len(copies) == 3:  # the disk fills up on the fourth file
            writer.write(reader.read(100))
            raise OSError(errno.ENOSPC, "No space left on device")
        copies.append(reader.name)
        real_copy(reader, writer, length)

    monkeypatch.setattr(shutil, "copyfileobj", copyfileobj)
    journal = export(qtbot, dialog)
    assert "disk filled up" in dialog.status.text()
    assert len(list((tmp_path / "sorted").rglob("*.png"))) == 3
    assert dialog.undo_button.isEnabled() and window.last_journal == journal
    assert undo_offered(window)
    monkeypatch.setattr(shutil, "copyfileobj", real_copy)

    with qtbot.waitSignal(dialog.undone, timeout=TIMEOUT):
        qtbot.mouseClick(dialog.undo_button, Qt.MouseButton.LeftButton)
    assert journal_state(journal) == "undone"
    assert not any((tmp_path / "sorted").rglob("*.png"))
    assert all(p.exists() for p in images)
