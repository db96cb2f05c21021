"""A dismissible line above the content for errors and hints: never a modal box that blocks."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget


class Banner(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextFormat(self.text.textFormat().PlainText)
        close = QToolButton(self)
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.text, 1)
        layout.addWidget(close)
        self.hide()

    def show_error(self, message: str) -> None:
        self._show("⚠ " + message, "highlight")

    def show_info(self, message: str) -> None:
        self._show(message, "info")

    def _show(self, message: str, kind: str) -> None:
        self.setProperty("kind", kind)
        # Palette roles keep it readable in dark and light themes alike.
        role = "palette(highlight)" if kind == "highlight" else "palette(alternate-base)"
        text = "palette(highlighted-text)" if kind == "highlight" else "palette(text)"
        self.setStyleSheet(f"Banner {{ background: {role}; }} QLabel {{ color: {text}; }}")
        self.text.setText(message)
        self.show()
