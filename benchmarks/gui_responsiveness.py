"""GUI responsiveness: event-loop stalls while labeling, first paint, and the grid at 100,000 rows.

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

(c) The results grid (the real ResultsPanel, offscreen) at --grid-rows rows, each size in a
    fresh process (peak RSS is its own), the current code beside the code of --baseline
    (default: the commit before the grid became numpy arrays) loaded from git. Rows are real
    images (--grid-images, symlinked as often as needed) with synthetic labels: streamed in
    batches of 16-64 at --stream-rate images/s, as labeling sends them; then one correction
    (set_corrections, then the relabel's labels in) until the tiles in view are repainted;
    a filter, all again, and labeled order. A 5 ms timer measures stalls throughout.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_responsiveness.py --skip-stalls \
        --skip-startup --grid-images /work/shared/data/caltech101-dev

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
GRID_FLAG = "--child-grid"
CORRECTION_TARGET_MS = 300
GRID_CLASSES = ("bass", "crab", "crayfish", "lobster", "garfield")


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


def child_line(
    argv: list[str], tag: str, env: dict[str, str], timeout: float
) -> tuple[str | None, str]:
    """Run this script in a fresh process; its first output line starting with `tag`."""
    done = subprocess.run(
        [sys.executable, __file__, *argv], env=env, capture_output=True, text=True, timeout=timeout
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith(tag)), None)
    return line, f"{done.stdout}\n{done.stderr}"


def time_startup(kind: str, repeats: int, env: dict[str, str]) -> tuple[float, bool]:
    """Median seconds from spawning the child to its first paint; and whether torch was in."""
    times, torch_loaded = [], False
    for _ in range(repeats):
        started = time.time()
        line, output = child_line([CHILD_FLAG, kind], "PAINTED", env, 300)
        if line is None:
            raise SystemExit(f"{kind}: no paint reported\n{output}")
        _, stamp, flag = line.split()
        times.append(float(stamp) - started)
        torch_loaded = torch_loaded or flag == "torch=1"
    return statistics.median(times), torch_loaded


# --- (a) event-loop stalls -------------------------------------------------------------------


class StallMeter:
    """Gaps between the ticks of a 5 ms precise timer on the GUI thread; `on_tick(gap_ms)`
    runs after each tick."""

    def __init__(self, on_tick: Callable[[float], None] | None = None) -> None:
        from PySide6.QtCore import Qt, QTimer

        self._on_tick = on_tick
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
        if self._on_tick is not None:
            self._on_tick(self.gaps[-1])

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
    from fewshot_gui.workers.labeling_worker import Adaptation, LabelingWorker

    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(
        settings,
        last_session=work / "last.fewshot.json",
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
    naive.adapt(2, Adaptation(window.classes.mapping(), {}, "auto"), CancelToken())
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


# --- (c) the results grid at scale -----------------------------------------------------------


def baseline_revision() -> str:
    """The commit before the one that made the grid numpy arrays (added review_order.py)."""
    added = subprocess.run(
        [
            "git",
            "log",
            "--diff-filter=A",
            "--format=%H",
            "-1",
            "--",
            "fewshot_gui/gui/review_order.py",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return f"{added}^" if added else "HEAD"


def load_baseline(revision: str, work: Path) -> None:
    """Make `_baseline_results_model` and `_baseline_results_panel` importable from git."""
    package = work / "baseline"
    package.mkdir(exist_ok=True)
    for name in ("results_model", "results_panel"):
        source = subprocess.run(
            ["git", "show", f"{revision}:fewshot_gui/gui/{name}.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        source = source.replace("fewshot_gui.gui.results_model", "_baseline_results_model")
        (package / f"_baseline_{name}.py").write_text(source)
    sys.path.insert(0, str(package))


def image_links(images: Path, count: int, work: Path) -> list[Path]:
    """`count` distinct paths of real images: links to the files under `images`, cycled."""
    from fewshot_gui.core.images import iter_image_files

    sources = list(iter_image_files(images))
    folder = work / f"links-{count}"
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        link = folder / f"{i:06d}-{sources[i % len(sources)].name}"
        if not link.is_symlink():
            link.symlink_to(sources[i % len(sources)])
        paths.append(link)
    return paths


def synthetic_labels(paths: list[Path], seed: int) -> object:
    """Labels as a relabel sends them: 5 classes, a tenth unknown, 1 in 200 unreadable."""
    import numpy as np

    from fewshot_gui.core.predictions import ERROR_INDEX, UNKNOWN_INDEX, Labels

    rng = np.random.default_rng(seed)
    n = len(paths)
    nearest = rng.integers(0, len(GRID_CLASSES), n)
    label = np.where(rng.random(n) < 0.1, UNKNOWN_INDEX, nearest)
    unreadable = rng.random(n) < 0.005
    label = np.where(unreadable, ERROR_INDEX, label)
    return Labels(
        paths=paths,
        class_names=GRID_CLASSES,
        label=label,
        nearest=nearest,
        confidence=np.where(unreadable, 0, rng.uniform(0.2, 1.0, n)).astype(np.float32),
        runner_up=(nearest + 1) % len(GRID_CLASSES),
        runner_up_confidence=rng.uniform(0.0, 0.2, n).astype(np.float32),
        novelty=rng.uniform(0.5, 2.0, n).astype(np.float32),
        errors=["cannot identify image file" if u else "" for u in unreadable.tolist()],
    )


def outlast_pyside_leak() -> None:
    """Raise the reference counts of None, True and False by 10**9, for this process only.

    PySide6 6.12.0 on Python 3.11 returns None from every void call (setText, endInsertRows)
    and True from every `emit` without a new reference, so each call takes one reference
    from them; after some 10,000 such calls Python aborts ("deallocating None"). Python
    3.12's immortal objects hide it. Nothing here is timed differently; the app needs a fix.
    """
    import ctypes

    for constant in (None, True, False):
        ctypes.c_ssize_t.from_address(id(constant)).value += 10**9


def child_grid(code: str, count: int, images: Path, rate: float, cap_s: float, work: Path) -> None:
    """Run in a fresh process: print one line of `key=value` figures for one grid size."""
    import resource

    import numpy as np
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from fewshot_gui.core.predictions import Labels
    from fewshot_gui.gui.class_model import ClassModel
    from fewshot_gui.gui.thumbnails import ThumbnailCache

    if code == "baseline":
        sys.path.insert(0, str(work / "baseline"))
        from _baseline_results_model import ResultsModel  # type: ignore[import-not-found]
        from _baseline_results_panel import ResultsPanel  # type: ignore[import-not-found]
    else:
        from fewshot_gui.gui.results_model import ResultsModel
        from fewshot_gui.gui.results_panel import ResultsPanel

    outlast_pyside_leak()
    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    thumbnails = ThumbnailCache()
    classes = ClassModel(thumbnails)
    classes.restore(tuple((name, ()) for name in GRID_CLASSES))
    results = ResultsModel(thumbnails)
    panel = ResultsPanel(results, classes, thumbnails)
    panel.resize(1400, 900)
    panel.show()
    app.processEvents()
    paths = image_links(images, count, work)
    labels = synthetic_labels(paths, seed=1)
    old_contract = code == "baseline"  # the old model takes a list of Prediction

    def batch(start: int, stop: int) -> object:
        part = Labels(
            paths[start:stop],
            labels.class_names,
            *(getattr(labels, c)[start:stop] for c in ("label", "nearest", "confidence")),
            *(getattr(labels, c)[start:stop] for c in ("runner_up", "runner_up_confidence")),
            labels.novelty[start:stop],
            labels.errors[start:stop],
        )
        return list(part) if old_contract else part

    figures: dict[str, str] = {}
    meter = StallMeter()
    sizes = np.random.default_rng(2).integers(16, 65, count)
    cursor = [0]
    started = time.perf_counter()

    def deliver() -> None:
        start = cursor[0]
        stop = min(count, start + int(sizes[start]))
        results.add(batch(start, stop))
        cursor[0] = stop
        elapsed = time.perf_counter() - started
        if stop < count and elapsed < cap_s:
            # Paced as labeling at `rate` images/s; a slow add delays the next batch.
            due = stop / rate - elapsed
            QTimer.singleShot(max(0, round(due * 1000)), deliver)

    meter.start()
    QTimer.singleShot(0, deliver)
    spin_until(
        lambda: cursor[0] >= count or time.perf_counter() - started >= cap_s, cap_s + 600, "stream"
    )
    spin_until(lambda: panel.proxy.rowCount() == results.rowCount(), 600, "the grid to catch up")
    meter.stop()
    seconds = time.perf_counter() - started
    figures["streamed"] = f"{cursor[0]}"
    figures["stream_s"] = f"{seconds:.1f}"
    figures["stream_stall_ms"] = worst(meter)
    figures["stream_over_100"] = f"{sum(g > STALL_TARGET_MS for g in meter.gaps)}"
    if cursor[0] < count:
        # Capped: the rest in one add, as a relabel of the whole folder would bring them.
        begun = time.perf_counter()
        results.add(batch(cursor[0], count))
        spin_until(lambda: panel.proxy.rowCount() == results.rowCount(), 3600, "the rest")
        figures["rest_in_one_add_s"] = f"{time.perf_counter() - begun:.1f}"
    settle = time.monotonic() + 1.0
    spin_until(lambda: time.monotonic() > settle, 5, "settle")

    view, proxy = panel.view, panel.proxy

    def on_screen() -> None:
        app.processEvents()
        view.viewport().repaint()

    # One correction: the tile first in view becomes a crab; the relabel moves a third of the
    # others' confidences, as the refit after a correction does.
    first = proxy.index(0, 0).data(Qt.ItemDataRole.UserRole + 1)
    rng = np.random.default_rng(3)
    moved = rng.random(count) < 0.3
    relabel = synthetic_labels(paths, seed=1)
    relabel.confidence[moved] = rng.uniform(0.2, 1.0, int(moved.sum())).astype(np.float32)
    relabel_in = list(relabel) if old_contract else relabel  # the worker thread builds this
    meter.start()
    t0 = time.perf_counter()
    results.set_corrections({first: "crab"})
    t1 = time.perf_counter()
    results.add(relabel_in)
    t2 = time.perf_counter()
    on_screen()
    t3 = time.perf_counter()
    after = time.monotonic() + 3.0
    spin_until(lambda: time.monotonic() > after, 10, "the correction to settle")
    meter.stop()
    figures["set_corrections_ms"] = f"{(t1 - t0) * 1000:.0f}"
    figures["relabel_add_ms"] = f"{(t2 - t1) * 1000:.0f}"
    figures["correction_on_screen_ms"] = f"{(t3 - t0) * 1000:.0f}"
    figures["correction_stall_ms"] = worst(meter)

    def timed(action: Callable[[], None]) -> str:
        begun = time.perf_counter()
        action()
        on_screen()
        return f"{(time.perf_counter() - begun) * 1000:.0f}"

    figures["filter_class_ms"] = timed(lambda: panel.set_filter("lobster"))
    figures["filter_all_ms"] = timed(lambda: panel.set_filter(None))
    figures["labeled_order_ms"] = timed(lambda: panel.least_sure.setChecked(False))
    figures["review_order_ms"] = timed(lambda: panel.least_sure.setChecked(True))
    figures["peak_rss_mb"] = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
    thumbnails.wait()
    print("GRID " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


def worst(meter: StallMeter) -> str:
    """The longest gap, with the ms of it the GUI thread ran / waited for a CPU."""
    at = max(range(len(meter.gaps)), key=meter.gaps.__getitem__)
    return f"{meter.gaps[at]:.0f}({meter.ran[at]:.0f}/{meter.queued[at]:.0f})"


def measure_grid(args: argparse.Namespace, work: Path, env: dict[str, str]) -> None:
    revision = args.baseline or baseline_revision()
    load_baseline(revision, work)
    described = subprocess.run(
        ["git", "log", "-1", "--format=%h %s", revision], capture_output=True, text=True
    ).stdout.strip()
    print(f"  baseline {described[:90]}")
    columns = (
        ("streamed", "streamed"),
        ("rest_in_one_add_s", "rest s"),
        ("stream_s", "stream s"),
        ("stream_stall_ms", "stall(run/wait)"),
        ("stream_over_100", ">100ms"),
        ("set_corrections_ms", "set_corr ms"),
        ("relabel_add_ms", "add ms"),
        ("correction_on_screen_ms", "on screen ms"),
        ("correction_stall_ms", "stall(run/wait)"),
        ("filter_class_ms", "filter ms"),
        ("filter_all_ms", "all ms"),
        ("labeled_order_ms", "unsort ms"),
        ("review_order_ms", "sort ms"),
        ("peak_rss_mb", "RSS MB"),
    )
    print("  " + f"{'code':9s} {'rows':>7s} " + " ".join(f"{t:>15s}" for _, t in columns))
    for count in args.grid_rows:
        for code in ("current", "baseline"):
            argv = [GRID_FLAG, code, str(count), str(args.grid_images), str(args.stream_rate)]
            argv += [str(args.baseline_cap_s), str(work)]
            line, output = child_line(argv, "GRID", env, 3600)
            if line is None:
                print(f"  {code} {count}: failed\n{output[-4000:]}")
                continue
            got = dict(pair.split("=") for pair in line.split()[1:])
            cells = " ".join(f"{got.get(key, '-'):>15s}" for key, _ in columns)
            print(f"  {code:9s} {count:7d} {cells}", flush=True)


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="folder of images to label, for (a)")
    parser.add_argument("--model", default="photo-lite0-protonet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, help="default: the app's")
    parser.add_argument("--naive-images", type=int, default=500, help="images in the naive run")
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per start-up")
    parser.add_argument("--grid-images", type=Path, help="folder of real images, for (c)")
    parser.add_argument("--grid-rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--stream-rate", type=float, default=2000.0, help="images/s streamed")
    parser.add_argument("--baseline", help="git revision of the code to compare with")
    parser.add_argument(
        "--baseline-cap-s", type=float, default=120.0, help="stop streaming after this long"
    )
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
        if args.images is None:
            parser.error("--images is needed for (a); or pass --skip-stalls")
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
    if args.grid_images is not None:
        print(
            f"\n(c) the results grid, offscreen (targets: a correction on screen < "
            f"{CORRECTION_TARGET_MS} ms, no stall > {STALL_TARGET_MS} ms)"
        )
        measure_grid(args, work, env)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        child_startup(sys.argv[2])
    elif len(sys.argv) == 8 and sys.argv[1] == GRID_FLAG:
        _, _, code, count, images, rate, cap_s, work = sys.argv
        child_grid(code, int(count), Path(images), float(rate), float(cap_s), Path(work))
    else:
        raise SystemExit(main())
