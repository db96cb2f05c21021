"""The labeling worker on its real thread with a tiny real model and real image files."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fewshot_gui.core.support import UNKNOWN
from fewshot_gui.workers.labeling_client import Adaptation, LabelingClient

TIMEOUT = 20_000


@pytest.fixture
def client(qtbot, tmp_path: Path):
    made = LabelingClient(cache_dir=tmp_path / "cache", device="cpu", batch_size=4, engine="torch")
    yield made
    assert made.shutdown()


@pytest.fixture
def support(tmp_path: Path, pattern_class) -> dict[str, list[Path]]:
    return {
        "circle": pattern_class(tmp_path / "ex" / "circle", seed=1, count=3),
        "square": pattern_class(tmp_path / "ex" / "square", seed=2, count=3),
    }


def ready(
    qtbot, client: LabelingClient, model: Path, support: dict[str, list[Path]], unknown="auto"
):
    with qtbot.waitSignal(client.modelLoaded, timeout=TIMEOUT) as loaded:
        client.load_model(str(model))
    with qtbot.waitSignal(client.supportReady, timeout=TIMEOUT) as report:
        client.adapt(Adaptation(support, {}, unknown))
    return loaded.args[0], report.args[0]


def flat(batches: list) -> list:
    """The predictions of a progress signal's batches (each a Labels)."""
    return [prediction for labels in batches for prediction in labels]


def test_labels_a_folder_to_the_end(qtbot, pattern_class, client, tiny_model, support, tmp_path):
    folder = tmp_path / "unlabeled"
    circles = pattern_class(folder / "a", seed=1, count=20, start=100)
    squares = pattern_class(folder / "b", seed=2, count=20, start=100)
    info, report = ready(qtbot, client, tiny_model, support, unknown="off")
    assert info.name == "tiny" and info.device.startswith("CPU")
    assert [c.name for c in report.classes] == ["circle", "square"]
    received = []
    client.labelProgress.connect(lambda _progress, new: received.extend(flat(new)))
    with qtbot.waitSignal(client.labelFinished, timeout=TIMEOUT) as finished:
        client.label(folder)
    summary = finished.args[0]
    assert (summary.total, summary.labeled, summary.cancelled) == (40, 40, False)
    by_path = {p.path: p.label for p in received}
    assert set(by_path) == set(circles + squares)
    assert all(by_path[p] == "circle" for p in circles)
    assert all(by_path[p] == "square" for p in squares)
    assert not client.labeling


def test_cancel_in_the_middle(qtbot, pattern_class, client, tiny_model, support, tmp_path):
    folder = tmp_path / "many"
    pattern_class(folder, seed=3, count=400)
    ready(qtbot, client, tiny_model, support)
    received = []

    def on_progress(progress, new):
        received.extend(flat(new))
        client.cancel()

    client.labelProgress.connect(on_progress)
    with qtbot.waitSignal(client.labelFinished, timeout=TIMEOUT) as finished:
        client.label(folder)
    summary = finished.args[0]
    assert summary.cancelled
    assert 0 < len(received) < 400
    assert summary.labeled + summary.unknown + summary.errors == len(received)


def test_a_cancel_stops_the_folder_walk_itself(
    qtbot, pattern_class, client, tiny_model, support, tmp_path, monkeypatch
):
    from fewshot_gui.workers import labeling_worker

    pattern_class(tmp_path / "big", seed=3, count=50)
    walked: list[Path] = []
    real_walk = labeling_worker.iter_image_files

    def walk_then_cancel(root: Path):
        for path in real_walk(root):
            walked.append(path)
            if len(walked) == 3:
                client.cancel()  # as the Cancel button does, while 100,000 files are walked
            yield path

    monkeypatch.setattr(labeling_worker, "iter_image_files", walk_then_cancel)
    ready(qtbot, client, tiny_model, support)
    with qtbot.waitSignal(client.labelFinished, timeout=TIMEOUT) as finished:
        client.label(tmp_path / "big")
    summary = finished.args[0]
    assert len(walked) <= 4  # the walk stopped at the cancel, not at the 50th file
    assert summary.cancelled and summary.total <= 3


