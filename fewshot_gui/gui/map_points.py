"""Many map points drawn as one picture: each paint maps every point to the screen and
stamps it into a numpy buffer, so 100,000 points cost a few array operations, not a call
into Qt per point or per colour (benchmarks/map_speed.py measures both)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QStyleOptionGraphicsItem, QWidget

HALO = 0xFF000000
# A point is a 5-pixel disc: a 3x3 square and one pixel out on each side; a selected one
# sits on a black disc two pixels wider all round.
DOT = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)] + [(0, -2), (0, 2), (-2, 0), (2, 0)]
RING = [(dx, dy) for dy in range(-3, 4) for dx in range(-3, 4) if abs(dx) + abs(dy) <= 4]
# A few points are drawn larger (9 pixels), so that a small folder's map is not all white.
BIG_DOT = [(dx, dy) for dy in range(-4, 5) for dx in range(-4, 5) if dx * dx + dy * dy <= 17]
BIG_RING = [(dx, dy) for dy in range(-6, 7) for dx in range(-6, 7) if dx * dx + dy * dy <= 34]
FEW = 5_000
REACH = 6  # pixels a stamp reaches from its point: points nearer the edge are not drawn


def argb(rgb: np.ndarray) -> np.ndarray:
    """Opaque ARGB32 words (n,) uint32 from RGB (n, 3) uint8."""
    rgb = rgb.astype(np.uint32)
    return 0xFF000000 | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]


class RasterPoints(pg.GraphicsObject):
    """Points in view coordinates, painted in `order` (later ones on top), each in its
    ARGB colour; `selected` ones with a black halo, over the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.xy = np.zeros((0, 2), np.float32)
        self.colours = np.zeros(0, np.uint32)
        self.order = np.zeros(0, np.int64)
        self.selected = np.zeros(0, np.int64)
        self._bounds = QRectF()

    def set_points(self, xy: np.ndarray) -> None:
        self.prepareGeometryChange()
        self.xy = np.asarray(xy, np.float32)
        self.colours = np.zeros(len(self.xy), np.uint32)
        self.order = self.selected = np.zeros(0, np.int64)
        if len(self.xy):
            low, high = self.xy.min(0), self.xy.max(0)
            self._bounds = QRectF(low[0], low[1], high[0] - low[0], high[1] - low[1])
        else:
            self._bounds = QRectF()
        self.update()

    def set_colours(self, colours: np.ndarray, order: np.ndarray) -> None:
        """ARGB words (n,) per point; `order`: the points to draw, bottom first."""
        self.colours, self.order = colours, order
        self.update()

    def set_selected(self, rows: np.ndarray) -> None:
        self.selected = rows
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(self._bounds)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        device = widget if widget is not None else painter.device()
        ratio = device.devicePixelRatioF()
        width, height = round(device.width() * ratio), round(device.height() * ratio)
        if not len(self.xy) or width <= 2 * REACH or height <= 2 * REACH:
            return
        # The world transform, not the device one: a widget painted into its window's
        # backing store has the widget's place in the window in its device transform.
        t = painter.worldTransform()
        x, y = self.xy[:, 0], self.xy[:, 1]  # float32 and int32: half the memory traffic
        m11, m21, dx = (np.float32(v * ratio) for v in (t.m11(), t.m21(), t.dx() + 0.5))
        m12, m22, dy = (np.float32(v * ratio) for v in (t.m12(), t.m22(), t.dy() + 0.5))
        px = (m11 * x + m21 * y + dx).astype(np.int32)
        py = (m12 * x + m22 * y + dy).astype(np.int32)
        inside = (px >= REACH) & (px < width - REACH) & (py >= REACH) & (py < height - REACH)
        canvas = np.zeros(height * width, np.uint32)
        dot, ring = (BIG_DOT, BIG_RING) if len(self.order) < FEW else (DOT, RING)
        for rows, stamp, colour in (
            (self.order, dot, None),
            (self.selected, ring, HALO),
            (self.selected, dot, None),
        ):
            rows = rows[inside[rows]]
            at = py[rows] * width + px[rows]
            colours = self.colours[rows] if colour is None else colour
            for dx, dy in stamp:
                canvas[at + (dy * width + dx)] = colours
        image = QImage(
            canvas.data, width, height, 4 * width, QImage.Format.Format_ARGB32_Premultiplied
        )
        image.setDevicePixelRatio(ratio)
        painter.save()
        painter.resetTransform()
        painter.drawImage(0, 0, image)
        painter.restore()
