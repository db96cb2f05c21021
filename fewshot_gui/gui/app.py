"""`fewshot-gui`: open the window first, then start the worker (and torch) behind it."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from fewshot_gui import __version__
from fewshot_gui.core.paths import cache_dir, resources_dir
from fewshot_gui.gui.main_window import MainWindow

ORGANIZATION = "fewshot-gui"
APPLICATION = "FewShot Labeler"
# The id of packaging/linux/*.desktop: Wayland shows that file's icon, not setWindowIcon's.
DESKTOP_FILE = "org.fewshotgui.FewShotLabeler"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fewshot-gui", description="Label folders of images from a few examples per class."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--model", default="", help="installed model name or model folder")
    parser.add_argument(
        "--support", type=Path, help="folder with one subfolder of examples per class"
    )
    parser.add_argument("--images", type=Path, help="folder of images to label")
    parser.add_argument("--session", type=Path, help="session file to open")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    return parser


def preload(window: MainWindow, args: argparse.Namespace) -> None:
    """Open what the command line asks for; else the last session comes back (`start`),
    and on the very first launch the demo shows."""
    if args.session is not None:
        window.sessions.open(args.session)
        return
    if args.support is None and args.images is None:
        if window.first_launch:
            window.open_demo()
        return
    if args.support is not None and args.support.is_dir():
        window.new_session()
        window.class_panel.add_files([args.support], "")
        window.editor.undo_stack.clear()
    if args.images is not None and args.images.is_dir():
        window.label_folder(args.images)


def main(argv: Sequence[str] | None = None) -> int:
    multiprocessing.freeze_support()  # the engine measurement runs in a child process
    args = build_parser().parse_args(argv)
    app = QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(DESKTOP_FILE)
    app.setStyle("Fusion")  # Fusion follows the system's dark or light colour scheme
    icon = resources_dir() / "icons" / "fewshot-gui.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow(QSettings(), cache_dir=cache_dir(), device=args.device, model=args.model)
    window.show()

    def start() -> None:
        window.start()
        preload(window, args)

    # After the first paint: starting the worker imports torch, which takes seconds.
    QTimer.singleShot(0, start)
    code = app.exec()
    if window.quit_unfinished:
        sys.stderr.write(f"quit while {', '.join(window.quit_unfinished)} still ran\n")
    # Everything worth keeping is saved by now (the session, the settings) and every file
    # write is atomic or journaled. Leaving at once skips the interpreter's teardown, which
    # joins the engine's and decoders' threads and unloads torch: seconds after the window
    # is gone, or forever behind a step that cannot be interrupted.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
