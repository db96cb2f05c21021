"""The Qt toolkit as the app sets it up: reference counts kept, fills on the GUI thread."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel


class _Emitter(QObject):
    fired = Signal(int)


def test_void_calls_and_emits_keep_the_counts_of_none_and_true(qtbot) -> None:
    # PySide6 6.12.0 on Python 3.11 lost one reference per call: some 10,000 calls of a
    # working session later, Python aborted with "deallocating None".
    label, emitter = QLabel(), _Emitter()
    qtbot.addWidget(label)
    none, true = sys.getrefcount(None), sys.getrefcount(True)
    for i in range(10_000):
        label.setText(str(i))
        emitter.fired.emit(i)
    assert sys.getrefcount(None) - none > -100
    assert sys.getrefcount(True) - true > -100


_PAINT_AND_LIST_THREADS = """
import os, sys
import fewshot_gui.gui  # what every window of the app imports first
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QApplication
app = QApplication([])
image = QImage(2000, 2000, QImage.Format.Format_ARGB32_Premultiplied)
painter = QPainter(image)
painter.fillRect(0, 0, 2000, 2000, QColor(10, 20, 30, 128))
painter.end()
tasks = "/proc/self/task"
print(sorted(open(f"{tasks}/{t}/comm").read().strip() for t in os.listdir(tasks)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads thread names in /proc")
def test_large_fills_stay_on_the_gui_thread() -> None:
    # Qt hands a large fill to pool threads and waits; on a busy machine they wait for a core.
    env = {k: v for k, v in os.environ.items() if k != "QT_NO_GUI_THREADPOOL"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    result = subprocess.run(
        [sys.executable, "-c", _PAINT_AND_LIST_THREADS],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Thread (pooled)" not in result.stdout
    assert "python" in result.stdout
