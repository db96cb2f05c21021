"""Widgets, item models and dialogs: wiring, not logic."""

import os

# Set before any paint: Qt's raster engine hands each large fill to a thread pool of its own
# and waits for it. On a busy 2-core machine those threads wait for a core and the GUI thread
# waits with them: repaints of the grid stalled for up to 0.75 s while labeling at load 13.
# Fills then stay on the GUI thread; a user's own setting of the variable wins.
os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")
