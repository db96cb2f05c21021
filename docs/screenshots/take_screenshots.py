"""Take the README's screenshots from a real window on an X server (Xvfb), state by state.

    Xvfb :99 -screen 0 1600x1000x24 &  DISPLAY=:99 openbox &  # frames, titles, placement
    DISPLAY=:99 QT_QPA_PLATFORM=xcb .venv/bin/python docs/screenshots/take_screenshots.py \
        --photos FOLDER_OF_PHOTOS --out docs/screenshots

FOLDER_OF_PHOTOS is labeled in the "in progress" and "review" shots; file names starting with
a demo class name (`cup_…`, `ferry_…`) let the script pick a wrong prediction to correct.
Each shot is `import -window root` cropped to the window, then shrunk with ImageMagick.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from fewshot_gui.core.paths import resources_dir
from fewshot_gui.gui.class_model import REPORT_ROLE
from fewshot_gui.gui.main_window import MainWindow

MAX_BYTES = 300_000


def spin(ms: int) -> None:
    # An event loop, not QTest.qWait: qWait keeps the GIL and starves the worker thread.
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        spin(50)


def settle(ms: int = 600) -> None:
    """Let thumbnails arrive and the window repaint before a shot."""
    spin(ms)


def shoot(widget: QWidget, out: Path, name: str) -> Path:
    settle()
    QApplication.sync()
    frame = widget.frameGeometry()
    target = out / f"{name}.png"
    crop = f"{frame.width()}x{frame.height()}+{frame.x()}+{frame.y()}"
    subprocess.run(["import", "-window", "root", "-crop", crop, "+repage", str(target)], check=True)
    subprocess.run(
        ["convert", str(target), "-strip", "-define", "png:compression-level=9", str(target)],
        check=True,
    )
    if target.stat().st_size > MAX_BYTES:  # photos in the grid: a dithered 256-colour palette
        subprocess.run(
            [
                "convert",
                str(target),
                "-dither",
                "FloydSteinberg",
                "-colors",
                "256",
                f"PNG8:{target}",
            ],
            check=True,
        )
    print(f"{target}  {target.stat().st_size // 1024} KB", flush=True)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--only-dark", action="store_true", help="take only the dark shots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="fewshot-shots-"))
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        os.environ[name] = str(home / name.lower())  # a first run: no settings, no cache

    app = QApplication(sys.argv[:1])
    app.setOrganizationName("fewshot-gui")
    app.setApplicationName("FewShot Labeler")
    app.setStyle("Fusion")
    dark = args.only_dark
    hints = QGuiApplication.styleHints()
    hints.setColorScheme(Qt.ColorScheme.Dark if dark else Qt.ColorScheme.Light)
    if dark and hints.colorScheme() != Qt.ColorScheme.Dark:
        app.setPalette(dark_palette())  # a bare X server has no theme to ask: be one
    suffix = "-dark" if dark else ""
    window = MainWindow(QSettings(), model="photo-lite0-protonet", batch_size=16)
    window.resize(1280, 800)
    window.move(0, 0)
    window.show()
    window.start()
    wait_until(lambda: window.model_info is not None, 120, "the model")
    if not dark:
        shoot(window, args.out, "01-first-run")

    window.class_panel.add_files([resources_dir() / "demo" / "examples"], "")
    window.editor.undo_stack.clear()
    wait_until(lambda: window.classes.index(0).data(REPORT_ROLE) is not None, 60, "LOO")
    if not dark:
        shoot(window, args.out, "02-classes")

    window.label_folder(args.photos)
    wait_until(lambda: window.progress.isVisible() and window.progress.value() > 40, 120, "run")
    if not dark:
        shoot(window, args.out, "03-labeling")
    wait_until(lambda: not window.progress.isVisible(), 600, "the end of labeling")

    window.banner.hide()  # dismissed, as anyone would after the first run
    window.results_panel.set_filter("cup")
    view = window.results_panel.view
    view.setFocus()
    view.setCurrentIndex(window.results_panel.proxy.index(0, 0))
    shoot(window, args.out, f"04-review{suffix}")
    if dark:
        window.close()
        return 0

    wrong = _a_wrong_prediction(window)
    if wrong is not None:
        path, truth = wrong
        window.results_panel.set_filter(None)
        paths = [p.path for p in window.results.predictions()]
        source = window.results.index(paths.index(path))
        view.setCurrentIndex(window.results_panel.proxy.mapFromSource(source))
        window.results_panel.correct_to_number(window.classes.names().index(truth) + 1)  # key 1-9
        settle(4000)  # the debounced re-adaptation and the relabel from the cache
        view.scrollTo(view.currentIndex())
        shoot(window, args.out, "05-correction")

    window.open_export()
    dialogs = [w for w in app.topLevelWidgets() if w.isVisible() and w is not window]
    dialog = dialogs[-1]
    dialog.files_box.setChecked(True)
    dialog.destination.setText(str(home / "sorted"))
    shoot(window, args.out, "06-export")
    dialog.reject()
    window.close()
    return 0


def dark_palette() -> QPalette:
    """What a desktop's dark theme hands Fusion (the colours of KDE Breeze Dark)."""
    roles = QPalette.ColorRole
    palette = QPalette()
    for role, colour in (
        (roles.Window, "#2a2e32"),
        (roles.WindowText, "#fcfcfc"),
        (roles.Base, "#1b1e20"),
        (roles.AlternateBase, "#232629"),
        (roles.Text, "#fcfcfc"),
        (roles.Button, "#31363b"),
        (roles.ButtonText, "#fcfcfc"),
        (roles.Highlight, "#3daee9"),
        (roles.HighlightedText, "#fcfcfc"),
        (roles.PlaceholderText, "#a1a9b1"),
        (roles.ToolTipBase, "#31363b"),
        (roles.ToolTipText, "#fcfcfc"),
        (roles.Light, "#40464c"),
        (roles.Midlight, "#363b40"),
        (roles.Mid, "#4d5359"),
        (roles.Dark, "#141618"),
        (roles.Shadow, "#0b0c0d"),
        (roles.Link, "#1d99f3"),
    ):
        palette.setColor(role, QColor(colour))
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6e7175"))
    return palette


def _a_wrong_prediction(window: MainWindow) -> tuple[Path, str] | None:
    """A result whose file name names a demo class other than the predicted one."""
    names = window.classes.names()
    aliases = {name: name for name in names} | {"motorbikes": "motorbike"}
    for prediction in window.results.predictions():
        truth = aliases.get(prediction.path.name.split("_")[0])
        if truth in names and prediction.label != truth and not prediction.error:
            return prediction.path, truth
    return None


if __name__ == "__main__":
    raise SystemExit(main())
