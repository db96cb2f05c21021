"""Thumbnail pixmaps for item models: loaded off the GUI thread, cached, sharp on HiDPI."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication, QImage, QPixmap

from fewshot_gui.workers.thumbnails import ThumbnailLoader


def qimage_from_array(pixels: np.ndarray) -> QImage:
    """A QImage that owns a copy of an RGB uint8 array of shape (height, width, 3)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape[:2]
    image = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return image.copy()


class ThumbnailCache(QObject):
    """`pixmap(path, side)` answers at once from the cache or asks the loader and says later."""

    ready = Signal(str)  # a path whose thumbnail just arrived
    error = Signal(str, str)  # path, why it could not be read

    def __init__(self, parent: QObject | None = None, capacity: int = 4000) -> None:
        super().__init__(parent)
        self._loader = ThumbnailLoader(self)
        self._loader.loaded.connect(self._on_loaded)
        self._cache: OrderedDict[tuple[str, int], QPixmap] = OrderedDict()
        self._failed: dict[str, str] = {}
        self._capacity = capacity

    @staticmethod
    def ratio() -> float:
        screen = QGuiApplication.primaryScreen()
        return screen.devicePixelRatio() if screen is not None else 1.0

    def pixel_side(self, side: int) -> int:
        """Device pixels for a thumbnail `side` logical pixels wide on the primary screen."""
        return max(1, round(side * self.ratio()))

    def pixmap(self, path: str, side: int) -> QPixmap | None:
        pixels = self.pixel_side(side)
        key = (path, pixels)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        if path not in self._failed:
            self._loader.request(path, pixels)
        return None

    def failure(self, path: str) -> str:
        return self._failed.get(path, "")

    def clear_pending(self) -> None:
        self._loader.clear()

    def wait(self) -> bool:
        return self._loader.wait()

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
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(self.ratio())
        self._cache[(path, side)] = pixmap
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        self.ready.emit(path)
