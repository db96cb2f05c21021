"""Tools ▸ Discover Classes: candidate classes from the unknown pile, to accept with a name or
reject; the worker finds them (core.discover), the session editor makes an accepted one."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fewshot_gui.core.discover import Proposal
from fewshot_gui.core.support import UNKNOWN
from fewshot_gui.gui.edits import SessionEditor
from fewshot_gui.gui.thumbnails import ThumbnailCache
from fewshot_gui.workers.labeling_client import LabelingClient

THUMB = 64  # logical pixels of each typical image in a row
GAP = 4


class ProposalsPanel(QDialog):
    """A list of proposals, each with its size and typical images; `accept_selected` makes a
    class of the typical images (one undoable edit, after which the folder is labeled again),
    `reject_selected` keeps its images unknown and never proposes that cluster again."""

    message = Signal(str)

    def __init__(
        self, editor: SessionEditor, thumbnails: ThumbnailCache, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Discover Classes")
        self.editor, self.thumbnails = editor, thumbnails
        self.client: LabelingClient | None = None
        self.proposals: list[Proposal] = []  # as listed
        self.rejected: list[frozenset[Path]] = []  # this session's, sent with every search
        self.status = QLabel("")
        self.list = QListWidget(self)
        self.list.setIconSize(QSize(5 * (THUMB + GAP), THUMB))
        self.list.currentRowChanged.connect(self._on_row)
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("Name of the new class")
        self.name.returnPressed.connect(self.accept_selected)
        self.accept_button = QPushButton("Make Class", self)
        self.accept_button.clicked.connect(self.accept_selected)
        self.reject_button = QPushButton("Not a Class", self)
        self.reject_button.clicked.connect(self.reject_selected)
        self.search_button = QPushButton("Look Again", self)
        self.search_button.clicked.connect(self.search)
        buttons = QHBoxLayout()
        buttons.addWidget(self.name, 1)
        for button in (self.accept_button, self.reject_button, self.search_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.resize(640, 480)
        self._on_row(-1)
        thumbnails.ready.connect(self._on_thumbnail)

    def start(self, client: LabelingClient) -> None:
        self.client = client
        client.proposed.connect(self.show_proposals)
        client.failed.connect(self._on_failed)

    def open_and_search(self) -> None:
        self.show()
        self.raise_()
        self.search()

    def search(self) -> None:
        """Ask the worker for proposals among the images labeled so far."""
        if self.client is None:
            return
        self.status.setText("Looking for classes among the unknown images…")
        self.search_button.setEnabled(False)
        self.client.discover(self.rejected)

    def show_proposals(self, proposals: list[Proposal]) -> None:
        self.proposals = list(proposals)
        self.search_button.setEnabled(True)
        self.list.clear()
        for proposal in self.proposals:
            item = QListWidgetItem(f"{proposal.size} images")
            item.setIcon(self._strip(proposal.typical))
            item.setToolTip("\n".join(p.name for p in proposal.typical))
            self.list.addItem(item)
        self.status.setText(
            f"{len(self.proposals)} possible new classes: name one and make it a class, "
            "or say it is none"
            if self.proposals
            else "No group of similar images among the unknown ones"
        )
        if self.proposals:
            self.list.setCurrentRow(0)

    def forget(self) -> None:
        """Start over for another session: no proposals, no rejections."""
        self.rejected.clear()
        self.show_proposals([])
        self.status.setText("")

    def accept_selected(self) -> None:
        """The selected proposal's typical images become the examples of a class named as
        typed (an existing class gets them added), as one undoable step."""
        row = self.list.currentRow()
        name = self.name.text().strip()
        if row < 0:
            return
        if not name or name == UNKNOWN:
            self.status.setText(f"Type a name for the class (not {UNKNOWN!r})")
            return
        proposal = self._take(row)
        self.editor.add_examples({name: list(proposal.typical)})
        self.name.clear()
        self.message.emit(f"Made {name} from {len(proposal.typical)} typical images")

    def reject_selected(self) -> None:
        row = self.list.currentRow()
        if row >= 0:
            self.rejected.append(frozenset(self._take(row).members))

    def _take(self, row: int) -> Proposal:
        self.list.takeItem(row)
        return self.proposals.pop(row)

    def _on_failed(self, kind: str, message: str) -> None:
        if kind == "discover":  # the window's banner says why
            self.status.setText("Looking for classes failed")
            self.search_button.setEnabled(True)

    def _on_row(self, row: int) -> None:
        for button in (self.accept_button, self.reject_button):
            button.setEnabled(row >= 0)

    def _strip(self, paths: tuple[Path, ...]) -> QIcon:
        """The typical images side by side (placeholders until their thumbnails load)."""
        ratio = self.thumbnails.ratio()
        strip = QPixmap(self.list.iconSize() * ratio)
        strip.setDevicePixelRatio(ratio)
        strip.fill(Qt.GlobalColor.transparent)
        painter = QPainter(strip)
        for i, path in enumerate(paths[:5]):
            painter.drawPixmap(i * (THUMB + GAP), 0, self.thumbnails.icon(str(path), THUMB))
        painter.end()
        return QIcon(strip)

    def _on_thumbnail(self, path: str) -> None:
        for row, proposal in enumerate(self.proposals):
            if any(str(p) == path for p in proposal.typical):
                self.list.item(row).setIcon(self._strip(proposal.typical))
