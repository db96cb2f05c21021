"""The window's menus, shortcuts and toolbar."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QMenu, QToolBar

from fewshot_gui.core.export_undo import journal_state
from fewshot_gui.core.support import UNKNOWN
from fewshot_gui.gui.about import FIRST_RUN_HINT, show_about
from fewshot_gui.gui.export_dialog import undo_last_export

if TYPE_CHECKING:
    from fewshot_gui.gui.main_window import MainWindow


def _action(
    menu: QMenu,
    text: str,
    slot: Callable[[], object],
    shortcut: QKeySequence.StandardKey | str | None = None,
    tip: str = "",
) -> QAction:
    action = menu.addAction(text)
    action.triggered.connect(slot)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    action.setStatusTip(tip)
    action.setToolTip(tip or text.replace("&", "").rstrip("…"))
    return action


def build_menus(window: MainWindow) -> None:
    """The menus, their shortcuts and the toolbar with the model chooser."""
    keys = QKeySequence.StandardKey
    file = window.menuBar().addMenu("&File")
    _action(
        file, "&New Session", window.new_session, keys.New, "Start empty: no classes, no folder"
    )
    _action(file, "Open &Demo", window.open_demo, None, "The demo classes and photos")
    file.addSeparator()
    window.open_folder_action = _action(
        file,
        "Open &Folder to Label…",
        window.choose_folder,
        keys.Open,
        "Label every image in a folder",
    )
    window.label_action = _action(
        file, "&Label Again", window.label_again, "Ctrl+L", "Label the folder again"
    )
    window.cancel_action = _action(file, "&Cancel Labeling", window.cancel, "Esc")
    window.cancel_action.setEnabled(False)
    window.export_action = _action(
        file,
        "&Export…",
        window.open_export,
        "Ctrl+E",
        "Write a manifest or sort files into class folders",
    )
    window.undo_export_action = _action(
        file,
        "&Undo Last Export",
        lambda: undo_last_export(window, window.results, window.last_journal),
        tip="Put back what the last export sorted into class folders",
    )
    # Asked of the journal each time: an undo, or a session reopened since, may have changed it.
    file.aboutToShow.connect(
        lambda: window.undo_export_action.setEnabled(
            journal_state(window.last_journal) == "exported"
        )
    )
    file.addSeparator()
    _action(file, "Open &Session…", window.sessions.open_dialog, "Ctrl+Shift+O")
    file.addMenu(window.sessions.recent_menu)
    _action(file, "&Save Session", lambda: window.sessions.save(), keys.Save)
    _action(file, "Save Session &As…", window.sessions.save_as, keys.SaveAs)
    file.addSeparator()
    _action(file, "&Quit", window.close, keys.Quit)

    edit = window.menuBar().addMenu("&Edit")
    undo = window.editor.undo_stack.createUndoAction(window, "&Undo")
    undo.setShortcut(keys.Undo)
    redo = window.editor.undo_stack.createRedoAction(window, "&Redo")
    redo.setShortcut(keys.Redo)
    edit.addActions([undo, redo])
    edit.addSeparator()
    _action(edit, "&Paste Examples", window.class_panel.paste, keys.Paste)
    _action(edit, "Add &Class", window.class_panel.add_class, "Ctrl+Shift+N")
    _action(edit, "&Rename Class", window.class_panel.rename_selected, "F2")

    view = window.menuBar().addMenu("&View")
    _action(view, "&All Images", lambda: window.results_panel.set_filter(None), "Ctrl+0")
    _action(view, "&Unknown Only", lambda: window.results_panel.set_filter(UNKNOWN), "Ctrl+U")
    view.addAction(window.map_dock.toggleViewAction())

    tools = window.menuBar().addMenu("&Tools")
    window.discover_action = _action(
        tools,
        "&Discover Classes…",
        window.proposals.open_and_search,
        "Ctrl+Shift+D",
        "Groups of similar images among the unknown ones, to make classes of",
    )
    window.confusion_action = _action(
        tools,
        "Examples' &Confusion…",
        window.confusion.show,
        tip="Which classes' examples the model mixes up, each judged by all the others",
    )

    help_menu = window.menuBar().addMenu("&Help")
    _action(help_menu, "&Getting Started", lambda: window.banner.show_info(FIRST_RUN_HINT), "F1")
    _action(help_menu, "&About FewShot Labeler", lambda: show_about(window))

    toolbar = QToolBar("Main", window)
    toolbar.setObjectName("main-toolbar")
    toolbar.addActions([window.open_folder_action, window.label_action, window.export_action])
    toolbar.addSeparator()
    toolbar.addWidget(QLabel(" Model: "))
    window.model_box = QComboBox(window)
    window.model_box.setToolTip("The installed model that labels the images")
    window.model_box.setMinimumWidth(220)
    toolbar.addWidget(window.model_box)
    window.addToolBar(toolbar)
