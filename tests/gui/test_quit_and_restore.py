"""Quitting answers within 2 s in every phase, and the next launch brings the work back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from fewshot_gui.core.predictions import Labels
from fewshot_gui.core.session import Session, load_session, save_session
from fewshot_gui.gui.app import preload
from fewshot_gui.gui.export_dialog import ExportDialog

TIMEOUT = 20_000
QUIT_S = 2.0


def labels(window) -> dict[Path, str]:
    return {p: label for p, label in window.results.labeled_items()}


def examples_and_folder(pattern_class, root: Path, count: int = 8) -> Path:
    pattern_class(root / "examples" / "circle", seed=1, count=3)
    pattern_class(root / "examples" / "square", seed=2, count=3)
    pattern_class(root / "unlabeled", seed=1, count=count // 2, start=50)
    pattern_class(root / "unlabeled", seed=2, count=count - count // 2, start=60)
    return root / "unlabeled"


def label_all(qtbot, window, folder: Path, count: int) -> None:
    window.label_folder(folder)
    qtbot.waitUntil(
        lambda: window.results.rowCount() == count and not window.client.labeling, timeout=TIMEOUT
    )


def timed_close(window) -> float:
    started = time.perf_counter()
    window.close()
    return time.perf_counter() - started


# --- restore ---------------------------------------------------------------------------


def test_a_relaunch_restores_the_last_session_and_its_labels(
    qtbot, make_window, pattern_class, tmp_path
):
    folder = examples_and_folder(pattern_class, tmp_path)
    window = make_window()
    window.class_panel.add_files([tmp_path / "examples"], "")
    window.threshold.set_mode(0.9)
    label_all(qtbot, window, folder, 8)
    wrong = next(p for p, label in labels(window).items() if label != "unknown")
    with qtbot.waitSignal(window.client.relabeled, timeout=TIMEOUT):  # the labels it gives
        window.editor.correct([wrong], "unknown")
    before = labels(window)
    assert before[wrong] == "unknown"
    window.close()

    again = make_window()
    assert again.classes.names() == ["circle", "square"]
    assert again.folder == folder and again.threshold.mode == 0.9
    assert again.editor.corrections == {wrong: "unknown"}
    assert again.model_name == window.model_name
    qtbot.waitUntil(
        lambda: again.results.rowCount() == 8 and not again.client.labeling, timeout=TIMEOUT
    )
    qtbot.waitUntil(lambda: labels(again) == before, timeout=TIMEOUT)  # the same labels
    again.label_again()
    qtbot.waitUntil(lambda: again.client.labeling, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: not again.client.labeling, timeout=TIMEOUT)
    assert labels(again) == before


def test_a_crash_still_brings_the_session_back(qtbot, make_window, pattern_class, tmp_path):
    examples = pattern_class(tmp_path / "ex" / "leaf", seed=1, count=2)
    others = pattern_class(tmp_path / "ex" / "rock", seed=2, count=2)
    pattern_class(tmp_path / "unlabeled", seed=1, count=5, start=40)
    # What a session left that was killed after its last change was kept.
    kept = Session([("leaf", examples), ("rock", others)], tmp_path / "unlabeled", {}, 0.5)
    save_session(tmp_path / "last.fewshot.json", kept)
    window = make_window()
    assert window.classes.names() == ["leaf", "rock"]
    assert window.threshold.mode == 0.5
    qtbot.waitUntil(lambda: window.results.rowCount() == 5, timeout=TIMEOUT)
    window.editor.add_class("moss")
    qtbot.waitUntil(
        lambda: "moss" in [n for n, _ in load_session(window.sessions.last_path).classes],
        timeout=TIMEOUT,
    )


def test_the_demo_shows_on_the_first_launch_only(qtbot, make_window):
    nothing = Namespace(session=None, support=None, images=None)
    first = make_window()
    assert first.first_launch
    preload(first, nothing)
    assert first.classes.names()  # the demo's classes
    assert first.folder is not None and first.folder.name == "unlabeled"
    first.close()

    second = make_window()
    assert not second.first_launch
    preload(second, nothing)
    assert second.classes.names() == first.classes.names()  # the last session, not a new demo
    second.new_session()
    assert second.classes.rowCount() == 0 and second.folder is None
    assert second.results.rowCount() == 0 and not second.editor.corrections
    second.close()

    third = make_window()
    preload(third, nothing)
    assert third.classes.rowCount() == 0  # File ▸ New Session is what comes back
    third.open_demo()
    assert third.classes.names() == first.classes.names()


# --- quit within 2 s -------------------------------------------------------------------


def test_quit_while_labeling(qtbot, make_window, pattern_class, tmp_path):
    pattern_class(tmp_path / "examples" / "a", seed=1, count=2)
    pattern_class(tmp_path / "many", seed=3, count=400)
    window = make_window(batch_size=2)
    window.class_panel.add_files([tmp_path / "examples"], "")
    window.label_folder(tmp_path / "many")
    qtbot.waitUntil(lambda: window.results.rowCount() > 0, timeout=TIMEOUT)
    assert window.client.labeling
    thread = window.client._thread
    assert timed_close(window) < QUIT_S
    assert thread.isFinished() and not window.quit_unfinished
    kept = load_session(tmp_path / "last.fewshot.json")
    assert [name for name, _ in kept.classes] == ["a"] and kept.folder == tmp_path / "many"


def test_quit_while_exporting_loses_no_file(qtbot, make_window, pattern_class, tmp_path):
    (image,) = pattern_class(tmp_path / "one", seed=1, count=1)
    folder = tmp_path / "unlabeled"
    folder.mkdir()
    sources = {}
    for i in range(1500):  # each move's journal line is fsynced: seconds in all
        path = folder / f"photo-{i:04d}.png"
        path.write_bytes(image.read_bytes() + i.to_bytes(2, "big"))
        sources[path.name] = path.read_bytes()
    window = make_window()
    paths = sorted(folder.iterdir())
    n = len(paths)
    window.results.add(
        Labels(
            paths=paths,
            class_names=("circle",),
            label=np.zeros(n, np.int64),
            nearest=np.zeros(n, np.int64),
            confidence=np.ones(n, np.float32),
            runner_up=np.full(n, -2, np.int64),
            runner_up_confidence=np.zeros(n, np.float32),
            novelty=np.zeros(n, np.float32),
            errors=[""] * n,
        )
    )
    dialog = ExportDialog(window.results, None, window, {})
    dialog.manifest_box.setChecked(False)
    dialog.files_box.setChecked(True)
    dialog.destination.setText(str(tmp_path / "sorted"))
    dialog.mode.setCurrentIndex(dialog.mode.findData("move"))
    dialog.export()
    qtbot.waitUntil(lambda: any((tmp_path / "sorted").rglob("*.png")), timeout=TIMEOUT)
    assert dialog.job.running, dialog.status.text()
    assert timed_close(window) < QUIT_S
    assert not window.quit_unfinished
    # Every file is whole, at its source or at its destination, and nowhere else.
    moved = {p.name: p.read_bytes() for p in (tmp_path / "sorted").rglob("*.png")}
    left = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert moved and left and not set(moved) & set(left)
    assert {**moved, **left} == sources


QUIT_IN_PHASE = """
import sys, time
from PySide6.QtCore import QTimer
from fewshot_gui.gui import app, main_window

