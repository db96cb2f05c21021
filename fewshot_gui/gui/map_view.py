"""The folder map widget: every image as a point coloured by its label, examples marked,
hover to see one, click to pick one, drag a rectangle or a lasso to select many."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QMouseEvent, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QGraphicsPathItem,
    QHBoxLayout,
    QLabel,
    QMenu,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from fewshot_gui.core.folder_map import FolderMap
from fewshot_gui.core.map_image import class_colour, colour_table
from fewshot_gui.core.support import UNKNOWN
from fewshot_gui.gui.map_points import RasterPoints, argb
from fewshot_gui.gui.thumbnails import ThumbnailCache

POINT_PX = 5
EXAMPLE_PX = 12
HOVER_PX = 8  # the pointer picks the nearest point this close, in screen pixels
HOVER_THUMB = 128
MODES = ("pan", "rect", "lasso")


def inside_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Whether each point (n, 2) lies inside `polygon` (m, 2), by the even-odd rule."""
    inside = np.zeros(len(xy), bool)
    x, y = xy[:, 0], xy[:, 1]
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < at)
    return inside


class MapPlot(pg.PlotWidget):
    """The points as one picture drawn per view (RasterPoints), the examples as pyqtgraph
    diamonds on top; mouse selection in rect/lasso mode."""

    hovered = Signal(int, QPoint)  # point index (-1: none), position in the widget
    clicked = Signal(int)
    selected = Signal(object, QPoint)  # point indices (int64) swept, where the drag ended

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        self.plotItem.hideAxis("left")
        self.plotItem.hideAxis("bottom")
        self.plotItem.setMenuEnabled(False)
        self.plotItem.hideButtons()
        self.box = self.plotItem.getViewBox()
        self.box.setAspectLocked(True)
        self.xy = np.zeros((0, 2), np.float32)
        self.shown = np.zeros(0, bool)
        self.codes = np.zeros(0, np.int64)  # as drawn: a class index, negative for unknown
        self.examples = np.zeros(0, bool)
        self.mode = "pan"
        self._points = RasterPoints()
        self._examples = pg.ScatterPlotItem(pxMode=True, symbol="d", size=EXAMPLE_PX)
        for z, item in ((0, self._points), (10, self._examples)):
            item.setZValue(z)
            self.addItem(item)
        self._drag: list[QPointF] = []
        self._press: QPoint | None = None
        self._outline = QGraphicsPathItem()
        self._outline.setPen(QPen(QColor(0, 0, 0), 0, Qt.PenStyle.DashLine))
        self._outline.setBrush(QBrush(QColor(0, 120, 215, 40)))
        self._outline.setZValue(30)
        self.addItem(self._outline)
        self.setMouseTracking(True)

    def set_points(self, xy: np.ndarray, fit: bool = True) -> None:
        self.xy = np.asarray(xy, np.float32)
        self.shown = np.ones(len(self.xy), bool)
        self._points.set_points(self.xy)
        if fit:
            self.box.autoRange(padding=0.05)
        self.box.disableAutoRange()  # a re-colour or a placement never moves the view

    def set_colours(self, codes: np.ndarray, examples: np.ndarray, shown: np.ndarray) -> None:
        """Colour by label code (a class index, negative for unknown); examples as diamonds;
        points not `shown` are hidden (files gone from the results since the layout)."""
        self.shown, self.codes, self.examples = shown, codes, examples
        points = np.flatnonzero(shown & ~examples)
        order = points[np.argsort(codes[points] >= 0, kind="stable")]  # unknown under classes
        self._points.set_colours(argb(colour_table(codes)), order)
        at = shown & examples
        brushes = [QBrush(QColor(*class_colour(int(c)))) for c in codes[at]]
        self._examples.setData(
            self.xy[at, 0], self.xy[at, 1], brush=brushes, pen=pg.mkPen("k", width=1.5)
        )

    def set_selection(self, rows: np.ndarray) -> None:
        """Rows drawn with a black halo over the others (hidden ones are left out)."""
        self._points.set_selected(rows[self.shown[rows]] if len(rows) else rows)

    @property
    def selection(self) -> np.ndarray:
        return self._points.selected

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.box.setMouseEnabled(mode == "pan", mode == "pan")

    def point_at(self, position: QPoint) -> int:
        """The shown point nearest to `position` (widget pixels) within HOVER_PX, or -1."""
        if not self.shown.any():
            return -1
        at = self.box.mapSceneToView(self.mapToScene(position))
        size = self.box.viewPixelSize()
        dx = (self.xy[:, 0] - at.x()) / size[0]
        dy = (self.xy[:, 1] - at.y()) / size[1]
        distance = np.where(self.shown, dx * dx + dy * dy, np.inf)
        nearest = int(distance.argmin())
        return nearest if distance[nearest] <= HOVER_PX * HOVER_PX else -1

    def _to_view(self, position: QPoint) -> QPointF:
        return self.box.mapSceneToView(self.mapToScene(position))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position().toPoint()
            if self.mode != "pan":
                self._drag = [self._to_view(self._press)]
                event.accept()
                return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        position = event.position().toPoint()
        if self.mode != "pan" and self._drag:
            self._drag.append(self._to_view(position))
            self._outline.setPath(self._outline_path())
            event.accept()
            return
        super().mouseMoveEvent(event)
        if not event.buttons():
            self.hovered.emit(self.point_at(position), position)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        position = event.position().toPoint()
        press, self._press = self._press, None
        if self.mode != "pan" and self._drag:
            self._drag.append(self._to_view(position))
            swept = self._swept()
            self._drag = []
            self._outline.setPath(QPainterPath())
            self.selected.emit(swept, position)
            event.accept()
            return
        super().mouseReleaseEvent(event)
        moved = press is None or (position - press).manhattanLength() > 3
        if event.button() == Qt.MouseButton.LeftButton and not moved:
            point = self.point_at(position)
            if point >= 0:
                self.clicked.emit(point)

    def _corners(self) -> np.ndarray:
        drag = np.array([(p.x(), p.y()) for p in self._drag], np.float64)
        if self.mode == "lasso":
            return drag
        (x0, y0), (x1, y1) = drag[0], drag[-1]
        return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])

    def _outline_path(self) -> QPainterPath:
        path = QPainterPath()
        corners = self._corners()
        path.moveTo(*corners[0])
        for corner in corners[1:]:
            path.lineTo(*corner)
        path.closeSubpath()
        return path

    def _swept(self) -> np.ndarray:
        if len(self._drag) < 2:
            return np.zeros(0, np.int64)
        return np.flatnonzero(inside_polygon(self.xy, self._corners()) & self.shown)


