"""The real window labels 100,000 image files: event-loop stalls, peak memory, a correction.

A folder of --count small PNG files is written once (--work, reused on later runs); the
real MainWindow (offscreen) labels it through its worker thread with the shipped
handwriting model (Conv-4 at 28 px: the model's accuracy does not matter here, its
pipeline does), while a QTimer ticks every 5 ms on the GUI thread and records the gaps.
Then one correction, timed from the edit to its relabeled labels in the grid, and again
with the view filtered. Peak RSS is the process's high-water mark (VmHWM). The photo model
(about 25 to 90 images/s on this CPU under load) would take hours for 100,000 files, and a
Conv-4 at 84 px did 12 images/s under load: hence the 28 px model.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_label_100k.py --count 100000 [--busy 4]

--busy N keeps N processes spinning beside it: the "busy machine" (load 4 to 6) on demand.
"""

from __future__ import annotations

import argparse
import atexit
import faulthandler
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gui_responsiveness import StallMeter

STALL_MS = 150


def trace_stalls(log: Path) -> Callable[[], None]:
    """Arm faulthandler to write every thread's stack to `log` each STALL_MS the GUI thread
    stays late; returns the re-arming call for each heartbeat tick.

    faulthandler's watchdog is a C thread that needs no GIL, so it also sees a stall in which
    one thread holds the GIL: the stack marked "Current thread" is the holder.
    """
    out = log.open("w")

    def rearm() -> None:
        faulthandler.dump_traceback_later(STALL_MS / 1000, repeat=True, file=out)

    return rearm


def write_folder(folder: Path, count: int) -> list[Path]:
    """`count` distinct 32x32 PNGs (two kinds: dark and light blobs), written once."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.png"))
    if len(existing) >= count:
        return existing[:count]
    rng = np.random.default_rng(0)
    for i in range(len(existing), count):
        base = 60 if i % 2 else 190
        pixels = np.clip(rng.normal(base, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img-{i:06d}.png", compress_level=1)
    return sorted(folder.glob("*.png"))[:count]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "fewshot-100k")
    parser.add_argument("--engine", default="torch")
    parser.add_argument("--model", default="omniglot-conv4-protonet")
    parser.add_argument(
        "--trace-stalls",
        type=Path,
        metavar="LOG",
        help=f"write every thread's stack to LOG each {STALL_MS} ms the GUI thread is late",
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="N",
        help="keep N processes spinning on the CPU throughout: a busy machine on demand",
    )
    parser.add_argument("--corrections", type=int, default=3, help="corrections timed per view")
    args = parser.parse_args()
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)
    ]
    atexit.register(lambda: [spinner.kill() for spinner in spinners])

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from fewshot_gui.gui.main_window import MainWindow

    started = time.perf_counter()
    images = write_folder(args.work / "images", args.count)
    examples = write_folder(args.work / "examples-src", 6)
    print(f"{len(images)} files ready in {time.perf_counter() - started:.0f} s")
    app = QApplication(sys.argv[:1])
    scratch = Path(tempfile.mkdtemp(prefix="fewshot-100k-run-"))
    window = MainWindow(
        QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat),
        last_session=scratch / "last.fewshot.json",
        cache_dir=scratch / "cache",
        device="cpu",
        engine=args.engine,
        model=args.model,
        ask=lambda _title, _text: True,
    )
    window.show()
    window.start()
    rearm = trace_stalls(args.trace_stalls) if args.trace_stalls else None
    begun = time.perf_counter()
    worst: list[tuple[float, float, int]] = []  # (gap ms, at s, rows then) of each long gap

    def on_tick(gap_ms: float) -> None:
        if gap_ms > 100:
            worst.append((gap_ms, time.perf_counter() - begun, window.results.rowCount()))
        if rearm is not None:
            rearm()

    meter = StallMeter(on_tick)

    def wait_until(condition, timeout_s: float) -> float:
        begin = time.perf_counter()
        while not condition():
            app.processEvents()
            time.sleep(0.001)
            if time.perf_counter() - begin > timeout_s:
                raise TimeoutError
        return time.perf_counter() - begin

    wait_until(lambda: window.model_info is not None, 120)
    window.editor.add_examples({"dark": examples[1::2], "light": examples[0::2]})
    meter.start()
    labeling = time.perf_counter()
    window.label_folder(images[0].parent)
    wait_until(lambda: window.client.labeling, 60)
    wait_until(lambda: not window.client.labeling, 3600)
    seconds = time.perf_counter() - labeling
    meter.stop()
    faulthandler.cancel_dump_traceback_later()
    rows = window.results.rowCount()
    print(
        f"labeled {rows} files in {seconds:.0f} s ({rows / seconds:.0f} images/s); "
        f"median gap {statistics.median(meter.gaps):.0f} ms; {meter.summary()}; "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )
    for gap, at, rows_then in worst:
        print(f"  a {gap:.0f} ms gap ended {at:.1f} s after the window, {rows_then} rows shown")

    arrived: list[float] = []
    window.client.relabeled.connect(lambda _labels: arrived.append(time.perf_counter()))
    for shown in ("all", "filtered"):
        if shown == "filtered":
            window.results_panel.set_filter("dark")
        for target in images[3 : 3 + args.corrections]:
            arrived.clear()
            meter.start()
            edit = time.perf_counter()
            window.editor.correct([target], "light")
            wait_until(lambda: bool(arrived), 60)
            app.processEvents()  # the grid takes the labels
            on_screen = time.perf_counter() - edit
            meter.stop()
            faulthandler.cancel_dump_traceback_later()
            print(
                f"correction ({shown}): new labels on screen {1000 * on_screen:.0f} ms after "
                f"the edit; load {os.getloadavg()[0]:.1f}; {meter.summary()}"
            )
            window.editor.undo_stack.undo()
            wait_until(lambda: len(arrived) > 1, 60)
    window.close()
    for spinner in spinners:
        spinner.kill()
    os._exit(0)


if __name__ == "__main__":
    main()
