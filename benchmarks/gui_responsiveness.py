"""GUI responsiveness: event-loop stalls while labeling, and time to the first painted window.

(a) A QTimer ticks every 5 ms on the GUI thread and records the gaps between ticks while the
    real window labels a folder through its worker thread. Beside it, in the same process and
    on the same window: the timer with nothing running (idle), and with the same engine
    stepping batch by batch on the GUI thread (the naive way, labelme's), on a fresh cache.
(b) Seconds from starting a fresh process to the first paint of the real window
    (`fewshot_gui.gui.app.main`, demo preload and all), beside a bare QMainWindow, the app
    with torch imported before the window, and `python -c "import torch"`; the median of
    --repeats fresh processes each.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_responsiveness.py --images DIR
    DISPLAY=:99 QT_QPA_PLATFORM=xcb python benchmarks/gui_responsiveness.py --images DIR

DIR is any folder of images (2,000 for the issue's figure; symlinks are fine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TICK_MS = 5
STALL_TARGET_MS = 100
PAINT_TARGET_S = 2.0
CHILD_FLAG = "--child-startup"


# --- (b) startup, in a fresh child process ----------------------------------------------------


def child_startup(kind: str) -> None:
    """Run in a fresh process: print the wall-clock time of the first painted window, exit."""
    if kind == "torch-only":
        import torch

        print(f"PAINTED {time.time():.6f} torch=1", flush=True)
        return
    if kind == "app-torch-first":
        import torch  # noqa: F401
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QPaintEvent
    from PySide6.QtWidgets import QApplication, QMainWindow

    def report() -> None:
        print(f"PAINTED {time.time():.6f} torch={int('torch' in sys.modules)}", flush=True)
        os._exit(0)  # not a clean quit: the worker may be importing torch right now

    def timed(base: type) -> type:
        class FirstPaint(base):  # type: ignore[misc, valid-type]
            _painted = False

            def paintEvent(self, event: QPaintEvent) -> None:
                super().paintEvent(event)
                if not FirstPaint._painted:
                    FirstPaint._painted = True
                    QTimer.singleShot(0, report)  # after this paint has been flushed

        return FirstPaint

    if kind == "bare":
        app = QApplication(sys.argv[:1])
        window = timed(QMainWindow)()
        window.resize(1200, 800)
        window.show()
        app.exec()
        return
    from fewshot_gui.gui import app as gui_app

    gui_app.MainWindow = timed(gui_app.MainWindow)
    gui_app.main([])


def time_startup(kind: str, repeats: int, env: dict[str, str]) -> tuple[float, bool]:
    """Median seconds from spawning the child to its first paint; and whether torch was in."""
    times, torch_loaded = [], False
    for _ in range(repeats):
        started = time.time()
        done = subprocess.run(
            [sys.executable, __file__, CHILD_FLAG, kind],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        line = next((x for x in done.stdout.splitlines() if x.startswith("PAINTED")), None)
        if line is None:
            raise SystemExit(f"{kind}: no paint reported\n{done.stdout}\n{done.stderr}")
        _, stamp, flag = line.split()
        times.append(float(stamp) - started)
        torch_loaded = torch_loaded or flag == "torch=1"
    return statistics.median(times), torch_loaded


# --- (a) event-loop stalls -------------------------------------------------------------------


class StallMeter:
    """Gaps between the ticks of a 5 ms precise timer on the GUI thread."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.gaps: list[float] = []
        # Of each gap, the ms the GUI thread ran on a CPU, and the ms it was ready to run but
        # waited for one (Linux schedstat): the rest it was blocked, e.g. on the GIL.
        self.ran: list[float] = []
        self.queued: list[float] = []
        self._last = self._last_ran = self._last_queued = 0.0
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.gaps, self.ran, self.queued = [], [], []
        self._last = time.perf_counter()
        self._last_ran, self._last_queued = _schedstat()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._tick()

    def _tick(self) -> None:
        now, (ran, queued) = time.perf_counter(), _schedstat()
        self.gaps.append((now - self._last) * 1000)
        self.ran.append(ran - self._last_ran)
        self.queued.append(queued - self._last_queued)
        self._last, self._last_ran, self._last_queued = now, ran, queued

    def summary(self) -> str:
        gaps = sorted(self.gaps)
        p99 = gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))]
        over = sum(g > STALL_TARGET_MS for g in gaps)
        worst = max(range(len(self.gaps)), key=self.gaps.__getitem__)
        return (
            f"longest {gaps[-1]:4.0f} ms (ran {self.ran[worst]:3.0f}, waited for a CPU "
            f"{self.queued[worst]:3.0f})   p99 {p99:4.0f} ms   >{STALL_TARGET_MS} ms: {over:3d}"
        )


def _schedstat() -> tuple[float, float]:
    """ms this thread has run on a CPU, and ms it has waited ready to run; Linux only."""
    try:
        with open("/proc/thread-self/schedstat") as stats:
            ran, waited, _slices = stats.read().split()
    except OSError:
        return time.thread_time() * 1000, 0.0
    return int(ran) / 1e6, int(waited) / 1e6