class MapPanel(QWidget):
    """The map with its tools; `correctRequested(paths, name)` labels a selection (a new
    class name makes the class), `pathClicked(path)` picks one image."""

    correctRequested = Signal(list, str)
    pathClicked = Signal(Path)

    def __init__(self, thumbnails: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumbnails = thumbnails
        self.plot = MapPlot(self)
        self.paths: tuple[Path, ...] = ()
        self.class_names: list[str] = []
        self.new_class_name = "class 1"
        self.selection = np.zeros(0, np.int64)
        self.status = QLabel("The map appears once a folder is labeled", self)
        self.status.setWordWrap(True)
        self.legend = QLabel(self)
        self.legend.setWordWrap(True)
        tools = QHBoxLayout()
        self.mode_buttons = QButtonGroup(self)
        tips = {
            "pan": "Drag to move, wheel to zoom; click a point to show it in the grid",
            "rect": "Drag a rectangle to select the images in it",
            "lasso": "Draw around images to select them",
        }
        for mode, text in zip(MODES, ("Move", "Rectangle", "Lasso"), strict=True):
            button = QToolButton(self)
            button.setText(text)
            button.setCheckable(True)
            button.setChecked(mode == "pan")
            button.setToolTip(tips[mode])
            button.toggled.connect(lambda on, m=mode: on and self.plot.set_mode(m))
            self.mode_buttons.addButton(button)
            tools.addWidget(button)
        self.label_button = QToolButton(self)
        self.label_button.setText("Label selection")
        self.label_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.label_button.setEnabled(False)
        self.label_button.clicked.connect(
            lambda: self.selection_menu().popup(self.label_button.mapToGlobal(QPoint(0, 0)))
        )
        tools.addWidget(self.label_button)
        tools.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(tools)
        layout.addWidget(self.status)
        layout.addWidget(self.legend)
        layout.addWidget(self.plot, 1)
        self.card = QLabel(self.plot)
        self.card.setFrameShape(QFrame.Shape.StyledPanel)
        self.card.setAutoFillBackground(True)
        self.card.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.card.hide()
        self._card_path = ""
        self.plot.hovered.connect(self._on_hover)
        self.plot.clicked.connect(lambda row: self.pathClicked.emit(self.paths[row]))
        self.plot.selected.connect(self._on_swept)
        thumbnails.ready.connect(self._on_thumbnail)

    def set_map(self, folder_map: FolderMap, fit: bool = True) -> None:
        """Show a new map; `fit` the view to it (not for a map with a few points placed)."""
        self.paths = folder_map.paths
        self.plot.set_points(folder_map.xy, fit)
        self.selection = np.zeros(0, np.int64)
        self.label_button.setEnabled(False)

    def set_colours(self, codes: np.ndarray, examples: np.ndarray, shown: np.ndarray) -> None:
        self.plot.set_colours(codes, examples, shown)
        keys = [*enumerate(self.class_names), (-1, UNKNOWN)]
        swatches = (QColor(*class_colour(code)).name() for code, _name in keys)
        self.legend.setText(
            "&nbsp; ".join(
                f'<span style="color:{swatch}">●</span>&nbsp;{html.escape(name)}'
                for swatch, (_code, name) in zip(swatches, keys, strict=True)
            )
            + " &nbsp;◆ an example"
        )

    def show_selection(self, rows: np.ndarray) -> None:
        """Mark points (e.g. the grid's selection) without making them the map's selection."""
        self.plot.set_selection(rows)

    def selected_paths(self) -> list[Path]:
        return [self.paths[row] for row in self.selection.tolist()]

    def selection_menu(self) -> QMenu:
        """What to do with the selected points: label as a class, a new class, or unknown."""
        paths = self.selected_paths()
        menu = QMenu(self)
        count = f"{len(paths)} image{'s' if len(paths) != 1 else ''}"
        label = menu.addMenu(f"Label {count} as")
        for number, name in enumerate(self.class_names, start=1):
            action = label.addAction(f"&{number} {name}" if number <= 9 else name)
            action.triggered.connect(lambda _=False, n=name: self.correctRequested.emit(paths, n))
        new = menu.addAction(f"Make {count} a new class ({self.new_class_name})")
        new.triggered.connect(lambda: self.correctRequested.emit(paths, self.new_class_name))
        none = menu.addAction(f"Mark {count} as none of these ({UNKNOWN})")
        none.triggered.connect(lambda: self.correctRequested.emit(paths, UNKNOWN))
        return menu

    def _on_swept(self, rows: np.ndarray, position: QPoint) -> None:
        self.selection = rows
        self.plot.set_selection(rows)
        self.label_button.setEnabled(bool(len(rows)))
        if len(rows):
            self.selection_menu().popup(self.plot.mapToGlobal(position))

    def _on_hover(self, row: int, position: QPoint) -> None:
        if row < 0:
            self.card.hide()
            self._card_path = ""
            return
        path = self.paths[row]
        self._card_path = str(path)
        self._fill_card()
        self.card.adjustSize()
        x = min(position.x() + 16, max(0, self.plot.width() - self.card.width()))
        y = min(position.y() + 16, max(0, self.plot.height() - self.card.height()))
        self.card.move(x, y)
        self.card.show()
        self.card.raise_()

    def _fill_card(self) -> None:
        pixmap = self.thumbnails.pixmap(self._card_path, HOVER_THUMB)
        name = Path(self._card_path).name
        if pixmap is None:
            self.card.setText(f"{self.thumbnails.failure(self._card_path) or 'Loading…'}\n{name}")
            return
        self.card.setPixmap(_captioned(pixmap, name, self.card))

    def _on_thumbnail(self, path: str) -> None:
        if path == self._card_path and self.card.isVisible():
            self._fill_card()
            self.card.adjustSize()


def _captioned(pixmap: QPixmap, caption: str, widget: QWidget) -> QPixmap:
    """The thumbnail with the file name under it, as one pixmap: a label shows one or the
    other, not both."""
    ratio = pixmap.devicePixelRatio()
    width = max(round(pixmap.width() / ratio), 160)
    metrics = widget.fontMetrics()
    text = metrics.elidedText(caption, Qt.TextElideMode.ElideMiddle, width - 8)
    height = round(pixmap.height() / ratio) + metrics.height() + 6
    card = QPixmap(round(width * ratio), round(height * ratio))
    card.setDevicePixelRatio(ratio)
    card.fill(widget.palette().color(widget.backgroundRole()))
    painter = QPainter(card)
    painter.drawPixmap(QPointF((width - pixmap.width() / ratio) / 2, 0), pixmap)
    painter.setPen(widget.palette().color(widget.foregroundRole()))
    painter.drawText(4, height - metrics.descent() - 3, text)
    painter.end()
    return card


def paths_rows(paths: Sequence[Path], row_of: dict[Path, int]) -> np.ndarray:
    """The map rows of `paths` that are on the map, as int64."""
    return np.array([r for p in paths if (r := row_of.get(p)) is not None], np.int64)
