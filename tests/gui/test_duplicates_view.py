"""The "duplicates" filter on a real window: groups found by the real worker thread with the
default photo model, shown side by side; the export that keeps one file per group."""

from __future__ import annotations

import csv
from pathlib import Path

from PySide6.QtCore import Qt

from fewshot_gui.core.checkpoint import DEFAULT_MODEL
from fewshot_gui.gui.export_dialog import ExportDialog
from fewshot_gui.gui.results_model import DUPLICATES_FILTER, PATH_ROLE
from tests.duplicate_images import scene, write_duplicate_set

TIMEOUT = 60_000  # the photo model, on a shared CPU


def test_duplicates_filter_shows_the_groups_and_export_keeps_one_per_group(
    qtbot, make_window, tmp_path: Path
) -> None:
    found = write_duplicate_set(tmp_path / "photos")
    for name, seed, box in (("mug", 20, (60, 50, 150, 200)), ("field", 21, (10, 10, 40, 40))):
        (tmp_path / "examples" / name).mkdir(parents=True)
        scene(seed, box).save(tmp_path / "examples" / name / f"{name}.png")
    window = make_window(model=DEFAULT_MODEL, wait=False)
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=TIMEOUT)
    window.class_panel.add_files([tmp_path / "examples"], "")
    window.threshold.enabled.setChecked(False)
    window.label_folder(tmp_path / "photos")
    qtbot.waitUntil(
        lambda: window.results.rowCount() == 11 and not window.client.labeling, timeout=TIMEOUT
    )
    panel = window.results_panel

    panel.set_filter(DUPLICATES_FILTER)
    # The search runs on the worker: the GUI thread is back at once, nothing shown yet.
    assert panel.proxy.rowCount() == 0 and panel.view.hint.startswith("Looking for duplicates")
    qtbot.waitUntil(lambda: panel.proxy.rowCount() == 8, timeout=TIMEOUT)

    shown = [panel.proxy.index(row, 0).data(PATH_ROLE) for row in range(8)]
    mug = {found.photo, *found.near_copies}
    street = {found.exact_source, found.exact_copy}
    # Group by group, numbered in the order their first files were labeled.
    first, second = sorted([mug, street], key=lambda g: min(map(window.results.row_of, g)))
    assert set(shown[: len(first)]) == first and set(shown[len(first) :]) == second
    assert panel.count.text() == "8 of 11"
    assert panel.filter.currentText() == "duplicates (8)"
    tip = panel.proxy.index(0, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert "duplicate group" in tip

    dialog = ExportDialog(window.results, None, window)
    qtbot.addWidget(dialog)
    dialog.manifest_path.setText(str(tmp_path / "labels.csv"))
    dialog.files_box.setChecked(True)
    dialog.include_unknown.setChecked(True)
    dialog.destination.setText(str(tmp_path / "sorted"))
    assert dialog.one_per_group.isEnabled()
    dialog.one_per_group.setChecked(True)
    with qtbot.waitSignal(dialog.exported, timeout=TIMEOUT):
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)

    files = (tmp_path / "sorted").rglob("*")
    exported = sorted(p.name for p in files if p.is_file() and not p.name.startswith("."))
    kept_street = [name for name in exported if name.startswith("street")]
    assert len(kept_street) == 1
    others = [*found.others, found.same_object, found.photo]  # the mug keeps its largest file
    assert sorted([*kept_street, *(p.name for p in others)]) == exported
    with (tmp_path / "labels.csv").open(newline="") as stream:
        listed = [Path(row["path"]) for row in csv.DictReader(stream)]
    assert len(listed) == 5 and not set(listed) & set(found.near_copies)