def spin_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    # An event loop, not QTest.qWait: qWait keeps the GIL and starves the worker thread.
    from PySide6.QtCore import QEventLoop, QTimer

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        loop = QEventLoop()
        QTimer.singleShot(20, loop.quit)
        loop.exec()


def measure_stalls(args: argparse.Namespace, work: Path) -> None:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from fewshot_gui.core.images import iter_image_files
    from fewshot_gui.core.jobs import CancelToken
    from fewshot_gui.core.paths import resources_dir
    from fewshot_gui.gui.class_model import REPORT_ROLE
    from fewshot_gui.gui.main_window import MainWindow
    from fewshot_gui.workers.labeling_worker import LabelingWorker

    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(
        settings,
        autosave=work / "autosave.json",
        cache_dir=work / "cache-threaded",
        device=args.device,
        batch_size=args.batch_size,
        model=args.model,
        ask=lambda _title, _text: False,
    )
    window.show()
    window.start()
    spin_until(lambda: window.model_info is not None, 600, "the model")
    window.class_panel.add_files([resources_dir() / "demo" / "examples"], "")
    spin_until(lambda: window.classes.index(0).data(REPORT_ROLE) is not None, 600, "adapting")
    paths = list(iter_image_files(args.images))
    info = window.model_info
    batch = args.batch_size or "default"
    print(f"model {info.name} on {info.device} ({info.engine}), batch {batch}")
    print(f"{len(paths)} images under {args.images}; a {TICK_MS} ms timer on the GUI thread")

    meter = StallMeter()
    meter.start()
    idle_until = time.monotonic() + args.idle_seconds
    spin_until(lambda: time.monotonic() > idle_until, args.idle_seconds + 5, "idle")
    meter.stop()
    print(f"  idle, nothing running          {meter.summary()}")

    started = time.perf_counter()
    meter.start()
    window.label_folder(args.images)
    spin_until(
        lambda: window.results.rowCount() == len(paths) and not window.client.labeling,
        3600,
        "the threaded run",
    )
    meter.stop()
    seconds = time.perf_counter() - started
    print(
        f"  worker thread (the app)        {meter.summary()}   "
        f"{len(paths)} images in {seconds:.1f} s, {len(paths) / seconds:.0f} img/s"
    )

    # The naive way: the same engine on the GUI thread, a batch per event-loop turn.
    naive_paths = paths[: args.naive_images]
    naive = LabelingWorker(work / "cache-naive", args.device, args.batch_size)
    finished: list[object] = []
    naive.labelProgress.connect(lambda _gen, progress, new: window._on_progress(progress, new))
    naive.labelFinished.connect(lambda _gen, summary: finished.append(summary))
    naive.failed.connect(lambda kind, _gen, message: finished.append(f"{kind}: {message}"))
    naive.load_model(1, args.model, CancelToken())
    naive.set_support(2, window.classes.mapping(), CancelToken())
    window.results.clear()
    started = time.perf_counter()
    meter.start()
    naive.label(3, naive_paths, CancelToken())
    spin_until(lambda: bool(finished), 3600, "the naive run")
    meter.stop()
    seconds = time.perf_counter() - started
    print(
        f"  GUI thread (naive)             {meter.summary()}   "
        f"{len(naive_paths)} images in {seconds:.1f} s, {len(naive_paths) / seconds:.0f} img/s"
    )
    window.close()


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="folder of images to label")
    parser.add_argument("--model", default="photo-lite0-protonet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, help="default: the app's")
    parser.add_argument("--naive-images", type=int, default=500, help="images in the naive run")
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per start-up")
    parser.add_argument("--skip-stalls", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fewshot-gui-bench-"))
    env = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        env[name] = os.environ[name] = str(work / name.lower())  # no user settings or caches
    platform = os.environ.get("QT_QPA_PLATFORM") or "default"
    print(f"Qt platform {platform}, python {sys.version.split()[0]}")

    if not args.skip_stalls:
        print(f"\n(a) GUI event-loop stalls (target: longest < {STALL_TARGET_MS} ms)")
        measure_stalls(args, work)

    if not args.skip_startup:
        print(
            f"\n(b) process start -> first painted window, median of {args.repeats} fresh processes"
        )
        rows = (
            ("app", f"FewShot Labeler (target < {PAINT_TARGET_S:.0f} s)"),
            ("bare", "bare QMainWindow, PySide6 only"),
            ("app-torch-first", "the app with torch imported first"),
            ("torch-only", "python -c 'import torch'"),
        )
        for kind, label in rows:
            seconds, torch_loaded = time_startup(kind, args.repeats, env)
            torch_note = "torch import begun by then" if torch_loaded else "no torch by then"
            if kind == "torch-only":
                torch_note = ""
            print(f"  {label:40s} {seconds:6.2f} s   {torch_note}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        child_startup(sys.argv[2])
    else:
        raise SystemExit(main())