def test_a_newer_run_drops_the_stale_one(
    qtbot, pattern_class, client, tiny_model, support, tmp_path
):
    old = pattern_class(tmp_path / "old", seed=3, count=200)
    new = pattern_class(tmp_path / "new", seed=4, count=30)
    ready(qtbot, client, tiny_model, support)
    received = []
    client.labelProgress.connect(lambda _p, batches: received.extend(flat(batches)))
    with qtbot.waitSignal(client.labelFinished, timeout=TIMEOUT) as finished:
        client.label(tmp_path / "old")
        client.label(tmp_path / "new")
    assert finished.args[0].total == 30
    assert {p.path for p in received} == set(new)
    assert not set(old) & {p.path for p in received}


def test_threshold_and_support_relabel_from_the_cache(
    qtbot, pattern_class, client, tiny_model, support, tmp_path
):
    folder = tmp_path / "unlabeled"
    pattern_class(folder, seed=5, count=12)
    ready(qtbot, client, tiny_model, support)
    with qtbot.waitSignal(client.labelFinished, timeout=TIMEOUT):
        client.label(folder)
    with qtbot.waitSignal(client.relabeled, timeout=TIMEOUT) as relabeled:
        client.set_unknown(0.0)
    assert len(relabeled.args[0]) == 12
    assert {p.label for p in relabeled.args[0]} == {UNKNOWN}
    new_class = pattern_class(tmp_path / "ex" / "third", seed=5, count=2, start=500)
    with qtbot.waitSignal(client.relabeled, timeout=TIMEOUT) as relabeled:
        client.adapt(Adaptation({**support, "third": new_class}, {}, "off"))
    assert {p.label for p in relabeled.args[0]} == {"third"}


def test_failures_arrive_as_messages(qtbot, pattern_class, client, tiny_model, tmp_path):
    with qtbot.waitSignal(client.failed, timeout=TIMEOUT) as failed:
        client.label(tmp_path)
    assert failed.args[0] == "label" and "No model" in failed.args[1]
    with qtbot.waitSignal(client.failed, timeout=TIMEOUT) as failed:
        client.load_model(str(tmp_path / "no-such-model"))
    assert failed.args[0] == "model" and "no-such-model" in failed.args[1]
    with qtbot.waitSignal(client.modelLoaded, timeout=TIMEOUT):
        client.load_model(str(tiny_model))
    with qtbot.waitSignal(client.failed, timeout=TIMEOUT) as failed:
        client.label(tmp_path)
    assert "support set" in failed.args[1]


def test_shutdown_waits_for_a_running_job(qtbot, pattern_class, tiny_model, support, tmp_path):
    client = LabelingClient(device="cpu", batch_size=2, engine="torch")
    pattern_class(tmp_path / "many", seed=3, count=300)
    ready(qtbot, client, tiny_model, support)
    with qtbot.waitSignal(client.labelStarted, timeout=TIMEOUT):
        client.label(tmp_path / "many")
    assert client.shutdown(timeout_ms=10_000)
    assert client._thread.isFinished()


def test_the_window_paints_before_torch_is_imported(tmp_path):
    # pyqtgraph too: only the map uses it, and it loads when the map is first shown.
    code = f"""
import sys
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from fewshot_gui.gui.main_window import MainWindow
app = QApplication([])
window = MainWindow(QSettings({str(tmp_path / "s.ini")!r}, QSettings.Format.IniFormat),
                    last_session=__import__("pathlib").Path({str(tmp_path / "a.json")!r}))
window.show()
app.processEvents()
assert not window.grab().isNull()
sys.exit(3 if "torch" in sys.modules else 4 if "pyqtgraph" in sys.modules else 0)
"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_DATA_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], check=False, env=env, timeout=60)
    assert result.returncode == 0


def test_the_gui_thread_gets_the_gil_back_at_once_while_a_thread_runs_python(client):
    # A repaint calls from Qt into Python hundreds of times, each time taking the GIL back;
    # at Python's default 5 ms switch interval, 50 takes beside a busy thread cost >= 250 ms.
    stop = threading.Event()

    def spin() -> None:  # the worker's pure-Python stretches: walking a folder, stat-ing
        while not stop.is_set():
            sum(range(1000))

    busy = threading.Thread(target=spin)
    busy.start()
    try:
        frames = []
        for _ in range(5):
            begun = time.perf_counter()
            for _ in range(50):
                time.sleep(0)  # releases the GIL and takes it back, as a call into Qt does
            frames.append(time.perf_counter() - begun)
    finally:
        stop.set()
        busy.join()
    assert sorted(frames)[2] < 0.1
