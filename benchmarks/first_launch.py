"""First launch at the surface: from the window to labels on a fresh cache, and quit.

Runs the real app (offscreen) in a child process with empty cache, data and settings folders,
on the demo images, and prints when the window showed, when the model was ready, when the
first labels and the last ones arrived, when the engine measurement switched engines, and
how long quitting took once labeling was done (or, with --quit-at, in the middle of a phase).
`--baseline REF` runs the same on a git worktree of REF in the same run, to compare.

    python benchmarks/first_launch.py --baseline f7125c3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Hooks the window's own signals; prints "<event> <monotonic seconds>" lines on stderr.
PROBE = """
import sys, time
from PySide6.QtCore import QTimer
from fewshot_gui.gui import app, main_window

def mark(event):
    print(f"@ {event} {time.monotonic():.3f}", file=sys.stderr, flush=True)

original_start = main_window.MainWindow.start
quit_at = sys.argv[1]
wait_engine_s = float(sys.argv[2])

def start(window):
    original_start(window)
    mark("started")
    client = window.client
    state = {"first": False, "labeled": None}

    def close():
        mark("close")
        window.close()

    def on_progress(*_):
        if not state["first"]:
            state["first"] = True
            mark("first labels")
            if quit_at == "labeling":
                close()

    def on_finished(*_):
        mark("labeled")
        state["labeled"] = time.monotonic()
        if quit_at == "done" and not hasattr(client, "engineChanged"):
            close()

    def on_engine(*_):
        mark("engine switched")

    def waiting():
        if quit_at == "done" and state["labeled"] is not None:
            if window.work.device_label.text().count("preparing") == 0 or (
                time.monotonic() - state["labeled"] > wait_engine_s
            ):
                close()
                return
        QTimer.singleShot(100, waiting)

    client.modelLoaded.connect(lambda *_: mark("model ready"))
    client.labelProgress.connect(on_progress)
    client.labelFinished.connect(on_finished)
    if hasattr(client, "engineChanged"):
        client.engineChanged.connect(on_engine)
        waiting()
    if quit_at == "load":
        close()

main_window.MainWindow.start = start
mark("launch")
code = app.main([])
mark("exited")
sys.exit(code)
"""


def run(tree: Path, quit_at: str, cap_s: float, wait_engine_s: float) -> dict[str, float]:
    """One fresh first launch of the app in `tree`; event -> seconds since launch."""
    with tempfile.TemporaryDirectory(prefix="fewshot-first-") as fresh:
        env = {
            **os.environ,
            "QT_QPA_PLATFORM": "offscreen",
            "PYTHONPATH": str(tree),
            **{v: f"{fresh}/{v.lower()}" for v in ("XDG_CACHE_HOME", "XDG_DATA_HOME")},
            "XDG_CONFIG_HOME": f"{fresh}/config",
        }
        process = subprocess.Popen(
            [sys.executable, "-c", PROBE, quit_at, str(wait_engine_s)],
            cwd=tree,
            env=env,
            stderr=subprocess.PIPE,
        )
        assert process.stderr is not None
        marks: dict[str, float] = {}
        deadline = time.monotonic() + cap_s
        os.set_blocking(process.stderr.fileno(), False)
        buffered = ""
        while process.poll() is None and time.monotonic() < deadline:
            buffered += (process.stderr.read() or b"").decode(errors="replace")
            *lines, buffered = buffered.split("\n")
            for line in lines:
                if line.startswith("@ "):
                    *words, stamp = line[2:].split()
                    marks.setdefault(" ".join(words), float(stamp))
            time.sleep(0.05)
        ended = time.monotonic()
        if process.poll() is None:
            process.kill()
            marks["killed at cap"] = ended
        else:
            marks["process gone"] = ended
        launch = marks.get("launch", ended)
        return {event: stamp - launch for event, stamp in marks.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="git ref to compare with (run from a worktree)")
    parser.add_argument("--quit-at", choices=("done", "load", "labeling"), default="done")
    parser.add_argument("--cap", type=float, default=420.0, help="seconds before a run is killed")
    parser.add_argument(
        "--wait-engine",
        type=float,
        default=240.0,
        help="after labeling, wait this long for the engine measurement to finish before quitting",
    )
    args = parser.parse_args()
    trees = {"this tree": ROOT}
    if args.baseline:
        base = Path(tempfile.gettempdir()) / f"fewshot-baseline-{args.baseline}"
        if not base.exists():
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.baseline],
                check=True,
                capture_output=True,
            )
        trees[f"baseline {args.baseline}"] = base
    print(f"load average at start: {os.getloadavg()[0]:.1f}, cores {os.cpu_count()}")
    for name, tree in trees.items():
        marks = run(tree, args.quit_at, args.cap, args.wait_engine)
        shown = marks.get("started", float("nan"))
        print(f"\n{name}:")
        for event, seconds in sorted(marks.items(), key=lambda item: item[1]):
            print(f"  {event:<16} {seconds:7.2f} s")
        if "model ready" in marks:
            print(f"  window -> model ready: {marks['model ready'] - shown:.2f} s")
        if "first labels" in marks:
            print(f"  window -> first labels: {marks['first labels'] - shown:.2f} s")
        if "close" in marks:
            gone = marks.get("process gone", float("nan"))
            print(f"  quit (close -> process gone): {gone - marks['close']:.2f} s")


if __name__ == "__main__":
    main()
