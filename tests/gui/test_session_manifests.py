"""Same inputs, same labels: the app's manifest, a reopened session's, and `fewshot label
--session` on the saved file are identical."""

from __future__ import annotations

from pathlib import Path

from fewshot_gui.cli import main as fewshot
from fewshot_gui.gui.export_dialog import ExportDialog

TIMEOUT = 20_000


def export_manifest(qtbot, window, path: Path) -> str:
    dialog = ExportDialog(window.results, None, window, {})
    qtbot.addWidget(dialog)
    dialog.manifest_box.setChecked(True)
    dialog.manifest_path.setText(str(path))
    dialog.files_box.setChecked(False)
    with qtbot.waitSignal(dialog.exported, timeout=TIMEOUT):
        dialog.export()
    return path.read_text(encoding="utf-8")


def settled(qtbot, window, count: int) -> None:
    qtbot.waitUntil(
        lambda: window.results.rowCount() == count and not window.client.labeling, timeout=TIMEOUT
    )


def test_the_app_a_reopened_session_and_the_cli_write_the_same_manifest(
    qtbot, make_window, pattern_class, tmp_path
):
    pattern_class(tmp_path / "examples" / "circle", seed=1, count=3)
    pattern_class(tmp_path / "examples" / "square", seed=2, count=3)
    circles = pattern_class(tmp_path / "unlabeled", seed=1, count=6, start=50)
    pattern_class(tmp_path / "unlabeled", seed=2, count=6, start=60)
    window = make_window()
    window.class_panel.add_files([tmp_path / "examples"], "")
    window.label_folder(tmp_path / "unlabeled")
    settled(qtbot, window, 12)
    with qtbot.waitSignal(window.client.relabeled, timeout=TIMEOUT):
        window.editor.correct([circles[0]], "square")
    with qtbot.waitSignal(window.client.relabeled, timeout=TIMEOUT):
        window.editor.correct([circles[1]], "unknown")
    session = tmp_path / "work.fewshot.json"
    assert window.sessions.save(session)
    in_app = export_manifest(qtbot, window, tmp_path / "app.csv")
    window.close()

    reopened = make_window()
    assert reopened.sessions.open(session)
    settled(qtbot, reopened, 12)
    qtbot.waitUntil(lambda: reopened.results.rowCount() == 12, timeout=TIMEOUT)
    assert export_manifest(qtbot, reopened, tmp_path / "reopened.csv") == in_app

    reopened.label_again()
    qtbot.waitUntil(lambda: reopened.client.labeling, timeout=TIMEOUT)
    settled(qtbot, reopened, 12)
    assert export_manifest(qtbot, reopened, tmp_path / "again.csv") == in_app

    out = tmp_path / "cli.csv"
    args = ["label", "--session", str(session), "--out", str(out), "--engine", "torch"]
    assert fewshot([*args, "--device", "cpu", "--batch-size", "8"]) == 0
    assert out.read_text(encoding="utf-8") == in_app
    assert ",square," in in_app and ",unknown," in in_app
