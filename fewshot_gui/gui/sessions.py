"""Session files for the window: save, open, recent files, and the last session, kept as it
changes and at quit so that the next launch (or a crash) brings the work back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QWidget

from fewshot_gui.core.session import (
    SESSION_SUFFIX,
    Session,
    SessionError,
    load_session,
    save_session,
)

MAX_RECENT = 8
AUTOSAVE_DELAY_MS = 1500
_RECENT_KEY = "sessions/recent"


class SessionFiles(QObject):
    """Keeps the session saved where asked, the last session up to date, and the recent list."""

    opened = Signal(object)  # Session
    message = Signal(str)

    def __init__(
        self,
        parent: QWidget,
        settings: QSettings,
        last_session: Path,
        capture: Callable[[], Session],
    ) -> None:
        super().__init__(parent)
        self._parent, self._settings, self._capture = parent, settings, capture
        self.last_path = last_session
        self.path: Path | None = None
        self.recent_menu = QMenu("Open &Recent", parent)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(AUTOSAVE_DELAY_MS)
        self._timer.timeout.connect(self.save_last)

    def changed(self) -> None:
        """Something worth keeping changed: keep it as the last session soon."""
        self._timer.start()

    def save_last(self) -> None:
        self._timer.stop()
        try:
            save_session(self.last_path, self._capture())
        except OSError as error:
            self.message.emit(f"Could not keep the session in {self.last_path}: {error.strerror}")

    def last(self) -> Session | None:
        """The session of the last launch, if there was one and it can be read."""
        if not self.last_path.is_file():
            return None
        try:
            return load_session(self.last_path)
        except SessionError as error:
            self.message.emit(f"The last session could not be read: {error}")
            return None

    def save(self, path: Path | None = None) -> bool:
        path = path or self.path
        if path is None:
            return self.save_as()
        try:
            save_session(path, self._capture())
        except OSError as error:
            self.message.emit(f"Could not save {path}: {error.strerror}")
            return False
        self.path = path
        self._remember(path)
        self.message.emit(f"Saved the session to {path}")
        return True

    def save_as(self) -> bool:
        name, _ = QFileDialog.getSaveFileName(
            self._parent,
            "Save session",
            "labeling" + SESSION_SUFFIX,
            f"Sessions (*{SESSION_SUFFIX} *.json)",
        )
        return self.save(Path(name)) if name else False

    def open_dialog(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self._parent, "Open session", "", f"Sessions (*{SESSION_SUFFIX} *.json)"
        )
        if name:
            self.open(Path(name))

    def open(self, path: Path) -> bool:
        try:
            session = load_session(path)
        except SessionError as error:
            QMessageBox.warning(self._parent, "Cannot open the session", str(error))
            return False
        self.path = path
        self._remember(path)
        self.opened.emit(session)
        self.message.emit(f"Opened {path}")
        return True

    def recent(self) -> list[Path]:
        stored = self._settings.value(_RECENT_KEY, [])
        items = stored if isinstance(stored, list) else [stored] if stored else []
        return [Path(p) for p in items]

    def _remember(self, path: Path) -> None:
        paths = [str(path), *(str(p) for p in self.recent() if p != path)][:MAX_RECENT]
        self._settings.setValue(_RECENT_KEY, paths)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for number, path in enumerate(self.recent(), start=1):
            action = self.recent_menu.addAction(f"&{number} {path.name}")
            action.setToolTip(str(path))
            action.triggered.connect(lambda _=False, p=path: self.open(p))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("No recent sessions").setEnabled(False)
