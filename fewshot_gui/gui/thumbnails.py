"""Thumbnail pixmaps for item models: loaded off the GUI thread, cached, sharp on HiDPI."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from enum import Enum

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter, QPalette, QPixmap

from fewshot_gui.workers.thumbnails import ThumbnailLoader


def qimage_from_array(pixels: np.ndarray) -> QImage:
    """A QImage that owns a copy of an RGB uint8 array of shape (height, width, 3)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape[:2]
    image = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return image.copy()


# Loaded images wait here until a model asks for them shaped; only the recent few are needed.
IMAGES_KEPT = 512


class Shape(Enum):
    """How a thumbnail fills its `side` x `side` cell."""

    FIT = "fit"  # the image as loaded, its longer side `side`
    SQUARE = "square"  # the whole image centred on a transparent square: grids line up
    FILL = "fill"  # the centre of the image filling the square, like an avatar


def _placeholder(pixels: int, ratio: float) -> QPixmap:
    # While loading, a faint square of the right size keeps icon-mode layouts from collapsing.
    pixmap = QPixmap(pixels, pixels)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    colour = QColor(QGuiApplication.palette().color(QPalette.ColorRole.Mid))
    colour.setAlpha(60)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(colour)
    inset = pixels * 0.06
    painter.drawRoundedRect(QRectF(inset, inset, pixels - 2 * inset, pixels - 2 * inset), 6, 6)
    painter.end()
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def _shaped(image: QImage, pixels: int, shape: Shape) -> QImage:
    if shape is Shape.FILL:
        short = min(image.width(), image.height())
        image = image.copy(
            (image.width() - short) // 2, (image.height() - short) // 2, short, short
        ).scaled(
            pixels,
            pixels,
            Qt.AspectRatioMode.IgnoreAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        return image
    square = QImage(pixels, pixels, QImage.Format.Format_ARGB32_Premultiplied)
    square.fill(Qt.GlobalColor.transparent)
    painter = QPainter(square)
    painter.drawImage(QPointF((pixels - image.width()) / 2, (pixels - image.height()) / 2), image)
    painter.end()
    return square


class ThumbnailCache(QObject):
    """`pixmap(path, side)` answers at once from the cache or asks the loader and says later."""

    ready = Signal(str)  # a path whose thumbnail just arrived
    error = Signal(str, str)  # path, why it could not be read

    def __init__(self, parent: QObject | None = None, capacity: int = 4000) -> None:
        super().__init__(parent)
        self._loader = ThumbnailLoader(self)
        self._loader.loaded.connect(self._on_loaded)
        self._images: OrderedDict[tuple[str, int], QImage] = OrderedDict()
        self._cache: OrderedDict[tuple[str, int, Shape], QPixmap] = OrderedDict()
        self._placeholders: dict[int, QPixmap] = {}
        self._failed: dict[str, str] = {}
        self._capacity = capacity

    @staticmethod
    def ratio() -> float:
        screen = QGuiApplication.primaryScreen()
        return screen.devicePixelRatio() if screen is not None else 1.0

    def pixel_side(self, side: int) -> int:
        """Device pixels for a thumbnail `side` logical pixels wide on the primary screen."""
        return max(1, round(side * self.ratio()))

    def pixmap(self, path: str, side: int, shape: Shape = Shape.FIT) -> QPixmap | None:
        """The thumbnail, or None while it loads (`ready(path)` follows) or when unreadable."""
        pixels = self.pixel_side(side)
        key = (path, pixels, shape)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        # A filled square crops the longer side away, so it needs a larger image to crop.
        load_side = pixels * 2 if shape is Shape.FILL else pixels
        image = self._images.get((path, load_side))
        if image is not None:
            shaped = image if shape is Shape.FIT else _shaped(image, pixels, shape)
            pixmap = QPixmap.fromImage(shaped)
            pixmap.setDevicePixelRatio(self.ratio())
            self._cache[key] = pixmap
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
            return pixmap
        if path not in self._failed:
            self._loader.request(path, load_side)
        return None

    def icon(self, path: str, side: int, shape: Shape = Shape.SQUARE) -> QPixmap:
        """For item models: the shaped thumbnail, or a placeholder of the same size meanwhile."""
        found = self.pixmap(path, side, shape)
        return found if found is not None else self.placeholder(side)

    def placeholder(self, side: int) -> QPixmap:
        """An empty square thumbnail `side` logical pixels wide."""
        pixels = self.pixel_side(side)
        if pixels not in self._placeholders:
            self._placeholders[pixels] = _placeholder(pixels, self.ratio())
        return self._placeholders[pixels]

    def failure(self, path: str) -> str:
        return self._failed.get(path, "")

    def clear_pending(self) -> None:
        self._loader.clear()

    def retain(self, side: int, paths: Collection[str], shape: Shape = Shape.SQUARE) -> None:
        """Forget waiting loads of `side` thumbnails except for `paths`, e.g. the tiles in view."""
        pixels = self.pixel_side(side)
        self._loader.retain(pixels * 2 if shape is Shape.FILL else pixels, paths)

    def pending(self, side: int) -> list[str]:
        """Paths whose `side` thumbnail waits for a thread, oldest first."""
        pixels = self.pixel_side(side)
        return [path for path, load_side in self._loader.pending() if load_side == pixels]

    def wait(self, timeout_ms: int = 10_000) -> bool:
        return self._loader.wait(timeout_ms)

    def _on_loaded(self, path: str, side: int, pixels: object, error: str) -> None:
        if pixels is None:
            self._failed[path] = error
            self.error.emit(path, error)
            self.ready.emit(path)
            return
        assert isinstance(pixels, np.ndarray)
        image = qimage_from_array(pixels)
        if max(image.width(), image.height()) < side // 2:
            # Tiny images (28 px glyphs) would vanish in the grid: enlarge them, pixels crisp.
            image = image.scaled(
                side,
                side,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
        self._images[(path, side)] = image
        while len(self._images) > IMAGES_KEPT:
            self._images.popitem(last=False)
        self.ready.emit(path)
