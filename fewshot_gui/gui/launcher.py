"""`fewshot-gui`'s entry point: says how to get Qt for Python when it is missing, else starts."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

MISSING_QT = (
    "fewshot-gui needs Qt for Python: install it with `pip install PySide6-Essentials` "
    "(or reinstall fewshot-gui with its dependencies); `fewshot` labels without a window."
)
EXIT_MISSING_QT = 3


def main(argv: Sequence[str] | None = None) -> int:
    """Start the desktop app, or print one line on how to get it and return EXIT_MISSING_QT."""
    if importlib.util.find_spec("PySide6") is None:
        if sys.stderr is not None:  # a windowed launcher (pythonw) has no stderr
            print(MISSING_QT, file=sys.stderr)
        return EXIT_MISSING_QT
    # Imported only now: app imports PySide6 at the top.
    from fewshot_gui.gui.app import main as start_app

    return start_app(argv)