phase = sys.argv[1]
original_start = main_window.MainWindow.start

def close_now(window):
    print(f"closing {time.monotonic()}", file=sys.stderr, flush=True)
    window.close()

def start(window):
    original_start(window)
    if phase == "model load":  # the worker is importing torch and loading the model
        close_now(window)
        return
    def when_measuring():  # the engines are being timed in their child process
        if "preparing the model" in window.work.device_label.text():
            close_now(window)
        else:
            QTimer.singleShot(50, when_measuring)
    when_measuring()

main_window.MainWindow.start = start
sys.exit(app.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("phase", ["model load", "engine timing"])
def test_quit_in_a_phase_that_cannot_be_interrupted(phase, tiny_model, tmp_path):
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        **{name: str(tmp_path / name.lower()) for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME")},
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", QUIT_IN_PHASE, phase, "--model", str(tiny_model)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert process.stderr is not None
    closing = None
    for line in process.stderr:
        if line.startswith("closing "):
            closing = float(line.split()[1])
            break
    assert closing is not None, process.stderr.read()
    process.wait(timeout=30)
    assert time.monotonic() - closing < QUIT_S + 0.5  # the process is gone, not just hidden
    assert process.returncode == 0
    kept = json.loads(
        (tmp_path / "xdg_data_home" / "fewshot-gui" / "last.fewshot.json").read_text()
    )
    assert kept["model"] == str(tiny_model)
    engines = tmp_path / "xdg_cache_home" / "fewshot-gui" / "engines"
    assert not list(engines.glob(".*.tmp")) if engines.exists() else True  # nothing half written
    time.sleep(0.5)
    assert not processes_with(str(tmp_path)), "a child process outlived the app"


def processes_with(marker: str) -> list[int]:
    """Processes whose environment mentions `marker` (this test's own folders)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours
            continue
    return found
